package api

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/haagent/haagent/agent/gossip"
)

// Config configures the HTTP server.
type Config struct {
	// Addr is the listen address, host:port. The default listens on every
	// interface so Prometheus can scrape it; bind it to 127.0.0.1 where
	// the metrics should stay on the node.
	Addr string
}

// DefaultConfig listens on port 9750.
func DefaultConfig() Config { return Config{Addr: ":9750"} }

// RegisterFlags binds --http-addr.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Addr, "http-addr", c.Addr, "listen address of /metrics, /healthz, /readyz and /members")
}

// Validate names the flag and the bound.
func (c Config) Validate() error {
	_, port, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return fmt.Errorf("api: --http-addr (%q) must be host:port: %v", c.Addr, err)
	}
	var p int
	if _, err := fmt.Sscanf(port, "%d", &p); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("api: --http-addr (%q) port must be between 0 and 65535", c.Addr)
	}
	return nil
}

// Membership is what the server reads from gossip.
type Membership interface {
	LocalName() string
	Members() []gossip.Member
	Running() bool
	Ready() bool
	Quorum() gossip.QuorumView
}

// MembersResponse is the JSON of /members.
type MembersResponse struct {
	// Self is the name of the agent that answered.
	Self string `json:"self"`
	// Time is when the table was read, by the agent's clock.
	Time time.Time `json:"time"`
	// Quorum is the agent's view of its group: the expected size, how
	// many it holds alive, how many it heard from within the isolation
	// timeout.
	Quorum  gossip.QuorumView `json:"quorum"`
	Members []gossip.Member   `json:"members"`
}

// Server is the agent's HTTP server.
type Server struct {
	cfg     Config
	log     *zap.Logger
	gather  prometheus.Gatherer
	members Membership
	srv     *http.Server
	ln      net.Listener
}

// Guard wraps the handlers of /metrics and /members, which show what the
// agent knows, in access checks (see package httpauth). /healthz and
// /readyz stay open: the kubelet probes them without credentials.
type Guard func(http.Handler) http.Handler

// Deps are what a Server needs.
type Deps struct {
	Logger *zap.Logger
	// Gatherer serves /metrics.
	Gatherer prometheus.Gatherer
	// Members serves /members and the readiness of /readyz.
	Members Membership
	// Guard wraps /metrics and /members; nil leaves every path open.
	Guard Guard
}

// New builds the server; it does not listen yet.
func New(cfg Config, deps Deps) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Logger == nil || deps.Gatherer == nil || deps.Members == nil {
		return nil, errors.New("api: New needs a Logger, a Gatherer and Members")
	}
	log, gather, members, guard := deps.Logger, deps.Gatherer, deps.Members, deps.Guard
	if guard == nil {
		guard = func(h http.Handler) http.Handler { return h }
	}
	s := &Server{cfg: cfg, log: log.Named("api"), gather: gather, members: members}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", guard(promhttp.HandlerFor(gather, promhttp.HandlerOpts{ErrorLog: zap.NewStdLog(s.log)})))
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /members", guard(http.HandlerFunc(s.membersJSON)))
	s.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       60 * time.Second,
	}
	return s, nil
}

// Listen opens the listener, so the caller learns about a taken port at
// start and, with port 0, which port was chosen.
func (s *Server) Listen() (net.Addr, error) {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("api: --http-addr (%q): %w", s.cfg.Addr, err)
	}
	s.ln = ln
	return ln.Addr(), nil
}

// Run serves until ctx ends, then drains connections for up to 5 s.
func (s *Server) Run(ctx context.Context) error {
	if s.ln == nil {
		if _, err := s.Listen(); err != nil {
			return err
		}
	}
	s.log.Info("serving HTTP", zap.String("addr", s.ln.Addr().String()))
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("api: serve: %w", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.srv.Shutdown(shutdown)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	if !s.members.Running() {
		http.Error(w, "gossip is not running\n", http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ok")
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	if !s.members.Ready() {
		http.Error(w, "gossip has not made its first join attempt\n", http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ok")
}

func (s *Server) membersJSON(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(MembersResponse{Self: s.members.LocalName(), Time: time.Now(), Quorum: s.members.Quorum(), Members: s.members.Members()}); err != nil {
		s.log.Debug("write /members", zap.Error(err))
	}
}
