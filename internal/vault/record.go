package vault

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"switchyard/internal/contact"
	"switchyard/internal/errs"
	"switchyard/internal/keyring"
	"switchyard/internal/page"
)

// Kind of a vault record.
type Kind string

const (
	OneTime   Kind = "one_time"  // one-time token: 3 hours, single use, may hold a CCV
	Permanent Kind = "permanent" // lives until archived, never a CCV
	Session   Kind = "session"   // 15 minutes or first use, may hold a CCV, charges only
)

// Statuses.
const (
	Active   = "active"
	Used     = "used"
	Expired  = "expired"
	Archived = "archived"
)

// Lifetimes (spec §5, §6).
const (
	OneTimeTTL   = 3 * time.Hour
	SessionTTL   = 15 * time.Minute
	TombstoneTTL = 30 * 24 * time.Hour
	// ArchiveGrace is how long an archived permanent record keeps its card
	// before the sweeper may destroy it (when no active source uses it).
	// A request that checked the record before it was archived may still
	// be on its way to linking a source to it (a gateway call of up to 30
	// s): after the grace it has committed, or it never will, so the
	// sweeper sees its source. It is longer than any request may run.
	ArchiveGrace = 5 * time.Minute
)

// Address is a payment source's billing address.
type Address struct {
	Line1, Line2, Line3, City, State, Postcode, Country string
}

// Contact is what a one-time token carries for the customer it may become.
type Contact struct {
	FirstName, LastName, Email, Phone string
}

// Record is one vaulted card: a one-time token, a session or a permanent
// vault record. Sealed holds the encrypted card (number and, for one-time
// and session records, CCV); it is nil once the card data is destroyed.
type Record struct {
	Token       string
	AccountID   string
	Kind        Kind
	Status      string
	CardName    string
	Scheme      string
	BIN         string
	Last4       string
	Fingerprint string
	ExpMonth    int
	ExpYear     int
	Address     Address
	Contact     Contact // one-time tokens only
	GatewayID   string  // one-time tokens only
	Empty       bool    // a key-probe token: no card at all
	Sealed      []byte
	KeyVersion  int
	ExpiresAt   time.Time // zero for permanent records
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// Secret purposes kept per account.
const (
	FingerprintKey = "fingerprint"
	QueryTokenKey  = "query-token"
	IdempotencyKey = "idempotency"
)

// Store keeps vault records and per-account secrets.
type Store interface {
	CreateVaultRecord(ctx context.Context, r *Record) error
	// GetVaultRecord returns a record of any kind and status, or errs NotFound.
	GetVaultRecord(ctx context.Context, account, token string) (Record, error)
	ListVaultRecords(ctx context.Context, account string, kind Kind, p page.Params) ([]Record, int, error)
	// ArchiveVaultRecord archives an active permanent or session record.
	ArchiveVaultRecord(ctx context.Context, account, token string, now time.Time) (Record, error)
	// ConsumeVaultRecord marks an active, unexpired one-time or session
	// record used and destroys its card data, in one conditional update
	// that commits on its own. It returns the record as it was before
	// (with its card data) or, when it was not consumable, the record as
	// it is with ok false.
	ConsumeVaultRecord(ctx context.Context, account, token string, now time.Time) (r Record, ok bool, err error)
	// AccountSecret returns the sealed secret of an account for purpose,
	// creating it from fresh when none exists (the first writer wins).
	AccountSecret(ctx context.Context, account, purpose string, fresh func() ([]byte, int, error)) ([]byte, error)
	// SweepVault expires one-time and session records past their expiry
	// (destroying their card data), destroys the card data of permanent
	// records archived over ArchiveGrace ago that no active payment source
	// uses, and deletes
	// one-time tombstones older than TombstoneTTL.
	SweepVault(ctx context.Context, now time.Time) (int, error)
}

// Gateways is what the vault needs of gateways: that a named gateway is
// an active one of the account (400 on path otherwise).
type Gateways interface {
	CheckActive(ctx context.Context, account, id, path string) error
}

// Service implements one-time tokens and the vault.
type Service struct {
	store    Store
	gateways Gateways
	ring     *keyring.Holder
	now      func() time.Time
	secrets  sync.Map // purpose+account → opened secret (immutable once made)
}

// NewService returns a Service.
func NewService(store Store, gateways Gateways, ring *keyring.Holder, now func() time.Time) *Service {
	return &Service{store: store, gateways: gateways, ring: ring, now: now}
}

// secret is the sealed plaintext of a record.
type secret struct {
	Number string `json:"n"`
	CCV    string `json:"c,omitempty"`
}

func aad(account, token string) []byte { return keyring.AAD("card", account, token) }

// fingerprintKey returns the account's fingerprint key, made on first use.
func (s *Service) fingerprintKey(ctx context.Context, account string) ([]byte, error) {
	return s.Secret(ctx, account, FingerprintKey)
}

// fill seals card into r and sets its masked fields and fingerprint.
func (s *Service) fill(ctx context.Context, r *Record, c Card, keepCCV bool) error {
	fk, err := s.fingerprintKey(ctx, r.AccountID)
	if err != nil {
		return err
	}
	sec := secret{Number: c.Number}
	if keepCCV {
		sec.CCV = c.CCV
	}
	plain, err := json.Marshal(sec)
	if err != nil {
		return errs.Wrap("vault.seal", err)
	}
	sealed, err := s.ring.Seal(plain, aad(r.AccountID, r.Token))
	if err != nil {
		return errs.Wrap("vault.seal", err)
	}
	r.Sealed, r.KeyVersion = sealed.Marshal(), sealed.KeyVersion
	r.CardName, r.Scheme, r.BIN, r.Last4 = c.Name, Scheme(c.Number), BIN(c.Number), Last4(c.Number)
	r.ExpMonth, r.ExpYear = c.ExpMonth, c.ExpYear
	r.Fingerprint = keyring.Fingerprint(fk, c.Number)
	return nil
}

// Open returns the card sealed in r (number, and CCV where kept).
func (s *Service) Open(r Record) (Card, error) {
	if r.Sealed == nil {
		return Card{}, errs.Unfulfilledf("", "card data of this record has been destroyed")
	}
	sealed, err := keyring.Unmarshal(r.Sealed)
	if err != nil {
		return Card{}, errs.Wrap("vault.Open", err)
	}
	plain, err := s.ring.Open(sealed, aad(r.AccountID, r.Token))
	if err != nil {
		return Card{}, errs.Wrap("vault.Open", err)
	}
	var sec secret
	if err := json.Unmarshal(plain, &sec); err != nil {
		return Card{}, errs.Wrap("vault.Open", err)
	}
	return Card{Name: r.CardName, Number: sec.Number, ExpMonth: r.ExpMonth, ExpYear: r.ExpYear, CCV: sec.CCV}, nil
}

func (s *Service) stamp() time.Time { return s.now().UTC().Truncate(time.Millisecond) }

// TokenInput is a one-time token request after wire decoding, in the
// field order of spec §5.
type TokenInput struct {
	GatewayID string
	Type      string
	Card      CardInput
	Contact   Contact
	Address   Address
	// Bad holds wire errors (a wrong JSON type) by field name; each is
	// reported in its field's turn, so the first failing field in table
	// order wins (spec §3.4 step 6).
	Bad map[string]error
}

// HasCard reports whether any card field was sent.
func (in CardInput) HasCard() bool {
	return in.Name != "" || in.Number != "" || in.ExpMonth != "" || in.ExpYear != "" || in.CCV != ""
}

// CheckType checks a payment source type (L5: "" means card).
func CheckType(path, t string) error {
	if t != "" && t != "card" {
		return errs.Invalidf(path, "type must be one of: card")
	}
	return nil
}

// CheckAddress validates address fields and upper-cases the country.
func CheckAddress(a *Address) error { return checkAddress(a, nil) }

// AddressOrder is the order address fields are checked in: that of the
// token and vault tables (spec §5, §6.1), country last.
var AddressOrder = []string{"address_line1", "address_line2", "address_line3", "address_city", "address_state", "address_postcode", "address_country"}

// SourceAddressOrder is the order of a customer's payment_source address
// rows (spec §7.1: line1, line2, state, country, city, postcode; line3, only
// "also accepted", beside line2).
var SourceAddressOrder = []string{"address_line1", "address_line2", "address_line3", "address_state", "address_country", "address_city", "address_postcode"}

// checkAddress is CheckAddress reporting a wire error of bad in its
// field's turn.
func checkAddress(a *Address, bad map[string]error) error {
	return CheckAddressIn(a, bad, AddressOrder)
}

// CheckAddressIn validates the address fields in the given order (names
// from AddressOrder), reporting the first failure: a wire error of bad (a
// wrong JSON type) or a rule; it upper-cases the country.
func CheckAddressIn(a *Address, bad map[string]error, order []string) error {
	for _, name := range order {
		if err := bad[name]; err != nil {
			return err
		}
		if name == "address_country" {
			if a.Country != "" {
				c, err := contact.Country(name, a.Country)
				if err != nil {
					return err
				}
				a.Country = c
			}
			continue
		}
		if err := contact.Text(name, name, *a.field(name)); err != nil {
			return err
		}
	}
	return nil
}

// field returns the address line named name (not the country).
func (a *Address) field(name string) *string {
	switch name {
	case "address_line1":
		return &a.Line1
	case "address_line2":
		return &a.Line2
	case "address_line3":
		return &a.Line3
	case "address_city":
		return &a.City
	case "address_state":
		return &a.State
	case "address_postcode":
		return &a.Postcode
	}
	panic("vault: unknown address field " + name)
}

// CheckGatewayID checks the shape of an optional gateway id.
func CheckGatewayID(path, id string) (string, error) {
	if id == "" {
		return "", nil
	}
	if !isID(id) {
		return "", errs.Invalidf(path, "gateway_id must be a mongodb id")
	}
	return strings.ToLower(id), nil
}

func isID(s string) bool {
	if len(s) != 24 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// cardFields are the card fields in the order of spec §6.4.
var cardFields = [...]string{"card_name", "card_number", "expire_month", "expire_year", "card_ccv"}

// checkCard is ValidateCard reporting a wire error of bad in its field's
// turn: a failure of an earlier field wins over it.
func checkCard(in CardInput, bad map[string]error, now time.Time) (Card, error) {
	first := -1
	for i, f := range cardFields {
		if bad[f] != nil {
			first = i
			break
		}
	}
	if first < 0 {
		return ValidateCard(in, now)
	}
	// Mistyped fields hold a placeholder: a field's checks depend only on
	// the fields before it, so an error at an earlier field is genuine.
	for _, f := range []struct {
		name string
		v    *string
	}{{"card_name", &in.Name}, {"card_number", &in.Number}, {"expire_month", &in.ExpMonth}, {"expire_year", &in.ExpYear}, {"card_ccv", &in.CCV}} {
		if bad[f.name] != nil {
			*f.v = "?"
		}
	}
	if _, err := ValidateCard(in, now); err != nil {
		var e *errs.Error
		if errors.As(err, &e) && slices.Index(cardFields[:], e.Path) < first {
			return Card{}, err
		}
	}
	return Card{}, bad[cardFields[first]]
}

// hasBadCard reports whether a card field was sent with a wrong JSON type.
// CheckCard is ValidateCard reporting a wire error of bad (a card field of
// the wrong JSON type) in its field's turn.
func CheckCard(in CardInput, bad map[string]error, now time.Time) (Card, error) {
	return checkCard(in, bad, now)
}

// HasBadCard reports whether a card field was sent with a wrong JSON type.
func HasBadCard(bad map[string]error) bool { return hasBadCard(bad) }

func hasBadCard(bad map[string]error) bool {
	for _, f := range cardFields {
		if bad[f] != nil {
			return true
		}
	}
	return false
}

// tokenFields is a one-time token request after field validation.
type tokenFields struct {
	gatewayID string
	card      Card
	empty     bool
	contact   Contact
	address   Address
}

// checkTokenInput is the field validation of spec §5, in table order
// (spec §3.4 step 6); it looks nothing up.
func checkTokenInput(in TokenInput, now time.Time) (tokenFields, error) {
	var f tokenFields
	if err := in.Bad["gateway_id"]; err != nil {
		return f, err
	}
	gid, err := CheckGatewayID("gateway_id", in.GatewayID)
	if err != nil {
		return f, err
	}
	if err := in.Bad["type"]; err != nil {
		return f, err
	}
	if err := CheckType("type", in.Type); err != nil {
		return f, err
	}
	f.gatewayID = gid
	f.empty = !in.Card.HasCard() && !hasBadCard(in.Bad)
	if !f.empty {
		if f.card, err = checkCard(in.Card, in.Bad, now); err != nil {
			return f, err
		}
	}
	ct := in.Contact
	for _, c := range []struct{ name, v string }{{"first_name", ct.FirstName}, {"last_name", ct.LastName}} {
		if err := in.Bad[c.name]; err != nil {
			return f, err
		}
		if err := contact.Text(c.name, c.name, c.v); err != nil {
			return f, err
		}
	}
	if err := in.Bad["email"]; err != nil {
		return f, err
	}
	if ct.Email != "" {
		if err := contact.Email("email", ct.Email); err != nil {
			return f, err
		}
	}
	if err := in.Bad["phone"]; err != nil {
		return f, err
	}
	if ct.Phone != "" {
		// Before the address (table order); the country only guides
		// normalisation, and contact.Region reads it in any case.
		if ct.Phone, err = contact.Phone("phone", ct.Phone, in.Address.Country); err != nil {
			return f, err
		}
	}
	addr := in.Address
	if err := checkAddress(&addr, in.Bad); err != nil {
		return f, err
	}
	f.contact, f.address = ct, addr
	return f, nil
}

// CreateToken makes a one-time token (spec §5). A body with no card field
// at all makes an empty key-probe token.
func (s *Service) CreateToken(ctx context.Context, account string, in TokenInput) (string, error) {
	now := s.stamp()
	f, err := checkTokenInput(in, now)
	if err != nil {
		return "", err
	}
	if f.gatewayID != "" {
		if err := s.gateways.CheckActive(ctx, account, f.gatewayID, "gateway_id"); err != nil {
			return "", err
		}
	}
	r := Record{Token: uuid.NewString(), AccountID: account, Kind: OneTime, Status: Active, Address: f.address, Contact: f.contact,
		GatewayID: f.gatewayID, Empty: f.empty, ExpiresAt: now.Add(OneTimeTTL), CreatedAt: now, UpdatedAt: now}
	if !f.empty {
		if err := s.fill(ctx, &r, f.card, true); err != nil {
			return "", err
		}
	}
	if err := s.store.CreateVaultRecord(ctx, &r); err != nil {
		return "", errs.Wrap("vault.CreateToken", err)
	}
	return r.Token, nil
}

// VaultInput is a vault create request after wire decoding.
type VaultInput struct {
	Token     string
	Type      string
	Card      CardInput
	VaultType string
	Address   Address
	// Bad holds wire errors by field name, as in TokenInput.
	Bad map[string]error
}

// CheckToken checks the shape of a token field and lower-cases it.
func CheckToken(path, name, t string) (string, error) {
	if !isToken(t) {
		return "", errs.Invalidf(path, "%s must be a uuid", name)
	}
	return strings.ToLower(t), nil
}

func isToken(s string) bool {
	if len(s) != 36 {
		return false
	}
	_, err := uuid.Parse(s)
	return err == nil && s[8] == '-' && s[13] == '-' && s[18] == '-' && s[23] == '-'
}

// CreateVault makes a permanent or session vault record from card details
// or a one-time token (spec §6.1).
func (s *Service) CreateVault(ctx context.Context, account string, in VaultInput) (Record, error) {
	var err error
	if err := in.Bad["token"]; err != nil {
		return Record{}, err
	}
	if in.Token != "" {
		if in.Card.Number != "" || in.Bad["card_number"] != nil {
			return Record{}, errs.Invalidf("token", "token cannot be combined with card details")
		}
		if in.Token, err = CheckToken("token", "token", in.Token); err != nil {
			return Record{}, err
		}
	}
	if err := in.Bad["type"]; err != nil {
		return Record{}, err
	}
	if err := CheckType("type", in.Type); err != nil {
		return Record{}, err
	}
	now := s.stamp()
	var card Card
	if in.Token == "" {
		if card, err = checkCard(in.Card, in.Bad, now); err != nil {
			return Record{}, err
		}
	} else {
		// The token replaces the card fields; a mistyped one is still wrong.
		for _, f := range cardFields {
			if err := in.Bad[f]; err != nil {
				return Record{}, err
			}
		}
	}
	if err := in.Bad["vault_type"]; err != nil {
		return Record{}, err
	}
	kind := Permanent
	switch in.VaultType {
	case "", "permanent":
	case "session":
		kind = Session
	default:
		return Record{}, errs.Invalidf("vault_type", "vault_type must be one of: permanent, session")
	}
	addr := in.Address
	if err := checkAddress(&addr, in.Bad); err != nil {
		return Record{}, err
	}
	if in.Token != "" {
		tok, err := s.UseToken(ctx, account, in.Token, "token")
		if err != nil {
			return Record{}, err
		}
		if card, err = s.Open(tok); err != nil {
			return Record{}, err
		}
		addr = MergeAddress(tok.Address, addr)
	}
	r := Record{Token: uuid.NewString(), AccountID: account, Kind: kind, Status: Active, Address: addr, CreatedAt: now, UpdatedAt: now}
	if kind == Session {
		r.ExpiresAt = now.Add(SessionTTL)
	}
	if err := s.fill(ctx, &r, card, kind == Session); err != nil {
		return Record{}, err
	}
	if err := s.store.CreateVaultRecord(ctx, &r); err != nil {
		return Record{}, errs.Wrap("vault.CreateVault", err)
	}
	return r, nil
}

// MergeAddress returns base with every non-empty field of over on top.
func MergeAddress(base, over Address) Address {
	pick := func(a, b string) string {
		if b != "" {
			return b
		}
		return a
	}
	return Address{Line1: pick(base.Line1, over.Line1), Line2: pick(base.Line2, over.Line2), Line3: pick(base.Line3, over.Line3),
		City: pick(base.City, over.City), State: pick(base.State, over.State), Postcode: pick(base.Postcode, over.Postcode),
		Country: pick(base.Country, over.Country)}
}

// CheckOneTime checks that a one-time token can be used, without using it
// (spec §3.4 step 7): unknown, another account's, expired, used or empty
// tokens fail with a 400 on path.
func (s *Service) CheckOneTime(ctx context.Context, account, token, path string) (Record, error) {
	r, err := s.store.GetVaultRecord(ctx, account, token)
	if err != nil || r.Kind != OneTime {
		if err == nil || errs.KindOf(err) == errs.NotFound {
			return Record{}, errs.Invalidf(path, "token not found")
		}
		return Record{}, err
	}
	switch {
	case r.Status == Used:
		return Record{}, errs.Invalidf(path, "token has already been used")
	case r.Status == Expired || !r.ExpiresAt.After(s.now()):
		return Record{}, errs.Invalidf(path, "token has expired")
	case r.Empty:
		return Record{}, errs.Invalidf(path, "token has no payment details")
	}
	return r, nil
}

// UseToken checks and consumes a one-time token (spec §5: the consumption
// commits on its own) and returns it with its card data.
func (s *Service) UseToken(ctx context.Context, account, token, path string) (Record, error) {
	if _, err := s.CheckOneTime(ctx, account, token, path); err != nil {
		return Record{}, err
	}
	r, ok, err := s.store.ConsumeVaultRecord(ctx, account, token, s.now())
	if err != nil {
		return Record{}, errs.Wrap("vault.UseToken", err)
	}
	if !ok {
		// Lost a race with another use, or expired in between.
		if r.Status == Used {
			return Record{}, errs.Invalidf(path, "token has already been used")
		}
		return Record{}, errs.Invalidf(path, "token has expired")
	}
	return r, nil
}

// ForCustomer returns a vault record that may back a customer's payment
// source: an active permanent record of this account (spec §6.3).
func (s *Service) ForCustomer(ctx context.Context, account, token, path string) (Record, error) {
	r, err := s.vaultRecord(ctx, account, token, path)
	if err != nil {
		return Record{}, err
	}
	switch {
	case r.Kind == Session:
		return Record{}, errs.Invalidf(path, "session vault tokens cannot be stored on a customer")
	case r.Status == Archived:
		return Record{}, errs.Invalidf(path, "vault token is archived")
	}
	return r, nil
}

// Get returns a vault record (permanent or session) by its token.
func (s *Service) Get(ctx context.Context, account, token string) (Record, error) {
	r, err := s.store.GetVaultRecord(ctx, account, token)
	if err == nil && r.Kind == OneTime {
		err = &errs.Error{Kind: errs.NotFound}
	}
	if err != nil {
		if errs.KindOf(err) == errs.NotFound {
			return Record{}, errs.NotFoundf("token", "vault token not found")
		}
		return Record{}, errs.Wrap("vault.Get", err)
	}
	return r.asOf(s.now()), nil
}

// asOf is r as a reader sees it at now: a session record past its expiry
// reads "expired" before the sweeper has marked it so.
func (r Record) asOf(now time.Time) Record {
	if r.Kind == Session && r.Status == Active && !r.ExpiresAt.IsZero() && !r.ExpiresAt.After(now) {
		r.Status = Expired
	}
	return r
}

// List returns a page of vault records; kind "" lists both kinds.
func (s *Service) List(ctx context.Context, account string, kind Kind, p page.Params) ([]Record, int, error) {
	rs, n, err := s.store.ListVaultRecords(ctx, account, kind, p)
	if err != nil {
		return nil, 0, errs.Wrap("vault.List", err)
	}
	now := s.now()
	for i := range rs {
		rs[i] = rs[i].asOf(now)
	}
	return rs, n, nil
}

// Archive archives a vault record; again, it answers it unchanged.
func (s *Service) Archive(ctx context.Context, account, token string) (Record, error) {
	r, err := s.Get(ctx, account, token)
	if err != nil {
		return Record{}, err
	}
	if r.Status == Archived {
		return r, nil
	}
	r, err = s.store.ArchiveVaultRecord(ctx, account, token, s.stamp())
	if err != nil {
		return Record{}, errs.Wrap("vault.Archive", err)
	}
	return r, nil
}

// Sweep runs the vault's periodic housekeeping.
func (s *Service) Sweep(ctx context.Context) (int, error) {
	n, err := s.store.SweepVault(ctx, s.now())
	if err != nil {
		return 0, errs.Wrap("vault.Sweep", err)
	}
	return n, nil
}

// NewPermanent builds (without writing) a permanent vault record for card,
// for a caller that writes it in its own transaction. The CVV is dropped.
func (s *Service) NewPermanent(ctx context.Context, account string, card Card, addr Address) (Record, error) {
	now := s.stamp()
	r := Record{Token: uuid.NewString(), AccountID: account, Kind: Permanent, Status: Active, Address: addr, CreatedAt: now, UpdatedAt: now}
	if err := s.fill(ctx, &r, card, false); err != nil {
		return Record{}, err
	}
	return r, nil
}

// Secret returns an account's random secret for purpose (made on first
// use, stored sealed): fingerprint keys, query-token signing keys.
func (s *Service) Secret(ctx context.Context, account, purpose string) ([]byte, error) {
	cacheKey := purpose + "\x00" + account
	if k, ok := s.secrets.Load(cacheKey); ok {
		return k.([]byte), nil
	}
	a := keyring.AAD("account-secret", account, purpose)
	blob, err := s.store.AccountSecret(ctx, account, purpose, func() ([]byte, int, error) {
		k, err := keyring.NewSecret()
		if err != nil {
			return nil, 0, err
		}
		sealed, err := s.ring.Seal(k, a)
		if err != nil {
			return nil, 0, err
		}
		return sealed.Marshal(), sealed.KeyVersion, nil
	})
	if err != nil {
		return nil, err
	}
	sealed, err := keyring.Unmarshal(blob)
	if err != nil {
		return nil, errs.Wrap("vault.Secret", err)
	}
	k, err := s.ring.Open(sealed, a)
	if err != nil {
		return nil, errs.Wrap("vault.Secret", err)
	}
	s.secrets.Store(cacheKey, k)
	return k, nil
}

// ForCharge returns a vault record a charge may use (spec §6.3): a
// permanent record any number of times, a session record once, within 15
// minutes; archived records are refused.
func (s *Service) ForCharge(ctx context.Context, account, token, path string) (Record, error) {
	r, err := s.vaultRecord(ctx, account, token, path)
	if err != nil {
		return Record{}, err
	}
	switch {
	case r.Status == Archived:
		return Record{}, errs.Invalidf(path, "vault token is archived")
	case r.Status == Used:
		return Record{}, errs.Invalidf(path, "vault token has already been used")
	case r.Status == Expired || r.Kind == Session && !r.ExpiresAt.After(s.now()):
		return Record{}, errs.Invalidf(path, "vault token has expired")
	}
	return r, nil
}

// UseSession consumes a session vault record (one charge) and returns it
// with its card data.
func (s *Service) UseSession(ctx context.Context, account, token, path string) (Record, error) {
	r, ok, err := s.store.ConsumeVaultRecord(ctx, account, token, s.now())
	if err != nil {
		if errs.KindOf(err) == errs.NotFound {
			return Record{}, errs.Invalidf(path, "vault token not found")
		}
		return Record{}, errs.Wrap("vault.UseSession", err)
	}
	if !ok {
		if r.Status == Used {
			return Record{}, errs.Invalidf(path, "vault token has already been used")
		}
		return Record{}, errs.Invalidf(path, "vault token has expired")
	}
	return r, nil
}

// Mask returns the masked fields and fingerprint of a card that is not
// stored (a one-off charge's card).
func (s *Service) Mask(ctx context.Context, account string, c Card) (Record, error) {
	fk, err := s.fingerprintKey(ctx, account)
	if err != nil {
		return Record{}, err
	}
	return Record{AccountID: account, CardName: c.Name, Scheme: Scheme(c.Number), BIN: BIN(c.Number), Last4: Last4(c.Number),
		Fingerprint: keyring.Fingerprint(fk, c.Number), ExpMonth: c.ExpMonth, ExpYear: c.ExpYear}, nil
}

// vaultRecord returns a permanent or session record a request names in its
// body: anything else, or another account's, is 400 "vault token not found".
func (s *Service) vaultRecord(ctx context.Context, account, token, path string) (Record, error) {
	r, err := s.store.GetVaultRecord(ctx, account, token)
	if err != nil || r.Kind == OneTime {
		if err == nil || errs.KindOf(err) == errs.NotFound {
			return Record{}, errs.Invalidf(path, "vault token not found")
		}
		return Record{}, err
	}
	return r, nil
}
