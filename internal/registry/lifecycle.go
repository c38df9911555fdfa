package registry

import (
	"fmt"
	"strings"
	"time"
)

// allStates lists the lifecycle states in order.
var allStates = []State{StateListed, StateRestrained, StateSinkholed, StateTransferred, StateReleased}

// allOrderTypes lists the order types in the order a case usually meets them.
var allOrderTypes = []OrderType{OrderTRO, OrderPreliminaryInjunction, OrderDefaultJudgement, OrderTransfer}

// next holds the forward step of each state; release is allowed from every
// state but released.
var next = map[State]State{
	StateListed:     StateRestrained,
	StateRestrained: StateSinkholed,
	StateSinkholed:  StateTransferred,
}

// Valid reports whether s is one of the five lifecycle states.
func (s State) Valid() bool {
	switch s {
	case StateListed, StateRestrained, StateSinkholed, StateTransferred, StateReleased:
		return true
	}
	return false
}

// CanTransition reports whether the lifecycle allows a domain in state from
// to move to state to: one step forward (listed → restrained → sinkholed →
// transferred), or to released from any state but released. Going back,
// skipping a step and staying put are not allowed.
func CanTransition(from, to State) bool {
	if !from.Valid() || !to.Valid() || from == StateReleased {
		return false
	}
	return to == StateReleased || next[from] == to
}

// NextStates returns the states a domain in state from may move to, in
// lifecycle order; none for released.
func NextStates(from State) []State {
	var out []State
	for _, s := range allStates {
		if CanTransition(from, s) {
			out = append(out, s)
		}
	}
	return out
}

// transitionError explains why from → to is refused, for domain name.
func transitionError(name string, from, to State) error {
	return fmt.Errorf("domain %s: %w", name, transitionReason(from, to))
}

// whereNext says where a domain in state from can go.
func whereNext(from State) string {
	ns := NextStates(from)
	if len(ns) == 0 {
		return fmt.Sprintf("%s is final", from)
	}
	return fmt.Sprintf("from %s it can go to %s", from, orList(ns))
}

func transitionReason(from, to State) error {
	where := whereNext(from)
	if from == to {
		return fmt.Errorf("cannot go from %s to %s, it is %s already; %s: %w", from, to, from, where, ErrIllegalTransition)
	}
	return fmt.Errorf("cannot go from %s to %s; %s: %w", from, to, where, ErrIllegalTransition)
}

func orList[T ~string](xs []T) string {
	ss := make([]string, len(xs))
	for i, x := range xs {
		ss[i] = string(x)
	}
	switch len(ss) {
	case 0:
		return ""
	case 1:
		return ss[0]
	}
	return strings.Join(ss[:len(ss)-1], ", ") + " or " + ss[len(ss)-1]
}

// ParseState parses a lifecycle state name, ignoring case and surrounding
// space.
func ParseState(s string) (State, error) {
	st := State(strings.ToLower(strings.TrimSpace(s)))
	if st.Valid() {
		return st, nil
	}
	return "", fmt.Errorf("state %q: want one of %s: %w", s, orList(allStates), ErrInvalid)
}

// Valid reports whether t is one of the four canonical order types.
func (t OrderType) Valid() bool {
	switch t {
	case OrderTRO, OrderPreliminaryInjunction, OrderDefaultJudgement, OrderTransfer:
		return true
	}
	return false
}

// orderAliases maps the spellings people use to the order types; keys are
// lower case with spaces and underscores turned into hyphens.
var orderAliases = map[string]OrderType{
	"tro":                          OrderTRO,
	"temporary-restraining-order":  OrderTRO,
	"restraining-order":            OrderTRO,
	"preliminary-injunction":       OrderPreliminaryInjunction,
	"pi":                           OrderPreliminaryInjunction,
	"injunction":                   OrderPreliminaryInjunction,
	"default-judgement":            OrderDefaultJudgement,
	"default-judgment":             OrderDefaultJudgement,
	"default":                      OrderDefaultJudgement,
	"transfer":                     OrderTransfer,
	"transfer-of-ownership":        OrderTransfer,
	"ownership-transfer":           OrderTransfer,
	"order-transferring-ownership": OrderTransfer,
}

// ParseOrderType parses an order type: the canonical names ("tro",
// "preliminary-injunction", "default-judgement", "transfer") and friendly
// aliases such as "TRO", "temporary restraining order", "pi",
// "default-judgment" and "transfer-of-ownership"; case, spaces and
// underscores do not matter.
func ParseOrderType(s string) (OrderType, error) {
	k := strings.ToLower(strings.TrimSpace(s))
	k = strings.NewReplacer(" ", "-", "_", "-").Replace(k)
	if t, ok := orderAliases[k]; ok {
		return t, nil
	}
	return "", fmt.Errorf("order type %q: want one of %s (or an alias: TRO, temporary-restraining-order, pi, default-judgment, transfer-of-ownership): %w",
		s, orList(allOrderTypes), ErrInvalid)
}

// Description returns a readable name of the order type, e.g. "temporary
// restraining order".
func (t OrderType) Description() string {
	switch t {
	case OrderTRO:
		return "temporary restraining order"
	case OrderPreliminaryInjunction:
		return "preliminary injunction"
	case OrderDefaultJudgement:
		return "default judgement"
	case OrderTransfer:
		return "order transferring ownership"
	}
	return string(t)
}

// ParseDate parses a date as YYYY-MM-DD (UTC midnight) or an RFC 3339 time
// (converted to UTC).
func ParseDate(s string) (time.Time, error) {
	v := strings.TrimSpace(s)
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t.UTC(), nil
	}
	return time.Time{}, fmt.Errorf("date %q: want YYYY-MM-DD (e.g. 2010-02-22) or RFC 3339 (e.g. 2010-02-22T15:04:05Z): %w", s, ErrInvalid)
}
