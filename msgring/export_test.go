package msgring

// Exported for tests in package msgring_test.
func NewRingAt[T any](capacity int, start uint64) *Ring[T] { return newRingAt[T](capacity, start) }
func NewMPSCAt[T any](capacity int, start uint64) *MPSC[T] { return newMPSCAt[T](capacity, start) }
