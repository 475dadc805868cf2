package stripe

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fake is a small stateful stand-in for the Stripe endpoints the connector
// calls: stripe-mock checks request shapes but answers fixed fixtures, so
// states, declines, idempotency and lookups are tested here (DESIGN.md,
// Tests). Declines follow Stripe's test card numbers.
type fake struct {
	t   *testing.T
	srv *httptest.Server
	key string // the only key accepted

	mu        sync.Mutex
	seq       int
	requests  []fakeRequest
	pms       map[string]*fakePM
	customers map[string]*fakeCustomer
	pis       map[string]*fakePI
	refunds   map[string]*fakeRefund
	idem      map[string]fakeIdem
	// injected answers, by "METHOD /path" (path without ids: /v1/payment_intents/*/capture)
	inject map[string][]injection
	// piStatus overrides the status of the next confirmed PaymentIntents.
	piStatus string
	// refundStatus is the status of new refunds ("" = succeeded).
	refundStatus string
}

type fakeRequest struct {
	Method, Path string
	Form         url.Values
	Header       http.Header
}

type fakeIdem struct {
	form   string
	status int
	body   []byte
}

// injection replaces or delays one answer. With act set the fake does the
// work first, then answers as injected (a timeout after the request was
// received and acted on).
type injection struct {
	status int
	body   string
	hang   time.Duration
	act    bool
}

type fakePM struct {
	ID, Number, CVC, Customer string
	ExpMonth, ExpYear         int
	Billing                   map[string]string
}

type fakeCustomer struct {
	ID, DefaultPM string
	Form          url.Values
}

type fakePI struct {
	ID, Status, Currency, Customer, PM, CaptureMethod string
	Amount, Received, Refunded                        int64
	Metadata                                          map[string]string
	LastError                                         map[string]any
}

type fakeRefund struct {
	ID, PI, Status string
	Amount         int64
	Metadata       map[string]string
}

const fakeKey = "sk_test_fake123"

func newFake(t *testing.T) *fake {
	f := &fake{t: t, key: fakeKey, pms: map[string]*fakePM{}, customers: map[string]*fakeCustomer{},
		pis: map[string]*fakePI{}, refunds: map[string]*fakeRefund{}, idem: map[string]fakeIdem{}, inject: map[string][]injection{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

// Stripe test cards and what confirming a PaymentIntent with them does.
var fakeDeclines = map[string]map[string]any{
	"4000000000000002": {"type": "card_error", "code": "card_declined", "decline_code": "generic_decline", "message": "Your card was declined."},
	"4000000000009995": {"type": "card_error", "code": "card_declined", "decline_code": "insufficient_funds", "message": "Your card has insufficient funds."},
	"4000000000009987": {"type": "card_error", "code": "card_declined", "decline_code": "lost_card", "message": "Your card was declined."},
	"4000000000009979": {"type": "card_error", "code": "card_declined", "decline_code": "stolen_card", "message": "Your card was declined."},
	"4100000000000019": {"type": "card_error", "code": "card_declined", "decline_code": "fraudulent", "message": "Your card was declined."},
	"4000000000000069": {"type": "card_error", "code": "expired_card", "message": "Your card has expired.", "param": "exp_month"},
	"4000000000000127": {"type": "card_error", "code": "incorrect_cvc", "message": "Your card's security code is incorrect.", "param": "cvc"},
	"4000000000000119": {"type": "card_error", "code": "processing_error", "message": "An error occurred while processing your card. Try again in a little bit."},
}

const card3DS = "4000002760003184" // requires_action off session

func (f *fake) url() string { return f.srv.URL }

// on queues an injected answer for "METHOD /pattern".
func (f *fake) on(route string, in injection) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inject[route] = append(f.inject[route], in)
}

func (f *fake) calls() []fakeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.requests)
}

func (f *fake) id(prefix string) string {
	f.seq++
	return fmt.Sprintf("%s_fake%06d", prefix, f.seq)
}

var idSegment = regexp.MustCompile(`^(pm|cus|pi|re)_[A-Za-z0-9]+$`)

// route is the request's path with object ids replaced by *.
func route(method, path string) string {
	parts := strings.Split(path, "/")
	for i, p := range parts {
		if idSegment.MatchString(p) {
			parts[i] = "*"
		}
	}
	return method + " " + strings.Join(parts, "/")
}

func stripeErr(status int, typ, code, msg, param string) (int, any) {
	e := map[string]any{"type": typ, "message": msg}
	if code != "" {
		e["code"] = code
	}
	if param != "" {
		e["param"] = param
	}
	return status, map[string]any{"error": e}
}

func (f *fake) serve(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	form := r.PostForm
	if r.Method == http.MethodGet {
		form = r.URL.Query()
	}
	rt := route(r.Method, r.URL.Path)
	f.mu.Lock()
	f.requests = append(f.requests, fakeRequest{Method: r.Method, Path: r.URL.Path, Form: form, Header: r.Header.Clone()})
	var inj *injection
	if q := f.inject[rt]; len(q) > 0 {
		inj, f.inject[rt] = &q[0], q[1:]
	}
	if inj != nil && !inj.act {
		f.mu.Unlock()
		time.Sleep(inj.hang)
		if inj.status != 0 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(inj.status)
			_, _ = w.Write([]byte(inj.body))
		}
		return
	}
	status, body := f.handle(r, rt, form)
	b, _ := json.Marshal(body) // under the lock: body shares the fake's maps
	f.mu.Unlock()
	if inj != nil {
		time.Sleep(inj.hang)
		if inj.status != 0 {
			w.WriteHeader(inj.status)
			_, _ = w.Write([]byte(inj.body))
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// handle runs with f.mu held.
func (f *fake) handle(r *http.Request, rt string, form url.Values) (int, any) {
	if r.Header.Get("Authorization") != "Bearer "+f.key {
		return stripeErr(401, "invalid_request_error", "", "Invalid API Key provided: sk_test_****", "")
	}
	if r.Method == http.MethodPost {
		if ct := r.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
			return stripeErr(400, "invalid_request_error", "", "bad content type "+ct, "")
		}
		if key := r.Header.Get("Idempotency-Key"); key != "" {
			enc := r.URL.Path + "?" + form.Encode()
			if prev, ok := f.idem[key]; ok {
				if prev.form != enc {
					return stripeErr(400, "idempotency_error", "", "Keys for idempotent requests can only be used with the same parameters they were first used with.", "")
				}
				var v any
				_ = json.Unmarshal(prev.body, &v)
				return prev.status, v
			}
			status, body := f.act(r, rt, form)
			b, _ := json.Marshal(body)
			f.idem[key] = fakeIdem{form: enc, status: status, body: b}
			return status, body
		}
	}
	return f.act(r, rt, form)
}

func (f *fake) pathID(r *http.Request, i int) string { return strings.Split(r.URL.Path, "/")[i] }

func (f *fake) act(r *http.Request, rt string, form url.Values) (int, any) {
	switch rt {
	case "POST /v1/payment_methods":
		if form.Get("type") != "card" {
			return stripeErr(400, "invalid_request_error", "parameter_missing", "Missing required param: type.", "type")
		}
		num := form.Get("card[number]")
		if len(num) < 12 {
			return stripeErr(402, "card_error", "invalid_number", "Your card number is invalid.", "number")
		}
		m, _ := strconv.Atoi(form.Get("card[exp_month]"))
		y, _ := strconv.Atoi(form.Get("card[exp_year]"))
		pm := &fakePM{ID: f.id("pm"), Number: num, CVC: form.Get("card[cvc]"), ExpMonth: m, ExpYear: y, Billing: map[string]string{}}
		for k := range form {
			if strings.HasPrefix(k, "billing_details") {
				pm.Billing[k] = form.Get(k)
			}
		}
		f.pms[pm.ID] = pm
		return 200, f.pmJSON(pm)
	case "POST /v1/customers":
		c := &fakeCustomer{ID: f.id("cus"), Form: form}
		if pm := form.Get("payment_method"); pm != "" {
			p, ok := f.pms[pm]
			if !ok {
				return stripeErr(400, "invalid_request_error", "resource_missing", "No such PaymentMethod: '"+pm+"'", "payment_method")
			}
			p.Customer = c.ID
		}
		c.DefaultPM = form.Get("invoice_settings[default_payment_method]")
		f.customers[c.ID] = c
		return 200, f.cusJSON(c)
	case "GET /v1/customers/*", "POST /v1/customers/*":
		c, ok := f.customers[f.pathID(r, 3)]
		if !ok {
			return stripeErr(404, "invalid_request_error", "resource_missing", "No such customer", "id")
		}
		if d := form.Get("invoice_settings[default_payment_method]"); r.Method == http.MethodPost && d != "" {
			if p, ok := f.pms[d]; !ok || p.Customer != c.ID {
				return stripeErr(400, "invalid_request_error", "resource_missing", "payment method not attached", "invoice_settings[default_payment_method]")
			}
			c.DefaultPM = d
		}
		return 200, f.cusJSON(c)
	case "POST /v1/payment_methods/*/attach", "POST /v1/payment_methods/*/detach":
		p, ok := f.pms[f.pathID(r, 3)]
		if !ok {
			return stripeErr(404, "invalid_request_error", "resource_missing", "No such PaymentMethod", "payment_method")
		}
		if strings.HasSuffix(rt, "attach") {
			if _, ok := f.customers[form.Get("customer")]; !ok {
				return stripeErr(400, "invalid_request_error", "resource_missing", "No such customer", "customer")
			}
			p.Customer = form.Get("customer")
		} else {
			p.Customer = ""
		}
		return 200, f.pmJSON(p)
	case "POST /v1/payment_intents":
		return f.createPI(form)
	case "GET /v1/payment_intents/*", "POST /v1/payment_intents/*":
		pi, ok := f.pis[f.pathID(r, 3)]
		if !ok {
			return stripeErr(404, "invalid_request_error", "resource_missing", "No such payment_intent", "intent")
		}
		mergeMetadata(pi.Metadata, form)
		return 200, f.piJSON(pi)
	case "POST /v1/payment_intents/*/capture":
		pi, ok := f.pis[f.pathID(r, 3)]
		if !ok {
			return stripeErr(404, "invalid_request_error", "resource_missing", "No such payment_intent", "intent")
		}
		if pi.Status != "requires_capture" {
			return stripeErr(400, "invalid_request_error", "payment_intent_unexpected_state", "This PaymentIntent could not be captured because it has a status of "+pi.Status+".", "")
		}
		amt := pi.Amount
		if s := form.Get("amount_to_capture"); s != "" {
			amt, _ = strconv.ParseInt(s, 10, 64)
		}
		if amt > pi.Amount {
			return stripeErr(400, "invalid_request_error", "amount_too_large", "amount_to_capture is greater than the amount capturable", "amount_to_capture")
		}
		mergeMetadata(pi.Metadata, form)
		pi.Status, pi.Received = "succeeded", amt
		return 200, f.piJSON(pi)
	case "POST /v1/payment_intents/*/cancel":
		pi, ok := f.pis[f.pathID(r, 3)]
		if !ok {
			return stripeErr(404, "invalid_request_error", "resource_missing", "No such payment_intent", "intent")
		}
		if pi.Status == "succeeded" || pi.Status == "canceled" {
			return stripeErr(400, "invalid_request_error", "payment_intent_unexpected_state", "You cannot cancel this PaymentIntent because it has a status of "+pi.Status+".", "")
		}
		pi.Status = "canceled"
		return 200, f.piJSON(pi)
	case "GET /v1/payment_intents/search":
		return f.search(form.Get("query"))
	case "POST /v1/refunds":
		pi, ok := f.pis[form.Get("payment_intent")]
		if !ok {
			return stripeErr(400, "invalid_request_error", "resource_missing", "No such payment_intent", "payment_intent")
		}
		amt, _ := strconv.ParseInt(form.Get("amount"), 10, 64)
		if pi.Status != "succeeded" {
			return stripeErr(400, "invalid_request_error", "charge_not_refundable", "This charge cannot be refunded", "")
		}
		if amt > pi.Received-pi.Refunded {
			return stripeErr(400, "invalid_request_error", "amount_too_large", "Refund amount is greater than unrefunded amount on charge", "amount")
		}
		st := f.refundStatus
		if st == "" {
			st = "succeeded"
		}
		re := &fakeRefund{ID: f.id("re"), PI: pi.ID, Status: st, Amount: amt, Metadata: map[string]string{}}
		mergeMetadata(re.Metadata, form)
		pi.Refunded += amt
		f.refunds[re.ID] = re
		return 200, f.refundJSON(re)
	case "GET /v1/refunds/*":
		re, ok := f.refunds[f.pathID(r, 3)]
		if !ok {
			return stripeErr(404, "invalid_request_error", "resource_missing", "No such refund", "id")
		}
		return 200, f.refundJSON(re)
	case "GET /v1/refunds":
		var data []any
		for _, re := range f.refunds {
			if re.PI == form.Get("payment_intent") {
				data = append(data, f.refundJSON(re))
			}
		}
		return 200, map[string]any{"object": "list", "data": data, "has_more": false}
	}
	return stripeErr(404, "invalid_request_error", "", "Unrecognized request URL ("+rt+")", "")
}

func mergeMetadata(md map[string]string, form url.Values) {
	for k := range form {
		if strings.HasPrefix(k, "metadata[") && strings.HasSuffix(k, "]") {
			md[k[len("metadata["):len(k)-1]] = form.Get(k)
		}
	}
}

func (f *fake) createPI(form url.Values) (int, any) {
	amt, err := strconv.ParseInt(form.Get("amount"), 10, 64)
	if err != nil || amt <= 0 {
		return stripeErr(400, "invalid_request_error", "parameter_invalid_integer", "Invalid integer", "amount")
	}
	if form.Get("currency") != strings.ToLower(form.Get("currency")) || len(form.Get("currency")) != 3 {
		return stripeErr(400, "invalid_request_error", "parameter_invalid_string", "Invalid currency", "currency")
	}
	if form.Get("currency") == "xxx" {
		return stripeErr(400, "invalid_request_error", "", "Invalid currency: xxx.", "currency")
	}
	pm, ok := f.pms[form.Get("payment_method")]
	if !ok {
		return stripeErr(400, "invalid_request_error", "resource_missing", "No such PaymentMethod", "payment_method")
	}
	if c := form.Get("customer"); c != "" && pm.Customer != c {
		return stripeErr(400, "invalid_request_error", "", "The provided PaymentMethod does not belong to the customer", "payment_method")
	}
	pi := &fakePI{ID: f.id("pi"), Amount: amt, Currency: form.Get("currency"), Customer: form.Get("customer"), PM: pm.ID,
		CaptureMethod: form.Get("capture_method"), Metadata: map[string]string{}}
	mergeMetadata(pi.Metadata, form)
	f.pis[pi.ID] = pi
	if form.Get("confirm") != "true" {
		pi.Status = "requires_confirmation"
		return 200, f.piJSON(pi)
	}
	if d, ok := fakeDeclines[pm.Number]; ok {
		pi.Status = "requires_payment_method"
		pi.LastError = d
		e := map[string]any{"payment_intent": f.piJSON(pi)}
		for k, v := range d {
			e[k] = v
		}
		return 402, map[string]any{"error": e}
	}
	switch {
	case f.piStatus != "":
		pi.Status = f.piStatus
	case pm.Number == card3DS:
		pi.Status = "requires_action"
	case pi.CaptureMethod == "manual":
		pi.Status = "requires_capture"
	default:
		pi.Status, pi.Received = "succeeded", amt
	}
	return 200, f.piJSON(pi)
}

var clause = regexp.MustCompile(`^metadata\['([^']+)'\]:'([^']*)'$`)

func (f *fake) search(q string) (int, any) {
	var conds [][2]string
	for _, c := range strings.Split(q, " OR ") {
		m := clause.FindStringSubmatch(strings.TrimSpace(c))
		if m == nil {
			return stripeErr(400, "invalid_request_error", "", "bad search query "+q, "query")
		}
		conds = append(conds, [2]string{m[1], m[2]})
	}
	data := []any{}
	for _, pi := range f.pis {
		for _, c := range conds {
			if pi.Metadata[c[0]] == c[1] {
				data = append(data, f.piJSON(pi))
				break
			}
		}
	}
	return 200, map[string]any{"object": "search_result", "data": data, "has_more": false}
}

func (f *fake) pmJSON(p *fakePM) map[string]any {
	var cus any
	if p.Customer != "" {
		cus = p.Customer
	}
	return map[string]any{"id": p.ID, "object": "payment_method", "type": "card", "customer": cus,
		"card": map[string]any{"last4": p.Number[len(p.Number)-4:], "exp_month": p.ExpMonth, "exp_year": p.ExpYear}}
}

func (f *fake) cusJSON(c *fakeCustomer) map[string]any {
	var d any
	if c.DefaultPM != "" {
		d = c.DefaultPM
	}
	return map[string]any{"id": c.ID, "object": "customer", "invoice_settings": map[string]any{"default_payment_method": d}}
}

func (f *fake) piJSON(p *fakePI) map[string]any {
	return map[string]any{"id": p.ID, "object": "payment_intent", "status": p.Status, "amount": p.Amount,
		"amount_received": p.Received, "currency": p.Currency, "metadata": p.Metadata, "last_payment_error": p.LastError}
}

func (f *fake) refundJSON(r *fakeRefund) map[string]any {
	return map[string]any{"id": r.ID, "object": "refund", "status": r.Status, "amount": r.Amount,
		"payment_intent": r.PI, "metadata": r.Metadata}
}
