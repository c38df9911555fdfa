package monitoring

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/takedown-project/takedown/internal/dbfile"
	"github.com/takedown-project/takedown/internal/deliver"
	"github.com/takedown-project/takedown/internal/testnet"
)

// TestDeliverMetricsExported mails a report through Exim with the
// Deliverer that serve uses, and gathers its metrics: every metric of the
// mail delivery that the rules read must be among them.
func TestDeliverMetricsExported(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := testnet.StartExim(t)
	db, err := dbfile.Open(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	reg := prometheus.NewRegistry()
	d, err := deliver.New(ctx, deliver.Config{DB: db, Relay: e.Addr(e.Port), CAFile: e.CAFile, HelloName: "takedown.test",
		From: "Takedown <takedown@example.org>", Attempts: 2, Backoff: 10 * time.Millisecond, Timeout: 10 * time.Second, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	day := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	res, err := d.Deliver(ctx, deliver.Key{Subscriber: "as64500", Day: day, Format: "csv"}, func() (deliver.Message, error) {
		return deliver.ReportMessage(deliver.Report{To: []string{"abuse@isp.example"}, Subscriber: "AS64500 Example", Day: day,
			Format: "csv", ContentType: "text/csv", Data: []byte("ip,count\r\n192.0.2.10,3\r\n"), Rows: 1})
	})
	if err != nil || !res.Sent {
		t.Fatalf("report not sent: %+v, %v", res, err)
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, f := range fams {
		exported[f.GetName()] = true
	}
	if n := checkNames(t, rulesFile, rulesExprs(t), exported, func(name string) bool {
		return strings.HasPrefix(name, "takedown_deliver_")
	}); n < 2 {
		t.Errorf("only %d names of the mail delivery found in the rules", n)
	}
}
