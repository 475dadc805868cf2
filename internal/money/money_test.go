package money

import (
	"errors"
	"regexp"
	"strconv"
	"testing"

	"switchyard/internal/errs"
)

var (
	aud = mustCurrency("AUD")
	jpy = mustCurrency("JPY")
	bhd = mustCurrency("BHD")
	clf = mustCurrency("CLF")
)

func mustCurrency(code string) Currency {
	c, ok := LookupCurrency(code)
	if !ok {
		panic("no currency " + code)
	}
	return c
}

// checkInvalid fails unless err is a ValidationError on path with message msg.
func checkInvalid(t *testing.T, err error, path, msg string) {
	t.Helper()
	var e *errs.Error
	if !errors.As(err, &e) {
		t.Fatalf("error = %v, want *errs.Error", err)
	}
	if e.Kind != errs.Invalid || e.Path != path || len(e.Messages) != 1 || e.Messages[0] != msg {
		t.Fatalf("error = kind %v path %q messages %q, want invalid %q [%q]", e.Kind, e.Path, e.Messages, path, msg)
	}
}

func TestCheckAmountText(t *testing.T) {
	tests := []struct{ text, msg string }{
		{"1", ""},
		{"0.001", ""}, // decimals wait for the currency
		{"999999999.999", ""},
		{"1000000000", ""},
		{"1000000000.000", ""},
		{"0001000000000", ""},
		{"1000000000.001", "amount must be at most 1000000000"},
		{"1000000001", "amount must be at most 1000000000"},
		{"2000000000", "amount must be at most 1000000000"},
		{"99999999999", "amount must be at most 1000000000"},
		{"", "amount is required"},
		{"0.000", "amount must be greater than 0"},
		{"-1", "amount must be a number"},
		{"1e3", "amount must be a number"},
	}
	for _, tt := range tests {
		err := CheckAmountText("amount", tt.text)
		if tt.msg == "" {
			if err != nil {
				t.Errorf("CheckAmountText(%q) = %v, want nil", tt.text, err)
			}
			continue
		}
		checkInvalid(t, err, "amount", tt.msg)
	}
}

func TestParseAmount(t *testing.T) {
	const (
		notNumber = "amount must be a number"
		tooSmall  = "amount must be greater than 0"
		tooBig    = "amount must be at most 1000000000"
	)
	tests := []struct {
		text string
		cur  Currency
		want int64
		msg  string // "" = success
	}{
		{"10.5", aud, 1050, ""},
		{"10.50", aud, 1050, ""},
		{"56", aud, 5600, ""},
		{"56.000", aud, 5600, ""},
		{"56.0000000000000000000000000", aud, 5600, ""},
		{"0.01", aud, 1, ""},
		{"0.010", aud, 1, ""},
		{"007", aud, 700, ""},
		{"0.001", aud, 0, "amount has more decimal places than AUD allows"},
		{"10.005", aud, 0, "amount has more decimal places than AUD allows"},
		{"1000000000", aud, 100000000000, ""},
		{"1000000000.00", aud, 100000000000, ""},
		{"0001000000000", aud, 100000000000, ""},
		{"999999999.99", aud, 99999999999, ""},
		{"1000000000.01", aud, 0, tooBig},
		{"1000000001", aud, 0, tooBig},
		{"9999999999", aud, 0, tooBig},
		{"10000000000", aud, 0, tooBig},
		{"99999999999999999999999999999", aud, 0, tooBig},
		{"0", aud, 0, tooSmall},
		{"0.00", aud, 0, tooSmall},
		{"0.000", aud, 0, tooSmall},
		{"000", aud, 0, tooSmall},
		{"-1", aud, 0, notNumber},
		{"+1", aud, 0, notNumber},
		{"1e3", aud, 0, notNumber},
		{"1E3", aud, 0, notNumber},
		{"1.5e2", aud, 0, notNumber},
		{" 1", aud, 0, notNumber},
		{"1 ", aud, 0, notNumber},
		{"1,000", aud, 0, notNumber},
		{"1_000", aud, 0, notNumber},
		{".5", aud, 0, notNumber},
		{"5.", aud, 0, notNumber},
		{".", aud, 0, notNumber},
		{"1.2.3", aud, 0, notNumber},
		{"0x10", aud, 0, notNumber},
		{"NaN", aud, 0, notNumber},
		{"Infinity", aud, 0, notNumber},
		{"١٢", aud, 0, notNumber}, // Arabic-Indic digits are not [0-9]
		{"", aud, 0, "amount is required"},
		{"100", jpy, 100, ""},
		{"100.0", jpy, 100, ""},
		{"100.5", jpy, 0, "amount has more decimal places than JPY allows"},
		{"1000000000", jpy, 1000000000, ""},
		{"1000000001", jpy, 0, tooBig},
		{"1.234", bhd, 1234, ""},
		{"0.001", bhd, 1, ""},
		{"1.2345", bhd, 0, "amount has more decimal places than BHD allows"},
		{"1000000000", bhd, 1000000000000, ""},
		{"0.0001", clf, 1, ""},
		{"1000000000", clf, 10000000000000, ""},
	}
	for _, tt := range tests {
		t.Run(tt.cur.Code+"/"+strconv.Quote(tt.text), func(t *testing.T) {
			got, err := ParseAmount("amount", tt.text, tt.cur)
			if tt.msg != "" {
				checkInvalid(t, err, "amount", tt.msg)
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseAmount(%q, %s) = %d, %v; want %d", tt.text, tt.cur.Code, got, err, tt.want)
			}
		})
	}
}

// TestParseAmountFieldPath: the path is the full field, messages name its
// last segment.
func TestParseAmountFieldPath(t *testing.T) {
	_, err := ParseAmount("transfer.amount", "0", aud)
	checkInvalid(t, err, "transfer.amount", "amount must be greater than 0")
	_, err = ParseAmount("capture.total", "1e3", aud)
	checkInvalid(t, err, "capture.total", "total must be a number")
	_, err = ParseAmount("x.y.amount", "1.001", aud)
	checkInvalid(t, err, "x.y.amount", "amount has more decimal places than AUD allows")
}

func TestParseAmountBadExponent(t *testing.T) {
	_, err := ParseAmount("amount", "1", Currency{Code: "ZZZ", Exponent: 19})
	if errs.KindOf(err) != errs.Internal {
		t.Fatalf("error = %v, want internal", err)
	}
}

func TestFormat(t *testing.T) {
	tests := []struct {
		minor int64
		cur   Currency
		want  string
	}{
		{2500, aud, "25"},
		{5600, aud, "56"},
		{1050, aud, "10.5"},
		{1055, aud, "10.55"},
		{5, aud, "0.05"},
		{50, aud, "0.5"},
		{1, aud, "0.01"},
		{0, aud, "0"},
		{100000000000, aud, "1000000000"},
		{99999999999, aud, "999999999.99"},
		{100, jpy, "100"},
		{1, jpy, "1"},
		{1, bhd, "0.001"},
		{1230, bhd, "1.23"},
		{1, clf, "0.0001"},
		{-1050, aud, "-10.5"},
		{-5, aud, "-0.05"},
		{-9223372036854775808, aud, "-92233720368547758.08"},
		{9223372036854775807, jpy, "9223372036854775807"},
	}
	for _, tt := range tests {
		if got := Format(tt.minor, tt.cur); got != tt.want {
			t.Errorf("Format(%d, %s) = %q, want %q", tt.minor, tt.cur.Code, got, tt.want)
		}
		if got := Number(tt.minor, tt.cur); string(got) != tt.want {
			t.Errorf("Number(%d, %s) = %q, want %q", tt.minor, tt.cur.Code, got, tt.want)
		}
	}
}

var wireRE = regexp.MustCompile(`^(0|[1-9][0-9]*)(\.[0-9]*[1-9])?$`)

// TestFormatRoundTrip: every formatted valid amount is canonical wire text
// and parses back to the same minor units, in every currency of the table.
func TestFormatRoundTrip(t *testing.T) {
	values := []int64{1, 2, 5, 9, 10, 11, 50, 99, 100, 101, 105, 110, 999, 1000, 1001, 1050, 2500, 12345,
		100000, 123456789, 999999999, 1000000000, 1000000001, 99999999999, 100000000000, 10000000000000}
	for code, exp := range exponents {
		cur := Currency{Code: code, Exponent: exp}
		limit := maxMajor * pow10(exp)
		for _, v := range values {
			if v > limit {
				continue
			}
			s := Format(v, cur)
			if !wireRE.MatchString(s) {
				t.Errorf("Format(%d, %s) = %q: not canonical", v, code, s)
			}
			got, err := ParseAmount("amount", s, cur)
			if err != nil || got != v {
				t.Errorf("ParseAmount(Format(%d, %s) = %q) = %d, %v", v, code, s, got, err)
			}
		}
		if _, err := ParseAmount("amount", Format(limit+1, cur), cur); err == nil {
			t.Errorf("%s: one minor unit above the maximum accepted", code)
		}
	}
}

func TestMajorFloor(t *testing.T) {
	tests := []struct {
		minor int64
		cur   Currency
		want  int64
	}{
		{0, aud, 0},
		{99, aud, 0},
		{100, aud, 1},
		{1050, aud, 10},
		{1099, aud, 10},
		{100, jpy, 100},
		{1999, bhd, 1},
		{19999, clf, 1},
		{-1, aud, -1},
		{-100, aud, -1},
		{-101, aud, -2},
	}
	for _, tt := range tests {
		if got := MajorFloor(tt.minor, tt.cur); got != tt.want {
			t.Errorf("MajorFloor(%d, %s) = %d, want %d", tt.minor, tt.cur.Code, got, tt.want)
		}
	}
}

func TestLookupCurrency(t *testing.T) {
	tests := []struct {
		in   string
		want Currency
		ok   bool
	}{
		{"AUD", Currency{"AUD", 2}, true},
		{"aud", Currency{"AUD", 2}, true},
		{"aUd", Currency{"AUD", 2}, true},
		{"jpy", Currency{"JPY", 0}, true},
		{"KRW", Currency{"KRW", 0}, true},
		{"bhd", Currency{"BHD", 3}, true},
		{"KWD", Currency{"KWD", 3}, true},
		{"CLF", Currency{"CLF", 4}, true},
		{"UYW", Currency{"UYW", 4}, true},
		{"ZWG", Currency{"ZWG", 2}, true},
		{"XCG", Currency{"XCG", 2}, true},
		{"ABC", Currency{}, false},
		{"", Currency{}, false},
		{"AU", Currency{}, false},
		{"AUDD", Currency{}, false},
		{" AUD", Currency{}, false},
		{"uſd", Currency{}, false}, // ſ upper-cases to S in Unicode, not here
		{"HRK", Currency{}, false},
	}
	for _, code := range []string{"XAU", "XAG", "XPT", "XPD", "XTS", "XXX", "XDR", "XSU", "XUA",
		"BOV", "CHE", "CHW", "COU", "MXV", "USN", "xau"} {
		tests = append(tests, struct {
			in   string
			want Currency
			ok   bool
		}{code, Currency{}, false})
	}
	for _, tt := range tests {
		got, ok := LookupCurrency(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("LookupCurrency(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

// TestExponents pins the exponents the brief and spec §1.6 name.
func TestExponents(t *testing.T) {
	want := map[int][]string{
		0: {"BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF"},
		3: {"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"},
		4: {"CLF", "UYW"},
	}
	special := map[string]bool{}
	for exp, codes := range want {
		for _, c := range codes {
			special[c] = true
			if got, ok := exponents[c]; !ok || got != exp {
				t.Errorf("%s: exponent %d (present %v), want %d", c, got, ok, exp)
			}
		}
	}
	for c, exp := range exponents {
		if !special[c] && exp != 2 {
			t.Errorf("%s: exponent %d, want 2", c, exp)
		}
	}
	if len(exponents) < 150 {
		t.Errorf("table has %d currencies, want the full active list", len(exponents))
	}
}
