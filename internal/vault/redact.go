package vault

import (
	"regexp"
	"strings"
)

// panRun is a run of 13 to 19 digits, each pair at most one space or dash
// apart: how card numbers are written out in free text.
var panRun = regexp.MustCompile(`\d(?:[ -]?\d){12,18}`)

// RedactCardNumbers replaces every card number in s (a run of 13 to 19
// digits that passes the Luhn check) with "[redacted]". It guards text
// Switchyard passes on from elsewhere, a gateway's error message say,
// which must never carry a card number into a response, a log line or
// the database (spec §1.9), whatever that other party echoes back.
func RedactCardNumbers(s string) string {
	if len(s) < 13 {
		return s
	}
	return panRun.ReplaceAllStringFunc(s, func(run string) string {
		digits := strings.NewReplacer(" ", "", "-", "").Replace(run)
		if Luhn(digits) {
			return "[redacted]"
		}
		return run
	})
}
