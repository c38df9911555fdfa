package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/takedown-project/takedown/internal/api"
	"github.com/takedown-project/takedown/internal/registry"
)

func TestSubscriberEndpoints(t *testing.T) {
	srv, reg := newServer(t)
	ctx := context.Background()
	// isp-b's data must never show in answers about isp-a.
	if _, err := reg.AddSubscriber(ctx, registry.NewSubscriber{Name: "isp-b", Org: "Secret Org B", Contacts: []string{"hidden@b.example"},
		CIDRs: []string{"198.51.100.0/24"}}, registry.Change{Actor: "t"}); err != nil {
		t.Fatal(err)
	}
	keyB, kb, err := reg.AddAPIKey(ctx, "isp-b", registry.Change{Actor: "t"})
	if err != nil {
		t.Fatal(err)
	}
	leaks := []string{"isp-b", "Secret Org B", "hidden@b.example", "198.51.100", kb.ID}

	const a = `{"name":"isp-a","org":"ISP A","contacts":["abuse@a.example"],"asns":["AS64512"],"cidrs":["192.0.2.0/24"],"countries":["de"],"formats":["csv","json"],"reason":"signed up"}`
	steps := []struct {
		name, method, path, body string
		status                   int
		want                     string
	}{
		{"add", "POST", "/v1/subscribers", a, 201, `"tlp": "AMBER"`},
		{"add again", "POST", "/v1/subscribers", a, 409, "subscriber isp-a: already exists"},
		{"add bad", "POST", "/v1/subscribers", `{"name":"isp-c","org":"C","contacts":["x@"],"asns":["AS0"],"cidrs":["10.0.0.1/8"],"countries":["ZZ"],"tlp":"BLUE"}`,
			400, `contact "x@"`},
		{"add empty scope", "POST", "/v1/subscribers", `{"name":"isp-c","org":"C","contacts":["a@c.example"]}`, 400, "scope is empty"},
		{"add unknown field", "POST", "/v1/subscribers", `{"name":"isp-c","asn":["AS1"]}`, 400, `"asn"`},
		{"get", "GET", "/v1/subscribers/isp-a", "", 200, `"192.0.2.0/24"`},
		{"get missing", "GET", "/v1/subscribers/isp-z", "", 404, `subscriber "isp-z"`},
		{"get bad name", "GET", "/v1/subscribers/ISP%20A", "", 400, `subscriber name "ISP A"`},
		{"update", "PATCH", "/v1/subscribers/isp-a", `{"add_asns":["AS64513"],"remove_countries":["DE"],"tlp":"red"}`, 200, `64513`},
		{"update bad", "PATCH", "/v1/subscribers/isp-a", `{"remove_cidrs":["198.51.100.0/24"]}`, 400, "subscriber isp-a: cannot remove CIDR 198.51.100.0/24: not among its CIDRs"},
		{"update nothing", "PATCH", "/v1/subscribers/isp-a", `{}`, 400, "changes nothing"},
		{"update missing", "PATCH", "/v1/subscribers/isp-z", `{"tlp":"RED"}`, 404, "isp-z"},
		{"revoke b's key as a", "DELETE", "/v1/subscribers/isp-a/keys/" + kb.ID, "", 404, "subscriber isp-a has no API key"},
		{"revoke unknown key", "DELETE", "/v1/subscribers/isp-a/keys/nokey", "", 404, `"nokey"`},
		{"remove bad param", "DELETE", "/v1/subscribers/isp-a?force=1", "", 400, `"force"`},
		{"list", "GET", "/v1/subscribers", "", 200, `"isp-a"`},
	}
	for _, s := range steps {
		status, body := do(t, srv, s.method, s.path, s.body, true)
		if status != s.status || !strings.Contains(body, s.want) {
			t.Errorf("%s: %s %s: %d %s; want %d containing %q", s.name, s.method, s.path, status, body, s.status, s.want)
		}
		if s.name == "add bad" {
			for _, w := range []string{`ASN "AS0"`, `CIDR "10.0.0.1/8"`, `country "ZZ"`, `TLP "BLUE"`} {
				if !strings.Contains(body, w) {
					t.Errorf("add bad: %s does not name %s", body, w)
				}
			}
		}
		if s.status >= 400 {
			for _, l := range leaks {
				if strings.Contains(body, l) && !strings.Contains(s.path+s.body, l) { // an echo of the request is no leak
					t.Errorf("%s: the answer %s shows %q of another subscriber", s.name, body, l)
				}
			}
		}
	}

	// A new key is shown once and not cached.
	req, _ := http.NewRequest("POST", srv.URL+"/v1/subscribers/isp-a/keys?reason=onboarding", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var nk api.NewKey
	json.NewDecoder(resp.Body).Decode(&nk)
	resp.Body.Close()
	if resp.StatusCode != 201 || resp.Header.Get("Cache-Control") != "no-store" || nk.Subscriber != "isp-a" || !strings.HasPrefix(nk.Key, "tdk_") || nk.ID != nk.Key[4:12] {
		t.Fatalf("new key: %d %v %+v", resp.StatusCode, resp.Header, nk)
	}
	if s, err := reg.SubscriberByKey(ctx, nk.Key); err != nil || s.Name != "isp-a" {
		t.Errorf("the new key finds %+v, %v", s, err)
	}
	// A subscriber's key does not open the admin API.
	for _, k := range []string{nk.Key, keyB} {
		req, _ := http.NewRequest("GET", srv.URL+"/v1/subscribers", nil)
		req.Header.Set("Authorization", "Bearer "+k)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Errorf("a subscriber key on the admin API: %d", resp.StatusCode)
		}
	}
	_, body := do(t, srv, "GET", "/v1/subscribers/isp-a", "", true)
	if strings.Contains(body, nk.Key) || strings.Contains(body, nk.Key[12:]) || !strings.Contains(body, nk.ID) {
		t.Errorf("GET shows the key or lacks its ID: %s", body)
	}
	if status, body := do(t, srv, "DELETE", "/v1/subscribers/isp-a/keys/"+nk.ID+"?reason=leaked", "", true); status != 204 {
		t.Errorf("revoke: %d %s", status, body)
	}
	if status, body := do(t, srv, "DELETE", "/v1/subscribers/isp-a/keys/"+nk.ID, "", true); status != 400 || !strings.Contains(body, "revoked already") {
		t.Errorf("second revoke: %d %s", status, body)
	}
	if status, body := do(t, srv, "DELETE", "/v1/subscribers/isp-a?reason=contract+ended", "", true); status != 204 {
		t.Errorf("remove: %d %s", status, body)
	}
	if status, _ := do(t, srv, "GET", "/v1/subscribers/isp-a", "", true); status != 404 {
		t.Errorf("get after remove: %d", status)
	}
	es, _ := reg.Audit(ctx, registry.AuditFilter{Object: "subscriber:isp-a"})
	var acts []string
	for _, e := range es {
		acts = append(acts, e.Action+"/"+e.Actor+"/"+e.Reason)
	}
	if got := strings.Join(acts, " "); got != "subscriber.add/api/signed up subscriber.update/api/ subscriber.key.add/api/onboarding subscriber.key.revoke/api/leaked subscriber.remove/api/contract ended" {
		t.Errorf("audit of isp-a: %s", got)
	}
}

func TestSubscriberClientMatchesLocal(t *testing.T) {
	srv, reg := newServer(t)
	ctx := context.Background()
	c := api.NewClient(srv.URL, token, "tester")
	ch := registry.Change{Actor: "alice", Reason: "r"}
	ns := registry.NewSubscriber{Name: "cert-x", Org: "CERT X", Contacts: []string{"a@x.example"}, Countries: []string{"FR"}}
	s, err := c.AddSubscriber(ctx, ns, ch)
	if err != nil || s.Scope.String() != "FR" || s.Created.IsZero() || s.Keys == nil {
		t.Fatalf("AddSubscriber = %+v, %v", s, err)
	}
	_, remoteErr := c.AddSubscriber(ctx, ns, ch)
	_, localErr := reg.AddSubscriber(ctx, ns, ch)
	if !errors.Is(remoteErr, registry.ErrExists) || remoteErr.Error() != localErr.Error() {
		t.Errorf("remote %v, local %v", remoteErr, localErr)
	}
	bad := registry.SubscriberUpdate{AddASNs: []string{"AS-1"}, SendAt: new("24:00")}
	_, remoteErr = c.UpdateSubscriber(ctx, "cert-x", bad, ch)
	_, localErr = reg.UpdateSubscriber(ctx, "cert-x", bad, ch)
	if !errors.Is(remoteErr, registry.ErrInvalid) || remoteErr.Error() != localErr.Error() {
		t.Errorf("remote %v, local %v", remoteErr, localErr)
	}
	u, err := c.UpdateSubscriber(ctx, "cert-x", registry.SubscriberUpdate{Countries: &[]string{"fr", "be"}, Formats: &[]string{"stix"}}, ch)
	if err != nil || u.Scope.String() != "BE FR" || u.Formats[0] != "stix" {
		t.Errorf("UpdateSubscriber = %+v, %v", u, err)
	}
	key, k, err := c.AddAPIKey(ctx, "cert-x", ch)
	if err != nil || k.Created.IsZero() {
		t.Fatal(k, err)
	}
	if got, err := reg.SubscriberByKey(ctx, key); err != nil || got.Name != "cert-x" {
		t.Errorf("SubscriberByKey = %+v, %v", got, err)
	}
	if err := c.RevokeAPIKey(ctx, "cert-x", "zzzz", ch); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("revoke unknown: %v", err)
	}
	if err := c.RevokeAPIKey(ctx, "cert-x", k.ID, ch); err != nil {
		t.Error(err)
	}
	got, err := c.GetSubscriber(ctx, "cert-x")
	if err != nil || len(got.Keys) != 1 || got.Keys[0].Active() {
		t.Errorf("GetSubscriber = %+v, %v", got, err)
	}
	if err := c.RemoveSubscriber(ctx, "cert-x", ch); err != nil {
		t.Error(err)
	}
	if ls, err := c.ListSubscribers(ctx); err != nil || ls == nil || len(ls) != 0 {
		t.Errorf("ListSubscribers = %#v, %v", ls, err)
	}
	es, _ := reg.Audit(ctx, registry.AuditFilter{Object: "subscriber:cert-x"})
	for _, e := range es {
		if e.Actor != "alice" || e.Reason != "r" {
			t.Errorf("audit entry %s by %q for %q", e.Action, e.Actor, e.Reason)
		}
	}
	if len(es) != 5 {
		t.Errorf("%d audit entries, want 5", len(es))
	}
}
