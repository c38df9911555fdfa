// Command natsgen writes the NATS files of a takedown deployment.
//
//	go run ./internal/natsrun/internal/natsgen accounts [-o FILE] [SENSOR...]
//
// writes the accounts block with the permissions of the central and of
// each sensor (default sensor-1 sensor-2, to deploy/nats/accounts.conf:
// go generate ./internal/natsrun does that), and
//
//	go run ./internal/natsrun/internal/natsgen keys -dir DIR USER...
//
// generates an NKey for each user (central, a sensor id, or sys), writes
// its seed to DIR/USER.creds (0600, the credential file of takedown's
// nats.credentials) and prints the lines of nkeys.conf that give the
// servers the public keys.
//
//	go run ./internal/natsrun/internal/natsgen cluster -dir DIR [-nodes 3] [-tls=true] [SENSOR...]
//
// starts a NATS JetStream cluster of nats-server processes on 127.0.0.1
// (natsrun.Start: credentials for the central and each sensor, TLS on the
// client ports), writes DIR/env, shell variables naming its URLs, CA and
// credential files (NATS_SERVERS, NATS_CA, NATS_CREDS_<user>, with - as _),
// and runs until SIGINT or SIGTERM, then stops the servers. The benchmark
// scripts (bench/fleet.sh) start their fleet with it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/takedown-project/takedown/internal/natsrun"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "natsgen:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: natsgen accounts [-o FILE] [SENSOR...] | natsgen keys -dir DIR USER... | natsgen cluster -dir DIR [SENSOR...]")
	}
	switch args[0] {
	case "accounts":
		fs := flag.NewFlagSet("accounts", flag.ContinueOnError)
		out := fs.String("o", "", "file to write (default: standard output)")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		sensors := fs.Args()
		if len(sensors) == 0 {
			sensors = []string{"sensor-1", "sensor-2"}
		}
		s, err := natsrun.RenderDeployAccounts(sensors...)
		if err != nil {
			return err
		}
		if *out == "" {
			_, err = os.Stdout.WriteString(s)
			return err
		}
		return os.WriteFile(*out, []byte(s), 0o644)
	case "keys":
		fs := flag.NewFlagSet("keys", flag.ContinueOnError)
		dir := fs.String("dir", "", "directory of the credential files (required)")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if *dir == "" || fs.NArg() == 0 {
			return fmt.Errorf("usage: natsgen keys -dir DIR USER...")
		}
		if err := os.MkdirAll(*dir, 0o700); err != nil {
			return err
		}
		fmt.Println("# /etc/nats/nkeys.conf: the public NKeys of takedown's users (accounts.conf includes it).")
		for _, u := range fs.Args() {
			if u != "sys" {
				if _, err := natsrun.PermissionsOf(u); err != nil {
					return err
				}
			}
			path := filepath.Join(*dir, u+".creds")
			if _, err := os.Stat(path); err == nil {
				return fmt.Errorf("%s exists: not overwriting a credential", path)
			}
			pub, err := natsrun.WriteNKeyCredential(path)
			if err != nil {
				return err
			}
			fmt.Printf("%s: %q\n", natsrun.VariableName("nkey", u), pub)
		}
		return nil
	case "cluster":
		return cluster(args[1:])
	}
	return fmt.Errorf("unknown command %q: accounts, keys or cluster", args[0])
}

// cluster runs a cluster until a signal comes (see the package comment).
func cluster(args []string) error {
	fs := flag.NewFlagSet("cluster", flag.ContinueOnError)
	dir := fs.String("dir", "", "directory of the cluster's files (required; its env file says how to connect)")
	nodes := fs.Int("nodes", 3, "servers: 1 or 3")
	tls := fs.Bool("tls", true, "TLS on the client ports")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" || fs.NArg() == 0 {
		return fmt.Errorf("usage: natsgen cluster -dir DIR [-nodes 3] [-tls=true] SENSOR...")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c, err := natsrun.Start(ctx, natsrun.Config{Dir: *dir, Nodes: *nodes, TLS: *tls, Sensors: fs.Args()})
	if err != nil {
		return err
	}
	defer c.StopAll()
	if err := os.WriteFile(filepath.Join(*dir, "env"), []byte(clusterEnv(c, fs.Args())), 0o600); err != nil {
		return err
	}
	fmt.Printf("nats cluster on %s (%s/env)\n", strings.Join(c.URLs(), ","), *dir)
	<-ctx.Done()
	return nil
}

// clusterEnv is the env file of a running cluster: shell assignments.
func clusterEnv(c *natsrun.Cluster, sensors []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "NATS_SERVERS='%s'\n", strings.Join(c.URLs(), ","))
	fmt.Fprintf(&b, "NATS_CA='%s'\n", c.CAFile())
	for _, u := range append([]string{"central"}, sensors...) {
		fmt.Fprintf(&b, "NATS_CREDS_%s='%s'\n", strings.ReplaceAll(u, "-", "_"), c.Creds(u))
	}
	return b.String()
}
