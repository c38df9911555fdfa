package cli

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/takedown-project/takedown/internal/enrich"
	"github.com/takedown-project/takedown/internal/enrich/demoworld"
)

// newWorldDBCmd is `takedown demo-world`: it writes the demo world
// database that maps the simulator's loopback addresses to countries and
// networks.
func newWorldDBCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "demo-world --out DIR",
		Short: "Write the demo world database (fictional networks on 127.0.0.0/8) for the simulator",
		Long: `Write the demo world database: a MaxMind-format file (City layout with AS
fields) that spreads 127.1.0.0-127.255.255.255 over fictional networks in real
cities, by rounded, Waledac-like shares per country. The simulator's bots bind
these loopback addresses; with the file configured as an enrichment database
they appear on the infection map as if spread over the world. 127.0.0.0/16,
and so 127.0.0.1, stays unmapped. All of it is fiction and labelled so.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return usage(errors.New("--out: the directory to write to is required"))
			}
			w, err := demoworld.New()
			if err != nil {
				return err
			}
			path := filepath.Join(out, demoworld.FileName)
			if err := w.WriteFile(path); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: %d fictional networks in %d countries, %s loopback addresses (database type %s)\n",
				path, len(w.Networks), len(w.Countries), thousands(int64(w.Hosts())), demoworld.DatabaseType)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "directory to write "+demoworld.FileName+" to")
	return cmd
}

// newEnrichCmd is `takedown enrich`: offline look-ups in enrichment
// databases.
func newEnrichCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "enrich",
		Short: "Look addresses up in enrichment databases (offline)",
	}
	var dbs, abuse, rir []string
	var jsonOut bool
	lookup := &cobra.Command{
		Use:   "lookup IP... --db FILE...",
		Short: "Print the AS, country, region, city and coordinates of addresses",
		Long: `Print what the given databases say of each address: AS number and name,
country, region, city, coordinates, and with --abuse or --rir the abuse contact
of its network. Databases are MaxMind-format files (GeoLite2, GeoIP2, DB-IP
lite, IPinfo lite; the layout is read from the metadata) and iptoasn TSV files,
in order of precedence.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var ips []netip.Addr
			for _, a := range args {
				ip, err := netip.ParseAddr(a)
				if err != nil {
					return usage(fmt.Errorf("%q is not an IP address", a))
				}
				ips = append(ips, ip)
			}
			if len(dbs)+len(abuse)+len(rir) == 0 {
				return usage(errors.New("--db, --abuse or --rir: give at least one database"))
			}
			e, err := enrich.New(enrich.Config{Databases: dbs, AbuseFiles: abuse, RIRFiles: rir, CacheSize: -1})
			if err != nil {
				return err
			}
			defer e.Close()
			if err := e.Err(); err != nil {
				return err
			}
			type answer struct {
				IP        string  `json:"ip"`
				ASN       uint32  `json:"asn,omitempty"`
				ASName    string  `json:"as_name,omitempty"`
				Country   string  `json:"country_code,omitempty"`
				Region    string  `json:"region,omitempty"`
				City      string  `json:"city,omitempty"`
				Latitude  float64 `json:"latitude,omitempty"`
				Longitude float64 `json:"longitude,omitempty"`
				Abuse     string  `json:"abuse,omitempty"`
				AbuseFrom string  `json:"abuse_source,omitempty"`
			}
			var answers []answer
			for _, ip := range ips {
				r := e.Lookup(ip)
				a := answer{IP: ip.String(), ASN: r.ASN, ASName: r.ASName, Country: r.CountryCode,
					Region: r.Region, City: r.City, Latitude: r.Latitude, Longitude: r.Longitude}
				a.Abuse, a.AbuseFrom = e.Abuse(ip, r.ASN)
				answers = append(answers, a)
			}
			w := cmd.OutOrStdout()
			if jsonOut {
				return writeJSON(w, answers)
			}
			t := newTable(w, "IP", "ASN", "AS NAME", "CC", "REGION", "CITY", "LAT", "LON", "ABUSE")
			for _, a := range answers {
				asn, lat, lon := "-", "-", "-"
				if a.ASN != 0 {
					asn = "AS" + strconv.FormatUint(uint64(a.ASN), 10)
				}
				if a.Latitude != 0 || a.Longitude != 0 {
					lat, lon = strconv.FormatFloat(a.Latitude, 'f', 4, 64), strconv.FormatFloat(a.Longitude, 'f', 4, 64)
				}
				t.row(a.IP, asn, dash(a.ASName), dash(a.Country), dash(a.Region), dash(a.City), lat, lon, dash(a.Abuse))
			}
			return t.flush()
		},
	}
	f := lookup.Flags()
	f.StringArrayVar(&dbs, "db", nil, "database file (MMDB or iptoasn TSV); repeat for several, first wins")
	f.StringArrayVar(&abuse, "abuse", nil, "abuse-contact file (network or ASN, e-mail per line); repeatable")
	f.StringArrayVar(&rir, "rir", nil, "RIR database dump in RPSL (e.g. ripe.db.inetnum.gz); repeatable")
	f.BoolVar(&jsonOut, "json", false, "print JSON")
	cmd.AddCommand(lookup)
	return cmd
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
