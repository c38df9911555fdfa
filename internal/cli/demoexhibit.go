package cli

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/takedown-project/takedown/internal/app"
	"github.com/takedown-project/takedown/internal/config"
	"github.com/takedown-project/takedown/internal/exhibit"
)

// demoExhibitSample caps the events of the demo's exhibit: a run of the
// full botnet stores some 300,000 of the Waledac case, which the exhibit
// proves in a stated sample rather than copies whole.
const demoExhibitSample = 10_000

// demoExhibit ends the demo: the exhibit of its Waledac case since from,
// exported into the data directory and verified.
func (e *env) demoExhibit(ctx context.Context, w io.Writer, cfg config.Config, local *app.Local, from time.Time) error {
	if !cfg.Evidence.On(cfg.Role) {
		return nil
	}
	st, err := local.Store.Stats(ctx)
	if err != nil {
		return err
	}
	if st.Events == 0 {
		return nil
	}
	lg, vkey, err := app.OpenEvidence(ctx, cfg, local)
	if err != nil {
		return err
	}
	t0 := time.Now()
	res, err := e.exportExhibit(ctx, &evidenceLog{cfg: cfg, local: local, log: lg, vkey: vkey}, exhibit.Config{
		Case: "waledac-2010", From: from.UTC().Truncate(24 * time.Hour), To: st.Newest.Add(time.Second),
		Out: filepath.Join(cfg.DataDir, "exhibit-waledac-2010"), Sample: demoExhibitSample,
	})
	if err != nil {
		return err
	}
	r, err := exhibit.Verify(res.Dir, exhibit.VerifyOptions{Key: vkey})
	if err != nil {
		return err
	}
	if !r.OK() {
		return fmt.Errorf("the demo's exhibit does not verify: %s", r.Findings[0])
	}
	sample := ""
	if res.Written < res.Events {
		sample = fmt.Sprintf(" (a sample of %s)", thousands(res.Written))
	}
	fmt.Fprintf(w, "6. exhibit  %s: the case, %s Waledac events%s, counts, maps, proofs, signed (%s)\n",
		res.Dir, thousands(res.Events), sample, time.Since(t0).Round(time.Millisecond))
	fmt.Fprintf(w, "            %s\n", r.Summary())
	fmt.Fprintf(w, "            takedown evidence verify %s --key '%s'\n", res.Dir, vkey)
	return nil
}
