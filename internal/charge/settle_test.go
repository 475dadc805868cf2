package charge

import (
	"testing"
	"time"

	"switchyard/internal/errs"
)

// An operation whose outcome was unknown left the charge inprogress (spec
// §4.3); once the reconciler learns it, the charge takes the status the
// answer gives, or, refused, the one it had before (§8.2, §8.8).
func TestSettleOpAfterUnknownOutcome(t *testing.T) {
	now := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	declined := &errs.Decline{Code: "gateway_error"}
	auth := Txn{ID: "a", Type: Authorization, Status: TxnComplete, Amount: 3000}
	sale := Txn{ID: "s", Type: Sale, Status: TxnComplete, Amount: 3000}
	refund := func(id, status string, amt int64) Txn {
		return Txn{ID: id, Type: RefundTxn, Status: status, Amount: amt}
	}
	for _, tc := range []struct {
		name      string
		c         Charge
		op        Txn // the operation that was unknown
		decline   *errs.Decline
		status    string
		captured  int64
		refunded  int64
		withStats bool
	}{
		{"capture happened", Charge{Amount: 3000}, Txn{Type: CaptureTxn, Amount: 2000}, nil, Complete, 2000, 0, true},
		{"capture refused", Charge{Amount: 3000}, Txn{Type: CaptureTxn, Amount: 2000}, declined, Pending, 0, 0, false},
		{"cancel happened", Charge{Amount: 3000}, Txn{Type: Void, Amount: 3000}, nil, Cancelled, 0, 0, false},
		{"cancel refused", Charge{Amount: 3000}, Txn{Type: Void, Amount: 3000}, declined, Pending, 0, 0, false},
		{"refund accepted", Charge{Amount: 3000, Captured: 3000}, Txn{Type: RefundTxn, Amount: 1000}, nil, RefundRequested, 3000, 1000, false},
		{"refund refused", Charge{Amount: 3000, Captured: 3000}, Txn{Type: RefundTxn, Amount: 1000}, declined, Complete, 3000, 0, false},
		{"refund refused beside an unconfirmed one", Charge{Amount: 3000, Captured: 3000, Refunded: 500,
			Transactions: []Txn{sale, refund("r1", TxnRequested, 500)}}, Txn{Type: RefundTxn, Amount: 1000}, declined, RefundRequested, 3000, 500, false},
		{"refund refused after full refunds", Charge{Amount: 3000, Captured: 1000, Refunded: 1000,
			Transactions: []Txn{sale, refund("r1", TxnComplete, 1000)}}, Txn{Type: RefundTxn, Amount: 1}, declined, Refunded, 1000, 1000, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.c
			c.CustomerID = "cus"
			if c.Transactions == nil {
				first := auth
				if c.Captured > 0 {
					first = sale
				}
				c.Transactions = []Txn{first}
			}
			op := tc.op
			op.ID, op.Status = "op", TxnInProgress
			c.Transactions = append(append([]Txn(nil), c.Transactions...), op)
			c.Status = InProgress
			st := c.settleOp("op", "ext", tc.decline, now)
			if c.Status != tc.status || c.Captured != tc.captured || c.Refunded != tc.refunded {
				t.Errorf("status %s captured %d refunded %d, want %s %d %d", c.Status, c.Captured, c.Refunded, tc.status, tc.captured, tc.refunded)
			}
			if (st != nil) != tc.withStats {
				t.Errorf("stats %+v, want some: %v", st, tc.withStats)
			}
			got := c.txn("op")
			switch {
			case tc.op.Type == RefundTxn && tc.decline == nil:
				// Accepted, to be confirmed by the reconciler's next pass.
				if got.Status != TxnRequested || got.NextAttemptAt.IsZero() {
					t.Errorf("accepted refund left %s, next attempt %v", got.Status, got.NextAttemptAt)
				}
			case got.Status == TxnInProgress || !got.NextAttemptAt.IsZero():
				t.Errorf("operation left %s, next attempt %v", got.Status, got.NextAttemptAt)
			}
		})
	}
}

// A refund confirmed while another operation's outcome is unknown leaves
// the charge inprogress; with none unknown, it takes the resting status.
func TestSettleRefundKeepsUnknownOperation(t *testing.T) {
	now := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	base := func(status string, second Txn) Charge {
		return Charge{Amount: 3000, Captured: 3000, Refunded: 3000, Status: status, Transactions: []Txn{
			{ID: "s", Type: Sale, Status: TxnComplete, Amount: 3000},
			{ID: "r1", Type: RefundTxn, Status: TxnRequested, Amount: 1000},
			second,
		}}
	}
	c := base(InProgress, Txn{ID: "r2", Type: RefundTxn, Status: TxnInProgress, Amount: 2000})
	c.Refunded = 1000
	c.settleRefund(c.txn("r1"), true, nil, now)
	if c.Status != InProgress {
		t.Errorf("with an unknown refund beside it: %s, want inprogress", c.Status)
	}
	c = base(RefundRequested, Txn{ID: "r2", Type: RefundTxn, Status: TxnComplete, Amount: 2000})
	c.settleRefund(c.txn("r1"), true, nil, now)
	if c.Status != Refunded {
		t.Errorf("all refunds confirmed: %s, want refunded", c.Status)
	}
	c = base(RefundRequested, Txn{ID: "r2", Type: RefundTxn, Status: TxnComplete, Amount: 2000})
	c.settleRefund(c.txn("r1"), false, &errs.Decline{Code: "gateway_error"}, now)
	if c.Status != Complete || c.Refunded != 2000 {
		t.Errorf("one refund failed: %s refunded %d, want complete 2000", c.Status, c.Refunded)
	}
}

// A refused sale keeps the gateway's id of the refused attempt when the
// gateway gave one (a Stripe PaymentIntent): external_id "once known", §8.4.
func TestSettleChargeDeclineKeepsExternalID(t *testing.T) {
	now := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	for _, ext := range []string{"pi_123", ""} {
		c := Charge{Amount: 100, Status: InProgress, Transactions: []Txn{{ID: "s", Type: Sale, Status: TxnInProgress, Amount: 100}}}
		c.settleCharge("s", ext, &errs.Decline{Code: "transaction_declined"}, now)
		if c.Status != Failed || c.ExternalID != ext || c.Transactions[0].ExternalID != ext || c.Transactions[0].Status != TxnFailed {
			t.Errorf("ext %q: charge %s %q, txn %s %q", ext, c.Status, c.ExternalID, c.Transactions[0].Status, c.Transactions[0].ExternalID)
		}
	}
}
