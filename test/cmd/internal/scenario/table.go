package scenario

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Seconds formats a measured duration as seconds with a precision that
// suits its size.
func Seconds(d time.Duration) string {
	s := d.Seconds()
	switch {
	case s < 10:
		return fmt.Sprintf("%.2fs", s)
	case s < 100:
		return fmt.Sprintf("%.1fs", s)
	}
	return fmt.Sprintf("%.0fs", s)
}

// Ratio formats a/b as "12×", or "" if either is missing or b is zero.
func Ratio(a, b time.Duration) string {
	if a <= 0 || b <= 0 {
		return ""
	}
	r := float64(a) / float64(b)
	if r < 10 {
		return fmt.Sprintf("%.1f×", r)
	}
	return fmt.Sprintf("%.0f×", r)
}

// WriteTable writes rows as an aligned table with a header and a rule
// under it.
func WriteTable(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  "+strings.Join(header, "\t"))
	rule := make([]string, len(header))
	for i, h := range header {
		rule[i] = strings.Repeat("-", len([]rune(h)))
	}
	fmt.Fprintln(tw, "  "+strings.Join(rule, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, "  "+strings.Join(r, "\t"))
	}
	return tw.Flush()
}
