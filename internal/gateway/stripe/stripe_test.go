package stripe

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"switchyard/internal/errs"
	"switchyard/internal/gateway"
	"switchyard/internal/vault"
)

var testGW = gateway.Gateway{ID: "ff14526ceb738e0ed2e0eafa", AccountID: "3a7994a396c67c8d75964bfd", Type: gateway.Stripe, Mode: "test"}

const (
	srcID  = "5f1e2d3c4b5a69788796a5b4"
	cusID  = "0123456789abcdef01234567"
	txnID  = "aaaaaaaaaaaaaaaaaaaaaaaa"
	chgID  = "cccccccccccccccccccccccc"
	visaOK = "4242424242424242"
)

func testCard(number string) vault.Card {
	return vault.Card{Name: "Jo Citizen", Number: number, ExpMonth: 9, ExpYear: 2030, CCV: "123"}
}

func storeReq(number string) gateway.StoreRequest {
	return gateway.StoreRequest{Gateway: testGW, Key: fakeKey, CustomerID: cusID, SourceID: srcID, Card: testCard(number),
		Address: vault.Address{Line1: "1 George St", Line2: "Level 2", City: "Sydney", State: "NSW", Postcode: "2000", Country: "AUS"},
		Name:    "Jo Citizen", Email: "jo@example.com", Phone: "+61400000000"}
}

func chargeReq(txn, number string, capture bool) gateway.ChargeRequest {
	return gateway.ChargeRequest{Gateway: testGW, Key: fakeKey, TxnID: txn, ChargeID: chgID, Amount: 1050, Currency: "AUD",
		Capture: capture, Card: testCard(number), Description: "order 42"}
}

func keys(r fakeRequest) []string {
	var ks []string
	for k := range r.Form {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func wantKeys(t *testing.T, r fakeRequest, want ...string) {
	t.Helper()
	slices.Sort(want)
	if got := keys(r); !slices.Equal(got, want) {
		t.Errorf("%s %s form fields\n got %v\nwant %v", r.Method, r.Path, got, want)
	}
}

func checkHeaders(t *testing.T, r fakeRequest, idem string) {
	t.Helper()
	if got := r.Header.Get("Authorization"); got != "Bearer "+fakeKey {
		t.Errorf("%s %s: Authorization %q", r.Method, r.Path, got)
	}
	if got := r.Header.Get("Stripe-Version"); got != APIVersion {
		t.Errorf("%s %s: Stripe-Version %q", r.Method, r.Path, got)
	}
	if got := r.Header.Get("Idempotency-Key"); got != idem {
		t.Errorf("%s %s: Idempotency-Key %q, want %q", r.Method, r.Path, got, idem)
	}
}

// decl returns the Decline of err, failing when there is none.
func decl(t *testing.T, err error) (*errs.Error, *errs.Decline) {
	t.Helper()
	var e *errs.Error
	if !errors.As(err, &e) || e.Decline == nil {
		t.Fatalf("error %v: want an *errs.Error with a Decline", err)
	}
	return e, e.Decline
}

func TestStoreCard(t *testing.T) {
	f := newFake(t)
	c := New(f.url(), nil)
	st, err := c.StoreCard(t.Context(), storeReq(visaOK))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(st.RefToken, "cus_") || !strings.HasPrefix(st.GatewayRef, "pm_") {
		t.Fatalf("stored %+v", st)
	}
	calls := f.calls()
	if len(calls) != 2 || calls[0].Path != "/v1/payment_methods" || calls[1].Path != "/v1/customers" {
		t.Fatalf("calls %+v", calls)
	}
	pm, cus := calls[0], calls[1]
	wantKeys(t, pm, "type", "card[number]", "card[exp_month]", "card[exp_year]", "card[cvc]", "billing_details[name]",
		"billing_details[address][line1]", "billing_details[address][line2]", "billing_details[address][city]",
		"billing_details[address][state]", "billing_details[address][postal_code]", "billing_details[address][country]")
	for k, v := range map[string]string{"type": "card", "card[number]": visaOK, "card[exp_month]": "9", "card[exp_year]": "2030",
		"card[cvc]": "123", "billing_details[name]": "Jo Citizen", "billing_details[address][country]": "AU",
		"billing_details[address][postal_code]": "2000"} {
		if got := pm.Form.Get(k); got != v {
			t.Errorf("payment_methods %s = %q, want %q", k, got, v)
		}
	}
	checkHeaders(t, pm, "sy_"+srcID+"_pm")
	wantKeys(t, cus, "payment_method", "invoice_settings[default_payment_method]", "name", "email", "phone",
		"metadata[switchyard_customer_id]", "metadata[switchyard_payment_source_id]")
	for k, v := range map[string]string{"payment_method": st.GatewayRef, "invoice_settings[default_payment_method]": st.GatewayRef,
		"name": "Jo Citizen", "email": "jo@example.com", "phone": "+61400000000",
		"metadata[switchyard_customer_id]": cusID, "metadata[switchyard_payment_source_id]": srcID} {
		if got := cus.Form.Get(k); got != v {
			t.Errorf("customers %s = %q, want %q", k, got, v)
		}
	}
	checkHeaders(t, cus, "sy_"+srcID+"_customer")

	// Without a CVV no card[cvc] is sent.
	req := storeReq(visaOK)
	req.Card.CCV = ""
	req.SourceID = "6f1e2d3c4b5a69788796a5b4"
	if _, err := c.StoreCard(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	if calls := f.calls(); calls[2].Form.Has("card[cvc]") {
		t.Errorf("card[cvc] sent without a CVV")
	}
}

func TestStoreCardReplace(t *testing.T) {
	f := newFake(t)
	c := New(f.url(), nil)
	first, err := c.StoreCard(t.Context(), storeReq(visaOK))
	if err != nil {
		t.Fatal(err)
	}
	n := len(f.calls())
	req := storeReq("5555555555554444")
	req.RefToken = first.RefToken
	second, err := c.StoreCard(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if second.RefToken != first.RefToken || second.GatewayRef == first.GatewayRef || !strings.HasPrefix(second.GatewayRef, "pm_") {
		t.Fatalf("replace: %+v after %+v", second, first)
	}
	calls := f.calls()[n:]
	var got []string
	for _, r := range calls {
		got = append(got, route(r.Method, r.Path))
		if r.Method == http.MethodPost && !strings.HasPrefix(r.Header.Get("Idempotency-Key"), "sy_"+srcID+"_") {
			t.Errorf("%s: Idempotency-Key %q", r.Path, r.Header.Get("Idempotency-Key"))
		}
	}
	want := []string{"GET /v1/customers/*", "POST /v1/payment_methods", "POST /v1/payment_methods/*/attach",
		"POST /v1/customers/*", "POST /v1/payment_methods/*/detach"}
	if !slices.Equal(got, want) {
		t.Fatalf("replace calls\n got %v\nwant %v", got, want)
	}
	wantKeys(t, calls[2], "customer")
	wantKeys(t, calls[3], "invoice_settings[default_payment_method]")
	if calls[4].Path != "/v1/payment_methods/"+first.GatewayRef+"/detach" {
		t.Errorf("detached %s, want the old card %s", calls[4].Path, first.GatewayRef)
	}
	f.mu.Lock()
	def, oldOwner := f.customers[first.RefToken].DefaultPM, f.pms[first.GatewayRef].Customer
	f.mu.Unlock()
	if def != second.GatewayRef || oldOwner != "" {
		t.Errorf("default %s (want %s), old card attached to %q", def, second.GatewayRef, oldOwner)
	}
	// A second replace of the same source uses fresh keys: it is not a replay.
	req.Card = testCard("4000056655665556")
	third, err := c.StoreCard(t.Context(), req)
	if err != nil || third.GatewayRef == second.GatewayRef {
		t.Fatalf("second replace: %+v, %v", third, err)
	}
}

func TestChargeCard(t *testing.T) {
	f := newFake(t)
	c := New(f.url(), nil)
	pi, err := c.Charge(t.Context(), chargeReq(txnID, visaOK, true))
	if err != nil || !strings.HasPrefix(pi, "pi_") {
		t.Fatalf("charge: %q, %v", pi, err)
	}
	calls := f.calls()
	if len(calls) != 2 || calls[0].Path != "/v1/payment_methods" || calls[1].Path != "/v1/payment_intents" {
		t.Fatalf("calls %+v", calls)
	}
	checkHeaders(t, calls[0], "sy_"+txnID+"_pm")
	checkHeaders(t, calls[1], "sy_"+txnID+"_pi")
	wantKeys(t, calls[0], "type", "card[number]", "card[exp_month]", "card[exp_year]", "card[cvc]", "billing_details[name]")
	r := calls[1]
	wantKeys(t, r, "amount", "currency", "payment_method", "confirm", "payment_method_types[]", "capture_method",
		"description", "metadata[switchyard_charge_id]", "metadata[switchyard_txn_id]")
	for k, v := range map[string]string{"amount": "1050", "currency": "aud", "confirm": "true", "payment_method_types[]": "card",
		"capture_method": "automatic", "description": "order 42", "metadata[switchyard_charge_id]": chgID,
		"metadata[switchyard_txn_id]": txnID} {
		if got := r.Form.Get(k); got != v {
			t.Errorf("payment_intents %s = %q, want %q", k, got, v)
		}
	}
	f.mu.Lock()
	status := f.pis[pi].Status
	f.mu.Unlock()
	if status != "succeeded" {
		t.Errorf("sale left the intent %s", status)
	}

	// Authorise only.
	pi2, err := c.Charge(t.Context(), chargeReq("bbbbbbbbbbbbbbbbbbbbbbbb", visaOK, false))
	if err != nil {
		t.Fatal(err)
	}
	calls = f.calls()
	if got := calls[len(calls)-1].Form.Get("capture_method"); got != "manual" {
		t.Errorf("authorisation capture_method %q", got)
	}
	f.mu.Lock()
	status = f.pis[pi2].Status
	f.mu.Unlock()
	if status != "requires_capture" {
		t.Errorf("authorisation left the intent %s", status)
	}
}

func TestChargeStoredSource(t *testing.T) {
	f := newFake(t)
	c := New(f.url(), nil)
	st, err := c.StoreCard(t.Context(), storeReq(visaOK))
	if err != nil {
		t.Fatal(err)
	}
	req := chargeReq(txnID, "", false)
	req.Card = vault.Card{}
	req.RefToken, req.GatewayRef = st.RefToken, st.GatewayRef
	n := len(f.calls())
	if _, err := c.Charge(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	calls := f.calls()[n:]
	if len(calls) != 1 {
		t.Fatalf("calls %+v", calls)
	}
	wantKeys(t, calls[0], "amount", "currency", "customer", "payment_method", "confirm", "off_session", "payment_method_types[]",
		"capture_method", "description", "metadata[switchyard_charge_id]", "metadata[switchyard_txn_id]")
	if calls[0].Form.Get("customer") != st.RefToken || calls[0].Form.Get("payment_method") != st.GatewayRef ||
		calls[0].Form.Get("off_session") != "true" {
		t.Errorf("stored-source charge form %v", calls[0].Form)
	}
	// Without the card reference the customer's default card is charged.
	req.TxnID, req.GatewayRef = "bbbbbbbbbbbbbbbbbbbbbbbb", ""
	n = len(f.calls())
	if _, err := c.Charge(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	calls = f.calls()[n:]
	if len(calls) != 2 || calls[0].Method != http.MethodGet || calls[1].Form.Get("payment_method") != st.GatewayRef {
		t.Errorf("default-card charge calls %+v", calls)
	}
}

func TestDeclines(t *testing.T) {
	f := newFake(t)
	c := New(f.url(), nil)
	tests := []struct {
		card, code, gwCode, param string
		kind                      errs.Kind
	}{
		{"4000000000000002", "transaction_declined", "generic_decline", "", errs.Declined},
		{"4000000000009995", "insufficient_funds", "insufficient_funds", "", errs.Declined},
		{"4000000000009987", "transaction_declined_hard", "lost_card", "", errs.Declined},
		{"4000000000009979", "transaction_declined_hard", "stolen_card", "", errs.Declined},
		{"4100000000000019", "fraud_warning", "fraudulent", "", errs.Declined},
		{"4000000000000069", "credit_card_invalid_or_expired", "expired_card", "expire_month", errs.Declined},
		{"4000000000000127", "credit_card_invalid_or_expired", "incorrect_cvc", "card_ccv", errs.Declined},
		{"4000000000000119", "gateway_error", "processing_error", "", errs.Gateway},
		{card3DS, "transaction_declined", "authentication_required", "", errs.Declined},
	}
	for i, tt := range tests {
		txn := strings.Repeat(string(rune('a'+i)), 24)
		_, err := c.Charge(t.Context(), chargeReq(txn, tt.card, true))
		if errors.Is(err, gateway.ErrUnknownOutcome) {
			t.Fatalf("%s: unknown outcome", tt.card)
		}
		e, d := decl(t, err)
		if e.Kind != tt.kind || d.Code != tt.code || d.GatewayCode != tt.gwCode || d.ParamName != tt.param ||
			d.Message != catMessages[tt.code] || d.StatusCode != "" || d.StatusDescription != "" || d.GatewayDescription == "" {
			t.Errorf("%s: kind %v decline %+v; want %s/%s param %q", tt.card, e.Kind, d, tt.code, tt.gwCode, tt.param)
		}
		if strings.Contains(err.Error(), tt.card) || strings.Contains(err.Error(), fakeKey) {
			t.Errorf("%s: error text leaks card or key: %v", tt.card, err)
		}
		if fd, ok := fakeDeclines[tt.card]; ok && d.GatewayDescription != fd["message"] {
			t.Errorf("%s: description %q, want Stripe's message", tt.card, d.GatewayDescription)
		}
		// The reconciler's view agrees.
		l, err := New(f.url(), nil).Lookup(t.Context(), testGW, fakeKey, txn)
		if err != nil || !l.Found || l.Succeeded || l.Decline == nil || l.Decline.Code != tt.code {
			t.Errorf("%s: lookup %+v, %v", tt.card, l, err)
		}
	}
}

func TestHTTPErrors(t *testing.T) {
	f := newFake(t)
	c := New(f.url(), nil)
	tests := []struct {
		name     string
		inj      injection
		code, gw string // "" code: the outcome is unknown (the reconciler looks it up)
	}{
		{"429", injection{status: 429, body: `{"error":{"type":"rate_limit_error","message":"Too many requests"}}`}, "gateway_error", "rate_limit_error"},
		{"500", injection{status: 500, body: `{"error":{"type":"api_error","message":"Something went wrong"}}`}, "", ""},
		{"502 html", injection{status: 502, body: `<html>bad gateway</html>`}, "", ""},
		{"409 key in use", injection{status: 409, body: `{"error":{"type":"idempotency_error","message":"There is currently another in-progress request using this Idempotent Key"}}`}, "", ""},
		{"401", injection{status: 401, body: `{"error":{"type":"invalid_request_error","message":"Invalid API Key provided: sk_test_****"}}`}, "invalid_gateway_credentials", "invalid_request_error"},
		{"400", injection{status: 400, body: `{"error":{"type":"invalid_request_error","code":"parameter_unknown","param":"bogus","message":"Received unknown parameter: bogus"}}`}, "invalid_request_details", "parameter_unknown"},
		{"idempotency", injection{status: 400, body: `{"error":{"type":"idempotency_error","message":"Keys for idempotent requests can only be used with the same parameters"}}`}, "", ""},
	}
	for i, tt := range tests {
		if tt.code == "" {
			// A 5xx or a key conflict on a call that moves money does not
			// say whether it happened (Stripe's error handling guide).
			f.on("POST /v1/payment_intents", tt.inj)
			if _, err := c.Charge(t.Context(), chargeReq(strings.Repeat(string(rune('a'+i)), 24), visaOK, true)); !errors.Is(err, gateway.ErrUnknownOutcome) {
				t.Errorf("%s on a charge: %v, want an unknown outcome", tt.name, err)
			}
			// Storing a card moves no money: a gateway_error to retry.
			f.on("POST /v1/payment_methods", tt.inj)
			_, err := c.StoreCard(t.Context(), storeReq(visaOK))
			if e, d := decl(t, err); e.Kind != errs.Gateway || errors.Is(err, gateway.ErrUnknownOutcome) || d.Code == "" {
				t.Errorf("%s on storing a card: kind %v decline %+v", tt.name, e.Kind, d)
			}
			continue
		}
		f.on("POST /v1/payment_intents", tt.inj)
		_, err := c.Charge(t.Context(), chargeReq(strings.Repeat(string(rune('a'+i)), 24), visaOK, true))
		if errors.Is(err, gateway.ErrUnknownOutcome) {
			t.Fatalf("%s: unknown outcome", tt.name)
		}
		e, d := decl(t, err)
		if e.Kind != errs.Gateway || d.Code != tt.code || d.GatewayCode != tt.gw || d.ParamName != "" || d.Message != catMessages[tt.code] {
			t.Errorf("%s: kind %v decline %+v, want %s/%s", tt.name, e.Kind, d, tt.code, tt.gw)
		}
	}

	// A wrong key: the fake's real 401.
	bad := storeReq(visaOK)
	bad.Key = "sk_test_wrongwrongwrong"
	_, err := c.StoreCard(t.Context(), bad)
	if _, d := decl(t, err); d.Code != "invalid_gateway_credentials" {
		t.Errorf("wrong key: %+v", d)
	}
	if strings.Contains(err.Error(), bad.Key) {
		t.Errorf("error text shows the key: %v", err)
	}
	// A message that echoes the card number (a misbehaving gateway or
	// proxy): the decline passed on never carries it (spec §1.9).
	f.on("POST /v1/payment_intents", injection{status: 402, body: `{"error":{"type":"card_error","code":"card_declined",` +
		`"message":"declined: card%5Bnumber%5D=4242424242424242&card%5Bcvc%5D=123 (4242 4242 4242 4242)"}}`})
	_, err = c.Charge(t.Context(), chargeReq("eeeeeeeeeeeeeeeeeeeeeeee", visaOK, true))
	if _, d := decl(t, err); d.GatewayDescription != "declined: card%5Bnumber%5D=[redacted]&card%5Bcvc%5D=123 ([redacted])" {
		t.Errorf("echoed card number: description %q", d.GatewayDescription)
	}
	if strings.Contains(err.Error(), "4242424242424242") {
		t.Errorf("error text shows the card number: %v", err)
	}
	// A request Stripe refuses as malformed (unsupported currency).
	req := chargeReq("dddddddddddddddddddddddd", visaOK, true)
	req.Currency = "XXX"
	_, err = c.Charge(t.Context(), req)
	if _, d := decl(t, err); d.Code != "invalid_request_details" || d.GatewayCode != "invalid_request_error" || d.ParamName != "" {
		t.Errorf("bad currency: %+v", d)
	}
}

func TestParamName(t *testing.T) {
	for in, want := range map[string]string{"number": "card_number", "card[number]": "card_number", "exp_month": "expire_month",
		"card[exp_year]": "expire_year", "cvc": "card_ccv", "amount": "", "": "", "payment_method_data[card][cvc]": "card_ccv"} {
		if got := paramName(in); got != want {
			t.Errorf("paramName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestIntentStatuses(t *testing.T) {
	f := newFake(t)
	c := New(f.url(), nil)
	tests := []struct {
		status, code, gw string
		unknown          bool
	}{
		{"succeeded", "", "", false},
		{"requires_capture", "", "", false},
		{"processing", "", "", true},
		{"requires_payment_method", "transaction_declined", "requires_payment_method", false},
		{"requires_action", "transaction_declined", "authentication_required", false},
		{"canceled", "transaction_declined", "canceled", false},
		{"requires_confirmation", "unknown", "requires_confirmation", false},
	}
	for i, tt := range tests {
		f.mu.Lock()
		f.piStatus = tt.status
		f.mu.Unlock()
		txn := strings.Repeat(string(rune('a'+i)), 24)
		pi, err := c.Charge(t.Context(), chargeReq(txn, visaOK, true))
		switch {
		case tt.unknown:
			if !errors.Is(err, gateway.ErrUnknownOutcome) || !strings.HasPrefix(pi, "pi_") {
				t.Errorf("%s: %q, %v; want pi_… and an unknown outcome", tt.status, pi, err)
			}
		case tt.code == "":
			if err != nil || !strings.HasPrefix(pi, "pi_") {
				t.Errorf("%s: %q, %v", tt.status, pi, err)
			}
		default:
			// The refused PaymentIntent exists at Stripe: its id comes
			// back with the refusal, for the charge's external_id (§8.4).
			if _, d := decl(t, err); d.Code != tt.code || d.GatewayCode != tt.gw || !strings.HasPrefix(pi, "pi_") {
				t.Errorf("%s: %q, decline %+v, want pi_… and %s/%s", tt.status, pi, d, tt.code, tt.gw)
			}
		}
		l, err := c.Lookup(t.Context(), testGW, fakeKey, txn)
		if err != nil || !l.Found || l.Pending != tt.unknown || l.Succeeded != (tt.code == "" && !tt.unknown) ||
			(tt.code != "" && (l.Decline == nil || l.Decline.GatewayCode != tt.gw)) {
			t.Errorf("%s: lookup %+v, %v", tt.status, l, err)
		}
	}
}

func TestTimeoutAfterSend(t *testing.T) {
	f := newFake(t)
	c := New(f.url(), nil)
	c.timeout = 200 * time.Millisecond
	// The charge happens at "Stripe", the answer never comes.
	f.on("POST /v1/payment_intents", injection{act: true, hang: time.Second})
	_, err := c.Charge(t.Context(), chargeReq(txnID, visaOK, true))
	if !errors.Is(err, gateway.ErrUnknownOutcome) {
		t.Fatalf("timeout after send: %v, want ErrUnknownOutcome", err)
	}
	// Looked up, not re-sent: another connector (a restarted node) finds it.
	n := len(f.calls())
	l, err := New(f.url(), nil).Lookup(t.Context(), testGW, fakeKey, txnID)
	if err != nil || !l.Found || !l.Succeeded || !strings.HasPrefix(l.ExternalID, "pi_") {
		t.Fatalf("lookup: %+v, %v", l, err)
	}
	for _, r := range f.calls()[n:] {
		if r.Method != http.MethodGet {
			t.Errorf("lookup sent %s %s", r.Method, r.Path)
		}
	}
	f.mu.Lock()
	npis := len(f.pis)
	f.mu.Unlock()
	if npis != 1 {
		t.Errorf("%d payment intents, want 1", npis)
	}

	// The payment method step moves no money: a timeout there is a
	// gateway_error, as is any timeout while storing a card.
	f.on("POST /v1/payment_methods", injection{hang: time.Second})
	_, err = c.Charge(t.Context(), chargeReq("bbbbbbbbbbbbbbbbbbbbbbbb", visaOK, true))
	if _, d := decl(t, err); d.Code != "gateway_error" || d.GatewayCode != "timeout" {
		t.Errorf("payment method timeout: %+v", d)
	}
	f.on("POST /v1/customers", injection{act: true, hang: time.Second})
	_, err = c.StoreCard(t.Context(), storeReq(visaOK))
	if errors.Is(err, gateway.ErrUnknownOutcome) {
		t.Fatal("store card: unknown outcome")
	}
	if e, d := decl(t, err); e.Kind != errs.Gateway || d.Code != "gateway_error" || d.GatewayCode != "timeout" {
		t.Errorf("store card timeout: %v %+v", e.Kind, d)
	}
	// A charge whose answer breaks off mid-way is unknown too.
	f.on("POST /v1/payment_intents", injection{act: true, status: 200, body: `{"id":"pi_`})
	_, err = c.Charge(t.Context(), chargeReq("cccccccccccccccccccccccc", visaOK, true))
	if !errors.Is(err, gateway.ErrUnknownOutcome) {
		t.Errorf("unreadable answer: %v, want ErrUnknownOutcome", err)
	}
	// Not found: nothing under that reference.
	l, err = New(f.url(), nil).Lookup(t.Context(), testGW, fakeKey, "dddddddddddddddddddddddd")
	if err != nil || l.Found {
		t.Errorf("lookup of an unknown txn: %+v, %v", l, err)
	}
}

func TestConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	ln.Close()
	c := New(base, nil)
	_, err = c.Charge(t.Context(), chargeReq(txnID, visaOK, true))
	if errors.Is(err, gateway.ErrUnknownOutcome) {
		t.Fatal("connection refused: unknown outcome, want gateway_error")
	}
	if e, d := decl(t, err); e.Kind != errs.Gateway || d.Code != "gateway_error" || d.GatewayCode != "connection_error" {
		t.Errorf("connection refused: %v %+v", e.Kind, d)
	}
	req := gateway.OpRequest{Gateway: testGW, Key: fakeKey, TxnID: txnID, ExternalID: "pi_x", Amount: 100, Currency: "AUD"}
	if err := c.Capture(t.Context(), req); errors.Is(err, gateway.ErrUnknownOutcome) || err == nil {
		t.Errorf("capture, connection refused: %v", err)
	}
	// A caller that gave up before anything was sent: nothing happened.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = New("http://127.0.0.1:1", nil).Charge(ctx, chargeReq(txnID, visaOK, true))
	if _, d := decl(t, err); d.Code != "gateway_error" {
		t.Errorf("cancelled context: %+v", d)
	}
}

func TestIdempotencyStable(t *testing.T) {
	f := newFake(t)
	c := New(f.url(), nil)
	pi1, err := c.Charge(t.Context(), chargeReq(txnID, visaOK, true))
	if err != nil {
		t.Fatal(err)
	}
	pi2, err := c.Charge(t.Context(), chargeReq(txnID, visaOK, true))
	if err != nil || pi2 != pi1 {
		t.Fatalf("repeat: %q, %v; want %q", pi2, err, pi1)
	}
	calls := f.calls()
	for i := range 2 {
		if calls[i].Header.Get("Idempotency-Key") != calls[i+2].Header.Get("Idempotency-Key") {
			t.Errorf("step %d keys differ: %q, %q", i, calls[i].Header.Get("Idempotency-Key"), calls[i+2].Header.Get("Idempotency-Key"))
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.pis) != 1 || len(f.pms) != 1 {
		t.Errorf("%d intents, %d payment methods; want one each", len(f.pis), len(f.pms))
	}
}

func op(txn, pi string, amount int64) gateway.OpRequest {
	return gateway.OpRequest{Gateway: testGW, Key: fakeKey, TxnID: txn, ExternalID: pi, Amount: amount, Currency: "AUD"}
}

func TestLifecycle(t *testing.T) {
	f := newFake(t)
	c := New(f.url(), nil)
	pi, err := c.Charge(t.Context(), chargeReq(txnID, visaOK, false))
	if err != nil {
		t.Fatal(err)
	}
	capTxn, re1Txn, re2Txn := "111111111111111111111111", "222222222222222222222222", "333333333333333333333333"
	if err := c.Capture(t.Context(), op(capTxn, pi, 1000)); err != nil {
		t.Fatal(err)
	}
	last := f.calls()[len(f.calls())-1]
	wantKeys(t, last, "amount_to_capture", "metadata[sy_op_"+capTxn+"]")
	checkHeaders(t, last, "sy_"+capTxn+"_capture")
	if last.Path != "/v1/payment_intents/"+pi+"/capture" || last.Form.Get("amount_to_capture") != "1000" {
		t.Errorf("capture %s %v", last.Path, last.Form)
	}

	re1, err := c.Refund(t.Context(), op(re1Txn, pi, 400))
	if err != nil || !strings.HasPrefix(re1, "re_") {
		t.Fatalf("refund: %q, %v", re1, err)
	}
	calls := f.calls()
	mark, rf := calls[len(calls)-2], calls[len(calls)-1]
	wantKeys(t, mark, "metadata[sy_op_"+re1Txn+"]")
	checkHeaders(t, mark, "sy_"+re1Txn+"_mark")
	wantKeys(t, rf, "payment_intent", "amount", "metadata[switchyard_txn_id]")
	checkHeaders(t, rf, "sy_"+re1Txn+"_refund")
	if rf.Form.Get("payment_intent") != pi || rf.Form.Get("amount") != "400" {
		t.Errorf("refund form %v", rf.Form)
	}
	// Settlement by the same node: GET /v1/refunds/{re}.
	l, err := c.Lookup(t.Context(), testGW, fakeKey, re1Txn)
	if err != nil || !l.Found || !l.Succeeded || l.ExternalID != re1 {
		t.Fatalf("refund lookup: %+v, %v", l, err)
	}
	if last := f.calls()[len(f.calls())-1]; last.Path != "/v1/refunds/"+re1 {
		t.Errorf("refund looked up with %s", last.Path)
	}

	// A pending refund stays pending until Stripe settles it; another node
	// finds it by the marker.
	f.mu.Lock()
	f.refundStatus = "pending"
	f.mu.Unlock()
	re2, err := c.Refund(t.Context(), op(re2Txn, pi, 600))
	if err != nil {
		t.Fatal(err)
	}
	if l, err := c.Lookup(t.Context(), testGW, fakeKey, re2Txn); err != nil || !l.Found || !l.Pending {
		t.Fatalf("pending refund lookup: %+v, %v", l, err)
	}
	f.mu.Lock()
	f.refunds[re2].Status = "succeeded"
	f.mu.Unlock()
	other := New(f.url(), nil)
	if l, err := other.Lookup(t.Context(), testGW, fakeKey, re2Txn); err != nil || !l.Found || !l.Succeeded || l.ExternalID != re2 {
		t.Fatalf("refund lookup by another node: %+v, %v", l, err)
	}
	if l, err := other.Lookup(t.Context(), testGW, fakeKey, capTxn); err != nil || !l.Found || !l.Succeeded {
		t.Fatalf("capture lookup by another node: %+v, %v", l, err)
	}
	// By the charge's PaymentIntent, reads by id: no search, which can lag.
	before := len(f.calls())
	third := New(f.url(), nil)
	for _, c := range []struct {
		ref  gateway.OpRef
		want string
	}{
		{gateway.OpRef{TxnID: re2Txn, Kind: "refund", ChargeExternalID: pi, ExternalID: re2}, re2},
		{gateway.OpRef{TxnID: re1Txn, Kind: "refund", ChargeExternalID: pi}, re1}, // the refund's id lost: its PaymentIntent's refunds
		{gateway.OpRef{TxnID: capTxn, Kind: "capture", ChargeExternalID: pi}, pi},
	} {
		l, err := third.LookupOp(t.Context(), testGW, fakeKey, c.ref)
		if err != nil || !l.Found || !l.Succeeded || l.ExternalID != c.want {
			t.Fatalf("LookupOp %+v: %+v, %v", c.ref, l, err)
		}
	}
	for _, call := range f.calls()[before:] {
		if strings.Contains(call.Path, "/search") {
			t.Errorf("LookupOp searched: %s", call.Path)
		}
	}
	// A cancel of an intent already captured failed, read off the intent.
	if l, err := third.LookupOp(t.Context(), testGW, fakeKey, gateway.OpRef{TxnID: "555555555555555555555555", Kind: "cancel", ChargeExternalID: pi}); err != nil || !l.Found || l.Succeeded || l.Decline == nil {
		t.Errorf("cancel of a captured intent: %+v, %v", l, err)
	}
	// Nothing left to refund: Stripe refuses.
	_, err = c.Refund(t.Context(), op("444444444444444444444444", pi, 1))
	if _, d := decl(t, err); d.Code != "invalid_request_details" || d.GatewayCode != "amount_too_large" || d.ParamName != "" {
		t.Errorf("over-refund: %+v", d)
	}
	// A refund Stripe reports failed.
	f.mu.Lock()
	f.refunds[re2].Status = "failed"
	f.mu.Unlock()
	if l, err := other.Lookup(t.Context(), testGW, fakeKey, re2Txn); err != nil || !l.Found || l.Succeeded || l.Decline == nil {
		t.Errorf("failed refund lookup: %+v, %v", l, err)
	}
}

func TestCancel(t *testing.T) {
	f := newFake(t)
	c := New(f.url(), nil)
	pi, err := c.Charge(t.Context(), chargeReq(txnID, visaOK, false))
	if err != nil {
		t.Fatal(err)
	}
	voidTxn := "555555555555555555555555"
	if err := c.Cancel(t.Context(), op(voidTxn, pi, 1050)); err != nil {
		t.Fatal(err)
	}
	calls := f.calls()
	mark, cancel := calls[len(calls)-2], calls[len(calls)-1]
	checkHeaders(t, mark, "sy_"+voidTxn+"_mark")
	checkHeaders(t, cancel, "sy_"+voidTxn+"_cancel")
	wantKeys(t, cancel)
	if cancel.Path != "/v1/payment_intents/"+pi+"/cancel" {
		t.Errorf("cancel path %s", cancel.Path)
	}
	if l, err := New(f.url(), nil).Lookup(t.Context(), testGW, fakeKey, voidTxn); err != nil || !l.Found || !l.Succeeded {
		t.Errorf("cancel lookup: %+v, %v", l, err)
	}
	// Capturing a cancelled intent: Stripe refuses.
	err = c.Capture(t.Context(), op("666666666666666666666666", pi, 1050))
	if _, d := decl(t, err); d.Code != "invalid_request_details" || d.GatewayCode != "payment_intent_unexpected_state" {
		t.Errorf("capture after cancel: %+v", d)
	}
}

func TestOpTimeouts(t *testing.T) {
	f := newFake(t)
	c := New(f.url(), nil)
	c.timeout = 200 * time.Millisecond
	pi, err := c.Charge(t.Context(), chargeReq(txnID, visaOK, false))
	if err != nil {
		t.Fatal(err)
	}
	// A capture that happened without an answer.
	capTxn := "777777777777777777777777"
	f.on("POST /v1/payment_intents/*/capture", injection{act: true, hang: time.Second})
	if err := c.Capture(t.Context(), op(capTxn, pi, 1050)); !errors.Is(err, gateway.ErrUnknownOutcome) {
		t.Fatalf("capture timeout: %v", err)
	}
	for _, conn := range []*Connector{c, New(f.url(), nil)} {
		if l, err := conn.Lookup(t.Context(), testGW, fakeKey, capTxn); err != nil || !l.Found || !l.Succeeded {
			t.Errorf("capture lookup: %+v, %v", l, err)
		}
	}
	// A refund that happened without an answer: found by the marker.
	reTxn := "888888888888888888888888"
	f.on("POST /v1/refunds", injection{act: true, hang: time.Second})
	if _, err := c.Refund(t.Context(), op(reTxn, pi, 50)); !errors.Is(err, gateway.ErrUnknownOutcome) {
		t.Fatalf("refund timeout: %v", err)
	}
	for _, conn := range []*Connector{c, New(f.url(), nil)} {
		if l, err := conn.Lookup(t.Context(), testGW, fakeKey, reTxn); err != nil || !l.Found || !l.Succeeded || !strings.HasPrefix(l.ExternalID, "re_") {
			t.Errorf("refund lookup: %+v, %v", l, err)
		}
	}
	// A refund whose request never reached Stripe: marked, not found.
	lostTxn := "999999999999999999999999"
	f.on("POST /v1/refunds", injection{hang: time.Second})
	if _, err := c.Refund(t.Context(), op(lostTxn, pi, 50)); !errors.Is(err, gateway.ErrUnknownOutcome) {
		t.Fatalf("refund timeout: %v", err)
	}
	if l, err := New(f.url(), nil).Lookup(t.Context(), testGW, fakeKey, lostTxn); err != nil || l.Found {
		t.Errorf("lost refund lookup: %+v, %v", l, err)
	}
	// The marker fails: no refund is sent, a gateway_error is returned.
	f.on("POST /v1/payment_intents/*", injection{status: 500, body: `{"error":{"type":"api_error","message":"boom"}}`})
	n := len(f.calls())
	_, err = c.Refund(t.Context(), op("abababababababababababab", pi, 50))
	if _, d := decl(t, err); d.Code != "gateway_error" {
		t.Errorf("failed marker: %+v", d)
	}
	for _, r := range f.calls()[n:] {
		if r.Path == "/v1/refunds" {
			t.Errorf("refund sent after a failed marker")
		}
	}
}

// A money POST whose connection closes before any answer is sent once:
// net/http would replay a request carrying an Idempotency-Key on a fresh
// connection, while Stripe may still be running the first (§4.3: no
// automatic retries). The outcome is unknown, for the reconciler.
func TestMoneyPostIsNeverReplayedByTheTransport(t *testing.T) {
	var intents atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/payment_intents":
			intents.Add(1)
			// Read the request, then drop the reused connection unanswered.
			_, _ = io.Copy(io.Discard, r.Body)
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		default: // the PaymentMethod, answered on a keep-alive connection
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"id":"pm_1","object":"payment_method"}`)
		}
	}))
	defer srv.Close()
	_, err := New(srv.URL, srv.Client()).Charge(t.Context(), chargeReq(txnID, visaOK, true))
	if !errors.Is(err, gateway.ErrUnknownOutcome) {
		t.Fatalf("dropped connection: %v, want an unknown outcome", err)
	}
	if n := intents.Load(); n != 1 {
		t.Fatalf("the PaymentIntent was sent %d times", n)
	}
}

// Amounts go to Stripe in its units where they differ from ISO 4217's, and
// what Stripe cannot take is refused before any call, never rounded.
func TestStripeAmount(t *testing.T) {
	for _, c := range []struct {
		minor    int64
		currency string
		want     string // "" = refused
	}{
		{1050, "AUD", "1050"}, {500, "JPY", "500"}, {500, "jpy", "500"},
		{5000, "ISK", "500000"}, // ISO: 5000 krónur; Stripe: 100 per króna
		{100000, "MGA", "1000"}, // ISO: 1000.00 ariary; Stripe: zero-decimal
		{100050, "MGA", ""},
		{10010, "KWD", "10010"}, {10005, "KWD", ""}, {5005, "BHD", ""}, {1230, "TND", "1230"},
		{3000, "UGX", "3000"},
	} {
		got, err := stripeAmount("test", c.minor, c.currency)
		if c.want == "" {
			if e, d := decl(t, err); e.Kind != errs.Gateway || d.Code != "invalid_request_details" || d.ParamName != "amount" {
				t.Errorf("%d %s: %v, want a local invalid_request_details", c.minor, c.currency, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%d %s: %q %v, want %q", c.minor, c.currency, got, err, c.want)
		}
	}
}

func TestTruncateRunes(t *testing.T) {
	for _, c := range []struct {
		s    string
		n    int
		want string
	}{{"abc", 5, "abc"}, {"abcdef", 3, "abc"}, {"ééé", 2, "éé"}, {"", 3, ""}, {"ab", 0, ""}} {
		if got := truncateRunes(c.s, c.n); got != c.want {
			t.Errorf("truncateRunes(%q, %d) = %q, want %q", c.s, c.n, got, c.want)
		}
	}
}

// Stripe's search can lag an hour in an outage: "no record" is believed
// only after two.
func TestStripeNoRecordAfter(t *testing.T) {
	var lag gateway.RecordLag = New("http://127.0.0.1:1", nil)
	if lag.NoRecordAfter() < 2*time.Hour {
		t.Fatalf("NoRecordAfter %v", lag.NoRecordAfter())
	}
}
