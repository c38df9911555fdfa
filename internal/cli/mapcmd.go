package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/takedown-project/takedown/internal/config"
	"github.com/takedown-project/takedown/internal/enrich/demoworld"
	"github.com/takedown-project/takedown/internal/eventstore"
	"github.com/takedown-project/takedown/internal/worldmap"
)

func (e *env) mapCommand() *cobra.Command {
	var date, family, out, title, subtitle, source string
	var width, height, classes int
	cmd := &cobra.Command{
		Use:   "map --date YYYY-MM-DD --out FILE.svg|FILE.png",
		Short: "Draw a world map of a day's unique infected hosts per country (SVG or PNG)",
		Long: `map draws a choropleth world map of the unique infected hosts (distinct
source addresses) of one UTC day per country, with a legend, the totals and
the data source: for press releases and court exhibits. The file name's
extension picks the format: .svg (text, one path per country, with a text
equivalent for screen readers) or .png.

Countries are coloured in --classes classes (6; fewer when the counts are
few) of the viridis scale, with round logarithmic breaks (1, 2, 5 × 10ⁿ);
grey ones had no hosts. The map is in the Equal Earth projection, with
Natural Earth's shapes (public domain). A map of the demo world's
fictional bots says so under the title.`,
		Example: `  takedown map --date 2026-11-26 --out hosts-2026-11-26.png
  takedown map --date 2026-11-26 --family waledac --out waledac.svg`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			day, err := mapDay(date, e.now())
			if err != nil {
				return err
			}
			ext := strings.ToLower(filepath.Ext(out))
			if out == "" {
				return usage(fmt.Errorf("--out: give the file to write, ending in .svg or .png"))
			}
			if ext != ".svg" && ext != ".png" {
				return usage(fmt.Errorf("--out %s: the name must end in .svg or .png", out))
			}
			cfg, err := e.config()
			if err != nil {
				return err
			}
			configured, inDataDir := demoWorld(cfg)
			start := time.Now()
			return e.withBackend(cmd, func(ctx context.Context, b Backend) error {
				rows, err := b.UniqueHosts(ctx, eventstore.HostQuery{
					From: day, To: day.AddDate(0, 0, 1), GroupBy: []eventstore.Dimension{eventstore.DimCountry}, Family: family,
					Infected: true,
				})
				if err != nil {
					return err
				}
				dm := worldmap.Day{Day: day, Family: family, Hosts: hostsByCountry(rows),
					Source: []string{cfg.Sensor, cfg.Operator}, Demo: configured || inDataDir}
				what, empty := dm.What(), len(rows) == 0
				o := dm.Options()
				o.Width, o.Height, o.Classes = width, height, classes
				if title != "" {
					o.Title = title
				}
				if subtitle != "" {
					o.Subtitle = strings.Join(nonEmpty(o.Subtitle, subtitle), " · ")
				}
				switch {
				case source != "":
					o.Source = source
				case inDataDir && !configured:
					// `takedown demo`'s own sensor, not the config's.
					o.Source = "Source: takedown demo sinkhole"
				}
				m, err := worldmap.New(o)
				if err != nil {
					return err
				}
				write := m.WritePNG
				if ext == ".svg" {
					write = m.WriteSVG
				}
				if err := writeFile(out, func(w io.Writer) error { return write(w) }); err != nil {
					return err
				}
				s := m.Summary()
				w, h := m.Size()
				unknown := ""
				if s.Unknown > 0 {
					unknown = fmt.Sprintf(" and %s in no known country", thousands(s.Unknown))
				}
				fmt.Fprintf(e.stdout, "%s: %d×%d, %s unique hosts in %d countries%s (%s, %s), in %s\n", out, w, h,
					thousands(s.Hosts-s.Unknown), s.Countries, unknown, what, day.Format(time.DateOnly), time.Since(start).Round(time.Millisecond))
				if empty {
					hint := ""
					if family != "" {
						hint = " (is the family's name spelt as the classifier names it?)"
					}
					fmt.Fprintf(e.stderr, "takedown: warning: no hosts of %s on %s: the map is empty%s\n", what, day.Format(time.DateOnly), hint)
				}
				if len(s.Unmapped) > 0 || s.Unknown > 0 {
					fmt.Fprintf(e.stderr, "takedown: note: %s hosts of unknown country and the hosts of %d countries without a shape at this scale are in the totals only\n",
						thousands(s.Unknown), len(s.Unmapped))
				}
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&date, "date", "", "the UTC day, YYYY-MM-DD (default yesterday, the last whole day)")
	f.StringVar(&family, "family", "", "only this malware family (default all)")
	f.StringVar(&out, "out", "", "the file to write: .svg or .png (required)")
	f.IntVar(&width, "width", 1600, "width in pixels")
	f.IntVar(&height, "height", 900, "height in pixels")
	f.IntVar(&classes, "classes", worldmap.DefaultClasses, "number of colour classes, 5 to 7")
	f.StringVar(&title, "title", "", `title (default "Unique infected hosts per country — FAMILY — DATE")`)
	f.StringVar(&subtitle, "subtitle", "", "a line under the totals")
	f.StringVar(&source, "source", "", `data source line (default "Source: takedown sinkhole, SENSOR/OPERATOR" of the config)`)
	return cmd
}

// mapDay parses --date: a day, or yesterday.
func mapDay(s string, now time.Time) (time.Time, error) {
	if s == "" {
		y, m, d := now.UTC().AddDate(0, 0, -1).Date()
		return time.Date(y, m, d, 0, 0, 0, 0, time.UTC), nil
	}
	day, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return time.Time{}, usage(fmt.Errorf("--date: %q is not a day (YYYY-MM-DD)", s))
	}
	return day, nil
}

// demoWorld tells whether the hosts were placed by the demo world: its
// database is configured for enrichment, or sits in the data directory,
// where `takedown demo` puts it.
func demoWorld(cfg config.Config) (configured, inDataDir bool) {
	for _, db := range cfg.Enrich.Databases {
		if filepath.Base(db) == demoworld.FileName {
			configured = true
		}
	}
	_, err := os.Stat(filepath.Join(cfg.DataDir, demoworld.FileName))
	return configured, err == nil
}

func nonEmpty(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// hostsByCountry sums unique hosts by country.
func hostsByCountry(rows []eventstore.HostCount) map[string]int64 {
	out := map[string]int64{}
	for _, r := range rows {
		out[r.Country] += r.IPs
	}
	return out
}
