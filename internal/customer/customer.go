// Package customer holds customers and their payment sources: the four
// creation flows of POST /v1/customers, search, update, archive and source
// replacement (spec §7). Gateway calls happen before any write, outside
// every transaction; the customer, its source and a new vault record are
// then written in one transaction.
package customer

import (
	"context"
	"encoding/json"
	"strings"
	"time"
	"unicode/utf8"

	"switchyard/internal/contact"
	"switchyard/internal/errs"
	"switchyard/internal/gateway"
	"switchyard/internal/page"
	"switchyard/internal/paydock"
	"switchyard/internal/search"
	"switchyard/internal/vault"
)

// CollectedScale is how many stored units make one major unit of
// Collected: amounts of every currency (exponents up to 4) add up exactly,
// and total_collected_amount is their sum rounded down (spec §7.3).
const CollectedScale = 10000

// Customer is one customer with its active sources, oldest first.
type Customer struct {
	ID            string
	AccountID     string
	Archived      bool
	Text          Text
	Meta          map[string]any // nil = unset
	DefaultSource string         // "" = none
	Successful    int
	Collected     int64 // in 1/CollectedScale major units
	Sources       []Source
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// Text are a customer's text fields.
type Text struct {
	FirstName, LastName, Email, Phone, Reference, Description, CompanyName string
}

// Search is the folded text that `search` matches (spec §7.5).
func (t Text) Search() string {
	return search.Text(t.FirstName, t.LastName, t.Email, t.CompanyName, t.Reference)
}

// Source is a payment source: a vault record, and for gateway-bound
// sources the gateway and its customer reference.
type Source struct {
	ID          string
	CustomerID  string
	AccountID   string
	VaultToken  string
	Status      string
	GatewayID   string
	GatewayName string
	GatewayType string
	GatewayMode string
	RefToken    string
	GatewayRef  string
	Address     vault.Address
	Card        vault.Record // the vault record's masked card fields
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// Filter selects customers (spec §7.5).
type Filter struct {
	Search          string `json:"q,omitempty"` // lower-cased
	ID              string `json:"id,omitempty"`
	GatewayID       string `json:"g,omitempty"`
	PaymentSourceID string `json:"ps,omitempty"`
	Reference       string `json:"r,omitempty"`
	CompanyName     string `json:"c,omitempty"`
	Status          string `json:"st,omitempty"` // "", active, archived
}

// NewSource is a source to write with its vault record when the record is
// new (flows 1 and 2); Vault is nil when the source links an existing one.
type NewSource struct {
	Vault  *vault.Record
	Source Source
}

// Store keeps customers.
type Store interface {
	CreateCustomer(ctx context.Context, c *Customer, src NewSource) error
	GetCustomer(ctx context.Context, account, id string) (Customer, error)
	// UpdateCustomer loads the customer in a write transaction, applies fn,
	// adds src when given, and writes the result; fn's error aborts.
	UpdateCustomer(ctx context.Context, account, id string, fn func(c *Customer) error, src *NewSource) (Customer, error)
	ListCustomers(ctx context.Context, account string, f Filter, p page.Params) ([]Customer, int, error)
	// ReplaceSource points a source at another vault record.
	ReplaceSource(ctx context.Context, account, customerID string, src Source, now time.Time) (Customer, error)
	// ArchiveSource archives one source and moves the default (spec §7.10).
	ArchiveSource(ctx context.Context, account, customerID, sourceID string, now time.Time) (Customer, error)
}

// Vault is what customers need of the vault.
type Vault interface {
	CheckOneTime(ctx context.Context, account, token, path string) (vault.Record, error)
	UseToken(ctx context.Context, account, token, path string) (vault.Record, error)
	ForCustomer(ctx context.Context, account, token, path string) (vault.Record, error)
	Open(r vault.Record) (vault.Card, error)
	NewPermanent(ctx context.Context, account string, card vault.Card, addr vault.Address) (vault.Record, error)
	Secret(ctx context.Context, account, purpose string) ([]byte, error)
}

// Gateways is what customers need of gateways.
type Gateways interface {
	Active(ctx context.Context, account, id, path string) (gateway.Gateway, error)
	Key(g gateway.Gateway) (string, error)
}

// Service implements the customer use cases.
type Service struct {
	store      Store
	vault      Vault
	gateways   Gateways
	connectors gateway.Connectors
	now        func() time.Time
}

// NewService returns a Service.
func NewService(store Store, v Vault, g Gateways, cs gateway.Connectors, now func() time.Time) *Service {
	return &Service{store: store, vault: v, gateways: g, connectors: cs, now: now}
}

func (s *Service) stamp() time.Time { return s.now().UTC().Truncate(time.Millisecond) }

// SourceInput is a payment_source object (or the top-level token) after
// wire decoding.
type SourceInput struct {
	Present    bool   // payment_source was sent (an object, or a bad type: Input.Invalid)
	Token      string // payment_source.token (flow 2, second spelling)
	GatewayID  string
	VaultToken string
	Type       string
	Card       vault.CardInput
	Address    vault.Address
	// Bad holds the wire-decoding error (wrong JSON type) of a field of
	// the object, keyed by the field's name, reported in its turn.
	Bad map[string]error
}

// Input is a create or update body after wire decoding. *Set flags mark
// text fields sent as strings (update: "" clears).
type Input struct {
	Token          string
	Text           Text
	TextSet        map[string]bool
	AddressCountry string // top-level address_country some plugins send
	DefaultSource  string
	Source         SourceInput
	Meta           map[string]any
	MetaSet        bool
	// Invalid holds the wire-decoding error (wrong JSON type) of a
	// top-level field, keyed by its name ("token", "first_name", …,
	// "payment_source" for itself or any field inside it, "meta"). It is
	// reported when validation reaches that field, so that only the first
	// failing field in table order is reported (spec §3.4 step 6, §7.4).
	Invalid map[string]error
}

var textFields = []string{"reference", "description", "company_name", "first_name", "last_name"}

func (t *Text) field(name string) *string {
	switch name {
	case "reference":
		return &t.Reference
	case "description":
		return &t.Description
	case "company_name":
		return &t.CompanyName
	case "first_name":
		return &t.FirstName
	case "last_name":
		return &t.LastName
	case "email":
		return &t.Email
	case "phone":
		return &t.Phone
	}
	return nil
}

// plan is a validated request, ready for references and the gateway.
type plan struct {
	flow      int // 0 none, 1 card, 2 token, 3 vault+gateway, 4 vault only
	tokenPath string
	token     string
	gatewayID string
	vaultTok  string
	card      vault.Card
	ccv       string // a CVV beside a vault token: for this gateway call only
	address   vault.Address
}

// validate checks the fields of in in spec §7.4 order (step 6).
func (s *Service) validate(in *Input, create bool) (plan, error) {
	var p plan
	ps := in.Source
	tokenSent := in.Token != "" || in.Invalid["token"] != nil
	if create && !tokenSent && !ps.Present {
		return p, errs.Invalidf("payment_source", "payment_source or token is required")
	}
	if tokenSent && ps.Present {
		return p, errs.Invalidf("payment_source", "payment_source and token cannot be used together")
	}
	if err := in.Invalid["token"]; err != nil {
		return p, err
	}
	if in.Token != "" {
		t, err := vault.CheckToken("token", "token", in.Token)
		if err != nil {
			return p, err
		}
		p.flow, p.token, p.tokenPath = 2, t, "token"
	}
	for _, name := range textFields {
		if err := in.Invalid[name]; err != nil {
			return p, err
		}
		if err := contact.Text(name, name, *in.Text.field(name)); err != nil {
			return p, err
		}
	}
	if err := in.Invalid["email"]; err != nil {
		return p, err
	}
	if in.Text.Email != "" {
		if err := contact.Email("email", in.Text.Email); err != nil {
			return p, err
		}
	}
	if err := in.Invalid["phone"]; err != nil {
		return p, err
	}
	if in.Text.Phone != "" {
		country := ps.Address.Country
		if country == "" {
			country = in.AddressCountry
		}
		ph, err := contact.Phone("phone", in.Text.Phone, country)
		if err != nil {
			return p, err
		}
		in.Text.Phone = ph
	}
	if err := in.Invalid["default_source"]; err != nil {
		return p, err
	}
	if in.DefaultSource != "" {
		if !paydock.IsID(in.DefaultSource) {
			return p, errs.Invalidf("default_source", "default_source must be a mongodb id")
		}
		in.DefaultSource = paydock.NormalizeID(in.DefaultSource)
	}
	if err := in.Invalid["payment_source"]; err != nil {
		return p, err
	}
	if ps.Present {
		if err := s.validateSource(ps, &p); err != nil {
			return p, errs.WithPrefix(err, "payment_source.")
		}
	}
	if err := in.Invalid["meta"]; err != nil {
		return p, err
	}
	if in.MetaSet {
		if err := CheckMeta(in.Meta); err != nil {
			return p, err
		}
	}
	return p, nil
}

// Sent reports whether the object holds field name: a value, or one of the
// wrong JSON type.
func (ps SourceInput) Sent(name, v string) bool { return v != "" || ps.Bad[name] != nil }

// HasCard reports whether card details were sent (spec §7.1: any of
// card_name, card_number, expire_month, expire_year; a CVV alone is not).
func (ps SourceInput) HasCard() bool {
	c := ps.Card
	return ps.Sent("card_name", c.Name) || ps.Sent("card_number", c.Number) || ps.Sent("expire_month", c.ExpMonth) ||
		ps.Sent("expire_year", c.ExpYear)
}

func (s *Service) validateSource(ps SourceInput, p *plan) error {
	bad := ps.Bad
	hasCard := ps.HasCard()
	n := 0
	for _, b := range []bool{hasCard, ps.Sent("vault_token", ps.VaultToken), ps.Sent("token", ps.Token)} {
		if b {
			n++
		}
	}
	if n != 1 {
		return errs.Invalidf("", "payment_source must contain exactly one of card details, vault_token or token")
	}
	if err := bad["gateway_id"]; err != nil {
		return err
	}
	gid, err := vault.CheckGatewayID("gateway_id", ps.GatewayID)
	if err != nil {
		return err
	}
	p.gatewayID = gid
	if err := bad["vault_token"]; err != nil {
		return err
	}
	if ps.VaultToken != "" {
		t, err := vault.CheckToken("vault_token", "vault_token", ps.VaultToken)
		if err != nil {
			return err
		}
		p.vaultTok = t
		p.flow = 4
		if gid != "" {
			p.flow = 3
		}
	}
	if err := bad["type"]; err != nil {
		return err
	}
	if err := vault.CheckType("type", ps.Type); err != nil {
		return err
	}
	switch {
	case hasCard:
		c, err := vault.CheckCard(ps.Card, bad, s.now())
		if err != nil {
			return err
		}
		p.card, p.flow = c, 1
	case bad["card_ccv"] != nil:
		return bad["card_ccv"]
	case ps.Card.CCV != "":
		// A CVV beside a vault token or token goes to the gateway only. Its
		// rule depends on the card's scheme, which only the record knows:
		// it is checked when the record is found (references).
		p.ccv = ps.Card.CCV
	}
	if err := bad["token"]; err != nil {
		return err
	}
	if ps.Token != "" {
		t, err := vault.CheckToken("token", "token", ps.Token)
		if err != nil {
			return err
		}
		p.flow, p.token, p.tokenPath = 2, t, "payment_source.token"
	}
	addr := ps.Address
	if err := vault.CheckAddressIn(&addr, bad, vault.SourceAddressOrder); err != nil {
		return err
	}
	p.address = addr
	return nil
}

// CheckMeta checks a meta object (spec §7.1): up to 50 keys of at most 64
// characters, values strings of at most 500 characters, numbers or booleans.
func CheckMeta(m map[string]any) error {
	bad := errs.Invalidf("meta", "meta must be an object of strings, numbers or booleans")
	if len(m) > 50 {
		return bad
	}
	// U+0000 cannot be stored on PostgreSQL (paydock.Object's fields are
	// checked as they are read; meta is read whole). The key is not echoed.
	nul := errs.Invalidf("meta", "meta must not contain the NUL character")
	for k, v := range m {
		if utf8.RuneCountInString(k) > 64 || k == "" {
			return bad
		}
		switch x := v.(type) {
		case string:
			if utf8.RuneCountInString(x) > 500 {
				return bad
			}
			if strings.ContainsRune(x, 0) {
				return nul
			}
		case json.Number, bool:
		default:
			return bad
		}
		if strings.ContainsRune(k, 0) {
			return nul
		}
	}
	return nil
}

// refs are the objects a plan references, checked at step 7.
type refs struct {
	gw     gateway.Gateway
	linked vault.Record // flows 3 and 4
}

// references checks the objects p references (spec §3.4 step 7) without
// changing anything.
func (s *Service) references(ctx context.Context, account string, p plan) (refs, error) {
	var r refs
	if p.flow == 0 {
		return r, nil
	}
	var err error
	if p.gatewayID != "" {
		if r.gw, err = s.gateways.Active(ctx, account, p.gatewayID, "payment_source.gateway_id"); err != nil {
			return r, err
		}
	}
	switch p.flow {
	case 2:
		tok, err := s.vault.CheckOneTime(ctx, account, p.token, p.tokenPath)
		if err != nil {
			return r, err
		}
		if p.ccv != "" {
			if err := vault.CheckCCV("payment_source.card_ccv", p.ccv, tok.Scheme); err != nil {
				return r, err
			}
		}
		if p.gatewayID == "" && tok.GatewayID != "" {
			if r.gw, err = s.gateways.Active(ctx, account, tok.GatewayID, p.tokenPath); err != nil {
				return r, err
			}
		}
	case 3, 4:
		if r.linked, err = s.vault.ForCustomer(ctx, account, p.vaultTok, "payment_source.vault_token"); err != nil {
			return r, err
		}
		// A CVV beside a vault token follows spec §6.4 for the record's scheme.
		if p.ccv != "" {
			if err := vault.CheckCCV("payment_source.card_ccv", p.ccv, r.linked.Scheme); err != nil {
				return r, err
			}
		}
	}
	return r, nil
}

// resolve acts on a plan whose references r are checked (step 9): it
// consumes a token, calls the gateway and returns the source to write.
func (s *Service) resolve(ctx context.Context, account, customerID string, p plan, r refs, text *Text, fill bool) (*NewSource, error) {
	if p.flow == 0 {
		return nil, nil
	}
	gw, linked := r.gw, r.linked
	var err error
	now := s.stamp()
	src := Source{ID: paydock.NewID(), CustomerID: customerID, AccountID: account, Status: "active", CreatedAt: now, UpdatedAt: now}
	out := &NewSource{}
	card := p.card
	switch p.flow {
	case 1:
		src.Address = p.address
	case 2:
		tok, err := s.vault.UseToken(ctx, account, p.token, p.tokenPath)
		if err != nil {
			return nil, err
		}
		if card, err = s.vault.Open(tok); err != nil {
			return nil, err
		}
		src.Address = vault.MergeAddress(tok.Address, p.address)
		if fill {
			fillText(text, tok.Contact)
		}
	case 3, 4:
		src.VaultToken = linked.Token
		src.Card = linked
		src.Address = vault.MergeAddress(linked.Address, p.address)
		if p.flow == 3 {
			if card, err = s.vault.Open(linked); err != nil {
				return nil, err
			}
			card.CCV = p.ccv
		}
	}
	if gw.ID != "" {
		conn, err := s.connectors.For(gw)
		if err != nil {
			return nil, err
		}
		key, err := s.gateways.Key(gw)
		if err != nil {
			return nil, err
		}
		stored, err := conn.StoreCard(ctx, gateway.StoreRequest{Gateway: gw, Key: key, CustomerID: customerID, SourceID: src.ID,
			Card: card, Address: src.Address, Name: strings.TrimSpace(text.FirstName + " " + text.LastName), Email: text.Email, Phone: text.Phone})
		if err != nil {
			return nil, err
		}
		src.GatewayID, src.GatewayName, src.GatewayType, src.GatewayMode = gw.ID, gw.Name, gw.Type, gw.Mode
		src.RefToken, src.GatewayRef = stored.RefToken, stored.GatewayRef
	}
	if p.flow == 1 || p.flow == 2 {
		card.CCV = "" // permanent records never keep a CVV
		rec, err := s.vault.NewPermanent(ctx, account, card, src.Address)
		if err != nil {
			return nil, err
		}
		out.Vault = &rec
		src.VaultToken = rec.Token
		src.Card = rec
	}
	out.Source = src
	return out, nil
}

// fillText fills empty customer fields from a one-time token (spec §5).
func fillText(t *Text, c vault.Contact) {
	for _, f := range []struct {
		dst *string
		v   string
	}{{&t.FirstName, c.FirstName}, {&t.LastName, c.LastName}, {&t.Email, c.Email}, {&t.Phone, c.Phone}} {
		if *f.dst == "" {
			*f.dst = f.v
		}
	}
}

// Create runs POST /v1/customers.
func (s *Service) Create(ctx context.Context, account string, in Input) (Customer, error) {
	p, err := s.validate(&in, true)
	if err != nil {
		return Customer{}, err
	}
	now := s.stamp()
	c := Customer{ID: paydock.NewID(), AccountID: account, Text: in.Text, CreatedAt: now, UpdatedAt: now}
	if in.MetaSet && len(in.Meta) > 0 {
		c.Meta = in.Meta
	}
	r, err := s.references(ctx, account, p)
	if err != nil {
		return Customer{}, err
	}
	src, err := s.resolve(ctx, account, c.ID, p, r, &c.Text, true)
	if err != nil {
		return Customer{}, err
	}
	c.DefaultSource = src.Source.ID
	c.Sources = []Source{src.Source}
	if err := s.store.CreateCustomer(ctx, &c, *src); err != nil {
		return Customer{}, errs.Wrap("customer.Create", err)
	}
	return c, nil
}

func notFound() error { return errs.NotFoundf("id", "customer not found") }

// Get returns a customer (archived too).
func (s *Service) Get(ctx context.Context, account, id string) (Customer, error) {
	c, err := s.store.GetCustomer(ctx, account, id)
	if err != nil {
		if errs.KindOf(err) == errs.NotFound {
			return Customer{}, notFound()
		}
		return Customer{}, errs.Wrap("customer.Get", err)
	}
	return c, nil
}

var errArchived = errs.Unfulfilledf("", "customer is archived")

// Update runs POST /v1/customers/{id} (spec §7.7): all or nothing.
func (s *Service) Update(ctx context.Context, account, id string, in Input) (Customer, error) {
	cur, err := s.Get(ctx, account, id)
	if err != nil {
		return Customer{}, err
	}
	p, err := s.validate(&in, false)
	if err != nil {
		return Customer{}, err
	}
	// Step 7 in table order: the top-level token, default_source, then the
	// references inside payment_source; step 8, the state rule, after them.
	var r refs
	if p.tokenPath == "token" {
		if r, err = s.references(ctx, account, p); err != nil {
			return Customer{}, err
		}
	}
	if in.DefaultSource != "" && !hasSource(cur, in.DefaultSource) {
		return Customer{}, errDefault()
	}
	if p.tokenPath != "token" {
		if r, err = s.references(ctx, account, p); err != nil {
			return Customer{}, err
		}
	}
	if cur.Archived {
		return Customer{}, errArchived
	}
	// A one-time token's contact fills what the customer lacks and this
	// request leaves out (spec §5), as on create.
	text := cur.Text
	applyText(&text, in)
	src, err := s.resolve(ctx, account, id, p, r, &text, true)
	if err != nil {
		return Customer{}, err
	}
	now := s.stamp()
	c, err := s.store.UpdateCustomer(ctx, account, id, func(c *Customer) error {
		if c.Archived {
			return errArchived
		}
		before := snapshot(c)
		applyText(&c.Text, in)
		for _, name := range []string{"first_name", "last_name", "email", "phone"} {
			if f := c.Text.field(name); !in.TextSet[name] && *f == "" {
				*f = *text.field(name)
			}
		}
		if in.MetaSet {
			c.Meta = in.Meta
			if len(c.Meta) == 0 {
				c.Meta = nil
			}
		}
		switch {
		case in.DefaultSource != "":
			if !hasSource(*c, in.DefaultSource) {
				return errDefault()
			}
			c.DefaultSource = in.DefaultSource
		case src != nil:
			c.DefaultSource = src.Source.ID
		}
		if src != nil || snapshot(c) != before {
			c.UpdatedAt = now
		}
		return nil
	}, src)
	if err != nil {
		return Customer{}, errs.Wrap("customer.Update", err)
	}
	return c, nil
}

func errDefault() error {
	return errs.Invalidf("default_source", "default_source must be an active payment source of this customer")
}

// snapshot is a comparable view of what an update may change.
func snapshot(c *Customer) string {
	m, _ := json.Marshal(c.Meta)
	return strings.Join([]string{c.Text.FirstName, c.Text.LastName, c.Text.Email, c.Text.Phone, c.Text.Reference,
		c.Text.Description, c.Text.CompanyName, string(m), c.DefaultSource}, "\x00")
}

func applyText(t *Text, in Input) {
	for _, name := range append(textFields, "email", "phone") {
		if in.TextSet[name] {
			*t.field(name) = *in.Text.field(name)
		}
	}
}

func hasSource(c Customer, id string) bool {
	for _, s := range c.Sources {
		if s.ID == id {
			return true
		}
	}
	return false
}

// Archive runs DELETE /v1/customers/{id}.
func (s *Service) Archive(ctx context.Context, account, id string) (Customer, error) {
	cur, err := s.Get(ctx, account, id)
	if err != nil || cur.Archived {
		return cur, err
	}
	now := s.stamp()
	c, err := s.store.UpdateCustomer(ctx, account, id, func(c *Customer) error {
		if !c.Archived {
			c.Archived = true
			c.UpdatedAt = now
		}
		return nil
	}, nil)
	if err != nil {
		return Customer{}, errs.Wrap("customer.Archive", err)
	}
	return c, nil
}

// List runs GET /v1/customers.
func (s *Service) List(ctx context.Context, account string, f Filter, p page.Params) ([]Customer, int, error) {
	cs, n, err := s.store.ListCustomers(ctx, account, f, p)
	if err != nil {
		return nil, 0, errs.Wrap("customer.List", err)
	}
	return cs, n, nil
}

func sourceNotFound() error { return errs.NotFoundf("payment_source_id", "payment source not found") }

func findSource(c Customer, id string) (Source, bool) {
	for _, s := range c.Sources {
		if s.ID == id {
			return s, true
		}
	}
	return Source{}, false
}

// ReplaceSource runs POST /v1/customers/{id}/payment_sources/{psid}.
func (s *Service) ReplaceSource(ctx context.Context, account, id, sourceID, vaultToken string) (Customer, error) {
	cur, err := s.Get(ctx, account, id)
	if err != nil {
		return Customer{}, err
	}
	src, ok := findSource(cur, sourceID)
	if !ok {
		return Customer{}, sourceNotFound()
	}
	if vaultToken == "" {
		return Customer{}, errs.Invalidf("vault_token", "vault_token is required")
	}
	tok, err := vault.CheckToken("vault_token", "vault_token", vaultToken)
	if err != nil {
		return Customer{}, err
	}
	rec, err := s.vault.ForCustomer(ctx, account, tok, "vault_token")
	if err != nil {
		return Customer{}, err
	}
	if cur.Archived {
		return Customer{}, errArchived
	}
	now := s.stamp()
	src.VaultToken, src.Card = rec.Token, rec
	src.Address = rec.Address
	src.UpdatedAt = now
	if src.GatewayID != "" {
		gw, err := s.gateways.Active(ctx, account, src.GatewayID, "")
		if err != nil {
			return Customer{}, errs.Unfulfilledf("", "the payment source's gateway is archived")
		}
		card, err := s.vault.Open(rec)
		if err != nil {
			return Customer{}, err
		}
		conn, err := s.connectors.For(gw)
		if err != nil {
			return Customer{}, err
		}
		key, err := s.gateways.Key(gw)
		if err != nil {
			return Customer{}, err
		}
		stored, err := conn.StoreCard(ctx, gateway.StoreRequest{Gateway: gw, Key: key, CustomerID: id, SourceID: src.ID, RefToken: src.RefToken,
			Card: card, Address: src.Address, Name: strings.TrimSpace(cur.Text.FirstName + " " + cur.Text.LastName), Email: cur.Text.Email, Phone: cur.Text.Phone})
		if err != nil {
			return Customer{}, err
		}
		src.GatewayRef = stored.GatewayRef
	}
	c, err := s.store.ReplaceSource(ctx, account, id, src, now)
	if err != nil {
		return Customer{}, errs.Wrap("customer.ReplaceSource", err)
	}
	return c, nil
}

// ArchiveSource runs DELETE /v1/customers/{id}/payment_sources/{psid}.
// An archived customer keeps its sources as they were (spec §7.8): the
// source must exist (404 otherwise), then the archived customer refuses.
func (s *Service) ArchiveSource(ctx context.Context, account, id, sourceID string) (Customer, error) {
	cur, err := s.Get(ctx, account, id)
	if err != nil {
		return Customer{}, err
	}
	if cur.Archived {
		if _, ok := findSource(cur, sourceID); !ok {
			return Customer{}, sourceNotFound()
		}
		return Customer{}, errArchived
	}
	c, err := s.store.ArchiveSource(ctx, account, id, sourceID, s.stamp())
	if err != nil {
		if errs.KindOf(err) == errs.NotFound {
			return Customer{}, sourceNotFound()
		}
		return Customer{}, errs.Wrap("customer.ArchiveSource", err)
	}
	return c, nil
}

// BySource returns the customer owning an active source (archived
// customers too, so callers can say so).
func (s *Service) BySource(ctx context.Context, account, sourceID string) (Customer, error) {
	for _, archived := range []bool{false, true} {
		cs, _, err := s.store.ListCustomers(ctx, account, Filter{PaymentSourceID: sourceID}, page.Params{Limit: 1, Archived: archived, Desc: true})
		if err != nil {
			return Customer{}, errs.Wrap("customer.BySource", err)
		}
		if len(cs) == 1 {
			return cs[0], nil
		}
	}
	return Customer{}, sourceNotFound()
}
