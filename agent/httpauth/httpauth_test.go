package httpauth

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	testclock "k8s.io/utils/clock/testing"
)

func TestConfig_Validate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		adjust func(*Config)
		want   string
	}{
		{"defaults", func(*Config) {}, ""},
		{"kubernetes", func(c *Config) { c.Mode = ModeKubernetes }, ""},
		{"unknownMode", func(c *Config) { c.Mode = "basic" }, `httpauth: --http-auth ("basic") must be none or kubernetes`},
		{"allowTTLShort", func(c *Config) { c.AllowTTL = 500 * time.Millisecond }, "httpauth: --http-auth-allow-ttl (500ms) must be between 1s and 1h0m0s"},
		{"allowTTLLong", func(c *Config) { c.AllowTTL = 2 * time.Hour }, "httpauth: --http-auth-allow-ttl (2h0m0s) must be between 1s and 1h0m0s"},
		{"denyTTLZero", func(c *Config) { c.DenyTTL = 0 }, "httpauth: --http-auth-deny-ttl (0s) must be between 1s and 1h0m0s"},
		{"cacheSmall", func(c *Config) { c.CacheSize = 15 }, "httpauth: --http-auth-cache-size (15) must be between 16 and 1000000"},
		{"cacheLarge", func(c *Config) { c.CacheSize = 1_000_001 }, "httpauth: --http-auth-cache-size (1000001) must be between 16 and 1000000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.adjust(&c)
			err := c.Validate()
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Errorf("Validate() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestNew_kubernetesNeedsClient(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Mode = ModeKubernetes
	_, err := New(cfg, Deps{Logger: zap.NewNop(), Registerer: prometheus.NewRegistry()})
	want := "httpauth: --http-auth=kubernetes needs the Kubernetes API: set --kubeconfig or run in a pod"
	if err == nil || err.Error() != want {
		t.Fatalf("New = %v, want %q", err, want)
	}
}

// apiServer stands in for the API server's reviews: tokens maps a token to
// its user (absent: not accepted); allowed lists "user path" pairs.
type apiServer struct {
	mu       sync.Mutex
	tokens   map[string]authnv1.UserInfo
	allowed  map[string]bool
	tokenErr error
	sarErr   error
	// sars are the access reviews received.
	sars []authzv1.SubjectAccessReviewSpec
}

func (s *apiServer) client() *fake.Clientset {
	c := fake.NewClientset()
	c.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.tokenErr != nil {
			return true, nil, s.tokenErr
		}
		tr := a.(k8stesting.CreateAction).GetObject().(*authnv1.TokenReview).DeepCopy()
		if u, ok := s.tokens[tr.Spec.Token]; ok {
			tr.Status = authnv1.TokenReviewStatus{Authenticated: true, User: u}
		} else {
			tr.Status = authnv1.TokenReviewStatus{Error: "invalid bearer token"}
		}
		return true, tr, nil
	})
	c.PrependReactor("create", "subjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.sarErr != nil {
			return true, nil, s.sarErr
		}
		sar := a.(k8stesting.CreateAction).GetObject().(*authzv1.SubjectAccessReview).DeepCopy()
		s.sars = append(s.sars, sar.Spec)
		if na := sar.Spec.NonResourceAttributes; na != nil && na.Verb == "get" && s.allowed[sar.Spec.User+" "+na.Path] {
			sar.Status.Allowed = true
		} else {
			sar.Status.Reason = "no RBAC policy matched"
		}
		return true, sar, nil
	})
	return c
}

type fixture struct {
	api     *apiServer
	clock   *testclock.FakePassiveClock
	filter  *Filter
	handler http.Handler
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	api := &apiServer{
		tokens: map[string]authnv1.UserInfo{
			"prom-token":   {Username: "system:serviceaccount:monitoring:prometheus", UID: "u1", Groups: []string{"system:serviceaccounts"}, Extra: map[string]authnv1.ExtraValue{"k": {"v"}}},
			"nobody-token": {Username: "system:serviceaccount:default:nobody"},
		},
		allowed: map[string]bool{
			"system:serviceaccount:monitoring:prometheus /metrics": true,
		},
	}
	clk := testclock.NewFakePassiveClock(time.Unix(1_000_000, 0))
	cfg := DefaultConfig()
	cfg.Mode = ModeKubernetes
	f, err := New(cfg, Deps{Client: api.client(), Clock: clk, Logger: zap.NewNop(), Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("payload")) })
	return &fixture{api: api, clock: clk, filter: f, handler: f.Wrap(inner)}
}

// get serves GET path with the Authorization header auth ("" for none).
func (fx *fixture) get(path, auth string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	fx.handler.ServeHTTP(rec, req)
	return rec
}

func (fx *fixture) results(result string) float64 {
	return testutil.ToFloat64(fx.filter.results.WithLabelValues(result))
}

func (fx *fixture) reviews(kind string) float64 {
	return testutil.ToFloat64(fx.filter.reviews.WithLabelValues(kind))
}

func TestFilter_answers(t *testing.T) {
	for _, tc := range []struct {
		name         string
		path, auth   string
		tokenErr     error
		sarErr       error
		code         int
		body         string
		result       string
		tokenReviews float64
		sars         float64
	}{
		{name: "noHeader", path: "/metrics", code: 401, body: "Unauthorized: no bearer token", result: "unauthenticated"},
		{name: "basicScheme", path: "/metrics", auth: "Basic dXNlcjpwYXNz", code: 401, body: "Unauthorized: no bearer token", result: "unauthenticated"},
		{name: "emptyBearer", path: "/metrics", auth: "Bearer ", code: 401, body: "Unauthorized: no bearer token", result: "unauthenticated"},
		{name: "unknownToken", path: "/metrics", auth: "Bearer made-up", code: 401, body: "Unauthorized: the API server did not accept the token", result: "unauthenticated", tokenReviews: 1},
		{name: "noRBAC", path: "/metrics", auth: "Bearer nobody-token", code: 403,
			body: `Forbidden: user "system:serviceaccount:default:nobody" may not get /metrics`, result: "denied", tokenReviews: 1, sars: 1},
		{name: "otherPath", path: "/members", auth: "Bearer prom-token", code: 403,
			body: `Forbidden: user "system:serviceaccount:monitoring:prometheus" may not get /members`, result: "denied", tokenReviews: 1, sars: 1},
		{name: "allowed", path: "/metrics", auth: "Bearer prom-token", code: 200, body: "payload", result: "allowed", tokenReviews: 1, sars: 1},
		{name: "schemeCaseInsensitive", path: "/metrics", auth: "bearer prom-token", code: 200, body: "payload", result: "allowed", tokenReviews: 1, sars: 1},
		{name: "tokenReviewFails", path: "/metrics", auth: "Bearer prom-token", tokenErr: errors.New("connection refused"), code: 503,
			body: "Service Unavailable: the API server could not check the credentials", result: "error", tokenReviews: 1},
		{name: "accessReviewFails", path: "/metrics", auth: "Bearer prom-token", sarErr: errors.New("etcd timeout"), code: 503,
			body: "Service Unavailable: the API server could not check the credentials", result: "error", tokenReviews: 1, sars: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFixture(t)
			fx.api.tokenErr, fx.api.sarErr = tc.tokenErr, tc.sarErr
			rec := fx.get(tc.path, tc.auth)
			if rec.Code != tc.code || !strings.HasPrefix(rec.Body.String(), tc.body) {
				t.Errorf("GET %s: %d %q, want %d %q...", tc.path, rec.Code, rec.Body.String(), tc.code, tc.body)
			}
			if got := rec.Header().Get("WWW-Authenticate"); (tc.code == 401) != (got != "") {
				t.Errorf("WWW-Authenticate = %q with status %d", got, tc.code)
			}
			for _, r := range []string{"allowed", "denied", "unauthenticated", "error"} {
				want := 0.0
				if r == tc.result {
					want = 1
				}
				if got := fx.results(r); got != want {
					t.Errorf("haagent_http_auth_total{result=%q} = %g, want %g", r, got, want)
				}
			}
			if got := fx.reviews("token"); got != tc.tokenReviews {
				t.Errorf("token reviews = %g, want %g", got, tc.tokenReviews)
			}
			if got := fx.reviews("access"); got != tc.sars {
				t.Errorf("access reviews = %g, want %g", got, tc.sars)
			}
		})
	}
}

// TestFilter_accessReviewAttributes: the access review asks about the user
// the token names (groups, UID and extra included) for the request path and
// verb get, as a non-resource URL.
func TestFilter_accessReviewAttributes(t *testing.T) {
	fx := newFixture(t)
	if rec := fx.get("/metrics?x=1", "Bearer prom-token"); rec.Code != 200 {
		t.Fatalf("GET: %d %s", rec.Code, rec.Body)
	}
	if len(fx.api.sars) != 1 {
		t.Fatalf("%d access reviews, want 1", len(fx.api.sars))
	}
	s := fx.api.sars[0]
	if s.User != "system:serviceaccount:monitoring:prometheus" || s.UID != "u1" ||
		len(s.Groups) != 1 || s.Groups[0] != "system:serviceaccounts" || len(s.Extra["k"]) != 1 || s.Extra["k"][0] != "v" {
		t.Errorf("review subject = %+v", s)
	}
	if s.ResourceAttributes != nil || s.NonResourceAttributes == nil ||
		*s.NonResourceAttributes != (authzv1.NonResourceAttributes{Path: "/metrics", Verb: "get"}) {
		t.Errorf("review attributes = %+v / %+v, want non-resource /metrics get", s.ResourceAttributes, s.NonResourceAttributes)
	}
}

// TestFilter_cache: answers are reused for their TTL per token and path,
// then asked again; errors are not reused.
func TestFilter_cache(t *testing.T) {
	fx := newFixture(t)
	step := func(what, path, auth string, code int, tokenReviews, sars float64) {
		t.Helper()
		if rec := fx.get(path, auth); rec.Code != code {
			t.Errorf("%s: GET %s = %d, want %d", what, path, rec.Code, code)
		}
		if got, got2 := fx.reviews("token"), fx.reviews("access"); got != tokenReviews || got2 != sars {
			t.Errorf("%s: reviews token=%g access=%g, want %g and %g", what, got, got2, tokenReviews, sars)
		}
	}
	step("first scrape", "/metrics", "Bearer prom-token", 200, 1, 1)
	step("second scrape, cached", "/metrics", "Bearer prom-token", 200, 1, 1)
	step("other path, asked", "/members", "Bearer prom-token", 403, 2, 2)
	step("other path again, cached refusal", "/members", "Bearer prom-token", 403, 2, 2)
	step("unknown token", "/metrics", "Bearer made-up", 401, 3, 2)
	step("unknown token again, cached", "/metrics", "Bearer made-up", 401, 3, 2)

	fx.clock.SetTime(fx.clock.Now().Add(DefaultConfig().DenyTTL - time.Second))
	step("refusal still cached", "/members", "Bearer prom-token", 403, 3, 2)
	fx.clock.SetTime(fx.clock.Now().Add(time.Second))
	step("refusal expired", "/members", "Bearer prom-token", 403, 4, 3)
	step("allowed still cached", "/metrics", "Bearer prom-token", 200, 4, 3)
	fx.clock.SetTime(fx.clock.Now().Add(DefaultConfig().AllowTTL))
	step("allowed expired", "/metrics", "Bearer prom-token", 200, 5, 4)

	fx.api.tokenErr = errors.New("connection refused")
	step("error", "/metrics", "Bearer nobody-token", 503, 6, 4)
	step("error not cached", "/metrics", "Bearer nobody-token", 503, 7, 4)
	fx.api.tokenErr = nil
	step("API back", "/metrics", "Bearer nobody-token", 403, 8, 5)
	// The RBAC changes: the refusal holds until it expires.
	fx.api.mu.Lock()
	fx.api.allowed["system:serviceaccount:default:nobody /metrics"] = true
	fx.api.mu.Unlock()
	step("binding added, refusal cached", "/metrics", "Bearer nobody-token", 403, 8, 5)
	fx.clock.SetTime(fx.clock.Now().Add(DefaultConfig().DenyTTL))
	step("binding added, refusal expired", "/metrics", "Bearer nobody-token", 200, 9, 6)
}

// TestFilter_cacheKeepsNoToken: the cache is keyed by a hash, and its
// answers hold no token.
func TestFilter_cacheKeepsNoToken(t *testing.T) {
	fx := newFixture(t)
	fx.get("/metrics", "Bearer prom-token")
	v, ok := fx.filter.cache.Get(cacheKey("prom-token", "/metrics"))
	if !ok {
		t.Fatal("no cached answer under the hash of token and path")
	}
	if a := v.(answer); strings.Contains(a.user+a.result, "prom-token") {
		t.Errorf("cached answer holds the token: %+v", a)
	}
	if _, ok := fx.filter.cache.Get("prom-token"); ok {
		t.Error("cache keyed by the token itself")
	}
}

// TestFilter_concurrentScrapesShareReviews: requests with the same token
// and path that arrive together cost one pair of reviews.
func TestFilter_concurrentScrapesShareReviews(t *testing.T) {
	fx := newFixture(t)
	release := make(chan struct{})
	client := fx.api.client()
	client.PrependReactor("create", "tokenreviews", func(k8stesting.Action) (bool, runtime.Object, error) {
		<-release
		return false, nil, nil // on to the apiServer's reactor
	})
	fx.filter.client = client
	var wg sync.WaitGroup
	codes := make([]int, 20)
	for i := range codes {
		wg.Go(func() { codes[i] = fx.get("/metrics", "Bearer prom-token").Code })
	}
	// Let the requests pile up on the first review, then answer it.
	time.Sleep(100 * time.Millisecond)
	close(release)
	wg.Wait()
	for i, c := range codes {
		if c != 200 {
			t.Errorf("request %d: %d", i, c)
		}
	}
	if got := fx.reviews("token"); got != 1 {
		t.Errorf("token reviews = %g, want 1", got)
	}
}

func TestFilter_noneIsOpen(t *testing.T) {
	f, err := New(DefaultConfig(), Deps{Logger: zap.NewNop(), Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("payload")) })
	rec := httptest.NewRecorder()
	f.Wrap(inner).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != 200 || rec.Body.String() != "payload" {
		t.Errorf("GET /metrics = %d %q, want 200 payload", rec.Code, rec.Body)
	}
}
