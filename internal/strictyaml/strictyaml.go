// Package strictyaml decodes the one YAML document of a file into a Go
// struct strictly, the same way for every file a user writes (the config
// file, the classification rules): a key the struct does not have, a key
// given twice, a section that is not a mapping and a second document are
// errors, and every error names the file and, where it can, the line,
// column and key:
//
//	takedown.yaml:3:3: unknown key "tokn" in api (known keys: listen, token_file)
//	rules.yaml:5:5: key "family" given twice in rule 1 "x" (first on line 4)
//
// The decoder of go.yaml.in/yaml/v3 alone would take an unknown key
// silently (or, with KnownFields, without its line and the keys that
// exist), and the last of two keys given twice: in a config file both are
// a setting that is not what the user believes.
//
// The keys are those of the struct fields' `yaml` tags; a field without a
// tag, or tagged "-", is not a key.
package strictyaml

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Options are the knobs of one Decode.
type Options struct {
	// Kind is what the file is, for the error about a second document
	// ("a second YAML document; a config file holds one"). Default "file".
	Kind string
	// Item, if set, names the item i (from 0) of the sequence at path in
	// errors, e.g. `rule 2 "waledac"` for the items of "rules"; the keys
	// below such an item follow its name after ": " (`in rule 2
	// "waledac": match`). An empty name keeps the default, path[i], with
	// the keys below after ".".
	Item func(path string, i int, item *yaml.Node) string
}

// Decode decodes data, the text of the file name, into v, a pointer to a
// struct. Fields that the document does not set keep the values v holds,
// so that v may come with defaults. An empty document, or one that is
// only null, sets nothing. It returns the document's top node (nil for an
// empty document), for callers that point at nodes in errors of their own.
func Decode(name string, data []byte, v any, o Options) (*yaml.Node, error) {
	if o.Kind == "" {
		o.Kind = "file"
	}
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %s", name, oneLine(err))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, fmt.Errorf("%s: %s", name, oneLine(err))
		}
		return nil, fmt.Errorf("%s:%d: a second YAML document; a %s holds one", name, extra.Line, o.Kind)
	}
	if root.Kind == 0 {
		return nil, nil
	}
	doc := &root
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		doc = doc.Content[0]
	}
	if isNull(doc) {
		return doc, nil
	}
	c := checker{file: name, item: o.Item}
	if err := c.keys(doc, reflect.TypeOf(v), "", false); err != nil {
		return nil, err
	}
	if err := doc.Decode(v); err != nil {
		return nil, fmt.Errorf("%s: %s", name, oneLine(err))
	}
	return doc, nil
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

// checker walks a document against the type it is decoded into.
type checker struct {
	file string
	item func(path string, i int, item *yaml.Node) string
}

// keys checks node n against type t at path, and reports the first key
// that t does not have or that is given twice, and the first mapping of t
// that is something else. named says that path is an Item name.
func (c checker) keys(n *yaml.Node, t reflect.Type, path string, named bool) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode {
		for i, el := range n.Content {
			p, named := fmt.Sprintf("%s[%d]", path, i), false
			if c.item != nil {
				if s := c.item(path, i, el); s != "" {
					p, named = s, true
				}
			}
			if err := c.keys(el, t.Elem(), p, named); err != nil {
				return err
			}
		}
		return nil
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		if isNull(n) {
			return nil
		}
		where := path
		if where == "" {
			where = "the top level"
		}
		return fmt.Errorf("%s:%d:%d: %s must be a mapping of keys to values", c.file, n.Line, n.Column, where)
	}
	fields := map[string]reflect.Type{}
	var known []string
	for i := range t.NumField() {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if tag != "" && tag != "-" {
			fields[tag] = f.Type
			known = append(known, tag)
		}
	}
	slices.Sort(known)
	in := "at the top level"
	if path != "" {
		in = "in " + path
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		ft, ok := fields[k.Value]
		if !ok {
			return fmt.Errorf("%s:%d:%d: unknown key %q %s (known keys: %s)", c.file, k.Line, k.Column, k.Value, in, strings.Join(known, ", "))
		}
		if prev, dup := seen[k.Value]; dup {
			return fmt.Errorf("%s:%d:%d: key %q given twice %s (first on line %d)", c.file, k.Line, k.Column, k.Value, in, prev)
		}
		seen[k.Value] = k.Line
		sub := k.Value
		switch {
		case named:
			sub = path + ": " + k.Value
		case path != "":
			sub = path + "." + k.Value
		}
		if err := c.keys(v, ft, sub, false); err != nil {
			return err
		}
	}
	return nil
}

// oneLine turns the decoder's multi-line messages ("yaml: unmarshal
// errors:\n  line 3: …") into one line.
func oneLine(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n")
	lines := strings.Split(msg, "\n")
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	return strings.Join(lines, "; ")
}
