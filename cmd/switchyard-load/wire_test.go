package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestWireClientAgainstNetHTTP sends requests through the wire client to a
// real net/http server answering in every way net/http can frame a body.
func TestWireClientAgainstNetHTTP(t *testing.T) {
	big := strings.Repeat("x", 40<<10) // over every buffer: chunked, read in pieces
	mux := http.NewServeMux()
	mux.HandleFunc("/length", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"ok":true}`)
	})
	mux.HandleFunc("/chunked", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, big)
		w.(http.Flusher).Flush()
		io.WriteString(w, "tail")
	})
	mux.HandleFunc("/error", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, big, http.StatusInternalServerError) // chunked, and kept only in part
	})
	mux.HandleFunc("/short-error", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"status":400}`)
	})
	mux.HandleFunc("/close", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		io.WriteString(w, "bye")
	})
	mux.HandleFunc("/nocontent", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("/notmodified", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"x"`)
		w.WriteHeader(http.StatusNotModified)
	})
	mux.HandleFunc("/trailers", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, "body")
		w.Header().Set("X-Checksum", "abc")
	})
	mux.HandleFunc("/early-hints", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "final")
	})
	srv, dials := countingServer(mux, 0)
	defer srv.Close()

	c := newWireClient(context.Background(), "sk_test")
	defer c.close()
	tests := []struct {
		path      string
		expect    int
		status    int
		snip      string
		newDialed int64 // connections opened by this request
	}{
		{"/length", 201, 201, "", 1},
		{"/length", 201, 201, "", 0}, // kept alive
		{"/chunked", 200, 200, "", 0},
		{"/chunked", 201, 200, big[:200], 0},
		{"/error", 500, 500, "", 0},
		{"/error", 200, 500, big[:200], 0},
		{"/short-error", 201, 400, `{"status":400}`, 0},
		{"/nocontent", 204, 204, "", 0},
		{"/notmodified", 200, 304, "", 0},
		{"/trailers", 202, 202, "", 0},
		{"/trailers", 200, 202, "body", 0},
		{"/early-hints", 200, 200, "", 0},
		{"/early-hints", 201, 200, "final", 0},
		{"/close", 200, 200, "", 0},
		{"/length", 201, 201, "", 1}, // the server closed the last one
		{"/length?x=1", 201, 201, "", 0},
	}
	for i, tt := range tests {
		before := dials.Load()
		status, snip, err := c.do(http.MethodGet, srv.URL+tt.path, nil, tt.expect)
		if err != nil {
			t.Fatalf("%d %s: %v", i, tt.path, err)
		}
		if status != tt.status || string(snip) != tt.snip {
			t.Errorf("%d %s: status %d snippet %q, want %d %q", i, tt.path, status, snip, tt.status, tt.snip)
		}
		if got := dials.Load() - before; got != tt.newDialed {
			t.Errorf("%d %s: %d new connections, want %d", i, tt.path, got, tt.newDialed)
		}
	}
}

// TestClientsSendTheSameRequest: the server sees the same request from
// either client, but for User-Agent and net/http's Accept-Encoding.
func TestClientsSendTheSameRequest(t *testing.T) {
	type seen struct {
		Method, URI, Host, Proto, Body string
		ContentLength                  int64
		TransferEncoding               []string
		Close                          bool
		Header                         http.Header
	}
	got := make(chan seen, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		h := r.Header.Clone()
		h.Del("User-Agent")
		h.Del("Accept-Encoding")
		got <- seen{r.Method, r.RequestURI, r.Host, r.Proto, string(b), r.ContentLength, r.TransferEncoding, r.Close, h}
	}))
	defer srv.Close()
	hc := srv.Client()

	for _, tt := range []struct {
		method, path string
		body         []byte
	}{
		{http.MethodPost, "/v1/gateways", []byte(`{"type":"Simulator","name":"a"}`)},
		{http.MethodGet, "/v1/customers/abc?limit=2", nil},
		{http.MethodPost, "/v1/charges", []byte{}},
	} {
		wc := newWireClient(context.Background(), "sk_x")
		if _, _, err := wc.do(tt.method, srv.URL+tt.path, tt.body, 200); err != nil {
			t.Fatal(err)
		}
		wc.close()
		fromWire := <-got
		if _, _, err := netHTTPDo(context.Background(), hc, tt.method, srv.URL+tt.path, tt.body, "sk_x", 200); err != nil {
			t.Fatal(err)
		}
		fromNetHTTP := <-got
		if d := cmp.Diff(fromNetHTTP, fromWire); d != "" {
			t.Errorf("%s %s: wire request differs from net/http's (-net/http +wire):\n%s", tt.method, tt.path, d)
		}
	}
}

// TestWireClientBadResponses: a response the client cannot read is an
// error, never a status, and the connection is dropped.
func TestWireClientBadResponses(t *testing.T) {
	tests := []struct {
		name, answer string
		want         error
	}{
		{"garbage", "hello\r\n\r\n", errWireProtocol},
		{"bad status", "HTTP/1.1 2x1 Created\r\nContent-Length: 0\r\n\r\n", errWireProtocol},
		{"bad length", "HTTP/1.1 200 OK\r\nContent-Length: -4\r\n\r\n", errWireProtocol},
		{"header without colon", "HTTP/1.1 200 OK\r\nnonsense\r\n\r\n", errWireProtocol},
		{"gzip framing", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", errWireProtocol},
		{"four-digit status", "HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n", errWireProtocol},
		{"HTTP/1.2", "HTTP/1.2 200 OK\r\nContent-Length: 0\r\n\r\n", errWireProtocol},
		{"switching protocols", "HTTP/1.1 101 Switching Protocols\r\n\r\n", errWireProtocol},
		{"space before the colon", "HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok", errWireProtocol},
		{"folded header", "HTTP/1.1 200 OK\r\nX-A: 1\r\n  2\r\nContent-Length: 0\r\n\r\n", errWireProtocol},
		{"signed length", "HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok", errWireProtocol},
		{"differing lengths", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!", errWireProtocol},
		{"length and chunked", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", errWireProtocol},
		{"bad chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", errWireProtocol},
		{"chunk without CRLF", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n", errWireProtocol},
		{"hang-up in the head", "HTTP/1.1 200 OK\r\nContent-Le", io.ErrUnexpectedEOF},
		{"hang-up in the body", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", io.ErrUnexpectedEOF},
		{"hang-up in a chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\nabc", io.ErrUnexpectedEOF},
		{"hang-up before the answer", "", io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := oneShotServer(t, tt.answer)
			c := newWireClient(context.Background(), "")
			defer c.close()
			status, _, err := c.do(http.MethodGet, "http://"+addr+"/", nil, 200)
			if !errors.Is(err, tt.want) || status != 0 {
				t.Errorf("status %d err %v, want 0 and %v", status, err, tt.want)
			}
			if len(c.conns) != 0 {
				t.Errorf("connection kept after %v", err)
			}
		})
	}
}

// TestWireClientReadsToEOF: a response with neither length nor chunking
// ends with the connection.
func TestWireClientReadsToEOF(t *testing.T) {
	addr := oneShotServer(t, "HTTP/1.0 404 Not Found\r\n\r\nno such thing")
	c := newWireClient(context.Background(), "")
	status, snip, err := c.do(http.MethodGet, "http://"+addr+"/x", nil, 200)
	if err != nil || status != 404 || string(snip) != "no such thing" {
		t.Errorf("got %d %q %v", status, snip, err)
	}
	if len(c.conns) != 0 {
		t.Error("connection kept after a body read to its end")
	}
}

// TestWireClientDeadline: the end of the run unblocks a request the server
// never answers.
func TestWireClientDeadline(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		nc, err := ln.Accept()
		if err == nil {
			defer nc.Close()
			_, _ = io.Copy(io.Discard, nc) // never answers
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	c := newWireClient(ctx, "")
	defer c.close()
	start := time.Now()
	_, _, err = c.do(http.MethodGet, "http://"+ln.Addr().String()+"/", nil, 200)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("err = %v, want a deadline error", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("returned after %s", el)
	}
}

func TestSplitURL(t *testing.T) {
	tests := []struct {
		in, origin, path string
		ok               bool
	}{
		{"http://127.0.0.1:8080/v1/x", "http://127.0.0.1:8080", "/v1/x", true},
		{"http://h/v1/x?a=b", "http://h", "/v1/x?a=b", true},
		{"http://h", "http://h", "/", true},
		{"http://h?a=b", "http://h", "/?a=b", true},
		{"https://h:8443/", "https://h:8443", "/", true},
		{"ftp://h/", "", "", false},
		{"http:///x", "", "", false},
		{"http://", "", "", false},
	}
	for _, tt := range tests {
		origin, path, ok := splitURL(tt.in)
		if ok != tt.ok || (ok && (origin != tt.origin || path != tt.path)) {
			t.Errorf("splitURL(%q) = %q, %q, %v; want %q, %q, %v", tt.in, origin, path, ok, tt.origin, tt.path, tt.ok)
		}
	}
}

// oneShotServer accepts one connection, reads the request head, writes
// answer and hangs up.
func oneShotServer(t *testing.T, answer string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		br := bufio.NewReader(nc)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			if line == "\r\n" {
				break
			}
		}
		fmt.Fprint(nc, answer)
	}()
	return ln.Addr().String()
}

// TestWireClientRedialsAfterServerClose: a connection the server closed
// while it sat idle is not reused; the request goes on a new one.
func TestWireClientRedialsAfterServerClose(t *testing.T) {
	defer func(d time.Duration) { idleCheck = d }(idleCheck)
	idleCheck = 0
	srv, dials := countingServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}), 50*time.Millisecond)
	defer srv.Close()
	c := newWireClient(context.Background(), "")
	defer c.close()
	for i := range 3 {
		status, _, err := c.do(http.MethodPost, srv.URL+"/", []byte("{}"), 200)
		if err != nil || status != 200 {
			t.Fatalf("request %d: %d %v", i, status, err)
		}
		time.Sleep(300 * time.Millisecond) // the server closes the idle connection
	}
	if n := dials.Load(); n != 3 {
		t.Errorf("%d connections, want 3 (one per request after each idle close)", n)
	}
}

// TestWireClientDropsStrayBytes: bytes after a response are never read as
// the next request's answer, whether they came with it or after it.
func TestWireClientDropsStrayBytes(t *testing.T) {
	defer func(d time.Duration) { idleCheck = d }(idleCheck)
	idleCheck = 0
	for _, delay := range []time.Duration{0, 50 * time.Millisecond} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := 0; ; i++ {
				nc, err := ln.Accept()
				if err != nil {
					return
				}
				br := bufio.NewReader(nc)
				for { // read one request head (no body: GET)
					line, err := br.ReadString('\n')
					if err != nil || line == "\r\n" {
						break
					}
				}
				if i == 0 {
					io.WriteString(nc, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
					time.Sleep(delay)
					io.WriteString(nc, "HTTP/1.1 500 Stray\r\nContent-Length: 0\r\n\r\n")
				} else {
					io.WriteString(nc, "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
				}
				defer nc.Close()
			}
		}()
		c := newWireClient(context.Background(), "")
		url := "http://" + ln.Addr().String() + "/"
		first, _, err1 := c.do(http.MethodGet, url, nil, 200)
		time.Sleep(100 * time.Millisecond)
		second, _, err2 := c.do(http.MethodGet, url, nil, 201)
		c.close()
		ln.Close()
		<-done
		if err1 != nil || err2 != nil || first != 200 || second != 201 {
			t.Errorf("stray bytes after %s: got %d %v, then %d %v; want 200, then 201 on a new connection", delay, first, err1, second, err2)
		}
	}
}

// TestWireClientDeadlineMidBody: the end of the run also unblocks a
// response whose body stalls.
func TestWireClientDeadlineMidBody(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10")
		io.WriteString(w, "abc")
		w.(http.Flusher).Flush()
		<-release
	}))
	defer srv.Close()
	defer close(release) // before Close, which waits for the handler
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	c := newWireClient(ctx, "")
	defer c.close()
	if status, _, err := c.do(http.MethodGet, srv.URL+"/", nil, 200); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("got %d %v, want a deadline error", status, err)
	}
}

// TestWireClientTLS: https works, over HTTP/1.1.
func TestWireClientTLS(t *testing.T) {
	proto := make(chan string, 2)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proto <- r.Proto
		w.WriteHeader(http.StatusCreated)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	c := newWireClient(context.Background(), "")
	c.tls = srv.Client().Transport.(*http.Transport).TLSClientConfig
	defer c.close()
	for range 2 {
		status, _, err := c.do(http.MethodPost, srv.URL+"/v1/gateways", []byte("{}"), 201)
		if err != nil || status != 201 {
			t.Fatalf("got %d %v", status, err)
		}
		if p := <-proto; p != "HTTP/1.1" {
			t.Errorf("server saw %s, want HTTP/1.1", p)
		}
	}
	if len(c.conns) != 1 {
		t.Errorf("%d connections kept, want 1", len(c.conns))
	}
}

// TestURLForms: whatever -url spelling parseFlags accepts, both clients
// load with it; what they cannot use exits 2.
func TestURLForms(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	hostPort := strings.TrimPrefix(srv.URL, "http://")
	urls := []string{"HTTP://" + hostPort, "http://" + hostPort + "/"}
	if ln, err := net.Listen("tcp", "[::1]:0"); err == nil {
		v6 := httptest.NewUnstartedServer(srv.Config.Handler)
		v6.Listener.Close()
		v6.Listener = ln
		v6.Start()
		defer v6.Close()
		urls = append(urls, v6.URL)
	}
	for _, u := range urls {
		forClients(t, func(t *testing.T, client string) {
			res, code, stderr := runJSON(t, "-client", client, "-url", u, "-scenario", "get", "-path", "/x", "-c", "2", "-d", "100ms", "-warmup", "0s", "-json")
			if code != 0 || res.Requests == 0 || res.Errors != 0 {
				t.Errorf("-url %s: exit %d requests %d errors %d %v %s", u, code, res.Requests, res.Errors, res.ErrorSamples, stderr)
			}
		})
	}
	for _, args := range [][]string{
		{"-url", "http://user:pw@" + hostPort}, // and the error must not show the password
		{"-url", srv.URL + "?a=b"},
		{"-url", srv.URL, "-path", "/with space"},
		{"-url", srv.URL, "-path", "/line\r\nbreak"},
	} {
		args = append(args, "-scenario", "get", "-d", "10ms")
		if args[2] != "-path" {
			args = append(args, "-path", "/x")
		}
		_, code, stderr := runJSON(t, args...)
		if code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
		if strings.Contains(stderr, "pw@") {
			t.Errorf("%q: the error shows the URL's password: %s", args, stderr)
		}
	}
}

// countingServer starts h, closing connections idle for idle (0: never),
// and counts the connections it accepts.
func countingServer(h http.Handler, idle time.Duration) (*httptest.Server, *atomic.Int64) {
	dials := new(atomic.Int64)
	srv := httptest.NewUnstartedServer(h)
	srv.Config.IdleTimeout = idle
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			dials.Add(1)
		}
	}
	srv.Start()
	return srv, dials
}
