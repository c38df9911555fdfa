package registry

import (
	"bufio"
	"cmp"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Deadline kinds.
const (
	DeadlineObjection = "objection"
	DeadlineExpiry    = "expiry"
)

// Deadlines returns the deadlines due between now and now+within, soonest
// first; a deadline already passed is left out.
//
// Deadlines are days: one is passed only when its whole day (UTC) is, so a
// deadline due today is included. Ties are ordered by case, order and kind.
// A negative within is ErrInvalid.
func (r *Registry) Deadlines(ctx context.Context, now time.Time, within time.Duration) ([]Deadline, error) {
	if within < 0 {
		return nil, fmt.Errorf("deadlines: window %s is negative: %w", within, ErrInvalid)
	}
	orders, err := r.orders(ctx, "")
	if err != nil {
		return nil, err
	}
	from, to := day(now), now.UTC().Add(within)
	out := []Deadline{}
	add := func(o Order, kind string, due time.Time) {
		if due.IsZero() || due.Before(from) || due.After(to) {
			return
		}
		out = append(out, Deadline{Case: o.Case, OrderID: o.ID, OrderType: o.Type, Reference: o.Reference, Kind: kind, Due: due})
	}
	for _, o := range orders {
		add(o, DeadlineObjection, o.ObjectionDeadline)
		add(o, DeadlineExpiry, o.Expires)
	}
	slices.SortFunc(out, func(a, b Deadline) int {
		return cmp.Or(a.Due.Compare(b.Due), cmp.Compare(a.Case, b.Case), cmp.Compare(a.OrderID, b.OrderID), cmp.Compare(b.Kind, a.Kind))
	})
	return out, nil
}

// Package kinds.
const (
	PackageRegistrar = "registrar"
	PackageRegistry  = "registry"
)

// UnknownRegistrar is the recipient of the package of domains with no
// registrar.
const UnknownRegistrar = "unknown registrar"

// Packages returns one package per registrar and one per registry of the
// case's domains that are not released.
//
// Domains without a registrar go to the recipient "unknown registrar";
// domains whose registry is not known go to "registry of .tld", one per
// TLD. Registrar packages come first, then registry packages, each by
// recipient; domains are sorted by name. A case with no domain to act on
// has no packages.
func (r *Registry) Packages(ctx context.Context, caseName string) ([]Package, error) {
	c, err := r.GetCase(ctx, caseName)
	if err != nil {
		return nil, err
	}
	ds, err := r.ListDomains(ctx, DomainFilter{Case: c.Name})
	if err != nil {
		return nil, err
	}
	type key struct{ kind, recipient string }
	groups := map[key][]Domain{}
	for _, d := range ds {
		if d.State == StateReleased {
			continue
		}
		registrar := d.Registrar
		if registrar == "" {
			registrar = UnknownRegistrar
		}
		registry := d.Registry
		if registry == "" {
			registry = "registry of ." + d.TLD
		}
		groups[key{PackageRegistrar, registrar}] = append(groups[key{PackageRegistrar, registrar}], d)
		groups[key{PackageRegistry, registry}] = append(groups[key{PackageRegistry, registry}], d)
	}
	instr, err := r.dsInstructions(ctx, ds)
	if err != nil {
		return nil, err
	}
	out := make([]Package, 0, len(groups))
	for k, ds := range groups {
		p := Package{Kind: k.kind, Recipient: k.recipient, Case: c, Domains: ds}
		for _, d := range ds {
			if in, ok := instr[d.Name]; ok {
				p.DNSSEC = append(p.DNSSEC, in)
			}
		}
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b Package) int {
		if a.Kind != b.Kind {
			if a.Kind == PackageRegistrar {
				return -1
			}
			return 1
		}
		return cmp.Or(cmp.Compare(strings.ToLower(a.Recipient), strings.ToLower(b.Recipient)), cmp.Compare(a.Recipient, b.Recipient))
	})
	return out, nil
}

// dsInstructions says what to do with the DS records of each domain whose
// last check found stale ones, keyed by name: remove them when we do not
// sign the zone, replace them with ours when we do. Unsigned and signed
// domains need nothing; neither do domains whose DS records could not be
// read (DSError: check again).
func (r *Registry) dsInstructions(ctx context.Context, ds []Domain) (map[string]DSInstruction, error) {
	var stale []string
	for _, d := range ds {
		if d.DSState == DSStale && d.State != StateReleased {
			stale = append(stale, d.Name)
		}
	}
	out := make(map[string]DSInstruction, len(stale))
	if len(stale) == 0 {
		return out, nil
	}
	last, err := r.LastDelegations(ctx, stale)
	if err != nil {
		return nil, err
	}
	for _, n := range stale {
		in := DSInstruction{Domain: n, Action: DSActionRemove, Remove: last[n].DS}
		if ours := r.ourDSText(n); len(ours) > 0 {
			in.Action, in.Add = DSActionReplace, ours
		}
		out[n] = in
	}
	return out, nil
}

// slug turns s into lower-case letters and digits separated by single '-'.
func slug(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(r)
			continue
		}
		dash = true
	}
	out := b.String()
	if len(out) > 60 {
		out = strings.TrimRight(out[:60], "-")
	}
	if out == "" {
		return "x"
	}
	return out
}

// BaseName is the package's file name without extension, safe on every file
// system: "<case>_<kind>_<recipient>" in lower-case letters, digits and '-',
// e.g. "waledac-2010_registrar_godaddy".
func (p Package) BaseName() string {
	return slug(p.Case.Name) + "_" + slug(p.Kind) + "_" + slug(p.Recipient)
}

// FileName is the name of the package's CSV file, e.g.
// "waledac-2010_registrar_godaddy.csv". The cover letter of WriteText goes
// with BaseName()+".txt".
func (p Package) FileName() string { return p.BaseName() + ".csv" }

// latestOrder returns the case's latest order (by issue date, then ID), and
// whether there is one.
func (p Package) latestOrder() (Order, bool) {
	if len(p.Case.Orders) == 0 {
		return Order{}, false
	}
	latest := p.Case.Orders[0]
	for _, o := range p.Case.Orders[1:] {
		if o.Issued.After(latest.Issued) || o.Issued.Equal(latest.Issued) && o.ID > latest.ID {
			latest = o
		}
	}
	return latest, true
}

// csvHeader are the columns of WriteCSV.
var csvHeader = []string{"domain", "tld", "registrar", "registry", "state", "case", "court", "docket", "order_type", "order_reference", "order_issued",
	"ds_action", "ds_remove", "ds_add"}

// WriteCSV writes the package as CSV with a header row and one row per
// domain: domain, tld, registrar, registry, state, case, court, docket,
// order_type, order_reference, order_issued, ds_action, ds_remove, ds_add.
// The order columns describe the case's latest order and are empty if it
// has none. The DS columns are empty unless the domain's DS records at the
// parent must change (Package.DNSSEC): ds_action is "remove" or "replace",
// ds_remove and ds_add the records, separated by "; ".
func (p Package) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(csvHeader); err != nil {
		return fmt.Errorf("writing package %s: %w", p.FileName(), err)
	}
	var ot, ref, issued string
	if o, ok := p.latestOrder(); ok {
		ot, ref, issued = string(o.Type), o.Reference, o.Issued.Format(time.DateOnly)
	}
	instr := p.dsInstructions()
	for _, d := range p.Domains {
		in := instr[d.Name]
		if err := cw.Write([]string{d.Name, d.TLD, d.Registrar, d.Registry, string(d.State),
			p.Case.Name, p.Case.Court, p.Case.Docket, ot, ref, issued,
			in.Action, strings.Join(in.Remove, "; "), strings.Join(in.Add, "; ")}); err != nil {
			return fmt.Errorf("writing package %s: %w", p.FileName(), err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("writing package %s: %w", p.FileName(), err)
	}
	return nil
}

// WriteText writes a plain-text cover letter for the package: the
// recipient, the case, the court orders with their references and dates,
// and the domains with their state, to be sent with the court order.
func (p Package) WriteText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	title := p.Case.Title
	if title == "" {
		title = p.Case.Name
	}
	role := "registrar"
	if p.Kind == PackageRegistry {
		role = "registry operator"
	}
	fmt.Fprintf(bw, "To: %s (%s)\n", p.Recipient, role)
	fmt.Fprintf(bw, "Re: %s\n", title)
	fmt.Fprintf(bw, "    %s, %s (case %s)\n\n", p.Case.Court, p.Case.Docket, p.Case.Name)
	fmt.Fprintf(bw, "The court orders listed below concern the %s that follow, for which you\n", plural(len(p.Domains), "domain name", "domain names"))
	fmt.Fprintf(bw, "are the %s. Please act on them as the orders direct; copies of the\n", role)
	fmt.Fprintf(bw, "orders are enclosed.\n\n")
	fmt.Fprintf(bw, "Court orders:\n")
	if len(p.Case.Orders) == 0 {
		fmt.Fprintf(bw, "  (none recorded)\n")
	}
	for _, o := range p.Case.Orders {
		fmt.Fprintf(bw, "  - %s", capitalise(o.Type.Description()))
		if o.Reference != "" {
			fmt.Fprintf(bw, ", %s", o.Reference)
		}
		fmt.Fprintf(bw, ", issued %s", o.Issued.Format(time.DateOnly))
		if !o.ObjectionDeadline.IsZero() {
			fmt.Fprintf(bw, "; objections by %s", o.ObjectionDeadline.Format(time.DateOnly))
		}
		if !o.Expires.IsZero() {
			fmt.Fprintf(bw, "; expires %s", o.Expires.Format(time.DateOnly))
		}
		fmt.Fprintf(bw, "\n")
	}
	fmt.Fprintf(bw, "\nDomain names (%d):\n", len(p.Domains))
	width := 0
	for _, d := range p.Domains {
		width = max(width, len(d.Name))
	}
	for _, d := range p.Domains {
		fmt.Fprintf(bw, "  %-*s  %s\n", width, d.Name, d.State)
	}
	p.writeDNSSEC(bw)
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("writing cover letter %s: %w", p.BaseName()+".txt", err)
	}
	return nil
}

func capitalise(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// dsInstructions returns the package's DS instructions by domain.
func (p Package) dsInstructions() map[string]DSInstruction {
	out := make(map[string]DSInstruction, len(p.DNSSEC))
	for _, in := range p.DNSSEC {
		out[in.Domain] = in
	}
	return out
}

// writeDNSSEC writes the cover letter's DNSSEC part: per domain whose DS
// records must change, the records to remove and those to publish.
func (p Package) writeDNSSEC(w io.Writer) {
	if len(p.DNSSEC) == 0 {
		return
	}
	fmt.Fprintf(w, "\nDNSSEC: the parent zone still publishes DS records for %s that\n",
		plural(len(p.DNSSEC), "domain name", "domain names"))
	fmt.Fprintf(w, "match no key of the name servers it now points to. Resolvers that validate\n")
	fmt.Fprintf(w, "DNSSEC answer SERVFAIL for these names until the DS records change:\n")
	for _, in := range p.DNSSEC {
		fmt.Fprintf(w, "\n  %s\n", in.Domain)
		switch in.Action {
		case DSActionReplace:
			fmt.Fprintf(w, "    Replace the DS records with ours. Remove:\n")
		default:
			fmt.Fprintf(w, "    Remove all DS records (do not add any):\n")
		}
		for _, ds := range in.Remove {
			fmt.Fprintf(w, "      %s. IN DS %s\n", in.Domain, ds)
		}
		if in.Action == DSActionReplace {
			fmt.Fprintf(w, "    Publish:\n")
			for _, ds := range in.Add {
				fmt.Fprintf(w, "      %s. IN DS %s\n", in.Domain, ds)
			}
		}
	}
}
