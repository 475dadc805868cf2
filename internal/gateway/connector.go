package gateway

import (
	"context"

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
