package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"time"

	"github.com/takedown-project/takedown/internal/event"
	"github.com/takedown-project/takedown/internal/registry"
)

// Sensors (remote sinkhole nodes, the simulator's backfill) send what they
// observed to POST /v1/ingest?sensor=ID. The body is one of:
//
//   - EventsContentType: each event in takedown's binary form
//     (event.AppendBinary) preceded by its length as a uvarint — compact
//     and fast, what the Go client sends;
//   - application/x-ndjson: one IntelMQ-named JSON event per line.
//
// The whole body is checked before anything is recorded: a bad record
// rejects the request (400, naming the record), and nothing of it is kept.
// The server stamps every event with the sensor id, attributes it to its
// seized zone, classifies it and records it in the pipeline like the
// events of its own sinks. When the pipeline's spool is full the answer is
// 503 with the number of leading events that were recorded; the client
// sends the rest again later.

// EventsContentType is the media type of the binary ingest body.
const EventsContentType = "application/vnd.takedown.events"

// IngestResult is the answer to an ingest request.
type IngestResult struct {
	// Accepted is the number of leading events recorded.
	Accepted int `json:"accepted"`
	// Skipped counts accepted events that are not stored: DNS queries for
	// names the sinkhole does not serve.
	Skipped int `json:"skipped,omitempty"`
}

// ErrBusy is returned by an Ingest function when the pipeline cannot take
// more events now; the request is answered 503 and retried.
var ErrBusy = errors.New("pipeline busy: spool full")

// IngestFunc records the events of one request and returns how many
// leading events it recorded; with ErrBusy, the rest may be sent again.
type IngestFunc func(ctx context.Context, sensor string, events []event.Event) (IngestResult, error)

// maxIngestEvents caps the events of one request.
const maxIngestEvents = 200_000

var sensorID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// futureSlack is how far ahead of the server's clock an event may be: a
// sensor's clock may be off by a little, not by hours.
const futureSlack = 5 * time.Minute

func (h *Handler) ingest(w http.ResponseWriter, r *http.Request, _ registry.Change) error {
	if h.cfg.Ingest == nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", "this server does not ingest events", nil)
		return nil
	}
	sensor := r.URL.Query().Get("sensor")
	if !sensorID.MatchString(sensor) {
		return badf("sensor: %q is not 1 to 64 letters, digits, dots, dashes or underscores", sensor)
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	var events []event.Event
	switch ct := r.Header.Get("Content-Type"); ct {
	case EventsContentType:
		events, err = decodeBinaryEvents(body)
	case "application/x-ndjson", "application/jsonl":
		events, err = decodeJSONEvents(body)
	default:
		return badf("Content-Type %q is not %s or application/x-ndjson", ct, EventsContentType)
	}
	if err != nil {
		return err
	}
	latest := h.now().Add(futureSlack)
	for i := range events {
		if err := events[i].Validate(); err != nil {
			return badf("event %d: %v", i+1, err)
		}
		if events[i].Time.After(latest) {
			return badf("event %d: time %s is in the future (server time %s)", i+1,
				events[i].Time.UTC().Format(time.RFC3339), h.now().UTC().Format(time.RFC3339))
		}
	}
	res, err := h.cfg.Ingest(r.Context(), sensor, events)
	if errors.Is(err, ErrBusy) {
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, struct {
			errorBody
			IngestResult
		}{errorBody{Error: err.Error(), Kind: "busy"}, res})
		return nil
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

func decodeBinaryEvents(b []byte) ([]event.Event, error) {
	var d event.Decoder
	var out []event.Event
	for off := 0; off < len(b); {
		n, k := binary.Uvarint(b[off:])
		if k <= 0 || n == 0 || n > uint64(len(b)-off-k) {
			return nil, badf("event %d (byte %d): bad or cut length prefix", len(out)+1, off)
		}
		if len(out) == maxIngestEvents {
			return nil, badf("more than %d events in one request", maxIngestEvents)
		}
		out = append(out, event.Event{})
		if err := d.Decode(b[off+k:off+k+int(n)], &out[len(out)-1]); err != nil {
			return nil, badf("event %d (byte %d): %v", len(out), off, err)
		}
		off += k + int(n)
	}
	return out, nil
}

func decodeJSONEvents(b []byte) ([]event.Event, error) {
	jr := event.NewJSONReader(bytes.NewReader(b), "body")
	var out []event.Event
	for {
		e, err := jr.Read()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, badf("%v", err)
		}
		if len(out) == maxIngestEvents {
			return nil, badf("more than %d events in one request", maxIngestEvents)
		}
		out = append(out, e)
	}
}

// AppendIngest appends e in the framing of EventsContentType.
func AppendIngest(dst []byte, e *event.Event) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, binary.MaxVarintLen32)...)
	rec := event.AppendBinary(dst, e)
	n := len(rec) - start - binary.MaxVarintLen32
	var pre [binary.MaxVarintLen32]byte
	k := binary.PutUvarint(pre[:], uint64(n))
	// Move the record back so that it follows the prefix directly.
	copy(rec[start:], pre[:k])
	copy(rec[start+k:], rec[start+binary.MaxVarintLen32:])
	return rec[:start+k+n]
}

// Ingest sends events to the server as observations of sensor, in
// requests of at most batch events. When the server is busy it waits and
// sends the rest again, until ctx ends. It returns the totals.
func (c *Client) Ingest(ctx context.Context, sensor string, events []event.Event) (IngestResult, error) {
	const batch = 50_000
	var total IngestResult
	var buf []byte
	wait := 50 * time.Millisecond
	for len(events) > 0 {
		part := events[:min(batch, len(events))]
		buf = buf[:0]
		for i := range part {
			buf = AppendIngest(buf, &part[i])
		}
		res, busy, err := c.ingestOnce(ctx, sensor, buf)
		if err != nil {
			return total, err
		}
		total.Accepted += res.Accepted
		total.Skipped += res.Skipped
		events = events[min(res.Accepted, len(part)):]
		if !busy {
			wait = 50 * time.Millisecond
			continue
		}
		select {
		case <-ctx.Done():
			return total, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
	return total, nil
}

func (c *Client) ingestOnce(ctx context.Context, sensor string, body []byte) (IngestResult, bool, error) {
	u := c.base + "/v1/ingest?" + url.Values{"sensor": {sensor}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return IngestResult{}, false, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", EventsContentType)
	req.Header.Set("Content-Length", strconv.Itoa(len(body)))
	resp, err := c.http.Do(req)
	if err != nil {
		return IngestResult{}, false, fmt.Errorf("calling takedown server: %w", err)
	}
	defer resp.Body.Close()
	var out struct {
		errorBody
		IngestResult
	}
	if err := json.NewDecoder(bufio.NewReader(io.LimitReader(resp.Body, 1<<20))).Decode(&out); err != nil {
		return IngestResult{}, false, fmt.Errorf("ingest: server answered %s", resp.Status)
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		return out.IngestResult, false, nil
	case resp.StatusCode == http.StatusServiceUnavailable && out.Kind == "busy":
		return out.IngestResult, true, nil
	case resp.StatusCode == http.StatusUnauthorized:
		return IngestResult{}, false, fmt.Errorf("ingest: %w", ErrUnauthorized)
	default:
		return IngestResult{}, false, fmt.Errorf("ingest: %s", out.Error)
	}
}
