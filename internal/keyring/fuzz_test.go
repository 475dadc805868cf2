package keyring

import (
	"bytes"
	"errors"
	"slices"
	"testing"
)

// FuzzParseMaterial: never panics; a parsed ring has ascending unique versions >= 1 with the highest as
// primary, and can seal and open.
func FuzzParseMaterial(f *testing.F) {
	f.Add(entry(1, key1))
	f.Add(entry(1, key1) + "\n" + entry(2, key2) + "\n")
	f.Add("# keys\n" + entry(3, key3) + " , " + entry(1, key1))
	f.Add("v0:" + entry(1, key1)[3:])
	f.Add("v1:AAAA")
	f.Add(",,\n#\n")
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseMaterial(s)
		if err != nil {
			if r != nil {
				t.Fatalf("ParseMaterial returned a ring and an error")
			}
			return
		}
		vs := r.Versions()
		if len(vs) == 0 || vs[0] < 1 || !slices.IsSorted(vs) || len(slices.Compact(slices.Clone(vs))) != len(vs) {
			t.Fatalf("Versions = %v", vs)
		}
		if r.Primary() != vs[len(vs)-1] {
			t.Fatalf("Primary = %d, versions %v", r.Primary(), vs)
		}
		aad := AAD("p", "a", "r")
		sealed, err := r.Seal([]byte("card"), aad)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := r.Open(sealed, aad); err != nil || !bytes.Equal(got, []byte("card")) {
			t.Fatalf("Open = %q, %v", got, err)
		}
	})
}

// FuzzUnmarshal: never panics; anything accepted re-encodes to the same bytes, and opening it with an
// unrelated ring fails cleanly.
func FuzzUnmarshal(f *testing.F) {
	r, err := ParseMaterial(entry(1, key1))
	if err != nil {
		f.Fatal(err)
	}
	s, err := r.Seal([]byte(`{"number":"4242424242424242"}`), AAD("card", "a", "r"))
	if err != nil {
		f.Fatal(err)
	}
	good := s.Marshal()
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add([]byte{})
	f.Add([]byte{1, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Unmarshal(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if !bytes.Equal(s.Marshal(), b) {
			t.Fatalf("Marshal(Unmarshal(b)) != b")
		}
		if _, err := r.Open(s, AAD("card", "a", "other")); err == nil {
			t.Fatalf("opened with the wrong aad")
		}
	})
}
