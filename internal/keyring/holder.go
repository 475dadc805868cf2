package keyring

import "sync/atomic"

// Holder holds the key set a server uses now. A running server swaps in a
// reloaded Ring when its key material gains a version (keys rotate on the
// embedded default), so data re-wrapped under the new version opens at
// once and new writes use it, without a restart.
type Holder struct {
	p atomic.Pointer[Ring]
}

// NewHolder returns a Holder of r.
func NewHolder(r *Ring) *Holder {
	h := &Holder{}
	h.p.Store(r)
	return h
}

// Ring returns the current key set.
func (h *Holder) Ring() *Ring { return h.p.Load() }

// Store makes r the current key set.
func (h *Holder) Store(r *Ring) { h.p.Store(r) }

// Seal seals under the current primary version.
func (h *Holder) Seal(plaintext, aad []byte) (Sealed, error) { return h.Ring().Seal(plaintext, aad) }

// Open opens with the current key set.
func (h *Holder) Open(s Sealed, aad []byte) ([]byte, error) { return h.Ring().Open(s, aad) }
