package registry

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
)

// currentStateSQL selects each domain's current state and since when, from
// its latest transition; where filters the transitions.
func currentStateSQL(where string) string {
	return `SELECT domain, arg_max(to_state, audit_seq) AS state, arg_max(changed_at, audit_seq) AS since
		FROM registry_transitions ` + where + ` GROUP BY domain`
}

const domainColumns = `d.name, d.case_name, d.tld, d.registrar, d.registry, d.family, cur.state, cur.since, d.added`

func scanDomain(rows *sql.Rows) (Domain, error) {
	var d Domain
	err := rows.Scan(&d.Name, &d.Case, &d.TLD, &d.Registrar, &d.Registry, &d.Family, &d.State, &d.StateSince, &d.Added)
	d.StateSince = d.StateSince.UTC()
	d.Added = d.Added.UTC()
	return d, err
}

// ListDomains returns the domains that match f, by name.
//
// Case, State and TLD must match exactly (TLD as an A-label, a leading dot
// ignored); Registrar and Family match ignoring case.
func (r *Registry) ListDomains(ctx context.Context, f DomainFilter) ([]Domain, error) {
	var conds []string
	var args []any
	if f.Case != "" {
		conds, args = append(conds, `d.case_name = ?`), append(args, strings.TrimSpace(f.Case))
	}
	if f.State != "" {
		st, err := ParseState(string(f.State))
		if err != nil {
			return nil, fmt.Errorf("domain filter: %w", err)
		}
		conds, args = append(conds, `cur.state = ?`), append(args, string(st))
	}
	if f.TLD != "" {
		conds, args = append(conds, `d.tld = ?`), append(args, strings.ToLower(strings.Trim(strings.TrimSpace(f.TLD), ".")))
	}
	if f.Registrar != "" {
		conds, args = append(conds, `lower(d.registrar) = lower(?)`), append(args, strings.TrimSpace(f.Registrar))
	}
	if f.Family != "" {
		conds, args = append(conds, `lower(d.family) = lower(?)`), append(args, strings.TrimSpace(f.Family))
	}
	if f.Limit < 0 {
		return nil, fmt.Errorf("domain filter: limit %d is negative: %w", f.Limit, ErrInvalid)
	}
	q := `WITH cur AS (` + currentStateSQL("") + `) SELECT ` + domainColumns + `
		FROM registry_domains d JOIN cur ON cur.domain = d.name`
	if len(conds) > 0 {
		q += ` WHERE ` + strings.Join(conds, ` AND `)
	}
	q += ` ORDER BY d.name`
	if f.Limit > 0 {
		q += ` LIMIT ` + strconv.Itoa(f.Limit)
	}
	ds, err := queryDomains(ctx, r.db, q, args...)
	if err != nil {
		return nil, err
	}
	return ds, r.fillDSStates(ctx, ds)
}

// fillDSStates sets the DSState of each domain from its newest delegation
// check: a second query over the domains found, as a join over every
// check would cost as much for a page of a hundred as for all.
func (r *Registry) fillDSStates(ctx context.Context, ds []Domain) error {
	for start := 0; start < len(ds); start += bulkRows {
		part := ds[start:min(start+bulkRows, len(ds))]
		names := make([]string, len(part))
		idx := make(map[string]int, len(part))
		for i, d := range part {
			names[i], idx[d.Name] = d.Name, start+i
		}
		rows, err := r.db.QueryContext(ctx, `SELECT domain, arg_max(ds_state, audit_seq) FROM registry_delegation
			WHERE domain IN (SELECT unnest(?::VARCHAR[])) GROUP BY domain`, names)
		if err != nil {
			return fmt.Errorf("reading DS states: %w", err)
		}
		for rows.Next() {
			var name string
			var st DSState
			if err := rows.Scan(&name, &st); err != nil {
				rows.Close()
				return fmt.Errorf("reading DS states: %w", err)
			}
			ds[idx[name]].DSState = st
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return fmt.Errorf("reading DS states: %w", err)
		}
	}
	return nil
}

// querier is what *sql.DB and *sql.Tx have in common.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func queryDomains(ctx context.Context, q querier, query string, args ...any) ([]Domain, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("reading domains: %w", err)
	}
	defer rows.Close()
	out := []Domain{}
	for rows.Next() {
		d, err := scanDomain(rows)
		if err != nil {
			return nil, fmt.Errorf("reading domains: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading domains: %w", err)
	}
	return out, nil
}

// domainsNamed returns the domains among names (normalised), keyed by name.
func domainsNamed(ctx context.Context, q querier, names []string) (map[string]Domain, error) {
	out := make(map[string]Domain, len(names))
	for start := 0; start < len(names); start += bulkRows {
		part := names[start:min(start+bulkRows, len(names))]
		ds, err := queryDomains(ctx, q, `WITH want AS (SELECT unnest(?::VARCHAR[]) AS name),
			cur AS (`+currentStateSQL(`WHERE domain IN (SELECT name FROM want)`)+`)
			SELECT `+domainColumns+` FROM registry_domains d JOIN cur ON cur.domain = d.name
			WHERE d.name IN (SELECT name FROM want)`, part)
		if err != nil {
			return nil, err
		}
		for _, d := range ds {
			out[d.Name] = d
		}
	}
	return out, nil
}

// GetDomain returns one domain with its history. name may be an IDN or
// carry a trailing dot.
func (r *Registry) GetDomain(ctx context.Context, name string) (Domain, error) {
	n, err := NormalizeName(name)
	if err != nil {
		return Domain{}, err
	}
	ds, err := domainsNamed(ctx, r.db, []string{n})
	if err != nil {
		return Domain{}, err
	}
	d, ok := ds[n]
	if !ok {
		return Domain{}, fmt.Errorf("domain %s: %w", n, ErrNotFound)
	}
	hist, err := r.Histories(ctx, []string{n})
	if err != nil {
		return Domain{}, err
	}
	d.History = hist[n]
	if d.Delegation, err = r.lastDelegation(ctx, n); err != nil {
		return Domain{}, err
	}
	if d.Delegation != nil {
		d.DSState = d.Delegation.DSState
	}
	return d, nil
}

// Histories returns the state changes of each of the named domains
// (normalised names, as ListDomains gives them) that has any, oldest
// first, keyed by name: GetDomain's History for many domains at once.
func (r *Registry) Histories(ctx context.Context, names []string) (map[string][]Transition, error) {
	out := make(map[string][]Transition, len(names))
	for start := 0; start < len(names); start += bulkRows {
		part := names[start:min(start+bulkRows, len(names))]
		rows, err := r.db.QueryContext(ctx, `SELECT domain, from_state, to_state, changed_at, actor, reason FROM registry_transitions
			WHERE domain IN (SELECT unnest(?::VARCHAR[])) ORDER BY domain, audit_seq`, part)
		if err != nil {
			return nil, fmt.Errorf("reading domain histories: %w", err)
		}
		for rows.Next() {
			var name string
			var t Transition
			if err := rows.Scan(&name, &t.From, &t.To, &t.At, &t.Actor, &t.Reason); err != nil {
				rows.Close()
				return nil, fmt.Errorf("reading the history of %s: %w", name, err)
			}
			t.At = t.At.UTC()
			out[name] = append(out[name], t)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("reading domain histories: %w", err)
		}
	}
	return out, nil
}

// SetState moves the named domains to state to, all or nothing.
//
// Names are normalised (NormalizeName) and may repeat. If any name is
// invalid (ErrInvalid) or unknown (ErrNotFound), or the lifecycle does not
// allow the change for any of them (ErrIllegalTransition), nothing changes
// and the error names every domain at fault, up to ten. It returns the
// domains in their new state, in the order first named.
func (r *Registry) SetState(ctx context.Context, names []string, to State, ch Change) ([]Domain, error) {
	return r.Advance(ctx, names, []State{to}, ch)
}

// Advance moves the named domains through each state of path in turn, in
// one transaction: every step is checked against the lifecycle and recorded
// as its own transition and audit entry, with the same time. It is how a
// restraining order that made the registries redirect at once is recorded:
// Advance(names, []State{StateRestrained, StateSinkholed}, ch). Otherwise it
// behaves like SetState.
func (r *Registry) Advance(ctx context.Context, names []string, path []State, ch Change) ([]Domain, error) {
	if len(path) == 0 {
		return nil, fmt.Errorf("changing state: no target state given: %w", ErrInvalid)
	}
	steps := make([]State, len(path))
	for i, st := range path {
		p, err := ParseState(string(st))
		if err != nil {
			return nil, fmt.Errorf("changing state: %w", err)
		}
		steps[i] = p
	}
	path = steps
	if len(names) == 0 {
		return nil, fmt.Errorf("changing state to %s: no domain names given: %w", path[len(path)-1], ErrInvalid)
	}
	var list []string
	seen := make(map[string]bool, len(names))
	var bad []string
	var firstBad error
	for _, raw := range names {
		n, err := NormalizeName(raw)
		if err != nil {
			if firstBad == nil {
				firstBad = err
			}
			bad = append(bad, fmt.Sprintf("%q", cut(strings.TrimSpace(raw), 100)))
			continue
		}
		if !seen[n] {
			seen[n] = true
			list = append(list, n)
		}
	}
	if len(bad) == 1 {
		return nil, fmt.Errorf("changing state: %w", firstBad)
	}
	if len(bad) > 1 {
		return nil, fmt.Errorf("changing state: %d invalid domain names: %s (first: %v): %w", len(bad), listSome(bad, 10), firstBad, ErrInvalid)
	}
	var out []Domain
	err := r.write(ctx, ch, func(w *writeTx) error {
		cur, err := domainsNamed(ctx, w.tx, list)
		if err != nil {
			return err
		}
		var missing []string
		for _, n := range list {
			if _, ok := cur[n]; !ok {
				missing = append(missing, n)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("changing state: %s %s: %w", plural(len(missing), "domain", "domains"), listSome(missing, 10), ErrNotFound)
		}
		var illegal []string
		var firstIllegal error
		for _, n := range list {
			from := cur[n].State
			for _, to := range path {
				if !CanTransition(from, to) {
					if firstIllegal == nil {
						firstIllegal = transitionError(n, from, to)
					}
					illegal = append(illegal, fmt.Sprintf("domain %s: cannot go from %s to %s (%s)", n, from, to, whereNext(from)))
					break
				}
				from = to
			}
		}
		switch {
		case len(illegal) == 1:
			return firstIllegal
		case len(illegal) > 1:
			return fmt.Errorf("%d of %d domains cannot change state: %s: %w", len(illegal), len(list), strings.Join(illegal[:min(10, len(illegal))], "; ")+andMore(len(illegal), 10), ErrIllegalTransition)
		}
		tr := transitionRows{}
		out = make([]Domain, 0, len(list))
		for _, n := range list {
			d := cur[n]
			for _, to := range path {
				seq, err := w.record(actionDomainState, "domain:"+n, stateDetail{Case: d.Case, From: d.State, To: to})
				if err != nil {
					return err
				}
				tr.add(seq, n, d.State, to)
				d.State, d.StateSince = to, w.at
			}
			out = append(out, d)
		}
		return tr.insert(w)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// stateDetail is the audit detail of domain.state.
type stateDetail struct {
	Case string `json:"case"`
	From State  `json:"from"`
	To   State  `json:"to"`
}

// transitionRows collects transitions for one bulk insert.
type transitionRows struct {
	seqs     []int64
	domains  []string
	from, to []string
}

func (t *transitionRows) add(seq int64, domain string, from, to State) {
	t.seqs = append(t.seqs, seq)
	t.domains = append(t.domains, domain)
	t.from = append(t.from, string(from))
	t.to = append(t.to, string(to))
}

func (t *transitionRows) insert(w *writeTx) error {
	for start := 0; start < len(t.seqs); start += bulkRows {
		end := min(start+bulkRows, len(t.seqs))
		_, err := w.tx.ExecContext(w.ctx, `INSERT INTO registry_transitions (audit_seq, domain, from_state, to_state, changed_at, actor, reason)
			SELECT unnest(?::BIGINT[]), unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), ?::TIMESTAMP, ?, ?`,
			t.seqs[start:end], t.domains[start:end], t.from[start:end], t.to[start:end], w.at, w.ch.Actor, w.ch.Reason)
		if err != nil {
			return fmt.Errorf("recording state changes: %w", err)
		}
	}
	return nil
}

// andMore says how many of n items beyond shown are left out.
func andMore(n, shown int) string {
	if n <= shown {
		return ""
	}
	return fmt.Sprintf("; and %d more", n-shown)
}

// listSome joins up to n items and says how many more there are.
func listSome(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, ", ")
	}
	return strings.Join(items[:n], ", ") + fmt.Sprintf(" and %d more", len(items)-n)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}
