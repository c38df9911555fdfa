package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/takedown-project/takedown/internal/chrun"
	"github.com/takedown-project/takedown/internal/config"
)

// demoCH is the demo's own clickhouse-server (demo --store clickhouse).
type demoCH struct {
	cluster *chrun.Cluster
	// command starts the server again by hand, for the commands run
	// after the demo (their config, written by runDemo, has the events
	// in this ClickHouse).
	command string
	stopped bool
}

// demoClickHouse starts a clickhouse-server with its data in dir/clickhouse
// and points cfg's event store at it: the registry stays in the database
// file, the events go to ClickHouse.
func demoClickHouse(ctx context.Context, w io.Writer, cfg *config.Config, dir string) (*demoCH, error) {
	t0 := time.Now()
	chDir := filepath.Join(dir, "clickhouse")
	cl, err := chrun.Start(ctx, chrun.Config{Dir: chDir})
	if err != nil {
		return nil, fmt.Errorf("--store clickhouse: %w", err)
	}
	ch := &demoCH{cluster: cl}
	ok := false
	defer func() {
		if !ok {
			cl.StopAll()
		}
	}()
	pw := filepath.Join(chDir, "password")
	if err := os.WriteFile(pw, []byte(cl.Password()+"\n"), 0o600); err != nil {
		return nil, err
	}
	cfg.Store.Engine = config.EngineClickHouse
	cfg.Store.ClickHouse = config.ClickHouse{Addrs: cl.Addrs(), Username: cl.User(), PasswordFile: pw}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	conf := filepath.Join(cl.NodeDir(0), "config.xml")
	ch.command = cl.Binary() + " --config-file=" + conf
	if filepath.Base(cl.Binary()) == "clickhouse" {
		ch.command = cl.Binary() + " server --config-file=" + conf
	}
	version, err := cl.Version(ctx)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(w, "            events go to ClickHouse %s at %s (clickhouse-server, its data in %s, up in %s)\n\n",
		version, strings.Join(cl.Addrs(), ", "), chDir, time.Since(t0).Round(time.Millisecond))
	ok = true
	return ch, nil
}

// stop stops the demo's ClickHouse; once stopped, it does nothing.
func (ch *demoCH) stop(w io.Writer) {
	if ch.stopped {
		return
	}
	ch.stopped = true
	t0 := time.Now()
	if err := ch.cluster.StopAll(); err != nil {
		fmt.Fprintf(w, "            ClickHouse did not stop cleanly: %v\n", err)
		return
	}
	fmt.Fprintf(w, "            ClickHouse stopped in %s\n", time.Since(t0).Round(time.Millisecond))
}
