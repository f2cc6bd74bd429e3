package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/printers"
)

// outputFlags are kubectl's -o/--output and --no-headers: the table (and
// -o wide) are this command's own; every other format is a printer of
// k8s.io/cli-runtime, from genericclioptions.PrintFlags.
type outputFlags struct {
	print     *genericclioptions.PrintFlags
	noHeaders bool
}

func newOutputFlags() *outputFlags {
	return &outputFlags{print: genericclioptions.NewPrintFlags("")}
}

// formats lists the values of -o, for the help, the errors and shell
// completion.
func (o *outputFlags) formats() []string {
	return append([]string{"wide"}, o.print.AllowedFormats()...)
}

// registerFlags registers --no-headers, a flag of this command's own table.
func (o *outputFlags) registerFlags(fs *flag.FlagSet) {
	fs.BoolVar(&o.noHeaders, "no-headers", o.noHeaders, "print the table (the default output, or -o wide) without its header lines")
}

// addFlags adds cli-runtime's printer flags: -o/--output and those of the
// templates.
func (o *outputFlags) addFlags(cmd *cobra.Command) {
	o.print.AddFlags(cmd)
	fs := cmd.Flags()
	// Managed fields are for API objects; these documents have none.
	_ = fs.MarkHidden("show-managed-fields")
	fs.Lookup("output").Usage = "output format: the table by default, or one of " + strings.Join(o.formats(), ", ") +
		" (jsonpath and the templates as -o jsonpath='{...}')"
	_ = cmd.RegisterFlagCompletionFunc("output", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return o.formats(), cobra.ShellCompDirectiveNoFileComp
	})
}

// printer returns the printer of -o, or nil for the table; wide is -o
// wide. An unknown format is a usage error.
func (o *outputFlags) printer() (p printers.ResourcePrinter, wide bool, err error) {
	format := *o.print.OutputFormat
	template := o.print.TemplatePrinterFlags.TemplateArgument
	switch {
	case format == "wide":
		return nil, true, nil
	case format == "" && (template == nil || *template == ""):
		return nil, false, nil
	}
	p, err = o.print.ToPrinter()
	if genericclioptions.IsNoCompatiblePrinterError(err) {
		return nil, false, usageError(fmt.Errorf("--output (%q) must be one of %s", format, strings.Join(o.formats(), ", ")))
	}
	if err != nil {
		return nil, false, usageError(err)
	}
	return p, false, nil
}

// isName reports whether -o name was asked for: it prints kind/name lines
// from a list of objects, where the others print a whole document.
func (o *outputFlags) isName() bool {
	return strings.EqualFold(*o.print.OutputFormat, "name")
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
