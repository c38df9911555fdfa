package cli

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"

	_ "github.com/duckdb/duckdb-go/v2" // the "duckdb" driver, asked for its library's version

	"github.com/spf13/cobra"
)

// Set at build time, for release builds:
//
//	go build -ldflags "-X github.com/takedown-project/takedown/internal/cli.version=1.2.0
//	  -X github.com/takedown-project/takedown/internal/cli.commit=$(git rev-parse HEAD)
//	  -X github.com/takedown-project/takedown/internal/cli.date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
//
// Each one left empty is taken from the build info that the go command
// records (the module's version under `go install …@v1.2.0`, the commit and
// its time when built from a git checkout without -buildvcs=false).
var version, commit, date string

// duckDriverModule is the Go module of the DuckDB driver, whose version the
// build info records.
const duckDriverModule = "github.com/duckdb/duckdb-go/v2"

// VersionInfo is what `takedown version` reports.
type VersionInfo struct {
	// Version is the release ("1.2.0"), or "devel" for a build from a
	// checkout without -ldflags.
	Version string `json:"version"`
	// Commit is the git commit built from, when known.
	Commit string `json:"commit,omitempty"`
	// Modified is true when the checkout had uncommitted changes.
	Modified bool `json:"modified,omitempty"`
	// Date is the build date (-ldflags) or, without it, the commit's time.
	Date string `json:"date,omitempty"`
	// Go is the Go release the binary was built with.
	Go string `json:"go"`
	// Platform is GOOS/GOARCH.
	Platform string `json:"platform"`
	// DuckDB is the version of the linked DuckDB library, as its
	// version() function says.
	DuckDB string `json:"duckdb,omitempty"`
	// DuckDBDriver is the version of the Go driver module.
	DuckDBDriver string `json:"duckdb_driver,omitempty"`
}

// buildVersion collects the version from the link-time values and the
// build info, and asks an in-memory DuckDB for its version.
func buildVersion(ctx context.Context) VersionInfo {
	v := VersionInfo{Version: version, Commit: commit, Date: date,
		Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v.Version = strings.TrimPrefix(bi.Main.Version, "v")
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if v.Commit == "" {
					v.Commit = s.Value
				}
			case "vcs.time":
				if v.Date == "" {
					v.Date = s.Value
				}
			case "vcs.modified":
				v.Modified = commit == "" && s.Value == "true"
			}
		}
		for _, d := range bi.Deps {
			if d.Path == duckDriverModule {
				v.DuckDBDriver = d.Version
				if d.Replace != nil {
					v.DuckDBDriver = d.Replace.Version
				}
			}
		}
	}
	if v.Version == "" {
		v.Version = "devel"
	}
	v.DuckDB = duckDBVersion(ctx)
	return v
}

// duckDBVersion returns the linked library's version, or "" if an
// in-memory database does not open.
func duckDBVersion(ctx context.Context) string {
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return ""
	}
	defer db.Close()
	var s string
	if err := db.QueryRowContext(ctx, "SELECT version()").Scan(&s); err != nil {
		return ""
	}
	return s
}

func printVersion(w io.Writer, v VersionInfo) error {
	fmt.Fprintf(w, "takedown %s\n", v.Version)
	t := newTable(w, "commit:", orDash(v.Commit)+map[bool]string{true: " (modified)"}[v.Modified])
	t.row("date:", orDash(v.Date))
	t.row("go:", v.Go+" "+v.Platform)
	duck := orDash(v.DuckDB)
	if v.DuckDBDriver != "" {
		duck += " (driver " + v.DuckDBDriver + ")"
	}
	t.row("duckdb:", duck)
	return t.flush()
}

func (e *env) versionCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit, build date, and Go and DuckDB versions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.showVersion(cmd.Context())
		},
	}
	e.jsonFlag(cmd)
	return cmd
}

func (e *env) showVersion(ctx context.Context) error {
	v := buildVersion(ctx)
	if e.jsonOut {
		return writeJSON(e.stdout, v)
	}
	return printVersion(e.stdout, v)
}
