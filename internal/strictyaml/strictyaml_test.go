package strictyaml

import (
	"fmt"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

type doc struct {
	Name  string            `yaml:"name"`
	Level int               `yaml:"level"`
	API   section           `yaml:"api"`
	Next  *section          `yaml:"next"`
	Rules []rule            `yaml:"rules"`
	Tags  map[string]string `yaml:"tags"`
	Skip  string            `yaml:"-"`
	Bare  string
}

type section struct {
	Listen string   `yaml:"listen"`
	Token  string   `yaml:"token_file,omitempty"`
	Hosts  []host   `yaml:"hosts"`
	List   []string `yaml:"list"`
}

type host struct {
	Addr string `yaml:"addr"`
}

type rule struct {
	Name  string `yaml:"name"`
	Match struct {
		Path    string `yaml:"path"`
		Headers []host `yaml:"headers"`
	} `yaml:"match"`
}

// ruleItems names the rules as the classification rules do.
func ruleItems(path string, i int, n *yaml.Node) string {
	if path != "rules" {
		return ""
	}
	s := fmt.Sprintf("rule %d", i+1)
	if n.Kind == yaml.MappingNode {
		for j := 0; j+1 < len(n.Content); j += 2 {
			if n.Content[j].Value == "name" {
				return s + fmt.Sprintf(" %q", n.Content[j+1].Value)
			}
		}
	}
	return s
}

var opts = Options{Kind: "test file", Item: ruleItems}

func TestDecode(t *testing.T) {
	d := doc{Name: "default", Level: 3}
	top, err := Decode("t.yaml", []byte(`
name: x
api:
  listen: 127.0.0.1:1
  hosts: [{addr: a}, {addr: b}]
next: {list: [p, q]}
rules:
  - &r {name: one, match: {path: '^/'}}
  - *r
tags: {anything: goes}
`), &d, opts)
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "x" || d.Level != 3 || d.API.Hosts[1].Addr != "b" || d.Next == nil || d.Next.List[1] != "q" ||
		len(d.Rules) != 2 || d.Rules[1].Match.Path != "^/" || d.Tags["anything"] != "goes" {
		t.Errorf("decoded %+v", d)
	}
	if top == nil || top.Kind != yaml.MappingNode {
		t.Errorf("top node %+v", top)
	}
	for _, empty := range []string{"", "# nothing\n", "---\n", "~\n", "null\n"} {
		d := doc{Name: "default"}
		if _, err := Decode("e.yaml", []byte(empty), &d, Options{}); err != nil || d.Name != "default" {
			t.Errorf("%q: %v, name %q: an empty document sets nothing", empty, err, d.Name)
		}
	}
	if _, err := Decode("t.yaml", []byte("api: ~\nnext:\n"), &d, opts); err != nil {
		t.Errorf("a null section is an empty one: %v", err)
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"unknown top key", "name: x\nlevl: 1\n", `t.yaml:2:1: unknown key "levl" at the top level (known keys: api, level, name, next, rules, tags)`},
		{"no key for a field without tag", "Bare: x\n", `t.yaml:1:1: unknown key "Bare" at the top level`},
		{"no key for a field tagged -", "Skip: x\n", `t.yaml:1:1: unknown key "Skip"`},
		{"unknown nested key", "api:\n  listen: a\n  tokn: x\n", `t.yaml:3:3: unknown key "tokn" in api (known keys: hosts, list, listen, token_file)`},
		{"unknown key behind a pointer", "next: {lisen: a}\n", `t.yaml:1:8: unknown key "lisen" in next`},
		{"unknown key in a list", "api:\n  hosts:\n    - addr: a\n    - adr: b\n", `t.yaml:4:7: unknown key "adr" in api.hosts[1] (known keys: addr)`},
		{"unknown key in a named item", "rules:\n  - name: x\n    match:\n      pth: a\n", `t.yaml:4:7: unknown key "pth" in rule 1 "x": match (known keys: headers, path)`},
		{"unknown key below a named item", "rules:\n  - {match: {headers: [{nme: a}]}}\n", `t.yaml:2:25: unknown key "nme" in rule 1: match.headers[0] (known keys: addr)`},
		{"duplicate top key", "name: a\nname: b\n", `t.yaml:2:1: key "name" given twice at the top level (first on line 1)`},
		{"duplicate nested key", "api:\n  listen: a\n  listen: b\n", `t.yaml:3:3: key "listen" given twice in api (first on line 2)`},
		{"duplicate key in a named item", "rules:\n  - name: x\n    name: y\n", `t.yaml:3:5: key "name" given twice in rule 1 "x" (first on line 2)`},
		{"top level not a mapping", "- a\n- b\n", `t.yaml:1:1: the top level must be a mapping of keys to values`},
		{"section not a mapping", "api: 5\n", `t.yaml:1:6: api must be a mapping of keys to values`},
		{"item not a mapping", "rules: [x]\n", `t.yaml:1:9: rule 1 must be a mapping of keys to values`},
		{"unnamed item not a mapping", "api: {hosts: [x]}\n", `t.yaml:1:15: api.hosts[0] must be a mapping of keys to values`},
		{"second document", "name: a\n---\nname: b\n", `t.yaml:2: a second YAML document; a test file holds one`},
		{"bad second document", "name: a\n---\n[\n", `t.yaml: `},
		{"syntax", "api: [\n", `t.yaml: `},
		{"wrong type on one line", "level: lots\napi: {hosts: 7}\n", `t.yaml: line 1: cannot unmarshal !!str ` + "`lots`" + ` into int; line 2: cannot unmarshal`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var d doc
			_, err := Decode("t.yaml", []byte(tc.yaml), &d, opts)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("got %v\nwant %s…", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error of more than one line: %q", err)
			}
		})
	}
}

// FuzzDecode: Decode never panics, every error names the file, and a
// document it accepts decodes the same with the plain decoder.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		"", "name: x\napi: {listen: a, hosts: [{addr: b}]}\n", "api: 5\n", "- a\n",
		"rules:\n  - &r {name: one, match: {path: '^/'}}\n  - *r\n", "a: &x {b: 1}\nc: *x\n",
		"name: a\nname: b\n", "name: a\n---\nname: b\n", "next: ~\ntags: {a: b}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var d doc
		_, err := Decode("f.yaml", data, &d, opts)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.yaml") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		var plain doc
		if err := yaml.Unmarshal(data, &plain); err != nil {
			t.Fatalf("accepted, but the plain decoder fails: %v", err)
		}
	})
}
