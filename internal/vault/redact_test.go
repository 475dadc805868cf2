package vault

import (
	"strings"
	"testing"
)

func TestRedactCardNumbers(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"plain", "card 4242424242424242 declined", "card [redacted] declined"},
		{"form-encoded echo", "card%5Bnumber%5D=6011000990139424&card%5Bcvc%5D=531", "card%5Bnumber%5D=[redacted]&card%5Bcvc%5D=531"},
		{"spaced", "number 4000 0566 5566 5556.", "number [redacted]."},
		{"dashed amex", "3782-822463-10005", "[redacted]"},
		{"19 digits", "6011000990139424000 x", "6011000990139424000 x"}, // fails Luhn as a whole
		{"two numbers", "4242424242424242/5555555555554444", "[redacted]/[redacted]"},
		{"not Luhn", "order 1234567890123 failed", "order 1234567890123 failed"},
		{"short", "code 424242424242", "code 424242424242"},
		{"last four only", "card ending 4242", "card ending 4242"},
		{"no digits", "Your card was declined.", "Your card was declined."},
		{"empty", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := RedactCardNumbers(tc.in); got != tc.want {
				t.Errorf("RedactCardNumbers(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// FuzzRedactCardNumbers: whatever the text, no digit run that reads as a
// card number survives, redacting twice changes nothing more, and text
// without such a run comes back unchanged.
func FuzzRedactCardNumbers(f *testing.F) {
	for _, s := range []string{"4242424242424242", "x 4000-0566-5566-5556 y", "1234567890123", "", "[redacted]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := RedactCardNumbers(s)
		for _, run := range panRun.FindAllString(out, -1) {
			if Luhn(strings.NewReplacer(" ", "", "-", "").Replace(run)) {
				t.Fatalf("RedactCardNumbers(%q) = %q keeps %q", s, out, run)
			}
		}
		if again := RedactCardNumbers(out); again != out {
			t.Fatalf("redacting %q again gave %q", out, again)
		}
		if !panRun.MatchString(s) && out != s {
			t.Fatalf("RedactCardNumbers(%q) = %q changed text without a digit run", s, out)
		}
	})
}
