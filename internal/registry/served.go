package registry

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Served reports whether the sinkhole answers for a domain in state s, and
// the RPZ lists it: restrained, sinkholed or transferred.
func (s State) Served() bool {
	switch s {
	case StateRestrained, StateSinkholed, StateTransferred:
		return true
	}
	return false
}

// servedStates is the SQL list of the states that Served accepts.
const servedStates = `('` + string(StateRestrained) + `', '` + string(StateSinkholed) + `', '` + string(StateTransferred) + `')`

// SinkholeTXT is the text of the apex TXT record of case c's zones, e.g.
// "sinkholed by order of E.D. Va. 1:10-cv-00156 (case waledac-2010);
// operator Example CERT" (without the operator part when operator is "").
func SinkholeTXT(c Case, operator string) string {
	s := fmt.Sprintf("sinkholed by order of %s %s (case %s)", c.Court, c.Docket, c.Name)
	if operator != "" {
		s += "; operator " + operator
	}
	return s
}

// DomainChange is a domain whose state changed, with the state it is in
// after the change.
type DomainChange struct {
	Name  string
	Case  string
	State State
}

// Changes is what changed in the registry after an audit entry, as far as
// the sinks care: domains that changed state, cases added or changed.
type Changes struct {
	// Seq is the newest audit entry read; the next call starts after it.
	Seq int64
	// Domains changed state (or were imported), each once, with the state
	// of its last change.
	Domains []DomainChange
	// Cases were added or changed (any entry about a case: its TXT or
	// family may be new).
	Cases []string
}

// ChangesSince returns what changed after audit entry seq. Every change is
// an audit entry and the entries are numbered in order, so it reads the
// entries after seq and nothing else: it costs in proportion to the change,
// whatever the number of domains. ServedDomains gives the seq to start
// from.
func (r *Registry) ChangesSince(ctx context.Context, seq int64) (Changes, error) {
	out := Changes{Seq: seq}
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return out, fmt.Errorf("reading changes: %w", err)
	}
	defer tx.Rollback()
	var last sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT max(seq) FROM registry_audit WHERE seq > ?`, seq).Scan(&last); err != nil {
		return out, fmt.Errorf("reading changes: %w", err)
	}
	if !last.Valid {
		return out, nil
	}
	rows, err := tx.QueryContext(ctx, `SELECT action, object, detail FROM registry_audit
		WHERE seq > ? AND seq <= ? AND (action IN (?, ?) OR object LIKE 'case:%') ORDER BY seq`,
		seq, last.Int64, actionDomainState, actionDomainImport)
	if err != nil {
		return out, fmt.Errorf("reading changes: %w", err)
	}
	defer rows.Close()
	at := map[string]int{} // domain name → index in out.Domains
	for rows.Next() {
		var action, object, detail string
		if err := rows.Scan(&action, &object, &detail); err != nil {
			return out, fmt.Errorf("reading changes: %w", err)
		}
		if name, ok := strings.CutPrefix(object, "case:"); ok {
			if !slices.Contains(out.Cases, name) {
				out.Cases = append(out.Cases, name)
			}
			continue
		}
		// domain.state says {"case", "from", "to"}, domain.import
		// {"case", …, "state"}.
		var d struct {
			Case  string `json:"case"`
			To    State  `json:"to"`
			State State  `json:"state"`
		}
		if err := json.Unmarshal([]byte(detail), &d); err != nil {
			return out, fmt.Errorf("reading changes: audit entry %s of %s: %w", action, object, err)
		}
		c := DomainChange{Name: strings.TrimPrefix(object, "domain:"), Case: d.Case, State: d.To}
		if action == actionDomainImport {
			c.State = d.State
		}
		if i, ok := at[c.Name]; ok {
			out.Domains[i] = c
			continue
		}
		at[c.Name] = len(out.Domains)
		out.Domains = append(out.Domains, c)
	}
	if err := rows.Err(); err != nil {
		return out, fmt.Errorf("reading changes: %w", err)
	}
	out.Seq = last.Int64
	return out, nil
}

// ServedDomains calls fn with every domain in a served state and its case,
// in no particular order, and returns the audit entry the read reflects:
// ChangesSince(seq) continues from it. The read is one transaction, so
// that nothing changed in between is missed or counted twice.
func (r *Registry) ServedDomains(ctx context.Context, fn func(name, caseName string) error) (seq int64, err error) {
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("reading served domains: %w", err)
	}
	defer tx.Rollback()
	var last sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT max(seq) FROM registry_audit`).Scan(&last); err != nil {
		return 0, fmt.Errorf("reading served domains: %w", err)
	}
	rows, err := tx.QueryContext(ctx, `WITH cur AS (`+currentStateSQL("")+`)
		SELECT d.name, d.case_name FROM registry_domains d JOIN cur ON cur.domain = d.name
		WHERE cur.state IN `+servedStates)
	if err != nil {
		return 0, fmt.Errorf("reading served domains: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name, caseName string
		if err := rows.Scan(&name, &caseName); err != nil {
			return 0, fmt.Errorf("reading served domains: %w", err)
		}
		if err := fn(name, caseName); err != nil {
			return 0, err
		}
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("reading served domains: %w", err)
	}
	return last.Int64, nil
}

// casesNamed returns the cases of the names, all when names is nil,
// without their orders and domain counts.
func (r *Registry) casesNamed(ctx context.Context, names []string) ([]Case, error) {
	q, args := `SELECT name, title, court, docket, notes, added, family FROM registry_cases`, []any{}
	if names != nil {
		q, args = q+` WHERE name IN (SELECT unnest(?::VARCHAR[]))`, []any{names}
	}
	rows, err := r.db.QueryContext(ctx, q+` ORDER BY name`, args...)
	if err != nil {
		return nil, fmt.Errorf("reading cases: %w", err)
	}
	defer rows.Close()
	var out []Case
	for rows.Next() {
		var c Case
		var family sql.NullString // NULL in rows added before migration 3
		if err := rows.Scan(&c.Name, &c.Title, &c.Court, &c.Docket, &c.Notes, &c.Added, &family); err != nil {
			return nil, fmt.Errorf("reading cases: %w", err)
		}
		c.Added = c.Added.UTC()
		c.Family = family.String
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading cases: %w", err)
	}
	return out, nil
}
