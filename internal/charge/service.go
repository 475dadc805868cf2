package charge

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"switchyard/internal/contact"
	"switchyard/internal/customer"
	"switchyard/internal/errs"
	"switchyard/internal/gateway"
	"switchyard/internal/money"
	"switchyard/internal/page"
	"switchyard/internal/paydock"
	"switchyard/internal/vault"
)

// Vault is what charges need of the vault.
type Vault interface {
	CheckOneTime(ctx context.Context, account, token, path string) (vault.Record, error)
	UseToken(ctx context.Context, account, token, path string) (vault.Record, error)
	ForCharge(ctx context.Context, account, token, path string) (vault.Record, error)
	UseSession(ctx context.Context, account, token, path string) (vault.Record, error)
	Open(r vault.Record) (vault.Card, error)
	Mask(ctx context.Context, account string, c vault.Card) (vault.Record, error)
	Get(ctx context.Context, account, token string) (vault.Record, error)
}

// Customers is what charges need of customers.
type Customers interface {
	Get(ctx context.Context, account, id string) (customer.Customer, error)
	BySource(ctx context.Context, account, sourceID string) (customer.Customer, error)
}

// Gateways is what charges need of gateways.
type Gateways interface {
	Active(ctx context.Context, account, id, path string) (gateway.Gateway, error)
	Get(ctx context.Context, account, id string) (gateway.Gateway, error)
	Default(ctx context.Context, account string) (gateway.Gateway, bool, error)
	Key(g gateway.Gateway) (string, error)
}

// Service implements the charge use cases.
type Service struct {
	store      Store
	vault      Vault
	customers  Customers
	gateways   Gateways
	connectors gateway.Connectors
	now        func() time.Time
	// Reconcile is the base interval of reconciliation lookups (spec §8.8).
	Reconcile time.Duration
}

// NewService returns a Service.
func NewService(st Store, v Vault, cu Customers, g Gateways, cs gateway.Connectors, now func() time.Time, reconcile time.Duration) *Service {
	return &Service{store: st, vault: v, customers: cu, gateways: g, connectors: cs, now: now, Reconcile: reconcile}
}

func (s *Service) stamp() time.Time { return s.now().UTC().Truncate(time.Millisecond) }

// Input is a charge create body after wire decoding.
type Input struct {
	Amount          string
	Currency        string
	Capture         bool
	CaptureSet      bool
	QueryCapture    string // ?capture=
	Reference       string
	Description     string
	Meta            map[string]any
	MetaSet         bool
	CustomerID      string
	PaymentSourceID string
	Token           string
	Customer        customer.Text // first/last name, email, phone, reference
	Source          customer.SourceInput
	// Bad and CustomerBad hold the wire-decoding errors (wrong JSON type)
	// of top-level fields and of the customer object's, keyed by field
	// name (Source.Bad those of customer.payment_source): each is
	// reported in its field's turn of the §8.1 table (§3.4 step 6).
	Bad, CustomerBad map[string]error
}

// plan is a validated charge, ready for gateway selection.
type plan struct {
	amount   int64
	cur      money.Currency
	capture  bool
	gatewayP string     // customer.payment_source.gateway_id
	vaultTok string     // customer.payment_source.vault_token, normalised
	card     vault.Card // one-off card details, validated
	hasCard  bool
}

// validate checks the body in the order of the §8.1 table (§3.4 step 6),
// each field's wire error in its turn; it looks nothing up.
func (s *Service) validate(in *Input) (plan, error) {
	var p plan
	bad := func(m map[string]error, name string) error { return m[name] }
	// amount: its shape first; its decimals and range need the currency.
	if err := bad(in.Bad, "amount"); err != nil {
		return p, err
	}
	if in.Amount == "" {
		return p, errs.Invalidf("amount", "amount is required")
	}
	if err := money.CheckAmountText("amount", in.Amount); err != nil {
		return p, err
	}
	if err := bad(in.Bad, "currency"); err != nil {
		return p, err
	}
	if in.Currency == "" {
		return p, errs.Invalidf("currency", "currency is required")
	}
	cur, ok := money.LookupCurrency(in.Currency)
	if !ok {
		return p, errs.Invalidf("currency", "currency must be an ISO 4217 code")
	}
	amt, err := money.ParseAmount("amount", in.Amount, cur)
	if err != nil {
		return p, err
	}
	p.amount, p.cur, p.capture = amt, cur, true
	if err := bad(in.Bad, "capture"); err != nil {
		return p, err
	}
	if in.CaptureSet && !in.Capture {
		p.capture = false
	}
	switch strings.ToLower(in.QueryCapture) {
	case "", "true":
	case "false":
		p.capture = false
	default:
		return p, errs.Query("capture", "capture must be true or false")
	}
	for _, f := range []struct{ name, v string }{{"reference", in.Reference}, {"description", in.Description}} {
		if err := bad(in.Bad, f.name); err != nil {
			return p, err
		}
		if err := contact.Text(f.name, f.name, f.v); err != nil {
			return p, err
		}
	}
	if err := bad(in.Bad, "meta"); err != nil {
		return p, err
	}
	if in.MetaSet {
		if err := customer.CheckMeta(in.Meta); err != nil {
			return p, err
		}
	}
	for _, f := range []struct{ name, v string }{{"customer_id", in.CustomerID}, {"payment_source_id", in.PaymentSourceID}} {
		if err := bad(in.Bad, f.name); err != nil {
			return p, err
		}
		if f.v != "" && !paydock.IsID(f.v) {
			return p, errs.Invalidf(f.name, "%s must be a mongodb id", f.name)
		}
	}
	in.CustomerID, in.PaymentSourceID = paydock.NormalizeID(in.CustomerID), paydock.NormalizeID(in.PaymentSourceID)
	ps, sb := in.Source, in.Source.Bad
	if in.CustomerID != "" || in.PaymentSourceID != "" {
		// Rule 1: the customer object is ignored but for the gateway of a
		// gateway-less source and a re-typed CVV; the token is ignored.
		if err := bad(sb, "gateway_id"); err != nil {
			return p, err
		}
		if p.gatewayP, err = vault.CheckGatewayID("customer.payment_source.gateway_id", ps.GatewayID); err != nil {
			return p, err
		}
		return p, bad(sb, "card_ccv")
	}
	p.hasCard = ps.HasCard()
	if err := bad(in.Bad, "token"); err != nil {
		return p, err
	}
	if in.Token != "" {
		if p.hasCard || ps.Sent("vault_token", ps.VaultToken) {
			return p, errs.Invalidf("token", "token cannot be combined with customer.payment_source")
		}
		t, err := vault.CheckToken("token", "token", in.Token)
		if err != nil {
			return p, err
		}
		in.Token = t
	}
	if err := bad(in.Bad, "customer"); err != nil {
		return p, err
	}
	t := in.Customer
	for _, f := range []struct{ name, v string }{{"first_name", t.FirstName}, {"last_name", t.LastName}, {"email", t.Email},
		{"phone", t.Phone}, {"reference", t.Reference}} {
		if err := bad(in.CustomerBad, f.name); err != nil {
			return p, err
		}
		path := "customer." + f.name
		switch {
		case f.name == "email" && f.v != "":
			err = contact.Email(path, f.v)
		case f.name == "phone" && f.v != "":
			in.Customer.Phone, err = contact.Phone(path, f.v, ps.Address.Country)
		default:
			err = contact.Text(path, f.name, f.v)
		}
		if err != nil {
			return p, err
		}
	}
	if err := bad(in.CustomerBad, "payment_source"); err != nil {
		return p, err
	}
	if err := s.validateOneOff(ps, &p); err != nil {
		return p, errs.WithPrefix(err, "customer.payment_source.")
	}
	return p, nil
}

// validateOneOff checks customer.payment_source of a one-off charge (rules
// 2 and 3) in table order; paths are relative to it.
func (s *Service) validateOneOff(ps customer.SourceInput, p *plan) error {
	sb := ps.Bad
	if err := sb["gateway_id"]; err != nil {
		return err
	}
	gid, err := vault.CheckGatewayID("gateway_id", ps.GatewayID)
	if err != nil {
		return err
	}
	p.gatewayP = gid
	if err := sb["vault_token"]; err != nil {
		return err
	}
	if ps.VaultToken != "" {
		if p.hasCard {
			return errs.Invalidf("", "payment_source must contain exactly one of card details, vault_token or token")
		}
		if p.vaultTok, err = vault.CheckToken("vault_token", "vault_token", ps.VaultToken); err != nil {
			return err
		}
	}
	switch {
	case p.hasCard:
		if p.card, err = vault.CheckCard(ps.Card, sb, s.now()); err != nil {
			return err
		}
	case sb["card_ccv"] != nil:
		return sb["card_ccv"]
	}
	if err := sb["type"]; err != nil {
		return err
	}
	if err := vault.CheckType("type", ps.Type); err != nil {
		return err
	}
	addr := ps.Address
	return vault.CheckAddressIn(&addr, sb, vault.AddressOrder)
}

// source is the chosen payment source of a charge.
type source struct {
	gw       gateway.Gateway
	card     vault.Card
	snap     Snapshot
	oneOff   bool
	token    string // one-time token to consume at step 9
	session  string // session vault token to consume at step 9
	refToken string
	gwRef    string
}

// choose picks the source (spec §8.1 "Choosing the source") and gateway
// (§8.3), checking every reference (step 7) without acting.
func (s *Service) choose(ctx context.Context, account string, in Input, p plan) (source, error) {
	var src source
	ps := in.Source
	ccv := ps.Card.CCV
	switch {
	case in.CustomerID != "" || in.PaymentSourceID != "":
		var cu customer.Customer
		var err error
		if in.CustomerID != "" {
			cu, err = s.customers.Get(ctx, account, in.CustomerID)
			if errs.KindOf(err) == errs.NotFound {
				return src, errs.Invalidf("customer_id", "customer not found")
			}
		} else {
			cu, err = s.customers.BySource(ctx, account, in.PaymentSourceID)
			if errs.KindOf(err) == errs.NotFound {
				return src, errs.Invalidf("payment_source_id", "payment source not found")
			}
		}
		if err != nil {
			return src, err
		}
		path := "customer_id"
		if in.CustomerID == "" {
			path = "payment_source_id"
		}
		if cu.Archived {
			return src, errs.Invalidf(path, "customer is archived")
		}
		if len(cu.Sources) == 0 {
			return src, errs.Invalidf(path, "customer has no active payment source")
		}
		want := in.PaymentSourceID
		if want == "" {
			want = cu.DefaultSource
		}
		var cs *customer.Source
		for i := range cu.Sources {
			if cu.Sources[i].ID == want {
				cs = &cu.Sources[i]
			}
		}
		if cs == nil {
			return src, errs.Invalidf("payment_source_id", "payment source not found")
		}
		if ccv != "" {
			if err := vault.CheckCCV("customer.payment_source.card_ccv", ccv, cs.Card.Scheme); err != nil {
				return src, err
			}
		}
		if cs.GatewayID != "" {
			g, err := s.gateways.Get(ctx, account, cs.GatewayID)
			if err != nil {
				return src, err
			}
			if g.Archived {
				return src, errs.Unfulfilledf("", "the payment source's gateway is archived")
			}
			src.gw, src.refToken, src.gwRef = g, cs.RefToken, cs.GatewayRef
		} else if src.gw, err = s.gatewayFor(ctx, account, p.gatewayP, gatewayPath, true); err != nil {
			return src, err
		}
		// A source keeps working after its vault token is archived (§6.2).
		rec, err := s.vault.Get(ctx, account, cs.VaultToken)
		if err != nil {
			return src, err
		}
		if src.card, err = s.vault.Open(rec); err != nil {
			return src, err
		}
		src.card.CCV = ccv
		src.snap = Snapshot{CustomerID: cu.ID, FirstName: cu.Text.FirstName, LastName: cu.Text.LastName, Email: cu.Text.Email,
			Phone: cu.Text.Phone, Reference: cu.Text.Reference, Source: sourceSnap(cs.Card, cs.ID, cs.VaultToken, src.gw)}
		return src, nil
	case in.Token != "":
		tok, err := s.vault.CheckOneTime(ctx, account, in.Token, "token")
		if err != nil {
			return src, err
		}
		// The token's own gateway unless the body names one; its errors
		// are reported where it came from, as on a customer (§5).
		gid, path := p.gatewayP, gatewayPath
		if gid == "" {
			gid, path = tok.GatewayID, "token"
		}
		if src.gw, err = s.gatewayFor(ctx, account, gid, path, false); err != nil {
			return src, err
		}
		src.token, src.oneOff = tok.Token, true
		src.snap = oneOffSnap(in.Customer, tok.Contact)
		src.snap.Source = sourceSnap(tok, "", "", src.gw)
		return src, nil
	case p.vaultTok != "" || p.hasCard:
		var err error
		if src.gw, err = s.gatewayFor(ctx, account, p.gatewayP, gatewayPath, false); err != nil {
			return src, err
		}
		src.oneOff = true
		src.snap = oneOffSnap(in.Customer, vault.Contact{})
		if p.vaultTok != "" {
			rec, err := s.vault.ForCharge(ctx, account, p.vaultTok, "customer.payment_source.vault_token")
			if err != nil {
				return src, err
			}
			if ccv != "" {
				if err := vault.CheckCCV("customer.payment_source.card_ccv", ccv, rec.Scheme); err != nil {
					return src, err
				}
			}
			if rec.Kind == vault.Session {
				src.session = rec.Token
			} else {
				if src.card, err = s.vault.Open(rec); err != nil {
					return src, err
				}
				src.card.CCV = ccv
			}
			src.snap.Source = sourceSnap(rec, "", rec.Token, src.gw)
			return src, nil
		}
		card := p.card
		masked, err := s.vault.Mask(ctx, account, card)
		if err != nil {
			return src, err
		}
		src.card = card
		src.snap.Source = sourceSnap(masked, "", "", src.gw)
		return src, nil
	}
	return src, errs.Invalidf("customer.payment_source", "a payment source is required: customer_id, payment_source_id, token or customer.payment_source")
}

// gatewayPath is where a charge's gateway_id is sent.
const gatewayPath = "customer.payment_source.gateway_id"

// gatewayFor resolves the charge's gateway: the one named (its errors at
// path, the field it came from), else (for gateway-less customer sources)
// the account's default.
func (s *Service) gatewayFor(ctx context.Context, account, id, path string, allowDefault bool) (gateway.Gateway, error) {
	if id != "" {
		return s.gateways.Active(ctx, account, id, path)
	}
	if allowDefault {
		g, ok, err := s.gateways.Default(ctx, account)
		if err != nil {
			return gateway.Gateway{}, err
		}
		if ok {
			return g, nil
		}
	}
	return gateway.Gateway{}, errs.Invalidf(gatewayPath, "gateway_id is required")
}

func oneOffSnap(t customer.Text, c vault.Contact) Snapshot {
	pick := func(a, b string) string {
		if a != "" {
			return a
		}
		return b
	}
	return Snapshot{FirstName: pick(t.FirstName, c.FirstName), LastName: pick(t.LastName, c.LastName),
		Email: pick(t.Email, c.Email), Phone: pick(t.Phone, c.Phone), Reference: t.Reference}
}

func sourceSnap(r vault.Record, id, vaultToken string, g gateway.Gateway) SourceSnapshot {
	return SourceSnapshot{ID: id, VaultToken: vaultToken, GatewayID: g.ID, GatewayName: g.Name, GatewayType: g.Type,
		CardName: r.CardName, Scheme: r.Scheme, BIN: r.BIN, Last4: r.Last4, Fingerprint: r.Fingerprint, ExpMonth: r.ExpMonth, ExpYear: r.ExpYear}
}

// Create runs POST /v1/charges. A decline returns the failed charge with
// the gateway error; an unanswered call returns the inprogress charge.
func (s *Service) Create(ctx context.Context, account string, in Input) (Charge, error) {
	p, err := s.validate(&in)
	if err != nil {
		return Charge{}, err
	}
	src, err := s.choose(ctx, account, in, p)
	if err != nil {
		return Charge{}, err
	}
	conn, err := s.connectors.For(src.gw)
	if err != nil {
		return Charge{}, err
	}
	key, err := s.gateways.Key(src.gw)
	if err != nil {
		return Charge{}, err
	}
	// Step 9: consume what is single use, write the intent, call, record.
	if src.token != "" {
		tok, err := s.vault.UseToken(ctx, account, src.token, "token")
		if err != nil {
			return Charge{}, err
		}
		if src.card, err = s.vault.Open(tok); err != nil {
			return Charge{}, err
		}
	}
	if src.session != "" {
		rec, err := s.vault.UseSession(ctx, account, src.session, "customer.payment_source.vault_token")
		if err != nil {
			return Charge{}, err
		}
		if src.card, err = s.vault.Open(rec); err != nil {
			return Charge{}, err
		}
		if in.Source.Card.CCV != "" {
			src.card.CCV = in.Source.Card.CCV
		}
	}
	now := s.stamp()
	typ := Sale
	if !p.capture {
		typ = Authorization
	}
	c := Charge{ID: paydock.NewID(), AccountID: account, CustomerID: src.snap.CustomerID, SourceID: src.snap.Source.ID, GatewayID: src.gw.ID,
		Amount: p.amount, Currency: p.cur, Reference: in.Reference, Description: in.Description, Status: InProgress,
		Capture: p.capture, Authorization: !p.capture, OneOff: src.oneOff, Customer: src.snap, CreatedAt: now, UpdatedAt: now}
	if in.MetaSet && len(in.Meta) > 0 {
		c.Meta = in.Meta
	}
	txn := Txn{ID: paydock.NewID(), Type: typ, Status: TxnInProgress, Amount: p.amount, CreatedAt: now, UpdatedAt: now,
		NextAttemptAt: now.Add(s.Reconcile)}
	c.Transactions = []Txn{txn}
	if err := s.store.CreateCharge(ctx, &c); err != nil {
		return Charge{}, errs.Wrap("charge.Create", err)
	}
	ext, callErr := conn.Charge(ctx, gateway.ChargeRequest{Gateway: src.gw, Key: key, TxnID: txn.ID, ChargeID: c.ID, Amount: p.amount,
		Currency: p.cur.Code, Capture: p.capture, Card: src.card, RefToken: src.refToken, GatewayRef: src.gwRef, Description: in.Description})
	return s.settle(context.WithoutCancel(ctx), c, txn.ID, ext, callErr)
}

// settle records the outcome of c's sale or authorisation call. c is the
// charge as just written: the outcome is applied to it in memory and
// stored by a conditional update, unless the reconciler got there first.
// ErrNotRecorded comes with a charge whose gateway answer could not be
// written (the database failed after the call). The charge returned is as
// its intent was, inprogress, and the reconciler records the outcome from
// the gateway: the caller answers it as a success with that status, never
// as a retryable error (a retry would move money again).
var ErrNotRecorded = errors.New("the gateway's answer could not be recorded; the reconciler will record it")

func (s *Service) settle(ctx context.Context, c Charge, txnID, ext string, callErr error) (Charge, error) {
	if errors.Is(callErr, gateway.ErrUnknownOutcome) {
		if ext == "" {
			return c, nil
		}
		// Outcome unknown, but the gateway's id is known (a Stripe intent
		// still processing): the charge shows it (§8.4) while it waits.
		known, err := s.store.UpdateCharge(ctx, c.AccountID, c.ID, func(c *Charge) (*Stats, error) {
			if t := c.txn(txnID); t != nil && t.Status == TxnInProgress && t.ExternalID == "" {
				t.ExternalID, c.ExternalID = ext, ext
			}
			return nil, nil
		})
		if err != nil {
			return c, nil // the reconciler finds the id too
		}
		return known, nil
	}
	var decline *errs.Decline
	if callErr != nil {
		var e *errs.Error
		if !errors.As(callErr, &e) || e.Decline == nil {
			// A failure before the gateway acted (e.g. a bad connection)
			// is still unknown to us: leave it to the reconciler.
			return c, nil
		}
		decline = e.Decline
	}
	intent := c
	intent.Transactions = slices.Clone(c.Transactions)
	st := c.settleCharge(txnID, ext, decline, s.stamp())
	ok, err := s.store.SettleTxn(ctx, &c, txnID, st)
	if err == nil && !ok {
		c, err = s.store.GetCharge(ctx, c.AccountID, c.ID)
	}
	if err != nil {
		// The gateway has answered but its answer could not be recorded
		// (the database is down). A 503 would tell the client to retry,
		// and a retry would charge again: the charge is answered as its
		// intent says, inprogress, and the reconciler records the outcome
		// from the gateway (spec §8.8).
		return intent, fmt.Errorf("%w: %w", ErrNotRecorded, err)
	}
	if decline != nil {
		return c, &errs.Error{Kind: errs.Declined, Op: "charge", Decline: decline}
	}
	return c, nil
}

// settleCharge applies a sale/authorisation outcome; it is a no-op when the
// transaction is already settled (the reconciler may race the request).
func (c *Charge) settleCharge(txnID, ext string, decline *errs.Decline, now time.Time) *Stats {
	t := c.txn(txnID)
	if t == nil || t.Status != TxnInProgress {
		return nil
	}
	t.UpdatedAt, t.NextAttemptAt = now, time.Time{}
	c.UpdatedAt = now
	if decline != nil {
		t.Status, t.Decline = TxnFailed, decline
		c.Status = Failed
		if ext != "" { // the gateway's record of the refused attempt
			t.ExternalID, c.ExternalID = ext, ext
		}
		return nil
	}
	t.Status, t.ExternalID = TxnComplete, ext
	c.ExternalID = ext
	if t.Type == Authorization {
		c.Status = Pending
		return nil
	}
	c.Status, c.Captured = Complete, c.Amount
	return c.stats(c.Captured)
}

func (c *Charge) stats(captured int64) *Stats {
	if c.CustomerID == "" {
		return nil
	}
	scale := int64(1)
	for i := c.Currency.Exponent; i < 4; i++ {
		scale *= 10
	}
	return &Stats{CustomerID: c.CustomerID, Count: 1, Collected: captured * scale}
}

func (c *Charge) txn(id string) *Txn {
	for i := range c.Transactions {
		if c.Transactions[i].ID == id {
			return &c.Transactions[i]
		}
	}
	return nil
}

// callRunning reports whether the charge's operation waiting for its
// answer began less than limit ago: its gateway call may still be running.
func (c *Charge) callRunning(now time.Time, limit time.Duration) bool {
	for _, t := range c.Transactions {
		if t.Status == TxnInProgress && now.Sub(t.CreatedAt) < limit {
			return true
		}
	}
	return false
}

// busy reports an operation of this charge still waiting for its answer.
func (c *Charge) busy() bool {
	for _, t := range c.Transactions {
		if t.Status == TxnInProgress {
			return true
		}
	}
	return false
}

func notFound() error { return errs.NotFoundf("id", "charge not found") }

// Get returns a charge.
func (s *Service) Get(ctx context.Context, account, id string) (Charge, error) {
	c, err := s.store.GetCharge(ctx, account, id)
	if err != nil {
		if errs.KindOf(err) == errs.NotFound {
			return Charge{}, notFound()
		}
		return Charge{}, errs.Wrap("charge.Get", err)
	}
	return c, nil
}

// List runs GET /v1/charges.
func (s *Service) List(ctx context.Context, account string, f Filter, p page.Params) ([]Charge, int, error) {
	cs, n, err := s.store.ListCharges(ctx, account, f, p)
	if err != nil {
		return nil, 0, errs.Wrap("charge.List", err)
	}
	return cs, n, nil
}

// Archive sets archived and nothing else.
func (s *Service) Archive(ctx context.Context, account, id string) (Charge, error) {
	c, err := s.Get(ctx, account, id)
	if err != nil || c.Archived {
		return c, err
	}
	now := s.stamp()
	c, err = s.store.UpdateCharge(ctx, account, id, func(c *Charge) (*Stats, error) {
		c.Archived, c.UpdatedAt = true, now
		return nil, nil
	})
	return c, errs.Wrap("charge.Archive", err)
}
