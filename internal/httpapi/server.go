// Package httpapi is the only package that knows HTTP and the Paydock
// envelope: routing, authentication, body decoding, idempotency, CORS,
// metrics and the one error writer. Handlers are thin: decode, call a
// domain service, encode.
package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"switchyard/internal/auth"
	"switchyard/internal/charge"
	"switchyard/internal/customer"
	"switchyard/internal/errs"
	"switchyard/internal/gateway"
	"switchyard/internal/idempotency"
	"switchyard/internal/paydock"
	"switchyard/internal/vault"
)

// Deps are the services the API serves.
type Deps struct {
	Auth        *auth.Service
	Gateways    *gateway.Service
	Vault       *vault.Service
	Customers   *customer.Service
	Charges     *charge.Service
	Idempotency idempotency.Store
	Health      func(ctx context.Context) error
	Metrics     *Metrics
	Log         *slog.Logger
	Now         func() time.Time
	CORSOrigins []string
	// MetricsHandler serves /metrics on the main listener when non-nil.
	MetricsHandler http.Handler
	// OpenAPI is the served API description.
	OpenAPI []byte
	// ReadTimeout bounds how long a request may take to arrive, its body
	// included (default 30 s): a body trickled a byte at a time cannot hold
	// a connection. Once the body is read the deadline is lifted, so a
	// long handler (a gateway call) keeps its context: http.Server's own
	// ReadTimeout would cancel it (golang/go#70834).
	ReadTimeout time.Duration
	// RequestTimeout, when set, bounds a request's work: a database that
	// stops answering, rather than going away, then gives 503 instead of a
	// request that hangs. The app sets it for PostgreSQL (a local SQLite
	// file cannot stall that way, and the timer is a cost on every request).
	RequestTimeout time.Duration
	// ClaimedRunLimit bounds the work of a request holding an idempotency
	// claim (default idempotency.Lock less 15 s): it must end before its
	// claim can lapse, or a retry could take the key over and run the
	// same operation beside it.
	ClaimedRunLimit time.Duration
}

// Server is the HTTP API.
type Server struct {
	Deps
	mux     *http.ServeMux
	origins map[string]bool
	routes  []route
	// settling counts the idempotency keys retrySettle is trying to settle
	// (bounded by maxSettling).
	settling atomic.Int64
}

// New builds the server and its routes.
func New(d Deps) *Server {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.ClaimedRunLimit <= 0 {
		d.ClaimedRunLimit = idempotency.Lock - 15*time.Second
	}
	if d.ReadTimeout <= 0 {
		d.ReadTimeout = 30 * time.Second
	}

	if d.Log == nil {
		d.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Server{Deps: d, mux: http.NewServeMux(), origins: map[string]bool{}}
	for _, o := range d.CORSOrigins {
		if o = strings.TrimSpace(o); o != "" {
			s.origins[o] = true
		}
	}
	s.routes = s.routeTable()
	s.register()
	return s
}

// Routes lists the method and pattern of every /v1 route (for the OpenAPI check).
func (s *Server) Routes() [][2]string {
	out := make([][2]string, 0, len(s.routes))
	for _, r := range s.routes {
		out = append(out, [2]string{r.method, r.pattern})
	}
	return out
}

type ctxKey int

const reqInfoKey ctxKey = 1

// reqInfo travels with a request: its id, its account once known, and
// the route it matched. Its logger is built only when something is logged.
type reqInfo struct {
	id      string
	account string
	route   string
	base    *slog.Logger
	l       *slog.Logger
}

// log returns the request's logger, carrying its request id (and account).
func (ri *reqInfo) log() *slog.Logger {
	if ri.l == nil {
		ri.l = ri.base.With("request_id", ri.id)
		if ri.account != "" {
			ri.l = ri.l.With("account", ri.account)
		}
	}
	return ri.l
}

func info(ctx context.Context) *reqInfo {
	if ri, ok := ctx.Value(reqInfoKey).(*reqInfo); ok {
		return ri
	}
	return &reqInfo{id: "-", base: slog.Default()}
}

func requestID(h string) string {
	if len(h) >= 1 && len(h) <= 128 {
		ok := true
		for i := 0; i < len(h); i++ {
			if h[i] < 0x21 || h[i] > 0x7e {
				ok = false
				break
			}
		}
		if ok {
			return h
		}
	}
	return uuid.NewString()
}

// ServeHTTP implements http.Handler: request id, recovery, logging and
// metrics around the router. One trailing slash is ignored.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	ri := &reqInfo{id: requestID(r.Header.Get("X-Request-Id"))}
	ri.base = s.Log
	ctx := context.WithValue(r.Context(), reqInfoKey, ri)
	if s.RequestTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.RequestTimeout)
		defer cancel()
	}
	r = r.WithContext(ctx)
	// An escaped slash (%2F) is not a trailing slash: that path is exact,
	// and unknown (the path.Clean check below).
	if p := r.URL.Path; len(p) > 1 && strings.HasSuffix(p, "/") && strings.HasSuffix(r.URL.EscapedPath(), "/") {
		r.URL.Path = strings.TrimSuffix(p, "/")
		r.URL.RawPath = ""
	}
	// A body must arrive in time (lifted in serve once it is read); a
	// request refused before that keeps the deadline, which also bounds
	// the server's drain of an unread body. Most requests have none.
	if r.ContentLength != 0 {
		_ = http.NewResponseController(w).SetReadDeadline(start.Add(s.ReadTimeout))
	}
	rec := &statusWriter{ResponseWriter: w}
	w = rec
	w.Header().Set("X-Request-Id", ri.id)
	defer func() {
		method := methodLabel(r.Method)
		if p := recover(); p != nil {
			ri.log().Error("panic", "method", method, "route", ri.route, "panic", redactPanic(p))
			if !rec.wrote {
				s.writeError(w, r, &errs.Error{Kind: errs.Internal}, resourceTypeFor(r.URL.Path), nil)
			}
		}
		d := time.Since(start)
		route := ri.route
		if route == "" {
			route = "unmatched"
		}
		if s.Metrics != nil {
			s.Metrics.observe(method, route, rec.status, d)
		}
		if s.Log.Enabled(ctx, slog.LevelDebug) {
			ri.log().Debug("request", "method", method, "route", route, "status", rec.status, "duration_ms", float64(d.Microseconds())/1000)
		}
	}()
	if path.Clean(r.URL.Path) != r.URL.Path {
		// ServeMux would answer an HTML redirect; paths are exact (spec §1.1).
		s.writeError(w, r, &errs.Error{Kind: errs.NotFound}, "path", nil)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// redactPanic keeps a panic's type, never its value: a value may hold
// request data, card data included.
func redactPanic(p any) string { return fmt.Sprintf("value of type %T", p) }

type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// encode renders an envelope.
func encode(env paydock.Envelope) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(env); err != nil {
		return []byte(`{"status":500,"error":{"message":"internal error","code":"SystemError","details":{"path":"","messages":[]}},"resource":{"type":"` + env.Resource.Type + `"},"error_summary":{"message":"internal error","code":"system_error","details":{"path":"","messages":[]}}}`)
	}
	return buf.Bytes()
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// writeError logs the private cause of err and writes its Paydock body.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error, rtype string, data any) {
	status, body := s.renderError(r, err, rtype, data)
	writeJSON(w, status, body)
}

func (s *Server) renderError(r *http.Request, err error, rtype string, data any) (int, []byte) {
	ri := info(r.Context())
	status, env := errorEnvelope(err, rtype, ri.id, data)
	switch {
	case status == http.StatusServiceUnavailable:
		// The store is unreachable, or the client went away mid-request.
		ri.log().Warn("request not served", "method", r.Method, "route", ri.route, "status", status, "err", err)
	case status >= 500:
		ri.log().Error("request failed", "method", r.Method, "route", ri.route, "status", status, "err", err)
	}
	return status, encode(env)
}

// resourceTypeFor names the resource type of a path (spec §3.1).
func resourceTypeFor(path string) string {
	switch {
	case strings.HasPrefix(path, "/v1/gateways"):
		return "gateway"
	case strings.HasPrefix(path, "/v1/payment_sources/tokens"):
		return "token"
	case strings.HasPrefix(path, "/v1/vault"), strings.HasPrefix(path, "/v1/customers/payment_sources"):
		return "payment_source"
	case strings.HasPrefix(path, "/v1/customers"):
		return "customer"
	case strings.HasPrefix(path, "/v1/charges"):
		return "charge"
	case strings.HasPrefix(path, "/v1/services"):
		return "service"
	}
	return "path"
}

// methodLabel is the request method as metrics and logs show it: one of a
// fixed set. Any token is a valid method to net/http, so the client's own
// would make a new metrics series per request (memory without bound) and
// put client text, a card number even, into labels and logs.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return m
	}
	return "OTHER"
}
