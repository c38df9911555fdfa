package registry

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ImportLine is one domain read from an imported file.
type ImportLine struct {
	// Line is the 1-based line number in the file.
	Line int `json:"line"`
	// Input is the name as written.
	Input string `json:"input"`
	// Name is the normalised name (see NormalizeName).
	Name      string `json:"name"`
	Registrar string `json:"registrar,omitempty"`
	// Registry is the registry column if the file has one, else the
	// operator of the TLD from the built-in table (RegistryOf), else "".
	Registry string `json:"registry,omitempty"`
	Family   string `json:"family,omitempty"`
}

// maxProblemsShown is how many problems ImportError.Error lists.
const maxProblemsShown = 5

// Error summarises the problems: how many, and the first few with file and
// line.
func (e *ImportError) Error() string {
	var b strings.Builder
	file := e.File
	if file == "" {
		file = "input"
	}
	fmt.Fprintf(&b, "importing %s: %s, nothing imported: ", file, plural(e.Count(), "problem", "problems"))
	for i, p := range e.Problems {
		if i == maxProblemsShown {
			fmt.Fprintf(&b, "; and %d more", e.Count()-maxProblemsShown)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s:%d: %s", file, p.Line, p.Msg)
	}
	return b.String()
}

// Unwrap returns ErrInvalid.
func (e *ImportError) Unwrap() error { return ErrInvalid }

// Count returns the number of problems found, listed or not.
func (e *ImportError) Count() int { return max(e.Total, len(e.Problems)) }

// Shorten returns e listing at most its first n problems, with Total
// counting them all: a list of a million bad lines makes an error too big
// to send whole.
func (e *ImportError) Shorten(n int) *ImportError {
	if len(e.Problems) <= n {
		return e
	}
	return &ImportError{File: e.File, Problems: e.Problems[:n:n], Total: e.Count()}
}

func (e *ImportError) add(line int, text, format string, args ...any) {
	e.Problems = append(e.Problems, LineError{Line: line, Text: cut(text, 200), Msg: fmt.Sprintf(format, args...)})
}

// Import file columns.
const (
	colName      = "name"
	colRegistrar = "registrar"
	colRegistry  = "registry"
	colFamily    = "family"
)

// defaultColumns are the columns of a file without a header.
var defaultColumns = []string{colName, colRegistrar, colFamily}

// headerNames maps the header cells the importer knows to columns.
var headerNames = map[string]string{
	"name": colName, "domain": colName, "domain name": colName, "domain_name": colName,
	"registrar": colRegistrar, "registry": colRegistry, "family": colFamily, "malware family": colFamily,
}

// ParseDomainList reads a list of domains: one name a line, or CSV lines of
// name, registrar and family (the last two optional). The first line that
// is not blank or a comment may be a header whose first cell is "name" or
// "domain"; its cells then name the columns, of name, registrar, registry
// and family, in any order. Blank lines and lines beginning with '#' are
// skipped; CRLF line ends and a UTF-8 byte order mark are accepted.
//
// It returns the domains in file order, or every problem found, each with its
// 1-based line number: invalid names (with the reason), duplicates ("duplicate
// of line 7"), wrong column counts, bad header cells and bad registrar or
// family values. file names the input in messages.
func ParseDomainList(file string, data []byte) ([]ImportLine, *ImportError) {
	lines, perr := parseList(file, data)
	if perr != nil {
		return nil, perr
	}
	return lines, nil
}

// parseList is ParseDomainList, but it returns the good lines of a file with
// problems too.
func parseList(file string, data []byte) ([]ImportLine, *ImportError) {
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	perr := &ImportError{File: file}
	var out []ImportLine
	first := map[string]int{} // name → line where first seen
	cols := defaultColumns
	header := false
	seenContent := false
	for lineNo := 1; len(data) > 0; lineNo++ {
		raw := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			raw, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		line := strings.TrimSpace(string(raw))
		if line == "" || line[0] == '#' {
			continue
		}
		if !utf8.ValidString(line) {
			perr.add(lineNo, line, "not valid UTF-8")
			seenContent = true
			continue
		}
		cells, err := splitCells(line)
		if err != nil {
			perr.add(lineNo, line, "malformed CSV: %v", err)
			seenContent = true
			continue
		}
		if !seenContent {
			seenContent = true
			if headerNames[strings.ToLower(cells[0])] == colName {
				header = true
				cols = parseHeader(perr, lineNo, line, cells)
				continue
			}
		}
		if len(cells) > len(cols) {
			if header {
				perr.add(lineNo, line, "wrong column count: %d fields, the header has %d", len(cells), len(cols))
			} else {
				perr.add(lineNo, line, "wrong column count: %d fields, want 1 to 3 (name, registrar, family)", len(cells))
			}
			continue
		}
		var il ImportLine
		il.Line = lineNo
		bad := false
		for i, c := range cells {
			switch cols[i] {
			case colName:
				il.Input = c
			case colRegistrar, colRegistry, colFamily:
				if msg := cellProblem(c); msg != "" {
					perr.add(lineNo, line, "%s %q: %s", cols[i], cut(c, 80), msg)
					bad = true
				}
				switch cols[i] {
				case colRegistrar:
					il.Registrar = c
				case colRegistry:
					il.Registry = c
				case colFamily:
					il.Family = c
				}
			}
		}
		if il.Input == "" {
			perr.add(lineNo, line, "no domain name")
			continue
		}
		name, err := normalizeName(il.Input)
		if err != nil {
			perr.add(lineNo, line, "%q: %s", cut(il.Input, 100), err.Error())
			continue
		}
		il.Name = name
		if prev, ok := first[name]; ok {
			perr.add(lineNo, line, "%s: duplicate of line %d", name, prev)
			continue
		}
		first[name] = lineNo
		if bad {
			continue
		}
		if il.Registry == "" {
			il.Registry = RegistryOf(tldOf(name))
		}
		out = append(out, il)
	}
	if len(perr.Problems) > 0 {
		return out, perr
	}
	return out, nil
}

// splitCells splits a line at commas, honouring CSV quotes, and trims each
// cell.
func splitCells(line string) ([]string, error) {
	var cells []string
	if strings.IndexByte(line, '"') < 0 {
		cells = strings.Split(line, ",")
	} else {
		r := csv.NewReader(strings.NewReader(line))
		r.FieldsPerRecord = -1
		var err error
		cells, err = r.Read()
		if err != nil {
			if pe, ok := err.(*csv.ParseError); ok {
				err = pe.Err
			}
			return nil, err
		}
	}
	for i, c := range cells {
		cells[i] = strings.TrimSpace(c)
	}
	return cells, nil
}

// parseHeader returns the columns a header line names.
func parseHeader(perr *ImportError, lineNo int, line string, cells []string) []string {
	cols := make([]string, len(cells))
	for i, c := range cells {
		col, ok := headerNames[strings.ToLower(c)]
		if !ok {
			perr.add(lineNo, line, "header: unknown column %q; want name, registrar, registry or family", cut(c, 80))
			continue
		}
		if slices.Contains(cols, col) {
			perr.add(lineNo, line, "header: column %q appears twice", col)
			continue
		}
		cols[i] = col
	}
	return cols
}

// cellProblem says what is wrong with a registrar, registry or family value.
func cellProblem(c string) string {
	if len(c) > 200 {
		return fmt.Sprintf("%d bytes long, more than 200", len(c))
	}
	for _, r := range c {
		if unicode.IsControl(r) {
			return fmt.Sprintf("has the control character %U", r)
		}
	}
	return ""
}

// ImportDomains adds the domains listed in data (one name a line, or CSV
// with name, registrar, family) to a case, all or nothing. file names the
// source in error messages.
//
// The format is that of ParseDomainList. Besides its problems, a name that
// is in the case already ("already in this case") or in another case
// ("already in case X") is a problem: a domain belongs to one case. If there
// is any problem it returns an *ImportError listing them all, which wraps
// ErrInvalid, and changes nothing. Each domain added starts as listed and
// gets one audit entry (domain.import) naming the file, line, registrar,
// registry and family.
func (r *Registry) ImportDomains(ctx context.Context, caseName, file string, data []byte, ch Change) (ImportResult, error) {
	caseName = strings.TrimSpace(caseName)
	if err := checkCaseName(caseName); err != nil {
		return ImportResult{}, err
	}
	lines, perr := parseList(file, data)
	res := ImportResult{Case: caseName}
	err := r.write(ctx, ch, func(w *writeTx) error {
		if err := w.caseExists(caseName); err != nil {
			return err
		}
		if perr == nil && len(lines) == 0 {
			return fmt.Errorf("importing %s: no domain names in it: %w", orInput(file), ErrInvalid)
		}
		// Names already known; for a file with problems, the names that
		// parsed are checked too, so that the user sees every problem at once.
		names := make([]string, len(lines))
		for i, l := range lines {
			names[i] = l.Name
		}
		known, err := existingCases(w, names)
		if err != nil {
			return err
		}
		if len(known) > 0 {
			if perr == nil {
				perr = &ImportError{File: file}
			}
			for _, l := range lines {
				if c, ok := known[l.Name]; ok {
					if c == caseName {
						perr.add(l.Line, l.Input, "%s: already in this case", l.Name)
					} else {
						perr.add(l.Line, l.Input, "%s: already in case %s", l.Name, c)
					}
				}
			}
			slices.SortStableFunc(perr.Problems, func(a, b LineError) int { return a.Line - b.Line })
		}
		if perr != nil {
			return perr
		}
		return insertDomains(w, caseName, file, lines)
	})
	if err != nil {
		return ImportResult{}, err
	}
	res.Added = len(lines)
	res.Domains = make([]string, len(lines))
	for i, l := range lines {
		res.Domains[i] = l.Name
	}
	return res, nil
}

func orInput(file string) string {
	if file == "" {
		return "input"
	}
	return file
}

// existingCases returns the case of each of names that is in the registry.
func existingCases(w *writeTx, names []string) (map[string]string, error) {
	out := map[string]string{}
	for start := 0; start < len(names); start += bulkRows {
		part := names[start:min(start+bulkRows, len(names))]
		rows, err := w.tx.QueryContext(w.ctx, `SELECT name, case_name FROM registry_domains
			WHERE name IN (SELECT unnest(?::VARCHAR[]))`, part)
		if err != nil {
			return nil, fmt.Errorf("looking up domains: %w", err)
		}
		for rows.Next() {
			var n, c string
			if err := rows.Scan(&n, &c); err != nil {
				rows.Close()
				return nil, fmt.Errorf("looking up domains: %w", err)
			}
			out[n] = c
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("looking up domains: %w", err)
		}
	}
	return out, nil
}

// importDetail is the audit detail of domain.import.
type importDetail struct {
	Case      string `json:"case"`
	File      string `json:"file,omitempty"`
	Line      int    `json:"line"`
	TLD       string `json:"tld"`
	Registrar string `json:"registrar"`
	Registry  string `json:"registry"`
	Family    string `json:"family"`
	State     State  `json:"state"`
}

func insertDomains(w *writeTx, caseName, file string, lines []ImportLine) error {
	tr := transitionRows{}
	for start := 0; start < len(lines); start += bulkRows {
		part := lines[start:min(start+bulkRows, len(lines))]
		names := make([]string, len(part))
		tlds := make([]string, len(part))
		registrars := make([]string, len(part))
		registries := make([]string, len(part))
		families := make([]string, len(part))
		for i, l := range part {
			names[i], tlds[i], registrars[i], registries[i], families[i] = l.Name, tldOf(l.Name), l.Registrar, l.Registry, l.Family
			seq, err := w.record(actionDomainImport, "domain:"+l.Name, importDetail{
				Case: caseName, File: file, Line: l.Line, TLD: tlds[i],
				Registrar: l.Registrar, Registry: l.Registry, Family: l.Family, State: StateListed,
			})
			if err != nil {
				return err
			}
			tr.add(seq, l.Name, "", StateListed)
		}
		_, err := w.tx.ExecContext(w.ctx, `INSERT INTO registry_domains (name, case_name, tld, registrar, registry, family, added)
			SELECT unnest(?::VARCHAR[]), ?, unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), ?::TIMESTAMP`,
			names, caseName, tlds, registrars, registries, families, w.at)
		if err != nil {
			return fmt.Errorf("adding domains to case %s: %w", caseName, err)
		}
	}
	return tr.insert(w)
}
