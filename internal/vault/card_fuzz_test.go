package vault

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"switchyard/internal/errs"
)

// messagesByPath is every message ValidateCard may return, by path.
var messagesByPath = map[string][]string{
	"card_name":    {msgNameRequired, msgNameLength},
	"card_number":  {msgNumberRequired, msgNumberDigits, msgNumberLength, msgNumberLuhn},
	"expire_month": {msgMonthRequired, msgMonthRange},
	"expire_year":  {msgYearRequired, msgYearRange, msgExpired},
	"card_ccv":     {msgCCV3, msgCCV4Amex},
}

func FuzzValidateCard(f *testing.F) {
	now := testNow.Unix()
	f.Add("Alan Turing", "4242424242424242", "12", "27", "321", now)
	f.Add("Grace Hopper", "378282246310005", "3", "2029", "1234", now)
	f.Add("Ada", "36227206271667", "09", "2099", "", now)
	f.Add("A", "424242424242", "1", "00", "123", int64(946684800))
	f.Add("", "", "", "", "", now)
	f.Add("x", "4242 4242 4242 4242", "13", "1999", "12", now)
	f.Add("x", "4242424242424242", "9.0", "28.0", "", now)
	f.Add("x", "4242424242424242", "11", "26", "", now)
	f.Add("x", "4242424242424242", "10", "26", "", now)
	f.Fuzz(func(t *testing.T, name, number, month, year, ccv string, nowUnix int64) {
		in := CardInput{Name: name, Number: number, ExpMonth: month, ExpYear: year, CCV: ccv}
		at := time.Unix(nowUnix, 0)
		c, err := ValidateCard(in, at)
		if err != nil {
			var e *errs.Error
			if !errors.As(err, &e) || e.Kind != errs.Invalid || len(e.Messages) != 1 {
				t.Fatalf("error %#v is not one Invalid *errs.Error message", err)
			}
			known := false
			for _, m := range messagesByPath[e.Path] {
				known = known || m == e.Messages[0]
			}
			if !known {
				t.Fatalf("unexpected path/message %q %q", e.Path, e.Messages[0])
			}
			if len(number) >= minNumberLen && allDigits(number) && strings.Contains(err.Error(), number) {
				t.Fatalf("error text contains the card number: %v", err)
			}
			if c != (Card{}) {
				t.Fatalf("non-zero card %+v returned with error", c)
			}
			return
		}

		// Invariants of a valid card.
		if n := len(c.Number); n < minNumberLen || n > maxNumberLen || !allDigits(c.Number) {
			t.Fatalf("accepted number %q is not 12-19 digits", c.Number)
		}
		if !Luhn(c.Number) {
			t.Fatalf("accepted number %q fails Luhn", c.Number)
		}
		if c.ExpMonth < 1 || c.ExpMonth > 12 {
			t.Fatalf("accepted month %d", c.ExpMonth)
		}
		if c.ExpYear < 2000 || c.ExpYear > 2099 {
			t.Fatalf("accepted year %d", c.ExpYear)
		}
		if expired(c.ExpMonth, c.ExpYear, at) {
			t.Fatalf("accepted expired card %02d/%d at %v", c.ExpMonth, c.ExpYear, at.UTC())
		}
		if n := len([]rune(c.Name)); n < 1 || n > maxNameLen {
			t.Fatalf("accepted name of %d characters", n)
		}
		if c.CCV != "" {
			want := 3
			if Scheme(c.Number) == "amex" {
				want = 4
			}
			if len(c.CCV) != want || !allDigits(c.CCV) {
				t.Fatalf("accepted CCV %q for %s", c.CCV, Scheme(c.Number))
			}
		}
		if c.Name != name || c.Number != number || c.CCV != ccv {
			t.Fatalf("card %+v does not carry the input's text", c)
		}
		if m, _ := ParseMonth(month); m != c.ExpMonth {
			t.Fatalf("ParseMonth(%q) = %d, card has %d", month, m, c.ExpMonth)
		}
		if y, _ := ParseYear(year); y != c.ExpYear {
			t.Fatalf("ParseYear(%q) = %d, card has %d", year, y, c.ExpYear)
		}
		// Validation is idempotent on the card's own canonical text.
		again, err := ValidateCard(CardInput{c.Name, c.Number, strconv.Itoa(c.ExpMonth), strconv.Itoa(c.ExpYear), c.CCV}, at)
		if err != nil || again != c {
			t.Fatalf("revalidating %+v: %+v, %v", c, again, err)
		}

		// No printed or logged form contains the PAN.
		var buf bytes.Buffer
		slog.New(slog.NewTextHandler(&buf, nil)).Info("m", "card", c, "cards", []Card{c})
		slog.New(slog.NewJSONHandler(&buf, nil)).Info("m", "card", c, "cards", []Card{c})
		js, _ := json.Marshal(c)
		outs := []string{
			c.String(), c.GoString(), c.LogValue().String(), buf.String(), string(js),
			fmt.Sprintf("%v %+v %#v %s %q %x %d", c, c, c, c, c, c, c),
			fmt.Sprint(&c, []Card{c}),
		}
		for _, out := range outs {
			if strings.Contains(out, c.Number) {
				t.Fatalf("output contains the PAN %s: %s", c.Number, out)
			}
		}
	})
}

// referenceScheme is an independent reading of spec §6.5: every prefix of
// the table spelled out as a string, the longest present prefix winning.
var referenceScheme = func() map[string]string {
	m := map[string]string{}
	add := func(scheme string, lo, hi int) {
		for v := lo; v <= hi; v++ {
			m[strconv.Itoa(v)] = scheme
		}
	}
	add("visa", 4, 4)
	add("mastercard", 51, 55)
	add("mastercard", 2221, 2720)
	add("amex", 34, 34)
	add("amex", 37, 37)
	add("discover", 6011, 6011)
	add("discover", 644, 649)
	add("discover", 65, 65)
	add("diners", 300, 305)
	add("diners", 3095, 3095)
	add("diners", 36, 36)
	add("diners", 38, 39)
	add("jcb", 3528, 3589)
	add("unionpay", 62, 62)
	add("unionpay", 81, 81)
	return m
}()

func FuzzScheme(f *testing.F) {
	for _, s := range []string{
		"4111111111111111", "5555555555554444", "2223003122003222", "378282246310005",
		"6011111111111117", "36227206271667", "3566002020360505", "6200000000000005",
		"2720", "2721", "3095", "3589", "649", "", "x", "9000000000000001", "４",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, number string) {
		got := Scheme(number)
		want := "unknown"
		for n := min(len(number), 4); n >= 1; n-- {
			if s, ok := referenceScheme[number[:n]]; ok {
				want = s
				break
			}
		}
		if got != want {
			t.Fatalf("Scheme(%q) = %q, reference %q", number, got, want)
		}

		bin, last4 := BIN(number), Last4(number)
		wantBIN := 6
		if len(number) >= 16 {
			wantBIN = 8
		}
		if !strings.HasPrefix(number, bin) || len(bin) != min(wantBIN, len(number)) {
			t.Fatalf("BIN(%q) = %q", number, bin)
		}
		if !strings.HasSuffix(number, last4) || len(last4) != min(4, len(number)) {
			t.Fatalf("Last4(%q) = %q", number, last4)
		}

		if Luhn(number) {
			if number == "" || !allDigits(number) {
				t.Fatalf("Luhn(%q) accepted a non-digit string", number)
			}
			// Changing any one digit breaks the check.
			b := []byte(number)
			b[0] = '0' + (b[0]-'0'+1)%10
			if Luhn(string(b)) {
				t.Fatalf("Luhn accepts both %q and %q", number, b)
			}
		}

		c := Card{Number: number, ExpMonth: 1, ExpYear: 2030}
		if len(number) >= minNumberLen && allDigits(number) {
			for _, out := range []string{c.String(), c.GoString(), c.LogValue().String(), fmt.Sprintf("%v %+v %#v", c, c, c)} {
				if strings.Contains(out, number) {
					t.Fatalf("masked output contains the number %q: %s", number, out)
				}
			}
		}
	})
}
