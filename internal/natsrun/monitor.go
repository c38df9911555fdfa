package natsrun

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// monitorClient asks the monitoring ports; each request is short.
var monitorClient = &http.Client{Timeout: 2 * time.Second}

// get asks node i's monitoring port for path; the caller closes the body
// of a 200 answer, the others are errors.
func (c *Cluster) get(ctx context.Context, i int, path string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.MonitorURL(i)+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := monitorClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("node %d: %w", i, err)
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		return nil, fmt.Errorf("node %d: %s: %s: %s", i, path, resp.Status, body)
	}
	return resp.Body, nil
}

// healthz asks node i's /healthz: 200 when JetStream is up and, in a
// cluster, current with the meta group and with the streams it holds.
func (c *Cluster) healthz(ctx context.Context, i int) error {
	body, err := c.get(ctx, i, "/healthz")
	if err != nil {
		return err
	}
	return body.Close()
}

// getJSON decodes node i's monitoring endpoint path into v.
func (c *Cluster) getJSON(ctx context.Context, i int, path string, v any) error {
	body, err := c.get(ctx, i, path)
	if err != nil {
		return err
	}
	defer body.Close()
	if err := json.NewDecoder(io.LimitReader(body, 64<<20)).Decode(v); err != nil {
		return fmt.Errorf("node %d: %s: %w", i, path, err)
	}
	return nil
}

// jsz is the part of /jsz?accounts=true&streams=true that StreamLeader
// reads (the same in nats-server 2.9 and 2.15).
type jsz struct {
	Accounts []struct {
		Name    string `json:"name"`
		Streams []struct {
			Name    string `json:"name"`
			Cluster *struct {
				Leader string `json:"leader"`
			} `json:"cluster"`
		} `json:"stream_detail"`
	} `json:"account_details"`
}

// StreamLeader returns the index of the node that leads stream (of the
// account TAKEDOWN), waiting (bounded by ctx and ReadyTimeout) until a
// running node says it leads it: another node's word may be stale just
// after the leader died. With one node it is 0 once the stream exists.
func (c *Cluster) StreamLeader(ctx context.Context, stream string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.ReadyTimeout)
	defer cancel()
	path := "/jsz?accounts=true&streams=true&acc=" + url.QueryEscape(Account)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	last := fmt.Errorf("no running node")
	for {
		for i := range c.nodes {
			if !c.Running(i) {
				continue
			}
			var j jsz
			if err := c.getJSON(ctx, i, path, &j); err != nil {
				last = err
				continue
			}
			leader, found := streamLeader(j, stream)
			switch {
			case !found:
				last = fmt.Errorf("node %d does not hold stream %s", i, stream)
			case len(c.nodes) == 1:
				return 0, nil
			case leader == c.nodes[i].conf.Name:
				return i, nil
			default:
				last = fmt.Errorf("node %d names %q as the leader of %s", i, leader, stream)
			}
		}
		select {
		case <-ctx.Done():
			return -1, fmt.Errorf("natsrun: leader of stream %s: %w (last: %v)", stream, ctx.Err(), last)
		case <-tick.C:
		}
	}
}

func streamLeader(j jsz, stream string) (leader string, found bool) {
	for _, a := range j.Accounts {
		if a.Name != Account {
			continue
		}
		for _, s := range a.Streams {
			if s.Name == stream {
				if s.Cluster != nil {
					leader = s.Cluster.Leader
				}
				return leader, true
			}
		}
	}
	return "", false
}
