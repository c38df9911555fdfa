package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/takedown-project/takedown/internal/api"
	"github.com/takedown-project/takedown/internal/eventstore"
)

func (e *env) statsCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "stats", Short: "Count infected hosts and callbacks from the event store"}
	var from, to, by, family, asn, country string
	var limit int
	var all bool
	hosts := &cobra.Command{
		Use:   "hosts",
		Short: "Unique infected hosts (source IPs and bot ids) by day, family, ASN, country",
		Example: `  takedown stats hosts --by country --from 2010-02-25 --to 2010-02-26
  takedown stats hosts --by day,family`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			v := map[string][]string{}
			for k, s := range map[string]string{"from": from, "to": to, "by": by, "family": family, "asn": asn, "country": country} {
				if s != "" {
					v[k] = []string{s}
				}
			}
			if limit > 0 {
				v["limit"] = []string{fmt.Sprint(limit)}
			}
			if all {
				v["all"] = []string{"true"}
			}
			q, err := api.HostQueryFromValues(v, e.now())
			if err != nil {
				return strip(err)
			}
			return e.withBackend(cmd, func(ctx context.Context, b Backend) error {
				rows, err := b.UniqueHosts(ctx, q)
				if err != nil {
					return err
				}
				if e.jsonOut {
					return writeJSON(e.stdout, hostRows(q, rows))
				}
				return printHosts(e.stdout, q, rows)
			})
		},
	}
	hf := hosts.Flags()
	hf.StringVar(&from, "from", "", "start (YYYY-MM-DD or RFC 3339, default 7 days before --to)")
	hf.StringVar(&to, "to", "", "end, exclusive (default now)")
	hf.StringVar(&by, "by", "", "group by: day, family, asn, country (comma-separated)")
	hf.StringVar(&family, "family", "", "only this family")
	hf.StringVar(&asn, "asn", "", "only this AS number")
	hf.StringVar(&country, "country", "", "only this country code")
	hf.IntVar(&limit, "limit", 0, "at most this many rows")
	hf.BoolVar(&all, "all", false, "count every source address, scanners too (default: infected hosts, a family or a seized name)")
	e.jsonFlag(hosts)
	cmd.AddCommand(hosts)
	return cmd
}

// hostRow is a row of `stats hosts --json`: the keys of the dimensions
// grouped by (family and country "" when unknown, asn 0), then the counts.
type hostRow struct {
	Day     *time.Time `json:"day,omitempty"`
	Family  *string    `json:"family,omitempty"`
	ASN     *uint32    `json:"asn,omitempty"`
	ASName  string     `json:"as_name,omitempty"`
	Country *string    `json:"country,omitempty"`
	IPs     int64      `json:"ips"`
	Bots    int64      `json:"bots"`
	Events  int64      `json:"events"`
}

func hostRows(q eventstore.HostQuery, rows []eventstore.HostCount) []hostRow {
	out := make([]hostRow, len(rows))
	for i, r := range rows {
		o := hostRow{IPs: r.IPs, Bots: r.Bots, Events: r.Events}
		for _, d := range q.GroupBy {
			switch d {
			case eventstore.DimDay:
				o.Day = &r.Day
			case eventstore.DimFamily:
				o.Family = &r.Family
			case eventstore.DimASN:
				o.ASN, o.ASName = &r.ASN, r.ASName
			case eventstore.DimCountry:
				o.Country = &r.Country
			}
		}
		out[i] = o
	}
	return out
}

// strip turns the API's parameter errors into flag errors.
func strip(err error) error {
	msg := strings.Replace(err.Error(), "parameter ", "--", 1)
	return usage(fmt.Errorf("%s", msg))
}

func printHosts(w io.Writer, q eventstore.HostQuery, rows []eventstore.HostCount) error {
	var head []string
	for _, d := range q.GroupBy {
		switch d {
		case eventstore.DimDay:
			head = append(head, "DAY")
		case eventstore.DimFamily:
			head = append(head, "FAMILY")
		case eventstore.DimASN:
			head = append(head, "ASN", "AS NAME")
		case eventstore.DimCountry:
			head = append(head, "COUNTRY")
		}
	}
	head = append(head, "IPS", "BOTS", "EVENTS")
	t := newTable(w, head...)
	for _, r := range rows {
		var cells []string
		for _, d := range q.GroupBy {
			switch d {
			case eventstore.DimDay:
				cells = append(cells, day(r.Day))
			case eventstore.DimFamily:
				cells = append(cells, orDash(r.Family))
			case eventstore.DimASN:
				cells = append(cells, fmt.Sprintf("AS%d", r.ASN), orDash(r.ASName))
			case eventstore.DimCountry:
				cells = append(cells, orDash(r.Country))
			}
		}
		cells = append(cells, thousands(r.IPs), thousands(r.Bots), thousands(r.Events))
		t.row(cells...)
	}
	return t.flush()
}
