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
	"strconv"
	"strings"
	"time"
)

// wireClient is the timed run's HTTP/1.1 client: one keep-alive connection
// per worker and node, the request written in one system call from a
// reused buffer, the response read with a bufio.Reader and discarded as it
// arrives. It exists because the load tool shares the machine with the
// server it measures: net/http's client spent 65 to 85 µs of CPU per
// request (a third of two cores at 7,500 req/s) on connection pools,
// header maps and goroutines this loop never needs, and every microsecond
// of it was taken from the server. Setup requests still go through
// net/http.
//
// A wireClient belongs to one worker; it is not safe for concurrent use.
type wireClient struct {
	key   string
	conns map[string]*wireConn // by scheme://host
	req   []byte
}

type wireConn struct {
	nc   net.Conn
	br   *bufio.Reader
	stop func() bool // unregisters the context hook
}

// errWireProtocol marks a response this client cannot read (malformed, or
// a feature the server should not use on these requests).
var errWireProtocol = errors.New("malformed HTTP response")

func newWireClient(key string) *wireClient {
	return &wireClient{key: key, conns: make(map[string]*wireConn), req: make([]byte, 0, 1024)}
}

// close closes every connection.
func (c *wireClient) close() {
	for k, wc := range c.conns {
		wc.stop()
		wc.nc.Close()
		delete(c.conns, k)
	}
}

// do sends one request to rawURL (an absolute http or https URL) and reads
// the whole response. It returns the status and, when the status is not
// expect, up to 200 bytes of the body. Any error closes the connection;
// the next request dials a new one. A request still unanswered when ctx
// ends fails with an error wrapping os.ErrDeadlineExceeded or
// net.ErrClosed.
func (c *wireClient) do(ctx context.Context, method, rawURL string, body []byte, expect int) (int, []byte, error) {
	origin, path, ok := splitURL(rawURL)
	if !ok {
		return 0, nil, fmt.Errorf("unsupported URL %q", rawURL)
	}
	wc, err := c.conn(ctx, origin)
	if err != nil {
		return 0, nil, err
	}
	c.req = appendRequest(c.req[:0], method, origin, path, c.key, body)
	status, snip, keep, err := wc.roundTrip(c.req, expect)
	if err != nil || !keep {
		wc.stop()
		wc.nc.Close()
		delete(c.conns, origin)
	}
	return status, snip, err
}

func (c *wireClient) conn(ctx context.Context, origin string) (*wireConn, error) {
	if wc := c.conns[origin]; wc != nil {
		return wc, nil
	}
	tlsOn := strings.HasPrefix(origin, "https://")
	host := origin[strings.Index(origin, "://")+3:]
	addr := host
	if _, _, err := net.SplitHostPort(host); err != nil {
		if tlsOn {
			addr = net.JoinHostPort(host, "443")
		} else {
			addr = net.JoinHostPort(host, "80")
		}
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if tlsOn {
		name, _, err := net.SplitHostPort(addr)
		if err != nil {
			nc.Close()
			return nil, err
		}
		tc := tls.Client(nc, &tls.Config{ServerName: name})
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, err
		}
		nc = tc
	}
	wc := &wireConn{nc: nc, br: bufio.NewReaderSize(nc, 16<<10)}
	// The end of the run (or an interrupt) unblocks a request in flight.
	wc.stop = context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	c.conns[origin] = wc
	return wc, nil
}

// splitURL splits "http://host:port/path?q" into its origin and its
// request target ("/" when the URL has no path).
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
	// "HTTP/1.1 201 Created"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return 0, 0, false, false, errWireProtocol
	}
	status, err = strconv.Atoi(string(line[9:12]))
	if err != nil || status < 100 {
		return 0, 0, false, false, errWireProtocol
	}
	keep = line[7] == '1' // HTTP/1.0 closes unless told otherwise
	length = -1
	for {
		line, err := wc.line()
		if err != nil {
			return 0, 0, false, false, err
		}
		if len(line) == 0 {
			return status, length, chunked, keep, nil
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return 0, 0, false, false, errWireProtocol
		}
		name, value := line[:colon], bytes.TrimSpace(line[colon+1:])
		switch {
		case asciiEqualFold(name, "Content-Length"):
			n, err := strconv.ParseInt(string(value), 10, 64)
			if err != nil || n < 0 {
				return 0, 0, false, false, errWireProtocol
			}
			length = n
		case asciiEqualFold(name, "Transfer-Encoding"):
			chunked = asciiEqualFold(value, "chunked")
			if !chunked {
				return 0, 0, false, false, errWireProtocol
			}
		case asciiEqualFold(name, "Connection"):
			if asciiEqualFold(value, "close") {
				keep = false
			} else if asciiEqualFold(value, "keep-alive") {
				keep = true
			}
		}
	}
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
