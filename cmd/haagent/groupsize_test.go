package main

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

func TestCountNodes(t *testing.T) {
	node := func(name string) *corev1.Node { return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}} }
	ptr := func(n int64) *int64 { return &n }
	cases := []struct {
		name    string
		objects []runtime.Object
		// list, when set, answers the list as the API server would.
		list    *corev1.NodeList
		listErr error
		want    int
		wantErr string
	}{
		{name: "the fake lists all", objects: []runtime.Object{node("a"), node("b"), node("c")}, want: 3},
		{name: "one item and the rest counted", list: &corev1.NodeList{Items: []corev1.Node{*node("a")},
			ListMeta: metav1.ListMeta{Continue: "x", RemainingItemCount: ptr(4999)}}, want: 5000},
		{name: "more but not counted", list: &corev1.NodeList{Items: []corev1.Node{*node("a")}, ListMeta: metav1.ListMeta{Continue: "x"}},
			wantErr: "count Nodes: the API server did not say how many Nodes remain"},
		{name: "none", wantErr: "count Nodes: the API server lists none"},
		{name: "API error", listErr: errors.New("connection refused"), wantErr: "count Nodes: connection refused"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			client := fake.NewClientset(tc.objects...)
			var limit int64
			client.PrependReactor("list", "nodes", func(a k8stesting.Action) (bool, runtime.Object, error) {
				limit = a.(k8stesting.ListActionImpl).ListOptions.Limit
				if tc.listErr != nil {
					return true, nil, tc.listErr
				}
				if tc.list != nil {
					return true, tc.list, nil
				}
				return false, nil, nil
			})
			n, err := countNodes(context.Background(), client)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tc.wantErr || n != tc.want {
				t.Errorf("countNodes() = %d, %q; want %d, %q", n, got, tc.want, tc.wantErr)
			}
			if limit != 1 {
				t.Errorf("listed with limit %d, want 1", limit)
			}
		})
	}
}

func TestGroupSize(t *testing.T) {
	counted := func(n int, err error) <-chan nodeCount {
		c := make(chan nodeCount, 1)
		c <- nodeCount{n, err}
		return c
	}
	cases := []struct {
		name       string
		flag       int
		roster     []string
		nodes      <-chan nodeCount
		want       int
		wantSource string
		wantWhy    string
	}{
		{"the flag wins", 7, []string{"a", "b"}, counted(3, nil), 7, sizeFromFlag, ""},
		{"the roster", 0, []string{"a", "b"}, counted(3, nil), 2, sizeFromRoster, ""},
		{"no roster: the Nodes", 0, nil, counted(3, nil), 3, sizeFromNodes, ""},
		{"no roster, no count", 0, nil, counted(0, errors.New("count Nodes: timeout")), 0, sizeFromUnknown, "no roster and count Nodes: timeout"},
		{"no API", 0, nil, nil, 0, sizeFromUnknown, "no Kubernetes API and no --expected-members"},
		{"no API, the flag", 1200, nil, nil, 1200, sizeFromFlag, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n, source, why := groupSize(tc.flag, tc.roster, tc.nodes)
			if n != tc.want || source != tc.wantSource || why != tc.wantWhy {
				t.Errorf("groupSize() = %d, %q, %q; want %d, %q, %q", n, source, why, tc.want, tc.wantSource, tc.wantWhy)
			}
		})
	}
}

func TestLogTimings(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	o := defaultRunOptions()
	o.gossip.ExpectedMembers = 20
	logTimings(zap.New(core), o.gossip, sizeFromRoster, "")
	o.gossip.ExpectedMembers = 0
	logTimings(zap.New(core), o.gossip, sizeFromUnknown, "no Kubernetes API and no --expected-members")
	all := logs.All()
	if len(all) != 2 {
		t.Fatalf("%d log lines, want 2", len(all))
	}
	first, second := all[0].ContextMap(), all[1].ContextMap()
	if all[0].Message != "gossip timings" || first["band"] != "up_to_1000" || first["probe_interval"] != 200*time.Millisecond || first["size_from"] != "roster" {
		t.Errorf("first line %q %v", all[0].Message, first)
	}
	if all[1].Level != zap.WarnLevel || second["band"] != "above_2500" || second["probe_interval"] != 500*time.Millisecond || second["reason"] == nil {
		t.Errorf("second line %s %q %v", all[1].Level, all[1].Message, second)
	}
}

// TestParseRunOptions_fenceBoundAuto: with the auto profile the fence
// bound is checked against the largest band's isolation timeout, whatever
// this agent's group size: the cut-off node may have chosen another band.
func TestParseRunOptions_fenceBoundAuto(t *testing.T) {
	// An apiserver check as fast as the harness's (3 s), so that the
	// isolation timeout is the larger term.
	checks := writeFile(t, "checks:\n- name: apiserver\n  apiServer: {path: /readyz}\n  periodSeconds: 2\n  timeoutSeconds: 1\n  failureThreshold: 3\n")
	_, err := parseRunOptions([]string{"--node-name=n", "--config=" + checks, "--expected-members=20", "--fence-bound=17s"}, env(nil), io.Discard)
	want := "coordinator: --fence-bound (17s) must be 0 (never) or at least 19s: max(--isolation-timeout (5s), apiserver check period + timeout (3s)) + --fence-after (10s) + 2 x fence check interval (1s) + fence action (0s) + margin (2s)"
	if err == nil || err.Error() != want {
		t.Errorf("err = %v,\nwant %s", err, want)
	}
	for _, args := range [][]string{
		{"--fence-bound=19s"},
		{"--fence-bound=17s", "--gossip-profile=fast"},
		{"--fence-bound=17s", "--isolation-timeout=2s"},
	} {
		o, err := parseRunOptions(append([]string{"--node-name=n", "--config=" + checks}, args...), env(nil), io.Discard)
		if err != nil {
			t.Errorf("%s: %v", strings.Join(args, " "), err)
			continue
		}
		if o.fenceTerms().MinBound() > o.coordinator.FenceBound {
			t.Errorf("%s: MinBound %s above the bound", strings.Join(args, " "), o.fenceTerms().MinBound())
		}
	}
}
