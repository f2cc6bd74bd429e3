// Package metriclabel spells metric label values. haagent's label values
// are snake_case everywhere (agent_down, dry_run, pods_not_ready), while the
// NodeFailover API keeps its own enum spellings ("agent-down", "dry-run",
// "PodsNotReady"): the API's words are converted here, at the metric
// boundary, and nowhere else.
package metriclabel

import (
	"strings"
	"unicode"
)

// Value returns s as a snake_case label value: dashes, dots and spaces
// become underscores, and an upper-case letter starts a new lower-case word
// ("PodsNotReady" is pods_not_ready, "dry-run" is dry_run). A run of upper
// case letters is one word ("APIServer" is api_server). A value that is
// already snake_case is returned as it is.
func Value(s string) string {
	rs := []rune(s)
	var b strings.Builder
	b.Grow(len(s) + 4)
	for i, r := range rs {
		switch {
		case r == '-' || r == '.' || r == ' ' || r == '_':
			if b.Len() > 0 && !strings.HasSuffix(b.String(), "_") {
				b.WriteByte('_')
			}
		case unicode.IsUpper(r):
			prevLower := i > 0 && (unicode.IsLower(rs[i-1]) || unicode.IsDigit(rs[i-1]))
			// The last capital of a run starts the next word: APIServer.
			endOfRun := i > 0 && unicode.IsUpper(rs[i-1]) && i+1 < len(rs) && unicode.IsLower(rs[i+1])
			if (prevLower || endOfRun) && b.Len() > 0 && !strings.HasSuffix(b.String(), "_") {
				b.WriteByte('_')
			}
			b.WriteRune(unicode.ToLower(r))
		default:
			b.WriteRune(r)
		}
	}
	return strings.TrimSuffix(b.String(), "_")
}
