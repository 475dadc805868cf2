package app

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"switchyard/api"
	"switchyard/internal/auth"
	"switchyard/internal/charge"
	"switchyard/internal/customer"
	"switchyard/internal/gateway"
	"switchyard/internal/gateway/simulator"
	"switchyard/internal/gateway/stripe"
	"switchyard/internal/httpapi"
	"switchyard/internal/keyring"
	"switchyard/internal/store"
	"switchyard/internal/vault"
)

// Services are the domain services over one store and keyring. The binary
// and the HTTP tests build them the same way.
type Services struct {
	Store     *store.Store
	Keys      *keyring.Holder // the key set in use; serve swaps it on reload
	Now       func() time.Time
	Auth      *auth.Service
	Gateways  *gateway.Service
	Vault     *vault.Service
	Customers *customer.Service
	Charges   *charge.Service
}

// Options are the services' settings.
type Options struct {
	SimulatorLatency  time.Duration
	ReconcileInterval time.Duration // default 30 s
	StripeAPIBase     string        // default https://api.stripe.com
	// ObserveGateway, when set, sees every gateway call (metrics).
	ObserveGateway gateway.Observer
}

// NewServices builds every domain service.
func NewServices(st *store.Store, ring *keyring.Ring, now func() time.Time, opts Options) *Services {
	keys := keyring.NewHolder(ring)
	gateways := gateway.NewService(st, keys, now)
	v := vault.NewService(st, gateways, keys, now)
	connectors := gateway.Connectors{
		gateway.Simulator: simulator.WithLedger(opts.SimulatorLatency, st, now),
		gateway.Stripe:    stripe.New(opts.StripeAPIBase, &http.Client{Timeout: stripe.Timeout}),
	}
	if opts.ObserveGateway != nil {
		connectors = gateway.Instrument(connectors, opts.ObserveGateway)
	}
	customers := customer.NewService(st, v, gateways, connectors, now)
	if opts.ReconcileInterval <= 0 {
		opts.ReconcileInterval = 30 * time.Second
	}
	return &Services{
		Store: st, Keys: keys, Now: now,
		Auth:      auth.NewService(st, now),
		Gateways:  gateways,
		Vault:     v,
		Customers: customers,
		Charges:   charge.NewService(st, v, customers, gateways, connectors, now, opts.ReconcileInterval),
	}
}

// Deps returns the HTTP API's dependencies (no metrics, no CORS origins).
func (s *Services) Deps(log *slog.Logger) httpapi.Deps {
	return httpapi.Deps{
		Auth: s.Auth, Gateways: s.Gateways, Vault: s.Vault, Customers: s.Customers, Charges: s.Charges, Idempotency: s.Store, Health: s.Store.Ping,
		Log: log, Now: s.Now, OpenAPI: api.OpenAPI,
	}
}

// Sandbox creates the first account and its default Simulator gateway,
// named Sandbox, on an empty store and returns the lines to print (spec
// §11); nothing when an account exists.
func Sandbox(ctx context.Context, s *Services) (lines []string, err error) {
	// Nodes starting together on an empty database: one makes it, the
	// others then find an account (spec §11: the first start).
	err = s.Store.Exclusive(ctx, "sandbox", func() error {
		n, err := s.Auth.Count(ctx)
		if err != nil || n > 0 {
			return err
		}
		a, keys, err := s.Auth.Create(ctx, "Sandbox")
		if err != nil {
			return err
		}
		g, err := s.Gateways.Create(ctx, a.ID, gateway.Input{Type: gateway.Simulator, Name: "Sandbox", Default: true, DefaultSet: true})
		if err != nil {
			return err
		}
		lines = []string{"secret key: " + keys.Secret, "public key: " + keys.Public, "gateway id: " + g.ID}
		return nil
	})
	return lines, err
}
