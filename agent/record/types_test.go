package record

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"
)

// chartCRDPath is where make generate writes the CRD; make manifests copies
// it to crdPath.
const chartCRDPath = "../../charts/haagent/crds/nodefailover.yaml"

// fullRecord returns a record with every field of its spec and status set,
// as valid as the coordinator writes them.
func fullRecord(t *testing.T) *NodeFailover {
	t.Helper()
	f := confirmed(t, "worker-1")
	f.UID = "0a6c1b2e-4f5d-4c3b-9a8e-7d6c5b4a3f21"
	f.Generation = 1
	f.Spec.DryRun = true
	f.Spec.Cause = CauseNotReady
	st := &f.Status
	for i, p := range st.timestamps() {
		*p = ms(100 * i)
	}
	if err := st.Advance(PhaseCompleted); err != nil {
		t.Fatal(err)
	}
	st.Message = "cordon and taints handed back"
	st.Pods = PodCounts{Total: 6, Evicted: 1, PDBBlocked: 1, FencedOnly: 1, Gone: 1, Failed: 1}
	st.AffectedOwners = []AffectedOwner{
		{Kind: "StatefulSet", Namespace: "db", Name: "pg", DesiredReplicas: 3},
		{Kind: "Deployment", Namespace: "", Name: "web", DesiredReplicas: 0},
	}
	st.ObservedGeneration = 1
	st.Conditions = []metav1.Condition{{
		Type: ConditionSuperseded, Status: metav1.ConditionFalse, ObservedGeneration: 1,
		LastTransitionTime: metav1.NewTime(t0.Truncate(time.Second)), Reason: "NotSuperseded", Message: "",
	}}
	st.Derive()
	f.SyncLabels()
	for _, v := range []any{f.Spec, f.Status} {
		rv := reflect.ValueOf(v)
		for i := range rv.NumField() {
			if rv.Field(i).IsZero() {
				t.Fatalf("fullRecord leaves %s.%s unset", rv.Type().Name(), rv.Type().Field(i).Name)
			}
		}
	}
	return f
}

// TestNodeFailover_unstructuredRoundTrip: every field of a record survives
// encode and decode, the conversions between the Store and the dynamic
// client, and each one is written under the name the CRD knows it by.
func TestNodeFailover_unstructuredRoundTrip(t *testing.T) {
	want := fullRecord(t)
	u, err := encode(want)
	if err != nil {
		t.Fatal(err)
	}
	if got := u.GroupVersionKind(); got != GroupVersionKind() {
		t.Errorf("encoded kind %v, want %v", got, GroupVersionKind())
	}
	for field, typ := range map[string]reflect.Type{
		"spec":   reflect.TypeFor[NodeFailoverSpec](),
		"status": reflect.TypeFor[NodeFailoverStatus](),
	} {
		m, _ := u.Object[field].(map[string]any)
		var keys []string
		for i := range typ.NumField() {
			name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
			keys = append(keys, name)
			if _, ok := m[name]; !ok {
				t.Errorf("%s.%s is set but not encoded", field, name)
			}
		}
		for k := range m {
			if !slices.Contains(keys, k) {
				t.Errorf("%s.%s encoded but not a field", field, k)
			}
		}
	}
	got, err := decode(u)
	if err != nil {
		t.Fatal(err)
	}
	if !apiequality.Semantic.DeepEqual(want, got) {
		t.Fatalf("round trip changed the record:\nwant %+v\ngot  %+v", want, got)
	}

	// The generated DeepCopyObject makes the types runtime.Objects.
	var obj runtime.Object = want
	if c, ok := obj.DeepCopyObject().(*NodeFailover); !ok || !apiequality.Semantic.DeepEqual(want, c) {
		t.Errorf("DeepCopyObject = %#v", obj.DeepCopyObject())
	}
	list := &NodeFailoverList{Items: []NodeFailover{*want}}
	obj = list
	lc := obj.DeepCopyObject().(*NodeFailoverList)
	lc.Items[0].Status.Conditions[0].Reason = "Changed"
	if list.Items[0].Status.Conditions[0].Reason == "Changed" {
		t.Error("the list's copy shares memory with it")
	}
}

// TestMerge_observedGeneration: the larger observed generation wins,
// whichever way round.
func TestMerge_observedGeneration(t *testing.T) {
	for _, tc := range []struct{ s, from, want int64 }{{1, 2, 2}, {2, 1, 2}, {0, 3, 3}, {3, 0, 3}} {
		s := NodeFailoverStatus{ObservedGeneration: tc.s}
		s.Merge(&NodeFailoverStatus{ObservedGeneration: tc.from})
		if s.ObservedGeneration != tc.want {
			t.Errorf("Merge(%d into %d) = %d, want %d", tc.from, tc.s, s.ObservedGeneration, tc.want)
		}
	}
}

// TestCRD_validatesRecords checks records as the Store sends them against
// the schema of the generated CRD (and of its copy in deploy/), as the API
// server would: a full record and a create (without status) pass, and each
// kind of invalid record is refused. Fields the schema does not know, which
// the API server would silently drop, count as errors too.
func TestCRD_validatesRecords(t *testing.T) {
	for _, path := range []string{chartCRDPath, crdPath} {
		t.Run(strings.TrimPrefix(path, "../../"), func(t *testing.T) {
			schema := loadSchema(t, path)
			valid := map[string]func(map[string]any){
				"full record": func(map[string]any) {},
				"create, without status": func(o map[string]any) {
					delete(o, "status")
				},
				"just confirmed": func(o map[string]any) {
					o["status"] = mustJSON(t, &confirmed(t, "node-b").Status)
				},
				"vote times in another zone": func(o map[string]any) {
					votes := o["status"].(map[string]any)["votes"].([]any)
					votes[0].(map[string]any)["at"] = "2026-03-01T13:00:01.400000+01:00"
				},
			}
			for name, mutate := range valid {
				o := mustJSON(t, fullRecord(t))
				mutate(o)
				if errs := validate("", schema, o); len(errs) > 0 {
					t.Errorf("%s refused:\n%s", name, strings.Join(errs, "\n"))
				}
			}

			invalid := []struct {
				name, want string
				mutate     func(o, spec, status map[string]any)
			}{
				{"no spec", "spec: required", func(o, _, _ map[string]any) { delete(o, "spec") }},
				{"no node", "spec.node: required", func(_, spec, _ map[string]any) { delete(spec, "node") }},
				{"empty node", "spec.node: shorter than 1", func(_, spec, _ map[string]any) { spec["node"] = "" }},
				{"long reason", "spec.reason: longer than 1024", func(_, spec, _ map[string]any) { spec["reason"] = strings.Repeat("x", 1025) }},
				{"unknown cause", "spec.cause: not one of", func(_, spec, _ map[string]any) { spec["cause"] = "bored" }},
				{"unknown phase", "status.phase: not one of", func(_, _, st map[string]any) { st["phase"] = "Done" }},
				{"unknown outcome", "status.outcome: not one of", func(_, _, st map[string]any) { st["outcome"] = "ok" }},
				{"long message", "status.message: longer than 4096", func(_, _, st map[string]any) { st["message"] = strings.Repeat("é", 4097) }},
				{"whole seconds", "status.cordoned: does not match", func(_, _, st map[string]any) { st["cordoned"] = "2026-03-01T12:00:01Z" }},
				{"nanoseconds", "status.confirmed: does not match", func(_, _, st map[string]any) { st["confirmed"] = "2026-03-01T12:00:01.250000000Z" }},
				{"not a time", "status.lastHeard: not a date-time", func(_, _, st map[string]any) { st["lastHeard"] = "2026-13-01T12:00:01.250000Z" }},
				{"string count", "status.pods.total: not integer", func(_, _, st map[string]any) { st["pods"].(map[string]any)["total"] = "3" }},
				{"negative count", "status.pods.evicted: below 0", func(_, _, st map[string]any) { st["pods"].(map[string]any)["evicted"] = -1 }},
				{"count past int32", "status.pods.gone: out of int32", func(_, _, st map[string]any) { st["pods"].(map[string]any)["gone"] = math.MaxInt32 + 1 }},
				{"negative generation", "status.observedGeneration: below 0", func(_, _, st map[string]any) { st["observedGeneration"] = -1 }},
				{"two votes of one voter", "status.votes[1]: duplicate key voter=node-b", func(_, _, st map[string]any) {
					st["votes"].([]any)[1].(map[string]any)["voter"] = "node-b"
				}},
				{"vote without time", "status.votes[0].at: required", func(_, _, st map[string]any) {
					delete(st["votes"].([]any)[0].(map[string]any), "at")
				}},
				{"unknown opinion", "status.votes[0].opinion: not one of", func(_, _, st map[string]any) {
					st["votes"].([]any)[0].(map[string]any)["opinion"] = "meh"
				}},
				{"owner without name", "status.affectedOwners[0].name: shorter than 1", func(_, _, st map[string]any) {
					st["affectedOwners"].([]any)[0].(map[string]any)["name"] = ""
				}},
				{"two conditions of one type", "status.conditions[1]: duplicate key type=Superseded", func(_, _, st map[string]any) {
					c := st["conditions"].([]any)
					st["conditions"] = append(c, c[0])
				}},
				{"condition without reason", "status.conditions[0].reason: required", func(_, _, st map[string]any) {
					delete(st["conditions"].([]any)[0].(map[string]any), "reason")
				}},
				{"condition status", "status.conditions[0].status: not one of", func(_, _, st map[string]any) {
					st["conditions"].([]any)[0].(map[string]any)["status"] = "Maybe"
				}},
				{"unknown status field", "status.retries: not in the schema", func(_, _, st map[string]any) { st["retries"] = 3 }},
				{"unknown spec field", "spec.force: not in the schema", func(_, spec, _ map[string]any) { spec["force"] = true }},
			}
			for _, tc := range invalid {
				o := mustJSON(t, fullRecord(t))
				tc.mutate(o, o["spec"].(map[string]any), o["status"].(map[string]any))
				errs := validate("", schema, o)
				if !slices.ContainsFunc(errs, func(e string) bool { return strings.HasPrefix(e, tc.want) }) {
					t.Errorf("%s: errors %q, want one starting %q", tc.name, errs, tc.want)
				}
			}
		})
	}
}

// loadSchema returns the openAPIV3Schema of the one version of the CRD at
// path.
func loadSchema(t *testing.T, path string) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var crd map[string]any
	if err := yaml.UnmarshalStrict(raw, &crd); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	s, ok := lookup(crd, "spec.versions.0.schema.openAPIV3Schema")
	if !ok {
		t.Fatalf("%s has no schema", path)
	}
	return s.(map[string]any)
}

// mustJSON returns v as the JSON object the dynamic client sends: encode,
// then through JSON, so numbers are float64 as on the wire.
func mustJSON(t *testing.T, v any) map[string]any {
	t.Helper()
	if f, ok := v.(*NodeFailover); ok {
		u, err := encode(f)
		if err != nil {
			t.Fatal(err)
		}
		v = u.Object
	}
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// schemaKeywords are the keywords validate checks or may ignore. Another
// keyword in the CRD fails the test, so that the check is extended with
// the schema.
var schemaKeywords = []string{
	"type", "description", "properties", "required", "items", "enum", "pattern", "format",
	"minLength", "maxLength", "minimum", "x-kubernetes-list-type", "x-kubernetes-list-map-keys",
	"x-kubernetes-validations",
}

// validate checks v against the structural schema s as the API server
// validates a create: types, required fields, enums, patterns, lengths in
// characters, minimums, the date-time, int32 and int64 formats, and the
// keys of list-type map lists. Fields not in the schema (below an object
// with properties) are errors: the API server would drop them. The only
// CEL rule allowed is the transition rule self == oldSelf, which does not
// apply to a create. It returns one "path: problem" line per error.
func validate(path string, s map[string]any, v any) []string {
	var errs []string
	fail := func(format string, args ...any) {
		errs = append(errs, strings.TrimPrefix(path, ".")+": "+fmt.Sprintf(format, args...))
	}
	for k := range s {
		if !slices.Contains(schemaKeywords, k) {
			fail("the test does not check the schema keyword %s: extend validate", k)
		}
	}
	if rules, ok := s["x-kubernetes-validations"].([]any); ok {
		for _, r := range rules {
			if rule := r.(map[string]any)["rule"]; rule != "self == oldSelf" {
				fail("the test does not check the rule %q: extend validate", rule)
			}
		}
	}
	if enum, ok := s["enum"].([]any); ok && !slices.Contains(enum, v) {
		fail("not one of %v: %v", enum, v)
	}
	switch typ := s["type"]; typ {
	case "object":
		o, ok := v.(map[string]any)
		if !ok {
			fail("not object: %T", v)
			return errs
		}
		for _, r := range asList(s["required"]) {
			if _, ok := o[r.(string)]; !ok {
				errs = append(errs, strings.TrimPrefix(path+"."+r.(string), ".")+": required")
			}
		}
		props, ok := s["properties"].(map[string]any)
		if !ok {
			return errs // metadata: the API server checks it
		}
		for k, val := range o {
			sub, ok := props[k].(map[string]any)
			if !ok {
				errs = append(errs, strings.TrimPrefix(path+"."+k, ".")+": not in the schema (pruned)")
				continue
			}
			errs = append(errs, validate(path+"."+k, sub, val)...)
		}
	case "array":
		a, ok := v.([]any)
		if !ok {
			fail("not array: %T", v)
			return errs
		}
		items, _ := s["items"].(map[string]any)
		keys := asList(s["x-kubernetes-list-map-keys"])
		seen := map[string]bool{}
		for i, item := range a {
			p := fmt.Sprintf("%s[%d]", path, i)
			errs = append(errs, validate(p, items, item)...)
			if s["x-kubernetes-list-type"] != "map" {
				continue
			}
			var key []string
			for _, k := range keys {
				key = append(key, fmt.Sprintf("%s=%v", k, item.(map[string]any)[k.(string)]))
			}
			if k := strings.Join(key, ","); seen[k] {
				errs = append(errs, strings.TrimPrefix(p, ".")+": duplicate key "+k)
			} else {
				seen[k] = true
			}
		}
	case "string":
		str, ok := v.(string)
		if !ok {
			fail("not string: %T", v)
			return errs
		}
		n := utf8.RuneCountInString(str)
		if m, ok := s["minLength"].(float64); ok && n < int(m) {
			fail("shorter than %v: %q", m, str)
		}
		if m, ok := s["maxLength"].(float64); ok && n > int(m) {
			fail("longer than %v: %d characters", m, n)
		}
		if p, ok := s["pattern"].(string); ok && !regexp.MustCompile(p).MatchString(str) {
			fail("does not match %s: %q", p, str)
		}
		if s["format"] == "date-time" {
			if _, err := time.Parse(time.RFC3339Nano, str); err != nil {
				fail("not a date-time: %q", str)
			}
		}
	case "integer":
		var n float64
		ok := true
		switch x := v.(type) {
		case float64: // from JSON
			n = x
		case int: // set by a test
			n = float64(x)
		default:
			ok = false
		}
		if !ok || n != math.Trunc(n) {
			fail("not integer: %v", v)
			return errs
		}
		if m, ok := s["minimum"].(float64); ok && n < m {
			fail("below %v: %v", m, n)
		}
		if s["format"] == "int32" && (n < math.MinInt32 || n > math.MaxInt32) {
			fail("out of int32: %v", n)
		}
		if s["format"] == "int64" && (n < math.MinInt64 || n > math.MaxInt64) {
			fail("out of int64: %v", n)
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			fail("not boolean: %T", v)
		}
	default:
		fail("the test does not check the type %v: extend validate", typ)
	}
	return errs
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}
