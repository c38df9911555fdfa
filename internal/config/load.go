package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Load reads, decodes, fills and validates the configuration file at path.
// Every error names the file, and where it can, the line and the key.
func Load(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("reading config: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes configuration text; name is the file name used in errors.
// An empty document gives the defaults.
func Parse(name string, data []byte) (Config, error) {
	c := Config{Store: Store{RetentionDays: DefaultRetentionDays}}
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("%s: %s", name, cleanYAMLError(err))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return Config{}, fmt.Errorf("%s:%d: a second YAML document; the config file holds one", name, extra.Line)
	}
	if root.Kind != 0 {
		doc := &root
		if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
			doc = doc.Content[0]
		}
		if !(doc.Kind == yaml.ScalarNode && doc.Tag == "!!null") {
			if err := checkKeys(name, doc, reflect.TypeOf(c), ""); err != nil {
				return Config{}, err
			}
			if err := doc.Decode(&c); err != nil {
				return Config{}, fmt.Errorf("%s: %s", name, cleanYAMLError(err))
			}
		}
	}
	c.fill()
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("%s: %w", name, err)
	}
	return c, nil
}

// checkKeys walks the YAML mapping n against struct type t and reports the
// first key that t does not have, with its line and column.
func checkKeys(file string, n *yaml.Node, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode {
		for i, el := range n.Content {
			if err := checkKeys(file, el, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		return nil
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			return nil
		}
		where := path
		if where == "" {
			where = "the top level"
		}
		return fmt.Errorf("%s:%d:%d: %s must be a mapping of keys to values", file, n.Line, n.Column, where)
	}
	fields := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		fields[tag] = f.Type
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		key := k.Value
		full := key
		if path != "" {
			full = path + "." + key
		}
		ft, ok := fields[key]
		if !ok {
			known := make([]string, 0, len(fields))
			for name := range fields {
				known = append(known, name)
			}
			sort.Strings(known)
			section := "at the top level"
			if path != "" {
				section = "in " + path
			}
			return fmt.Errorf("%s:%d:%d: unknown key %q %s (known keys: %s)", file, k.Line, k.Column, key, section, strings.Join(known, ", "))
		}
		if prev, dup := seen[key]; dup {
			return fmt.Errorf("%s:%d:%d: key %q given twice (first on line %d)", file, k.Line, k.Column, full, prev)
		}
		seen[key] = k.Line
		if err := checkKeys(file, v, ft, full); err != nil {
			return err
		}
	}
	return nil
}

// cleanYAMLError turns the decoder's "yaml: unmarshal errors:\n  line 3: …"
// into one line.
func cleanYAMLError(err error) string {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n")
	lines := strings.Split(msg, "\n")
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	return strings.Join(lines, "; ")
}
