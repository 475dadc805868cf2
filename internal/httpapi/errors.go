package httpapi

import (
	"errors"
	"net/http"

	"switchyard/internal/errs"
	"switchyard/internal/paydock"
)

// kindInfo is the one table mapping an error Kind to its status and
// Paydock codes (spec §3.3).
type kindInfo struct {
	status  int
	code    string // error.code
	summary string // error_summary.code
	message string // default error.message
}

var kinds = map[errs.Kind]kindInfo{
	errs.Invalid:     {http.StatusBadRequest, "ValidationError", "validation_error", "body validation failed"},
	errs.Unfulfilled: {http.StatusBadRequest, "UnfulfilledCondition", "unfulfilled_condition", "unfulfilled condition"},
	errs.Forbidden:   {http.StatusForbidden, "token_required", "token_required", "Access forbidden"},
	errs.NotFound:    {http.StatusNotFound, "NotFound", "not_found", "Wrong Api path"},
	errs.NotAllowed:  {http.StatusMethodNotAllowed, "MethodNotAllowed", "method_not_allowed", "Method not allowed"},
	errs.Conflict:    {http.StatusConflict, "Conflict", "conflict", "a request with this idempotency key is in progress"},
	errs.TooLarge:    {http.StatusRequestEntityTooLarge, "PayloadTooLarge", "payload_too_large", "request body exceeds 1 MiB"},
	errs.Declined:    {http.StatusBadRequest, "", "", ""},
	errs.Gateway:     {http.StatusBadRequest, "", "", ""},
	errs.Unavailable: {http.StatusServiceUnavailable, "ServiceUnavailable", "service_unavailable", "service temporarily unavailable"},
	errs.Internal:    {http.StatusInternalServerError, "SystemError", "system_error", "internal error"},
}

// errorEnvelope builds the response for err: its status and body. Anything
// that is not an *errs.Error is a 500 naming only the request id.
func errorEnvelope(err error, rtype, requestID string, data any) (int, paydock.Envelope) {
	var e *errs.Error
	if !errors.As(err, &e) {
		e = &errs.Error{Kind: errs.KindOf(err), Err: err}
	}
	info, ok := kinds[e.Kind]
	if !ok {
		info = kinds[errs.Internal]
	}
	env := paydock.Envelope{Status: info.status, Resource: paydock.Resource{Type: rtype}}
	if (e.Kind == errs.Declined || e.Kind == errs.Gateway) && e.Decline != nil {
		d := e.Decline
		env.Error = paydock.GatewayError{Message: d.Message, Details: []paydock.GatewayErrorDetail{{
			GatewaySpecificCode: d.GatewayCode, GatewaySpecificDescription: d.GatewayDescription,
			ParamName: nullable(d.ParamName), Description: d.Message,
		}}}
		env.ErrorSummary = paydock.GatewaySummary{Message: d.Message, Code: d.Code,
			StatusCode: nullable(d.StatusCode), StatusCodeDescription: nullable(d.StatusDescription),
			Details: paydock.GatewaySummaryDetails{GatewaySpecificCode: d.GatewayCode, GatewaySpecificDescription: d.GatewayDescription, Messages: []string{d.Message}},
		}
		env.Resource.Data = data
		return info.status, env
	}
	if e.Kind == errs.Declined || e.Kind == errs.Gateway {
		info = kinds[errs.Internal] // a gateway error without its decline is a bug
		env.Status = info.status
	}
	msg := info.message
	if e.Message != "" {
		msg = e.Message
	}
	messages := e.Messages
	if e.Kind == errs.Internal {
		msg, messages = info.message, []string{"request id " + requestID}
	}
	if messages == nil {
		messages = []string{}
	}
	path := e.Path
	if e.Kind == errs.Internal {
		path = ""
	}
	details := paydock.ErrorDetails{Path: path, Messages: messages}
	env.Error = paydock.ErrorBody{Message: msg, Code: info.code, Details: details}
	env.ErrorSummary = paydock.ErrorBody{Message: msg, Code: info.summary, Details: details}
	return info.status, env
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
