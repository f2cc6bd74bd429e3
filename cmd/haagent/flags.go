package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/spf13/pflag"
	"sigs.k8s.io/yaml"
)

// listFlag is a repeatable flag that also splits on commas.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

// Type names the value in the help, as pflag's string lists do.
func (l *listFlag) Type() string { return "strings" }

func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// envFallbacks are the flags a DaemonSet fills through the downward API,
// with the variables tried in order.
var envFallbacks = map[string][]string{
	"node-name":      {"NODE_NAME"},
	"advertise-addr": {"HOST_IP", "POD_IP"},
	"namespace":      {"POD_NAMESPACE"},
}

// sections are config-file keys that are not flags; their raw JSON is
// handed to the component that owns them.
var sections = map[string]bool{"checks": true}

// settle applies, to every flag not given on the command line, first its
// environment variable and then the config file's value. So the order of
// precedence is: command line, environment, config file, default. It
// returns the file's sections (such as "checks") as raw JSON.
func settle(fs *pflag.FlagSet, configPath string, getenv func(string) string) (map[string]json.RawMessage, error) {
	given := map[string]bool{}
	fs.Visit(func(f *pflag.Flag) { given[f.Name] = true })

	names := make([]string, 0, len(envFallbacks))
	for n := range envFallbacks {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		if given[name] || fs.Lookup(name) == nil {
			continue
		}
		for _, env := range envFallbacks[name] {
			if v := getenv(env); v != "" {
				if err := setValue(fs, name, v); err != nil {
					return nil, fmt.Errorf("environment %s: %v", env, err)
				}
				given[name] = true
				break
			}
		}
	}

	if configPath == "" {
		return nil, nil
	}
	data, err := os.ReadFile(configPath)
	if err != nil {
		return nil, fmt.Errorf("--config: %v", err)
	}
	return applyConfigFile(fs, configPath, data, given)
}

// applyConfigFile sets flags from a YAML file whose keys are the flag names.
func applyConfigFile(fs *pflag.FlagSet, path string, data []byte, given map[string]bool) (map[string]json.RawMessage, error) {
	var doc map[string]json.RawMessage
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("config file %s: %v", path, err)
	}
	if bytes.Equal(bytes.TrimSpace(js), []byte("null")) {
		return nil, nil // empty file
	}
	if err := json.Unmarshal(js, &doc); err != nil {
		return nil, fmt.Errorf("config file %s: top level must be a map of settings: %v", path, err)
	}
	keys := make([]string, 0, len(doc))
	for k := range doc {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := map[string]json.RawMessage{}
	for _, key := range keys {
		raw := doc[key]
		if sections[key] {
			out[key] = raw
			continue
		}
		if key == "config" || key == "help" || fs.Lookup(key) == nil {
			return nil, fmt.Errorf("config file %s: unknown setting %q (settings are the flag names of `haagent run -h`)", path, key)
		}
		if given[key] {
			continue
		}
		values, err := scalars(raw)
		if err != nil {
			return nil, fmt.Errorf("config file %s: %s: %v", path, key, err)
		}
		for _, v := range values {
			if err := setValue(fs, key, v); err != nil {
				return nil, fmt.Errorf("config file %s: %s: %v", path, key, err)
			}
		}
	}
	return out, nil
}

// setValue sets a flag from the environment or the config file. The error
// is the value's own, without pflag's "invalid argument ... for --flag",
// since the caller names the source.
func setValue(fs *pflag.FlagSet, name, value string) error {
	f := fs.Lookup(name)
	if f == nil {
		return fmt.Errorf("no flag --%s", name)
	}
	return f.Value.Set(value)
}

// scalars turns a JSON value into flag text: a string, number or boolean
// as one value, a list as one value per item.
func scalars(raw json.RawMessage) ([]string, error) {
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err == nil {
		var out []string
		for _, item := range list {
			s, err := scalar(item)
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		}
		return out, nil
	}
	s, err := scalar(raw)
	if err != nil {
		return nil, err
	}
	return []string{s}, nil
}

func scalar(raw json.RawMessage) (string, error) {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", err
	}
	switch x := v.(type) {
	case string:
		return x, nil
	case bool, float64:
		return strings.TrimSpace(string(raw)), nil
	case nil:
		return "", fmt.Errorf("value is empty")
	default:
		return "", fmt.Errorf("value must be a string, number, boolean or list of those")
	}
}
