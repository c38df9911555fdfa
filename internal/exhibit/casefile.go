package exhibit

import (
	"github.com/takedown-project/takedown/internal/registry"
)

// CaseFile is case.json: the case as the registry knows it when the
// exhibit is made.
type CaseFile struct {
	// Case is the case with its orders.
	Case registry.Case `json:"case"`
	// Period is the exhibit's period, [From, To), RFC 3339 UTC.
	Period Period `json:"period"`
	// Exported is when the exhibit was made, RFC 3339 UTC.
	Exported string `json:"exported"`
	// Domains are the case's domains, each with its history of states.
	Domains []registry.Domain `json:"domains"`
	// Audit are the audit entries of the case, of its orders and of its
	// domains, oldest first; each is also an audit leaf in audit/.
	Audit []registry.AuditEntry `json:"audit"`
}

// Period is a span of time, [From, To).
type Period struct {
	From string `json:"from"`
	To   string `json:"to"`
}
