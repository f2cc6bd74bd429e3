package failover

import (
	"go/build"
	"strings"
	"testing"
)

// TestImports_standardLibraryOnly keeps the decision core free of the
// agent's machinery: a core that imports gossip for one type drags in
// memberlist, Prometheus and zap, and can no longer be read, reused or
// fuzzed on its own. Types from elsewhere are converted by the caller.
// Test files may import what they like.
func TestImports_standardLibraryOnly(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(pkg.Imports) == 0 {
		t.Fatal("found no imports: is the package's directory read at all?")
	}
	for _, path := range pkg.Imports {
		// The standard library's import paths are the only ones whose
		// first element has no dot.
		if first, _, _ := strings.Cut(path, "/"); strings.Contains(first, ".") || path == "C" {
			t.Errorf("package failover imports %s, which is not in the standard library", path)
		}
	}
}
