package cluster

import (
	"net/netip"
	"testing"
)

func TestNodeAddresses_sequence(t *testing.T) {
	a := newNodeAddresses(7, 255)
	tests := []struct {
		name    string
		index   int
		wantIP  string
		wantPod string
	}{
		{"first", 0, "127.7.255.2", "198.18.0.0/24"},
		{"second", 1, "127.7.255.3", "198.18.1.0/24"},
		{"last of the first block", 252, "127.7.255.254", "198.18.252.0/24"},
		{"third octet wraps", 253, "127.7.0.2", "198.18.253.0/24"},
		{"pod range moves to 198.19", 256, "127.7.0.5", "198.19.0.0/24"},
		{"last", MaxNodes - 1, "127.7.0.248", "198.19.243.0/24"},
	}
	got := make([]NodeAddress, MaxNodes)
	for i := range got {
		var err error
		if got[i], err = a.Next(); err != nil {
			t.Fatalf("Next() #%d: %v", i, err)
		}
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if g := got[tc.index].IP.String(); g != tc.wantIP {
				t.Errorf("IP #%d = %s, want %s", tc.index, g, tc.wantIP)
			}
			if g := got[tc.index].PodCIDR.String(); g != tc.wantPod {
				t.Errorf("PodCIDR #%d = %s, want %s", tc.index, g, tc.wantPod)
			}
		})
	}
	if _, err := a.Next(); err == nil {
		t.Errorf("Next() after %d addresses: want an error", MaxNodes)
	}

	seenIP := map[netip.Addr]bool{}
	seenPod := map[netip.Prefix]bool{}
	for _, na := range got {
		if seenIP[na.IP] || seenPod[na.PodCIDR] {
			t.Fatalf("duplicate address %v", na)
		}
		seenIP[na.IP], seenPod[na.PodCIDR] = true, true
		if !na.IP.IsLoopback() {
			t.Errorf("%s is not loopback", na.IP)
		}
	}
}

func TestNewNodeAddresses_neverControlPlaneAddress(t *testing.T) {
	for range 1000 {
		na, err := NewNodeAddresses().Next()
		if err != nil {
			t.Fatal(err)
		}
		if b := na.IP.As4(); b[0] != 127 || b[1] == 0 {
			t.Fatalf("address %s: want 127.X.Y.Z with X != 0", na.IP)
		}
	}
}
