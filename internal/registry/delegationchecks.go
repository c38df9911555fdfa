package registry

// A delegation check (`takedown domains verify`, internal/delegation) finds
// whether a domain's NS records point at the sinkhole's name servers; the
// registry keeps every check, with an audit entry each, and reads the
// newest one of a domain (GetDomain) or of many (the dashboard's list).

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

const actionDomainDelegation = "domain.delegation"

// RecordDelegation stores the results of a delegation check, all or
// nothing, with one audit entry per domain. Unknown domains are refused.
func (r *Registry) RecordDelegation(ctx context.Context, checks []DelegationCheck, ch Change) error {
	if len(checks) == 0 {
		return nil
	}
	names := make([]string, len(checks))
	for i := range checks {
		n, err := NormalizeName(checks[i].Domain)
		if err != nil {
			return err
		}
		names[i] = n
		if checks[i].CheckedAt.IsZero() {
			return fmt.Errorf("delegation check of %s: no time: %w", n, ErrInvalid)
		}
	}
	checks = slices.Clone(checks)
	for i := range checks {
		checks[i].DS = slices.Clone(checks[i].DS)
		if err := r.classify(names[i], &checks[i]); err != nil {
			return err
		}
	}
	return r.write(ctx, ch, func(w *writeTx) error {
		known, err := domainsNamed(ctx, w.tx, names)
		if err != nil {
			return err
		}
		var missing []string
		for _, n := range names {
			if _, ok := known[n]; !ok {
				missing = append(missing, n)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("delegation check: %s: %w", listSome(missing, 10), ErrNotFound)
		}
		for i, c := range checks {
			detail := map[string]any{"verified": c.Verified, "ns": c.NS, "addrs": c.Addrs}
			if c.Problem != "" {
				detail["problem"] = c.Problem
			}
			if c.DSState != "" {
				detail["ds_state"], detail["ds"] = c.DSState, c.DS
			}
			if c.DSProblem != "" {
				detail["ds_problem"] = c.DSProblem
			}
			seq, err := w.record(actionDomainDelegation, "domain:"+names[i], detail)
			if err != nil {
				return err
			}
			if _, err := w.tx.ExecContext(ctx, `INSERT INTO registry_delegation (audit_seq, domain, checked_at, verified, ns, addrs, problem, ds_state, ds, ds_problem)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, seq, names[i], c.CheckedAt.UTC().Truncate(time.Microsecond), c.Verified,
				strings.Join(c.NS, " "), strings.Join(c.Addrs, " "), c.Problem, string(c.DSState), strings.Join(c.DS, "\n"), c.DSProblem); err != nil {
				return fmt.Errorf("storing delegation check of %s: %w", names[i], err)
			}
		}
		return nil
	})
}

// lastDelegation returns the newest delegation check of a domain, or nil.
func (r *Registry) lastDelegation(ctx context.Context, name string) (*DelegationCheck, error) {
	last, err := r.LastDelegations(ctx, []string{name})
	if c, ok := last[name]; ok {
		return &c, err
	}
	return nil, err
}

// LastDelegations returns the newest delegation check of each of the
// named domains (normalised names, as ListDomains gives them) that has
// one, keyed by name: GetDomain's Delegation for many domains at once.
func (r *Registry) LastDelegations(ctx context.Context, names []string) (map[string]DelegationCheck, error) {
	out := make(map[string]DelegationCheck, len(names))
	for start := 0; start < len(names); start += bulkRows {
		part := names[start:min(start+bulkRows, len(names))]
		rows, err := r.db.QueryContext(ctx, `SELECT domain, arg_max(checked_at, audit_seq), arg_max(verified, audit_seq),
			arg_max(ns, audit_seq), arg_max(addrs, audit_seq), arg_max(problem, audit_seq),
			arg_max(ds_state, audit_seq), arg_max(ds, audit_seq), arg_max(ds_problem, audit_seq)
			FROM registry_delegation WHERE domain IN (SELECT unnest(?::VARCHAR[])) GROUP BY domain`, part)
		if err != nil {
			return nil, fmt.Errorf("reading delegation checks: %w", err)
		}
		for rows.Next() {
			var c DelegationCheck
			var ns, addrs, ds string
			if err := rows.Scan(&c.Domain, &c.CheckedAt, &c.Verified, &ns, &addrs, &c.Problem, &c.DSState, &ds, &c.DSProblem); err != nil {
				rows.Close()
				return nil, fmt.Errorf("reading delegation checks: %w", err)
			}
			c.CheckedAt = c.CheckedAt.UTC()
			c.NS, c.Addrs = strings.Fields(ns), strings.Fields(addrs)
			if ds != "" {
				c.DS = strings.Split(ds, "\n")
			}
			out[c.Domain] = c
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("reading delegation checks: %w", err)
		}
	}
	return out, nil
}
