// Package storetest is the behavioural conformance suite of store.Store:
// every engine (store/sqlite, store/postgres) runs it over a fresh database.
package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"switchyard/internal/auth"
	"switchyard/internal/errs"
	"switchyard/internal/paydock"
	"switchyard/internal/store"
)

// Open returns a fresh, empty, migrated store; it arranges its own cleanup.
type Open func(t *testing.T) *store.Store

// Run runs the whole suite. Each subtest opens its own store.
func Run(t *testing.T, open Open) {
	t.Run("accounts", func(t *testing.T) { runAccounts(t, open) })
	t.Run("gateways", func(t *testing.T) { runGateways(t, open) })
	t.Run("idempotency", func(t *testing.T) { runIdempotency(t, open) })
	t.Run("customers", func(t *testing.T) { runCustomers(t, open) })
	t.Run("charges", func(t *testing.T) { runCharges(t, open) })
}

// test is one named case of a table.
type test struct {
	name string
	fn   func(t *testing.T, s *store.Store)
}

func runTable(t *testing.T, open Open, tests []test) {
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open(t))
		})
	}
}

// now is a real time truncated to what the store keeps (milliseconds).
func now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

func ctx(t *testing.T) context.Context { return t.Context() }

// hashes returns a fresh secret and public key hash.
func hashes() (secret, public string) {
	k := auth.NewKeys()
	return auth.Hash(k.Secret), auth.Hash(k.Public)
}

// mustAccount creates an account and returns it with its key hashes.
func mustAccount(t *testing.T, s *store.Store, name string) (auth.Account, string, string) {
	t.Helper()
	a := auth.Account{ID: paydock.NewID(), Name: name, CreatedAt: now()}
	sh, ph := hashes()
	if err := s.CreateAccount(ctx(t), a, sh, ph); err != nil {
		t.Fatalf("CreateAccount(%s): %v", name, err)
	}
	return a, sh, ph
}

func wantKind(t *testing.T, what string, err error, k errs.Kind) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: err = nil, want kind %v", what, k)
	}
	if got := errs.KindOf(err); got != k {
		t.Fatalf("%s: kind = %v (%v), want %v", what, got, err, k)
	}
}

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func seq(prefix string, i int) string { return fmt.Sprintf("%s%03d", prefix, i) }
