// Package simulator is the built-in deterministic gateway (spec §4.2):
// outcomes depend only on the card number, and it answers at once unless
// a fixed latency is configured.
package simulator

import (
	"context"
	"time"

	"switchyard/internal/errs"
	"switchyard/internal/gateway"
	"switchyard/internal/paydock"
)

// Test cards with a fixed outcome.
const (
	CardDeclined          = "4100000000000001"
	CardInsufficientFunds = "4000000000009995"
	CardExpired           = "4000000000000069"
	CardProcessorError    = "4000000000000119"
	CardTimeout           = "4000000000000259"
)

// Simulator is the connector.
type Simulator struct {
	Latency time.Duration
	ledger  Ledger
	now     func() time.Time
}

// New returns a Simulator without a ledger: it stores cards but moves no
// money (see WithLedger).
func New(latency time.Duration) *Simulator { return &Simulator{Latency: latency, now: time.Now} }

func decline(code, message, gwCode, statusCode, statusDesc string) error {
	return &errs.Error{Kind: errs.Declined, Op: "simulator", Decline: &errs.Decline{
		Code: code, Message: message, GatewayCode: gwCode, GatewayDescription: statusDesc,
		StatusCode: statusCode, StatusDescription: statusDesc, ParamName: "card_number"}}
}

// refusal is the outcome of number for a call that moves no money: the
// insufficient-funds and timeout cards store successfully.
func refusal(number string) error {
	switch number {
	case CardDeclined:
		return decline("transaction_declined", "Transaction Declined", "card_declined", "05", "Do not honour")
	case CardExpired:
		return decline("credit_card_invalid_or_expired", "Credit Card Invalid or Expired", "expired_card", "54", "Expired card")
	case CardProcessorError:
		e := decline("gateway_error", "Gateway Error", "processing_error", "96", "System malfunction").(*errs.Error)
		e.Kind = errs.Gateway
		e.Decline.ParamName = ""
		return e
	}
	return nil
}

func (s *Simulator) wait(ctx context.Context) error {
	if s.Latency <= 0 {
		return nil
	}
	t := time.NewTimer(s.Latency)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// StoreCard implements gateway.Connector.
func (s *Simulator) StoreCard(ctx context.Context, req gateway.StoreRequest) (gateway.Stored, error) {
	if err := s.wait(ctx); err != nil {
		return gateway.Stored{}, err
	}
	if err := refusal(req.Card.Number); err != nil {
		return gateway.Stored{}, err
	}
	ref := req.RefToken
	if ref == "" {
		ref = "sim_cus_" + paydock.NewID()
	}
	return gateway.Stored{RefToken: ref, GatewayRef: "sim_card_" + paydock.NewID()}, nil
}
