// Package command holds what the agent needs to run an outside command
// safely: a process group of its own, killed as a whole when the command's
// context ends, so that a shell's children die with it instead of piling
// up on every timeout; and output kept up to a bound. The exec node check
// (agent/probe) and the fence command (agent/fence) use it. It starts
// nothing itself.
package command

// CappedBuffer keeps the first Max bytes written to it and drops the rest.
// exec calls Write from one goroutine at a time when Stdout and Stderr are
// the same writer.
type CappedBuffer struct {
	Max int
	buf []byte
}

func (b *CappedBuffer) Write(p []byte) (int, error) {
	if room := b.Max - len(b.buf); room > 0 {
		b.buf = append(b.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (b *CappedBuffer) String() string { return string(b.buf) }
