package exp

import (
	"database/sql"
	"os"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"
)

func TestExp2(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.db")
	db, err := sql.Open("duckdb", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	mustExec(t, db, `CREATE TABLE ev (time TIMESTAMP_NS, src_ip UHUGEINT, src_b BLOB, src_u UBIGINT, asn UINTEGER, cc VARCHAR)`)
	mustExec(t, db, `INSERT INTO ev SELECT make_timestamp_ns(1700000000000000000 + i*41400000000::BIGINT), (281470681743360 + ipn)::UHUGEINT, unhex(printf('%08x', ipn)), (281470681743360 + ipn)::UBIGINT, (h*h % 5000)::UINTEGER, chr(65 + (h % 26)::INT) || chr(65 + (h*7 % 6)::INT)
	 FROM (SELECT i, hash(i) % 58000 AS h, (167772160 + (hash(i) % 58000) * 9973 % 3000000000)::BIGINT AS ipn FROM range(14600000) r(i))`)
	mustExec(t, db, `CHECKPOINT`)
	for _, q := range []string{
		`SELECT asn, count(DISTINCT src_ip) n FROM ev GROUP BY asn`,
		`SELECT asn, count(DISTINCT hash(src_ip)) n FROM ev GROUP BY asn`,
		`SELECT asn, count(DISTINCT src_b) n FROM ev GROUP BY asn`,
		`SELECT asn, count(DISTINCT src_u) n FROM ev GROUP BY asn`,
		`SELECT asn, count(DISTINCT CASE WHEN src_ip < 18446744073709551616 THEN src_ip::UBIGINT END) + count(DISTINCT CASE WHEN src_ip >= 18446744073709551616 THEN src_ip END) n FROM ev GROUP BY asn`,
		`SELECT asn, count(*) FROM (SELECT DISTINCT asn, src_ip FROM ev) GROUP BY asn`,
		`SELECT cc, count(DISTINCT src_u) n FROM ev WHERE time >= TIMESTAMP_NS '2023-11-16 00:00:00' AND time < TIMESTAMP_NS '2023-11-17 00:00:00' GROUP BY cc`,
		`SELECT CAST(time AS DATE) d, cc, count(DISTINCT src_u) n FROM ev GROUP BY d, cc`,
		`SELECT CAST(time AS DATE) d, cc, count(DISTINCT src_ip) n FROM ev GROUP BY d, cc`,
		`SELECT d, cc, count(*) FROM (SELECT DISTINCT CAST(time AS DATE) d, cc, src_u FROM ev) GROUP BY d, cc`,
		`SELECT min(time), max(time) FROM ev`,
	} {
		best := time.Hour
		n := 0
		for range 3 {
			st := time.Now()
			rows, err := db.Query(q)
			if err != nil {
				t.Fatal(err)
			}
			n = 0
			for rows.Next() {
				n++
			}
			rows.Close()
			best = min(best, time.Since(st))
		}
		t.Logf("%v rows=%d %s", best.Round(time.Millisecond), n, q)
	}
	var used, bs int64
	db.QueryRow(`SELECT used_blocks, block_size FROM pragma_database_size()`).Scan(&used, &bs)
	fi, _ := os.Stat(path)
	t.Logf("file %d used %d", fi.Size(), used*bs)
}
