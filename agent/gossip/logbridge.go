package gossip

import (
	"bytes"
	"strings"

	"go.uber.org/zap"
)

// logBridge receives memberlist's log output ("[LEVEL] memberlist: text")
// and writes it to zap at the matching level. It also spots the one line
// that tells this agent suspects a peer, since memberlist has no callback
// for that.
type logBridge struct {
	log       *zap.Logger
	onSuspect func(node string)
}

const (
	suspectPrefix = "Suspect "
	suspectSuffix = " has failed, no acks received"
)

func (b *logBridge) Write(p []byte) (int, error) {
	for _, line := range bytes.Split(bytes.TrimRight(p, "\n"), []byte("\n")) {
		b.line(string(line))
	}
	return len(p), nil
}

func (b *logBridge) line(s string) {
	level, text := "", s
	if strings.HasPrefix(s, "[") {
		if i := strings.Index(s, "] "); i > 0 {
			level, text = s[1:i], s[i+2:]
		}
	}
	text = strings.TrimPrefix(text, "memberlist: ")
	if strings.HasPrefix(text, suspectPrefix) && strings.HasSuffix(text, suspectSuffix) && b.onSuspect != nil {
		b.onSuspect(strings.TrimSuffix(strings.TrimPrefix(text, suspectPrefix), suspectSuffix))
	}
	f := zap.String("detail", text)
	switch level {
	case "DEBUG":
		b.log.Debug("memberlist", f)
	case "WARN":
		b.log.Warn("memberlist", f)
	case "ERR", "ERROR":
		b.log.Error("memberlist", f)
	default:
		b.log.Info("memberlist", f)
	}
}
