package servedsync

import (
	"bufio"
	"context"
	"io"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/takedown-project/takedown/internal/bus"
)

// sniffer sits between a client and the server and records the subjects
// the client publishes to (PUB and HPUB of the protocol), so that a test
// can list what a sensor asks of the server.
type sniffer struct {
	ln       net.Listener
	upstream string
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    []net.Conn
	subjects map[string]int
}

func newSniffer(t *testing.T, upstream string) *sniffer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &sniffer{ln: ln, upstream: upstream, subjects: map[string]int{}}
	s.wg.Go(s.accept)
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *sniffer) url() string { return "nats://" + s.ln.Addr().String() }

func (s *sniffer) accept() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", s.upstream)
		if err != nil {
			c.Close()
			continue
		}
		s.mu.Lock()
		s.conns = append(s.conns, c, up)
		s.mu.Unlock()
		s.wg.Go(func() {
			io.Copy(c, up)
			c.Close()
		})
		s.wg.Go(func() {
			s.forward(up, c)
			up.Close()
		})
	}
}

// forward copies the client's protocol to the server, noting the subject
// of every PUB and HPUB and skipping their payloads.
func (s *sniffer) forward(up io.Writer, c io.Reader) {
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		if _, err := io.WriteString(up, line); err != nil {
			return
		}
		f := strings.Fields(line)
		if len(f) < 3 || (f[0] != "PUB" && f[0] != "HPUB") {
			continue
		}
		s.mu.Lock()
		s.subjects[f[1]]++
		s.mu.Unlock()
		n, err := strconv.Atoi(f[len(f)-1])
		if err != nil {
			return
		}
		if _, err := io.CopyN(up, r, int64(n)+2); err != nil {
			return
		}
	}
}

// used returns the subjects published, with consumer names, filters and
// the subjects of direct gets as placeholders.
func (s *sniffer) used() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]bool{}
	for subj := range s.subjects {
		tok := strings.Split(subj, ".")
		switch {
		case strings.HasPrefix(subj, "$JS.API.CONSUMER.CREATE.") && len(tok) > 6:
			subj = strings.Join(tok[:5], ".") + ".<name>.<filter>"
		case strings.HasPrefix(subj, "$JS.API.CONSUMER.CREATE.") && len(tok) == 6:
			subj = strings.Join(tok[:5], ".") + ".<name>"
		case strings.HasPrefix(subj, "$JS.API.CONSUMER.MSG.NEXT.") && len(tok) == 7:
			subj = strings.Join(tok[:6], ".") + ".<name>"
		case strings.HasPrefix(subj, "$JS.API.CONSUMER.") && len(tok) == 6:
			subj = strings.Join(tok[:5], ".") + ".<name>"
		case strings.HasPrefix(subj, "$JS.API.DIRECT.GET.") && len(tok) > 5:
			subj = strings.Join(tok[:5], ".") + ".<subject>"
		}
		out[subj] = true
	}
	return slices.Sorted(maps.Keys(out))
}

// subjectMatch reports whether subject matches the NATS pattern pat.
func subjectMatch(pat, subject string) bool {
	p, s := strings.Split(pat, "."), strings.Split(subject, ".")
	for i, t := range p {
		switch {
		case t == ">":
			return len(s) > i
		case i >= len(s):
			return false
		case t != "*" && t != s[i]:
			return false
		}
	}
	return len(p) == len(s)
}

// TestSensorSubjects lists every subject a follower publishes to, through
// a start, changes, rules, garbage, a Replace on the central and a server
// restart, and checks that the sensor's permissions allow each: the list
// the NATS permissions of a sensor must grant (besides its inbox).
func TestSensorSubjects(t *testing.T) {
	ts := newTestServer(t)
	sn := newSniffer(t, strings.TrimPrefix(ts.url(), "nats://"))
	cc := connect(t, ts, "central")
	sc := connect(t, &testServer{port: mustPort(t, sn.url())}, "s1")
	rules := []byte("rules: []\n")
	cen := startCentral(t, cc, fullSnapshot(t, 1000, 50), PublisherConfig{Rules: func() []byte { return rules }})
	dir := t.TempDir()
	sen := startSensor(t, sc, nil, FollowerConfig{Dir: dir, RulesFile: dir + "/rules.yaml", CheckEvery: 100 * time.Millisecond})
	cen.change()
	waitSame(t, 10*time.Second, cen, sen)
	if _, err := cc.js.Publish(context.Background(), bus.ServedDeltaSubject, []byte("garbage")); err != nil {
		t.Fatal(err)
	}
	cen.set.Replace(fullSnapshot(t, 2000, 30))
	waitSame(t, 10*time.Second, cen, sen)
	ts.stop()
	ts.start()
	cen.change()
	waitSame(t, 20*time.Second, cen, sen)
	waitFor(t, 10*time.Second, "the follower to look at the full object", func() bool {
		for _, s := range sn.used() {
			if strings.HasPrefix(s, "$JS.API.DIRECT.GET.") {
				return true
			}
		}
		return false
	})
	if n := testutil.ToFloat64(sen.f.m.rules); n != 1 {
		t.Errorf("rules written %v times, want 1", n)
	}

	used := sn.used()
	t.Logf("subjects the follower published to:\n%s", strings.Join(used, "\n"))
	for _, subj := range used {
		if !slices.ContainsFunc(sensorPublish, func(p string) bool {
			return subjectMatch(p, strings.NewReplacer("<name>", "x", "<filter>", "x", "<subject>", "x").Replace(subj))
		}) {
			t.Errorf("%s is not in the sensor's permissions", subj)
		}
	}
	for _, want := range []string{
		"$JS.API.STREAM.INFO.TAKEDOWN_SERVED",
		"$JS.API.STREAM.INFO.OBJ_takedown_served",
		"$JS.API.CONSUMER.CREATE.TAKEDOWN_SERVED.<name>.<filter>",
		"$JS.API.CONSUMER.CREATE.OBJ_takedown_served.<name>.<filter>",
		"$JS.API.CONSUMER.MSG.NEXT.TAKEDOWN_SERVED.<name>",
		"$JS.API.CONSUMER.MSG.NEXT.OBJ_takedown_served.<name>",
		"$JS.API.DIRECT.GET.OBJ_takedown_served.<subject>",
	} {
		if !slices.Contains(used, want) {
			t.Errorf("%s not used", want)
		}
	}
	if errs := sc.permissionErrors(); len(errs) > 0 {
		t.Errorf("the sensor met permissions violations: %q", errs)
	}
	// The sensor may not write: a publish to the delta subject is refused.
	if err := sc.nc.Publish(bus.ServedDeltaSubject, []byte("x")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the refusal", func() bool { return len(sc.permissionErrors()) > 0 })
}

func mustPort(t *testing.T, url string) int {
	_, p, err := net.SplitHostPort(strings.TrimPrefix(url, "nats://"))
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return n
}
