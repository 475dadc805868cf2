// Package search holds how the search= filters match (spec §3.4, §7.5,
// §8.7): case folded in Switchyard with Go's Unicode simple folding (never
// the database's rules, so both engines agree), each field matched on its
// own.
package search

import (
	"strings"
	"unicode"
)

// sep separates the fields of a stored search text. A field's own
// newlines are stored as spaces, and a term's newline can match nothing
// (Term), so no term ever matches across two fields.
const sep = "\n"

// unmatchable stands for a term's newline: no stored text holds it.
const unmatchable = "\uffff"

// Fold maps every rune of s to one member of its simple-folding orbit
// (the lower case of the orbit's smallest rune), so that "Jeſſica" and
// "JESSICA", or "ΟΔΥΣΣΕΥΣ" and "οδυσσευς", fold alike.
func Fold(s string) string { return strings.Map(foldRune, s) }

func foldRune(r rune) rune {
	if r < 0x80 {
		if 'A' <= r && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}
	least := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		least = min(least, f)
	}
	return unicode.ToLower(least)
}

// Text is the stored search text of fields: each folded, joined by sep.
func Text(fields ...string) string {
	clean := strings.NewReplacer(sep, " ", unmatchable, " ")
	folded := make([]string, len(fields))
	for i, f := range fields {
		folded[i] = Fold(clean.Replace(f))
	}
	return strings.Join(folded, sep)
}

// Term is a search= value as matched against Text: folded, and a newline
// in it made unmatchable (it could otherwise span two fields).
func Term(s string) string {
	return strings.ReplaceAll(Fold(s), sep, unmatchable)
}
