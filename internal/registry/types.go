package registry

import (
	"errors"
	"time"
)

// Errors that callers tell apart; every error the registry returns for bad
// input wraps one of them, and its message names what is wrong and where.
var (
	// ErrNotFound: the case, domain or order does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists: a case or domain of that name exists already.
	ErrExists = errors.New("already exists")
	// ErrInvalid: the input is malformed (bad name, date, type, …).
	ErrInvalid = errors.New("invalid input")
	// ErrIllegalTransition: the lifecycle does not allow that state change.
	ErrIllegalTransition = errors.New("illegal state transition")
)

// State is a seized domain's place in its lifecycle.
type State string

// The lifecycle: listed → restrained → sinkholed → transferred, and released
// from any of them.
const (
	StateListed      State = "listed"      // named in a filing, not yet under our control
	StateRestrained  State = "restrained"  // a restraining order binds registry and registrar
	StateSinkholed   State = "sinkholed"   // delegated to our name servers
	StateTransferred State = "transferred" // ownership transferred to the plaintiff
	StateReleased    State = "released"    // given up: order dissolved, expired or domain returned
)

// OrderType is the kind of court order.
type OrderType string

// Order types, in the order a case usually meets them.
const (
	OrderTRO                   OrderType = "tro"                    // temporary restraining order
	OrderPreliminaryInjunction OrderType = "preliminary-injunction" // after the show-cause hearing
	OrderDefaultJudgement      OrderType = "default-judgement"      // after the objection window
	OrderTransfer              OrderType = "transfer"               // transfer of ownership
)

// Case is one takedown operation before one court.
type Case struct {
	// Name is the short handle the CLI and API use: lower case letters,
	// digits, '-', '_' and '.', 1–64 characters, e.g. "waledac-2010".
	Name   string `json:"name"`
	Title  string `json:"title,omitempty"`
	Court  string `json:"court"`
	Docket string `json:"docket"`
	Notes  string `json:"notes,omitempty"`
	// Family is the malware family the case is about, e.g. "waledac": the
	// family of every event for the case's domains that no rule names.
	Family string    `json:"family,omitempty"`
	Added  time.Time `json:"added"`
	// Orders are the case's court orders, oldest first.
	Orders []Order `json:"orders"`
	// Domains counts the case's domains per state.
	Domains map[State]int `json:"domains,omitempty"`
}

// NewCase is the input of AddCase.
type NewCase struct {
	Name   string `json:"name"`
	Title  string `json:"title,omitempty"`
	Court  string `json:"court"`
	Docket string `json:"docket"`
	Notes  string `json:"notes,omitempty"`
	Family string `json:"family,omitempty"`
}

// Order is a court order of a case.
type Order struct {
	ID   int64     `json:"id"`
	Case string    `json:"case"`
	Type OrderType `json:"type"`
	// Reference is how the order is cited, e.g. "Dkt. 12".
	Reference string `json:"reference,omitempty"`
	// Issued is the day the court signed the order (UTC midnight).
	Issued time.Time `json:"issued"`
	// ObjectionDeadline is the last day on which defendants may object; zero
	// if the order has none.
	ObjectionDeadline time.Time `json:"objection_deadline,omitzero"`
	// Expires is the day the order lapses unless extended; zero if never.
	Expires time.Time `json:"expires,omitzero"`
	Notes   string    `json:"notes,omitempty"`
}

// NewOrder is the input of AddOrder.
type NewOrder struct {
	Type              OrderType `json:"type"`
	Reference         string    `json:"reference,omitempty"`
	Issued            time.Time `json:"issued"`
	ObjectionDeadline time.Time `json:"objection_deadline,omitzero"`
	Expires           time.Time `json:"expires,omitzero"`
	Notes             string    `json:"notes,omitempty"`
}

// Domain is a seized domain name.
type Domain struct {
	// Name is lower-case A-labels (punycode), no trailing dot.
	Name string `json:"name"`
	Case string `json:"case"`
	// TLD is the public suffix's last label, e.g. "com".
	TLD       string `json:"tld"`
	Registrar string `json:"registrar,omitempty"`
	// Registry is the operator of the TLD, e.g. "Verisign" for com.
	Registry string `json:"registry,omitempty"`
	Family   string `json:"family,omitempty"`
	State    State  `json:"state"`
	// StateSince is when the domain entered State.
	StateSince time.Time `json:"state_since"`
	Added      time.Time `json:"added"`
	// History lists every state change, oldest first. Filled by GetDomain
	// only.
	History []Transition `json:"history,omitempty"`
	// Delegation is the last delegation check. Filled by GetDomain only.
	Delegation *DelegationCheck `json:"delegation,omitempty"`
	// DSState is what the last delegation check found of the domain's DS
	// records at its parent; empty when no check looked at them. Filled
	// by ListDomains and GetDomain.
	DSState DSState `json:"ds_state,omitempty"`
}

// DelegationCheck is what a delegation check found for a domain: whether
// its NS records point at the sinkhole's name servers.
type DelegationCheck struct {
	Domain    string    `json:"domain"`
	CheckedAt time.Time `json:"checked_at"`
	// Verified: every NS record found names one of our name servers.
	Verified bool `json:"verified"`
	// NS and Addrs are the name servers and addresses found.
	NS    []string `json:"ns"`
	Addrs []string `json:"addrs"`
	// Problem says why the delegation is not verified.
	Problem string `json:"problem,omitempty"`
	// DSState classifies the DS records the parent zone publishes for the
	// domain (see DSState). A check that did not ask for them leaves it
	// empty. RecordDelegation decides signed against stale with our keys
	// (Config.OurDS), whatever the caller said.
	DSState DSState `json:"ds_state,omitempty"`
	// DS are the DS records found at the parent, as their presentation
	// format's data: "key-tag algorithm digest-type digest", e.g.
	// "31589 13 2 9A3C…".
	DS []string `json:"ds,omitempty"`
	// DSProblem says why the DS records could not be read (state
	// DSError): "SERVFAIL", "resolver timeout", ….
	DSProblem string `json:"ds_problem,omitempty"`
}

// DSState is what the parent zone's DS records for a seized domain mean for
// the validating resolvers that look the domain up.
type DSState string

// The DS states. Unsigned and signed are fine; stale makes every validating
// resolver answer SERVFAIL for the domain and every name below it.
const (
	// DSUnsigned: the parent has no DS record for the domain (or only DS
	// records no validating resolver can use): resolvers take the
	// sinkhole's answers as insecure.
	DSUnsigned DSState = "unsigned"
	// DSSigned: a DS record at the parent is one of our keys: the chain of
	// trust reaches the sinkhole's signatures.
	DSSigned DSState = "signed"
	// DSStale: the parent has DS records and none is ours (the
	// registrant's old key): validating resolvers SERVFAIL.
	DSStale DSState = "stale"
	// DSError: the parent's servers could not be asked (timeout,
	// SERVFAIL, REFUSED…); the state is unknown, not unsigned.
	DSError DSState = "error"
)

// Transition is one change of a domain's state.
type Transition struct {
	From   State     `json:"from"` // empty for the first entry (added as listed)
	To     State     `json:"to"`
	At     time.Time `json:"at"`
	Actor  string    `json:"actor"`
	Reason string    `json:"reason,omitempty"`
}

// Change says who makes a change and why; it goes into the audit log.
type Change struct {
	Actor  string `json:"actor"`
	Reason string `json:"reason,omitempty"`
}

// DomainFilter selects domains for ListDomains; zero fields match all.
type DomainFilter struct {
	Case      string `json:"case,omitempty"`
	State     State  `json:"state,omitempty"`
	Registrar string `json:"registrar,omitempty"`
	TLD       string `json:"tld,omitempty"`
	Family    string `json:"family,omitempty"`
	// Limit caps the result; 0 means no limit.
	Limit int `json:"limit,omitempty"`
}

// ImportResult tells what ImportDomains added.
type ImportResult struct {
	Case  string `json:"case"`
	Added int    `json:"added"`
	// Domains are the normalised names added, in file order.
	Domains []string `json:"domains"`
}

// LineError is one problem of an imported file.
type LineError struct {
	Line int    `json:"line"` // 1-based
	Text string `json:"text"` // the line as read (trimmed, cut to 200 bytes)
	Msg  string `json:"msg"`
}

// ImportError lists every problem found in an imported file. It wraps
// ErrInvalid. Nothing was imported.
type ImportError struct {
	File     string      `json:"file"`
	Problems []LineError `json:"problems"`
	// Total is the number of problems found when Problems lists only the
	// first of them (Shorten; the API's answer); 0 when it lists all.
	Total int `json:"total,omitempty"`
}

// Deadline is a date by which something must happen in a case.
type Deadline struct {
	Case      string    `json:"case"`
	OrderID   int64     `json:"order_id"`
	OrderType OrderType `json:"order_type"`
	Reference string    `json:"reference,omitempty"`
	// Kind is "objection" or "expiry".
	Kind string    `json:"kind"`
	Due  time.Time `json:"due"`
}

// Package is what one registrar or registry receives with a court order: the
// case, its orders and the domains it must act on.
type Package struct {
	// Kind is "registrar" or "registry".
	Kind      string   `json:"kind"`
	Recipient string   `json:"recipient"`
	Case      Case     `json:"case"`
	Domains   []Domain `json:"domains"`
	// DNSSEC says, per domain whose DS records at the parent must change,
	// what to do with them; by domain name. Empty when none must.
	DNSSEC []DSInstruction `json:"dnssec,omitempty"`
}

// DS actions of a DSInstruction.
const (
	// DSActionRemove: remove the DS records (the case does not sign).
	DSActionRemove = "remove"
	// DSActionReplace: replace them with ours (the case signs).
	DSActionReplace = "replace"
)

// DSInstruction tells a registry or registrar what to do with the DS
// records of one domain: remove the stale ones, or replace them with ours.
type DSInstruction struct {
	Domain string `json:"domain"`
	// Action is DSActionRemove or DSActionReplace.
	Action string `json:"action"`
	// Remove are the DS records the parent publishes now, Add ours (for
	// DSActionReplace), each "key-tag algorithm digest-type digest".
	Remove []string `json:"remove"`
	Add    []string `json:"add,omitempty"`
}

// AuditEntry is one change in the append-only audit log.
type AuditEntry struct {
	Seq    int64     `json:"seq"`
	At     time.Time `json:"at"`
	Actor  string    `json:"actor"`
	Action string    `json:"action"` // e.g. "case.add", "order.add", "domain.import", "domain.state"
	Object string    `json:"object"` // e.g. "case:waledac", "domain:example.com"
	Detail string    `json:"detail"` // what changed, as compact JSON
	Reason string    `json:"reason,omitempty"`
	// Hash is sha256 over the previous entry's Hash and this entry's fields,
	// so that a rewritten entry breaks the chain.
	Hash string `json:"hash"`
}

// AuditFilter selects audit entries; zero fields match all.
type AuditFilter struct {
	Object   string `json:"object,omitempty"`
	AfterSeq int64  `json:"after_seq,omitempty"`
	Limit    int    `json:"limit,omitempty"`
}
