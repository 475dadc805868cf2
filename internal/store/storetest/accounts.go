package storetest

import (
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"switchyard/internal/auth"
	"switchyard/internal/errs"
	"switchyard/internal/paydock"
	"switchyard/internal/store"
)

func runAccounts(t *testing.T, open Open) {
	runTable(t, open, []test{
		{"create and look up by secret hash", func(t *testing.T, s *store.Store) {
			a, sh, _ := mustAccount(t, s, "Acme")
			got, stored, err := s.AccountByKeyHash(ctx(t), auth.SecretKey, sh)
			must(t, "AccountByKeyHash", err)
			if diff := cmp.Diff(a, got); diff != "" {
				t.Errorf("account (-want +got):\n%s", diff)
			}
			if stored != sh {
				t.Errorf("stored hash = %q, want %q", stored, sh)
			}
		}},
		{"look up by public hash", func(t *testing.T, s *store.Store) {
			a, _, ph := mustAccount(t, s, "Acme")
			mustAccount(t, s, "Other")
			got, stored, err := s.AccountByKeyHash(ctx(t), auth.PublicKey, ph)
			must(t, "AccountByKeyHash", err)
			if diff := cmp.Diff(a, got); diff != "" {
				t.Errorf("account (-want +got):\n%s", diff)
			}
			if stored != ph {
				t.Errorf("stored hash = %q, want %q", stored, ph)
			}
		}},
		{"unknown hash is NotFound", func(t *testing.T, s *store.Store) {
			mustAccount(t, s, "Acme")
			sh, ph := hashes()
			_, _, err := s.AccountByKeyHash(ctx(t), auth.SecretKey, sh)
			wantKind(t, "secret", err, errs.NotFound)
			_, _, err = s.AccountByKeyHash(ctx(t), auth.PublicKey, ph)
			wantKind(t, "public", err, errs.NotFound)
		}},
		{"a hash matches only its own kind", func(t *testing.T, s *store.Store) {
			_, sh, ph := mustAccount(t, s, "Acme")
			_, _, err := s.AccountByKeyHash(ctx(t), auth.PublicKey, sh)
			wantKind(t, "secret hash as public key", err, errs.NotFound)
			_, _, err = s.AccountByKeyHash(ctx(t), auth.SecretKey, ph)
			wantKind(t, "public hash as secret key", err, errs.NotFound)
		}},
		{"duplicate hash rejected", func(t *testing.T, s *store.Store) {
			a, sh, ph := mustAccount(t, s, "Acme")
			sh2, ph2 := hashes()
			for _, c := range []struct {
				what   string
				id     string
				sh, ph string
			}{
				{"same secret hash", paydock.NewID(), sh, ph2},
				{"same public hash", paydock.NewID(), sh2, ph},
				{"same id", a.ID, sh2, ph2},
			} {
				err := s.CreateAccount(ctx(t), auth.Account{ID: c.id, Name: "Dup", CreatedAt: now()}, c.sh, c.ph)
				if err == nil {
					t.Fatalf("%s: CreateAccount succeeded", c.what)
				}
				if !s.Engine().IsUnique(err) {
					t.Errorf("%s: IsUnique(%v) = false", c.what, err)
				}
			}
			n, err := s.CountAccounts(ctx(t))
			must(t, "CountAccounts", err)
			if n != 1 {
				t.Errorf("count = %d after rejected duplicates, want 1", n)
			}
			got, _, err := s.AccountByKeyHash(ctx(t), auth.SecretKey, sh)
			must(t, "AccountByKeyHash", err)
			if got.Name != "Acme" {
				t.Errorf("account changed by rejected duplicate: %+v", got)
			}
		}},
		{"count", func(t *testing.T, s *store.Store) {
			n, err := s.CountAccounts(ctx(t))
			must(t, "CountAccounts", err)
			if n != 0 {
				t.Fatalf("empty store: count = %d", n)
			}
			const workers = 8
			var wg sync.WaitGroup
			for i := range workers {
				wg.Go(func() {
					sh, ph := hashes()
					a := auth.Account{ID: paydock.NewID(), Name: seq("acct", i), CreatedAt: now()}
					if err := s.CreateAccount(ctx(t), a, sh, ph); err != nil {
						t.Errorf("CreateAccount: %v", err)
					}
				})
			}
			wg.Wait()
			n, err = s.CountAccounts(ctx(t))
			must(t, "CountAccounts", err)
			if n != workers {
				t.Fatalf("count = %d, want %d", n, workers)
			}
		}},
	})
}
