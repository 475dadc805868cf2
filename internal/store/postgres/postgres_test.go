package postgres_test

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"switchyard/internal/auth"
	"switchyard/internal/customer"
	"switchyard/internal/errs"
	"switchyard/internal/gateway"
	"switchyard/internal/page"
	"switchyard/internal/paydock"
	"switchyard/internal/pgtest"
	"switchyard/internal/store"
	"switchyard/internal/store/postgres"
	"switchyard/internal/store/sqlite"
	"switchyard/internal/store/storetest"
	"switchyard/internal/vault"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) *store.Store {
		return store.New(openEngine(t, pgtest.NewDatabase(t), postgres.Options{MaxConns: pgtest.PoolSize}))
	})
}

func openEngine(t *testing.T, url string, opts postgres.Options) *postgres.Engine {
	t.Helper()
	e, err := postgres.Open(context.Background(), url, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return e
}

func now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

func mustAccount(t *testing.T, s *store.Store) string {
	t.Helper()
	k := auth.NewKeys()
	a := auth.Account{ID: paydock.NewID(), Name: "Acme", CreatedAt: now()}
	if err := s.CreateAccount(t.Context(), a, auth.Hash(k.Secret), auth.Hash(k.Public)); err != nil {
		t.Fatalf("CreateAccount: %v", err)
	}
	return a.ID
}

// Nodes starting together on an empty database apply each migration once.
func TestMigrationsOnceAcrossNodes(t *testing.T) {
	url := pgtest.NewEmptyDatabase(t)
	const nodes = 6
	var wg sync.WaitGroup
	engines := make([]*postgres.Engine, nodes)
	for i := range nodes {
		wg.Go(func() {
			e, err := postgres.Open(t.Context(), url, postgres.Options{MaxConns: 2})
			if err != nil {
				t.Errorf("node %d: Open: %v", i, err)
				return
			}
			engines[i] = e
		})
	}
	wg.Wait()
	for _, e := range engines {
		if e != nil {
			defer e.Close()
		}
	}
	if t.Failed() {
		return
	}
	rows, err := engines[0].Reader().QueryContext(t.Context(), `SELECT version, count(*) FROM schema_migrations GROUP BY version ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var versions []int
	for rows.Next() {
		var v, n int
		if err := rows.Scan(&v, &n); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Errorf("version %d recorded %d times", v, n)
		}
		versions = append(versions, v)
	}
	if len(versions) < 4 || versions[0] != 1 || versions[len(versions)-1] != len(versions) {
		t.Errorf("versions = %v, want 1..N with N ≥ 4", versions)
	}
	// Opening again changes nothing.
	openEngine(t, url, postgres.Options{MaxConns: 1})
}

// Read-modify-write transactions racing on one row all land: the losers of
// each serialization conflict are re-run by RunTx.
func TestRunTxRetriesSerializationFailures(t *testing.T) {
	e := openEngine(t, pgtest.NewDatabase(t), postgres.Options{MaxConns: 8, MaxAttempts: 100})
	ctx := t.Context()
	if _, err := e.Reader().ExecContext(ctx, `CREATE TABLE counter (id INTEGER PRIMARY KEY, v BIGINT NOT NULL); INSERT INTO counter VALUES (1, 0)`); err != nil {
		t.Fatal(err)
	}
	const workers, each = 8, 10
	var runs atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				err := e.Write(ctx, func(q store.Querier) error {
					runs.Add(1)
					var v int64
					if err := q.QueryRowContext(ctx, `SELECT v FROM counter WHERE id = 1`).Scan(&v); err != nil {
						return err
					}
					_, err := q.ExecContext(ctx, `UPDATE counter SET v = $1 WHERE id = 1`, v+1)
					return err
				})
				if err != nil {
					t.Errorf("Write: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	var v int64
	if err := e.Reader().QueryRowContext(ctx, `SELECT v FROM counter WHERE id = 1`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	if v != workers*each {
		t.Errorf("counter = %d, want %d", v, workers*each)
	}
	t.Logf("%d transactions took %d runs", workers*each, runs.Load())
}

// After MaxAttempts the conflict is returned, not retried for ever.
func TestRunTxGivesUp(t *testing.T) {
	e := openEngine(t, pgtest.NewDatabase(t), postgres.Options{MaxConns: 4, MaxAttempts: 3})
	ctx := t.Context()
	var runs int
	err := e.Write(ctx, func(q store.Querier) error {
		runs++
		_, err := q.ExecContext(ctx, `DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END $$`)
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "40001") {
		t.Fatalf("err = %v, want the 40001 failure", err)
	}
	if runs != 3 {
		t.Errorf("runs = %d, want 3", runs)
	}
}

// A caller that goes away mid-transaction gets its cancellation back (the
// store answers 503), not a 500: neither for a transaction database/sql
// rolled back under it nor for a conflict it no longer retries. Nothing is
// written.
func TestRunTxCancelledCaller(t *testing.T) {
	e := openEngine(t, pgtest.NewDatabase(t), postgres.Options{MaxConns: 4, MaxAttempts: 5})
	if _, err := e.Reader().ExecContext(t.Context(), `CREATE TABLE notes (v TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		fn   func(ctx context.Context, cancel context.CancelFunc, q store.Querier) error
	}{
		// The caller leaves after the work: database/sql rolls the
		// transaction back and Commit reports ErrTxDone.
		{"cancelled before commit", func(ctx context.Context, cancel context.CancelFunc, q store.Querier) error {
			if _, err := q.ExecContext(ctx, `INSERT INTO notes VALUES ('kept?')`); err != nil {
				return err
			}
			cancel()
			time.Sleep(50 * time.Millisecond) // database/sql rolls back on its own goroutine
			return nil
		}},
		// The caller leaves while its transaction loses a conflict.
		{"conflict after cancel", func(ctx context.Context, cancel context.CancelFunc, q store.Querier) error {
			if _, err := q.ExecContext(ctx, `INSERT INTO notes VALUES ('kept?')`); err != nil {
				return err
			}
			_, err := q.ExecContext(ctx, `DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END $$`)
			cancel()
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			err := e.Write(ctx, func(q store.Querier) error { return tc.fn(ctx, cancel, q) })
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want context.Canceled", err)
			}
			var n int
			if err := e.Reader().QueryRowContext(t.Context(), `SELECT count(*) FROM notes`).Scan(&n); err != nil || n != 0 {
				t.Fatalf("notes = %d (%v), want nothing written", n, err)
			}
		})
	}
}

func TestPanicInWriteBecomesError(t *testing.T) {
	e := openEngine(t, pgtest.NewDatabase(t), postgres.Options{MaxConns: 1})
	err := e.Write(t.Context(), func(q store.Querier) error { panic("boom") })
	if err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("err = %v", err)
	}
	// The only connection went back to the pool.
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := e.Write(ctx, func(q store.Querier) error { return nil }); err != nil {
		t.Fatalf("next Write: %v", err)
	}
}

// twoNodes opens two engines (two pools, as two server processes would)
// on one fresh database.
func twoNodes(t *testing.T) (*store.Store, *store.Store) {
	url := pgtest.NewDatabase(t)
	a := store.New(openEngine(t, url, postgres.Options{MaxConns: 8}))
	b := store.New(openEngine(t, url, postgres.Options{MaxConns: 8}))
	return a, b
}

func oneTimeToken(t *testing.T, s *store.Store, account string) string {
	t.Helper()
	n := now()
	r := &vault.Record{Token: paydock.NewID(), AccountID: account, Kind: vault.OneTime, Status: vault.Active,
		CardName: "A Person", Scheme: "visa", BIN: "424242", Last4: "4242", ExpMonth: 12, ExpYear: 2040,
		Sealed: []byte{1, 2, 3}, KeyVersion: 1, ExpiresAt: n.Add(vault.OneTimeTTL), CreatedAt: n, UpdatedAt: n}
	if err := s.CreateVaultRecord(t.Context(), r); err != nil {
		t.Fatalf("CreateVaultRecord: %v", err)
	}
	return r.Token
}

// A one-time token used at once through two nodes is consumed once.
func TestTwoNodesConsumeTokenOnce(t *testing.T) {
	a, b := twoNodes(t)
	account := mustAccount(t, a)
	for round := range 5 {
		tok := oneTimeToken(t, a, account)
		var wins atomic.Int32
		var wg sync.WaitGroup
		for i := range 16 {
			s := a
			if i%2 == 1 {
				s = b
			}
			wg.Go(func() {
				_, ok, err := s.ConsumeVaultRecord(t.Context(), account, tok, time.Now())
				if err != nil {
					t.Errorf("Consume: %v", err)
				}
				if ok {
					wins.Add(1)
				}
			})
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("round %d: %d consumers won, want 1", round, wins.Load())
		}
	}
}

// One idempotency key claimed at once through two nodes has one owner.
func TestTwoNodesClaimIdempotencyKeyOnce(t *testing.T) {
	a, b := twoNodes(t)
	const account = "acct0000000000000000000a"
	for round := range 5 {
		key := paydock.NewID()
		var owners atomic.Int32
		var wg sync.WaitGroup
		for i := range 16 {
			s := a
			if i%2 == 1 {
				s = b
			}
			wg.Go(func() {
				rec, err := s.ClaimIdempotencyKey(t.Context(), account, key, "fp", time.Now())
				if err != nil {
					t.Errorf("Claim: %v", err)
					return
				}
				if rec == nil {
					owners.Add(1)
				}
			})
		}
		wg.Wait()
		if owners.Load() != 1 {
			t.Fatalf("round %d: %d claims won, want 1", round, owners.Load())
		}
	}
}

// The first gateways of an account created at once through two nodes
// leave exactly one default.
func TestTwoNodesOneDefaultGateway(t *testing.T) {
	a, b := twoNodes(t)
	account := mustAccount(t, a)
	var wg sync.WaitGroup
	for i := range 8 {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() {
			n := now()
			g := &gateway.Gateway{ID: paydock.NewID(), AccountID: account, Type: "Simulator", Name: "G", Mode: "test", CreatedAt: n, UpdatedAt: n}
			if err := s.CreateGateway(t.Context(), g); err != nil {
				t.Errorf("CreateGateway: %v", err)
			}
		})
	}
	wg.Wait()
	gs, n, err := a.ListGateways(t.Context(), account, gateway.Filter{}, page.Params{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	defaults := 0
	for _, g := range gs {
		if g.Default {
			defaults++
		}
	}
	if n != 8 || defaults != 1 {
		t.Fatalf("%d gateways, %d defaults; want 8 and 1", n, defaults)
	}
}

// The customer queries of the shared store, over PostgreSQL: create,
// search with LIKE wildcards taken literally, counts, update, sources.
func TestCustomersSmoke(t *testing.T) {
	e := openEngine(t, pgtest.NewDatabase(t), postgres.Options{MaxConns: 4})
	s := store.New(e)
	ctx := t.Context()
	account := mustAccount(t, s)
	mk := func(first, company string) customer.Customer {
		n := now()
		tok := paydock.NewID()
		c := &customer.Customer{ID: paydock.NewID(), AccountID: account, Text: customer.Text{FirstName: first, CompanyName: company},
			Meta: map[string]any{"k": "v"}, CreatedAt: n, UpdatedAt: n}
		src := customer.Source{ID: paydock.NewID(), CustomerID: c.ID, AccountID: account, VaultToken: tok, Status: "active", CreatedAt: n, UpdatedAt: n}
		c.DefaultSource = src.ID
		v := &vault.Record{Token: tok, AccountID: account, Kind: vault.Permanent, Status: vault.Active, Last4: "4242",
			ExpMonth: 1, ExpYear: 2040, Sealed: []byte{9}, KeyVersion: 1, CreatedAt: n, UpdatedAt: n}
		if err := s.CreateCustomer(ctx, c, customer.NewSource{Vault: v, Source: src}); err != nil {
			t.Fatalf("CreateCustomer: %v", err)
		}
		return *c
	}
	c1 := mk("Ann", "100% Pure_Co")
	mk("Bob", "1000 Purely")
	mk("Cy", "Other")

	got, err := s.GetCustomer(ctx, account, c1.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Sources) != 1 || got.Sources[0].Card.Last4 != "4242" || got.Meta["k"] != "v" || got.DefaultSource != c1.DefaultSource {
		t.Fatalf("GetCustomer = %+v", got)
	}
	list := func(f customer.Filter, archived bool) (int, int) {
		cs, n, err := s.ListCustomers(ctx, account, f, page.Params{Limit: 10, Archived: archived})
		if err != nil {
			t.Fatalf("ListCustomers(%+v): %v", f, err)
		}
		return len(cs), n
	}
	if got, n := list(customer.Filter{}, false); got != 3 || n != 3 {
		t.Errorf("unfiltered: %d rows, total %d; want 3, 3", got, n)
	}
	if got, n := list(customer.Filter{Search: "0% pure_"}, false); got != 1 || n != 1 {
		t.Errorf(`search "0%% pure_": %d rows, total %d; want 1, 1`, got, n)
	}
	if _, err := s.UpdateCustomer(ctx, account, c1.ID, func(c *customer.Customer) error {
		c.Archived = true
		return nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	if got, n := list(customer.Filter{}, true); got != 1 || n != 1 {
		t.Errorf("archived: %d rows, total %d; want 1, 1", got, n)
	}
	if _, n := list(customer.Filter{}, false); n != 2 {
		t.Errorf("active total %d after archive, want 2", n)
	}
	c, err := s.ArchiveSource(ctx, account, c1.ID, c1.DefaultSource, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Sources) != 0 || c.DefaultSource != "" {
		t.Errorf("after ArchiveSource: %+v", c)
	}
	if _, err := s.ArchiveVaultRecord(ctx, account, got.Sources[0].VaultToken, time.Now()); err != nil {
		t.Fatal(err)
	}
	if n, err := s.SweepVault(ctx, time.Now()); err != nil || n != 0 {
		t.Errorf("SweepVault = %d, %v; want the archived card kept within vault.ArchiveGrace", n, err)
	}
	if n, err := s.SweepVault(ctx, time.Now().Add(vault.ArchiveGrace)); err != nil || n != 1 {
		t.Errorf("SweepVault = %d, %v; want the archived card destroyed", n, err)
	}
	inUse, err := s.KeyVersionsInUse(ctx)
	if err != nil || inUse[1] != 2 {
		t.Errorf("KeyVersionsInUse = %v, %v; want 2 under v1", inUse, err)
	}
	if err := s.RetireKeyVersion(ctx, 1); errs.KindOf(err) != errs.Unfulfilled {
		t.Errorf("RetireKeyVersion(1) = %v, want Unfulfilled", err)
	}
	if err := s.RetireKeyVersion(ctx, 7); err != nil {
		t.Errorf("RetireKeyVersion(7) = %v", err)
	}
}

func TestOpenUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	start := time.Now()
	_, err = postgres.Open(t.Context(), "postgres://u:secret@"+addr+"/db?sslmode=disable", postgres.Options{ConnectTimeout: 2 * time.Second})
	if err == nil {
		t.Fatal("Open succeeded")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Open took %v", d)
	}
	if !postgres.IsUnavailable(err) {
		t.Errorf("IsUnavailable(%v) = false", err)
	}
	if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "\n") {
		t.Errorf("error %q: want one line without the password", err)
	}
}

// While the database cannot be reached the store answers Unavailable (503),
// and it recovers by itself when the database is back.
func TestUnavailableAndRecovery(t *testing.T) {
	c := pgtest.Require(t)
	name := pgtest.Name(pgtest.NewDatabase(t))
	p := c.NewProxy(t)
	url := p.URL(name, "")
	s := store.New(openEngine(t, url, postgres.Options{MaxConns: 4, ConnectTimeout: 2 * time.Second}))
	ctx := t.Context()
	account := mustAccount(t, s)

	p.Cut()
	if _, err := s.CountAccounts(ctx); errs.KindOf(err) != errs.Unavailable {
		t.Errorf("read while cut: %v (kind %v), want Unavailable", err, errs.KindOf(err))
	}
	k := auth.NewKeys()
	err := s.CreateAccount(ctx, auth.Account{ID: paydock.NewID(), Name: "B", CreatedAt: now()}, auth.Hash(k.Secret), auth.Hash(k.Public))
	if errs.KindOf(err) != errs.Unavailable {
		t.Errorf("write while cut: %v (kind %v), want Unavailable", err, errs.KindOf(err))
	}
	if err := s.Ping(ctx); err == nil {
		t.Error("Ping while cut succeeded")
	}

	p.Restore()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := s.GetCustomer(ctx, account, paydock.NewID())
		if errs.KindOf(err) == errs.NotFound {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not recovered: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n, err := s.CountAccounts(ctx); err != nil || n != 1 {
		t.Errorf("after recovery: %d, %v", n, err)
	}
	if err := s.CreateAccount(ctx, auth.Account{ID: paydock.NewID(), Name: "C", CreatedAt: now()}, auth.Hash(k.Secret), auth.Hash(k.Public)); err != nil {
		t.Errorf("write after recovery: %v", err)
	}
}

// The list and lookup queries of the shared store can use their indexes on
// PostgreSQL (the tables are tiny, so sequential scans are switched off to
// ask whether an index path exists at all).
func TestQueriesUseIndexes(t *testing.T) {
	e := openEngine(t, pgtest.NewDatabase(t), postgres.Options{MaxConns: 2})
	s := store.New(e)
	account := mustAccount(t, s)
	cols := `id, account_id, archived, first_name, created_at`
	for _, q := range []struct {
		name, sql string
		args      []any
	}{
		{"customers default list", `SELECT ` + cols + ` FROM customers WHERE account_id = $1 AND archived = $2 ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4`, []any{account, 0, 100, 0}},
		{"customers by updated_at", `SELECT ` + cols + ` FROM customers WHERE account_id = $1 AND archived = $2 ORDER BY updated_at ASC, id ASC LIMIT $3 OFFSET $4`, []any{account, 0, 100, 0}},
		{"customers reference", `SELECT count(*) FROM customers WHERE account_id = $1 AND archived = $2 AND reference = $3`, []any{account, 0, "R1"}},
		{"customer counts", `SELECT COALESCE(SUM(n), 0) FROM customer_counts WHERE account_id = $1 AND archived = $2`, []any{account, 0}},
		{"sources of customers", `SELECT id FROM payment_sources WHERE customer_id IN ($1, $2) AND status = 'active' ORDER BY created_at`, []any{"a", "b"}},
		{"gateways list", `SELECT id FROM gateways WHERE account_id = $1 AND archived = $2 ORDER BY created_at ASC, id ASC LIMIT $3`, []any{account, 0, 10}},
		{"vault list", `SELECT token FROM vault_records WHERE account_id = $1 AND kind = $2 AND status <> 'archived' ORDER BY created_at, token LIMIT $3`, []any{account, "permanent", 10}},
		{"vault expiry sweep", `SELECT token FROM vault_records WHERE status = 'active' AND expires_at > 0 AND expires_at <= $1`, []any{int64(1)}},
		{"idempotency key", `SELECT state FROM idempotency_keys WHERE account_id = $1 AND key = $2`, []any{account, "k"}},
		{"idempotency sweep", `SELECT key FROM idempotency_keys WHERE expires_at <= $1`, []any{int64(1)}},
	} {
		var plan []string
		err := e.Write(t.Context(), func(tx store.Querier) error {
			plan = plan[:0]
			if _, err := tx.ExecContext(t.Context(), `SET LOCAL enable_seqscan = off`); err != nil {
				return err
			}
			rows, err := tx.QueryContext(t.Context(), `EXPLAIN `+q.sql, q.args...)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var line string
				if err := rows.Scan(&line); err != nil {
					return err
				}
				plan = append(plan, line)
			}
			return rows.Err()
		})
		if err != nil {
			t.Fatalf("%s: %v", q.name, err)
		}
		text := strings.Join(plan, "\n")
		if strings.Contains(text, "Seq Scan") || !strings.Contains(text, "Index") {
			t.Errorf("%s: no index used:\n%s", q.name, text)
		}
	}
}

// The PostgreSQL migrations mirror the SQLite ones: the same numbered files,
// and after them the same tables with the same columns. A migration added on
// one side only fails here.
func TestMigrationsMirrorSQLite(t *testing.T) {
	names := func(dir string) []string {
		m, err := filepath.Glob(filepath.Join(dir, "*.sql"))
		if err != nil {
			t.Fatal(err)
		}
		for i := range m {
			m[i] = filepath.Base(m[i])
		}
		return m
	}
	if lite, pg := names("../sqlite/migrations"), names("migrations"); !slices.Equal(lite, pg) {
		t.Fatalf("migration files differ:\nsqlite   %v\npostgres %v", lite, pg)
	}
	columns := func(q store.Querier, query string) map[string][]string {
		rows, err := q.QueryContext(t.Context(), query)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[string][]string{}
		for rows.Next() {
			var table, col string
			if err := rows.Scan(&table, &col); err != nil {
				t.Fatal(err)
			}
			out[table] = append(out[table], col)
		}
		for _, cols := range out {
			slices.Sort(cols)
		}
		return out
	}
	le, err := sqlite.Open(t.Context(), t.TempDir(), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer le.Close()
	lite := columns(le.Reader(), `SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'`)
	pe := openEngine(t, pgtest.NewDatabase(t), postgres.Options{MaxConns: 1})
	pg := columns(pe.Reader(), `SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public'`)
	if diff := cmp.Diff(lite, pg); diff != "" {
		t.Errorf("tables and columns (-sqlite +postgres):\n%s", diff)
	}
}

// A database that stops answering (not one that went away) gives
// Unavailable as soon as the caller's deadline passes, on reads and in
// transactions: the HTTP layer's request deadline turns a hang into 503.
func TestStalledDatabaseGivesUnavailable(t *testing.T) {
	c := pgtest.Require(t)
	name := pgtest.Name(pgtest.NewDatabase(t))
	p := c.NewProxy(t)
	s := store.New(openEngine(t, p.URL(name, ""), postgres.Options{MaxConns: 4, ConnectTimeout: 2 * time.Second}))
	account := mustAccount(t, s)
	p.Stall()
	for name, call := range map[string]func(ctx context.Context) error{
		"read": func(ctx context.Context) error { _, err := s.GetCustomer(ctx, account, paydock.NewID()); return err },
		"write": func(ctx context.Context) error {
			k := auth.NewKeys()
			return s.CreateAccount(ctx, auth.Account{ID: paydock.NewID(), Name: "S", CreatedAt: now()}, auth.Hash(k.Secret), auth.Hash(k.Public))
		},
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		start := time.Now()
		err := call(ctx)
		cancel()
		if errs.KindOf(err) != errs.Unavailable || time.Since(start) > 5*time.Second {
			t.Errorf("%s on a stalled database: %v (kind %v) after %v", name, err, errs.KindOf(err), time.Since(start))
		}
	}
	p.Resume()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := s.GetCustomer(t.Context(), account, paydock.NewID())
		if errs.KindOf(err) == errs.NotFound {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not recovered: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Concurrent updates of one customer wait for each other on its row
// instead of failing serialization: with one attempt each and as many
// connections as updates, every one succeeds and none is lost. (At
// SERIALIZABLE most of them fail at once.)
func TestConcurrentCustomerUpdatesNeedNoRetry(t *testing.T) {
	const n = 24
	e := openEngine(t, pgtest.NewDatabase(t), postgres.Options{MaxConns: n, MaxAttempts: 1})
	s := store.New(e)
	ctx := t.Context()
	account := mustAccount(t, s)
	at := now()
	tok := paydock.NewID()
	c := &customer.Customer{ID: paydock.NewID(), AccountID: account, CreatedAt: at, UpdatedAt: at}
	src := customer.Source{ID: paydock.NewID(), CustomerID: c.ID, AccountID: account, VaultToken: tok, Status: "active", CreatedAt: at, UpdatedAt: at}
	v := &vault.Record{Token: tok, AccountID: account, Kind: vault.Permanent, Status: vault.Active, Last4: "4242",
		ExpMonth: 1, ExpYear: 2040, Sealed: []byte{9}, KeyVersion: 1, CreatedAt: at, UpdatedAt: at}
	if err := s.CreateCustomer(ctx, c, customer.NewSource{Vault: v, Source: src}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errc := make(chan error, n)
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-start
			_, err := s.UpdateCustomer(ctx, account, c.ID, func(c *customer.Customer) error {
				c.Text.Description += "x"
				return nil
			}, nil)
			errc <- err
		})
	}
	close(start)
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			t.Errorf("UpdateCustomer: %v", err)
		}
	}
	got, err := s.GetCustomer(ctx, account, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Text.Description) != n {
		t.Fatalf("description %q: %d of %d updates kept", got.Text.Description, len(got.Text.Description), n)
	}
}
