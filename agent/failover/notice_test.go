package failover

import (
	"fmt"
	"strings"
	"testing"
)

func TestNotice_roundTrip(t *testing.T) {
	cases := []Notice{
		{Coordinator: "a", Target: "b"},
		{Coordinator: "node-1", Target: "node-7", TargetEpoch: 1764220000000000000, CoordinatorEpoch: -2, Seq: 42},
		{Coordinator: strings.Repeat("c", 253), Target: strings.Repeat("t", 253), TargetEpoch: -1 << 63,
			CoordinatorEpoch: 1<<63 - 1, Seq: 1<<64 - 1},
	}
	for _, want := range cases {
		b := want.Encode()
		if len(b) > MaxNoticeBytes {
			t.Fatalf("encoded notice is %d bytes, more than MaxNoticeBytes (%d)", len(b), MaxNoticeBytes)
		}
		got, err := DecodeNotice(b)
		if err != nil {
			t.Fatalf("DecodeNotice: %v", err)
		}
		if got != want {
			t.Errorf("round trip: got %+v, want %+v", got, want)
		}
	}
}

func TestDecodeNotice_errors(t *testing.T) {
	good := Notice{Coordinator: "a", Target: "b", TargetEpoch: 1, CoordinatorEpoch: 2, Seq: 3}.Encode()
	cases := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "failover: notice is truncated"},
		{"version 0", []byte{0}, "failover: notice version 0 is not supported"},
		{"empty coordinator", []byte{1, 0}, "failover: notice coordinator name is malformed"},
		{"truncated target", good[:4], "failover: notice target name is malformed"},
		{"not UTF-8", []byte{1, 1, 0xff}, "failover: notice coordinator name is not UTF-8"},
		{"no target epoch", good[:5], "failover: notice numbers are truncated"},
		{"no seq", good[:len(good)-1], "failover: notice numbers are truncated"},
		{"too long", make([]byte, MaxNoticeBytes+1), fmt.Sprintf("failover: notice is %d bytes, more than %d", MaxNoticeBytes+1, MaxNoticeBytes)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := DecodeNotice(tc.in); err == nil || err.Error() != tc.want {
				t.Fatalf("DecodeNotice() error = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestNotice_newer(t *testing.T) {
	old := Notice{CoordinatorEpoch: 5, Seq: 10}
	for _, tc := range []struct {
		n    Notice
		want bool
	}{
		{Notice{CoordinatorEpoch: 5, Seq: 11}, true},
		{Notice{CoordinatorEpoch: 5, Seq: 10}, false},
		{Notice{CoordinatorEpoch: 5, Seq: 9}, false},
		{Notice{CoordinatorEpoch: 6, Seq: 1}, true},
		{Notice{CoordinatorEpoch: 4, Seq: 99}, false},
	} {
		if got := tc.n.Newer(old); got != tc.want {
			t.Errorf("%+v.Newer(%+v) = %v, want %v", tc.n, old, got, tc.want)
		}
	}
}

func FuzzDecodeNotice(f *testing.F) {
	f.Add(Notice{Coordinator: "a", Target: "b", TargetEpoch: 3, CoordinatorEpoch: 4, Seq: 7}.Encode())
	f.Add([]byte{1, 1, 'a', 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := DecodeNotice(b)
		if err != nil {
			return
		}
		again, err := DecodeNotice(n.Encode())
		if err != nil || again != n {
			t.Fatalf("re-decode of %+v = %+v, %v", n, again, err)
		}
	})
}
