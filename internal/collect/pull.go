package collect

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/takedown-project/takedown/internal/bus"
)

// puller asks the consumer for messages and receives them, on one
// subscription of its own for the life of the consumer.
//
// It is not the client library's Fetch, for two reasons. The library takes
// a message without payload whose headers carry a Status for the server's
// own status replies ("no messages", "consumer deleted"): a sensor that
// published such a message would end every fetch at it, unacknowledged,
// for ever. A delivery of the stream is told here by its reply subject
// (an acknowledgement subject, which only the server sets), whatever its
// headers. And the library makes a new subscription for each fetch, so
// that a delivery that comes after its fetch has ended is lost on the way
// (and then comes again only after AckWait); here it waits in the
// subscription for the next fetch.
type puller struct {
	nc      *nats.Conn
	sub     *nats.Subscription
	inbox   string
	subject string
}

// ackPrefix starts the reply subject of every delivery of a stream.
const ackPrefix = "$JS.ACK."

func newPuller(nc *nats.Conn, durable string) (*puller, error) {
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil, fmt.Errorf("collect: subscribing to the consumer's deliveries: %w", err)
	}
	// A fetch bounds what comes; the subscription must not drop any of it.
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		sub.Unsubscribe() //nolint:errcheck // it is not used
		return nil, err
	}
	return &puller{nc: nc, sub: sub, inbox: inbox,
		subject: "$JS.API.CONSUMER.MSG.NEXT." + bus.EventsStream + "." + durable}, nil
}

func (p *puller) close() { p.sub.Unsubscribe() } //nolint:errcheck // the connection may be closed

// errPull is wrapped by the errors of the server's replies to a pull.
var errPull = errors.New("pull request")

// fetch asks for up to n messages within expires, and hands each delivery
// to take, in the order they come, until take reports false, n have come,
// the server ends the request (no messages, expired), or expires and a
// second have passed.
func (p *puller) fetch(n int, expires time.Duration, take func(*nats.Msg) bool) error {
	req := fmt.Appendf(nil, `{"batch":%d,"expires":%d}`, n, expires.Nanoseconds())
	if err := p.nc.PublishRequest(p.subject, p.inbox, req); err != nil {
		return fmt.Errorf("collect: pull request: %w", err)
	}
	deadline := time.Now().Add(expires + time.Second)
	for got := 0; got < n; {
		wait := time.Until(deadline)
		if wait <= 0 {
			return nil
		}
		msg, err := p.sub.NextMsg(wait)
		if errors.Is(err, nats.ErrTimeout) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("collect: receiving deliveries: %w", err)
		}
		if strings.HasPrefix(msg.Reply, ackPrefix) {
			got++
			if !take(msg) {
				return nil
			}
			continue
		}
		switch code := msg.Header.Get("Status"); code {
		case "404", "408": // no messages, the request expired
			return nil
		case "100": // a heartbeat
		default:
			// 409: the consumer was deleted, its leader changed, too many
			// requests wait; or any other: the consumer is made anew.
			return fmt.Errorf("collect: %w: %s %s", errPull, code, msg.Header.Get("Description"))
		}
	}
	return nil
}
