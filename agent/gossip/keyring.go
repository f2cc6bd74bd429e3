package gossip

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"os"
	"strings"

	"github.com/hashicorp/memberlist"
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
