package apitest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"switchyard/api"
)

// The API description (api/openapi.yaml), loaded and validated once per
// test binary.
var openapiDoc struct {
	once   sync.Once
	doc    *openapi3.T
	router routers.Router
	err    error
}

// OpenAPI returns the parsed and validated api/openapi.yaml, the document
// every /v1 response of Env.Do is checked against.
func OpenAPI() (*openapi3.T, error) {
	doc, _, err := loadOpenAPI()
	return doc, err
}

func loadOpenAPI() (*openapi3.T, routers.Router, error) {
	d := &openapiDoc
	d.once.Do(func() {
		loader := openapi3.NewLoader()
		doc, err := loader.LoadFromData(api.OpenAPI)
		if err != nil {
			d.err = fmt.Errorf("api/openapi.yaml does not load: %w", err)
			return
		}
		if err := doc.Validate(loader.Context); err != nil {
			d.err = fmt.Errorf("api/openapi.yaml is not a valid OpenAPI document: %w", err)
			return
		}
		router, err := gorillamux.NewRouter(doc)
		if err != nil {
			d.err = fmt.Errorf("api/openapi.yaml: routes: %w", err)
			return
		}
		d.doc, d.router = doc, router
	})
	return d.doc, d.router, d.err
}

// CheckOpenAPI checks one /v1 response against api/openapi.yaml: the
// request's operation must be documented, the status must be one of the
// operation's documented responses, and the body must match its schema.
// Requests are not validated (tests send bad ones on purpose).
//
// An undocumented route is accepted only when the server agrees it does
// not exist: 404 "Wrong Api path", or 405 for a documented path with an
// undocumented method.
func CheckOpenAPI(req *http.Request, status int, header http.Header, body []byte) error {
	_, router, err := loadOpenAPI()
	if err != nil {
		return err
	}
	// The server ignores one trailing slash (spec §1.1); so does the lookup.
	r := req.Clone(context.Background())
	if p := r.URL.Path; len(p) > 1 && strings.HasSuffix(p, "/") {
		r.URL.Path = strings.TrimSuffix(p, "/")
		r.URL.RawPath = ""
	}
	route, params, err := router.FindRoute(r)
	if err != nil {
		if status == http.StatusMethodNotAllowed || wrongAPIPath(status, body) {
			return nil
		}
		if errors.Is(err, routers.ErrMethodNotAllowed) {
			return fmt.Errorf("api/openapi.yaml documents %s but not the method %s, yet the server answered %d: %s", r.URL.Path, r.Method, status, clip(body))
		}
		return fmt.Errorf("route not documented in api/openapi.yaml (server answered %d: %s)", status, clip(body))
	}
	if wrongAPIPath(status, body) {
		return fmt.Errorf("documented operation %s %s answered 404 Wrong Api path: the route is not registered", r.Method, route.Path)
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request:    r,
			PathParams: params,
			Route:      route,
		},
		Status: status,
		Header: header,
		Options: &openapi3filter.Options{
			IncludeResponseStatus: true, // an undocumented status is a mismatch
		},
	}
	in.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		// The JSON Schema validator's own report is a compact tree of the
		// failing locations; kin-openapi's adds every schema in full.
		var verr *jsonschema.ValidationError
		if errors.As(err, &verr) {
			err = verr
		}
		return fmt.Errorf("response does not match api/openapi.yaml (%s %s → %d): %w\nbody: %s", r.Method, route.Path, status, err, clip(body))
	}
	return nil
}

// clip shortens a body for a failure message.
func clip(b []byte) string {
	const max = 2000
	if len(b) > max {
		return string(b[:max]) + "…"
	}
	return string(b)
}

// wrongAPIPath reports whether a response is the unknown-path 404 (spec §3.5).
func wrongAPIPath(status int, body []byte) bool {
	if status != http.StatusNotFound {
		return false
	}
	var b struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	return json.Unmarshal(body, &b) == nil && b.Error.Message == "Wrong Api path"
}

// checkOpenAPI reports a response of Env.Do that does not match the document.
func checkOpenAPI(t testing.TB, req *http.Request, r *Response) {
	t.Helper()
	if err := CheckOpenAPI(req, r.Status, r.Header, r.Raw); err != nil {
		t.Errorf("%s %s: %v", req.Method, req.URL.RequestURI(), err)
	}
}
