// Package chtest starts real clickhouse-server processes for tests: a
// thin testing.T wrapper around package chrun (which the demo uses too),
// so that a test gets a temporary directory, processes killed when it
// ends even if it failed, the servers' logs in its output when it failed,
// and t.Fatal instead of errors.
//
// A missing binary fails the test with how to install it; nothing is
// skipped. Tests that must hold on every ClickHouse takedown supports loop
// over Binaries: Debian 12's 18.16 (Binary), and
// $TAKEDOWN_CLICKHOUSE_SERVER_LATEST when it is set:
//
//	for name, bin := range chtest.Binaries(t) {
//		t.Run("clickhouse-"+name, func(t *testing.T) {
//			c := chtest.Start(t, chtest.Options{Shards: 2, Binary: bin})
//			conn := c.Conn(t, 0)
//			…
//		})
//	}
package chtest
