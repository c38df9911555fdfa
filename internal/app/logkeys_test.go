package app

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/takedown-project/takedown/internal/config"
)

// TestComponentLoggedOnce: serve with every sink, the transfer server and
// the rules logs each line with one "component" key at most, the one its
// package sets (a key given twice is ambiguous: a JSON reader keeps either
// value, and log queries by component miss the lines).
func TestComponentLoggedOnce(t *testing.T) {
	dir := t.TempDir()
	writeText(t, filepath.Join(dir, "rules.yaml"), rulesFamily("waledac"))
	cfg, err := config.Parse("test.yaml", []byte(fmt.Sprintf(`data_dir: %s
api: {listen: "127.0.0.1:0"}
dns: {listen: ["127.0.0.1:0"]}
transfer: {listen: ["127.0.0.1:0"]}
listen:
  http: ["127.0.0.1:0"]
  https: ["127.0.0.1:0"]
  smtp: ["127.0.0.1:0"]
  tcp: ["127.0.0.1:0"]
  udp: ["127.0.0.1:0"]
classify: {rules: %s}
`, filepath.Join(dir, "data"), filepath.Join(dir, "rules.yaml"))))
	if err != nil {
		t.Fatal(err)
	}
	s := serveLogged(t, cfg, Hooks{})
	s.stop(t)
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(s.logs.String()), "\n") {
		keys, err := topLevelKeys([]byte(line))
		if err != nil {
			t.Fatalf("log line %s: %v", line, err)
		}
		n := 0
		for _, k := range keys {
			if k == "component" {
				n++
			}
		}
		if n > 1 {
			t.Errorf("component logged %d times: %s", n, line)
		}
		var rec struct{ Component string }
		json.Unmarshal([]byte(line), &rec) //nolint:errcheck // read above
		seen[rec.Component] = true
	}
	for _, c := range []string{"dnssink", "xfr", "httpsink", "smtpsink", "rawsink", "classify"} {
		if !seen[c] {
			t.Errorf("no line of component %s:\n%s", c, s.logs)
		}
	}
}

// topLevelKeys returns the keys of the JSON object line in their order,
// repeats included.
func topLevelKeys(line []byte) ([]string, error) {
	dec := json.NewDecoder(bytes.NewReader(line))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("not a JSON object (%v)", err)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return keys, err
		}
		keys = append(keys, tok.(string))
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return keys, err
		}
	}
	return keys, nil
}
