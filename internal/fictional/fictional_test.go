package fictional

import (
	"go/scanner"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"

	"github.com/takedown-project/takedown/internal/registry"
)

// allowedNames are the real names that may appear; a name under one of
// them is allowed too. Each says why it must stay real. Keep it short: a
// test's name belongs under .example, .test or .invalid.
var allowedNames = map[string]string{
	// Import paths and module hosts.
	"github.com":  "import paths, links to projects",
	"golang.org":  "import paths",
	"go.uber.org": "import paths",
	"modernc.org": "import paths",
	// Specifications, schemas and sources a format or a document names.
	"x-arf.org":            "X-ARF's schema URL, written into every X-ARF report",
	"json-schema.org":      "JSON Schema's meta-schema URL",
	"w3.org":               "XML namespaces (SVG)",
	"c2sp.org":             "the signed-note and checkpoint specifications",
	"letsencrypt.org":      "ACME directory URLs",
	"naturalearthdata.com": "the source of the world map's shapes",
	"iptoasn.com":          "the source of the enricher's IP-to-ASN table",
	"maxmind.com":          "the vendor of the GeoIP databases the enricher reads",
	"python.org":           "Python's documentation",
	// Organisations named for what they are, not as a domain.
	"godaddy.com": `"GoDaddy.com, LLC", a registrar's legal name in the registrar column`,
	"nic.at":      "the .at registry's name in RegistryOf's table",
	"nic.br":      "the .br registry's name in RegistryOf's table",
	// Kept under a real TLD: the test is about that TLD's registry (the
	// registry's table maps no reserved TLD), and the label says so.
	"c-fictional.de": "internal/registry: an import row whose registry is DENIC",
	"d-fictional.ru": "internal/registry: the package for .ru's registry",
	// A negative case: never imported, served or exported.
	"notexample.com": "internal/servedset: ends in example.com without being under it",
	// Field names and config keys that end like a domain.
	"source.geolocation.cc":      "an IntelMQ field name",
	"destination.geolocation.cc": "an IntelMQ field name",
	"top.at":                     "a Go field in a comment (internal/sim)",
}

// allowedPrefixes are dotted words that are not domains.
var allowedPrefixes = map[string]string{
	"js.api.": "NATS JetStream API subjects ($JS.API.INFO)",
}

// allowedFiles are files kept as they are, with the reason.
var allowedFiles = map[string]string{
	"internal/ja4/testdata/foxio-vectors.txt": "FoxIO's published JA4 vectors: real captures, checked as published",
	"internal/fictional/fictional_test.go":    "this checker's own cases of names it must find",
}

// pendingDirs are packages left out of the walk while their names are
// being changed on another branch; none now.
var pendingDirs []string

// otherTLDs are real TLDs that the registry's table does not name: some
// that test data used, and the ones botnets favoured.
var otherTLDs = map[string]bool{
	"io": true, "ws": true, "me": true, "xyz": true, "top": true, "tk": true, "ga": true, "cf": true,
	"gq": true, "online": true, "site": true, "club": true, "su": true,
}

// realTLD reports whether tld (lower case, A-label) is a TLD of the root
// zone that seized names come under: the registry's table (com, de, ru, …,
// and the IDN TLDs it knows) and otherTLDs. Not every TLD of the root
// zone: the new generic ones (.events, .zone, .run, .city) are also words
// of this project's config keys, NATS subjects and field names.
func realTLD(tld string) bool {
	if tld == "name" {
		// .name is in the registry's table, and "name" ends field
		// names (malware.name, central.name) far more often than a
		// seized name.
		return false
	}
	return registry.RegistryOf(tld) != "" || otherTLDs[tld]
}

// allowed reports whether name is on the allow-lists.
func allowed(name string) bool {
	for p := range allowedPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	for {
		if _, ok := allowedNames[name]; ok {
			return true
		}
		i := strings.IndexByte(name, '.')
		if i < 0 {
			return false
		}
		name = name[i+1:]
	}
}

// fileExtensions are TLDs that are far more often a file's extension in
// this repository's text (README.md, run.sh) than a domain.
var fileExtensions = map[string]bool{
	"md": true, "sh": true, "py": true, "pl": true, "rs": true, "so": true, "ps": true,
	"zip": true, "mov": true, "in": true, "am": true, "ac": true, "mk": true, "ml": true,
}

// nameRE matches a name of at least two labels; letters of any script
// count, so that an IDN is seen whole.
var nameRE = regexp.MustCompile(`(?:[\p{L}\p{N}_](?:[\p{L}\p{N}_-]*[\p{L}\p{N}])?\.)+[\p{L}][\p{L}\p{N}-]*[\p{L}\p{N}]`)

// mayHaveRealName reports whether a label after a dot in text is a real
// TLD or not ASCII: a cheap test before the regular expression, which
// most lines need not meet (the walk takes a second, not ten, under -race).
func mayHaveRealName(text string) bool {
	for i := strings.IndexByte(text, '.'); i >= 0; {
		j := i + 1
		for j < len(text) && (text[j] == '-' || text[j] >= '0' && text[j] <= '9' || text[j]|0x20 >= 'a' && text[j]|0x20 <= 'z') {
			j++
		}
		if j < len(text) && text[j] >= utf8.RuneSelf || realTLD(strings.ToLower(text[i+1:j])) {
			return true
		}
		k := strings.IndexByte(text[j:], '.')
		if k < 0 {
			return false
		}
		i = j + k
	}
	return false
}

// realNames returns the names in text that are under a real TLD and
// neither reserved nor allowed.
func realNames(text string) []string {
	if !mayHaveRealName(text) {
		return nil
	}
	var out []string
	for _, loc := range nameRE.FindAllStringIndex(text, -1) {
		m := text[loc[0]:loc[1]]
		if r, _ := utf8.DecodeRuneInString(text[loc[1]:]); r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) {
			continue // a config key such as listen.ca_dir
		}
		tld := m[strings.LastIndexByte(m, '.')+1:]
		// A Go or JavaScript selector (ev.Host, t.Run): the last label
		// capitalised. (A name written Bücher.De is missed with them.)
		if r, n := utf8.DecodeRuneInString(tld); unicode.IsUpper(r) && tld[n:] == strings.ToLower(tld[n:]) {
			continue
		}
		if fileExtensions[strings.ToLower(tld)] {
			continue
		}
		name, err := idna.Lookup.ToASCII(m)
		if err != nil {
			name = m
		}
		name = strings.ToLower(name)
		if Reserved(name) {
			continue
		}
		// The name and the names it begins with: an RPZ owner name
		// carries the seized name first, before the policy zone's name.
		labels := strings.Split(name, ".")
		for i := len(labels); i >= 2; i-- {
			if n := strings.Join(labels[:i], "."); realTLD(labels[i-1]) && !Reserved(n) && !allowed(n) {
				out = append(out, m)
				break
			}
		}
	}
	return out
}

func TestReserved(t *testing.T) {
	for _, n := range []string{"example.com", "a.example.net", "b.example.org", "x.example", "x.test", "x.invalid", "localhost", "a.ru.example"} {
		if !Reserved(n) {
			t.Errorf("Reserved(%q) = false", n)
		}
	}
	for _, n := range []string{"c-fictional.de", "d-fictional.ru", "example.com.evil.net", "notexample.com", "example.co", "example.com.", "test.com"} {
		if Reserved(n) {
			t.Errorf("Reserved(%q) = true", n)
		}
	}
}

func TestRealNames(t *testing.T) {
	for _, text := range []string{
		"partystore.com", "www.bestcards.DE", "UPPER-CASE.COM", "MiXeD.NeT.", "bücher.de", "ПРИМЕР.рф",
		"evil.com.rpz.takedown.local.", "abuse@isp-a.net", "https://c2.ru/gate.php", "Host: x.xyz\r\n",
		`"dga-0001-waledac.info"`, "a,b.biz,c",
	} {
		if got := realNames(text); len(got) != 1 {
			t.Errorf("realNames(%q) = %q, want one name", text, got)
		}
	}
	for _, text := range []string{
		"partystore.example", "x.example.com", "XN--BCHER-KVA.test", "sink.invalid", "a.ru.example",
		"ПРИМЕР.испытание", "github.com/miekg/dns", "ev.Host", "t.Run(", "Foo.De", "listen.ca_dir", "README.md",
		"run.sh", "source.geolocation.cc", "malware.name", "$JS.API.INFO", "https://www.x-arf.org/schema",
		"GoDaddy.com, LLC", "rpz.takedown.local", "192.0.2.1", "v1.2.3",
	} {
		if got := realNames(text); len(got) != 0 {
			t.Errorf("realNames(%q) = %q, want none", text, got)
		}
	}
}

// goLines returns the string literals (unquoted) and comments of a Go
// file, by the line they start on.
func goLines(path string, src []byte) map[int]string {
	lines := map[int]string{}
	var s scanner.Scanner
	fset := token.NewFileSet()
	s.Init(fset.AddFile(path, -1, len(src)), src, nil, scanner.ScanComments)
	for {
		pos, tok, lit := s.Scan()
		if tok == token.EOF {
			return lines
		}
		if tok != token.STRING && tok != token.CHAR && tok != token.COMMENT {
			continue
		}
		line := fset.Position(pos).Line
		if tok == token.COMMENT || strings.HasPrefix(lit, "`") {
			// Comments and raw strings keep their lines.
			for i, l := range strings.Split(lit, "\n") {
				lines[line+i] += " " + l
			}
			continue
		}
		if u, err := strconv.Unquote(lit); err == nil {
			lit = u
		}
		lines[line] += " " + strings.ReplaceAll(lit, "\n", " ")
	}
}

// scanned reports whether the walk reads path (slash-separated, relative
// to the repository's root): Go files (their strings and comments), test
// data, documentation, configurations, scripts, CSV, text and JSON files.
func scanned(path string) bool {
	if strings.Contains("/"+path, "/testdata/") {
		return true
	}
	switch filepath.Ext(path) {
	case ".go", ".md", ".yaml", ".yml", ".sh", ".py", ".conf", ".service", ".example", ".csv", ".txt", ".json", ".html":
		return true
	}
	return false
}

// finding is a line with names under real TLDs.
type finding struct {
	file  string
	line  int
	names []string
}

// TestNoRealNames walks the repository and fails on every name under a
// real TLD in its Go files' strings and comments, its test data, its
// documentation, example configurations and scripts, naming the file and
// line.
func TestNoRealNames(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("the repository's root: %v", err)
	}
	files := 0
	var found []finding
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := filepath.ToSlash(strings.TrimPrefix(path, root+string(filepath.Separator)))
		if d.IsDir() {
			if d.Name() == ".git" || d.Name() == "node_modules" || slices.Contains(pendingDirs, rel+"/") {
				return filepath.SkipDir
			}
			return nil
		}
		if _, ok := allowedFiles[rel]; ok || !scanned(rel) {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		lines := map[int]string{}
		if strings.HasSuffix(rel, ".go") {
			lines = goLines(rel, src)
		} else {
			for i, l := range strings.Split(string(src), "\n") {
				lines[i+1] = l
			}
		}
		for i, line := range lines {
			if n := realNames(line); len(n) > 0 {
				found = append(found, finding{rel, i, n})
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 100 {
		t.Fatalf("only %d files read under %s", files, root)
	}
	slices.SortFunc(found, func(a, b finding) int {
		if c := strings.Compare(a.file, b.file); c != 0 {
			return c
		}
		return a.line - b.line
	})
	for _, f := range found {
		t.Errorf("%s:%d: %s: under a real TLD; use a name under .example, .test or .invalid, or under example.com, .net or .org",
			f.file, f.line, strings.Join(f.names, ", "))
	}
}
