package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"switchyard/internal/apitest"
	"switchyard/internal/auth"
	"switchyard/internal/gateway"
	"switchyard/internal/vault"
)

// Tests of one-time tokens (spec §5) and the vault (spec §6) through the
// real router. Helpers carry a vt prefix: other files of this package are
// written by other people.

// vtClock is a settable clock, starting at the spec's example instant.
type vtClock struct {
	mu sync.Mutex
	t  time.Time
}

func newVTClock() *vtClock {
	return &vtClock{t: time.Date(2026, time.November, 24, 9, 10, 0, 31e6, time.UTC)}
}

func (c *vtClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *vtClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// vtEnv is an API over a fresh store whose clock the test controls.
type vtEnv struct {
	*apitest.Env
	clock *vtClock
}

func newVTEnv(t *testing.T) *vtEnv {
	t.Helper()
	c := newVTClock()
	return &vtEnv{Env: apitest.New(t, apitest.Options{Now: c.Now}), clock: c}
}

const (
	vtVisa     = "4242424242424242"
	vtAmex     = "378282246310005"
	vtUUIDZero = "00000000-0000-4000-8000-000000000000"
)

// vtDel in an override map removes the field.
type vtDel struct{}

// vtCard is a valid card body with overrides applied.
func vtCard(over map[string]any) map[string]any {
	b := map[string]any{"card_name": "Alan Turing", "card_number": vtVisa, "expire_month": 12, "expire_year": "27", "card_ccv": "321"}
	return vtWith(b, over)
}

func vtWith(b, over map[string]any) map[string]any {
	b = maps.Clone(b)
	for k, v := range over {
		if _, del := v.(vtDel); del {
			delete(b, k)
			continue
		}
		b[k] = v
	}
	return b
}

// vtLuhn returns a Luhn-valid number of n digits starting with prefix.
func vtLuhn(prefix string, n int) string {
	s := prefix + strings.Repeat("0", n-len(prefix)-1)
	for d := '0'; d <= '9'; d++ {
		if vault.Luhn(s + string(d)) {
			return s + string(d)
		}
	}
	panic("unreachable")
}

// vtWantError checks an error response: status, error.code, error.message,
// details.path and the one details message.
func vtWantError(t *testing.T, r *apitest.Response, status int, code, message, path, msg string) {
	t.Helper()
	gotCode, gotMessage, gotPath, gotMessages := r.ErrorDetails()
	want := fmt.Sprintf("%d %s %q path=%q %q", status, code, message, path, []string{msg})
	got := fmt.Sprintf("%d %s %q path=%q %q", r.Status, gotCode, gotMessage, gotPath, gotMessages)
	if msg == "" {
		want = fmt.Sprintf("%d %s %q path=%q", status, code, message, path)
		got = fmt.Sprintf("%d %s %q path=%q", r.Status, gotCode, gotMessage, gotPath)
	}
	if got != want {
		t.Errorf("error = %s\nwant    %s\nbody: %s", got, want, r.Raw)
	}
}

func vtWantInvalid(t *testing.T, r *apitest.Response, path, msg string) {
	t.Helper()
	vtWantError(t, r, 400, "ValidationError", "body validation failed", path, msg)
}

func vtWantForbidden(t *testing.T, r *apitest.Response) {
	t.Helper()
	vtWantError(t, r, 403, "token_required", "Access forbidden", "", "")
}

// vtRows counts the vault_records rows of account (tokens included).
func vtRows(t *testing.T, e *apitest.Env, account string) int {
	t.Helper()
	var n int
	if err := e.Store.Engine().Reader().QueryRowContext(context.Background(),
		`SELECT count(*) FROM vault_records WHERE account_id = $1`, account).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// vtListed is the number of vault records the API lists, archived or not.
func vtListed(t *testing.T, e *apitest.Env) int {
	t.Helper()
	n := 0
	for _, q := range []string{"", "?archived=true"} {
		r := e.Do("GET", "/v1/vault/payment_sources"+q, nil)
		if r.Status != 200 {
			t.Fatalf("list: %d %s", r.Status, r.Raw)
		}
		n += int(r.Resource()["count"].(float64))
	}
	return n
}

// vtSealed reports whether a record still holds card data, and its status.
func vtSealed(t *testing.T, e *apitest.Env, token string) (sealed bool, status string) {
	t.Helper()
	var has int
	if err := e.Store.Engine().Reader().QueryRowContext(context.Background(),
		`SELECT CASE WHEN sealed IS NULL THEN 0 ELSE 1 END, status FROM vault_records WHERE token = $1`, token).Scan(&has, &status); err != nil {
		t.Fatal(err)
	}
	return has == 1, status
}

// vtToken makes a one-time token with the public key and returns it.
func vtToken(t *testing.T, e *apitest.Env, body any) string {
	t.Helper()
	r := e.Do("POST", "/v1/payment_sources/tokens", body, "x-user-public-key", e.Public)
	if r.Status != 201 {
		t.Fatalf("token create: %d %s", r.Status, r.Raw)
	}
	tok, _ := r.Resource()["data"].(string)
	return tok
}

// vtVault makes a vault record and returns its object.
func vtVault(t *testing.T, e *apitest.Env, body any) map[string]any {
	t.Helper()
	r := e.Do("POST", "/v1/vault/payment_sources", body)
	if r.Status != 201 {
		t.Fatalf("vault create: %d %s", r.Status, r.Raw)
	}
	return r.Data()
}

// vtOther creates a second account and returns it with its keys.
func vtOther(t *testing.T, e *apitest.Env) (auth.Account, auth.Keys) {
	t.Helper()
	a, k, err := e.Services.Auth.Create(context.Background(), "Other")
	if err != nil {
		t.Fatal(err)
	}
	return a, k
}

var (
	vtUUIDRe = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	vtHex32  = regexp.MustCompile(`^[0-9a-f]{32}$`)
	vtTimeRe = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)
)

func vtTime(t *testing.T, v any) time.Time {
	t.Helper()
	s, _ := v.(string)
	if !vtTimeRe.MatchString(s) {
		t.Fatalf("timestamp %v is not in the wire format", v)
	}
	tm, err := time.Parse("2006-01-02T15:04:05.000Z", s)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

// vtNumbers decodes resource.data keeping numbers' text, to tell 12 from 12.0.
func vtNumbers(t *testing.T, raw []byte) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var body struct {
		Resource struct {
			Data map[string]any `json:"data"`
		} `json:"resource"`
	}
	if err := dec.Decode(&body); err != nil {
		t.Fatal(err)
	}
	return body.Resource.Data
}

// --- one-time tokens -------------------------------------------------------

func TestTokenCreateCredentials(t *testing.T) {
	e := newVTEnv(t)
	_, other := vtOther(t, e.Env)
	card := vtCard(nil)
	cases := []struct {
		name    string
		query   string
		headers []string
		want    int
	}{
		{"public key header", "", []string{"x-user-public-key", e.Public}, 201},
		{"public key header, any case", "", []string{"X-User-Public-Key", e.Public}, 201},
		{"public key query (.NET)", "?public_key=" + e.Public, []string{"auth", "none"}, 201},
		{"secret key", "", nil, 201},
		{"secret key and public query (PHP)", "?public_key=" + e.Public, nil, 201},
		{"secret key of another account", "", []string{"x-user-secret-key", other.Secret}, 201},
		{"no credential", "", []string{"auth", "none"}, 403},
		{"wrong public key", "", []string{"x-user-public-key", "pk_" + strings.Repeat("0", 40)}, 403},
		{"malformed public key", "", []string{"x-user-public-key", "pk_nope"}, 403},
		{"secret key as public key", "", []string{"x-user-public-key", e.Secret}, 403},
		{"wrong public query", "?public_key=pk_" + strings.Repeat("1", 40), []string{"auth", "none"}, 403},
		{"wrong secret not rescued by public", "", []string{"x-user-secret-key", "sk_" + strings.Repeat("2", 40), "x-user-public-key", e.Public}, 403},
		{"empty secret falls to public", "", []string{"x-user-secret-key", "", "x-user-public-key", e.Public}, 201},
		{"x-access-token only", "", []string{"x-access-token", "abc", "auth", "none"}, 403},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := vtRows(t, e.Env, e.Account)
			r := e.Do("POST", "/v1/payment_sources/tokens"+tc.query, card, tc.headers...)
			if r.Status != tc.want {
				t.Fatalf("status %d, want %d: %s", r.Status, tc.want, r.Raw)
			}
			if r.Resource()["type"] != "token" {
				t.Errorf("resource.type = %v", r.Resource()["type"])
			}
			if tc.want == 403 {
				vtWantForbidden(t, r)
				if got := vtRows(t, e.Env, e.Account); got != before {
					t.Errorf("rows %d → %d after a 403", before, got)
				}
				return
			}
			tok, ok := r.Resource()["data"].(string)
			if !ok || !vtUUIDRe.MatchString(tok) {
				t.Fatalf("data = %#v, want a bare lowercase UUID v4 string", r.Resource()["data"])
			}
			if r.Header.Get("Access-Control-Allow-Origin") != "*" {
				t.Errorf("Access-Control-Allow-Origin = %q", r.Header.Get("Access-Control-Allow-Origin"))
			}
		})
	}
	// A bad key with a bad body is 403, never 400 (spec §2.3).
	r := e.Do("POST", "/v1/payment_sources/tokens", `{not json`, "x-user-public-key", "pk_"+strings.Repeat("0", 40))
	vtWantForbidden(t, r)
}

func TestTokenPublicKeyElsewhere(t *testing.T) {
	e := newVTEnv(t)
	for _, tc := range []struct{ method, path string }{
		{"POST", "/v1/vault/payment_sources"},
		{"GET", "/v1/vault/payment_sources"},
		{"GET", "/v1/vault/payment_sources/" + vtUUIDZero},
		{"GET", "/v1/vault-tokens/" + vtUUIDZero},
		{"DELETE", "/v1/vault-tokens/" + vtUUIDZero},
		{"DELETE", "/v1/vault/payment_sources/" + vtUUIDZero},
	} {
		for _, h := range [][]string{{"x-user-public-key", e.Public}, {"auth", "none"}} {
			q := ""
			if h[0] == "auth" {
				q = "?public_key=" + e.Public
			}
			r := e.Do(tc.method, tc.path+q, vtCard(nil), h...)
			vtWantForbidden(t, r)
			if r.Resource()["type"] != "payment_source" {
				t.Errorf("%s %s: resource.type %v", tc.method, tc.path, r.Resource()["type"])
			}
		}
	}
	if n := vtListed(t, e.Env); n != 0 {
		t.Errorf("%d vault records after 403s", n)
	}
}

func TestTokenKeyProbe(t *testing.T) {
	e := newVTEnv(t)
	r := e.Do("POST", "/v1/customers", map[string]any{"first_name": "Probe", "payment_source": vtCard(nil)})
	if r.Status != 201 {
		t.Fatalf("customer create: %d %s", r.Status, r.Raw)
	}
	customer := r.Data()["_id"].(string)
	for _, body := range []any{
		`{"gateway_id":"","type":""}`, `{}`, "", "null", `{"card_name":"","card_number":"","card_ccv":"","expire_month":null}`,
		map[string]any{"gateway_id": e.Gateway}, map[string]any{"email": "probe@example.com", "first_name": "Ada"},
	} {
		t.Run(fmt.Sprint(body), func(t *testing.T) {
			tok := vtToken(t, e.Env, body)
			if !vtUUIDRe.MatchString(tok) {
				t.Fatalf("token %q", tok)
			}
			if sealed, status := vtSealed(t, e.Env, tok); sealed || status != "active" {
				t.Errorf("empty token: sealed=%v status=%s", sealed, status)
			}
			// Every consumer rejects it, and rejecting it consumes nothing.
			for _, vt := range []string{"", "permanent", "session", ""} {
				r := e.Do("POST", "/v1/vault/payment_sources", map[string]any{"token": tok, "vault_type": vt})
				vtWantInvalid(t, r, "token", "token has no payment details")
			}
			for _, c := range []struct {
				path string
				body map[string]any
				at   string
			}{
				{"/v1/customers", map[string]any{"token": tok}, "token"},
				{"/v1/customers", map[string]any{"payment_source": map[string]any{"token": tok}}, "payment_source.token"},
				{"/v1/customers/" + customer, map[string]any{"token": tok}, "token"},
				{"/v1/customers/" + customer, map[string]any{"payment_source": map[string]any{"token": tok}}, "payment_source.token"},
			} {
				r := e.Do("POST", c.path, c.body)
				vtWantInvalid(t, r, c.at, "token has no payment details")
			}
			if sealed, status := vtSealed(t, e.Env, tok); sealed || status != "active" {
				t.Errorf("empty token after refused uses: sealed=%v status=%s", sealed, status)
			}
		})
	}
	if n := vtListed(t, e.Env); n != 1 {
		t.Errorf("%d vault records, want only the customer's card", n)
	}
}

// vtCardCase is one bad card input of spec §6.4, with the message and path.
type vtCardCase struct {
	name string
	over map[string]any
	path string
	msg  string
}

var vtCardCases = []vtCardCase{
	{"name missing", map[string]any{"card_name": vtDel{}}, "card_name", "card_name is required"},
	{"name empty", map[string]any{"card_name": ""}, "card_name", "card_name is required"},
	{"name null", map[string]any{"card_name": nil}, "card_name", "card_name is required"},
	{"name 101 characters", map[string]any{"card_name": strings.Repeat("é", 101)}, "card_name", "card_name must be 1 to 100 characters"},
	{"name not a string", map[string]any{"card_name": 7}, "card_name", "card_name must be a string"},
	{"number missing", map[string]any{"card_number": vtDel{}}, "card_number", "card_number is required"},
	{"number empty", map[string]any{"card_number": ""}, "card_number", "card_number is required"},
	{"number as JSON number", map[string]any{"card_number": json.Number(vtVisa)}, "card_number", "card_number must be a string"},
	{"Luhn failure", map[string]any{"card_number": "4242424242424241"}, "card_number", "card_number failed the Luhn check"},
	{"11 digits", map[string]any{"card_number": "42424242428"}, "card_number", "card_number must be 12 to 19 digits"},
	{"20 digits", map[string]any{"card_number": vtLuhn("4", 20)}, "card_number", "card_number must be 12 to 19 digits"},
	{"letters", map[string]any{"card_number": "4242abcd42424242"}, "card_number", "card_number must contain digits only"},
	{"spaces", map[string]any{"card_number": "4242 4242 4242 4242"}, "card_number", "card_number must contain digits only"},
	{"dashes", map[string]any{"card_number": "4242-4242-4242-4242"}, "card_number", "card_number must contain digits only"},
	{"month missing", map[string]any{"expire_month": vtDel{}}, "expire_month", "expire_month is required"},
	{"month 0", map[string]any{"expire_month": 0}, "expire_month", "expire_month must be a month from 1 to 12"},
	{"month 13", map[string]any{"expire_month": 13}, "expire_month", "expire_month must be a month from 1 to 12"},
	{"month \"13\"", map[string]any{"expire_month": "13"}, "expire_month", "expire_month must be a month from 1 to 12"},
	{"month 3 digits", map[string]any{"expire_month": "012"}, "expire_month", "expire_month must be a month from 1 to 12"},
	{"month decimal", map[string]any{"expire_month": 9.5}, "expire_month", "expire_month must be a month from 1 to 12"},
	{"month bool", map[string]any{"expire_month": true}, "expire_month", "expire_month must be a string"},
	{"month object", map[string]any{"expire_month": map[string]any{}}, "expire_month", "expire_month must be a string"},
	{"year missing", map[string]any{"expire_year": vtDel{}}, "expire_year", "expire_year is required"},
	{"year 1999", map[string]any{"expire_year": 1999}, "expire_year", "expire_year must be a 2-digit year or a 4-digit year from 2000 to 2099"},
	{"year 2100", map[string]any{"expire_year": "2100"}, "expire_year", "expire_year must be a 2-digit year or a 4-digit year from 2000 to 2099"},
	{"year 3 digits", map[string]any{"expire_year": "202"}, "expire_year", "expire_year must be a 2-digit year or a 4-digit year from 2000 to 2099"},
	{"year negative", map[string]any{"expire_year": -27}, "expire_year", "expire_year must be a 2-digit year or a 4-digit year from 2000 to 2099"},
	{"year bool", map[string]any{"expire_year": false}, "expire_year", "expire_year must be a string"},
	{"expired last month", map[string]any{"expire_month": 10, "expire_year": 2026}, "expire_year", "card has expired"},
	{"expired 2-digit year", map[string]any{"expire_month": "12", "expire_year": "25"}, "expire_year", "card has expired"},
	{"ccv 2 digits", map[string]any{"card_ccv": "12"}, "card_ccv", "card_ccv must be 3 digits"},
	{"ccv 4 digits on visa", map[string]any{"card_ccv": "1234"}, "card_ccv", "card_ccv must be 3 digits"},
	{"ccv letters", map[string]any{"card_ccv": "abc"}, "card_ccv", "card_ccv must be 3 digits"},
	{"ccv as number", map[string]any{"card_ccv": 321}, "card_ccv", "card_ccv must be a string"},
	{"amex needs 4", map[string]any{"card_number": vtAmex, "card_ccv": "123"}, "card_ccv", "card_ccv must be 4 digits for amex"},
	{"amex 5", map[string]any{"card_number": vtAmex, "card_ccv": "12345"}, "card_ccv", "card_ccv must be 4 digits for amex"},
	{"type bank", map[string]any{"type": "bank_account"}, "type", "type must be one of: card"},
	{"type number", map[string]any{"type": 1}, "type", "type must be a string"},
	// Only the first failing field, in table order, is reported.
	{"name before number", map[string]any{"card_name": "", "card_number": "1"}, "card_name", "card_name is required"},
	{"number before month", map[string]any{"card_number": "1", "expire_month": 13}, "card_number", "card_number must be 12 to 19 digits"},
	{"month before expiry", map[string]any{"expire_month": 13, "expire_year": 2020}, "expire_month", "expire_month must be a month from 1 to 12"},
	{"expiry before ccv", map[string]any{"expire_year": 2020, "card_ccv": "1"}, "expire_year", "card has expired"},
	{"type before card", map[string]any{"type": "bank_account", "card_number": "1"}, "type", "type must be one of: card"},
	// A wrong JSON type is a failure of its field, at that field's place.
	{"type before mistyped number", map[string]any{"type": "bank_account", "card_number": 4242}, "type", "type must be one of: card"},
	{"name before mistyped month", map[string]any{"card_name": "", "expire_month": true}, "card_name", "card_name is required"},
	{"Luhn before mistyped ccv", map[string]any{"card_number": "4242424242424241", "card_ccv": 321}, "card_number", "card_number failed the Luhn check"},
	{"expiry before mistyped ccv", map[string]any{"expire_year": 2020, "card_ccv": 321}, "expire_year", "card has expired"},
}

// vtGoodCards are accepted edge cases.
var vtGoodCards = []struct {
	name string
	over map[string]any
}{
	{"2-digit year string", map[string]any{"expire_year": "28"}},
	{"2-digit year number", map[string]any{"expire_year": 28}},
	{"4-digit year string", map[string]any{"expire_year": "2099"}},
	{"month \"09\"", map[string]any{"expire_month": "09"}},
	{"month \"9\"", map[string]any{"expire_month": "9"}},
	{"this month", map[string]any{"expire_month": 11, "expire_year": 2026}},
	{"name 100 characters", map[string]any{"card_name": strings.Repeat("é", 100)}},
	{"12 digits", map[string]any{"card_number": vtLuhn("5", 12)}},
	{"19 digits", map[string]any{"card_number": vtLuhn("4", 19)}},
	{"unknown scheme", map[string]any{"card_number": vtLuhn("9", 16)}},
	{"no ccv", map[string]any{"card_ccv": vtDel{}}},
	{"null ccv", map[string]any{"card_ccv": nil}},
	{"empty ccv", map[string]any{"card_ccv": ""}},
	{"amex 4-digit ccv", map[string]any{"card_number": vtAmex, "card_ccv": "1234"}},
	{"type card", map[string]any{"type": "card"}},
	{"type empty", map[string]any{"type": ""}},
	{"unknown fields", map[string]any{"_id": "x", "store_ccv": true, "customer_id": 5}},
}

func TestTokenCardValidation(t *testing.T) {
	e := newVTEnv(t)
	for _, tc := range vtCardCases {
		t.Run(tc.name, func(t *testing.T) {
			before := vtRows(t, e.Env, e.Account)
			r := e.Do("POST", "/v1/payment_sources/tokens", vtCard(tc.over), "x-user-public-key", e.Public)
			vtWantInvalid(t, r, tc.path, tc.msg)
			if r.Resource()["type"] != "token" {
				t.Errorf("resource.type %v", r.Resource()["type"])
			}
			if got := vtRows(t, e.Env, e.Account); got != before {
				t.Errorf("vault_records grew %d → %d on a 400", before, got)
			}
		})
	}
	for _, tc := range vtGoodCards {
		t.Run("ok/"+tc.name, func(t *testing.T) {
			vtToken(t, e.Env, vtCard(tc.over))
		})
	}
}

func TestTokenGatewayAndContact(t *testing.T) {
	e := newVTEnv(t)
	ctx := context.Background()
	other, _ := vtOther(t, e.Env)
	og, err := e.Services.Gateways.Create(ctx, other.ID, gateway.Input{Type: gateway.Simulator, Name: "Theirs"})
	if err != nil {
		t.Fatal(err)
	}
	r := e.Do("POST", "/v1/gateways", map[string]any{"type": "Simulator", "name": "Old"})
	if r.Status != 201 {
		t.Fatalf("gateway create: %s", r.Raw)
	}
	archived := r.Data()["_id"].(string)
	if r := e.Do("DELETE", "/v1/gateways/"+archived, nil); r.Status != 200 {
		t.Fatalf("gateway archive: %s", r.Raw)
	}
	bad := []struct {
		name string
		over map[string]any
		path string
		msg  string
	}{
		{"gateway_id malformed", map[string]any{"gateway_id": "xyz"}, "gateway_id", "gateway_id must be a mongodb id"},
		{"gateway_id 23 hex", map[string]any{"gateway_id": strings.Repeat("a", 23)}, "gateway_id", "gateway_id must be a mongodb id"},
		{"gateway_id number", map[string]any{"gateway_id": 5}, "gateway_id", "gateway_id must be a string"},
		{"gateway_id unknown", map[string]any{"gateway_id": "000000000000000000000000"}, "gateway_id", "gateway not found"},
		{"gateway_id archived", map[string]any{"gateway_id": archived}, "gateway_id", "gateway is archived"},
		{"gateway_id another account's", map[string]any{"gateway_id": og.ID}, "gateway_id", "gateway not found"},
		{"email", map[string]any{"email": "nope"}, "email", "email must be a valid email address"},
		{"phone", map[string]any{"phone": "12"}, "phone", "phone must be a phone number, ideally in E.164 format"},
		{"first_name too long", map[string]any{"first_name": strings.Repeat("x", 256)}, "first_name", "first_name must be at most 255 characters"},
		{"address_country", map[string]any{"address_country": "A1"}, "address_country", "address_country must be a 2- or 3-letter country code"},
		{"address_line1 too long", map[string]any{"address_line1": strings.Repeat("x", 256)}, "address_line1", "address_line1 must be at most 255 characters"},
		{"gateway_id before card", map[string]any{"gateway_id": "xyz", "card_number": "1"}, "gateway_id", "gateway_id must be a mongodb id"},
		{"card before unknown gateway", map[string]any{"gateway_id": "000000000000000000000000", "card_number": "1"}, "card_number", "card_number must be 12 to 19 digits"},
		{"gateway_id before mistyped card", map[string]any{"gateway_id": "xyz", "card_number": 5}, "gateway_id", "gateway_id must be a mongodb id"},
		{"card before mistyped email", map[string]any{"card_number": "1", "email": 5}, "card_number", "card_number must be 12 to 19 digits"},
		{"email before mistyped address", map[string]any{"email": "x", "address_city": 5}, "email", "email must be a valid email address"},
		{"phone before bad address", map[string]any{"phone": "12", "address_line1": strings.Repeat("x", 256)}, "phone", "phone must be a phone number, ideally in E.164 format"},
		{"email before unknown gateway", map[string]any{"gateway_id": "000000000000000000000000", "email": "x"}, "email", "email must be a valid email address"},
	}
	for _, withCard := range []bool{true, false} {
		for _, tc := range bad {
			if !withCard && tc.over["card_number"] != nil {
				continue
			}
			t.Run(fmt.Sprintf("card=%v/%s", withCard, tc.name), func(t *testing.T) {
				body := maps.Clone(tc.over)
				if withCard {
					body = vtCard(tc.over)
				}
				before := vtRows(t, e.Env, e.Account)
				r := e.Do("POST", "/v1/payment_sources/tokens", body, "x-user-public-key", e.Public)
				vtWantInvalid(t, r, tc.path, tc.msg)
				if got := vtRows(t, e.Env, e.Account); got != before {
					t.Errorf("vault_records grew %d → %d on a 400", before, got)
				}
			})
		}
	}
	// Good references: the token remembers its gateway and contact.
	tok := vtToken(t, e.Env, vtCard(map[string]any{"gateway_id": strings.ToUpper(e.Gateway), "email": "ada@example.com",
		"first_name": "Ada", "phone": "+61400000000", "address_country": "au"}))
	rec, err := e.Store.GetVaultRecord(ctx, e.Account, tok)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Kind != vault.OneTime || rec.GatewayID != e.Gateway || rec.Contact.Email != "ada@example.com" || rec.Address.Country != "AU" ||
		!rec.ExpiresAt.Equal(e.clock.Now().Add(3*time.Hour)) {
		t.Errorf("token record: kind=%s gateway=%s email=%s country=%s expires=%v", rec.Kind, rec.GatewayID, rec.Contact.Email,
			rec.Address.Country, rec.ExpiresAt)
	}
	// An empty probe with a valid gateway works too.
	vtToken(t, e.Env, map[string]any{"gateway_id": e.Gateway})
}

// --- vault create ----------------------------------------------------------

func TestVaultCreateFromCard(t *testing.T) {
	e := newVTEnv(t)
	r := e.Do("POST", "/v1/vault/payment_sources", vtCard(map[string]any{"address_line1": "1 Bletchley Park", "address_country": "gbr"}))
	if r.Status != 201 {
		t.Fatalf("%d %s", r.Status, r.Raw)
	}
	if r.Resource()["type"] != "payment_source" {
		t.Errorf("resource.type %v", r.Resource()["type"])
	}
	d := vtNumbers(t, r.Raw)
	for _, k := range []string{"_id", "card_number", "card_ccv", "expires_at", "gateway_id", "first_name", "email"} {
		if _, ok := d[k]; ok {
			t.Errorf("vault object has %q: %s", k, r.Raw)
		}
	}
	want := map[string]any{"type": "card", "vault_type": "permanent", "card_name": "Alan Turing", "card_scheme": "visa",
		"card_number_bin": "42424242", "card_number_last4": "4242", "expire_month": json.Number("12"), "expire_year": json.Number("2027"),
		"status": "active", "company_id": e.Account, "address_line1": "1 Bletchley Park", "address_country": "GBR"}
	for k, v := range want {
		if d[k] != v {
			t.Errorf("%s = %#v, want %#v", k, d[k], v)
		}
	}
	if tok, _ := d["vault_token"].(string); !vtUUIDRe.MatchString(tok) {
		t.Errorf("vault_token %v", d["vault_token"])
	}
	if fp, _ := d["card_fingerprint"].(string); !vtHex32.MatchString(fp) {
		t.Errorf("card_fingerprint %v", d["card_fingerprint"])
	}
	created, updated := vtTime(t, d["created_at"]), vtTime(t, d["updated_at"])
	if !created.Equal(e.clock.Now()) || !updated.Equal(created) {
		t.Errorf("created_at %v updated_at %v, want %v", created, updated, e.clock.Now())
	}
	// A permanent record never keeps the CCV: it was validated, then dropped.
	rec, err := e.Store.GetVaultRecord(context.Background(), e.Account, d["vault_token"].(string))
	if err != nil {
		t.Fatal(err)
	}
	card, err := e.Services.Vault.Open(rec)
	if err != nil {
		t.Fatal(err)
	}
	if card.Number != vtVisa || card.CCV != "" {
		t.Errorf("sealed card: number ok=%v ccv=%q", card.Number == vtVisa, card.CCV)
	}
	// Amex: 15 digits, so a 6-digit BIN.
	d = vtVault(t, e.Env, vtCard(map[string]any{"card_number": vtAmex, "card_ccv": "1234", "expire_month": "09", "expire_year": 2030}))
	if d["card_scheme"] != "amex" || d["card_number_bin"] != "378282" || d["card_number_last4"] != "0005" || d["expire_month"] != float64(9) || d["expire_year"] != float64(2030) {
		t.Errorf("amex object: %v", d)
	}
	d = vtVault(t, e.Env, vtCard(map[string]any{"card_number": vtLuhn("9", 16)}))
	if d["card_scheme"] != "unknown" {
		t.Errorf("card_scheme %v, want unknown", d["card_scheme"])
	}
}

func TestVaultCreateValidation(t *testing.T) {
	e := newVTEnv(t)
	vtVault(t, e.Env, vtCard(nil)) // something to count
	cases := append([]vtCardCase{}, vtCardCases...)
	cases = append(cases,
		vtCardCase{"vault_type bad", map[string]any{"vault_type": "forever"}, "vault_type", "vault_type must be one of: permanent, session"},
		vtCardCase{"vault_type case", map[string]any{"vault_type": "Session"}, "vault_type", "vault_type must be one of: permanent, session"},
		vtCardCase{"vault_type number", map[string]any{"vault_type": 1}, "vault_type", "vault_type must be a string"},
		vtCardCase{"card before vault_type", map[string]any{"card_number": "1", "vault_type": "forever"}, "card_number", "card_number must be 12 to 19 digits"},
		vtCardCase{"vault_type before address", map[string]any{"vault_type": "forever", "address_country": "1"}, "vault_type", "vault_type must be one of: permanent, session"},
		vtCardCase{"card before mistyped vault_type", map[string]any{"card_number": "1", "vault_type": 5}, "card_number", "card_number must be 12 to 19 digits"},
		vtCardCase{"token before mistyped vault_type", map[string]any{"token": "abc", "card_number": vtDel{}, "vault_type": 5}, "token", "token must be a uuid"},
		vtCardCase{"vault_type before mistyped address", map[string]any{"vault_type": "x", "address_city": 5}, "vault_type", "vault_type must be one of: permanent, session"},
		vtCardCase{"address_country", map[string]any{"address_country": "Australia"}, "address_country", "address_country must be a 2- or 3-letter country code"},
		vtCardCase{"token malformed", map[string]any{"token": "abc", "card_number": vtDel{}}, "token", "token must be a uuid"},
		vtCardCase{"token not a string", map[string]any{"token": 5, "card_number": vtDel{}}, "token", "token must be a string"},
		vtCardCase{"token with card_number", map[string]any{"token": vtUUIDZero}, "token", "token cannot be combined with card details"},
		vtCardCase{"token unknown", map[string]any{"token": vtUUIDZero, "card_number": vtDel{}}, "token", "token not found"},
		vtCardCase{"empty body", map[string]any{"card_name": vtDel{}, "card_number": vtDel{}, "expire_month": vtDel{}, "expire_year": vtDel{}, "card_ccv": vtDel{}}, "card_name", "card_name is required"},
		vtCardCase{"empty card (checklist 17)", map[string]any{"card_name": "", "card_number": vtDel{}}, "card_name", "card_name is required"},
	)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			listed, rows := vtListed(t, e.Env), vtRows(t, e.Env, e.Account)
			r := e.Do("POST", "/v1/vault/payment_sources", vtCard(tc.over))
			vtWantInvalid(t, r, tc.path, tc.msg)
			if r.Resource()["type"] != "payment_source" {
				t.Errorf("resource.type %v", r.Resource()["type"])
			}
			if got := vtListed(t, e.Env); got != listed {
				t.Errorf("listed %d → %d on a 400", listed, got)
			}
			if got := vtRows(t, e.Env, e.Account); got != rows {
				t.Errorf("vault_records %d → %d on a 400", rows, got)
			}
		})
	}
	for _, tc := range vtGoodCards {
		t.Run("ok/"+tc.name, func(t *testing.T) { vtVault(t, e.Env, vtCard(tc.over)) })
	}
	// Malformed JSON, and JSON that is not an object.
	for _, body := range []string{`{"card_name":`, `[]`, `"x"`, `{"a":1} {"b":2}`} {
		r := e.Do("POST", "/v1/vault/payment_sources", body)
		vtWantInvalid(t, r, "", "body must be a JSON object")
	}
}

func TestVaultCreateFromToken(t *testing.T) {
	e := newVTEnv(t)
	ctx := context.Background()
	tokBody := vtCard(map[string]any{"card_number": vtAmex, "card_ccv": "7391", "address_line1": "Token St", "address_city": "Sydney", "address_country": "au"})

	// A request failing validation consumes nothing.
	tok := vtToken(t, e.Env, tokBody)
	r := e.Do("POST", "/v1/vault/payment_sources", map[string]any{"token": tok, "vault_type": "forever"})
	vtWantInvalid(t, r, "vault_type", "vault_type must be one of: permanent, session")
	r = e.Do("POST", "/v1/vault/payment_sources", map[string]any{"token": tok, "address_country": "1"})
	vtWantInvalid(t, r, "address_country", "address_country must be a 2- or 3-letter country code")
	r = e.Do("POST", "/v1/vault/payment_sources", map[string]any{"token": tok, "card_number": vtVisa})
	vtWantInvalid(t, r, "token", "token cannot be combined with card details")
	if sealed, status := vtSealed(t, e.Env, tok); !sealed || status != "active" {
		t.Fatalf("token after failed uses: sealed=%v status=%s", sealed, status)
	}

	// Upper-case token, body address wins over the token's.
	d := vtVault(t, e.Env, map[string]any{"token": strings.ToUpper(tok), "address_city": "Melbourne", "card_name": "ignored"})
	if d["card_scheme"] != "amex" || d["card_number_last4"] != "0005" || d["vault_type"] != "permanent" || d["card_name"] != "Alan Turing" ||
		d["address_line1"] != "Token St" || d["address_city"] != "Melbourne" || d["address_country"] != "AU" {
		t.Errorf("vault from token: %v", d)
	}
	if _, ok := d["_id"]; ok {
		t.Errorf("_id in vault object")
	}
	if sealed, status := vtSealed(t, e.Env, tok); sealed || status != "used" {
		t.Errorf("used token: sealed=%v status=%s; card data must go at first use", sealed, status)
	}
	rec, err := e.Store.GetVaultRecord(ctx, e.Account, d["vault_token"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if c, err := e.Services.Vault.Open(rec); err != nil || c.Number != vtAmex || c.CCV != "" {
		t.Errorf("permanent record from token: ccv %q err %v (a permanent record never holds a CCV)", c.CCV, err)
	}
	r = e.Do("POST", "/v1/vault/payment_sources", map[string]any{"token": tok})
	vtWantInvalid(t, r, "token", "token has already been used")

	// Session record from a token inherits its CCV.
	tok2 := vtToken(t, e.Env, tokBody)
	d = vtVault(t, e.Env, map[string]any{"token": tok2, "vault_type": "session"})
	rec, err = e.Store.GetVaultRecord(ctx, e.Account, d["vault_token"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if c, err := e.Services.Vault.Open(rec); err != nil || c.CCV != "7391" {
		t.Errorf("session record from token: ccv kept=%v err %v", c.CCV == "7391", err)
	}

	// Unknown, malformed, another account's.
	for _, tc := range []struct{ token, msg string }{
		{uuid.NewString(), "token not found"},
		{"abc", "token must be a uuid"},
		{strings.Repeat("a", 36), "token must be a uuid"},
		{"{" + uuid.NewString() + "}", "token must be a uuid"},
		{"urn:uuid:" + uuid.NewString(), "token must be a uuid"},
		{strings.ReplaceAll(uuid.NewString(), "-", ""), "token must be a uuid"},
	} {
		r := e.Do("POST", "/v1/vault/payment_sources", map[string]any{"token": tc.token})
		vtWantInvalid(t, r, "token", tc.msg)
	}
	_, ok := vtOther(t, e.Env)
	r = e.Do("POST", "/v1/payment_sources/tokens", tokBody, "x-user-secret-key", ok.Secret)
	if r.Status != 201 {
		t.Fatalf("other account token: %s", r.Raw)
	}
	otherTok := r.Resource()["data"].(string)
	r = e.Do("POST", "/v1/vault/payment_sources", map[string]any{"token": otherTok})
	vtWantInvalid(t, r, "token", "token not found")
	if sealed, status := vtSealed(t, e.Env, otherTok); !sealed || status != "active" {
		t.Errorf("another account's token was touched: sealed=%v status=%s", sealed, status)
	}

	// A vault token is not a one-time token.
	r = e.Do("POST", "/v1/vault/payment_sources", map[string]any{"token": d["vault_token"]})
	vtWantInvalid(t, r, "token", "token not found")
}

func TestVaultSession(t *testing.T) {
	e := newVTEnv(t)
	ctx := context.Background()
	d := vtVault(t, e.Env, vtCard(map[string]any{"vault_type": "session"}))
	tok := d["vault_token"].(string)
	if d["vault_type"] != "session" || d["status"] != "active" {
		t.Errorf("session object: %v", d)
	}
	created, expires := vtTime(t, d["created_at"]), vtTime(t, d["expires_at"])
	if !expires.Equal(created.Add(15 * time.Minute)) {
		t.Errorf("expires_at %v, want created_at %v + 15 min", expires, created)
	}
	rec, err := e.Store.GetVaultRecord(ctx, e.Account, tok)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := e.Services.Vault.Open(rec); err != nil || c.CCV != "321" {
		t.Errorf("session record keeps its CCV: ok=%v err=%v", c.CCV == "321", err)
	}

	// Expiry: still active just before, expired (card data gone) after the sweep.
	e.clock.Advance(15*time.Minute - time.Millisecond)
	if _, err := e.Services.Vault.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if sealed, status := vtSealed(t, e.Env, tok); !sealed || status != "active" {
		t.Errorf("before expiry: sealed=%v status=%s", sealed, status)
	}
	if r := e.Do("GET", "/v1/vault-tokens/"+tok, nil); r.Data()["status"] != "active" {
		t.Errorf("GET just before expiry: %s", r.Raw)
	}
	e.clock.Advance(time.Millisecond)
	// Past its expiry it reads expired before the sweeper has run.
	if r := e.Do("GET", "/v1/vault-tokens/"+tok, nil); r.Status != 200 || r.Data()["status"] != "expired" {
		t.Errorf("GET expired, not yet swept: %s", r.Raw)
	}
	if r := e.Do("GET", "/v1/vault/payment_sources?vault_type=session", nil); len(r.Resource()["data"].([]any)) != 1 ||
		r.Resource()["data"].([]any)[0].(map[string]any)["status"] != "expired" {
		t.Errorf("listed expired, not yet swept: %s", r.Raw)
	}
	if _, err := e.Services.Vault.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if sealed, status := vtSealed(t, e.Env, tok); sealed || status != "expired" {
		t.Errorf("after expiry: sealed=%v status=%s", sealed, status)
	}
	r := e.Do("GET", "/v1/vault-tokens/"+tok, nil)
	if r.Status != 200 || r.Data()["status"] != "expired" || r.Data()["expires_at"] != d["expires_at"] {
		t.Errorf("GET expired session: %s", r.Raw)
	}
	r = e.Do("GET", "/v1/vault/payment_sources?vault_type=session", nil)
	if r.Resource()["count"] != float64(1) {
		t.Errorf("expired session records are still listed: %s", r.Raw)
	}

	// Use (as a charge would): card data destroyed at once, status used.
	d2 := vtVault(t, e.Env, vtCard(map[string]any{"vault_type": "session"}))
	tok2 := d2["vault_token"].(string)
	if _, ok, err := e.Store.ConsumeVaultRecord(ctx, e.Account, tok2, e.clock.Now()); err != nil || !ok {
		t.Fatalf("consume: ok=%v err=%v", ok, err)
	}
	if sealed, status := vtSealed(t, e.Env, tok2); sealed || status != "used" {
		t.Errorf("used session: sealed=%v status=%s", sealed, status)
	}
	if _, ok, err := e.Store.ConsumeVaultRecord(ctx, e.Account, tok2, e.clock.Now()); err != nil || ok {
		t.Errorf("second consume: ok=%v err=%v", ok, err)
	}

	// Archive: card data goes at once.
	d3 := vtVault(t, e.Env, vtCard(map[string]any{"vault_type": "session"}))
	tok3 := d3["vault_token"].(string)
	r = e.Do("DELETE", "/v1/vault-tokens/"+tok3, nil)
	if r.Status != 200 || r.Data()["status"] != "archived" || r.Data()["vault_type"] != "session" {
		t.Errorf("archive session: %s", r.Raw)
	}
	if sealed, _ := vtSealed(t, e.Env, tok3); sealed {
		t.Errorf("archived session record keeps its card data")
	}
	// A permanent record has no expiry and is untouched by the sweep.
	p := vtVault(t, e.Env, vtCard(nil))
	e.clock.Advance(365 * 24 * time.Hour)
	if _, err := e.Services.Vault.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if sealed, status := vtSealed(t, e.Env, p["vault_token"].(string)); !sealed || status != "active" {
		t.Errorf("permanent record after a year: sealed=%v status=%s", sealed, status)
	}
}

// --- list, get, archive ----------------------------------------------------

func TestVaultList(t *testing.T) {
	e := newVTEnv(t)
	var perm, sess []string
	for i := range 5 {
		e.clock.Advance(time.Second)
		vt := "permanent"
		if i%2 == 1 {
			vt = "session"
		}
		d := vtVault(t, e.Env, vtCard(map[string]any{"vault_type": vt}))
		if vt == "permanent" {
			perm = append(perm, d["vault_token"].(string))
		} else {
			sess = append(sess, d["vault_token"].(string))
		}
	}
	vtToken(t, e.Env, vtCard(nil)) // one-time tokens are never listed
	e.clock.Advance(time.Second)
	if r := e.Do("DELETE", "/v1/vault/payment_sources/"+perm[0], nil); r.Status != 200 {
		t.Fatal(string(r.Raw))
	}
	_, ok := vtOther(t, e.Env)
	if r := e.Do("POST", "/v1/vault/payment_sources", vtCard(nil), "x-user-secret-key", ok.Secret); r.Status != 201 {
		t.Fatal(string(r.Raw))
	}

	tokens := func(r *apitest.Response) []string {
		var out []string
		for _, it := range r.List() {
			out = append(out, it.(map[string]any)["vault_token"].(string))
		}
		return out
	}
	cases := []struct {
		query       string
		want        []string
		count, skip int
		limit       int
	}{
		{"", []string{perm[2], sess[1], perm[1], sess[0]}, 4, 0, 100},
		{"?vault_type=permanent", []string{perm[2], perm[1]}, 2, 0, 100},
		{"?vault_type=session", []string{sess[1], sess[0]}, 2, 0, 100},
		{"?archived=true", []string{perm[0]}, 1, 0, 100},
		{"?archived=TRUE&vault_type=session", nil, 0, 0, 100},
		{"?archived=true&vault_type=permanent", []string{perm[0]}, 1, 0, 100},
		{"?archived=false", []string{perm[2], sess[1], perm[1], sess[0]}, 4, 0, 100},
		{"?skip=1&limit=2", []string{sess[1], perm[1]}, 4, 1, 2},
		{"?skip=10", nil, 4, 10, 100},
		{"?sortdirection=asc", []string{sess[0], perm[1], sess[1], perm[2]}, 4, 0, 100},
		{"?sortkey=updated_at", []string{perm[2], sess[1], perm[1], sess[0]}, 4, 0, 100},
		{"?vault_type=", []string{perm[2], sess[1], perm[1], sess[0]}, 4, 0, 100},
		{"?vault_type=session&vault_type=permanent", []string{sess[1], sess[0]}, 2, 0, 100},
		{"/?limit=1", []string{perm[2]}, 4, 0, 1},
	}
	for _, tc := range cases {
		t.Run(tc.query, func(t *testing.T) {
			path := "/v1/vault/payment_sources" + tc.query
			r := e.Do("GET", path, nil)
			if r.Status != 200 {
				t.Fatalf("%d %s", r.Status, r.Raw)
			}
			res := r.Resource()
			if res["type"] != "payment_source" || res["count"] != float64(tc.count) || res["skip"] != float64(tc.skip) || res["limit"] != float64(tc.limit) {
				t.Errorf("type=%v count=%v skip=%v limit=%v, want count %d skip %d limit %d", res["type"], res["count"], res["skip"], res["limit"], tc.count, tc.skip, tc.limit)
			}
			if got := tokens(r); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("tokens %v\nwant   %v", got, tc.want)
			}
			for _, it := range r.List() {
				if _, has := it.(map[string]any)["_id"]; has {
					t.Errorf("_id in a listed vault object")
				}
			}
		})
	}
	for _, tc := range []struct{ query, path, msg string }{
		{"?vault_type=one_time", "vault_type", "vault_type must be one of: permanent, session"},
		{"?vault_type=forever", "vault_type", "vault_type must be one of: permanent, session"},
		{"?limit=0", "limit", ""},
		{"?limit=1001", "limit", ""},
		{"?skip=-1", "skip", ""},
		{"?sortkey=card_name", "sortkey", ""},
		{"?archived=yes", "archived", ""},
		{"?sortdirection=up", "sortdirection", ""},
	} {
		r := e.Do("GET", "/v1/vault/payment_sources"+tc.query, nil)
		_, message, path, messages := r.ErrorDetails()
		if r.Status != 400 || message != "query validation failed" || path != tc.path || (tc.msg != "" && fmt.Sprint(messages) != fmt.Sprint([]string{tc.msg})) {
			t.Errorf("%s: %d %s", tc.query, r.Status, r.Raw)
		}
	}
}

func TestVaultGetArchive(t *testing.T) {
	e := newVTEnv(t)
	d := vtVault(t, e.Env, vtCard(nil))
	tok := d["vault_token"].(string)
	for _, p := range []string{"/v1/vault/payment_sources/", "/v1/vault-tokens/"} {
		for _, form := range []string{tok, tok + "/", strings.ToUpper(tok)} {
			r := e.Do("GET", p+form, nil, "Content-Type", "application/json")
			if r.Status != 200 || r.Resource()["type"] != "payment_source" {
				t.Fatalf("GET %s%s: %d %s", p, form, r.Status, r.Raw)
			}
			if fmt.Sprint(r.Data()) != fmt.Sprint(d) {
				t.Errorf("GET %s%s = %v\nwant %v", p, form, r.Data(), d)
			}
		}
	}

	// Archive through both paths; again is 200 unchanged.
	d2 := vtVault(t, e.Env, vtCard(nil))
	for _, tc := range []struct{ path, token string }{{"/v1/vault-tokens/", tok}, {"/v1/vault/payment_sources/", d2["vault_token"].(string)}} {
		e.clock.Advance(time.Minute)
		r := e.Do("DELETE", tc.path+tc.token, "null", "Content-Type", "application/json")
		if r.Status != 200 || r.Data()["status"] != "archived" {
			t.Fatalf("DELETE %s: %d %s", tc.path, r.Status, r.Raw)
		}
		first := r.Data()
		if !vtTime(t, first["updated_at"]).Equal(e.clock.Now()) {
			t.Errorf("updated_at %v, want %v", first["updated_at"], e.clock.Now())
		}
		e.clock.Advance(time.Minute)
		for _, again := range []string{"/v1/vault-tokens/", "/v1/vault/payment_sources/"} {
			r = e.Do("DELETE", again+tc.token+"/", nil)
			if r.Status != 200 || fmt.Sprint(r.Data()) != fmt.Sprint(first) {
				t.Errorf("DELETE again: %d %s\nwant %v", r.Status, r.Raw, first)
			}
		}
		r = e.Do("GET", "/v1/vault-tokens/"+tc.token, nil)
		if r.Status != 200 || fmt.Sprint(r.Data()) != fmt.Sprint(first) {
			t.Errorf("GET archived: %s", r.Raw)
		}
		// Nothing uses it: once its archive is older than the grace (a
		// request that checked it before may still link a source), the
		// sweeper destroys its card data; the record stays.
		if _, err := e.Services.Vault.Sweep(context.Background()); err != nil {
			t.Fatal(err)
		}
		if sealed, status := vtSealed(t, e.Env, tc.token); !sealed || status != "archived" {
			t.Errorf("archived record within the grace after sweep: sealed=%v status=%s", sealed, status)
		}
		e.clock.Advance(vault.ArchiveGrace)
		if _, err := e.Services.Vault.Sweep(context.Background()); err != nil {
			t.Fatal(err)
		}
		if sealed, status := vtSealed(t, e.Env, tc.token); sealed || status != "archived" {
			t.Errorf("archived unused record after sweep: sealed=%v status=%s", sealed, status)
		}
	}

	// Malformed, unknown, one-time, another account's.
	oneTime := vtToken(t, e.Env, vtCard(nil))
	_, ok := vtOther(t, e.Env)
	r := e.Do("POST", "/v1/vault/payment_sources", vtCard(nil), "x-user-secret-key", ok.Secret)
	theirs := r.Data()["vault_token"].(string)
	for _, method := range []string{"GET", "DELETE"} {
		for _, p := range []string{"/v1/vault/payment_sources/", "/v1/vault-tokens/"} {
			for _, bad := range []string{"abc", "invalid_id_string", strings.Repeat("a", 36), "229868cd93cde0e3f023d52c", strings.ReplaceAll(tok, "-", "")} {
				r := e.Do(method, p+bad, nil)
				vtWantError(t, r, 404, "NotFound", "param validation failed", "token", "token must be a uuid")
				if r.Resource()["type"] != "payment_source" {
					t.Errorf("resource.type %v", r.Resource()["type"])
				}
			}
			for _, unknown := range []string{uuid.NewString(), oneTime, theirs} {
				r := e.Do(method, p+unknown, nil)
				vtWantError(t, r, 404, "NotFound", "vault token not found", "token", "vault token not found")
			}
		}
	}
	if sealed, status := vtSealed(t, e.Env, theirs); !sealed || status != "active" {
		t.Errorf("another account's record was archived: %s", status)
	}
	if sealed, status := vtSealed(t, e.Env, oneTime); !sealed || status != "active" {
		t.Errorf("one-time token touched through the vault paths: %s", status)
	}
	// Other methods: 405 with Allow.
	r = e.Do("PUT", "/v1/vault-tokens/"+tok, "{}")
	if r.Status != 405 || r.Header.Get("Allow") != "DELETE, GET" {
		t.Errorf("PUT vault token: %d Allow=%q", r.Status, r.Header.Get("Allow"))
	}
}

func TestVaultFingerprint(t *testing.T) {
	e := newVTEnv(t)
	fp := func(body map[string]any, h ...string) string {
		t.Helper()
		r := e.Do("POST", "/v1/vault/payment_sources", body, h...)
		if r.Status != 201 {
			t.Fatalf("%s", r.Raw)
		}
		return r.Data()["card_fingerprint"].(string)
	}
	a := fp(vtCard(nil))
	same := []map[string]any{
		vtCard(map[string]any{"expire_month": 1, "expire_year": 2031, "card_name": "Someone Else", "card_ccv": vtDel{}}),
		vtCard(map[string]any{"vault_type": "session"}),
	}
	for _, b := range same {
		if got := fp(b); got != a {
			t.Errorf("same card, same account: %s ≠ %s", got, a)
		}
	}
	tok := vtToken(t, e.Env, vtCard(map[string]any{"expire_year": 2033}))
	if got := fp(map[string]any{"token": tok}); got != a {
		t.Errorf("same card via a token: %s ≠ %s", got, a)
	}
	if got := fp(vtCard(map[string]any{"card_number": "4111111111111111"})); got == a {
		t.Errorf("different cards share a fingerprint")
	}
	_, ok := vtOther(t, e.Env)
	b := fp(vtCard(nil), "x-user-secret-key", ok.Secret)
	if b == a {
		t.Errorf("same card in two accounts gives the same fingerprint %s", a)
	}
	if got := fp(vtCard(map[string]any{"expire_year": 2030}), "x-user-secret-key", ok.Secret); got != b {
		t.Errorf("second account not stable: %s ≠ %s", got, b)
	}
}

// --- expiry, sweep, concurrency ----------------------------------------------

func TestTokenExpiryAndSweep(t *testing.T) {
	e := newVTEnv(t)
	ctx := context.Background()
	tok := vtToken(t, e.Env, vtCard(nil))
	used := vtToken(t, e.Env, vtCard(nil))
	vtVault(t, e.Env, map[string]any{"token": used})
	if sealed, status := vtSealed(t, e.Env, used); sealed || status != "used" {
		t.Errorf("used token: sealed=%v status=%s", sealed, status)
	}

	e.clock.Advance(3*time.Hour - time.Millisecond)
	if _, err := e.Services.Vault.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if sealed, status := vtSealed(t, e.Env, tok); !sealed || status != "active" {
		t.Fatalf("token swept before its expiry: sealed=%v status=%s", sealed, status)
	}
	e.clock.Advance(time.Millisecond)
	// Expired by the clock, not yet swept: already refused.
	listed := vtListed(t, e.Env)
	r := e.Do("POST", "/v1/vault/payment_sources", map[string]any{"token": tok})
	vtWantInvalid(t, r, "token", "token has expired")
	e.clock.Advance(time.Minute)
	if _, err := e.Services.Vault.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if sealed, status := vtSealed(t, e.Env, tok); sealed || status != "expired" {
		t.Errorf("swept token: sealed=%v status=%s", sealed, status)
	}
	r = e.Do("POST", "/v1/vault/payment_sources", map[string]any{"token": tok})
	vtWantInvalid(t, r, "token", "token has expired")
	r = e.Do("POST", "/v1/vault/payment_sources", map[string]any{"token": used})
	vtWantInvalid(t, r, "token", "token has already been used")
	if got := vtListed(t, e.Env); got != listed {
		t.Errorf("listed %d → %d", listed, got)
	}

	// The tombstone stays 30 days, then goes.
	e.clock.Advance(29 * 24 * time.Hour)
	if _, err := e.Services.Vault.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	r = e.Do("POST", "/v1/vault/payment_sources", map[string]any{"token": tok})
	vtWantInvalid(t, r, "token", "token has expired")
	e.clock.Advance(24 * time.Hour)
	if _, err := e.Services.Vault.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{tok, used} {
		r = e.Do("POST", "/v1/vault/payment_sources", map[string]any{"token": gone})
		vtWantInvalid(t, r, "token", "token not found")
	}
	if n := vtRows(t, e.Env, e.Account); n != 1 {
		t.Errorf("%d rows left, want the one permanent record", n)
	}
}

func TestTokenConcurrentUse(t *testing.T) {
	e := newVTEnv(t)
	for _, vt := range []string{"permanent", "session"} {
		t.Run(vt, func(t *testing.T) {
			tok := vtToken(t, e.Env, vtCard(nil))
			before := vtListed(t, e.Env)
			const n = 20
			var wg sync.WaitGroup
			res := make([]*apitest.Response, n)
			start := make(chan struct{})
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					res[i] = e.Do("POST", "/v1/vault/payment_sources", map[string]any{"token": tok, "vault_type": vt})
				}()
			}
			close(start)
			wg.Wait()
			created := 0
			for _, r := range res {
				switch r.Status {
				case http.StatusCreated:
					created++
				default:
					vtWantInvalid(t, r, "token", "token has already been used")
				}
			}
			if created != 1 {
				t.Errorf("%d uses of one token succeeded, want exactly 1", created)
			}
			if got := vtListed(t, e.Env); got != before+1 {
				t.Errorf("listed %d → %d, want one more", before, got)
			}
		})
	}
}

// A customer create that checked a vault token before it was archived may
// still link a source to it while the gateway stores the card; the sweeper
// must not destroy the card under it (spec §6.2: the card stays while an
// active source uses it). The create and the charge after it succeed.
func TestVaultArchiveDuringCreateKeepsCard(t *testing.T) {
	e := apitest.New(t, apitest.Options{SimulatorLatency: 400 * time.Millisecond})
	tok := vtVault(t, e, vtCard(nil))["vault_token"].(string)
	done := make(chan *apitest.Response, 1)
	go func() {
		done <- e.Do("POST", "/v1/customers", map[string]any{"payment_source": map[string]any{"vault_token": tok, "gateway_id": e.Gateway}})
	}()
	time.Sleep(150 * time.Millisecond) // the create is in its gateway call
	if r := e.Do("DELETE", "/v1/vault-tokens/"+tok, nil); r.Status != 200 {
		t.Fatalf("archive: %d %s", r.Status, r.Raw)
	}
	if _, err := e.Services.Vault.Sweep(t.Context()); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.Status != 201 {
		t.Fatalf("create: %d %s", r.Status, r.Raw)
	}
	if _, err := e.Services.Vault.Sweep(t.Context()); err != nil {
		t.Fatal(err)
	}
	if sealed, _ := vtSealed(t, e, tok); !sealed {
		t.Fatal("the card of a record an active source uses was destroyed")
	}
	c := e.Do("POST", "/v1/charges", map[string]any{"amount": "5.00", "currency": "AUD", "customer_id": r.Data()["_id"]})
	if c.Status != 201 || c.Data()["status"] != "complete" {
		t.Fatalf("charge: %d %s", c.Status, c.Raw)
	}
}
