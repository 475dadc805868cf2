package charge

import (
	"context"
	"errors"
	"fmt"
	"time"

	"switchyard/internal/errs"
	"switchyard/internal/gateway"
	"switchyard/internal/money"
	"switchyard/internal/paydock"
)

// OpInput is a capture or refund body: amount "" means the full amount (L2).
type OpInput struct {
	Amount   string
	Currency string
}

// amountFor reads an optional amount of the charge's currency.
func amountFor(c Charge, in OpInput, full int64) (int64, error) {
	// Table order: the amount's shape, then the currency, then the amount
	// in the charge's currency.
	if in.Amount != "" {
		if err := money.CheckAmountText("amount", in.Amount); err != nil {
			return 0, err
		}
	}
	if in.Currency != "" {
		cur, ok := money.LookupCurrency(in.Currency)
		if !ok || cur.Code != c.Currency.Code {
			return 0, errs.Invalidf("currency", "currency must be the charge's currency, %s", c.Currency.Code)
		}
	}
	if in.Amount == "" {
		return full, nil
	}
	return money.ParseAmount("amount", in.Amount, c.Currency)
}

// begin starts an operation on a charge: fn checks the state and returns
// the transaction to append; the append commits before any gateway call.
// Operations on one charge are serialised (§8.6): while another one waits
// for its gateway's answer, this one waits for it to finish (the database
// is polled, so it works across nodes), then checks the state it left.
func (s *Service) begin(ctx context.Context, account, id string, fn func(c *Charge) (Txn, error)) (Charge, Txn, gateway.Gateway, error) {
	delay := 5 * time.Millisecond
	for {
		c, txn, g, err := s.beginOnce(ctx, account, id, fn)
		if !errors.Is(err, errBusy) {
			return c, txn, g, err
		}
		// The other operation's call has a bounded time (the connectors'
		// timeouts); past it, its outcome is unknown until the reconciler
		// settles it, and waiting would not help.
		if !c.callRunning(s.now(), opCallLimit) {
			return Charge{}, Txn{}, gateway.Gateway{}, errBusy
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return Charge{}, Txn{}, gateway.Gateway{}, errBusy
		case <-t.C:
		}
		delay = min(2*delay, 200*time.Millisecond)
	}
}

// opCallLimit bounds how long an operation's gateway call can still be
// running: the longest connector timeout (Stripe's 30 s) and a margin.
const opCallLimit = 35 * time.Second

// beginOnce is one attempt of begin. On errBusy it returns the charge as
// read, for begin to see how long the other operation has run.
func (s *Service) beginOnce(ctx context.Context, account, id string, fn func(c *Charge) (Txn, error)) (Charge, Txn, gateway.Gateway, error) {
	cur, err := s.Get(ctx, account, id)
	if err != nil {
		return Charge{}, Txn{}, gateway.Gateway{}, err
	}
	if _, err := fn(&cur); err != nil { // validate before touching anything
		if errors.Is(err, errBusy) {
			return cur, Txn{}, gateway.Gateway{}, err
		}
		return Charge{}, Txn{}, gateway.Gateway{}, err
	}
	g, err := s.gateways.Get(ctx, account, cur.GatewayID)
	if err != nil {
		return Charge{}, Txn{}, gateway.Gateway{}, err
	}
	// A gateway type without a connector fails before anything is written.
	if _, _, err := s.conn(g); err != nil {
		return cur, Txn{}, gateway.Gateway{}, err
	}
	var txn Txn
	c, err := s.store.UpdateCharge(ctx, account, id, func(c *Charge) (*Stats, error) {
		t, err := fn(c)
		if err != nil {
			cur = *c // as it is now, for begin to see the other operation
			return nil, err
		}
		txn = t
		c.Transactions = append(c.Transactions, t)
		c.UpdatedAt = t.CreatedAt
		return nil, nil
	})
	if errors.Is(err, errBusy) {
		// Another operation began between the read and the write.
		return cur, Txn{}, gateway.Gateway{}, err
	}
	if err != nil {
		return Charge{}, Txn{}, gateway.Gateway{}, errs.Wrap("charge.begin", err)
	}
	return c, txn, g, nil
}

// stateErr is §8.6's wrong-status error, its message exactly as the spec
// writes it (for inprogress too: the outcome is not known yet).
func stateErr(verb, status string) error {
	return errs.Unfulfilledf("", "charge cannot be %s in status %s", verb, status)
}

func (s *Service) newTxn(typ string, amount int64, status string) Txn {
	now := s.stamp()
	return Txn{ID: paydock.NewID(), Type: typ, Status: status, Amount: amount, CreatedAt: now, UpdatedAt: now,
		NextAttemptAt: now.Add(s.Reconcile)}
}

// errBusy refuses an operation while another one on the charge has an
// outcome not known yet (its gateway call timed out, or is still running
// after begin stopped waiting).
var errBusy = errs.Unfulfilledf("", "another operation on this charge is in progress")

// Capture captures an authorisation, fully or partly (spec §8.6).
func (s *Service) Capture(ctx context.Context, account, id string, in OpInput) (Charge, error) {
	c, txn, g, err := s.begin(ctx, account, id, func(c *Charge) (Txn, error) {
		amt, err := amountFor(*c, in, c.Amount)
		if err != nil {
			return Txn{}, err
		}
		if c.Status != Pending {
			return Txn{}, stateErr("captured", c.Status)
		}
		if c.busy() {
			return Txn{}, errBusy
		}
		if amt > c.Amount {
			return Txn{}, errs.Unfulfilledf("amount", "amount exceeds the authorised amount")
		}
		return s.newTxn(CaptureTxn, amt, TxnInProgress), nil
	})
	if err != nil {
		return Charge{}, err
	}
	conn, key, err := s.conn(g)
	if err != nil {
		return c, err
	}
	callErr := conn.Capture(ctx, gateway.OpRequest{Gateway: g, Key: key, TxnID: txn.ID, ExternalID: c.ExternalID, Amount: txn.Amount, Currency: c.Currency.Code})
	return s.finishOp(context.WithoutCancel(ctx), c, account, id, txn.ID, "", callErr)
}

// Cancel releases an authorisation.
func (s *Service) Cancel(ctx context.Context, account, id string) (Charge, error) {
	c, txn, g, err := s.begin(ctx, account, id, func(c *Charge) (Txn, error) {
		if c.Status != Pending {
			return Txn{}, stateErr("cancelled", c.Status)
		}
		if c.busy() {
			return Txn{}, errBusy
		}
		return s.newTxn(Void, c.Amount, TxnInProgress), nil
	})
	if err != nil {
		return Charge{}, err
	}
	conn, key, err := s.conn(g)
	if err != nil {
		return c, err
	}
	callErr := conn.Cancel(ctx, gateway.OpRequest{Gateway: g, Key: key, TxnID: txn.ID, ExternalID: c.ExternalID, Amount: txn.Amount, Currency: c.Currency.Code})
	return s.finishOp(context.WithoutCancel(ctx), c, account, id, txn.ID, "", callErr)
}

// Refund refunds part or all of what remains refundable.
func (s *Service) Refund(ctx context.Context, account, id string, in OpInput) (Charge, error) {
	c, txn, g, err := s.begin(ctx, account, id, func(c *Charge) (Txn, error) {
		remaining := c.Captured - c.Refunded
		amt, err := amountFor(*c, in, remaining)
		if err != nil {
			return Txn{}, err
		}
		if c.Status != Complete && c.Status != RefundRequested {
			return Txn{}, stateErr("refunded", c.Status)
		}
		if c.busy() {
			return Txn{}, errBusy
		}
		if amt > remaining || amt <= 0 {
			return Txn{}, errs.Unfulfilledf("amount", "amount exceeds the refundable amount")
		}
		return s.newTxn(RefundTxn, amt, TxnInProgress), nil
	})
	if err != nil {
		return Charge{}, err
	}
	conn, key, err := s.conn(g)
	if err != nil {
		return c, err
	}
	ext, callErr := conn.Refund(ctx, gateway.OpRequest{Gateway: g, Key: key, TxnID: txn.ID, ExternalID: c.ExternalID, Amount: txn.Amount, Currency: c.Currency.Code})
	return s.finishOp(context.WithoutCancel(ctx), c, account, id, txn.ID, ext, callErr)
}

func (s *Service) conn(g gateway.Gateway) (gateway.Connector, string, error) {
	conn, err := s.connectors.For(g)
	if err != nil {
		return nil, "", err
	}
	key, err := s.gateways.Key(g)
	return conn, key, err
}

// finishOp records a capture, void or refund answer. On an unknown outcome
// the operation stays inprogress for the reconciler, and so does the charge
// (spec §4.3: a timeout after the request was sent → charge inprogress):
// its answer must not read as captured, cancelled or refunded, nor as
// untouched, while nobody knows.
func (s *Service) finishOp(ctx context.Context, started Charge, account, id, txnID, ext string, callErr error) (Charge, error) {
	var decline *errs.Decline
	if callErr != nil {
		var e *errs.Error
		if !errors.As(callErr, &e) || e.Decline == nil {
			c, err := s.store.UpdateCharge(ctx, account, id, func(c *Charge) (*Stats, error) {
				if t := c.txn(txnID); t != nil && t.Status == TxnInProgress {
					c.Status = InProgress // unless the reconciler was quicker
				}
				return nil, nil
			})
			if err != nil {
				return started, fmt.Errorf("%w: %w", ErrNotRecorded, err)
			}
			return c, nil
		}
		decline = e.Decline
	}
	now := s.stamp()
	c, err := s.store.UpdateCharge(ctx, account, id, func(c *Charge) (*Stats, error) {
		return c.settleOp(txnID, ext, decline, now), nil
	})
	if err != nil {
		// As in settle: the operation is answered as begun (inprogress),
		// not as a retryable error.
		return started, fmt.Errorf("%w: %w", ErrNotRecorded, err)
	}
	if decline != nil {
		return c, &errs.Error{Kind: errs.Declined, Op: "charge", Decline: decline}
	}
	return c, nil
}

// settleOp applies a capture/void/refund answer to the charge.
func (c *Charge) settleOp(txnID, ext string, decline *errs.Decline, now time.Time) *Stats {
	t := c.txn(txnID)
	if t == nil || t.Status != TxnInProgress {
		return nil
	}
	t.UpdatedAt, c.UpdatedAt = now, now
	t.NextAttemptAt = time.Time{}
	if decline != nil {
		t.Status, t.Decline = TxnFailed, decline
		if c.Status == InProgress { // its outcome was unknown: as it was before
			c.Status = c.restingStatus()
		}
		return nil
	}
	switch t.Type {
	case CaptureTxn:
		t.Status, t.ExternalID = TxnComplete, c.ExternalID
		c.Status, c.Captured = Complete, t.Amount
		return c.stats(t.Amount)
	case Void:
		t.Status, t.ExternalID = TxnComplete, c.ExternalID
		c.Status = Cancelled
	case RefundTxn:
		// Accepted, not yet settled: the reconciler confirms it.
		t.Status, t.ExternalID = TxnRequested, ext
		t.NextAttemptAt = now
		c.Refunded += t.Amount
		c.Status = RefundRequested
	}
	return nil
}

// maxBackoff caps the reconciler's exponential backoff (spec §8.8).
const maxBackoff = time.Hour

// ReconcileOnce looks up every due transaction once and settles what the
// gateway knows. It returns how many charges it examined.
func (s *Service) ReconcileOnce(ctx context.Context, limit int) (int, error) {
	now := s.now()
	due, err := s.store.DueForReconcile(ctx, now, now.Add(2*time.Minute), limit)
	if err != nil {
		return 0, errs.Wrap("charge.Reconcile", err)
	}
	for _, c := range due {
		g, err := s.gateways.Get(ctx, c.AccountID, c.GatewayID)
		if err != nil {
			continue
		}
		conn, key, err := s.conn(g)
		if err != nil {
			continue
		}
		for _, t := range c.Transactions {
			if t.NextAttemptAt.IsZero() || t.NextAttemptAt.After(now) || (t.Status != TxnInProgress && t.Status != TxnRequested) {
				continue
			}
			l, lerr := lookup(ctx, conn, g, key, c, t)
			grace := gateway.DefaultNoRecordAfter
			if lag, ok := conn.(gateway.RecordLag); ok {
				grace = lag.NoRecordAfter()
			}
			if err := s.applyLookup(ctx, c, t, l, lerr, grace); err != nil {
				return len(due), err
			}
		}
	}
	return len(due), nil
}

// opKinds names the operations gateway.OpRef knows, by transaction type.
var opKinds = map[string]string{CaptureTxn: "capture", Void: "cancel", RefundTxn: "refund"}

// lookup asks the gateway about t. An operation on a charge the gateway
// knows (it has the charge's external_id) is read by id where the
// connector can (gateway.OpLookup); a sale or authorisation whose answer
// was lost has only our reference.
func lookup(ctx context.Context, conn gateway.Connector, g gateway.Gateway, key string, c Charge, t Txn) (gateway.Lookup, error) {
	if ol, ok := conn.(gateway.OpLookup); ok && opKinds[t.Type] != "" && c.ExternalID != "" {
		return ol.LookupOp(ctx, g, key, gateway.OpRef{TxnID: t.ID, Kind: opKinds[t.Type], ChargeExternalID: c.ExternalID, ExternalID: t.ExternalID})
	}
	return conn.Lookup(ctx, g, key, t.ID)
}

func (s *Service) applyLookup(ctx context.Context, c Charge, t Txn, l gateway.Lookup, lerr error, noRecord time.Duration) error {
	now := s.stamp()
	_, err := s.store.UpdateCharge(ctx, c.AccountID, c.ID, func(c *Charge) (*Stats, error) {
		tx := c.txn(t.ID)
		if tx == nil || (tx.Status != TxnInProgress && tx.Status != TxnRequested) {
			return nil, nil
		}
		switch {
		case lerr != nil || (!l.Found && now.Sub(tx.CreatedAt) < noRecord) || (l.Found && l.Pending):
			tx.Attempts++
			backoff := s.Reconcile << min(tx.Attempts, 20)
			if backoff > maxBackoff || backoff <= 0 {
				backoff = maxBackoff
			}
			tx.NextAttemptAt = now.Add(backoff)
			return nil, nil
		case !l.Found:
			d := &errs.Decline{Code: "gateway_error", Message: "Gateway Error", GatewayCode: "no_record", GatewayDescription: "no record at the gateway"}
			if tx.Status == TxnRequested {
				return c.settleRefund(tx, false, d, now), nil
			}
			if tx.Type == Sale || tx.Type == Authorization {
				return c.settleCharge(tx.ID, "", d, now), nil
			}
			return c.settleOp(tx.ID, "", d, now), nil
		case tx.Status == TxnRequested:
			return c.settleRefund(tx, l.Succeeded, l.Decline, now), nil
		case tx.Type == Sale || tx.Type == Authorization:
			var d *errs.Decline
			if !l.Succeeded {
				d = l.Decline
			}
			return c.settleCharge(tx.ID, l.ExternalID, d, now), nil
		default:
			var d *errs.Decline
			if !l.Succeeded {
				d = l.Decline
			}
			return c.settleOp(tx.ID, l.ExternalID, d, now), nil
		}
	})
	return err
}

// settleRefund confirms or fails a requested refund (spec §8.8).
func (c *Charge) settleRefund(t *Txn, ok bool, d *errs.Decline, now time.Time) *Stats {
	t.UpdatedAt, c.UpdatedAt, t.NextAttemptAt = now, now, time.Time{}
	if ok {
		t.Status = TxnComplete
	} else {
		t.Status, t.Decline = TxnFailed, d
		c.Refunded -= t.Amount
	}
	if c.Status != InProgress { // else an operation's outcome is still unknown
		c.Status = c.restingStatus()
	}
	return nil
}

// restingStatus is the charge's status when no operation on it waits for
// its outcome: pending while nothing is captured; once captured,
// refund_requested while a refund is unconfirmed, refunded when the
// refunds equal the captured amount, complete otherwise.
func (c *Charge) restingStatus() string {
	if c.Captured == 0 {
		return Pending
	}
	for _, o := range c.Transactions {
		if o.Type == RefundTxn && o.Status == TxnRequested {
			return RefundRequested
		}
	}
	if c.Refunded == c.Captured {
		return Refunded
	}
	return Complete
}
