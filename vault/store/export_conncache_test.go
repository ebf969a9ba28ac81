package store

// ConnListens is how many times the sealed-row cache's listener has connected and
// listened: a test that kills the listener waits for the next one.
func (s *Store) ConnListens() uint64 { return s.listens.Load() }

// StopConnListener stops the sealed-row cache's PostgreSQL listener, as a lost database
// connection would, for the tests of the cache's fail-safe.
func (s *Store) StopConnListener() {
	if s.stopListen != nil {
		s.stopListen()
		<-s.listenDone
	}
}
