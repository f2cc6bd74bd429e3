// Package testlog gives tests a zap logger that keeps its output and shows
// it only when the test fails.
//
// zaptest's logger panics when a goroutine logs after its test has ended,
// and memberlist's goroutines may log a last line while they shut down.
// This one writes to a buffer that outlives the test.
package testlog

import (
	"bytes"
	"sync"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

type buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *buffer) Sync() error { return nil }

func (b *buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// New returns a logger at level and above; its output is printed at the
// end of t if t failed.
func New(t testing.TB, level zapcore.Level) *zap.Logger {
	b := &buffer{}
	enc := zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig())
	l := zap.New(zapcore.NewCore(enc, b, level))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", b.String())
		}
	})
	return l
}
