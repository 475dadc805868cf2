package customer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"switchyard/internal/errs"
	"switchyard/internal/gateway"
	"switchyard/internal/vault"
)

var testNow = time.Date(2026, time.November, 24, 9, 0, 0, 0, time.UTC)

// bare is a Service with no dependencies: enough for validation (step 6).
func bare() *Service { return &Service{now: func() time.Time { return testNow }} }

// wantInvalid checks err is a ValidationError with path and message.
func wantInvalid(t *testing.T, err error, path, msg string) {
	t.Helper()
	var e *errs.Error
	if !errors.As(err, &e) || e.Kind != errs.Invalid || e.Path != path || len(e.Messages) != 1 || e.Messages[0] != msg {
		t.Errorf("error %#v, want Invalid path %q %q", err, path, msg)
	}
}

func TestCustomerCheckMeta(t *testing.T) {
	many := func(n int) map[string]any {
		m := map[string]any{}
		for i := range n {
			m[fmt.Sprint("k", i)] = i%2 == 0
		}
		return m
	}
	cases := []struct {
		name string
		m    map[string]any
		ok   bool
	}{
		{"nil", nil, true},
		{"empty", map[string]any{}, true},
		{"scalars", map[string]any{"s": "x", "n": json.Number("12.5"), "b": false, "neg": json.Number("-1")}, true},
		{"50 keys", many(50), true},
		{"51 keys", many(51), false},
		{"key of 64 code points", map[string]any{strings.Repeat("é", 64): "v"}, true},
		{"key of 65", map[string]any{strings.Repeat("k", 65): "v"}, false},
		{"value of 500 code points", map[string]any{"k": strings.Repeat("é", 500)}, true},
		{"value of 501", map[string]any{"k": strings.Repeat("v", 501)}, false},
		{"empty string value", map[string]any{"k": ""}, true},
		{"nested object", map[string]any{"k": map[string]any{}}, false},
		{"array", map[string]any{"k": []any{}}, false},
		{"null", map[string]any{"k": nil}, false},
		{"float64 (never produced by the decoder)", map[string]any{"k": 1.5}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := CheckMeta(c.m)
			if c.ok && err != nil {
				t.Errorf("rejected: %v", err)
			}
			if !c.ok {
				wantInvalid(t, err, "meta", "meta must be an object of strings, numbers or booleans")
			}
		})
	}
}

func TestCustomerTextSearch(t *testing.T) {
	tx := Text{FirstName: "ÉMILE", LastName: "Zola", Email: "Emile@Example.COM", Phone: "+33123456789", Reference: "CRM-1",
		Description: "Secret Notes", CompanyName: "Under_Score%"}
	got := tx.Search()
	for _, want := range []string{"émile", "zola", "emile@example.com", "crm-1", "under_score%"} {
		if !strings.Contains(got, want) {
			t.Errorf("Search() = %q lacks %q", got, want)
		}
	}
	for _, not := range []string{"secret", "notes", "33123456789", "É", "Z", "CRM"} {
		if strings.Contains(got, not) {
			t.Errorf("Search() = %q holds %q", got, not)
		}
	}
	if got != strings.ToLower(got) {
		t.Errorf("Search() is not lower-cased: %q", got)
	}
	if (Text{}).Search() != "\n\n\n\n" {
		t.Errorf("empty Text: %q", (Text{}).Search())
	}
	// Fields are separate: a search cannot match across two of them
	// unless it holds the separator.
	if strings.Contains(Text{FirstName: "ab", LastName: "cd"}.Search(), "abcd") {
		t.Errorf("fields run together")
	}
}

func TestCustomerFillText(t *testing.T) {
	c := vault.Contact{FirstName: "Grace", LastName: "Hopper", Email: "grace@example.com", Phone: "+61411222333"}
	cases := []struct {
		name     string
		in, want Text
	}{
		{"all empty", Text{}, Text{FirstName: "Grace", LastName: "Hopper", Email: "grace@example.com", Phone: "+61411222333"}},
		{"body wins", Text{FirstName: "Ada", Email: "ada@example.com"},
			Text{FirstName: "Ada", LastName: "Hopper", Email: "ada@example.com", Phone: "+61411222333"}},
		{"other fields untouched", Text{Reference: "R", Description: "D", CompanyName: "C"},
			Text{FirstName: "Grace", LastName: "Hopper", Email: "grace@example.com", Phone: "+61411222333", Reference: "R", Description: "D", CompanyName: "C"}},
	}
	for _, tc := range cases {
		tx := tc.in
		fillText(&tx, c)
		if tx != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, tx, tc.want)
		}
	}
	tx := Text{LastName: "Kept"}
	fillText(&tx, vault.Contact{})
	if tx != (Text{LastName: "Kept"}) {
		t.Errorf("empty contact changed %+v", tx)
	}
}

func card(over func(*vault.CardInput)) vault.CardInput {
	c := vault.CardInput{Name: "Ada Lovelace", Number: "4111111111111111", ExpMonth: "9", ExpYear: "2028", CCV: "123"}
	if over != nil {
		over(&c)
	}
	return c
}

const (
	tok   = "052d9a30-48dd-4a07-9062-f3120c46e415"
	vtok  = "f2ea3fa6-6869-4ea7-86e3-c9e64e8ac2db"
	gwID  = "c997ae1eaeff05ea0d7e79db"
	srcID = "3f461e8961a1ec7741f67a0c"
)

func TestCustomerValidatePlan(t *testing.T) {
	cases := []struct {
		name   string
		in     Input
		create bool
		check  func(t *testing.T, p plan, in Input)
	}{
		{"flow 1 with gateway", Input{Source: SourceInput{Present: true, GatewayID: strings.ToUpper(gwID), Card: card(nil)}}, true,
			func(t *testing.T, p plan, _ Input) {
				if p.flow != 1 || p.gatewayID != gwID || p.card.Number != "4111111111111111" || p.card.ExpYear != 2028 || p.card.CCV != "123" {
					t.Errorf("plan %+v", p)
				}
			}},
		{"flow 1 vault-only", Input{Source: SourceInput{Present: true, Type: "card", Card: card(nil)}}, true,
			func(t *testing.T, p plan, _ Input) {
				if p.flow != 1 || p.gatewayID != "" {
					t.Errorf("plan %+v", p)
				}
			}},
		{"flow 2 top-level token", Input{Token: strings.ToUpper(tok)}, true,
			func(t *testing.T, p plan, _ Input) {
				if p.flow != 2 || p.token != tok || p.tokenPath != "token" || p.gatewayID != "" {
					t.Errorf("plan %+v", p)
				}
			}},
		{"flow 2 payment_source.token with gateway and address", Input{Source: SourceInput{Present: true, Token: tok, GatewayID: gwID,
			Address: vault.Address{City: "Hobart", Country: "au"}}}, true,
			func(t *testing.T, p plan, _ Input) {
				if p.flow != 2 || p.token != tok || p.tokenPath != "payment_source.token" || p.gatewayID != gwID || p.address.Country != "AU" {
					t.Errorf("plan %+v", p)
				}
			}},
		{"flow 3", Input{Source: SourceInput{Present: true, VaultToken: strings.ToUpper(vtok), GatewayID: gwID, Card: vault.CardInput{CCV: "999"}}}, true,
			func(t *testing.T, p plan, _ Input) {
				if p.flow != 3 || p.vaultTok != vtok || p.gatewayID != gwID || p.ccv != "999" {
					t.Errorf("plan %+v", p)
				}
			}},
		{"flow 4", Input{Source: SourceInput{Present: true, VaultToken: vtok}}, true,
			func(t *testing.T, p plan, _ Input) {
				if p.flow != 4 || p.vaultTok != vtok || p.gatewayID != "" || p.ccv != "" {
					t.Errorf("plan %+v", p)
				}
			}},
		{"update without a source", Input{Text: Text{FirstName: "Ada"}, DefaultSource: strings.ToUpper(srcID)}, false,
			func(t *testing.T, p plan, in Input) {
				if p.flow != 0 || in.DefaultSource != srcID {
					t.Errorf("plan %+v default %q", p, in.DefaultSource)
				}
			}},
		{"update {}", Input{}, false, func(t *testing.T, p plan, _ Input) {
			if p != (plan{}) {
				t.Errorf("plan %+v", p)
			}
		}},
		{"phone normalised with payment_source.address_country", Input{Text: Text{Phone: "0412 345 678"},
			Source: SourceInput{Present: true, VaultToken: vtok, Address: vault.Address{Country: "AU"}}}, true,
			func(t *testing.T, _ plan, in Input) {
				if in.Text.Phone != "+61412345678" {
					t.Errorf("phone %q", in.Text.Phone)
				}
			}},
		{"phone normalised with the top-level address_country", Input{Token: tok, Text: Text{Phone: "0412 345 678"}, AddressCountry: "AUS"}, true,
			func(t *testing.T, _ plan, in Input) {
				if in.Text.Phone != "+61412345678" {
					t.Errorf("phone %q", in.Text.Phone)
				}
			}},
		{"phone trimmed without a country", Input{Token: tok, Text: Text{Phone: " 0412 345 678 "}}, true,
			func(t *testing.T, _ plan, in Input) {
				if in.Text.Phone != "0412 345 678" {
					t.Errorf("phone %q", in.Text.Phone)
				}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := c.in
			p, err := bare().validate(&in, c.create)
			if err != nil {
				t.Fatalf("validate: %v", err)
			}
			c.check(t, p, in)
		})
	}
}

func TestCustomerValidateErrors(t *testing.T) {
	ps := func(s SourceInput) Input { s.Present = true; return Input{Source: s} }
	typeErr := errs.Invalidf("first_name", "first_name must be a string")
	cases := []struct {
		name      string
		in        Input
		create    bool
		path, msg string
	}{
		{"create with nothing", Input{}, true, "payment_source", "payment_source or token is required"},
		{"both", Input{Token: tok, Source: SourceInput{Present: true}}, true, "payment_source", "payment_source and token cannot be used together"},
		{"both on update", Input{Token: tok, Source: SourceInput{Present: true}}, false, "payment_source", "payment_source and token cannot be used together"},
		{"token of a wrong type counts as sent", Input{Invalid: map[string]error{"token": errs.Invalidf("token", "token must be a string")},
			Source: SourceInput{Present: true}}, true, "payment_source", "payment_source and token cannot be used together"},
		{"token type error", Input{Invalid: map[string]error{"token": errs.Invalidf("token", "token must be a string")}}, true,
			"token", "token must be a string"},
		{"token shape", Input{Token: "nope"}, true, "token", "token must be a uuid"},
		{"token before a text type error", Input{Token: "nope", Invalid: map[string]error{"first_name": typeErr}}, true, "token", "token must be a uuid"},
		{"text type error at its turn", Input{Token: tok, Text: Text{Reference: strings.Repeat("r", 256)}, Invalid: map[string]error{"first_name": typeErr}},
			true, "reference", "reference must be at most 255 characters"},
		{"text type error", Input{Token: tok, Invalid: map[string]error{"first_name": typeErr}}, true, "first_name", "first_name must be a string"},
		{"last_name length", Input{Token: tok, Text: Text{LastName: strings.Repeat("é", 256)}}, true, "last_name", "last_name must be at most 255 characters"},
		{"email", Input{Token: tok, Text: Text{Email: "x"}}, true, "email", "email must be a valid email address"},
		{"phone", Input{Token: tok, Text: Text{Phone: "12a456"}}, true, "phone", "phone must be a phone number, ideally in E.164 format"},
		{"default_source", Input{Token: tok, DefaultSource: "x"}, false, "default_source", "default_source must be a mongodb id"},
		{"payment_source type error", Input{Source: SourceInput{Present: true},
			Invalid: map[string]error{"payment_source": errs.Invalidf("payment_source", "payment_source must be an object")}},
			true, "payment_source", "payment_source must be an object"},
		{"exactly one: none", ps(SourceInput{GatewayID: gwID}), true, "payment_source", "payment_source must contain exactly one of card details, vault_token or token"},
		{"exactly one: ccv is not card details", ps(SourceInput{Card: vault.CardInput{CCV: "123"}}), true,
			"payment_source", "payment_source must contain exactly one of card details, vault_token or token"},
		{"exactly one: card and vault", ps(SourceInput{VaultToken: vtok, Card: vault.CardInput{ExpYear: "28"}}), true,
			"payment_source", "payment_source must contain exactly one of card details, vault_token or token"},
		{"exactly one: vault and token", ps(SourceInput{VaultToken: vtok, Token: tok}), true,
			"payment_source", "payment_source must contain exactly one of card details, vault_token or token"},
		{"gateway_id", ps(SourceInput{GatewayID: "g", Card: card(nil)}), true, "payment_source.gateway_id", "gateway_id must be a mongodb id"},
		{"vault_token", ps(SourceInput{VaultToken: "v"}), true, "payment_source.vault_token", "vault_token must be a uuid"},
		{"type", ps(SourceInput{VaultToken: vtok, Type: "bank"}), true, "payment_source.type", "type must be one of: card"},
		{"card rule", ps(SourceInput{Card: card(func(c *vault.CardInput) { c.Number = "4111111111111112" })}), true,
			"payment_source.card_number", "card_number failed the Luhn check"},
		{"card expired", ps(SourceInput{Card: card(func(c *vault.CardInput) { c.ExpMonth, c.ExpYear = "10", "2026" })}), true,
			"payment_source.expire_year", "card has expired"},
		{"ccv type error beside a vault token", ps(SourceInput{VaultToken: vtok, Bad: map[string]error{"card_ccv": errs.Invalidf("card_ccv", "card_ccv must be a string")}}), true,
			"payment_source.card_ccv", "card_ccv must be a string"},
		{"card type error in table order", ps(SourceInput{Card: card(func(c *vault.CardInput) { c.Name, c.CCV = "", "" }),
			Bad: map[string]error{"card_ccv": errs.Invalidf("card_ccv", "card_ccv must be a string")}}), true,
			"payment_source.card_name", "card_name is required"},
		{"a mistyped card field is card details", ps(SourceInput{GatewayID: "bad", Bad: map[string]error{"card_number": errs.Invalidf("card_number", "card_number must be a string")}}), true,
			"payment_source.gateway_id", "gateway_id must be a mongodb id"},
		{"type error after vault_token", ps(SourceInput{VaultToken: "bad", Bad: map[string]error{"address_line1": errs.Invalidf("address_line1", "address_line1 must be a string")}}), true,
			"payment_source.vault_token", "vault_token must be a uuid"},
		{"address in §7.1 order: state before city", ps(SourceInput{VaultToken: vtok, Address: vault.Address{City: strings.Repeat("a", 256), State: strings.Repeat("a", 256)}}), true,
			"payment_source.address_state", "address_state must be at most 255 characters"},
		{"address in §7.1 order: country before city", ps(SourceInput{VaultToken: vtok, Address: vault.Address{City: strings.Repeat("a", 256), Country: "1"}}), true,
			"payment_source.address_country", "address_country must be a 2- or 3-letter country code"},
		{"payment_source.token", ps(SourceInput{Token: "t"}), true, "payment_source.token", "token must be a uuid"},
		{"address_country", ps(SourceInput{VaultToken: vtok, Address: vault.Address{Country: "A"}}), true,
			"payment_source.address_country", "address_country must be a 2- or 3-letter country code"},
		{"meta type error", Input{Token: tok, MetaSet: true, Invalid: map[string]error{"meta": errs.Invalidf("meta", "meta must be an object of strings, numbers or booleans")}},
			true, "meta", "meta must be an object of strings, numbers or booleans"},
		{"meta after payment_source", Input{Source: SourceInput{Present: true, VaultToken: "v"}, MetaSet: true, Meta: map[string]any{"k": nil}},
			true, "payment_source.vault_token", "vault_token must be a uuid"},
		{"meta", Input{Token: tok, MetaSet: true, Meta: map[string]any{"k": nil}}, true, "meta", "meta must be an object of strings, numbers or booleans"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := c.in
			_, err := bare().validate(&in, c.create)
			wantInvalid(t, err, c.path, c.msg)
		})
	}
}

// fakeRefs serves references: one active gateway and some vault records.
type fakeRefs struct {
	Vault    // nil: methods not used by references panic
	Gateways // nil
	records  map[string]vault.Record
	calls    []string
}

func (f *fakeRefs) Active(_ context.Context, _, id, path string) (gateway.Gateway, error) {
	f.calls = append(f.calls, "gateway "+id)
	if id != gwID {
		return gateway.Gateway{}, errs.Invalidf(path, "gateway not found")
	}
	return gateway.Gateway{ID: id}, nil
}

func (f *fakeRefs) CheckOneTime(_ context.Context, _, token, path string) (vault.Record, error) {
	f.calls = append(f.calls, "token "+token)
	r, ok := f.records[token]
	if !ok || r.Kind != vault.OneTime {
		return vault.Record{}, errs.Invalidf(path, "token not found")
	}
	return r, nil
}

func (f *fakeRefs) ForCustomer(_ context.Context, _, token, path string) (vault.Record, error) {
	f.calls = append(f.calls, "vault "+token)
	r, ok := f.records[token]
	if !ok || r.Kind != vault.Permanent {
		return vault.Record{}, errs.Invalidf(path, "vault token not found")
	}
	return r, nil
}

func TestCustomerReferences(t *testing.T) {
	const amex = "9517a298-2b4f-49fc-bb44-51edab88d168"
	f := &fakeRefs{records: map[string]vault.Record{
		tok:  {Kind: vault.OneTime, GatewayID: gwID},
		vtok: {Kind: vault.Permanent, Scheme: "visa"},
		amex: {Kind: vault.Permanent, Scheme: "amex"},
	}}
	s := &Service{vault: f, gateways: f, now: func() time.Time { return testNow }}
	ctx := context.Background()

	r, err := s.references(ctx, "a", plan{flow: 2, token: tok, tokenPath: "token"})
	if err != nil || r.gw.ID != gwID {
		t.Errorf("token's gateway: %+v %v", r, err)
	}
	if _, err := s.references(ctx, "a", plan{flow: 4, vaultTok: vtok, gatewayID: "000000000000000000000000"}); err == nil {
		t.Errorf("unknown gateway accepted")
	} else {
		wantInvalid(t, err, "payment_source.gateway_id", "gateway not found")
	}
	for _, c := range []struct {
		vt, ccv string
		msg     string
	}{{vtok, "123", ""}, {vtok, "1234", "card_ccv must be 3 digits"}, {vtok, "12", "card_ccv must be 3 digits"}, {vtok, "12a", "card_ccv must be 3 digits"},
		{amex, "1234", ""}, {amex, "123", "card_ccv must be 4 digits for amex"}, {amex, "12", "card_ccv must be 4 digits for amex"},
		{amex, "12345", "card_ccv must be 4 digits for amex"}, {amex, "12a4", "card_ccv must be 4 digits for amex"}} {
		r, err := s.references(ctx, "a", plan{flow: 3, vaultTok: c.vt, gatewayID: gwID, ccv: c.ccv})
		if c.msg == "" {
			if err != nil || r.linked.Kind != vault.Permanent || r.gw.ID != gwID {
				t.Errorf("%s %s: %+v %v", c.vt, c.ccv, r, err)
			}
			continue
		}
		wantInvalid(t, err, "payment_source.card_ccv", c.msg)
	}
	f.calls = nil
	if r, err := s.references(ctx, "a", plan{}); err != nil || r.gw.ID != "" || r.linked.Kind != "" || len(f.calls) != 0 {
		t.Errorf("no source: %+v %v %v", r, err, f.calls)
	}
}
