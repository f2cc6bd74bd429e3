package record

import (
	"encoding/json"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

const crdPath = "../../deploy/crd-nodefailover.yaml"

// TestCRD checks the CustomResourceDefinition against the Go types, so the
// two cannot drift: every field has a schema of the matching type, required
// fields are those without omitempty, enums list the constants, and the
// printer columns point at fields that exist. A real API server accepting
// the CRD is checked separately, by applying it.
func TestCRD(t *testing.T) {
	raw, err := os.ReadFile(crdPath)
	if err != nil {
		t.Fatal(err)
	}
	var crd map[string]any
	if err := yaml.UnmarshalStrict(raw, &crd); err != nil {
		t.Fatalf("%s: %v", crdPath, err)
	}
	get := func(path string) any {
		t.Helper()
		v, ok := lookup(crd, path)
		if !ok {
			t.Fatalf("%s has no %s", crdPath, path)
		}
		return v
	}
	for path, want := range map[string]any{
		"apiVersion":              "apiextensions.k8s.io/v1",
		"kind":                    "CustomResourceDefinition",
		"metadata.name":           Resource + "." + Group,
		"spec.group":              Group,
		"spec.scope":              "Cluster",
		"spec.names.kind":         Kind,
		"spec.names.listKind":     ListKind,
		"spec.names.plural":       Resource,
		"spec.names.singular":     "nodefailover",
		"spec.names.shortNames":   []any{"nf"},
		"spec.versions.0.name":    Version,
		"spec.versions.0.served":  true,
		"spec.versions.0.storage": true,
		"spec.versions.0.subresources": map[string]any{
			"status": map[string]any{},
		},
	} {
		if got := get(path); !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %v, want %v", path, got, want)
		}
	}
	if n := len(get("spec.versions").([]any)); n != 1 {
		t.Errorf("%d versions, want 1", n)
	}

	root := get("spec.versions.0.schema.openAPIV3Schema").(map[string]any)
	checkSchema(t, "spec", prop(t, root, "spec"), reflect.TypeFor[NodeFailoverSpec]())
	checkSchema(t, "status", prop(t, root, "status"), reflect.TypeFor[NodeFailoverStatus]())

	status := prop(t, root, "status")
	var phases []any
	for _, p := range Phases() {
		phases = append(phases, string(p))
	}
	wantEnums := map[string][]any{
		"phase":   phases,
		"outcome": {"", "completed", "failed", "paused", "dry-run", "aborted"},
	}
	for field, want := range wantEnums {
		if got := prop(t, status, field)["enum"]; !reflect.DeepEqual(got, want) {
			t.Errorf("status.%s enum = %v, want %v", field, got, want)
		}
	}
	opinion := prop(t, prop(t, status, "votes")["items"].(map[string]any), "opinion")
	if got, want := opinion["enum"], []any{"alive", "suspect", "dead", "agent-down"}; !reflect.DeepEqual(got, want) {
		t.Errorf("votes.opinion enum = %v, want %v", got, want)
	}

	var cols []string
	for _, c := range get("spec.versions.0.additionalPrinterColumns").([]any) {
		col := c.(map[string]any)
		cols = append(cols, strings.ToUpper(col["name"].(string)))
		path, _ := col["jsonPath"].(string)
		if path == ".metadata.creationTimestamp" {
			continue
		}
		s := root
		for _, part := range strings.Split(strings.TrimPrefix(path, "."), ".") {
			s = prop(t, s, part)
		}
		if s["type"] != col["type"] {
			t.Errorf("column %s is %v but %s is %v", col["name"], col["type"], path, s["type"])
		}
	}
	if want := []string{"NODE", "PHASE", "OUTCOME", "DETECT", "REPAIR", "AGE"}; !slices.Equal(cols, want) {
		t.Errorf("printer columns = %v, want %v", cols, want)
	}
}

// TestCRD_timestampPattern checks that the pattern the CRD puts on every
// timestamp accepts what MicroTime writes and rejects what it cannot read.
func TestCRD_timestampPattern(t *testing.T) {
	re := regexp.MustCompile(microTimePattern)
	raw, err := json.Marshal(metav1.NewMicroTime(t0))
	if err != nil {
		t.Fatal(err)
	}
	var written string
	if err := json.Unmarshal(raw, &written); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{written, "2026-03-01T12:00:00.000000+01:00"} {
		if !re.MatchString(s) {
			t.Errorf("pattern rejects %q", s)
		}
		var mt metav1.MicroTime
		if err := mt.UnmarshalJSON([]byte(`"` + s + `"`)); err != nil {
			t.Errorf("MicroTime cannot read %q: %v", s, err)
		}
	}
	for _, s := range []string{"2026-03-01T12:00:00Z", "2026-03-01T12:00:00.25Z", "2026-03-01T12:00:00.250000000Z"} {
		if re.MatchString(s) {
			t.Errorf("pattern accepts %q", s)
		}
		var mt metav1.MicroTime
		if err := mt.UnmarshalJSON([]byte(`"` + s + `"`)); err == nil {
			t.Errorf("MicroTime reads %q; the pattern may be relaxed", s)
		}
	}
}

// microTimePattern is the CRD's pattern for timestamps.
const microTimePattern = `^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}(Z|[+-][0-9]{2}:[0-9]{2})$`

// checkSchema compares the schema s at path with the Go type typ.
func checkSchema(t *testing.T, path string, s map[string]any, typ reflect.Type) {
	t.Helper()
	if typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	want := map[string]any{}
	switch {
	case typ == reflect.TypeFor[metav1.MicroTime]():
		want = map[string]any{"type": "string", "format": "date-time", "pattern": microTimePattern}
	case typ == reflect.TypeFor[metav1.Time]():
		want = map[string]any{"type": "string", "format": "date-time"}
	case typ.Kind() == reflect.String:
		want["type"] = "string"
	case typ.Kind() == reflect.Bool:
		want["type"] = "boolean"
	case typ.Kind() == reflect.Int32:
		want = map[string]any{"type": "integer", "format": "int32"}
	case typ.Kind() == reflect.Int64:
		want = map[string]any{"type": "integer", "format": "int64"}
	case typ.Kind() == reflect.Slice:
		want["type"] = "array"
		items, ok := s["items"].(map[string]any)
		if !ok {
			t.Errorf("%s: array without items", path)
			return
		}
		checkSchema(t, path+"[]", items, typ.Elem())
	case typ.Kind() == reflect.Struct:
		want["type"] = "object"
		checkObject(t, path, s, typ)
	default:
		t.Errorf("%s: no schema rule for Go type %s", path, typ)
	}
	for k, v := range want {
		if s[k] != v {
			t.Errorf("%s: %s is %v, want %v (Go type %s)", path, k, s[k], v, typ)
		}
	}
}

func checkObject(t *testing.T, path string, s map[string]any, typ reflect.Type) {
	t.Helper()
	props, _ := s["properties"].(map[string]any)
	var required []string
	seen := map[string]bool{}
	for i := range typ.NumField() {
		field := typ.Field(i)
		name, opts, _ := strings.Cut(field.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			t.Errorf("%s: field %s has no JSON name", path, field.Name)
			continue
		}
		seen[name] = true
		if !strings.Contains(opts, "omitempty") {
			required = append(required, name)
		}
		sub, ok := props[name].(map[string]any)
		if !ok {
			t.Errorf("%s.%s: in the Go type, not in the schema", path, name)
			continue
		}
		checkSchema(t, path+"."+name, sub, field.Type)
	}
	for name := range props {
		if !seen[name] {
			t.Errorf("%s.%s: in the schema, not in the Go type", path, name)
		}
	}
	var got []string
	if r, ok := s["required"].([]any); ok {
		for _, v := range r {
			got = append(got, v.(string))
		}
	}
	slices.Sort(got)
	slices.Sort(required)
	if !slices.Equal(got, required) {
		t.Errorf("%s: required %v, want the fields without omitempty %v", path, got, required)
	}
}

func prop(t *testing.T, s map[string]any, name string) map[string]any {
	t.Helper()
	p, ok := s["properties"].(map[string]any)[name].(map[string]any)
	if !ok {
		t.Fatalf("schema has no property %q", name)
	}
	return p
}

// lookup follows a dotted path through maps and (by index) lists.
func lookup(v any, path string) (any, bool) {
	for part := range strings.SplitSeq(path, ".") {
		switch c := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = c[part]; !ok {
				return nil, false
			}
		case []any:
			i := 0
			for _, r := range part {
				if r < '0' || r > '9' {
					return nil, false
				}
				i = i*10 + int(r-'0')
			}
			if i >= len(c) {
				return nil, false
			}
			v = c[i]
		default:
			return nil, false
		}
	}
	return v, true
}
