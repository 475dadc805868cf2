package gateway

import (
	"context"
	"errors"
	"time"

	"switchyard/internal/errs"
)

// Observer records one gateway call: the gateway type, the operation
// (Operations), its outcome (Outcomes) and how long it took.
type Observer func(gatewayType, operation, outcome string, d time.Duration)

// The operations an Observer sees (Operations).
const (
	opStoreCard = "store_card"
	opCharge    = "charge"
	opCapture   = "capture"
	opCancel    = "cancel"
	opRefund    = "refund"
	opLookup    = "lookup"
)

// Types, Operations and Outcomes are every value of an Observer's labels,
// so metrics can show each series from the start.
var (
	Types      = []string{Simulator, Stripe}
	Operations = []string{opStoreCard, opCharge, opCapture, opCancel, opRefund, opLookup}
	Outcomes   = []string{outcomeOK, outcomeDeclined, outcomeError, outcomeUnknown}
)

// The outcomes an Observer sees (Outcomes).
const (
	outcomeOK       = "ok"
	outcomeDeclined = "declined"
	outcomeError    = "error"
	outcomeUnknown  = "unknown"
)

// Instrument wraps every connector of cs so each call is observed.
func Instrument(cs Connectors, observe Observer) Connectors {
	out := Connectors{}
	for typ, c := range cs {
		out[typ] = instrumented{c: c, typ: typ, observe: observe}
	}
	return out
}

type instrumented struct {
	c       Connector
	typ     string
	observe Observer
}

func outcome(err error) string {
	switch {
	case err == nil:
		return outcomeOK
	case errors.Is(err, ErrUnknownOutcome):
		return outcomeUnknown
	case errs.KindOf(err) == errs.Declined:
		return outcomeDeclined
	}
	return outcomeError
}

func (i instrumented) done(op string, start time.Time, err error) {
	i.observe(i.typ, op, outcome(err), time.Since(start))
}

func (i instrumented) StoreCard(ctx context.Context, req StoreRequest) (s Stored, err error) {
	defer func(start time.Time) { i.done(opStoreCard, start, err) }(time.Now())
	return i.c.StoreCard(ctx, req)
}

func (i instrumented) Charge(ctx context.Context, req ChargeRequest) (ext string, err error) {
	defer func(start time.Time) { i.done(opCharge, start, err) }(time.Now())
	return i.c.Charge(ctx, req)
}

func (i instrumented) Capture(ctx context.Context, req OpRequest) (err error) {
	defer func(start time.Time) { i.done(opCapture, start, err) }(time.Now())
	return i.c.Capture(ctx, req)
}

func (i instrumented) Cancel(ctx context.Context, req OpRequest) (err error) {
	defer func(start time.Time) { i.done(opCancel, start, err) }(time.Now())
	return i.c.Cancel(ctx, req)
}

func (i instrumented) Refund(ctx context.Context, req OpRequest) (ext string, err error) {
	defer func(start time.Time) { i.done(opRefund, start, err) }(time.Now())
	return i.c.Refund(ctx, req)
}

func (i instrumented) Lookup(ctx context.Context, g Gateway, key, txnID string) (l Lookup, err error) {
	defer func(start time.Time) { i.done(opLookup, start, err) }(time.Now())
	return i.c.Lookup(ctx, g, key, txnID)
}

// NoRecordAfter passes the wrapped connector's RecordLag through (the
// 10 minutes of spec §4.3 when it has none).
func (i instrumented) NoRecordAfter() time.Duration {
	if lag, ok := i.c.(RecordLag); ok {
		return lag.NoRecordAfter()
	}
	return DefaultNoRecordAfter
}

// LookupOp passes the wrapped connector's OpLookup through; without one it
// is Lookup by our reference.
func (i instrumented) LookupOp(ctx context.Context, g Gateway, key string, op OpRef) (l Lookup, err error) {
	defer func(start time.Time) { i.done(opLookup, start, err) }(time.Now())
	if ol, ok := i.c.(OpLookup); ok {
		return ol.LookupOp(ctx, g, key, op)
	}
	return i.c.Lookup(ctx, g, key, op.TxnID)
}
