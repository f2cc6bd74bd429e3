package record

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"time"
	"unicode/utf8"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const (
	// maxNameLen is the longest object name (a DNS subdomain).
	maxNameLen = 253
	// maxLabelValueLen is the longest label value.
	maxLabelValueLen = 63
	// hashLen hex digits of SHA-256 keep shortened names of different nodes
	// apart.
	hashLen = 10
	// maxReasonLen and maxMessageLen are the CRD's bounds on spec.reason
	// and status.message; longer text is cut rather than rejected.
	maxReasonLen  = 1024
	maxMessageLen = 4096
	// nameTimeLayout is the time suffix of object names, in UTC.
	nameTimeLayout = "20060102T150405"
)

// NewNodeFailover returns a new record for a failover of node that started
// at started (usually when the node was confirmed dead), with its name and
// labels set and an empty status.
func NewNodeFailover(node, reason string, dryRun bool, started time.Time) (*NodeFailover, error) {
	if node == "" {
		return nil, errors.New("record: node name is empty")
	}
	if started.IsZero() {
		return nil, errors.New("record: start time is zero")
	}
	f := &NodeFailover{
		TypeMeta:   metav1.TypeMeta{APIVersion: Group + "/" + Version, Kind: Kind},
		ObjectMeta: metav1.ObjectMeta{Name: ObjectName(node, started)},
		Spec:       NodeFailoverSpec{Node: node, DryRun: dryRun, Reason: truncate(reason, maxReasonLen)},
	}
	f.SyncLabels()
	return f, nil
}

// ObjectName returns the record name for a failover of node that started at
// t: "<node>-<yyyymmddThhmmss>" in UTC, lower-cased. Characters that a DNS
// subdomain does not allow become '-'. A node part too long for the 253
// characters of a name is cut, and a hash of the full node name is appended
// so that different long names still give different record names.
func ObjectName(node string, t time.Time) string {
	suffix := "-" + strings.ToLower(t.UTC().Format(nameTimeLayout))
	base := dnsSubdomain(node)
	if base == "" {
		base = "node"
	}
	if base != strings.ToLower(node) || len(base)+len(suffix) > maxNameLen {
		keep := min(len(base), maxNameLen-len(suffix)-1-hashLen)
		base = strings.TrimRight(base[:keep], "-.")
		if base != "" {
			base += "-"
		}
		base += shortHash(node)
	}
	return base + suffix
}

// NodeLabelValue returns the value of the haagent.io/node label for node:
// node itself when it is a valid label value, otherwise a prefix of it that
// is valid followed by a hash of the full name.
func NodeLabelValue(node string) string {
	if validLabelValue(node) {
		return node
	}
	b := []byte(node)
	for i, c := range b {
		if !isAlnum(c) && c != '-' && c != '_' && c != '.' {
			b[i] = '-'
		}
	}
	prefix := string(b[:min(len(b), maxLabelValueLen-1-hashLen)])
	prefix = strings.TrimLeft(strings.TrimRight(prefix, "-_."), "-_.")
	if prefix == "" {
		return shortHash(node)
	}
	return prefix + "-" + shortHash(node)
}

// SyncLabels sets the node and active labels from the spec and phase, and
// reports whether they changed; if so the record needs a Store.Update
// (labels are not written by UpdateStatus).
func (f *NodeFailover) SyncLabels() bool {
	if f.Labels == nil {
		f.Labels = map[string]string{}
	}
	changed := false
	if v := NodeLabelValue(f.Spec.Node); f.Labels[LabelNode] != v {
		f.Labels[LabelNode] = v
		changed = true
	}
	_, labelled := f.Labels[LabelActive]
	switch active := f.Active(); {
	case active && f.Labels[LabelActive] != "true":
		f.Labels[LabelActive] = "true"
		changed = true
	case !active && labelled:
		delete(f.Labels, LabelActive)
		changed = true
	}
	return changed
}

// Active reports whether the failover has not reached a final phase.
func (f *NodeFailover) Active() bool { return !f.Status.Phase.Final() }

// dnsSubdomain lower-cases s and makes each dot-separated part a valid DNS
// label: characters other than [a-z0-9-] become '-', parts neither start nor
// end with '-', and empty parts are dropped.
func dnsSubdomain(s string) string {
	var parts []string
	for part := range strings.SplitSeq(strings.ToLower(s), ".") {
		b := []byte(part)
		for i, c := range b {
			if !isAlnum(c) && c != '-' {
				b[i] = '-'
			}
		}
		if p := strings.Trim(string(b), "-"); p != "" {
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, ".")
}

// validLabelValue reports whether s may be a label value: at most 63
// characters of [A-Za-z0-9-_.], starting and ending alphanumeric.
func validLabelValue(s string) bool {
	if len(s) > maxLabelValueLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isAlnum(c) {
			continue
		}
		if i == 0 || i == len(s)-1 || (c != '-' && c != '_' && c != '.') {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9')
}

func shortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:hashLen]
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
