package gossip

import (
	"strings"
	"testing"
)

func TestMeta_roundTrip(t *testing.T) {
	cases := []Meta{
		{NodeName: "n"},
		{NodeName: "node-1", Zone: "eu-west-1a", AgentVersion: "v0.1.0", Ready: true, StartEpoch: 1764200000000000000},
		{NodeName: "node-2", Reason: "kubelet: connection refused", Leaving: true, Coordinator: true, StartEpoch: -5},
		// The largest metadata the config allows still fits in 512 bytes.
		{NodeName: strings.Repeat("n", 253), Zone: strings.Repeat("z", 63), AgentVersion: strings.Repeat("v", 64),
			Reason: strings.Repeat("r", MaxReasonBytes), Ready: true, Leaving: true, StartEpoch: 1<<63 - 1},
	}
	for _, want := range cases {
		b, err := want.Encode()
		if err != nil {
			t.Fatalf("Encode(%+v): %v", want, err)
		}
		got, err := DecodeMeta(b)
		if err != nil {
			t.Fatalf("DecodeMeta: %v", err)
		}
		if got != want {
			t.Errorf("round trip: got %+v, want %+v", got, want)
		}
	}
}

func TestDecodeMeta_errors(t *testing.T) {
	good, _ := Meta{NodeName: "node-1", Zone: "z"}.Encode()
	cases := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "gossip: metadata is empty"},
		{"version zero", []byte{0, 0}, "gossip: metadata version 0 is not supported"},
		{"no flags", []byte{1}, "gossip: metadata truncated before flags"},
		{"bad epoch", []byte{1, 0, 0x80}, "gossip: metadata start epoch is malformed"},
		{"truncated name", good[:5], "gossip: metadata node name is truncated"},
		{"no name", []byte{1, 0, 0, 0, 0, 0, 0}, "gossip: metadata has no node name"},
		{"not utf8", []byte{1, 0, 0, 2, 0xff, 0xfe, 0, 0, 0}, "gossip: metadata node name is not UTF-8"},
		{"too long", make([]byte, 513), "gossip: metadata is 513 bytes, more than 512"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeMeta(tc.in)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("DecodeMeta() error = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestDecodeMeta_newerVersionAppendsFields(t *testing.T) {
	b, _ := Meta{NodeName: "node-1", Ready: true}.Encode()
	b[0] = 2
	b = append(b, 0xde, 0xad) // a field this version does not know
	got, err := DecodeMeta(b)
	if err != nil || got.NodeName != "node-1" || !got.Ready {
		t.Fatalf("DecodeMeta(v2) = %+v, %v", got, err)
	}
}

func TestTruncateUTF8(t *testing.T) {
	if got := truncateUTF8("héllo", 2); got != "h" {
		t.Fatalf("truncateUTF8 = %q, want %q", got, "h")
	}
}

func FuzzDecodeMeta(f *testing.F) {
	good, _ := Meta{NodeName: "node-1", Zone: "z", AgentVersion: "v1", Ready: true, Reason: "r", StartEpoch: 42}.Encode()
	f.Add(good)
	f.Add([]byte{1, 3, 0x80})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMeta(b)
		if err != nil {
			return
		}
		// Whatever decodes must encode and decode to the same value.
		again, err := m.Encode()
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", m, err)
		}
		m2, err := DecodeMeta(again)
		if err != nil || m2 != m {
			t.Fatalf("re-decode = %+v, %v; want %+v", m2, err, m)
		}
	})
}
