package simnet

import (
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

func recvPacket(t *testing.T, tr *Transport, within time.Duration) *memberlist.Packet {
	t.Helper()
	select {
	case p := <-tr.PacketCh():
		return p
	case <-time.After(within):
		t.Fatalf("no packet within %s", within)
		return nil
	}
}

func TestNetwork_delayedPacketsArriveInOrderAfterTheDelay(t *testing.T) {
	nw := New()
	const delay = 20 * time.Millisecond
	nw.SetDelay(delay)
	const count = 3000 // more than the line keeps before it compacts
	nw.SetReceiveBuffer(count)
	a, b := nw.NewTransport(), nw.NewTransport()
	start := time.Now()
	for i := range count {
		if _, err := a.WriteTo([]byte{byte(i), byte(i >> 8)}, b.Addr()); err != nil {
			t.Fatal(err)
		}
	}
	for i := range count {
		p := recvPacket(t, b, 5*time.Second)
		if got := int(p.Buf[0]) | int(p.Buf[1])<<8; got != i {
			t.Fatalf("packet %d arrived as number %d", got, i)
		}
		if p.From.String() != a.Addr() {
			t.Fatalf("packet from %s, want %s", p.From, a.Addr())
		}
		if i == 0 && p.Timestamp.Sub(start) < delay {
			t.Fatalf("first packet arrived after %s, before the %s delay", p.Timestamp.Sub(start), delay)
		}
	}
	if d, l := nw.Stats(); d != count || l != 0 {
		t.Fatalf("stats: delivered %d, dropped %d; want %d, 0", d, l, count)
	}
	// The line drains and its goroutine stops; a later packet starts it
	// again.
	if _, err := a.WriteTo([]byte("again"), b.Addr()); err != nil {
		t.Fatal(err)
	}
	if p := recvPacket(t, b, 5*time.Second); string(p.Buf) != "again" {
		t.Fatalf("got %q", p.Buf)
	}
}

func TestNetwork_lossAndCrash(t *testing.T) {
	nw := New()
	nw.SetLoss(0.5)
	a, b := nw.NewTransport(), nw.NewTransport()
	const count = 400 // about 200 arrive: within b's receive buffer
	for range count {
		if _, err := a.WriteTo([]byte("x"), b.Addr()); err != nil {
			t.Fatal(err)
		}
	}
	delivered, dropped := nw.Stats()
	if delivered+dropped != count || dropped < count/3 || dropped > 2*count/3 {
		t.Fatalf("delivered %d, dropped %d of %d at 50%% loss", delivered, dropped, count)
	}
	nw.SetLoss(0)
	b.Crash()
	if _, err := a.WriteTo([]byte("y"), b.Addr()); err != nil {
		t.Fatal(err)
	}
	if _, d := nw.Stats(); d != dropped+1 {
		t.Fatalf("a packet to a crashed host was not dropped: dropped %d, want %d", d, dropped+1)
	}
	if _, err := b.WriteTo([]byte("z"), a.Addr()); err == nil {
		t.Fatal("a crashed host could send")
	}
}

func TestNetwork_fullReceiveBufferDrops(t *testing.T) {
	nw := New()
	nw.SetReceiveBuffer(10)
	a, b := nw.NewTransport(), nw.NewTransport()
	for range 15 {
		if _, err := a.WriteTo([]byte("x"), b.Addr()); err != nil {
			t.Fatal(err)
		}
	}
	if d, l := nw.Stats(); d != 10 || l != 5 || nw.Overflowed() != 5 {
		t.Fatalf("delivered %d, dropped %d, overflowed %d; want 10, 5, 5", d, l, nw.Overflowed())
	}
	for range 10 {
		recvPacket(t, b, 5*time.Second)
	}
	// Read, the buffer takes packets again.
	if _, err := a.WriteTo([]byte("y"), b.Addr()); err != nil {
		t.Fatal(err)
	}
	if p := recvPacket(t, b, 5*time.Second); string(p.Buf) != "y" {
		t.Fatalf("got %q, want y", p.Buf)
	}
}
