package evidence

// HashEvents is hashEvents, for the benchmarks.
var HashEvents = hashEvents
