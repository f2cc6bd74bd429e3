package cluster

import (
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

func TestScaleRuleDurations(t *testing.T) {
	in := []byte(`groups:
  - name: g
    rules:
      - alert: Long
        expr: up == 0
        for: 5m
        keep_firing_for: 1m
      - alert: Short
        expr: up == 0
        for: 10s
      - alert: Zero
        expr: up == 0
        for: 0s
      - alert: None
        expr: up == 0
      - record: job:up:sum
        expr: sum(up)
`)
	out, err := ScaleRuleDurations(in, 20)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Groups []struct {
			Rules []map[string]string `json:"rules"`
		} `json:"groups"`
	}
	if err := yaml.Unmarshal(out, &doc); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range doc.Groups[0].Rules {
		name := r["alert"] + r["record"]
		got[name+".for"] = r["for"]
		got[name+".keep"] = r["keep_firing_for"]
		if r["expr"] == "" {
			t.Errorf("%s lost its expr", name)
		}
	}
	want := map[string]string{
		"Long.for": "15s", "Long.keep": "3s",
		"Short.for": "1s", "Short.keep": "",
		"Zero.for": "0s", "Zero.keep": "",
		"None.for": "", "None.keep": "",
		"job:up:sum.for": "", "job:up:sum.keep": "",
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s = %q, want %q", k, got[k], w)
		}
	}
}

func TestScaleRuleDurations_badInput(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		div      int
		want     string
	}{
		{name: "divisor", in: "groups: []", div: 0, want: "divisor (0) must be at least 1"},
		{name: "no groups", in: "groups: []", div: 2, want: "rule file has no groups"},
		{name: "bad for", in: "groups: [{name: g, rules: [{alert: A, expr: up, for: soon}]}]", div: 2, want: `rule A: for "soon"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ScaleRuleDurations([]byte(tc.in), tc.div)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestAlertKey(t *testing.T) {
	a := Alert{Labels: map[string]string{"alertname": "X", "node": "n1", "severity": "warning"}}
	if got, want := a.Key(), `X{node="n1",severity="warning"}`; got != want {
		t.Fatalf("Key() = %s, want %s", got, want)
	}
}
