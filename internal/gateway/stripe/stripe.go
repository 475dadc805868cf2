// Package stripe is the Stripe connector (spec §4.3): form-encoded calls to
// Stripe's REST API with the gateway's key, a pinned Stripe-Version, an
// Idempotency-Key sy_<transaction or source id>_<step> on every POST, a
// 30 s timeout per call and no retries.
//
// What is kept: the Stripe customer (cus_…) is the source's ref_token, the
// PaymentMethod (pm_…) its internal gateway reference, the PaymentIntent
// (pi_…) the charge's external_id, and a Refund (re_…) the refund
// transaction's external_id.
//
// Lookups (the reconciler's, spec §8.8) find our transactions at Stripe by
// metadata, never by re-sending them: a sale or authorisation by the
// PaymentIntent's metadata[switchyard_txn_id]; a capture, cancel or refund
// by a marker metadata[sy_op_<txn id>] = capture|cancel|refund that the
// connector writes on the PaymentIntent with the capture itself, or before
// sending the cancel or refund; a refund then by its own
// metadata[switchyard_txn_id] among the PaymentIntent's refunds.
//
// Card data never appears in an error or a log line, nor does the key.
package stripe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"switchyard/internal/contact"
	"switchyard/internal/gateway"
	"switchyard/internal/paydock"
	"switchyard/internal/vault"
)

// Settings of the connector.
const (
	// APIVersion is the pinned Stripe-Version header: the version of the
	// API description bundled with the stripe-mock used in tests.
	APIVersion = "2026-08-26.dahlia"
	// DefaultAPIBase is Stripe's API (--stripe-api-base).
	DefaultAPIBase = "https://api.stripe.com"
	// Timeout is the limit of every call.
	Timeout = 30 * time.Second
)

// maxBody caps a Stripe answer read into memory.
const maxBody = 1 << 20

// maxRemembered caps the in-memory table of operations awaiting a lookup.
const maxRemembered = 100_000

// Connector implements gateway.Connector for Stripe. It is safe for
// concurrent use.
type Connector struct {
	base    string
	hc      *http.Client
	timeout time.Duration
	nonce   func() string

	mu  sync.Mutex
	ops map[string]opRef // txn id → what was asked of Stripe
}

// opRef is a capture, cancel or refund this process sent: lookups of it
// need no search.
type opRef struct {
	kind string // capture, cancel, refund
	pi   string
	re   string // refund id, once Stripe answered
}

var _ gateway.Connector = (*Connector)(nil)

// New returns a connector calling base (DefaultAPIBase when empty) with hc
// (a client with a 30 s timeout when nil).
func New(base string, hc *http.Client) *Connector {
	if base == "" {
		base = DefaultAPIBase
	}
	if hc == nil {
		hc = &http.Client{Timeout: Timeout}
	}
	return &Connector{base: strings.TrimRight(base, "/"), hc: hc, timeout: Timeout,
		nonce: func() string { return paydock.NewID()[:8] }, ops: map[string]opRef{}}
}

// Step names of the Idempotency-Key.
func idemKey(id, step string) string { return "sy_" + id + "_" + step }

// opKey is the PaymentIntent metadata key marking an operation (at most 40
// characters for Stripe: 6 + a 24-hex id).
func opKey(txnID string) string { return "sy_op_" + txnID }

// request is one call.
type request struct {
	op     string // for errors, e.g. stripe.Charge
	method string
	path   string
	form   url.Values
	idem   string // Idempotency-Key (POST)
	money  bool   // no answer after sending = unknown outcome
}

// do sends r and decodes a 2xx answer into out (when not nil). A failure
// before the request was written is a gateway_error (nothing happened);
// no usable answer after it was written is gateway.ErrUnknownOutcome for
// calls that move money, else a gateway_error; a Stripe error answer is
// mapped by mapError.
func (c *Connector) do(ctx context.Context, key string, r request, out any) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var sent atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{WroteRequest: func(i httptrace.WroteRequestInfo) {
		if i.Err == nil {
			sent.Store(true)
		}
	}})
	u := c.base + r.path
	var body io.Reader
	if r.method == http.MethodGet {
		if len(r.form) > 0 {
			u += "?" + r.form.Encode()
		}
	} else {
		body = strings.NewReader(r.form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, body)
	if err != nil {
		return errNotSent(r.op, errors.New("invalid Stripe API base URL"))
	}
	// Without GetBody net/http cannot replay the POST on a reused
	// connection that closed: it would, since the request carries an
	// Idempotency-Key, and Stripe may still be running the first one.
	req.GetBody = nil
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Stripe-Version", APIVersion)
	req.Header.Set("User-Agent", "switchyard")
	req.Header.Set("Accept", "application/json")
	if r.method != http.MethodGet {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if r.idem != "" {
			req.Header.Set("Idempotency-Key", r.idem)
		}
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if !sent.Load() {
			return errNotSent(r.op, err)
		}
		return errNoAnswer(r.op, r.money, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return errNoAnswer(r.op, r.money, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		var env struct {
			Error *apiError `json:"error"`
		}
		if json.Unmarshal(data, &env) != nil || env.Error == nil {
			env.Error = &apiError{}
		}
		if r.money && outcomeUnknown(resp.StatusCode, *env.Error) {
			return errNoAnswer(r.op, true, mapError(r.op, resp.StatusCode, *env.Error))
		}
		return mapError(r.op, resp.StatusCode, *env.Error)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			if r.money {
				return errNoAnswer(r.op, true, err)
			}
			return newError(r.op, catUnknown, "invalid_response", "Stripe's answer could not be read", "", err)
		}
	}
	return nil
}

func (c *Connector) post(ctx context.Context, key, op, path string, form url.Values, idem string, money bool, out any) error {
	return c.do(ctx, key, request{op: op, method: http.MethodPost, path: path, form: form, idem: idem, money: money}, out)
}

func (c *Connector) get(ctx context.Context, key, op, path string, query url.Values, out any) error {
	return c.do(ctx, key, request{op: op, method: http.MethodGet, path: path, form: query}, out)
}

// Stripe objects, only the fields used.
type object struct {
	ID string `json:"id"`
}

type paymentIntent struct {
	ID               string            `json:"id"`
	Status           string            `json:"status"`
	Metadata         map[string]string `json:"metadata"`
	LastPaymentError *apiError         `json:"last_payment_error"`
}

type refund struct {
	ID            string            `json:"id"`
	Status        string            `json:"status"`
	FailureReason string            `json:"failure_reason"`
	Metadata      map[string]string `json:"metadata"`
}

// expandable is an id that Stripe may expand into an object.
type expandable string

func (e *expandable) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*e = ""
		return nil
	}
	var s string
	if json.Unmarshal(b, &s) == nil {
		*e = expandable(s)
		return nil
	}
	var o object
	if err := json.Unmarshal(b, &o); err != nil {
		return err
	}
	*e = expandable(o.ID)
	return nil
}

type customer struct {
	ID              string `json:"id"`
	InvoiceSettings struct {
		DefaultPaymentMethod expandable `json:"default_payment_method"`
	} `json:"invoice_settings"`
}

func setIf(f url.Values, k, v string) {
	if v != "" {
		f.Set(k, v)
	}
}

func path(format string, ids ...string) string {
	a := make([]any, len(ids))
	for i, id := range ids {
		a[i] = url.PathEscape(id)
	}
	return fmt.Sprintf(format, a...)
}

// createPaymentMethod is POST /v1/payment_methods: the card, a CVC only
// when one is at hand, and the billing details.
func (c *Connector) createPaymentMethod(ctx context.Context, op, key string, card vault.Card, name string, a vault.Address, idem string) (string, error) {
	f := url.Values{}
	f.Set("type", "card")
	f.Set("card[number]", card.Number)
	f.Set("card[exp_month]", strconv.Itoa(card.ExpMonth))
	f.Set("card[exp_year]", strconv.Itoa(card.ExpYear))
	setIf(f, "card[cvc]", card.CCV)
	if card.Name != "" {
		name = card.Name
	}
	setIf(f, "billing_details[name]", name)
	line2 := a.Line2
	if a.Line3 != "" {
		// Stripe has two address lines.
		line2 = strings.TrimPrefix(line2+", "+a.Line3, ", ")
	}
	setIf(f, "billing_details[address][line1]", a.Line1)
	setIf(f, "billing_details[address][line2]", line2)
	setIf(f, "billing_details[address][city]", a.City)
	setIf(f, "billing_details[address][state]", a.State)
	setIf(f, "billing_details[address][postal_code]", a.Postcode)
	// Stripe takes ISO alpha-2 only; an alpha-3 code maps when known.
	setIf(f, "billing_details[address][country]", contact.Region(a.Country))
	var pm object
	if err := c.post(ctx, key, op, "/v1/payment_methods", f, idem, false, &pm); err != nil {
		return "", err
	}
	return pm.ID, nil
}

// StoreCard implements gateway.Connector: a PaymentMethod, then a Stripe
// customer holding it as default. With req.RefToken set it replaces the
// card of that customer instead.
func (c *Connector) StoreCard(ctx context.Context, req gateway.StoreRequest) (gateway.Stored, error) {
	const op = "stripe.StoreCard"
	if req.RefToken != "" {
		return c.replaceCard(ctx, req)
	}
	pm, err := c.createPaymentMethod(ctx, op, req.Key, req.Card, req.Name, req.Address, idemKey(req.SourceID, "pm"))
	if err != nil {
		return gateway.Stored{}, err
	}
	f := url.Values{}
	f.Set("payment_method", pm)
	f.Set("invoice_settings[default_payment_method]", pm)
	// Stripe's limits on a Customer (its API: name ≤ 256, phone ≤ 20
	// characters) are narrower than Switchyard's: a longer name is cut, a
	// longer (national, unnormalised) phone left out, rather than the card
	// refused. The customer's own record keeps both whole.
	setIf(f, "name", truncateRunes(req.Name, 256))
	setIf(f, "email", req.Email)
	if utf8.RuneCountInString(req.Phone) <= 20 {
		setIf(f, "phone", req.Phone)
	}
	setIf(f, "metadata[switchyard_customer_id]", req.CustomerID)
	setIf(f, "metadata[switchyard_payment_source_id]", req.SourceID)
	var cus object
	if err := c.post(ctx, req.Key, op, "/v1/customers", f, idemKey(req.SourceID, "customer"), false, &cus); err != nil {
		return gateway.Stored{}, err
	}
	return gateway.Stored{RefToken: cus.ID, GatewayRef: pm}, nil
}

// replaceCard gives the source's Stripe customer a new default card: new
// PaymentMethod, attach, make it the default, detach the previous default.
// A source's card may be replaced several times, so the steps' keys carry
// a fresh nonce after the source id.
func (c *Connector) replaceCard(ctx context.Context, req gateway.StoreRequest) (gateway.Stored, error) {
	const op = "stripe.StoreCard"
	n := c.nonce()
	var cus customer
	if err := c.get(ctx, req.Key, op, path("/v1/customers/%s", req.RefToken), nil, &cus); err != nil {
		return gateway.Stored{}, err
	}
	old := string(cus.InvoiceSettings.DefaultPaymentMethod)
	pm, err := c.createPaymentMethod(ctx, op, req.Key, req.Card, req.Name, req.Address, idemKey(req.SourceID, "pm_"+n))
	if err != nil {
		return gateway.Stored{}, err
	}
	f := url.Values{"customer": {req.RefToken}}
	if err := c.post(ctx, req.Key, op, path("/v1/payment_methods/%s/attach", pm), f, idemKey(req.SourceID, "attach_"+n), false, nil); err != nil {
		return gateway.Stored{}, err
	}
	f = url.Values{"invoice_settings[default_payment_method]": {pm}}
	if err := c.post(ctx, req.Key, op, path("/v1/customers/%s", req.RefToken), f, idemKey(req.SourceID, "default_"+n), false, nil); err != nil {
		return gateway.Stored{}, err
	}
	if old != "" && old != pm {
		// The new card is in place; a failed detach leaves the old card
		// attached but unused, which harms nothing.
		_ = c.post(ctx, req.Key, op, path("/v1/payment_methods/%s/detach", old), url.Values{}, idemKey(req.SourceID, "detach_"+n), false, nil)
	}
	return gateway.Stored{RefToken: req.RefToken, GatewayRef: pm}, nil
}

// Charge implements gateway.Mover: a PaymentIntent confirmed at once, with
// manual capture for an authorisation. A stored source is charged off
// session on its Stripe customer; any other card becomes a PaymentMethod
// first.
func (c *Connector) Charge(ctx context.Context, req gateway.ChargeRequest) (string, error) {
	const op = "stripe.Charge"
	f := url.Values{}
	pm := req.GatewayRef
	if req.RefToken != "" {
		if pm == "" {
			var cus customer
			if err := c.get(ctx, req.Key, op, path("/v1/customers/%s", req.RefToken), nil, &cus); err != nil {
				return "", err
			}
			pm = string(cus.InvoiceSettings.DefaultPaymentMethod)
			if pm == "" {
				return "", newError(op, catRequest, "missing_payment_method", "the Stripe customer has no default payment method", "", nil)
			}
		}
		f.Set("customer", req.RefToken)
		f.Set("off_session", "true")
	} else {
		var err error
		if pm, err = c.createPaymentMethod(ctx, op, req.Key, req.Card, "", vault.Address{}, idemKey(req.TxnID, "pm")); err != nil {
			return "", err
		}
	}
	amount, err := stripeAmount(op, req.Amount, req.Currency)
	if err != nil {
		return "", err
	}
	f.Set("amount", amount)
	f.Set("currency", strings.ToLower(req.Currency))
	f.Set("payment_method", pm)
	f.Set("confirm", "true")
	f.Set("payment_method_types[]", "card")
	if req.Capture {
		f.Set("capture_method", "automatic")
	} else {
		f.Set("capture_method", "manual")
	}
	setIf(f, "description", req.Description)
	setIf(f, "metadata[switchyard_charge_id]", req.ChargeID)
	f.Set("metadata[switchyard_txn_id]", req.TxnID)
	var pi paymentIntent
	if err := c.post(ctx, req.Key, op, "/v1/payment_intents", f, idemKey(req.TxnID, "pi"), true, &pi); err != nil {
		return "", err
	}
	if pi.Status == "processing" {
		return pi.ID, fmt.Errorf("%s: payment intent processing: %w", op, gateway.ErrUnknownOutcome)
	}
	if err := intentRefusal(op, pi); err != nil {
		return pi.ID, err // the refused intent is Stripe's record of the attempt
	}
	return pi.ID, nil
}

// intentRefusal maps a PaymentIntent's status after confirmation (spec
// §4.3): nil for succeeded and requires_capture, a refusal otherwise
// (processing is the caller's to handle).
func intentRefusal(op string, pi paymentIntent) error {
	switch pi.Status {
	case "succeeded", "requires_capture":
		return nil
	case "requires_payment_method":
		if e := pi.LastPaymentError; e != nil && e.Type == "card_error" {
			return mapError(op, http.StatusPaymentRequired, *e)
		}
		return decline(op, catDeclined, "requires_payment_method", "the payment method was declined")
	case "requires_action":
		return decline(op, catDeclined, "authentication_required",
			"the card requires authentication, which an off-session charge cannot complete")
	case "canceled":
		return decline(op, catDeclined, "canceled", "the payment intent was canceled")
	}
	return decline(op, catUnknown, pi.Status, "unexpected payment intent status "+strconv.Quote(pi.Status))
}

// Capture implements gateway.Mover: POST /v1/payment_intents/{pi}/capture.
// The capture writes its marker in the same call.
func (c *Connector) Capture(ctx context.Context, req gateway.OpRequest) error {
	const op = "stripe.Capture"
	amount, err := stripeAmount(op, req.Amount, req.Currency)
	if err != nil {
		return err
	}
	f := url.Values{}
	f.Set("amount_to_capture", amount)
	f.Set("metadata["+opKey(req.TxnID)+"]", "capture")
	c.remember(req.TxnID, opRef{kind: "capture", pi: req.ExternalID})
	err = c.post(ctx, req.Key, op, path("/v1/payment_intents/%s/capture", req.ExternalID), f, idemKey(req.TxnID, "capture"), true, nil)
	if !errors.Is(err, gateway.ErrUnknownOutcome) {
		c.forget(req.TxnID)
	}
	return err
}

// mark writes the operation marker on the PaymentIntent before an
// operation whose own call cannot carry it; failing, it stops the
// operation with nothing done.
func (c *Connector) mark(ctx context.Context, op string, req gateway.OpRequest, kind string) error {
	f := url.Values{"metadata[" + opKey(req.TxnID) + "]": {kind}}
	return c.post(ctx, req.Key, op, path("/v1/payment_intents/%s", req.ExternalID), f, idemKey(req.TxnID, "mark"), false, nil)
}

// Cancel implements gateway.Mover: POST /v1/payment_intents/{pi}/cancel,
// after the marker.
func (c *Connector) Cancel(ctx context.Context, req gateway.OpRequest) error {
	const op = "stripe.Cancel"
	if err := c.mark(ctx, op, req, "cancel"); err != nil {
		return err
	}
	c.remember(req.TxnID, opRef{kind: "cancel", pi: req.ExternalID})
	err := c.post(ctx, req.Key, op, path("/v1/payment_intents/%s/cancel", req.ExternalID), url.Values{}, idemKey(req.TxnID, "cancel"), true, nil)
	if !errors.Is(err, gateway.ErrUnknownOutcome) {
		c.forget(req.TxnID)
	}
	return err
}

// Refund implements gateway.Mover: POST /v1/refunds, after the marker. The
// refund is settled by a later Lookup.
func (c *Connector) Refund(ctx context.Context, req gateway.OpRequest) (string, error) {
	const op = "stripe.Refund"
	amount, err := stripeAmount(op, req.Amount, req.Currency)
	if err != nil {
		return "", err
	}
	if err := c.mark(ctx, op, req, "refund"); err != nil {
		return "", err
	}
	f := url.Values{}
	f.Set("payment_intent", req.ExternalID)
	f.Set("amount", amount)
	f.Set("metadata[switchyard_txn_id]", req.TxnID)
	c.remember(req.TxnID, opRef{kind: "refund", pi: req.ExternalID})
	var re refund
	err = c.post(ctx, req.Key, op, "/v1/refunds", f, idemKey(req.TxnID, "refund"), true, &re)
	if err != nil {
		if !errors.Is(err, gateway.ErrUnknownOutcome) {
			c.forget(req.TxnID)
		}
		return "", err
	}
	if l := refundLookup(op, re); l.Decline != nil {
		c.forget(req.TxnID)
		return "", newError(op, l.Decline.Code, l.Decline.GatewayCode, l.Decline.GatewayDescription, "", nil)
	}
	c.remember(req.TxnID, opRef{kind: "refund", pi: req.ExternalID, re: re.ID})
	return re.ID, nil
}

// Lookup implements gateway.Mover. It finds the transaction by our
// reference and never re-sends it: operations this process sent are
// looked up directly; otherwise PaymentIntent search finds a charge by
// metadata[switchyard_txn_id], then an operation by its marker. Not found
// at all is Lookup{Found: false}.
func (c *Connector) Lookup(ctx context.Context, _ gateway.Gateway, key, txnID string) (gateway.Lookup, error) {
	if ref, ok := c.recall(txnID); ok {
		l, err := c.lookupOp(ctx, key, txnID, ref, nil)
		if err == nil && l.Found && !l.Pending {
			c.forget(txnID)
		}
		return l, err
	}
	const op = "stripe.Lookup"
	pis, err := c.search(ctx, key, "metadata['switchyard_txn_id']:'"+quote(txnID)+"'")
	if err != nil {
		return gateway.Lookup{}, err
	}
	for _, pi := range pis {
		if v, ok := pi.Metadata["switchyard_txn_id"]; ok && v != txnID {
			continue
		}
		return intentLookup(op, pi), nil
	}
	k := quote(opKey(txnID))
	pis, err = c.search(ctx, key, fmt.Sprintf("metadata['%s']:'capture' OR metadata['%s']:'cancel' OR metadata['%s']:'refund'", k, k, k))
	if err != nil {
		return gateway.Lookup{}, err
	}
	for _, pi := range pis {
		kind := pi.Metadata[opKey(txnID)]
		if kind == "" {
			continue
		}
		return c.lookupOp(ctx, key, txnID, opRef{kind: kind, pi: pi.ID}, &pi)
	}
	return gateway.Lookup{}, nil
}

// quote escapes a value for Stripe's search query language.
func quote(s string) string {
	return strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s)
}

func (c *Connector) search(ctx context.Context, key, query string) ([]paymentIntent, error) {
	var res struct {
		Data []paymentIntent `json:"data"`
	}
	q := url.Values{"query": {query}, "limit": {"10"}}
	if err := c.get(ctx, key, "stripe.Lookup", "/v1/payment_intents/search", q, &res); err != nil {
		return nil, err
	}
	return res.Data, nil
}

// intentLookup is what a PaymentIntent says of the sale or authorisation
// that created it.
func intentLookup(op string, pi paymentIntent) gateway.Lookup {
	l := gateway.Lookup{Found: true, ExternalID: pi.ID}
	switch pi.Status {
	case "succeeded", "requires_capture":
		l.Succeeded = true
	case "processing":
		l.Pending = true
	default:
		l.Decline = declineOf(intentRefusal(op, pi))
	}
	return l
}

// lookupOp finds what became of a capture, cancel or refund on PaymentIntent
// ref.pi (pi, when already fetched).
func (c *Connector) lookupOp(ctx context.Context, key, txnID string, ref opRef, pi *paymentIntent) (gateway.Lookup, error) {
	const op = "stripe.Lookup"
	if ref.kind == "refund" {
		return c.lookupRefund(ctx, key, txnID, ref)
	}
	if pi == nil {
		pi = new(paymentIntent)
		if err := c.get(ctx, key, op, path("/v1/payment_intents/%s", ref.pi), nil, pi); err != nil {
			return gateway.Lookup{}, err
		}
	}
	marked := pi.Metadata[opKey(txnID)] == ref.kind
	l := gateway.Lookup{Found: true, ExternalID: pi.ID}
	unexpected := decline(op, catRequest, "payment_intent_unexpected_state", "the payment intent is "+pi.Status)
	switch ref.kind {
	case "capture":
		// The marker is written by the capture itself.
		switch {
		case pi.Status == "processing":
			l.Pending = true
		case marked || pi.Status == "succeeded":
			l.Succeeded = true
		case pi.Status == "requires_capture":
			return gateway.Lookup{}, nil // the capture never happened
		default:
			l.Decline = unexpected.Decline
		}
	case "cancel":
		switch pi.Status {
		case "canceled":
			l.Succeeded = true
		case "requires_capture":
			return gateway.Lookup{}, nil // the cancel never happened
		case "processing":
			l.Pending = true
		default:
			l.Decline = unexpected.Decline
		}
	default:
		return gateway.Lookup{}, fmt.Errorf("%s: unknown operation marker %q", op, ref.kind)
	}
	return l, nil
}

// lookupRefund reads the refund: by id when known, else among the
// PaymentIntent's refunds by metadata[switchyard_txn_id].
func (c *Connector) lookupRefund(ctx context.Context, key, txnID string, ref opRef) (gateway.Lookup, error) {
	const op = "stripe.Lookup"
	if ref.re != "" {
		var re refund
		if err := c.get(ctx, key, op, path("/v1/refunds/%s", ref.re), nil, &re); err != nil {
			return gateway.Lookup{}, err
		}
		return refundLookup(op, re), nil
	}
	q := url.Values{"payment_intent": {ref.pi}, "limit": {"100"}}
	for range 10 {
		var page struct {
			Data    []refund `json:"data"`
			HasMore bool     `json:"has_more"`
		}
		if err := c.get(ctx, key, op, "/v1/refunds", q, &page); err != nil {
			return gateway.Lookup{}, err
		}
		for _, re := range page.Data {
			if re.Metadata["switchyard_txn_id"] == txnID {
				return refundLookup(op, re), nil
			}
		}
		if !page.HasMore || len(page.Data) == 0 {
			return gateway.Lookup{}, nil // the refund never happened
		}
		q.Set("starting_after", page.Data[len(page.Data)-1].ID)
	}
	return gateway.Lookup{}, fmt.Errorf("%s: too many refunds on the payment intent", op)
}

// refundLookup maps a refund's status: succeeded → done; pending or
// requires_action → not settled; failed or canceled → refused.
func refundLookup(op string, re refund) gateway.Lookup {
	l := gateway.Lookup{Found: true, ExternalID: re.ID}
	switch re.Status {
	case "succeeded":
		l.Succeeded = true
	case "failed", "canceled":
		code := re.FailureReason
		if code == "" {
			code = "refund_" + re.Status
		}
		l.Decline = decline(op, catDeclined, code, "the refund "+re.Status).Decline
	default:
		l.Pending = true
	}
	return l
}

func (c *Connector) remember(txnID string, r opRef) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.ops[txnID]; ok || len(c.ops) < maxRemembered {
		c.ops[txnID] = r
	}
}

func (c *Connector) recall(txnID string) (opRef, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.ops[txnID]
	return r, ok
}

func (c *Connector) forget(txnID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.ops, txnID)
}

// stripeAmount writes an amount in ISO 4217 minor units (Switchyard's) as
// Stripe's API wants it (stripe.com/docs/currencies), where the two differ:
//   - ISK: ISO has no minor unit; Stripe keeps it two-decimal (100 is one
//     króna), whole krónur only;
//   - MGA: ISO has two decimals; Stripe is zero-decimal, whole ariary only;
//   - BHD, JOD, KWD, OMR, TND: three decimals on both, but Stripe takes only
//     amounts whose last digit is 0.
//
// An amount Stripe cannot take is refused before any call, as Stripe would
// refuse it (invalid_request_details), never rounded: that would change
// what the customer pays.
func stripeAmount(op string, minor int64, currency string) (string, error) {
	refuse := func(why string) (string, error) {
		return "", newError(op, catRequest, "invalid_charge_amount", why, "amount", nil)
	}
	switch strings.ToUpper(currency) {
	case "ISK":
		minor *= 100
	case "MGA":
		if minor%100 != 0 {
			return refuse("Stripe takes MGA in whole ariary")
		}
		minor /= 100
	case "BHD", "JOD", "KWD", "OMR", "TND":
		if minor%10 != 0 {
			return refuse("Stripe takes " + strings.ToUpper(currency) + " amounts in multiples of 0.010")
		}
	}
	return strconv.FormatInt(minor, 10), nil
}

// truncateRunes cuts s to at most n characters.
func truncateRunes(s string, n int) string {
	for i := range s {
		if n == 0 {
			return s[:i]
		}
		n--
	}
	return s
}

// NoRecordAfter implements gateway.RecordLag. Stripe's lookups of a
// PaymentIntent go through its search, which "can be up to an hour behind
// during outages" (Stripe's search documentation), and outages are when
// calls time out. So a charge Stripe has no record of stays inprogress for
// two hours, not the spec's 10 minutes (§4.3): failing a payment that did
// happen would invite the customer to pay twice.
func (c *Connector) NoRecordAfter() time.Duration { return 2 * time.Hour }

// LookupOp implements gateway.OpLookup: a capture or cancel is read off its
// PaymentIntent, a refund by its id or from the PaymentIntent's refunds,
// all reads by id (Stripe's search, which Lookup needs when only our
// reference is known, can lag an hour).
func (c *Connector) LookupOp(ctx context.Context, _ gateway.Gateway, key string, op gateway.OpRef) (gateway.Lookup, error) {
	l, err := c.lookupOp(ctx, key, op.TxnID, opRef{kind: op.Kind, pi: op.ChargeExternalID, re: op.ExternalID}, nil)
	if err == nil && l.Found && !l.Pending {
		c.forget(op.TxnID)
	}
	return l, err
}
