package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/takedown-project/takedown/internal/registry"
	"github.com/takedown-project/takedown/internal/scope"
)

func (e *env) subscribersCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "subscribers",
		Aliases: []string{"subscriber"},
		Short:   "Add, list, change and remove the network owners that receive reports, and their API keys",
		Long: `Subscribers are the organisations — an ISP's abuse desk, a hosting company,
a national CERT — that receive the daily report of the infected hosts in
their scope (AS numbers, CIDRs, countries) and pull their feed with an API
key. Scopes may overlap. Every change goes into the audit log.`,
	}
	cmd.AddCommand(e.subscriberAddCommand(), e.subscriberListCommand(), e.subscriberShowCommand(),
		e.subscriberUpdateCommand(), e.subscriberRemoveCommand(), e.subscriberKeyCommand())
	return cmd
}

func (e *env) subscriberAddCommand() *cobra.Command {
	var ns registry.NewSubscriber
	var reason string
	add := &cobra.Command{
		Use:   "add NAME --org ORG --contact ADDRESS (--asn ASN | --cidr CIDR | --country CC)...",
		Short: "Add a subscriber",
		Long: `Add a subscriber. NAME is its handle: lower case letters, digits, '-', '_'
and '.'. Lists take several values separated by commas or repeated flags.
The scope (--asn, --cidr, --country) must not be empty; every bad value is
named.`,
		Example: `  takedown subscribers add isp-a --org "ISP A Abuse Desk" --contact abuse@isp-a.example \
      --asn AS64512,AS64513 --cidr 192.0.2.0/24,2001:db8::/32 --format csv,json --send-at 06:00 --tlp AMBER
  takedown subscribers add cert-de --org "CERT DE" --contact reports@cert.example --country DE --format stix`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ns.Name = args[0]
			if err := missingFlags(
				required{"--org", ns.Org != ""},
				required{"--contact", len(ns.Contacts) > 0},
				required{"--asn, --cidr or --country (the scope)", len(ns.ASNs)+len(ns.CIDRs)+len(ns.Countries) > 0},
			); err != nil {
				return err
			}
			return e.withBackend(cmd, func(ctx context.Context, b Backend) error {
				s, err := b.AddSubscriber(ctx, ns, e.change(reason))
				if err != nil {
					return err
				}
				if e.jsonOut {
					return writeJSON(e.stdout, s)
				}
				fmt.Fprintf(e.stdout, "added subscriber %s (%s): %s; %s\n", s.Name, s.Org, s.Scope, schedule(s))
				fmt.Fprintf(e.stdout, "give it an API key with: takedown subscribers key add %s\n", s.Name)
				return nil
			})
		},
	}
	f := add.Flags()
	f.StringVar(&ns.Org, "org", "", "the organisation's name, e.g. \"ISP A Abuse Desk\" (required)")
	f.StringSliceVar(&ns.Contacts, "contact", nil, "e-mail address the reports go to (required; several: comma-separated or repeated)")
	f.StringSliceVar(&ns.ASNs, "asn", nil, "AS numbers, e.g. AS64512,AS64513")
	f.StringSliceVar(&ns.CIDRs, "cidr", nil, "address blocks, IPv4 or IPv6, e.g. 192.0.2.0/24,2001:db8::/32")
	f.StringSliceVar(&ns.Countries, "country", nil, "ISO 3166-1 alpha-2 country codes, e.g. DE,AT")
	f.StringSliceVar(&ns.Formats, "format", nil, "report formats, of csv, json, xarf, stix, event4_sinkhole, event4_sinkhole_http, event6_sinkhole, event6_sinkhole_http (default csv)")
	f.StringVar(&ns.SendAt, "send-at", "", "time of day, UTC, at which the daily report goes out, HH:MM (default "+registry.DefaultSendAt+")")
	f.StringVar(&ns.TLP, "tlp", "", "TLP label of the reports: CLEAR, GREEN, AMBER, AMBER+STRICT or RED (default "+registry.DefaultTLP+")")
	f.StringVar(&reason, "reason", "", "why, for the audit log")
	e.jsonFlag(add)
	return add
}

// schedule describes a subscriber's reports: "csv, json daily at 06:00 UTC,
// TLP:AMBER".
func schedule(s registry.Subscriber) string {
	return fmt.Sprintf("%s daily at %s UTC, TLP:%s", strings.Join(s.Formats, ", "), s.SendAt, s.TLP)
}

func (e *env) subscriberListCommand() *cobra.Command {
	list := &cobra.Command{
		Use:   "list",
		Short: "List subscribers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.withBackend(cmd, func(ctx context.Context, b Backend) error {
				ss, err := b.ListSubscribers(ctx)
				if err != nil {
					return err
				}
				if e.jsonOut {
					return writeJSON(e.stdout, nonNil(ss))
				}
				t := newTable(e.stdout, "SUBSCRIBER", "ORGANISATION", "SCOPE", "CONTACTS", "FORMATS", "SEND AT", "TLP", "KEYS")
				for _, s := range ss {
					active := 0
					for _, k := range s.Keys {
						if k.Active() {
							active++
						}
					}
					t.row(s.Name, s.Org, scopeSummary(s.Scope), contactSummary(s.Contacts), strings.Join(s.Formats, ","),
						s.SendAt, s.TLP, thousands(int64(active)))
				}
				return t.flush()
			})
		},
	}
	e.jsonFlag(list)
	return list
}

// scopeSummary counts a scope's items: "2 ASNs, 1,024 CIDRs, 1 country".
func scopeSummary(s scope.Scope) string {
	var parts []string
	for _, c := range []struct {
		n         int
		one, many string
	}{{len(s.ASNs), "ASN", "ASNs"}, {len(s.Prefixes), "CIDR", "CIDRs"}, {len(s.Countries), "country", "countries"}} {
		switch {
		case c.n == 1:
			parts = append(parts, "1 "+c.one)
		case c.n > 1:
			parts = append(parts, thousands(int64(c.n))+" "+c.many)
		}
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

// contactSummary is the first contact and how many more there are.
func contactSummary(cs []string) string {
	switch len(cs) {
	case 0:
		return "-"
	case 1:
		return cs[0]
	}
	return fmt.Sprintf("%s (+%s)", cs[0], thousands(int64(len(cs)-1)))
}

func (e *env) subscriberShowCommand() *cobra.Command {
	show := &cobra.Command{
		Use:   "show NAME",
		Short: "Show a subscriber with its whole scope and its API keys",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.withBackend(cmd, func(ctx context.Context, b Backend) error {
				s, err := b.GetSubscriber(ctx, args[0])
				if err != nil {
					return err
				}
				if e.jsonOut {
					return writeJSON(e.stdout, s)
				}
				e.printSubscriber(s)
				return nil
			})
		},
	}
	e.jsonFlag(show)
	return show
}

func (e *env) printSubscriber(s registry.Subscriber) {
	w := e.stdout
	var asns, cidrs []string
	for _, a := range s.Scope.ASNs {
		asns = append(asns, fmt.Sprintf("AS%d", a))
	}
	for _, p := range s.Scope.Prefixes {
		cidrs = append(cidrs, p.String())
	}
	list := func(xs []string) string {
		if len(xs) == 0 {
			return "-"
		}
		return strings.Join(xs, " ")
	}
	fmt.Fprintf(w, "subscriber: %s\norg:        %s\ncontacts:   %s\n", s.Name, s.Org, strings.Join(s.Contacts, ", "))
	fmt.Fprintf(w, "ASNs:       %s\nCIDRs:      %s\ncountries:  %s\n", list(asns), list(cidrs), list(s.Scope.Countries))
	fmt.Fprintf(w, "reports:    %s\ncreated:    %s\nupdated:    %s\n\n", schedule(s), stamp(s.Created), stamp(s.Updated))
	if len(s.Keys) == 0 {
		fmt.Fprintf(w, "no API keys; make one with: takedown subscribers key add %s\n", s.Name)
		return
	}
	t := newTable(w, "KEY ID", "CREATED", "REVOKED")
	for _, k := range s.Keys {
		t.row(k.ID, stamp(k.Created), stamp(k.Revoked))
	}
	t.flush()
}

func (e *env) subscriberUpdateCommand() *cobra.Command {
	var u registry.SubscriberUpdate
	var org, sendAt, tlp, reason string
	var contacts, asns, cidrs, countries, formats []string
	update := &cobra.Command{
		Use:   "update NAME [flags]",
		Short: "Change a subscriber",
		Long: `Change a subscriber. Only what a flag names changes.

Lists are edited with --add-X and --remove-X (an abuse desk's scope grows and
shrinks a block or an AS at a time), or replaced whole with --X, the flag of
"subscribers add"; not both for the same list. Removing a value the list does
not hold is an error, so a typo cannot leave a network in the scope. --format
replaces the formats.`,
		Example: `  takedown subscribers update isp-a --add-cidr 198.51.100.0/24 --remove-asn AS64513
  takedown subscribers update isp-a --contact abuse@isp-a.example,cert@isp-a.example --tlp RED
  takedown subscribers update cert-de --format csv,stix --send-at 05:30`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f := cmd.Flags()
			set := func(name string, v *string) *string {
				if f.Changed(name) {
					return v
				}
				return nil
			}
			setList := func(name string, v *[]string) *[]string {
				if !f.Changed(name) {
					return nil
				}
				if *v == nil {
					*v = []string{}
				}
				return v
			}
			u.Org, u.SendAt, u.TLP = set("org", &org), set("send-at", &sendAt), set("tlp", &tlp)
			u.Contacts, u.ASNs, u.CIDRs = setList("contact", &contacts), setList("asn", &asns), setList("cidr", &cidrs)
			u.Countries, u.Formats = setList("country", &countries), setList("format", &formats)
			for _, l := range []string{"contact", "asn", "cidr", "country"} {
				if f.Changed(l) && (f.Changed("add-"+l) || f.Changed("remove-"+l)) {
					return usage(fmt.Errorf("--%s replaces the list, --add-%[1]s and --remove-%[1]s edit it: give one or the other", l))
				}
			}
			if u.Empty() {
				return usage(fmt.Errorf("subscribers update %s: no flag says what to change (see --help)", args[0]))
			}
			return e.withBackend(cmd, func(ctx context.Context, b Backend) error {
				s, err := b.UpdateSubscriber(ctx, args[0], u, e.change(reason))
				if err != nil {
					return err
				}
				if e.jsonOut {
					return writeJSON(e.stdout, s)
				}
				fmt.Fprintf(e.stdout, "subscriber %s (%s): %s; %s\n", s.Name, s.Org, s.Scope, schedule(s))
				return nil
			})
		},
	}
	f := update.Flags()
	f.StringVar(&org, "org", "", "the organisation's name")
	f.StringVar(&sendAt, "send-at", "", "time of day, UTC, of the daily report, HH:MM")
	f.StringVar(&tlp, "tlp", "", "TLP label: CLEAR, GREEN, AMBER, AMBER+STRICT or RED")
	f.StringSliceVar(&formats, "format", nil, "replace the report formats, of csv, json, xarf, stix, event4_sinkhole, event4_sinkhole_http, event6_sinkhole, event6_sinkhole_http")
	for _, l := range []struct {
		flag, what           string
		replace, add, remove *[]string
	}{
		{"contact", "e-mail addresses", &contacts, &u.AddContacts, &u.RemoveContacts},
		{"asn", "AS numbers", &asns, &u.AddASNs, &u.RemoveASNs},
		{"cidr", "address blocks", &cidrs, &u.AddCIDRs, &u.RemoveCIDRs},
		{"country", "country codes", &countries, &u.AddCountries, &u.RemoveCountries},
	} {
		f.StringSliceVar(l.replace, l.flag, nil, "replace all "+l.what)
		f.StringSliceVar(l.add, "add-"+l.flag, nil, "add "+l.what)
		f.StringSliceVar(l.remove, "remove-"+l.flag, nil, "remove "+l.what)
	}
	f.StringVar(&reason, "reason", "", "why, for the audit log")
	f.SortFlags = false
	e.jsonFlag(update)
	return update
}

func (e *env) subscriberRemoveCommand() *cobra.Command {
	var reason string
	remove := &cobra.Command{
		Use:   "remove NAME",
		Short: "Remove a subscriber and revoke its API keys",
		Long: `Remove a subscriber: it gets no more reports and its API keys are revoked.
Its audit history stays; the name may be added again later.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.withBackend(cmd, func(ctx context.Context, b Backend) error {
				if err := b.RemoveSubscriber(ctx, args[0], e.change(reason)); err != nil {
					return err
				}
				if e.jsonOut {
					return writeJSON(e.stdout, map[string]string{"removed": args[0]})
				}
				fmt.Fprintf(e.stdout, "removed subscriber %s; its API keys are revoked\n", args[0])
				return nil
			})
		},
	}
	remove.Flags().StringVar(&reason, "reason", "", "why, for the audit log")
	e.jsonFlag(remove)
	return remove
}

func (e *env) subscriberKeyCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "key", Short: "Make and revoke subscribers' API keys"}
	var reason string

	add := &cobra.Command{
		Use:   "add NAME",
		Short: "Make an API key for a subscriber; it is shown this once",
		Long: `Make an API key for a subscriber. The key is printed once, alone on standard
output, and cannot be shown again: takedown keeps only its SHA-256. Its ID
(the 8 characters after "tdk_") names it in listings and for revoking.`,
		Example: `  takedown subscribers key add isp-a > isp-a.key`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.withBackend(cmd, func(ctx context.Context, b Backend) error {
				key, k, err := b.AddAPIKey(ctx, args[0], e.change(reason))
				if err != nil {
					return err
				}
				fmt.Fprintf(e.stderr, "API key %s of subscriber %s: store it now, it cannot be shown again (takedown keeps only its hash)\n", k.ID, args[0])
				if e.jsonOut {
					return writeJSON(e.stdout, struct {
						Subscriber string `json:"subscriber"`
						Key        string `json:"key"`
						registry.APIKey
					}{args[0], key, k})
				}
				fmt.Fprintln(e.stdout, key)
				return nil
			})
		},
	}
	add.Flags().StringVar(&reason, "reason", "", "why, for the audit log")
	e.jsonFlag(add)

	revoke := &cobra.Command{
		Use:   "revoke NAME ID",
		Short: "Revoke a subscriber's API key",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.withBackend(cmd, func(ctx context.Context, b Backend) error {
				if err := b.RevokeAPIKey(ctx, args[0], args[1], e.change(reason)); err != nil {
					return err
				}
				if e.jsonOut {
					return writeJSON(e.stdout, map[string]string{"subscriber": args[0], "revoked": args[1]})
				}
				fmt.Fprintf(e.stdout, "revoked API key %s of subscriber %s\n", args[1], args[0])
				return nil
			})
		},
	}
	revoke.Flags().StringVar(&reason, "reason", "", "why, for the audit log")
	e.jsonFlag(revoke)

	cmd.AddCommand(add, revoke)
	return cmd
}
