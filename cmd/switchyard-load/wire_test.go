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
	var dials atomic.Int64
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
	mux.HandleFunc("/early-hints", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "final")
	})
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			dials.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()

	c := newWireClient("sk_test")
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
		{"/early-hints", 200, 200, "", 0},
		{"/early-hints", 201, 200, "final", 0},
		{"/close", 200, 200, "", 0},
		{"/length", 201, 201, "", 1}, // the server closed the last one
		{"/length?x=1", 201, 201, "", 0},
	}
	for i, tt := range tests {
		before := dials.Load()
		status, snip, err := c.do(context.Background(), http.MethodGet, srv.URL+tt.path, nil, tt.expect)
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

// TestClientsSendTheSameRequest: the server sees the same method, target,
// headers that matter and body from either client.
func TestClientsSendTheSameRequest(t *testing.T) {
	type seen struct {
		Method, URI, Host, Key, ContentType, Accept, Body string
		ContentLength                                    int64
	}
	got := make(chan seen, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.Method, r.RequestURI, r.Host, r.Header.Get("x-user-secret-key"), r.Header.Get("Content-Type"),
			r.Header.Get("Accept"), string(b), r.ContentLength}
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
		wc := newWireClient("sk_x")
		if _, _, err := wc.do(context.Background(), tt.method, srv.URL+tt.path, tt.body, 200); err != nil {
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
			c := newWireClient("")
			defer c.close()
			status, _, err := c.do(context.Background(), http.MethodGet, "http://"+addr+"/", nil, 200)
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
	c := newWireClient("")
	status, snip, err := c.do(context.Background(), http.MethodGet, "http://"+addr+"/x", nil, 200)
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
	c := newWireClient("")
	defer c.close()
	start := time.Now()
	_, _, err = c.do(ctx, http.MethodGet, "http://"+ln.Addr().String()+"/", nil, 200)
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
