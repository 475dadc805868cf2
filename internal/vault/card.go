// Package vault holds card validation, scheme detection and masking (spec
// §6.4–§6.6) and the vault records built on them.
package vault

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"time"
	"unicode/utf8"

	"switchyard/internal/errs"
)

// Messages of spec §6.4, exactly as sent on the wire.
const (
	msgNameRequired   = "card_name is required"
	msgNameLength     = "card_name must be 1 to 100 characters"
	msgNumberRequired = "card_number is required"
	msgNumberDigits   = "card_number must contain digits only"
	msgNumberLength   = "card_number must be 12 to 19 digits"
	msgNumberLuhn     = "card_number failed the Luhn check"
	msgMonthRequired  = "expire_month is required"
	msgMonthRange     = "expire_month must be a month from 1 to 12"
	msgYearRequired   = "expire_year is required"
	msgYearRange      = "expire_year must be a 2-digit year or a 4-digit year from 2000 to 2099"
	msgExpired        = "card has expired"
	msgCCV3           = "card_ccv must be 3 digits"
	msgCCV4Amex       = "card_ccv must be 4 digits for amex"
)

const (
	maxNameLen   = 100
	minNumberLen = 12
	maxNumberLen = 19
)

// CardInput is card data after wire coercion: every field is the text the
// client sent ("" = absent). ExpMonth/ExpYear hold either the JSON number's
// literal text or the JSON string.
type CardInput struct {
	Name, Number, ExpMonth, ExpYear, CCV string
}

// Card is a validated card. Number is the full PAN (digits only). ExpYear is
// 4 digits.
//
// Printing a Card with fmt (any verb but %p, which fmt handles without
// consulting methods), logging it with slog or encoding it with
// encoding/json shows only the scheme, BIN, last 4 digits and expiry: never
// the PAN, the CCV or the name. Code that must persist the PAN (sealed vault
// records) copies the fields into its own type.
type Card struct {
	Name, Number      string
	ExpMonth, ExpYear int
	CCV               string
}

func invalid(path, msg string) error { return errs.Invalidf(path, "%s", msg) }

// ValidateCard checks in spec §6.4 table order: card_name, card_number,
// expire_month, expire_year, expiry (path expire_year; a card is valid
// through the last day of its expiry month, UTC, relative to now), card_ccv.
// It returns the first failure only, as an *errs.Error of kind Invalid whose
// Path is the bare field name.
func ValidateCard(in CardInput, now time.Time) (Card, error) {
	switch n := utf8.RuneCountInString(in.Name); {
	case n == 0:
		return Card{}, invalid("card_name", msgNameRequired)
	case n > maxNameLen:
		return Card{}, invalid("card_name", msgNameLength)
	}

	switch {
	case in.Number == "":
		return Card{}, invalid("card_number", msgNumberRequired)
	case !allDigits(in.Number):
		return Card{}, invalid("card_number", msgNumberDigits)
	case len(in.Number) < minNumberLen || len(in.Number) > maxNumberLen:
		return Card{}, invalid("card_number", msgNumberLength)
	case !Luhn(in.Number):
		return Card{}, invalid("card_number", msgNumberLuhn)
	}

	month, err := ParseMonth(in.ExpMonth)
	if err != nil {
		return Card{}, err
	}
	year, err := ParseYear(in.ExpYear)
	if err != nil {
		return Card{}, err
	}
	if expired(month, year, now) {
		return Card{}, invalid("expire_year", msgExpired)
	}

	if in.CCV != "" {
		if err := CheckCCV("card_ccv", in.CCV, Scheme(in.Number)); err != nil {
			return Card{}, err
		}
	}

	return Card{Name: in.Name, Number: in.Number, ExpMonth: month, ExpYear: year, CCV: in.CCV}, nil
}

// CheckCCV applies spec §6.4's card_ccv rule for a card of the given
// scheme: 3 digits, 4 for amex. A CVV sent beside a vault token or a stored
// source is checked with this once the card's record is found, since only
// the record knows the scheme.
func CheckCCV(path, ccv, scheme string) error {
	want, msg := 3, msgCCV3
	if scheme == "amex" {
		want, msg = 4, msgCCV4Amex
	}
	if len(ccv) != want || !allDigits(ccv) {
		return invalid(path, msg)
	}
	return nil
}

// expired reports whether a card expiring in month/year (4-digit) is past
// its last valid instant at now: it is valid through the last day of that
// month, UTC.
func expired(month, year int, now time.Time) bool {
	end := time.Date(year, time.Month(month)+1, 1, 0, 0, 0, 0, time.UTC)
	return !now.Before(end)
}

// ParseMonth reads expire_month (spec L3): one or two ASCII digits with a
// value from 1 to 12 ("9", "09" → 9). Errors are those of ValidateCard.
func ParseMonth(s string) (int, error) {
	if s == "" {
		return 0, invalid("expire_month", msgMonthRequired)
	}
	if len(s) > 2 || !allDigits(s) {
		return 0, invalid("expire_month", msgMonthRange)
	}
	m, _ := strconv.Atoi(s)
	if m < 1 || m > 12 {
		return 0, invalid("expire_month", msgMonthRange)
	}
	return m, nil
}

// ParseYear reads expire_year (spec L4): two ASCII digits yy meaning 20yy, or
// four ASCII digits from 2000 to 2099 ("28" → 2028, "2028" → 2028). Errors
// are those of ValidateCard.
func ParseYear(s string) (int, error) {
	if s == "" {
		return 0, invalid("expire_year", msgYearRequired)
	}
	if !allDigits(s) {
		return 0, invalid("expire_year", msgYearRange)
	}
	y, _ := strconv.Atoi(s)
	switch len(s) {
	case 2:
		return 2000 + y, nil
	case 4:
		if y >= 2000 && y <= 2099 {
			return y, nil
		}
	}
	return 0, invalid("expire_year", msgYearRange)
}

// schemePrefixes is spec §6.5: numbers whose first digits digits lie in
// [lo, hi] belong to scheme. The 622126–622925 co-branded range lies inside
// unionpay's 62.
var schemePrefixes = []struct {
	digits int
	lo, hi int
	scheme string
}{
	{1, 4, 4, "visa"},
	{2, 51, 55, "mastercard"},
	{4, 2221, 2720, "mastercard"},
	{2, 34, 34, "amex"},
	{2, 37, 37, "amex"},
	{4, 6011, 6011, "discover"},
	{3, 644, 649, "discover"},
	{2, 65, 65, "discover"},
	{3, 300, 305, "diners"},
	{4, 3095, 3095, "diners"},
	{2, 36, 36, "diners"},
	{2, 38, 39, "diners"},
	{4, 3528, 3589, "jcb"},
	{2, 62, 62, "unionpay"},
	{2, 81, 81, "unionpay"},
}

// Scheme names the card scheme of number by spec §6.5, the longest matching
// prefix winning; "unknown" when no prefix matches. Only leading ASCII
// digits are considered.
func Scheme(number string) string {
	best, bestLen := "unknown", 0
	for _, p := range schemePrefixes {
		if p.digits <= bestLen || len(number) < p.digits {
			continue
		}
		head := number[:p.digits]
		if !allDigits(head) {
			continue
		}
		v, _ := strconv.Atoi(head)
		if v >= p.lo && v <= p.hi {
			best, bestLen = p.scheme, p.digits
		}
	}
	return best
}

// BIN is card_number_bin (spec §6.6): the first 8 digits when number has 16
// or more, else the first 6 (all of number when it is shorter than 6).
func BIN(number string) string {
	n := 6
	if len(number) >= 16 {
		n = 8
	}
	return number[:min(n, len(number))]
}

// Last4 is card_number_last4 (spec §6.6): the last 4 digits (all of number
// when it is shorter).
func Last4(number string) string {
	return number[max(0, len(number)-4):]
}

// Luhn reports whether number is a non-empty string of ASCII digits that
// passes the Luhn (mod 10) check.
func Luhn(number string) bool {
	if number == "" {
		return false
	}
	sum := 0
	double := false
	for i := len(number) - 1; i >= 0; i-- {
		c := number[i]
		if c < '0' || c > '9' {
			return false
		}
		d := int(c - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// masked returns the BIN and last 4 shown for c, or "" for both when Number is
// not a well-formed PAN (12–19 digits): showing parts of a short or malformed
// value could reveal all of it.
func (c Card) masked() (bin, last4 string) {
	if len(c.Number) < minNumberLen || len(c.Number) > maxNumberLen || !allDigits(c.Number) {
		return "", ""
	}
	return BIN(c.Number), Last4(c.Number)
}

// LogValue implements slog.LogValuer: a group of scheme, bin, last4,
// expire_month and expire_year only.
func (c Card) LogValue() slog.Value {
	bin, last4 := c.masked()
	return slog.GroupValue(
		slog.String("scheme", Scheme(c.Number)),
		slog.String("bin", bin),
		slog.String("last4", last4),
		slog.Int("expire_month", c.ExpMonth),
		slog.Int("expire_year", c.ExpYear),
	)
}

// String implements fmt.Stringer with masked data only, e.g.
// "Card{scheme:visa bin:42424242 last4:4242 expiry:12/2027}".
func (c Card) String() string {
	bin, last4 := c.masked()
	return fmt.Sprintf("Card{scheme:%s bin:%s last4:%s expiry:%02d/%04d}",
		Scheme(c.Number), bin, last4, c.ExpMonth, c.ExpYear)
}

// GoString implements fmt.GoStringer (%#v) with masked data only.
func (c Card) GoString() string {
	bin, last4 := c.masked()
	return fmt.Sprintf("vault.Card{/* masked */ Scheme:%q, BIN:%q, Last4:%q, ExpMonth:%d, ExpYear:%d}",
		Scheme(c.Number), bin, last4, c.ExpMonth, c.ExpYear)
}

// Format implements fmt.Formatter so that every verb, not only those fmt
// routes to String and GoString, prints masked data: %v, %+v and %s print
// String, %#v prints GoString, %q/%x/%X apply to String, and any other verb
// prints %!verb(vault.Card=String).
func (c Card) Format(f fmt.State, verb rune) {
	s := c.String()
	switch verb {
	case 'v':
		if f.Flag('#') {
			s = c.GoString()
		}
		verb = 's'
	case 's', 'q', 'x', 'X':
	default:
		fmt.Fprintf(f, "%%!%c(vault.Card=%s)", verb, s)
		return
	}
	fmt.Fprintf(f, fmt.FormatString(f, verb), s)
}

// MarshalJSON encodes the masked view only (the attributes of LogValue), so a
// Card reaching a JSON log line (slog's JSONHandler encodes slices and
// structs with encoding/json) or a response body leaks nothing. It is not a
// storage format: nothing decodes it back into a Card.
func (c Card) MarshalJSON() ([]byte, error) {
	bin, last4 := c.masked()
	return json.Marshal(struct {
		Scheme      string `json:"scheme"`
		BIN         string `json:"bin"`
		Last4       string `json:"last4"`
		ExpireMonth int    `json:"expire_month"`
		ExpireYear  int    `json:"expire_year"`
	}{Scheme(c.Number), bin, last4, c.ExpMonth, c.ExpYear})
}
