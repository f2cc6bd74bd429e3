package main

import (
	"flag"
	"reflect"
	"strconv"
	"time"

	"github.com/spf13/pflag"
)

// addGoFlags adds the flags registered on a Go flag set (as the agent's
// components register theirs, with RegisterFlags(*flag.FlagSet)) to fs,
// where they are spelled --name. Values of the basic kinds also get
// pflag's type names in the help and the reason in their parse errors: the
// flag package says only "parse error" for a bad duration or number.
func addGoFlags(fs *pflag.FlagSet, gfs *flag.FlagSet) {
	fs.AddGoFlagSet(gfs)
	gfs.VisitAll(func(g *flag.Flag) {
		f := fs.Lookup(g.Name)
		if f == nil || f.Value == nil {
			return
		}
		if _, native := g.Value.(pflag.Value); native {
			return
		}
		getter, ok := g.Value.(flag.Getter)
		if !ok {
			// A flag.Func: text, handed to its function.
			f.Value = &goValue{Value: g.Value, typ: "string"}
			return
		}
		v := &goValue{Value: g.Value}
		switch getter.Get().(type) {
		case bool:
			v.typ, v.check = "bool", func(s string) error { _, err := strconv.ParseBool(s); return err }
		case int:
			v.typ, v.check = "int", func(s string) error { _, err := strconv.ParseInt(s, 0, strconv.IntSize); return err }
		case int64:
			v.typ, v.check = "int64", func(s string) error { _, err := strconv.ParseInt(s, 0, 64); return err }
		case uint:
			v.typ, v.check = "uint", func(s string) error { _, err := strconv.ParseUint(s, 0, strconv.IntSize); return err }
		case uint64:
			v.typ, v.check = "uint64", func(s string) error { _, err := strconv.ParseUint(s, 0, 64); return err }
		case float64:
			v.typ, v.check = "float64", func(s string) error { _, err := strconv.ParseFloat(s, 64); return err }
		case time.Duration:
			v.typ, v.check = "duration", func(s string) error { _, err := time.ParseDuration(s); return err }
		case string:
			v.typ = "string"
		default:
			return // pflag's wrapper, named after the value's type
		}
		f.Value = v
		if reflect.ValueOf(getter.Get()).IsZero() {
			f.DefValue = "" // no "(default 0s)" in the help
		}
	})
}

// goValue is a Go flag.Value as a pflag.Value.
type goValue struct {
	flag.Value
	typ   string
	check func(string) error // the parse error with its reason, if any
}

func (v *goValue) Type() string { return v.typ }

func (v *goValue) Set(s string) error {
	if v.check != nil {
		if err := v.check(s); err != nil {
			return err
		}
	}
	return v.Value.Set(s)
}

// IsBoolFlag makes pflag accept --flag alone for a boolean.
func (v *goValue) IsBoolFlag() bool { return v.typ == "bool" }
