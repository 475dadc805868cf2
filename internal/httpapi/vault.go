package httpapi

import (
	"net/http"

	"switchyard/internal/errs"
	"switchyard/internal/paydock"
	"switchyard/internal/vault"
)

// vaultJSON is a vault object (spec §6.2): no _id, the token identifies it.
type vaultJSON struct {
	VaultToken  string `json:"vault_token"`
	Type        string `json:"type"`
	VaultType   string `json:"vault_type"`
	CardName    string `json:"card_name,omitempty"`
	CardScheme  string `json:"card_scheme"`
	BIN         string `json:"card_number_bin"`
	Last4       string `json:"card_number_last4"`
	Fingerprint string `json:"card_fingerprint"`
	ExpMonth    int    `json:"expire_month"`
	ExpYear     int    `json:"expire_year"`
	addressJSON
	Status    string        `json:"status"`
	ExpiresAt *paydock.Time `json:"expires_at,omitempty"`
	CompanyID string        `json:"company_id"`
	CreatedAt paydock.Time  `json:"created_at"`
	UpdatedAt paydock.Time  `json:"updated_at"`
}

type addressJSON struct {
	Line1    string `json:"address_line1,omitempty"`
	Line2    string `json:"address_line2,omitempty"`
	Line3    string `json:"address_line3,omitempty"`
	City     string `json:"address_city,omitempty"`
	State    string `json:"address_state,omitempty"`
	Postcode string `json:"address_postcode,omitempty"`
	Country  string `json:"address_country,omitempty"`
}

func toAddressJSON(a vault.Address) addressJSON {
	return addressJSON{a.Line1, a.Line2, a.Line3, a.City, a.State, a.Postcode, a.Country}
}

func toVaultJSON(r vault.Record) vaultJSON {
	v := vaultJSON{VaultToken: r.Token, Type: "card", VaultType: string(r.Kind), CardName: r.CardName, CardScheme: r.Scheme,
		BIN: r.BIN, Last4: r.Last4, Fingerprint: r.Fingerprint, ExpMonth: r.ExpMonth, ExpYear: r.ExpYear,
		addressJSON: toAddressJSON(r.Address), Status: r.Status, CompanyID: r.AccountID,
		CreatedAt: paydock.Time(r.CreatedAt), UpdatedAt: paydock.Time(r.UpdatedAt)}
	if r.Kind == vault.Session {
		t := paydock.Time(r.ExpiresAt)
		v.ExpiresAt = &t
	}
	return v
}

// wireFields reads a body's optional fields leniently: a field of the wrong
// JSON type reads as "" and its error is kept in bad, for the service to
// report in the field's turn of the table order (spec §3.4 step 6).
type wireFields struct {
	o   paydock.Object
	bad map[string]error
}

func newWireFields(o paydock.Object) *wireFields { return &wireFields{o: o, bad: map[string]error{}} }

func (w *wireFields) str(name string) string {
	v, err := w.o.String(name)
	if err != nil {
		w.bad[name] = err
	}
	return v
}

func (w *wireFields) number(name string) string {
	v, err := w.o.NumberText(name)
	if err != nil {
		w.bad[name] = err
	}
	return v
}

func (w *wireFields) card() vault.CardInput {
	return vault.CardInput{Name: w.str("card_name"), Number: w.str("card_number"), ExpMonth: w.number("expire_month"),
		ExpYear: w.number("expire_year"), CCV: w.str("card_ccv")}
}

func (w *wireFields) address() vault.Address {
	return vault.Address{Line1: w.str("address_line1"), Line2: w.str("address_line2"), Line3: w.str("address_line3"),
		City: w.str("address_city"), State: w.str("address_state"), Postcode: w.str("address_postcode"), Country: w.str("address_country")}
}

func (s *Server) createToken(c *call) (int, any, error) {
	w := newWireFields(c.body)
	in := vault.TokenInput{GatewayID: w.str("gateway_id"), Type: w.str("type"), Card: w.card(),
		Contact: vault.Contact{FirstName: w.str("first_name"), LastName: w.str("last_name"), Email: w.str("email"), Phone: w.str("phone")},
		Address: w.address(), Bad: w.bad}
	tok, err := s.Vault.CreateToken(c.ctx, c.account.ID, in)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, tok, nil
}

func (s *Server) createVault(c *call) (int, any, error) {
	w := newWireFields(c.body)
	in := vault.VaultInput{Token: w.str("token"), Type: w.str("type"), Card: w.card(), VaultType: w.str("vault_type"),
		Address: w.address(), Bad: w.bad}
	r, err := s.Vault.CreateVault(c.ctx, c.account.ID, in)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, toVaultJSON(r), nil
}

func (s *Server) listVault(c *call) (int, any, error) {
	p, err := pageParams(c, "created_at", "updated_at")
	if err != nil {
		return 0, nil, err
	}
	var kind vault.Kind
	switch v := c.query.Get("vault_type"); v {
	case "":
	case "permanent", "session":
		kind = vault.Kind(v)
	default:
		return 0, nil, errs.Query("vault_type", "vault_type must be one of: permanent, session")
	}
	rs, n, err := s.Vault.List(c.ctx, c.account.ID, kind, p)
	if err != nil {
		return 0, nil, err
	}
	out := make([]vaultJSON, len(rs))
	for i, r := range rs {
		out[i] = toVaultJSON(r)
	}
	return http.StatusOK, paydock.List{Data: out, Count: n, Skip: p.Skip, Limit: p.Limit}, nil
}

func (s *Server) getVault(c *call) (int, any, error) {
	r, err := s.Vault.Get(c.ctx, c.account.ID, c.param("token"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, toVaultJSON(r), nil
}

func (s *Server) archiveVault(c *call) (int, any, error) {
	r, err := s.Vault.Archive(c.ctx, c.account.ID, c.param("token"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, toVaultJSON(r), nil
}
