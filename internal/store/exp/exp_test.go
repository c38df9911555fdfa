package exp

import (
	"database/sql"
	"os"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"
)

func TestExp(t *testing.T) {
	dir := t.TempDir()
	for _, ty := range []struct{ name, typ, expr string }{
		{"uhugeint", "UHUGEINT", "(281470681743360 + ipn)::UHUGEINT"},
		{"ubigint", "UBIGINT", "(281470681743360 + ipn)::UBIGINT"},
		{"blob", "BLOB", "unhex(printf('%08x', ipn))"},
		{"varchar", "VARCHAR", "printf('%d.%d.%d.%d', ipn>>24, (ipn>>16)&255, (ipn>>8)&255, ipn&255)"},
	} {
		for _, tcol := range []struct{ name, typ, expr, dayexpr string }{
			{"tsns", "TIMESTAMP_NS", "make_timestamp_ns(1700000000000000000 + i*41400000000::BIGINT)", "CAST(time AS DATE)"},
			{"bigint", "BIGINT", "1700000000000000000 + i*41400000000::BIGINT", "time // 86400000000000"},
		} {
			for _, withDay := range []bool{false, true} {
				path := filepath.Join(dir, ty.name+tcol.name+map[bool]string{true: "day"}[withDay]+".db")
				db, err := sql.Open("duckdb", path)
				if err != nil {
					t.Fatal(err)
				}
				dayCol := ""
				if withDay {
					dayCol = ", day DATE"
				}
				mustExec(t, db, `CREATE TABLE ev (time `+tcol.typ+`, src_ip `+ty.typ+`, asn UINTEGER, cc VARCHAR`+dayCol+`)`)
				// 14.6M rows, 58k hosts with zipf-ish ASN
				sel := `SELECT ` + tcol.expr + `, ` + ty.expr + `, (h*h % 5000)::UINTEGER, chr(65 + (h % 26)::INT) || chr(65 + (h*7 % 6)::INT)`
				if withDay {
					sel += `, CAST(make_timestamp_ns(1700000000000000000 + i*41400000000::BIGINT) AS DATE)`
				}
				sel += ` FROM (SELECT i, hash(i) % 58000 AS h, (167772160 + (hash(i) % 58000) * 9973 % 3000000000)::BIGINT AS ipn FROM range(14600000) r(i))`
				st := time.Now()
				mustExec(t, db, `INSERT INTO ev `+sel)
				mustExec(t, db, `CHECKPOINT`)
				ins := time.Since(st)
				dayE := tcol.dayexpr
				if withDay {
					dayE = "day"
				}
				q1 := `SELECT cc, count(DISTINCT src_ip) FROM ev WHERE ` + dayE + ` = (SELECT min(` + dayE + `) FROM ev) + 2 GROUP BY cc`
				q2 := `SELECT asn, count(DISTINCT src_ip) n FROM ev GROUP BY asn ORDER BY n DESC`
				q3 := `SELECT ` + dayE + ` d, cc, count(DISTINCT src_ip) n FROM ev GROUP BY d, cc ORDER BY n DESC`
				var d [3]time.Duration
				for k, q := range []string{q1, q2, q3} {
					best := time.Hour
					for range 3 {
						st := time.Now()
						rows, err := db.Query(q)
						if err != nil {
							t.Fatal(err)
						}
						for rows.Next() {
						}
						rows.Close()
						best = min(best, time.Since(st))
					}
					d[k] = best
				}
				db.Close()
				fi, _ := os.Stat(path)
				t.Logf("%-9s %-7s day=%-5v insert=%v size=%.1fMB q_cc_day=%v q_asn_week=%v q_day_cc=%v", ty.name, tcol.name, withDay, ins.Round(time.Millisecond), float64(fi.Size())/1e6, d[0].Round(time.Millisecond), d[1].Round(time.Millisecond), d[2].Round(time.Millisecond))
			}
		}
	}
}

func mustExec(t *testing.T, db *sql.DB, q string) {
	t.Helper()
	if _, err := db.Exec(q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}
