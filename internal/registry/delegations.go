package registry

import (
	"context"
	"fmt"
	"strings"
)

// LastDelegations returns the newest delegation check of each of the
// named domains (normalised names, as ListDomains gives them) that has
// one, keyed by name: GetDomain's Delegation for many domains at once.
func (r *Registry) LastDelegations(ctx context.Context, names []string) (map[string]DelegationCheck, error) {
	out := make(map[string]DelegationCheck, len(names))
	for start := 0; start < len(names); start += bulkRows {
		part := names[start:min(start+bulkRows, len(names))]
		rows, err := r.db.QueryContext(ctx, `SELECT domain, arg_max(checked_at, audit_seq), arg_max(verified, audit_seq),
			arg_max(ns, audit_seq), arg_max(addrs, audit_seq), arg_max(problem, audit_seq)
			FROM registry_delegation WHERE domain IN (SELECT unnest(?::VARCHAR[])) GROUP BY domain`, part)
		if err != nil {
			return nil, fmt.Errorf("reading delegation checks: %w", err)
		}
		for rows.Next() {
			var c DelegationCheck
			var ns, addrs string
			if err := rows.Scan(&c.Domain, &c.CheckedAt, &c.Verified, &ns, &addrs, &c.Problem); err != nil {
				rows.Close()
				return nil, fmt.Errorf("reading delegation checks: %w", err)
			}
			c.CheckedAt = c.CheckedAt.UTC()
			c.NS, c.Addrs = strings.Fields(ns), strings.Fields(addrs)
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
