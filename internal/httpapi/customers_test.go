package httpapi_test

// Customer tests (spec §7, with §1.3, §3.4, §3.6, §5, §6.3 and Appendix A)
// through the real router over a fresh store. Helpers carry a cu prefix:
// other files of this package are written by other people.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"switchyard/internal/apitest"
)

// --- fixtures ---------------------------------------------------------------

const (
	cuVisa     = "4111111111111111"
	cuVisa2    = "4242424242424242"
	cuMaster   = "5555555555554444"
	cuAmex     = "378282246310005"
	cuDecline  = "4100000000000001"
	cuNSF      = "4000000000009995"
	cuExpired  = "4000000000000069"
	cuProcErr  = "4000000000000119"
	cuZeroID   = "000000000000000000000000"
	cuZeroUUID = "00000000-0000-4000-8000-000000000000"
)

var (
	cuHex24 = regexp.MustCompile(`^[0-9a-f]{24}$`)
	cuHex32 = regexp.MustCompile(`^[0-9a-f]{32}$`)
	cuUUID  = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	cuRef   = regexp.MustCompile(`^sim_cus_[0-9a-f]{24}$`)
	cuJWT   = regexp.MustCompile(`^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$`)
)

// cuClock is a clock the test sets and advances.
type cuClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *cuClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *cuClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *cuClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type cuEnv struct {
	*apitest.Env
	t     *testing.T
	clock *cuClock
}

func newCU(t *testing.T) *cuEnv {
	t.Helper()
	c := &cuClock{t: time.Date(2026, time.November, 24, 9, 0, 0, 0, time.UTC)}
	return &cuEnv{Env: apitest.New(t, apitest.Options{Now: c.Now}), t: t, clock: c}
}

// cuWith returns b with over applied; a nil value in over deletes the key.
func cuWith(b, over map[string]any) map[string]any {
	b = maps.Clone(b)
	for k, v := range over {
		if v == nil {
			delete(b, k)
			continue
		}
		b[k] = v
	}
	return b
}

// cuCard is card details for number with overrides.
func cuCard(number string, over map[string]any) map[string]any {
	return cuWith(map[string]any{"card_name": "Ada Lovelace", "card_number": number, "expire_month": "09", "expire_year": 2028,
		"card_ccv": "123"}, over)
}

// token makes a one-time token with the public key.
func (e *cuEnv) token(body map[string]any, headers ...string) string {
	e.t.Helper()
	if len(headers) == 0 {
		headers = []string{"x-user-public-key", e.Public}
	}
	r := e.Do("POST", "/v1/payment_sources/tokens", body, headers...)
	if r.Status != 201 {
		e.t.Fatalf("token create: %d %s", r.Status, r.Raw)
	}
	s, _ := r.Resource()["data"].(string)
	return s
}

// vault makes a vault record and returns its vault_token.
func (e *cuEnv) vault(body map[string]any, headers ...string) string {
	e.t.Helper()
	r := e.Do("POST", "/v1/vault/payment_sources", body, headers...)
	if r.Status != 201 {
		e.t.Fatalf("vault create: %d %s", r.Status, r.Raw)
	}
	return r.Data()["vault_token"].(string)
}

func (e *cuEnv) vaultObject(tok string) map[string]any {
	e.t.Helper()
	r := e.Do("GET", "/v1/vault-tokens/"+tok, nil)
	if r.Status != 200 {
		e.t.Fatalf("vault get: %d %s", r.Status, r.Raw)
	}
	return cuData(e.t, r)
}

// gateway creates a Simulator gateway and returns its id.
func (e *cuEnv) gateway(name string, headers ...string) string {
	e.t.Helper()
	r := e.Do("POST", "/v1/gateways", map[string]any{"type": "Simulator", "name": name}, headers...)
	if r.Status != 201 {
		e.t.Fatalf("gateway create: %d %s", r.Status, r.Raw)
	}
	return r.Data()["_id"].(string)
}

// other creates a second account with a gateway and returns its keys.
func (e *cuEnv) other() (account, secret, public string) {
	e.t.Helper()
	a, k, err := e.Services.Auth.Create(context.Background(), "Other")
	if err != nil {
		e.t.Fatal(err)
	}
	return a.ID, k.Secret, k.Public
}

// create posts a customer (after one clock second) and returns its data.
func (e *cuEnv) create(body any) map[string]any {
	e.t.Helper()
	e.clock.Advance(time.Second)
	r := e.Do("POST", "/v1/customers", body)
	if r.Status != 201 {
		e.t.Fatalf("customer create: %d %s", r.Status, r.Raw)
	}
	return cuData(e.t, r)
}

func (e *cuEnv) get(id string) map[string]any {
	e.t.Helper()
	r := e.Do("GET", "/v1/customers/"+id, nil)
	if r.Status != 200 {
		e.t.Fatalf("customer get: %d %s", r.Status, r.Raw)
	}
	return cuData(e.t, r)
}

func (e *cuEnv) update(id string, body any) map[string]any {
	e.t.Helper()
	e.clock.Advance(time.Second)
	r := e.Do("POST", "/v1/customers/"+id, body)
	if r.Status != 200 {
		e.t.Fatalf("customer update: %d %s", r.Status, r.Raw)
	}
	return cuData(e.t, r)
}

// cuCounts is what a failed request must not change.
type cuCounts struct{ customers, sources, vault int }

func (e *cuEnv) counts() cuCounts {
	e.t.Helper()
	var c cuCounts
	r := e.Store.Engine().Reader()
	for _, q := range []struct {
		sql string
		dst *int
	}{{`SELECT count(*) FROM customers`, &c.customers}, {`SELECT count(*) FROM payment_sources`, &c.sources},
		{`SELECT count(*) FROM vault_records`, &c.vault}} {
		if err := r.QueryRowContext(context.Background(), q.sql).Scan(q.dst); err != nil {
			e.t.Fatal(err)
		}
	}
	return c
}

func (e *cuEnv) sameCounts(what string, before cuCounts) {
	e.t.Helper()
	if after := e.counts(); after != before {
		e.t.Errorf("%s wrote something: counts %+v, before %+v", what, after, before)
	}
}

// tokenStatus is a one-time token's stored status.
func (e *cuEnv) tokenStatus(tok string) string {
	e.t.Helper()
	var s string
	if err := e.Store.Engine().Reader().QueryRowContext(context.Background(),
		`SELECT status FROM vault_records WHERE token = $1`, tok).Scan(&s); err != nil {
		e.t.Fatal(err)
	}
	return s
}

// tokenLeftovers is what a one-time token's row holds besides its id,
// account, status and expiry: nothing, once it is a tombstone (spec §5).
func (e *cuEnv) tokenLeftovers(tok string) string {
	e.t.Helper()
	var text string
	var month, year int
	var sealed bool
	if err := e.Store.Engine().Reader().QueryRowContext(context.Background(),
		`SELECT card_name || card_scheme || card_bin || card_last4 || card_fingerprint || address_line1 || address_line2 || address_line3 ||
		 address_city || address_state || address_postcode || address_country || first_name || last_name || email || phone || gateway_id,
		 expire_month, expire_year, sealed IS NOT NULL FROM vault_records WHERE token = $1`, tok).Scan(&text, &month, &year, &sealed); err != nil {
		e.t.Fatal(err)
	}
	if text == "" && month == 0 && year == 0 && !sealed {
		return ""
	}
	return fmt.Sprintf("%q, expiry %d/%d, sealed card %v", text, month, year, sealed)
}

// list runs GET /v1/customers?query and returns the ids, count and resource.
func (e *cuEnv) list(query string, headers ...string) ([]string, int, map[string]any) {
	e.t.Helper()
	r := e.Do("GET", "/v1/customers"+query, nil, headers...)
	if r.Status != 200 {
		e.t.Fatalf("list %s: %d %s", query, r.Status, r.Raw)
	}
	var ids []string
	for _, d := range r.List() {
		ids = append(ids, d.(map[string]any)["_id"].(string))
	}
	return ids, int(r.Resource()["count"].(float64)), r.Resource()
}

// cuData decodes resource.data keeping numbers' text (9 is not 9.0).
func cuData(t *testing.T, r *apitest.Response) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(r.Raw))
	dec.UseNumber()
	var b struct {
		Resource struct {
			Data map[string]any `json:"data"`
		} `json:"resource"`
	}
	if err := dec.Decode(&b); err != nil {
		t.Fatalf("decode: %v: %s", err, r.Raw)
	}
	return b.Resource.Data
}

func cuJSON(t *testing.T, s string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("bad expected JSON: %v\n%s", err, s)
	}
	return m
}

func cuSources(d map[string]any) []map[string]any {
	var out []map[string]any
	ps, _ := d["payment_sources"].([]any)
	for _, p := range ps {
		out = append(out, p.(map[string]any))
	}
	return out
}

func cuSourceIDs(d map[string]any) []string {
	var out []string
	for _, s := range cuSources(d) {
		out = append(out, s["_id"].(string))
	}
	return out
}

// cuMatch compares a customer's data with the spec's example in tmpl, whose
// {{…}} placeholders are filled from the response after their format is
// checked: ID, SID (first source), VT, REF, FP, ACC, GW.
func (e *cuEnv) cuMatch(what string, d map[string]any, tmpl string) {
	e.t.Helper()
	vars := []string{"{{ACC}}", e.Account, "{{GW}}", e.Gateway}
	id, _ := d["_id"].(string)
	if !cuHex24.MatchString(id) {
		e.t.Errorf("%s: _id %q", what, id)
	}
	vars = append(vars, "{{ID}}", id)
	if srcs := cuSources(d); len(srcs) > 0 {
		s := srcs[0]
		sid, _ := s["_id"].(string)
		vt, _ := s["vault_token"].(string)
		fp, _ := s["card_fingerprint"].(string)
		if !cuHex24.MatchString(sid) || !cuUUID.MatchString(vt) || !cuHex32.MatchString(fp) {
			e.t.Errorf("%s: source ids %q %q %q", what, sid, vt, fp)
		}
		vars = append(vars, "{{SID}}", sid, "{{VT}}", vt, "{{FP}}", fp)
		if ref, ok := s["ref_token"].(string); ok {
			if !cuRef.MatchString(ref) {
				e.t.Errorf("%s: ref_token %q is not sim_cus_ + 24 hex", what, ref)
			}
			vars = append(vars, "{{REF}}", ref)
		}
	}
	want := cuJSON(e.t, strings.NewReplacer(vars...).Replace(tmpl))
	if !reflect.DeepEqual(d, want) {
		got, _ := json.Marshal(d)
		exp, _ := json.Marshal(want)
		e.t.Errorf("%s:\n got  %s\n want %s", what, got, exp)
	}
}

// cuErr asserts a non-gateway error: status, both codes, message, path,
// the one message, error_summary mirroring error, resource.type, no data.
func cuErr(t *testing.T, r *apitest.Response, status int, code, message, path, msg, rtype string) {
	t.Helper()
	snake := map[string]string{"ValidationError": "validation_error", "UnfulfilledCondition": "unfulfilled_condition",
		"NotFound": "not_found", "token_required": "token_required"}[code]
	want := map[string]any{"status": float64(status),
		"error":         map[string]any{"message": message, "code": code, "details": map[string]any{"path": path, "messages": []any{msg}}},
		"error_summary": map[string]any{"message": message, "code": snake, "details": map[string]any{"path": path, "messages": []any{msg}}},
		"resource":      map[string]any{"type": rtype}}
	if msg == "" {
		for _, k := range []string{"error", "error_summary"} {
			want[k].(map[string]any)["details"].(map[string]any)["messages"] = []any{}
		}
	}
	if r.Status != status || !reflect.DeepEqual(r.Body, want) {
		exp, _ := json.Marshal(want)
		t.Errorf("HTTP %d\n got  %s\n want %s", r.Status, r.Raw, exp)
	}
}

func cuInvalid(t *testing.T, r *apitest.Response, path, msg string) {
	t.Helper()
	cuErr(t, r, 400, "ValidationError", "body validation failed", path, msg, "customer")
}

func cuQueryInvalid(t *testing.T, r *apitest.Response, path, msg, rtype string) {
	t.Helper()
	cuErr(t, r, 400, "ValidationError", "query validation failed", path, msg, rtype)
}

func cuNotFound(t *testing.T, r *apitest.Response, path, msg string) {
	t.Helper()
	cuErr(t, r, 404, "NotFound", msg, path, msg, "customer")
}

func cuBadParam(t *testing.T, r *apitest.Response, path string) {
	t.Helper()
	cuErr(t, r, 404, "NotFound", "param validation failed", path, path+" must be a mongodb id", "customer")
}

func cuArchivedErr(t *testing.T, r *apitest.Response) {
	t.Helper()
	cuErr(t, r, 400, "UnfulfilledCondition", "customer is archived", "", "customer is archived", "customer")
}

// cuRefusal is a Simulator refusal as spec §3.6 writes it.
type cuRefusal struct {
	card, code, message, gwCode, statusCode, statusDesc string
	param                                               any
}

var cuRefusals = []cuRefusal{
	{cuDecline, "transaction_declined", "Transaction Declined", "card_declined", "05", "Do not honour", "card_number"},
	{cuExpired, "credit_card_invalid_or_expired", "Credit Card Invalid or Expired", "expired_card", "54", "Expired card", "card_number"},
	{cuProcErr, "gateway_error", "Gateway Error", "processing_error", "96", "System malfunction", nil},
}

// cuGatewayErr asserts the exact §3.6 body with resource.type customer.
func cuGatewayErr(t *testing.T, r *apitest.Response, f cuRefusal) {
	t.Helper()
	want := map[string]any{"status": float64(400),
		"error": map[string]any{"message": f.message, "details": []any{map[string]any{"gateway_specific_code": f.gwCode,
			"gateway_specific_description": f.statusDesc, "param_name": f.param, "description": f.message}}},
		"resource": map[string]any{"type": "customer"},
		"error_summary": map[string]any{"message": f.message, "code": f.code, "status_code": f.statusCode,
			"status_code_description": f.statusDesc, "details": map[string]any{"gateway_specific_code": f.gwCode,
				"gateway_specific_description": f.statusDesc, "messages": []any{f.message}}}}
	if r.Status != 400 || !reflect.DeepEqual(r.Body, want) {
		exp, _ := json.Marshal(want)
		t.Errorf("gateway error: HTTP %d\n got  %s\n want %s", r.Status, r.Raw, exp)
	}
}

// --- §7.2 the four flows ------------------------------------------------------

func TestCustomerFlowsAsSpecified(t *testing.T) {
	e := newCU(t)
	if g := e.Do("GET", "/v1/gateways/"+e.Gateway, nil); g.Data()["name"] != "Sandbox" {
		t.Fatalf("sandbox gateway: %s", g.Raw)
	}
	at := func(s string) {
		tm, err := time.Parse("2006-01-02T15:04:05.000Z", s)
		if err != nil {
			t.Fatal(err)
		}
		e.clock.Set(tm)
	}

	t.Run("flow 1 card details with gateway", func(t *testing.T) {
		at("2026-11-24T09:15:02.417Z")
		before := e.counts()
		r := e.Do("POST", "/v1/customers", map[string]any{"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com",
			"phone": "+61411222333", "reference": "CRM-1042",
			"payment_source": map[string]any{"gateway_id": e.Gateway, "card_name": "Ada Lovelace", "card_number": cuVisa,
				"expire_month": "09", "expire_year": 2028, "card_ccv": "123", "address_country": "AU"}})
		if r.Status != 201 {
			t.Fatalf("HTTP %d %s", r.Status, r.Raw)
		}
		d := cuData(t, r)
		e.cuMatch("flow 1", d, `{"_id":"{{ID}}",
  "company_id":"{{ACC}}","first_name":"Ada","last_name":"Lovelace","email":"ada@example.com",
  "phone":"+61411222333","reference":"CRM-1042","default_source":"{{SID}}","status":"active","archived":false,
  "statistics":{"successful_transactions":0,"total_collected_amount":0},"_service":{"default_gateway_id":"{{GW}}"},
  "payment_sources":[{"_id":"{{SID}}","type":"card","vault_token":"{{VT}}",
    "gateway_id":"{{GW}}","gateway_name":"Sandbox","gateway_type":"Simulator","gateway_mode":"test",
    "ref_token":"{{REF}}","card_name":"Ada Lovelace","card_scheme":"visa","card_number_bin":"41111111",
    "card_number_last4":"1111","card_fingerprint":"{{FP}}","expire_month":9,"expire_year":2028,
    "address_country":"AU","status":"active","created_at":"2026-11-24T09:15:02.417Z","updated_at":"2026-11-24T09:15:02.417Z"}],
  "created_at":"2026-11-24T09:15:02.417Z","updated_at":"2026-11-24T09:15:02.417Z"}`)
		if r.Resource()["type"] != "customer" {
			t.Errorf("resource.type %v", r.Resource()["type"])
		}
		if got := e.counts(); got != (cuCounts{before.customers + 1, before.sources + 1, before.vault + 1}) {
			t.Errorf("counts %+v after %+v", got, before)
		}
		// The new vault record is permanent, holds no CVV, and is the source's.
		src := cuSources(d)[0]
		v := e.vaultObject(src["vault_token"].(string))
		if v["vault_type"] != "permanent" || v["status"] != "active" || v["card_fingerprint"] != src["card_fingerprint"] {
			t.Errorf("vault record %v", v)
		}
		if strings.Contains(string(r.Raw), cuVisa) || strings.Contains(string(r.Raw), `"123"`) {
			t.Errorf("response echoes card data: %s", r.Raw)
		}
		// GET answers the same object.
		if g := e.get(d["_id"].(string)); !reflect.DeepEqual(g, d) {
			t.Errorf("GET differs:\n%v\n%v", g, d)
		}
	})

	t.Run("flow 1 without gateway_id is vault-only", func(t *testing.T) {
		// The decline card proves no gateway is contacted.
		at("2026-11-24T09:16:00.000Z")
		before := e.counts()
		r := e.Do("POST", "/v1/customers", map[string]any{"email": "vo@example.com",
			"payment_source": cuCard(cuDecline, map[string]any{"card_name": "Vault Only"})})
		if r.Status != 201 {
			t.Fatalf("HTTP %d %s", r.Status, r.Raw)
		}
		e.cuMatch("flow 1 no gateway", cuData(t, r), `{"_id":"{{ID}}","company_id":"{{ACC}}","email":"vo@example.com",
  "default_source":"{{SID}}","status":"active","archived":false,"statistics":{"successful_transactions":0,"total_collected_amount":0},
  "_service":{},"payment_sources":[{"_id":"{{SID}}","type":"card","vault_token":"{{VT}}","card_name":"Vault Only",
    "card_scheme":"visa","card_number_bin":"41000000","card_number_last4":"0001","card_fingerprint":"{{FP}}","expire_month":9,
    "expire_year":2028,"status":"active","created_at":"2026-11-24T09:16:00.000Z","updated_at":"2026-11-24T09:16:00.000Z"}],
  "created_at":"2026-11-24T09:16:00.000Z","updated_at":"2026-11-24T09:16:00.000Z"}`)
		if got := e.counts(); got != (cuCounts{before.customers + 1, before.sources + 1, before.vault + 1}) {
			t.Errorf("counts %+v after %+v", got, before)
		}
	})

	t.Run("flow 2 one-time token", func(t *testing.T) {
		at("2026-11-24T09:19:00.000Z")
		tok := e.token(map[string]any{"gateway_id": e.Gateway, "card_name": "Grace Hopper", "card_number": cuMaster,
			"expire_month": 3, "expire_year": 2029, "card_ccv": "999", "first_name": "Grace", "last_name": "Hopper",
			"email": "grace@example.com"})
		at("2026-11-24T09:20:41.008Z")
		before := e.counts()
		r := e.Do("POST", "/v1/customers", map[string]any{"token": tok, "reference": "CRM-1043"})
		if r.Status != 201 {
			t.Fatalf("HTTP %d %s", r.Status, r.Raw)
		}
		d := cuData(t, r)
		e.cuMatch("flow 2", d, `{"_id":"{{ID}}",
  "company_id":"{{ACC}}","first_name":"Grace","last_name":"Hopper","email":"grace@example.com",
  "reference":"CRM-1043","default_source":"{{SID}}","status":"active","archived":false,
  "statistics":{"successful_transactions":0,"total_collected_amount":0},"_service":{"default_gateway_id":"{{GW}}"},
  "payment_sources":[{"_id":"{{SID}}","type":"card","vault_token":"{{VT}}",
    "gateway_id":"{{GW}}","gateway_name":"Sandbox","gateway_type":"Simulator","gateway_mode":"test",
    "ref_token":"{{REF}}","card_name":"Grace Hopper","card_scheme":"mastercard","card_number_bin":"55555555",
    "card_number_last4":"4444","card_fingerprint":"{{FP}}","expire_month":3,"expire_year":2029,
    "status":"active","created_at":"2026-11-24T09:20:41.008Z","updated_at":"2026-11-24T09:20:41.008Z"}],
  "created_at":"2026-11-24T09:20:41.008Z","updated_at":"2026-11-24T09:20:41.008Z"}`)
		if vt := cuSources(d)[0]["vault_token"]; vt == tok {
			t.Errorf("the source reuses the one-time token as its vault token")
		}
		if v := e.vaultObject(cuSources(d)[0]["vault_token"].(string)); v["vault_type"] != "permanent" {
			t.Errorf("vault record %v", v)
		}
		if got := e.counts(); got != (cuCounts{before.customers + 1, before.sources + 1, before.vault + 1}) {
			t.Errorf("counts %+v after %+v", got, before)
		}
		if s := e.tokenStatus(tok); s != "used" {
			t.Errorf("token status %q after use", s)
		}
		if left := e.tokenLeftovers(tok); left != "" {
			t.Errorf("the used token still holds %s", left)
		}
		// Single use: a second use fails and writes nothing.
		before = e.counts()
		cuInvalid(t, e.Do("POST", "/v1/customers", map[string]any{"token": tok}), "token", "token has already been used")
		cuInvalid(t, e.Do("POST", "/v1/customers", map[string]any{"payment_source": map[string]any{"token": tok}}),
			"payment_source.token", "token has already been used")
		e.sameCounts("second use", before)
	})

	t.Run("flow 3 vault token with gateway", func(t *testing.T) {
		at("2026-11-24T09:10:00.031Z")
		vt := e.vault(map[string]any{"card_name": "Alan Turing", "card_number": cuVisa2, "expire_month": 12, "expire_year": "27",
			"card_ccv": "321"})
		rec := e.vaultObject(vt)
		at("2026-11-24T09:25:17.662Z")
		before := e.counts()
		r := e.Do("POST", "/v1/customers", map[string]any{"first_name": "Alan", "last_name": "Turing",
			"payment_source": map[string]any{"vault_token": vt, "gateway_id": e.Gateway}})
		if r.Status != 201 {
			t.Fatalf("HTTP %d %s", r.Status, r.Raw)
		}
		d := cuData(t, r)
		e.cuMatch("flow 3", d, `{"_id":"{{ID}}",
  "company_id":"{{ACC}}","first_name":"Alan","last_name":"Turing","default_source":"{{SID}}",
  "status":"active","archived":false,"statistics":{"successful_transactions":0,"total_collected_amount":0},
  "_service":{"default_gateway_id":"{{GW}}"},
  "payment_sources":[{"_id":"{{SID}}","type":"card","vault_token":"{{VT}}",
    "gateway_id":"{{GW}}","gateway_name":"Sandbox","gateway_type":"Simulator","gateway_mode":"test",
    "ref_token":"{{REF}}","card_name":"Alan Turing","card_scheme":"visa","card_number_bin":"42424242",
    "card_number_last4":"4242","card_fingerprint":"{{FP}}","expire_month":12,"expire_year":2027,
    "status":"active","created_at":"2026-11-24T09:25:17.662Z","updated_at":"2026-11-24T09:25:17.662Z"}],
  "created_at":"2026-11-24T09:25:17.662Z","updated_at":"2026-11-24T09:25:17.662Z"}`)
		src := cuSources(d)[0]
		if src["vault_token"] != vt || src["card_fingerprint"] != rec["card_fingerprint"] {
			t.Errorf("source %v does not link vault record %v", src, rec)
		}
		if after := e.vaultObject(vt); !reflect.DeepEqual(after, rec) {
			t.Errorf("vault record modified:\n%v\n%v", after, rec)
		}
		if got := e.counts(); got != (cuCounts{before.customers + 1, before.sources + 1, before.vault}) {
			t.Errorf("counts %+v after %+v", got, before)
		}
	})

	t.Run("flow 4 vault token without gateway", func(t *testing.T) {
		vt := e.vault(map[string]any{"card_name": "Katherine Johnson", "card_number": cuAmex, "expire_month": 6, "expire_year": 2030})
		rec := e.vaultObject(vt)
		at("2026-11-24T09:31:55.240Z")
		r := e.Do("POST", "/v1/customers", map[string]any{"email": "katherine@example.com",
			"payment_source": map[string]any{"vault_token": vt}})
		if r.Status != 201 {
			t.Fatalf("HTTP %d %s", r.Status, r.Raw)
		}
		e.cuMatch("flow 4", cuData(t, r), `{"_id":"{{ID}}",
  "company_id":"{{ACC}}","email":"katherine@example.com","default_source":"{{SID}}",
  "status":"active","archived":false,"statistics":{"successful_transactions":0,"total_collected_amount":0},"_service":{},
  "payment_sources":[{"_id":"{{SID}}","type":"card","vault_token":"{{VT}}",
    "card_name":"Katherine Johnson","card_scheme":"amex","card_number_bin":"378282","card_number_last4":"0005",
    "card_fingerprint":"{{FP}}","expire_month":6,"expire_year":2030,"status":"active",
    "created_at":"2026-11-24T09:31:55.240Z","updated_at":"2026-11-24T09:31:55.240Z"}],
  "created_at":"2026-11-24T09:31:55.240Z","updated_at":"2026-11-24T09:31:55.240Z"}`)
		if after := e.vaultObject(vt); !reflect.DeepEqual(after, rec) {
			t.Errorf("vault record modified")
		}
		// No gateway is contacted: a card the Simulator declines is linked fine.
		bad := e.vault(map[string]any{"card_name": "No Gateway", "card_number": cuDecline, "expire_month": 6, "expire_year": 2030})
		d := e.create(map[string]any{"payment_source": map[string]any{"vault_token": bad}})
		if src := cuSources(d)[0]; src["gateway_id"] != nil || src["ref_token"] != nil || len(d["_service"].(map[string]any)) != 0 {
			t.Errorf("flow 4 source is gateway-bound: %v", d)
		}
	})
}

func TestCustomerFlowVariants(t *testing.T) {
	e := newCU(t)
	second := e.gateway("Second")

	t.Run("token fills only empty fields, phone included", func(t *testing.T) {
		tok := e.token(cuCard(cuVisa, map[string]any{"first_name": "Tok", "last_name": "Hopper", "email": "tok@example.com",
			"phone": "+61400000001", "address_city": "Sydney"}))
		d := e.create(map[string]any{"token": tok, "first_name": "Body", "email": "body@example.com"})
		want := map[string]any{"first_name": "Body", "last_name": "Hopper", "email": "body@example.com", "phone": "+61400000001"}
		for k, v := range want {
			if d[k] != v {
				t.Errorf("%s = %v, want %v", k, d[k], v)
			}
		}
		if src := cuSources(d)[0]; src["address_city"] != "Sydney" || src["gateway_id"] != nil || src["ref_token"] != nil {
			t.Errorf("token without gateway: source %v", src)
		}
		if len(d["_service"].(map[string]any)) != 0 {
			t.Errorf("_service %v", d["_service"])
		}
		if e.tokenStatus(tok) != "used" {
			t.Errorf("token not consumed")
		}
	})

	t.Run("the token's gateway is used", func(t *testing.T) {
		tok := e.token(cuCard(cuVisa, map[string]any{"gateway_id": second}))
		d := e.create(map[string]any{"token": tok})
		src := cuSources(d)[0]
		if src["gateway_id"] != second || src["gateway_name"] != "Second" || !cuRef.MatchString(fmt.Sprint(src["ref_token"])) {
			t.Errorf("source %v", src)
		}
		if d["_service"].(map[string]any)["default_gateway_id"] != second {
			t.Errorf("_service %v", d["_service"])
		}
	})

	t.Run("payment_source.token spelling, the body's gateway wins", func(t *testing.T) {
		tok := e.token(cuCard(cuVisa, map[string]any{"gateway_id": second, "address_city": "Perth", "address_state": "WA"}))
		d := e.create(map[string]any{"payment_source": map[string]any{"token": tok, "gateway_id": e.Gateway, "address_city": "Hobart"}})
		src := cuSources(d)[0]
		if src["gateway_id"] != e.Gateway || src["gateway_name"] != "Sandbox" {
			t.Errorf("source %v", src)
		}
		if src["address_city"] != "Hobart" || src["address_state"] != "WA" {
			t.Errorf("address: body fields must override the token's: %v", src)
		}
		if e.tokenStatus(tok) != "used" {
			t.Errorf("token not consumed")
		}
	})

	t.Run("flow 3 address overrides the vault record's, the record unchanged", func(t *testing.T) {
		vt := e.vault(cuCard(cuVisa, map[string]any{"address_line1": "1 Vault St", "address_country": "NZ"}))
		rec := e.vaultObject(vt)
		d := e.create(map[string]any{"payment_source": map[string]any{"vault_token": strings.ToUpper(vt), "gateway_id": strings.ToUpper(e.Gateway),
			"address_country": "au", "card_ccv": "999"}})
		src := cuSources(d)[0]
		if src["address_line1"] != "1 Vault St" || src["address_country"] != "AU" || src["vault_token"] != vt || src["gateway_id"] != e.Gateway {
			t.Errorf("source %v", src)
		}
		if !reflect.DeepEqual(e.vaultObject(vt), rec) {
			t.Errorf("vault record modified")
		}
	})

	t.Run("a card without card_ccv and without type; null and empty optional fields", func(t *testing.T) {
		null := json.RawMessage("null")
		d := e.create(map[string]any{"first_name": "", "last_name": null, "phone": "", "description": null, "meta": null, "default_source": "",
			"_id": "ignored", "from_webhook": true, "payment_source": cuCard(cuVisa, map[string]any{"card_ccv": nil, "type": "",
				"gateway_id": "", "vault_token": "", "token": null, "address_line1": "", "address_city": null})})
		for _, k := range []string{"first_name", "last_name", "phone", "description", "meta"} {
			if _, has := d[k]; has {
				t.Errorf("%s present: %v", k, d)
			}
		}
		if src := cuSources(d)[0]; src["gateway_id"] != nil || src["address_line1"] != nil {
			t.Errorf("source %v", src)
		}
	})

	t.Run("default_source on create is only format-checked", func(t *testing.T) {
		d := e.create(map[string]any{"default_source": strings.ToUpper(cuZeroID), "payment_source": cuCard(cuVisa, nil)})
		if d["default_source"] != cuSourceIDs(d)[0] {
			t.Errorf("default_source %v", d["default_source"])
		}
	})

	t.Run("meta is stored", func(t *testing.T) {
		d := e.create(map[string]any{"meta": map[string]any{"crm": "x1", "n": 12.5, "vip": true}, "payment_source": cuCard(cuVisa, nil)})
		if !reflect.DeepEqual(d["meta"], map[string]any{"crm": "x1", "n": json.Number("12.5"), "vip": true}) {
			t.Errorf("meta %v", d["meta"])
		}
	})
}

// Flows 1–3 (and adding a source) with cards the gateway refuses: the §3.6
// error, and nothing stored; a one-time token is consumed all the same.
func TestCustomerGatewayRefusals(t *testing.T) {
	e := newCU(t)
	existing := e.create(map[string]any{"first_name": "Existing", "payment_source": cuCard(cuVisa, map[string]any{"gateway_id": e.Gateway})})
	id := existing["_id"].(string)
	for _, f := range cuRefusals {
		vt := e.vault(cuCard(f.card, nil))
		flows := []struct {
			name  string
			path  string
			body  func() (map[string]any, string)
			after func(tok string)
		}{
			{"flow 1", "/v1/customers", func() (map[string]any, string) {
				return map[string]any{"email": "no@example.com", "payment_source": cuCard(f.card, map[string]any{"gateway_id": e.Gateway})}, ""
			}, nil},
			{"flow 2", "/v1/customers", func() (map[string]any, string) {
				tok := e.token(cuCard(f.card, map[string]any{"gateway_id": e.Gateway}))
				return map[string]any{"token": tok, "email": "no@example.com"}, tok
			}, nil},
			{"flow 2 payment_source.token", "/v1/customers", func() (map[string]any, string) {
				tok := e.token(cuCard(f.card, nil))
				return map[string]any{"payment_source": map[string]any{"token": tok, "gateway_id": e.Gateway}}, tok
			}, nil},
			{"flow 3", "/v1/customers", func() (map[string]any, string) {
				return map[string]any{"payment_source": map[string]any{"vault_token": vt, "gateway_id": e.Gateway}}, ""
			}, nil},
			{"update: card", "/v1/customers/" + id, func() (map[string]any, string) {
				return map[string]any{"first_name": "Changed", "payment_source": cuCard(f.card, map[string]any{"gateway_id": e.Gateway})}, ""
			}, nil},
			{"update: token", "/v1/customers/" + id, func() (map[string]any, string) {
				tok := e.token(cuCard(f.card, map[string]any{"gateway_id": e.Gateway}))
				return map[string]any{"token": tok, "first_name": "Changed"}, tok
			}, nil},
			{"update: vault token", "/v1/customers/" + id, func() (map[string]any, string) {
				return map[string]any{"payment_source": map[string]any{"vault_token": vt, "gateway_id": e.Gateway}}, ""
			}, nil},
		}
		for _, fl := range flows {
			t.Run(f.code+"/"+fl.name, func(t *testing.T) {
				body, tok := fl.body()
				before := e.counts()
				cust := e.get(id)
				e.clock.Advance(time.Second)
				cuGatewayErr(t, e.Do("POST", fl.path, body), f)
				e.sameCounts(fl.name, before)
				if !reflect.DeepEqual(e.get(id), cust) {
					t.Errorf("the existing customer changed")
				}
				if tok != "" {
					if s := e.tokenStatus(tok); s != "used" {
						t.Errorf("token status %q: a request that reached the gateway consumes its token (spec §5)", s)
					}
					cuInvalid(t, e.Do("POST", "/v1/customers", map[string]any{"token": tok}), "token", "token has already been used")
				}
			})
		}
	}
	if ids, n, _ := e.list("?search=no@example.com"); n != 0 || len(ids) != 0 {
		t.Errorf("a refused customer is searchable: %v", ids)
	}

	t.Run("insufficient funds stores fine", func(t *testing.T) {
		d1 := e.create(map[string]any{"payment_source": cuCard(cuNSF, map[string]any{"gateway_id": e.Gateway})})
		d2 := e.create(map[string]any{"token": e.token(cuCard(cuNSF, map[string]any{"gateway_id": e.Gateway}))})
		d3 := e.create(map[string]any{"payment_source": map[string]any{"vault_token": e.vault(cuCard(cuNSF, nil)), "gateway_id": e.Gateway}})
		for i, d := range []map[string]any{d1, d2, d3} {
			if src := cuSources(d)[0]; !cuRef.MatchString(fmt.Sprint(src["ref_token"])) || src["card_number_last4"] != "9995" {
				t.Errorf("flow %d: %v", i+1, src)
			}
		}
	})
}

// --- §7.4 validation ----------------------------------------------------------

func TestCustomerCreateValidation(t *testing.T) {
	e := newCU(t)
	archivedGW := e.gateway("Old")
	if r := e.Do("DELETE", "/v1/gateways/"+archivedGW, nil); r.Status != 200 {
		t.Fatal(r.Status)
	}
	_, otherSecret, otherPublic := e.other()
	otherGW := e.gateway("Theirs", "x-user-secret-key", otherSecret)
	otherVault := e.vault(cuCard(cuVisa, nil), "x-user-secret-key", otherSecret)
	otherToken := e.token(cuCard(cuVisa, nil), "x-user-public-key", otherPublic)
	vt := e.vault(cuCard(cuVisa, nil))
	amexVault := e.vault(cuCard(cuAmex, map[string]any{"card_ccv": nil}))
	archivedVault := e.vault(cuCard(cuVisa, nil))
	if r := e.Do("DELETE", "/v1/vault-tokens/"+archivedVault, nil); r.Status != 200 {
		t.Fatal(r.Status)
	}
	sessionVault := e.vault(cuCard(cuVisa, map[string]any{"vault_type": "session"}))
	usedToken := e.token(cuCard(cuVisa, nil))
	e.create(map[string]any{"token": usedToken})
	probe := e.token(map[string]any{"gateway_id": "", "type": ""})

	long := strings.Repeat("é", 256)
	card := func(over map[string]any) map[string]any { return cuCard(cuVisa, over) }
	ps := func(over map[string]any) map[string]any { return map[string]any{"payment_source": card(over)} }
	psOnly := func(m map[string]any) map[string]any { return map[string]any{"payment_source": m} }
	meta := func(m any) map[string]any { return map[string]any{"meta": m, "payment_source": card(nil)} }
	bigMeta := map[string]any{}
	for i := range 51 {
		bigMeta[fmt.Sprintf("k%02d", i)] = "v"
	}

	type row struct {
		name      string
		body      func(tok func() string) map[string]any
		path, msg string
	}
	fixed := func(b map[string]any) func(func() string) map[string]any {
		return func(func() string) map[string]any { return b }
	}
	rows := []row{
		{"neither token nor payment_source", fixed(map[string]any{"first_name": "Ada"}), "payment_source", "payment_source or token is required"},
		{"empty body", fixed(map[string]any{}), "payment_source", "payment_source or token is required"},
		{"null payment_source and empty token", fixed(map[string]any{"token": "", "payment_source": nil}), "payment_source", "payment_source or token is required"},
		{"both", func(tok func() string) map[string]any {
			return map[string]any{"token": tok(), "payment_source": card(nil)}
		},
			"payment_source", "payment_source and token cannot be used together"},
		{"both, payment_source holding a token", func(tok func() string) map[string]any {
			return map[string]any{"token": tok(), "payment_source": map[string]any{"token": tok()}}
		}, "payment_source", "payment_source and token cannot be used together"},
		{"token not a uuid", fixed(map[string]any{"token": "not-a-token"}), "token", "token must be a uuid"},
		{"token not a string", fixed(map[string]any{"token": 12}), "token", "token must be a string"},
		{"token unknown", fixed(map[string]any{"token": cuZeroUUID}), "token", "token not found"},
		{"token of another account", fixed(map[string]any{"token": otherToken}), "token", "token not found"},
		{"token is a vault token", fixed(map[string]any{"token": vt}), "token", "token not found"},
		{"token used", fixed(map[string]any{"token": usedToken}), "token", "token has already been used"},
		{"probe token", fixed(map[string]any{"token": probe}), "token", "token has no payment details"},
		{"probe token as payment_source.token", fixed(psOnly(map[string]any{"token": probe})), "payment_source.token", "token has no payment details"},
		{"payment_source.token unknown", fixed(psOnly(map[string]any{"token": cuZeroUUID})), "payment_source.token", "token not found"},
		{"payment_source.token malformed", fixed(psOnly(map[string]any{"token": "x"})), "payment_source.token", "token must be a uuid"},
		{"token checked before text fields", fixed(map[string]any{"token": "bad", "first_name": long}), "token", "token must be a uuid"},
	}
	for _, f := range []string{"reference", "description", "company_name", "first_name", "last_name"} {
		rows = append(rows,
			row{f + " too long", func(tok func() string) map[string]any { return map[string]any{f: long, "token": tok()} }, f, f + " must be at most 255 characters"},
			row{f + " not a string", func(tok func() string) map[string]any { return map[string]any{f: 42, "token": tok()} }, f, f + " must be a string"},
		)
	}
	for _, bad := range []any{"ada", "ada@example", "Ada <ada@example.com>", "ada@@example.com", "a@b@example.com", "ada @example.com",
		"@example.com", "ada@.com", "ada@example.", strings.Repeat("a", 250) + "@example.com"} {
		rows = append(rows, row{fmt.Sprintf("email %.20q", bad), func(tok func() string) map[string]any {
			return map[string]any{"email": bad, "token": tok()}
		}, "email", "email must be a valid email address"})
	}
	rows = append(rows, row{"email not a string", func(tok func() string) map[string]any { return map[string]any{"email": true, "token": tok()} },
		"email", "email must be a string"})
	for _, bad := range []any{"+61 4abc 345", "0412 345 67x", "12345", "+1 2345", "(02) 9-1", "0412_345_678", strings.Repeat("1", 33), "phone"} {
		rows = append(rows, row{fmt.Sprintf("phone %q", bad), func(tok func() string) map[string]any {
			return map[string]any{"phone": bad, "token": tok()}
		}, "phone", "phone must be a phone number, ideally in E.164 format"})
	}
	rows = append(rows,
		row{"phone not a string", func(tok func() string) map[string]any { return map[string]any{"phone": 61411222333, "token": tok()} }, "phone", "phone must be a string"},
		row{"default_source not 24 hex", func(tok func() string) map[string]any { return map[string]any{"default_source": "abc", "token": tok()} },
			"default_source", "default_source must be a mongodb id"},
		row{"default_source 24 non-hex", func(tok func() string) map[string]any {
			return map[string]any{"default_source": strings.Repeat("g", 24), "token": tok()}
		}, "default_source", "default_source must be a mongodb id"},
		row{"payment_source a string", fixed(map[string]any{"payment_source": "card"}), "payment_source", "payment_source must be an object"},
		row{"payment_source an array", fixed(map[string]any{"payment_source": []any{card(nil)}}), "payment_source", "payment_source must be an object"},
		row{"payment_source empty", fixed(psOnly(map[string]any{})), "payment_source", "payment_source must contain exactly one of card details, vault_token or token"},
		row{"payment_source only gateway and address", fixed(psOnly(map[string]any{"gateway_id": e.Gateway, "address_city": "Sydney"})),
			"payment_source", "payment_source must contain exactly one of card details, vault_token or token"},
		row{"payment_source only card_ccv", fixed(psOnly(map[string]any{"card_ccv": "123"})),
			"payment_source", "payment_source must contain exactly one of card details, vault_token or token"},
		row{"card and vault_token", fixed(ps(map[string]any{"vault_token": vt})),
			"payment_source", "payment_source must contain exactly one of card details, vault_token or token"},
		row{"card_name beside vault_token", fixed(psOnly(map[string]any{"vault_token": vt, "card_name": "X"})),
			"payment_source", "payment_source must contain exactly one of card details, vault_token or token"},
		row{"vault_token and token", func(tok func() string) map[string]any {
			return psOnly(map[string]any{"vault_token": vt, "token": tok()})
		}, "payment_source", "payment_source must contain exactly one of card details, vault_token or token"},
		row{"card and token", func(tok func() string) map[string]any { return ps(map[string]any{"token": tok()}) },
			"payment_source", "payment_source must contain exactly one of card details, vault_token or token"},
		row{"gateway_id malformed", fixed(ps(map[string]any{"gateway_id": "c997ae1e"})), "payment_source.gateway_id", "gateway_id must be a mongodb id"},
		row{"gateway_id not a string", fixed(ps(map[string]any{"gateway_id": 7})), "payment_source.gateway_id", "gateway_id must be a string"},
		row{"gateway_id unknown", fixed(ps(map[string]any{"gateway_id": cuZeroID})), "payment_source.gateway_id", "gateway not found"},
		row{"gateway_id archived", fixed(ps(map[string]any{"gateway_id": archivedGW})), "payment_source.gateway_id", "gateway is archived"},
		row{"gateway_id of another account", fixed(ps(map[string]any{"gateway_id": otherGW})), "payment_source.gateway_id", "gateway not found"},
		row{"gateway_id unknown with a token", func(tok func() string) map[string]any {
			return psOnly(map[string]any{"token": tok(), "gateway_id": cuZeroID})
		}, "payment_source.gateway_id", "gateway not found"},
		row{"gateway_id unknown with a vault token", fixed(psOnly(map[string]any{"vault_token": vt, "gateway_id": cuZeroID})),
			"payment_source.gateway_id", "gateway not found"},
		row{"vault_token malformed", fixed(psOnly(map[string]any{"vault_token": "f2ea3fa6"})), "payment_source.vault_token", "vault_token must be a uuid"},
		row{"vault_token unknown", fixed(psOnly(map[string]any{"vault_token": cuZeroUUID})), "payment_source.vault_token", "vault token not found"},
		row{"vault_token archived", fixed(psOnly(map[string]any{"vault_token": archivedVault})), "payment_source.vault_token", "vault token is archived"},
		row{"vault_token session", fixed(psOnly(map[string]any{"vault_token": sessionVault, "gateway_id": e.Gateway})),
			"payment_source.vault_token", "session vault tokens cannot be stored on a customer"},
		row{"vault_token of another account", fixed(psOnly(map[string]any{"vault_token": otherVault})), "payment_source.vault_token", "vault token not found"},
		row{"vault_token is a one-time token", func(tok func() string) map[string]any {
			return psOnly(map[string]any{"vault_token": tok()})
		}, "payment_source.vault_token", "vault token not found"},
		row{"type bank", fixed(ps(map[string]any{"type": "bank"})), "payment_source.type", "type must be one of: card"},
		row{"type bank with a vault token", fixed(psOnly(map[string]any{"type": "bank", "vault_token": vt})), "payment_source.type", "type must be one of: card"},
		row{"type Card", fixed(ps(map[string]any{"type": "Card"})), "payment_source.type", "type must be one of: card"},
		row{"card_name missing", fixed(ps(map[string]any{"card_name": nil})), "payment_source.card_name", "card_name is required"},
		row{"card_name empty, no number", fixed(psOnly(map[string]any{"card_name": "", "expire_month": 9, "expire_year": 2028})),
			"payment_source.card_name", "card_name is required"},
		row{"card_name too long", fixed(ps(map[string]any{"card_name": strings.Repeat("n", 101)})), "payment_source.card_name", "card_name must be 1 to 100 characters"},
		row{"card_number missing", fixed(ps(map[string]any{"card_number": nil})), "payment_source.card_number", "card_number is required"},
		row{"card_number spaced", fixed(ps(map[string]any{"card_number": "4111 1111 1111 1111"})), "payment_source.card_number", "card_number must contain digits only"},
		row{"card_number a number", fixed(ps(map[string]any{"card_number": 4111111111111111})), "payment_source.card_number", "card_number must be a string"},
		row{"card_number short", fixed(ps(map[string]any{"card_number": "41111111113"})), "payment_source.card_number", "card_number must be 12 to 19 digits"},
		row{"card_number long", fixed(ps(map[string]any{"card_number": "41111111111111111110"})), "payment_source.card_number", "card_number must be 12 to 19 digits"},
		row{"card_number Luhn", fixed(ps(map[string]any{"card_number": "4111111111111112"})), "payment_source.card_number", "card_number failed the Luhn check"},
		row{"expire_month missing", fixed(ps(map[string]any{"expire_month": nil})), "payment_source.expire_month", "expire_month is required"},
		row{"expire_month 13", fixed(ps(map[string]any{"expire_month": 13})), "payment_source.expire_month", "expire_month must be a month from 1 to 12"},
		row{"expire_month 0", fixed(ps(map[string]any{"expire_month": "0"})), "payment_source.expire_month", "expire_month must be a month from 1 to 12"},
		row{"expire_month 9.5", fixed(ps(map[string]any{"expire_month": 9.5})), "payment_source.expire_month", "expire_month must be a month from 1 to 12"},
		row{"expire_year missing", fixed(ps(map[string]any{"expire_year": nil})), "payment_source.expire_year", "expire_year is required"},
		row{"expire_year 3 digits", fixed(ps(map[string]any{"expire_year": "202"})), "payment_source.expire_year", "expire_year must be a 2-digit year or a 4-digit year from 2000 to 2099"},
		row{"expire_year 2100", fixed(ps(map[string]any{"expire_year": 2100})), "payment_source.expire_year", "expire_year must be a 2-digit year or a 4-digit year from 2000 to 2099"},
		row{"card expired", fixed(ps(map[string]any{"expire_month": 10, "expire_year": 2026})), "payment_source.expire_year", "card has expired"},
		row{"card_ccv 2 digits", fixed(ps(map[string]any{"card_ccv": "12"})), "payment_source.card_ccv", "card_ccv must be 3 digits"},
		row{"card_ccv letters", fixed(ps(map[string]any{"card_ccv": "12a"})), "payment_source.card_ccv", "card_ccv must be 3 digits"},
		row{"card_ccv amex 3", fixed(psOnly(cuCard(cuAmex, map[string]any{"card_ccv": "123"}))), "payment_source.card_ccv", "card_ccv must be 4 digits for amex"},
		row{"card_ccv beside vault_token bad", fixed(psOnly(map[string]any{"vault_token": vt, "card_ccv": "1x3"})), "payment_source.card_ccv", "card_ccv must be 3 digits"},
		row{"card_ccv beside a visa vault_token, 4 digits", fixed(psOnly(map[string]any{"vault_token": vt, "card_ccv": "1234", "gateway_id": e.Gateway})),
			"payment_source.card_ccv", "card_ccv must be 3 digits"},
		row{"card_ccv beside an amex vault_token, 3 digits", fixed(psOnly(map[string]any{"vault_token": amexVault, "card_ccv": "123"})),
			"payment_source.card_ccv", "card_ccv must be 4 digits for amex"},
		row{"address_country 1 letter", fixed(ps(map[string]any{"address_country": "A"})), "payment_source.address_country", "address_country must be a 2- or 3-letter country code"},
		row{"address_country 4 letters", fixed(ps(map[string]any{"address_country": "AUST"})), "payment_source.address_country", "address_country must be a 2- or 3-letter country code"},
		row{"address_country digits", fixed(ps(map[string]any{"address_country": "A1"})), "payment_source.address_country", "address_country must be a 2- or 3-letter country code"},
		row{"address_line1 too long", fixed(ps(map[string]any{"address_line1": long})), "payment_source.address_line1", "address_line1 must be at most 255 characters"},
		row{"address_city not a string", fixed(ps(map[string]any{"address_city": 3})), "payment_source.address_city", "address_city must be a string"},
		row{"meta a string", fixed(meta("x")), "meta", "meta must be an object of strings, numbers or booleans"},
		row{"meta an array", fixed(meta([]any{"x"})), "meta", "meta must be an object of strings, numbers or booleans"},
		row{"meta nested object", fixed(meta(map[string]any{"a": map[string]any{"b": 1}})), "meta", "meta must be an object of strings, numbers or booleans"},
		row{"meta array value", fixed(meta(map[string]any{"a": []any{1}})), "meta", "meta must be an object of strings, numbers or booleans"},
		row{"meta null value", fixed(meta(map[string]any{"a": nil})), "meta", "meta must be an object of strings, numbers or booleans"},
		row{"meta 51 keys", fixed(meta(bigMeta)), "meta", "meta must be an object of strings, numbers or booleans"},
		row{"meta key 65", fixed(meta(map[string]any{strings.Repeat("k", 65): "v"})), "meta", "meta must be an object of strings, numbers or booleans"},
		row{"meta value 501", fixed(meta(map[string]any{"k": strings.Repeat("v", 501)})), "meta", "meta must be an object of strings, numbers or booleans"},
		row{"meta with a bad card: card first", fixed(map[string]any{"meta": "x", "payment_source": card(map[string]any{"card_number": "1"})}),
			"payment_source.card_number", "card_number must be 12 to 19 digits"},
		// Only the first failing field in table order is reported, wrong
		// JSON types included (§3.4 step 6, §7.4).
		row{"token shape before a later field's type", fixed(map[string]any{"token": "bad", "first_name": 42}), "token", "token must be a uuid"},
		row{"first_name length before last_name type", func(tok func() string) map[string]any {
			return map[string]any{"token": tok(), "first_name": long, "last_name": 42}
		}, "first_name", "first_name must be at most 255 characters"},
		row{"email before phone type", func(tok func() string) map[string]any {
			return map[string]any{"token": tok(), "email": "bad", "phone": 42}
		}, "email", "email must be a valid email address"},
		row{"default_source before payment_source type", fixed(map[string]any{"default_source": "x", "payment_source": "card"}),
			"default_source", "default_source must be a mongodb id"},
		row{"payment_source field type before meta", fixed(map[string]any{"meta": "x", "payment_source": card(map[string]any{"card_number": 1})}),
			"payment_source.card_number", "card_number must be a string"},
		// A type error inside payment_source waits for its field's turn
		// (§3.4 step 6, §7.1 table order).
		row{"gateway_id before a later field's type", fixed(psOnly(map[string]any{"gateway_id": "bad", "type": 5, "card_name": "A",
			"card_number": cuVisa, "expire_month": 1, "expire_year": 2031})), "payment_source.gateway_id", "gateway_id must be a mongodb id"},
		row{"gateway_id before a card_number type", fixed(ps(map[string]any{"gateway_id": "bad", "card_number": 4111111111111111})),
			"payment_source.gateway_id", "gateway_id must be a mongodb id"},
		row{"vault_token before an address type", fixed(psOnly(map[string]any{"vault_token": "bad", "address_line1": 5})),
			"payment_source.vault_token", "vault_token must be a uuid"},
		row{"card_name before a card_ccv type", fixed(ps(map[string]any{"card_name": nil, "card_ccv": 12})),
			"payment_source.card_name", "card_name is required"},
		row{"type before a card_ccv type", fixed(ps(map[string]any{"card_ccv": 12, "type": "x"})),
			"payment_source.type", "type must be one of: card"},
		row{"Luhn before an expire_month type", fixed(ps(map[string]any{"card_number": "4111111111111112", "expire_month": true})),
			"payment_source.card_number", "card_number failed the Luhn check"},
		row{"card_ccv type beside a vault token", fixed(psOnly(map[string]any{"vault_token": vt, "card_ccv": 12})),
			"payment_source.card_ccv", "card_ccv must be a string"},
		row{"amex ccv beside a vault token", fixed(psOnly(map[string]any{"vault_token": amexVault, "card_ccv": "12"})),
			"payment_source.card_ccv", "card_ccv must be 4 digits for amex"},
		row{"amex ccv of five digits beside a vault token", fixed(psOnly(map[string]any{"vault_token": amexVault, "card_ccv": "12345"})),
			"payment_source.card_ccv", "card_ccv must be 4 digits for amex"},
		row{"visa ccv beside a vault token", fixed(psOnly(map[string]any{"vault_token": vt, "card_ccv": "12a"})),
			"payment_source.card_ccv", "card_ccv must be 3 digits"},
		// Address rows in §7.1's order: line1, line2, state, country, city, postcode.
		row{"address_state before address_city", fixed(psOnly(map[string]any{"vault_token": vt, "address_city": long, "address_state": long})),
			"payment_source.address_state", "address_state must be at most 255 characters"},
		row{"address_country before address_city", fixed(psOnly(map[string]any{"vault_token": vt, "address_city": long, "address_country": "1"})),
			"payment_source.address_country", "address_country must be a 2- or 3-letter country code"},
		row{"address_city before address_postcode", fixed(psOnly(map[string]any{"vault_token": vt, "address_postcode": long, "address_city": 5})),
			"payment_source.address_city", "address_city must be a string"},
		row{"token of a wrong type with payment_source", fixed(map[string]any{"token": 1, "payment_source": card(nil)}),
			"payment_source", "payment_source and token cannot be used together"},
		row{"payment_source of a wrong type with a token", func(tok func() string) map[string]any {
			return map[string]any{"token": tok(), "payment_source": "x"}
		}, "payment_source", "payment_source and token cannot be used together"},
		row{"email before phone", func(tok func() string) map[string]any {
			return map[string]any{"phone": "x", "email": "y", "token": tok()}
		}, "email", "email must be a valid email address"},
	)

	var allSent []string
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			var sent []string
			tok := func() string {
				s := e.token(cuCard(cuVisa, map[string]any{"gateway_id": e.Gateway}))
				sent = append(sent, s)
				allSent = append(allSent, s)
				return s
			}
			body := r.body(tok)
			before := e.counts()
			cuInvalid(t, e.Do("POST", "/v1/customers", body), r.path, r.msg)
			e.sameCounts(r.name, before)
			for _, s := range sent {
				if st := e.tokenStatus(s); st != "active" {
					t.Errorf("token %s is %q after a rejected request", s, st)
				}
			}
		})
	}
	// A token sent with a rejected request is still usable.
	if len(allSent) == 0 {
		t.Fatal("no row sent a token")
	}
	if d := e.create(map[string]any{"token": allSent[0]}); d["default_source"] == nil {
		t.Errorf("create after the rows: %v", d)
	}

	t.Run("limits are inclusive", func(t *testing.T) {
		m := map[string]any{}
		for i := range 50 {
			m[fmt.Sprintf("%064d", i)] = strings.Repeat("é", 500)
		}
		d := e.create(map[string]any{"first_name": strings.Repeat("é", 255), "email": strings.Repeat("a", 242) + "@example.com",
			"meta": m, "payment_source": cuCard(cuVisa, map[string]any{"card_name": strings.Repeat("n", 100)})})
		if len(d["meta"].(map[string]any)) != 50 {
			t.Errorf("meta not stored")
		}
		e.create(map[string]any{"payment_source": map[string]any{"vault_token": amexVault, "card_ccv": "1234", "gateway_id": e.Gateway}})
		e.create(map[string]any{"payment_source": map[string]any{"vault_token": vt, "card_ccv": "123"}})
	})
}

func TestCustomerTokenExpired(t *testing.T) {
	e := newCU(t)
	tok := e.token(cuWith(cuCard(cuVisa, nil), map[string]any{"email": "ada@example.com", "address_city": "Sydney", "first_name": "Ada"}))
	if left := e.tokenLeftovers(tok); left == "" {
		t.Fatal("a live token holds nothing")
	}
	e.clock.Advance(3*time.Hour + time.Millisecond)
	before := e.counts()
	cuInvalid(t, e.Do("POST", "/v1/customers", map[string]any{"token": tok}), "token", "token has expired")
	cuInvalid(t, e.Do("POST", "/v1/customers", map[string]any{"payment_source": map[string]any{"token": tok}}), "payment_source.token", "token has expired")
	e.sameCounts("expired token", before)
	// The sweeper leaves a tombstone, which still answers precisely.
	if _, err := e.Store.SweepVault(t.Context(), e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if s, left := e.tokenStatus(tok), e.tokenLeftovers(tok); s != "expired" || left != "" {
		t.Errorf("after the sweep: status %q, the token still holds %s", s, left)
	}
	cuInvalid(t, e.Do("POST", "/v1/customers", map[string]any{"token": tok}), "token", "token has expired")
}

func TestCustomerPhone(t *testing.T) {
	e := newCU(t)
	cases := []struct {
		name string
		body map[string]any
		want string
	}{
		{"E.164 as sent", map[string]any{"phone": "+61411222333"}, "+61411222333"},
		{"national with payment_source.address_country AU", map[string]any{"phone": "0412 345 678",
			"payment_source": cuCard(cuVisa, map[string]any{"address_country": "AU"})}, "+61412345678"},
		{"national with lower-case alpha-3", map[string]any{"phone": "(04) 1234-5678",
			"payment_source": cuCard(cuVisa, map[string]any{"address_country": "aus"})}, "+61412345678"},
		{"national with top-level address_country", map[string]any{"phone": "0412 345 678", "address_country": "AU"}, "+61412345678"},
		{"payment_source country wins over top-level", map[string]any{"phone": "021 123 4567", "address_country": "AU",
			"payment_source": cuCard(cuVisa, map[string]any{"address_country": "NZ"})}, "+64211234567"},
		{"no country: trimmed as sent", map[string]any{"phone": "  0412 345 678 "}, "0412 345 678"},
		{"not valid for the country: trimmed as sent", map[string]any{"phone": " 123456 ", "address_country": "AU"}, "123456"},
		{"top-level address_country of a wrong type is ignored", map[string]any{"phone": "0412 345 678", "address_country": 61}, "0412 345 678"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := maps.Clone(c.body)
			if b["payment_source"] == nil {
				b["payment_source"] = cuCard(cuVisa, nil)
			}
			d := e.create(b)
			if d["phone"] != c.want {
				t.Errorf("phone %v, want %q", d["phone"], c.want)
			}
			// An update normalises the same way.
			u := e.update(d["_id"].(string), map[string]any{"phone": c.body["phone"], "address_country": c.body["address_country"]})
			if _, ps := c.body["payment_source"]; !ps && u["phone"] != c.want {
				t.Errorf("update: phone %v, want %q", u["phone"], c.want)
			}
		})
	}
}

// --- §7.5 search ----------------------------------------------------------------

func TestCustomerSearch(t *testing.T) {
	e := newCU(t)
	second := e.gateway("Second")
	mk := func(body map[string]any) string { return e.create(body)["_id"].(string) }
	ada := mk(map[string]any{"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com", "reference": "CRM-1042",
		"company_name": "Analytical", "description": "zebra", "phone": "+61411222333",
		"payment_source": cuCard(cuVisa, map[string]any{"gateway_id": e.Gateway})})
	grace := mk(map[string]any{"first_name": "Grace", "last_name": "Hopper", "email": "grace@navy.example", "reference": "crm-1042",
		"company_name": "Navy", "payment_source": cuCard(cuVisa, map[string]any{"gateway_id": second})})
	pct := mk(map[string]any{"first_name": "Per%cent", "company_name": "Under_score Ltd", "payment_source": cuCard(cuVisa, nil)})
	emile := mk(map[string]any{"first_name": "ÉMILE", "last_name": "Zola", "reference": "CRM-1043", "company_name": "Analytical",
		"payment_source": cuCard(cuVisa, nil)})
	arch := mk(map[string]any{"first_name": "Archie", "email": "archie@example.com", "reference": "CRM-1042",
		"payment_source": cuCard(cuVisa, map[string]any{"gateway_id": e.Gateway})})
	if r := e.Do("DELETE", "/v1/customers/"+arch, nil); r.Status != 200 {
		t.Fatal(r.Status)
	}
	// Grace's only bound source, added later and then archived, must not
	// match gateway_id or payment_source_id.
	g := e.update(grace, map[string]any{"payment_source": cuCard(cuVisa, map[string]any{"gateway_id": e.Gateway})})
	graceOld, graceNew := cuSourceIDs(g)[0], cuSourceIDs(g)[1]
	if r := e.Do("DELETE", "/v1/customers/"+grace+"/payment_sources/"+graceNew, nil); r.Status != 200 {
		t.Fatal(r.Status)
	}
	adaSrc := cuSourceIDs(e.get(ada))[0]
	archSrc := cuSourceIDs(e.get(arch))[0]
	// Another account's customer never shows.
	_, otherSecret, _ := e.other()
	if r := e.Do("POST", "/v1/customers", map[string]any{"first_name": "Ada", "reference": "CRM-1042", "payment_source": cuCard(cuVisa, nil)},
		"x-user-secret-key", otherSecret); r.Status != 201 {
		t.Fatal(r.Status)
	}

	// desc orders ids that tie on the sort key: by _id, descending.
	desc := func(ids ...string) []string {
		ids = slices.Clone(ids)
		sort.Sort(sort.Reverse(sort.StringSlice(ids)))
		return ids
	}
	asc := func(ids ...string) []string {
		ids = slices.Clone(ids)
		sort.Strings(ids)
		return ids
	}
	cases := []struct {
		query string
		want  []string // in answer order (default: created_at DESC)
	}{
		{"", []string{emile, pct, grace, ada}},
		{"?search=", []string{emile, pct, grace, ada}},
		{"?search=ADA", []string{ada}},
		{"?search=lovelace", []string{ada}},
		{"?search=NAVY.EXAMPLE", []string{grace}},
		{"?search=analytical", []string{emile, ada}},
		{"?search=crm-104", []string{emile, grace, ada}},
		{"?search=émile", []string{emile}},
		{"?search=" + url.QueryEscape("%"), []string{pct}},
		{"?search=" + url.QueryEscape("_"), []string{pct}},
		{"?search=" + url.QueryEscape("r%c"), []string{pct}},
		{"?search=" + url.QueryEscape("a_a"), nil},
		{"?search=zebra", nil},       // description is not searched
		{"?search=61411222333", nil}, // nor is phone
		{"?search=archie", nil},
		{"?search=archie&archived=true", []string{arch}},
		{"?search=ADA@EXAMPLE.COM", []string{ada}},
		{"?id=" + ada, []string{ada}},
		{"?id=" + strings.ToUpper(ada), []string{ada}},
		{"?id=" + arch, nil},
		{"?id=" + cuZeroID, nil},
		{"?gateway_id=" + e.Gateway, []string{ada}},
		{"?gateway_id=" + second, []string{grace}},
		{"?gateway_id=" + e.Gateway + "&archived=TRUE", []string{arch}},
		{"?payment_source_id=" + adaSrc, []string{ada}},
		{"?payment_source_id=" + graceOld, []string{grace}},
		{"?payment_source_id=" + graceNew, nil},
		{"?payment_source_id=" + archSrc + "&archived=true", []string{arch}},
		{"?reference=CRM-1042", []string{ada}},
		{"?reference=crm-1042", []string{grace}},
		{"?reference=CRM-104", nil},
		{"?reference=CRM-1042&archived=true", []string{arch}},
		{"?company_name=Analytical", []string{emile, ada}},
		{"?company_name=analytical", nil},
		{"?status=active", []string{emile, pct, grace, ada}},
		{"?status=archived", nil},
		{"?status=archived&archived=true", []string{arch}},
		{"?status=active&archived=true", nil},
		{"?archived=false", []string{emile, pct, grace, ada}},
		{"?search=a&company_name=Analytical&reference=CRM-1043", []string{emile}},
		{"?reference=CRM-1042&reference=crm-1042", []string{ada}},
		{"?search=grace&search=ada", []string{grace}},
		{"?sortdirection=asc", []string{ada, grace, pct, emile}},
		{"?sortdirection=Asc&sortkey=first_name", []string{ada, grace, pct, emile}}, // byte order: É after P
		{"?sortkey=last_name&sortdirection=ASC", []string{pct, grace, ada, emile}},
		{"?sortkey=reference&sortdirection=asc&limit=2", []string{pct, ada}},
		{"?sortkey=company_name&sortdirection=desc", append([]string{pct, grace}, desc(ada, emile)...)},
		{"?sortkey=email&sortdirection=desc", append([]string{grace, ada}, desc(pct, emile)...)},
		{"?sortkey=email&sortdirection=asc", append(asc(pct, emile), ada, grace)},
		{"?sortkey=updated_at", []string{grace, emile, pct, ada}},
		{"?limit=2", []string{emile, pct}},
		{"?limit=2&skip=2", []string{grace, ada}},
		{"?skip=3", []string{ada}},
		{"?skip=4", nil},
		{"?skip=400", nil},
		{"?limit=1000", []string{emile, pct, grace, ada}},
		{"?unknown=1&public_key=pk_nothing", []string{emile, pct, grace, ada}},
	}
	for _, c := range cases {
		t.Run(c.query, func(t *testing.T) {
			ids, n, res := e.list(c.query)
			if !slices.Equal(ids, c.want) {
				t.Errorf("ids %v, want %v", ids, c.want)
			}
			total := len(c.want)
			if strings.Contains(c.query, "skip=") || strings.Contains(c.query, "limit=2") {
				total = 4 // count ignores skip and limit
			}
			if n != total {
				t.Errorf("count %d, want %d", n, total)
			}
			if qt, _ := res["query_token"].(string); !cuJWT.MatchString(qt) {
				t.Errorf("query_token %v", res["query_token"])
			}
			if res["type"] != "customer" {
				t.Errorf("resource.type %v", res["type"])
			}
			q, _ := url.ParseQuery(strings.TrimPrefix(c.query, "?"))
			skip, limit := "0", "100"
			if v := q.Get("skip"); v != "" {
				skip = v
			}
			if v := q.Get("limit"); v != "" {
				limit = v
			}
			if fmt.Sprint(res["skip"]) != skip || fmt.Sprint(res["limit"]) != limit {
				t.Errorf("skip %v limit %v, want %s %s", res["skip"], res["limit"], skip, limit)
			}
		})
	}

	t.Run("bad query values", func(t *testing.T) {
		for q, path := range map[string]string{
			"?id=abc": "id", "?gateway_id=" + cuZeroID[:23]: "gateway_id", "?payment_source_id=xyz": "payment_source_id",
			"?id=" + strings.Repeat("g", 24): "id", "?skip=-1": "skip", "?skip=x": "skip", "?limit=0": "limit", "?limit=1001": "limit",
			"?sortkey=phone": "sortkey", "?sortkey=description": "sortkey", "?sortdirection=up": "sortdirection", "?archived=yes": "archived",
			"?status=deleted": "status", "?id=abc&id=" + ada: "id",
		} {
			r := e.Do("GET", "/v1/customers"+q, nil)
			_, msg, p, _ := r.ErrorDetails()
			if r.Status != 400 || msg != "query validation failed" || p != path {
				t.Errorf("%s: HTTP %d %q path %q, want 400 query validation failed path %q: %s", q, r.Status, msg, p, path, r.Raw)
			}
		}
		cuQueryInvalid(t, e.Do("GET", "/v1/customers?gateway_id=nope", nil), "gateway_id", "gateway_id must be a mongodb id", "customer")
	})

	t.Run("ties broken by _id in the sort direction", func(t *testing.T) {
		f := newCU(t)
		var ids []string
		for range 5 {
			r := f.Do("POST", "/v1/customers", map[string]any{"first_name": "Same", "payment_source": cuCard(cuVisa, nil)})
			if r.Status != 201 {
				t.Fatal(r.Status)
			}
			ids = append(ids, r.Data()["_id"].(string))
		}
		sort.Strings(ids)
		asc, _, _ := f.list("?sortdirection=asc")
		desc, _, _ := f.list("")
		byName, _, _ := f.list("?sortkey=first_name&sortdirection=asc")
		if !slices.Equal(asc, ids) || !slices.Equal(byName, ids) {
			t.Errorf("asc %v / %v, want %v", asc, byName, ids)
		}
		slices.Reverse(ids)
		if !slices.Equal(desc, ids) {
			t.Errorf("desc %v, want %v", desc, ids)
		}
		var paged []string
		for skip := 0; skip < 5; skip += 2 {
			p, n, _ := f.list(fmt.Sprintf("?limit=2&skip=%d", skip))
			if n != 5 {
				t.Errorf("count %d", n)
			}
			paged = append(paged, p...)
		}
		if !slices.Equal(paged, ids) {
			t.Errorf("pages %v, want %v", paged, ids)
		}
	})

	t.Run("public key is refused", func(t *testing.T) {
		cuErr(t, e.Do("GET", "/v1/customers", nil, "x-user-public-key", e.Public), 403, "token_required", "Access forbidden", "", "", "customer")
	})
}

// The reference filter, the default list and their counts use an index,
// and so does the gateway filter's look-up of each customer's sources
// (by payment_sources_customer: no index on the sources' gateway is kept).
func TestCustomerListQueryPlans(t *testing.T) {
	if apitest.UsePostgres() {
		t.Skip("EXPLAIN QUERY PLAN is SQLite's; store/postgres checks its plans with EXPLAIN")
	}
	e := newCU(t)
	for i := range 3 {
		e.create(map[string]any{"reference": fmt.Sprint("R", i), "payment_source": cuCard(cuVisa, nil)})
	}
	r := e.Store.Engine().Reader()
	cols := `id, account_id, archived, first_name, last_name, email, phone, reference, description, company_name,
 meta, default_source, successful_transactions, total_collected_amount, created_at, updated_at`
	for _, q := range []struct {
		name string
		sql  string
		args []any
	}{
		{"default list", `SELECT ` + cols + ` FROM customers WHERE account_id = $1 AND archived = $2 ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4`,
			[]any{e.Account, 0, 100, 0}},
		{"reference filter", `SELECT ` + cols + ` FROM customers WHERE account_id = $1 AND archived = $2 AND reference = $3 ORDER BY created_at DESC, id DESC LIMIT $4 OFFSET $5`,
			[]any{e.Account, 0, "R1", 100, 0}},
		{"reference count", `SELECT count(*) FROM customers WHERE account_id = $1 AND archived = $2 AND reference = $3`, []any{e.Account, 0, "R1"}},
		{"default count", `SELECT COALESCE(SUM(n), 0) FROM customer_counts WHERE account_id = $1 AND archived = $2`, []any{e.Account, 0}},
		{"by updated_at", `SELECT ` + cols + ` FROM customers WHERE account_id = $1 AND archived = $2 ORDER BY updated_at ASC, id ASC LIMIT $3 OFFSET $4`,
			[]any{e.Account, 0, 100, 0}},
		{"gateway filter", `SELECT ` + cols + ` FROM customers WHERE account_id = $1 AND archived = $2 AND EXISTS (SELECT 1 FROM payment_sources ps WHERE ps.customer_id = customers.id AND ps.gateway_id = $3 AND ps.status = 'active') ORDER BY created_at DESC, id DESC LIMIT $4 OFFSET $5`,
			[]any{e.Account, 0, e.Gateway, 100, 0}},
	} {
		rows, err := r.QueryContext(context.Background(), `EXPLAIN QUERY PLAN `+q.sql, q.args...)
		if err != nil {
			t.Fatalf("%s: %v", q.name, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		text := strings.Join(plan, "; ")
		if !strings.Contains(text, "USING INDEX") && !strings.Contains(text, "USING COVERING INDEX") && !strings.Contains(text, "USING PRIMARY KEY") {
			t.Errorf("%s: no index used: %s", q.name, text)
		}
		for _, p := range plan {
			if strings.HasPrefix(p, "SCAN customers") || strings.HasPrefix(p, "SCAN customer_counts") || strings.HasPrefix(p, "SCAN ps") {
				t.Errorf("%s: full scan: %s", q.name, text)
			}
		}
		t.Logf("%s: %s", q.name, text)
	}
}

// --- §7.6–7.8 get, update, archive ------------------------------------------------

func TestCustomerGet(t *testing.T) {
	e := newCU(t)
	d := e.create(map[string]any{"first_name": "Ada", "payment_source": cuCard(cuVisa, nil)})
	id := d["_id"].(string)
	if g := e.get(strings.ToUpper(id)); !reflect.DeepEqual(g, d) {
		t.Errorf("GET by upper-case id differs")
	}
	if g := e.get(id + "/"); !reflect.DeepEqual(g, d) {
		t.Errorf("GET with trailing slash differs")
	}
	_, otherSecret, _ := e.other()
	for _, m := range []string{"GET", "POST", "DELETE"} {
		cuBadParam(t, e.Do(m, "/v1/customers/invalid_id_string", nil), "id")
		cuBadParam(t, e.Do(m, "/v1/customers/"+id[:23], nil), "id")
		cuNotFound(t, e.Do(m, "/v1/customers/"+cuZeroID, nil), "id", "customer not found")
		cuNotFound(t, e.Do(m, "/v1/customers/"+id, nil, "x-user-secret-key", otherSecret), "id", "customer not found")
	}
	// Path before body (§3.4): an unknown id with a malformed body is 404.
	cuNotFound(t, e.Do("POST", "/v1/customers/"+cuZeroID, "{not json"), "id", "customer not found")
	cuInvalid(t, e.Do("POST", "/v1/customers/"+id, "{not json"), "", "body must be a JSON object")
	cuInvalid(t, e.Do("POST", "/v1/customers", "[1]"), "", "body must be a JSON object")
	// The fixed route is never read as an id.
	r := e.Do("GET", "/v1/customers/payment_sources", nil)
	if _, _, p, _ := r.ErrorDetails(); r.Status != 400 || p != "query_token" {
		t.Errorf("GET /v1/customers/payment_sources without query_token: %d %s", r.Status, r.Raw)
	}
	if e.get(id)["first_name"] != "Ada" {
		t.Errorf("customer changed by the other account")
	}
}

func TestCustomerUpdate(t *testing.T) {
	e := newCU(t)
	base := map[string]any{"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com", "phone": "+61411222333",
		"reference": "CRM-1042", "description": "first", "company_name": "Analytical", "meta": map[string]any{"a": "1", "b": 2},
		"payment_source": cuCard(cuVisa, map[string]any{"gateway_id": e.Gateway})}
	second := e.gateway("Second")

	t.Run("a token's contact fills what the customer lacks and the request leaves out", func(t *testing.T) {
		d := e.create(map[string]any{"first_name": "Ada", "phone": "+61411222333", "payment_source": cuCard(cuVisa, nil)})
		id := d["_id"].(string)
		tok := e.token(cuCard(cuMaster, map[string]any{"first_name": "Tok", "last_name": "Holder", "email": "tok@example.com", "phone": "+61400000000"}))
		u := e.update(id, map[string]any{"token": tok, "phone": ""})
		if u["first_name"] != "Ada" || u["last_name"] != "Holder" || u["email"] != "tok@example.com" || u["phone"] != nil {
			t.Fatalf("after the token: first %v, last %v, email %v, phone %v", u["first_name"], u["last_name"], u["email"], u["phone"])
		}
	})

	t.Run("text fields: replace, clear with empty string, null leaves", func(t *testing.T) {
		d := e.create(base)
		id := d["_id"].(string)
		u := e.update(id, map[string]any{"first_name": "Augusta", "last_name": "", "email": nil, "description": "",
			"company_name": "Babbage & Co", "_id": id, "customer_id": id})
		want := maps.Clone(d)
		want["first_name"], want["company_name"] = "Augusta", "Babbage & Co"
		delete(want, "last_name")
		delete(want, "description")
		want["updated_at"] = u["updated_at"]
		if !reflect.DeepEqual(u, want) {
			t.Errorf("update:\n got  %v\n want %v", u, want)
		}
		if u["updated_at"] == d["updated_at"] {
			t.Errorf("updated_at not moved")
		}
		if !reflect.DeepEqual(e.get(id), u) {
			t.Errorf("GET differs from the update's answer")
		}
		// Search follows the new text.
		if ids, _, _ := e.list("?search=augusta"); !slices.Equal(ids, []string{id}) {
			t.Errorf("search after update: %v", ids)
		}
		if ids, _, _ := e.list("?search=lovelace"); len(ids) != 0 {
			t.Errorf("cleared last_name still searchable: %v", ids)
		}
	})

	t.Run("meta replaces as a whole; {} clears; null leaves", func(t *testing.T) {
		id := e.create(base)["_id"].(string)
		if u := e.update(id, map[string]any{"meta": map[string]any{"c": true}}); !reflect.DeepEqual(u["meta"], map[string]any{"c": true}) {
			t.Errorf("meta %v", u["meta"])
		}
		if u := e.update(id, map[string]any{"meta": nil, "first_name": "X"}); !reflect.DeepEqual(u["meta"], map[string]any{"c": true}) {
			t.Errorf("null meta changed it: %v", u["meta"])
		}
		if u := e.update(id, map[string]any{"meta": map[string]any{}}); u["meta"] != nil {
			t.Errorf("meta {} did not clear: %v", u["meta"])
		}
	})

	t.Run("{} and ignored fields leave everything, updated_at included", func(t *testing.T) {
		d := e.create(base)
		id := d["_id"].(string)
		for _, body := range []any{map[string]any{}, nil, "null", "", map[string]any{"_id": id, "from_webhook": true, "first_name": nil},
			map[string]any{"first_name": "Ada", "meta": map[string]any{"b": 2, "a": "1"}}, map[string]any{"default_source": d["default_source"]}} {
			if u := e.update(id, body); !reflect.DeepEqual(u, d) {
				t.Errorf("body %v changed the customer:\n got  %v\n want %v", body, u, d)
			}
		}
	})

	t.Run("email and phone validated on update, nothing written", func(t *testing.T) {
		d := e.create(base)
		id := d["_id"].(string)
		before := e.counts()
		cuInvalid(t, e.Do("POST", "/v1/customers/"+id, map[string]any{"first_name": "Changed", "email": "bad"}), "email", "email must be a valid email address")
		cuInvalid(t, e.Do("POST", "/v1/customers/"+id, map[string]any{"first_name": "Changed", "phone": "abc"}), "phone", "phone must be a phone number, ideally in E.164 format")
		cuInvalid(t, e.Do("POST", "/v1/customers/"+id, map[string]any{"first_name": "Changed", "meta": []any{}}), "meta", "meta must be an object of strings, numbers or booleans")
		cuInvalid(t, e.Do("POST", "/v1/customers/"+id, map[string]any{"first_name": "Changed",
			"payment_source": cuCard(cuVisa, map[string]any{"card_number": "4111111111111112"})}), "payment_source.card_number", "card_number failed the Luhn check")
		cuInvalid(t, e.Do("POST", "/v1/customers/"+id, map[string]any{"first_name": "Changed", "token": cuZeroUUID}), "token", "token not found")
		cuInvalid(t, e.Do("POST", "/v1/customers/"+id, map[string]any{"first_name": "Changed", "token": cuZeroUUID, "payment_source": cuCard(cuVisa, nil)}),
			"payment_source", "payment_source and token cannot be used together")
		e.sameCounts("rejected updates", before)
		if !reflect.DeepEqual(e.get(id), d) {
			t.Errorf("a rejected update changed the customer")
		}
	})

	type addCase struct {
		name    string
		body    func() map[string]any
		gateway string // "" = vault-only
	}
	adds := []addCase{
		{"card with gateway", func() map[string]any {
			return map[string]any{"payment_source": cuCard(cuMaster, map[string]any{"gateway_id": e.Gateway})}
		}, "sandbox"},
		{"card without gateway", func() map[string]any { return map[string]any{"payment_source": cuCard(cuMaster, nil)} }, ""},
		{"token", func() map[string]any {
			return map[string]any{"token": e.token(cuCard(cuMaster, map[string]any{"gateway_id": second, "first_name": "Tok"}))}
		}, "second"},
		{"payment_source.token", func() map[string]any {
			return map[string]any{"payment_source": map[string]any{"token": e.token(cuCard(cuMaster, nil))}}
		}, ""},
		{"vault_token with gateway", func() map[string]any {
			return map[string]any{"payment_source": map[string]any{"vault_token": e.vault(cuCard(cuMaster, nil)), "gateway_id": second}}
		}, "second"},
		{"vault_token", func() map[string]any {
			return map[string]any{"payment_source": map[string]any{"vault_token": e.vault(cuCard(cuMaster, nil))}}
		}, ""},
	}
	for _, a := range adds {
		for _, keep := range []bool{false, true} {
			name := a.name
			if keep {
				name += " with default_source"
			}
			t.Run("add a source: "+name, func(t *testing.T) {
				d := e.create(base)
				id := d["_id"].(string)
				first := d["default_source"].(string)
				// A second source so that the named default is not the first by accident.
				d = e.update(id, map[string]any{"payment_source": cuCard(cuVisa2, nil)})
				mid := d["default_source"].(string)
				body := a.body()
				if keep {
					body["default_source"] = strings.ToUpper(first)
				}
				before := e.counts()
				u := e.update(id, body)
				ids := cuSourceIDs(u)
				if len(ids) != 3 || ids[0] != first || ids[1] != mid {
					t.Fatalf("sources %v, want [%s %s new]", ids, first, mid)
				}
				newSrc := cuSources(u)[2]
				wantDefault := ids[2]
				if keep {
					wantDefault = first
				}
				if u["default_source"] != wantDefault {
					t.Errorf("default_source %v, want %v", u["default_source"], wantDefault)
				}
				if newSrc["card_number_last4"] != "4444" || newSrc["status"] != "active" {
					t.Errorf("new source %v", newSrc)
				}
				gw := map[string]string{"sandbox": e.Gateway, "second": second}[a.gateway]
				if got, _ := newSrc["gateway_id"].(string); got != gw {
					t.Errorf("new source gateway %v, want %q", newSrc["gateway_id"], gw)
				}
				if gw != "" && !cuRef.MatchString(fmt.Sprint(newSrc["ref_token"])) {
					t.Errorf("ref_token %v", newSrc["ref_token"])
				}
				if gw == "" && newSrc["ref_token"] != nil {
					t.Errorf("vault-only source has ref_token %v", newSrc["ref_token"])
				}
				svc := u["_service"].(map[string]any)
				switch {
				case keep && svc["default_gateway_id"] != e.Gateway:
					t.Errorf("_service %v, want the first source's gateway", svc)
				case !keep && gw != "" && svc["default_gateway_id"] != gw:
					t.Errorf("_service %v, want %s", svc, gw)
				case !keep && gw == "" && len(svc) != 0:
					t.Errorf("_service %v, want {}", svc)
				}
				if u["first_name"] != "Ada" {
					t.Errorf("an update's token filled first_name: %v", u["first_name"])
				}
				if after := e.counts(); after.customers != before.customers || after.sources != before.sources+1 {
					t.Errorf("counts %+v after %+v", after, before)
				}
				if !reflect.DeepEqual(e.get(id), u) {
					t.Errorf("GET differs")
				}
			})
		}
	}

	t.Run("default_source alone switches the default", func(t *testing.T) {
		d := e.create(base)
		id := d["_id"].(string)
		first := d["default_source"].(string)
		d = e.update(id, map[string]any{"payment_source": cuCard(cuVisa2, nil)})
		u := e.update(id, map[string]any{"default_source": first})
		if u["default_source"] != first || u["_service"].(map[string]any)["default_gateway_id"] != e.Gateway {
			t.Errorf("default %v _service %v", u["default_source"], u["_service"])
		}
		want := maps.Clone(d)
		want["default_source"], want["_service"], want["updated_at"] = first, u["_service"], u["updated_at"]
		if !reflect.DeepEqual(u, want) {
			t.Errorf("default_source touched something else:\n got  %v\n want %v", u, want)
		}
	})

	t.Run("default_source not an active source of this customer", func(t *testing.T) {
		d := e.create(base)
		id := d["_id"].(string)
		other := e.create(base)
		d = e.update(id, map[string]any{"payment_source": cuCard(cuVisa2, nil)})
		archivedSrc := cuSourceIDs(d)[1]
		if r := e.Do("DELETE", "/v1/customers/"+id+"/payment_sources/"+archivedSrc, nil); r.Status != 200 {
			t.Fatal(r.Status)
		}
		d = e.get(id)
		const msg = "default_source must be an active payment source of this customer"
		for _, ds := range []string{other["default_source"].(string), archivedSrc, cuZeroID, id} {
			for _, body := range []map[string]any{
				{"default_source": ds},
				{"default_source": ds, "first_name": "Changed", "payment_source": cuCard(cuVisa, map[string]any{"gateway_id": e.Gateway})},
			} {
				before := e.counts()
				cuInvalid(t, e.Do("POST", "/v1/customers/"+id, body), "default_source", msg)
				e.sameCounts("bad default_source", before)
			}
		}
		tok := e.token(cuCard(cuVisa, nil))
		cuInvalid(t, e.Do("POST", "/v1/customers/"+id, map[string]any{"default_source": cuZeroID, "token": tok}), "default_source", msg)
		// Table order within step 7: token, default_source, payment_source.*.
		cuInvalid(t, e.Do("POST", "/v1/customers/"+id, map[string]any{"default_source": cuZeroID, "token": cuZeroUUID}), "token", "token not found")
		cuInvalid(t, e.Do("POST", "/v1/customers/"+id, map[string]any{"default_source": cuZeroID,
			"payment_source": map[string]any{"token": cuZeroUUID, "gateway_id": cuZeroID}}), "default_source", msg)
		if e.tokenStatus(tok) != "active" {
			t.Errorf("token consumed by a rejected update")
		}
		cuInvalid(t, e.Do("POST", "/v1/customers/"+id, map[string]any{"default_source": "nope"}), "default_source", "default_source must be a mongodb id")
		if !reflect.DeepEqual(e.get(id), d) {
			t.Errorf("customer changed")
		}
	})

	t.Run("archived customer cannot be updated", func(t *testing.T) {
		d := e.create(base)
		id := d["_id"].(string)
		a := e.Do("DELETE", "/v1/customers/"+id, nil)
		arch := cuData(t, a)
		tok := e.token(cuCard(cuVisa, nil))
		for _, body := range []any{map[string]any{}, map[string]any{"first_name": "X"}, map[string]any{"token": tok},
			map[string]any{"default_source": d["default_source"]}, map[string]any{"payment_source": cuCard(cuVisa, nil)}} {
			before := e.counts()
			cuArchivedErr(t, e.Do("POST", "/v1/customers/"+id, body))
			e.sameCounts("update of an archived customer", before)
		}
		if e.tokenStatus(tok) != "active" {
			t.Errorf("token consumed")
		}
		// Field validation (step 6) and referenced objects (step 7) come
		// before the state rule (step 8).
		cuInvalid(t, e.Do("POST", "/v1/customers/"+id, map[string]any{"email": "bad"}), "email", "email must be a valid email address")
		cuInvalid(t, e.Do("POST", "/v1/customers/"+id, map[string]any{"token": cuZeroUUID}), "token", "token not found")
		cuInvalid(t, e.Do("POST", "/v1/customers/"+id, map[string]any{"default_source": cuZeroID}), "default_source",
			"default_source must be an active payment source of this customer")
		cuInvalid(t, e.Do("POST", "/v1/customers/"+id, map[string]any{"payment_source": cuCard(cuVisa, map[string]any{"gateway_id": cuZeroID})}),
			"payment_source.gateway_id", "gateway not found")
		cuInvalid(t, e.Do("POST", "/v1/customers/"+id, map[string]any{"payment_source": map[string]any{"vault_token": cuZeroUUID}}),
			"payment_source.vault_token", "vault token not found")
		if !reflect.DeepEqual(e.get(id), arch) {
			t.Errorf("archived customer changed")
		}
	})
}

func TestCustomerArchive(t *testing.T) {
	e := newCU(t)
	d := e.create(map[string]any{"first_name": "Grace", "reference": "CRM-1043", "payment_source": cuCard(cuVisa, map[string]any{"gateway_id": e.Gateway})})
	id := d["_id"].(string)
	other := e.create(map[string]any{"first_name": "Other", "payment_source": cuCard(cuVisa, nil)})
	e.clock.Advance(time.Minute)
	r := e.Do("DELETE", "/v1/customers/"+id, "null", "Content-Type", "application/json")
	if r.Status != 200 {
		t.Fatalf("archive: %d %s", r.Status, r.Raw)
	}
	a := cuData(t, r)
	want := maps.Clone(d)
	want["status"], want["archived"], want["updated_at"] = "archived", true, a["updated_at"]
	if !reflect.DeepEqual(a, want) {
		t.Errorf("archive:\n got  %v\n want %v", a, want)
	}
	if a["updated_at"] == d["updated_at"] {
		t.Errorf("updated_at not moved")
	}
	e.clock.Advance(time.Minute)
	if again := cuData(t, e.Do("DELETE", "/v1/customers/"+id, nil)); !reflect.DeepEqual(again, a) {
		t.Errorf("second archive changed it:\n%v\n%v", again, a)
	}
	if g := e.get(id); !reflect.DeepEqual(g, a) {
		t.Errorf("GET of the archived customer differs")
	}
	if ids, n, _ := e.list(""); !slices.Equal(ids, []string{other["_id"].(string)}) || n != 1 {
		t.Errorf("list %v count %d", ids, n)
	}
	if ids, n, _ := e.list("?archived=true"); !slices.Equal(ids, []string{id}) || n != 1 {
		t.Errorf("archived list %v count %d", ids, n)
	}
	if ids, _, _ := e.list("?reference=CRM-1043"); len(ids) != 0 {
		t.Errorf("archived customer found by reference: %v", ids)
	}
}

// --- §7.9, §7.10 sources -------------------------------------------------------------

func TestCustomerReplaceSource(t *testing.T) {
	e := newCU(t)
	d := e.create(map[string]any{"first_name": "Alan", "payment_source": cuCard(cuVisa, map[string]any{"gateway_id": e.Gateway,
		"address_line1": "1 Old St", "address_country": "AU"})})
	id := d["_id"].(string)
	d = e.update(id, map[string]any{"payment_source": cuCard(cuMaster, nil)})
	d = e.update(id, map[string]any{"default_source": cuSourceIDs(d)[0]})
	bound, vaultOnly := cuSources(d)[0], cuSources(d)[1]
	path := func(sid string) string { return "/v1/customers/" + id + "/payment_sources/" + sid }

	t.Run("a new permanent vault token, bound source", func(t *testing.T) {
		vt := e.vault(map[string]any{"card_name": "Alan Turing", "card_number": cuVisa2, "expire_month": 12, "expire_year": 2031,
			"address_city": "Wilmslow"})
		rec := e.vaultObject(vt)
		e.clock.Advance(time.Minute)
		before := e.counts()
		r := e.Do("POST", path(bound["_id"].(string)), map[string]any{"vault_token": strings.ToUpper(vt), "_id": "x"})
		if r.Status != 200 {
			t.Fatalf("replace: %d %s", r.Status, r.Raw)
		}
		u := cuData(t, r)
		e.sameCounts("replace", before)
		if !slices.Equal(cuSourceIDs(u), cuSourceIDs(d)) || u["default_source"] != bound["_id"] {
			t.Errorf("position or default changed: %v %v", cuSourceIDs(u), u["default_source"])
		}
		s := cuSources(u)[0]
		want := maps.Clone(bound)
		for k, v := range map[string]any{"vault_token": vt, "card_name": "Alan Turing", "card_scheme": "visa", "card_number_bin": "42424242",
			"card_number_last4": "4242", "card_fingerprint": rec["card_fingerprint"], "expire_month": json.Number("12"),
			"expire_year": json.Number("2031"), "address_city": "Wilmslow", "updated_at": s["updated_at"]} {
			want[k] = v
		}
		delete(want, "address_line1")
		delete(want, "address_country")
		if !reflect.DeepEqual(s, want) {
			t.Errorf("replaced source:\n got  %v\n want %v", s, want)
		}
		if s["updated_at"] == bound["updated_at"] || u["updated_at"] == d["updated_at"] {
			t.Errorf("updated_at not moved")
		}
		if !reflect.DeepEqual(cuSources(u)[1], vaultOnly) {
			t.Errorf("the other source changed")
		}
		if !reflect.DeepEqual(e.vaultObject(vt), rec) {
			t.Errorf("vault record modified")
		}
		d = u
		bound = s
	})

	t.Run("vault-only source", func(t *testing.T) {
		vt := e.vault(cuCard(cuDecline, map[string]any{"card_name": "No Gateway"}))
		u := cuData(t, e.Do("POST", path(vaultOnly["_id"].(string)), map[string]any{"vault_token": vt}))
		s := cuSources(u)[1]
		if s["vault_token"] != vt || s["gateway_id"] != nil || s["card_number_last4"] != "0001" || u["default_source"] != bound["_id"] {
			t.Errorf("source %v", s)
		}
		d = u
		vaultOnly = s
	})

	t.Run("refusals change nothing", func(t *testing.T) {
		_, otherSecret, _ := e.other()
		otherVault := e.vault(cuCard(cuVisa, nil), "x-user-secret-key", otherSecret)
		archived := e.vault(cuCard(cuVisa, nil))
		e.Do("DELETE", "/v1/vault-tokens/"+archived, nil)
		session := e.vault(cuCard(cuVisa, map[string]any{"vault_type": "session"}))
		tok := e.token(cuCard(cuVisa, nil))
		declined := e.vault(cuCard(cuDecline, nil))
		other := e.create(map[string]any{"payment_source": cuCard(cuVisa, nil)})
		sid := bound["_id"].(string)
		for _, c := range []struct {
			path string
			body any
			want func(r *apitest.Response)
		}{
			{path(sid), map[string]any{}, func(r *apitest.Response) { cuInvalid(t, r, "vault_token", "vault_token is required") }},
			{path(sid), map[string]any{"vault_token": 5}, func(r *apitest.Response) { cuInvalid(t, r, "vault_token", "vault_token must be a string") }},
			{path(sid), map[string]any{"vault_token": "abc"}, func(r *apitest.Response) { cuInvalid(t, r, "vault_token", "vault_token must be a uuid") }},
			{path(sid), map[string]any{"vault_token": cuZeroUUID}, func(r *apitest.Response) { cuInvalid(t, r, "vault_token", "vault token not found") }},
			{path(sid), map[string]any{"vault_token": otherVault}, func(r *apitest.Response) { cuInvalid(t, r, "vault_token", "vault token not found") }},
			{path(sid), map[string]any{"vault_token": tok}, func(r *apitest.Response) { cuInvalid(t, r, "vault_token", "vault token not found") }},
			{path(sid), map[string]any{"vault_token": archived}, func(r *apitest.Response) { cuInvalid(t, r, "vault_token", "vault token is archived") }},
			{path(sid), map[string]any{"vault_token": session}, func(r *apitest.Response) {
				cuInvalid(t, r, "vault_token", "session vault tokens cannot be stored on a customer")
			}},
			{path(sid), map[string]any{"vault_token": declined}, func(r *apitest.Response) { cuGatewayErr(t, r, cuRefusals[0]) }},
			{path(cuZeroID), map[string]any{"vault_token": declined}, func(r *apitest.Response) {
				cuNotFound(t, r, "payment_source_id", "payment source not found")
			}},
			{path(other["default_source"].(string)), map[string]any{"vault_token": declined}, func(r *apitest.Response) {
				cuNotFound(t, r, "payment_source_id", "payment source not found")
			}},
			{path("nope"), nil, func(r *apitest.Response) { cuBadParam(t, r, "payment_source_id") }},
			// Path parameters are checked before the body is read (§3.4).
			{path(cuZeroID), "{not json", func(r *apitest.Response) { cuNotFound(t, r, "payment_source_id", "payment source not found") }},
			{path(other["default_source"].(string)), "[]", func(r *apitest.Response) {
				cuNotFound(t, r, "payment_source_id", "payment source not found")
			}},
			{path(sid), "{not json", func(r *apitest.Response) { cuInvalid(t, r, "", "body must be a JSON object") }},
			{"/v1/customers/" + cuZeroID + "/payment_sources/" + sid, nil, func(r *apitest.Response) { cuNotFound(t, r, "id", "customer not found") }},
			{"/v1/customers/nope/payment_sources/" + sid, nil, func(r *apitest.Response) { cuBadParam(t, r, "id") }},
			{"/v1/customers/" + other["_id"].(string) + "/payment_sources/" + sid, map[string]any{"vault_token": declined}, func(r *apitest.Response) {
				cuNotFound(t, r, "payment_source_id", "payment source not found")
			}},
		} {
			before := e.counts()
			c.want(e.Do("POST", c.path, c.body))
			e.sameCounts("replace "+c.path, before)
		}
		if !reflect.DeepEqual(e.get(id), d) {
			t.Errorf("customer changed")
		}
		if e.tokenStatus(tok) != "active" {
			t.Errorf("one-time token touched")
		}
	})

	t.Run("archived source and archived customer", func(t *testing.T) {
		vt := e.vault(cuCard(cuVisa2, nil))
		if r := e.Do("DELETE", path(vaultOnly["_id"].(string)), nil); r.Status != 200 {
			t.Fatal(r.Status)
		}
		cuNotFound(t, e.Do("POST", path(vaultOnly["_id"].(string)), map[string]any{"vault_token": vt}), "payment_source_id", "payment source not found")
		e.Do("DELETE", "/v1/customers/"+id, nil)
		before := e.get(id)
		cuErr(t, e.Do("POST", path(bound["_id"].(string)), map[string]any{"vault_token": vt}), 400, "UnfulfilledCondition",
			"customer is archived", "", "customer is archived", "customer")
		if !reflect.DeepEqual(e.get(id), before) {
			t.Errorf("archived customer changed")
		}
	})
}

func TestCustomerArchiveSource(t *testing.T) {
	e := newCU(t)
	mk := func() (string, []string) {
		d := e.create(map[string]any{"first_name": "Grace", "payment_source": cuCard(cuVisa, map[string]any{"gateway_id": e.Gateway})})
		id := d["_id"].(string)
		e.update(id, map[string]any{"payment_source": cuCard(cuVisa2, nil)})
		d = e.update(id, map[string]any{"payment_source": cuCard(cuMaster, map[string]any{"gateway_id": e.Gateway})})
		return id, cuSourceIDs(d)
	}
	del := func(id, sid string) map[string]any {
		t.Helper()
		e.clock.Advance(time.Second)
		r := e.Do("DELETE", "/v1/customers/"+id+"/payment_sources/"+sid, nil)
		if r.Status != 200 {
			t.Fatalf("archive source: %d %s", r.Status, r.Raw)
		}
		return cuData(t, r)
	}

	t.Run("default moves to the newest remaining, then null", func(t *testing.T) {
		id, s := mk() // s[2] is default
		d := del(id, s[2])
		if !slices.Equal(cuSourceIDs(d), s[:2]) || d["default_source"] != s[1] || len(d["_service"].(map[string]any)) != 0 {
			t.Errorf("after archiving the default: %v default %v _service %v", cuSourceIDs(d), d["default_source"], d["_service"])
		}
		d = del(id, s[0]) // not the default
		if !slices.Equal(cuSourceIDs(d), s[1:2]) || d["default_source"] != s[1] {
			t.Errorf("after archiving a non-default: %v default %v", cuSourceIDs(d), d["default_source"])
		}
		d = del(id, s[1])
		if len(cuSources(d)) != 0 || d["default_source"] != nil || len(d["_service"].(map[string]any)) != 0 || d["status"] != "active" {
			t.Errorf("after archiving the last: %v", d)
		}
		if v, has := d["default_source"]; !has || v != nil {
			t.Errorf("default_source must be present and null")
		}
		if ps, ok := d["payment_sources"].([]any); !ok || len(ps) != 0 {
			t.Errorf("payment_sources %v, want []", d["payment_sources"])
		}
		again := del(id, s[1])
		if !reflect.DeepEqual(again, d) {
			t.Errorf("archiving again changed it:\n%v\n%v", again, d)
		}
		// Archived sources stay the customer's, so they answer 200.
		if again := del(id, s[2]); !reflect.DeepEqual(again, d) {
			t.Errorf("archiving an earlier source again changed it")
		}
		if !reflect.DeepEqual(e.get(id), d) {
			t.Errorf("GET differs")
		}
		// Adding a source afterwards makes it the default.
		u := e.update(id, map[string]any{"payment_source": cuCard(cuVisa, nil)})
		if u["default_source"] != cuSourceIDs(u)[0] || len(cuSources(u)) != 1 {
			t.Errorf("add after emptying: %v", u)
		}
	})

	t.Run("newest remaining by created_at, not the previous default", func(t *testing.T) {
		id, s := mk()
		e.update(id, map[string]any{"default_source": s[0]})
		d := del(id, s[0])
		if d["default_source"] != s[2] || d["_service"].(map[string]any)["default_gateway_id"] != e.Gateway {
			t.Errorf("default %v _service %v, want %s", d["default_source"], d["_service"], s[2])
		}
	})

	t.Run("not found", func(t *testing.T) {
		id, s := mk()
		other, os := mk()
		_, otherSecret, _ := e.other()
		before := e.get(id)
		cuNotFound(t, e.Do("DELETE", "/v1/customers/"+id+"/payment_sources/"+os[0], nil), "payment_source_id", "payment source not found")
		cuNotFound(t, e.Do("DELETE", "/v1/customers/"+id+"/payment_sources/"+cuZeroID, nil), "payment_source_id", "payment source not found")
		cuBadParam(t, e.Do("DELETE", "/v1/customers/"+id+"/payment_sources/xyz", nil), "payment_source_id")
		cuNotFound(t, e.Do("DELETE", "/v1/customers/"+cuZeroID+"/payment_sources/"+s[0], nil), "id", "customer not found")
		cuNotFound(t, e.Do("DELETE", "/v1/customers/"+id+"/payment_sources/"+s[0], nil, "x-user-secret-key", otherSecret), "id", "customer not found")
		cuBadParam(t, e.Do("DELETE", "/v1/customers/x/payment_sources/"+s[0], nil), "id")
		if !reflect.DeepEqual(e.get(id), before) {
			t.Errorf("customer changed")
		}
		if len(cuSources(e.get(other))) != 3 {
			t.Errorf("other customer changed")
		}
	})
}

// --- §7.12 public listing ------------------------------------------------------------

func TestCustomerPublicSources(t *testing.T) {
	e := newCU(t)
	a := e.create(map[string]any{"first_name": "Ada", "reference": "CRM-1042", "company_name": "Shop",
		"payment_source": cuCard(cuVisa, map[string]any{"gateway_id": e.Gateway})})
	aID := a["_id"].(string)
	a = e.update(aID, map[string]any{"payment_source": cuCard(cuMaster, map[string]any{"card_name": "Ada Two"}), "default_source": a["default_source"]})
	b := e.create(map[string]any{"first_name": "Bob", "company_name": "Shop", "payment_source": cuCard(cuAmex, map[string]any{"card_ccv": "1234"})})
	bID := b["_id"].(string)
	e.create(map[string]any{"first_name": "Carl", "company_name": "Elsewhere", "payment_source": cuCard(cuVisa, nil)})

	_, _, res := e.list("?company_name=Shop&sortdirection=asc")
	qt := res["query_token"].(string)
	pub := func(query string, headers ...string) *apitest.Response {
		t.Helper()
		if len(headers) == 0 {
			headers = []string{"x-user-public-key", e.Public}
		}
		return e.Do("GET", "/v1/customers/payment_sources"+query, nil, headers...)
	}
	aSrc, bSrc := cuSources(a), cuSources(b)
	want := []map[string]any{
		{"_id": aSrc[0]["_id"], "type": "card", "customer_id": aID, "customer_reference": "CRM-1042", "primary": true,
			"gateway_id": e.Gateway, "gateway_type": "Simulator", "gateway_mode": "test", "card_name": "Ada Lovelace", "card_scheme": "visa",
			"card_number_last4": "1111", "expire_month": json.Number("9"), "expire_year": json.Number("2028")},
		{"_id": aSrc[1]["_id"], "type": "card", "customer_id": aID, "customer_reference": "CRM-1042", "primary": false,
			"card_name": "Ada Two", "card_scheme": "mastercard", "card_number_last4": "4444", "expire_month": json.Number("9"),
			"expire_year": json.Number("2028")},
		{"_id": bSrc[0]["_id"], "type": "card", "customer_id": bID, "primary": true, "card_name": "Ada Lovelace", "card_scheme": "amex",
			"card_number_last4": "0005", "expire_month": json.Number("9"), "expire_year": json.Number("2028")},
	}
	items := func(r *apitest.Response) []map[string]any {
		t.Helper()
		if r.Status != 200 {
			t.Fatalf("public listing: %d %s", r.Status, r.Raw)
		}
		dec := json.NewDecoder(bytes.NewReader(r.Raw))
		dec.UseNumber()
		var body struct {
			Resource struct {
				Type string           `json:"type"`
				Data []map[string]any `json:"data"`
			} `json:"resource"`
		}
		if err := dec.Decode(&body); err != nil {
			t.Fatal(err)
		}
		if body.Resource.Type != "payment_source" {
			t.Errorf("resource.type %q", body.Resource.Type)
		}
		for _, bad := range []string{"vault_token", "ref_token", "card_number_bin", "card_fingerprint", "sim_cus_", cuVisa} {
			if strings.Contains(string(r.Raw), bad) {
				t.Errorf("public listing leaks %s: %s", bad, r.Raw)
			}
		}
		return body.Resource.Data
	}
	for name, r := range map[string]*apitest.Response{
		"public key header":    pub("?query_token=" + qt),
		"public_key query":     pub("?query_token="+qt+"&public_key="+e.Public, "auth", "none"),
		"secret key":           pub("?query_token="+qt, "x-user-secret-key", e.Secret),
		"trailing slash":       e.Do("GET", "/v1/customers/payment_sources/?query_token="+qt, nil, "x-user-public-key", e.Public),
		"repeated query_token": pub("?query_token=" + qt + "&query_token=bad"),
		// §7.12 takes only query_token, skip and limit: the search's own
		// parameters are ignored like any unknown one (§1.1).
		"search parameters ignored": pub("?query_token=" + qt + "&sortkey=updated_at&sortdirection=up&archived=maybe&search=zz"),
	} {
		got := items(r)
		if !reflect.DeepEqual(got, want) {
			g, _ := json.Marshal(got)
			w, _ := json.Marshal(want)
			t.Errorf("%s:\n got  %s\n want %s", name, g, w)
		}
		if int(r.Resource()["count"].(float64)) != 3 || r.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("%s: count %v, CORS %q", name, r.Resource()["count"], r.Header.Get("Access-Control-Allow-Origin"))
		}
	}

	t.Run("skip and limit count sources", func(t *testing.T) {
		for _, c := range []struct {
			q    string
			want []map[string]any
		}{{"&limit=1", want[:1]}, {"&skip=1&limit=1", want[1:2]}, {"&skip=2", want[2:]}, {"&skip=3", []map[string]any{}}, {"&skip=99", []map[string]any{}}} {
			r := pub("?query_token=" + qt + c.q)
			got := items(r)
			if got == nil {
				got = []map[string]any{}
			}
			if !reflect.DeepEqual(got, c.want) || int(r.Resource()["count"].(float64)) != 3 {
				t.Errorf("%s: %d items, count %v", c.q, len(got), r.Resource()["count"])
			}
		}
		cuQueryInvalid(t, pub("?query_token="+qt+"&limit=0"), "limit", "limit must be a whole number from 1 to 1000", "payment_source")
	})

	t.Run("the search order and filters are re-applied now", func(t *testing.T) {
		_, _, res := e.list("?company_name=Shop") // DESC: Bob first
		got := items(pub("?query_token=" + res["query_token"].(string)))
		if len(got) != 3 || got[0]["customer_id"] != bID || got[1]["_id"] != aSrc[0]["_id"] {
			t.Errorf("DESC order: %v", got)
		}
		e.Do("DELETE", "/v1/customers/"+aID+"/payment_sources/"+aSrc[0]["_id"].(string), nil)
		d := e.create(map[string]any{"company_name": "Shop", "payment_source": cuCard(cuVisa, nil)})
		got = items(pub("?query_token=" + qt))
		var ids []any
		for _, g := range got {
			ids = append(ids, g["_id"])
		}
		wantIDs := []any{aSrc[1]["_id"], bSrc[0]["_id"], cuSourceIDs(d)[0]}
		if !reflect.DeepEqual(ids, wantIDs) {
			t.Errorf("ids %v, want %v", ids, wantIDs)
		}
		if got[0]["primary"] != true {
			t.Errorf("the remaining source did not become primary: %v", got[0])
		}
		e.Do("DELETE", "/v1/customers/"+bID, nil)
		if got := items(pub("?query_token=" + qt)); len(got) != 2 {
			t.Errorf("archived customer's sources listed: %v", got)
		}
	})

	t.Run("bad query tokens", func(t *testing.T) {
		_, otherSecret, otherPublic := e.other()
		r := e.Do("GET", "/v1/customers", nil, "x-user-secret-key", otherSecret)
		otherQT := r.Resource()["query_token"].(string)
		parts := strings.Split(qt, ".")
		tampered := parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2]))
		claims := parts[0] + ".eyJhY2MiOiIwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAiLCJmIjp7fSwiZXhwIjo5OTk5OTk5OTk5fQ." + parts[2]
		for name, q := range map[string]string{"garbage": "abc", "tampered": tampered, "other claims": claims, "other account's": otherQT,
			"two parts": parts[0] + "." + parts[1]} {
			cuQueryInvalid(t, pub("?query_token="+url.QueryEscape(q)), "query_token", "query_token is invalid or expired", "payment_source")
			// The token is the table's first parameter (§7.12): a bad
			// skip or limit beside it does not hide it (§3.4).
			cuQueryInvalid(t, pub("?limit=0&skip=x&query_token="+url.QueryEscape(q)), "query_token", "query_token is invalid or expired", "payment_source")
			_ = name
		}
		// With a good token, the bad limit is reported.
		cuQueryInvalid(t, pub("?limit=0&query_token="+qt), "limit", "limit must be a whole number from 1 to 1000", "payment_source")
		// Valid for its own account.
		if r := pub("?query_token="+otherQT, "x-user-public-key", otherPublic); r.Status != 200 {
			t.Errorf("other account's own token: %d", r.Status)
		}
		// Expired after one hour.
		e.clock.Advance(time.Hour + time.Second)
		cuQueryInvalid(t, pub("?query_token="+qt), "query_token", "query_token is invalid or expired", "payment_source")
		// Missing.
		r = pub("")
		if _, msg, p, _ := r.ErrorDetails(); r.Status != 400 || msg != "query validation failed" || p != "query_token" {
			t.Errorf("missing query_token: %d %s", r.Status, r.Raw)
		}
		// Credentials: none, or a wrong public key → 403 payment_source.
		cuErr(t, pub("?query_token="+qt, "auth", "none"), 403, "token_required", "Access forbidden", "", "", "payment_source")
		cuErr(t, pub("?query_token="+qt, "x-user-public-key", "pk_"+strings.Repeat("0", 40)), 403, "token_required", "Access forbidden", "", "", "payment_source")
	})
}

// Two concurrent uses of one token: exactly one customer (spec §5).
func TestCustomerTokenConcurrentUse(t *testing.T) {
	e := newCU(t)
	tok := e.token(cuCard(cuVisa, map[string]any{"gateway_id": e.Gateway}))
	before := e.counts()
	const n = 8
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := map[string]any{"token": tok}
			if i%2 == 1 {
				body = map[string]any{"payment_source": map[string]any{"token": tok}}
			}
			r := e.Do("POST", "/v1/customers", body)
			statuses[i] = r.Status
			if r.Status == 400 {
				if _, _, _, ms := r.ErrorDetails(); len(ms) != 1 || ms[0] != "token has already been used" {
					t.Errorf("loser: %s", r.Raw)
				}
			}
		}()
	}
	wg.Wait()
	won := 0
	for _, s := range statuses {
		if s == 201 {
			won++
		}
	}
	if won != 1 {
		t.Errorf("statuses %v: want exactly one 201", statuses)
	}
	if got := e.counts(); got != (cuCounts{before.customers + 1, before.sources + 1, before.vault + 1}) {
		t.Errorf("counts %+v after %+v", got, before)
	}
}

// An archived customer keeps its sources as they were (§7.8): archiving one
// of them is refused, and an unknown source is still a 404.
func TestCustomerArchivedKeepsSources(t *testing.T) {
	e := newCU(t)
	r := e.Do("POST", "/v1/customers", map[string]any{"payment_source": cuCard("4111111111111111", map[string]any{"gateway_id": e.Gateway})})
	if r.Status != 201 {
		t.Fatalf("create: %s", r.Raw)
	}
	d := r.Data()
	id, src := d["_id"].(string), d["default_source"].(string)
	if r := e.Do("DELETE", "/v1/customers/"+id, nil); r.Status != 200 {
		t.Fatalf("archive: %s", r.Raw)
	}
	r = e.Do("DELETE", "/v1/customers/"+id+"/payment_sources/"+src, nil)
	cuErr(t, r, 400, "UnfulfilledCondition", "customer is archived", "", "customer is archived", "customer")
	if got := e.get(id); len(cuSources(got)) != 1 || got["default_source"] != src {
		t.Fatalf("the archived customer's sources changed: %v", got)
	}
	r = e.Do("DELETE", "/v1/customers/"+id+"/payment_sources/000000000000000000000000", nil)
	cuNotFound(t, r, "payment_source_id", "payment source not found")
}

// search= folds with Go's Unicode simple folding (§3.4) and matches one
// field at a time (§7.5): never across first and last name.
func TestCustomerSearchFoldsAndStaysInOneField(t *testing.T) {
	e := newCU(t)
	mk := func(body map[string]any) string { return e.create(body)["_id"].(string) }
	ada := mk(map[string]any{"first_name": "Ada", "last_name": "Lovelace", "payment_source": cuCard(cuVisa, nil)})
	jess := mk(map[string]any{"first_name": "Jeſſica", "payment_source": cuCard(cuVisa, nil)})
	odys := mk(map[string]any{"last_name": "ΟΔΥΣΣΕΥΣ", "company_name": "Two\nLines", "payment_source": cuCard(cuVisa, nil)})
	for _, c := range []struct {
		search string
		want   []string
	}{
		{"ada", []string{ada}},
		{"ada\nlovelace", nil},
		{"a\nl", nil},
		{"JESSICA", []string{jess}},
		{"οδυσσευς", []string{odys}},
		{"two lines", []string{odys}},
		{"\n", nil},
	} {
		ids, n, _ := e.list("?search=" + url.QueryEscape(c.search))
		if n != len(c.want) || !slices.Equal(ids, c.want) {
			t.Errorf("search=%q: %v (count %d), want %v", c.search, ids, n, c.want)
		}
	}
}

// A customer create interrupted after it wrote the customer (its node
// died, its claim went stale) is never run again under its key: a retry
// answers the customer it created (spec §9), for every flow. Run again,
// flow 1 would make a second customer at the gateway and flow 2 would
// find its one-time token used.
func TestIdempotentCustomerCreateInterruptedIsNotRunAgain(t *testing.T) {
	e := newCU(t)
	flows := []struct {
		name string
		body func() map[string]any
	}{
		{"card and gateway", func() map[string]any {
			return map[string]any{"first_name": "Ada", "payment_source": cuWith(cuCard("4111111111111111", nil), map[string]any{"gateway_id": e.Gateway})}
		}},
		{"one-time token", func() map[string]any {
			return map[string]any{"first_name": "Ada", "token": e.token(cuCard("4111111111111111", nil))}
		}},
		{"vault token", func() map[string]any {
			return map[string]any{"first_name": "Ada", "payment_source": map[string]any{"vault_token": e.vault(cuCard("4111111111111111", map[string]any{"card_ccv": nil}))}}
		}},
	}
	var lastID string
	for i, f := range flows {
		key := fmt.Sprintf("cu-crash-%d", i)
		body := f.body()
		first := e.Do("POST", "/v1/customers", body, "Idempotency-Key", key)
		if first.Status != 201 {
			t.Fatalf("%s: %d %s", f.name, first.Status, first.Raw)
		}
		id := first.Data()["_id"].(string)
		lastID = id
		// As if the node had died after the write, before the answer was
		// stored: the claim still runs, with the customer it recorded.
		interruptClaim(t, e.Env, key, "customer_id", id)
		before := e.counts()
		if r := e.Do("POST", "/v1/customers", body, "Idempotency-Key", key); r.Status != 409 {
			t.Fatalf("%s: while the claim holds: %d %s", f.name, r.Status, r.Raw)
		}
		e.clock.Advance(3 * time.Minute) // the claim is stale
		r := e.Do("POST", "/v1/customers", body, "Idempotency-Key", key)
		if r.Status != 201 || r.Data()["_id"] != id || r.Header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("%s: retry after the interruption: %d %q %s", f.name, r.Status, r.Header.Get("Idempotent-Replayed"), r.Raw)
		}
		if diff := cmp.Diff(cuData(t, first), cuData(t, r)); diff != "" {
			t.Errorf("%s: the retry's customer differs from the first answer (-first +retry):\n%s", f.name, diff)
		}
		e.sameCounts(f.name+": the retry", before)
		// Another body under the key is still a mismatch.
		if r := e.Do("POST", "/v1/customers", cuWith(body, map[string]any{"first_name": "Bob"}), "Idempotency-Key", key); r.Status != 400 {
			t.Fatalf("%s: other body: %d %s", f.name, r.Status, r.Raw)
		}
	}
	// An update records the customer it changed too (a retry of an
	// interrupted update answers the customer as it is now).
	if r := e.Do("POST", "/v1/customers/"+lastID, map[string]any{"first_name": "Cy"}, "Idempotency-Key", "cu-update"); r.Status != 200 {
		t.Fatalf("update: %d %s", r.Status, r.Raw)
	}
	var got string
	if err := e.Store.Engine().Reader().QueryRowContext(t.Context(), `SELECT customer_id FROM idempotency_keys WHERE key = 'cu-update'`).Scan(&got); err != nil || got != lastID {
		t.Fatalf("the update's claim records %q (%v), want %s", got, err, lastID)
	}
}

// Concurrent updates of one customer all succeed and none is lost: they
// wait for each other on the customer's row (on PostgreSQL they used to
// fail serialization, and past ten attempts answered 500).
func TestCustomerConcurrentUpdates(t *testing.T) {
	e := newCU(t)
	id := e.create(map[string]any{"first_name": "Ada", "payment_source": map[string]any{"vault_token": e.vault(cuCard(cuVisa, map[string]any{"card_ccv": nil}))}})["_id"].(string)
	const workers, each = 16, 6
	var wg sync.WaitGroup
	errc := make(chan string, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				body := map[string]any{"meta": map[string]any{"w": w, "i": i}}
				if i%3 == 0 { // some add a card, which also moves the default
					body["payment_source"] = map[string]any{"vault_token": e.vault(cuCard(cuVisa2, map[string]any{"card_ccv": nil}))}
				}
				r := e.Do("POST", "/v1/customers/"+id, body)
				if r.Status != 200 {
					errc <- fmt.Sprintf("%d %s", r.Status, r.Raw)
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	for msg := range errc {
		t.Errorf("update: %s", msg)
	}
	if got := len(cuSources(e.get(id))); got != 1+workers*2 {
		t.Errorf("%d sources after %d card additions, want %d", got, workers*2, 1+workers*2)
	}
}
