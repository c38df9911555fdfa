package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"

	"github.com/takedown-project/takedown/internal/app"
	"github.com/takedown-project/takedown/internal/config"
	"github.com/takedown-project/takedown/internal/evidence"
	"github.com/takedown-project/takedown/internal/exhibit"
)

// evidenceExhibitCommands are the commands of a case's exhibit.
func (e *env) evidenceExhibitCommands() []*cobra.Command {
	return []*cobra.Command{e.evidenceExport(), e.evidenceVerify()}
}

func (e *env) evidenceExport() *cobra.Command {
	var caseName, from, to, out string
	var sample int
	cmd := &cobra.Command{
		Use:   "export --case NAME --from DATE --to DATE --out DIR [--sample N]",
		Short: "Write a case's exhibit: its events, counts and maps with the log's proofs, signed, for court",
		Long: `export writes the exhibit of a case for a period into a new folder: the case, its
orders and every domain's history with their audit entries; the unique hosts per
UTC day by family, country and network, with how they were counted; a world map
per day (SVG and PNG); the case's events (those whose case is the case, or whose
family is the case's family) as canonical JSON lines and as CSV; the leaves of the
evidence log that name the events, the audit leaves, their inclusion proofs
against the log's last checkpoint, the earlier checkpoints of the period with
consistency proofs; the log's verifier key; a manifest of every file's SHA-256,
signed by the log key; a README and summary.html, a one-page account for a
declaration. docs/exhibit.md describes every file.

--sample N keeps in events.jsonl and events.csv only the N events of the lowest
event hashes, a reproducible sample (the counts stay over all events, the
leaves whole). The folder is written under a temporary name beside DIR and
renamed when whole. It reads the database file: stop serve first.`,
		Example: `  takedown evidence export --case waledac-2010 --from 2010-02-22 --to 2010-03-22 --out exhibit-waledac
  takedown evidence verify exhibit-waledac`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if caseName == "" || from == "" || to == "" || out == "" {
				return errors.New("--case, --from, --to and --out are all required")
			}
			f, err := parseWhen("from", from, false)
			if err != nil {
				return err
			}
			t, err := parseWhen("to", to, true)
			if err != nil {
				return err
			}
			return e.withEvidence(cmd, func(ctx context.Context, l *evidenceLog) error {
				res, err := e.exportExhibit(ctx, l, exhibit.Config{Case: caseName, From: f, To: t, Out: out, Sample: sample})
				if err != nil {
					return err
				}
				return e.printExport(res)
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&caseName, "case", "", "the case's name (required)")
	fl.StringVar(&from, "from", "", "start of the period: YYYY-MM-DD (UTC) or RFC 3339 (required)")
	fl.StringVar(&to, "to", "", "end of the period: YYYY-MM-DD (that UTC day included) or RFC 3339 (excluded) (required)")
	fl.StringVar(&out, "out", "", "the folder to write; it must not exist or be empty (required)")
	fl.IntVar(&sample, "sample", 0, "keep only this many events in events.jsonl, a stated reproducible sample (0: all)")
	e.jsonFlag(cmd)
	return cmd
}

// exportExhibit exports with the log l and the key of the config.
func (e *env) exportExhibit(ctx context.Context, l *evidenceLog, c exhibit.Config) (*exhibit.Result, error) {
	signer, vkey, err := exhibitSigner(l.cfg.Evidence)
	if err != nil {
		return nil, err
	}
	if vkey != l.vkey {
		return nil, fmt.Errorf("evidence: the key signs as %q but the log's verifier key is %q", vkey, l.vkey)
	}
	configured, inDataDir := demoWorld(l.cfg)
	c.Registry, c.Events, c.Log = l.local.Registry, l.local.Store, l.log
	c.Signer, c.VerifierKey = signer, vkey
	c.MapSource, c.Demo = []string{l.cfg.Sensor, l.cfg.Operator}, configured || inDataDir
	c.Progress, c.Now = e.stderr, e.now
	return exhibit.Export(ctx, c)
}

// exhibitSigner loads the log's signer of the config, which signs the
// exhibit's manifest, and its verifier key. Unlike serve it makes no key.
func exhibitSigner(ec config.Evidence) (note.Signer, string, error) {
	if len(ec.SignerCommand) > 0 {
		s, _, err := evidence.LoadSigner(evidence.SignerConfig{Command: ec.SignerCommand, VerifierKey: ec.PublicKey})
		if err != nil {
			return nil, "", fmt.Errorf("evidence.signer_command: %w", err)
		}
		return s, ec.PublicKey, nil
	}
	s, _, err := evidence.LoadSigner(evidence.SignerConfig{KeyFile: ec.KeyFile})
	if err != nil {
		return nil, "", fmt.Errorf("evidence.key_file: %w", err)
	}
	b, err := os.ReadFile(ec.KeyFile)
	if err != nil {
		return nil, "", fmt.Errorf("evidence.key_file: %w", err)
	}
	vkey, err := app.VerifierKey(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, "", fmt.Errorf("evidence.key_file %s: %w", ec.KeyFile, err)
	}
	return s, vkey, nil
}

// exportJSON is what `evidence export --json` prints.
type exportJSON struct {
	Dir        string `json:"dir"`
	Events     int64  `json:"events"`
	Written    int64  `json:"written"`
	Leaves     int    `json:"leaves"`
	Audit      int    `json:"audit_leaves"`
	Days       int    `json:"days"`
	Checkpoint struct {
		Origin string    `json:"origin"`
		Size   int64     `json:"size"`
		Root   string    `json:"root"`
		Time   time.Time `json:"time"`
	} `json:"checkpoint"`
	Earlier  int    `json:"earlier_checkpoints"`
	Manifest string `json:"manifest_sha256"`
}

func (e *env) printExport(r *exhibit.Result) error {
	if e.jsonOut {
		j := exportJSON{Dir: r.Dir, Events: r.Events, Written: r.Written, Leaves: r.Leaves, Audit: r.Audit, Days: r.Days, Earlier: r.Earlier, Manifest: r.Manifest}
		j.Checkpoint.Origin, j.Checkpoint.Size, j.Checkpoint.Time = r.Checkpoint.Origin, r.Checkpoint.Size, r.Checkpoint.Time
		j.Checkpoint.Root = r.Checkpoint.Root.String()
		return writeJSON(e.stdout, j)
	}
	sample := ""
	if r.Written < r.Events {
		sample = fmt.Sprintf(" (a sample of %s)", thousands(r.Written))
	}
	fmt.Fprintf(e.stdout, "exhibit: %s: %s events%s, %d day(s), %d leaves and %d audit leaves proven in checkpoint %d of %s; manifest SHA-256 %s\n",
		r.Dir, thousands(r.Events), sample, r.Days, r.Leaves, r.Audit, r.Checkpoint.Size, r.Checkpoint.Origin, r.Manifest)
	fmt.Fprintf(e.stdout, "verify:  takedown evidence verify %s\n", r.Dir)
	return nil
}

func (e *env) evidenceVerify() *cobra.Command {
	var key string
	cmd := &cobra.Command{
		Use:   "verify DIR [--key VERIFIER_KEY]",
		Short: "Check an exhibit offline, from its files alone, and name whatever does not verify",
		Long: `verify checks an exhibit that export wrote, from its files alone (no database,
no config): every file's SHA-256 against the manifest and no file more; the
manifest's signed note; each checkpoint's signature, and the earlier ones'
consistency with the last; each leaf's and audit leaf's inclusion proof; that
every line of events.jsonl hashes to an event hash of a leaf; that the audit
leaves are case.json's entries; and, when events.jsonl holds every event, that
counts.csv is what the events give.

--key is the log's verifier key as its operator publishes it: the signatures
are checked with it and key.pub must equal it. Without it, key.pub is trusted.
It exits 0 with "verified: …", or 1 with one line per finding: the file, the
line, the leaf and the checkpoint.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := exhibit.Verify(args[0], exhibit.VerifyOptions{Key: key})
			if err != nil {
				return err
			}
			if e.jsonOut {
				if err := writeJSON(e.stdout, r); err != nil {
					return err
				}
			} else {
				for _, f := range r.Findings {
					fmt.Fprintln(e.stdout, f.String())
				}
				fmt.Fprintln(e.stdout, r.Summary())
			}
			if !r.OK() {
				return errExhibitFails
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&key, "key", "", "the log's verifier key, NAME+HASH+BASE64 (default: trust the exhibit's key.pub)")
	e.jsonFlag(cmd)
	return cmd
}

// errExhibitFails ends verify with exit 1 after its findings.
var errExhibitFails = errors.New("the exhibit does not verify")
