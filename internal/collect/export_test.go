package collect

import "time"

// SetAfterCommit sets a hook that runs after each append that stored
// something, before the acknowledgements; when it reports true, Run
// returns at once, as if the process had died there.
func (c *Collector) SetAfterCommit(f func() bool) { c.afterCommit = f }

// SetBeforeFetch sets a hook that runs before each fetch.
func (c *Collector) SetBeforeFetch(f func()) { c.beforeFetch = f }

// SetPendingEvery sets how often the pending counts are read.
func (c *Collector) SetPendingEvery(d time.Duration) { c.pendingEvery = d }
