package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/takedown-project/takedown/internal/chstore"
	"github.com/takedown-project/takedown/internal/config"
	"github.com/takedown-project/takedown/internal/eventstore"
)

var _ EventStore = chEvents{}

// chEvents is the ClickHouse engine.
type chEvents struct {
	*chstore.Store
	where string
}

func (c chEvents) OpenRollup(ctx context.Context, log *slog.Logger) (eventstore.Rollup, error) {
	return chstore.OpenRollup(ctx, chstore.RollupConfig{Store: c.Store, Logger: log})
}

func (c chEvents) Where() StoreWhere {
	return StoreWhere{Engine: config.EngineClickHouse, Address: c.where}
}

// openClickHouse connects to the ClickHouse servers of c and brings the
// schema up to date. A server that does not answer is an error at once
// (within dial_timeout_ms), not a wait.
func openClickHouse(ctx context.Context, c config.ClickHouse, log *slog.Logger) (EventStore, error) {
	cfg, err := chstoreConfig(c)
	if err != nil {
		return nil, fmt.Errorf("event store: %w", err)
	}
	cfg.Logger = log
	st, err := chstore.Open(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("event store: %w", err)
	}
	db := cfg.Database
	if db == "" {
		db = chstore.DefaultDatabase
	}
	return chEvents{Store: st, where: strings.Join(c.Addrs, ",") + "/" + db}, nil
}

// chstoreConfig translates store.clickhouse into the engine's Config: it
// reads the password file and the TLS files.
func chstoreConfig(c config.ClickHouse) (chstore.Config, error) {
	cfg := chstore.Config{Addrs: c.Addrs, Database: c.Database, Username: c.Username,
		Cluster: c.Cluster, Shards: c.Shards, DialTimeout: time.Duration(c.DialTimeoutMS) * time.Millisecond}
	if c.PasswordFile != "" {
		pw, err := config.ReadSecretFile(c.PasswordFile)
		if err != nil {
			return cfg, fmt.Errorf("store.clickhouse.password_file: %w", err)
		}
		cfg.Password = pw
	}
	if !c.TLS.On() {
		return cfg, nil
	}
	t := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.TLS.ServerName}
	if c.TLS.CAFile != "" {
		pem, err := os.ReadFile(c.TLS.CAFile)
		if err != nil {
			return cfg, fmt.Errorf("store.clickhouse.tls.ca_file: %w", err)
		}
		t.RootCAs = x509.NewCertPool()
		if !t.RootCAs.AppendCertsFromPEM(pem) {
			return cfg, fmt.Errorf("store.clickhouse.tls.ca_file: %s holds no PEM certificate", c.TLS.CAFile)
		}
	}
	if c.TLS.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.TLS.CertFile, c.TLS.KeyFile)
		if err != nil {
			return cfg, fmt.Errorf("store.clickhouse.tls: cert_file and key_file: %w", err)
		}
		t.Certificates = []tls.Certificate{cert}
	}
	cfg.TLS = t
	return cfg, nil
}
