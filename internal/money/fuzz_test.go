package money

import (
	"strings"
	"testing"
)

// FuzzParseAmount: ParseAmount never panics, and an accepted amount formats
// to canonical wire text (no sign, no exponent) that parses back to the same
// minor units. Seeds are in testdata/fuzz/FuzzParseAmount.
func FuzzParseAmount(f *testing.F) {
	f.Fuzz(func(t *testing.T, text, code string) {
		cur, ok := LookupCurrency(code)
		if !ok {
			cur = aud
		}
		minor, err := ParseAmount("amount", text, cur)
		// CheckAmountText, the currency-free half, never refuses what
		// ParseAmount accepts, and refuses with ParseAmount's message
		// whenever the decimals are not what fails.
		if cerr := CheckAmountText("amount", text); cerr != nil {
			if err == nil {
				t.Fatalf("CheckAmountText(%q) = %v, but ParseAmount(%q, %s) accepts it", text, cerr, text, cur.Code)
			}
			if !strings.Contains(err.Error(), "decimal places") && cerr.Error() != err.Error() {
				t.Fatalf("CheckAmountText(%q) = %v, ParseAmount = %v", text, cerr, err)
			}
		}
		if err != nil {
			return
		}
		if minor < 1 || minor > maxMajor*pow10(cur.Exponent) {
			t.Fatalf("ParseAmount(%q, %s) = %d: out of range", text, cur.Code, minor)
		}
		s := Format(minor, cur)
		if !wireRE.MatchString(s) || strings.ContainsAny(s, "eE+-") {
			t.Fatalf("Format(%d, %s) = %q: not canonical wire text", minor, cur.Code, s)
		}
		again, err := ParseAmount("amount", s, cur)
		if err != nil || again != minor {
			t.Fatalf("ParseAmount(Format(%d, %s) = %q) = %d, %v", minor, cur.Code, s, again, err)
		}
		if got := MajorFloor(minor, cur); got != minor/pow10(cur.Exponent) {
			t.Fatalf("MajorFloor(%d, %s) = %d", minor, cur.Code, got)
		}
	})
}
