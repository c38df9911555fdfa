package chstore

// SetAfterInsert sets the hook that runs after the events of a marked
// batch are inserted and before its mark is.
func (s *Store) SetAfterInsert(f func()) {
	s.mu.Lock()
	s.afterInsert = f
	s.mu.Unlock()
}
