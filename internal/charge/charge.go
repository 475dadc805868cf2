// Package charge holds charges and their state machine (spec §8):
// authorise, capture, cancel, refund and reconciliation of unknown
// outcomes. Money movement writes its intent first, calls the gateway with
// the transaction id as idempotency key, then records the outcome; an
// unanswered call leaves the charge inprogress for the reconciler, never a
// guess.
package charge

import (
	"context"
	"time"

	"switchyard/internal/errs"
	"switchyard/internal/money"
	"switchyard/internal/page"
)

// Charge statuses (spec §8.2).
const (
	Complete        = "complete"
	Pending         = "pending"
	Failed          = "failed"
	Cancelled       = "cancelled"
	InProgress      = "inprogress"
	RefundRequested = "refund_requested"
	Refunded        = "refunded"
)

// Statuses are a charge's statuses (§8.2), in the order the spec lists them.
var Statuses = []string{Complete, Pending, Failed, Cancelled, InProgress, RefundRequested, Refunded}

// Transaction types and statuses.
const (
	Sale          = "sale"
	Authorization = "authorization"
	CaptureTxn    = "capture"
	Void          = "void"
	RefundTxn     = "refund"

	TxnComplete   = "complete"
	TxnFailed     = "failed"
	TxnInProgress = "inprogress"
	TxnRequested  = "requested"
)

// Charge is one charge and its transactions, oldest first.
type Charge struct {
	ID            string
	AccountID     string
	CustomerID    string
	SourceID      string
	GatewayID     string
	ExternalID    string
	Amount        int64 // minor units
	Captured      int64
	Refunded      int64
	Currency      money.Currency
	Reference     string
	Description   string
	Meta          map[string]any
	Status        string
	Capture       bool
	Authorization bool
	OneOff        bool
	Archived      bool
	Customer      Snapshot
	Transactions  []Txn
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// Snapshot is the charge's customer object as known when it was made.
type Snapshot struct {
	CustomerID, FirstName, LastName, Email, Phone, Reference string
	Source                                                   SourceSnapshot
}

// SourceSnapshot is the masked payment source of a charge.
type SourceSnapshot struct {
	ID, VaultToken, GatewayID, GatewayName, GatewayType string
	CardName, Scheme, BIN, Last4, Fingerprint           string
	ExpMonth, ExpYear                                   int
}

// Txn is one gateway call on a charge.
type Txn struct {
	ID            string
	Type          string
	Status        string
	Amount        int64
	ExternalID    string
	Decline       *errs.Decline
	Attempts      int       // reconciliation lookups so far
	NextAttemptAt time.Time // when the reconciler looks next (zero: settled)
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// Filter selects charges (spec §8.7).
type Filter struct {
	Status     string
	Reference  string
	CustomerID string
	GatewayID  string
	Search     string    // lower-cased
	From, To   time.Time // [From, To); zero = open
}

// Stats is a change to a customer's statistics, applied with the charge.
type Stats struct {
	CustomerID string
	Count      int
	Collected  int64 // in units of 1/customer.CollectedScale major units
}

// Store keeps charges.
type Store interface {
	CreateCharge(ctx context.Context, c *Charge) error
	GetCharge(ctx context.Context, account, id string) (Charge, error)
	// UpdateCharge loads the charge in a write transaction, applies fn,
	// writes the charge and its transactions, and applies the statistics fn
	// returns; fn's error aborts.
	UpdateCharge(ctx context.Context, account, id string, fn func(c *Charge) (*Stats, error)) (Charge, error)
	// SettleTxn stores the outcome settleCharge applied to c's transaction
	// txnID, provided that transaction is still inprogress in the store (a
	// conditional update, no read); false when the reconciler settled it
	// first, and nothing was written.
	SettleTxn(ctx context.Context, c *Charge, txnID string, st *Stats) (bool, error)
	ListCharges(ctx context.Context, account string, f Filter, p page.Params) ([]Charge, int, error)
	// DueForReconcile claims up to limit charges with a transaction whose
	// NextAttemptAt has passed, pushing it to lease so another node does not
	// take it meanwhile.
	DueForReconcile(ctx context.Context, now, lease time.Time, limit int) ([]Charge, error)
}
