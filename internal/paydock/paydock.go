// Package paydock holds Paydock's wire shapes: the response envelope, list
// and error bodies, the one timestamp format, ids and tokens, and lenient
// readers for request bodies (spec §1.2–1.5, §3).
package paydock

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"strings"
	"time"
)

// TimeLayout is the only timestamp format on the wire (spec §1.5).
const TimeLayout = "2006-01-02T15:04:05.000Z"

// Time is a timestamp written in TimeLayout, UTC, truncated to the millisecond.
type Time time.Time

// MarshalJSON writes the timestamp as a JSON string in TimeLayout.
func (t Time) MarshalJSON() ([]byte, error) {
	return []byte(`"` + FormatTime(time.Time(t)) + `"`), nil
}

// FormatTime formats t for the wire.
func FormatTime(t time.Time) string {
	return t.UTC().Truncate(time.Millisecond).Format(TimeLayout)
}

// Envelope is every /v1 response body.
type Envelope struct {
	Status       int      `json:"status"`
	Error        any      `json:"error"` // null on success
	Resource     Resource `json:"resource"`
	ErrorSummary any      `json:"error_summary,omitempty"`
}

// Resource is the envelope's resource part; list fields are set on lists only.
type Resource struct {
	Type       string `json:"type"`
	Data       any    `json:"data,omitempty"`
	Count      *int   `json:"count,omitempty"`
	Skip       *int   `json:"skip,omitempty"`
	Limit      *int   `json:"limit,omitempty"`
	QueryToken string `json:"query_token,omitempty"`
}

// List is a page of objects with its total count (spec §1.7).
type List struct {
	Data       any
	Count      int
	Skip       int
	Limit      int
	QueryToken string
}

// ErrorDetails is details of a non-gateway error.
type ErrorDetails struct {
	Path     string   `json:"path"`
	Messages []string `json:"messages"`
}

// ErrorBody is `error` (CamelCase code) or `error_summary` (snake_case code).
type ErrorBody struct {
	Message string       `json:"message"`
	Code    string       `json:"code"`
	Details ErrorDetails `json:"details"`
}

// GatewayErrorDetail is the one element of error.details for gateway errors.
type GatewayErrorDetail struct {
	GatewaySpecificCode        string  `json:"gateway_specific_code"`
	GatewaySpecificDescription string  `json:"gateway_specific_description"`
	ParamName                  *string `json:"param_name"`
	Description                string  `json:"description"`
}

// GatewayError is `error` for a gateway refusal: no code (spec §3.6).
type GatewayError struct {
	Message string               `json:"message"`
	Details []GatewayErrorDetail `json:"details"`
}

// GatewaySummaryDetails is error_summary.details for gateway errors.
type GatewaySummaryDetails struct {
	GatewaySpecificCode        string   `json:"gateway_specific_code"`
	GatewaySpecificDescription string   `json:"gateway_specific_description"`
	Messages                   []string `json:"messages"`
}

// GatewaySummary is error_summary for gateway errors.
type GatewaySummary struct {
	Message               string                `json:"message"`
	Code                  string                `json:"code"`
	StatusCode            *string               `json:"status_code"`
	StatusCodeDescription *string               `json:"status_code_description"`
	Details               GatewaySummaryDetails `json:"details"`
}

// NewID returns 12 random bytes as 24 lowercase hex characters (spec §1.4).
func NewID() string {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return hex.EncodeToString(b[:])
}

// IsID reports whether s is 24 hex digits (either case).
func IsID(s string) bool {
	if len(s) != 24 {
		return false
	}
	return isHex(s)
}

// IsToken reports whether s has the 8-4-4-4-12 hex shape (either case).
func IsToken(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		switch i {
		case 8, 13, 18, 23:
			if s[i] != '-' {
				return false
			}
		default:
			if !isHexByte(s[i]) {
				return false
			}
		}
	}
	return true
}

// NormalizeID lower-cases an id or token (requests match them case-insensitively).
func NormalizeID(s string) string { return strings.ToLower(s) }

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isHexByte(s[i]) {
			return false
		}
	}
	return true
}

func isHexByte(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// Canonical re-encodes a parsed JSON value with sorted keys (idempotency
// fingerprints, spec §9).
func Canonical(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	return b
}
