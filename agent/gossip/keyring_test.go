package gossip

import (
	"bytes"
	"testing"
)

func TestParseKeyring(t *testing.T) {
	k16 := "MDEyMzQ1Njc4OWFiY2RlZg==" // 16 bytes
	k32 := "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
	cases := []struct {
		name string
		in   string
		keys int
		want string
	}{
		{"one key", k16 + "\n", 1, ""},
		{"comments and blanks", "# rotated 2026-11\n\n" + k32 + "\n" + k16 + "\n", 2, ""},
		{"empty", "\n# nothing\n", 0, "gossip: --keyring-file keys has no key"},
		{"bad base64", "not base64!\n", 0, "gossip: --keyring-file keys line 1: not valid base64: illegal base64 data at input byte 3"},
		{"bad length", "\nYWJj\n", 0, "gossip: --keyring-file keys line 2: key is 3 bytes, must be 16, 24 or 32"},
		{"duplicate", k16 + "\n" + k16 + "\n", 0, "gossip: --keyring-file keys line 2: same key as line 1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			keys, err := ParseKeyring("keys", []byte(tc.in))
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tc.want || len(keys) != tc.keys {
				t.Fatalf("ParseKeyring() = %d keys, %q; want %d keys, %q", len(keys), got, tc.keys, tc.want)
			}
		})
	}
	keys, _ := ParseKeyring("keys", []byte(k32+"\n"+k16))
	if !bytes.Equal(keys[0], []byte("0123456789abcdef0123456789abcdef")) {
		t.Fatalf("first key is not primary: %q", keys[0])
	}
}
