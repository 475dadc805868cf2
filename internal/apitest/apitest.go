// Package apitest starts the real router over a fresh store for HTTP
// tests, with the sandbox account and gateway already made, and checks
// every response against the wire rules that hold for all of them.
package apitest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"switchyard/internal/app"
	"switchyard/internal/auth"
	"switchyard/internal/httpapi"
	"switchyard/internal/keyring"
	"switchyard/internal/pgtest"
	"switchyard/internal/store"
	"switchyard/internal/store/postgres"
	"switchyard/internal/store/sqlite"
)

// Env is one running API with its sandbox account.
type Env struct {
	T        testing.TB
	URL      string
	Server   *httptest.Server
	Services *app.Services
	Store    *store.Store
	Secret   string // sandbox secret key
	Public   string // sandbox public key
	Gateway  string // sandbox Simulator gateway id (the default)
	Account  string // sandbox account id
	Logs     *SyncBuffer
	DataDir  string // the store's data directory (the SQLite files)
	DBURL    string // the PostgreSQL database, when SWITCHYARD_TEST_DB=postgres
}

// Options tune New.
type Options struct {
	CORSOrigins []string
	Now         func() time.Time
	// StripeAPIBase points the Stripe connector somewhere (stripe-mock).
	StripeAPIBase string
	// SimulatorLatency delays every Simulator call.
	SimulatorLatency time.Duration
	// ReadTimeout is the server's (httpapi.Deps.ReadTimeout).
	ReadTimeout time.Duration
	// ClaimedRunLimit is the server's (httpapi.Deps.ClaimedRunLimit).
	ClaimedRunLimit time.Duration
}

// SyncBuffer is a goroutine-safe log sink.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// New starts a server over a fresh SQLite store in a temp dir, or over a
// fresh PostgreSQL database (pgtest) when SWITCHYARD_TEST_DB=postgres.
func New(t testing.TB, opts ...Options) *Env {
	t.Helper()
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	ctx := context.Background()
	dataDir := t.TempDir()
	var eng store.Engine
	var dbURL string
	var err error
	if UsePostgres() {
		dbURL = pgtest.NewDatabase(t)
		eng, err = postgres.Open(ctx, dbURL, postgres.Options{MaxConns: pgtest.PoolSize})
	} else {
		eng, err = sqlite.Open(ctx, dataDir, sqlite.Options{GroupCommit: true})
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	entry, err := keyring.NewEntry(1)
	if err != nil {
		t.Fatal(err)
	}
	ring, err := keyring.ParseMaterial(entry)
	if err != nil {
		t.Fatal(err)
	}
	st := store.New(eng)
	svc := app.NewServices(st, ring, o.Now, app.Options{StripeAPIBase: o.StripeAPIBase, SimulatorLatency: o.SimulatorLatency})
	lines, err := app.Sandbox(ctx, svc)
	if err != nil {
		t.Fatal(err)
	}
	e := &Env{T: t, Services: svc, Store: st, Logs: &SyncBuffer{}, DataDir: dataDir, DBURL: dbURL}
	for _, l := range lines {
		k, v, _ := strings.Cut(l, ": ")
		switch k {
		case "secret key":
			e.Secret = v
		case "public key":
			e.Public = v
		case "gateway id":
			e.Gateway = v
		}
	}
	log := slog.New(slog.NewJSONHandler(e.Logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	deps := svc.Deps(log)
	deps.CORSOrigins = o.CORSOrigins
	deps.ReadTimeout = o.ReadTimeout
	deps.ClaimedRunLimit = o.ClaimedRunLimit
	deps.Metrics = httpapi.NewMetrics()
	deps.MetricsHandler = deps.Metrics.Handler()
	e.Server = httptest.NewServer(httpapi.New(deps))
	t.Cleanup(e.Server.Close)
	e.URL = e.Server.URL
	acct, err := svc.Auth.Authenticate(ctx, auth.SecretKey, e.Secret)
	if err != nil {
		t.Fatal(err)
	}
	e.Account = acct.ID
	return e
}

// UsePostgres reports whether SWITCHYARD_TEST_DB=postgres selects
// PostgreSQL for New. A package whose tests call New should run them
// through pgtest.Main in its TestMain, so the cluster stops at the end.
func UsePostgres() bool { return os.Getenv("SWITCHYARD_TEST_DB") == "postgres" }

// Response is a decoded answer.
type Response struct {
	Status int
	Header http.Header
	Raw    []byte
	Body   map[string]any // nil when not JSON
}

// Data is resource.data as an object (nil when absent or not an object).
func (r *Response) Data() map[string]any {
	res, _ := r.Body["resource"].(map[string]any)
	d, _ := res["data"].(map[string]any)
	return d
}

// List is resource.data as a list.
func (r *Response) List() []any {
	res, _ := r.Body["resource"].(map[string]any)
	d, _ := res["data"].([]any)
	return d
}

// Resource is the resource object.
func (r *Response) Resource() map[string]any {
	res, _ := r.Body["resource"].(map[string]any)
	return res
}

// ErrorDetails returns error.details.path and messages of a non-gateway error.
func (r *Response) ErrorDetails() (code, message, path string, messages []string) {
	e, _ := r.Body["error"].(map[string]any)
	code, _ = e["code"].(string)
	message, _ = e["message"].(string)
	d, _ := e["details"].(map[string]any)
	path, _ = d["path"].(string)
	ms, _ := d["messages"].([]any)
	for _, m := range ms {
		s, _ := m.(string)
		messages = append(messages, s)
	}
	return
}

// Do sends a request with the sandbox secret key (unless headers carry a
// credential header themselves, or key is "-"), and checks the rules every
// /v1 response must follow, including api/openapi.yaml (openapi.go).
func (e *Env) Do(method, path string, body any, headers ...string) *Response {
	e.T.Helper()
	var rdr io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rdr = strings.NewReader(b)
	case []byte:
		rdr = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.T.Fatal(err)
		}
		rdr = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.URL+path, rdr)
	if err != nil {
		e.T.Fatal(err)
	}
	custom := false
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header[headers[i]] = []string{headers[i+1]}
		if l := strings.ToLower(headers[i]); l == "x-user-secret-key" || l == "x-user-public-key" || l == "auth" {
			custom = true
		}
	}
	delete(req.Header, "auth")
	if !custom {
		req.Header.Set("x-user-secret-key", e.Secret)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.T.Fatal(err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		e.T.Fatal(err)
	}
	r := &Response{Status: res.StatusCode, Header: res.Header, Raw: raw}
	if len(raw) > 0 {
		_ = json.Unmarshal(raw, &r.Body)
	}
	if strings.HasPrefix(path, "/v1/") && !strings.HasPrefix(path, "/v1/openapi.yaml") && method != http.MethodOptions {
		CheckEnvelope(e.T, method+" "+path, r)
		checkOpenAPI(e.T, req, r)
	}
	return r
}

// CheckEnvelope asserts the rules of every /v1 response (spec §1.8, §3).
func CheckEnvelope(t testing.TB, what string, r *Response) {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("%s: Content-Type %q", what, ct)
	}
	if r.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("%s: Cache-Control %q", what, r.Header.Get("Cache-Control"))
	}
	if r.Body == nil {
		t.Fatalf("%s: body is not a JSON object: %s", what, r.Raw)
	}
	st, ok := r.Body["status"].(float64)
	if !ok || int(st) != r.Status {
		t.Errorf("%s: body status %v, HTTP %d", what, r.Body["status"], r.Status)
	}
	if _, ok := r.Body["resource"].(map[string]any)["type"].(string); !ok {
		t.Errorf("%s: resource.type missing: %s", what, r.Raw)
	}
	if r.Status < 300 {
		if r.Body["error"] != nil {
			t.Errorf("%s: error not null on success", what)
		}
		return
	}
	if _, ok := r.Body["error_summary"]; !ok {
		t.Errorf("%s: error_summary missing: %s", what, r.Raw)
	}
	e, _ := r.Body["error"].(map[string]any)
	if _, hasCode := e["code"].(string); !hasCode {
		ds, _ := e["details"].([]any)
		if len(ds) != 1 {
			t.Errorf("%s: error has neither code nor gateway details: %s", what, r.Raw)
		}
	}
}
