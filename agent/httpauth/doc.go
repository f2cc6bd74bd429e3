// Package httpauth guards the agent's HTTP endpoints that show what the
// agent knows (/metrics, /members) the way Kubernetes components and
// kube-rbac-proxy do: the caller's bearer token is checked with a
// TokenReview, then the user it names is checked with a SubjectAccessReview
// for the request path (a non-resource URL) and verb get. Prometheus is then
// granted access by RBAC, with a ClusterRole holding nonResourceURLs.
//
// A Filter is built by New and has no goroutines of its own: it works in the
// request that calls it. It keeps the answers in a bounded cache keyed by a
// SHA-256 of the token and the path, for a TTL per kind of answer, so that a
// scraper costs the API server two requests per token and path per TTL, not
// two per scrape. The token itself is never stored, logged or counted.
// Errors of the API server fail the request (503), never the agent.
package httpauth
