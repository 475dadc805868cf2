package contact

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"switchyard/internal/errs"
)

const phoneMsg = "phone must be a phone number, ideally in E.164 format"

func wantInvalid(t *testing.T, err error, path, msg string) {
	t.Helper()
	var e *errs.Error
	if !errors.As(err, &e) || e.Kind != errs.Invalid || e.Path != path || len(e.Messages) != 1 || e.Messages[0] != msg {
		t.Errorf("error %#v, want Invalid %q %q", err, path, msg)
	}
}

func TestContactText(t *testing.T) {
	if err := Text("p.first_name", "first_name", strings.Repeat("é", 255)); err != nil {
		t.Errorf("255 code points rejected: %v", err)
	}
	if err := Text("x", "x", ""); err != nil {
		t.Errorf("empty rejected: %v", err)
	}
	wantInvalid(t, Text("p.first_name", "first_name", strings.Repeat("a", 256)), "p.first_name", "first_name must be at most 255 characters")
}

func TestContactEmail(t *testing.T) {
	for _, ok := range []string{"ada@example.com", "a.b+c@sub.example.co.uk", "x@y.z", strings.Repeat("a", 242) + "@example.com", "ÄDA@exämple.com",
		strings.Repeat("ä", 242) + "@example.com"} { // 254 characters (496 bytes)
		if err := Email("email", ok); err != nil {
			t.Errorf("%q rejected: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "ada", "ada@", "@example.com", "ada@example", "ada@.example.com", "ada@example.com.", "ada@example..com",
		"ada@@example.com", "a@b@example.com", "Ada <ada@example.com>", "ada @example.com", "ada@exa mple.com", "\"ada\"@example.com",
		"ada@example.com\n", "ada,b@example.com", "ada;@example.com", "ada@[1.2.3.4]", strings.Repeat("a", 243) + "@example.com", strings.Repeat("ä", 243) + "@example.com"} {
		wantInvalid(t, Email("email", bad), "email", "email must be a valid email address")
	}
}

func TestContactCountry(t *testing.T) {
	for in, want := range map[string]string{"au": "AU", "AU": "AU", "aus": "AUS", "Nz": "NZ"} {
		if got, err := Country("address_country", in); err != nil || got != want {
			t.Errorf("%q: %q %v, want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "A", "AUST", "A1", "A ", "ÅU", "é", "12"} {
		_, err := Country("payment_source.address_country", bad)
		wantInvalid(t, err, "payment_source.address_country", "address_country must be a 2- or 3-letter country code")
	}
}

func TestContactRegion(t *testing.T) {
	for in, want := range map[string]string{"AU": "AU", "au": "AU", "AUS": "AU", "nzl": "NZ", " gb ": "GB", "": "", "XX": "", "ZZZ": "",
		"A": "", "AUST": "", "KOR": "KR", "ARG": "AR", "kor": "KR", "EST": "EE", "ZWE": "ZW", "QQQ": "", "EUR": ""} {
		if got := Region(in); got != want {
			t.Errorf("Region(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPhone(t *testing.T) {
	cases := []struct {
		in, country, want string
	}{
		{"+61411222333", "", "+61411222333"},
		{"+61411222333", "US", "+61411222333"}, // E.164 is stored as sent
		{"+12", "", "+12"},
		{"0412 345 678", "AU", "+61412345678"},
		{"0412 345 678", "au", "+61412345678"},
		{"(04) 1234-5678", "AUS", "+61412345678"},
		{"02 9876 5432", "AU", "+61298765432"},
		{"021 123 4567", "NZ", "+64211234567"},
		{"010-1234-5678", "KOR", "+821012345678"},
		{"011 4123-4567", "ARG", "+541141234567"},
		{" +61 412 345 678 ", "AU", "+61412345678"},
		{"+1 650 253 0000", "AU", "+1 650 253 0000"}, // not an AU number: kept
		{"0412 345 678", "", "0412 345 678"},
		{"  0412 345 678  ", "", "0412 345 678"},
		{"0412 345 678", "XX", "0412 345 678"},
		{"123456", "AU", "123456"},
		{"1.2.3.4.5.6", "", "1.2.3.4.5.6"},
		{strings.Repeat("1", 32), "", strings.Repeat("1", 32)},
	}
	for _, c := range cases {
		got, err := Phone("phone", c.in, c.country)
		if err != nil || got != c.want {
			t.Errorf("Phone(%q, %q) = %q, %v; want %q", c.in, c.country, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "     ", "12345", "+1 2345", "(02) 9-1", "0412 345 67x", "+61 4abc 345", "0412_345_678", "0412\t345678",
		"\t0412 345 678", "0412 345 678\t", "\u00a00412 345 678", "0412 345 678\n",
		"٠٤١٢٣٤٥٦٧٨", strings.Repeat("1", 33), "+0123456a", "phone", "0412/345/678"} {
		_, err := Phone("phone", bad, "AU")
		wantInvalid(t, err, "phone", phoneMsg)
	}
}

var (
	e164Re     = regexp.MustCompile(`^\+[1-9][0-9]{1,14}$`)
	nationalRe = regexp.MustCompile(`^[0-9 +\-().]{6,32}$`)
)

// phoneAccepted is spec §7.4 written independently of the code.
func phoneAccepted(v string) bool {
	if e164Re.MatchString(v) {
		return true
	}
	// Only spaces are allowed around the number, as inside it: a tab or a
	// no-break space is "any other character".
	t := strings.Trim(v, " ")
	return nationalRe.MatchString(t) && len(regexp.MustCompile(`[0-9]`).FindAllString(t, -1)) >= 6
}

// FuzzPhone checks Phone against the spec's rule: it accepts exactly what
// §7.4 accepts, keeps E.164 as sent, otherwise answers either E.164 (only
// when a country is known) or the input trimmed, and is idempotent.
func FuzzPhone(f *testing.F) {
	for _, s := range [][2]string{{"0412 345 678", "AU"}, {"+61411222333", ""}, {"(04) 1234-5678", "aus"}, {"12345", "AU"},
		{" +1 650 253 0000 ", "US"}, {"+++123456", ""}, {"0412\t345678", "AU"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, v, country string) {
		out, err := Phone("phone", v, country)
		if accepted := phoneAccepted(v); accepted != (err == nil) {
			t.Fatalf("Phone(%q, %q) = %q, %v; spec accepts: %v", v, country, out, err, accepted)
		}
		if err != nil {
			wantInvalid(t, err, "phone", phoneMsg)
			if out != "" {
				t.Fatalf("value %q returned with an error", out)
			}
			return
		}
		switch {
		case e164Re.MatchString(v):
			if out != v {
				t.Fatalf("E.164 %q changed to %q", v, out)
			}
		case out == strings.Trim(v, " "):
		case e164Re.MatchString(out) && Region(country) != "":
		default:
			t.Fatalf("Phone(%q, %q) = %q: neither trimmed input nor E.164 for a known country", v, country, out)
		}
		again, err := Phone("phone", out, country)
		if err != nil || again != out {
			t.Fatalf("not idempotent: %q → %q → %q, %v", v, out, again, err)
		}
	})
}
