package e2e

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haagent/haagent/test/cluster"
)

// TestKeyring_rotationWithoutRestart rotates the gossip key of five
// running agents through their keyring files, as a mounted Secret would
// change: the new key added, made primary, the old one removed. No agent
// restarts, and no member is ever seen other than alive.
func TestKeyring_rotationWithoutRestart(t *testing.T) {
	dir := t.TempDir()
	keyA := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	keyB := base64.StdEncoding.EncodeToString([]byte("fedcba9876543210fedcba9876543210"))
	ring := func(i int) string { return filepath.Join(dir, fmt.Sprintf("keys-%d", i)) }
	write := func(i int, keys ...string) {
		t.Helper()
		if err := os.WriteFile(ring(i), []byte(strings.Join(keys, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	const nodes = 5
	for i := range nodes {
		write(i, keyA)
	}
	tc := startCluster(t, clusterOptions{nodes: nodes, agent: func(i int, c *cluster.AgentConfig) {
		c.ExtraArgs = append(c.ExtraArgs, "--keyring-file="+ring(i), "--cluster-label=e2e")
	}})
	names := nodeNames(tc.nodes)
	waitMembers(t, tc.nodes, time.Minute, "5 alive and ready members, encrypted", allAliveAndReady(names))

	// Watch every agent's view all along the rotation.
	ctx, stop := context.WithCancel(context.Background())
	seen := make(chan string, 100)
	go func() {
		defer close(seen)
		for ctx.Err() == nil {
			for _, n := range tc.nodes {
				c, cancel := context.WithTimeout(ctx, 2*time.Second)
				resp, err := n.Agent().Members(c)
				cancel()
				if err != nil {
					continue
				}
				for _, m := range resp.Members {
					if m.State.String() != "alive" {
						seen <- fmt.Sprintf("%s saw %s %s", n.Name(), m.Name, m.State)
					}
				}
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()

	step := func(what string, want float64, keys ...string) {
		t.Helper()
		for i := range nodes {
			write(i, keys...)
		}
		eventually(t, time.Minute, what+" on every agent", func(ctx context.Context) (bool, error) {
			for _, n := range tc.nodes {
				m, err := n.Agent().Metrics(ctx)
				if err != nil {
					return false, err
				}
				if v, _ := m.Value("haagent_gossip_keyring_reloads_total", "result", "changed"); v < want {
					return false, nil
				}
			}
			return true, nil
		})
		time.Sleep(3 * time.Second) // gossip with the new keys for a while
	}
	step("the new key installed", 1, keyA, keyB)
	step("the new key primary", 2, keyB, keyA)
	step("the old key removed", 3, keyB)
	stop()
	for s := range seen {
		t.Errorf("during the rotation: %s", s)
	}
	waitMembers(t, tc.nodes, 10*time.Second, "5 alive and ready members after the rotation", allAliveAndReady(names))
}
