package httpapi_test

import (
	"os"
	"testing"
	"time"

	"switchyard/internal/apitest"
)

// TestStripeChargeLifecycle runs the money path through the HTTP API on a
// Stripe gateway against stripe-mock (issue 7): a customer's card stored at
// Stripe (flow 1), authorise, capture part, refund part, refund the rest.
// stripe-mock validates every request shape; its answers are fixtures, so
// states are asserted on Switchyard's side.
func TestStripeChargeLifecycle(t *testing.T) {
	base := os.Getenv("STRIPE_MOCK_URL")
	if base == "" {
		msg := "STRIPE_MOCK_URL is not set: start stripe-mock as .ci/run does to run the Stripe end-to-end test"
		if os.Getenv("CI") != "" {
			t.Fatal(msg + " (CI is set: not skipping)")
		}
		t.Skip(msg)
	}
	c := &chClock{}
	e := &chEnv{Env: apitest.New(t, apitest.Options{StripeAPIBase: base, Now: c.Now}), clock: c}
	c.t = time.Now().UTC()
	r := e.Do("POST", "/v1/gateways", map[string]any{"type": "Stripe", "name": "Stripe AU", "mode": "test", "key": "sk_test_123"})
	if r.Status != 201 {
		t.Fatalf("gateway: %s", r.Raw)
	}
	gw := r.Data()["_id"].(string)
	r = e.Do("POST", "/v1/customers", map[string]any{"first_name": "Ada", "email": "ada@example.com", "payment_source": map[string]any{
		"gateway_id": gw, "card_name": "Ada Lovelace", "card_number": "4242424242424242", "expire_month": 12, "expire_year": 2031, "card_ccv": "123"}})
	if r.Status != 201 {
		t.Fatalf("customer on Stripe: %s", r.Raw)
	}
	src := r.Data()["payment_sources"].([]any)[0].(map[string]any)
	if ref, _ := src["ref_token"].(string); len(ref) < 4 || ref[:4] != "cus_" || src["gateway_type"] != "Stripe" {
		t.Fatalf("stored source: %v", src)
	}
	e.customer = r.Data()["_id"].(string)

	d := chStatus(t, e.charge(map[string]any{"amount": 30, "currency": "AUD", "customer_id": e.customer}, "?capture=false"), 201, "pending")
	id := d["_id"].(string)
	if ext, _ := d["external_id"].(string); len(ext) < 3 || ext[:3] != "pi_" {
		t.Fatalf("external_id %v", d["external_id"])
	}
	d = chStatus(t, e.Do("POST", "/v1/charges/"+id+"/capture", map[string]any{"amount": "20.00"}), 201, "complete")
	if d["captured_amount"] != 20.0 {
		t.Fatalf("captured %v", d["captured_amount"])
	}
	d = chStatus(t, e.Do("POST", "/v1/charges/"+id+"/refunds", map[string]any{"amount": 5.5}), 200, "refund_requested")
	txns := d["transactions"].([]any)
	if ext, _ := txns[len(txns)-1].(map[string]any)["external_id"].(string); len(ext) < 3 || ext[:3] != "re_" {
		t.Fatalf("refund external_id: %v", txns[len(txns)-1])
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
	if got := chTxns(d); len(got) != 4 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] || got[3] != want[3] {
		t.Fatalf("transactions %v, want %v", got, want)
	}
}
