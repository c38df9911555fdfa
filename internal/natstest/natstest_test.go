package natstest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/takedown-project/takedown/internal/bus"
)

// publish publishes n messages to subject with ids prefix-0…, retrying
// each (bounded) while the stream has no leader.
func publish(t *testing.T, js jetstream.JetStream, subject, prefix string, n int) {
	t.Helper()
	for k := range n {
		id := prefix + "-" + strconv.Itoa(k)
		var err error
		for try := 0; try < 100; try++ {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err = js.Publish(ctx, subject, []byte(id), jetstream.WithMsgID(id))
			cancel()
			if err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("publishing %s: %v", id, err)
		}
	}
}

// nodeMessages is what node i's monitoring port says stream holds.
func nodeMessages(c *Cluster, i int, stream string) (uint64, error) {
	resp, err := http.Get(c.MonitorURL(i) + "/jsz?accounts=true&streams=true")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var j struct {
		Accounts []struct {
			Streams []struct {
				Name  string `json:"name"`
				State struct {
					Msgs uint64 `json:"messages"`
				} `json:"state"`
			} `json:"stream_detail"`
		} `json:"account_details"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&j); err != nil {
		return 0, err
	}
	for _, a := range j.Accounts {
		for _, s := range a.Streams {
			if s.Name == stream {
				return s.State.Msgs, nil
			}
		}
	}
	return 0, fmt.Errorf("node %d has no stream %s", i, stream)
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// An R3 stream keeps every acknowledged message when its leader is killed
// with SIGKILL, takes new ones under the new leader, and the killed node,
// restarted on its own store, catches up with both.
func TestR3StreamSurvivesLeaderKillAndRestart(t *testing.T) {
	for v, bin := range Binaries(t) {
		t.Run("nats-"+v, func(t *testing.T) {
			start := time.Now()
			c := Start(t, Options{Sensors: []string{"s1"}, Binary: bin})
			t.Logf("3 nodes ready in %v", time.Since(start).Round(time.Millisecond))
			if c.Nodes() != 3 {
				t.Fatalf("%d nodes, want 3", c.Nodes())
			}
			js, err := jetstream.New(c.Connect(t, bus.CentralUser))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
				Name: bus.EventsStream, Subjects: []string{bus.EventsSubjects}, Replicas: 3, Storage: jetstream.FileStorage,
			}); err != nil {
				t.Fatal(err)
			}
			publish(t, js, bus.EventsSubject("s1"), "a", 50)

			leader := c.StreamLeader(t, bus.EventsStream)
			killed := time.Now()
			c.Kill(leader)
			if c.Running(leader) {
				t.Fatal("killed node still running")
			}
			next := c.StreamLeader(t, bus.EventsStream)
			if next == leader {
				t.Fatalf("node %d still leads after it was killed", next)
			}
			t.Logf("node %d leads %v after node %d was killed", next, time.Since(killed).Round(time.Millisecond), leader)
			// A retry of an acknowledged message is still a duplicate under
			// the new leader; new ones are taken.
			publish(t, js, bus.EventsSubject("s1"), "a", 60)

			restarted := time.Now()
			c.Restart(leader)
			t.Logf("node %d ready %v after its restart", leader, time.Since(restarted).Round(time.Millisecond))
			waitFor(t, "the restarted node to hold 60 messages", 30*time.Second, func() error {
				n, err := nodeMessages(c, leader, bus.EventsStream)
				if err == nil && n != 60 {
					err = fmt.Errorf("%d messages", n)
				}
				return err
			})
			info, err := js.Stream(ctx, bus.EventsStream)
			if err != nil {
				t.Fatal(err)
			}
			if got := info.CachedInfo().State.Msgs; got != 60 {
				t.Fatalf("stream holds %d messages, want 60", got)
			}
			if l := c.StreamLeader(t, bus.EventsStream); !c.Running(l) {
				t.Fatalf("leader %d not running", l)
			}
		})
	}
}

// One node (JetStream without a cluster) and three, with TLS: every user
// connects, and a stream is kept across StopAll and StartAll (a partition
// of the clients from the whole cluster), the clients reconnecting by
// themselves.
func TestStopAllStartAll(t *testing.T) {
	for v, bin := range Binaries(t) {
		for _, nodes := range []int{1, 3} {
			t.Run(fmt.Sprintf("nats-%s/nodes=%d", v, nodes), func(t *testing.T) {
				testStopAllStartAll(t, bin, nodes)
			})
		}
	}
}

func testStopAllStartAll(t *testing.T, bin string, nodes int) {
	c := Start(t, Options{Nodes: nodes, TLS: true, Sensors: []string{"s1"}, Binary: bin})
	if c.Nodes() != nodes || c.CAFile() == "" {
		t.Fatalf("%d nodes, CA %q", c.Nodes(), c.CAFile())
	}
	central := c.Connect(t, bus.CentralUser)
	js, err := jetstream.New(central)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: bus.EventsStream, Subjects: []string{bus.EventsSubjects}, Replicas: nodes}); err != nil {
		t.Fatal(err)
	}
	if l := c.StreamLeader(t, bus.EventsStream); l < 0 || l >= nodes {
		t.Fatalf("leader %d", l)
	}
	s1, err := jetstream.New(c.Connect(t, "s1"))
	if err != nil {
		t.Fatal(err)
	}
	publish(t, s1, bus.EventsSubject("s1"), "x", 5)

	c.StopAll()
	for i := range nodes {
		if c.Running(i) {
			t.Fatalf("node %d runs after StopAll", i)
		}
	}
	waitFor(t, "the central to notice", 10*time.Second, func() error {
		if central.IsConnected() {
			return fmt.Errorf("still connected")
		}
		return nil
	})
	c.StartAll()
	publish(t, s1, bus.EventsSubject("s1"), "x", 10) // the first five are duplicates
	waitFor(t, "10 messages", 30*time.Second, func() error {
		info, err := js.Stream(ctx, bus.EventsStream)
		if err == nil && info.CachedInfo().State.Msgs != 10 {
			err = fmt.Errorf("%d messages", info.CachedInfo().State.Msgs)
		}
		return err
	})
	for i := range nodes {
		if n := strings.Count(c.Logs(i), "--- natsrun: starting n"+strconv.Itoa(i)); n != 2 {
			t.Errorf("node %d's log shows %d runs, want 2", i, n)
		}
	}
}
