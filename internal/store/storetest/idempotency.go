package storetest

import (
	"sync"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"switchyard/internal/idempotency"
	"switchyard/internal/store"
)

func claim(t *testing.T, s *store.Store, account, key, fp string, at time.Time) *idempotency.Record {
	t.Helper()
	rec, err := s.ClaimIdempotencyKey(ctx(t), account, key, fp, at)
	must(t, "ClaimIdempotencyKey", err)
	return rec
}

func wantClaimed(t *testing.T, what string, rec *idempotency.Record) {
	t.Helper()
	if rec != nil {
		t.Fatalf("%s: claim returned existing record %+v, want nil (claimed)", what, rec)
	}
}

func wantRecord(t *testing.T, what string, got *idempotency.Record, want idempotency.Record) {
	t.Helper()
	if got == nil {
		t.Fatalf("%s: claim returned nil (claimed), want existing record %+v", what, want)
	}
	if diff := gocmp.Diff(want, *got); diff != "" {
		t.Fatalf("%s: record (-want +got):\n%s", what, diff)
	}
}

func runIdempotency(t *testing.T, open Open) {
	const acct, key = "acct0000000000000000000a", "key-1"
	running := func(fp string) idempotency.Record { return idempotency.Record{Fingerprint: fp} }
	runTable(t, open, []test{
		{"claim new key", func(t *testing.T, s *store.Store) {
			wantClaimed(t, "first claim", claim(t, s, acct, key, "fp1", now()))
		}},
		{"claim again returns the running record", func(t *testing.T, s *store.Store) {
			t0 := now()
			wantClaimed(t, "first claim", claim(t, s, acct, key, "fp1", t0))
			wantRecord(t, "same fingerprint", claim(t, s, acct, key, "fp1", t0.Add(time.Second)), running("fp1"))
			// A different fingerprint gets the stored record, untouched.
			wantRecord(t, "other fingerprint", claim(t, s, acct, key, "fp2", t0.Add(2*time.Second)), running("fp1"))
			wantRecord(t, "still first", claim(t, s, acct, key, "fp1", t0.Add(3*time.Second)), running("fp1"))
		}},
		{"finish stores the response", func(t *testing.T, s *store.Store) {
			t0 := now()
			wantClaimed(t, "claim", claim(t, s, acct, key, "fp1", t0))
			body := []byte(`{"status":201,"resource":{"type":"charge"}}`)
			must(t, "Finish", s.FinishIdempotencyKey(ctx(t), acct, key, t0, 201, body))
			want := idempotency.Record{Fingerprint: "fp1", Done: true, Status: 201, Body: body}
			wantRecord(t, "after finish", claim(t, s, acct, key, "fp1", t0.Add(time.Second)), want)
			// Done records do not go stale with the lock.
			wantRecord(t, "after lock", claim(t, s, acct, key, "fp1", t0.Add(idempotency.Lock+time.Second)), want)
			// Release frees only running claims.
			must(t, "Release", s.ReleaseIdempotencyKey(ctx(t), acct, key, t0))
			wantRecord(t, "after release of done", claim(t, s, acct, key, "fp1", t0.Add(2*time.Second)), want)
		}},
		{"release frees the key", func(t *testing.T, s *store.Store) {
			t0 := now()
			wantClaimed(t, "claim", claim(t, s, acct, key, "fp1", t0))
			must(t, "Release", s.ReleaseIdempotencyKey(ctx(t), acct, key, t0))
			wantClaimed(t, "claim after release", claim(t, s, acct, key, "fp2", t0.Add(time.Second)))
			wantRecord(t, "new claim holds", claim(t, s, acct, key, "fp1", t0.Add(2*time.Second)), running("fp2"))
			// Releasing a key nobody holds is fine.
			must(t, "Release unknown", s.ReleaseIdempotencyKey(ctx(t), acct, "nobody", t0))
		}},
		// The failure a request answers may come after the write that made
		// its customer committed: releasing must not forget it, or a retry
		// would make a second one. The lock ends at once instead.
		{"release keeps a claim that recorded a customer", func(t *testing.T, s *store.Store) {
			a, _, _ := mustAccount(t, s, "acme")
			t0 := now()
			wantClaimed(t, "claim", claim(t, s, a.ID, key, "fp1", t0))
			c, src := newCustomer(a.ID, "Ann")
			cctx := idempotency.WithClaim(ctx(t), idempotency.Claim{Key: key, ClaimedAt: t0})
			must(t, "CreateCustomer", s.CreateCustomer(cctx, c, src))
			must(t, "Release", s.ReleaseIdempotencyKey(ctx(t), a.ID, key, t0))
			got := claim(t, s, a.ID, key, "fp1", t0.Add(time.Second))
			if got == nil || got.Done || got.CustomerID != c.ID {
				t.Fatalf("after release: %+v, want the claim with customer %s", got, c.ID)
			}
			out, rec, err := idempotency.Begin(ctx(t), s, a.ID, key, "fp1", t0.Add(time.Second))
			if err != nil || out != idempotency.Resume || rec.CustomerID != c.ID {
				t.Fatalf("Begin after release = %v, %+v, %v; want Resume with the customer", out, rec, err)
			}
		}},
		{"expired record taken over", func(t *testing.T, s *store.Store) {
			t0 := now()
			wantClaimed(t, "claim", claim(t, s, acct, key, "fp1", t0))
			must(t, "Finish", s.FinishIdempotencyKey(ctx(t), acct, key, t0, 200, []byte("old")))
			done := idempotency.Record{Fingerprint: "fp1", Done: true, Status: 200, Body: []byte("old")}
			wantRecord(t, "just before expiry", claim(t, s, acct, key, "fp2", t0.Add(idempotency.Retention-time.Millisecond)), done)
			t1 := t0.Add(idempotency.Retention)
			wantClaimed(t, "at expiry", claim(t, s, acct, key, "fp2", t1))
			// The taken-over record is a fresh running claim.
			wantRecord(t, "after takeover", claim(t, s, acct, key, "fp1", t1.Add(time.Second)), running("fp2"))
		}},
		{"stale running claim taken over", func(t *testing.T, s *store.Store) {
			t0 := now()
			wantClaimed(t, "claim", claim(t, s, acct, key, "fp1", t0))
			wantRecord(t, "before lock ends", claim(t, s, acct, key, "fp2", t0.Add(idempotency.Lock-time.Millisecond)), running("fp1"))
			t1 := t0.Add(idempotency.Lock)
			wantClaimed(t, "lock passed", claim(t, s, acct, key, "fp2", t1))
			// The new claim has its own lock from t1.
			wantRecord(t, "new lock holds", claim(t, s, acct, key, "fp3", t1.Add(idempotency.Lock-time.Millisecond)), running("fp2"))
			wantClaimed(t, "new lock passed", claim(t, s, acct, key, "fp3", t1.Add(idempotency.Lock)))
		}},
		{"a claim taken over is not its old owner's to finish or release", func(t *testing.T, s *store.Store) {
			t0 := now()
			wantClaimed(t, "claim", claim(t, s, acct, key, "fp1", t0))
			t1 := t0.Add(idempotency.Lock)
			wantClaimed(t, "takeover", claim(t, s, acct, key, "fp2", t1))
			// The first request ends late: it must not touch the second's claim.
			must(t, "late Finish", s.FinishIdempotencyKey(ctx(t), acct, key, t0, 201, []byte("late")))
			must(t, "late Release", s.ReleaseIdempotencyKey(ctx(t), acct, key, t0))
			wantRecord(t, "second claim holds", claim(t, s, acct, key, "fp3", t1.Add(time.Second)), running("fp2"))
			must(t, "Finish", s.FinishIdempotencyKey(ctx(t), acct, key, t1, 201, []byte("second")))
			wantRecord(t, "second's answer", claim(t, s, acct, key, "fp2", t1.Add(2*time.Second)),
				idempotency.Record{Fingerprint: "fp2", Done: true, Status: 201, Body: []byte("second")})
		}},
		{"two accounts may use the same key", func(t *testing.T, s *store.Store) {
			const other = "acct0000000000000000000b"
			t0 := now()
			wantClaimed(t, "account a", claim(t, s, acct, key, "fpA", t0))
			wantClaimed(t, "account b", claim(t, s, other, key, "fpB", t0))
			must(t, "Finish a", s.FinishIdempotencyKey(ctx(t), acct, key, t0, 201, []byte("a")))
			wantRecord(t, "b still running", claim(t, s, other, key, "fpB", t0.Add(time.Second)), running("fpB"))
			must(t, "Release b", s.ReleaseIdempotencyKey(ctx(t), other, key, t0))
			wantRecord(t, "a kept", claim(t, s, acct, key, "fpA", t0.Add(time.Second)),
				idempotency.Record{Fingerprint: "fpA", Done: true, Status: 201, Body: []byte("a")})
			wantClaimed(t, "b free", claim(t, s, other, key, "fpB2", t0.Add(time.Second)))
		}},
		{"concurrent claims: exactly one wins", func(t *testing.T, s *store.Store) {
			t0 := now()
			const n = 16
			var wg sync.WaitGroup
			var mu sync.Mutex
			won := 0
			for i := range n {
				wg.Go(func() {
					rec, err := s.ClaimIdempotencyKey(ctx(t), acct, key, seq("fp", i), t0)
					mu.Lock()
					defer mu.Unlock()
					switch {
					case err != nil:
						t.Errorf("claim %d: %v", i, err)
					case rec == nil:
						won++
					case rec.Done:
						t.Errorf("claim %d: record done", i)
					}
				})
			}
			wg.Wait()
			if won != 1 {
				t.Fatalf("%d concurrent claims won, want 1", won)
			}
		}},
		{"sweep deletes expired records", func(t *testing.T, s *store.Store) {
			t0 := now()
			// Keys claimed at t0, t0+1h, t0+2h; one finished, one running.
			for i, k := range []string{"k0", "k1", "k2"} {
				wantClaimed(t, k, claim(t, s, acct, k, "fp", t0.Add(time.Duration(i)*time.Hour)))
			}
			must(t, "Finish", s.FinishIdempotencyKey(ctx(t), acct, "k0", t0, 200, []byte("x")))
			n, err := s.SweepIdempotencyKeys(ctx(t), t0.Add(idempotency.Retention-time.Millisecond))
			must(t, "Sweep", err)
			if n != 0 {
				t.Fatalf("sweep before any expiry deleted %d", n)
			}
			n, err = s.SweepIdempotencyKeys(ctx(t), t0.Add(idempotency.Retention+time.Hour))
			must(t, "Sweep", err)
			if n != 2 {
				t.Fatalf("sweep deleted %d, want 2", n)
			}
			// k2 (claimed at t0+2h) survives, untouched.
			wantRecord(t, "k2 after sweep", claim(t, s, acct, "k2", "other", t0.Add(2*time.Hour+time.Second)), running("fp"))
			n, err = s.SweepIdempotencyKeys(ctx(t), t0.Add(idempotency.Retention+2*time.Hour))
			must(t, "Sweep", err)
			if n != 1 {
				t.Fatalf("third sweep deleted %d, want 1 (k2)", n)
			}
			// k0 is gone: a claim at a time it would still have been live
			// succeeds as new.
			wantClaimed(t, "k0 after sweep", claim(t, s, acct, "k0", "fp2", t0.Add(time.Second)))
		}},
	})
}
