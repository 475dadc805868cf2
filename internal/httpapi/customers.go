package httpapi

import (
	"net/http"

	"switchyard/internal/customer"
	"switchyard/internal/errs"
	"switchyard/internal/paydock"
)

type sourceJSON struct {
	ID          string `json:"_id"`
	Type        string `json:"type"`
	VaultToken  string `json:"vault_token"`
	GatewayID   string `json:"gateway_id,omitempty"`
	GatewayName string `json:"gateway_name,omitempty"`
	GatewayType string `json:"gateway_type,omitempty"`
	GatewayMode string `json:"gateway_mode,omitempty"`
	RefToken    string `json:"ref_token,omitempty"`
	CardName    string `json:"card_name,omitempty"`
	CardScheme  string `json:"card_scheme"`
	BIN         string `json:"card_number_bin"`
	Last4       string `json:"card_number_last4"`
	Fingerprint string `json:"card_fingerprint"`
	ExpMonth    int    `json:"expire_month"`
	ExpYear     int    `json:"expire_year"`
	addressJSON
	Status    string       `json:"status"`
	CreatedAt paydock.Time `json:"created_at"`
	UpdatedAt paydock.Time `json:"updated_at"`
}

type statisticsJSON struct {
	Successful int   `json:"successful_transactions"`
	Collected  int64 `json:"total_collected_amount"`
}

type serviceJSON struct {
	DefaultGatewayID string `json:"default_gateway_id,omitempty"`
}

type customerJSON struct {
	ID            string         `json:"_id"`
	CompanyID     string         `json:"company_id"`
	FirstName     string         `json:"first_name,omitempty"`
	LastName      string         `json:"last_name,omitempty"`
	Email         string         `json:"email,omitempty"`
	Phone         string         `json:"phone,omitempty"`
	Reference     string         `json:"reference,omitempty"`
	Description   string         `json:"description,omitempty"`
	CompanyName   string         `json:"company_name,omitempty"`
	DefaultSource *string        `json:"default_source"`
	Status        string         `json:"status"`
	Archived      bool           `json:"archived"`
	Statistics    statisticsJSON `json:"statistics"`
	Service       serviceJSON    `json:"_service"`
	Sources       []sourceJSON   `json:"payment_sources"`
	Meta          map[string]any `json:"meta,omitempty"`
	CreatedAt     paydock.Time   `json:"created_at"`
	UpdatedAt     paydock.Time   `json:"updated_at"`
}

func toSourceJSON(s customer.Source) sourceJSON {
	v := s.Card
	return sourceJSON{ID: s.ID, Type: "card", VaultToken: s.VaultToken, GatewayID: s.GatewayID, GatewayName: s.GatewayName,
		GatewayType: s.GatewayType, GatewayMode: s.GatewayMode, RefToken: s.RefToken, CardName: v.CardName, CardScheme: v.Scheme,
		BIN: v.BIN, Last4: v.Last4, Fingerprint: v.Fingerprint, ExpMonth: v.ExpMonth, ExpYear: v.ExpYear,
		addressJSON: toAddressJSON(s.Address), Status: "active", CreatedAt: paydock.Time(s.CreatedAt), UpdatedAt: paydock.Time(s.UpdatedAt)}
}

func toCustomerJSON(c customer.Customer) customerJSON {
	t := c.Text
	out := customerJSON{ID: c.ID, CompanyID: c.AccountID, FirstName: t.FirstName, LastName: t.LastName, Email: t.Email, Phone: t.Phone,
		Reference: t.Reference, Description: t.Description, CompanyName: t.CompanyName, Status: "active", Archived: c.Archived,
		Statistics: statisticsJSON{c.Successful, c.Collected / customer.CollectedScale}, Sources: []sourceJSON{}, Meta: c.Meta,
		CreatedAt: paydock.Time(c.CreatedAt), UpdatedAt: paydock.Time(c.UpdatedAt)}
	if c.Archived {
		out.Status = "archived"
	}
	for _, s := range c.Sources {
		out.Sources = append(out.Sources, toSourceJSON(s))
		if s.ID == c.DefaultSource {
			id := s.ID
			out.DefaultSource = &id
			out.Service.DefaultGatewayID = s.GatewayID
		}
	}
	return out
}

// customerInput decodes a customer body in the field order of spec §7.1.
// A field of the wrong JSON type is not reported here but recorded in
// in.Invalid, so validation reports it at that field's turn (spec §3.4
// step 6: the first failing field in table order).
func customerInput(b paydock.Object) customer.Input {
	in := customer.Input{TextSet: map[string]bool{}, Invalid: map[string]error{}}
	fail := func(name string, err error) {
		if err != nil && in.Invalid[name] == nil {
			in.Invalid[name] = err
		}
	}
	var err error
	in.Token, err = b.String("token")
	fail("token", err)
	t := &in.Text
	for _, f := range []struct {
		name string
		dst  *string
	}{{"reference", &t.Reference}, {"description", &t.Description}, {"company_name", &t.CompanyName}, {"first_name", &t.FirstName},
		{"last_name", &t.LastName}, {"email", &t.Email}, {"phone", &t.Phone}} {
		v, set, err := b.StringSet(f.name)
		fail(f.name, err)
		*f.dst, in.TextSet[f.name] = v, set
	}
	in.DefaultSource, err = b.String("default_source")
	fail("default_source", err)
	ps, present, err := b.Object("payment_source")
	if err != nil {
		in.Source.Present = true
		fail("payment_source", err)
	}
	if present {
		// Its fields' type errors wait for their own turn too.
		w := newWireFields(ps)
		in.Source = customer.SourceInput{Present: true, Token: w.str("token"), GatewayID: w.str("gateway_id"),
			VaultToken: w.str("vault_token"), Type: w.str("type"), Card: w.card(), Address: w.address(), Bad: w.bad}
	}
	// A stray top-level field of some plugins: a wrong type is never an error.
	in.AddressCountry, _ = b.String("address_country")
	if b.Has("meta") {
		m, _, err := b.Object("meta")
		if err != nil {
			fail("meta", errs.Invalidf("meta", "meta must be an object of strings, numbers or booleans"))
		}
		in.Meta, in.MetaSet = m.M, true
	}
	return in
}

func (s *Server) createCustomer(c *call) (int, any, error) {
	cu, err := s.Customers.Create(c.ctx, c.account.ID, customerInput(c.body))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, toCustomerJSON(cu), nil
}

// customerExists checks the path's customer and, on source routes, its
// active source (spec §3.4 step 3: before the body is read).
func (s *Server) customerExists(c *call) error {
	cu, err := s.Customers.Get(c.ctx, c.account.ID, c.param("id"))
	if err != nil {
		return err
	}
	if sid := c.param("payment_source_id"); sid != "" {
		for _, src := range cu.Sources {
			if src.ID == sid {
				return nil
			}
		}
		return errs.NotFoundf("payment_source_id", "payment source not found")
	}
	return nil
}

func (s *Server) getCustomer(c *call) (int, any, error) {
	cu, err := s.Customers.Get(c.ctx, c.account.ID, c.param("id"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, toCustomerJSON(cu), nil
}

func (s *Server) updateCustomer(c *call) (int, any, error) {
	cu, err := s.Customers.Update(c.ctx, c.account.ID, c.param("id"), customerInput(c.body))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, toCustomerJSON(cu), nil
}

func (s *Server) archiveCustomer(c *call) (int, any, error) {
	cu, err := s.Customers.Archive(c.ctx, c.account.ID, c.param("id"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, toCustomerJSON(cu), nil
}

func (s *Server) replaceSource(c *call) (int, any, error) {
	tok, err := c.body.String("vault_token")
	if err != nil {
		return 0, nil, err
	}
	cu, err := s.Customers.ReplaceSource(c.ctx, c.account.ID, c.param("id"), c.param("payment_source_id"), tok)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, toCustomerJSON(cu), nil
}

func (s *Server) archiveSource(c *call) (int, any, error) {
	cu, err := s.Customers.ArchiveSource(c.ctx, c.account.ID, c.param("id"), c.param("payment_source_id"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, toCustomerJSON(cu), nil
}

// customerFilter reads the search filters of spec §7.5.
func customerFilter(c *call) (customer.Filter, error) {
	q := c.query
	term, err := searchParam(c)
	if err != nil {
		return customer.Filter{}, err
	}
	f := customer.Filter{Search: term, Reference: q.Get("reference"), CompanyName: q.Get("company_name")}
	for _, id := range []struct {
		name string
		dst  *string
	}{{"id", &f.ID}, {"gateway_id", &f.GatewayID}, {"payment_source_id", &f.PaymentSourceID}} {
		v := q.Get(id.name)
		if v == "" {
			continue
		}
		if !paydock.IsID(v) {
			return f, errs.Query(id.name, id.name+" must be a mongodb id")
		}
		*id.dst = paydock.NormalizeID(v)
	}
	switch v := q.Get("status"); v {
	case "", "active", "archived":
		f.Status = v
	default:
		return f, errs.Query("status", "status must be one of: active, archived")
	}
	return f, nil
}

func (s *Server) listCustomers(c *call) (int, any, error) {
	p, err := pageParams(c, "created_at", "updated_at", "first_name", "last_name", "email", "reference", "company_name")
	if err != nil {
		return 0, nil, err
	}
	f, err := customerFilter(c)
	if err != nil {
		return 0, nil, err
	}
	cs, n, err := s.Customers.List(c.ctx, c.account.ID, f, p)
	if err != nil {
		return 0, nil, err
	}
	tok, err := s.Customers.QueryToken(c.ctx, c.account.ID, f, p)
	if err != nil {
		return 0, nil, err
	}
	out := make([]customerJSON, len(cs))
	for i, cu := range cs {
		out[i] = toCustomerJSON(cu)
	}
	return http.StatusOK, paydock.List{Data: out, Count: n, Skip: p.Skip, Limit: p.Limit, QueryToken: tok}, nil
}

type publicSourceJSON struct {
	ID                string `json:"_id"`
	Type              string `json:"type"`
	CustomerID        string `json:"customer_id"`
	CustomerReference string `json:"customer_reference,omitempty"`
	Primary           bool   `json:"primary"`
	GatewayID         string `json:"gateway_id,omitempty"`
	GatewayType       string `json:"gateway_type,omitempty"`
	GatewayMode       string `json:"gateway_mode,omitempty"`
	CardName          string `json:"card_name,omitempty"`
	CardScheme        string `json:"card_scheme"`
	Last4             string `json:"card_number_last4"`
	ExpMonth          int    `json:"expire_month"`
	ExpYear           int    `json:"expire_year"`
}

func (s *Server) publicSources(c *call) (int, any, error) {
	q, err := s.Customers.OpenQueryToken(c.ctx, c.account.ID, c.query.Get("query_token"))
	if err != nil {
		return 0, nil, err
	}
	p, err := skipLimit(c)
	if err != nil {
		return 0, nil, err
	}
	items, n, err := s.Customers.PublicSources(c.ctx, c.account.ID, q, p.Skip, p.Limit)
	if err != nil {
		return 0, nil, err
	}
	out := make([]publicSourceJSON, len(items))
	for i, it := range items {
		out[i] = publicSourceJSON{ID: it.ID, Type: "card", CustomerID: it.CustomerID, CustomerReference: it.CustomerReference,
			Primary: it.Primary, GatewayID: it.GatewayID, GatewayType: it.GatewayType, GatewayMode: it.GatewayMode,
			CardName: it.Card.CardName, CardScheme: it.Card.Scheme, Last4: it.Card.Last4, ExpMonth: it.Card.ExpMonth, ExpYear: it.Card.ExpYear}
	}
	return http.StatusOK, paydock.List{Data: out, Count: n, Skip: p.Skip, Limit: p.Limit}, nil
}
