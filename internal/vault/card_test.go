package vault

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"switchyard/internal/errs"
)

// testNow is the spec's example clock: 2026-11-24T09:10:00.031Z.
var testNow = time.Date(2026, time.November, 24, 9, 10, 0, 31e6, time.UTC)

// checkInvalid fails t unless err is one Invalid *errs.Error at path with the
// one message msg; path == "" means err must be nil.
func checkInvalid(t *testing.T, err error, path, msg string) {
	t.Helper()
	if path == "" {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	var e *errs.Error
	if !errors.As(err, &e) {
		t.Fatalf("error = %v, want *errs.Error at %s: %q", err, path, msg)
	}
	got := struct {
		Kind     errs.Kind
		Path     string
		Messages []string
	}{e.Kind, e.Path, e.Messages}
	want := struct {
		Kind     errs.Kind
		Path     string
		Messages []string
	}{errs.Invalid, path, []string{msg}}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("error mismatch (-want +got):\n%s", d)
	}
}

func TestValidateCard(t *testing.T) {
	// base is a valid card; each row changes what it tests.
	base := CardInput{Name: "Alan Turing", Number: "4242424242424242", ExpMonth: "12", ExpYear: "27", CCV: "321"}
	with := func(f func(*CardInput)) CardInput {
		in := base
		f(&in)
		return in
	}
	baseCard := Card{Name: "Alan Turing", Number: "4242424242424242", ExpMonth: 12, ExpYear: 2027, CCV: "321"}
	withCard := func(f func(*Card)) Card {
		c := baseCard
		f(&c)
		return c
	}
	at := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}

	tests := []struct {
		name string
		in   CardInput
		now  time.Time // zero: testNow
		want Card      // when path == ""
		path string
		msg  string
	}{
		{name: "valid spec example", in: base, want: baseCard},

		// card_name
		{name: "name absent", in: with(func(c *CardInput) { c.Name = "" }), path: "card_name", msg: "card_name is required"},
		{name: "name 1 char", in: with(func(c *CardInput) { c.Name = "A" }), want: withCard(func(c *Card) { c.Name = "A" })},
		{name: "name 100 chars", in: with(func(c *CardInput) { c.Name = strings.Repeat("a", 100) }), want: withCard(func(c *Card) { c.Name = strings.Repeat("a", 100) })},
		{name: "name 101 chars", in: with(func(c *CardInput) { c.Name = strings.Repeat("a", 101) }), path: "card_name", msg: "card_name must be 1 to 100 characters"},
		{name: "name 100 code points 200 bytes", in: with(func(c *CardInput) { c.Name = strings.Repeat("é", 100) }), want: withCard(func(c *Card) { c.Name = strings.Repeat("é", 100) })},
		{name: "name 101 code points", in: with(func(c *CardInput) { c.Name = strings.Repeat("é", 101) }), path: "card_name", msg: "card_name must be 1 to 100 characters"},
		{name: "name whitespace kept", in: with(func(c *CardInput) { c.Name = " " }), want: withCard(func(c *Card) { c.Name = " " })},

		// card_number
		{name: "number absent", in: with(func(c *CardInput) { c.Number = "" }), path: "card_number", msg: "card_number is required"},
		{name: "number with spaces", in: with(func(c *CardInput) { c.Number = "4242 4242 4242 4242" }), path: "card_number", msg: "card_number must contain digits only"},
		{name: "number with dashes", in: with(func(c *CardInput) { c.Number = "4242-4242-4242-4242" }), path: "card_number", msg: "card_number must contain digits only"},
		{name: "number trailing space", in: with(func(c *CardInput) { c.Number = "4242424242424242 " }), path: "card_number", msg: "card_number must contain digits only"},
		{name: "number fullwidth digits", in: with(func(c *CardInput) { c.Number = "４２４２４２４２４２４２４２４２" }), path: "card_number", msg: "card_number must contain digits only"},
		{name: "number signed", in: with(func(c *CardInput) { c.Number = "+4242424242424242" }), path: "card_number", msg: "card_number must contain digits only"},
		{name: "number non-digit checked before length", in: with(func(c *CardInput) { c.Number = "42x" }), path: "card_number", msg: "card_number must contain digits only"},
		{name: "number 11 digits", in: with(func(c *CardInput) { c.Number = "42424242420" }), path: "card_number", msg: "card_number must be 12 to 19 digits"},
		{name: "number 12 digits", in: with(func(c *CardInput) { c.Number = "424242424242" }), want: withCard(func(c *Card) { c.Number = "424242424242" })},
		{name: "number 19 digits", in: with(func(c *CardInput) { c.Number = "4242424242424242428" }), want: withCard(func(c *Card) { c.Number = "4242424242424242428" })},
		{name: "number 20 digits", in: with(func(c *CardInput) { c.Number = "42424242424242424242" }), path: "card_number", msg: "card_number must be 12 to 19 digits"},
		{name: "number Luhn fail", in: with(func(c *CardInput) { c.Number = "4242424242424241" }), path: "card_number", msg: "card_number failed the Luhn check"},
		{name: "number length checked before Luhn", in: with(func(c *CardInput) { c.Number = "4242424242424242424241" }), path: "card_number", msg: "card_number must be 12 to 19 digits"},
		{name: "unknown scheme accepted", in: with(func(c *CardInput) { c.Number = "9000000000000001" }), want: withCard(func(c *Card) { c.Number = "9000000000000001" })},

		// every §6.5 example validates
		{name: "visa 4111111111111111", in: with(func(c *CardInput) { c.Number = "4111111111111111" }), want: withCard(func(c *Card) { c.Number = "4111111111111111" })},
		{name: "mastercard 5555555555554444", in: with(func(c *CardInput) { c.Number = "5555555555554444" }), want: withCard(func(c *Card) { c.Number = "5555555555554444" })},
		{name: "mastercard 2223003122003222", in: with(func(c *CardInput) { c.Number = "2223003122003222" }), want: withCard(func(c *Card) { c.Number = "2223003122003222" })},
		{name: "amex 378282246310005", in: with(func(c *CardInput) { c.Number, c.CCV = "378282246310005", "1234" }), want: withCard(func(c *Card) { c.Number, c.CCV = "378282246310005", "1234" })},
		{name: "discover 6011111111111117", in: with(func(c *CardInput) { c.Number = "6011111111111117" }), want: withCard(func(c *Card) { c.Number = "6011111111111117" })},
		{name: "diners 36227206271667", in: with(func(c *CardInput) { c.Number = "36227206271667" }), want: withCard(func(c *Card) { c.Number = "36227206271667" })},
		{name: "jcb 3566002020360505", in: with(func(c *CardInput) { c.Number = "3566002020360505" }), want: withCard(func(c *Card) { c.Number = "3566002020360505" })},
		{name: "unionpay 6200000000000005", in: with(func(c *CardInput) { c.Number = "6200000000000005" }), want: withCard(func(c *Card) { c.Number = "6200000000000005" })},

		// expire_month (L3)
		{name: "month absent", in: with(func(c *CardInput) { c.ExpMonth = "" }), path: "expire_month", msg: "expire_month is required"},
		{name: "month 0", in: with(func(c *CardInput) { c.ExpMonth = "0" }), path: "expire_month", msg: "expire_month must be a month from 1 to 12"},
		{name: "month 00", in: with(func(c *CardInput) { c.ExpMonth = "00" }), path: "expire_month", msg: "expire_month must be a month from 1 to 12"},
		{name: "month 1", in: with(func(c *CardInput) { c.ExpMonth = "1" }), want: withCard(func(c *Card) { c.ExpMonth = 1 })},
		{name: "month 01", in: with(func(c *CardInput) { c.ExpMonth = "01" }), want: withCard(func(c *Card) { c.ExpMonth = 1 })},
		{name: "month 9", in: with(func(c *CardInput) { c.ExpMonth = "9" }), want: withCard(func(c *Card) { c.ExpMonth = 9 })},
		{name: "month 09", in: with(func(c *CardInput) { c.ExpMonth = "09" }), want: withCard(func(c *Card) { c.ExpMonth = 9 })},
		{name: "month 12", in: with(func(c *CardInput) { c.ExpMonth = "12" }), want: baseCard},
		{name: "month 13", in: with(func(c *CardInput) { c.ExpMonth = "13" }), path: "expire_month", msg: "expire_month must be a month from 1 to 12"},
		{name: "month 3 digits", in: with(func(c *CardInput) { c.ExpMonth = "012" }), path: "expire_month", msg: "expire_month must be a month from 1 to 12"},
		{name: "month decimal", in: with(func(c *CardInput) { c.ExpMonth = "9.0" }), path: "expire_month", msg: "expire_month must be a month from 1 to 12"},
		{name: "month exponent", in: with(func(c *CardInput) { c.ExpMonth = "1e1" }), path: "expire_month", msg: "expire_month must be a month from 1 to 12"},
		{name: "month negative", in: with(func(c *CardInput) { c.ExpMonth = "-1" }), path: "expire_month", msg: "expire_month must be a month from 1 to 12"},
		{name: "month plus sign", in: with(func(c *CardInput) { c.ExpMonth = "+9" }), path: "expire_month", msg: "expire_month must be a month from 1 to 12"},
		{name: "month space", in: with(func(c *CardInput) { c.ExpMonth = " 9" }), path: "expire_month", msg: "expire_month must be a month from 1 to 12"},
		{name: "month non-ASCII digit", in: with(func(c *CardInput) { c.ExpMonth = "٩" }), path: "expire_month", msg: "expire_month must be a month from 1 to 12"},

		// expire_year (L4)
		{name: "year absent", in: with(func(c *CardInput) { c.ExpYear = "" }), path: "expire_year", msg: "expire_year is required"},
		{name: "year 1999", in: with(func(c *CardInput) { c.ExpYear = "1999" }), path: "expire_year", msg: "expire_year must be a 2-digit year or a 4-digit year from 2000 to 2099"},
		{name: "year 2000", in: with(func(c *CardInput) { c.ExpYear = "2000" }), now: at("2000-06-15T00:00:00Z"), want: withCard(func(c *Card) { c.ExpYear = 2000 })},
		{name: "year 2099", in: with(func(c *CardInput) { c.ExpYear = "2099" }), want: withCard(func(c *Card) { c.ExpYear = 2099 })},
		{name: "year 2100", in: with(func(c *CardInput) { c.ExpYear = "2100" }), path: "expire_year", msg: "expire_year must be a 2-digit year or a 4-digit year from 2000 to 2099"},
		{name: "year 00 is 2000", in: with(func(c *CardInput) { c.ExpYear = "00" }), now: at("2000-06-15T00:00:00Z"), want: withCard(func(c *Card) { c.ExpYear = 2000 })},
		{name: "year 28 is 2028", in: with(func(c *CardInput) { c.ExpYear = "28" }), want: withCard(func(c *Card) { c.ExpYear = 2028 })},
		{name: "year 2028", in: with(func(c *CardInput) { c.ExpYear = "2028" }), want: withCard(func(c *Card) { c.ExpYear = 2028 })},
		{name: "year 99 is 2099", in: with(func(c *CardInput) { c.ExpYear = "99" }), want: withCard(func(c *Card) { c.ExpYear = 2099 })},
		{name: "year 1 digit", in: with(func(c *CardInput) { c.ExpYear = "8" }), path: "expire_year", msg: "expire_year must be a 2-digit year or a 4-digit year from 2000 to 2099"},
		{name: "year 3 digits", in: with(func(c *CardInput) { c.ExpYear = "202" }), path: "expire_year", msg: "expire_year must be a 2-digit year or a 4-digit year from 2000 to 2099"},
		{name: "year 5 digits", in: with(func(c *CardInput) { c.ExpYear = "20280" }), path: "expire_year", msg: "expire_year must be a 2-digit year or a 4-digit year from 2000 to 2099"},
		{name: "year 0028", in: with(func(c *CardInput) { c.ExpYear = "0028" }), path: "expire_year", msg: "expire_year must be a 2-digit year or a 4-digit year from 2000 to 2099"},
		{name: "year negative", in: with(func(c *CardInput) { c.ExpYear = "-28" }), path: "expire_year", msg: "expire_year must be a 2-digit year or a 4-digit year from 2000 to 2099"},
		{name: "year decimal", in: with(func(c *CardInput) { c.ExpYear = "28.0" }), path: "expire_year", msg: "expire_year must be a 2-digit year or a 4-digit year from 2000 to 2099"},
		{name: "year exponent", in: with(func(c *CardInput) { c.ExpYear = "2e3" }), path: "expire_year", msg: "expire_year must be a 2-digit year or a 4-digit year from 2000 to 2099"},

		// expiry, relative to now (testNow is 2026-11-24 UTC)
		{name: "expired last month", in: with(func(c *CardInput) { c.ExpMonth, c.ExpYear = "10", "26" }), path: "expire_year", msg: "card has expired"},
		{name: "expired last year", in: with(func(c *CardInput) { c.ExpMonth, c.ExpYear = "12", "2025" }), path: "expire_year", msg: "card has expired"},
		{name: "year 2000 expired today", in: with(func(c *CardInput) { c.ExpYear = "2000" }), path: "expire_year", msg: "card has expired"},
		{name: "valid this month", in: with(func(c *CardInput) { c.ExpMonth, c.ExpYear = "11", "26" }), want: withCard(func(c *Card) { c.ExpMonth, c.ExpYear = 11, 2026 })},
		{name: "valid last instant of month", in: with(func(c *CardInput) { c.ExpMonth, c.ExpYear = "11", "2026" }), now: at("2026-11-30T23:59:59.999999999Z"), want: withCard(func(c *Card) { c.ExpMonth, c.ExpYear = 11, 2026 })},
		{name: "expired first instant of next month", in: with(func(c *CardInput) { c.ExpMonth, c.ExpYear = "11", "2026" }), now: at("2026-12-01T00:00:00Z"), path: "expire_year", msg: "card has expired"},
		{name: "december rolls into next year", in: with(func(c *CardInput) { c.ExpMonth, c.ExpYear = "12", "2026" }), now: at("2026-12-31T23:59:59Z"), want: withCard(func(c *Card) { c.ExpMonth, c.ExpYear = 12, 2026 })},
		{name: "december expired in january", in: with(func(c *CardInput) { c.ExpMonth, c.ExpYear = "12", "2026" }), now: at("2027-01-01T00:00:00Z"), path: "expire_year", msg: "card has expired"},
		{name: "UTC decides, now ahead of UTC", in: with(func(c *CardInput) { c.ExpMonth, c.ExpYear = "11", "26" }), now: at("2026-12-01T09:00:00+10:00"), want: withCard(func(c *Card) { c.ExpMonth, c.ExpYear = 11, 2026 })},
		{name: "UTC decides, now behind UTC", in: with(func(c *CardInput) { c.ExpMonth, c.ExpYear = "11", "26" }), now: at("2026-11-30T20:00:00-05:00"), path: "expire_year", msg: "card has expired"},

		// card_ccv
		{name: "ccv absent", in: with(func(c *CardInput) { c.CCV = "" }), want: withCard(func(c *Card) { c.CCV = "" })},
		{name: "visa ccv 2", in: with(func(c *CardInput) { c.CCV = "12" }), path: "card_ccv", msg: "card_ccv must be 3 digits"},
		{name: "visa ccv 3", in: with(func(c *CardInput) { c.CCV = "123" }), want: withCard(func(c *Card) { c.CCV = "123" })},
		{name: "visa ccv 4", in: with(func(c *CardInput) { c.CCV = "1234" }), path: "card_ccv", msg: "card_ccv must be 3 digits"},
		{name: "visa ccv 5", in: with(func(c *CardInput) { c.CCV = "12345" }), path: "card_ccv", msg: "card_ccv must be 3 digits"},
		{name: "visa ccv non-digit", in: with(func(c *CardInput) { c.CCV = "12a" }), path: "card_ccv", msg: "card_ccv must be 3 digits"},
		{name: "visa ccv spaces", in: with(func(c *CardInput) { c.CCV = " 12" }), path: "card_ccv", msg: "card_ccv must be 3 digits"},
		{name: "amex ccv 2", in: with(func(c *CardInput) { c.Number, c.CCV = "378282246310005", "12" }), path: "card_ccv", msg: "card_ccv must be 4 digits for amex"},
		{name: "amex ccv 3", in: with(func(c *CardInput) { c.Number, c.CCV = "378282246310005", "123" }), path: "card_ccv", msg: "card_ccv must be 4 digits for amex"},
		{name: "amex ccv 4", in: with(func(c *CardInput) { c.Number, c.CCV = "378282246310005", "1234" }), want: withCard(func(c *Card) { c.Number, c.CCV = "378282246310005", "1234" })},
		{name: "amex ccv 5", in: with(func(c *CardInput) { c.Number, c.CCV = "378282246310005", "12345" }), path: "card_ccv", msg: "card_ccv must be 4 digits for amex"},
		{name: "amex ccv non-digit", in: with(func(c *CardInput) { c.Number, c.CCV = "378282246310005", "123a" }), path: "card_ccv", msg: "card_ccv must be 4 digits for amex"},
		{name: "amex no ccv", in: with(func(c *CardInput) { c.Number, c.CCV = "378282246310005", "" }), want: withCard(func(c *Card) { c.Number, c.CCV = "378282246310005", "" })},
		{name: "mastercard ccv 3", in: with(func(c *CardInput) { c.Number, c.CCV = "2223003122003222", "123" }), want: withCard(func(c *Card) { c.Number, c.CCV = "2223003122003222", "123" })},
		{name: "diners ccv 4", in: with(func(c *CardInput) { c.Number, c.CCV = "36227206271667", "1234" }), path: "card_ccv", msg: "card_ccv must be 3 digits"},

		// table order: only the first failure is reported
		{name: "order name before number", in: CardInput{Number: "x", ExpMonth: "13", ExpYear: "1999", CCV: "1"}, path: "card_name", msg: "card_name is required"},
		{name: "order number before month", in: with(func(c *CardInput) { c.Number, c.ExpMonth = "4242424242424241", "13" }), path: "card_number", msg: "card_number failed the Luhn check"},
		{name: "order month before year", in: with(func(c *CardInput) { c.ExpMonth, c.ExpYear = "", "" }), path: "expire_month", msg: "expire_month is required"},
		{name: "order year before ccv", in: with(func(c *CardInput) { c.ExpYear, c.CCV = "1999", "1" }), path: "expire_year", msg: "expire_year must be a 2-digit year or a 4-digit year from 2000 to 2099"},
		{name: "order expiry before ccv", in: with(func(c *CardInput) { c.ExpYear, c.CCV = "25", "1" }), path: "expire_year", msg: "card has expired"},
		{name: "all absent", in: CardInput{}, path: "card_name", msg: "card_name is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := tt.now
			if now.IsZero() {
				now = testNow
			}
			got, err := ValidateCard(tt.in, now)
			checkInvalid(t, err, tt.path, tt.msg)
			if tt.path != "" {
				if d := cmp.Diff(Card{}, got); d != "" {
					t.Errorf("card returned with error (-want +got):\n%s", d)
				}
				return
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("card mismatch (-want +got):\n%s", d)
			}
		})
	}
}

func TestParseMonth(t *testing.T) {
	const bad = "expire_month must be a month from 1 to 12"
	tests := []struct {
		in   string
		want int
		msg  string
	}{
		{"", 0, "expire_month is required"},
		{"0", 0, bad},
		{"00", 0, bad},
		{"1", 1, ""},
		{"01", 1, ""},
		{"9", 9, ""},
		{"09", 9, ""},
		{"10", 10, ""},
		{"12", 12, ""},
		{"13", 0, bad},
		{"99", 0, bad},
		{"001", 0, bad},
		{"9.0", 0, bad},
		{"-1", 0, bad},
		{"a", 0, bad},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.in), func(t *testing.T) {
			got, err := ParseMonth(tt.in)
			path := ""
			if tt.msg != "" {
				path = "expire_month"
			}
			checkInvalid(t, err, path, tt.msg)
			if got != tt.want {
				t.Errorf("ParseMonth(%q) = %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseYear(t *testing.T) {
	const bad = "expire_year must be a 2-digit year or a 4-digit year from 2000 to 2099"
	tests := []struct {
		in   string
		want int
		msg  string
	}{
		{"", 0, "expire_year is required"},
		{"00", 2000, ""},
		{"28", 2028, ""},
		{"99", 2099, ""},
		{"1999", 0, bad},
		{"2000", 2000, ""},
		{"2028", 2028, ""},
		{"2099", 2099, ""},
		{"2100", 0, bad},
		{"0028", 0, bad},
		{"8", 0, bad},
		{"202", 0, bad},
		{"20280", 0, bad},
		{"-28", 0, bad},
		{"28.0", 0, bad},
		{"+28", 0, bad},
		{" 28", 0, bad},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.in), func(t *testing.T) {
			got, err := ParseYear(tt.in)
			path := ""
			if tt.msg != "" {
				path = "expire_year"
			}
			checkInvalid(t, err, path, tt.msg)
			if got != tt.want {
				t.Errorf("ParseYear(%q) = %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}

func TestScheme(t *testing.T) {
	tests := []struct {
		number string
		want   string
	}{
		// §6.5 examples
		{"4111111111111111", "visa"},
		{"4242424242424242", "visa"},
		{"5555555555554444", "mastercard"},
		{"2223003122003222", "mastercard"},
		{"378282246310005", "amex"},
		{"6011111111111117", "discover"},
		{"36227206271667", "diners"},
		{"3566002020360505", "jcb"},
		{"6200000000000005", "unionpay"},
		// range boundaries (prefixes only; Scheme ignores the rest)
		{"4", "visa"},
		{"50", "unknown"},
		{"51", "mastercard"},
		{"55", "mastercard"},
		{"56", "unknown"},
		{"2220", "unknown"},
		{"2221", "mastercard"},
		{"2720", "mastercard"},
		{"2721", "unknown"},
		{"222", "unknown"},
		{"34", "amex"},
		{"35", "unknown"},
		{"37", "amex"},
		{"6010", "unknown"},
		{"6011", "discover"},
		{"6012", "unknown"},
		{"643", "unknown"},
		{"644", "discover"},
		{"649", "discover"},
		{"65", "discover"},
		{"299", "unknown"},
		{"300", "diners"},
		{"305", "diners"},
		{"306", "unknown"},
		{"3094", "unknown"},
		{"3095", "diners"},
		{"3096", "unknown"},
		{"36", "diners"},
		{"38", "diners"},
		{"39", "diners"},
		{"3527", "unknown"},
		{"3528", "jcb"},
		{"3589", "jcb"},
		{"3590", "unknown"},
		{"62", "unionpay"},
		{"622126", "unionpay"},
		{"622925", "unionpay"},
		{"80", "unknown"},
		{"81", "unionpay"},
		{"82", "unknown"},
		// unknown and malformed
		{"9000000000000001", "unknown"},
		{"1000000000000008", "unknown"},
		{"", "unknown"},
		{"x4", "unknown"},
		{"30x5", "unknown"},
		{"４", "unknown"},
	}
	for _, tt := range tests {
		if got := Scheme(tt.number); got != tt.want {
			t.Errorf("Scheme(%q) = %q, want %q", tt.number, got, tt.want)
		}
	}
}

func TestBINLast4(t *testing.T) {
	tests := []struct {
		number, bin, last4 string
	}{
		{"4242424242424242", "42424242", "4242"}, // 16: 8-digit BIN
		{"4242424242424242428", "42424242", "2428"},
		{"378282246310005", "378282", "0005"}, // 15: 6-digit BIN
		{"36227206271667", "362272", "1667"},
		{"424242424242", "424242", "4242"},
		{"5555555555554444", "55555555", "4444"},
		{"123", "123", "123"},
		{"", "", ""},
	}
	for _, tt := range tests {
		if got := BIN(tt.number); got != tt.bin {
			t.Errorf("BIN(%q) = %q, want %q", tt.number, got, tt.bin)
		}
		if got := Last4(tt.number); got != tt.last4 {
			t.Errorf("Last4(%q) = %q, want %q", tt.number, got, tt.last4)
		}
	}
}

func TestLuhn(t *testing.T) {
	tests := []struct {
		number string
		want   bool
	}{
		{"4111111111111111", true},
		{"4242424242424242", true},
		{"5555555555554444", true},
		{"2223003122003222", true},
		{"378282246310005", true},
		{"6011111111111117", true},
		{"36227206271667", true},
		{"3566002020360505", true},
		{"6200000000000005", true},
		{"79927398713", true},
		{"0", true},
		{"4242424242424241", false},
		{"4242424242424243", false},
		{"79927398710", false},
		{"", false},
		{"4242 4242 4242 4242", false},
		{"x", false},
	}
	for _, tt := range tests {
		if got := Luhn(tt.number); got != tt.want {
			t.Errorf("Luhn(%q) = %v, want %v", tt.number, got, tt.want)
		}
	}
}

func TestCardStringForms(t *testing.T) {
	c := Card{Name: "Alan Turing", Number: "4242424242424242", ExpMonth: 12, ExpYear: 2027, CCV: "987"}
	if got, want := c.String(), "Card{scheme:visa bin:42424242 last4:4242 expiry:12/2027}"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got, want := c.GoString(), `vault.Card{/* masked */ Scheme:"visa", BIN:"42424242", Last4:"4242", ExpMonth:12, ExpYear:2027}`; got != want {
		t.Errorf("GoString() = %q, want %q", got, want)
	}
	type attr struct{ Key, Value string }
	var got []attr
	for _, a := range c.LogValue().Group() {
		got = append(got, attr{a.Key, a.Value.String()})
	}
	want := []attr{{"scheme", "visa"}, {"bin", "42424242"}, {"last4", "4242"}, {"expire_month", "12"}, {"expire_year", "2027"}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("LogValue mismatch (-want +got):\n%s", d)
	}

	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `{"scheme":"visa","bin":"42424242","last4":"4242","expire_month":12,"expire_year":2027}`; got != want {
		t.Errorf("json.Marshal = %s, want %s", got, want)
	}

	// A malformed Number shows no digits at all.
	short := Card{Number: "12345", ExpMonth: 1, ExpYear: 2030}
	if got, want := short.String(), "Card{scheme:unknown bin: last4: expiry:01/2030}"; got != want {
		t.Errorf("String() of short number = %q, want %q", got, want)
	}
	if got, want := (Card{}).String(), "Card{scheme:unknown bin: last4: expiry:00/0000}"; got != want {
		t.Errorf("zero Card String() = %q, want %q", got, want)
	}
}

// TestCardPrintingLeaksNothing prints cards every way fmt and slog allow and
// checks that neither the PAN, nor the CCV, nor the name appears, in clear or
// hex. (%p is the one exception, see Card: fmt prints a non-pointer's fields
// without consulting its methods, so it is not tested.)
func TestCardPrintingLeaksNothing(t *testing.T) {
	cards := []Card{
		{Name: "Alan Turing", Number: "4242424242424242", ExpMonth: 12, ExpYear: 2027, CCV: "987"},
		{Name: "Grace Hopper", Number: "378282246310005", ExpMonth: 3, ExpYear: 2029, CCV: "9876"},
		{Name: "Ada Lovelace", Number: "36227206271667", ExpMonth: 1, ExpYear: 2030, CCV: "987"},
		{Name: "Edsger Dijkstra", Number: "424242424242", ExpMonth: 5, ExpYear: 2031},
		{Name: "Barbara Liskov", Number: "4242424242424242428", ExpMonth: 7, ExpYear: 2032, CCV: "987"},
	}
	verbs := []string{
		"%v", "%+v", "%#v", "%s", "%q", "%#q", "%+q", "%x", "%X", "% x", "%#x",
		"%d", "%+d", "%t", "%b", "%o", "%c", "%U", "%e", "%f", "%g",
		"%10v", "%-80v", "%.5s", "%80.30s", "%08v", "%T", "%!",
	}
	for _, c := range cards {
		secrets := []string{c.Number, c.Name, hex.EncodeToString([]byte(c.Number)), strings.ToUpper(hex.EncodeToString([]byte(c.Number)))}
		if c.CCV != "" {
			secrets = append(secrets, c.CCV)
		}
		check := func(how, out string) {
			t.Helper()
			for _, s := range secrets {
				if strings.Contains(out, s) {
					t.Errorf("%s of %s leaks %q: %s", how, c.Name, s, out)
				}
			}
		}
		cp := &c
		type exported struct{ C Card }
		for _, v := range verbs {
			check(v, fmt.Sprintf(v, c))
			check(v+" pointer", fmt.Sprintf(v, cp))
			check(v+" slice", fmt.Sprintf(v, []Card{c}))
			check(v+" map", fmt.Sprintf(v, map[string]Card{"k": c}))
			check(v+" field", fmt.Sprintf(v, exported{c}))
			check(v+" any", fmt.Sprintf(v, []any{c, cp}))
		}
		check("Sprint", fmt.Sprint(c, cp))
		check("Sprintln", fmt.Sprintln(c, cp))
		// An argument without a verb prints as %!(EXTRA vault.Card=...).
		extra := "no verbs"
		//lint:ignore SA5009 the extra argument is the point of the check
		check("EXTRA", fmt.Sprintf(extra, c))
		check("Errorf", fmt.Errorf("charge %v: %w", c, errors.New("x")).Error())
		for _, v := range []any{c, cp, []Card{c}, exported{c}, map[string]any{"c": c}} {
			b, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			check(fmt.Sprintf("json %T", v), string(b))
		}
		check("String", c.String())
		check("GoString", c.GoString())
		check("LogValue", c.LogValue().String())

		// The time attribute is dropped: its digits could hold a CCV by chance.
		opts := &slog.HandlerOptions{ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}}
		for name, h := range map[string]func(*bytes.Buffer) slog.Handler{
			"text": func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, opts) },
			"json": func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, opts) },
		} {
			var buf bytes.Buffer
			l := slog.New(h(&buf))
			l.Info("card", "card", c, "ptr", cp, slog.Any("cards", []Card{c}))
			l.With("card", c).Info("with")
			l.Info("grouped", slog.Group("g", "card", c))
			out := buf.String()
			check("slog "+name, out)
			if !strings.Contains(out, Last4(c.Number)) {
				t.Errorf("slog %s output lacks last4: %s", name, out)
			}
		}
	}
}
