package dashboard

import (
	"compress/gzip"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/takedown-project/takedown/internal/jsonbody"
	"github.com/takedown-project/takedown/internal/registry"
	"github.com/takedown-project/takedown/internal/users"
)

// access is who may call a route.
type access int

const (
	anyone  access = iota // no session (the login)
	viewer                // any user
	analyst               // sees addresses, changes domains
	admin                 // manages users
)

func (a access) String() string {
	return [...]string{"anyone", "viewer", "analyst", "admin"}[a]
}

func allowed(r users.Role, a access) bool {
	switch a {
	case anyone, viewer:
		return true
	case analyst:
		return r.SeesAddresses() && r.Changes()
	case admin:
		return r.Administers()
	}
	return false
}

// handler answers one route; s is the session (nil for anyone).
type handler func(w http.ResponseWriter, r *http.Request, s *users.Session) error

// route is one endpoint of /ui/api/.
type route struct {
	pattern string
	need    access
	// change: an unsafe method, checked for cross-origin requests and
	// (with a session) for the CSRF token.
	change bool
	// addresses: the answer holds IP addresses (infected hosts).
	addresses bool
	// bearer: the API token may call it too, as an admin.
	bearer bool
	h      handler
}

// routeTable lists every endpoint of the dashboard's API.
func (d *Dashboard) routeTable() []route {
	return []route{
		{pattern: "POST /ui/api/login", need: anyone, change: true, h: d.login},
		{pattern: "POST /ui/api/logout", need: viewer, change: true, h: d.logout},
		{pattern: "GET /ui/api/session", need: viewer, h: d.sessionInfo},
		{pattern: "GET /ui/api/overview", need: viewer, h: d.overview},
		{pattern: "GET /ui/api/map", need: viewer, h: d.worldMap},
		{pattern: "GET /ui/api/map.svg", need: viewer, h: d.mapSVG},
		{pattern: "GET /ui/api/countries/{cc}", need: viewer, h: d.country},
		{pattern: "GET /ui/api/networks", need: viewer, h: d.networks},
		{pattern: "GET /ui/api/networks/{asn}", need: viewer, h: d.network},
		{pattern: "GET /ui/api/hosts", need: analyst, addresses: true, h: d.hosts},
		{pattern: "GET /ui/api/cases", need: viewer, h: d.cases},
		{pattern: "GET /ui/api/domains", need: viewer, h: d.domains},
		{pattern: "POST /ui/api/domains/state", need: analyst, change: true, h: d.setState},
		{pattern: "GET /ui/api/live", need: viewer, h: d.liveStream},
		{pattern: "GET /ui/api/users", need: admin, bearer: true, h: d.listUsers},
		{pattern: "POST /ui/api/users", need: admin, change: true, bearer: true, h: d.addUser},
		{pattern: "PATCH /ui/api/users/{name}", need: admin, change: true, bearer: true, h: d.updateUser},
	}
}

// crossOrigin refuses changes that a browser sends from another origin.
var crossOrigin = func() *http.CrossOriginProtection {
	c := http.NewCrossOriginProtection()
	c.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusForbidden, "cross-origin request refused")
	}))
	return c
}()

// CSRFHeader carries the session's CSRF token on every change.
const CSRFHeader = "X-CSRF-Token"

// wrap adds to a route its checks: the session, the role, the CSRF token
// and the origin.
func (d *Dashboard) wrap(rt route) http.Handler {
	var h http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.lastRequest.Store(time.Now().UnixNano())
		w.Header().Set("Cache-Control", "no-store")
		r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
		var sess *users.Session
		switch {
		case rt.bearer && d.bearer(r):
			if a := r.Header.Get(ActorHeader); a != "" {
				if err := registry.CheckActor(a); err != nil {
					writeError(w, http.StatusBadRequest, ActorHeader+": "+err.Error())
					return
				}
			}
			sess = &users.Session{User: users.User{Name: "api", Role: users.Admin}}
		case rt.need != anyone:
			s, token, err := d.session(r)
			if err != nil {
				if !errors.Is(err, users.ErrNoSession) {
					d.fail(w, r, err)
					return
				}
				writeError(w, http.StatusUnauthorized, "not logged in, or the session expired: log in again")
				return
			}
			if rt.change && !users.CheckCSRF(token, r.Header.Get(CSRFHeader)) {
				writeError(w, http.StatusForbidden, "missing or wrong CSRF token: reload the page")
				return
			}
			if !allowed(s.User.Role, rt.need) {
				writeError(w, http.StatusForbidden, fmt.Sprintf("the role %s may not do this (%s only)", s.User.Role, rt.need))
				return
			}
			sess = &s
		}
		if err := rt.h(w, r, sess); err != nil {
			d.fail(w, r, err)
		}
	})
	if rt.change {
		h = crossOrigin.Handler(h)
	}
	return h
}

// bearer reports whether r carries the API token.
func (d *Dashboard) bearer(r *http.Request) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && d.cfg.APIToken != "" && subtle.ConstantTimeCompare([]byte(got), []byte(d.cfg.APIToken)) == 1
}

// secure reports whether the cookie of r's answer is Secure.
func (d *Dashboard) secure(r *http.Request) bool { return r.TLS != nil || d.cfg.SecureCookie }

// cookieName is the session cookie's name: with the __Host- prefix when
// Secure, which binds it to this host and path /.
func (d *Dashboard) cookieName(r *http.Request) string {
	if d.secure(r) {
		return "__Host-takedown_session"
	}
	return "takedown_session"
}

// session returns r's session and its token.
func (d *Dashboard) session(r *http.Request) (users.Session, string, error) {
	c, err := r.Cookie(d.cookieName(r))
	if err != nil {
		return users.Session{}, "", users.ErrNoSession
	}
	s, err := d.cfg.Users.Session(r.Context(), c.Value)
	return s, c.Value, err
}

func (d *Dashboard) setCookie(w http.ResponseWriter, r *http.Request, token string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: d.cookieName(r), Value: token, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: d.secure(r), SameSite: http.SameSiteStrictMode,
	})
}

// loginLimiter bounds the login attempts of each client address: per user
// name it tries (burst loginBurst, then Config.LoginRate a minute) and in
// all (loginAddrFactor times that, so that one address cannot try every
// name). Keyed by the address, the failures of an attacker lock the name
// from the attacker's address only: keyed by the name alone, anyone could
// lock the admin out from outside.
type loginLimiter struct {
	perMinute int
	now       func() time.Time
	mu        sync.Mutex
	byKey     map[string]*loginBucket
}

// loginBucket is the limiter of one key and when it was last used.
type loginBucket struct {
	lim  *rate.Limiter
	used time.Time
}

const (
	// loginBurst is how many logins a name may try at once from one
	// address.
	loginBurst = 5
	// loginAddrFactor: an address may try this many times as many logins
	// in all, over its names.
	loginAddrFactor = 4
	// maxLoginKeys bounds the table: some 200 bytes an entry, 2 MB.
	maxLoginKeys = 10_000
)

func newLoginLimiter(perMinute int, now func() time.Time) *loginLimiter {
	return &loginLimiter{perMinute: perMinute, now: now, byKey: map[string]*loginBucket{}}
}

// allow takes an attempt from the buckets of addr and of addr and name.
func (l *loginLimiter) allow(addr, name string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	ok := true
	for _, k := range []struct {
		key    string
		factor int
	}{{"addr " + addr, loginAddrFactor}, {"name " + addr + " " + name, 1}} {
		b := l.byKey[k.key]
		if b == nil {
			l.makeRoom(now)
			every := time.Minute / time.Duration(l.perMinute*k.factor)
			b = &loginBucket{lim: rate.NewLimiter(rate.Every(every), loginBurst*k.factor)}
			l.byKey[k.key] = b
		}
		b.used = now
		if !b.lim.AllowN(now, 1) {
			ok = false
		}
	}
	return ok
}

// makeRoom keeps the table under maxLoginKeys: it drops the buckets that
// have filled up again (as good as new), then, under a flood of addresses,
// the least recently used half. l.mu is held.
func (l *loginLimiter) makeRoom(now time.Time) {
	if len(l.byKey) < maxLoginKeys {
		return
	}
	for k, b := range l.byKey {
		if b.lim.TokensAt(now) >= float64(b.lim.Burst()) {
			delete(l.byKey, k)
		}
	}
	if len(l.byKey) < maxLoginKeys*3/4 {
		return
	}
	type keyUse struct {
		key  string
		used time.Time
	}
	all := make([]keyUse, 0, len(l.byKey))
	for k, b := range l.byKey {
		all = append(all, keyUse{k, b.used})
	}
	slices.SortFunc(all, func(a, b keyUse) int { return a.used.Compare(b.used) })
	for _, ku := range all[:len(all)/2] {
		delete(l.byKey, ku.key)
	}
}

// clientAddr is the address of r's client (the connection's: a proxy's
// headers are not trusted).
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// sessionView is what the page knows of its session.
type sessionView struct {
	User    string     `json:"user"`
	Role    users.Role `json:"role"`
	CSRF    string     `json:"csrf"`
	Expires time.Time  `json:"expires"`
	// What the role may do, for the page to show or hide controls; the
	// server checks again on every request.
	SeesAddresses bool `json:"sees_addresses"`
	Changes       bool `json:"changes"`
	Administers   bool `json:"administers"`
}

func viewOf(s users.Session) sessionView {
	r := s.User.Role
	return sessionView{User: s.User.Name, Role: r, CSRF: s.CSRF, Expires: s.Expires,
		SeesAddresses: r.SeesAddresses(), Changes: r.Changes(), Administers: r.Administers()}
}

type loginRequest struct {
	Name     string `json:"name"`
	Password string `json:"password"`
}

func (d *Dashboard) login(w http.ResponseWriter, r *http.Request, _ *users.Session) error {
	var req loginRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	name := strings.ToLower(strings.TrimSpace(req.Name))
	if !d.limiter.allow(clientAddr(r), name) {
		w.Header().Set("Retry-After", "60")
		writeError(w, http.StatusTooManyRequests, "too many login attempts: wait a minute")
		d.log.Warn("login rate limited", "user", name)
		return nil
	}
	u, err := d.cfg.Users.Authenticate(r.Context(), name, []byte(req.Password))
	if errors.Is(err, users.ErrBadCredentials) {
		d.log.Warn("login failed", "user", name)
		writeError(w, http.StatusUnauthorized, "wrong user name or password")
		return nil
	}
	if err != nil {
		return err
	}
	token, s, err := d.cfg.Users.CreateSession(r.Context(), u.Name)
	if err != nil {
		return err
	}
	d.setCookie(w, r, token, int(time.Until(s.Expires).Seconds()))
	d.log.Info("login", "user", u.Name, "role", u.Role)
	writeJSON(w, r, http.StatusOK, viewOf(s))
	return nil
}

func (d *Dashboard) logout(w http.ResponseWriter, r *http.Request, s *users.Session) error {
	if c, err := r.Cookie(d.cookieName(r)); err == nil {
		if err := d.cfg.Users.EndSession(r.Context(), c.Value); err != nil {
			return err
		}
	}
	d.live.endWhere(func(st *stream) bool { return st.sess == s.CSRF })
	d.setCookie(w, r, "", -1)
	writeJSON(w, r, http.StatusOK, map[string]string{"status": "logged out"})
	return nil
}

func (d *Dashboard) sessionInfo(w http.ResponseWriter, r *http.Request, s *users.Session) error {
	writeJSON(w, r, http.StatusOK, viewOf(*s))
	return nil
}

// The users, for admins (and the API token).

func (d *Dashboard) listUsers(w http.ResponseWriter, r *http.Request, _ *users.Session) error {
	list, err := d.cfg.Users.List(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, map[string]any{"users": list})
	return nil
}

// ActorHeader names, on a call with the API token, who acts (the CLI's
// --actor), as on the JSON API.
const ActorHeader = "X-Takedown-Actor"

// actor is who makes the change of r: the user of a session, "ui:NAME";
// on a call with the API token, the name in ActorHeader ("api" without
// one).
func actor(r *http.Request, s *users.Session) registry.Change {
	if s.User.Name == "api" && s.Created.IsZero() {
		if a := strings.TrimSpace(r.Header.Get(ActorHeader)); a != "" {
			return registry.Change{Actor: a}
		}
		return registry.Change{Actor: "api"}
	}
	return registry.Change{Actor: "ui:" + s.User.Name}
}

func (d *Dashboard) addUser(w http.ResponseWriter, r *http.Request, s *users.Session) error {
	var req struct {
		Name     string `json:"name"`
		Role     string `json:"role"`
		Password string `json:"password"`
	}
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	role, err := users.ParseRole(req.Role)
	if err != nil {
		return err
	}
	u, err := d.cfg.Users.Add(r.Context(), req.Name, role, []byte(req.Password))
	if err != nil {
		return err
	}
	if err := d.cfg.Registry.RecordAccess(r.Context(), actor(r, s), "user.add", "user:"+u.Name, map[string]any{"role": u.Role}); err != nil {
		d.log.Error("audit of user.add", "err", err)
	}
	d.log.Info("user added", "user", u.Name, "role", u.Role, "by", s.User.Name)
	writeJSON(w, r, http.StatusCreated, u)
	return nil
}

func (d *Dashboard) updateUser(w http.ResponseWriter, r *http.Request, s *users.Session) error {
	var req struct {
		Role     *string `json:"role"`
		Password *string `json:"password"`
		Disabled *bool   `json:"disabled"`
	}
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	var role *users.Role
	if req.Role != nil {
		ro, err := users.ParseRole(*req.Role)
		if err != nil {
			return err
		}
		role = &ro
	}
	var pw []byte
	if req.Password != nil {
		pw = []byte(*req.Password)
	}
	name := r.PathValue("name")
	u, err := d.cfg.Users.Update(r.Context(), name, role, pw, req.Disabled)
	if err != nil {
		return err
	}
	if role != nil || pw != nil || u.Disabled {
		// Update ended the user's sessions; their live streams end too.
		d.live.endWhere(func(st *stream) bool { return st.user == u.Name })
	}
	detail := map[string]any{"role": u.Role, "disabled": u.Disabled, "password_changed": pw != nil}
	if err := d.cfg.Registry.RecordAccess(r.Context(), actor(r, s), "user.update", "user:"+u.Name, detail); err != nil {
		d.log.Error("audit of user.update", "err", err)
	}
	writeJSON(w, r, http.StatusOK, u)
	return nil
}

// Errors and JSON.

type badRequest struct{ msg string }

func (e badRequest) Error() string { return e.msg }

func badf(format string, args ...any) error { return badRequest{fmt.Sprintf(format, args...)} }

func (d *Dashboard) fail(w http.ResponseWriter, r *http.Request, err error) {
	var br badRequest
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &br):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.As(err, &tooBig):
		writeError(w, http.StatusRequestEntityTooLarge, "request body too large")
	case errors.Is(err, users.ErrInvalid), errors.Is(err, registry.ErrInvalid):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, users.ErrNotFound), errors.Is(err, registry.ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, users.ErrExists), errors.Is(err, registry.ErrExists):
		writeError(w, http.StatusConflict, err.Error())
	case errors.Is(err, registry.ErrIllegalTransition):
		writeError(w, http.StatusConflict, err.Error())
	case r.Context().Err() != nil:
		// The client went away.
	default:
		d.log.Error("dashboard request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, "internal error; the server's log has the details")
	}
}

func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// writeJSON writes v, gzipped when the client takes it and it is big.
func writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "encoding the answer: "+err.Error())
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Add("Vary", "Accept-Encoding")
	if len(b) > 4096 && acceptsGzip(r) {
		h.Set("Content-Encoding", "gzip")
		w.WriteHeader(status)
		zw, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
		zw.Write(b)
		zw.Close()
		return
	}
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		if enc, _, _ := strings.Cut(strings.TrimSpace(part), ";"); enc == "gzip" {
			return true
		}
	}
	return false
}

// decodeBody decodes a JSON body strictly.
func decodeBody(r *http.Request, v any) error {
	err := jsonbody.Decode(r.Body, v)
	if bad, ok := errors.AsType[*jsonbody.Error](err); ok {
		return badf("%s", bad.Msg)
	}
	return err
}
