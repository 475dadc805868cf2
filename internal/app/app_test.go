package app_test

// The command line of spec §11, driven through app.Run in-process (and once
// as a real process): start-up output, account create beside a running
// server, version, migrate, flag errors, environment fallbacks, store
// errors and graceful shutdown. Identifiers carry a cli prefix so that they
// never collide with other tests of this package.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"switchyard/internal/app"
	"switchyard/internal/store/sqlite"
)

var (
	cliSecretLine  = regexp.MustCompile(`^secret key: sk_[0-9a-f]{40}$`)
	cliPublicLine  = regexp.MustCompile(`^public key: pk_[0-9a-f]{40}$`)
	cliGatewayLine = regexp.MustCompile(`^gateway id: [0-9a-f]{24}$`)
	cliListenLine  = regexp.MustCompile(`^switchyard listening on http://(127\.0\.0\.1:[0-9]+)$`)
	cliHex24       = regexp.MustCompile(`^[0-9a-f]{24}$`)
)

// cliBuf is a goroutine-safe writer.
type cliBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (c *cliBuf) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.b.Write(p)
}

func (c *cliBuf) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.b.String()
}

func cliEnv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// cliRun runs one command to completion.
func cliRun(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb cliBuf
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	code = app.Run(ctx, args, cliEnv(env), &out, &errb)
	return code, out.String(), errb.String()
}

// cliServer is app.Run serving in a goroutine.
type cliServer struct {
	addr   string
	stdout *cliBuf
	stderr *cliBuf
	cancel context.CancelFunc
	done   chan int
	once   sync.Once
	code   int
}

// cliStart runs app.Run with args and env and waits for the listening line.
func cliStart(t *testing.T, env map[string]string, args ...string) *cliServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &cliServer{stdout: &cliBuf{}, stderr: &cliBuf{}, cancel: cancel, done: make(chan int, 1)}
	go func() { s.done <- app.Run(ctx, args, cliEnv(env), s.stdout, s.stderr) }()
	t.Cleanup(func() { s.stop(t) })
	deadline := time.After(30 * time.Second)
	for {
		lines := cliLines(s.stdout.String())
		if len(lines) > 0 {
			if m := cliListenLine.FindStringSubmatch(lines[len(lines)-1]); m != nil {
				s.addr = m[1]
				return s
			}
		}
		select {
		case code := <-s.done:
			s.once.Do(func() { s.code = code })
			t.Fatalf("exited %d before listening\nstdout: %s\nstderr: %s", code, s.stdout, s.stderr)
		case <-deadline:
			t.Fatalf("no listening line\nstdout: %s\nstderr: %s", s.stdout, s.stderr)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// stop cancels the context and returns the exit code.
func (s *cliServer) stop(t *testing.T) int {
	t.Helper()
	s.once.Do(func() {
		s.cancel()
		select {
		case s.code = <-s.done:
		case <-time.After(45 * time.Second):
			t.Errorf("server did not stop")
			s.code = -1
		}
	})
	return s.code
}

func cliLines(s string) []string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

var cliHTTP = &http.Client{Timeout: 30 * time.Second}

// call sends a JSON request with a secret key and decodes the envelope.
func (s *cliServer) call(t *testing.T, key, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var rdr io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rdr = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://"+s.addr+path, rdr)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("x-user-secret-key", key)
	}
	res, err := cliHTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var m map[string]any
	raw, _ := io.ReadAll(res.Body)
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s %s: not JSON: %s", method, path, raw)
	}
	return res.StatusCode, m
}

func cliData(m map[string]any) map[string]any {
	r, _ := m["resource"].(map[string]any)
	d, _ := r["data"].(map[string]any)
	return d
}

func cliList(m map[string]any) []any {
	r, _ := m["resource"].(map[string]any)
	d, _ := r["data"].([]any)
	return d
}

// cliFreePort returns a port that was free a moment ago.
func cliFreePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// cliPreflight sends a CORS preflight for GET /v1/gateways and returns
// Access-Control-Allow-Origin.
func cliPreflight(t *testing.T, addr, origin string) string {
	t.Helper()
	req, _ := http.NewRequest("OPTIONS", "http://"+addr+"/v1/gateways", nil)
	req.Header.Set("Origin", origin)
	req.Header.Set("Access-Control-Request-Method", "GET")
	res, err := cliHTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 204 {
		t.Errorf("preflight: HTTP %d", res.StatusCode)
	}
	return res.Header.Get("Access-Control-Allow-Origin")
}

func TestFirstAndSecondStart(t *testing.T) {
	dir := t.TempDir()
	s := cliStart(t, nil, "--data-dir", dir, "--listen", "127.0.0.1:0")
	lines := cliLines(s.stdout.String())
	if len(lines) != 4 || !cliSecretLine.MatchString(lines[0]) || !cliPublicLine.MatchString(lines[1]) ||
		!cliGatewayLine.MatchString(lines[2]) || !cliListenLine.MatchString(lines[3]) {
		t.Fatalf("first start stdout:\n%s", s.stdout)
	}
	secret := strings.TrimPrefix(lines[0], "secret key: ")
	public := strings.TrimPrefix(lines[1], "public key: ")
	gw := strings.TrimPrefix(lines[2], "gateway id: ")
	if s.stderr.String() == "" {
		t.Errorf("no log lines on stderr")
	}
	if strings.Contains(s.stderr.String(), secret) || strings.Contains(s.stderr.String(), public) {
		t.Errorf("keys in the logs")
	}

	st, body := s.call(t, secret, "GET", "/v1/gateways", nil)
	if st != 200 || len(cliList(body)) != 1 {
		t.Fatalf("GET /v1/gateways: %d %v", st, body)
	}
	g := cliList(body)[0].(map[string]any)
	if g["_id"] != gw || g["name"] != "Sandbox" || g["type"] != "Simulator" || g["default"] != true {
		t.Errorf("sandbox gateway: %v", g)
	}
	if st, _ := s.call(t, "", "GET", "/healthz", nil); st != 200 {
		t.Errorf("healthz %d", st)
	}

	// account create works while the server runs on the same store.
	code, out, errOut := cliRun(t, nil, "account", "create", "--name", "Second Shop", "--json", "--data-dir", dir)
	if code != 0 {
		t.Fatalf("account create: exit %d: %s", code, errOut)
	}
	if n := len(cliLines(out)); n != 1 {
		t.Errorf("account create --json printed %d lines: %q", n, out)
	}
	dec := json.NewDecoder(strings.NewReader(out))
	var acct map[string]any
	if err := dec.Decode(&acct); err != nil {
		t.Fatalf("account create --json: %v: %q", err, out)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		t.Errorf("more than one JSON value: %q", out)
	}
	if len(acct) != 4 || !cliHex24.MatchString(fmt.Sprint(acct["account_id"])) || acct["name"] != "Second Shop" ||
		!regexp.MustCompile(`^sk_[0-9a-f]{40}$`).MatchString(fmt.Sprint(acct["secret_key"])) ||
		!regexp.MustCompile(`^pk_[0-9a-f]{40}$`).MatchString(fmt.Sprint(acct["public_key"])) {
		t.Fatalf("account create --json: %v", acct)
	}
	// The keys in the spec's order (§11), for scripts that compare text.
	if !regexp.MustCompile(`^\{"account_id":"[0-9a-f]{24}","name":"Second Shop","secret_key":"sk_[0-9a-f]{40}","public_key":"pk_[0-9a-f]{40}"\}\n$`).MatchString(out) {
		t.Errorf("account create --json is not in the spec's key order: %q", out)
	}
	sk := acct["secret_key"].(string)

	// That account's key drives the gateway API on the running server.
	st, body = s.call(t, sk, "GET", "/v1/gateways", nil)
	if st != 200 || len(cliList(body)) != 0 {
		t.Fatalf("new account sees gateways: %d %v", st, body)
	}
	st, body = s.call(t, sk, "POST", "/v1/gateways", map[string]any{"type": "simulator", "name": "Shop sim"})
	created := cliData(body)
	if st != 201 || created["company_id"] != acct["account_id"] || created["default"] != true || created["type"] != "Simulator" {
		t.Fatalf("create: %d %v", st, body)
	}
	id := created["_id"].(string)
	st, body = s.call(t, sk, "PUT", "/v1/gateways/"+id, map[string]any{"name": "Shop sim 2"})
	if st != 200 || cliData(body)["name"] != "Shop sim 2" {
		t.Fatalf("update: %d %v", st, body)
	}
	st, body = s.call(t, sk, "GET", "/v1/gateways", nil)
	if st != 200 || len(cliList(body)) != 1 {
		t.Fatalf("list: %d %v", st, body)
	}
	st, body = s.call(t, sk, "DELETE", "/v1/gateways/"+id, nil)
	if st != 200 || cliData(body)["archived"] != true {
		t.Fatalf("archive: %d %v", st, body)
	}
	if st, _ := s.call(t, secret, "GET", "/v1/gateways/"+id, nil); st != 404 {
		t.Errorf("sandbox sees the other account's gateway: %d", st)
	}
	if code := s.stop(t); code != 0 {
		t.Fatalf("stop: exit %d\nstderr: %s", code, s.stderr)
	}

	// Second start: only the listening line; the sandbox key still works.
	s2 := cliStart(t, nil, "serve", "--data-dir", dir, "--listen", "127.0.0.1:0")
	if lines := cliLines(s2.stdout.String()); len(lines) != 1 {
		t.Errorf("second start stdout:\n%s", s2.stdout)
	}
	if st, body := s2.call(t, secret, "GET", "/v1/gateways/"+gw, nil); st != 200 || cliData(body)["_id"] != gw {
		t.Errorf("after restart: %d %v", st, body)
	}
	if st, _ := s2.call(t, sk, "GET", "/v1/gateways/"+id, nil); st != 200 {
		t.Errorf("second account after restart: %d", st)
	}
	if code := s2.stop(t); code != 0 {
		t.Errorf("second stop: exit %d", code)
	}
}

func TestAccountCreatePlainAndErrors(t *testing.T) {
	dir := t.TempDir()
	code, out, errOut := cliRun(t, nil, "account", "create", "--name", "Plain", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "sk_") || !strings.Contains(out, "pk_") {
		t.Fatalf("account create: %d %q %q", code, out, errOut)
	}
	// The sandbox is made only when the store has no account yet.
	s := cliStart(t, nil, "--data-dir", dir, "--listen", "127.0.0.1:0")
	if lines := cliLines(s.stdout.String()); len(lines) != 1 {
		t.Errorf("start after account create printed:\n%s", s.stdout)
	}
	s.stop(t)

	for _, args := range [][]string{
		{"account", "create", "--data-dir", dir},
		{"account", "create", "--name", "", "--data-dir", dir},
		{"account", "create", "--name", "x", "--bogus", "--data-dir", dir},
		{"account", "frobnicate"},
		{"frobnicate"},
		{"keys"},
	} {
		code, out, errOut := cliRun(t, nil, args...)
		if code != 2 || out != "" || len(cliLines(errOut)) != 1 {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
}

func TestVersion(t *testing.T) {
	code, out, errOut := cliRun(t, nil, "version")
	if code != 0 || out != "switchyard "+app.Version+"\n" || errOut != "" {
		t.Errorf("version: %d %q %q", code, out, errOut)
	}
}

// -h and --help on any command print its flags on stdout and exit 0, like
// flag's own ExitOnError; they start nothing.
func TestHelp(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"--help"}, {"-h"}, {"serve", "--help"}, {"serve", "-h"}, {"migrate", "--help"},
		{"account", "create", "--help"}, {"keys", "rotate", "--help"},
	} {
		code, out, errOut := cliRun(t, map[string]string{"SWITCHYARD_DATA_DIR": dir}, args...)
		if code != 0 || errOut != "" || !strings.HasPrefix(out, "usage: switchyard") || !strings.Contains(out, "-data-dir") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
	if _, err := os.Stat(sqlite.Path(dir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("help opened the store: %v", err)
	}
}

func TestMigrate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "fresh")
	for i := range 2 { // idempotent
		code, out, errOut := cliRun(t, nil, "migrate", "--data-dir", dir)
		if code != 0 {
			t.Fatalf("migrate #%d: exit %d: %s %s", i, code, out, errOut)
		}
	}
	if _, err := os.Stat(sqlite.Path(dir)); err != nil {
		t.Fatalf("no database after migrate: %v", err)
	}
	// migrate creates no account: the first start still makes the sandbox.
	s := cliStart(t, nil, "--data-dir", dir, "--listen", "127.0.0.1:0")
	if lines := cliLines(s.stdout.String()); len(lines) != 4 {
		t.Errorf("first start after migrate:\n%s", s.stdout)
	}
	if code := s.stop(t); code != 0 {
		t.Errorf("stop: %d", code)
	}
	// Env fallback for the data dir.
	other := filepath.Join(t.TempDir(), "env")
	if code, _, errOut := cliRun(t, map[string]string{"SWITCHYARD_DATA_DIR": other}, "migrate"); code != 0 {
		t.Fatalf("migrate via env: %s", errOut)
	}
	if _, err := os.Stat(sqlite.Path(other)); err != nil {
		t.Errorf("SWITCHYARD_DATA_DIR not used: %v", err)
	}
}

func TestBadFlags(t *testing.T) {
	keys := t.TempDir()
	badKeyFile, goodKeyFile := filepath.Join(keys, "bad"), filepath.Join(keys, "good")
	if err := os.WriteFile(badKeyFile, []byte("v1:short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(goodKeyFile, []byte("v1:"+base64.StdEncoding.EncodeToString(make([]byte, 32))+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args  []string
		env   map[string]string
		names string // the flag or variable the line must name
	}{
		{[]string{"--bogus"}, nil, "bogus"},
		{[]string{"serve", "--bogus"}, nil, "bogus"},
		{[]string{"migrate", "--bogus=1"}, nil, "bogus"},
		{[]string{"--listen", "nonsense"}, nil, "listen"},
		{[]string{"--listen"}, nil, "listen"},
		{[]string{"--log-level", "loud"}, nil, "log-level"},
		{[]string{"--log-format", "xml"}, nil, "log-format"},
		{[]string{"--simulator-latency", "soon"}, nil, "simulator-latency"},
		{[]string{"--simulator-latency", "-1s"}, nil, "simulator-latency"},
		{[]string{"--reconcile-interval", "0s"}, nil, "reconcile-interval"},
		{[]string{"--db-max-conns", "0"}, nil, "db-max-conns"},
		{[]string{"--database-url", "mysql://x"}, nil, "database-url"},
		{[]string{"--stripe-api-base", "ftp://x"}, nil, "stripe-api-base"},
		{[]string{"--metrics-listen", "nope"}, nil, "metrics-listen"},
		{[]string{"serve", "extra-arg"}, nil, "extra-arg"},
		{nil, map[string]string{"SWITCHYARD_LISTEN": "nonsense"}, "listen"},
		{nil, map[string]string{"SWITCHYARD_SIMULATOR_LATENCY": "soon"}, "SWITCHYARD_SIMULATOR_LATENCY"},
		{nil, map[string]string{"SWITCHYARD_LOG_LEVEL": "loud"}, "log-level"},
		{nil, map[string]string{"SWITCHYARD_DB_MAX_CONNS": "many"}, "SWITCHYARD_DB_MAX_CONNS"},
		// Malformed key material and a database URL that does not parse are
		// bad values too (exit 2), not a store that cannot be opened.
		{nil, map[string]string{"SWITCHYARD_MASTER_KEY": "v0:" + strings.Repeat("A", 43) + "="}, "SWITCHYARD_MASTER_KEY"},
		{nil, map[string]string{"SWITCHYARD_MASTER_KEY": "not a key"}, "SWITCHYARD_MASTER_KEY"},
		{[]string{"--master-key-file", badKeyFile}, nil, "master key file"},
		{[]string{"--database-url", "postgres://u@127.0.0.1:1/db?sslmode=bogus", "--master-key-file", goodKeyFile}, nil, "database-url"},
		{[]string{"version", "--bogus"}, nil, "bogus"},
		{[]string{"version", "extra"}, nil, "extra"},
	}
	for _, c := range cases {
		name := strings.Join(c.args, " ")
		for k, v := range c.env {
			name = k + "=" + v
		}
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "never")
			args := append(append([]string{}, c.args...), "--data-dir", dir)
			if len(c.args) > 0 && c.args[len(c.args)-1] == "--listen" {
				args = c.args // the dangling flag must stay last
			}
			code, out, errOut := cliRun(t, c.env, args...)
			if code != 2 {
				t.Errorf("exit %d, want 2 (stderr %q)", code, errOut)
			}
			if out != "" {
				t.Errorf("stdout %q", out)
			}
			if lines := cliLines(errOut); len(lines) != 1 || !strings.Contains(lines[0], c.names) {
				t.Errorf("stderr %q: want one line naming %s", errOut, c.names)
			}
			if _, err := os.Stat(dir); err == nil {
				t.Errorf("a bad flag still created the data dir")
			}
		})
	}
}

func TestFlagOverEnv(t *testing.T) {
	envAddr, flagAddr := cliFreePort(t), cliFreePort(t)
	envDir, flagDir := t.TempDir(), t.TempDir()

	// Environment alone.
	s := cliStart(t, map[string]string{"SWITCHYARD_LISTEN": envAddr, "SWITCHYARD_DATA_DIR": envDir,
		"SWITCHYARD_CORS_ORIGINS": "https://env.example, https://env2.example"})
	if s.addr != envAddr {
		t.Errorf("SWITCHYARD_LISTEN %s ignored: listening on %s", envAddr, s.addr)
	}
	if got := cliPreflight(t, s.addr, "https://env2.example"); got != "https://env2.example" {
		t.Errorf("SWITCHYARD_CORS_ORIGINS ignored: ACAO %q", got)
	}
	if code := s.stop(t); code != 0 {
		t.Fatalf("stop %d", code)
	}
	if _, err := os.Stat(sqlite.Path(envDir)); err != nil {
		t.Errorf("SWITCHYARD_DATA_DIR ignored: %v", err)
	}

	// Flags win; a flag's environment variable is not even read (so a bad
	// value there does not matter).
	env := map[string]string{"SWITCHYARD_LISTEN": "not-an-address", "SWITCHYARD_DATA_DIR": envDir + "-unused",
		"SWITCHYARD_LOG_LEVEL": "loud", "SWITCHYARD_LOG_FORMAT": "json", "SWITCHYARD_CORS_ORIGINS": "https://env.example"}
	s = cliStart(t, env, "--listen", flagAddr, "--data-dir", flagDir, "--log-level", "warn", "--cors-origins", "https://flag.example")
	if s.addr != flagAddr {
		t.Errorf("--listen %s lost to the environment: %s", flagAddr, s.addr)
	}
	if got := cliPreflight(t, s.addr, "https://flag.example"); got != "https://flag.example" {
		t.Errorf("--cors-origins ignored: ACAO %q", got)
	}
	if got := cliPreflight(t, s.addr, "https://env.example"); got != "" {
		t.Errorf("SWITCHYARD_CORS_ORIGINS used despite --cors-origins: ACAO %q", got)
	}
	if code := s.stop(t); code != 0 {
		t.Fatalf("stop %d", code)
	}
	if _, err := os.Stat(sqlite.Path(flagDir)); err != nil {
		t.Errorf("--data-dir ignored: %v", err)
	}
	if _, err := os.Stat(envDir + "-unused"); err == nil {
		t.Errorf("SWITCHYARD_DATA_DIR used despite --data-dir")
	}
	// SWITCHYARD_LOG_FORMAT (no flag given) applies: stderr lines are JSON.
	for _, l := range cliLines(s.stderr.String()) {
		if !json.Valid([]byte(l)) {
			t.Errorf("SWITCHYARD_LOG_FORMAT=json ignored: %q", l)
			break
		}
	}
}

func TestUnopenableDataDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "plain-file")
	if err := os.WriteFile(file, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"--data-dir", file, "--listen", "127.0.0.1:0"},
		{"serve", "--data-dir", filepath.Join(file, "sub"), "--listen", "127.0.0.1:0"},
		{"migrate", "--data-dir", file},
		{"account", "create", "--name", "x", "--data-dir", file},
	} {
		code, out, errOut := cliRun(t, nil, args...)
		if code != 1 {
			t.Errorf("%q: exit %d, want 1 (stderr %q)", args, code, errOut)
		}
		if strings.Contains(out, "listening") || strings.Contains(out, "secret key") {
			t.Errorf("%q: stdout %q", args, out)
		}
		if lines := cliLines(errOut); len(lines) == 0 || !strings.Contains(lines[len(lines)-1], "plain-file") {
			t.Errorf("%q: stderr does not name the cause: %q", args, errOut)
		}
	}
	// A listen address in use is also exit 1 (not a bad flag).
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	code, _, errOut := cliRun(t, nil, "--data-dir", t.TempDir(), "--listen", ln.Addr().String())
	if code != 1 {
		t.Errorf("busy port: exit %d (%q)", code, errOut)
	}
}

// In-flight requests finish before Run returns 0 (spec §11: graceful).
func TestGracefulShutdown(t *testing.T) {
	dir := t.TempDir()
	s := cliStart(t, nil, "--data-dir", dir, "--listen", "127.0.0.1:0", "--simulator-latency", "700ms")
	lines := cliLines(s.stdout.String())
	secret := strings.TrimPrefix(lines[0], "secret key: ")
	gw := strings.TrimPrefix(lines[2], "gateway id: ")
	// A flow-1 customer stores the card at the Simulator, which waits.
	body := map[string]any{"first_name": "Ada", "payment_source": map[string]any{"gateway_id": gw, "card_name": "Ada Lovelace",
		"card_number": "4111111111111111", "expire_month": 9, "expire_year": time.Now().Year() + 2}}
	type answer struct {
		status int
		raw    []byte
		err    error
	}
	got := make(chan answer, 1)
	go func() { // no t.Fatal off the test goroutine
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest("POST", "http://"+s.addr+"/v1/customers", bytes.NewReader(b))
		req.Header.Set("x-user-secret-key", secret)
		res, err := cliHTTP.Do(req)
		if err != nil {
			got <- answer{err: err}
			return
		}
		defer res.Body.Close()
		raw, err := io.ReadAll(res.Body)
		got <- answer{res.StatusCode, raw, err}
	}()
	time.Sleep(250 * time.Millisecond)
	code := s.stop(t)
	a := <-got
	if a.err != nil {
		t.Fatalf("in-flight request failed: %v", a.err)
	}
	if a.status == 404 && strings.Contains(string(a.raw), "Wrong Api path") {
		t.Skip("POST /v1/customers is not implemented yet")
	}
	if a.status != 201 {
		t.Errorf("in-flight request: %d %s", a.status, a.raw)
	}
	if code != 0 {
		t.Errorf("exit %d", code)
	}
}

// The real binary: build it, run it, SIGTERM it.
func TestBinarySIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	root, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
			break
		}
		if filepath.Dir(root) == root {
			t.Fatal("no go.mod above the package")
		}
		root = filepath.Dir(root)
	}
	bin := filepath.Join(t.TempDir(), "switchyard")
	build := exec.Command(goBin, "build", "-o", bin, "./cmd/switchyard")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	cmd := exec.Command(bin, "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()} // no SWITCHYARD_* from the caller
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr cliBuf
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	sc := bufio.NewScanner(stdout)
	var lines []string
	addr := ""
	found := make(chan struct{})
	go func() {
		defer close(found)
		for sc.Scan() {
			lines = append(lines, sc.Text())
			if m := cliListenLine.FindStringSubmatch(sc.Text()); m != nil {
				addr = m[1]
				return
			}
		}
	}()
	select {
	case <-found:
	case <-time.After(60 * time.Second):
		t.Fatalf("no listening line; stderr: %s", stderr.String())
	}
	if addr == "" || len(lines) != 4 {
		t.Fatalf("stdout %q; stderr %s", lines, stderr.String())
	}
	res, err := cliHTTP.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Errorf("healthz %d", res.StatusCode)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(stdout) // nothing more on stdout
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case err := <-waited:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v; stderr: %s", err, stderr.String())
		}
	case <-time.After(45 * time.Second):
		t.Fatalf("still running after SIGTERM")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		t.Errorf("stdout after the listening line: %q", rest)
	}
	// The real binary opens SQLite first through the store, so the
	// page-cache layer is in place (internal/store/sqlite/pagecache).
	if strings.Contains(stderr.String(), "page-cache layer") {
		t.Errorf("the binary runs without the page-cache layer: %s", stderr.String())
	}
	// And its connections run without their own mutex (nomutex.go).
	if strings.Contains(stderr.String(), "kept their own mutex") {
		t.Errorf("the binary's SQLite connections kept their mutex: %s", stderr.String())
	}
}

// A name over 100 characters is a bad value: one stderr line, exit 2 (§11).
func TestAccountCreateNameTooLong(t *testing.T) {
	code, out, errOut := cliRun(t, nil, "account", "create", "--data-dir", t.TempDir(), "--name", strings.Repeat("n", 101))
	if code != 2 || out != "" || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.Contains(errOut, "name must be 1 to 100 characters") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// Every command takes the common flags (§11), before or after its words.
func TestFlagsBeforeAndAfterTheCommand(t *testing.T) {
	dir := t.TempDir()
	if code, out, errOut := cliRun(t, nil, "--data-dir", dir, "migrate"); code != 0 || !strings.Contains(out, "migrations applied") {
		t.Fatalf("--data-dir D migrate: %d %q %q", code, out, errOut)
	}
	code, out, errOut := cliRun(t, nil, "--data-dir="+dir, "account", "--json", "create", "--name", "Flags First")
	if code != 0 || !strings.Contains(out, `"name":"Flags First"`) {
		t.Fatalf("flags before account create: %d %q %q", code, out, errOut)
	}
	// keys retire reads its version wherever the flags are; v1 is the
	// primary version, so this is refused for that reason (exit 1), not
	// because the flag was taken for the version.
	code, _, errOut = cliRun(t, nil, "keys", "retire", "--data-dir", dir, "v1")
	if code != 1 || !strings.Contains(errOut, "primary master-key version") {
		t.Fatalf("keys retire --data-dir D v1: %d %q", code, errOut)
	}
}

// A first start that cannot listen makes no sandbox: the next start that
// does is still the first, and prints the keys.
func TestListenFailureMakesNoSandbox(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir := t.TempDir()
	code, out, errOut := cliRun(t, nil, "--data-dir", dir, "--listen", busy.Addr().String())
	if code != 1 || out != "" || !strings.Contains(errOut, "switchyard: listen on "+busy.Addr().String()) {
		t.Fatalf("busy address: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	s := cliStart(t, nil, "--data-dir", dir, "--listen", "127.0.0.1:0")
	if !strings.Contains(s.stdout.String(), "secret key: sk_") {
		t.Fatalf("the next start printed no keys:\n%s", s.stdout.String())
	}
}
