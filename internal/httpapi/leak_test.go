package httpapi_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"switchyard/internal/apitest"
	"switchyard/internal/httpapi"
	"switchyard/internal/idempotency"
	"switchyard/internal/paydock"
	"switchyard/internal/vault"
)

// The "nothing leaks" test (spec §1.9, checklist 25): a planted card number
// and CVV go through every vault path, good and bad, and then appear in no
// response, no log line and no file of the store.

const (
	leakPAN  = "378282246310005" // amex: a 4-digit CVV
	leakCCV  = "7391"
	leakName = "Quillon Vantablack-Leakcheck"
)

// leakCCVRe finds the CVV as a value on its own: quoted, or between
// separators, but not as a piece of a hex id, a UUID or a decimal.
var leakCCVRe = regexp.MustCompile(`(^|[^0-9A-Za-z.\-])` + leakCCV + `($|[^0-9A-Za-z.\-])`)

func leakCard(over map[string]any) map[string]any {
	return vtWith(map[string]any{"card_name": leakName, "card_number": leakPAN, "expire_month": "12", "expire_year": 2030,
		"card_ccv": leakCCV, "address_line1": "1 Leak Lane", "address_country": "AU"}, over)
}

// leakFind reports where the PAN or the CVV occurs in b.
func leakFind(b []byte) string {
	switch {
	case bytes.Contains(b, []byte(leakPAN)):
		return "card number"
	case leakCCVRe.Match(b):
		return "CVV"
	}
	return ""
}

// leakScanDir checks every file under dir for the PAN and the CVV, and
// reports whether the card name (stored in clear by design) was seen, which
// proves the scan read the data.
func leakScanDir(t *testing.T, dir, when string) (sawName bool) {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		n++
		if what := leakFind(b); what != "" {
			t.Errorf("%s: %s holds the %s in clear text", when, filepath.Base(path), what)
		}
		if bytes.Contains(b, []byte(`"`+leakCCV+`"`)) {
			t.Errorf("%s: %s holds the quoted CVV", when, filepath.Base(path))
		}
		sawName = sawName || bytes.Contains(b, []byte(leakName))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatalf("%s: no files in %s", when, dir)
	}
	return sawName
}

func TestNothingLeaks(t *testing.T) {
	e := newVTEnv(t)
	var seen []*apitest.Response
	do := func(method, path string, body any, h ...string) *apitest.Response {
		t.Helper()
		r := e.Do(method, path, body, h...)
		seen = append(seen, r)
		return r
	}
	want := func(r *apitest.Response, status int) *apitest.Response {
		t.Helper()
		if r.Status != status {
			t.Fatalf("status %d, want %d: %s", r.Status, status, r.Raw)
		}
		return r
	}
	pub := []string{"x-user-public-key", e.Public}

	// One-time tokens: public key header, query, secret key.
	tokens := []string{}
	for _, h := range [][]string{pub, {"auth", "none"}, nil, pub, pub} {
		q := ""
		if len(h) > 0 && h[0] == "auth" {
			q = "?public_key=" + e.Public
		}
		r := want(do("POST", "/v1/payment_sources/tokens"+q, leakCard(map[string]any{"email": "leak@example.com", "gateway_id": e.Gateway}), h...), 201)
		tokens = append(tokens, r.Resource()["data"].(string))
	}
	// Vault: from the card, from a token, session from both.
	v1 := want(do("POST", "/v1/vault/payment_sources", leakCard(nil)), 201).Data()["vault_token"].(string)
	v2 := want(do("POST", "/v1/vault/payment_sources", map[string]any{"token": tokens[0]}), 201).Data()["vault_token"].(string)
	s1 := want(do("POST", "/v1/vault/payment_sources", leakCard(map[string]any{"vault_type": "session"})), 201).Data()["vault_token"].(string)
	s2 := want(do("POST", "/v1/vault/payment_sources", map[string]any{"token": tokens[1], "vault_type": "session"}), 201).Data()["vault_token"].(string)
	// With an idempotency key, and its replay.
	idem := leakCard(map[string]any{"card_ccv": vtDel{}})
	want(do("POST", "/v1/vault/payment_sources", idem, "Idempotency-Key", "leak-1"), 201)
	want(do("POST", "/v1/vault/payment_sources", idem, "Idempotency-Key", "leak-1"), 201)
	// Customers: card at the gateway, one-time token, vault token.
	c1 := want(do("POST", "/v1/customers", map[string]any{"first_name": "Leak", "payment_source": vtWith(leakCard(nil), map[string]any{"gateway_id": e.Gateway})}), 201).Data()["_id"].(string)
	want(do("POST", "/v1/customers", map[string]any{"token": tokens[2]}), 201)
	want(do("POST", "/v1/customers", map[string]any{"payment_source": map[string]any{"vault_token": v1, "card_ccv": leakCCV}}), 201)
	want(do("POST", "/v1/customers/"+c1, map[string]any{"payment_source": map[string]any{"token": tokens[3]}}), 200)
	// Reads.
	for _, p := range []string{"/v1/vault/payment_sources", "/v1/vault/payment_sources?vault_type=session", "/v1/vault/payment_sources?archived=true",
		"/v1/vault/payment_sources/" + v1, "/v1/vault-tokens/" + v2, "/v1/vault-tokens/" + s1 + "/", "/v1/customers", "/v1/customers/" + c1} {
		want(do("GET", p, nil), 200)
	}
	// Archive.
	for _, p := range []string{"/v1/vault-tokens/" + v2, "/v1/vault/payment_sources/" + s2, "/v1/vault-tokens/" + v2} {
		want(do("DELETE", p, nil), 200)
	}

	// Failing requests that carry the card.
	for _, tc := range []struct {
		method, path string
		body         any
		status       int
		h            []string
	}{
		{"POST", "/v1/payment_sources/tokens", leakCard(map[string]any{"expire_year": 2020}), 400, pub},
		{"POST", "/v1/vault/payment_sources", leakCard(map[string]any{"expire_month": 1, "expire_year": "26"}), 400, nil},
		{"POST", "/v1/payment_sources/tokens", leakCard(map[string]any{"card_ccv": "739"}), 400, pub},
		{"POST", "/v1/vault/payment_sources", leakCard(map[string]any{"card_ccv": "73910"}), 400, nil},
		{"POST", "/v1/vault/payment_sources", leakCard(map[string]any{"card_ccv": 7391}), 400, nil},
		{"POST", "/v1/vault/payment_sources", leakCard(map[string]any{"card_number": 378282246310005}), 400, nil},
		{"POST", "/v1/vault/payment_sources", leakCard(map[string]any{"card_number": leakPAN + "0"}), 400, nil},
		{"POST", "/v1/vault/payment_sources", leakCard(map[string]any{"vault_type": "forever"}), 400, nil},
		{"POST", "/v1/vault/payment_sources", leakCard(map[string]any{"token": tokens[4]}), 400, nil},
		{"POST", "/v1/vault/payment_sources", map[string]any{"token": tokens[0]}, 400, nil},
		{"POST", "/v1/customers", map[string]any{"payment_source": leakCard(map[string]any{"expire_year": 2001})}, 400, nil},
		{"POST", "/v1/customers", map[string]any{"payment_source": vtWith(leakCard(nil), map[string]any{"gateway_id": "000000000000000000000000"})}, 400, nil},
		{"POST", "/v1/vault/payment_sources", `{"card_number":"` + leakPAN + `","card_ccv":"` + leakCCV + `"`, 400, nil},
		{"POST", "/v1/payment_sources/tokens", `{"card_number":"` + leakPAN + `","card_ccv":"` + leakCCV + `"}}`, 400, pub},
		{"POST", "/v1/vault/payment_sources", `["` + leakPAN + `","` + leakCCV + `"]`, 400, nil},
		{"POST", "/v1/vault/payment_sources", `{"card_number":"` + leakPAN + `","card_ccv":"` + leakCCV + `","pad":"` + strings.Repeat("x", 1<<20) + `"}`, 413, nil},
		{"POST", "/v1/cards", leakCard(nil), 404, nil},
		{"POST", "/v1/" + leakPAN, leakCard(nil), 404, nil},
		{"GET", "/v1/vault-tokens/" + leakPAN, nil, 404, nil},
		{"GET", "/v1/vault/payment_sources?card_number=" + leakPAN + "&card_ccv=" + leakCCV + "&limit=" + leakPAN + leakCCV, nil, 400, nil},
		{"PUT", "/v1/vault/payment_sources", leakCard(nil), 405, nil},
		{"POST", "/v1/vault/payment_sources", leakCard(nil), 403, []string{"x-user-secret-key", "sk_" + strings.Repeat("0", 40)}},
		{"POST", "/v1/vault/payment_sources", leakCard(nil), 403, pub},
		{"POST", "/v1/payment_sources/tokens", leakCard(nil), 403, []string{"x-user-public-key", "pk_" + leakPAN}},
		{"POST", "/v1/payment_sources/tokens?public_key=" + leakPAN, leakCard(nil), 403, []string{"auth", "none"}},
	} {
		want(do(tc.method, tc.path, tc.body, tc.h...), tc.status)
	}

	// Expiry and the sweeper.
	e.clock.Advance(4 * time.Hour)
	if _, err := e.Services.Vault.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	want(do("POST", "/v1/vault/payment_sources", map[string]any{"token": tokens[4]}), 400)
	want(do("GET", "/v1/vault/payment_sources?vault_type=session", nil), 200)

	// 1. Responses: bodies and every header.
	for _, r := range seen {
		if what := leakFind(r.Raw); what != "" {
			t.Errorf("response %d holds the %s: %.300s", r.Status, what, r.Raw)
		}
		for k, vs := range r.Header {
			for _, v := range vs {
				if what := leakFind([]byte(v)); what != "" {
					t.Errorf("response header %s holds the %s", k, what)
				}
			}
		}
	}
	// 2. Logs.
	logs := e.Logs.String()
	if !strings.Contains(logs, `"route":"/v1/vault/payment_sources"`) {
		t.Fatalf("the logs do not show the requests (is debug logging on?):\n%.500s", logs)
	}
	if what := leakFind([]byte(logs)); what != "" {
		t.Errorf("the logs hold the %s", what)
	}
	for _, s := range []string{leakName, e.Secret, e.Public} {
		if strings.Contains(logs, s) {
			t.Errorf("the logs hold %q", s)
		}
	}
	// 3. Every file of the store, open (WAL) and after closing.
	if e.DBURL != "" {
		t.Log("PostgreSQL: the store's files belong to the test cluster; file scan skipped")
		return
	}
	if !leakScanDir(t, e.DataDir, "open") {
		t.Errorf("the card name was not found in the store files: the scan did not see the data")
	}
	e.Server.Close()
	if err := e.Store.Engine().Close(); err != nil {
		t.Fatal(err)
	}
	if !leakScanDir(t, e.DataDir, "closed") {
		t.Errorf("the card name was not found in the closed store: the scan did not see the data")
	}
}

// panicStore makes every vault write panic with card data in the panic
// value, as a careless bug might.
type panicStore struct{ vault.Store }

func (panicStore) CreateVaultRecord(context.Context, *vault.Record) error {
	panic(errors.New("cannot store card " + leakPAN + " cvv " + leakCCV + " for " + leakName))
}

func TestPanicLogsNoCardData(t *testing.T) {
	e := newVTEnv(t)
	var logs apitest.SyncBuffer
	deps := e.Services.Deps(slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	deps.Vault = vault.NewService(panicStore{e.Store}, e.Services.Gateways, e.Services.Keys, e.clock.Now)
	srv := httptest.NewServer(httpapi.New(deps))
	defer srv.Close()

	for _, path := range []string{"/v1/vault/payment_sources", "/v1/payment_sources/tokens"} {
		body := `{"card_name":"` + leakName + `","card_number":"` + leakPAN + `","expire_month":12,"expire_year":2030,"card_ccv":"` + leakCCV + `"}`
		req, _ := http.NewRequest("POST", srv.URL+path, strings.NewReader(body))
		req.Header.Set("x-user-secret-key", e.Secret)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var raw bytes.Buffer
		_, _ = raw.ReadFrom(res.Body)
		res.Body.Close()
		if res.StatusCode != 500 {
			t.Fatalf("%s: status %d, want 500 from the recovered panic: %s", path, res.StatusCode, raw.Bytes())
		}
		if what := leakFind(raw.Bytes()); what != "" || strings.Contains(raw.String(), leakName) {
			t.Errorf("%s: the 500 body holds card data: %s", path, raw.Bytes())
		}
		if !strings.Contains(raw.String(), "request id "+res.Header.Get("X-Request-Id")) {
			t.Errorf("%s: the 500 body does not name the request id: %s", path, raw.Bytes())
		}
	}
	l := logs.String()
	if !strings.Contains(l, `"msg":"panic"`) || !strings.Contains(l, "value of type *errors.errorString") {
		t.Fatalf("no panic line naming the value's type:\n%s", l)
	}
	if what := leakFind([]byte(l)); what != "" || strings.Contains(l, leakName) {
		t.Errorf("the panic log holds card data:\n%s", l)
	}
}

// TestDestroyedCardDataLeavesNoResidue: once a one-time token is used its
// card data is destroyed (spec §5), so after closing the store no file may
// still hold the sealed value (wrapped data key and ciphertext, CVV
// included): with the master key it could be opened again.
func TestDestroyedCardDataLeavesNoResidue(t *testing.T) {
	e := newVTEnv(t)
	if e.DBURL != "" {
		t.Skip("SQLite files only")
	}
	var toks []string
	for range 12 { // several rows share the page, as in real use
		toks = append(toks, vtToken(t, e.Env, leakCard(nil)))
	}
	var blob []byte
	if err := e.Store.Engine().Reader().QueryRowContext(context.Background(),
		`SELECT sealed FROM vault_records WHERE token = $1`, toks[6]).Scan(&blob); err != nil {
		t.Fatal(err)
	}
	vtVault(t, e.Env, map[string]any{"token": toks[6]})
	if sealed, _ := vtSealed(t, e.Env, toks[6]); sealed {
		t.Fatal("the used token keeps its card data")
	}
	e.Server.Close()
	if err := e.Store.Engine().Close(); err != nil {
		t.Fatal(err)
	}
	err := filepath.WalkDir(e.DataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(b, blob) {
			t.Errorf("%s still holds the destroyed sealed card data", filepath.Base(path))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestIdempotencyFingerprintHidesCard: the stored idempotency record (the
// request fingerprint beside the stored response, which shows the BIN, last
// 4, expiry and name) must not let a reader of the database recover the
// card number and CVV by trying the few unknown digits.
func TestIdempotencyFingerprintHidesCard(t *testing.T) {
	e := newVTEnv(t)
	body := map[string]any{"card_name": "Alan Turing", "card_number": "4532015112830366", "expire_month": "12", "expire_year": "2030", "card_ccv": "847"}
	d := e.Do("POST", "/v1/vault/payment_sources", body, "Idempotency-Key", "leak-fp").Data()
	var fp string
	if err := e.Store.Engine().Reader().QueryRowContext(context.Background(),
		`SELECT fingerprint FROM idempotency_keys WHERE account_id = $1 AND key = 'leak-fp'`, e.Account).Scan(&fp); err != nil {
		t.Fatal(err)
	}
	// Even the right guess (the exact body, as an attacker who tried the
	// few unknown digits would build it) must not be confirmable without
	// the account's secret, which is sealed by the master key.
	guess := map[string]any{"card_name": d["card_name"], "card_number": body["card_number"], "expire_month": body["expire_month"],
		"expire_year": body["expire_year"], "card_ccv": body["card_ccv"]}
	for _, key := range [][]byte{nil, []byte(e.Account), []byte(e.Secret)} {
		if idempotency.Fingerprint(key, "POST", "/v1/vault/payment_sources", "", paydock.Canonical(guess)) == fp {
			t.Fatalf("the stored idempotency fingerprint confirms a guessed card without the account's secret")
		}
	}
	sum := sha256.Sum256(paydock.Canonical(guess))
	if strings.Contains(fp, hex.EncodeToString(sum[:])) {
		t.Fatalf("the stored fingerprint is an unkeyed hash of the body")
	}
}
