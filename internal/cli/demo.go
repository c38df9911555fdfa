package cli

import (
	"context"
	_ "embed"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/takedown-project/takedown/internal/app"
	"github.com/takedown-project/takedown/internal/config"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/progress"
	"github.com/takedown-project/takedown/internal/registry"
	"github.com/takedown-project/takedown/internal/store"
	"github.com/takedown-project/takedown/internal/store/storegen"
)

// demoDomains is a fictional court-order list in the shape of Waledac's.
//
//go:embed demodata/waledac-domains.csv
var demoDomains []byte

func (e *env) demoCommand() *cobra.Command {
	var bots, days int
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a Waledac-sized takedown on this machine, in a fresh data directory",
		Long: `Run a Waledac-sized takedown end to end on this machine: open a case before
the court, add its orders, import the 276 seized domains (fictional names),
move them through restrained to sinkholed, record a day of callbacks of
70,000 bots, and count the infected hosts by country and network.

The demo writes to a new data directory (or --data-dir, which must be empty)
and leaves it there, so that the other commands can explore it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.runDemo(cmd.Context(), bots, days)
		},
	}
	cmd.Flags().IntVar(&bots, "bots", 70_000, "infected hosts that call the sinkhole")
	cmd.Flags().IntVar(&days, "days", 1, "days of callbacks to record")
	return cmd
}

func (e *env) runDemo(ctx context.Context, bots, days int) error {
	if bots <= 0 || bots > 10_000_000 {
		return fmt.Errorf("--bots: %d is not from 1 to 10,000,000", bots)
	}
	if days <= 0 || days > 60 {
		return fmt.Errorf("--days: %d is not from 1 to 60", days)
	}
	dir := e.dataDir
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "takedown-demo-"); err != nil {
			return err
		}
	} else if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return fmt.Errorf("--data-dir %s is not empty; the demo needs a fresh directory", dir)
	}
	base, err := e.config()
	if err != nil {
		return err
	}
	cfg, err := config.WithDataDir(base, dir)
	if err != nil {
		return err
	}
	cfg.Store.Path = filepath.Join(dir, "takedown.duckdb")
	w := e.stdout
	fmt.Fprintf(w, "takedown demo: a Waledac-sized takedown (fictional data) in %s\n\n", dir)
	local, err := app.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer local.Close()
	reg := local.Registry
	ch := registry.Change{Actor: "demo", Reason: "demonstration"}

	// 1. Seize: the case and its orders. The dates follow the 2010 Waledac
	// operation's sequence; they are illustrative.
	c, err := reg.AddCase(ctx, registry.NewCase{
		Name: "waledac-2010", Title: "Plaintiff v. John Does 1-27 (demo)",
		Court: "U.S. District Court, E.D. Va.", Docket: "1:10-cv-00156",
	}, ch)
	if err != nil {
		return err
	}
	d := func(s string) time.Time { t, _ := time.Parse(time.DateOnly, s); return t }
	orders := []registry.NewOrder{
		{Type: registry.OrderTRO, Reference: "Dkt. 12", Issued: d("2010-02-22"), Expires: d("2010-03-08")},
		{Type: registry.OrderPreliminaryInjunction, Reference: "Dkt. 33", Issued: d("2010-03-08"), ObjectionDeadline: d("2010-03-22")},
	}
	// A deadline that is still ahead, so that `deadlines` has something to
	// show on the day the demo runs.
	now := e.now().UTC().Truncate(24 * time.Hour)
	orders = append(orders, registry.NewOrder{Type: registry.OrderDefaultJudgement, Reference: "Dkt. 58 (demo)",
		Issued: now.AddDate(0, 0, -3), ObjectionDeadline: now.AddDate(0, 0, 11)})
	for _, o := range orders {
		if _, err := reg.AddOrder(ctx, c.Name, o, ch); err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "1. seize    case %s, %s %s, %d orders\n", c.Name, c.Court, c.Docket, len(orders))

	res, err := reg.ImportDomains(ctx, c.Name, "waledac-domains.csv", demoDomains, ch)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "            imported %d domains from the order's list\n", res.Added)
	for _, to := range []registry.State{registry.StateRestrained, registry.StateSinkholed} {
		if _, err := reg.SetState(ctx, res.Domains, to, ch); err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "            %d domains restrained, then sinkholed\n", len(res.Domains))

	// 2–3. Sinkhole and measure: a day of callbacks, appended to the store.
	gen := storegen.Waledac{Hosts: bots, Days: days, Start: now.AddDate(0, 0, -days), Seed: 2010, BatchSize: 1 << 17}
	total := int64(gen.Events())
	bar := progress.New(e.stderr, "            recording callbacks", "events", total)
	t0 := time.Now()
	err = gen.Generate(func(batch []event.Event) error {
		for i := range batch {
			batch[i].Case = c.Name
			batch[i].Domain = res.Domains[i%len(res.Domains)]
			batch[i].Zone = batch[i].Domain
		}
		if err := local.Store.Append(ctx, batch); err != nil {
			return err
		}
		bar.Add(int64(len(batch)))
		return ctx.Err()
	})
	bar.Done()
	if err != nil {
		return fmt.Errorf("recording callbacks: %w", err)
	}
	el := time.Since(t0)
	fmt.Fprintf(w, "2. sinkhole %s callbacks of %s bots over %d day(s) recorded in %s (%s events/s)\n",
		thousands(total), thousands(int64(bots)), days, el.Round(time.Millisecond), thousands(int64(float64(total)/el.Seconds())))

	q := store.HostQuery{From: gen.Start, To: now, GroupBy: []store.Dimension{store.DimCountry}, Limit: 10}
	rows, err := local.Store.UniqueHosts(ctx, q)
	if err != nil {
		return err
	}
	tot, err := local.Store.UniqueHosts(ctx, store.HostQuery{From: gen.Start, To: now})
	if err != nil {
		return err
	}
	if len(tot) == 1 {
		fmt.Fprintf(w, "3. measure  %s unique infected IPs, %s bots; top countries:\n\n", thousands(tot[0].IPs), thousands(tot[0].Bots))
	}
	if err := printHosts(w, q, rows); err != nil {
		return err
	}
	q.GroupBy = []store.Dimension{store.DimASN}
	q.Limit = 5
	if rows, err = local.Store.UniqueHosts(ctx, q); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n            top networks:\n\n")
	if err := printHosts(w, q, rows); err != nil {
		return err
	}
	n, err := reg.VerifyAudit(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\n5. prove    audit log: %s entries, hash chain verified\n", thousands(n))
	fmt.Fprintf(w, "\nExplore it:\n  takedown --data-dir %s cases show waledac-2010\n  takedown --data-dir %s deadlines --within 30d\n  takedown --data-dir %s stats hosts --by family,country --from %s\n  takedown --data-dir %s registrars package --case waledac-2010 --out /tmp/packages\n",
		dir, dir, dir, gen.Start.Format(time.DateOnly), dir)
	return nil
}
