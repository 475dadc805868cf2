// Package money converts amounts between their wire form (a decimal of major
// units, spec §1.6) and int64 minor units, exactly: no value ever passes
// through float64.
package money

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"switchyard/internal/errs"
)

// maxMajor is the largest amount accepted, in major units (spec §1.6).
const maxMajor = 1_000_000_000

// maxExponent bounds Currency.Exponent so that maxMajor·10^exp fits an
// int64; ISO 4217 exponents are 0–4.
const maxExponent = 9

// pow10 returns 10^e for 0 ≤ e ≤ 18.
func pow10(e int) int64 {
	p := int64(1)
	for ; e > 0; e-- {
		p *= 10
	}
	return p
}

// lastSegment is the last dotted segment of a field path, the <f> of spec §3.4.
func lastSegment(field string) string {
	if i := strings.LastIndexByte(field, '.'); i >= 0 {
		return field[i+1:]
	}
	return field
}

// ParseAmount reads the wire text of an amount (a JSON number's literal
// text, or a numeric string, spec §1.3 L1) into minor units of cur.
//
// The text must match ^[0-9]+(\.[0-9]+)?$: no sign, exponent, spaces or
// separators. Trailing zeros beyond the currency's exponent are accepted;
// non-zero digits beyond it are not. The amount must be at least one minor
// unit and at most 1 000 000 000 major units. Every error is an
// errs.Invalidf on field; "" reports the field as required (L7: "" is
// absent), so callers apply L2 before calling.
func ParseAmount(field, text string, cur Currency) (int64, error) {
	f := lastSegment(field)
	if cur.Exponent < 0 || cur.Exponent > maxExponent {
		return 0, errs.Wrap("money.ParseAmount", fmt.Errorf("currency %q has unsupported exponent %d", cur.Code, cur.Exponent))
	}
	if text == "" {
		return 0, errs.Invalidf(field, "%s is required", f)
	}
	intPart, frac, hasDot := strings.Cut(text, ".")
	if !allDigits(intPart) || (hasDot && !allDigits(frac)) {
		return 0, errs.Invalidf(field, "%s must be a number", f)
	}
	exp := cur.Exponent
	if len(frac) > exp {
		if strings.Trim(frac[exp:], "0") != "" {
			return 0, errs.Invalidf(field, "%s has more decimal places than %s allows", f, cur.Code)
		}
		frac = frac[:exp]
	}
	intPart = strings.TrimLeft(intPart, "0")
	if len(intPart) > len(strconv.Itoa(maxMajor)) { // beyond any int64 we need
		return 0, errs.Invalidf(field, "%s must be at most %d", f, maxMajor)
	}
	var minor int64
	for i := 0; i < len(intPart); i++ {
		minor = minor*10 + int64(intPart[i]-'0')
	}
	for i := 0; i < exp; i++ {
		d := int64(0)
		if i < len(frac) {
			d = int64(frac[i] - '0')
		}
		minor = minor*10 + d
	}
	if minor == 0 {
		return 0, errs.Invalidf(field, "%s must be greater than 0", f)
	}
	if minor > maxMajor*pow10(exp) {
		return 0, errs.Invalidf(field, "%s must be at most %d", f, maxMajor)
	}
	return minor, nil
}

// CheckAmountText checks what of an amount needs no currency (spec §1.6):
// present, a number (`^[0-9]+(\.[0-9]+)?$`), greater than 0 and at most
// 1 000 000 000 major units (a bound in major units holds in every
// currency). Decimals are ParseAmount's, once the currency is known. So an
// amount out of range is reported as the amount's error even when the
// currency after it in the field table is bad too (spec §3.4).
func CheckAmountText(field, text string) error {
	f := lastSegment(field)
	if text == "" {
		return errs.Invalidf(field, "%s is required", f)
	}
	intPart, frac, hasDot := strings.Cut(text, ".")
	if !allDigits(intPart) || (hasDot && !allDigits(frac)) {
		return errs.Invalidf(field, "%s must be a number", f)
	}
	if strings.Trim(intPart+frac, "0") == "" {
		return errs.Invalidf(field, "%s must be greater than 0", f)
	}
	// Compare the integer part with maxMajor as digit strings: longer is
	// larger; as long, the greater string is; equal, any non-zero decimal
	// is over.
	intPart = strings.TrimLeft(intPart, "0")
	max := strconv.Itoa(maxMajor)
	if len(intPart) > len(max) || (len(intPart) == len(max) && (intPart > max || (intPart == max && strings.Trim(frac, "0") != ""))) {
		return errs.Invalidf(field, "%s must be at most %d", f, maxMajor)
	}
	return nil
}

// allDigits reports whether s is one or more ASCII digits.
func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Format writes minor units as the shortest exact decimal of major units for
// the wire: 2500 AUD → "25", 1050 → "10.5", 5 → "0.05", JPY 100 → "100",
// BHD 1 → "0.001". It never writes an exponent; a negative amount (never
// valid on the wire, but formatted rather than hidden) gets a leading "-".
func Format(minor int64, cur Currency) string {
	neg := minor < 0
	mag := uint64(minor)
	if neg {
		mag = -mag // two's complement: exact even for math.MinInt64
	}
	digits := strconv.FormatUint(mag, 10)
	exp := max(cur.Exponent, 0)
	if len(digits) <= exp {
		digits = strings.Repeat("0", exp-len(digits)+1) + digits
	}
	intPart, frac := digits[:len(digits)-exp], strings.TrimRight(digits[len(digits)-exp:], "0")
	s := intPart
	if frac != "" {
		s += "." + frac
	}
	if neg {
		s = "-" + s
	}
	return s
}

// Number is Format as a json.Number, so that responses write a JSON number,
// never a string or exponent notation.
func Number(minor int64, cur Currency) json.Number {
	return json.Number(Format(minor, cur))
}

// MajorFloor returns floor(minor / 10^exp): whole major units, rounded down
// (customer statistics' total_collected_amount).
func MajorFloor(minor int64, cur Currency) int64 {
	exp := max(cur.Exponent, 0)
	if exp > 18 {
		if minor < 0 {
			return -1
		}
		return 0
	}
	p := pow10(exp)
	q := minor / p
	if minor%p != 0 && minor < 0 {
		q--
	}
	return q
}
