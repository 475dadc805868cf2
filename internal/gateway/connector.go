package gateway

import (
	"context"
	"errors"
	"time"

	"switchyard/internal/errs"
	"switchyard/internal/vault"
)

// StoreRequest asks a gateway to keep a card for later charges: it creates
// a gateway-side customer holding the card (spec §4.2, §4.3).
type StoreRequest struct {
	Gateway    Gateway
	Key        string // the gateway's opened credential ("" for the Simulator)
	CustomerID string // Switchyard's customer id
	SourceID   string // Switchyard's payment source id (idempotency and metadata)
	RefToken   string // an existing gateway-side customer: replace its card
	Card       vault.Card
	Address    vault.Address
	Name       string
	Email      string
	Phone      string
}

// Stored is what the gateway keeps.
type Stored struct {
	RefToken   string // gateway-side customer reference (ref_token)
	GatewayRef string // gateway-side card reference (never on the wire)
}

// Connector talks to one kind of processor. A refusal is an *errs.Error of
// kind Declined or Gateway carrying its Decline.
type Connector interface {
	StoreCard(ctx context.Context, req StoreRequest) (Stored, error)
	Mover
}

// Connectors maps a gateway type to its connector.
type Connectors map[string]Connector

// For returns the connector of g's type.
func (cs Connectors) For(g Gateway) (Connector, error) {
	c, ok := cs[g.Type]
	if !ok {
		return nil, &errs.Error{Kind: errs.Gateway, Op: "gateway.For", Decline: &errs.Decline{
			Code: "gateway_error", Message: "Gateway Error", GatewayCode: "not_supported",
			GatewayDescription: "the " + g.Type + " connector is not available in this version"}}
	}
	return c, nil
}

// ErrUnknownOutcome is returned when a gateway did not answer a call that
// may have acted: the outcome must be looked up, never guessed or re-sent.
var ErrUnknownOutcome = errors.New("the gateway did not answer in time; outcome unknown")

// ChargeRequest asks a gateway to authorise (Capture false) or sell.
type ChargeRequest struct {
	Gateway     Gateway
	Key         string
	TxnID       string // Switchyard's transaction id: idempotency key and lookup reference
	ChargeID    string
	Amount      int64  // minor units
	Currency    string // ISO code, upper-case
	Capture     bool
	Card        vault.Card // the card (opened from the vault or the request)
	RefToken    string     // a source stored at this gateway: its customer reference
	GatewayRef  string     // … and its card reference
	Description string
}

// OpRequest asks for capture, cancel or refund of an earlier charge.
type OpRequest struct {
	Gateway    Gateway
	Key        string
	TxnID      string
	ExternalID string // the charge's id at the gateway
	Amount     int64
	Currency   string
}

// Lookup is what a gateway knows of one of our transactions.
type Lookup struct {
	Found      bool
	Succeeded  bool   // the operation took effect
	Pending    bool   // not settled yet (refunds)
	ExternalID string // the gateway's id of what it did
	Decline    *errs.Decline
}

// RecordLag is implemented by a connector whose lookups can miss a
// transaction that did happen for a while (a search index that lags): how
// long after the attempt "no record" may be believed. Without it the
// reconciler believes it after DefaultNoRecordAfter.
type RecordLag interface {
	NoRecordAfter() time.Duration
}

// DefaultNoRecordAfter is how long a transaction the gateway has no record
// of stays unknown before it fails (spec §4.3).
const DefaultNoRecordAfter = 10 * time.Minute

// OpLookup is implemented by a connector that can look a capture, cancel
// or refund up by the charge's own reference at the gateway (its
// external_id) and the operation's (a refund's, when the gateway gave one):
// reads by id, which see every write at once, where Lookup by our
// reference alone may go through an index that lags.
type OpLookup interface {
	LookupOp(ctx context.Context, g Gateway, key string, op OpRef) (Lookup, error)
}

// OpRef names an operation on a charge for OpLookup.
type OpRef struct {
	TxnID            string
	Kind             string // "capture", "cancel" or "refund"
	ChargeExternalID string // the charge's reference at the gateway
	ExternalID       string // the operation's own, when known (a refund's)
}

// Mover moves money. Refusals are *errs.Error with a Decline; a call whose
// outcome is unknown returns ErrUnknownOutcome. Charge returns the
// gateway's id with a refusal or an unknown outcome too when the gateway
// has a record of the attempt (a Stripe PaymentIntent refused, or still
// processing).
type Mover interface {
	Charge(ctx context.Context, req ChargeRequest) (externalID string, err error)
	Capture(ctx context.Context, req OpRequest) error
	Cancel(ctx context.Context, req OpRequest) error
	Refund(ctx context.Context, req OpRequest) (externalID string, err error)
	// Lookup finds a transaction by our reference; it never re-sends it.
	Lookup(ctx context.Context, g Gateway, key, txnID string) (Lookup, error)
}
