package vault

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"switchyard/internal/errs"
)

// recWant fails t unless err is nil (path == "") or one Invalid *errs.Error
// at path with the one message msg.
func recWant(t *testing.T, err error, path, msg string) {
	t.Helper()
	if path == "" {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	var e *errs.Error
	if !errors.As(err, &e) {
		t.Fatalf("error = %v, want Invalid at %s: %q", err, path, msg)
	}
	if e.Kind != errs.Invalid || e.Path != path || len(e.Messages) != 1 || e.Messages[0] != msg {
		t.Fatalf("error = kind %v path %q messages %q, want Invalid path %q [%q]", e.Kind, e.Path, e.Messages, path, msg)
	}
}

func TestMergeAddress(t *testing.T) {
	full := Address{Line1: "1 A St", Line2: "Unit 2", Line3: "Rear", City: "Sydney", State: "NSW", Postcode: "2000", Country: "AU"}
	cases := []struct {
		name       string
		base, over Address
		want       Address
	}{
		{"both empty", Address{}, Address{}, Address{}},
		{"base only", full, Address{}, full},
		{"over only", Address{}, full, full},
		{"over wins field by field", full, Address{City: "Melbourne", Postcode: "3000"},
			Address{Line1: "1 A St", Line2: "Unit 2", Line3: "Rear", City: "Melbourne", State: "NSW", Postcode: "3000", Country: "AU"}},
		{"every field over", full, Address{Line1: "a", Line2: "b", Line3: "c", City: "d", State: "e", Postcode: "f", Country: "NZ"},
			Address{Line1: "a", Line2: "b", Line3: "c", City: "d", State: "e", Postcode: "f", Country: "NZ"}},
		{"empty over never clears", Address{Line3: "keep"}, Address{Line1: "x"}, Address{Line1: "x", Line3: "keep"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, MergeAddress(tc.base, tc.over)); diff != "" {
				t.Errorf("MergeAddress (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCheckType(t *testing.T) {
	for _, tc := range []struct{ path, typ, wantPath string }{
		{"type", "", ""},
		{"type", "card", ""},
		{"type", "Card", "type"},
		{"type", "CARD", "type"},
		{"type", "bank_account", "type"},
		{"type", "card ", "type"},
		{"payment_source.type", "checkout", "payment_source.type"},
	} {
		recWant(t, CheckType(tc.path, tc.typ), tc.wantPath, "type must be one of: card")
	}
}

func TestCheckAddress(t *testing.T) {
	long := strings.Repeat("é", 256)
	longest := strings.Repeat("é", 255)
	cases := []struct {
		name    string
		in      Address
		path    string
		msg     string
		country string
	}{
		{"empty", Address{}, "", "", ""},
		{"255 code points each", Address{Line1: longest, Line2: longest, Line3: longest, City: longest, State: longest, Postcode: longest}, "", "", ""},
		{"line1 too long", Address{Line1: long}, "address_line1", "address_line1 must be at most 255 characters", ""},
		{"line2 too long", Address{Line2: long}, "address_line2", "address_line2 must be at most 255 characters", ""},
		{"line3 too long", Address{Line3: long}, "address_line3", "address_line3 must be at most 255 characters", ""},
		{"city too long", Address{City: long}, "address_city", "address_city must be at most 255 characters", ""},
		{"state too long", Address{State: long}, "address_state", "address_state must be at most 255 characters", ""},
		{"postcode too long", Address{Postcode: long}, "address_postcode", "address_postcode must be at most 255 characters", ""},
		{"first failing field wins", Address{Line2: long, City: long, Country: "1"}, "address_line2", "address_line2 must be at most 255 characters", ""},
		{"country upper-cased", Address{Country: "au"}, "", "", "AU"},
		{"3 letters", Address{Country: "nzL"}, "", "", "NZL"},
		{"country 1 letter", Address{Country: "A"}, "address_country", "address_country must be a 2- or 3-letter country code", ""},
		{"country 4 letters", Address{Country: "AUST"}, "address_country", "address_country must be a 2- or 3-letter country code", ""},
		{"country digits", Address{Country: "A1"}, "address_country", "address_country must be a 2- or 3-letter country code", ""},
		{"country non-ASCII", Address{Country: "ÅU"}, "address_country", "address_country must be a 2- or 3-letter country code", ""},
		{"country with space", Address{Country: "AU "}, "address_country", "address_country must be a 2- or 3-letter country code", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := tc.in
			recWant(t, CheckAddress(&a), tc.path, tc.msg)
			if tc.path == "" && a.Country != tc.country {
				t.Errorf("country %q, want %q", a.Country, tc.country)
			}
			if tc.path != "" && a != tc.in {
				t.Errorf("a failing check changed the address: %+v", a)
			}
		})
	}
}

func TestCheckAddressWireErrors(t *testing.T) {
	wire := errs.Invalidf("address_city", "address_city must be a string")
	long := strings.Repeat("x", 256)
	// A wire error is reported in its field's turn: after earlier fields, before later ones.
	a := Address{Line1: long}
	if err := checkAddress(&a, map[string]error{"address_city": wire}); err == wire {
		t.Errorf("wire error of a later field won over address_line1")
	}
	a = Address{Country: "1"}
	if err := checkAddress(&a, map[string]error{"address_city": wire}); err != wire {
		t.Errorf("error %v, want the address_city wire error before address_country", err)
	}
}

func TestCheckToken(t *testing.T) {
	const tok = "052d9a30-48dd-4a07-9062-f3120c46e415"
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{tok, tok, true},
		{strings.ToUpper(tok), tok, true},
		{"052D9A30-48dd-4A07-9062-F3120C46E415", tok, true},
		{"00000000-0000-0000-0000-000000000000", "00000000-0000-0000-0000-000000000000", true}, // shape only, any version
		{"", "", false},
		{"abc", "", false},
		{tok[:35], "", false},
		{tok + "0", "", false},
		{strings.ReplaceAll(tok, "-", ""), "", false},
		{"{" + tok[1:35] + "}", "", false},
		{"urn:uuid:" + tok, "", false},
		{"052d9a30_48dd_4a07_9062_f3120c46e415", "", false},
		{"052d9a3048dd-4a07-9062-f3120c46e415-", "", false},
		{"g52d9a30-48dd-4a07-9062-f3120c46e415", "", false},
		{" 52d9a30-48dd-4a07-9062-f3120c46e415", "", false},
		{"052d9a30-48dd-4a07-9062-f3120c46e41é", "", false},
	} {
		got, err := CheckToken("payment_source.token", "token", tc.in)
		if !tc.ok {
			recWant(t, err, "payment_source.token", "token must be a uuid")
			continue
		}
		recWant(t, err, "", "")
		if got != tc.want {
			t.Errorf("CheckToken(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	_, err := CheckToken("vault_token", "vault_token", "nope")
	recWant(t, err, "vault_token", "vault_token must be a uuid")
}

func TestCheckGatewayID(t *testing.T) {
	const id = "c997ae1eaeff05ea0d7e79db"
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"", "", true}, // optional: absent stays absent
		{id, id, true},
		{strings.ToUpper(id), id, true},
		{"000000000000000000000000", "000000000000000000000000", true},
		{id[:23], "", false},
		{id + "0", "", false},
		{"g997ae1eaeff05ea0d7e79db", "", false},
		{"c997ae1e-aeff05ea0d7e79d", "", false},
		{" c997ae1eaeff05ea0d7e79d", "", false},
		{"c997ae1eaeff05ea0d7e79dé", "", false},
		{"invalid_id_string", "", false},
	} {
		got, err := CheckGatewayID("payment_source.gateway_id", tc.in)
		if !tc.ok {
			recWant(t, err, "payment_source.gateway_id", "gateway_id must be a mongodb id")
			continue
		}
		recWant(t, err, "", "")
		if got != tc.want {
			t.Errorf("CheckGatewayID(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestCheckCardWireErrors(t *testing.T) {
	now := time.Date(2026, time.November, 24, 9, 10, 0, 0, time.UTC)
	good := CardInput{Name: "Alan Turing", Number: "4242424242424242", ExpMonth: "12", ExpYear: "27", CCV: "321"}
	wire := func(f string) error { return errs.Invalidf(f, "%s must be a string", f) }
	cases := []struct {
		name string
		in   func(CardInput) CardInput
		bad  []string
		path string
		msg  string
	}{
		{"no wire error", nil, nil, "", ""},
		{"mistyped month alone", func(c CardInput) CardInput { c.ExpMonth = ""; return c }, []string{"expire_month"}, "expire_month", "expire_month must be a string"},
		{"earlier name failure wins", func(c CardInput) CardInput { c.Name = ""; c.ExpMonth = ""; return c }, []string{"expire_month"}, "card_name", "card_name is required"},
		{"earlier Luhn failure wins", func(c CardInput) CardInput { c.Number = "4242424242424241"; c.CCV = ""; return c }, []string{"card_ccv"}, "card_number", "card_number failed the Luhn check"},
		{"expiry before the ccv", func(c CardInput) CardInput { c.ExpYear = "2020"; c.CCV = ""; return c }, []string{"card_ccv"}, "expire_year", "card has expired"},
		{"later failure loses", func(c CardInput) CardInput { c.Number = ""; c.ExpMonth = "13"; return c }, []string{"card_number"}, "card_number", "card_number must be a string"},
		{"first wire error of two", func(c CardInput) CardInput { c.Number, c.CCV = "", ""; return c }, []string{"card_ccv", "card_number"}, "card_number", "card_number must be a string"},
		{"mistyped name", func(c CardInput) CardInput { c.Name = ""; return c }, []string{"card_name"}, "card_name", "card_name must be a string"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := good
			if tc.in != nil {
				in = tc.in(in)
			}
			bad := map[string]error{}
			for _, f := range tc.bad {
				bad[f] = wire(f)
			}
			c, err := checkCard(in, bad, now)
			recWant(t, err, tc.path, tc.msg)
			if tc.path == "" && (c.Number != good.Number || c.ExpYear != 2027) {
				t.Errorf("card %v", c)
			}
		})
	}
}
