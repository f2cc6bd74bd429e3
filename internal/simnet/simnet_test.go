package simnet

import (
	"testing"
	"testing/synctest"
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

func TestNetwork_latencyPerLinkAndPacket(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw := New()
		lat := Latency{Base: 10 * time.Millisecond, Spread: 40 * time.Millisecond, Jitter: 5 * time.Millisecond}
		nw.SetLatency(lat)
		a, b, c := nw.NewTransport(), nw.NewTransport(), nw.NewTransport()
		ab, ba, ac := lat.linkDelay(a.Addr(), b.Addr()), lat.linkDelay(b.Addr(), a.Addr()), lat.linkDelay(a.Addr(), c.Addr())
		if ab != ba {
			t.Fatalf("link a-b delays %s one way, %s the other", ab, ba)
		}
		if ab == ac {
			t.Fatalf("links a-b and a-c have the same delay %s: no spread", ab)
		}
		for _, d := range []time.Duration{ab, ac} {
			if d < lat.Base || d >= lat.Base+lat.Spread {
				t.Fatalf("link delay %s outside [%s, %s)", d, lat.Base, lat.Base+lat.Spread)
			}
		}
		const count = 200
		start := time.Now()
		for range count {
			if _, err := a.WriteTo([]byte("x"), b.Addr()); err != nil {
				t.Fatal(err)
			}
		}
		var sum time.Duration
		for range count {
			p := recvPacket(t, b, time.Second)
			d := p.Timestamp.Sub(start)
			if d < ab || d > ab+10*lat.Jitter {
				t.Fatalf("packet took %s on a link of %s with jitter %s", d, ab, lat.Jitter)
			}
			sum += d - ab
		}
		// The mean jitter of 200 exponential draws is within a third of
		// its mean with overwhelming probability.
		if mean := sum / count; mean < lat.Jitter*2/3 || mean > lat.Jitter*4/3 {
			t.Fatalf("mean jitter %s, want about %s", mean, lat.Jitter)
		}
	})
}

func TestTransport_pauseHoldsTrafficUntilResume(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw := New()
		nw.SetReceiveBuffer(4)
		a, b := nw.NewTransport(), nw.NewTransport()
		b.Pause()
		for range 6 {
			if _, err := a.WriteTo([]byte("in"), b.Addr()); err != nil {
				t.Fatal(err)
			}
		}
		if d, l := nw.Stats(); d != 0 || l != 2 || nw.Overflowed() != 2 {
			t.Fatalf("while stalled: delivered %d, dropped %d, overflowed %d; want 0, 2, 2", d, l, nw.Overflowed())
		}
		select {
		case <-b.PacketCh():
			t.Fatal("a stalled host received a packet")
		default:
		}
		sent := make(chan time.Time, 1)
		go func() {
			_, _ = b.WriteTo([]byte("out"), a.Addr())
			sent <- time.Now()
		}()
		dialled := make(chan error, 1)
		go func() {
			c, err := a.DialTimeout(b.Addr(), time.Minute)
			if err == nil {
				_, err = c.Write([]byte("s"))
				c.Close()
			}
			dialled <- err
		}()
		synctest.Wait()
		select {
		case <-sent:
			t.Fatal("a stalled host sent a packet")
		default:
		}
		time.Sleep(3 * time.Second)
		stallEnd := time.Now()
		b.Resume()
		for range 4 {
			if p := recvPacket(t, b, time.Second); string(p.Buf) != "in" {
				t.Fatalf("got %q", p.Buf)
			}
		}
		if at := <-sent; at.Before(stallEnd) {
			t.Fatalf("the stalled host's packet left at %s, before the stall ended at %s", at, stallEnd)
		}
		if p := recvPacket(t, a, time.Second); string(p.Buf) != "out" {
			t.Fatalf("got %q", p.Buf)
		}
		conn := <-b.StreamCh()
		buf := make([]byte, 1)
		if _, err := conn.Read(buf); err != nil || buf[0] != 's' {
			t.Fatalf("read %q, %v", buf, err)
		}
		if err := <-dialled; err != nil {
			t.Fatal(err)
		}
	})
}
