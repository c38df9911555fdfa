package registry

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"net/mail"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/takedown-project/takedown/internal/scope"
)

// Subscribers are the network owners — an ISP's abuse desk, a hosting
// company, a national CERT — that receive reports of the infected hosts in
// their scope and pull them with an API key.
//
// Like everything in the registry they are stored append-only: every add,
// update and removal is a new row of registry_subscribers (the latest row of
// a name is its current state), a key is one row of registry_subscriber_keys
// holding only the SHA-256 of the key, and a revocation one row of
// registry_subscriber_key_revocations. A removed subscriber keeps its rows
// and its audit history; its keys are revoked with it. A name may be added
// again after a removal; the old keys stay revoked.

// ErrUnknownKey: SubscriberByKey was given a key that is malformed, unknown
// or revoked, or whose subscriber was removed. It does not say which.
var ErrUnknownKey = errors.New("unknown or revoked API key")

// Subscriber is an organisation that receives reports of its networks.
type Subscriber struct {
	// Name is the handle the CLI and API use, with the rules of case names,
	// e.g. "isp-a".
	Name string `json:"name"`
	// Org is the organisation's display name.
	Org string `json:"org"`
	// Contacts are the e-mail addresses reports go to; at least one.
	Contacts []string `json:"contacts"`
	// Scope is the AS numbers, address blocks and countries whose hosts the
	// subscriber sees; never empty. Scopes of subscribers may overlap.
	Scope scope.Scope `json:"scope"`
	// Formats are the report formats, of Formats, in that order; at least
	// one.
	Formats []string `json:"formats"`
	// SendAt is the time of day, UTC, "HH:MM", at which the daily report is
	// sent.
	SendAt string `json:"send_at"`
	// TLP is the Traffic Light Protocol (2.0) label of the reports: CLEAR,
	// GREEN, AMBER, AMBER+STRICT or RED.
	TLP string `json:"tlp"`
	// Keys are the subscriber's API keys, active and revoked, oldest first.
	Keys []APIKey `json:"keys"`
	// Created is when the subscriber was added; Updated when it last
	// changed (a key added or revoked is not a change of the subscriber).
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
}

// APIKey describes one API key of a subscriber. The key itself is shown
// once, by AddAPIKey; the registry keeps only its SHA-256.
type APIKey struct {
	// ID is the key's first characters after "tdk_": not secret, enough to
	// tell keys apart in listings and to revoke one.
	ID      string    `json:"id"`
	Created time.Time `json:"created"`
	// Revoked is when the key was revoked; zero while it is active.
	Revoked time.Time `json:"revoked,omitzero"`
}

// Active reports whether the key is not revoked.
func (k APIKey) Active() bool { return k.Revoked.IsZero() }

// NewSubscriber is the input of AddSubscriber. Lists are written as people
// write them ("AS64512", "192.0.2.0/24", "de"); empty Formats, SendAt and
// TLP take their defaults.
type NewSubscriber struct {
	Name      string   `json:"name"`
	Org       string   `json:"org"`
	Contacts  []string `json:"contacts"`
	ASNs      []string `json:"asns,omitempty"`
	CIDRs     []string `json:"cidrs,omitempty"`
	Countries []string `json:"countries,omitempty"`
	// Formats default to DefaultFormats.
	Formats []string `json:"formats,omitempty"`
	// SendAt defaults to DefaultSendAt.
	SendAt string `json:"send_at,omitempty"`
	// TLP defaults to DefaultTLP.
	TLP string `json:"tlp,omitempty"`
}

// SubscriberUpdate is the input of UpdateSubscriber: nil and empty fields
// leave their value as it is. A list is either replaced whole (the pointer
// field, e.g. ASNs) or edited (AddASNs, RemoveASNs), not both; removing an
// item the list does not hold is an error, adding one it holds is not.
type SubscriberUpdate struct {
	Org *string `json:"org,omitempty"`

	Contacts       *[]string `json:"contacts,omitempty"`
	AddContacts    []string  `json:"add_contacts,omitempty"`
	RemoveContacts []string  `json:"remove_contacts,omitempty"`

	ASNs       *[]string `json:"asns,omitempty"`
	AddASNs    []string  `json:"add_asns,omitempty"`
	RemoveASNs []string  `json:"remove_asns,omitempty"`

	CIDRs       *[]string `json:"cidrs,omitempty"`
	AddCIDRs    []string  `json:"add_cidrs,omitempty"`
	RemoveCIDRs []string  `json:"remove_cidrs,omitempty"`

	Countries       *[]string `json:"countries,omitempty"`
	AddCountries    []string  `json:"add_countries,omitempty"`
	RemoveCountries []string  `json:"remove_countries,omitempty"`

	Formats *[]string `json:"formats,omitempty"`
	SendAt  *string   `json:"send_at,omitempty"`
	TLP     *string   `json:"tlp,omitempty"`
}

// Empty reports whether u changes nothing.
func (u SubscriberUpdate) Empty() bool {
	return u.Org == nil && u.Contacts == nil && u.ASNs == nil && u.CIDRs == nil && u.Countries == nil &&
		u.Formats == nil && u.SendAt == nil && u.TLP == nil &&
		len(u.AddContacts)+len(u.RemoveContacts)+len(u.AddASNs)+len(u.RemoveASNs)+
			len(u.AddCIDRs)+len(u.RemoveCIDRs)+len(u.AddCountries)+len(u.RemoveCountries) == 0
}

// Defaults of a new subscriber.
const (
	DefaultSendAt = "06:00"
	DefaultTLP    = "AMBER"
)

// DefaultFormats are the formats of a subscriber that names none.
var DefaultFormats = []string{"csv"}

// Formats are the report formats a subscriber may choose, in the order
// Subscriber.Formats lists them: report.SubscriberFormats (a test of
// internal/remediate holds the two lists equal), the last four
// Shadowserver's sinkhole event reports.
var Formats = []string{"csv", "json", "xarf", "stix", "event4_sinkhole", "event4_sinkhole_http", "event6_sinkhole", "event6_sinkhole_http"}

// TLPLevels are the Traffic Light Protocol 2.0 labels.
var TLPLevels = []string{"CLEAR", "GREEN", "AMBER", "AMBER+STRICT", "RED"}

// Limits of a subscriber's lists.
const (
	maxContacts   = 50
	maxScopeItems = 10_000 // per list: ASNs, CIDRs, countries
)

// Audit actions of subscribers; the object is "subscriber:NAME".
const (
	actionSubscriberAdd    = "subscriber.add"
	actionSubscriberUpdate = "subscriber.update"
	actionSubscriberRemove = "subscriber.remove"
	actionKeyAdd           = "subscriber.key.add"
	actionKeyRevoke        = "subscriber.key.revoke"
)

// subscribersSchema is migration 4. Lists are stored space-separated, as in
// registry_delegation.
const subscribersSchema = `
CREATE TABLE registry_subscribers (
	audit_seq   BIGINT NOT NULL,
	name        VARCHAR NOT NULL,
	changed_at  TIMESTAMP NOT NULL,
	removed     BOOLEAN NOT NULL,
	created     TIMESTAMP NOT NULL,
	created_seq BIGINT NOT NULL,
	org         VARCHAR NOT NULL,
	contacts    VARCHAR NOT NULL,
	asns        VARCHAR NOT NULL,
	cidrs       VARCHAR NOT NULL,
	countries   VARCHAR NOT NULL,
	formats     VARCHAR NOT NULL,
	send_at     VARCHAR NOT NULL,
	tlp         VARCHAR NOT NULL
);
CREATE TABLE registry_subscriber_keys (
	id         VARCHAR PRIMARY KEY,
	subscriber VARCHAR NOT NULL,
	sha256     VARCHAR NOT NULL,
	created    TIMESTAMP NOT NULL,
	audit_seq  BIGINT NOT NULL
);
CREATE TABLE registry_subscriber_key_revocations (
	key_id    VARCHAR NOT NULL,
	revoked   TIMESTAMP NOT NULL,
	audit_seq BIGINT NOT NULL
);`

func checkSubscriberName(name string) error {
	if !caseNameRE.MatchString(name) {
		return fmt.Errorf("subscriber name %q: want 1–64 lower case letters, digits, '-', '_' or '.', beginning with a letter or digit, e.g. \"isp-a\": %w",
			cut(name, 80), ErrInvalid)
	}
	return nil
}

// subscriberObject is the audit object of a subscriber.
func subscriberObject(name string) string { return "subscriber:" + name }

// problems collects what is wrong with a subscriber, to report all at once.
type problems []string

func (p *problems) add(format string, args ...any) { *p = append(*p, fmt.Sprintf(format, args...)) }

// addErr adds err's message, or each message of an errors.Join.
func (p *problems) addErr(err error) {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			p.addErr(e)
		}
		return
	}
	*p = append(*p, err.Error())
}

func (p problems) err(name string) error {
	if len(p) == 0 {
		return nil
	}
	return fmt.Errorf("subscriber %s: %s: %w", name, strings.Join(p, "; "), ErrInvalid)
}

// ParseContact checks an e-mail address: a bare address such as
// abuse@isp.example (no display name, no angle brackets) whose domain has a
// dot. It returns it with the domain in lower case.
func ParseContact(s string) (string, error) {
	t := strings.TrimSpace(s)
	bad := fmt.Errorf("contact %q is not an e-mail address such as abuse@isp.example", cut(s, 100))
	if len(t) > 254 {
		return "", bad
	}
	a, err := mail.ParseAddress(t)
	if err != nil || a.Name != "" || a.Address != t {
		return "", bad
	}
	at := strings.LastIndexByte(t, '@')
	domain := strings.ToLower(t[at+1:])
	if !strings.Contains(domain, ".") || strings.HasPrefix(domain, "[") || strings.HasSuffix(domain, ".") {
		return "", bad
	}
	return t[:at+1] + domain, nil
}

// ParseFormat checks a report format name, ignoring case.
func ParseFormat(s string) (string, error) {
	f := strings.ToLower(strings.TrimSpace(s))
	if slices.Contains(Formats, f) {
		return f, nil
	}
	return "", fmt.Errorf("format %q is not one of %s", cut(s, 100), orList(Formats))
}

var sendAtRE = regexp.MustCompile(`^([01]?[0-9]|2[0-3]):([0-5][0-9])$`)

// ParseSendAt checks a time of day, "HH:MM" or "H:MM", 00:00 to 23:59 (UTC),
// and returns it as "HH:MM".
func ParseSendAt(s string) (string, error) {
	m := sendAtRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return "", fmt.Errorf("send time %q is not a UTC time of day HH:MM from 00:00 to 23:59, e.g. %q", cut(s, 100), DefaultSendAt)
	}
	h, _ := strconv.Atoi(m[1])
	return fmt.Sprintf("%02d:%s", h, m[2]), nil
}

// ParseTLP checks a Traffic Light Protocol label, ignoring case and a
// "TLP:" prefix; the TLP 1.0 name WHITE is taken as CLEAR.
func ParseTLP(s string) (string, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	t = strings.TrimPrefix(t, "TLP:")
	if t == "WHITE" {
		t = "CLEAR"
	}
	if slices.Contains(TLPLevels, t) {
		return t, nil
	}
	return "", fmt.Errorf("TLP %q is not one of %s", cut(s, 100), orList(TLPLevels))
}

// fields is a subscriber's settings in their stored form: every list
// normalised, lists of the scope written as scope.Parse reads them.
type fields struct {
	Org       string   `json:"org"`
	Contacts  []string `json:"contacts"`
	ASNs      []string `json:"asns"`
	CIDRs     []string `json:"cidrs"`
	Countries []string `json:"countries"`
	Formats   []string `json:"formats"`
	SendAt    string   `json:"send_at"`
	TLP       string   `json:"tlp"`
}

// scopeLists writes a scope as the three lists of fields.
func scopeLists(s scope.Scope) (asns, cidrs, countries []string) {
	asns, cidrs = []string{}, []string{}
	for _, a := range s.ASNs {
		asns = append(asns, "AS"+strconv.FormatUint(uint64(a), 10))
	}
	for _, p := range s.Prefixes {
		cidrs = append(cidrs, p.String())
	}
	return asns, cidrs, append([]string{}, s.Countries...)
}

// check validates and normalises f, adding what is wrong to p, and returns
// the parsed scope.
func (f *fields) check(p *problems) scope.Scope {
	f.Org = strings.TrimSpace(f.Org)
	if f.Org == "" {
		p.add("organisation name is empty")
	} else if err := checkText("organisation name", f.Org, 200, false); err != nil {
		p.add("%s", strings.TrimSuffix(err.Error(), ": "+ErrInvalid.Error()))
	}

	given := len(f.Contacts)
	contacts := []string{}
	for _, c := range f.Contacts {
		a, err := ParseContact(c)
		if err != nil {
			p.addErr(err)
			continue
		}
		if !slices.Contains(contacts, a) {
			contacts = append(contacts, a)
		}
	}
	f.Contacts = contacts
	switch {
	case given == 0:
		p.add("no contact: give at least one e-mail address")
	case len(f.Contacts) > maxContacts:
		p.add("%d contacts, more than %d", len(f.Contacts), maxContacts)
	}

	for _, l := range []struct {
		what string
		n    int
	}{{"ASNs", len(f.ASNs)}, {"CIDRs", len(f.CIDRs)}, {"countries", len(f.Countries)}} {
		if l.n > maxScopeItems {
			p.add("%s %s, more than %s", thousandsInt(l.n), l.what, thousandsInt(maxScopeItems))
		}
	}
	sc, err := scope.Parse(f.ASNs, f.CIDRs, f.Countries)
	if err != nil {
		p.addErr(err)
	} else if sc.Empty() {
		p.add("the scope is empty: give at least one ASN, CIDR or country")
	}
	f.ASNs, f.CIDRs, f.Countries = scopeLists(sc)

	if len(f.Formats) == 0 {
		p.add("no format: give at least one of %s", orList(Formats))
	}
	var formats []string
	for _, s := range f.Formats {
		v, err := ParseFormat(s)
		if err != nil {
			p.addErr(err)
			continue
		}
		formats = append(formats, v)
	}
	f.Formats = []string{}
	for _, v := range Formats {
		if slices.Contains(formats, v) {
			f.Formats = append(f.Formats, v)
		}
	}
	if v, err := ParseSendAt(f.SendAt); err != nil {
		p.addErr(err)
	} else {
		f.SendAt = v
	}
	if v, err := ParseTLP(f.TLP); err != nil {
		p.addErr(err)
	} else {
		f.TLP = v
	}
	return sc
}

func thousandsInt(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// subscriberRec is a subscriber as read, with where its current
// incarnation began.
type subscriberRec struct {
	Subscriber
	f          fields
	createdSeq int64
}

// AddSubscriber adds a subscriber. Every problem of the input is named in
// one error wrapping ErrInvalid: bad contacts, ASNs, CIDRs, countries,
// formats, send time and TLP, each quoted. A name in use is ErrExists; the
// name of a removed subscriber may be used again.
func (r *Registry) AddSubscriber(ctx context.Context, ns NewSubscriber, ch Change) (Subscriber, error) {
	ns.Name = strings.TrimSpace(ns.Name)
	if err := checkSubscriberName(ns.Name); err != nil {
		return Subscriber{}, err
	}
	f := fields{Org: ns.Org, Contacts: ns.Contacts, ASNs: ns.ASNs, CIDRs: ns.CIDRs, Countries: ns.Countries,
		Formats: ns.Formats, SendAt: ns.SendAt, TLP: ns.TLP}
	if len(f.Formats) == 0 {
		f.Formats = DefaultFormats
	}
	if strings.TrimSpace(f.SendAt) == "" {
		f.SendAt = DefaultSendAt
	}
	if strings.TrimSpace(f.TLP) == "" {
		f.TLP = DefaultTLP
	}
	var p problems
	sc := f.check(&p)
	if err := p.err(ns.Name); err != nil {
		return Subscriber{}, err
	}
	var out Subscriber
	err := r.write(ctx, ch, func(w *writeTx) error {
		cur, err := subscribers(ctx, w.tx, ns.Name)
		if err != nil {
			return err
		}
		if len(cur) > 0 {
			return fmt.Errorf("subscriber %s: %w", ns.Name, ErrExists)
		}
		seq, err := w.record(actionSubscriberAdd, subscriberObject(ns.Name), struct {
			Name string `json:"name"`
			fields
		}{ns.Name, f})
		if err != nil {
			return err
		}
		if err := w.putSubscriber(seq, ns.Name, f, w.at, seq, false); err != nil {
			return err
		}
		out = Subscriber{Name: ns.Name, Org: f.Org, Contacts: f.Contacts, Scope: sc, Formats: f.Formats,
			SendAt: f.SendAt, TLP: f.TLP, Keys: []APIKey{}, Created: w.at, Updated: w.at}
		return nil
	})
	if err != nil {
		return Subscriber{}, err
	}
	return out, nil
}

// putSubscriber appends a version of a subscriber.
func (w *writeTx) putSubscriber(seq int64, name string, f fields, created time.Time, createdSeq int64, removed bool) error {
	_, err := w.tx.ExecContext(w.ctx, `INSERT INTO registry_subscribers
		(audit_seq, name, changed_at, removed, created, created_seq, org, contacts, asns, cidrs, countries, formats, send_at, tlp)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		seq, name, w.at, removed, created, createdSeq, f.Org, strings.Join(f.Contacts, " "),
		strings.Join(f.ASNs, " "), strings.Join(f.CIDRs, " "), strings.Join(f.Countries, " "),
		strings.Join(f.Formats, " "), f.SendAt, f.TLP)
	if err != nil {
		return fmt.Errorf("storing subscriber %s: %w", name, err)
	}
	return nil
}

// ListSubscribers returns the subscribers, by name, with their keys.
func (r *Registry) ListSubscribers(ctx context.Context) ([]Subscriber, error) {
	recs, err := subscribers(ctx, r.db, "")
	if err != nil {
		return nil, err
	}
	out := make([]Subscriber, len(recs))
	for i, s := range recs {
		out[i] = s.Subscriber
	}
	return out, nil
}

// GetSubscriber returns one subscriber with its keys.
func (r *Registry) GetSubscriber(ctx context.Context, name string) (Subscriber, error) {
	s, err := getSubscriber(ctx, r.db, strings.TrimSpace(name))
	return s.Subscriber, err
}

func getSubscriber(ctx context.Context, q querier, name string) (subscriberRec, error) {
	if err := checkSubscriberName(name); err != nil {
		return subscriberRec{}, err
	}
	recs, err := subscribers(ctx, q, name)
	if err != nil {
		return subscriberRec{}, err
	}
	if len(recs) == 0 {
		return subscriberRec{}, fmt.Errorf("subscriber %q: %w", name, ErrNotFound)
	}
	return recs[0], nil
}

// subscribers reads the current subscriber called only, or all if only is
// "", with their keys.
func subscribers(ctx context.Context, q querier, only string) ([]subscriberRec, error) {
	cond, args := "", []any{}
	if only != "" {
		cond, args = ` WHERE name = ?`, []any{only}
	}
	rows, err := q.QueryContext(ctx, `SELECT name, org, contacts, asns, cidrs, countries, formats, send_at, tlp, created, created_seq, changed_at
		FROM (SELECT * FROM registry_subscribers`+cond+` QUALIFY row_number() OVER (PARTITION BY name ORDER BY audit_seq DESC) = 1)
		WHERE NOT removed ORDER BY name`, args...)
	if err != nil {
		return nil, fmt.Errorf("reading subscribers: %w", err)
	}
	out := []subscriberRec{}
	idx := map[string]int{}
	for rows.Next() {
		var s subscriberRec
		var contacts, asns, cidrs, countries, formats string
		if err := rows.Scan(&s.Name, &s.f.Org, &contacts, &asns, &cidrs, &countries, &formats, &s.f.SendAt, &s.f.TLP,
			&s.Created, &s.createdSeq, &s.Updated); err != nil {
			rows.Close()
			return nil, fmt.Errorf("reading subscribers: %w", err)
		}
		s.f.Contacts, s.f.ASNs, s.f.CIDRs = strings.Fields(contacts), strings.Fields(asns), strings.Fields(cidrs)
		s.f.Countries, s.f.Formats = strings.Fields(countries), strings.Fields(formats)
		if s.Scope, err = scope.Parse(s.f.ASNs, s.f.CIDRs, s.f.Countries); err != nil {
			rows.Close()
			return nil, fmt.Errorf("reading subscriber %s: stored scope: %w", s.Name, err)
		}
		s.Org, s.Contacts, s.Formats, s.SendAt, s.TLP = s.f.Org, s.f.Contacts, s.f.Formats, s.f.SendAt, s.f.TLP
		s.Created, s.Updated = s.Created.UTC(), s.Updated.UTC()
		s.Keys = []APIKey{}
		idx[s.Name] = len(out)
		out = append(out, s)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading subscribers: %w", err)
	}
	if len(out) == 0 {
		return out, nil
	}
	condK := ""
	if only != "" {
		condK = ` WHERE k.subscriber = ?`
	}
	rows, err = q.QueryContext(ctx, `SELECT k.subscriber, k.id, k.created, k.audit_seq, r.revoked
		FROM registry_subscriber_keys k LEFT JOIN registry_subscriber_key_revocations r ON r.key_id = k.id`+condK+`
		ORDER BY k.audit_seq, k.id`, args...)
	if err != nil {
		return nil, fmt.Errorf("reading API keys: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var k APIKey
		var seq int64
		var revoked sql.NullTime
		if err := rows.Scan(&name, &k.ID, &k.Created, &seq, &revoked); err != nil {
			return nil, fmt.Errorf("reading API keys: %w", err)
		}
		i, ok := idx[name]
		if !ok || seq < out[i].createdSeq {
			continue // of a removed subscriber, or of the name's earlier incarnation
		}
		k.Created = k.Created.UTC()
		if revoked.Valid {
			k.Revoked = revoked.Time.UTC()
		}
		out[i].Keys = append(out[i].Keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading API keys: %w", err)
	}
	return out, nil
}

// editList applies a replacement or additions and removals to the list cur
// of field (e.g. "ASN", plural fields), each item normalised by norm, and returns the new
// list; problems go to p.
func editList(p *problems, field, fields string, cur []string, repl *[]string, add, remove []string, norm func(string) (string, error)) []string {
	if repl != nil && len(add)+len(remove) > 0 {
		p.add("%s: give a new list or items to add and remove, not both", field)
		return cur
	}
	each := func(in []string) []string {
		var out []string
		for _, s := range in {
			v, err := norm(s)
			if err != nil {
				p.addErr(err)
				continue
			}
			out = append(out, v)
		}
		return out
	}
	out := slices.Clone(cur)
	if repl != nil {
		out = each(*repl)
	}
	for _, v := range each(add) {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	for _, v := range each(remove) {
		i := slices.Index(out, v)
		if i < 0 {
			p.add("cannot remove %s %s: not among its %s", field, v, fields)
			continue
		}
		out = slices.Delete(out, i, i+1)
	}
	if out == nil {
		out = []string{}
	}
	return out
}

func normASN(s string) (string, error) {
	n, err := scope.ParseASN(s)
	return "AS" + strconv.FormatUint(uint64(n), 10), err
}

func normCIDR(s string) (string, error) {
	p, err := scope.ParsePrefix(s)
	return p.String(), err
}

// UpdateSubscriber changes a subscriber as u says, and returns it. The result
// must be a valid subscriber (at least one contact, a scope that is not
// empty); every problem is named in one error wrapping ErrInvalid. An update
// that changes nothing records nothing.
func (r *Registry) UpdateSubscriber(ctx context.Context, name string, u SubscriberUpdate, ch Change) (Subscriber, error) {
	name = strings.TrimSpace(name)
	if err := checkSubscriberName(name); err != nil {
		return Subscriber{}, err
	}
	if u.Empty() {
		return Subscriber{}, fmt.Errorf("subscriber %s: the update changes nothing: %w", name, ErrInvalid)
	}
	var out Subscriber
	err := r.write(ctx, ch, func(w *writeTx) error {
		cur, err := getSubscriber(ctx, w.tx, name)
		if err != nil {
			return err
		}
		old := cur.f
		f := old
		var p problems
		if u.Org != nil {
			f.Org = *u.Org
		}
		f.Contacts = editList(&p, "contact", "contacts", old.Contacts, u.Contacts, u.AddContacts, u.RemoveContacts, ParseContact)
		f.ASNs = editList(&p, "ASN", "ASNs", old.ASNs, u.ASNs, u.AddASNs, u.RemoveASNs, normASN)
		f.CIDRs = editList(&p, "CIDR", "CIDRs", old.CIDRs, u.CIDRs, u.AddCIDRs, u.RemoveCIDRs, normCIDR)
		f.Countries = editList(&p, "country", "countries", old.Countries, u.Countries, u.AddCountries, u.RemoveCountries, scope.ParseCountry)
		if u.Formats != nil {
			f.Formats = *u.Formats
		}
		if u.SendAt != nil {
			f.SendAt = *u.SendAt
		}
		if u.TLP != nil {
			f.TLP = *u.TLP
		}
		if len(p) > 0 {
			return p.err(name)
		}
		sc := f.check(&p)
		if err := p.err(name); err != nil {
			return err
		}
		out = cur.Subscriber
		out.Org, out.Contacts, out.Scope, out.Formats, out.SendAt, out.TLP = f.Org, f.Contacts, sc, f.Formats, f.SendAt, f.TLP
		diff := fieldsDiff(old, f)
		if len(diff) == 0 {
			return nil
		}
		seq, err := w.record(actionSubscriberUpdate, subscriberObject(name), diff)
		if err != nil {
			return err
		}
		out.Updated = w.at
		return w.putSubscriber(seq, name, f, cur.Created, cur.createdSeq, false)
	})
	if err != nil {
		return Subscriber{}, err
	}
	return out, nil
}

// fieldsDiff describes what changed from a to b, for the audit log: the old
// and new value of single values, the items added and removed of lists.
func fieldsDiff(a, b fields) map[string]any {
	d := map[string]any{}
	one := func(k, x, y string) {
		if x != y {
			d[k] = map[string]string{"from": x, "to": y}
		}
	}
	list := func(k string, x, y []string) {
		var added, removed []string
		for _, v := range y {
			if !slices.Contains(x, v) {
				added = append(added, v)
			}
		}
		for _, v := range x {
			if !slices.Contains(y, v) {
				removed = append(removed, v)
			}
		}
		if len(added)+len(removed) > 0 {
			m := map[string][]string{}
			if added != nil {
				m["added"] = added
			}
			if removed != nil {
				m["removed"] = removed
			}
			d[k] = m
		}
	}
	one("org", a.Org, b.Org)
	list("contacts", a.Contacts, b.Contacts)
	list("asns", a.ASNs, b.ASNs)
	list("cidrs", a.CIDRs, b.CIDRs)
	list("countries", a.Countries, b.Countries)
	list("formats", a.Formats, b.Formats)
	one("send_at", a.SendAt, b.SendAt)
	one("tlp", a.TLP, b.TLP)
	return d
}

// RemoveSubscriber removes a subscriber and revokes its active keys. Its
// rows and audit history stay; the name may be added again.
func (r *Registry) RemoveSubscriber(ctx context.Context, name string, ch Change) error {
	name = strings.TrimSpace(name)
	return r.write(ctx, ch, func(w *writeTx) error {
		cur, err := getSubscriber(ctx, w.tx, name)
		if err != nil {
			return err
		}
		revoked := []string{}
		for _, k := range cur.Keys {
			if k.Active() {
				revoked = append(revoked, k.ID)
			}
		}
		seq, err := w.record(actionSubscriberRemove, subscriberObject(name), map[string][]string{"keys_revoked": revoked})
		if err != nil {
			return err
		}
		for _, id := range revoked {
			if err := w.revokeKey(seq, id); err != nil {
				return err
			}
		}
		return w.putSubscriber(seq, name, cur.f, cur.Created, cur.createdSeq, true)
	})
}

func (w *writeTx) revokeKey(seq int64, id string) error {
	if _, err := w.tx.ExecContext(w.ctx, `INSERT INTO registry_subscriber_key_revocations (key_id, revoked, audit_seq) VALUES (?, ?, ?)`,
		id, w.at, seq); err != nil {
		return fmt.Errorf("revoking API key %s: %w", id, err)
	}
	return nil
}

// API keys are keyPrefix and keyChars characters of base32 (lower case,
// no padding) of keyBytes random bytes; the first keyIDChars of those are
// the key's ID.
const (
	keyPrefix  = "tdk_"
	keyBytes   = 40 // 320 bits: 280 after the 40 bits of the ID
	keyChars   = keyBytes * 8 / 5
	keyIDChars = 8
)

var keyEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// keyHash is how a key is stored: hex SHA-256. A key is 320 random bits,
// not a password, so a fast hash is right.
func keyHash(key string) string {
	h := sha256.Sum256([]byte(key))
	return hex.EncodeToString(h[:])
}

// AddAPIKey makes a new API key for a subscriber. The key is returned once
// and only its SHA-256 is stored: it cannot be shown again. It looks like
// "tdk_" followed by 64 characters of lower case base32; k.ID is the first
// 8 of them.
func (r *Registry) AddAPIKey(ctx context.Context, name string, ch Change) (key string, k APIKey, err error) {
	name = strings.TrimSpace(name)
	err = r.write(ctx, ch, func(w *writeTx) error {
		if _, err := getSubscriber(ctx, w.tx, name); err != nil {
			return err
		}
		for range 10 {
			var b [keyBytes]byte
			if _, err := rand.Read(b[:]); err != nil {
				return fmt.Errorf("making an API key: %w", err)
			}
			s := keyEncoding.EncodeToString(b[:])
			var n int
			if err := w.tx.QueryRowContext(ctx, `SELECT count(*) FROM registry_subscriber_keys WHERE id = ?`, s[:keyIDChars]).Scan(&n); err != nil {
				return fmt.Errorf("making an API key: %w", err)
			}
			if n == 0 {
				key, k = keyPrefix+s, APIKey{ID: s[:keyIDChars], Created: w.at}
				break
			}
		}
		if key == "" {
			return errors.New("making an API key: no free key ID in 10 tries")
		}
		seq, err := w.record(actionKeyAdd, subscriberObject(name), map[string]string{"id": k.ID})
		if err != nil {
			return err
		}
		if _, err := w.tx.ExecContext(ctx, `INSERT INTO registry_subscriber_keys (id, subscriber, sha256, created, audit_seq) VALUES (?, ?, ?, ?, ?)`,
			k.ID, name, keyHash(key), w.at, seq); err != nil {
			return fmt.Errorf("storing API key of %s: %w", name, err)
		}
		return nil
	})
	if err != nil {
		return "", APIKey{}, err
	}
	return key, k, nil
}

// RevokeAPIKey revokes a subscriber's key, named by its ID. A key the
// subscriber does not have is ErrNotFound, even if another subscriber has
// it; a key revoked already is ErrInvalid.
func (r *Registry) RevokeAPIKey(ctx context.Context, name, keyID string, ch Change) error {
	name, keyID = strings.TrimSpace(name), strings.TrimSpace(keyID)
	return r.write(ctx, ch, func(w *writeTx) error {
		cur, err := getSubscriber(ctx, w.tx, name)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(cur.Keys, func(k APIKey) bool { return k.ID == keyID })
		if i < 0 {
			return fmt.Errorf("subscriber %s has no API key %q: %w", name, cut(keyID, 20), ErrNotFound)
		}
		if k := cur.Keys[i]; !k.Active() {
			return fmt.Errorf("API key %s of subscriber %s was revoked already, at %s: %w",
				keyID, name, k.Revoked.Format(time.RFC3339), ErrInvalid)
		}
		seq, err := w.record(actionKeyRevoke, subscriberObject(name), map[string]string{"id": keyID})
		if err != nil {
			return err
		}
		return w.revokeKey(seq, keyID)
	})
}

// noKeyHash is compared when a key's ID is unknown, so that the comparison
// costs the same either way.
var noKeyHash = strings.Repeat("0", 64)

// SubscriberByKey returns the subscriber an API key belongs to. A key that
// is malformed, unknown or revoked, or whose subscriber was removed, is
// ErrUnknownKey, with nothing said about which.
//
// The key's ID (its first characters, not secret) finds the stored hash; the
// hash of the key is then compared with it in constant time, so the time
// taken tells nothing about the secret part.
func (r *Registry) SubscriberByKey(ctx context.Context, key string) (Subscriber, error) {
	if !wellFormedKey(key) {
		return Subscriber{}, ErrUnknownKey
	}
	id := key[len(keyPrefix) : len(keyPrefix)+keyIDChars]
	var name, stored string
	var seq int64
	var revoked bool
	err := r.db.QueryRowContext(ctx, `SELECT k.subscriber, k.sha256, k.audit_seq,
		EXISTS (SELECT 1 FROM registry_subscriber_key_revocations r WHERE r.key_id = k.id)
		FROM registry_subscriber_keys k WHERE k.id = ?`, id).Scan(&name, &stored, &seq, &revoked)
	found := err == nil
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return Subscriber{}, fmt.Errorf("looking up API key: %w", err)
	}
	if !found {
		stored = noKeyHash
	}
	match := subtle.ConstantTimeCompare([]byte(keyHash(key)), []byte(stored)) == 1
	if !found || !match || revoked {
		return Subscriber{}, ErrUnknownKey
	}
	s, err := getSubscriber(ctx, r.db, name)
	if errors.Is(err, ErrNotFound) || (err == nil && seq < s.createdSeq) {
		return Subscriber{}, ErrUnknownKey
	}
	if err != nil {
		return Subscriber{}, err
	}
	return s.Subscriber, nil
}

func wellFormedKey(key string) bool {
	if len(key) != len(keyPrefix)+keyChars || !strings.HasPrefix(key, keyPrefix) {
		return false
	}
	for _, c := range key[len(keyPrefix):] {
		if !('a' <= c && c <= 'z' || '2' <= c && c <= '7') {
			return false
		}
	}
	return true
}

// accessActionRE is what an action of RecordAccess may look like, e.g.
// "feed.read" or "report.download".
var accessActionRE = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,31}(\.[a-z0-9_-]{1,32}){1,3}$`)

// ownActions are the first parts of the actions the registry writes itself;
// RecordAccess refuses them, so that a read cannot pose as a change.
var ownActions = []string{"case", "order", "domain", "subscriber"}

// RecordAccess appends an audit entry for a read of personal data — a
// subscriber fetching its feed or report — to the same hash chain as every
// change. action is a dotted lower-case name such as "feed.read" (not one of
// the registry's own: case.*, order.*, domain.*, subscriber.*); object says
// what was read, e.g. "subscriber:isp-a"; detail is stored as compact JSON.
// ch.Actor names who read, e.g. "subscriber:isp-a key k3j5abxq".
func (r *Registry) RecordAccess(ctx context.Context, ch Change, action, object string, detail any) error {
	action, object = strings.TrimSpace(action), strings.TrimSpace(object)
	if !accessActionRE.MatchString(action) {
		return fmt.Errorf("access action %q: want a dotted lower-case name such as \"feed.read\": %w", cut(action, 80), ErrInvalid)
	}
	if first, _, _ := strings.Cut(action, "."); slices.Contains(ownActions, first) {
		return fmt.Errorf("access action %q: %s.* actions are the registry's own changes: %w", action, first, ErrInvalid)
	}
	if object == "" {
		return fmt.Errorf("access %s: the object read is empty: %w", action, ErrInvalid)
	}
	if err := checkText("object", object, 500, false); err != nil {
		return fmt.Errorf("access %s: %w", action, err)
	}
	return r.write(ctx, ch, func(w *writeTx) error {
		_, err := w.record(action, object, detail)
		return err
	})
}
