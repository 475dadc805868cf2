package search

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestTermMatchesOneFieldOnly(t *testing.T) {
	text := Text("Ada", "Lovelace", "ada@example.com", "", "REF-1")
	for _, c := range []struct {
		term string
		want bool
	}{
		{"ada", true}, {"LOVELACE", true}, {"ref-1", true}, {"@EXAMPLE", true},
		{"ada\nlovelace", false}, {"a\nl", false}, {"\n", false}, {"lace\nada", false},
	} {
		if got := strings.Contains(text, Term(c.term)); got != c.want {
			t.Errorf("%q in %q: %v, want %v", c.term, text, got, c.want)
		}
	}
	// A field's own newline is a space: the field still matches its words.
	if t2 := Text("two\nlines", "x"); !strings.Contains(t2, Term("two lines")) || strings.Contains(t2, Term("lines\nx")) {
		t.Errorf("newline inside a field: %q", t2)
	}
}

func TestFoldIsSimpleFolding(t *testing.T) {
	for _, c := range []struct{ a, b string }{
		{"Jeſſica", "jessica"}, {"ΟΔΥΣΣΕΥΣ", "οδυσσευς"}, {"\u212Aelvin", "kelvin"}, {"STRASSE", "strasse"},
		{"ẞ", "ß"}, {"ϑ", "θ"}, {"ÄDA", "äda"}, {"ǅ", "ǆ"},
	} {
		if Fold(c.a) != Fold(c.b) {
			t.Errorf("Fold(%q) = %q, Fold(%q) = %q", c.a, Fold(c.a), c.b, Fold(c.b))
		}
	}
	if Fold("ß") == Fold("ss") {
		t.Error("simple folding does not expand ß")
	}
}

// Two runes fold alike exactly when they are in one simple-folding orbit.
func TestFoldAgreesWithSimpleFold(t *testing.T) {
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if !utf8.ValidRune(r) {
			continue
		}
		f := foldRune(r)
		for o := unicode.SimpleFold(r); o != r; o = unicode.SimpleFold(o) {
			if foldRune(o) != f {
				t.Fatalf("%U folds to %U but %U of its orbit to %U", r, f, o, foldRune(o))
			}
		}
		if foldRune(f) != f {
			t.Fatalf("%U folds to %U, which folds to %U", r, f, foldRune(f))
		}
	}
}

func FuzzTerm(f *testing.F) {
	for _, s := range []string{"ada", "a\nb", "ΣΑΣ", "\uffff"} {
		f.Add(s, "x")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		text := Text(a, b)
		if !strings.ContainsAny(a, "\n\uffff") && !strings.Contains(text, Term(a)) {
			t.Fatalf("field %q not found by its own term", a)
		}
		// A term holding a newline never matches: it would span fields.
		if term := Term(a + "\n" + b); strings.Contains(text, term) {
			t.Fatalf("%q matched across the fields of %q", term, text)
		}
	})
}
