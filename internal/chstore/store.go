package chstore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/takedown-project/takedown/internal/eventstore"
)

// The defaults of Config.
const (
	DefaultDatabase    = "takedown"
	DefaultDialTimeout = 5 * time.Second
)

// Config configures a Store. Addrs is required, and Shards with Cluster;
// the zero value of every other field works.
type Config struct {
	// Addrs are the native-protocol addresses (host:port, 9000 by
	// default on a server) takedown connects to; with several, the
	// driver spreads its connections over them.
	Addrs []string
	// Database holds the tables; created when missing. Default
	// DefaultDatabase, "takedown".
	Database string
	// Username and Password are the account; default the server's
	// "default" user without a password.
	Username, Password string
	// TLS, when set, makes every connection speak TLS.
	TLS *tls.Config
	// Cluster is the name of the cluster in the servers'
	// <remote_servers>; "" means one node. With a cluster every table is
	// X_local on each shard and X, Distributed over the cluster, beside
	// it (see the package documentation).
	Cluster string
	// Shards is one native address per shard, on which the migrations
	// run (no ON CLUSTER: it needs ZooKeeper) and retention drops
	// partitions. Required with Cluster.
	Shards []string
	// DialTimeout bounds each connection attempt, so that a server that
	// is down is reported quickly. Default DefaultDialTimeout, 5 s.
	DialTimeout time.Duration
	// Logger receives the engine's few log lines (migrations, retention,
	// a batch completed after a crash). Nil discards them.
	Logger *slog.Logger
}

// Store is the ClickHouse engine of the event store. Its methods are safe
// for concurrent use; appends are serialised.
type Store struct {
	cfg    Config
	log    *slog.Logger
	layout layout
	// conn is the pool the readers and the writer use, on cfg.Addrs.
	conn driver.Conn
	// shards are one connection per shard (cfg.Shards), or conn alone on
	// one node: DDL and partition drops.
	shards []driver.Conn

	mu      sync.Mutex // serialises appends; guards the fields below
	sources map[string]*sourceState
	closed  bool
	cols    cols // the columns of an INSERT, reused
	// afterInsert, when set (tests), runs after the events of a marked
	// batch are inserted and before its mark is.
	afterInsert func()
}

// Store is an engine of the event store: it is the Writer of package
// eventstore (and, with the reader files, its Reader).
var _ eventstore.Writer = (*Store)(nil)

// ErrClosed is returned by the writer's methods after Close.
var ErrClosed = errors.New("chstore: closed")

// Open connects to ClickHouse, creates the database if missing, brings
// the schema up to date on every shard (refusing one newer than this
// build knows), and returns the engine.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if len(cfg.Addrs) == 0 {
		return nil, errors.New("chstore: no address of a ClickHouse server given")
	}
	if cfg.Database == "" {
		cfg.Database = DefaultDatabase
	}
	if !validIdent(cfg.Database) {
		return nil, fmt.Errorf("chstore: database name %q: want letters, digits and _", cfg.Database)
	}
	if cfg.Cluster != "" {
		if !validIdent(cfg.Cluster) {
			return nil, fmt.Errorf("chstore: cluster name %q: want letters, digits and _", cfg.Cluster)
		}
		if len(cfg.Shards) == 0 {
			return nil, fmt.Errorf("chstore: cluster %s: no shard addresses given (one native address per shard)", cfg.Cluster)
		}
	} else {
		cfg.Shards = nil
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Store{
		cfg:     cfg,
		log:     log,
		layout:  layout{db: cfg.Database, cluster: cfg.Cluster},
		sources: map[string]*sourceState{},
	}
	ddl := cfg.Shards
	if cfg.Cluster == "" {
		ddl = cfg.Addrs[:1]
	}
	for _, addr := range ddl {
		if err := s.createDatabase(ctx, addr); err != nil {
			s.Close()
			return nil, err
		}
		conn, err := s.open([]string{addr}, cfg.Database)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.shards = append(s.shards, conn)
	}
	for i, conn := range s.shards {
		if err := s.migrate(ctx, conn, ddl[i]); err != nil {
			s.Close()
			return nil, err
		}
	}
	if cfg.Cluster == "" {
		s.conn = s.shards[0]
		if len(cfg.Addrs) > 1 {
			conn, err := s.open(cfg.Addrs, cfg.Database)
			if err != nil {
				s.Close()
				return nil, err
			}
			s.conn = conn
		}
	} else {
		conn, err := s.open(cfg.Addrs, cfg.Database)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.conn = conn
	}
	if err := s.Ping(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// open returns a connection pool on addrs, database db.
func (s *Store) open(addrs []string, db string) (driver.Conn, error) {
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr:        addrs,
		Auth:        clickhouse.Auth{Database: db, Username: s.cfg.Username, Password: s.cfg.Password},
		TLS:         s.cfg.TLS,
		DialTimeout: s.cfg.DialTimeout,
		// Every statement takedown sends is bounded by its context;
		// the driver's own read timeout must not cut a long
		// mutation wait or report query short.
		ReadTimeout: 10 * time.Minute,
	})
	if err != nil {
		return nil, fmt.Errorf("chstore: connecting to %v: %w", addrs, err)
	}
	return conn, nil
}

// createDatabase creates the database on the server at addr, and says so
// clearly when the server cannot be reached.
func (s *Store) createDatabase(ctx context.Context, addr string) error {
	conn, err := s.open([]string{addr}, "")
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.Ping(ctx); err != nil {
		return unreachable(addr, err)
	}
	if err := conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+s.cfg.Database); err != nil {
		return fmt.Errorf("chstore: creating database %s on %s: %w", s.cfg.Database, addr, err)
	}
	return nil
}

// unreachable says that the server at addr could not be reached, or
// refused the connection (a wrong password, an unknown user). It has no
// package prefix: the composition shows it as "event store: clickhouse at
// … is not reachable: …".
func unreachable(addr string, err error) error {
	var ex *clickhouse.Exception
	if errors.As(err, &ex) {
		return fmt.Errorf("clickhouse at %s refused the connection: %w", addr, err)
	}
	return fmt.Errorf("clickhouse at %s is not reachable: %w", addr, err)
}

// Ping checks that the servers answer (readyz): the connection pool and,
// on a cluster, every shard.
func (s *Store) Ping(ctx context.Context) error {
	if s.conn == nil {
		return ErrClosed
	}
	if err := s.conn.Ping(ctx); err != nil {
		return unreachable(strings.Join(s.cfg.Addrs, ", "), err)
	}
	if s.cfg.Cluster != "" {
		for i, conn := range s.shards {
			if err := conn.Ping(ctx); err != nil {
				return unreachable(s.cfg.Shards[i], err)
			}
		}
	}
	return nil
}

// Close closes the connections, after the append under way if any. It is
// idempotent.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	if s.conn != nil && (len(s.shards) == 0 || s.conn != s.shards[0]) {
		errs = append(errs, s.conn.Close())
	}
	for _, c := range s.shards {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// validIdent reports whether s can be named in SQL unquoted: letters,
// digits and _, not starting with a digit.
func validIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
