package app_test

// The command line over PostgreSQL (--database-url): an unreachable
// database, migrate, and two nodes serving one database.

import (
	"os"
	"path/filepath"
	"strings"
	"switchyard/internal/app"
	"switchyard/internal/store"
	"switchyard/internal/store/postgres"
	"sync"
	"testing"
	"time"

	"switchyard/internal/keyring"
	"switchyard/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func pgKeyFile(t *testing.T) string {
	t.Helper()
	entry, err := keyring.NewEntry(1)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "master.key")
	if err := os.WriteFile(path, []byte(entry+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDatabaseURLUnreachable(t *testing.T) {
	addr := cliFreePort(t) // nothing listens there now
	keys := pgKeyFile(t)
	start := time.Now()
	for _, cmd := range [][]string{{"migrate"}, {"serve", "--listen", "127.0.0.1:0"}} {
		args := append(cmd, "--database-url", "postgres://sy:hunter2@"+addr+"/sy?sslmode=disable", "--master-key-file", keys)
		code, out, errOut := cliRun(t, nil, args...)
		if code != 1 {
			t.Errorf("%s: exit %d, want 1\nstdout: %s\nstderr: %s", cmd[0], code, out, errOut)
		}
		lines := cliLines(errOut)
		if len(lines) != 1 || !strings.HasPrefix(lines[0], "switchyard: open PostgreSQL store") {
			t.Errorf("%s: stderr %q, want one line naming the cause", cmd[0], errOut)
		}
		if strings.Contains(errOut, "hunter2") || strings.Contains(errOut, "panic") || out != "" {
			t.Errorf("%s: stdout %q stderr %q", cmd[0], out, errOut)
		}
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("took %v", d)
	}
}

func TestDatabaseURLNeedsMasterKey(t *testing.T) {
	code, _, errOut := cliRun(t, nil, "migrate", "--database-url", "postgres://localhost/x")
	if code != 1 || !strings.Contains(errOut, "master key") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

func TestPostgresMigrateAndTwoNodes(t *testing.T) {
	url := pgtest.NewEmptyDatabase(t)
	env := map[string]string{"SWITCHYARD_DATABASE_URL": url, "SWITCHYARD_MASTER_KEY_FILE": pgKeyFile(t)}
	for i := range 2 {
		if code, out, errOut := cliRun(t, env, "migrate", "--db-max-conns", "2"); code != 0 || out != "migrations applied\n" {
			t.Fatalf("migrate #%d: exit %d: %q %q", i, code, out, errOut)
		}
	}
	a := cliStart(t, env, "--listen", "127.0.0.1:0", "--data-dir", t.TempDir())
	lines := cliLines(a.stdout.String())
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "secret key: sk_") {
		t.Fatalf("first node:\n%s", a.stdout)
	}
	secret := strings.TrimPrefix(lines[0], "secret key: ")
	b := cliStart(t, env, "--listen", "127.0.0.1:0", "--data-dir", t.TempDir())
	if lines := cliLines(b.stdout.String()); len(lines) != 1 {
		t.Fatalf("second node made a sandbox again:\n%s", b.stdout)
	}
	// Created on one node, read on the other.
	code, m := a.call(t, secret, "POST", "/v1/gateways", map[string]any{"type": "Simulator", "name": "Two", "mode": "test"})
	if code != 201 {
		t.Fatalf("create gateway on A: %d %v", code, m)
	}
	id, _ := cliData(m)["_id"].(string)
	code, m = b.call(t, secret, "GET", "/v1/gateways/"+id, nil)
	if code != 200 || cliData(m)["name"] != "Two" {
		t.Fatalf("read gateway on B: %d %v", code, m)
	}
	if code, _ := b.call(t, "", "GET", "/healthz", nil); code != 200 {
		t.Errorf("healthz on B: %d", code)
	}
	for _, s := range []*cliServer{a, b} {
		if code := s.stop(t); code != 0 {
			t.Errorf("stop: %d\n%s", code, s.stderr)
		}
	}
}

// pgNodes opens n stores on the database db, each its own engine and
// pool: n nodes, as far as the database can tell.
func pgNodes(t *testing.T, db string, n int) []*store.Store {
	t.Helper()
	out := make([]*store.Store, n)
	for i := range out {
		eng, err := postgres.Open(t.Context(), db, postgres.Options{MaxConns: 4})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { eng.Close() })
		out[i] = store.New(eng)
	}
	return out
}

// atOnce runs fn(i) for each node index in its own goroutine, all released
// together, and waits for them.
func atOnce(n int, fn func(i int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			fn(i)
		})
	}
	close(start)
	wg.Wait()
}

// Nodes starting together on an empty database make one sandbox account
// between them, not one each (spec §11: the first start makes it).
func TestSandboxOnceAcrossNodes(t *testing.T) {
	pgtest.Require(t)
	nodes := pgNodes(t, pgtest.NewDatabase(t), 6)
	ring := keysMust(keyring.ParseMaterial(keysEntry(t, 1)))
	made := make([][]string, len(nodes))
	errs := make([]error, len(nodes))
	atOnce(len(nodes), func(i int) {
		made[i], errs[i] = app.Sandbox(t.Context(), app.NewServices(nodes[i], ring, time.Now, app.Options{}))
	})
	printed := 0
	for i := range nodes {
		if errs[i] != nil {
			t.Fatalf("node %d: %v", i, errs[i])
		}
		if len(made[i]) > 0 {
			printed++
		}
	}
	n, err := nodes[0].CountAccounts(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if printed != 1 || n != 1 {
		t.Fatalf("%d nodes printed sandbox keys and %d accounts exist, want 1 and 1", printed, n)
	}
}

// Nodes with different master keys starting together on an empty database:
// with nothing sealed yet, each passed the key check and then wrote data
// the other could not open. The store's key check value, made by the first
// and checked by every start, lets exactly one of them start.
func TestDifferentKeysStartingTogether(t *testing.T) {
	pgtest.Require(t)
	nodes := pgNodes(t, pgtest.NewDatabase(t), 4)
	rings := make([]*keyring.Ring, len(nodes))
	for i := range rings { // a key of its own for each node
		rings[i] = keysMust(keyring.ParseMaterial(keysEntry(t, 1)))
	}
	errs := make([]error, len(nodes))
	atOnce(len(nodes), func(i int) { errs[i] = app.StartKeys(t.Context(), nodes[i], rings[i]) })
	started := 0
	for i, err := range errs {
		switch {
		case err == nil:
			started++
		case !strings.Contains(err.Error(), "master keys cannot open existing data"):
			t.Errorf("node %d: %v", i, err)
		}
	}
	if started != 1 {
		t.Fatalf("%d nodes started with keys of their own, want 1: %v", started, errs)
	}
}
