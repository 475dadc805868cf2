// Package contact validates the contact fields shared by one-time tokens,
// customers and charges: email addresses, phone numbers (spec §7.4) and
// country codes.
package contact

import (
	"strings"
	"unicode/utf8"

	"github.com/nyaruka/phonenumbers"
	"golang.org/x/text/language"

	"switchyard/internal/errs"
)

// MaxText is the default text field limit in code points (spec §3.4).
const MaxText = 255

// Text checks a free-text field's length.
func Text(path, name, v string) error {
	if utf8.RuneCountInString(v) > MaxText {
		return errs.Invalidf(path, "%s must be at most %d characters", name, MaxText)
	}
	return nil
}

// Email checks a bare address local@domain with a dot in the domain, at
// most 254 characters, no display name.
func Email(path, v string) error {
	bad := errs.Invalidf(path, "email must be a valid email address")
	if utf8.RuneCountInString(v) > 254 || strings.ContainsAny(v, " \t\r\n<>()[],;:\"\\") {
		return bad
	}
	local, domain, ok := strings.Cut(v, "@")
	if !ok || local == "" || strings.Contains(domain, "@") {
		return bad
	}
	if !strings.Contains(domain, ".") || strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") || strings.Contains(domain, "..") {
		return bad
	}
	return nil
}

// Phone validates and normalises a phone number (spec §7.4): E.164 is kept
// as sent; a national number of 6–32 characters of digits, spaces and
// +-(). with at least 6 digits becomes E.164 when it is valid for country,
// otherwise it is kept trimmed.
func Phone(path, v, country string) (string, error) {
	bad := errs.Invalidf(path, "phone must be a phone number, ideally in E.164 format")
	if isE164(v) {
		return v, nil
	}
	t := strings.Trim(v, " ")
	if len(t) < 6 || len(t) > 32 {
		return "", bad
	}
	digits := 0
	for _, c := range t {
		switch {
		case c >= '0' && c <= '9':
			digits++
		case strings.ContainsRune(" +-().", c):
		default:
			return "", bad
		}
	}
	if digits < 6 {
		return "", bad
	}
	if region := Region(country); region != "" {
		if n, err := phonenumbers.Parse(t, region); err == nil && phonenumbers.IsValidNumberForRegion(n, region) {
			return phonenumbers.Format(n, phonenumbers.E164), nil
		}
	}
	return t, nil
}

func isE164(v string) bool {
	if len(v) < 3 || len(v) > 16 || v[0] != '+' || v[1] < '1' || v[1] > '9' {
		return false
	}
	for i := 2; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return false
		}
	}
	return true
}

// Region maps a 2- or 3-letter ISO 3166 country code to the 2-letter
// region the phone library knows, or "".
func Region(country string) string {
	c := strings.ToUpper(strings.TrimSpace(country))
	if len(c) == 3 {
		r, err := language.ParseRegion(c)
		if err != nil || !r.IsCountry() {
			return ""
		}
		c = r.String()
	}
	if len(c) == 2 && phonenumbers.GetCountryCodeForRegion(c) != 0 {
		return c
	}
	return ""
}

// Country checks an address country code and upper-cases it.
func Country(path, v string) (string, error) {
	if n := len(v); n < 2 || n > 3 {
		return "", errs.Invalidf(path, "address_country must be a 2- or 3-letter country code")
	}
	for _, c := range v {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return "", errs.Invalidf(path, "address_country must be a 2- or 3-letter country code")
		}
	}
	return strings.ToUpper(v), nil
}
