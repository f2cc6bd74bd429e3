package main

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/haagent/haagent/agent/api"
	"github.com/haagent/haagent/agent/httpauth"
)

// The access reviews' own client-side rate limit. A scraper costs an agent
// two reviews per --http-auth-allow-ttl, far below it; a flood of made-up
// tokens is held to it, on a client of its own, so that it never takes the
// requests a failover needs from the agent's main client.
const (
	reviewQPS   = 5
	reviewBurst = 10
)

// httpGuard builds the access checks of /metrics and /members
// (--http-auth).
func httpGuard(cfg httpauth.Config, restCfg *rest.Config, log *zap.Logger, reg prometheus.Registerer) (api.Guard, error) {
	var client kubernetes.Interface
	if cfg.Mode == httpauth.ModeKubernetes && restCfg != nil {
		c := rest.CopyConfig(restCfg)
		c.QPS, c.Burst = reviewQPS, reviewBurst
		var err error
		if client, err = kubernetes.NewForConfig(c); err != nil {
			return nil, fmt.Errorf("kubernetes client for --http-auth: %w", err)
		}
	}
	f, err := httpauth.New(cfg, httpauth.Deps{Client: client, Logger: log, Registerer: reg})
	if err != nil {
		return nil, err
	}
	if cfg.Mode == httpauth.ModeKubernetes {
		log.Info("/metrics and /members need a bearer token allowed by RBAC", zap.String("http_auth", cfg.Mode))
	}
	return f.Wrap, nil
}
