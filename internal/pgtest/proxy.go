package pgtest

import (
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// Proxy forwards TCP to the cluster until Cut, which closes the listener and
// every connection: to a node that is what a database restart looks like.
// Restore listens again on the same address.
type Proxy struct {
	Addr string // host:port to dial instead of the cluster's

	t        testing.TB
	upstream string
	mu       sync.Mutex
	ln       net.Listener
	conns    []net.Conn
	stalled  bool
	resumed  *sync.Cond // on mu: Resume or Cut
}

// NewProxy starts a proxy to the cluster; it is cut when t ends.
func (c *Cluster) NewProxy(t testing.TB) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Addr: ln.Addr().String(), t: t, upstream: fmt.Sprintf("127.0.0.1:%d", c.port)}
	p.resumed = sync.NewCond(&p.mu)
	p.serve(ln)
	t.Cleanup(p.Cut)
	return p
}

// URL returns the URL of database db through the proxy, with extra query
// parameters (e.g. "connect_timeout=2") when given.
func (p *Proxy) URL(db, extra string) string {
	u := "postgres://postgres@" + p.Addr + "/" + db + "?sslmode=disable"
	if extra != "" {
		u += "&" + extra
	}
	return u
}

func (p *Proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.DialTimeout("tcp", p.upstream, 2*time.Second)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go func() { p.copy(u, c); u.Close() }()
			go func() { p.copy(c, u); c.Close() }()
		}
	}()
}

// copy forwards src to dst, holding what it reads while the proxy stalls.
func (p *Proxy) copy(dst io.Writer, src io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			for p.stalled {
				p.resumed.Wait()
			}
			p.mu.Unlock()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// Stall keeps every connection open but forwards nothing: to a node that
// is a database that stopped answering (a frozen server, a dead network
// path), not one that went away.
func (p *Proxy) Stall() {
	p.mu.Lock()
	p.stalled = true
	p.mu.Unlock()
}

// Resume ends a Stall.
func (p *Proxy) Resume() {
	p.mu.Lock()
	p.stalled = false
	p.resumed.Broadcast()
	p.mu.Unlock()
}

// Cut closes the listener and every forwarded connection.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stalled = false
	p.resumed.Broadcast()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// Restore listens again on Addr (retrying while the port is released).
func (p *Proxy) Restore() {
	var ln net.Listener
	var err error
	for range 50 {
		if ln, err = net.Listen("tcp", p.Addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		p.t.Fatalf("proxy cannot listen again on %s: %v", p.Addr, err)
	}
	p.serve(ln)
}
