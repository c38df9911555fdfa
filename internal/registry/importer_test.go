package registry

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

func TestParseDomainListFormats(t *testing.T) {
	for _, tc := range []struct {
		name, data string
		want       []ImportLine
	}{
		{"plain", "a.example.com\nB.EXAMPLE.NET.\n", []ImportLine{{Line: 1, Input: "a.example.com", Name: "a.example.com", Registry: "Verisign"}, {Line: 2, Input: "B.EXAMPLE.NET.", Name: "b.example.net", Registry: "Verisign"}}},
		{"crlf bom comments blanks", "\ufeff# list\r\n\r\n  a.example.com  \r\n#b.example.com\r\nc.test", []ImportLine{{Line: 3, Input: "a.example.com", Name: "a.example.com", Registry: "Verisign"}, {Line: 5, Input: "c.test", Name: "c.test"}}},
		// c-fictional.de: a registry outside Verisign and PIR (.de → DENIC) needs
		// a real TLD; the label says the name is made up.
		{"csv no header", "a.example.com,GoDaddy,waledac\nb.example.org,,rustock\nc-fictional.de,DENIC member\n", []ImportLine{
			{Line: 1, Input: "a.example.com", Name: "a.example.com", Registrar: "GoDaddy", Registry: "Verisign", Family: "waledac"},
			{Line: 2, Input: "b.example.org", Name: "b.example.org", Registry: "Public Interest Registry", Family: "rustock"},
			{Line: 3, Input: "c-fictional.de", Name: "c-fictional.de", Registrar: "DENIC member", Registry: "DENIC"}}},
		{"header", "Name,Registrar,Family\na.example.com,\"GoDaddy.com, LLC\",waledac\n", []ImportLine{
			{Line: 2, Input: "a.example.com", Name: "a.example.com", Registrar: "GoDaddy.com, LLC", Registry: "Verisign", Family: "waledac"}}},
		{"header reordered with registry", "# x\ndomain,family,registry\nbücher.example,waledac,Some Registry\n", []ImportLine{
			{Line: 3, Input: "bücher.example", Name: "xn--bcher-kva.example", Registry: "Some Registry", Family: "waledac"}}},
		{"empty", "", nil},
		{"only comments", "# nothing\n\n", nil},
	} {
		got, perr := ParseDomainList(tc.name, []byte(tc.data))
		if perr != nil {
			t.Errorf("%s: %v", tc.name, perr)
			continue
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.name, got, tc.want)
		}
	}
}

func TestParseDomainListProblems(t *testing.T) {
	data := "name,registrar,family\n" + // 1
		"a.example.com\n" + // 2
		"A.EXAMPLE.COM.\n" + // 3: duplicate of line 2
		"a.example.com,x,y,z\n" + // 4: wrong column count
		"bad_x.example.com\n" + // 5
		",GoDaddy\n" + // 6: no name
		"\"unterminated.example.com,x\n" + // 7: malformed CSV
		"b.example.com,Go\x01Daddy\n" // 8: control character
	_, perr := ParseDomainList("t.csv", []byte(data))
	if perr == nil {
		t.Fatal("no problems found")
	}
	want := []struct {
		line int
		frag string
	}{{3, "duplicate of line 2"}, {4, "wrong column count: 4 fields, the header has 3"}, {5, "underscore"}, {6, "no domain name"}, {7, "malformed CSV"}, {8, "control character"}}
	if len(perr.Problems) != len(want) {
		t.Fatalf("problems = %+v", perr.Problems)
	}
	for i, w := range want {
		if p := perr.Problems[i]; p.Line != w.line || !strings.Contains(p.Msg, w.frag) {
			t.Errorf("problem %d = %+v; want line %d with %q", i, p, w.line, w.frag)
		}
	}
	if !errors.Is(perr, ErrInvalid) {
		t.Error("ImportError does not wrap ErrInvalid")
	}
	if msg := perr.Error(); !strings.HasPrefix(msg, "importing t.csv: 6 problems, nothing imported: t.csv:3: a.example.com: duplicate of line 2; t.csv:4:") ||
		!strings.HasSuffix(msg, "; and 1 more") {
		t.Errorf("Error() = %q", msg)
	}
	if _, perr := ParseDomainList("", []byte("a.example.com,b,c,d\n")); perr == nil || !strings.Contains(perr.Problems[0].Msg, "want 1 to 3") {
		t.Errorf("no header, 4 fields: %v", perr)
	}
	if _, perr := ParseDomainList("", []byte("name,owner\n")); perr == nil || !strings.Contains(perr.Error(), `unknown column "owner"`) {
		t.Errorf("bad header: %v", perr)
	}
}

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestImportWaledac277(t *testing.T) {
	r, db, _ := newTestRegistry(t)
	mustCase(t, r)

	// The bad file: every problem at its line, nothing added.
	before := takeSnapshot(t, db)
	_, err := r.ImportDomains(ctxBack, waledac.Name, "waledac-277-bad.txt", readFile(t, "waledac-277-bad.txt"), alice)
	var ie *ImportError
	if !errors.As(err, &ie) || !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad file: err = %v", err)
	}
	var want []LineError
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, "waledac-277-bad.want")))
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "#") {
			continue
		}
		n, frag, _ := strings.Cut(sc.Text(), "\t")
		line, _ := strconv.Atoi(n)
		want = append(want, LineError{Line: line, Msg: frag})
	}
	if len(ie.Problems) != len(want) {
		t.Errorf("bad file: %d problems, want %d: %+v", len(ie.Problems), len(want), ie.Problems)
	}
	for i := range min(len(want), len(ie.Problems)) {
		if p := ie.Problems[i]; p.Line != want[i].Line || !strings.Contains(p.Msg, want[i].Msg) {
			t.Errorf("problem %d = line %d %q; want line %d with %q", i, p.Line, p.Msg, want[i].Line, want[i].Msg)
		}
	}
	if !strings.Contains(err.Error(), "waledac-277-bad.txt:9: ") {
		t.Errorf("Error() does not name file:line: %v", err)
	}
	unchanged(t, db, before, "importing the bad file")

	// The same entries with one bad line: nothing changes.
	_, err = r.ImportDomains(ctxBack, waledac.Name, "waledac-277-onebad.txt", readFile(t, "waledac-277-onebad.txt"), alice)
	if !errors.As(err, &ie) || len(ie.Problems) != 1 || ie.Problems[0].Line != 154 {
		t.Fatalf("one bad line: %v", err)
	}
	unchanged(t, db, before, "importing the file with one bad line")

	// The good file.
	res, err := r.ImportDomains(ctxBack, waledac.Name, "waledac-277.txt", readFile(t, "waledac-277.txt"), alice)
	if err != nil {
		t.Fatal(err)
	}
	if res.Added != 277 || len(res.Domains) != 277 {
		t.Fatalf("added %d (%d names); want 277", res.Added, len(res.Domains))
	}
	for i, n := range map[int]string{0: "xn--bcher-kva.example", 1: "xn--e1afmkfd.xn--80akhbyknj4f", 2: "xn--bcher-botnet-dlb.example", 5: "xn--fa-hia.example", 8: "upper-case.example.com", 9: "mixed-case.example.net", 11: "quoted-csv.example.com"} {
		if res.Domains[i] != n {
			t.Errorf("domain %d = %q; want %q", i, res.Domains[i], n)
		}
	}
	after := takeSnapshot(t, db)
	if after.domains != before.domains+277 || after.transitions != before.transitions+277 || after.audit != before.audit+277 {
		t.Errorf("after import: %+v (before %+v)", after, before)
	}
	d, err := r.GetDomain(ctxBack, "QUOTED-CSV.example.com.")
	if err != nil || d.Registrar != "Xin Net Technology Corp., Ltd" || d.Family != "waledac" || d.Registry != "Verisign" || d.TLD != "com" || d.State != StateListed {
		t.Errorf("GetDomain = %+v, %v", d, err)
	}
	ds, err := r.ListDomains(ctxBack, DomainFilter{Case: waledac.Name})
	if err != nil || len(ds) != 277 {
		t.Errorf("ListDomains: %d, %v", len(ds), err)
	}

	// Importing again: every line is "already in this case"; in another
	// case, "already in case waledac-2010".
	_, err = r.ImportDomains(ctxBack, waledac.Name, "again.txt", readFile(t, "waledac-277.txt"), alice)
	if !errors.As(err, &ie) || len(ie.Problems) != 277 || !strings.Contains(ie.Problems[0].Msg, "already in this case") {
		t.Errorf("again: %v", err)
	}
	if _, err := r.AddCase(ctxBack, NewCase{Name: "other", Court: "c", Docket: "d"}, alice); err != nil {
		t.Fatal(err)
	}
	before = takeSnapshot(t, db)
	_, err = r.ImportDomains(ctxBack, "other", "o.txt", []byte("new.example.com\nbücher.example\n"), alice)
	if !errors.As(err, &ie) || len(ie.Problems) != 1 || ie.Problems[0].Line != 2 || ie.Problems[0].Msg != "xn--bcher-kva.example: already in case waledac-2010" {
		t.Errorf("other case: %v", err)
	}
	// Problems of both kinds together, in line order.
	_, err = r.ImportDomains(ctxBack, "other", "o.txt", []byte("bücher.example\nbad_.example.com\n"), alice)
	if !errors.As(err, &ie) || len(ie.Problems) != 2 || ie.Problems[0].Line != 1 || ie.Problems[1].Line != 2 {
		t.Errorf("mixed problems: %v", err)
	}
	if _, err := r.ImportDomains(ctxBack, "nosuch", "o.txt", []byte("x.example.com\n"), alice); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown case: %v", err)
	}
	if _, err := r.ImportDomains(ctxBack, "other", "o.txt", []byte("# empty\n"), alice); !errors.Is(err, ErrInvalid) {
		t.Errorf("empty file: %v", err)
	}
	if _, err := r.ImportDomains(ctxBack, "other", "o.txt", []byte("x.example.com\n"), Change{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("no actor: %v", err)
	}
	unchanged(t, db, before, "refused imports")
}

func FuzzParseDomainList(f *testing.F) {
	f.Add([]byte("a.example.com\nB.EXAMPLE.NET.\n"))
	f.Add([]byte("\ufeffname,registrar,family\r\na.example.com,\"x, y\",z\r\n# c\r\n\r\nbücher.example\n"))
	f.Add([]byte("domain,registry\nfoo.test,Bar\nfoo.test\n,,\n\"\n"))
	for _, tt := range normalizeTests {
		f.Add([]byte(tt.in + "\n" + tt.in + ",r,f\n"))
	}
	for _, name := range []string{"waledac-277-bad.txt", "waledac-277-onebad.txt"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		lines, perr := ParseDomainList("fuzz", data)
		nLines := bytes.Count(data, []byte("\n")) + 1
		if perr != nil {
			if len(lines) != 0 || len(perr.Problems) == 0 {
				t.Fatalf("problems and lines: %d lines, %+v", len(lines), perr)
			}
			last := 0
			for _, p := range perr.Problems {
				if p.Line < 1 || p.Line > nLines || p.Line < last || p.Msg == "" {
					t.Fatalf("bad problem %+v (of %d lines)", p, nLines)
				}
				last = p.Line
			}
			_ = perr.Error()
			return
		}
		seen := map[string]bool{}
		last := 0
		for _, l := range lines {
			if l.Line <= last || l.Line > nLines {
				t.Fatalf("line numbers out of order: %+v", lines)
			}
			last = l.Line
			n, err := NormalizeName(l.Name)
			if err != nil || n != l.Name {
				t.Fatalf("line %d: %q normalises to %q, %v", l.Line, l.Name, n, err)
			}
			if seen[l.Name] {
				t.Fatalf("duplicate %q not reported", l.Name)
			}
			seen[l.Name] = true
		}
	})
}

// bigList returns n distinct domain names, one a line, with a registrar.
func bigList(n int) []byte {
	var b bytes.Buffer
	b.Grow(n * 32)
	for i := range n {
		fmt.Fprintf(&b, "dga-%07d-waledac.example,Registrar %d\n", i, i%50)
	}
	return b.Bytes()
}

func BenchmarkImport(b *testing.B) {
	for _, n := range []int{1000, 100000} {
		data := bigList(n)
		b.Run(fmt.Sprintf("domains=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				b.StopTimer()
				r, _, _ := newTestRegistry(b)
				mustCase(b, r)
				b.StartTimer()
				res, err := r.ImportDomains(ctxBack, waledac.Name, "big.txt", data, alice)
				if err != nil || res.Added != n {
					b.Fatal(res.Added, err)
				}
			}
		})
	}
}

func BenchmarkParseDomainList(b *testing.B) {
	data := bigList(100000)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, perr := ParseDomainList("big.txt", data); perr != nil {
			b.Fatal(perr)
		}
	}
}
