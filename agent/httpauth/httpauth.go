package httpauth

import (
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"
	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
	"k8s.io/utils/lru"
)

// Modes of --http-auth.
const (
	// ModeNone serves every path to whoever reaches the port.
	ModeNone = "none"
	// ModeKubernetes asks the API server about each caller.
	ModeKubernetes = "kubernetes"
)

// Config configures the access checks.
type Config struct {
	// Mode is none (no checks: whoever reaches the port reads /metrics and
	// /members) or kubernetes (a bearer token, a TokenReview and a
	// SubjectAccessReview for the path, verb get). none is the default so
	// that an upgrade does not lock out a Prometheus set up without a token.
	Mode string
	// AllowTTL is how long an allowed answer, for one token and path, is
	// reused. It is also the longest a revoked token or a removed binding
	// keeps access. Longer costs the API server less: a scraper costs two
	// reviews per agent, token and path per AllowTTL.
	AllowTTL time.Duration
	// DenyTTL is how long a refusal (token not accepted, or no RBAC for the
	// path) is reused: how long a fixed binding takes to show, and how
	// often a misconfigured scraper costs each agent a review or two.
	DenyTTL time.Duration
	// CacheSize is the most answers kept (a few hundred bytes each); past
	// it, the least recently used goes. It bounds the memory an attacker
	// sending made-up tokens can take.
	CacheSize int
}

// DefaultConfig checks nothing; with --http-auth=kubernetes, an allowed
// answer lasts 5 minutes and a refusal 1 minute.
func DefaultConfig() Config {
	return Config{Mode: ModeNone, AllowTTL: 5 * time.Minute, DenyTTL: time.Minute, CacheSize: 1024}
}

// RegisterFlags binds the --http-auth flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Mode, "http-auth", c.Mode, "access to /metrics and /members: none, or kubernetes (bearer token checked by TokenReview and SubjectAccessReview; /healthz and /readyz stay open)")
	fs.DurationVar(&c.AllowTTL, "http-auth-allow-ttl", c.AllowTTL, "how long an allowed answer for one token and path is reused (the longest a revoked token keeps access)")
	fs.DurationVar(&c.DenyTTL, "http-auth-deny-ttl", c.DenyTTL, "how long a refused token or path is reused (how long a fixed RBAC binding takes to show)")
	fs.IntVar(&c.CacheSize, "http-auth-cache-size", c.CacheSize, "most access answers cached")
}

// Validate names the flag and the bound.
func (c Config) Validate() error {
	switch {
	case c.Mode != ModeNone && c.Mode != ModeKubernetes:
		return fmt.Errorf("httpauth: --http-auth (%q) must be none or kubernetes", c.Mode)
	case c.AllowTTL < time.Second || c.AllowTTL > time.Hour:
		return fmt.Errorf("httpauth: --http-auth-allow-ttl (%s) must be between 1s and 1h0m0s", c.AllowTTL)
	case c.DenyTTL < time.Second || c.DenyTTL > time.Hour:
		return fmt.Errorf("httpauth: --http-auth-deny-ttl (%s) must be between 1s and 1h0m0s", c.DenyTTL)
	case c.CacheSize < 16 || c.CacheSize > 1_000_000:
		return fmt.Errorf("httpauth: --http-auth-cache-size (%d) must be between 16 and 1000000", c.CacheSize)
	}
	return nil
}

// Results of a request, the label values of haagent_http_auth_total.
const (
	resultAllowed         = "allowed"
	resultDenied          = "denied"
	resultUnauthenticated = "unauthenticated"
	resultError           = "error"
)

// reviewTimeout bounds the reviews of one token and path. They run apart
// from the request that started them, which other requests may be waiting
// on (see Filter.decide).
const reviewTimeout = 10 * time.Second

// Filter checks callers before the handlers it wraps.
type Filter struct {
	cfg    Config
	client kubernetes.Interface
	clock  clock.PassiveClock
	log    *zap.Logger
	// cache maps a key (see cacheKey) to an answer.
	cache *lru.Cache
	// group runs one review of a key at a time: the scrapes of several
	// Prometheus servers that share a token cost one.
	group   singleflight.Group
	results *prometheus.CounterVec
	reviews *prometheus.CounterVec
}

// answer is a cached verdict about one token and path.
type answer struct {
	result  string // resultAllowed, resultDenied or resultUnauthenticated
	user    string // the user the token names, if accepted
	expires time.Time
}

// Deps are what a Filter needs.
type Deps struct {
	// Client is needed with --http-auth=kubernetes; its identity must be
	// allowed to create tokenreviews and subjectaccessreviews.
	Client kubernetes.Interface
	// Clock expires cached answers; nil is the real clock.
	Clock      clock.PassiveClock
	Logger     *zap.Logger
	Registerer prometheus.Registerer
}

// New builds a Filter.
func New(cfg Config, deps Deps) (*Filter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	client, clk, log, reg := deps.Client, deps.Clock, deps.Logger, deps.Registerer
	if cfg.Mode == ModeKubernetes && client == nil {
		return nil, errors.New("httpauth: --http-auth=kubernetes needs the Kubernetes API: set --kubeconfig or run in a pod")
	}
	if clk == nil {
		clk = clock.RealClock{}
	}
	f := &Filter{
		cfg: cfg, client: client, clock: clk, log: log.Named("httpauth"),
		cache: lru.New(cfg.CacheSize),
		results: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "haagent", Subsystem: "http_auth", Name: "total",
			Help: "Requests to /metrics and /members checked with --http-auth=kubernetes, by result: allowed, denied (no RBAC for the path), unauthenticated (no token, or one the API server did not accept) or error (the API server did not answer; 503).",
		}, []string{"result"}),
		reviews: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "haagent", Subsystem: "http_auth", Name: "reviews_total",
			Help: "Reviews sent to the API server to check callers, by kind: token (TokenReview) or access (SubjectAccessReview). Cached answers cost none.",
		}, []string{"review"}),
	}
	if cfg.Mode == ModeKubernetes {
		// Present from the start, at 0: a rate over them needs the series.
		for _, r := range []string{resultAllowed, resultDenied, resultUnauthenticated, resultError} {
			f.results.WithLabelValues(r)
		}
		f.reviews.WithLabelValues("token")
		f.reviews.WithLabelValues("access")
	}
	for _, c := range []prometheus.Collector{f.results, f.reviews} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// Wrap returns h behind the checks; with --http-auth=none, h itself.
func (f *Filter) Wrap(h http.Handler) http.Handler {
	if f == nil || f.cfg.Mode == ModeNone {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := bearerToken(r.Header.Get("Authorization"))
		if !ok {
			f.results.WithLabelValues(resultUnauthenticated).Inc()
			unauthorized(w, "no bearer token (header Authorization: Bearer <token>)")
			return
		}
		a, err := f.decide(r.Context(), token, r.URL.Path)
		if err != nil {
			f.results.WithLabelValues(resultError).Inc()
			http.Error(w, "Service Unavailable: the API server could not check the credentials; retry later\n", http.StatusServiceUnavailable)
			return
		}
		f.results.WithLabelValues(a.result).Inc()
		switch a.result {
		case resultAllowed:
			h.ServeHTTP(w, r)
		case resultUnauthenticated:
			unauthorized(w, "the API server did not accept the token")
		default:
			http.Error(w, fmt.Sprintf("Forbidden: user %q may not get %s (grant it with a ClusterRole with nonResourceURLs [%q], verbs [get])\n", a.user, r.URL.Path, r.URL.Path), http.StatusForbidden)
		}
	})
}

func unauthorized(w http.ResponseWriter, why string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="haagent"`)
	http.Error(w, "Unauthorized: "+why+"\n", http.StatusUnauthorized)
}

// bearerToken reads the token of an Authorization header; the scheme is
// case-insensitive (RFC 9110).
func bearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// cacheKey names a token and a path without keeping the token.
func cacheKey(token, path string) [sha256.Size]byte {
	return sha256.Sum256([]byte(token + "\x00" + path))
}

// decide returns the answer about token and path, from the cache or from
// new reviews. Errors are not cached: the next request asks again.
func (f *Filter) decide(ctx context.Context, token, path string) (answer, error) {
	key := cacheKey(token, path)
	if a, ok := f.cached(key); ok {
		return a, nil
	}
	// The reviews do not end with the request that started them: other
	// requests for the same key may wait on them.
	v, err, _ := f.group.Do(string(key[:]), func() (any, error) {
		if a, ok := f.cached(key); ok {
			return a, nil
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), reviewTimeout)
		defer cancel()
		a, err := f.review(rctx, token, path)
		if err != nil {
			f.log.Warn("access review failed", zap.String("path", path), zap.Error(err))
			return answer{}, err
		}
		if a.result != resultAllowed {
			f.log.Debug("access refused", zap.String("path", path), zap.String("user", a.user), zap.String("result", a.result))
		}
		f.cache.Add(key, a)
		return a, nil
	})
	if err != nil {
		return answer{}, err
	}
	return v.(answer), nil
}

func (f *Filter) cached(key [sha256.Size]byte) (answer, bool) {
	v, ok := f.cache.Get(key)
	if !ok {
		return answer{}, false
	}
	a := v.(answer)
	if !f.clock.Now().Before(a.expires) {
		f.cache.Remove(key)
		return answer{}, false
	}
	return a, true
}

// review asks the API server who the token is, then whether that user may
// get path.
func (f *Filter) review(ctx context.Context, token, path string) (answer, error) {
	f.reviews.WithLabelValues("token").Inc()
	tr, err := f.client.AuthenticationV1().TokenReviews().Create(ctx,
		&authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
	if err != nil {
		return answer{}, fmt.Errorf("token review: %w", err)
	}
	if !tr.Status.Authenticated {
		return answer{result: resultUnauthenticated, expires: f.clock.Now().Add(f.cfg.DenyTTL)}, nil
	}
	u := tr.Status.User
	extra := make(map[string]authzv1.ExtraValue, len(u.Extra))
	for k, v := range u.Extra {
		extra[k] = authzv1.ExtraValue(v)
	}
	f.reviews.WithLabelValues("access").Inc()
	sar, err := f.client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authzv1.SubjectAccessReview{
		Spec: authzv1.SubjectAccessReviewSpec{
			User: u.Username, UID: u.UID, Groups: u.Groups, Extra: extra,
			NonResourceAttributes: &authzv1.NonResourceAttributes{Path: path, Verb: "get"},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return answer{}, fmt.Errorf("subject access review: %w", err)
	}
	if sar.Status.Allowed && !sar.Status.Denied {
		return answer{result: resultAllowed, user: u.Username, expires: f.clock.Now().Add(f.cfg.AllowTTL)}, nil
	}
	return answer{result: resultDenied, user: u.Username, expires: f.clock.Now().Add(f.cfg.DenyTTL)}, nil
}
