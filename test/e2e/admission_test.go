package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/haagent/haagent/agent/api"
	"github.com/haagent/haagent/agent/probe"
	"github.com/haagent/haagent/test/cluster"
)

// TestAdmission_rogueMembersAreRefused starts two haagent processes that
// hold the cluster's gossip settings but are not what they claim: one
// named after no Node, one named after node-2 at another address. The
// agents must never take either for a member, and must count the refusals.
func TestAdmission_rogueMembersAreRefused(t *testing.T) {
	tc := startCluster(t, clusterOptions{nodes: 3, agent: failoverAgents})
	names := nodeNames(tc.nodes)
	ctx := context.Background()
	waitMembers(t, tc.nodes, time.Minute, "every agent sees 3 alive and ready members", allAliveAndReady(names))
	// Admission reads the roster the coordinator publishes; before the
	// first one (a new cluster's first seconds) every peer is admitted.
	eventually(t, time.Minute, "every agent has read the roster", func(ctx context.Context) (bool, error) {
		for _, n := range tc.nodes {
			m, err := n.Agent().Metrics(ctx)
			if err != nil {
				return false, err
			}
			if v, _ := m.Value("haagent_roster_nodes"); v < 3 {
				return false, nil
			}
		}
		return true, nil
	})

	addrs := cluster.NewNodeAddresses()
	seed := tc.nodes[0].Agent().GossipAddr()
	for _, name := range []string{"rogue", "node-2"} {
		addr, err := addrs.Next()
		if err != nil {
			t.Fatal(err)
		}
		cfg := cluster.DefaultAgentConfig(haagentBinary(t))
		cfg.NodeName, cfg.IP, cfg.Join, cfg.Dir = name, addr.IP, []string{seed}, t.TempDir()
		cfg.Checks = []probe.Check{}
		cfg.Namespace = "" // no API: it only gossips
		a, err := cluster.NewAgent(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("----- rogue %s at %s -----\n%s", name, addr.IP, a.LogTail(30))
			}
			_ = a.Close()
		})
	}
	eventually(t, time.Minute, "both refusals counted", func(ctx context.Context) (bool, error) {
		var unknown, mismatch float64
		for _, n := range tc.nodes {
			m, err := n.Agent().Metrics(ctx)
			if err != nil {
				return false, err
			}
			u, _ := m.Value("haagent_gossip_admission_refusals_total", "reason", "unknown_node")
			mm, _ := m.Value("haagent_gossip_admission_refusals_total", "reason", "address_mismatch")
			unknown, mismatch = unknown+u, mismatch+mm
		}
		return unknown > 0 && mismatch > 0, nil
	})
	time.Sleep(5 * time.Second)
	want := map[string]string{}
	for _, n := range tc.nodes {
		want[n.Name()] = n.Agent().GossipAddr()
	}
	waitMembers(t, tc.nodes, 10*time.Second, "only the three real nodes, at their own addresses", func(resp *api.MembersResponse) error {
		if len(resp.Members) != 3 {
			return fmt.Errorf("%d members: %+v", len(resp.Members), resp.Members)
		}
		for _, m := range resp.Members {
			if want[m.Name] != m.Addr || m.State.String() != "alive" {
				return fmt.Errorf("member %s at %s is %s, want %s alive", m.Name, m.Addr, m.State, want[m.Name])
			}
		}
		return nil
	})
	_ = ctx
}
