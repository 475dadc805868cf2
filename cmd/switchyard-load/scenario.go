package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"time"
)

// target is what one timed request looks like: a fixed method, URL and
// expected status, and a body built fresh per request from a unique id.
type target struct {
	method string
	url    string
	expect int
	body   func(id []byte) []byte // nil: no body
	// urlFor, when set, builds each request's URL (a -path template with
	// {rand:N}); url is then only its description.
	urlFor func() string
}

// scenarioFunc does any pre-run setup against base (the server's base URL)
// and returns the request shape for the timed run.
type scenarioFunc func(ctx context.Context, s *setupper, cfg config, base string) (target, error)

var scenarios = map[string]scenarioFunc{
	"gateway-create":        gatewayCreate,
	"vault-create":          vaultCreate,
	"customer-create-card":  customerCreateCard,
	"customer-create-vault": customerCreateVault,
	"customer-get":          customerGet,
	"charge-customer":       chargeCustomer,
	"get":                   genericGet,
	"bare":                  gatewayCreate, // same request, against the in-process bare server
	"fsync":                 nil,           // no server: the disk's fsync rate (fsync.go)
}

func scenarioNames() []string {
	names := make([]string, 0, len(scenarios))
	for n := range scenarios {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Fixed request bodies; values that must be distinct are spliced in per
// request by the body funcs below.
var (
	vaultBody = []byte(`{"card_name":"Load Test","card_number":"4242424242424242","expire_month":12,"expire_year":2030}`)
)

func gatewayBody(id []byte) []byte {
	b := make([]byte, 0, 64)
	b = append(b, `{"type":"Simulator","name":"load-`...)
	b = append(b, id...)
	return append(b, `"}`...)
}

func gatewayCreate(_ context.Context, _ *setupper, _ config, base string) (target, error) {
	return target{method: http.MethodPost, url: base + "/v1/gateways", expect: http.StatusCreated, body: gatewayBody}, nil
}

func vaultCreate(_ context.Context, _ *setupper, _ config, base string) (target, error) {
	return target{
		method: http.MethodPost, url: base + "/v1/vault/payment_sources", expect: http.StatusCreated,
		body: func([]byte) []byte { return bytes.Clone(vaultBody) },
	}, nil
}

func customerCreateCard(_ context.Context, _ *setupper, cfg config, base string) (target, error) {
	gw, _ := json.Marshal(cfg.gateway) // string → JSON string literal; never fails
	tail := `,"card_name":"Load Test","card_number":"4111111111111111","expire_month":12,"expire_year":2030}}`
	return target{
		method: http.MethodPost, url: base + "/v1/customers", expect: http.StatusCreated,
		body: func(id []byte) []byte {
			b := make([]byte, 0, 200)
			b = append(b, `{"first_name":"Load","email":"load`...)
			b = append(b, id...)
			b = append(b, `@example.com","payment_source":{"gateway_id":`...)
			b = append(b, gw...)
			return append(b, tail...)
		},
	}, nil
}

func vaultCustomerBody(token string) []byte {
	tok, _ := json.Marshal(token)
	return []byte(`{"payment_source":{"vault_token":` + string(tok) + `}}`)
}

func customerCreateVault(ctx context.Context, s *setupper, _ config, base string) (target, error) {
	token, err := s.vaultToken(ctx, base)
	if err != nil {
		return target{}, err
	}
	body := vaultCustomerBody(token)
	return target{
		method: http.MethodPost, url: base + "/v1/customers", expect: http.StatusCreated,
		body: func([]byte) []byte { return bytes.Clone(body) },
	}, nil
}

func customerGet(ctx context.Context, s *setupper, _ config, base string) (target, error) {
	id, err := customerCreateVault4(ctx, s, base)
	if err != nil {
		return target{}, err
	}
	return target{method: http.MethodGet, url: base + "/v1/customers/" + id, expect: http.StatusOK}, nil
}

func customerCreateVault4(ctx context.Context, s *setupper, base string) (string, error) {
	token, err := s.vaultToken(ctx, base)
	if err != nil {
		return "", err
	}
	var data struct {
		ID string `json:"_id"`
	}
	if err := s.do(ctx, http.MethodPost, base+"/v1/customers", vaultCustomerBody(token), http.StatusCreated, &data); err != nil {
		return "", err
	}
	if data.ID == "" {
		return "", setupError{"customer create response has no resource.data._id"}
	}
	return data.ID, nil
}

// chargeCustomer charges one flow-4 customer (vault token, no gateway) by
// customer_id on the account's default gateway.
func chargeCustomer(ctx context.Context, s *setupper, _ config, base string) (target, error) {
	id, err := customerCreateVault4(ctx, s, base)
	if err != nil {
		return target{}, err
	}
	cid, _ := json.Marshal(id)
	body := []byte(`{"amount":"10.00","currency":"AUD","customer_id":` + string(cid) + `}`)
	return target{
		method: http.MethodPost, url: base + "/v1/charges", expect: http.StatusCreated,
		body: func([]byte) []byte { return bytes.Clone(body) },
	}, nil
}

func genericGet(_ context.Context, _ *setupper, cfg config, base string) (target, error) {
	t := target{method: http.MethodGet, url: base + cfg.path, expect: http.StatusOK}
	if tpl := parsePathTemplate(cfg.path); tpl != nil {
		t.urlFor = func() string { return base + tpl.expand() }
	}
	return t, nil
}

// pathTemplate is a -path with {rand:N} placeholders, each replaced per
// request by a uniformly random integer in [0, N).
type pathTemplate struct {
	parts  []string // literal text; between parts[i] and parts[i+1] comes a number below bounds[i]
	bounds []int
}

var randPlaceholder = regexp.MustCompile(`\{rand:([0-9]+)\}`)

// parsePathTemplate returns nil when path has no placeholder.
func parsePathTemplate(path string) *pathTemplate {
	ms := randPlaceholder.FindAllStringSubmatchIndex(path, -1)
	if len(ms) == 0 {
		return nil
	}
	t := &pathTemplate{}
	prev := 0
	for _, m := range ms {
		n, err := strconv.Atoi(path[m[2]:m[3]])
		if err != nil || n < 1 {
			return nil // rejected by checkPathTemplate before this is reached
		}
		t.parts = append(t.parts, path[prev:m[0]])
		t.bounds = append(t.bounds, n)
		prev = m[1]
	}
	t.parts = append(t.parts, path[prev:])
	return t
}

// checkPathTemplate validates every {rand:N} in path.
func checkPathTemplate(path string) error {
	for _, m := range randPlaceholder.FindAllStringSubmatch(path, -1) {
		if n, err := strconv.Atoi(m[1]); err != nil || n < 1 {
			return fmt.Errorf("-path: %s needs 1 <= N <= %d", m[0], math.MaxInt)
		}
	}
	return nil
}

func (t *pathTemplate) expand() string {
	b := make([]byte, 0, 64)
	for i, p := range t.parts {
		b = append(b, p...)
		if i < len(t.bounds) {
			b = strconv.AppendInt(b, int64(rand.IntN(t.bounds[i])), 10)
		}
	}
	return string(b)
}

// setupper performs the untimed requests before a run.
type setupper struct {
	hc  *http.Client
	key string
}

// setupError is a setup failure that is not a transport error (server
// reachable but answered unexpectedly). Both exit 1.
type setupError struct{ msg string }

func (e setupError) Error() string { return "setup: " + e.msg }

func (s *setupper) vaultToken(ctx context.Context, base string) (string, error) {
	var data struct {
		VaultToken string `json:"vault_token"`
	}
	if err := s.do(ctx, http.MethodPost, base+"/v1/vault/payment_sources", vaultBody, http.StatusCreated, &data); err != nil {
		return "", err
	}
	if data.VaultToken == "" {
		return "", setupError{"vault create response has no resource.data.vault_token"}
	}
	return data.VaultToken, nil
}

// do sends one setup request with a 10s bound. expect 0 accepts any status
// (a reachability probe). If data is non-nil, resource.data is decoded into it.
func (s *setupper) do(ctx context.Context, method, url string, body []byte, expect int, data any) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := newRequest(ctx, method, url, body, s.key)
	if err != nil {
		return setupError{err.Error()}
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return fmt.Errorf("server unreachable: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("server unreachable: reading %s %s: %w", method, url, err)
	}
	if expect != 0 && resp.StatusCode != expect {
		return setupError{fmt.Sprintf("%s %s: status %d, want %d: %s", method, url, resp.StatusCode, expect, snippet(raw))}
	}
	if data == nil {
		return nil
	}
	var env struct {
		Resource struct {
			Data json.RawMessage `json:"data"`
		} `json:"resource"`
	}
	if err := json.Unmarshal(raw, &env); err != nil || len(env.Resource.Data) == 0 {
		return setupError{fmt.Sprintf("%s %s: no resource.data in response: %s", method, url, snippet(raw))}
	}
	if err := json.Unmarshal(env.Resource.Data, data); err != nil {
		return setupError{fmt.Sprintf("%s %s: decoding resource.data: %v", method, url, err)}
	}
	return nil
}

func newRequest(ctx context.Context, method, url string, body []byte, key string) (*http.Request, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if key != "" {
		req.Header.Set("x-user-secret-key", key)
	}
	return req, nil
}

// snippet renders at most 200 bytes of a body for an error report.
func snippet(b []byte) string {
	const limit = 200
	if len(b) > limit {
		return strconv.Quote(string(b[:limit])) + "…"
	}
	return strconv.Quote(string(b))
}
