package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// wireClient is the timed run's HTTP/1.1 client: one keep-alive connection
// per worker and node, the request written in one system call from a
// reused buffer, the response read with a bufio.Reader and discarded as it
// arrives. It exists because the load tool shares the machine with the
// server it measures: net/http's client spent 62 to 86 µs of CPU per
// request (a third of two cores at 7,500 req/s) on connection pools,
// header maps and goroutines this loop never needs, and every microsecond
// of it was taken from the server. Setup requests still go through
// net/http.
//
// Over https it speaks HTTP/1.1 only, where net/http's client would
// negotiate HTTP/2 and share one connection among the workers.
//
// A wireClient belongs to one worker; it is not safe for concurrent use.
type wireClient struct {
	ctx   context.Context // the run: its end unblocks every request in flight
	key   string
	tls   *tls.Config          // nil: the system's roots
	conns map[string]*wireConn // by scheme://host
	req   []byte
}

type wireConn struct {
	nc       net.Conn // raw, or TLS over it
	raw      net.Conn
	br       *bufio.Reader
	stop     func() bool // unregisters the context hook
	lastUsed time.Time
}

// idleCheck is how long a connection may sit unused before it is checked
// for a close by the server (an idle timeout) before its next request.
// A variable for tests.
var idleCheck = time.Second

// errWireProtocol marks a response this client cannot read (malformed, or
// a feature the server should not use on these requests).
var errWireProtocol = errors.New("malformed HTTP response")

// newWireClient returns a client for the run ctx: when ctx ends, a request
// in flight fails with a deadline error.
func newWireClient(ctx context.Context, key string) *wireClient {
	return &wireClient{ctx: ctx, key: key, conns: make(map[string]*wireConn), req: make([]byte, 0, 1024)}
}

// close closes every connection.
func (c *wireClient) close() {
	for origin := range c.conns {
		c.drop(origin)
	}
}

func (c *wireClient) drop(origin string) {
	if wc := c.conns[origin]; wc != nil {
		wc.stop()
		wc.nc.Close()
		delete(c.conns, origin)
	}
}

// do sends one request to rawURL (an absolute URL whose scheme is
// lower-case http or https, as parseFlags makes them) and reads the whole
// response. It returns the status and, when the status is not expect, up
// to 200 bytes of the body. Any error closes the connection; the next
// request dials a new one. A request still unanswered when the run's
// context ends fails with an error wrapping os.ErrDeadlineExceeded.
func (c *wireClient) do(method, rawURL string, body []byte, expect int) (int, []byte, error) {
	origin, path, ok := splitURL(rawURL)
	if !ok {
		return 0, nil, fmt.Errorf("unsupported URL %q", rawURL)
	}
	wc, err := c.conn(origin)
	if err != nil {
		return 0, nil, err
	}
	c.req = appendRequest(c.req[:0], method, origin, path, c.key, body)
	status, snip, keep, err := wc.roundTrip(c.req, expect)
	if err != nil || !keep {
		c.drop(origin)
	} else {
		wc.lastUsed = time.Now()
	}
	return status, snip, err
}

// conn returns the kept connection to origin if it is still usable, else
// a new one.
func (c *wireClient) conn(origin string) (*wireConn, error) {
	if wc := c.conns[origin]; wc != nil {
		if wc.usable() {
			return wc, nil
		}
		c.drop(origin)
	}
	u, err := url.Parse(origin)
	if err != nil {
		return nil, err
	}
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	var d net.Dialer
	nc, err := d.DialContext(c.ctx, "tcp", net.JoinHostPort(u.Hostname(), port))
	if err != nil {
		return nil, err
	}
	raw := nc
	if u.Scheme == "https" {
		cfg := c.tls.Clone()
		if cfg == nil {
			cfg = &tls.Config{}
		}
		cfg.ServerName = u.Hostname()
		cfg.NextProtos = []string{"http/1.1"}
		tc := tls.Client(nc, cfg)
		if err := tc.HandshakeContext(c.ctx); err != nil {
			nc.Close()
			return nil, err
		}
		nc = tc
	}
	wc := &wireConn{nc: nc, raw: raw, br: bufio.NewReaderSize(nc, 4<<10), lastUsed: time.Now()}
	// The end of the run (or an interrupt) unblocks a request in flight.
	wc.stop = context.AfterFunc(c.ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	c.conns[origin] = wc
	return wc, nil
}

// usable reports whether a kept connection can carry the next request:
// nothing unread is waiting on it (bytes between responses would be read
// as the next answer), and after an idle spell the server has not closed
// it (net/http's client learns that from its reader goroutine).
func (wc *wireConn) usable() bool {
	if wc.br.Buffered() > 0 {
		return false
	}
	return time.Since(wc.lastUsed) < idleCheck || quiet(wc.raw)
}

// splitURL splits "http://host:port/path?q" into its origin and its
// request target ("/" when the URL has no path). The scheme must be
// lower-case.
func splitURL(u string) (origin, path string, ok bool) {
	var rest string
	switch {
	case strings.HasPrefix(u, "http://"):
		rest = u[len("http://"):]
	case strings.HasPrefix(u, "https://"):
		rest = u[len("https://"):]
	default:
		return "", "", false
	}
	i := strings.IndexAny(rest, "/?")
	if i < 0 {
		return u, "/", rest != ""
	}
	origin = u[:len(u)-len(rest)+i]
	path = rest[i:]
	if path[0] == '?' {
		path = "/" + path
	}
	return origin, path, i > 0
}

// appendRequest appends the request's bytes: what net/http's client sends
// for these requests, less Accept-Encoding (nothing here is compressed).
func appendRequest(b []byte, method, origin, path, key string, body []byte) []byte {
	b = append(b, method...)
	b = append(b, ' ')
	b = append(b, path...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, origin[strings.Index(origin, "://")+3:]...)
	b = append(b, "\r\nUser-Agent: switchyard-load\r\nAccept: application/json\r\n"...)
	if key != "" {
		b = append(b, "x-user-secret-key: "...)
		b = append(b, key...)
		b = append(b, "\r\n"...)
	}
	if body != nil {
		b = append(b, "Content-Type: application/json\r\nContent-Length: "...)
		b = strconv.AppendInt(b, int64(len(body)), 10)
		b = append(b, "\r\n\r\n"...)
		return append(b, body...)
	}
	return append(b, "\r\n"...)
}

// roundTrip writes req and reads one response. keep reports whether the
// connection may carry another request.
func (wc *wireConn) roundTrip(req []byte, expect int) (status int, snip []byte, keep bool, err error) {
	if _, err := wc.nc.Write(req); err != nil {
		return 0, nil, false, err
	}
	var length int64
	var chunked bool
	for {
		status, length, chunked, keep, err = wc.readHead()
		if err != nil {
			return 0, nil, false, err
		}
		if status >= 200 {
			break
		}
		// 1xx: an interim response; the final one follows.
	}
	if status == 204 || status == 304 {
		return status, nil, keep, nil
	}
	want := 0
	if status != expect {
		want = 200
	}
	switch {
	case chunked:
		snip, err = wc.readChunked(want)
	case length >= 0:
		snip, err = wc.readN(length, want)
	default:
		// No length: the body runs to the end of the connection.
		snip, err = wc.readToEOF(want)
		keep = false
	}
	if err != nil {
		return 0, nil, false, err
	}
	return status, snip, keep, nil
}

// readHead reads a status line and headers. length is -1 when the response
// gives none.
func (wc *wireConn) readHead() (status int, length int64, chunked, keep bool, err error) {
	line, err := wc.line()
	if err != nil {
		return 0, 0, false, false, err
	}
	// "HTTP/1.1 201 Created" (the reason phrase may be empty)
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || (line[7] != '0' && line[7] != '1') ||
		line[8] != ' ' || (len(line) > 12 && line[12] != ' ') || !allDigits(line[9:12]) {
		return 0, 0, false, false, errWireProtocol
	}
	status = int(line[9]-'0')*100 + int(line[10]-'0')*10 + int(line[11]-'0')
	if status < 100 || status == 101 { // nothing here asks to switch protocols
		return 0, 0, false, false, errWireProtocol
	}
	keep = line[7] == '1' // HTTP/1.0 closes unless told otherwise
	length = -1
	var sawClose, sawKeepAlive bool
	for {
		line, err := wc.line()
		if err != nil {
			return 0, 0, false, false, err
		}
		if len(line) == 0 {
			if sawClose {
				keep = false
			} else if sawKeepAlive {
				keep = true
			}
			if chunked && length >= 0 {
				// RFC 9112 §6.3: a message with both may be an attack on
				// the framing; never read it as either.
				return 0, 0, false, false, errWireProtocol
			}
			return status, length, chunked, keep, nil
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || line[0] == ' ' || line[0] == '\t' || bytes.ContainsAny(line[:colon], " \t") {
			// No name, an obsolete folded line, or space before the colon
			// (RFC 9112 §5.1: reject).
			return 0, 0, false, false, errWireProtocol
		}
		name, value := line[:colon], bytes.TrimSpace(line[colon+1:])
		switch {
		case asciiEqualFold(name, "Content-Length"):
			if !allDigits(value) || len(value) > 18 {
				return 0, 0, false, false, errWireProtocol
			}
			n, _ := strconv.ParseInt(string(value), 10, 64)
			if length >= 0 && n != length {
				return 0, 0, false, false, errWireProtocol // differing lengths
			}
			length = n
		case asciiEqualFold(name, "Transfer-Encoding"):
			chunked = asciiEqualFold(value, "chunked")
			if !chunked {
				return 0, 0, false, false, errWireProtocol
			}
		case asciiEqualFold(name, "Connection"):
			for opt := range bytes.SplitSeq(value, []byte(",")) {
				opt = bytes.TrimSpace(opt)
				sawClose = sawClose || asciiEqualFold(opt, "close")
				sawKeepAlive = sawKeepAlive || asciiEqualFold(opt, "keep-alive")
			}
		}
	}
}

func allDigits(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// line reads one CRLF-terminated line without its terminator. The slice is
// valid until the next read.
func (wc *wireConn) line() ([]byte, error) {
	line, err := wc.br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, errWireProtocol
		}
		if errors.Is(err, io.EOF) {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return bytes.TrimRight(line, "\r\n"), nil
}

// readN consumes n body bytes, keeping the first want of them.
func (wc *wireConn) readN(n int64, want int) ([]byte, error) {
	var snip []byte
	if want > 0 {
		k := min(int64(want), n)
		snip = make([]byte, k)
		if _, err := io.ReadFull(wc.br, snip); err != nil {
			return nil, unexpectedEOF(err)
		}
		n -= k
	}
	for n > 0 {
		step := int(min(n, 1<<30))
		d, err := wc.br.Discard(step)
		n -= int64(d)
		if err != nil {
			return nil, unexpectedEOF(err)
		}
	}
	return snip, nil
}

// readChunked consumes a chunked body and its trailers.
func (wc *wireConn) readChunked(want int) ([]byte, error) {
	var snip []byte
	for {
		line, err := wc.line()
		if err != nil {
			return nil, err
		}
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i] // chunk extensions
		}
		size, err := strconv.ParseInt(string(bytes.TrimSpace(line)), 16, 64)
		if err != nil || size < 0 {
			return nil, errWireProtocol
		}
		if size == 0 {
			for { // trailers, then the blank line
				line, err := wc.line()
				if err != nil {
					return nil, err
				}
				if len(line) == 0 {
					return snip, nil
				}
			}
		}
		part, err := wc.readN(size, want-len(snip))
		if err != nil {
			return nil, err
		}
		snip = append(snip, part...)
		crlf, err := wc.line()
		if err != nil {
			return nil, err
		}
		if len(crlf) != 0 {
			return nil, errWireProtocol
		}
	}
}

func (wc *wireConn) readToEOF(want int) ([]byte, error) {
	snip := make([]byte, 0, want)
	for {
		if len(snip) < want {
			n, err := wc.br.Read(snip[len(snip):want])
			snip = snip[:len(snip)+n]
			if errors.Is(err, io.EOF) {
				return snip, nil
			}
			if err != nil {
				return nil, err
			}
			continue
		}
		_, err := wc.br.Discard(wc.br.Size())
		if errors.Is(err, io.EOF) {
			return snip, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

func unexpectedEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

func asciiEqualFold[T ~string | ~[]byte](a T, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(b); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
