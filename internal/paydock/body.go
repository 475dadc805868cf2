package paydock

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"

	"switchyard/internal/errs"
)

// MaxBody is the request body limit (spec §1.2).
const MaxBody = 1 << 20

// ErrNotObject is the message for a body that is not a JSON object.
const ErrNotObject = "body must be a JSON object"

// ParseBody reads a POST/PUT body: empty or null is {}, anything but a JSON
// object is a ValidationError with path "". Numbers stay json.Number.
func ParseBody(b []byte) (Object, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || string(b) == "null" {
		return Object{M: map[string]any{}}, nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil {
		return Object{}, bodyError()
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Object{}, bodyError()
	}
	return Object{M: m}, nil
}

// noNUL rejects U+0000 in a field's string: PostgreSQL cannot store it in
// text, and both engines must answer the same (a 400, never a 500). It is
// checked when a known field is read, so an unknown field holding one is
// ignored like any unknown field (§1.2), and no client-chosen name is ever
// echoed in the error.
func (o Object) noNUL(name, s string) error {
	if strings.ContainsRune(s, 0) {
		return errs.Invalidf(o.Path(name), "%s must not contain the NUL character", name)
	}
	return nil
}

func bodyError() error {
	return &errs.Error{Kind: errs.Invalid, Message: "body validation failed", Messages: []string{ErrNotObject}}
}

// Object is one JSON object of a request body, with the path prefix of its
// fields ("" at the top, "payment_source." inside it).
type Object struct {
	M      map[string]any
	Prefix string
}

// Path is the full dotted path of field name.
func (o Object) Path(name string) string { return o.Prefix + name }

// Has reports whether name is present with a non-null value.
func (o Object) Has(name string) bool {
	v, ok := o.M[name]
	return ok && v != nil
}

func (o Object) typeErr(name, what string) error {
	return errs.Invalidf(o.Path(name), "%s must be %s", name, what)
}

// String reads an optional string: absent, null and "" give "" (L6, L7).
func (o Object) String(name string) (string, error) {
	v, ok := o.M[name]
	if !ok || v == nil {
		return "", nil
	}
	s, isStr := v.(string)
	if !isStr {
		return "", o.typeErr(name, "a string")
	}
	if err := o.noNUL(name, s); err != nil {
		return "", err
	}
	return s, nil
}

// StringSet reads a string and whether it was sent as a string at all
// (present, even ""), for updates where "" clears a field.
func (o Object) StringSet(name string) (s string, set bool, err error) {
	v, ok := o.M[name]
	if !ok || v == nil {
		return "", false, nil
	}
	s, isStr := v.(string)
	if !isStr {
		return "", false, o.typeErr(name, "a string")
	}
	if err := o.noNUL(name, s); err != nil {
		return "", false, err
	}
	return s, true, nil
}

// Bool reads an optional JSON boolean.
func (o Object) Bool(name string) (v bool, set bool, err error) {
	raw, ok := o.M[name]
	if !ok || raw == nil {
		return false, false, nil
	}
	b, isBool := raw.(bool)
	if !isBool {
		return false, false, o.typeErr(name, "a boolean")
	}
	return b, true, nil
}

// Object reads an optional nested object.
func (o Object) Object(name string) (Object, bool, error) {
	raw, ok := o.M[name]
	if !ok || raw == nil {
		return Object{Prefix: o.Path(name) + "."}, false, nil
	}
	m, isObj := raw.(map[string]any)
	if !isObj {
		return Object{}, false, o.typeErr(name, "an object")
	}
	return Object{M: m, Prefix: o.Path(name) + "."}, true, nil
}

// NumberText reads a field that may be a JSON number or a string (L3, L4)
// and returns a string as sent; absent, null and "" give "". A JSON number
// is read exactly from its text: its exponent is applied and a whole
// number's zero fraction dropped (9.0 and 9e0 read "9"). Any other type is
// "<f> must be a string".
func (o Object) NumberText(name string) (string, error) {
	text, neg, isNum, err := o.numberText(name, "a string")
	if err != nil || !isNum {
		return text, err
	}
	if i, f, ok := strings.Cut(text, "."); ok && strings.Trim(f, "0") == "" {
		text = i
	}
	if neg {
		text = "-" + text
	}
	return text, nil
}

// Amount reads an amount (L1, L2): a JSON number or a numeric string; any
// other type is "<f> must be a number". A string is returned as sent (its
// format is the money rules' to check); a JSON number is read exactly from
// its text, its exponent applied (1e2 reads "100"), and a negative one is
// "<f> must be greater than 0" (§1.6: at least one minor unit).
func (o Object) Amount(name string) (string, error) {
	text, neg, _, err := o.numberText(name, "a number")
	if err == nil && neg {
		err = errs.Invalidf(o.Path(name), "%s must be greater than 0", name)
	}
	return text, err
}

// numberText reads a JSON number (isNum, its text without sign or exponent,
// and neg) or a string (as sent).
func (o Object) numberText(name, want string) (text string, neg, isNum bool, err error) {
	raw, ok := o.M[name]
	if !ok || raw == nil {
		return "", false, false, nil
	}
	switch v := raw.(type) {
	case string:
		if err := o.noNUL(name, v); err != nil {
			return "", false, false, err
		}
		return v, false, false, nil
	case json.Number:
		text, neg := plainNumber(v.String())
		return text, neg, true, nil
	}
	return "", false, false, o.typeErr(name, want)
}

// plainNumber writes a JSON number's text without its sign and exponent,
// exactly: "1e2" → "100", "1.5E-3" → "0.0015", "-7" → "7" and neg. An
// exponent beyond ±100 is read as ±100: far outside every range a field
// accepts, so the value still fails its rule, without a huge string.
func plainNumber(num string) (text string, neg bool) {
	if strings.HasPrefix(num, "-") {
		neg, num = true, num[1:]
	}
	mant, expText, hasExp := strings.Cut(strings.ToLower(num), "e")
	if !hasExp {
		return num, neg
	}
	exp, err := strconv.Atoi(expText)
	if err != nil || exp > 100 || exp < -100 {
		exp = 100
		if strings.HasPrefix(expText, "-") {
			exp = -100
		}
	}
	intPart, frac, _ := strings.Cut(mant, ".")
	digits := intPart + frac
	point := len(intPart) + exp
	switch {
	case point <= 0:
		return "0." + strings.Repeat("0", -point) + digits, neg
	case point >= len(digits):
		return digits + strings.Repeat("0", point-len(digits)), neg
	}
	return digits[:point] + "." + digits[point:], neg
}
