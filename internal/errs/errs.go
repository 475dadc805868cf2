// Package errs defines the one error value every layer returns: a Kind that
// decides the HTTP status and Paydock error shape (mapped in httpapi), the
// field Path it concerns, user-safe Messages, an optional gateway Decline,
// and the private cause Err that is logged and never sent.
package errs

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Kind classifies an error; httpapi maps each Kind to one status and code.
type Kind int

const (
	Internal    Kind = iota // 500 SystemError
	Invalid                 // 400 ValidationError
	Unfulfilled             // 400 UnfulfilledCondition
	Forbidden               // 403 token_required
	NotFound                // 404 NotFound
	NotAllowed              // 405 MethodNotAllowed
	Conflict                // 409 Conflict
	TooLarge                // 413 PayloadTooLarge
	Declined                // 400 gateway refusal (Decline set)
	Gateway                 // 400 gateway failure (Decline set)
	Unavailable             // 503 ServiceUnavailable
)

func (k Kind) String() string {
	switch k {
	case Invalid:
		return "invalid"
	case Unfulfilled:
		return "unfulfilled"
	case Forbidden:
		return "forbidden"
	case NotFound:
		return "not_found"
	case NotAllowed:
		return "not_allowed"
	case Conflict:
		return "conflict"
	case TooLarge:
		return "too_large"
	case Declined:
		return "declined"
	case Gateway:
		return "gateway"
	case Unavailable:
		return "unavailable"
	}
	return "internal"
}

// Decline is a gateway's refusal in Paydock's terms (spec §3.6).
type Decline struct {
	Code               string // error_summary.code, e.g. transaction_declined
	Message            string // category title, e.g. Transaction Declined
	GatewayCode        string // gateway_specific_code
	GatewayDescription string // gateway_specific_description
	StatusCode         string // processor response code, "" = null
	StatusDescription  string // "" = null
	ParamName          string // request field concerned, "" = null
}

// Error is the error value of Switchyard.
type Error struct {
	Kind     Kind
	Op       string   // operation, for logs: "gateway.Create"
	Message  string   // error.message override ("" = the Kind's default)
	Path     string   // details.path
	Messages []string // details.messages
	Decline  *Decline
	Err      error // private cause: logged, never sent
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Op != "" {
		b.WriteString(e.Op)
		b.WriteString(": ")
	}
	b.WriteString(e.Kind.String())
	if e.Path != "" {
		fmt.Fprintf(&b, " %s", e.Path)
	}
	if len(e.Messages) > 0 {
		fmt.Fprintf(&b, " %q", e.Messages)
	}
	if e.Decline != nil {
		fmt.Fprintf(&b, " decline=%s/%s", e.Decline.Code, e.Decline.GatewayCode)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Invalidf is a 400 ValidationError for one field path with one message.
func Invalidf(path, format string, args ...any) *Error {
	return &Error{Kind: Invalid, Path: path, Messages: []string{fmt.Sprintf(format, args...)}}
}

// Unfulfilledf is a 400 UnfulfilledCondition; the message is error.message and
// the only details message.
func Unfulfilledf(path, format string, args ...any) *Error {
	m := fmt.Sprintf(format, args...)
	return &Error{Kind: Unfulfilled, Message: m, Path: path, Messages: []string{m}}
}

// NotFoundf is a 404 whose error.message and details message are the text,
// e.g. NotFoundf("id", "gateway not found").
func NotFoundf(path, format string, args ...any) *Error {
	m := fmt.Sprintf(format, args...)
	return &Error{Kind: NotFound, Message: m, Path: path, Messages: []string{m}}
}

// BadParam is the 404 for a malformed path parameter (spec §3.5).
func BadParam(path, message string) *Error {
	return &Error{Kind: NotFound, Message: "param validation failed", Path: path, Messages: []string{message}}
}

// Query is a 400 for a bad query parameter (message "query validation failed").
func Query(param, message string) *Error {
	return &Error{Kind: Invalid, Message: "query validation failed", Path: param, Messages: []string{message}}
}

// Wrap returns an Internal error carrying cause (nil stays nil). An
// *Error cause keeps its kind; Op is set when empty.
func Wrap(op string, cause error) error {
	if cause == nil {
		return nil
	}
	var e *Error
	if errors.As(cause, &e) {
		if e.Op != "" {
			return e
		}
		c := *e
		c.Op = op
		return &c
	}
	return &Error{Kind: rawKind(cause), Op: op, Err: cause}
}

// KindOf reports the Kind of err: its own for an *Error, Unavailable for a
// request cut off (its context cancelled or past its deadline: the work
// did not finish, and may be retried), Internal for anything else.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return rawKind(err)
}

func rawKind(err error) Kind {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return Unavailable
	}
	return Internal
}

// WithPrefix returns a copy of an Invalid error whose Path is prefixed
// ("payment_source." + "card_number"); other errors are returned unchanged.
func WithPrefix(err error, prefix string) error {
	var e *Error
	if prefix == "" || !errors.As(err, &e) {
		return err
	}
	if strings.HasPrefix(e.Path, prefix) {
		return err // already a full path (a wire error of a nested object)
	}
	c := *e
	if c.Path == "" {
		c.Path = strings.TrimSuffix(prefix, ".")
	} else {
		c.Path = prefix + c.Path
	}
	return &c
}
