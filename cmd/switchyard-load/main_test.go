package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func runJSON(t *testing.T, args ...string) (result, int, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, &out, &errOut)
	var res result
	if code == 0 {
		if err := json.Unmarshal(out.Bytes(), &res); err != nil {
			t.Fatalf("JSON output does not parse: %v\n%s", err, out.String())
		}
	}
	return res, code, errOut.String()
}

func TestBare(t *testing.T) { forClients(t, testBare) }

// forClients runs a test once with each -client.
func forClients(t *testing.T, test func(t *testing.T, client string)) {
	for _, client := range []string{"wire", "net/http"} {
		t.Run(strings.ReplaceAll(client, "/", "-"), func(t *testing.T) { test(t, client) })
	}
}

func testBare(t *testing.T, client string) {
	before := runtime.NumGoroutine()
	start := time.Now()
	res, code, stderr := runJSON(t, "-scenario", "bare", "-client", client, "-c", "4", "-d", "300ms", "-warmup", "50ms", "-json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if res.Requests <= 0 {
		t.Errorf("requests = %d, want > 0", res.Requests)
	}
	if res.Errors != 0 {
		t.Errorf("errors = %d, want 0: %v", res.Errors, res.ErrorSamples)
	}
	if res.Scenario != "bare" || res.Concurrency != 4 || res.Duration != "300ms" {
		t.Errorf("result header = %+v", res)
	}
	if res.P50ms <= 0 || res.P50ms > res.P99ms || res.P99ms > res.MaxMs {
		t.Errorf("percentiles out of order: p50=%v p99=%v max=%v", res.P50ms, res.P99ms, res.MaxMs)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("run took %s, want about 350ms", el)
	}
	// Every goroutine the run started (workers, bare server, conns) ends.
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("goroutines: %d before, %d after", before, n)
	}
}

func TestBareOpenLoop(t *testing.T) { forClients(t, testBareOpenLoop) }

func testBareOpenLoop(t *testing.T, client string) {
	res, code, stderr := runJSON(t, "-client", client, "-scenario", "bare", "-c", "4", "-d", "400ms", "-warmup", "0s", "-rate", "200", "-json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	// 200/s for 0.4s is 80 arrivals; allow scheduling slack.
	if res.Requests < 50 || res.Requests > 90 || res.Errors != 0 {
		t.Errorf("requests=%d errors=%d, want ~80 and 0", res.Requests, res.Errors)
	}
}

func TestGetCountsServerErrors(t *testing.T) { forClients(t, testGetCountsServerErrors) }

func testGetCountsServerErrors(t *testing.T, client string) {
	var n, withKey atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("x-user-secret-key") == "sekret" {
			withKey.Add(1)
		}
		if r.URL.Path != "/v1/thing" {
			w.WriteHeader(http.StatusNotFound) // the reachability probe
			return
		}
		if n.Add(1)%2 == 0 {
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, `{"status":500,"error":{"message":"boom `+strings.Repeat("x", 300)+`"}}`)
			return
		}
		io.WriteString(w, `{"status":200,"error":null,"resource":{}}`)
	}))
	defer srv.Close()

	res, code, stderr := runJSON(t, "-client", client, "-url", srv.URL, "-key", "sekret", "-scenario", "get", "-path", "/v1/thing",
		"-c", "2", "-d", "300ms", "-warmup", "0s", "-json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if res.Errors == 0 || res.Errors >= res.Requests {
		t.Errorf("requests=%d errors=%d, want roughly half errors", res.Requests, res.Errors)
	}
	if len(res.ErrorSamples) != 1 || !strings.Contains(res.ErrorSamples[0], "status=500") {
		t.Fatalf("error samples = %q, want one status=500 sample", res.ErrorSamples)
	}
	if len(res.ErrorSamples[0]) > 300 {
		t.Errorf("error sample not truncated: %d chars", len(res.ErrorSamples[0]))
	}
	if !strings.Contains(stderr, "status=500") {
		t.Errorf("stderr lacks the error sample: %s", stderr)
	}
	if withKey.Load() < n.Load() {
		t.Errorf("x-user-secret-key sent on %d of %d requests", withKey.Load(), n.Load())
	}
}

func TestTextOutput(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"-scenario", "bare", "-c", "2", "-d", "100ms", "-warmup", "0s"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	line := out.String()
	for _, f := range []string{"scenario=bare ", "c=2 ", "duration=100ms ", "requests=", "errors=0 ", "rps=", "p50=", "p90=", "p99=", "max="} {
		if !strings.Contains(line, f) {
			t.Errorf("output %q lacks %q", line, f)
		}
	}
}

func TestSetupFlows(t *testing.T) {
	var customers atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/vault/payment_sources", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"status":201,"error":null,"resource":{"type":"payment_source","data":{"vault_token":"tok_1"}}}`)
	})
	mux.HandleFunc("POST /v1/customers", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			PaymentSource struct {
				VaultToken string `json:"vault_token"`
			} `json:"payment_source"`
		}
		if json.NewDecoder(r.Body).Decode(&body) != nil || body.PaymentSource.VaultToken != "tok_1" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		customers.Add(1)
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"status":201,"error":null,"resource":{"type":"customer","data":{"_id":"c1"}}}`)
	})
	mux.HandleFunc("GET /v1/customers/c1", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"status":200,"error":null,"resource":{"type":"customer","data":{"_id":"c1"}}}`)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	for _, sc := range []string{"customer-create-vault", "customer-get", "vault-create"} {
		res, code, stderr := runJSON(t, "-url", srv.URL, "-scenario", sc, "-c", "2", "-d", "150ms", "-warmup", "0s", "-json")
		if code != 0 || res.Requests == 0 || res.Errors != 0 {
			t.Errorf("%s: exit=%d requests=%d errors=%d samples=%q stderr=%s", sc, code, res.Requests, res.Errors, res.ErrorSamples, stderr)
		}
	}
}

func TestDistinctBodies(t *testing.T) {
	seen := map[string]bool{}
	var dup atomic.Int64
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			var body struct {
				Name, Email string
				Payment     struct {
					GatewayID string `json:"gateway_id"`
				} `json:"payment_source"`
			}
			if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Email == "" || body.Payment.GatewayID != "gw\"1" {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			mu.Lock()
			if seen[body.Email] {
				dup.Add(1)
			}
			seen[body.Email] = true
			mu.Unlock()
			w.WriteHeader(http.StatusCreated)
		}
	}))
	defer srv.Close()
	res, code, stderr := runJSON(t, "-url", srv.URL, "-scenario", "customer-create-card", "-gateway", `gw"1`,
		"-c", "4", "-d", "150ms", "-warmup", "20ms", "-json")
	if code != 0 || res.Requests == 0 || res.Errors != 0 {
		t.Fatalf("exit=%d requests=%d errors=%d samples=%q stderr=%s", code, res.Requests, res.Errors, res.ErrorSamples, stderr)
	}
	if dup.Load() != 0 {
		t.Errorf("%d duplicate emails", dup.Load())
	}
}

func TestUnreachableExits1(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, code, stderr := runJSON(t, "-url", "http://"+addr, "-scenario", "gateway-create", "-d", "100ms")
	if code != 1 {
		t.Errorf("exit %d, want 1: %s", code, stderr)
	}
}

func TestBadFlagsExit2(t *testing.T) {
	for _, args := range [][]string{
		{"-scenario", "bare", "-d", "11m"},
		{"-scenario", "bare", "-d", "0s"},
		{"-scenario", "bare", "-c", "0"},
		{"-scenario", "bare", "-rate", "-1"},
		{"-scenario", "nope"},
		{"-scenario", "gateway-create"},                                     // no -url
		{"-scenario", "get", "-url", "http://127.0.0.1:1"},                  // no -path
		{"-scenario", "customer-create-card", "-url", "http://127.0.0.1:1"}, // no -gateway
		{"-url", "127.0.0.1:8080"},
		{"-bogus"},
		{"-scenario", "bare", "extra"},
		{"-scenario", "bare", "-client", "curl"},
	} {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), args, &out, &errOut); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
}

// -url with several nodes: the workers share them out and every request
// keeps its path; the setup probe goes to the first.
func TestLoadSpreadsOverNodes(t *testing.T) { forClients(t, testLoadSpreadsOverNodes) }

func testLoadSpreadsOverNodes(t *testing.T, client string) {
	var hits [2]atomic.Int64
	var paths sync.Map
	srvs := make([]*httptest.Server, 2)
	for i := range srvs {
		srvs[i] = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits[i].Add(1)
			paths.Store(r.URL.Path, true)
			io.WriteString(w, `{"status":200,"error":null,"resource":{}}`)
		}))
		defer srvs[i].Close()
	}
	res, code, stderr := runJSON(t, "-client", client, "-url", srvs[0].URL+","+srvs[1].URL+"/", "-scenario", "get", "-path", "/v1/thing",
		"-c", "4", "-d", "200ms", "-warmup", "0s", "-json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if res.Errors != 0 || hits[0].Load() < 2 || hits[1].Load() < 2 {
		t.Fatalf("errors=%d, hits %d and %d: want both nodes loaded", res.Errors, hits[0].Load(), hits[1].Load())
	}
	paths.Range(func(k, _ any) bool {
		if p := k.(string); p != "/" && p != "/v1/thing" {
			t.Errorf("request to %q", p)
		}
		return true
	})
	if _, code, _ := runJSON(t, "-client", client, "-url", srvs[0].URL+",ftp://x", "-scenario", "get", "-path", "/v1/thing", "-d", "10ms"); code != 2 {
		t.Errorf("a bad second URL: exit %d, want 2", code)
	}
}
