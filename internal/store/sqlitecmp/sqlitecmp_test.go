// Package sqlitecmp measures the DuckDB event store against SQLite
// (modernc.org/sqlite, pure Go) on the same generated events: append rate,
// a unique-hosts-per-country query and the file size. It holds only tests,
// so that no binary links SQLite.
//
//	TAKEDOWN_BENCH_EVENTS=2000000 go test -run '^$' -bench . -benchtime=1x ./internal/store/sqlitecmp/
package sqlitecmp

import (
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/takedown-project/takedown/internal/dbfile"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/eventstore"
	"github.com/takedown-project/takedown/internal/store"
	"github.com/takedown-project/takedown/internal/store/storegen"
)

func generator(b *testing.B) storegen.Waledac {
	n := 2_000_000
	if v := os.Getenv("TAKEDOWN_BENCH_EVENTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n <= 0 {
			b.Fatalf("TAKEDOWN_BENCH_EVENTS=%q: want a positive number", v)
		}
	}
	g := storegen.ForEvents(n)
	g.BatchSize = 10_000
	return g
}

// BenchmarkDuckDB appends through store.Store and counts unique hosts per
// country over the week.
func BenchmarkDuckDB(b *testing.B) {
	g := generator(b)
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		path := filepath.Join(b.TempDir(), fmt.Sprintf("duck%d.db", i))
		db, err := dbfile.Open(ctx, path)
		if err != nil {
			b.Fatal(err)
		}
		s, err := store.Open(ctx, store.Config{DB: db})
		if err != nil {
			b.Fatal(err)
		}
		var took time.Duration
		n := 0
		if err := g.Generate(func(batch []event.Event) error {
			b.StartTimer()
			start := time.Now()
			err := s.Append(ctx, batch)
			took += time.Since(start)
			b.StopTimer()
			n += len(batch)
			return err
		}); err != nil {
			b.Fatal(err)
		}
		if _, err := db.Exec("CHECKPOINT"); err != nil {
			b.Fatal(err)
		}
		q := eventstore.HostQuery{GroupBy: []eventstore.Dimension{eventstore.DimCountry}}
		report(b, n, took, path, func() (int, error) {
			rows, err := s.UniqueHosts(ctx, q)
			return len(rows), err
		})
		s.Close()
		db.Close()
	}
}

const sqliteSchema = `CREATE TABLE events (
	time INTEGER NOT NULL, sensor TEXT, protocol TEXT, transport TEXT,
	src_ip INTEGER NOT NULL, src_ip6 BLOB, src_port INTEGER NOT NULL, dst_ip BLOB, dst_port INTEGER NOT NULL,
	domain TEXT, zone TEXT, case_name TEXT, family TEXT, tag TEXT, bot_id TEXT,
	http_method TEXT, http_path TEXT, http_user_agent TEXT,
	tls_version TEXT, tls_cipher TEXT, tls_fingerprint TEXT, dns_qtype TEXT, dns_rcode TEXT,
	bytes INTEGER NOT NULL, payload_sha256 TEXT, payload_head BLOB,
	asn INTEGER NOT NULL, as_name TEXT, country_code TEXT, region TEXT, city TEXT,
	latitude REAL NOT NULL, longitude REAL NOT NULL);
CREATE INDEX events_time ON events (time);`

// BenchmarkSQLite appends the same columns into SQLite in WAL mode with a
// prepared INSERT in transactions of 10,000 rows, and runs the same query.
func BenchmarkSQLite(b *testing.B) {
	g := generator(b)
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		path := filepath.Join(b.TempDir(), fmt.Sprintf("lite%d.db", i))
		db, err := sql.Open("sqlite", path+"?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)")
		if err != nil {
			b.Fatal(err)
		}
		db.SetMaxOpenConns(1)
		if _, err := db.Exec(sqliteSchema); err != nil {
			b.Fatal(err)
		}
		var took time.Duration
		n := 0
		if err := g.Generate(func(batch []event.Event) error {
			b.StartTimer()
			start := time.Now()
			err := insertSQLite(ctx, db, batch)
			took += time.Since(start)
			b.StopTimer()
			n += len(batch)
			return err
		}); err != nil {
			b.Fatal(err)
		}
		if _, err := db.Exec("PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
			b.Fatal(err)
		}
		report(b, n, took, path, func() (int, error) {
			rows, err := db.QueryContext(ctx, `SELECT coalesce(country_code, ''), count(DISTINCT src_ip) AS ips,
				count(DISTINCT bot_id), count(*) FROM events GROUP BY 1 ORDER BY ips DESC, 1`)
			if err != nil {
				return 0, err
			}
			defer rows.Close()
			k := 0
			for rows.Next() {
				k++
			}
			return k, rows.Err()
		})
		db.Close()
	}
}

func insertSQLite(ctx context.Context, db *sql.DB, batch []event.Event) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	st, err := tx.PrepareContext(ctx, `INSERT INTO events VALUES
		(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	defer st.Close()
	nul := func(s string) any {
		if s == "" {
			return nil
		}
		return s
	}
	for i := range batch {
		e := &batch[i]
		var src any
		var src6 any
		if a := e.SrcIP.Unmap(); a.Is4() {
			v := a.As4()
			src = int64(binary.BigEndian.Uint32(v[:]))
		} else {
			v := a.As16()
			src, src6 = int64(binary.BigEndian.Uint64(v[8:])), v[:]
		}
		dst := e.DstIP.As16()
		if _, err := st.ExecContext(ctx, e.Time.UnixNano(), nul(e.Sensor), nul(string(e.Protocol)), nul(string(e.Transport)),
			src, src6, int64(e.SrcPort), dst[:], int64(e.DstPort),
			nul(e.Domain), nul(e.Zone), nul(e.Case), nul(e.Family), nul(e.Tag), nul(e.BotID),
			nul(e.HTTPMethod), nul(e.HTTPPath), nul(e.HTTPUserAgent),
			nul(e.TLSVersion), nul(e.TLSCipher), nul(e.TLSFingerprint), nul(e.DNSQType), nul(e.DNSRcode),
			e.Bytes, nul(e.PayloadSHA256), e.PayloadHead,
			int64(e.ASN), nul(e.ASName), nul(e.CountryCode), nul(e.Region), nul(e.City),
			e.Latitude, e.Longitude); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// report records the append rate, the size of the file and the best of
// three runs of query.
func report(b *testing.B, n int, took time.Duration, path string, query func() (int, error)) {
	b.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	best := time.Duration(1 << 62)
	for range 3 {
		start := time.Now()
		k, err := query()
		if err != nil {
			b.Fatal(err)
		}
		if k == 0 {
			b.Fatal("query: no rows")
		}
		best = min(best, time.Since(start))
	}
	b.ReportMetric(float64(n)/took.Seconds(), "events/s")
	b.ReportMetric(float64(fi.Size())/float64(n), "bytes/event")
	b.ReportMetric(float64(best.Microseconds())/1000, "ms/country-week")
}
