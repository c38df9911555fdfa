package registry

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// legal is the lifecycle written out by hand: every pair not listed is
// refused.
var legal = map[[2]State]bool{
	{StateListed, StateRestrained}:     true,
	{StateRestrained, StateSinkholed}:  true,
	{StateSinkholed, StateTransferred}: true,
	{StateListed, StateReleased}:       true,
	{StateRestrained, StateReleased}:   true,
	{StateSinkholed, StateReleased}:    true,
	{StateTransferred, StateReleased}:  true,
}

// pathTo is the legal path from listed to each state.
var pathTo = map[State][]State{
	StateListed:      nil,
	StateRestrained:  {StateRestrained},
	StateSinkholed:   {StateRestrained, StateSinkholed},
	StateTransferred: {StateRestrained, StateSinkholed, StateTransferred},
	StateReleased:    {StateReleased},
}

func TestCanTransition(t *testing.T) {
	for _, from := range allStates {
		for _, to := range allStates {
			if got, want := CanTransition(from, to), legal[[2]State{from, to}]; got != want {
				t.Errorf("CanTransition(%s, %s) = %v; want %v", from, to, got, want)
			}
		}
		var want []State
		for _, to := range allStates {
			if legal[[2]State{from, to}] {
				want = append(want, to)
			}
		}
		if got := NextStates(from); !slices.Equal(got, want) {
			t.Errorf("NextStates(%s) = %v; want %v", from, got, want)
		}
	}
	if CanTransition("", StateListed) || CanTransition(StateListed, "bogus") {
		t.Error("CanTransition accepts an unknown state")
	}
}

// TestSetStateAllPairs moves one domain per (from, to) pair into from, then
// asks for to, against the database.
func TestSetStateAllPairs(t *testing.T) {
	r, db, clk := newTestRegistry(t)
	mustCase(t, r)
	var list strings.Builder
	name := func(from, to State) string { return fmt.Sprintf("%s-to-%s.example.com", from, to) }
	for _, from := range allStates {
		for _, to := range allStates {
			fmt.Fprintln(&list, name(from, to))
		}
	}
	if _, err := r.ImportDomains(ctxBack, waledac.Name, "pairs.txt", []byte(list.String()), alice); err != nil {
		t.Fatal(err)
	}
	for _, from := range allStates {
		for _, to := range allStates {
			n := name(from, to)
			if len(pathTo[from]) > 0 {
				if _, err := r.Advance(ctxBack, []string{n}, pathTo[from], alice); err != nil {
					t.Fatalf("moving %s to %s: %v", n, from, err)
				}
			}
			clk.Advance(time.Minute)
			before := takeSnapshot(t, db)
			ds, err := r.SetState(ctxBack, []string{strings.ToUpper(n) + "."}, to, alice)
			if legal[[2]State{from, to}] {
				if err != nil {
					t.Errorf("%s → %s: %v", from, to, err)
					continue
				}
				if len(ds) != 1 || ds[0].State != to || !ds[0].StateSince.Equal(clk.Now()) {
					t.Errorf("%s → %s: got %+v", from, to, ds)
				}
				d, err := r.GetDomain(ctxBack, n)
				if err != nil || d.State != to || len(d.History) != len(pathTo[from])+2 {
					t.Errorf("%s → %s: GetDomain = %+v, %v", from, to, d, err)
				}
				continue
			}
			if !errors.Is(err, ErrIllegalTransition) {
				t.Errorf("%s → %s: err = %v; want ErrIllegalTransition", from, to, err)
				continue
			}
			msg := err.Error()
			for _, frag := range []string{"domain " + n, "from " + string(from) + " to " + string(to)} {
				if !strings.Contains(msg, frag) {
					t.Errorf("%s → %s: %q does not contain %q", from, to, msg, frag)
				}
			}
			if next := NextStates(from); len(next) > 0 && !strings.Contains(msg, "it can go to "+orList(next)) {
				t.Errorf("%s → %s: %q does not say where it can go", from, to, msg)
			}
			unchanged(t, db, before, fmt.Sprintf("refused %s → %s", from, to))
		}
	}
	// The message of the issue, word for word.
	_, err := r.SetState(ctxBack, []string{name(StateSinkholed, StateTransferred)}, StateListed, alice)
	if err == nil || !strings.HasPrefix(err.Error(), "domain sinkholed-to-transferred.example.com: cannot go from transferred to listed; from transferred it can go to released") {
		t.Errorf("message: %v", err)
	}
}

func TestSetStateAllOrNothing(t *testing.T) {
	r, db, _ := newTestRegistry(t)
	mustCase(t, r)
	if _, err := r.ImportDomains(ctxBack, waledac.Name, "", []byte("a.example.com\nb.example.com\nc.example.com\n"), alice); err != nil {
		t.Fatal(err)
	}
	if _, err := r.SetState(ctxBack, []string{"c.example.com"}, StateRestrained, alice); err != nil {
		t.Fatal(err)
	}
	before := takeSnapshot(t, db)
	// c.example.com is restrained already: the whole batch is refused.
	_, err := r.SetState(ctxBack, []string{"a.example.com", "b.example.com", "c.example.com"}, StateRestrained, alice)
	if !errors.Is(err, ErrIllegalTransition) || !strings.Contains(err.Error(), "domain c.example.com: cannot go from restrained to restrained") {
		t.Errorf("err = %v", err)
	}
	// Unknown names are named.
	_, err = r.SetState(ctxBack, []string{"a.example.com", "nope.example.com", "Nix.Example.org."}, StateRestrained, alice)
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "nope.example.com, nix.example.org") {
		t.Errorf("err = %v", err)
	}
	// Invalid names, bad state, no actor, no names.
	for _, tc := range []struct {
		names []string
		to    State
		ch    Change
	}{
		{[]string{"a.example.com", "bad_name.example.com"}, StateRestrained, alice},
		{[]string{"a.example.com"}, "seized", alice},
		{[]string{"a.example.com"}, StateRestrained, Change{Actor: "  "}},
		{nil, StateRestrained, alice},
	} {
		if _, err := r.SetState(ctxBack, tc.names, tc.to, tc.ch); !errors.Is(err, ErrInvalid) {
			t.Errorf("SetState(%v, %q, %+v) = %v; want ErrInvalid", tc.names, tc.to, tc.ch, err)
		}
	}
	unchanged(t, db, before, "refused SetState")
	// Several at once, with repeats, all or nothing.
	ds, err := r.SetState(ctxBack, []string{"a.example.com", "B.EXAMPLE.COM", "a.example.com."}, StateRestrained, alice)
	if err != nil || len(ds) != 2 || ds[0].Name != "a.example.com" || ds[1].Name != "b.example.com" {
		t.Fatalf("SetState = %+v, %v", ds, err)
	}
	// Waledac: restrained and sinkholed at once, two recorded steps.
	ds, err = r.Advance(ctxBack, []string{"a.example.com", "b.example.com", "c.example.com"}, []State{StateSinkholed, StateTransferred}, alice)
	if err != nil || len(ds) != 3 || ds[2].State != StateTransferred {
		t.Fatalf("Advance = %+v, %v", ds, err)
	}
	d, _ := r.GetDomain(ctxBack, "c.example.com")
	var got []string
	for _, h := range d.History {
		got = append(got, string(h.From)+">"+string(h.To))
	}
	if want := ">listed listed>restrained restrained>sinkholed sinkholed>transferred"; strings.Join(got, " ") != want {
		t.Errorf("history = %v; want %s", got, want)
	}
}

func TestParseHelpers(t *testing.T) {
	for in, want := range map[string]OrderType{
		"tro": OrderTRO, "TRO": OrderTRO, "temporary-restraining-order": OrderTRO, "Temporary Restraining Order": OrderTRO,
		"pi": OrderPreliminaryInjunction, "preliminary_injunction": OrderPreliminaryInjunction,
		"default-judgement": OrderDefaultJudgement, "default-judgment": OrderDefaultJudgement,
		"transfer": OrderTransfer, "transfer-of-ownership": OrderTransfer,
	} {
		if got, err := ParseOrderType(in); err != nil || got != want {
			t.Errorf("ParseOrderType(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseOrderType("subpoena"); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `"subpoena"`) ||
		!strings.Contains(err.Error(), "tro, preliminary-injunction, default-judgement or transfer") {
		t.Errorf("ParseOrderType(subpoena): %v", err)
	}
	for _, s := range allStates {
		if got, err := ParseState(strings.ToUpper(string(s))); err != nil || got != s {
			t.Errorf("ParseState(%q) = %q, %v", s, got, err)
		}
	}
	if _, err := ParseState("seized"); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `"seized"`) ||
		!strings.Contains(err.Error(), "listed, restrained, sinkholed, transferred or released") {
		t.Errorf("ParseState(seized): %v", err)
	}
	for in, want := range map[string]time.Time{
		"2010-02-22":                time.Date(2010, 2, 22, 0, 0, 0, 0, time.UTC),
		" 2010-02-22 ":              time.Date(2010, 2, 22, 0, 0, 0, 0, time.UTC),
		"2010-02-22T15:04:05Z":      time.Date(2010, 2, 22, 15, 4, 5, 0, time.UTC),
		"2010-02-22T15:04:05-05:00": time.Date(2010, 2, 22, 20, 4, 5, 0, time.UTC),
	} {
		got, err := ParseDate(in)
		if err != nil || !got.Equal(want) || got.Location() != time.UTC {
			t.Errorf("ParseDate(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "22.02.2010", "2010-02-30", "2010-2-22", "yesterday"} {
		if _, err := ParseDate(in); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), fmt.Sprintf("%q", in)) ||
			!strings.Contains(err.Error(), "YYYY-MM-DD") {
			t.Errorf("ParseDate(%q): %v", in, err)
		}
	}
}
