package httpapi_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"switchyard/api"
	"switchyard/internal/apitest"
	"switchyard/internal/httpapi"
)

// TestOpenAPIMatchesRoutes: every registered route is documented in
// api/openapi.yaml and every documented /v1 operation is registered
// (spec §10: the document must agree with the routes).
func TestOpenAPIMatchesRoutes(t *testing.T) {
	env := apitest.New(t)
	srv := httpapi.New(env.Services.Deps(nil))
	doc, err := apitest.OpenAPI()
	if err != nil {
		t.Fatal(err)
	}

	registered := map[string]bool{
		"GET /v1/openapi.yaml": true, // served outside Routes()
	}
	for _, r := range srv.Routes() {
		registered[r[0]+" "+strings.TrimSuffix(r[1], "{$}")] = true
	}
	documented := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+path] = true
		}
	}

	for _, k := range sortedKeys(registered) {
		if !documented[k] {
			t.Errorf("route %s is registered but not documented in api/openapi.yaml", k)
		}
	}
	for _, k := range sortedKeys(documented) {
		_, path, _ := strings.Cut(k, " ")
		if strings.HasPrefix(path, "/v1/") && !registered[k] {
			t.Errorf("api/openapi.yaml documents %s, which is not a registered route", k)
		}
	}
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestOpenAPIServed: GET /v1/openapi.yaml answers the embedded document as
// application/yaml, without credentials, and it is valid OpenAPI 3.1.
func TestOpenAPIServed(t *testing.T) {
	env := apitest.New(t)
	for _, key := range []string{"", "-"} {
		var r *apitest.Response
		if key == "" {
			r = env.Do("GET", "/v1/openapi.yaml", nil)
		} else {
			r = env.Do("GET", "/v1/openapi.yaml", nil, "x-user-secret-key", "")
		}
		if r.Status != http.StatusOK {
			t.Fatalf("status %d: %s", r.Status, r.Raw)
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/yaml" {
			t.Errorf("Content-Type %q, want application/yaml", ct)
		}
		if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("Cache-Control %q, want no-store", cc)
		}
		if !bytes.Equal(r.Raw, api.OpenAPI) {
			t.Errorf("served document differs from api/openapi.yaml")
		}
		loader := openapi3.NewLoader()
		doc, err := loader.LoadFromData(r.Raw)
		if err != nil {
			t.Fatalf("served document does not load: %v", err)
		}
		if err := doc.Validate(loader.Context); err != nil {
			t.Fatalf("served document is not valid OpenAPI: %v", err)
		}
		if !doc.IsOpenAPI31OrLater() || !strings.HasPrefix(doc.OpenAPI, "3.1.") {
			t.Errorf("openapi %q, want 3.1.x", doc.OpenAPI)
		}
	}
}

// TestOpenAPISecurity: the three credential forms of spec §2.1, and which
// operations accept which.
func TestOpenAPISecurity(t *testing.T) {
	doc, err := apitest.OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][2]string{
		"x-user-secret-key": {"header", "x-user-secret-key"},
		"x-user-public-key": {"header", "x-user-public-key"},
		"public_key":        {"query", "public_key"},
	}
	got := map[string][2]string{}
	for _, s := range doc.Components.SecuritySchemes {
		if s.Value != nil && s.Value.Type == "apiKey" {
			got[s.Value.Name] = [2]string{s.Value.In, s.Value.Name}
		}
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("security scheme for %s: got %v, want %v", k, got[k], v)
		}
	}
	public := map[string]bool{"POST /v1/payment_sources/tokens": true, "GET /v1/customers/payment_sources": true}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			k := method + " " + path
			n := len(doc.Security)
			if op.Security != nil {
				n = len(*op.Security)
			}
			switch {
			case k == "GET /v1/openapi.yaml":
				if n != 0 {
					t.Errorf("%s must need no credential", k)
				}
			case public[k]:
				if n != 3 {
					t.Errorf("%s must accept the secret key and both public-key forms, has %d", k, n)
				}
			case n != 1:
				t.Errorf("%s must accept the secret key only, has %d requirements", k, n)
			}
		}
	}
}

// check validates a synthetic response with the same checker Env.Do uses.
func check(method, target string, status int, body string) error {
	req := httptest.NewRequest(method, target, nil)
	h := http.Header{"Content-Type": {"application/json; charset=utf-8"}}
	return apitest.CheckOpenAPI(req.WithContext(context.Background()), status, h, []byte(body))
}

// Bodies from the spec's examples (spec §3–§7), plus optional-field and
// forward-compatibility variants: all must pass.
func TestOpenAPIAcceptsSpecExamples(t *testing.T) {
	const (
		gw      = `{"_id":"ff14526ceb738e0ed2e0eafa","company_id":"3a7994a396c67c8d75964bfd","type":"Stripe","name":"Stripe AU","mode":"test","default":false,"archived":false,"created_at":"2026-11-24T09:05:11.903Z","updated_at":"2026-11-24T09:05:11.903Z"}`
		vaultP  = `{"vault_token":"f2ea3fa6-6869-4ea7-86e3-c9e64e8ac2db","type":"card","vault_type":"permanent","card_name":"Alan Turing","card_scheme":"visa","card_number_bin":"42424242","card_number_last4":"4242","card_fingerprint":"0cbccc935936a3b13ed8c1a952d74518","expire_month":12,"expire_year":2027,"status":"active","company_id":"3a7994a396c67c8d75964bfd","created_at":"2026-11-24T09:10:00.031Z","updated_at":"2026-11-24T09:10:00.031Z"}`
		vaultS  = `{"vault_token":"0678c0a8-68fd-43f8-908c-5f331f3660e8","type":"card","vault_type":"session","card_name":"Grace Hopper","card_scheme":"mastercard","card_number_bin":"55555555","card_number_last4":"4444","card_fingerprint":"02846f06e7974166413bddc80bd8f1b8","expire_month":3,"expire_year":2029,"status":"used","expires_at":"2026-11-24T10:13:20.500Z","company_id":"3a7994a396c67c8d75964bfd","created_at":"2026-11-24T09:58:20.500Z","updated_at":"2026-11-24T10:01:02.914Z"}`
		cust1   = `{"_id":"229868cd93cde0e3f023d52c","company_id":"3a7994a396c67c8d75964bfd","first_name":"Ada","last_name":"Lovelace","email":"ada@example.com","phone":"+61411222333","reference":"CRM-1042","default_source":"3f461e8961a1ec7741f67a0c","status":"active","archived":false,"statistics":{"successful_transactions":0,"total_collected_amount":0},"_service":{"default_gateway_id":"c997ae1eaeff05ea0d7e79db"},"payment_sources":[{"_id":"3f461e8961a1ec7741f67a0c","type":"card","vault_token":"23ece2cb-eff6-4626-be7b-39b50d19c26a","gateway_id":"c997ae1eaeff05ea0d7e79db","gateway_name":"Sandbox","gateway_type":"Simulator","gateway_mode":"test","ref_token":"sim_cus_fdafbc36f9e5abf653d056b5","card_name":"Ada Lovelace","card_scheme":"visa","card_number_bin":"41111111","card_number_last4":"1111","card_fingerprint":"25344479f115c3c45473f0a47102139a","expire_month":9,"expire_year":2028,"address_country":"AU","status":"active","created_at":"2026-11-24T09:15:02.417Z","updated_at":"2026-11-24T09:15:02.417Z"}],"created_at":"2026-11-24T09:15:02.417Z","updated_at":"2026-11-24T09:15:02.417Z"}`
		cust4   = `{"_id":"cfbb43b842fd58d6cfea5964","company_id":"3a7994a396c67c8d75964bfd","email":"katherine@example.com","default_source":"43a7325fd7ca49a8d2751841","status":"active","archived":false,"statistics":{"successful_transactions":0,"total_collected_amount":0},"_service":{},"payment_sources":[{"_id":"43a7325fd7ca49a8d2751841","type":"card","vault_token":"9517a298-2b4f-49fc-bb44-51edab88d168","card_name":"Katherine Johnson","card_scheme":"amex","card_number_bin":"378282","card_number_last4":"0005","card_fingerprint":"689229d7fba0adf0a64da4f974d5dd89","expire_month":6,"expire_year":2030,"status":"active","created_at":"2026-11-24T09:31:55.240Z","updated_at":"2026-11-24T09:31:55.240Z"}],"created_at":"2026-11-24T09:31:55.240Z","updated_at":"2026-11-24T09:31:55.240Z"}`
		custArc = `{"_id":"dd0594ce28314f4735c752e4","company_id":"3a7994a396c67c8d75964bfd","first_name":"Grace","last_name":"Hopper","email":"grace@example.com","reference":"CRM-1043","default_source":null,"status":"archived","archived":true,"statistics":{"successful_transactions":0,"total_collected_amount":0},"_service":{},"payment_sources":[],"created_at":"2026-11-24T09:20:41.008Z","updated_at":"2026-11-24T14:40:00.006Z"}`
		public  = `{"_id":"3f461e8961a1ec7741f67a0c","type":"card","customer_id":"229868cd93cde0e3f023d52c","customer_reference":"CRM-1042","primary":true,"gateway_id":"c997ae1eaeff05ea0d7e79db","gateway_type":"Simulator","gateway_mode":"test","card_name":"Ada Lovelace","card_scheme":"visa","card_number_last4":"1111","expire_month":9,"expire_year":2028}`
	)
	env := func(status int, rtype, data string) string {
		return `{"status":` + strconv.Itoa(status) + `,"error":null,"resource":{"type":"` + rtype + `","data":` + data + `}}`
	}
	list := func(rtype, data, extra string) string {
		return `{"status":200,"error":null,"resource":{"type":"` + rtype + `","data":` + data + `,"count":1,"skip":0,"limit":100` + extra + `}}`
	}
	stdErr := func(status int, rtype, msg, code, summary, path, messages string) string {
		d := `{"path":"` + path + `","messages":` + messages + `}`
		return `{"status":` + strconv.Itoa(status) + `,"error":{"message":"` + msg + `","code":"` + code + `","details":` + d + `},"resource":{"type":"` + rtype + `"},"error_summary":{"message":"` + msg + `","code":"` + summary + `","details":` + d + `}}`
	}
	forbidden := func(rtype string) string {
		return stdErr(403, rtype, "Access forbidden", "token_required", "token_required", "", "[]")
	}
	const decline = `{"status":400,"error":{"message":"Transaction Declined","details":[{"gateway_specific_code":"card_declined","gateway_specific_description":"Do not honour","param_name":"card_number","description":"Transaction Declined"}]},"resource":{"type":"customer"},"error_summary":{"message":"Transaction Declined","code":"transaction_declined","status_code":"05","status_code_description":"Do not honour","details":{"gateway_specific_code":"card_declined","gateway_specific_description":"Do not honour","messages":["Transaction Declined"]}}}`
	const stripeDecline = `{"status":400,"error":{"message":"Insufficient Funds","details":[{"gateway_specific_code":"insufficient_funds","gateway_specific_description":"Your card has insufficient funds.","param_name":null,"description":"Insufficient Funds"}]},"resource":{"type":"customer"},"error_summary":{"message":"Insufficient Funds","code":"insufficient_funds","status_code":null,"status_code_description":null,"details":{"gateway_specific_code":"insufficient_funds","gateway_specific_description":"Your card has insufficient funds.","messages":["Insufficient Funds"]}}}`

	cases := []struct {
		name, method, path string
		status             int
		body               string
	}{
		{"gateway create", "POST", "/v1/gateways", 201, env(201, "gateway", gw)},
		{"gateway list", "GET", "/v1/gateways?type=simulator", 200, list("gateway", "["+gw+"]", "")},
		{"gateway get, trailing slash", "GET", "/v1/gateways/ff14526ceb738e0ed2e0eafa/", 200, env(200, "gateway", gw)},
		{"gateway update", "PUT", "/v1/gateways/ff14526ceb738e0ed2e0eafa", 200, env(200, "gateway", gw)},
		{"gateway archive", "DELETE", "/v1/gateways/ff14526ceb738e0ed2e0eafa", 200, env(200, "gateway", gw)},
		{"gateway unknown fields", "GET", "/v1/gateways/ff14526ceb738e0ed2e0eafa", 200,
			env(200, "gateway", strings.Replace(gw, `{`, `{"future":{"x":1},`, 1))},
		{"gateway 400", "POST", "/v1/gateways", 400, stdErr(400, "gateway", "body validation failed", "ValidationError", "validation_error", "type", `["type must be one of: Simulator, Stripe"]`)},
		{"gateway 400 archived", "PUT", "/v1/gateways/ff14526ceb738e0ed2e0eafa", 400, stdErr(400, "gateway", "gateway is archived", "UnfulfilledCondition", "unfulfilled_condition", "", `["gateway is archived"]`)},
		{"gateway 400 query", "GET", "/v1/gateways?limit=0", 400, stdErr(400, "gateway", "query validation failed", "ValidationError", "validation_error", "limit", `["limit must be a whole number from 1 to 1000"]`)},
		{"gateway 400 header", "POST", "/v1/gateways", 400, stdErr(400, "gateway", "header validation failed", "ValidationError", "validation_error", "idempotency-key", `["idempotency-key must be 1 to 255 visible ASCII characters"]`)},
		{"gateway 403", "GET", "/v1/gateways", 403, forbidden("gateway")},
		{"gateway 404", "GET", "/v1/gateways/invalid_id_string", 404, stdErr(404, "gateway", "param validation failed", "NotFound", "not_found", "id", `["id must be a mongodb id"]`)},
		{"gateway 404 unknown", "DELETE", "/v1/gateways/000000000000000000000000", 404, stdErr(404, "gateway", "gateway not found", "NotFound", "not_found", "id", `["gateway not found"]`)},
		{"gateway 409", "POST", "/v1/gateways", 409, stdErr(409, "gateway", "a request with this idempotency key is in progress", "Conflict", "conflict", "idempotency-key", `["a request with this idempotency key is in progress"]`)},
		{"gateway 413", "PUT", "/v1/gateways/ff14526ceb738e0ed2e0eafa", 413, stdErr(413, "gateway", "request body exceeds 1 MiB", "PayloadTooLarge", "payload_too_large", "", `[]`)},
		{"gateway 500", "GET", "/v1/gateways", 500, stdErr(500, "gateway", "internal error", "SystemError", "system_error", "", `["request id 93f718a7-31c3-4da8-9277-4278faad6f84"]`)},
		{"gateway 503", "GET", "/v1/gateways", 503, stdErr(503, "gateway", "service temporarily unavailable", "ServiceUnavailable", "service_unavailable", "", `[]`)},
		{"services", "GET", "/v1/services?skip=5", 200, `{"status":200,"error":null,"resource":{"type":"service","data":[],"count":0,"skip":5,"limit":100}}`},
		{"token", "POST", "/v1/payment_sources/tokens?public_key=pk_x", 201, env(201, "token", `"052d9a30-48dd-4a07-9062-f3120c46e415"`)},
		{"token 403", "POST", "/v1/payment_sources/tokens", 403, forbidden("token")},
		{"token 400", "POST", "/v1/payment_sources/tokens", 400, stdErr(400, "token", "body validation failed", "ValidationError", "validation_error", "card_number", `["card_number failed the Luhn check"]`)},
		{"vault create", "POST", "/v1/vault/payment_sources", 201, env(201, "payment_source", vaultP)},
		{"vault create with address", "POST", "/v1/vault/payment_sources", 201, env(201, "payment_source", strings.Replace(vaultP, `"status"`, `"address_line1":"1 Main St","address_country":"AU","status"`, 1))},
		{"vault list", "GET", "/v1/vault/payment_sources?vault_type=session", 200, list("payment_source", "["+vaultS+"]", "")},
		{"vault get", "GET", "/v1/vault/payment_sources/f2ea3fa6-6869-4ea7-86e3-c9e64e8ac2db", 200, env(200, "payment_source", vaultP)},
		{"vault-token get", "GET", "/v1/vault-tokens/f2ea3fa6-6869-4ea7-86e3-c9e64e8ac2db/", 200, env(200, "payment_source", vaultP)},
		{"vault-token archive", "DELETE", "/v1/vault-tokens/f2ea3fa6-6869-4ea7-86e3-c9e64e8ac2db", 200, env(200, "payment_source", strings.Replace(vaultP, `"active"`, `"archived"`, 1))},
		{"vault archive", "DELETE", "/v1/vault/payment_sources/f2ea3fa6-6869-4ea7-86e3-c9e64e8ac2db", 200, env(200, "payment_source", vaultP)},
		{"vault 404", "GET", "/v1/vault-tokens/nope", 404, stdErr(404, "payment_source", "param validation failed", "NotFound", "not_found", "token", `["token must be a uuid"]`)},
		{"vault 404 unknown", "GET", "/v1/vault-tokens/f2ea3fa6-6869-4ea7-86e3-c9e64e8ac2db", 404, stdErr(404, "payment_source", "vault token not found", "NotFound", "not_found", "token", `["vault token not found"]`)},
		{"customer flow 1", "POST", "/v1/customers", 201, env(201, "customer", cust1)},
		{"customer flow 4", "POST", "/v1/customers", 201, env(201, "customer", cust4)},
		{"customer get", "GET", "/v1/customers/229868cd93cde0e3f023d52c", 200, env(200, "customer", cust1)},
		{"customer update", "POST", "/v1/customers/229868cd93cde0e3f023d52c", 200, env(200, "customer", cust1)},
		{"customer archive", "DELETE", "/v1/customers/dd0594ce28314f4735c752e4", 200, env(200, "customer", custArc)},
		{"customer with meta", "GET", "/v1/customers/229868cd93cde0e3f023d52c", 200, env(200, "customer", strings.Replace(cust1, `"status"`, `"meta":{"crm":"x","n":3,"vip":true},"status"`, 1))},
		{"customer replace source", "POST", "/v1/customers/ff58fd99af0655dd75d99f22/payment_sources/dcdebd0a6ac50224cceb1959", 200, env(200, "customer", cust4)},
		{"customer archive source", "DELETE", "/v1/customers/dd0594ce28314f4735c752e4/payment_sources/0d001c27369f03eea67e2667", 200, env(200, "customer", strings.Replace(custArc, `"status":"archived","archived":true`, `"status":"active","archived":false`, 1))},
		{"customer list", "GET", "/v1/customers?search=katherine@example.com", 200, list("customer", "["+cust4+"]", `,"query_token":"eyJhbGciOiJIUzI1NiJ9.e30.5CYt2DpUEOQPJfWbd57NsdhDrLWqV5FyJID3ecZbdZo"`)},
		{"public sources", "GET", "/v1/customers/payment_sources?query_token=x&public_key=pk_y", 200, list("payment_source", "["+public+"]", "")},
		{"public sources 400", "GET", "/v1/customers/payment_sources", 400, stdErr(400, "payment_source", "query validation failed", "ValidationError", "validation_error", "query_token", `["query_token is invalid or expired"]`)},
		{"customer 400 (§3.2)", "POST", "/v1/customers", 400, stdErr(400, "customer", "body validation failed", "ValidationError", "validation_error", "payment_source.card_number", `["card_number failed the Luhn check"]`)},
		{"customer 400 archived", "POST", "/v1/customers/229868cd93cde0e3f023d52c", 400, stdErr(400, "customer", "customer is archived", "UnfulfilledCondition", "unfulfilled_condition", "", `["customer is archived"]`)},
		{"customer decline (§3.6)", "POST", "/v1/customers", 400, decline},
		{"customer Stripe decline, nulls", "POST", "/v1/customers/229868cd93cde0e3f023d52c", 400, stripeDecline},
		{"customer 404 (§3.5)", "GET", "/v1/customers/invalid_id_string", 404, stdErr(404, "customer", "param validation failed", "NotFound", "not_found", "id", `["id must be a mongodb id"]`)},
		{"source 404", "DELETE", "/v1/customers/229868cd93cde0e3f023d52c/payment_sources/000000000000000000000000", 404, stdErr(404, "customer", "payment source not found", "NotFound", "not_found", "payment_source_id", `["payment source not found"]`)},
		{"customer 403", "POST", "/v1/customers", 403, forbidden("customer")},
		{"undocumented path, Wrong Api path", "GET", "/v1/subscriptions", 404, stdErr(404, "path", "Wrong Api path", "NotFound", "not_found", "", "[]")},
		{"405 (§3.5)", "PUT", "/v1/customers", 405, stdErr(405, "customer", "Method not allowed", "MethodNotAllowed", "method_not_allowed", "", `["allowed: GET, POST"]`)},
	}
	for _, c := range cases {
		if err := check(c.method, c.path, c.status, c.body); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

// Real mistakes the document must catch.
func TestOpenAPIRejectsMistakes(t *testing.T) {
	const (
		gw    = `{"_id":"ff14526ceb738e0ed2e0eafa","company_id":"3a7994a396c67c8d75964bfd","type":"Stripe","name":"Stripe AU","mode":"test","default":false,"archived":false,"created_at":"2026-11-24T09:05:11.903Z","updated_at":"2026-11-24T09:05:11.903Z"}`
		vault = `{"vault_token":"f2ea3fa6-6869-4ea7-86e3-c9e64e8ac2db","type":"card","vault_type":"permanent","card_name":"Alan Turing","card_scheme":"visa","card_number_bin":"42424242","card_number_last4":"4242","card_fingerprint":"0cbccc935936a3b13ed8c1a952d74518","expire_month":12,"expire_year":2027,"status":"active","company_id":"3a7994a396c67c8d75964bfd","created_at":"2026-11-24T09:10:00.031Z","updated_at":"2026-11-24T09:10:00.031Z"}`
		src   = `{"_id":"43a7325fd7ca49a8d2751841","type":"card","vault_token":"9517a298-2b4f-49fc-bb44-51edab88d168","card_name":"Katherine Johnson","card_scheme":"amex","card_number_bin":"378282","card_number_last4":"0005","card_fingerprint":"689229d7fba0adf0a64da4f974d5dd89","expire_month":6,"expire_year":2030,"status":"active","created_at":"2026-11-24T09:31:55.240Z","updated_at":"2026-11-24T09:31:55.240Z"}`
		cust  = `{"_id":"cfbb43b842fd58d6cfea5964","company_id":"3a7994a396c67c8d75964bfd","email":"katherine@example.com","default_source":"43a7325fd7ca49a8d2751841","status":"active","archived":false,"statistics":{"successful_transactions":0,"total_collected_amount":0},"_service":{},"payment_sources":[` + src + `],"created_at":"2026-11-24T09:31:55.240Z","updated_at":"2026-11-24T09:31:55.240Z"}`
	)
	env := func(status int, rtype, data string) string {
		return `{"status":` + strconv.Itoa(status) + `,"error":null,"resource":{"type":"` + rtype + `","data":` + data + `}}`
	}
	rep := func(s, old, new string) string {
		if !strings.Contains(s, old) {
			panic("test fixture: " + old + " not in " + s)
		}
		return strings.Replace(s, old, new, 1)
	}
	const forbidden = `{"status":403,"error":{"message":"Access forbidden","code":"token_required","details":{"path":"","messages":[]}},"resource":{"type":"gateway"},"error_summary":{"message":"Access forbidden","code":"token_required","details":{"path":"","messages":[]}}}`
	const decline = `{"status":400,"error":{"message":"Transaction Declined","details":[{"gateway_specific_code":"card_declined","gateway_specific_description":"Do not honour","param_name":"card_number","description":"Transaction Declined"}]},"resource":{"type":"customer"},"error_summary":{"message":"Transaction Declined","code":"transaction_declined","status_code":"05","status_code_description":"Do not honour","details":{"gateway_specific_code":"card_declined","gateway_specific_description":"Do not honour","messages":["Transaction Declined"]}}}`
	const validation = `{"status":400,"error":{"message":"body validation failed","code":"ValidationError","details":{"path":"name","messages":["name is required"]}},"resource":{"type":"gateway"},"error_summary":{"message":"body validation failed","code":"validation_error","details":{"path":"name","messages":["name is required"]}}}`

	cases := []struct {
		name, method, path string
		status             int
		body               string
	}{
		{"status as a string", "POST", "/v1/gateways", 201, rep(env(201, "gateway", gw), `"status":201`, `"status":"201"`)},
		{"create answered 200", "POST", "/v1/gateways", 200, env(200, "gateway", gw)},
		{"body status differs from HTTP", "GET", "/v1/gateways/ff14526ceb738e0ed2e0eafa", 200, env(201, "gateway", gw)},
		{"undocumented status", "POST", "/v1/gateways", 404, rep(forbidden, `403`, `404`)},
		{"timestamp without milliseconds", "GET", "/v1/gateways/ff14526ceb738e0ed2e0eafa", 200, env(200, "gateway", rep(gw, `09:05:11.903Z","updated`, `09:05:11Z","updated`))},
		{"timestamp with offset", "GET", "/v1/gateways/ff14526ceb738e0ed2e0eafa", 200, env(200, "gateway", rep(gw, `09:05:11.903Z","updated`, `09:05:11.903+00:00","updated`))},
		{"missing _id", "GET", "/v1/gateways/ff14526ceb738e0ed2e0eafa", 200, env(200, "gateway", rep(gw, `"_id":"ff14526ceb738e0ed2e0eafa",`, ``))},
		{"boolean as string", "GET", "/v1/gateways/ff14526ceb738e0ed2e0eafa", 200, env(200, "gateway", rep(gw, `"default":false`, `"default":"false"`))},
		{"null number", "GET", "/v1/vault-tokens/f2ea3fa6-6869-4ea7-86e3-c9e64e8ac2db", 200, env(200, "payment_source", rep(vault, `"expire_year":2027`, `"expire_year":null`))},
		{"gateway key leaked", "GET", "/v1/gateways/ff14526ceb738e0ed2e0eafa", 200, env(200, "gateway", rep(gw, `"mode"`, `"key":"sk_test_x","mode"`))},
		{"wrong resource.type", "GET", "/v1/gateways", 200, `{"status":200,"error":null,"resource":{"type":"gateways","data":[],"count":0,"skip":0,"limit":100}}`},
		{"list without count", "GET", "/v1/gateways", 200, `{"status":200,"error":null,"resource":{"type":"gateway","data":[],"skip":0,"limit":100}}`},
		{"count as string", "GET", "/v1/gateways", 200, `{"status":200,"error":null,"resource":{"type":"gateway","data":[],"count":"0","skip":0,"limit":100}}`},
		{"error not null on success", "GET", "/v1/gateways/ff14526ceb738e0ed2e0eafa", 200, rep(env(200, "gateway", gw), `"error":null`, `"error":{}`)},
		{"services not empty", "GET", "/v1/services", 200, `{"status":200,"error":null,"resource":{"type":"service","data":[{}],"count":1,"skip":0,"limit":100}}`},
		{"token data as object", "POST", "/v1/payment_sources/tokens", 201, env(201, "token", `{"token":"052d9a30-48dd-4a07-9062-f3120c46e415"}`)},
		{"token not a uuid", "POST", "/v1/payment_sources/tokens", 201, env(201, "token", `"052D9A30"`)},
		{"vault with _id", "POST", "/v1/vault/payment_sources", 201, env(201, "payment_source", rep(vault, `{`, `{"_id":"ff14526ceb738e0ed2e0eafa",`))},
		{"vault expire_month as string", "POST", "/v1/vault/payment_sources", 201, env(201, "payment_source", rep(vault, `"expire_month":12`, `"expire_month":"12"`))},
		{"vault 2-digit year", "POST", "/v1/vault/payment_sources", 201, env(201, "payment_source", rep(vault, `"expire_year":2027`, `"expire_year":27`))},
		{"vault without card_scheme", "POST", "/v1/vault/payment_sources", 201, env(201, "payment_source", rep(vault, `"card_scheme":"visa",`, ``))},
		{"vault echoes card_number", "POST", "/v1/vault/payment_sources", 201, env(201, "payment_source", rep(vault, `"card_name"`, `"card_number":"4242424242424242","card_name"`))},
		{"session vault without expires_at", "POST", "/v1/vault/payment_sources", 201, env(201, "payment_source", rep(vault, `"permanent"`, `"session"`))},
		{"vault wrong resource.type", "POST", "/v1/vault/payment_sources", 201, env(201, "vault", vault)},
		{"customer without default_source", "POST", "/v1/customers", 201, env(201, "customer", rep(cust, `"default_source":"43a7325fd7ca49a8d2751841",`, ``))},
		{"customer default_source null with a source", "POST", "/v1/customers", 201, env(201, "customer", rep(cust, `"default_source":"43a7325fd7ca49a8d2751841"`, `"default_source":null`))},
		{"customer archived flag disagrees", "GET", "/v1/customers/cfbb43b842fd58d6cfea5964", 200, env(200, "customer", rep(cust, `"archived":false`, `"archived":true`))},
		{"customer statistics as string", "GET", "/v1/customers/cfbb43b842fd58d6cfea5964", 200, env(200, "customer", rep(cust, `"successful_transactions":0`, `"successful_transactions":"0"`))},
		{"customer source expire_month string", "GET", "/v1/customers/cfbb43b842fd58d6cfea5964", 200, env(200, "customer", rep(cust, `"expire_month":6`, `"expire_month":"06"`))},
		{"customer source with CVV", "GET", "/v1/customers/cfbb43b842fd58d6cfea5964", 200, env(200, "customer", rep(cust, `"card_name"`, `"card_ccv":"123","card_name"`))},
		{"bound source without ref_token", "GET", "/v1/customers/cfbb43b842fd58d6cfea5964", 200, env(200, "customer", rep(cust, `"card_name"`, `"gateway_id":"c997ae1eaeff05ea0d7e79db","gateway_name":"Sandbox","gateway_type":"Simulator","gateway_mode":"test","card_name"`))},
		{"customer list without query_token", "GET", "/v1/customers", 200, `{"status":200,"error":null,"resource":{"type":"customer","data":[],"count":0,"skip":0,"limit":100}}`},
		{"public source with vault_token", "GET", "/v1/customers/payment_sources?query_token=x", 200, `{"status":200,"error":null,"resource":{"type":"payment_source","data":[{"_id":"3f461e8961a1ec7741f67a0c","type":"card","customer_id":"229868cd93cde0e3f023d52c","primary":true,"card_name":"Ada","card_scheme":"visa","card_number_last4":"1111","expire_month":9,"expire_year":2028,"vault_token":"23ece2cb-eff6-4626-be7b-39b50d19c26a"}],"count":1,"skip":0,"limit":100}}`},
		{"error without error_summary", "POST", "/v1/gateways", 400, validation[:strings.Index(validation, `,"error_summary"`)] + `}`},
		{"error with data", "POST", "/v1/gateways", 400, rep(validation, `"resource":{"type":"gateway"}`, `"resource":{"type":"gateway","data":{}}`)},
		{"error code in snake_case", "POST", "/v1/gateways", 400, rep(validation, `"ValidationError"`, `"validation_error"`)},
		{"two messages", "POST", "/v1/gateways", 400, rep(validation, `["name is required"]}},"resource"`, `["name is required","x"]}},"resource"`)},
		{"403 names the cause", "GET", "/v1/gateways", 403, rep(forbidden, `"messages":[]}},"resource"`, `"messages":["unknown key"]}},"resource"`)},
		{"403 wrong resource.type", "GET", "/v1/vault/payment_sources", 403, forbidden},
		{"gateway error with error.code", "POST", "/v1/customers", 400, rep(decline, `{"message":"Transaction Declined","details":[`, `{"message":"Transaction Declined","code":"transaction_declined","details":[`)},
		{"gateway error without status_code key", "POST", "/v1/customers", 400, rep(decline, `"status_code":"05",`, ``)},
		{"gateway error details as object", "POST", "/v1/customers", 400, rep(rep(decline, `"details":[{`, `"details":{`), `}]},"resource"`, `}},"resource"`)},
		{"gateway error on a vault call", "POST", "/v1/vault/payment_sources", 400, rep(decline, `"type":"customer"`, `"type":"payment_source"`)},
		{"undocumented route", "GET", "/v1/subscriptions", 200, `{"status":200,"error":null,"resource":{"type":"subscription","data":[],"count":0,"skip":0,"limit":100}}`},
		{"undocumented method", "PATCH", "/v1/gateways/ff14526ceb738e0ed2e0eafa", 200, env(200, "gateway", gw)},
		{"documented route not registered", "GET", "/v1/customers/cfbb43b842fd58d6cfea5964", 404, `{"status":404,"error":{"message":"Wrong Api path","code":"NotFound","details":{"path":"","messages":[]}},"resource":{"type":"path"},"error_summary":{"message":"Wrong Api path","code":"not_found","details":{"path":"","messages":[]}}}`},
	}
	for _, c := range cases {
		err := check(c.method, c.path, c.status, c.body)
		t.Logf("%s: %v", c.name, err)
		if err == nil {
			t.Errorf("%s: accepted by api/openapi.yaml", c.name)
		}
	}
}

// TestOpenAPILive drives the registered gateway, token and vault routes
// through Env.Do, which checks every answer against the document.
func TestOpenAPILive(t *testing.T) {
	env := apitest.New(t)
	r := env.Do("POST", "/v1/gateways", map[string]any{"type": "stripe", "name": "Stripe AU", "key": "sk_test_51Hx9kQ2eZvKYlo2C"})
	if r.Status != 201 {
		t.Fatalf("create gateway: %d %s", r.Status, r.Raw)
	}
	id, _ := r.Data()["_id"].(string)
	env.Do("GET", "/v1/gateways", nil)
	env.Do("GET", "/v1/gateways?type=simulator&sortdirection=asc", nil)
	env.Do("GET", "/v1/gateways?limit=0", nil)
	env.Do("GET", "/v1/gateways/"+id+"/", nil)
	env.Do("PUT", "/v1/gateways/"+id, map[string]any{"_id": id, "name": "Stripe AU main", "default": true})
	env.Do("PUT", "/v1/gateways/"+id, map[string]any{"type": "Simulator"})
	env.Do("DELETE", "/v1/gateways/"+id, "null")
	env.Do("PUT", "/v1/gateways/"+id, map[string]any{"name": "again"})
	env.Do("GET", "/v1/gateways/invalid_id_string", nil)
	env.Do("GET", "/v1/gateways/000000000000000000000000", nil)
	env.Do("POST", "/v1/gateways", "[1]")
	env.Do("POST", "/v1/gateways", strings.Repeat(" ", 1<<20+1))
	env.Do("GET", "/v1/gateways", nil, "x-user-secret-key", "sk_0000000000000000000000000000000000000000")
	env.Do("GET", "/v1/gateways", nil, "x-user-public-key", env.Public)
	env.Do("PATCH", "/v1/gateways", nil)
	env.Do("GET", "/v1/nowhere", nil)
	env.Do("GET", "/v1/services?skip=3&limit=7", nil)
	env.Do("GET", "/v1/services?skip=-1", nil)

	r = env.Do("POST", "/v1/payment_sources/tokens?public_key="+env.Public, map[string]any{
		"card_name": "Ada Lovelace", "card_number": "4111111111111111", "expire_month": "09", "expire_year": 2030, "card_ccv": "123"})
	if r.Status != 201 {
		t.Fatalf("create token: %d %s", r.Status, r.Raw)
	}
	tok, _ := r.Resource()["data"].(string)
	env.Do("POST", "/v1/payment_sources/tokens", map[string]any{"gateway_id": "", "type": ""}, "x-user-public-key", env.Public)
	env.Do("POST", "/v1/payment_sources/tokens", map[string]any{"card_number": "4111111111111112"}, "x-user-public-key", env.Public)
	env.Do("POST", "/v1/payment_sources/tokens", nil, "x-user-public-key", "pk_0000000000000000000000000000000000000000")

	r = env.Do("POST", "/v1/vault/payment_sources", map[string]any{"token": tok})
	if r.Status != 201 {
		t.Fatalf("vault from token: %d %s", r.Status, r.Raw)
	}
	r = env.Do("POST", "/v1/vault/payment_sources", map[string]any{
		"card_name": "Grace Hopper", "card_number": "5555555555554444", "expire_month": 3, "expire_year": "29", "vault_type": "session", "address_country": "AU"})
	if r.Status != 201 {
		t.Fatalf("session vault: %d %s", r.Status, r.Raw)
	}
	vt, _ := r.Data()["vault_token"].(string)
	env.Do("POST", "/v1/vault/payment_sources", map[string]any{"card_name": "X"})
	env.Do("GET", "/v1/vault/payment_sources", nil)
	env.Do("GET", "/v1/vault/payment_sources?vault_type=session", nil)
	env.Do("GET", "/v1/vault/payment_sources?vault_type=nope", nil)
	env.Do("GET", "/v1/vault/payment_sources/"+vt, nil)
	env.Do("GET", "/v1/vault-tokens/"+strings.ToUpper(vt)+"/", nil)
	env.Do("DELETE", "/v1/vault-tokens/"+vt, "null")
	env.Do("DELETE", "/v1/vault/payment_sources/"+vt, nil)
	env.Do("GET", "/v1/vault-tokens/not-a-token", nil)
	env.Do("GET", "/v1/vault-tokens/00000000-0000-4000-8000-000000000000", nil)
	env.Do("PUT", "/v1/vault-tokens/"+vt, nil)
}
