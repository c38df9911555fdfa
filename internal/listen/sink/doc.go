// Package sink is what every sinkhole listener does around its protocol:
// bind every configured address or none, accept within connection limits
// (in total and per source address), count and record the connections a
// limit refuses, keep the open connections, shut down with a deadline, and
// count it all in the same metrics. The HTTP/HTTPS, SMTP and TCP/UDP
// catch-all listeners (httpsink, smtpsink, rawsink) and the DNS sinkhole's
// sockets (dnssink) use it, and keep only their protocol. Each of them had
// written this lifecycle itself, four times and four ways: four shapes of
// Addrs, and a DNS accept loop that spun on accept errors (out of file
// descriptors) and counted no connection.
//
// # One package, not two
//
// The connection limits (Limits, Listener: what was package connlimit) and
// the lifecycle live together because they are one piece: the listener
// that Start binds is the one the limits wrap, Accept takes from, a refusal
// is counted and recorded on, and Shutdown closes; a sink that accepts by
// itself (HTTP's event loops, with accept4 on the raw socket) admits its
// connections against the same counts (Listener.Admit, Adopt). Apart, the
// limits would be half of the wiring that every sink copied.
//
// # Use
//
//	s.life, err = sink.New(sink.Config{Name: "smtpsink", Protocols: []string{"smtp"},
//		Limits: sink.Limits{Max: cfg.MaxConns, MaxPerIP: cfg.MaxConnsPerIP},
//		Refused: s.refused, Logger: s.log, Registerer: cfg.Registerer, Collectors: s.m.collectors})
//
//	func (s *Server) Start(ctx context.Context) error {
//		var lns []*sink.Listener
//		return s.life.Start(func(b *sink.Binder) (err error) {
//			lns, err = b.ListenAll(ctx, 0, s.cfg.Listen, lc.Listen) // or Listen, ListenPacket, Adopt
//			return err
//		}, func() {
//			for _, ln := range lns {
//				s.life.Serve(0, ln, s.serve) // a goroutine a connection; or Accept, Track, Go
//			}
//		})
//	}
//	func (s *Server) Addrs() []net.Addr { return s.life.Addrs() }
//	func (s *Server) Shutdown(ctx context.Context) error {
//		return s.life.Shutdown(ctx, sink.Stop{Wake: s.wakeSessions})
//	}
//
// Start binds through a Binder and, if any address fails, closes what it
// bound and returns the error naming the protocol and the address; then it
// runs serve, and Shutdown waits for serve to return (so a sink's own
// start-up state, its event loops say, needs no lock of its own). Every
// goroutine a sink starts goes through Go, Accept or Serve, and Shutdown
// waits for all of them: nothing is left running (the sinks' tests check it
// with goleak). Shutdown closes the sockets, runs Stop.Halt (what serves
// without them: HTTP's event loops, its HTTP/2 server), calls Stop.Wake
// every 20 ms until no connection is open (each sink wakes its own: SMTP
// sessions get "421" at their next read, the catch-all records what came so
// far, HTTP closes the idle ones and lets requests finish), forces the rest
// when the deadline passes, runs Stop.Drained, waits, and logs how long it
// took.
//
// # What every sink exposes, and counts
//
// Start(ctx), Shutdown(ctx) and Addrs() []net.Addr, the addresses in the
// order of the sink's Config (HTTP then HTTPS; TCP then UDP; for each DNS
// address its UDP then its TCP socket). Under takedown_<sink>_:
// connections_total{protocol} (accepted within the limits),
// connections_open{protocol} and connections_refused_total{protocol,limit}
// (limit total or per_ip), protocol being the events' protocol (http,
// https, smtp, tcp, dns). These replaced smtpsink's sessions_total and
// sessions_open and the listeners' refused_total; dnssink's TCP
// connections had no metric (and its refused_total, queries for names not
// served, stays what it was). The sink registers its own metrics through
// Config.Collectors, all or none with the connection metrics.
//
// # What stays in each sink
//
// The protocol, the events (a refusal too: Config.Refused gets the
// addresses, the sink fills and records the event, so that a refused bot
// shows in the store as what it tried) and the classification. The
// component of the log lines is set once, by the sink's package (Logger):
// the composition passes its logger as it is.
//
// # Cost
//
// Nothing on a request's path: the lifecycle is touched at accept and at
// close (a map insert and delete under a mutex, a counter and a gauge, as
// each sink did before), and HTTP's event loops, which accept and close
// without a goroutine, only count (Opened, Closed) and admit. The HTTP
// listener's benchmarks (BenchmarkHandler, BenchmarkLoopback) and the whole
// cost of a Connection: close request against nginx (bench/http-whole.sh)
// did not move beyond their noise when the lifecycle moved here.
package sink
