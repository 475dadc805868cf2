package stripe

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"switchyard/internal/errs"
	"switchyard/internal/gateway"
	"switchyard/internal/vault"
)

// apiError is the "error" object of a Stripe error answer (and a
// PaymentIntent's last_payment_error).
type apiError struct {
	Type          string         `json:"type"`
	Code          string         `json:"code"`
	DeclineCode   string         `json:"decline_code"`
	Message       string         `json:"message"`
	Param         string         `json:"param"`
	PaymentIntent *paymentIntent `json:"payment_intent"`
}

// Categories of spec §3.6: error_summary.code and error.message.
const (
	catDeclined     = "transaction_declined"
	catHard         = "transaction_declined_hard"
	catFunds        = "insufficient_funds"
	catInvalidCard  = "credit_card_invalid_or_expired"
	catFraud        = "fraud_warning"
	catRequest      = "invalid_request_details"
	catCredentials  = "invalid_gateway_credentials"
	catGatewayError = "gateway_error"
	catUnknown      = "unknown"
)

var catMessages = map[string]string{
	catDeclined:     "Transaction Declined",
	catHard:         "Transaction Declined Hard",
	catFunds:        "Insufficient Funds",
	catInvalidCard:  "Credit Card Invalid or Expired",
	catFraud:        "Fraud Warning",
	catRequest:      "Invalid Request Details",
	catCredentials:  "Invalid Gateway Credentials",
	catGatewayError: "Gateway Error",
	catUnknown:      "Unknown Gateway Error",
}

// declinedCategories are the issuer's refusals (errs.Declined); the other
// categories are gateway failures (errs.Gateway).
var declinedCategories = map[string]bool{catDeclined: true, catHard: true, catFunds: true, catInvalidCard: true, catFraud: true}

// invalidCardCodes are the card_error codes meaning number, expiry or CVC
// refused (spec §4.3).
var invalidCardCodes = map[string]bool{
	"expired_card": true, "incorrect_number": true, "invalid_number": true, "invalid_expiry_month": true,
	"invalid_expiry_year": true, "incorrect_cvc": true, "invalid_cvc": true,
}

// paramNames maps Stripe's param (the last bracketed segment: card[number]
// or number) to Switchyard's field name (spec §4.3).
var paramNames = map[string]string{
	"number": "card_number", "exp_month": "expire_month", "exp_year": "expire_year", "cvc": "card_ccv",
}

// newError builds the errs.Error of category cat.
func newError(op, cat, gwCode, description, param string, cause error) *errs.Error {
	kind := errs.Gateway
	if declinedCategories[cat] {
		kind = errs.Declined
	}
	return &errs.Error{Kind: kind, Op: op, Err: cause, Decline: &errs.Decline{
		Code: cat, Message: catMessages[cat], GatewayCode: gwCode, GatewayDescription: description, ParamName: param}}
}

// category classifies a Stripe error answer by the table of spec §4.3.
func category(status int, e apiError) string {
	switch {
	case status == http.StatusUnauthorized || e.Type == "authentication_error":
		return catCredentials
	case status == http.StatusForbidden || e.Type == "permission_error":
		// A restricted key without the permission: the credential is refused.
		return catCredentials
	case e.Code == "processing_error" || e.DeclineCode == "processing_error":
		return catGatewayError
	case status == http.StatusTooManyRequests || status >= 500 || e.Type == "api_error" || e.Type == "rate_limit_error":
		return catGatewayError
	case e.Type == "card_error":
		switch {
		case e.DeclineCode == "insufficient_funds":
			return catFunds
		case invalidCardCodes[e.Code] || invalidCardCodes[e.DeclineCode]:
			return catInvalidCard
		case e.DeclineCode == "lost_card" || e.DeclineCode == "stolen_card" || e.DeclineCode == "pickup_card":
			return catHard
		case e.DeclineCode == "fraudulent":
			return catFraud
		}
		return catDeclined
	case e.Type == "invalid_request_error" && status >= 400 && status < 500:
		return catRequest
	}
	return catUnknown
}

// paramName maps Stripe's param to Switchyard's field, "" = null.
func paramName(p string) string {
	// card[number] → number
	if n := len(p); n > 0 && p[n-1] == ']' {
		for i := n - 2; i >= 0; i-- {
			if p[i] == '[' {
				p = p[i+1 : n-1]
				break
			}
		}
	}
	return paramNames[p]
}

// mapError turns a Stripe error answer into Switchyard's error (spec §3.6,
// §4.3): gateway_specific_code = decline_code, else code, else type;
// description = message; status_code and its description stay null.
func mapError(op string, status int, e apiError) *errs.Error {
	gw := e.DeclineCode
	if gw == "" {
		gw = e.Code
	}
	if gw == "" {
		gw = e.Type
	}
	if gw == "" {
		gw = fmt.Sprintf("http_%d", status)
	}
	// Stripe's message is passed on (spec §4.3), but never a card number
	// in it, should one come back (spec §1.9).
	desc := vault.RedactCardNumbers(e.Message)
	if desc == "" {
		desc = http.StatusText(status)
	}
	return newError(op, category(status, e), gw, desc, paramName(e.Param), fmt.Errorf("stripe answered HTTP %d (%s/%s)", status, e.Type, gw))
}

// outcomeUnknown reports a Stripe error answer that does not say whether a
// call that moves money happened: a 5xx ("a server error leaves the outcome
// unknown: reconcile before another operation", Stripe's error handling
// guide), or a conflict on the idempotency key (an earlier request with it
// may still be running or have succeeded). The reconciler looks such a
// call up instead of failing it, which would invite a second charge or
// refund. A 429 is a refusal before anything ran.
func outcomeUnknown(status int, e apiError) bool {
	return status >= 500 || status == http.StatusConflict || e.Type == "idempotency_error"
}

// errNotSent is a failure before Stripe received the request: nothing
// happened, so it is safe to retry (gateway_error).
func errNotSent(op string, cause error) *errs.Error {
	return newError(op, catGatewayError, "connection_error", "could not send the request to Stripe", "", cause)
}

// errNoAnswer is a request Stripe may have received without a usable
// answer. Calls that move money report an unknown outcome; others (storing
// a card, lookups) a gateway_error.
func errNoAnswer(op string, money bool, cause error) error {
	if money {
		return fmt.Errorf("%s: %w (%w)", op, gateway.ErrUnknownOutcome, cause)
	}
	code, desc := "connection_error", "the connection to Stripe failed before it answered"
	if isTimeout(cause) {
		code, desc = "timeout", "Stripe did not answer in time"
	}
	return newError(op, catGatewayError, code, desc, "", cause)
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	if errors.As(err, &t) && t.Timeout() {
		return true
	}
	return errors.Is(err, context.DeadlineExceeded)
}

// decline is a refusal the connector decides itself from a PaymentIntent
// or refund status.
func decline(op, cat, gwCode, description string) *errs.Error {
	return newError(op, cat, gwCode, description, "", nil)
}

// declineOf is the Decline an error carries, or nil.
func declineOf(err error) *errs.Decline {
	var e *errs.Error
	if errors.As(err, &e) {
		return e.Decline
	}
	return nil
}
