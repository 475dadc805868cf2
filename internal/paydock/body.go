package paydock

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
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
// and returns its text exactly as sent; absent, null and "" give "".
// Any other type is "<f> must be a string".
func (o Object) NumberText(name string) (string, error) {
	return o.numberText(name, "a string")
}

// Amount reads an amount (L1, L2): a JSON number or numeric string, its text
// exactly as sent; any other type is "<f> must be a number".
func (o Object) Amount(name string) (string, error) {
	return o.numberText(name, "a number")
}

func (o Object) numberText(name, want string) (string, error) {
	raw, ok := o.M[name]
	if !ok || raw == nil {
		return "", nil
	}
	switch v := raw.(type) {
	case string:
		if err := o.noNUL(name, v); err != nil {
			return "", err
		}
		return v, nil
	case json.Number:
		return v.String(), nil
	}
	return "", o.typeErr(name, want)
}
