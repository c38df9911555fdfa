package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/takedown-project/takedown/internal/api"
	"github.com/takedown-project/takedown/internal/app"
	"github.com/takedown-project/takedown/internal/users"
)

func (e *env) usersCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "users",
		Aliases: []string{"user"},
		Short:   "Add, list and change the people who log in to the web dashboard",
		Long: `Users log in to the web dashboard (http://API-ADDRESS/ui/) with a name and a
password. Their role says what they see and do:

  viewer   aggregates only: counts, maps, trends, cases and domain states;
           never an IP address
  analyst  everything, infected hosts' addresses included; changes the
           states of domains
  admin    everything, and the users

Passwords are read from a prompt (not echoed), from --password-file, or
from standard input when it is not a terminal; never from a flag's value.
They are stored as Argon2id hashes. While serve runs, the commands go
through its API (with the API token); otherwise they open the database.`,
	}
	cmd.AddCommand(e.userAddCommand(), e.userListCommand(), e.userSetCommand())
	return cmd
}

func (e *env) userAddCommand() *cobra.Command {
	var role, passwordFile string
	add := &cobra.Command{
		Use:   "add NAME --role viewer|analyst|admin [--password-file FILE]",
		Short: "Add a user",
		Example: `  takedown users add alice --role analyst
  takedown users add press --role viewer --password-file /run/secrets/press
  pwgen -s 24 1 | tee /dev/stderr | takedown users add bob --role admin`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := users.ParseRole(role)
			if err != nil {
				return usage(fmt.Errorf("--role: %w", err))
			}
			if err := users.CheckName(args[0]); err != nil {
				return usage(err)
			}
			pw, err := e.readPassword(cmd, passwordFile, "Password for "+args[0])
			if err != nil {
				return err
			}
			var u users.User
			err = e.withUsers(cmd.Context(), func(ctx context.Context, b usersBackend) error {
				u, err = b.add(ctx, args[0], r, pw)
				return err
			})
			if err != nil {
				return err
			}
			if e.jsonOut {
				return writeJSON(e.stdout, u)
			}
			fmt.Fprintf(e.stdout, "added user %s (%s)\n", u.Name, u.Role)
			return nil
		},
	}
	f := add.Flags()
	f.StringVar(&role, "role", "", "viewer, analyst or admin (required)")
	f.StringVar(&passwordFile, "password-file", "", "read the password from this file's first line (- for standard input)")
	add.MarkFlagRequired("role")
	e.jsonFlag(add)
	return add
}

func (e *env) userListCommand() *cobra.Command {
	list := &cobra.Command{
		Use:   "list",
		Short: "List the users",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.withUsers(cmd.Context(), func(ctx context.Context, b usersBackend) error {
				us, err := b.list(ctx)
				if err != nil {
					return err
				}
				if e.jsonOut {
					return writeJSON(e.stdout, us)
				}
				t := newTable(e.stdout, "USER", "ROLE", "CREATED", "LAST LOGIN", "DISABLED")
				for _, u := range us {
					dis := ""
					if u.Disabled {
						dis = "yes"
					}
					t.row(u.Name, string(u.Role), stamp(u.Created), stamp(u.LastLogin), dis)
				}
				return t.flush()
			})
		},
	}
	e.jsonFlag(list)
	return list
}

func (e *env) userSetCommand() *cobra.Command {
	var role, passwordFile string
	var password, disable, enable bool
	set := &cobra.Command{
		Use:   "set NAME [--role ROLE] [--password [--password-file FILE]] [--disable | --enable]",
		Short: "Change a user's role or password, or disable the user; ends the user's sessions",
		Example: `  takedown users set alice --role viewer
  takedown users set alice --password
  takedown users set bob --disable`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var ch userChange
			if role != "" {
				r, err := users.ParseRole(role)
				if err != nil {
					return usage(fmt.Errorf("--role: %w", err))
				}
				ch.Role = (*string)(&r)
			}
			if disable && enable {
				return usage(errors.New("--disable and --enable: give one, not both"))
			}
			if disable || enable {
				ch.Disabled = &disable
			}
			if password || passwordFile != "" {
				pw, err := e.readPassword(cmd, passwordFile, "New password for "+args[0])
				if err != nil {
					return err
				}
				s := string(pw)
				ch.Password = &s
			}
			if ch.Role == nil && ch.Disabled == nil && ch.Password == nil {
				return usage(errors.New("nothing to change: give --role, --password, --disable or --enable"))
			}
			return e.withUsers(cmd.Context(), func(ctx context.Context, b usersBackend) error {
				u, err := b.update(ctx, args[0], ch)
				if err != nil {
					return err
				}
				if e.jsonOut {
					return writeJSON(e.stdout, u)
				}
				state := ""
				if u.Disabled {
					state = ", disabled"
				}
				fmt.Fprintf(e.stdout, "changed user %s (%s%s); its sessions ended\n", u.Name, u.Role, state)
				return nil
			})
		},
	}
	f := set.Flags()
	f.StringVar(&role, "role", "", "the new role: viewer, analyst or admin")
	f.BoolVar(&password, "password", false, "set a new password (prompted, or --password-file)")
	f.StringVar(&passwordFile, "password-file", "", "read the new password from this file's first line (- for standard input)")
	f.BoolVar(&disable, "disable", false, "disable the user: no more logins")
	f.BoolVar(&enable, "enable", false, "enable a disabled user")
	e.jsonFlag(set)
	return set
}

// readPassword reads a password: from file ("-": standard input), else
// from a prompt without echo when standard input is a terminal (asked
// twice), else from standard input's first line.
func (e *env) readPassword(cmd *cobra.Command, file, prompt string) ([]byte, error) {
	var pw []byte
	switch {
	case file != "":
		var r io.Reader = cmd.InOrStdin()
		if file != "-" {
			f, err := os.Open(file)
			if err != nil {
				return nil, fmt.Errorf("--password-file: %w", err)
			}
			defer f.Close()
			r = f
		}
		line, err := firstLine(r)
		if err != nil {
			return nil, fmt.Errorf("--password-file %s: %w", file, err)
		}
		pw = line
	default:
		in := cmd.InOrStdin()
		if f, ok := in.(*os.File); ok && isTerminal(f) {
			fmt.Fprintf(e.stderr, "%s: ", prompt)
			a, err := readNoEcho(f)
			fmt.Fprintln(e.stderr)
			if err != nil {
				return nil, err
			}
			fmt.Fprint(e.stderr, "Again: ")
			b, err := readNoEcho(f)
			fmt.Fprintln(e.stderr)
			if err != nil {
				return nil, err
			}
			if !bytes.Equal(a, b) {
				return nil, errors.New("the two passwords differ")
			}
			pw = a
		} else {
			line, err := firstLine(in)
			if err != nil {
				return nil, fmt.Errorf("reading the password from standard input: %w", err)
			}
			pw = line
		}
	}
	if err := users.CheckPassword(pw); err != nil {
		return nil, err
	}
	return pw, nil
}

func firstLine(r io.Reader) ([]byte, error) {
	line, err := bufio.NewReader(io.LimitReader(r, users.MaxPassword+2)).ReadBytes('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	line = bytes.TrimRight(line, "\r\n")
	if len(line) == 0 {
		return nil, errors.New("no password")
	}
	return line, nil
}

// userChange is the body of PATCH /ui/api/users/{name}.
type userChange struct {
	Role     *string `json:"role,omitempty"`
	Password *string `json:"password,omitempty"`
	Disabled *bool   `json:"disabled,omitempty"`
}

// usersBackend is the users of the database opened here, or of the
// running serve through its dashboard's API.
type usersBackend interface {
	add(ctx context.Context, name string, role users.Role, pw []byte) (users.User, error)
	list(ctx context.Context) ([]users.User, error)
	update(ctx context.Context, name string, ch userChange) (users.User, error)
}

func (e *env) withUsers(ctx context.Context, fn func(ctx context.Context, b usersBackend) error) error {
	cfg, err := e.config()
	if err != nil {
		return err
	}
	if e.mode != "local" {
		_, err := e.remote(ctx, cfg)
		if err == nil {
			tok, err := app.ReadToken(cfg.API.TokenFile)
			if err != nil {
				return err
			}
			return fn(ctx, remoteUsers{base: app.APIBase(cfg), http: app.APIHTTPClient(cfg, 0), token: tok, actor: e.actorName()})
		}
		if e.mode == "remote" || !errors.Is(err, api.ErrUnreachable) {
			return err
		}
	}
	l, err := app.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer l.Close()
	us, err := users.Open(ctx, users.Config{DB: l.DB})
	if err != nil {
		return err
	}
	return fn(ctx, localUsers{us: us, audit: func(ctx context.Context, action, name string, detail any) error {
		return l.Registry.RecordAccess(ctx, e.change(""), action, "user:"+name, detail)
	}})
}

type localUsers struct {
	us    *users.Store
	audit func(ctx context.Context, action, name string, detail any) error
}

func (l localUsers) add(ctx context.Context, name string, role users.Role, pw []byte) (users.User, error) {
	u, err := l.us.Add(ctx, name, role, pw)
	if err != nil {
		return u, err
	}
	return u, l.audit(ctx, "user.add", u.Name, map[string]any{"role": u.Role})
}

func (l localUsers) list(ctx context.Context) ([]users.User, error) { return l.us.List(ctx) }

func (l localUsers) update(ctx context.Context, name string, ch userChange) (users.User, error) {
	var role *users.Role
	if ch.Role != nil {
		r := users.Role(*ch.Role)
		role = &r
	}
	var pw []byte
	if ch.Password != nil {
		pw = []byte(*ch.Password)
	}
	u, err := l.us.Update(ctx, name, role, pw, ch.Disabled)
	if err != nil {
		return u, err
	}
	return u, l.audit(ctx, "user.update", u.Name, map[string]any{"role": u.Role, "disabled": u.Disabled, "password_changed": pw != nil})
}

// remoteUsers asks the running serve's dashboard, with the API token and
// the actor for its audit log.
type remoteUsers struct {
	base, token, actor string
	http               *http.Client
}

func (r remoteUsers) call(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, r.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+r.token)
	req.Header.Set(api.ActorHeader, r.actor)
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.http.Do(req)
	if err != nil {
		return fmt.Errorf("calling takedown server: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode == http.StatusNotFound && strings.Contains(string(data), "no API endpoint") {
		return errors.New("the running serve has no dashboard (dashboard.disabled in its config?)")
	}
	if resp.StatusCode/100 != 2 {
		var e struct{ Error string }
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = "server: " + resp.Status
		}
		return serverError{msg: e.Error, status: resp.StatusCode}
	}
	return json.Unmarshal(data, out)
}

// serverError is the dashboard's answer to a refused request: its message
// as the users package wrote it (the same as without a server), and the
// status, which gives the exit code (404 not found, 409 conflict).
type serverError struct {
	msg    string
	status int
}

func (e serverError) Error() string   { return e.msg }
func (e serverError) HTTPStatus() int { return e.status }

func (r remoteUsers) add(ctx context.Context, name string, role users.Role, pw []byte) (users.User, error) {
	var u users.User
	err := r.call(ctx, http.MethodPost, "/ui/api/users", map[string]string{"name": name, "role": string(role), "password": string(pw)}, &u)
	return u, err
}

func (r remoteUsers) list(ctx context.Context) ([]users.User, error) {
	var out struct{ Users []users.User }
	err := r.call(ctx, http.MethodGet, "/ui/api/users", nil, &out)
	return out.Users, err
}

func (r remoteUsers) update(ctx context.Context, name string, ch userChange) (users.User, error) {
	var u users.User
	err := r.call(ctx, http.MethodPatch, "/ui/api/users/"+name, ch, &u)
	return u, err
}
