package httpapi

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"switchyard/internal/auth"
	"switchyard/internal/charge"
	"switchyard/internal/errs"
	"switchyard/internal/idempotency"
	"switchyard/internal/paydock"
	"switchyard/internal/vault"
)

// authMode says which credential a route takes.
type authMode int

const (
	authNone   authMode = iota // operational endpoints
	authSecret                 // secret key only
	authPublic                 // public key or secret key (spec §2.1)
)

// handler serves one route: it returns the success status and the
// resource data, or an error (with data for charge failures).
type handler func(c *call) (int, any, error)

// route is one line of the API surface (routes.go).
type route struct {
	method  string
	pattern string // ServeMux path pattern, e.g. /v1/gateways/{id}
	rtype   string // resource.type
	auth    authMode
	// exists, when set, checks the path's object exists in the account
	// before the body is read (spec §3.4 step 3).
	exists func(c *call) error
	h      handler
	// resumed is the status a retry answers when the request it repeats
	// was interrupted after recording what it made or changed on its
	// idempotency claim (charge or customer); 0 where nothing is recorded.
	resumed int
}

// call is one request as handlers see it.
type call struct {
	ctx     context.Context
	r       *http.Request
	account auth.Account
	params  map[string]string
	query   url.Values
	body    paydock.Object
	raw     []byte
	// unsettled: the answer is a charge whose gateway outcome is not
	// recorded yet (the reconciler records it), so it is not stored under
	// an idempotency key: a retry answers the charge as it is by then.
	unsettled bool
}

func (c *call) param(name string) string { return c.params[name] }

// serve runs the request pipeline of spec §3.4 for route rt.
func (s *Server) serve(rt route, w http.ResponseWriter, r *http.Request) {
	ri := info(r.Context())
	c := &call{ctx: r.Context(), r: r, params: map[string]string{}}
	fail := func(err error) { s.writeError(w, r, err, rt.rtype, nil) }
	// A malformed query is refused, not read leniently: r.URL.Query() drops
	// a pair it cannot decode, and a dropped filter widens a search (and a
	// query_token signed from it) to the whole account.
	q, qerr := url.ParseQuery(r.URL.RawQuery)
	c.query = q

	// 2. authentication, before anything is read.
	if rt.auth != authNone {
		a, err := s.authenticate(r, rt.auth)
		if err != nil {
			fail(err)
			return
		}
		c.account = a
		ri.account = a.ID
	}
	// 3. path parameters: shape, then existence.
	for _, name := range pathParams(rt.pattern) {
		v := r.PathValue(name)
		if name == "token" {
			if !paydock.IsToken(v) {
				fail(errs.BadParam(name, name+" must be a uuid"))
				return
			}
		} else if !paydock.IsID(v) {
			fail(errs.BadParam(name, name+" must be a mongodb id"))
			return
		}
		c.params[name] = paydock.NormalizeID(v)
	}
	if rt.exists != nil {
		if err := rt.exists(c); err != nil {
			fail(err)
			return
		}
	}
	if qerr != nil {
		fail(errs.Query("", "the query string must be URL-encoded name=value pairs"))
		return
	}
	// Query values are text the stores keep or compare: U+0000 is refused
	// on both engines alike (PostgreSQL cannot hold it), in the parameters
	// Switchyard reads (their first value, §1.1); unknown ones are ignored,
	// and no client-chosen name is echoed.
	for _, name := range queryNames {
		if strings.ContainsRune(c.query.Get(name), 0) {
			fail(errs.Query(name, name+" must not contain the NUL character"))
			return
		}
	}
	// 4. body: POST and PUT only; GET and DELETE bodies are never read.
	if r.Method == http.MethodPost || r.Method == http.MethodPut {
		raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, paydock.MaxBody))
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				fail(&errs.Error{Kind: errs.TooLarge, Messages: []string{"request body exceeds 1 MiB"}})
				return
			}
			fail(&errs.Error{Kind: errs.Invalid, Messages: []string{paydock.ErrNotObject}, Err: err})
			return
		}
		body, err := paydock.ParseBody(raw)
		if err != nil {
			fail(err)
			return
		}
		c.raw, c.body = raw, body
	} else {
		c.body = paydock.Object{M: map[string]any{}}
	}
	// The request has arrived: the handler's work (gateway calls) is not
	// bounded by the read deadline (see Deps.ReadTimeout).
	if r.ContentLength != 0 {
		_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
	}
	// 5. idempotency, then 6–9 in the handler.
	if key := r.Header.Get("Idempotency-Key"); r.Method == http.MethodPost && (key != "" || len(r.Header.Values("Idempotency-Key")) > 0) {
		s.serveIdempotent(rt, c, key, w, r)
		return
	}
	res := s.run(rt, c, r)
	writeJSON(w, res.status, res.body)
}

// result is a rendered response and, for errors, the error's kind.
type result struct {
	status int
	body   []byte
	err    error
}

// run calls the handler and renders its outcome.
func (s *Server) run(rt route, c *call, r *http.Request) result {
	status, data, err := rt.h(c)
	if err != nil {
		st, body := s.renderError(r, err, rt.rtype, data)
		return result{st, body, err}
	}
	if l, ok := data.(paydock.List); ok {
		count, skip, limit := l.Count, l.Skip, l.Limit
		return result{status: status, body: encode(paydock.Envelope{Status: status, Resource: paydock.Resource{Type: rt.rtype, Data: l.Data,
			Count: &count, Skip: &skip, Limit: &limit, QueryToken: l.QueryToken}})}
	}
	return result{status: status, body: encode(paydock.Envelope{Status: status, Resource: paydock.Resource{Type: rt.rtype, Data: data}})}
}

// serveIdempotent wraps run with an Idempotency-Key (spec §9).
func (s *Server) serveIdempotent(rt route, c *call, key string, w http.ResponseWriter, r *http.Request) {
	if !idempotency.ValidKey(key) {
		s.writeError(w, r, &errs.Error{Kind: errs.Invalid, Message: "header validation failed", Path: "idempotency-key",
			Messages: []string{"idempotency-key must be 1 to 255 visible ASCII characters"}}, rt.rtype, nil)
		return
	}
	// The body as read: an empty body and null are {} (L10), so all
	// three are the same request.
	canon := paydock.Canonical(c.body.M)
	secret, err := s.Vault.Secret(c.ctx, c.account.ID, vault.IdempotencyKey)
	if err != nil {
		s.writeError(w, r, err, rt.rtype, nil)
		return
	}
	fp := idempotency.Fingerprint(secret, r.Method, r.URL.Path, r.URL.RawQuery, canon)
	// The public key is public (it sits in every storefront page): its
	// callers get keys of their own, or anyone could claim the key a
	// merchant's server is about to use for a charge.
	if r.Header.Get("X-User-Secret-Key") == "" {
		key = "public:" + key
	}
	claimedAt := s.Now()
	outcome, rec, err := idempotency.Begin(c.ctx, s.Idempotency, c.account.ID, key, fp, claimedAt)
	if err != nil {
		s.writeError(w, r, err, rt.rtype, nil)
		return
	}
	switch outcome {
	case idempotency.Replay:
		w.Header().Set("Idempotent-Replayed", "true")
		writeJSON(w, rec.Status, rec.Body)
		return
	case idempotency.Resume:
		// The first request was interrupted after it created its charge
		// or customer: that, as it is now (the reconciler settles a
		// charge), and nothing runs again.
		data, refused, err := s.created(c, rec)
		if err == nil && rt.resumed == 0 {
			err = errs.Wrap("httpapi.resume", errors.New("a claim of a route that records nothing holds a record"))
		}
		if err != nil {
			s.writeError(w, r, err, rt.rtype, nil)
			return
		}
		w.Header().Set("Idempotent-Replayed", "true")
		if refused != nil {
			s.writeError(w, r, refused, rt.rtype, data)
			return
		}
		writeJSON(w, rt.resumed, encode(paydock.Envelope{Status: rt.resumed,
			Resource: paydock.Resource{Type: rt.rtype, Data: data}}))
		return
	}
	c.ctx = idempotency.WithClaim(c.ctx, idempotency.Claim{Key: key, ClaimedAt: claimedAt})
	var cancel context.CancelFunc
	c.ctx, cancel = context.WithTimeout(c.ctx, s.ClaimedRunLimit)
	defer cancel()
	res := s.run(rt, c, r)
	// The outcome is recorded even if the client has gone away.
	ctx := context.WithoutCancel(c.ctx)
	// A failure the client's leaving caused (its context cancelled under a
	// gateway or database call: an internal or a gateway connection error)
	// is not the request's outcome: the key is freed, not bound to it. A
	// decline is the gateway's answer, kept whoever is still listening.
	gone := res.err != nil && c.ctx.Err() != nil && errs.KindOf(res.err) != errs.Declined
	keep := storable(res.err) && !gone && !c.unsettled
	settle := func(ctx context.Context) error {
		if keep {
			return s.Idempotency.FinishIdempotencyKey(ctx, c.account.ID, key, claimedAt, res.status, res.body)
		}
		return s.Idempotency.ReleaseIdempotencyKey(ctx, c.account.ID, key, claimedAt)
	}
	if err := settle(ctx); err != nil {
		log := info(c.ctx).log()
		log.Error("idempotency key not settled", "stored", keep, "err", err)
		// The database is away (the same outage that failed the request,
		// often): keep trying while the claim holds, so the key is free
		// (or answers) soon after it returns rather than answering 409
		// until the claim lapses. Past maxSettling keys at once the claim
		// simply lapses, as before.
		if errs.KindOf(err) == errs.Unavailable {
			if s.settling.Add(1) <= maxSettling {
				go func() {
					defer s.settling.Add(-1)
					retrySettle(ctx, settle, log)
				}()
			} else {
				s.settling.Add(-1)
			}
		}
	}
	writeJSON(w, res.status, res.body)
}

// maxSettling bounds the keys retried in the background at once: an outage
// under heavy keyed traffic must not pile up goroutines, nor a burst of
// writes when the database returns.
const maxSettling = 1024

// retrySettle runs settle every second until it succeeds, fails for a
// reason other than the database being away, or the claim's lock ends.
func retrySettle(ctx context.Context, settle func(context.Context) error, log *slog.Logger) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for end := time.Now().Add(idempotency.Lock); time.Now().Before(end); {
		<-t.C
		err := settle(ctx)
		if err == nil {
			log.Info("idempotency key settled after the database returned")
			return
		}
		if errs.KindOf(err) != errs.Unavailable {
			log.Error("idempotency key not settled", "err", err)
			return
		}
	}
}

// created is what an interrupted request recorded on its claim (the charge
// or customer it made or changed), as it is now. When the charge's latest
// transaction was refused, refused is the gateway's error, answered with
// the charge as the uninterrupted request would have been (spec §8.5).
func (s *Server) created(c *call, rec *idempotency.Record) (data any, refused, err error) {
	if rec.CustomerID != "" {
		cu, err := s.Customers.Get(c.ctx, c.account.ID, rec.CustomerID)
		if err != nil {
			return nil, nil, err
		}
		return toCustomerJSON(cu), nil, nil
	}
	ch, err := s.Charges.Get(c.ctx, c.account.ID, rec.ChargeID)
	if err != nil {
		return nil, nil, err
	}
	if n := len(ch.Transactions); n > 0 {
		if t := ch.Transactions[n-1]; t.Status == charge.TxnFailed && t.Decline != nil {
			refused = &errs.Error{Kind: errs.Declined, Op: "httpapi.resume", Decline: t.Decline}
		}
	}
	return toChargeJSON(ch), refused, nil
}

// storable: every success, every gateway error and every 500 is kept;
// other errors (and 503: the store may be down) leave the key free.
func storable(err error) bool {
	switch errs.KindOf(err) {
	case errs.Declined, errs.Gateway:
		return true
	case errs.Internal: // a nil error (success) reads as Internal too
		return true
	}
	return false
}

// authenticate applies spec §2.2: the first non-empty credential decides.
func (s *Server) authenticate(r *http.Request, mode authMode) (auth.Account, error) {
	if k := r.Header.Get("X-User-Secret-Key"); k != "" {
		return s.Auth.Authenticate(r.Context(), auth.SecretKey, k)
	}
	k := r.Header.Get("X-User-Public-Key")
	if k == "" {
		k = r.URL.Query().Get("public_key")
	}
	if k == "" || mode != authPublic {
		return auth.Account{}, auth.Forbidden()
	}
	return s.Auth.Authenticate(r.Context(), auth.PublicKey, k)
}

// pathParams lists the {names} of a pattern.
func pathParams(pattern string) []string {
	var out []string
	for _, seg := range strings.Split(pattern, "/") {
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
			out = append(out, strings.Trim(seg, "{}"))
		}
	}
	return out
}

// queryNames are the query parameters any endpoint reads.
var queryNames = []string{"skip", "limit", "sortkey", "sortdirection", "archived", "search", "id", "gateway_id",
	"payment_source_id", "customer_id", "reference", "company_name", "status", "created_at.from", "created_at.to",
	"query_token", "public_key", "capture", "type", "mode", "vault_type"}
