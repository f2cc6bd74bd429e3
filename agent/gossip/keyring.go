package gossip

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
	"go.uber.org/zap"

	"github.com/haagent/haagent/internal/periodic"
)

// ParseKeyring reads gossip keys, one base64-encoded AES key a line (16, 24
// or 32 bytes once decoded). Blank lines and lines starting with # are
// skipped. The first key is primary: it encrypts what this agent sends.
// The others only decrypt, so a new key can be installed everywhere first,
// made primary next and the old one removed last, with no downtime.
// name is used in messages (the file path).
func ParseKeyring(name string, data []byte) ([][]byte, error) {
	var keys [][]byte
	seen := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		key, err := base64.StdEncoding.DecodeString(text)
		if err != nil {
			return nil, fmt.Errorf("gossip: --keyring-file %s line %d: not valid base64: %v", name, line, err)
		}
		switch len(key) {
		case 16, 24, 32:
		default:
			return nil, fmt.Errorf("gossip: --keyring-file %s line %d: key is %d bytes, must be 16, 24 or 32", name, line, len(key))
		}
		if first, dup := seen[string(key)]; dup {
			return nil, fmt.Errorf("gossip: --keyring-file %s line %d: same key as line %d", name, line, first)
		}
		seen[string(key)] = line
		keys = append(keys, key)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("gossip: --keyring-file %s: %v", name, err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("gossip: --keyring-file %s has no key", name)
	}
	return keys, nil
}

// loadKeyring reads the keyring file into a memberlist keyring.
func loadKeyring(path string) (*memberlist.Keyring, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("gossip: --keyring-file: %v", err)
	}
	keys, err := ParseKeyring(path, data)
	if err != nil {
		return nil, err
	}
	kr, err := memberlist.NewKeyring(keys[1:], keys[0])
	if err != nil {
		return nil, fmt.Errorf("gossip: --keyring-file %s: %v", path, err)
	}
	return kr, nil
}

// keyringReloadInterval is how often the keyring file is read again. A
// mounted Secret changes on disk within about a minute of its update.
const keyringReloadInterval = 10 * time.Second

// reloadKeyring brings the live keyring in line with the file: new keys
// are installed, the file's first key becomes primary, keys no longer in
// the file are removed — in that order, so that every key in use stays
// accepted until the file drops it. Rotation without downtime is then: add
// the new key as a second line everywhere, move it first, remove the old
// line. A file that does not parse changes nothing.
func reloadKeyring(kr *memberlist.Keyring, path string) (changed bool, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return false, fmt.Errorf("gossip: --keyring-file: %v", err)
	}
	keys, err := ParseKeyring(path, data)
	if err != nil {
		return false, err
	}
	have := map[string]bool{}
	for _, k := range kr.GetKeys() {
		have[string(k)] = true
	}
	want := map[string]bool{}
	for _, k := range keys {
		want[string(k)] = true
		if !have[string(k)] {
			if err := kr.AddKey(k); err != nil {
				return changed, fmt.Errorf("gossip: --keyring-file %s: %v", path, err)
			}
			changed = true
		}
	}
	if !bytes.Equal(kr.GetPrimaryKey(), keys[0]) {
		if err := kr.UseKey(keys[0]); err != nil {
			return changed, fmt.Errorf("gossip: --keyring-file %s: %v", path, err)
		}
		changed = true
	}
	for _, k := range kr.GetKeys() {
		if !want[string(k)] {
			if err := kr.RemoveKey(k); err != nil {
				return changed, fmt.Errorf("gossip: --keyring-file %s: %v", path, err)
			}
			changed = true
		}
	}
	return changed, nil
}

// watchKeyring applies changes of the keyring file (a mounted Secret) to
// the live keyring, without a restart.
func (m *Membership) watchKeyring(ctx context.Context) {
	err := periodic.Every(ctx, m.clock, m.keyringReload, keyringJitter, func(context.Context) {
		changed, err := reloadKeyring(m.keyring, m.cfg.KeyringFile)
		m.metrics.keyringOK.Set(boolGauge(err == nil))
		switch {
		case err != nil:
			m.metrics.keyringReloads.WithLabelValues("failure").Inc()
			m.log.Error("reload keyring; keeping the keys in use", zap.Error(err))
		case changed:
			m.metrics.keyringReloads.WithLabelValues("changed").Inc()
			m.log.Info("keyring reloaded", zap.Int("keys", len(m.keyring.GetKeys())))
		}
	})
	if err != nil {
		m.log.Error("keyring file not watched", zap.Error(err))
	}
}

// keyringJitter spreads the reloads: the agents of a DaemonSet need not
// read their Secret in step.
const keyringJitter = 0.1
