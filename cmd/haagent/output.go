package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/printers"
)

// outputFlags are kubectl's -o/--output, --template and --no-headers: the
// table (and -o wide) are this command's own; every other format is a
// printer of k8s.io/cli-runtime/pkg/printers, chosen as kubectl chooses
// it, but for Go templates: a text/template in the binary makes the linker
// keep every exported method of every type (about 8 MB more code, mapped
// into the memory of the agent on every node), and jsonpath answers the
// same questions.
type outputFlags struct {
	format    string
	template  string
	noHeaders bool
}

func newOutputFlags() *outputFlags { return &outputFlags{} }

// outputFormats are kubectl's values of -o, in kubectl's order, less the
// Go templates; jsonpath takes its expression after "=" or from
// --template.
var outputFormats = []string{"json", "yaml", "kyaml", "name", "jsonpath", "jsonpath-as-json", "jsonpath-file"}

// formats lists the values of -o, for the help, the errors and shell
// completion.
func (o *outputFlags) formats() []string {
	return append([]string{"wide"}, outputFormats...)
}

// registerFlags registers --no-headers, a flag of this command's own table.
func (o *outputFlags) registerFlags(fs *flag.FlagSet) {
	fs.BoolVar(&o.noHeaders, "no-headers", o.noHeaders, "print the table (the default output, or -o wide) without its header lines")
}

// addFlags adds kubectl's printer flags: -o/--output and --template.
func (o *outputFlags) addFlags(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVarP(&o.format, "output", "o", "", "output format: the table by default, or one of "+strings.Join(o.formats(), ", ")+
		" (jsonpath and the templates as -o jsonpath='{...}')")
	fs.StringVar(&o.template, "template", "", "jsonpath expression, or path to a file of one, to use with -o jsonpath, -o jsonpath-as-json or -o jsonpath-file")
	_ = cmd.RegisterFlagCompletionFunc("output", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return o.formats(), cobra.ShellCompDirectiveNoFileComp
	})
}

// printer returns the printer of -o, or nil for the table; wide is -o
// wide. An unknown format is a usage error.
func (o *outputFlags) printer() (p printers.ResourcePrinter, wide bool, err error) {
	format, arg, hasArg := strings.Cut(o.format, "=")
	if !hasArg {
		arg = o.template
	}
	if format == "" && o.template != "" {
		format = "jsonpath"
	}
	readFile := func() (string, error) {
		if arg == "" {
			return "", fmt.Errorf("-o %s needs a file name", format)
		}
		data, err := os.ReadFile(arg)
		if err != nil {
			return "", fmt.Errorf("-o %s: %w", format, err)
		}
		return string(data), nil
	}
	switch format {
	case "":
		return nil, false, nil
	case "wide":
		return nil, true, nil
	case "json":
		return &printers.JSONPrinter{}, false, nil
	case "yaml":
		return &printers.YAMLPrinter{}, false, nil
	case "kyaml":
		return &printers.KYAMLPrinter{}, false, nil
	case "name":
		return &printers.NamePrinter{}, false, nil
	case "jsonpath", "jsonpath-as-json", "jsonpath-file":
		if format == "jsonpath-file" {
			if arg, err = readFile(); err != nil {
				return nil, false, usageError(err)
			}
		}
		if arg == "" {
			return nil, false, usageError(fmt.Errorf("-o %s needs an expression: -o %s='{...}'", format, format))
		}
		jp, err := printers.NewJSONPathPrinter(arg)
		if err != nil {
			return nil, false, usageError(fmt.Errorf("-o %s: %w", format, err))
		}
		jp.AllowMissingKeys(true)
		jp.EnableJSONOutput(format == "jsonpath-as-json")
		return jp, false, nil
	}
	return nil, false, usageError(fmt.Errorf("--output (%q) must be one of %s", o.format, strings.Join(o.formats(), ", ")))
}

// isName reports whether -o name was asked for: it prints kind/name lines
// from a list of objects, where the others print a whole document.
func (o *outputFlags) isName() bool {
	return strings.EqualFold(o.format, "name")
}

// document is a JSON document for the printers: -o json and yaml print it
// as it is, jsonpath and the templates query it.
func document(v any) (runtime.Object, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return &runtime.Unknown{Raw: data, ContentType: runtime.ContentTypeJSON}, nil
}

// nameList is a list of objects of one kind and group by name, for -o
// name: kind[.group]/name lines.
func nameList(kind, apiVersion string, names []string) runtime.Object {
	list := &unstructured.UnstructuredList{Object: map[string]any{"kind": "List", "apiVersion": "v1"}}
	for _, n := range names {
		item := unstructured.Unstructured{Object: map[string]any{}}
		item.SetKind(kind)
		if apiVersion != "" {
			item.SetAPIVersion(apiVersion)
		}
		item.SetName(n)
		list.Items = append(list.Items, item)
	}
	return list
}

// skipLine writes to w all but the first line written to it: the header
// of a table printed by code that always prints one.
type skipLine struct {
	w       io.Writer
	skipped bool
}

func (s *skipLine) Write(p []byte) (int, error) {
	n := len(p)
	if !s.skipped {
		i := slices.Index(p, '\n')
		if i < 0 {
			return n, nil
		}
		s.skipped = true
		p = p[i+1:]
	}
	if _, err := s.w.Write(p); err != nil {
		return 0, err
	}
	return n, nil
}

var errNoAPI = errors.New("no Kubernetes API: no kubeconfig (--kubeconfig, $KUBECONFIG, ~/.kube/config) and not in a pod")
