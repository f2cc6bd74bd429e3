// Package dashboard holds the test of the Grafana dashboard the Helm chart
// ships (charts/haagent/files/grafana-dashboard.json, copied to
// deploy/monitoring/ by make manifests). The test reads the dashboard and
// the metric reference docs/metrics.md, and checks that every query of a
// panel, an annotation or a template variable parses with Prometheus' own
// PromQL parser once the Grafana variables are substituted, that it names
// only documented metrics, and that each selector filters by the
// dashboard's cluster, namespace, job and instance variables. It also
// checks the panels' titles, ids, data source and layout.
//
// The package has no code of its own besides its test; it lives in the
// tools module so that the Prometheus module stays out of the agent's
// dependencies.
package dashboard
