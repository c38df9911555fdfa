package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/takedown-project/takedown/internal/api"
	"github.com/takedown-project/takedown/internal/config"
	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/pipeline"
	"github.com/takedown-project/takedown/internal/quarantine"
	"github.com/takedown-project/takedown/internal/spool"
)

// servedQuarantine is the quarantine of a running serve, for the API: a
// replay offers each entry to its pipeline.
type servedQuarantine struct {
	q    *quarantine.Quarantine
	pipe *pipeline.Pipeline
	sp   *spool.Spool
}

func (s *servedQuarantine) QuarantineList(_ context.Context, limit int) (api.QuarantineList, error) {
	return listQuarantine(s.q, limit)
}

func (s *servedQuarantine) ReplayQuarantine(context.Context) (api.ReplayResult, error) {
	return replay(s.q, func(e *event.Event) error {
		if !s.pipe.Offer(e) {
			return errors.New("the spool is full")
		}
		return nil
	}, s.sp)
}

func listQuarantine(q *quarantine.Quarantine, limit int) (api.QuarantineList, error) {
	entries, err := q.Entries(limit)
	if entries == nil {
		entries = []quarantine.Entry{}
	}
	return api.QuarantineList{Summary: q.Summary(), Entries: entries}, err
}

// replay hands the entries of q that are acceptable now (they decode and
// pass event.Validate) to requeue, and syncs sp before they leave the
// quarantine file. An entry the store refused goes back to the store: if it
// still refuses it, the pipeline sets it aside again.
func replay(q *quarantine.Quarantine, requeue func(*event.Event) error, sp *spool.Spool) (api.ReplayResult, error) {
	lostBefore := sp.Stats().DroppedWrite
	taken, kept, err := q.Replay(func(en quarantine.Entry) error {
		var d event.Decoder
		var e event.Event
		if err := d.Decode(en.Record, &e); err != nil {
			return err
		}
		if err := e.Validate(); err != nil {
			return err
		}
		return requeue(&e)
	}, func() error {
		if err := sp.Sync(); err != nil {
			return err
		}
		if sp.Stats().DroppedWrite > lostBefore {
			return errors.New("a write of the spool failed")
		}
		return nil
	})
	return api.ReplayResult{Replayed: taken, Kept: kept}, err
}

// LocalQuarantine is the quarantine of a takedown whose serve is not
// running: a replay appends the entries to the spool, for the next serve
// to store first.
type LocalQuarantine struct {
	Cfg config.Config
	Log *slog.Logger
}

// QuarantineList implements api.Quarantine.
func (l LocalQuarantine) QuarantineList(_ context.Context, limit int) (api.QuarantineList, error) {
	q, err := quarantine.Open(l.Cfg.Pipeline.QuarantineDir)
	if err != nil {
		return api.QuarantineList{}, err
	}
	return listQuarantine(q, limit)
}

// ReplayQuarantine implements api.Quarantine.
func (l LocalQuarantine) ReplayQuarantine(context.Context) (api.ReplayResult, error) {
	q, err := quarantine.Open(l.Cfg.Pipeline.QuarantineDir)
	if err != nil {
		return api.ReplayResult{}, err
	}
	log := l.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sp, err := spool.Open(spoolConfig(l.Cfg, log, nil))
	if err != nil {
		return api.ReplayResult{}, fmt.Errorf("pipeline.spool_dir: %w", err)
	}
	var buf []byte
	res, err := replay(q, func(e *event.Event) error {
		buf = event.AppendBinary(buf[:0], e)
		return sp.Append(buf)
	}, sp)
	return res, errors.Join(err, sp.Close())
}
