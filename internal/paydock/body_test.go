package paydock

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"switchyard/internal/errs"
)

func TestParseBody(t *testing.T) {
	cases := []struct {
		name, body string
		ok         bool
		keys       int
	}{
		{"empty", "", true, 0},
		{"spaces", "  \n", true, 0},
		{"null", "null", true, 0},
		{"empty object", "{}", true, 0},
		{"object", `{"a":1,"b":"x"}`, true, 2},
		{"CRLF pretty", "{\r\n  \"amount\" : \"\"\r\n}", true, 1},
		{"array", `[1]`, false, 0},
		{"string", `"x"`, false, 0},
		{"number", `1`, false, 0},
		{"truncated", `{"a":`, false, 0},
		{"trailing data", `{} {}`, false, 0},
		{"trailing garbage", `{}x`, false, 0},
		{"invalid UTF-8 inside a string", "{\"name\":\"Jos\xe9\"}", true, 1},
	}
	// U+0000 fails the field that is read, not the body: unknown fields
	// are ignored whatever they hold.
	for _, nul := range []struct {
		body, path string
		read       func(Object) error
	}{
		{`{"first_name":"a\u0000b"}`, "first_name", func(o Object) error { _, err := o.String("first_name"); return err }},
		{`{"first_name":"\u0000"}`, "first_name", func(o Object) error { _, _, err := o.StringSet("first_name"); return err }},
		{`{"expire_month":"\u0000"}`, "expire_month", func(o Object) error { _, err := o.NumberText("expire_month"); return err }},
		{`{"payment_source":{"card_name":"\u0000"}}`, "payment_source.card_name", func(o Object) error {
			ps, _, err := o.Object("payment_source")
			if err != nil {
				return err
			}
			_, err = ps.String("card_name")
			return err
		}},
	} {
		o, err := ParseBody([]byte(nul.body))
		if err != nil {
			t.Fatalf("%s: %v", nul.body, err)
		}
		err = nul.read(o)
		e, ok := err.(*errs.Error)
		if !ok || e.Kind != errs.Invalid || e.Path != nul.path || e.Messages[0] != lastSeg(nul.path)+" must not contain the NUL character" {
			t.Errorf("%s: err %v, want a ValidationError on %q", nul.body, err, nul.path)
		}
	}
	for _, body := range []string{`{"meta":{"k\u0000":"v"}}`, `{"x":["ok","\u0000"]}`, `{"4111111111111111":"\u0000"}`} {
		if _, err := ParseBody([]byte(body)); err != nil {
			t.Errorf("%s: %v, want it parsed (the field is read, or ignored, later)", body, err)
		}
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o, err := ParseBody([]byte(tc.body))
			if !tc.ok {
				e, isErr := err.(*errs.Error)
				if !isErr || e.Kind != errs.Invalid || e.Path != "" || len(e.Messages) != 1 || e.Messages[0] != ErrNotObject {
					t.Fatalf("err = %#v, want the body-not-an-object error", err)
				}
				return
			}
			if err != nil || len(o.M) != tc.keys {
				t.Fatalf("got %v, %v", o.M, err)
			}
		})
	}
	o, _ := ParseBody([]byte("{\"name\":\"Jos\xe9\"}"))
	if got, _ := o.String("name"); got != "Jos\uFFFD" {
		t.Fatalf("invalid UTF-8 read as %q, want U+FFFD", got)
	}
}

func TestObjectReaders(t *testing.T) {
	o, err := ParseBody([]byte(`{"s":"x","e":"","n":null,"num":9,"big":2028,"f":10.50,"b":true,"o":{"k":"v"},"arr":[1]}`))
	if err != nil {
		t.Fatal(err)
	}
	type check struct {
		name    string
		got     string
		err     error
		want    string
		wantErr string
	}
	str := func(n string) check { v, err := o.String(n); return check{"String " + n, v, err, "", ""} }
	num := func(n string) check { v, err := o.NumberText(n); return check{"NumberText " + n, v, err, "", ""} }
	amt := func(n string) check { v, err := o.Amount(n); return check{"Amount " + n, v, err, "", ""} }
	cases := []check{}
	add := func(c check, want, wantErr string) { c.want, c.wantErr = want, wantErr; cases = append(cases, c) }
	add(str("s"), "x", "")
	add(str("e"), "", "")
	add(str("n"), "", "")
	add(str("absent"), "", "")
	add(str("num"), "", "num must be a string")
	add(str("o"), "", "o must be a string")
	add(num("num"), "9", "")
	add(num("f"), "10.50", "")
	add(num("s"), "x", "")
	add(num("b"), "", "b must be a string")
	add(amt("f"), "10.50", "")
	add(amt("b"), "", "b must be a number")
	add(amt("arr"), "", "arr must be a number")
	for _, c := range cases {
		if c.wantErr != "" {
			e, ok := c.err.(*errs.Error)
			if !ok || e.Messages[0] != c.wantErr {
				t.Errorf("%s: err %v, want %q", c.name, c.err, c.wantErr)
			}
			continue
		}
		if c.err != nil || c.got != c.want {
			t.Errorf("%s: %q, %v; want %q", c.name, c.got, c.err, c.want)
		}
	}
	if v, set, err := o.Bool("b"); !v || !set || err != nil {
		t.Errorf("Bool b: %v %v %v", v, set, err)
	}
	if _, _, err := o.Bool("s"); err == nil {
		t.Error("Bool of a string must fail")
	}
	sub, ok, err := o.Object("o")
	if !ok || err != nil || sub.Path("k") != "o.k" {
		t.Errorf("Object o: %v %v %q", ok, err, sub.Path("k"))
	}
	if _, _, err := o.Object("s"); err == nil || err.(*errs.Error).Messages[0] != "s must be an object" {
		t.Errorf("Object of a string: %v", err)
	}
	if s, set, _ := o.StringSet("e"); s != "" || !set {
		t.Error(`StringSet "" must be set`)
	}
	if !o.Has("e") || o.Has("n") {
		t.Error("Has disagrees with L6")
	}
}

func TestTimeAndIDs(t *testing.T) {
	ts := time.Date(2026, 11, 24, 9, 15, 2, 417_999_999, time.FixedZone("x", 3600))
	if got := FormatTime(ts); got != "2026-11-24T08:15:02.417Z" {
		t.Fatalf("FormatTime %s", got)
	}
	b, _ := json.Marshal(Time(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)))
	if string(b) != `"2026-01-02T03:04:05.000Z"` {
		t.Fatalf("Time JSON %s", b)
	}
	id := NewID()
	if !IsID(id) || strings.ToLower(id) != id || NewID() == id {
		t.Fatalf("NewID %q", id)
	}
	for _, c := range []struct {
		s      string
		id, tk bool
	}{
		{"229868cd93cde0e3f023d52c", true, false},
		{"229868CD93CDE0E3F023D52C", true, false},
		{"229868cd93cde0e3f023d52", false, false},
		{"invalid_id_string", false, false},
		{"052d9a30-48dd-4a07-9062-f3120c46e415", false, true},
		{"052d9a30-48dd-4a07-9062_f3120c46e415", false, false},
		{"052d9a3048dd4a079062f3120c46e41500000", false, false},
	} {
		if IsID(c.s) != c.id || IsToken(c.s) != c.tk {
			t.Errorf("%q: IsID %v IsToken %v", c.s, IsID(c.s), IsToken(c.s))
		}
	}
}

// FuzzParseBody: any bytes either parse to an object whose strings are
// valid UTF-8, or fail with the one body error; never a panic.
func FuzzParseBody(f *testing.F) {
	for _, s := range []string{"", "null", "{}", `{"a":{"b":[1,2,{"c":null}]}}`, "{\"x\":\"\xff\"}", `{"amount":10.50}`, `[`, `{"a":1}{`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := ParseBody(b)
		if err != nil {
			e, ok := err.(*errs.Error)
			if !ok || e.Kind != errs.Invalid || e.Messages[0] != ErrNotObject {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		for k := range o.M {
			if s, err := o.String(k); err == nil && (!utf8.ValidString(s) || strings.ContainsRune(s, 0)) {
				t.Fatalf("string %q is not valid UTF-8 or holds NUL", s)
			}
		}
	})
}

func lastSeg(p string) string { return p[strings.LastIndex(p, ".")+1:] }

// JSON numbers are read exactly from their text (§1.3): the exponent is
// applied, a negative amount is "greater than 0", and a whole expiry's
// zero fraction is dropped (L3, L4).
func TestNumbersFromJSON(t *testing.T) {
	for _, c := range []struct {
		body, amount, amountErr, text string
	}{
		{`{"n":10.50}`, "10.50", "", "10.50"},
		{`{"n":1e2}`, "100", "", "100"},
		{`{"n":1.5E-3}`, "0.0015", "", "0.0015"},
		{`{"n":25e-1}`, "2.5", "", "2.5"},
		{`{"n":0.5e1}`, "05", "", "05"},
		{`{"n":9.0}`, "9.0", "", "9"},
		{`{"n":9e0}`, "9", "", "9"},
		{`{"n":28.000}`, "28.000", "", "28"},
		{`{"n":-1}`, "1", "n must be greater than 0", "-1"},
		{`{"n":-0}`, "0", "n must be greater than 0", "-0"},
		{`{"n":1e999999999999999999999}`, "1" + strings.Repeat("0", 100), "", "1" + strings.Repeat("0", 100)},
		{`{"n":1e-999999999999}`, "0." + strings.Repeat("0", 99) + "1", "", "0." + strings.Repeat("0", 99) + "1"},
		{`{"n":"-1"}`, "-1", "", "-1"},
		{`{"n":"1e2"}`, "1e2", "", "1e2"},
	} {
		o, err := ParseBody([]byte(c.body))
		if err != nil {
			t.Fatal(err)
		}
		got, err := o.Amount("n")
		if c.amountErr != "" {
			e, ok := err.(*errs.Error)
			if !ok || e.Path != "n" || e.Messages[0] != c.amountErr {
				t.Errorf("%s: Amount err %v, want %q", c.body, err, c.amountErr)
			}
		} else if err != nil || got != c.amount {
			t.Errorf("%s: Amount %q, %v; want %q", c.body, got, err, c.amount)
		}
		if got, err := o.NumberText("n"); err != nil || got != c.text {
			t.Errorf("%s: NumberText %q, %v; want %q", c.body, got, err, c.text)
		}
	}
}
