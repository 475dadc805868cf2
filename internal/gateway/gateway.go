// Package gateway holds an account's gateway configurations: types, modes,
// validation, write-only credentials sealed by the keyring, and the default
// gateway rule (spec §4).
package gateway

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"switchyard/internal/errs"
	"switchyard/internal/keyring"
	"switchyard/internal/page"
	"switchyard/internal/paydock"
)

// Types and modes.
const (
	Simulator = "Simulator"
	Stripe    = "Stripe"
	ModeTest  = "test"
	ModeLive  = "live"
)

// Gateway is one configured gateway. Credentials is the sealed key blob
// (keyring.Sealed.Marshal), never clear text.
type Gateway struct {
	ID          string
	AccountID   string
	Type        string
	Name        string
	Mode        string
	Default     bool
	Archived    bool
	Credentials []byte
	KeyVersion  int
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// Filter selects gateways in a list.
type Filter struct {
	Type string // canonical type, "" = any
	Mode string // "" = any
}

// Store keeps gateways. Create and Update keep the default rule: at most
// one default gateway per account, set when asked or when the gateway is
// the account's first active one.
type Store interface {
	CreateGateway(ctx context.Context, g *Gateway) error
	GetGateway(ctx context.Context, account, id string) (Gateway, error)
	// UpdateGateway reads the gateway in a write transaction, applies fn
	// and writes it back; fn's error aborts the update.
	UpdateGateway(ctx context.Context, account, id string, fn func(g *Gateway) error) (Gateway, error)
	ListGateways(ctx context.Context, account string, f Filter, p page.Params) ([]Gateway, int, error)
	// DefaultGateway returns the account's active default gateway, if any.
	DefaultGateway(ctx context.Context, account string) (Gateway, bool, error)
}

// Service implements the gateway use cases.
type Service struct {
	store Store
	ring  *keyring.Holder
	now   func() time.Time
}

// NewService returns a Service.
func NewService(store Store, ring *keyring.Holder, now func() time.Time) *Service {
	return &Service{store: store, ring: ring, now: now}
}

// Input is a create or update body after wire decoding; Set flags tell
// which fields were sent.
type Input struct {
	Type, Name, Mode, Key             string
	TypeSet, NameSet, ModeSet, KeySet bool
	Default, DefaultSet               bool
	// Bad holds wire errors (a wrong JSON type) by field name; each is
	// reported in its field's turn, so the first failing field in table
	// order wins (spec §3.4).
	Bad map[string]error
}

// CanonicalType maps any letter case to the canonical spelling, or "".
func CanonicalType(s string) string {
	switch strings.ToLower(s) {
	case "simulator":
		return Simulator
	case "stripe":
		return Stripe
	}
	return ""
}

var stripeKey = regexp.MustCompile(`^(sk|rk)_(test|live)_[A-Za-z0-9]{1,250}$`)

func checkName(name string) error {
	if name == "" {
		return errs.Invalidf("name", "name is required")
	}
	if utf8.RuneCountInString(name) > 100 {
		return errs.Invalidf("name", "name must be at most 100 characters")
	}
	return nil
}

func checkMode(typ, mode string) error {
	if mode != ModeTest && mode != ModeLive {
		return errs.Invalidf("mode", "mode must be one of: test, live")
	}
	if typ == Simulator && mode == ModeLive {
		return errs.Invalidf("mode", "mode must be test for a Simulator gateway")
	}
	return nil
}

func checkKey(mode, key string) error {
	m := stripeKey.FindStringSubmatch(key)
	if m == nil || m[2] != mode {
		return errs.Invalidf("key", "key must be a Stripe %s secret or restricted key (sk_%s_… or rk_%s_…)", mode, mode, mode)
	}
	return nil
}

// Create validates in spec §4.1 order and stores a new gateway.
func (s *Service) Create(ctx context.Context, account string, in Input) (Gateway, error) {
	if err := in.Bad["type"]; err != nil {
		return Gateway{}, err
	}
	typ := CanonicalType(in.Type)
	if in.Type == "" {
		return Gateway{}, errs.Invalidf("type", "type is required")
	}
	if typ == "" {
		return Gateway{}, errs.Invalidf("type", "type must be one of: Simulator, Stripe")
	}
	if err := in.Bad["name"]; err != nil {
		return Gateway{}, err
	}
	if err := checkName(in.Name); err != nil {
		return Gateway{}, err
	}
	if err := in.Bad["mode"]; err != nil {
		return Gateway{}, err
	}
	mode := in.Mode
	if mode == "" {
		mode = ModeTest
	}
	if err := checkMode(typ, mode); err != nil {
		return Gateway{}, err
	}
	if err := in.Bad["key"]; err != nil {
		return Gateway{}, err
	}
	now := s.now().UTC().Truncate(time.Millisecond)
	g := Gateway{ID: paydock.NewID(), AccountID: account, Type: typ, Name: in.Name, Mode: mode,
		Default: in.DefaultSet && in.Default, CreatedAt: now, UpdatedAt: now}
	if typ == Stripe {
		if in.Key == "" {
			return Gateway{}, errs.Invalidf("key", "key is required")
		}
		if err := checkKey(mode, in.Key); err != nil {
			return Gateway{}, err
		}
		if err := s.seal(&g, in.Key); err != nil {
			return Gateway{}, err
		}
	}
	if err := in.Bad["default"]; err != nil {
		return Gateway{}, err
	}
	if err := s.store.CreateGateway(ctx, &g); err != nil {
		return Gateway{}, errs.Wrap("gateway.Create", err)
	}
	return g, nil
}

func (s *Service) seal(g *Gateway, key string) error {
	sealed, err := s.ring.Seal([]byte(key), keyring.AAD("gateway", g.AccountID, g.ID))
	if err != nil {
		return errs.Wrap("gateway.seal", err)
	}
	g.Credentials = sealed.Marshal()
	g.KeyVersion = sealed.KeyVersion
	return nil
}

// Key opens a gateway's stored key (for connectors).
func (s *Service) Key(g Gateway) (string, error) {
	if len(g.Credentials) == 0 {
		return "", nil
	}
	sealed, err := keyring.Unmarshal(g.Credentials)
	if err != nil {
		return "", errs.Wrap("gateway.Key", err)
	}
	b, err := s.ring.Open(sealed, keyring.AAD("gateway", g.AccountID, g.ID))
	if err != nil {
		return "", errs.Wrap("gateway.Key", err)
	}
	return string(b), nil
}

// Get returns one gateway of the account (archived too).
func (s *Service) Get(ctx context.Context, account, id string) (Gateway, error) {
	g, err := s.store.GetGateway(ctx, account, id)
	if err != nil {
		return Gateway{}, errs.Wrap("gateway.Get", err)
	}
	return g, nil
}

// Update applies a PUT: absent fields keep their values.
func (s *Service) Update(ctx context.Context, account, id string, in Input) (Gateway, error) {
	now := s.now().UTC().Truncate(time.Millisecond)
	g, err := s.store.UpdateGateway(ctx, account, id, func(g *Gateway) error {
		if err := in.Bad["type"]; err != nil {
			return err
		}
		if in.TypeSet {
			if CanonicalType(in.Type) != g.Type {
				return errs.Invalidf("type", "type cannot be changed")
			}
		}
		if err := in.Bad["name"]; err != nil {
			return err
		}
		if in.NameSet {
			if err := checkName(in.Name); err != nil {
				return err
			}
			g.Name = in.Name
		}
		if err := in.Bad["mode"]; err != nil {
			return err
		}
		if in.ModeSet {
			if err := checkMode(g.Type, in.Mode); err != nil {
				return err
			}
			g.Mode = in.Mode
		}
		if err := in.Bad["key"]; err != nil {
			return err
		}
		if g.Type == Stripe && (in.KeySet || in.ModeSet) {
			key := in.Key
			if !in.KeySet {
				// A mode change must still match the stored key's prefix.
				k, err := s.Key(*g)
				if err != nil {
					return err
				}
				key = k
			}
			if err := checkKey(g.Mode, key); err != nil {
				return err
			}
			if in.KeySet {
				if err := s.seal(g, key); err != nil {
					return err
				}
			}
		}
		if err := in.Bad["default"]; err != nil {
			return err
		}
		// The state rule comes after field validation (spec §3.4).
		if g.Archived {
			return errs.Unfulfilledf("", "gateway is archived")
		}
		if in.DefaultSet {
			g.Default = in.Default
		}
		g.UpdatedAt = now
		return nil
	})
	if err != nil {
		return Gateway{}, errs.Wrap("gateway.Update", err)
	}
	return g, nil
}

// Archive archives a gateway; archiving again changes nothing. An archived
// gateway is no longer the default.
func (s *Service) Archive(ctx context.Context, account, id string) (Gateway, error) {
	now := s.now().UTC().Truncate(time.Millisecond)
	g, err := s.store.UpdateGateway(ctx, account, id, func(g *Gateway) error {
		if g.Archived {
			return errUnchanged
		}
		g.Archived = true
		g.Default = false
		g.UpdatedAt = now
		return nil
	})
	if errors.Is(err, errUnchanged) {
		return s.Get(ctx, account, id)
	}
	if err != nil {
		return Gateway{}, errs.Wrap("gateway.Archive", err)
	}
	return g, nil
}

// errUnchanged aborts an update that would change nothing.
var errUnchanged = errors.New("unchanged")

// List returns a page of the account's gateways and the total count.
func (s *Service) List(ctx context.Context, account string, f Filter, p page.Params) ([]Gateway, int, error) {
	gs, n, err := s.store.ListGateways(ctx, account, f, p)
	if err != nil {
		return nil, 0, errs.Wrap("gateway.List", err)
	}
	return gs, n, nil
}

// Active returns a gateway a request names in its body (spec §3.4 step 7):
// unknown or another account's → 400 "gateway not found", archived → 400
// "gateway is archived", both on path.
func (s *Service) Active(ctx context.Context, account, id, path string) (Gateway, error) {
	g, err := s.store.GetGateway(ctx, account, id)
	if err != nil {
		if errs.KindOf(err) == errs.NotFound {
			return Gateway{}, errs.Invalidf(path, "gateway not found")
		}
		return Gateway{}, errs.Wrap("gateway.Active", err)
	}
	if g.Archived {
		return Gateway{}, errs.Invalidf(path, "gateway is archived")
	}
	return g, nil
}

// CheckActive is Active without the gateway.
func (s *Service) CheckActive(ctx context.Context, account, id, path string) error {
	_, err := s.Active(ctx, account, id, path)
	return err
}

// Default returns the account's default gateway, if it has one (spec §8.3).
func (s *Service) Default(ctx context.Context, account string) (Gateway, bool, error) {
	g, ok, err := s.store.DefaultGateway(ctx, account)
	if err != nil {
		return Gateway{}, false, errs.Wrap("gateway.Default", err)
	}
	return g, ok, nil
}
