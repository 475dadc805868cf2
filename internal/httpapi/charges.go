package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"switchyard/internal/charge"
	"switchyard/internal/customer"
	"switchyard/internal/errs"
	"switchyard/internal/money"
	"switchyard/internal/paydock"
)

type chargeSourceJSON struct {
	ID          string `json:"_id,omitempty"`
	Type        string `json:"type"`
	VaultToken  string `json:"vault_token,omitempty"`
	GatewayID   string `json:"gateway_id,omitempty"`
	GatewayName string `json:"gateway_name,omitempty"`
	GatewayType string `json:"gateway_type,omitempty"`
	CardName    string `json:"card_name,omitempty"`
	CardScheme  string `json:"card_scheme"`
	BIN         string `json:"card_number_bin"`
	Last4       string `json:"card_number_last4"`
	Fingerprint string `json:"card_fingerprint"`
	ExpMonth    int    `json:"expire_month"`
	ExpYear     int    `json:"expire_year"`
}

type chargeCustomerJSON struct {
	CustomerID string           `json:"customer_id,omitempty"`
	FirstName  string           `json:"first_name,omitempty"`
	LastName   string           `json:"last_name,omitempty"`
	Email      string           `json:"email,omitempty"`
	Phone      string           `json:"phone,omitempty"`
	Reference  string           `json:"reference,omitempty"`
	Source     chargeSourceJSON `json:"payment_source"`
}

type txnJSON struct {
	ID                    string       `json:"_id"`
	Type                  string       `json:"type"`
	Status                string       `json:"status"`
	Amount                json.Number  `json:"amount"`
	Currency              string       `json:"currency"`
	ExternalID            string       `json:"external_id,omitempty"`
	ErrorCode             string       `json:"error_code,omitempty"`
	ErrorMessage          string       `json:"error_message,omitempty"`
	GatewayCode           string       `json:"gateway_specific_code,omitempty"`
	GatewayDescription    string       `json:"gateway_specific_description,omitempty"`
	StatusCode            string       `json:"status_code,omitempty"`
	StatusCodeDescription string       `json:"status_code_description,omitempty"`
	CreatedAt             paydock.Time `json:"created_at"`
	UpdatedAt             paydock.Time `json:"updated_at"`
}

type chargeJSON struct {
	ID            string             `json:"_id"`
	CompanyID     string             `json:"company_id"`
	ExternalID    string             `json:"external_id,omitempty"`
	Amount        json.Number        `json:"amount"`
	Currency      string             `json:"currency"`
	Captured      json.Number        `json:"captured_amount"`
	Refunded      json.Number        `json:"refunded_amount"`
	Reference     string             `json:"reference,omitempty"`
	Description   string             `json:"description,omitempty"`
	Meta          map[string]any     `json:"meta,omitempty"`
	Status        string             `json:"status"`
	Capture       bool               `json:"capture"`
	Authorization bool               `json:"authorization"`
	OneOff        bool               `json:"one_off"`
	Archived      bool               `json:"archived"`
	CustomerID    string             `json:"customer_id,omitempty"`
	Customer      chargeCustomerJSON `json:"customer"`
	Transactions  []txnJSON          `json:"transactions"`
	CreatedAt     paydock.Time       `json:"created_at"`
	UpdatedAt     paydock.Time       `json:"updated_at"`
}

func toChargeJSON(c charge.Charge) chargeJSON {
	cur := c.Currency
	cu, ps := c.Customer, c.Customer.Source
	out := chargeJSON{ID: c.ID, CompanyID: c.AccountID, ExternalID: c.ExternalID, Amount: money.Number(c.Amount, cur), Currency: cur.Code,
		Captured: money.Number(c.Captured, cur), Refunded: money.Number(c.Refunded, cur), Reference: c.Reference, Description: c.Description,
		Meta: c.Meta, Status: c.Status, Capture: c.Capture, Authorization: c.Authorization, OneOff: c.OneOff, Archived: c.Archived,
		CustomerID: c.CustomerID, Transactions: []txnJSON{}, CreatedAt: paydock.Time(c.CreatedAt), UpdatedAt: paydock.Time(c.UpdatedAt),
		Customer: chargeCustomerJSON{CustomerID: cu.CustomerID, FirstName: cu.FirstName, LastName: cu.LastName, Email: cu.Email,
			Phone: cu.Phone, Reference: cu.Reference, Source: chargeSourceJSON{ID: ps.ID, Type: "card", VaultToken: ps.VaultToken,
				GatewayID: ps.GatewayID, GatewayName: ps.GatewayName, GatewayType: ps.GatewayType, CardName: ps.CardName,
				CardScheme: ps.Scheme, BIN: ps.BIN, Last4: ps.Last4, Fingerprint: ps.Fingerprint, ExpMonth: ps.ExpMonth, ExpYear: ps.ExpYear}}}
	for _, t := range c.Transactions {
		tj := txnJSON{ID: t.ID, Type: t.Type, Status: t.Status, Amount: money.Number(t.Amount, cur), Currency: cur.Code,
			ExternalID: t.ExternalID, CreatedAt: paydock.Time(t.CreatedAt), UpdatedAt: paydock.Time(t.UpdatedAt)}
		if d := t.Decline; d != nil {
			tj.ErrorCode, tj.ErrorMessage, tj.GatewayCode, tj.GatewayDescription = d.Code, d.Message, d.GatewayCode, d.GatewayDescription
			tj.StatusCode, tj.StatusCodeDescription = d.StatusCode, d.StatusDescription
		}
		out.Transactions = append(out.Transactions, tj)
	}
	return out
}

// chargeInput decodes a charge body. A field of the wrong JSON type is not
// reported here but kept in the input's Bad maps, so validation reports it
// in that field's turn of the §8.1 table (spec §3.4 step 6).
func chargeInput(c *call) charge.Input {
	w := newWireFields(c.body)
	in := charge.Input{QueryCapture: c.query.Get("capture"), Bad: w.bad}
	amount, err := c.body.Amount("amount")
	if err != nil {
		w.bad["amount"] = err
	}
	in.Amount, in.Currency = amount, w.str("currency")
	capture, set, err := c.body.Bool("capture")
	if err != nil {
		w.bad["capture"] = err
	}
	in.Capture, in.CaptureSet = capture, set
	in.Reference, in.Description = w.str("reference"), w.str("description")
	if c.body.Has("meta") {
		m, _, err := c.body.Object("meta")
		if err != nil {
			w.bad["meta"] = errs.Invalidf("meta", "meta must be an object of strings, numbers or booleans")
		}
		in.Meta, in.MetaSet = m.M, true
	}
	in.CustomerID, in.PaymentSourceID, in.Token = w.str("customer_id"), w.str("payment_source_id"), w.str("token")
	cu, _, err := c.body.Object("customer")
	if err != nil {
		w.bad["customer"] = err
	}
	cw := newWireFields(cu)
	in.Customer = customer.Text{FirstName: cw.str("first_name"), LastName: cw.str("last_name"), Email: cw.str("email"),
		Phone: cw.str("phone"), Reference: cw.str("reference")}
	in.CustomerBad = cw.bad
	ps, present, err := cu.Object("payment_source")
	if err != nil {
		cw.bad["payment_source"] = err
	}
	pw := newWireFields(ps)
	in.Source = customer.SourceInput{Present: present, GatewayID: pw.str("gateway_id"), VaultToken: pw.str("vault_token"),
		Type: pw.str("type"), Card: pw.card(), Address: pw.address(), Bad: pw.bad}
	return in
}

func (s *Server) createCharge(c *call) (int, any, error) {
	ch, err := s.Charges.Create(c.ctx, c.account.ID, chargeInput(c))
	return chargeResult(c, http.StatusCreated, ch, err)
}

// chargeResult returns a charge, with the failed charge as data beside a
// gateway error (spec §8.5).
func chargeResult(c *call, status int, ch charge.Charge, err error) (int, any, error) {
	if errors.Is(err, charge.ErrNotRecorded) {
		// The gateway acted; its answer waits for the reconciler. The charge
		// is answered inprogress (spec §8.8), never as a 503 to retry.
		info(c.ctx).log().Warn("gateway answer not recorded; the reconciler will settle the charge", "charge_id", ch.ID, "err", err)
		c.unsettled = true
		return status, toChargeJSON(ch), nil
	}
	if err != nil {
		if ch.ID != "" {
			return 0, toChargeJSON(ch), err
		}
		return 0, nil, err
	}
	return status, toChargeJSON(ch), nil
}

func opInput(b paydock.Object) (charge.OpInput, error) {
	var in charge.OpInput
	var err error
	if in.Amount, err = b.Amount("amount"); err != nil {
		return in, err
	}
	in.Currency, err = b.String("currency")
	return in, err
}

func (s *Server) chargeExists(c *call) error {
	_, err := s.Charges.Get(c.ctx, c.account.ID, c.param("id"))
	return err
}

func (s *Server) getCharge(c *call) (int, any, error) {
	ch, err := s.Charges.Get(c.ctx, c.account.ID, c.param("id"))
	return chargeResult(c, http.StatusOK, ch, err)
}

func (s *Server) captureCharge(c *call) (int, any, error) {
	in, err := opInput(c.body)
	if err != nil {
		return 0, nil, err
	}
	ch, err := s.Charges.Capture(c.ctx, c.account.ID, c.param("id"), in)
	return chargeResult(c, http.StatusCreated, ch, err)
}

func (s *Server) cancelCharge(c *call) (int, any, error) {
	ch, err := s.Charges.Cancel(c.ctx, c.account.ID, c.param("id"))
	return chargeResult(c, http.StatusOK, ch, err)
}

func (s *Server) refundCharge(c *call) (int, any, error) {
	in, err := opInput(c.body)
	if err != nil {
		return 0, nil, err
	}
	ch, err := s.Charges.Refund(c.ctx, c.account.ID, c.param("id"), in)
	return chargeResult(c, http.StatusOK, ch, err)
}

func (s *Server) archiveCharge(c *call) (int, any, error) {
	ch, err := s.Charges.Archive(c.ctx, c.account.ID, c.param("id"))
	return chargeResult(c, http.StatusOK, ch, err)
}

// parseDate reads a date filter (spec §1.5): a date (whole UTC day) or an
// RFC 3339 / ISO 8601 timestamp with Z or a ±hh:mm / ±hhmm offset (hours
// 00–23, minutes 00–59). A timestamp without an offset is refused rather
// than guessed to be UTC. Times are kept to the millisecond: a bound with
// finer digits is rounded up to the next millisecond, which keeps
// created_at >= from and created_at < to exact for stored times.
func parseDate(v string, end bool) (time.Time, bool) {
	if t, err := time.Parse("2006-01-02", v); err == nil {
		if end {
			t = t.Add(24 * time.Hour)
		}
		return t, true
	}
	// RFC 3339 §5.6 allows a lower-case "t" and "z", and a space for "T".
	if len(v) > 10 && (v[10] == 't' || v[10] == ' ') {
		v = v[:10] + "T" + v[11:]
	}
	if strings.HasSuffix(v, "z") {
		v = v[:len(v)-1] + "Z"
	}
	if !validOffset(v) {
		return time.Time{}, false
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999Z0700"} {
		if t, err := time.Parse(layout, v); err == nil {
			t = t.UTC()
			if ms := t.Truncate(time.Millisecond); !ms.Equal(t) {
				t = ms.Add(time.Millisecond)
			}
			return t, true
		}
	}
	return time.Time{}, false
}

// validOffset reports whether timestamp v ends in Z or in a ±hh:mm or
// ±hhmm offset within a day.
func validOffset(v string) bool {
	if strings.HasSuffix(v, "Z") {
		return true
	}
	var hh, mm string
	switch {
	case len(v) >= 6 && (v[len(v)-6] == '+' || v[len(v)-6] == '-') && v[len(v)-3] == ':':
		hh, mm = v[len(v)-5:len(v)-3], v[len(v)-2:]
	case len(v) >= 5 && (v[len(v)-5] == '+' || v[len(v)-5] == '-'):
		hh, mm = v[len(v)-4:len(v)-2], v[len(v)-2:]
	default:
		return false
	}
	for _, c := range hh + mm {
		if c < '0' || c > '9' {
			return false
		}
	}
	return hh <= "23" && mm <= "59"
}

func (s *Server) listCharges(c *call) (int, any, error) {
	p, err := pageParams(c, "created_at", "updated_at", "amount", "reference")
	if err != nil {
		return 0, nil, err
	}
	q := c.query
	term, err := searchParam(c)
	if err != nil {
		return 0, nil, err
	}
	f := charge.Filter{Status: q.Get("status"), Reference: q.Get("reference"), Search: term}
	if f.Status != "" && !slices.Contains(charge.Statuses, f.Status) {
		return 0, nil, errs.Query("status", "status must be one of: "+strings.Join(charge.Statuses, ", "))
	}
	for _, id := range []struct {
		name string
		dst  *string
	}{{"customer_id", &f.CustomerID}, {"gateway_id", &f.GatewayID}} {
		if v := q.Get(id.name); v != "" {
			if !paydock.IsID(v) {
				return 0, nil, errs.Query(id.name, id.name+" must be a mongodb id")
			}
			*id.dst = paydock.NormalizeID(v)
		}
	}
	for _, d := range []struct {
		name string
		end  bool
		dst  *time.Time
	}{{"created_at.from", false, &f.From}, {"created_at.to", true, &f.To}} {
		if v := q.Get(d.name); v != "" {
			t, ok := parseDate(v, d.end)
			if !ok {
				return 0, nil, errs.Query(d.name, d.name+" must be a date (YYYY-MM-DD) or an ISO 8601 timestamp with Z or a ±hh:mm offset")
			}
			*d.dst = t
		}
	}
	cs, n, err := s.Charges.List(c.ctx, c.account.ID, f, p)
	if err != nil {
		return 0, nil, err
	}
	out := make([]chargeJSON, len(cs))
	for i, ch := range cs {
		out[i] = toChargeJSON(ch)
	}
	return http.StatusOK, paydock.List{Data: out, Count: n, Skip: p.Skip, Limit: p.Limit}, nil
}
