package bus

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// Config says how to reach the NATS servers.
type Config struct {
	// Servers are the URLs of the cluster's servers (nats://host:port or
	// tls://host:port); required.
	Servers []string
	// Credentials is the file of this connection's credential: an NKey
	// user seed or user:password (see the package doc). Empty: none.
	Credentials string
	// CAFile, if set, is the PEM file of the CAs that sign the servers'
	// certificates, and turns TLS on. CertFile and KeyFile, if set, are a
	// client certificate for servers that ask for one.
	CAFile, CertFile, KeyFile string
	// User is who connects: CentralUser or the sensor's id. It names the
	// connection and its inbox prefix.
	User string
	// Logger receives the connection's changes (lost, back, errors);
	// default: discard.
	Logger *slog.Logger
}

// Connect connects to the servers of cfg. It returns at once even when no
// server answers: the connection keeps trying in the background, forever,
// as it does after losing a server, so that a sensor starts and answers
// bots while NATS is away. Errors are about the configuration (a missing
// or unsafe credential file, a bad CA file).
func Connect(cfg Config) (*nats.Conn, error) {
	if len(cfg.Servers) == 0 {
		return nil, errors.New("bus: no NATS servers")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts := []nats.Option{
		nats.Name("takedown-" + cfg.User),
		nats.CustomInboxPrefix(InboxPrefix(cfg.User)),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.ReconnectJitter(250*time.Millisecond, time.Second),
		nats.Timeout(5 * time.Second),
		// What a sensor publishes while the servers are away waits in its
		// spool, not in the client: a small reconnect buffer.
		nats.ReconnectBufSize(1 << 20),
		nats.ConnectHandler(func(c *nats.Conn) { log.Info("nats connected", "server", c.ConnectedUrlRedacted()) }),
		nats.DisconnectErrHandler(func(c *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats connection lost", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("nats reconnected", "server", c.ConnectedUrlRedacted()) }),
		nats.ErrorHandler(func(c *nats.Conn, s *nats.Subscription, err error) {
			subj := ""
			if s != nil {
				subj = s.Subject
			}
			log.Warn("nats error", "subject", subj, "err", err)
		}),
	}
	if cfg.Credentials != "" {
		o, err := credentialOption(cfg.Credentials)
		if err != nil {
			return nil, err
		}
		opts = append(opts, o)
	}
	if cfg.CAFile != "" {
		opts = append(opts, nats.RootCAs(cfg.CAFile))
	}
	if cfg.CertFile != "" || cfg.KeyFile != "" {
		opts = append(opts, nats.ClientCert(cfg.CertFile, cfg.KeyFile))
	}
	nc, err := nats.Connect(strings.Join(cfg.Servers, ","), opts...)
	if err != nil {
		return nil, fmt.Errorf("bus: connecting to %s: %w", strings.Join(cfg.Servers, ","), err)
	}
	return nc, nil
}

// CheckCredentials checks that path is a credential file Connect can
// use: it exists, only its owner may read it, and it holds a seed or
// user:password.
func CheckCredentials(path string) error {
	_, err := readCredential(path)
	return err
}

type credential struct {
	seed           []byte
	user, password string
}

func readCredential(path string) (credential, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return credential{}, fmt.Errorf("credentials file: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return credential{}, fmt.Errorf("credentials file %s is readable by others (mode %04o): chmod 600 %s", path, perm, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return credential{}, fmt.Errorf("credentials file: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "SU") {
			if _, err := nkeys.FromSeed([]byte(line)); err != nil {
				return credential{}, fmt.Errorf("credentials file %s: not a valid NKey user seed: %v", path, err)
			}
			return credential{seed: []byte(line)}, nil
		}
		user, pass, ok := strings.Cut(line, ":")
		if !ok || user == "" || pass == "" {
			return credential{}, fmt.Errorf("credentials file %s: want one line, an NKey user seed (SU...) or user:password", path)
		}
		return credential{user: user, password: pass}, nil
	}
	return credential{}, fmt.Errorf("credentials file %s is empty", path)
}

func credentialOption(path string) (nats.Option, error) {
	c, err := readCredential(path)
	if err != nil {
		return nil, err
	}
	if c.seed == nil {
		return nats.UserInfo(c.user, c.password), nil
	}
	kp, err := nkeys.FromSeed(c.seed)
	if err != nil {
		return nil, err
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, err
	}
	return nats.Nkey(pub, func(nonce []byte) ([]byte, error) { return kp.Sign(nonce) }), nil
}
