package store_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"switchyard/internal/auth"
	"switchyard/internal/errs"
	"switchyard/internal/gateway"
	"switchyard/internal/keyring"
	"switchyard/internal/store"
	"switchyard/internal/store/sqlite"
	"switchyard/internal/vault"
)

// services are the domain services that write sealed values, over one ring.
type services struct {
	auth     *auth.Service
	gateways *gateway.Service
	vault    *vault.Service
}

func newServices(st *store.Store, ring *keyring.Ring) services {
	keys := keyring.NewHolder(ring)
	g := gateway.NewService(st, keys, time.Now)
	return services{auth: auth.NewService(st, time.Now), gateways: g, vault: vault.NewService(st, g, keys, time.Now)}
}

func openStore(t *testing.T) (*store.Store, store.Engine) {
	t.Helper()
	eng, err := sqlite.Open(t.Context(), t.TempDir(), sqlite.Options{GroupCommit: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	return store.New(eng), eng
}

// ringOf builds a ring from entries; ringOf(a, b) holds both.
func ringOf(t *testing.T, entries ...string) *keyring.Ring {
	t.Helper()
	r, err := keyring.ParseMaterial(strings.Join(entries, "\n"))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func entry(t *testing.T, v int) string {
	t.Helper()
	e, err := keyring.NewEntry(v)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

const pan = "4111111111111111"

var card = vault.CardInput{Name: "Ann Example", Number: pan, ExpMonth: "12", ExpYear: "2032", CCV: "123"}

// fixture is what seed made: every kind of sealed value.
type fixture struct {
	account   string
	gateway   string // Stripe gateway with a sealed key
	records   []string
	destroyed string // a session record whose card data is gone
	oneTime   string
	fp        string
}

const stripeKey = "sk_test_abc123"

func seed(t *testing.T, svc services) fixture {
	t.Helper()
	ctx := t.Context()
	a, _, err := svc.auth.Create(ctx, "keys")
	if err != nil {
		t.Fatal(err)
	}
	f := fixture{account: a.ID}
	g, err := svc.gateways.Create(ctx, a.ID, gateway.Input{Type: gateway.Stripe, Name: "S", Key: stripeKey})
	if err != nil {
		t.Fatal(err)
	}
	f.gateway = g.ID
	for range 5 {
		r, err := svc.vault.CreateVault(ctx, a.ID, vault.VaultInput{Card: card})
		if err != nil {
			t.Fatal(err)
		}
		f.records = append(f.records, r.Token)
		f.fp = r.Fingerprint
	}
	r, err := svc.vault.CreateVault(ctx, a.ID, vault.VaultInput{Card: card, VaultType: "session"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.vault.Archive(ctx, a.ID, r.Token); err != nil {
		t.Fatal(err)
	}
	f.destroyed = r.Token
	if f.oneTime, err = svc.vault.CreateToken(ctx, a.ID, vault.TokenInput{Type: "card", Card: card}); err != nil {
		t.Fatal(err)
	}
	return f
}

// sealedCount is what seed stores sealed: fingerprint secret, gateway key, 5 records, one-time token.
const sealedCount = 1 + 1 + 5 + 1

func rewrapAll(t *testing.T, st *store.Store, ring *keyring.Ring, limit int) int {
	t.Helper()
	total := 0
	for {
		n, err := st.RewrapBatch(t.Context(), ring, limit)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return total
		}
		total += n
	}
}

func inUse(t *testing.T, st *store.Store) map[int]int {
	t.Helper()
	m, err := st.KeyVersionsInUse(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func wantInUse(t *testing.T, st *store.Store, want map[int]int) {
	t.Helper()
	got := inUse(t, st)
	if len(got) != len(want) {
		t.Fatalf("KeyVersionsInUse = %v, want %v", got, want)
	}
	for v, n := range want {
		if got[v] != n {
			t.Fatalf("KeyVersionsInUse = %v, want %v", got, want)
		}
	}
}

// checkOpens opens every sealed value of f with ring through the services.
func checkOpens(t *testing.T, st *store.Store, ring *keyring.Ring, f fixture) {
	t.Helper()
	ctx := t.Context()
	svc := newServices(st, ring)
	g, err := svc.gateways.Get(ctx, f.account, f.gateway)
	if err != nil {
		t.Fatal(err)
	}
	if k, err := svc.gateways.Key(g); err != nil || k != stripeKey {
		t.Fatalf("gateway key = %q, %v", k, err)
	}
	for _, tok := range append(f.records, f.oneTime) {
		r, err := st.GetVaultRecord(ctx, f.account, tok)
		if err != nil {
			t.Fatal(err)
		}
		c, err := svc.vault.Open(r)
		if err != nil || c.Number != pan {
			t.Fatalf("open %s: %v", tok, err)
		}
	}
	// The fingerprint key (an account secret) opens and still makes the same fingerprint.
	r, err := svc.vault.CreateVault(ctx, f.account, vault.VaultInput{Card: card})
	if err != nil {
		t.Fatal(err)
	}
	if r.Fingerprint != f.fp {
		t.Fatalf("fingerprint changed: %s, was %s", r.Fingerprint, f.fp)
	}
}

func TestRewrapMovesEverythingToPrimary(t *testing.T) {
	st, _ := openStore(t)
	e1, e2 := entry(t, 1), entry(t, 2)
	f := seed(t, newServices(st, ringOf(t, e1)))
	wantInUse(t, st, map[int]int{1: sealedCount})
	if vs, err := st.KeyVersionsPresent(t.Context()); err != nil || len(vs) != 1 || vs[0] != 1 {
		t.Fatalf("KeyVersionsPresent = %v, %v", vs, err)
	}

	both := ringOf(t, e1, e2)
	if n := rewrapAll(t, st, both, 2); n != sealedCount {
		t.Fatalf("rewrapped %d, want %d", n, sealedCount)
	}
	wantInUse(t, st, map[int]int{2: sealedCount})
	if vs, err := st.KeyVersionsPresent(t.Context()); err != nil || len(vs) != 1 || vs[0] != 2 {
		t.Fatalf("KeyVersionsPresent = %v, %v", vs, err)
	}
	// Nothing is left under v1: the ring without it opens everything.
	checkOpens(t, st, ringOf(t, e2), f)
	// Destroyed card data stays destroyed.
	r, err := st.GetVaultRecord(t.Context(), f.account, f.destroyed)
	if err != nil || r.Sealed != nil {
		t.Fatalf("destroyed record: sealed %d bytes, %v", len(r.Sealed), err)
	}
	if n := rewrapAll(t, st, both, 2); n != 0 {
		t.Fatalf("second pass rewrapped %d", n)
	}
}

// hookEngine runs before once, ahead of the first write: a change that lands between RewrapBatch's
// read and its write.
type hookEngine struct {
	store.Engine
	once   sync.Once
	before func()
}

func (h *hookEngine) Write(ctx context.Context, fn func(store.Querier) error) error {
	h.once.Do(h.before)
	return h.Engine.Write(ctx, fn)
}

func TestRewrapSkipsConcurrentChanges(t *testing.T) {
	st, eng := openStore(t)
	e1, e2 := entry(t, 1), entry(t, 2)
	r1 := ringOf(t, e1)
	svc := newServices(st, r1)
	a, _, err := svc.auth.Create(t.Context(), "race")
	if err != nil {
		t.Fatal(err)
	}
	// Only session records, so the first write RewrapBatch makes is the vault_records batch; the
	// fingerprint secret is rewrapped beforehand.
	both := ringOf(t, e1, e2)
	var toks []string
	for range 3 {
		r, err := svc.vault.CreateVault(t.Context(), a.ID, vault.VaultInput{Card: card, VaultType: "session"})
		if err != nil {
			t.Fatal(err)
		}
		toks = append(toks, r.Token)
	}
	if n, err := st.RewrapBatch(t.Context(), both, 1); err != nil || n != 2 {
		t.Fatalf("first batch: %d, %v", n, err) // the secret and one record
	}
	var left []string
	for _, tok := range toks {
		r, _ := st.GetVaultRecord(t.Context(), a.ID, tok)
		if r.KeyVersion == 1 {
			left = append(left, tok)
		}
	}
	if len(left) != 2 {
		t.Fatalf("%d records left under v1", len(left))
	}
	// Between the read and the write, one record's card data is destroyed (archived session).
	hooked := store.New(&hookEngine{Engine: eng, before: func() {
		for _, tok := range left {
			if _, err := svc.vault.Archive(t.Context(), a.ID, tok); err != nil {
				t.Error(err)
			}
		}
	}})
	n, err := hooked.RewrapBatch(t.Context(), both, 10)
	if err != nil || n != 0 {
		t.Fatalf("rewrapped %d, %v; want 0 (the rows changed)", n, err)
	}
	for _, tok := range left {
		r, _ := st.GetVaultRecord(t.Context(), a.ID, tok)
		if r.Sealed != nil {
			t.Fatalf("%s: destroyed card data came back", tok)
		}
	}
	wantInUse(t, st, map[int]int{2: 2})
}

func TestRewrapRefusesTamperedRow(t *testing.T) {
	st, eng := openStore(t)
	e1, e2 := entry(t, 1), entry(t, 2)
	f := seed(t, newServices(st, ringOf(t, e1)))
	// Copy one record's sealed card over another's: its AAD no longer matches.
	if err := eng.Write(t.Context(), func(q store.Querier) error {
		_, err := q.ExecContext(t.Context(), `UPDATE vault_records SET sealed = (SELECT sealed FROM vault_records WHERE token = $1) WHERE token = $2`, f.records[0], f.records[1])
		return err
	}); err != nil {
		t.Fatal(err)
	}
	_, err := st.RewrapBatch(t.Context(), ringOf(t, e1, e2), 100)
	if err == nil || !strings.Contains(err.Error(), "token="+f.records[1]) || !strings.Contains(err.Error(), keyring.ErrOpen.Error()) {
		t.Fatalf("err = %v", err)
	}
}

func TestRetireKeyVersion(t *testing.T) {
	st, _ := openStore(t)
	e1, e2 := entry(t, 1), entry(t, 2)
	seed(t, newServices(st, ringOf(t, e1)))
	err := st.RetireKeyVersion(t.Context(), 1)
	if errs.KindOf(err) != errs.Unfulfilled || !strings.Contains(err.Error(), "8 stored values still use it") {
		t.Fatalf("retire in use: %v", err)
	}
	if vs, err := st.RetiredKeyVersions(t.Context()); err != nil || len(vs) != 0 {
		t.Fatalf("retired = %v, %v", vs, err)
	}
	rewrapAll(t, st, ringOf(t, e1, e2), 500)
	for range 2 { // a second retire is a no-op
		if err := st.RetireKeyVersion(t.Context(), 1); err != nil {
			t.Fatal(err)
		}
	}
	if vs, err := st.RetiredKeyVersions(t.Context()); err != nil || len(vs) != 1 || vs[0] != 1 {
		t.Fatalf("retired = %v, %v", vs, err)
	}
	if err := st.RetireKeyVersion(t.Context(), 2); errs.KindOf(err) != errs.Unfulfilled || !strings.Contains(err.Error(), "cannot retire v2") {
		t.Fatalf("retire v2 in use: %v", err)
	}
}

func TestSealedSamples(t *testing.T) {
	st, _ := openStore(t)
	e1 := entry(t, 1)
	r1 := ringOf(t, e1)
	seed(t, newServices(st, r1))
	rows, err := st.SealedSamples(t.Context(), 1, 3)
	if err != nil || len(rows) != 3 {
		t.Fatalf("samples = %d, %v", len(rows), err)
	}
	if rows[0].Table != "account_secrets" || rows[1].Table != "gateways" || rows[2].Table != "vault_records" {
		t.Fatalf("sample tables %s %s %s", rows[0].Table, rows[1].Table, rows[2].Table)
	}
	for _, r := range rows {
		s, err := keyring.Unmarshal(r.Sealed)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r1.Open(s, r.AAD); err != nil {
			t.Fatalf("%s %s: %v", r.Table, r.ID, err)
		}
	}
	if rows, err := st.SealedSamples(t.Context(), 2, 3); err != nil || len(rows) != 0 {
		t.Fatalf("v2 samples = %d, %v", len(rows), err)
	}
}
