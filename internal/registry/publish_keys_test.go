package registry

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/takedown-project/takedown/internal/dnssec"
	"github.com/takedown-project/takedown/internal/servedset"
)

// TestPublisherKeys: the served cases carry the keys PublisherConfig.Keys
// gives, and Touch puts a case again when they change (a rollover).
func TestPublisherKeys(t *testing.T) {
	r, _, clk := newTestRegistry(t)
	mustCase(t, r)
	importDomains(t, r, waledac.Name, "a.example")
	setState(t, r, StateRestrained, "a.example")
	k1, _ := dnssec.NewKey(dnssec.ECDSAP256SHA256)
	k1.State = dnssec.StateActive
	var mu sync.Mutex
	keys := []dnssec.Key{*k1}
	var fail error
	set := servedset.NewSet()
	p := r.NewPublisher(PublisherConfig{Served: set, Sinkhole: testSinkhole, Now: clk.Now,
		Keys: func(_ context.Context, name string) ([]dnssec.Key, error) {
			mu.Lock()
			defer mu.Unlock()
			return keys, fail
		}})
	if err := p.Load(ctxBack); err != nil {
		t.Fatal(err)
	}
	if c, _ := set.Load().Has("a.example"); len(c.Keys) != 1 || c.Keys[0].PublicKey != k1.PublicKey {
		t.Fatalf("loaded keys %+v", c.Keys)
	}
	k2, _ := dnssec.NewKey(dnssec.ED25519)
	k2.State = dnssec.StateActive
	mu.Lock()
	keys = append(keys, *k2)
	fail = errors.New("key file dnssec/K.private has mode -rw-r--r--")
	mu.Unlock()
	p.Touch(waledac.Name)
	if _, err := p.Poll(ctxBack); err == nil || !strings.Contains(err.Error(), "the DNSSEC keys of case waledac-2010: key file") {
		t.Fatalf("a poll whose keys fail: %v", err)
	}
	mu.Lock()
	fail = nil
	mu.Unlock()
	if changed, err := p.Poll(ctxBack); !changed || err != nil {
		t.Fatalf("the poll after the keys changed: %v %v", changed, err)
	}
	if c, _ := set.Load().Has("a.example"); len(c.Keys) != 2 || c.Keys[1].PublicKey != k2.PublicKey {
		t.Fatalf("keys after the step %+v", c.Keys)
	}
	if changed, err := p.Poll(ctxBack); changed || err != nil {
		t.Errorf("a poll with nothing new: %v %v", changed, err)
	}
}
