package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
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
	"get":                   genericGet,
	"bare":                  gatewayCreate, // same request, against the in-process bare server
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
	token, err := s.vaultToken(ctx, base)
	if err != nil {
		return target{}, err
	}
	var data struct {
		ID string `json:"_id"`
	}
	if err := s.do(ctx, http.MethodPost, base+"/v1/customers", vaultCustomerBody(token), http.StatusCreated, &data); err != nil {
		return target{}, err
	}
	if data.ID == "" {
		return target{}, setupError{"customer create response has no resource.data._id"}
	}
	return target{method: http.MethodGet, url: base + "/v1/customers/" + data.ID, expect: http.StatusOK}, nil
}

func genericGet(_ context.Context, _ *setupper, cfg config, base string) (target, error) {
	return target{method: http.MethodGet, url: base + cfg.path, expect: http.StatusOK}, nil
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
