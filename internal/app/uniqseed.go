package app

import (
	"context"
	"log/slog"
	"time"

	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/eventstore"
	"github.com/takedown-project/takedown/internal/uniq"
)

// seedHosts gives the live unique-host counters the hosts of today (UTC)
// that the store holds, stored by a previous run, so that "unique hosts
// today" of status does not start again from zero at each start. The
// pipeline observes the rest, the spool's backlog included; the counters
// are sets, so a host taken in both ways counts once. It runs beside the
// start-up: a day of Conficker's 7 million addresses is a query of some
// seconds.
func seedHosts(ctx context.Context, st eventstore.Reader, hosts *uniq.Counter, now time.Time, log *slog.Logger) {
	t0 := time.Now()
	day := now.UTC().Truncate(24 * time.Hour)
	n := 0
	err := st.Sources(ctx, day, day.Add(24*time.Hour), func(s eventstore.Source) error {
		e := event.Event{Time: day, SrcIP: s.IP, Family: s.Family, BotID: s.BotID}
		hosts.Observe(&e)
		n++
		return nil
	})
	if err != nil && ctx.Err() == nil {
		log.Error("counting today's stored hosts", "err", err)
		return
	}
	log.Info("today's stored hosts counted", "sources", n, "took", time.Since(t0).Round(time.Millisecond))
}
