package httpapi_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"switchyard/internal/apitest"
	"switchyard/internal/gateway"
	"switchyard/internal/store"
)

// Charge tests (spec §8). Helpers carry a ch prefix.

type chEnv struct {
	*apitest.Env
	clock    *chClock
	customer string
}

type chClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *chClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *chClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// newCH starts an API with a controllable clock and a flow-1 customer.
func newCH(t *testing.T) *chEnv {
	t.Helper()
	c := &chClock{t: time.Now().UTC()}
	e := &chEnv{Env: apitest.New(t, apitest.Options{Now: c.Now}), clock: c}
	r := e.Do("POST", "/v1/customers", map[string]any{"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com",
		"payment_source": map[string]any{"gateway_id": e.Gateway, "card_name": "Ada Lovelace", "card_number": "4111111111111111", "expire_month": 9, "expire_year": 2030}})
	if r.Status != 201 {
		t.Fatalf("customer: %d %s", r.Status, r.Raw)
	}
	e.customer = r.Data()["_id"].(string)
	return e
}

// counts returns charges, transactions and Simulator ledger rows: the
// ledger is what the gateway saw.
func (e *chEnv) counts() [3]int {
	e.T.Helper()
	var out [3]int
	for i, table := range []string{"charges", "charge_transactions", "simulator_ledger"} {
		eng := e.Store.Engine()
		if table == "simulator_ledger" {
			eng = e.Store.LedgerEngine()
		}
		if err := eng.Reader().QueryRowContext(context.Background(), "SELECT count(*) FROM "+table).Scan(&out[i]); err != nil {
			e.T.Fatal(err)
		}
	}
	return out
}

func (e *chEnv) charge(body map[string]any, query string) *apitest.Response {
	e.T.Helper()
	return e.Do("POST", "/v1/charges"+query, body)
}

func (e *chEnv) reconcile() {
	e.T.Helper()
	e.clock.Advance(time.Hour)
	if _, err := e.Services.Charges.ReconcileOnce(context.Background(), 100); err != nil {
		e.T.Fatal(err)
	}
}

func chStatus(t *testing.T, r *apitest.Response, http int, status string) map[string]any {
	t.Helper()
	if r.Status != http {
		t.Fatalf("HTTP %d, want %d: %s", r.Status, http, r.Raw)
	}
	d := r.Data()
	if d["status"] != status {
		t.Fatalf("charge status %v, want %s: %s", d["status"], status, r.Raw)
	}
	return d
}

func chTxns(d map[string]any) []string {
	var out []string
	for _, t := range d["transactions"].([]any) {
		m := t.(map[string]any)
		out = append(out, fmt.Sprintf("%s:%s:%v", m["type"], m["status"], m["amount"]))
	}
	return out
}

func TestChargeLifecycle(t *testing.T) {
	e := newCH(t)
	d := chStatus(t, e.charge(map[string]any{"amount": 30, "currency": "aud", "customer_id": e.customer, "reference": "ORD-1"}, "?capture=false"), 201, "pending")
	if d["authorization"] != true || d["capture"] != false || d["currency"] != "AUD" || d["captured_amount"] != 0.0 {
		t.Fatalf("authorisation fields: %v", d)
	}
	id := d["_id"].(string)
	d = chStatus(t, e.Do("POST", "/v1/charges/"+id+"/capture", map[string]any{"amount": "20.00"}), 201, "complete")
	if d["captured_amount"] != 20.0 {
		t.Fatalf("captured %v", d["captured_amount"])
	}
	d = chStatus(t, e.Do("POST", "/v1/charges/"+id+"/refunds", map[string]any{"amount": 5.5}), 200, "refund_requested")
	if d["refunded_amount"] != 5.5 {
		t.Fatalf("refunded %v", d["refunded_amount"])
	}
	e.reconcile()
	chStatus(t, e.Do("GET", "/v1/charges/"+id, nil), 200, "complete")
	d = chStatus(t, e.Do("POST", "/v1/charges/"+id+"/refunds", map[string]any{"amount": ""}), 200, "refund_requested")
	if d["refunded_amount"] != 20.0 {
		t.Fatalf("refunded %v", d["refunded_amount"])
	}
	e.reconcile()
	d = chStatus(t, e.Do("GET", "/v1/charges/"+id, nil), 200, "refunded")
	want := []string{"authorization:complete:30", "capture:complete:20", "refund:complete:5.5", "refund:complete:14.5"}
	if got := chTxns(d); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("transactions %v, want %v", got, want)
	}
	cu := e.Do("GET", "/v1/customers/"+e.customer, nil).Data()
	stats := cu["statistics"].(map[string]any)
	if stats["successful_transactions"] != 1.0 || stats["total_collected_amount"] != 20.0 {
		t.Fatalf("statistics %v", stats)
	}
}

func TestChargeStateMachine(t *testing.T) {
	e := newCH(t)
	auth := func() string {
		return chStatus(t, e.charge(map[string]any{"amount": "100.00", "currency": "AUD", "customer_id": e.customer, "capture": false}, ""), 201, "pending")["_id"].(string)
	}
	sale := chStatus(t, e.charge(map[string]any{"amount": "100.00", "currency": "AUD", "customer_id": e.customer}, ""), 201, "complete")["_id"].(string)
	cancelled := auth()
	chStatus(t, e.Do("DELETE", "/v1/charges/"+cancelled+"/capture", nil), 200, "cancelled")
	pending := auth()
	cases := []struct {
		name, method, path string
		body               any
		path2, msg         string
	}{
		{"capture a sale", "POST", "/v1/charges/" + sale + "/capture", nil, "", "charge cannot be captured in status complete"},
		{"capture a cancelled charge", "POST", "/v1/charges/" + cancelled + "/capture", nil, "", "charge cannot be captured in status cancelled"},
		{"cancel a sale", "DELETE", "/v1/charges/" + sale + "/capture", nil, "", "charge cannot be cancelled in status complete"},
		{"refund an authorisation", "POST", "/v1/charges/" + pending + "/refunds", nil, "", "charge cannot be refunded in status pending"},
		{"capture above the authorised amount", "POST", "/v1/charges/" + pending + "/capture", map[string]any{"amount": 100.01}, "amount", "amount exceeds the authorised amount"},
		{"refund above the captured amount", "POST", "/v1/charges/" + sale + "/refunds", map[string]any{"amount": "100.01"}, "amount", "amount exceeds the refundable amount"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := e.counts()
			r := e.Do(tc.method, tc.path, tc.body)
			code, msg, path, _ := r.ErrorDetails()
			if r.Status != 400 || code != "UnfulfilledCondition" || msg != tc.msg || path != tc.path2 {
				t.Fatalf("got %d %s %q %q: %s", r.Status, code, msg, path, r.Raw)
			}
			if after := e.counts(); after != before {
				t.Fatalf("something was written or the gateway was called: %v → %v", before, after)
			}
		})
	}
	// The double capture: the second one is refused.
	chStatus(t, e.Do("POST", "/v1/charges/"+pending+"/capture", nil), 201, "complete")
	r := e.Do("POST", "/v1/charges/"+pending+"/capture", nil)
	if _, msg, _, _ := r.ErrorDetails(); r.Status != 400 || msg != "charge cannot be captured in status complete" {
		t.Fatalf("double capture: %d %s", r.Status, r.Raw)
	}
}

func TestChargeBadInput(t *testing.T) {
	e := newCH(t)
	archived := e.Do("POST", "/v1/customers", map[string]any{"payment_source": map[string]any{"gateway_id": e.Gateway,
		"card_name": "A", "card_number": "4242424242424242", "expire_month": 1, "expire_year": 2031}}).Data()["_id"].(string)
	e.Do("DELETE", "/v1/customers/"+archived, nil)
	other, _, err := e.Services.Auth.Create(context.Background(), "Other")
	if err != nil {
		t.Fatal(err)
	}
	otherGW, err := e.Services.Gateways.Create(context.Background(), other.ID, gateway.Input{Type: gateway.Simulator, Name: "Theirs"})
	if err != nil {
		t.Fatal(err)
	}
	card := func(over map[string]any) map[string]any {
		ps := map[string]any{"gateway_id": e.Gateway, "card_name": "Ada", "card_number": "4111111111111111", "expire_month": 9, "expire_year": 2030}
		for k, v := range over {
			ps[k] = v
		}
		return map[string]any{"payment_source": ps}
	}
	cases := []struct {
		name  string
		body  map[string]any
		query string
		code  string
		path  string
		msg   string
	}{
		{"amount zero", map[string]any{"amount": 0, "currency": "AUD", "customer_id": e.customer}, "", "ValidationError", "amount", "amount must be greater than 0"},
		// A negative JSON number is a number ≤ 0 (§1.6); a signed string is not a number (§1.3).
		{"amount negative", map[string]any{"amount": -5, "currency": "AUD", "customer_id": e.customer}, "", "ValidationError", "amount", "amount must be greater than 0"},
		{"amount a signed string", map[string]any{"amount": "-5", "currency": "AUD", "customer_id": e.customer}, "", "ValidationError", "amount", "amount must be a number"},
		{"amount with an exponent, too precise", map[string]any{"amount": json.Number("1e-3"), "currency": "AUD", "customer_id": e.customer}, "", "ValidationError", "amount", "amount has more decimal places than AUD allows"},
		// Table order (§3.4 step 6, §8.1): amount, currency, capture, reference, …
		{"amount before a later type error", map[string]any{"amount": 0, "currency": "AUD", "reference": 5, "customer_id": e.customer}, "", "ValidationError", "amount", "amount must be greater than 0"},
		{"amount before capture's type", map[string]any{"amount": 0, "currency": "AUD", "capture": "false", "customer_id": e.customer}, "", "ValidationError", "amount", "amount must be greater than 0"},
		{"amount before currency's type", map[string]any{"amount": 0, "currency": 5, "customer_id": e.customer}, "", "ValidationError", "amount", "amount must be greater than 0"},
		{"amount's shape before the currency", map[string]any{"amount": "x", "currency": "ZZZ", "customer_id": e.customer}, "", "ValidationError", "amount", "amount must be a number"},
		{"amount's ceiling before the currency", map[string]any{"amount": 2000000000, "currency": "XYZ", "customer_id": e.customer}, "", "ValidationError", "amount", "amount must be at most 1000000000"},
		{"reference type", map[string]any{"amount": 10, "currency": "AUD", "reference": 5, "customer_id": e.customer}, "", "ValidationError", "reference", "reference must be a string"},
		{"customer email before phone", map[string]any{"amount": 10, "currency": "AUD", "customer": map[string]any{"email": "bad", "phone": "x", "first_name": "A",
			"payment_source": card(nil)["payment_source"]}}, "", "ValidationError", "customer.email", "email must be a valid email address"},
		// Fields before references (§3.4 steps 6, 7).
		{"card rule before an unknown gateway", map[string]any{"amount": 10, "currency": "AUD", "customer": card(map[string]any{"gateway_id": "000000000000000000000000", "card_number": "4242424242424241"})}, "", "ValidationError", "customer.payment_source.card_number", "card_number failed the Luhn check"},
		{"vault token shape before an unknown gateway", map[string]any{"amount": 10, "currency": "AUD", "customer": map[string]any{"payment_source": map[string]any{"gateway_id": "000000000000000000000000", "vault_token": "nope"}}}, "", "ValidationError", "customer.payment_source.vault_token", "vault_token must be a uuid"},
		{"card field type before an unknown gateway", map[string]any{"amount": 10, "currency": "AUD", "customer": card(map[string]any{"gateway_id": "000000000000000000000000", "expire_month": true})}, "", "ValidationError", "customer.payment_source.expire_month", "expire_month must be a string"},
		// A CVV beside a stored card follows §6.4 for that card's scheme.
		{"cvv beside customer_id", map[string]any{"amount": 10, "currency": "AUD", "customer_id": e.customer, "customer": map[string]any{"payment_source": map[string]any{"card_ccv": "12345"}}}, "", "ValidationError", "customer.payment_source.card_ccv", "card_ccv must be 3 digits"},
		{"cvv of a wrong type beside customer_id", map[string]any{"amount": 10, "currency": "AUD", "customer_id": e.customer, "customer": map[string]any{"payment_source": map[string]any{"card_ccv": 123}}}, "", "ValidationError", "customer.payment_source.card_ccv", "card_ccv must be a string"},
		{"amex cvv beside a vault token", map[string]any{"amount": 10, "currency": "AUD", "customer": map[string]any{"payment_source": map[string]any{"gateway_id": e.Gateway, "vault_token": e.amexVault(), "card_ccv": "12"}}}, "", "ValidationError", "customer.payment_source.card_ccv", "card_ccv must be 4 digits for amex"},
		{"too many decimals", map[string]any{"amount": "10.005", "currency": "AUD", "customer_id": e.customer}, "", "ValidationError", "amount", "amount has more decimal places than AUD allows"},
		{"amount a boolean", map[string]any{"amount": true, "currency": "AUD", "customer_id": e.customer}, "", "ValidationError", "amount", "amount must be a number"},
		{"amount missing", map[string]any{"currency": "AUD", "customer_id": e.customer}, "", "ValidationError", "amount", "amount is required"},
		{"unknown currency", map[string]any{"amount": 10, "currency": "ABC", "customer_id": e.customer}, "", "ValidationError", "currency", "currency must be an ISO 4217 code"},
		{"capture not boolean", map[string]any{"amount": 10, "currency": "AUD", "customer_id": e.customer, "capture": "false"}, "", "ValidationError", "capture", "capture must be a boolean"},
		{"capture query bad", map[string]any{"amount": 10, "currency": "AUD", "customer_id": e.customer}, "?capture=maybe", "ValidationError", "capture", "capture must be true or false"},
		{"missing source", map[string]any{"amount": 10, "currency": "AUD"}, "", "ValidationError", "customer.payment_source", "a payment source is required: customer_id, payment_source_id, token or customer.payment_source"},
		{"customer malformed", map[string]any{"amount": 10, "currency": "AUD", "customer_id": "nope"}, "", "ValidationError", "customer_id", "customer_id must be a mongodb id"},
		{"customer unknown", map[string]any{"amount": 10, "currency": "AUD", "customer_id": "000000000000000000000000"}, "", "ValidationError", "customer_id", "customer not found"},
		{"customer archived", map[string]any{"amount": 10, "currency": "AUD", "customer_id": archived}, "", "ValidationError", "customer_id", "customer is archived"},
		{"source unknown", map[string]any{"amount": 10, "currency": "AUD", "customer_id": e.customer, "payment_source_id": "000000000000000000000000"}, "", "ValidationError", "payment_source_id", "payment source not found"},
		{"token with card", map[string]any{"amount": 10, "currency": "AUD", "token": "052d9a30-48dd-4a07-9062-f3120c46e415", "customer": card(nil)}, "", "ValidationError", "token", "token cannot be combined with customer.payment_source"},
		{"token unknown", map[string]any{"amount": 10, "currency": "AUD", "token": "052d9a30-48dd-4a07-9062-f3120c46e415"}, "", "ValidationError", "token", "token not found"},
		{"card without gateway", map[string]any{"amount": 10, "currency": "AUD", "customer": card(map[string]any{"gateway_id": nil})}, "", "ValidationError", "customer.payment_source.gateway_id", "gateway_id is required"},
		{"gateway of another account", map[string]any{"amount": 10, "currency": "AUD", "customer": card(map[string]any{"gateway_id": otherGW.ID})}, "", "ValidationError", "customer.payment_source.gateway_id", "gateway not found"},
		{"card Luhn", map[string]any{"amount": 10, "currency": "AUD", "customer": card(map[string]any{"card_number": "4111111111111112"})}, "", "ValidationError", "customer.payment_source.card_number", "card_number failed the Luhn check"},
		{"vault token unknown", map[string]any{"amount": 10, "currency": "AUD", "customer": map[string]any{"payment_source": map[string]any{"gateway_id": e.Gateway, "vault_token": "052d9a30-48dd-4a07-9062-f3120c46e415"}}}, "", "ValidationError", "customer.payment_source.vault_token", "vault token not found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := e.counts()
			r := e.charge(tc.body, tc.query)
			code, _, path, msgs := r.ErrorDetails()
			if r.Status != 400 || code != tc.code || path != tc.path || len(msgs) != 1 || msgs[0] != tc.msg {
				t.Fatalf("got %d %s %q %q: %s", r.Status, code, path, msgs, r.Raw)
			}
			if after := e.counts(); after != before {
				t.Fatalf("something was written or the gateway was called: %v → %v", before, after)
			}
		})
	}
}

func TestChargeDeclineAndIdempotentReplay(t *testing.T) {
	e := newCH(t)
	body := map[string]any{"amount": "42.00", "currency": "AUD", "customer": map[string]any{"first_name": "Ada",
		"payment_source": map[string]any{"gateway_id": e.Gateway, "card_name": "Ada", "card_number": "4100000000000001", "expire_month": 9, "expire_year": 2030}}}
	r := e.Do("POST", "/v1/charges", body, "Idempotency-Key", "decline-1")
	d := chStatus(t, r, 400, "failed")
	errObj := r.Body["error"].(map[string]any)
	if _, has := errObj["code"]; has {
		t.Fatalf("gateway error carries error.code: %s", r.Raw)
	}
	if g := errObj["details"].([]any)[0].(map[string]any)["gateway_specific_code"]; g != "card_declined" {
		t.Fatalf("gateway_specific_code %v", g)
	}
	if d["one_off"] != true || chTxns(d)[0] != "sale:failed:42" {
		t.Fatalf("failed charge: %v", d)
	}
	before := e.counts()
	again := e.Do("POST", "/v1/charges", body, "Idempotency-Key", "decline-1")
	if again.Status != 400 || string(again.Raw) != string(r.Raw) || again.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay: %d %s", again.Status, again.Raw)
	}
	if after := e.counts(); after != before {
		t.Fatalf("a replay acted: %v → %v", before, after)
	}
}

func TestChargeIdempotencyUnderConcurrency(t *testing.T) {
	e := newCH(t)
	body := map[string]any{"amount": "25.00", "currency": "AUD", "customer_id": e.customer}
	before := e.counts()
	const n = 50
	var wg sync.WaitGroup
	statuses := make([]int, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			statuses[i] = e.Do("POST", "/v1/charges", body, "Idempotency-Key", "same-key").Status
		}(i)
	}
	wg.Wait()
	after := e.counts()
	if after[0]-before[0] != 1 || after[2]-before[2] != 1 {
		t.Fatalf("want exactly one charge and one gateway call, got %d charges, %d calls (statuses %v)", after[0]-before[0], after[2]-before[2], statuses)
	}
	for _, s := range statuses {
		if s != http.StatusCreated && s != http.StatusConflict {
			t.Fatalf("unexpected status %d among %v", s, statuses)
		}
	}
}

func TestChargeUnknownOutcomeIsReconciled(t *testing.T) {
	e := newCH(t)
	body := map[string]any{"amount": "10", "currency": "AUD", "customer": map[string]any{"payment_source": map[string]any{
		"gateway_id": e.Gateway, "card_name": "T", "card_number": "4000000000000259", "expire_month": 9, "expire_year": 2030}}}
	d := chStatus(t, e.charge(body, ""), 201, "inprogress")
	id := d["_id"].(string)
	r := e.Do("POST", "/v1/charges/"+id+"/refunds", nil)
	if _, msg, _, _ := r.ErrorDetails(); r.Status != 400 || msg != "charge cannot be refunded in status inprogress" {
		t.Fatalf("refund of inprogress: %s", r.Raw)
	}
	e.reconcile()
	d = chStatus(t, e.Do("GET", "/v1/charges/"+id, nil), 200, "complete")
	if d["external_id"] == nil || chTxns(d)[0] != "sale:complete:10" {
		t.Fatalf("reconciled charge: %v", d)
	}
}

// A capture, cancel or refund whose gateway call ends without an answer
// (here: its client left while the Simulator was still answering) leaves
// the charge inprogress (spec §4.3), not looking done or untouched; every
// other operation on it is refused with §8.6's message, and the
// reconciler settles it as the gateway has it.
func TestChargeOperationUnknownOutcome(t *testing.T) {
	c := &chClock{}
	e := &chEnv{Env: apitest.New(t, apitest.Options{SimulatorLatency: 400 * time.Millisecond, Now: c.Now}), clock: c}
	c.t = time.Now().UTC()
	r := e.Do("POST", "/v1/customers", map[string]any{"payment_source": map[string]any{"gateway_id": e.Gateway,
		"card_name": "Ada Lovelace", "card_number": "4111111111111111", "expire_month": 9, "expire_year": 2030}})
	if r.Status != 201 {
		t.Fatalf("customer: %d %s", r.Status, r.Raw)
	}
	e.customer = r.Data()["_id"].(string)
	// leave sends an operation and gives up before the Simulator answers
	// (400 ms), then waits until the server has recorded the unknown
	// outcome. The server must have written the operation's intent before
	// the client leaves: 250 ms leaves room for a loaded machine (100 ms
	// once did not, on PostgreSQL in CI, and the charge stayed pending).
	leave := func(method, path, id string, body any) map[string]any {
		t.Helper()
		var rd io.Reader // no body on a DELETE: the server never reads one
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 250*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, method, e.URL+path, rd)
		req.Header.Set("x-user-secret-key", e.Secret)
		if res, err := http.DefaultClient.Do(req); err == nil {
			res.Body.Close()
			t.Fatalf("%s %s finished (%d) before the client left", method, path, res.StatusCode)
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			d := e.Do("GET", "/v1/charges/"+id, nil).Data()
			if d["status"] == "inprogress" {
				return d
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s %s: charge %v, want inprogress", method, path, d["status"])
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	refused := func(id, verb string) {
		t.Helper()
		for _, op := range []struct{ method, path, verb string }{
			{"POST", "/capture", "captured"}, {"DELETE", "/capture", "cancelled"}, {"POST", "/refunds", "refunded"},
		} {
			r := e.Do(op.method, "/v1/charges/"+id+op.path, nil)
			if _, msg, _, _ := r.ErrorDetails(); r.Status != 400 || msg != "charge cannot be "+op.verb+" in status inprogress" {
				t.Errorf("%s %s while %s is unknown: %d %s", op.method, op.path, verb, r.Status, r.Raw)
			}
		}
	}
	auth := func() string {
		return chStatus(t, e.charge(map[string]any{"amount": 30, "currency": "AUD", "customer_id": e.customer}, "?capture=false"), 201, "pending")["_id"].(string)
	}

	id := auth()
	d := leave("POST", "/v1/charges/"+id+"/capture", id, map[string]any{"amount": "20.00"})
	if got := chTxns(d); len(got) != 2 || got[1] != "capture:inprogress:20" || d["captured_amount"] != 0.0 {
		t.Fatalf("unknown capture: %v captured %v", got, d["captured_amount"])
	}
	refused(id, "a capture")
	e.reconcile()
	d = chStatus(t, e.Do("GET", "/v1/charges/"+id, nil), 200, "complete")
	if d["captured_amount"] != 20.0 {
		t.Fatalf("reconciled capture: captured %v", d["captured_amount"])
	}

	id = auth()
	leave("DELETE", "/v1/charges/"+id+"/capture", id, nil)
	refused(id, "a cancel")
	e.reconcile()
	chStatus(t, e.Do("GET", "/v1/charges/"+id, nil), 200, "cancelled")

	id = chStatus(t, e.charge(map[string]any{"amount": 30, "currency": "AUD", "customer_id": e.customer}, ""), 201, "complete")["_id"].(string)
	d = leave("POST", "/v1/charges/"+id+"/refunds", id, map[string]any{"amount": "10.00"})
	if got := chTxns(d); len(got) != 2 || got[1] != "refund:inprogress:10" || d["refunded_amount"] != 0.0 {
		t.Fatalf("unknown refund: %v refunded %v", got, d["refunded_amount"])
	}
	refused(id, "a refund")
	e.reconcile() // accepted: requested
	d = chStatus(t, e.Do("GET", "/v1/charges/"+id, nil), 200, "refund_requested")
	if d["refunded_amount"] != 10.0 {
		t.Fatalf("reconciled refund: refunded %v", d["refunded_amount"])
	}
	e.reconcile() // confirmed
	chStatus(t, e.Do("GET", "/v1/charges/"+id, nil), 200, "complete")
}

// A one-time token whose own gateway was archived since is refused at
// "token", the field sent, as on a customer (§3.2, §5), and is not used
// up; a gateway_id in the body is reported at its own path.
func TestChargeTokenWithArchivedGateway(t *testing.T) {
	e := newCH(t)
	r := e.Do("POST", "/v1/gateways", map[string]any{"type": "Simulator", "name": "to archive"})
	if r.Status != 201 {
		t.Fatalf("gateway: %s", r.Raw)
	}
	gw := r.Data()["_id"].(string)
	tok := vtToken(t, e.Env, map[string]any{"gateway_id": gw, "card_name": "A", "card_number": "4242424242424242", "expire_month": 12, "expire_year": 2030})
	if r := e.Do("DELETE", "/v1/gateways/"+gw, nil); r.Status != 200 {
		t.Fatalf("archive: %s", r.Raw)
	}
	before := e.counts()
	for _, tc := range []struct {
		body map[string]any
		path string
	}{
		{map[string]any{"amount": 1, "currency": "AUD", "token": tok}, "token"},
		{map[string]any{"amount": 1, "currency": "AUD", "token": tok, "customer": map[string]any{"payment_source": map[string]any{"gateway_id": gw}}}, "customer.payment_source.gateway_id"},
	} {
		r := e.charge(tc.body, "")
		if _, _, path, msgs := r.ErrorDetails(); r.Status != 400 || path != tc.path || len(msgs) != 1 || msgs[0] != "gateway is archived" {
			t.Errorf("%v: %d %s", tc.body, r.Status, r.Raw)
		}
	}
	if after := e.counts(); after != before {
		t.Fatalf("something was written: %v → %v", before, after)
	}
	// The token is still usable, on a live gateway.
	chStatus(t, e.charge(map[string]any{"amount": 1, "currency": "AUD", "token": tok, "customer": map[string]any{"payment_source": map[string]any{"gateway_id": e.Gateway}}}, ""), 201, "complete")
}

// Readings of the spec a black-box review checked (§1.3, §3.4, §8.1, §8.6).
func TestChargeSpecReadings(t *testing.T) {
	e := newCH(t)
	// A JSON number is read exactly from its text, exponent and all.
	d := chStatus(t, e.charge(map[string]any{"amount": json.Number("1e2"), "currency": "AUD", "customer_id": e.customer}, ""), 201, "complete")
	if d["amount"] != 100.0 {
		t.Fatalf("1e2 charged %v", d["amount"])
	}
	// Rule 1: the customer object is ignored but for gateway_id (and a CVV).
	chStatus(t, e.charge(map[string]any{"amount": 10, "currency": "AUD", "customer_id": e.customer, "token": "nope",
		"customer": map[string]any{"_id": e.customer, "email": "bad", "first_name": 5, "payment_source": map[string]any{"card_number": "1", "type": "x"}}}, ""), 201, "complete")
	chStatus(t, e.charge(map[string]any{"amount": 10, "currency": "AUD", "customer_id": e.customer, "customer": "junk"}, ""), 201, "complete")
	r := e.charge(map[string]any{"amount": 10, "currency": "AUD", "customer_id": e.customer, "customer": map[string]any{"payment_source": map[string]any{"gateway_id": "zz"}}}, "")
	if _, _, path, _ := r.ErrorDetails(); r.Status != 400 || path != "customer.payment_source.gateway_id" {
		t.Fatalf("gateway_id beside customer_id: %d %s", r.Status, r.Raw)
	}
	chStatus(t, e.charge(map[string]any{"amount": 10, "currency": "AUD", "customer_id": e.customer, "customer": map[string]any{"payment_source": map[string]any{"card_ccv": "123"}}}, ""), 201, "complete")
	// Capture and refund bodies in table order: the amount before the currency.
	pending := chStatus(t, e.charge(map[string]any{"amount": 30, "currency": "AUD", "customer_id": e.customer}, "?capture=false"), 201, "pending")["_id"].(string)
	before := e.counts()
	for _, path := range []string{"/v1/charges/" + pending + "/capture", "/v1/charges/" + pending + "/refunds"} {
		r := e.Do("POST", path, map[string]any{"amount": "abc", "currency": "USD"})
		if _, _, p, msgs := r.ErrorDetails(); r.Status != 400 || p != "amount" || len(msgs) != 1 || msgs[0] != "amount must be a number" {
			t.Fatalf("%s: %d %s", path, r.Status, r.Raw)
		}
		r = e.Do("POST", path, map[string]any{"amount": -1})
		if _, _, p, msgs := r.ErrorDetails(); r.Status != 400 || p != "amount" || len(msgs) != 1 || msgs[0] != "amount must be greater than 0" {
			t.Fatalf("%s negative: %d %s", path, r.Status, r.Raw)
		}
	}
	if after := e.counts(); after != before {
		t.Fatalf("something was written or the gateway was called: %v → %v", before, after)
	}
	// An empty body, null and {} are one request (L10) under one key (§9).
	first := e.Do("POST", "/v1/charges/"+pending+"/capture", "", "Idempotency-Key", "capture-once")
	chStatus(t, first, 201, "complete")
	for _, body := range []string{"{}", "null", " "} {
		r := e.Do("POST", "/v1/charges/"+pending+"/capture", body, "Idempotency-Key", "capture-once")
		if r.Status != 201 || r.Header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(r.Raw, first.Raw) {
			t.Fatalf("%q after an empty body: %d %q %s", body, r.Status, r.Header.Get("Idempotent-Replayed"), r.Raw)
		}
	}
}

// Operations on one charge are serialised (§8.6): a second one waits for
// the first's gateway answer instead of being refused.
func TestChargeOperationsAreSerialised(t *testing.T) {
	e := &chEnv{Env: apitest.New(t, apitest.Options{SimulatorLatency: 300 * time.Millisecond})}
	r := e.Do("POST", "/v1/customers", map[string]any{"payment_source": map[string]any{"gateway_id": e.Gateway,
		"card_name": "Ada Lovelace", "card_number": "4111111111111111", "expire_month": 9, "expire_year": 2030}})
	if r.Status != 201 {
		t.Fatalf("customer: %d %s", r.Status, r.Raw)
	}
	e.customer = r.Data()["_id"].(string)
	sale := chStatus(t, e.charge(map[string]any{"amount": 100, "currency": "AUD", "customer_id": e.customer}, ""), 201, "complete")["_id"].(string)
	auth := chStatus(t, e.charge(map[string]any{"amount": 100, "currency": "AUD", "customer_id": e.customer}, "?capture=false"), 201, "pending")["_id"].(string)

	var wg sync.WaitGroup
	refunds := make([]*apitest.Response, 2)
	for i, amt := range []string{"10", "20"} {
		wg.Go(func() { refunds[i] = e.Do("POST", "/v1/charges/"+sale+"/refunds", map[string]any{"amount": amt}) })
	}
	var capture, cancel *apitest.Response
	wg.Go(func() { capture = e.Do("POST", "/v1/charges/"+auth+"/capture", nil) })
	wg.Go(func() { cancel = e.Do("DELETE", "/v1/charges/"+auth+"/capture", nil) })
	wg.Wait()
	for i, r := range refunds {
		if r.Status != 200 {
			t.Fatalf("refund %d: %d %s", i, r.Status, r.Raw)
		}
	}
	d := chStatus(t, e.Do("GET", "/v1/charges/"+sale, nil), 200, "refund_requested")
	if d["refunded_amount"] != 30.0 || len(chTxns(d)) != 3 {
		t.Fatalf("after two refunds at once: %v %v", d["refunded_amount"], chTxns(d))
	}
	// Whichever ran first, the other one saw the state it left.
	if capture.Status == 201 {
		chStatus(t, capture, 201, "complete")
		if _, msg, _, _ := cancel.ErrorDetails(); cancel.Status != 400 || msg != "charge cannot be cancelled in status complete" {
			t.Fatalf("cancel behind a capture: %d %s", cancel.Status, cancel.Raw)
		}
	} else {
		chStatus(t, cancel, 200, "cancelled")
		if _, msg, _, _ := capture.ErrorDetails(); capture.Status != 400 || msg != "charge cannot be captured in status cancelled" {
			t.Fatalf("capture behind a cancel: %d %s", capture.Status, capture.Raw)
		}
	}
}

func TestChargeListFilters(t *testing.T) {
	e := newCH(t)
	chStatus(t, e.charge(map[string]any{"amount": 1, "currency": "AUD", "customer_id": e.customer, "reference": "ORD-7781"}, ""), 201, "complete")
	chStatus(t, e.charge(map[string]any{"amount": 2, "currency": "AUD", "customer_id": e.customer, "reference": "ORD-7782"}, "?capture=false"), 201, "pending")
	cases := []struct {
		query string
		count int
	}{
		{"", 2},
		{"?reference=ORD-7781", 1},
		{"?status=pending", 1},
		{"?customer_id=" + e.customer, 2},
		{"?gateway_id=" + e.Gateway, 2},
		{"?search=ada@EXAMPLE", 2},
		{"?search=7782", 1},
		{"?created_at.from=2000-01-01T00:00:00%2B1100", 2},
		{"?created_at.to=2000-01-01", 0},
		{"?created_at.from=2000-01-01t00:00:00z", 2},
		{"?created_at.from=2000-01-01+00:00:00Z", 2},
		{"?created_at.to=2000-01-01%2000:00:00.5z", 0},
		{"?created_at.from=" + time.Now().UTC().Format("2006-01-02"), 2},
		{"?archived=true", 0},
	}
	for _, tc := range cases {
		r := e.Do("GET", "/v1/charges"+tc.query, nil)
		if r.Status != 200 || int(r.Resource()["count"].(float64)) != tc.count {
			t.Errorf("%s: %d %v", tc.query, r.Status, r.Resource()["count"])
		}
	}
	r := e.Do("GET", "/v1/charges?created_at.from=yesterday", nil)
	if _, msg, path, _ := r.ErrorDetails(); r.Status != 400 || msg != "query validation failed" || path != "created_at.from" {
		t.Fatalf("bad date: %s", r.Raw)
	}
	r = e.Do("GET", "/v1/charges?status=bogus", nil)
	if _, msg, path, msgs := r.ErrorDetails(); r.Status != 400 || msg != "query validation failed" || path != "status" ||
		msgs[0] != "status must be one of: complete, pending, failed, cancelled, inprogress, refund_requested, refunded" {
		t.Fatalf("bad status: %s", r.Raw)
	}
}

// amexVault makes a permanent vault token holding an amex card.
func (e *chEnv) amexVault() string {
	e.T.Helper()
	r := e.Do("POST", "/v1/vault/payment_sources", map[string]any{"card_name": "Amex", "card_number": "378282246310005", "expire_month": 9, "expire_year": 2030})
	if r.Status != 201 {
		e.T.Fatalf("vault: %d %s", r.Status, r.Raw)
	}
	return r.Data()["vault_token"].(string)
}

// A charge the gateway has no record of stays inprogress for the
// connector's grace (10 minutes for the Simulator, spec §4.3), then fails
// with "no record at the gateway"; it is never re-sent.
func TestChargeWithNoRecordFailsAfterTheGrace(t *testing.T) {
	e := newCH(t)
	body := map[string]any{"amount": "10", "currency": "AUD", "customer": map[string]any{"payment_source": map[string]any{
		"gateway_id": e.Gateway, "card_name": "T", "card_number": "4000000000000259", "expire_month": 9, "expire_year": 2030}}}
	id := chStatus(t, e.charge(body, ""), 201, "inprogress")["_id"].(string)
	// The simulated processor forgets it: as if the call never arrived.
	if err := e.Store.LedgerEngine().Write(t.Context(), func(q store.Querier) error {
		_, err := q.ExecContext(t.Context(), "DELETE FROM simulator_ledger")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	before := e.counts()
	e.clock.Advance(5 * time.Minute)
	if _, err := e.Services.Charges.ReconcileOnce(t.Context(), 100); err != nil {
		t.Fatal(err)
	}
	chStatus(t, e.Do("GET", "/v1/charges/"+id, nil), 200, "inprogress")
	e.clock.Advance(6 * time.Minute)
	if _, err := e.Services.Charges.ReconcileOnce(t.Context(), 100); err != nil {
		t.Fatal(err)
	}
	d := chStatus(t, e.Do("GET", "/v1/charges/"+id, nil), 200, "failed")
	txn := d["transactions"].([]any)[0].(map[string]any)
	if txn["status"] != "failed" || txn["gateway_specific_code"] != "no_record" {
		t.Fatalf("failed transaction: %v", txn)
	}
	if after := e.counts(); after[2] != before[2] {
		t.Fatalf("the charge was sent again: ledger %d → %d", before[2], after[2])
	}
}

// When the gateway has acted but its answer cannot be recorded, the charge
// is answered inprogress for the reconciler: never a 503, whose retry
// would charge again.
func TestChargeAnswerNotRecordedIsNotRetryable(t *testing.T) {
	e := &chEnv{Env: apitest.New(t, apitest.Options{SimulatorLatency: time.Second})}
	done := make(chan *apitest.Response, 1)
	go func() {
		done <- e.Do("POST", "/v1/charges", map[string]any{"amount": 10, "currency": "AUD", "customer": map[string]any{"payment_source": map[string]any{
			"gateway_id": e.Gateway, "card_name": "A", "card_number": "4111111111111111", "expire_month": 9, "expire_year": 2030}}},
			"Idempotency-Key", "unrecorded-1")
	}()
	// Once the intent is written (the gateway call has begun), the store
	// loses the table the answer goes to.
	deadline := time.Now().Add(5 * time.Second)
	for {
		var n int
		if err := e.Store.Engine().Reader().QueryRowContext(t.Context(), "SELECT count(*) FROM charges").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no charge intent")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := e.Store.Engine().Write(t.Context(), func(q store.Querier) error {
		_, err := q.ExecContext(t.Context(), "DROP TABLE charge_transactions")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.Status != 201 || r.Data()["status"] != "inprogress" {
		t.Fatalf("answer not recorded: %d %s", r.Status, r.Raw)
	}
	// That inprogress answer is not stored under the key (it would be
	// replayed after the reconciler settled the charge): the claim keeps
	// the charge, its lock ended, so a retry answers the charge as it is.
	var state string
	var chargeID sql.NullString
	var lockedUntil int64
	if err := e.Store.Engine().Reader().QueryRowContext(t.Context(), `SELECT state, charge_id, locked_until FROM idempotency_keys WHERE key = 'unrecorded-1'`).
		Scan(&state, &chargeID, &lockedUntil); err != nil {
		t.Fatal(err)
	}
	if state != "running" || chargeID.String != r.Data()["_id"] || lockedUntil > time.Now().UnixMilli() {
		t.Fatalf("the key after an unrecorded answer: state %s, charge %q, lock until %d", state, chargeID.String, lockedUntil)
	}
}

// interruptClaim puts key back as if the node serving it had died before
// storing its answer: the claim running, with what its request recorded
// (column = id, which must be there).
func interruptClaim(t *testing.T, e *apitest.Env, key, column, id string) {
	t.Helper()
	if err := e.Store.Engine().Write(t.Context(), func(q store.Querier) error {
		res, err := q.ExecContext(t.Context(), `UPDATE idempotency_keys SET state = 'running', status = 0, body = NULL
			WHERE key = $1 AND `+column+` = $2`, key, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			t.Fatalf("the claim of %s did not record %s %s (%d rows)", key, column, id, n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// A charge request interrupted after it wrote its intent (its node died,
// its claim went stale) is never run again under its key: a retry answers
// the charge it created (spec §9: retrying later gives the response).
func TestIdempotentChargeInterruptedIsNotRunAgain(t *testing.T) {
	e := newCH(t)
	body := map[string]any{"amount": "12.34", "currency": "AUD", "customer_id": e.customer, "reference": "CRASH-1"}
	first := e.Do("POST", "/v1/charges", body, "Idempotency-Key", "crash-1")
	id := chStatus(t, first, 201, "complete")["_id"].(string)
	// As if the node had died between the gateway call and the answer:
	// the claim is still running, with the charge its intent recorded.
	interruptClaim(t, e.Env, "crash-1", "charge_id", id)
	before := e.counts()
	if r := e.Do("POST", "/v1/charges", body, "Idempotency-Key", "crash-1"); r.Status != 409 {
		t.Fatalf("while the claim holds: %d %s", r.Status, r.Raw)
	}
	e.clock.Advance(3 * time.Minute) // the claim is stale
	r := e.Do("POST", "/v1/charges", body, "Idempotency-Key", "crash-1")
	if r.Status != 201 || r.Data()["_id"] != id || r.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retry after the interruption: %d %q %s", r.Status, r.Header.Get("Idempotent-Replayed"), r.Raw)
	}
	if after := e.counts(); after != before {
		t.Fatalf("the charge ran again: %v → %v", before, after)
	}
	// Another body under the key is still a mismatch.
	body["amount"] = "99"
	if r := e.Do("POST", "/v1/charges", body, "Idempotency-Key", "crash-1"); r.Status != 400 {
		t.Fatalf("other body: %d %s", r.Status, r.Raw)
	}
}

// Date filters against a charge's stored created_at: finer-than-millisecond
// bounds round up (from inclusive, to exclusive), offsets must be real
// ones, and a timestamp without one is refused (spec §1.5).
func TestChargeListDateBounds(t *testing.T) {
	e := newCH(t)
	e.clock.Advance(417*time.Millisecond + 300*time.Microsecond) // stored as .417 of some second, or so
	d := chStatus(t, e.charge(map[string]any{"amount": 1, "currency": "AUD", "customer_id": e.customer}, ""), 201, "complete")
	at, err := time.Parse("2006-01-02T15:04:05.000Z", d["created_at"].(string))
	if err != nil {
		t.Fatal(err)
	}
	stamp := func(t time.Time, layout string) string { return url.QueryEscape(t.Format(layout)) }
	const frac4 = "2006-01-02T15:04:05.0000Z07:00"
	syd := time.FixedZone("", 11*3600)
	cases := []struct {
		query string
		count int
	}{
		{"created_at.from=" + stamp(at, time.RFC3339Nano), 1},
		{"created_at.to=" + stamp(at, time.RFC3339Nano), 0},
		{"created_at.from=" + stamp(at.Add(500*time.Microsecond), frac4), 0},
		{"created_at.to=" + stamp(at.Add(500*time.Microsecond), frac4), 1},
		{"created_at.from=" + stamp(at.Add(-500*time.Microsecond), frac4), 1},
		{"created_at.to=" + stamp(at.Add(-500*time.Microsecond), frac4), 0},
		{"created_at.from=" + stamp(at.In(syd), "2006-01-02T15:04:05.000-0700"), 1},
		{"created_at.to=" + stamp(at.Add(time.Millisecond).In(syd), "2006-01-02T15:04:05.000-07:00"), 1},
	}
	for _, tc := range cases {
		r := e.Do("GET", "/v1/charges?"+tc.query, nil)
		if r.Status != 200 || int(r.Resource()["count"].(float64)) != tc.count {
			t.Errorf("%s (created_at %s): %d %v, want count %d", tc.query, d["created_at"], r.Status, r.Resource()["count"], tc.count)
		}
	}
	for _, v := range []string{"2026-12-02T04:38:59.807+11:60", "2026-12-02T04:38:59.807+1160", "2026-12-02T04:38:59.807+24:00",
		"2026-12-02T04:38:59.807-24:00", "2026-12-02T04:38:59.807+1a:00", "2026-12-02T04:38:59.807", "2026-12-02T04:38:59",
		"2026-12-02T04:38:59+11", "2026-12-02T04:38:59.807 +11:00"} {
		for _, name := range []string{"created_at.from", "created_at.to"} {
			r := e.Do("GET", "/v1/charges?"+name+"="+url.QueryEscape(v), nil)
			want := name + " must be a date (YYYY-MM-DD) or an ISO 8601 timestamp with Z or a ±hh:mm offset"
			if _, msg, path, msgs := r.ErrorDetails(); r.Status != 400 || msg != "query validation failed" || path != name || len(msgs) != 1 || msgs[0] != want {
				t.Errorf("%s=%s: %d %s, want 400 on %s: %s", name, v, r.Status, r.Raw, name, want)
			}
		}
	}
}

// sortkey=amount orders by the amount the wire shows, in major units,
// across currencies with different exponents.
func TestChargeListSortByAmountAcrossCurrencies(t *testing.T) {
	e := newCH(t)
	for _, c := range []struct{ amount, currency string }{{"100", "JPY"}, {"3", "AUD"}, {"1", "KWD"}, {"2.5", "CLF"}, {"0.01", "AUD"}} {
		chStatus(t, e.charge(map[string]any{"amount": c.amount, "currency": c.currency, "customer_id": e.customer}, ""), 201, "complete")
	}
	for _, dir := range []string{"ASC", "DESC"} {
		r := e.Do("GET", "/v1/charges?sortkey=amount&sortdirection="+dir, nil)
		if r.Status != 200 {
			t.Fatalf("%s: %d %s", dir, r.Status, r.Raw)
		}
		var got []float64
		for _, d := range r.Resource()["data"].([]any) {
			got = append(got, d.(map[string]any)["amount"].(float64))
		}
		want := []float64{0.01, 1, 2.5, 3, 100}
		if dir == "DESC" {
			slices.Reverse(want)
		}
		if !slices.Equal(got, want) {
			t.Errorf("sortkey=amount %s: %v, want %v", dir, got, want)
		}
	}
}

// A refund interrupted after it began (its node died, its claim went
// stale) is not run again under its key: a retry answers the charge as it
// is now, with the refund's own status, and no second refund is made.
func TestIdempotentRefundInterruptedIsNotRunAgain(t *testing.T) {
	e := newCH(t)
	id := chStatus(t, e.charge(map[string]any{"amount": "10.00", "currency": "AUD", "customer_id": e.customer}, ""), 201, "complete")["_id"].(string)
	body := map[string]any{"amount": "1.00"}
	first := e.Do("POST", "/v1/charges/"+id+"/refunds", body, "Idempotency-Key", "refund-crash")
	if first.Status != 200 {
		t.Fatalf("refund: %d %s", first.Status, first.Raw)
	}
	interruptClaim(t, e.Env, "refund-crash", "charge_id", id)
	before := e.counts()
	e.clock.Advance(3 * time.Minute)
	r := e.Do("POST", "/v1/charges/"+id+"/refunds", body, "Idempotency-Key", "refund-crash")
	if r.Status != 200 || r.Data()["_id"] != id || r.Header.Get("Idempotent-Replayed") != "true" || r.Data()["refunded_amount"] != 1.0 {
		t.Fatalf("retry after the interruption: %d %q %s", r.Status, r.Header.Get("Idempotent-Replayed"), r.Raw)
	}
	if after := e.counts(); after != before {
		t.Fatalf("the refund ran again: %v → %v", before, after)
	}
}

// A client that leaves while its keyed request waits on the gateway does
// not bind the key to the failure its leaving caused: the key is free, and
// a retry runs (spec §9 stores outcomes, not a client's impatience).
func TestIdempotencyClientGoneLeavesKeyFree(t *testing.T) {
	e := &chEnv{Env: apitest.New(t, apitest.Options{SimulatorLatency: 300 * time.Millisecond})}
	card := func(number string) map[string]any {
		return map[string]any{"gateway_id": e.Gateway, "card_name": "Ada Lovelace", "card_number": number, "expire_month": 9, "expire_year": 2030}
	}
	// leave sends a keyed request and gives up before the Simulator answers.
	leave := func(path, key string, body any) {
		b, _ := json.Marshal(body)
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "POST", e.URL+path, bytes.NewReader(b))
		req.Header.Set("x-user-secret-key", e.Secret)
		req.Header.Set("Idempotency-Key", key)
		if res, err := http.DefaultClient.Do(req); err == nil {
			res.Body.Close()
			t.Fatalf("the request finished (%d) before the client left", res.StatusCode)
		}
	}
	// retry sends it again until the first has ended on the server.
	retry := func(path, key string, body any) *apitest.Response {
		deadline := time.Now().Add(5 * time.Second)
		for {
			r := e.Do("POST", path, body, "Idempotency-Key", key)
			if r.Status != 409 || time.Now().After(deadline) {
				return r
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	body := map[string]any{"first_name": "Ada", "payment_source": card("4111111111111111")}
	leave("/v1/customers", "gone-1", body)
	if r := retry("/v1/customers", "gone-1", body); r.Status != 201 || r.Header.Get("Idempotent-Replayed") == "true" {
		t.Fatalf("retry after the client left: %d %q %s", r.Status, r.Header.Get("Idempotent-Replayed"), r.Raw)
	}
	// A charge whose client left is not run again: the gateway call it
	// abandoned leaves it inprogress (for the reconciler), which is stored.
	sale := map[string]any{"amount": "10.00", "currency": "AUD", "customer": map[string]any{"payment_source": card("4111111111111111")}}
	leave("/v1/charges", "gone-2", sale)
	before := e.counts()
	r := retry("/v1/charges", "gone-2", sale)
	if r.Status != 201 || r.Header.Get("Idempotent-Replayed") != "true" || r.Data()["status"] != "inprogress" {
		t.Fatalf("retry of a charge after the client left: %d %q %s", r.Status, r.Header.Get("Idempotent-Replayed"), r.Raw)
	}
	if after := e.counts(); after != before {
		t.Fatalf("the charge ran again: %v → %v", before, after)
	}
}

// A declined charge whose request was interrupted is answered on retry as
// the uninterrupted request was: 400 with the gateway's error and the
// failed charge (spec §8.5), not 201.
func TestIdempotentDeclineInterruptedAnswersTheDecline(t *testing.T) {
	e := newCH(t)
	body := map[string]any{"amount": "21.00", "currency": "AUD", "customer": map[string]any{"payment_source": map[string]any{
		"gateway_id": e.Gateway, "card_name": "X", "card_number": "4100000000000001", "expire_month": 9, "expire_year": 2030}}}
	first := e.Do("POST", "/v1/charges", body, "Idempotency-Key", "decline-crash")
	if first.Status != 400 || first.Body["error_summary"] == nil {
		t.Fatalf("decline: %d %s", first.Status, first.Raw)
	}
	id := first.Data()["_id"].(string)
	interruptClaim(t, e.Env, "decline-crash", "charge_id", id)
	e.clock.Advance(3 * time.Minute)
	r := e.Do("POST", "/v1/charges", body, "Idempotency-Key", "decline-crash")
	if r.Status != 400 || r.Header.Get("Idempotent-Replayed") != "true" || r.Data()["_id"] != id || r.Data()["status"] != "failed" {
		t.Fatalf("retry after the interruption: %d %q %s\nfirst: %s", r.Status, r.Header.Get("Idempotent-Replayed"), r.Raw, first.Raw)
	}
	for _, k := range []string{"error", "error_summary"} {
		if diff := cmp.Diff(first.Body[k], r.Body[k]); diff != "" {
			t.Errorf("the retry's %s differs (-first +retry):\n%s", k, diff)
		}
	}
}

// A request holding an idempotency claim ends before the claim can lapse
// (httpapi.Deps.ClaimedRunLimit): otherwise a retry after the lapse would
// run the same operation beside it. Cut off, it makes nothing and frees
// the key.
func TestClaimedRequestEndsBeforeItsClaimLapses(t *testing.T) {
	e := &chEnv{Env: apitest.New(t, apitest.Options{SimulatorLatency: 3 * time.Second, ClaimedRunLimit: 300 * time.Millisecond})}
	body := map[string]any{"first_name": "Slow", "payment_source": map[string]any{"gateway_id": e.Gateway,
		"card_name": "Slow", "card_number": "4111111111111111", "expire_month": 9, "expire_year": 2030}}
	start := time.Now()
	r := e.Do("POST", "/v1/customers", body, "Idempotency-Key", "slow-1")
	// Cut off, the work did not finish: 503, safe to retry (spec §3.3).
	if took := time.Since(start); took > 2*time.Second || r.Status != 503 || r.Body["error_summary"].(map[string]any)["code"] != "service_unavailable" {
		t.Fatalf("keyed create under a 300 ms limit: %d after %v: %s", r.Status, took, r.Raw)
	}
	var n int
	if err := e.Store.Engine().Reader().QueryRowContext(t.Context(), `SELECT count(*) FROM customers`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("customers after the cut: %d, %v", n, err)
	}
	if err := e.Store.Engine().Reader().QueryRowContext(t.Context(), `SELECT count(*) FROM idempotency_keys WHERE key = 'slow-1'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("the key is still held (%d rows, %v)", n, err)
	}
	// Without a key the request is not bound by the claim's limit.
	if r := e.Do("POST", "/v1/customers", body); r.Status != 201 {
		t.Fatalf("unkeyed create: %d %s", r.Status, r.Raw)
	}
}
