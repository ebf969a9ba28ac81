package store

// StopConnListener stops the sealed-row cache's PostgreSQL listener, as a lost database
// connection would, for the tests of the cache's fail-safe.
func (s *Store) StopConnListener() {
	if s.stopListen != nil {
		s.stopListen()
		<-s.listenDone
	}
}
