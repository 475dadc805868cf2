package app_test

// keys rotate / keys retire and the start-up key check (spec §11), driven through app.Run in-process.
// Identifiers carry a keys prefix so that they never collide with other tests of this package.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"switchyard/internal/app"
	"switchyard/internal/gateway"
	"switchyard/internal/keyring"
	"switchyard/internal/store"
	"switchyard/internal/store/sqlite"
	"switchyard/internal/vault"
)

func keysNoEnv(string) string { return "" }

// keysBuf is a goroutine-safe buffer.
type keysBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *keysBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *keysBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// keysServer is `switchyard serve` running in this process.
type keysServer struct {
	url, secret string
	stderr      *keysBuf
	cancel      context.CancelFunc
	done        chan int
}

// keysStart runs serve on dir and waits for its listening line. secret is the sandbox key from an
// earlier start ("" on the first start, which prints it).
func keysStart(t *testing.T, dir, secret string, flags ...string) *keysServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	s := &keysServer{secret: secret, stderr: &keysBuf{}, cancel: cancel, done: make(chan int, 1)}
	args := append([]string{"serve", "--listen", "127.0.0.1:0", "--data-dir", dir, "--log-level", "warn"}, flags...)
	go func() {
		code := app.Run(ctx, args, keysNoEnv, pw, s.stderr)
		pw.Close()
		s.done <- code
	}()
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		line := sc.Text()
		if k, ok := strings.CutPrefix(line, "secret key: "); ok {
			s.secret = k
		}
		if u, ok := strings.CutPrefix(line, "switchyard listening on "); ok {
			s.url = u
			break
		}
	}
	if s.url == "" {
		cancel()
		t.Fatalf("server did not start (exit %d): %s", <-s.done, s.stderr.String())
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	t.Cleanup(func() { s.stop(t) })
	return s
}

// stop shuts the server down (once) and checks it exited 0.
func (s *keysServer) stop(t *testing.T) {
	t.Helper()
	if s.cancel == nil {
		return
	}
	s.cancel()
	s.cancel = nil
	select {
	case code := <-s.done:
		if code != 0 {
			t.Errorf("serve exited %d: %s", code, s.stderr.String())
		}
	case <-time.After(40 * time.Second):
		t.Error("serve did not stop")
	}
}

var keysHTTP = &http.Client{Timeout: 30 * time.Second}

// gateway returns the sandbox gateway's id.
func (s *keysServer) gateway() string {
	req, _ := http.NewRequest("GET", s.url+"/v1/gateways", nil)
	req.Header.Set("x-user-secret-key", s.secret)
	res, err := keysHTTP.Do(req)
	if err != nil {
		return ""
	}
	defer res.Body.Close()
	var m struct {
		Resource struct {
			Data []struct {
				ID   string `json:"_id"`
				Type string `json:"type"`
			} `json:"data"`
		} `json:"resource"`
	}
	_ = json.NewDecoder(res.Body).Decode(&m)
	for _, g := range m.Resource.Data {
		if g.Type == "Simulator" {
			return g.ID
		}
	}
	return ""
}

// do sends a JSON request with the sandbox secret key and returns the status and resource.data.
func (s *keysServer) do(method, path string, body any) (int, map[string]any, error) {
	var rdr io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rdr = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.url+path, rdr)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("x-user-secret-key", s.secret)
	req.Header.Set("Content-Type", "application/json")
	res, err := keysHTTP.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	var env struct {
		Resource struct {
			Data map[string]any `json:"data"`
		} `json:"resource"`
	}
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return res.StatusCode, nil, err
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		return res.StatusCode, nil, fmt.Errorf("%s %s: %v: %s", method, path, err, raw)
	}
	if res.StatusCode >= 300 {
		return res.StatusCode, env.Resource.Data, fmt.Errorf("%s %s: %d %s", method, path, res.StatusCode, raw)
	}
	return res.StatusCode, env.Resource.Data, nil
}

const keysPAN = "4111111111111111"

// keysRecord is a vault record as the API shows it.
type keysRecord struct{ token, fingerprint, account string }

func (s *keysServer) createVault() (keysRecord, error) {
	_, d, err := s.do("POST", "/v1/vault/payment_sources", map[string]any{
		"card_name": "Ann Example", "card_number": keysPAN, "expire_month": "12", "expire_year": "2032"})
	if err != nil {
		return keysRecord{}, err
	}
	r := keysRecord{}
	r.token, _ = d["vault_token"].(string)
	r.fingerprint, _ = d["card_fingerprint"].(string)
	r.account, _ = d["company_id"].(string)
	if r.token == "" || r.fingerprint == "" || r.account == "" {
		return keysRecord{}, fmt.Errorf("vault create answered %v", d)
	}
	return r, nil
}

func (s *keysServer) mustCreateVault(t *testing.T) keysRecord {
	t.Helper()
	r, err := s.createVault()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (s *keysServer) getVault(token string) (keysRecord, error) {
	_, d, err := s.do("GET", "/v1/vault-tokens/"+token, nil)
	if err != nil {
		return keysRecord{}, err
	}
	r := keysRecord{}
	r.token, _ = d["vault_token"].(string)
	r.fingerprint, _ = d["card_fingerprint"].(string)
	if r.token != token {
		return keysRecord{}, fmt.Errorf("GET %s answered %v", token, d)
	}
	return r, nil
}

// keysRun runs one command and returns its exit code, stdout and stderr.
func keysRun(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut keysBuf
	code := app.Run(t.Context(), args, keysNoEnv, &out, &errOut)
	return code, out.String(), errOut.String()
}

// keysOpenStore opens the store of dir beside whatever else has it open.
func keysOpenStore(t *testing.T, dir string) *store.Store {
	t.Helper()
	eng, err := sqlite.Open(t.Context(), dir, sqlite.Options{GroupCommit: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	return store.New(eng)
}

func keysReadRing(t *testing.T, path string) *keyring.Ring {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r, err := keyring.ParseMaterial(string(b))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func keysEntry(t *testing.T, v int) string {
	t.Helper()
	e, err := keyring.NewEntry(v)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func keysWriteFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func keysInUse(t *testing.T, st *store.Store) map[int]int {
	t.Helper()
	m, err := st.KeyVersionsInUse(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// keysOpensAll checks that every token's sealed card opens with ring.
func keysOpensAll(t *testing.T, st *store.Store, ring *keyring.Ring, recs ...keysRecord) {
	t.Helper()
	v := vault.NewService(st, nil, keyring.NewHolder(ring), time.Now)
	for _, r := range recs {
		rec, err := st.GetVaultRecord(t.Context(), r.account, r.token)
		if err != nil {
			t.Fatalf("%s: %v", r.token, err)
		}
		c, err := v.Open(rec)
		if err != nil || c.Number != keysPAN {
			t.Fatalf("%s (v%d) does not open: %v", r.token, rec.KeyVersion, err)
		}
	}
}

const keysStripeKey = "sk_test_rotation123"

// TestKeysRotateEmbeddedDefault rotates the generated <data-dir>/master.key while a server serves.
func TestKeysRotateEmbeddedDefault(t *testing.T) {
	dir := t.TempDir()
	s := keysStart(t, dir, "")
	_, g, err := s.do("POST", "/v1/gateways", map[string]any{"type": "Stripe", "name": "Stripe", "mode": "test", "key": keysStripeKey})
	if err != nil {
		t.Fatal(err)
	}
	gwID, _ := g["_id"].(string)
	before := s.mustCreateVault(t)

	// Reads keep being served while keys rotate runs in another "process" on the same data dir.
	stop := make(chan struct{})
	var reads, failures atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := s.getVault(before.token); err != nil {
				failures.Add(1)
				firstErr.CompareAndSwap(nil, err)
			}
			reads.Add(1)
		}
	})
	time.Sleep(50 * time.Millisecond)
	code, out, errOut := keysRun(t, "keys", "rotate", "--data-dir", dir)
	time.Sleep(50 * time.Millisecond)
	close(stop)
	wg.Wait()
	if code != 0 {
		t.Fatalf("keys rotate exited %d: %s", code, errOut)
	}
	// The store's key check value, the fingerprint secret, the Stripe key and the card.
	if want := "rewrapped 4 (total 4)\nrotated 4 records to v2\n"; out != want {
		t.Fatalf("keys rotate printed %q, want %q", out, want)
	}
	if !strings.Contains(errOut, "added v2 to "+filepath.Join(dir, "master.key")) {
		t.Errorf("stderr %q", errOut)
	}
	if failures.Load() > 0 || reads.Load() == 0 {
		t.Fatalf("%d of %d reads failed during rotation: %v", failures.Load(), reads.Load(), firstErr.Load())
	}

	keyFile := filepath.Join(dir, "master.key")
	fi, err := os.Stat(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("master.key mode %v", fi.Mode().Perm())
	}
	if _, err := os.Stat(keyFile + ".new"); !os.IsNotExist(err) {
		t.Errorf("master.key.new left behind: %v", err)
	}
	ring := keysReadRing(t, keyFile)
	if got := fmt.Sprint(ring.Versions()); got != "[1 2]" {
		t.Fatalf("master.key versions %s", got)
	}
	st := keysOpenStore(t, dir)
	if m := keysInUse(t, st); len(m) != 1 || m[2] != 4 { // with the store's key check value
		t.Fatalf("KeyVersionsInUse = %v, want map[2:4]", m)
	}
	// Nothing is left under v1: the ring without it opens the card and the gateway key.
	v2only, err := keyring.ParseMaterial(strings.Split(strings.TrimSpace(string(keysMust(os.ReadFile(keyFile)))), "\n")[1])
	if err != nil {
		t.Fatal(err)
	}
	keysOpensAll(t, st, v2only, before)
	gw, err := st.GetGateway(t.Context(), before.account, gwID)
	if err != nil {
		t.Fatal(err)
	}
	if k, err := gateway.NewService(st, keyring.NewHolder(v2only), time.Now).Key(gw); err != nil || k != keysStripeKey {
		t.Fatalf("gateway key after rotation: %q, %v", k, err)
	}

	// v1 is unused now: it can be retired while the server runs; v2 cannot.
	if code, out, errOut := keysRun(t, "keys", "retire", "v1", "--data-dir", dir); code != 0 || out != "retired v1\n" {
		t.Fatalf("retire v1: %d %q %q", code, out, errOut)
	}
	if code, _, errOut := keysRun(t, "keys", "retire", "v2", "--data-dir", dir); code != 1 || !strings.Contains(errOut, "cannot retire v2: it is the primary") {
		t.Fatalf("retire v2: %d %q", code, errOut)
	}

	// Without a restart, the running server has loaded v2 (it watches master.key): it writes new
	// records under v2 and opens the re-wrapped old one (flow 3 stores its card at the gateway).
	live := s.mustCreateVault(t)
	if m := keysInUse(t, st); m[1] != 0 {
		t.Fatalf("after rotation the running server still writes under v1: %v", m)
	}
	if code, data, err := s.do("POST", "/v1/customers", map[string]any{"payment_source": map[string]any{"vault_token": before.token, "gateway_id": s.gateway()}}); err != nil || code != 201 {
		t.Fatalf("the running server cannot open a re-wrapped card: %d %v %v", code, data, err)
	}
	if live.fingerprint != before.fingerprint {
		t.Fatalf("fingerprint changed by rotation: %s, was %s", live.fingerprint, before.fingerprint)
	}

	// A restarted server reads the new key file: old and new tokens work, and the same card keeps
	// its fingerprint.
	s.stop(t)
	s = keysStart(t, dir, s.secret)
	after := s.mustCreateVault(t)
	if after.fingerprint != before.fingerprint {
		t.Fatalf("fingerprint changed by rotation: %s, was %s", after.fingerprint, before.fingerprint)
	}
	s.stop(t)
	s = keysStart(t, dir, s.secret)
	for _, r := range []keysRecord{before, after} {
		got, err := s.getVault(r.token)
		if err != nil {
			t.Fatal(err)
		}
		if got.fingerprint != before.fingerprint {
			t.Fatalf("%s: fingerprint %s", r.token, got.fingerprint)
		}
	}
	keysOpensAll(t, st, keysReadRing(t, keyFile), before, after)
}

func keysMust[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestKeysRotateUnderLoad follows the operator procedure (spec §11) with a key file: the server is
// restarted with v2 added, then keys rotate runs while clients keep creating vault records. No
// record is lost and everything ends up under v2.
func TestKeysRotateUnderLoad(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(t.TempDir(), "keys")
	e1, e2 := keysEntry(t, 1), keysEntry(t, 2)
	keysWriteFile(t, keyFile, e1+"\n")
	flags := []string{"--master-key-file", keyFile}

	const seeded = 600 // more than one batch of 500
	s := keysStart(t, dir, "", flags...)
	var mu sync.Mutex
	var recs []keysRecord
	create := func(s *keysServer, n int) error {
		for range n {
			r, err := s.createVault()
			if err != nil {
				return err
			}
			mu.Lock()
			recs = append(recs, r)
			mu.Unlock()
		}
		return nil
	}
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() {
			if err := create(s, seeded/6); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	s.stop(t)

	// Step 1: every node gets v2 and restarts; it now writes with v2.
	keysWriteFile(t, keyFile, e1+"\n"+e2+"\n")
	s = keysStart(t, dir, s.secret, flags...)

	// Step 2: keys rotate under load.
	stop := make(chan struct{})
	var loaded atomic.Int64
	var loadErr atomic.Value
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := create(s, 1); err != nil {
					loadErr.CompareAndSwap(nil, err)
					return
				}
				loaded.Add(1)
			}
		})
	}
	for loaded.Load() < 20 && loadErr.Load() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	atLoadStart := loaded.Load()
	code, out, errOut := keysRun(t, "keys", "rotate", "--data-dir", dir, "--master-key-file", keyFile)
	duringRotate := loaded.Load() - atLoadStart
	for n := loaded.Load(); loaded.Load() < n+20 && loadErr.Load() == nil; {
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if err := loadErr.Load(); err != nil {
		t.Fatalf("a vault create failed under rotation: %v", err)
	}
	if code != 0 {
		t.Fatalf("keys rotate exited %d: %s", code, errOut)
	}
	if errOut != "" {
		t.Errorf("keys rotate stderr: %q", errOut)
	}
	// The seeded cards, the fingerprint secret and the store's key check value were under v1.
	if want := fmt.Sprintf("rotated %d records to v2\n", seeded+2); !strings.HasSuffix(out, want) || !strings.HasPrefix(out, "rewrapped 502 (total 502)\n") {
		t.Fatalf("keys rotate printed %q, want … %q", out, want)
	}
	t.Logf("%d records created in total, %d while keys rotate ran", len(recs), duringRotate)

	fp := recs[0].fingerprint
	for _, r := range recs {
		got, err := s.getVault(r.token)
		if err != nil {
			t.Fatal(err)
		}
		if got.fingerprint != fp {
			t.Fatalf("%s: fingerprint %s, want %s", r.token, got.fingerprint, fp)
		}
	}
	st := keysOpenStore(t, dir)
	// The cards, the fingerprint secret and the store's key check value.
	if m := keysInUse(t, st); len(m) != 1 || m[2] != len(recs)+2 {
		t.Fatalf("KeyVersionsInUse = %v, want map[2:%d]", m, len(recs)+2)
	}
	keysOpensAll(t, st, keysMust(keyring.ParseMaterial(e2)), recs...)
}

func TestKeysRetire(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(t.TempDir(), "keys")
	e1, e2 := keysEntry(t, 1), keysEntry(t, 2)
	keysWriteFile(t, keyFile, e1+"\n")
	flags := []string{"--data-dir", dir, "--master-key-file", keyFile}
	s := keysStart(t, dir, "", flags[2:]...)
	s.mustCreateVault(t)
	s.stop(t)

	retire := func(v string) (int, string, string) {
		return keysRun(t, append([]string{"keys", "retire", v}, flags...)...)
	}
	refused := func(v, want string) {
		t.Helper()
		code, out, errOut := retire(v)
		if code != 1 || out != "" || errOut != "switchyard: "+want+"\n" {
			t.Fatalf("retire %s: exit %d, stdout %q, stderr %q; want stderr %q", v, code, out, errOut, want)
		}
	}
	refused("v1", "cannot retire v1: it is the primary master-key version (add v2, run keys rotate, then retire v1)")
	keysWriteFile(t, keyFile, e1+"\n"+e2+"\n")
	// The key check value is one of them.
	refused("v1", "cannot retire v1: 3 stored values still use it; run switchyard keys rotate first")
	refused("v2", "cannot retire v2: it is the primary master-key version (add v3, run keys rotate, then retire v2)")
	refused("v3", "cannot retire v3: the newest configured version is v2")
	for _, bad := range []string{"1", "v0", "v01", "vx", "--data-dir"} {
		if code, _, _ := retire(bad); code != 2 {
			t.Errorf("retire %q: exit %d, want 2", bad, code)
		}
	}
	if code, _, _ := keysRun(t, "keys"); code != 2 {
		t.Errorf("keys without a subcommand: exit %d", code)
	}

	if code, out, errOut := keysRun(t, append([]string{"keys", "rotate"}, flags...)...); code != 0 || out != "rewrapped 3 (total 3)\nrotated 3 records to v2\n" {
		t.Fatalf("rotate: %d %q %q", code, out, errOut)
	}
	if b := keysMust(os.ReadFile(keyFile)); string(b) != e1+"\n"+e2+"\n" {
		t.Fatal("keys rotate changed a configured key file")
	}
	if code, out, errOut := retire("v1"); code != 0 || out != "retired v1\n" || errOut != "" {
		t.Fatalf("retire v1 after rotation: %d %q %q", code, out, errOut)
	}
	if vs, err := keysOpenStore(t, dir).RetiredKeyVersions(t.Context()); err != nil || fmt.Sprint(vs) != "[1]" {
		t.Fatalf("RetiredKeyVersions = %v, %v", vs, err)
	}
	// Its line can go now: the start check passes without it.
	keysWriteFile(t, keyFile, e2+"\n")
	keysStart(t, dir, s.secret, flags[2:]...).stop(t)
}

func TestStartRefusedWhenKeysCannotOpenData(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(t.TempDir(), "keys")
	e1 := keysEntry(t, 1)
	keysWriteFile(t, keyFile, e1+"\n")
	s := keysStart(t, dir, "", "--master-key-file", keyFile)
	rec := s.mustCreateVault(t)
	s.stop(t)
	st := keysOpenStore(t, dir)
	usage := keysInUse(t, st)

	for _, tc := range []struct{ name, keys, want string }{
		{"version missing", keysEntry(t, 2), "master keys cannot open existing data: version v1 is in use but not configured"},
		{"wrong key", keysEntry(t, 1) + "\n" + keysEntry(t, 2), "master keys cannot open existing data: the configured v1 does not open data stored under v1 (wrong key?)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := filepath.Join(t.TempDir(), "keys")
			keysWriteFile(t, bad, tc.keys+"\n")
			for _, cmd := range [][]string{{"serve", "--listen", "127.0.0.1:0"}, {"keys", "rotate"}, {"migrate"}} {
				code, out, errOut := keysRun(t, append(cmd, "--data-dir", dir, "--master-key-file", bad)...)
				if code != 1 || out != "" || errOut != "switchyard: "+tc.want+"\n" {
					t.Fatalf("%s: exit %d, stdout %q, stderr %q; want exit 1 and %q", cmd[0], code, out, errOut, tc.want)
				}
			}
			if string(keysMust(os.ReadFile(bad))) != tc.keys+"\n" {
				t.Fatal("the key file was changed")
			}
		})
	}
	// A store that holds no card yet still refuses other keys: its key
	// check value was made under the first start's keys.
	fresh := t.TempDir()
	if code, out, errOut := keysRun(t, "migrate", "--data-dir", fresh, "--master-key-file", keyFile); code != 0 {
		t.Fatalf("migrate: %d %s %s", code, out, errOut)
	}
	other := filepath.Join(t.TempDir(), "keys")
	keysWriteFile(t, other, keysEntry(t, 1)+"\n")
	if code, _, errOut := keysRun(t, "migrate", "--data-dir", fresh, "--master-key-file", other); code != 1 ||
		errOut != "switchyard: master keys cannot open existing data: the configured v1 does not open data stored under v1 (wrong key?)\n" {
		t.Fatalf("other keys on a store without cards: exit %d, stderr %q", code, errOut)
	}
	// No key configured: the development key a start would generate does
	// not open the data either, and it is not left behind (a restore that
	// forgot --master-key-file must not gain a useless key beside the data).
	for _, cmd := range [][]string{{"serve", "--listen", "127.0.0.1:0"}, {"keys", "rotate"}, {"migrate"}, {"account", "create", "--name", "x"}} {
		code, out, errOut := keysRun(t, append(cmd, "--data-dir", dir)...)
		want := "switchyard: master keys cannot open existing data: the configured v1 does not open data stored under v1 (wrong key?)\n"
		if code != 1 || out != "" || errOut != want {
			t.Fatalf("%s without keys: exit %d, stdout %q, stderr %q; want exit 1 and %q", cmd[0], code, out, errOut, want)
		}
		if _, err := os.Stat(filepath.Join(dir, "master.key")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s without keys left a master.key behind: %v", cmd[0], err)
		}
	}
	// Nothing was written: the data is as it was and still opens with the right key.
	if m := keysInUse(t, st); fmt.Sprint(m) != fmt.Sprint(usage) {
		t.Fatalf("KeyVersionsInUse %v, was %v", m, usage)
	}
	keysOpensAll(t, st, keysMust(keyring.ParseMaterial(e1)), rec)
}

// Two rotations of a running server on the embedded default, the retired
// version's line removed between them (spec §11's procedure twice): the
// server reloads the file each time and keeps opening every card. It used
// to refuse the file without the retired version, then never reload again,
// so the second rotation re-wrapped everything under a key it lacked.
func TestKeysRotateTwiceOnARunningServer(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "master.key")
	s := keysStart(t, dir, "", "--log-level", "info")
	rec := s.mustCreateVault(t)
	waitReload := func(want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(s.stderr.String(), want) {
			if time.Now().After(deadline) {
				t.Fatalf("the server did not reload %q:\n%s", want, s.stderr.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if code, _, errOut := keysRun(t, "keys", "rotate", "--data-dir", dir); code != 0 {
		t.Fatalf("rotate to v2: %d %q", code, errOut)
	}
	waitReload("primary=v2")
	if code, _, errOut := keysRun(t, "keys", "retire", "v1", "--data-dir", dir); code != 0 {
		t.Fatalf("retire v1: %d %q", code, errOut)
	}
	// Remove v1's line, as §11 says after retiring it.
	var keep []string
	for _, l := range strings.Split(strings.TrimSpace(string(keysMust(os.ReadFile(keyFile)))), "\n") {
		if !strings.HasPrefix(l, "v1:") {
			keep = append(keep, l)
		}
	}
	if err := os.WriteFile(keyFile, []byte(strings.Join(keep, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The reload without v1 is taken (the log says so once more for v2).
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(s.stderr.String(), "primary=v2") < 2 {
		if strings.Contains(s.stderr.String(), "were not reloaded") || time.Now().After(deadline) {
			t.Fatalf("the server refused the key file without v1:\n%s", s.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, _, errOut := keysRun(t, "keys", "rotate", "--data-dir", dir); code != 0 {
		t.Fatalf("rotate to v3: %d %q", code, errOut)
	}
	waitReload("primary=v3")
	if got, err := s.getVault(rec.token); err != nil || got.fingerprint != rec.fingerprint {
		t.Fatalf("the running server cannot read a card after two rotations: %+v %v", got, err)
	}
	if code, data, err := s.do("POST", "/v1/customers", map[string]any{"payment_source": map[string]any{"vault_token": rec.token, "gateway_id": s.gateway()}}); err != nil || code != 201 {
		t.Fatalf("the running server cannot use a card after two rotations: %d %v %v", code, data, err)
	}
	s.mustCreateVault(t)
}

// The generated master.key is owner-only when made, and made so again at
// every start: a key file copied or restored with a looser mode must not
// stay readable by other users (docs/security.md, file modes).
func TestDevKeyFileIsOwnerOnly(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "master.key")
	for i, loosen := range []bool{false, true} {
		if loosen {
			if err := os.Chmod(keyFile, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if code, out, errOut := keysRun(t, "migrate", "--data-dir", dir); code != 0 {
			t.Fatalf("migrate #%d: exit %d: %s %s", i, code, out, errOut)
		}
		fi, err := os.Stat(keyFile)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("migrate #%d: master.key mode %v, want 0600", i, fi.Mode().Perm())
		}
	}
}
