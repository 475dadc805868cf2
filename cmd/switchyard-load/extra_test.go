package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"switchyard/internal/app"
)

func TestFsync(t *testing.T) {
	dir := t.TempDir()
	res, code, stderr := runJSON(t, "-scenario", "fsync", "-dir", dir, "-d", "200ms", "-warmup", "20ms", "-json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if res.Scenario != "fsync" || res.Requests <= 0 || res.RPS <= 0 || res.Dir != dir {
		t.Errorf("result = %+v, want fsyncs counted under %s", res, dir)
	}
	if res.P50ms <= 0 || res.P50ms > res.P99ms || res.P99ms > res.MaxMs {
		t.Errorf("percentiles out of order: %+v", res)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("temp file left behind: %v", left)
	}

	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"-scenario", "fsync", "-dir", dir, "-d", "50ms", "-warmup", "0s"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if !regexp.MustCompile(`^scenario=fsync dir=\S+ duration=50ms fsyncs=\d+ fsyncs/s=[0-9.]+ p50=`).MatchString(out.String()) {
		t.Errorf("text output = %q", out.String())
	}
}

func TestChargeCustomer(t *testing.T) {
	var mu sync.Mutex
	var bad []string
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/vault/payment_sources", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"status":201,"error":null,"resource":{"type":"payment_source","data":{"vault_token":"tok_1"}}}`)
	})
	mux.HandleFunc("POST /v1/customers", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			PaymentSource map[string]string `json:"payment_source"`
		}
		// Flow 4: a vault token and no gateway.
		if json.NewDecoder(r.Body).Decode(&body) != nil || len(body.PaymentSource) != 1 || body.PaymentSource["vault_token"] != "tok_1" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"status":201,"error":null,"resource":{"type":"customer","data":{"_id":"cus\"1"}}}`)
	})
	mux.HandleFunc("POST /v1/charges", func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || len(body) != 3 || body["amount"] != "10.00" ||
			body["currency"] != "AUD" || body["customer_id"] != `cus"1` {
			mu.Lock()
			bad = append(bad, r.URL.String())
			mu.Unlock()
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusCreated)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	res, code, stderr := runJSON(t, "-url", srv.URL, "-scenario", "charge-customer", "-c", "2", "-d", "150ms", "-warmup", "0s", "-json")
	mu.Lock()
	defer mu.Unlock()
	if code != 0 || res.Requests == 0 || res.Errors != 0 || len(bad) != 0 {
		t.Errorf("exit=%d requests=%d errors=%d samples=%q bad=%d stderr=%s", code, res.Requests, res.Errors, res.ErrorSamples, len(bad), stderr)
	}
}

func TestGetPathTemplate(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/customers" {
			mu.Lock()
			seen[r.URL.Query().Get("reference")+"|"+r.URL.Query().Get("x")]++
			mu.Unlock()
		}
		io.WriteString(w, `{}`)
	}))
	defer srv.Close()
	res, code, stderr := runJSON(t, "-url", srv.URL, "-scenario", "get", "-path", "/v1/customers?reference=REF-{rand:3}&x={rand:1}",
		"-c", "2", "-d", "150ms", "-warmup", "0s", "-json")
	if code != 0 || res.Requests == 0 || res.Errors != 0 {
		t.Fatalf("exit=%d requests=%d errors=%d stderr=%s", code, res.Requests, res.Errors, stderr)
	}
	mu.Lock()
	defer mu.Unlock()
	for k := range seen {
		if k != "REF-0|0" && k != "REF-1|0" && k != "REF-2|0" {
			t.Errorf("unexpected expansion %q", k)
		}
	}
	if len(seen) < 2 {
		t.Errorf("expansions = %v, want several distinct references", seen)
	}

	if parsePathTemplate("/v1/customers?limit=100") != nil {
		t.Error("a path without placeholders is not a template")
	}
	if got := parsePathTemplate("/a/{rand:1}/b{rand:1}").expand(); got != "/a/0/b0" {
		t.Errorf("expand = %q", got)
	}
}

func TestUnfinished(t *testing.T) { forClients(t, testUnfinished) }

func testUnfinished(t *testing.T, client string) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
	}))
	defer srv.Close()
	defer close(release)
	// Closed loop, and open loop with arrivals still queued at the end
	// (never sent, so not unfinished).
	for _, rate := range []string{"0", "1000"} {
		res, code, stderr := runJSON(t, "-client", client, "-url", srv.URL, "-scenario", "get", "-path", "/slow", "-c", "3", "-d", "100ms", "-warmup", "0s",
			"-rate", rate, "-json")
		if code != 0 || res.Requests != 0 || res.Errors != 0 || res.Unfinished != 3 || res.RPS != 0 {
			t.Errorf("-rate %s: exit=%d requests=%d errors=%d unfinished=%d, want 0, 0, 3: %s", rate, code, res.Requests, res.Errors, res.Unfinished, stderr)
		}
		if !strings.Contains(res.text(), " unfinished=3") {
			t.Errorf("-rate %s: text %q lacks unfinished=3", rate, res.text())
		}
	}
}

func TestNewFlagsExit2(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"-scenario", "fsync"},               // no -dir
		{"-scenario", "fsync", "-dir", file}, // not a directory
		{"-scenario", "fsync", "-dir", filepath.Join(dir, "missing")},
		{"-scenario", "get", "-url", "http://127.0.0.1:1", "-path", "/x?r={rand:0}"},
		{"-seed", "10", "-key", "sk_x"},                               // no -data-dir
		{"-seed", "10", "-data-dir", dir},                             // no -key
		{"-seed", "10", "-data-dir", dir, "-key", "sk_x"},             // no switchyard.db
		{"-seed", "-1", "-data-dir", dir, "-key", "sk_x"},             // negative
		{"-seed", "10", "-data-dir", dir, "-key", "k", "-batch", "0"}, // bad batch
		{"-seed", "10", "-data-dir", dir, "-key", "k", "-url", "127.0.0.1:1"},
	} {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), args, &out, &errOut); code != 2 {
			t.Errorf("%q: exit %d, want 2 (%s)", args, code, errOut.String())
		}
	}
}

// syncBuf is a bytes.Buffer safe to write from one goroutine and read
// from another.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// server is a real switchyard (app.Run) on a data dir.
type server struct {
	url, key string
	stop     func()
}

var listenLine = regexp.MustCompile(`switchyard listening on (http://\S+)`)

func startServer(t *testing.T, dataDir string) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut syncBuf
	done := make(chan int, 1)
	go func() {
		done <- app.Run(ctx, []string{"serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir}, func(string) string { return "" }, &out, &errOut)
	}()
	var once sync.Once
	s := &server{stop: func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Error("server did not stop")
			}
		})
	}}
	t.Cleanup(s.stop)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := listenLine.FindStringSubmatch(out.String()); m != nil {
			s.url = m[1]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no listening line: %s %s", out.String(), errOut.String())
		}
		select {
		case code := <-done:
			t.Fatalf("server exited %d: %s", code, errOut.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	if m := regexp.MustCompile(`secret key: (sk_[0-9a-f]+)`).FindStringSubmatch(out.String()); m != nil {
		s.key = m[1]
	}
	return s
}

// list GETs path and returns the list's count and data.
func list(t *testing.T, s *server, key, path string) (int, []map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.url+path, nil)
	req.Header.Set("x-user-secret-key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var env struct {
		Resource struct {
			Data  []map[string]any `json:"data"`
			Count int              `json:"count"`
		} `json:"resource"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&env) != nil {
		t.Fatalf("GET %s: status %d", path, resp.StatusCode)
	}
	return env.Resource.Count, env.Resource.Data
}

func TestSeed(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, dir)
	key := srv.key
	if key == "" {
		t.Fatal("first start printed no secret key")
	}
	// One customer made over HTTP before the seed: counts must add up.
	if _, code, stderr := runJSON(t, "-url", srv.url, "-key", key, "-scenario", "customer-get", "-c", "1", "-d", "10ms", "-warmup", "0s", "-json"); code != 0 {
		t.Fatalf("customer-get: exit %d: %s", code, stderr)
	}

	// While the server runs, a seed without -url refuses to touch the file.
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"-seed", "5", "-data-dir", dir, "-key", key}, &out, &errOut); code != 1 ||
		!strings.Contains(errOut.String(), "still running") {
		t.Errorf("seed beside a running server: exit %d: %s", code, errOut.String())
	}

	// With -url: setup over HTTP, wait for the server to stop, then load.
	var seedOut, seedErr syncBuf
	seedDone := make(chan int, 1)
	go func() {
		seedDone <- run(context.Background(), []string{"-seed", "250", "-batch", "100", "-data-dir", dir, "-key", key, "-url", srv.url, "-json"}, &seedOut, &seedErr)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(seedErr.String(), "waiting for the server") {
		if time.Now().After(deadline) {
			t.Fatalf("seed never waited for the server: %s", seedErr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	srv.stop()
	select {
	case code := <-seedDone:
		if code != 0 {
			t.Fatalf("seed exit %d: %s", code, seedErr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("seed did not finish")
	}
	var sr seedResult
	if err := json.Unmarshal([]byte(seedOut.String()), &sr); err != nil {
		t.Fatalf("seed output %q: %v", seedOut.String(), err)
	}
	if sr.Customers != 250 || sr.Rows != 500 || sr.FirstRef != 1 || sr.VaultToken == "" || sr.RowsPS <= 0 {
		t.Errorf("seed result = %+v", sr)
	}

	// Without -url, on the stopped server: 50 more, references going on.
	out.Reset()
	errOut.Reset()
	if code := run(context.Background(), []string{"-seed", "50", "-data-dir", dir, "-key", key}, &out, &errOut); code != 0 ||
		!strings.Contains(out.String(), "customers=50 rows=100 ") || !strings.Contains(out.String(), "references=REF-251..REF-300") {
		t.Fatalf("second seed: exit %d: %s %s", code, out.String(), errOut.String())
	}

	srv = startServer(t, dir)
	if n, _ := list(t, srv, key, "/v1/customers?limit=1"); n != 301 {
		t.Errorf("count = %d, want 1 + 250 + 50", n)
	}
	n, data := list(t, srv, key, "/v1/customers?reference=REF-42")
	if n != 1 || len(data) != 1 {
		t.Fatalf("reference=REF-42: count %d, %d rows", n, len(data))
	}
	c := data[0]
	src, _ := c["payment_sources"].([]any)
	if len(src) != 1 || c["default_source"] == "" || src[0].(map[string]any)["_id"] != c["default_source"] ||
		src[0].(map[string]any)["vault_token"] != sr.VaultToken || src[0].(map[string]any)["card_number_last4"] != "4242" {
		t.Errorf("seeded customer = %v", c)
	}
	email, _ := c["email"].(string)
	if !strings.Contains(email, "42@") || c["first_name"] == "" || c["last_name"] == "" {
		t.Errorf("seeded customer text = %v", c)
	}
	// search matches the lower-cased joined fields, as the server writes them.
	if n, _ := list(t, srv, key, "/v1/customers?search="+strings.ToUpper(email)); n != 1 {
		t.Errorf("search=%s: count %d, want 1", email, n)
	}
	if n, _ := list(t, srv, key, "/v1/customers?search=ref-29"); n != 11 { // REF-29, REF-290…299
		t.Errorf("search=ref-29: count %d, want 11", n)
	}
	if n, _ := list(t, srv, key, "/v1/customers?company_name=Globex"); n == 0 {
		t.Error("company_name filter matches no seeded customer")
	}
}
