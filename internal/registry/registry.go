// Package registry keeps the cases, court orders and seized domains of
// takedown, with each domain's lifecycle and an append-only, hash-chained
// audit log of every change.
package registry

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// Config configures a Registry.
type Config struct {
	// DB is the open takedown database; the registry creates its tables.
	DB *sql.DB
	// Now returns the current time; nil means time.Now. Tests set it.
	Now func() time.Time
}

// Registry is the case and domain registry over a database.
type Registry struct {
	db  *sql.DB
	now func() time.Time
}

var errTODO = errors.New("not implemented")

// New opens the registry in cfg.DB, migrating its schema.
func New(ctx context.Context, cfg Config) (*Registry, error) {
	return nil, errTODO
}

// AddCase adds a new case.
func (r *Registry) AddCase(ctx context.Context, c NewCase, ch Change) (Case, error) {
	return Case{}, errTODO
}

// ListCases returns all cases, by name.
func (r *Registry) ListCases(ctx context.Context) ([]Case, error) { return nil, errTODO }

// GetCase returns one case with its orders and domain counts.
func (r *Registry) GetCase(ctx context.Context, name string) (Case, error) { return Case{}, errTODO }

// AddOrder adds a court order to a case.
func (r *Registry) AddOrder(ctx context.Context, caseName string, o NewOrder, ch Change) (Order, error) {
	return Order{}, errTODO
}

// ImportDomains adds the domains listed in data (one name a line, or CSV
// with name, registrar, family) to a case, all or nothing. file names the
// source in error messages.
func (r *Registry) ImportDomains(ctx context.Context, caseName, file string, data []byte, ch Change) (ImportResult, error) {
	return ImportResult{}, errTODO
}

// ListDomains returns the domains that match f, by name.
func (r *Registry) ListDomains(ctx context.Context, f DomainFilter) ([]Domain, error) { return nil, errTODO }

// GetDomain returns one domain with its history. name may be an IDN or
// carry a trailing dot.
func (r *Registry) GetDomain(ctx context.Context, name string) (Domain, error) {
	return Domain{}, errTODO
}

// SetState moves the named domains to state to, all or nothing.
func (r *Registry) SetState(ctx context.Context, names []string, to State, ch Change) ([]Domain, error) {
	return nil, errTODO
}

// Deadlines returns the deadlines due between now and now+within, soonest
// first; a deadline already passed is left out.
func (r *Registry) Deadlines(ctx context.Context, now time.Time, within time.Duration) ([]Deadline, error) {
	return nil, errTODO
}

// Packages returns one package per registrar and one per registry of the
// case's domains that are not released.
func (r *Registry) Packages(ctx context.Context, caseName string) ([]Package, error) {
	return nil, errTODO
}

// Audit returns audit entries, oldest first.
func (r *Registry) Audit(ctx context.Context, f AuditFilter) ([]AuditEntry, error) { return nil, errTODO }

// VerifyAudit recomputes the hash chain of the audit log and returns how
// many entries it checked, or an error naming the first entry that breaks.
func (r *Registry) VerifyAudit(ctx context.Context) (int64, error) { return 0, errTODO }
