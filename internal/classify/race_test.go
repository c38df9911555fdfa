//go:build race

package classify

// raceEnabled: under the race detector sync.Pool drops a share of what is
// put back (on purpose), so pooled matching state is sometimes made anew.
const raceEnabled = true
