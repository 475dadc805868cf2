package gateway

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"switchyard/internal/errs"
)

// fakeConn answers every call with err.
type fakeConn struct{ err error }

func (f fakeConn) StoreCard(context.Context, StoreRequest) (Stored, error) { return Stored{}, f.err }
func (f fakeConn) Charge(context.Context, ChargeRequest) (string, error)   { return "", f.err }
func (f fakeConn) Capture(context.Context, OpRequest) error                { return f.err }
func (f fakeConn) Cancel(context.Context, OpRequest) error                 { return f.err }
func (f fakeConn) Refund(context.Context, OpRequest) (string, error)       { return "", f.err }
func (f fakeConn) Lookup(context.Context, Gateway, string, string) (Lookup, error) {
	return Lookup{}, f.err
}

func TestInstrumentObservesEveryCall(t *testing.T) {
	cases := []struct {
		err     error
		outcome string
	}{
		{nil, "ok"},
		{&errs.Error{Kind: errs.Declined, Decline: &errs.Decline{Code: "transaction_declined"}}, "declined"},
		{&errs.Error{Kind: errs.Gateway, Decline: &errs.Decline{Code: "gateway_error"}}, "error"},
		{fmt.Errorf("wrapped: %w", ErrUnknownOutcome), "unknown"},
		{errors.New("boom"), "error"},
	}
	ctx := context.Background()
	for _, tc := range cases {
		var got []string
		cs := Instrument(Connectors{Stripe: fakeConn{tc.err}}, func(typ, op, outcome string, d time.Duration) {
			got = append(got, typ+"/"+op+"/"+outcome)
		})
		c, err := cs.For(Gateway{Type: Stripe})
		if err != nil {
			t.Fatal(err)
		}
		_, e1 := c.StoreCard(ctx, StoreRequest{})
		_, e2 := c.Charge(ctx, ChargeRequest{})
		e3 := c.Capture(ctx, OpRequest{})
		e4 := c.Cancel(ctx, OpRequest{})
		_, e5 := c.Refund(ctx, OpRequest{})
		_, e6 := c.Lookup(ctx, Gateway{}, "", "")
		for _, e := range []error{e1, e2, e3, e4, e5, e6} {
			if e != tc.err {
				t.Fatalf("the wrapper changed the error: %v, want %v", e, tc.err)
			}
		}
		want := fmt.Sprint([]string{"Stripe/store_card/" + tc.outcome, "Stripe/charge/" + tc.outcome, "Stripe/capture/" + tc.outcome,
			"Stripe/cancel/" + tc.outcome, "Stripe/refund/" + tc.outcome, "Stripe/lookup/" + tc.outcome})
		if fmt.Sprint(got) != want {
			t.Fatalf("observed %v, want %v", got, want)
		}
	}
}

type laggingConn struct{ fakeConn }

func (laggingConn) NoRecordAfter() time.Duration { return 2 * time.Hour }

// The reconciler sees a connector's RecordLag through the instrumentation.
func TestInstrumentKeepsRecordLag(t *testing.T) {
	cs := Instrument(Connectors{"Lagging": laggingConn{}, "Plain": fakeConn{}}, func(string, string, string, time.Duration) {})
	for typ, want := range map[string]time.Duration{"Lagging": 2 * time.Hour, "Plain": DefaultNoRecordAfter} {
		lag, ok := cs[typ].(RecordLag)
		if !ok || lag.NoRecordAfter() != want {
			t.Errorf("%s: RecordLag %v (%v), want %v", typ, ok, lag, want)
		}
	}
}

type opConn struct{ fakeConn }

func (opConn) LookupOp(context.Context, Gateway, string, OpRef) (Lookup, error) {
	return Lookup{Found: true, ExternalID: "by-id"}, nil
}

// LookupOp reaches the connector's own, or its Lookup by our reference.
func TestInstrumentLookupOp(t *testing.T) {
	boom := errors.New("by reference")
	cs := Instrument(Connectors{"Op": opConn{}, "Plain": fakeConn{err: boom}}, func(string, string, string, time.Duration) {})
	ref := OpRef{TxnID: "t", Kind: "refund", ChargeExternalID: "pi"}
	if l, err := cs["Op"].(OpLookup).LookupOp(t.Context(), Gateway{}, "k", ref); err != nil || l.ExternalID != "by-id" {
		t.Errorf("with OpLookup: %+v %v", l, err)
	}
	if _, err := cs["Plain"].(OpLookup).LookupOp(t.Context(), Gateway{}, "k", ref); !errors.Is(err, boom) {
		t.Errorf("without OpLookup: %v, want its Lookup's answer", err)
	}
}
