package natsrun_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/takedown-project/takedown/internal/bus"
	"github.com/takedown-project/takedown/internal/natstest"
)

// violations collects the asynchronous errors of a connection.
type violations chan error

func watch(nc *nats.Conn) violations {
	v := make(violations, 64)
	nc.SetErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case v <- err:
		default:
		}
	})
	return v
}

// expect waits (5 s at most) for a permissions violation for a subject
// that starts with subject.
func (v violations) expect(t *testing.T, subject string) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case err := <-v:
			if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), `"`+subject) {
				return
			}
			t.Logf("other error meanwhile: %v", err)
		case <-timeout:
			t.Fatalf("no permissions violation for %q", subject)
		}
	}
}

// nothingPending checks that sub received nothing once the server has
// answered both connections' pings: whatever it would have delivered to
// sub comes before its answer to sub's connection.
func nothingPending(t *testing.T, sub *nats.Subscription, conns ...*nats.Conn) {
	t.Helper()
	for _, nc := range conns {
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if m, err := sub.NextMsg(50 * time.Millisecond); err == nil {
		t.Fatalf("%s received %q on %s", sub.Subject, m.Data, m.Subject)
	}
}

// The permissions of RenderAccounts on a real three-node TLS cluster: a
// sensor publishes its own events and heartbeat and reads the served set
// (an ordered consumer on TAKEDOWN_SERVED, objects of takedown_served);
// it cannot publish as another sensor, read events, create a consumer on
// TAKEDOWN_EVENTS, or read the central's inbox.
func TestSensorPermissionsOnATLSCluster(t *testing.T) {
	for v, bin := range natstest.Binaries(t) {
		t.Run("nats-"+v, func(t *testing.T) {
			c := natstest.Start(t, natstest.Options{TLS: true, Sensors: []string{"s1", "s2"}, Binary: bin})
			for _, u := range c.URLs() {
				if !strings.HasPrefix(u, "tls://") {
					t.Fatalf("URL %s is not TLS", u)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()

			// Every connection goes to node 0, so that a message the server
			// would deliver is delivered before it answers a ping.
			central := c.Connect(t, bus.CentralUser, c.URL(0))
			jsc, err := jetstream.New(central)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := jsc.CreateStream(ctx, jetstream.StreamConfig{
				Name: bus.EventsStream, Subjects: []string{bus.EventsSubjects}, Replicas: 3,
			}); err != nil {
				t.Fatal(err)
			}
			if _, err := jsc.CreateStream(ctx, jetstream.StreamConfig{
				Name: bus.ServedStream, Subjects: []string{bus.ServedDeltaSubject}, Replicas: 3,
			}); err != nil {
				t.Fatal(err)
			}
			obs, err := jsc.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: bus.ServedBucket, Replicas: 3})
			if err != nil {
				t.Fatal(err)
			}
			full := make([]byte, 2<<20) // 16 chunks: the reader's flow control is exercised
			rand.Read(full)
			if _, err := obs.PutBytes(ctx, "full", full); err != nil {
				t.Fatal(err)
			}
			if _, err := obs.PutBytes(ctx, "rules", []byte("rules: []\n")); err != nil {
				t.Fatal(err)
			}
			deltas := []string{"delta-1", "delta-2", "delta-3"}
			for _, d := range deltas {
				if _, err := jsc.Publish(ctx, bus.ServedDeltaSubject, []byte(d)); err != nil {
					t.Fatal(err)
				}
			}
			heartbeats, err := central.SubscribeSync(bus.HeartbeatSubjects)
			if err != nil {
				t.Fatal(err)
			}
			if err := central.Flush(); err != nil {
				t.Fatal(err)
			}

			s1 := c.Connect(t, "s1", c.URL(0))
			errs := watch(s1)
			js1, err := jetstream.New(s1)
			if err != nil {
				t.Fatal(err)
			}
			s2 := c.Connect(t, "s2", c.URL(0))
			js2, err := jetstream.New(s2)
			if err != nil {
				t.Fatal(err)
			}

			t.Run("publishes its events", func(t *testing.T) {
				ack, err := js1.Publish(ctx, bus.EventsSubject("s1"), []byte("batch"), jetstream.WithMsgID("s1-1"))
				if err != nil {
					t.Fatal(err)
				}
				if ack.Stream != bus.EventsStream || ack.Sequence != 1 {
					t.Fatalf("ack %+v", ack)
				}
			})
			t.Run("publishes its heartbeat", func(t *testing.T) {
				if err := s1.Publish(bus.HeartbeatSubject("s1"), []byte("hb")); err != nil {
					t.Fatal(err)
				}
				m, err := heartbeats.NextMsg(5 * time.Second)
				if err != nil {
					t.Fatal(err)
				}
				if m.Subject != bus.HeartbeatSubject("s1") {
					t.Fatalf("heartbeat on %s", m.Subject)
				}
			})
			t.Run("cannot publish another sensor's events", func(t *testing.T) {
				pctx, cancel := context.WithTimeout(ctx, time.Second)
				defer cancel()
				if _, err := js1.Publish(pctx, bus.EventsSubject("s2"), []byte("forged")); err == nil {
					t.Fatal("publish to takedown.events.s2 acknowledged")
				}
				errs.expect(t, bus.EventsSubject("s2"))
				if err := s1.Publish(bus.HeartbeatSubject("s2"), []byte("hb")); err != nil {
					t.Fatal(err)
				}
				errs.expect(t, bus.HeartbeatSubject("s2"))
			})
			t.Run("cannot subscribe to events", func(t *testing.T) {
				sub, err := s1.SubscribeSync("takedown.events.>")
				if err != nil {
					t.Fatal(err)
				}
				errs.expect(t, "takedown.events.>")
				if _, err := js2.Publish(ctx, bus.EventsSubject("s2"), []byte("s2's batch"), jetstream.WithMsgID("s2-1")); err != nil {
					t.Fatal(err)
				}
				nothingPending(t, sub, s2, s1)
			})
			t.Run("cannot read TAKEDOWN_EVENTS", func(t *testing.T) {
				cctx, cancel := context.WithTimeout(ctx, time.Second)
				defer cancel()
				if _, err := js1.CreateOrUpdateConsumer(cctx, bus.EventsStream, jetstream.ConsumerConfig{Durable: "steal", AckPolicy: jetstream.AckExplicitPolicy}); err == nil {
					t.Fatal("s1 created a durable consumer on TAKEDOWN_EVENTS")
				}
				errs.expect(t, "$JS.API.CONSUMER.CREATE."+bus.EventsStream+".steal")
				cctx, cancel = context.WithTimeout(ctx, time.Second)
				defer cancel()
				if _, err := js1.Stream(cctx, bus.EventsStream); err == nil {
					t.Fatal("s1 read TAKEDOWN_EVENTS's info")
				}
				errs.expect(t, "$JS.API.STREAM.INFO."+bus.EventsStream)
				get := "$JS.API.STREAM.MSG.GET." + bus.EventsStream
				if m, err := s1.Request(get, []byte(`{"last_by_subj":"takedown.events.s2"}`), time.Second); err == nil {
					t.Fatalf("s1 read s2's last batch: %s", m.Data)
				}
				errs.expect(t, get)
			})
			t.Run("cannot read the central's inbox", func(t *testing.T) {
				sub, err := s1.SubscribeSync(bus.InboxPrefix(bus.CentralUser) + ".>")
				if err != nil {
					t.Fatal(err)
				}
				errs.expect(t, bus.InboxPrefix(bus.CentralUser)+".>")
				if err := central.Publish(bus.InboxPrefix(bus.CentralUser)+".x", []byte("reply")); err != nil {
					t.Fatal(err)
				}
				nothingPending(t, sub, central, s1)
			})
			t.Run("reads the deltas with an ordered consumer", func(t *testing.T) {
				cons, err := js1.OrderedConsumer(ctx, bus.ServedStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{bus.ServedDeltaSubject}})
				if err != nil {
					t.Fatal(err)
				}
				for _, want := range deltas {
					m, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
					if err != nil {
						t.Fatal(err)
					}
					if string(m.Data()) != want {
						t.Fatalf("delta %q, want %q", m.Data(), want)
					}
				}
			})
			t.Run("reads the served objects", func(t *testing.T) {
				o, err := js1.ObjectStore(ctx, bus.ServedBucket)
				if err != nil {
					t.Fatal(err)
				}
				got, err := o.GetBytes(ctx, "full")
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, full) {
					t.Fatalf("full: %d bytes differ from the %d put", len(got), len(full))
				}
				rules, err := o.GetBytes(ctx, "rules")
				if err != nil || string(rules) != "rules: []\n" {
					t.Fatalf("rules %q, %v", rules, err)
				}
				pctx, cancel := context.WithTimeout(ctx, time.Second)
				defer cancel()
				if _, err := o.PutBytes(pctx, "full", []byte("forged")); err == nil {
					t.Fatal("s1 wrote the served set")
				}
				errs.expect(t, "$O."+bus.ServedBucket+".C.") // a chunk

			})
			t.Run("left no trace on TAKEDOWN_EVENTS", func(t *testing.T) {
				s, err := jsc.Stream(ctx, bus.EventsStream)
				if err != nil {
					t.Fatal(err)
				}
				info, err := s.Info(ctx, jetstream.WithSubjectFilter(bus.EventsSubjects))
				if err != nil {
					t.Fatal(err)
				}
				want := map[string]uint64{bus.EventsSubject("s1"): 1, bus.EventsSubject("s2"): 1}
				if len(info.State.Subjects) != len(want) || info.State.Subjects[bus.EventsSubject("s1")] != 1 || info.State.Subjects[bus.EventsSubject("s2")] != 1 {
					t.Fatalf("subjects %v, want %v", info.State.Subjects, want)
				}
				if info.State.Consumers != 0 {
					t.Fatalf("%d consumers on TAKEDOWN_EVENTS", info.State.Consumers)
				}
			})
		})
	}
}
