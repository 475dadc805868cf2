package simulator

import (
	"context"
	"errors"
	"time"

	"switchyard/internal/errs"
	"switchyard/internal/gateway"
	"switchyard/internal/paydock"
	"switchyard/internal/vault"
)

// Entry is one operation in the Simulator's ledger, keyed by Switchyard's
// transaction id, as a real processor would keep it.
type Entry struct {
	TxnID       string
	AccountID   string
	Kind        string // sale, authorization, capture, void, refund
	Amount      int64
	Currency    string
	ExternalID  string
	Succeeded   bool
	DeclineCode string // the refusal's gateway_specific_code
	CreatedAt   time.Time
}

// Ledger keeps entries.
type Ledger interface {
	// RecordLedger stores e unless an entry with its TxnID exists, and
	// returns the stored entry either way.
	RecordLedger(ctx context.Context, e Entry) (Entry, error)
	LookupLedger(ctx context.Context, account, txnID string) (Entry, bool, error)
}

// WithLedger returns a Simulator that moves money and records it.
func WithLedger(latency time.Duration, l Ledger, now func() time.Time) *Simulator {
	return &Simulator{Latency: latency, ledger: l, now: now}
}

var errNoLedger = errors.New("simulator: no ledger configured")

// chargeRefusal is the outcome of a sale or authorisation of card.
func (s *Simulator) chargeRefusal(c vault.Card) error {
	if c.Number == CardInsufficientFunds {
		return decline("insufficient_funds", "Insufficient Funds", "insufficient_funds", "51", "Insufficient funds")
	}
	if err := refusal(c.Number); err != nil {
		return err
	}
	now := s.now().UTC()
	if c.ExpYear < now.Year() || c.ExpYear == now.Year() && c.ExpMonth < int(now.Month()) {
		return refusal(CardExpired)
	}
	return nil
}

func declineOf(code string) *errs.Decline {
	var err error
	switch code {
	case "insufficient_funds":
		err = decline("insufficient_funds", "Insufficient Funds", "insufficient_funds", "51", "Insufficient funds")
	case "card_declined":
		err = refusal(CardDeclined)
	case "expired_card":
		err = refusal(CardExpired)
	default:
		err = refusal(CardProcessorError)
	}
	var e *errs.Error
	errors.As(err, &e)
	return e.Decline
}

// Charge implements gateway.Mover. The timeout card's charge happens, is
// recorded, and is then reported as an unknown outcome.
func (s *Simulator) Charge(ctx context.Context, req gateway.ChargeRequest) (string, error) {
	if s.ledger == nil {
		return "", errNoLedger
	}
	kind := "sale"
	if !req.Capture {
		kind = "authorization"
	}
	e := Entry{TxnID: req.TxnID, AccountID: req.Gateway.AccountID, Kind: kind, Amount: req.Amount, Currency: req.Currency,
		ExternalID: "sim_ch_" + paydock.NewID(), Succeeded: true, CreatedAt: s.now()}
	refused := s.chargeRefusal(req.Card)
	if refused != nil {
		var de *errs.Error
		errors.As(refused, &de)
		e.Succeeded, e.DeclineCode, e.ExternalID = false, de.Decline.GatewayCode, ""
	}
	stored, err := s.ledger.RecordLedger(ctx, e)
	if err != nil {
		return "", err
	}
	if err := s.wait(ctx); err != nil {
		return "", gateway.ErrUnknownOutcome
	}
	if req.Card.Number == CardTimeout {
		return "", gateway.ErrUnknownOutcome
	}
	if !stored.Succeeded {
		return "", &errs.Error{Kind: errs.Declined, Op: "simulator.Charge", Decline: declineOf(stored.DeclineCode)}
	}
	return stored.ExternalID, nil
}

func (s *Simulator) op(ctx context.Context, kind, prefix string, req gateway.OpRequest) (string, error) {
	if s.ledger == nil {
		return "", errNoLedger
	}
	e := Entry{TxnID: req.TxnID, AccountID: req.Gateway.AccountID, Kind: kind, Amount: req.Amount, Currency: req.Currency,
		ExternalID: req.ExternalID, Succeeded: true, CreatedAt: s.now()}
	if prefix != "" {
		e.ExternalID = prefix + paydock.NewID()
	}
	stored, err := s.ledger.RecordLedger(ctx, e)
	if err != nil {
		return "", err
	}
	if err := s.wait(ctx); err != nil {
		return "", gateway.ErrUnknownOutcome
	}
	return stored.ExternalID, nil
}

// Capture implements gateway.Mover: always succeeds.
func (s *Simulator) Capture(ctx context.Context, req gateway.OpRequest) error {
	_, err := s.op(ctx, "capture", "", req)
	return err
}

// Cancel implements gateway.Mover: always succeeds.
func (s *Simulator) Cancel(ctx context.Context, req gateway.OpRequest) error {
	_, err := s.op(ctx, "void", "", req)
	return err
}

// Refund implements gateway.Mover: accepted at once, settled at the
// reconciler's first lookup.
func (s *Simulator) Refund(ctx context.Context, req gateway.OpRequest) (string, error) {
	return s.op(ctx, "refund", "sim_re_", req)
}

// Lookup implements gateway.Mover from the ledger.
func (s *Simulator) Lookup(ctx context.Context, g gateway.Gateway, _ string, txnID string) (gateway.Lookup, error) {
	if s.ledger == nil {
		return gateway.Lookup{}, errNoLedger
	}
	e, ok, err := s.ledger.LookupLedger(ctx, g.AccountID, txnID)
	if err != nil || !ok {
		return gateway.Lookup{}, err
	}
	l := gateway.Lookup{Found: true, Succeeded: e.Succeeded, ExternalID: e.ExternalID}
	if !e.Succeeded {
		l.Decline = declineOf(e.DeclineCode)
	}
	return l, nil
}
