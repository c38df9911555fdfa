package collect

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/takedown-project/takedown/internal/bus"
)

// DefaultDuplicateWindow is EnsureStream's duplicate window when it is
// given 0: how long the stream remembers a batch's message id, so that a
// sensor's retry of the same batch within it is dropped.
const DefaultDuplicateWindow = 2 * time.Minute

// StreamConfig returns the configuration of the events stream: replicas
// (0: 1), a size limit in bytes (0 or less: none but the server's) and the
// duplicate window (0: DefaultDuplicateWindow).
//
// The stream is a work queue that refuses new messages when full: a
// message leaves it once the central has stored it and acknowledged it, so
// that the stream holds only what is not stored yet, and a full stream
// makes the sensors keep their records in their spools (their publish is
// refused and retried) rather than losing the oldest unstored ones, as a
// stream that discards old messages would.
func StreamConfig(replicas int, maxBytes int64, dupWindow time.Duration) jetstream.StreamConfig {
	if replicas <= 0 {
		replicas = 1
	}
	if maxBytes <= 0 {
		maxBytes = -1
	}
	if dupWindow <= 0 {
		dupWindow = DefaultDuplicateWindow
	}
	return jetstream.StreamConfig{
		Name:        bus.EventsStream,
		Description: "takedown: the sensors' events on their way to the central's store",
		Subjects:    []string{bus.EventsSubjects},
		Retention:   jetstream.WorkQueuePolicy,
		Discard:     jetstream.DiscardNew,
		MaxBytes:    maxBytes,
		MaxMsgs:     -1,
		MaxAge:      0,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
		Duplicates:  dupWindow,
	}
}

// EnsureStream creates the events stream, or updates its limits when it
// exists (see StreamConfig). Only the central calls it. A stream made
// otherwise (another retention) cannot be changed into this one; the
// error says so.
func EnsureStream(ctx context.Context, js jetstream.JetStream, replicas int, maxBytes int64, dupWindow time.Duration) error {
	cfg := StreamConfig(replicas, maxBytes, dupWindow)
	// A stream that is already as wanted is left alone: every central and
	// collector calls this at start, and an update that changes nothing
	// still rewrites the stream's store under its consumers.
	if s, err := js.Stream(ctx, bus.EventsStream); err == nil && sameStream(s.CachedInfo().Config, cfg) {
		return nil
	}
	_, err := js.CreateOrUpdateStream(ctx, cfg)
	if err == nil {
		return nil
	}
	if s, serr := js.Stream(ctx, bus.EventsStream); serr == nil {
		have := s.CachedInfo().Config
		if have.Retention != cfg.Retention || have.Discard != cfg.Discard {
			return fmt.Errorf("collect: stream %s exists with retention %s and discard %s, want %s and %s, which cannot be changed: "+
				"delete the stream once it is empty (nats stream rm %s) and let the central make it again: %w",
				bus.EventsStream, have.Retention, have.Discard, cfg.Retention, cfg.Discard, bus.EventsStream, err)
		}
	}
	return fmt.Errorf("collect: creating or updating stream %s: %w", bus.EventsStream, err)
}

// sameStream reports whether have already holds what StreamConfig sets.
func sameStream(have, want jetstream.StreamConfig) bool {
	return have.Description == want.Description && slices.Equal(have.Subjects, want.Subjects) &&
		have.Retention == want.Retention && have.Discard == want.Discard && have.MaxBytes == want.MaxBytes &&
		have.MaxMsgs == want.MaxMsgs && have.MaxAge == want.MaxAge && have.Storage == want.Storage &&
		have.Replicas == want.Replicas && have.Duplicates == want.Duplicates
}

// consumerConfig is the central's durable pull consumer of the events
// stream. It is made anew at each start (see doc.go): a work queue's
// consumer delivers every message still in the stream, from the first.
//
// subjects, if set, are the only subjects it delivers (a named central's
// sensors): one is a FilterSubject, which every server version knows;
// several need FilterSubjects, nats-server 2.10 or later.
func consumerConfig(durable string, maxAckPending int, subjects []string) jetstream.ConsumerConfig {
	cc := jetstream.ConsumerConfig{
		Durable:       durable,
		Description:   "takedown central: stores the sensors' events",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       AckWait,
		MaxDeliver:    -1,
		MaxAckPending: maxAckPending,
		FilterSubject: bus.EventsSubjects,
		ReplayPolicy:  jetstream.ReplayInstantPolicy,
	}
	switch len(subjects) {
	case 0:
	case 1:
		cc.FilterSubject = subjects[0]
	default:
		cc.FilterSubject, cc.FilterSubjects = "", subjects
	}
	return cc
}

// newConsumer deletes the durable consumer if it exists and makes it
// again: whatever it had delivered to an earlier run and was not
// acknowledged is delivered again at once, in stream order.
func newConsumer(ctx context.Context, js jetstream.JetStream, durable string, maxAckPending int, subjects []string) (jetstream.Consumer, error) {
	if err := js.DeleteConsumer(ctx, bus.EventsStream, durable); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, fmt.Errorf("collect: deleting consumer %s: %w", durable, err)
	}
	c, err := js.CreateConsumer(ctx, bus.EventsStream, consumerConfig(durable, maxAckPending, subjects))
	if err != nil {
		if len(subjects) > 1 {
			return nil, fmt.Errorf("collect: creating consumer %s for the events of %d sensors (several filter subjects need nats-server 2.10 or later): %w", durable, len(subjects), err)
		}
		return nil, fmt.Errorf("collect: creating consumer %s: %w", durable, err)
	}
	return c, nil
}
