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
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

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
		return fmt.Errorf("usage: natsgen accounts [-o FILE] [SENSOR...] | natsgen keys -dir DIR USER...")
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
	}
	return fmt.Errorf("unknown command %q: accounts or keys", args[0])
}
