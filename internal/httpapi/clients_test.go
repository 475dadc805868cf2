package httpapi_test

// Replays the client request fixtures of shared/clients (see its README,
// "Using them from a Go test") against the real router. A fixture whose
// route, or the route of one of its needs, is not implemented yet is
// skipped with the missing route named, so coverage grows as routes land.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"switchyard/internal/apitest"
)

type fixture struct {
	Client, Source, Method, Path string
	RawQuery                     *string           `json:"raw_query"`
	Headers                      map[string]string `json:"headers"`
	RawBody                      *string           `json:"raw_body"`
	RawBodyBase64                *string           `json:"raw_body_base64"`
	Needs                        []string          `json:"needs"`
	Expect                       struct {
		Status        int             `json:"status"`
		ResourceType  string          `json:"resource_type"`
		ErrorCode     *string         `json:"error_code"`
		ErrorMessage  *string         `json:"error_message"`
		ErrorPath     *string         `json:"error_path"`
		ErrorMessages []string        `json:"error_messages"`
		Data          json.RawMessage `json:"data"`
	} `json:"expect"`
	Conflict string `json:"conflict"`
}

// standIns are the fixtures' literals for each role (README "Stand-in values").
var standIns = map[string]string{
	"gateway":             "c997ae1eaeff05ea0d7e79db",
	"spare_gateway":       "ff14526ceb738e0ed2e0eafa",
	"customer":            "229868cd93cde0e3f023d52c",
	"customer_source":     "3f461e8961a1ec7741f67a0c",
	"customer_source_2":   "f006abf8c26b8719fe960f43",
	"vault_customer":      "cfbb43b842fd58d6cfea5964",
	"charge_complete":     "3408ae555771c210da533a79",
	"charge_pending":      "51378a2b428c0661b461d771",
	"vault_token":         "f2ea3fa6-6869-4ea7-86e3-c9e64e8ac2db",
	"session_vault_token": "0678c0a8-68fd-43f8-908c-5f331f3660e8",
	"one_time_token":      "052d9a30-48dd-4a07-9062-f3120c46e415",
	"query_token":         "<query-token>",
}

// needOrder builds roles after the roles they depend on.
var needOrder = []string{"gateway", "spare_gateway", "vault_token", "session_vault_token", "one_time_token",
	"customer", "customer_source", "customer_source_2", "vault_customer", "query_token", "charge_complete", "charge_pending"}

// needDeps: a role implies these.
var needDeps = map[string][]string{
	"customer_source": {"customer"}, "customer_source_2": {"customer"}, "query_token": {"customer"},
}

// clientsDir finds shared/clients beside the repository root (the directory
// holding go.mod).
func clientsDir(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the package directory")
		}
		dir = parent
	}
	clients := filepath.Join(dir, "..", "shared", "clients")
	if st, err := os.Stat(clients); err != nil || !st.IsDir() {
		if os.Getenv("CI") != "" {
			t.Fatalf("client fixtures missing at %s", clients)
		}
		t.Skipf("client fixtures not found at %s", clients)
	}
	return clients
}

func TestClientFixtures(t *testing.T) {
	dir := clientsDir(t)
	files, err := filepath.Glob(filepath.Join(dir, "*", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no fixtures in %s", dir)
	}
	sort.Strings(files)
	type named struct {
		name string
		f    fixture
	}
	var spec, conflicts []named
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var f fixture
		dec := json.NewDecoder(bytes.NewReader(raw))
		if err := dec.Decode(&f); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if f.Method == "" || f.Path == "" || f.Expect.Status == 0 {
			t.Fatalf("%s: incomplete fixture", file)
		}
		n := named{filepath.Base(filepath.Dir(file)) + "/" + strings.TrimSuffix(filepath.Base(file), ".json"), f}
		if f.Conflict != "" {
			conflicts = append(conflicts, n)
		} else {
			spec = append(spec, n)
		}
	}
	for group, list := range map[string][]named{"spec": spec, "conflict": conflicts} {
		t.Run(group, func(t *testing.T) {
			for _, n := range list {
				t.Run(n.name, func(t *testing.T) {
					t.Parallel()
					replay(t, n.f)
				})
			}
		})
	}
}

// missingRoute reports whether r is the router's own "no such route" answer.
func missingRoute(r *apitest.Response) bool {
	if r.Status == http.StatusMethodNotAllowed {
		return true
	}
	_, msg, _, _ := r.ErrorDetails()
	return r.Status == http.StatusNotFound && msg == "Wrong Api path"
}

// builder makes the objects a fixture needs by calling the API as a client would.
type builder struct {
	t    *testing.T
	e    *apitest.Env
	real map[string]string // role → real id or token
}

func (b *builder) call(role, method, path string, body any, want int, headers ...string) *apitest.Response {
	b.t.Helper()
	r := b.e.Do(method, path, body, headers...)
	if missingRoute(r) {
		b.t.Skipf("need %s: %s %s is not implemented yet (HTTP %d)", role, method, path, r.Status)
	}
	if r.Status != want {
		b.t.Fatalf("need %s: %s %s: HTTP %d, want %d: %s", role, method, path, r.Status, want, r.Raw)
	}
	return r
}

func cardFields(number string) map[string]any {
	return map[string]any{"card_name": "Ada Lovelace", "card_number": number, "expire_month": 9,
		"expire_year": time.Now().Year() + 3}
}

func with(m map[string]any, kv ...any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

func (b *builder) str(role string, v any) string {
	b.t.Helper()
	s, ok := v.(string)
	if !ok || s == "" {
		b.t.Fatalf("need %s: no id in the answer (%v)", role, v)
	}
	return s
}

func (b *builder) vault(role string, session bool) string {
	body := with(cardFields("4242424242424242"))
	if session {
		body["vault_type"] = "session"
	}
	r := b.call(role, "POST", "/v1/vault/payment_sources", body, 201)
	return b.str(role, r.Data()["vault_token"])
}

func (b *builder) build(role string) {
	b.t.Helper()
	if _, done := b.real[role]; done {
		return
	}
	gw := b.e.Gateway
	switch role {
	case "gateway":
		b.real[role] = gw
	case "spare_gateway":
		r := b.call(role, "POST", "/v1/gateways", map[string]any{"type": "Stripe", "name": "Spare", "mode": "test", "key": "sk_test_FixtureSpare01"}, 201)
		b.real[role] = b.str(role, r.Data()["_id"])
	case "vault_token":
		b.real[role] = b.vault(role, false)
	case "session_vault_token":
		b.real[role] = b.vault(role, true)
	case "one_time_token":
		r := b.call(role, "POST", "/v1/payment_sources/tokens", with(cardFields("4242424242424242"), "gateway_id", gw, "card_ccv", "123"),
			201, "x-user-public-key", b.e.Public)
		b.real[role] = b.str(role, r.Resource()["data"])
	case "customer":
		r := b.call(role, "POST", "/v1/customers", map[string]any{
			"first_name": "Ada", "last_name": "Lovelace", "email": "ada.lovelace@example.com", "reference": "CRM-1042",
			"payment_source": with(cardFields("4111111111111111"), "gateway_id", gw, "card_ccv", "123"),
		}, 201)
		d := r.Data()
		b.real[role] = b.str(role, d["_id"])
		b.real["customer_source"] = b.str("customer_source", d["default_source"])
	case "customer_source":
		b.build("customer")
	case "customer_source_2":
		b.build("customer")
		r := b.call(role, "POST", "/v1/customers/"+b.real["customer"], map[string]any{
			"payment_source": with(cardFields("5555555555554444"), "gateway_id", gw),
			"default_source": b.real["customer_source"],
		}, 200)
		srcs, _ := r.Data()["payment_sources"].([]any)
		if len(srcs) != 2 {
			b.t.Fatalf("need %s: customer has %d sources: %s", role, len(srcs), r.Raw)
		}
		b.real[role] = b.str(role, srcs[1].(map[string]any)["_id"])
		if r.Data()["default_source"] != b.real["customer_source"] {
			b.t.Fatalf("need %s: default_source moved: %s", role, r.Raw)
		}
	case "vault_customer":
		token := b.vault(role, false)
		r := b.call(role, "POST", "/v1/customers", map[string]any{"email": "katherine@example.com",
			"payment_source": map[string]any{"vault_token": token}}, 201)
		b.real[role] = b.str(role, r.Data()["_id"])
	case "query_token":
		b.build("customer")
		r := b.call(role, "GET", "/v1/customers?id="+b.real["customer"], nil, 200)
		b.real[role] = b.str(role, r.Resource()["query_token"])
	case "charge_complete", "charge_pending":
		body := map[string]any{"amount": "100.00", "currency": "AUD", "reference": "ORD-" + role,
			"customer": map[string]any{"payment_source": with(cardFields("4111111111111111"), "gateway_id", gw)}}
		want := "complete"
		if role == "charge_pending" {
			body["capture"], want = false, "pending"
		}
		r := b.call(role, "POST", "/v1/charges", body, 201)
		if r.Data()["status"] != want {
			b.t.Fatalf("need %s: charge status %v: %s", role, r.Data()["status"], r.Raw)
		}
		b.real[role] = b.str(role, r.Data()["_id"])
	default:
		b.t.Fatalf("unknown need %q", role)
	}
}

// fixtureBody is the exact bytes the client sends, or nil for none.
func fixtureBody(t *testing.T, f fixture) []byte {
	switch {
	case f.RawBodyBase64 != nil:
		b, err := base64.StdEncoding.DecodeString(*f.RawBodyBase64)
		if err != nil {
			t.Fatalf("raw_body_base64: %v", err)
		}
		return b
	case f.RawBody != nil:
		return []byte(*f.RawBody)
	}
	return nil
}

func replay(t *testing.T, f fixture) {
	e := apitest.New(t)
	body := fixtureBody(t, f)
	query := ""
	if f.RawQuery != nil {
		query = *f.RawQuery
	}

	// Roles: those listed, those whose literal appears on the wire, and their dependencies.
	wanted := map[string]bool{}
	for _, n := range f.Needs {
		if _, ok := standIns[n]; !ok {
			t.Fatalf("unknown need %q", n)
		}
		wanted[n] = true
	}
	for role, lit := range standIns {
		if strings.Contains(f.Path, lit) || strings.Contains(query, lit) || bytes.Contains(body, []byte(lit)) {
			wanted[role] = true
		}
	}
	for role := range wanted {
		for _, d := range needDeps[role] {
			wanted[d] = true
		}
	}
	b := &builder{t: t, e: e, real: map[string]string{}}
	for _, role := range needOrder {
		if wanted[role] {
			b.build(role)
		}
	}
	pairs := []string{"<secret-key>", e.Secret, "<public-key>", e.Public}
	for role, real := range b.real {
		pairs = append(pairs, standIns[role], real)
	}
	swap := strings.NewReplacer(pairs...).Replace

	url := e.URL + swap(f.Path)
	if f.RawQuery != nil {
		url += "?" + swap(*f.RawQuery)
	}
	var rdr io.Reader
	if body != nil {
		rdr = bytes.NewReader([]byte(swap(string(body)))) // ids are ASCII: byte-safe
	}
	req, err := http.NewRequest(f.Method, url, rdr)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range f.Headers {
		req.Header[k] = []string{swap(v)} // the client's own spelling
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	r := &apitest.Response{Status: res.StatusCode, Header: res.Header, Raw: raw}
	if err := json.Unmarshal(raw, &r.Body); err != nil {
		t.Fatalf("%s %s: body is not JSON (%v): %s", f.Method, f.Path, err, raw)
	}
	want := f.Expect
	expectsMissing := want.ErrorMessage != nil && *want.ErrorMessage == "Wrong Api path" || want.Status == 405
	if missingRoute(r) && !expectsMissing {
		t.Skipf("%s %s is not implemented yet (HTTP %d)", f.Method, f.Path, r.Status)
	}
	what := f.Method + " " + f.Path
	apitest.CheckEnvelope(t, what, r)
	if err := apitest.CheckOpenAPI(req, r.Status, r.Header, r.Raw); err != nil {
		t.Errorf("%s: %v", what, err)
	}
	if r.Status != want.Status {
		t.Fatalf("%s: HTTP %d, want %d: %s", what, r.Status, want.Status, raw)
	}
	intStatus(t, what, r)
	if got := r.Resource()["type"]; got != want.ResourceType {
		t.Errorf("%s: resource.type %v, want %q", what, got, want.ResourceType)
	}
	if want.Status < 300 {
		if r.Body["error"] != nil {
			t.Errorf("%s: error is not null: %s", what, raw)
		}
		checkData(t, what, r, want.Data, swap)
		return
	}
	if _, ok := r.Body["error_summary"]; !ok {
		t.Errorf("%s: error_summary missing: %s", what, raw)
	}
	code, msg, path, msgs := r.ErrorDetails()
	if want.ErrorCode != nil && code != *want.ErrorCode {
		t.Errorf("%s: error.code %q, want %q: %s", what, code, *want.ErrorCode, raw)
	}
	if want.ErrorMessage != nil && msg != *want.ErrorMessage {
		t.Errorf("%s: error.message %q, want %q: %s", what, msg, *want.ErrorMessage, raw)
	}
	if want.ErrorPath != nil && path != *want.ErrorPath {
		t.Errorf("%s: error.details.path %q, want %q: %s", what, path, *want.ErrorPath, raw)
	}
	if want.ErrorMessages != nil && !reflect.DeepEqual(msgs, want.ErrorMessages) && !(len(msgs) == 0 && len(want.ErrorMessages) == 0) {
		t.Errorf("%s: error.details.messages %q, want %q", what, msgs, want.ErrorMessages)
	}
}

// checkData asserts expect.data: a list of field names that must be present
// in resource.data, or an object of field → expected value (stand-in
// literals in expected strings name the real objects).
func checkData(t *testing.T, what string, r *apitest.Response, data json.RawMessage, swap func(string) string) {
	t.Helper()
	if len(data) == 0 || string(data) == "null" {
		return
	}
	got := r.Data()
	if got == nil {
		t.Errorf("%s: resource.data is not an object: %s", what, r.Raw)
		return
	}
	var names []string
	if err := json.Unmarshal(data, &names); err == nil {
		for _, n := range names {
			if _, ok := got[n]; !ok {
				t.Errorf("%s: resource.data lacks %q: %s", what, n, r.Raw)
			}
		}
		return
	}
	var fields map[string]any
	if err := json.Unmarshal(data, &fields); err != nil {
		t.Fatalf("%s: expect.data is neither a list nor an object: %s", what, data)
	}
	for k, v := range fields {
		if s, ok := v.(string); ok {
			v = swap(s)
		}
		if !reflect.DeepEqual(got[k], v) {
			t.Errorf("%s: resource.data.%s = %v, want %v", what, k, fmt.Sprint(got[k]), fmt.Sprint(v))
		}
	}
}
