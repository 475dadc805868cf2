package keyring

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Fixed test keys: distinct, recognisable bytes so leaks are easy to spot.
var (
	key1 = bytes.Repeat([]byte{0x11}, 32)
	key2 = bytes.Repeat([]byte{0x22}, 32)
	key3 = bytes.Repeat([]byte{0x33}, 32)
)

func entry(v int, key []byte) string {
	return fmt.Sprintf("v%d:%s", v, base64.StdEncoding.EncodeToString(key))
}

// mustRing parses material or fails the test.
func mustRing(t testing.TB, material string) *Ring {
	t.Helper()
	r, err := ParseMaterial(material)
	if err != nil {
		t.Fatalf("ParseMaterial: %v", err)
	}
	return r
}

func mustSeal(t testing.TB, r *Ring, pt, aad []byte) Sealed {
	t.Helper()
	s, err := r.Seal(pt, aad)
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	return s
}

func TestParseMaterialGood(t *testing.T) {
	e1, e2, e3 := entry(1, key1), entry(2, key2), entry(3, key3)
	tests := []struct {
		name     string
		in       string
		versions []int
	}{
		{"single", e1, []int{1}},
		{"single with newline", e1 + "\n", []int{1}},
		{"lines", e1 + "\n" + e2 + "\n", []int{1, 2}},
		{"crlf", e1 + "\r\n" + e2 + "\r\n", []int{1, 2}},
		{"comma separated", e1 + "," + e2, []int{1, 2}},
		{"comma with spaces", "  " + e1 + " ,  " + e2 + " , ", []int{1, 2}},
		{"unordered", e3 + "\n" + e1, []int{1, 3}},
		{"blank lines and comments", "# master keys\n\n   \n" + e1 + "\n  # retired soon\n" + e2 + "\n\n", []int{1, 2}},
		{"comment with commas", "# a, b, c\n" + e1, []int{1}},
		{"mixed lines and commas", e1 + "," + e2 + "\n" + e3, []int{1, 2, 3}},
		{"spaces around colon", "v1 : " + base64.StdEncoding.EncodeToString(key1), []int{1}},
		{"tab indent", "\t" + e1 + "\t", []int{1}},
		{"large version", entry(2147483647, key1), []int{2147483647}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseMaterial(tt.in)
			if err != nil {
				t.Fatalf("ParseMaterial: %v", err)
			}
			if diff := cmp.Diff(tt.versions, r.Versions()); diff != "" {
				t.Errorf("Versions (-want +got):\n%s", diff)
			}
			if got, want := r.Primary(), tt.versions[len(tt.versions)-1]; got != want {
				t.Errorf("Primary = %d, want %d", got, want)
			}
			for _, v := range tt.versions {
				if !r.Has(v) {
					t.Errorf("Has(%d) = false", v)
				}
			}
			if r.Has(0) || r.Has(tt.versions[len(tt.versions)-1]+1) {
				t.Errorf("Has reports a version not in the material")
			}
		})
	}
}

func TestParseMaterialUsesTheRightKeys(t *testing.T) {
	// A blob sealed by a ring holding only key2 as v2 opens with a ring that parsed key2 as v2 among others.
	only2 := mustRing(t, entry(2, key2))
	s := mustSeal(t, only2, []byte("x"), nil)
	both := mustRing(t, entry(2, key2)+","+entry(1, key1))
	if _, err := both.Open(s, nil); err != nil {
		t.Fatalf("Open: %v", err)
	}
	swapped := mustRing(t, entry(2, key1)+","+entry(1, key2))
	if _, err := swapped.Open(s, nil); !errors.Is(err, ErrOpen) {
		t.Fatalf("Open with v2 bound to another key: err = %v, want ErrOpen", err)
	}
}

func TestParseMaterialBad(t *testing.T) {
	b64 := base64.StdEncoding.EncodeToString(key1)
	urlKey := bytes.Repeat([]byte{0xfb, 0xff, 0xbf}, 11)[:32] // encodes with '+' and '/'
	tests := []struct {
		name string
		in   string
		want string // substring of the error
	}{
		{"empty", "", "no master-key entries"},
		{"blank", " \n\n\t\n", "no master-key entries"},
		{"only comments", "# v1:" + b64 + "\n#x", "no master-key entries"},
		{"only commas", " , ,, ", "no master-key entries"},
		{"no colon", "v1" + b64, "want vN:<base64"},
		{"no v", "1:" + b64, "want vN:<base64"},
		{"capital V", "V1:" + b64, "want vN:<base64"},
		{"no number", "v:" + b64, "want vN:<base64"},
		{"key only", b64, "want vN:<base64"},
		{"non-digit version", "vx:" + b64, "version must be v followed by digits"},
		{"signed version", "v+1:" + b64, "version must be v followed by digits"},
		{"negative version", "v-1:" + b64, "version must be v followed by digits"},
		{"version zero", "v0:" + b64, "version must be 1 or more"},
		{"version zeros", "v000:" + b64, "version must be 1 or more"},
		{"leading zero", "v01:" + b64, "leading zero"},
		{"version too large", "v2147483648:" + b64, "version out of range"},
		{"version overflow", "v99999999999999999999999:" + b64, "version out of range"},
		{"duplicate", entry(1, key1) + "\n" + entry(1, key2), "entry 2: duplicate version v1"},
		{"duplicate comma", entry(2, key1) + "," + entry(1, key2) + "," + entry(2, key3), "entry 3: duplicate version v2"},
		{"empty key", "v1:", "key is empty"},
		{"bad base64 char", "v1:" + strings.Replace(b64, b64[:1], "*", 1), "not valid standard base64"},
		{"base64 missing padding", "v1:" + strings.TrimRight(b64, "="), "not valid standard base64"},
		{"raw url base64", "v1:" + base64.RawURLEncoding.EncodeToString(urlKey), "not valid standard base64"},
		{"url base64", "v1:" + base64.URLEncoding.EncodeToString(urlKey), "not valid standard base64"},
		{"non-canonical padding bits", "v1:" + b64[:len(b64)-2] + "R=", "not valid standard base64"},
		{"space inside key", "v1:" + b64[:10] + " " + b64[10:], "not valid standard base64"},
		{"cr inside key", "v1:" + b64[:10] + "\r" + b64[10:], "not valid standard base64"},
		{"short key", entry(1, key1[:31]), "key is 31 bytes, want 32"},
		{"long key", entry(1, append(key1, 0)), "key is 33 bytes, want 32"},
		{"16-byte key", entry(1, key1[:16]), "key is 16 bytes, want 32"},
		{"second entry bad", entry(1, key1) + "\nv2:nope", "entry 2 (v2)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseMaterial(tt.in)
			if err == nil {
				t.Fatalf("ParseMaterial = %v, want error containing %q", r, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %q, want it to contain %q", err, tt.want)
			}
			assertNoKeyMaterial(t, err.Error(), tt.in)
		})
	}
}

// assertNoKeyMaterial fails if out contains any key of the test set or any key-looking part of the
// material (the text after a colon, at least 8 characters).
func assertNoKeyMaterial(t *testing.T, out, material string) {
	t.Helper()
	for _, k := range [][]byte{key1, key2, key3} {
		enc := base64.StdEncoding.EncodeToString(k)
		if strings.Contains(out, enc[:16]) || strings.Contains(out, string(k)) ||
			strings.Contains(out, fmt.Sprintf("%x", k[:8])) || strings.Contains(out, fmt.Sprint(k[:8])) {
			t.Errorf("output leaks key material: %q", out)
		}
	}
	for line := range strings.FieldsFuncSeq(material, func(r rune) bool { return r == '\n' || r == ',' }) {
		if _, after, ok := strings.Cut(line, ":"); ok && len(strings.TrimSpace(after)) >= 8 {
			if strings.Contains(out, strings.TrimSpace(after)) {
				t.Errorf("output echoes the key: %q", out)
			}
		}
	}
}

func TestNewEntry(t *testing.T) {
	a, err := NewEntry(7)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(a, "v7:") || strings.ContainsAny(a, "\n ") {
		t.Errorf("NewEntry(7) = %q, want v7:<base64> without newline", a)
	}
	r := mustRing(t, a)
	if diff := cmp.Diff([]int{7}, r.Versions()); diff != "" {
		t.Errorf("Versions (-want +got):\n%s", diff)
	}
	b, err := NewEntry(7)
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Errorf("NewEntry returned the same key twice")
	}
	for _, n := range []int{0, -1, MaxVersion + 1} {
		if e, err := NewEntry(n); err == nil {
			t.Errorf("NewEntry(%d) = %q, want error", n, e)
		}
	}
	// Appending a new entry to existing material is how rotation adds a version.
	r2 := mustRing(t, a+"\n"+mustEntry(t, 8))
	if r2.Primary() != 8 {
		t.Errorf("Primary = %d, want 8", r2.Primary())
	}
}

func mustEntry(t *testing.T, n int) string {
	t.Helper()
	e, err := NewEntry(n)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestNewSecret(t *testing.T) {
	a, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != 32 || len(b) != 32 {
		t.Fatalf("len = %d, %d, want 32", len(a), len(b))
	}
	if bytes.Equal(a, b) {
		t.Errorf("NewSecret returned the same bytes twice")
	}
}

func TestSealOpenRoundTrip(t *testing.T) {
	r := mustRing(t, entry(1, key1)+"\n"+entry(2, key2))
	aad := AAD("card", "acct_1", "rec_1")
	tests := []struct {
		name string
		pt   []byte
		aad  []byte
	}{
		{"card json", []byte(`{"number":"4242424242424242","expire_month":12,"expire_year":2030}`), aad},
		{"empty plaintext", []byte{}, aad},
		{"nil aad", []byte("secret"), nil},
		{"large", bytes.Repeat([]byte("x"), 1<<16), aad},
		{"binary", []byte{0, 1, 2, 255}, aad},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustSeal(t, r, tt.pt, tt.aad)
			if s.KeyVersion != 2 {
				t.Errorf("KeyVersion = %d, want primary 2", s.KeyVersion)
			}
			if len(s.WrappedKey) != wrappedLen {
				t.Errorf("len(WrappedKey) = %d, want %d", len(s.WrappedKey), wrappedLen)
			}
			if len(tt.pt) >= 8 && bytes.Contains(s.Ciphertext, tt.pt) {
				t.Errorf("ciphertext contains the plaintext")
			}
			got, err := r.Open(s, tt.aad)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if !bytes.Equal(got, tt.pt) {
				t.Errorf("Open = %q, want %q", got, tt.pt)
			}
		})
	}
}

func TestSealIsRandomised(t *testing.T) {
	r := mustRing(t, entry(1, key1))
	pt, aad := []byte("4242424242424242"), AAD("card", "a", "r")
	s1, s2 := mustSeal(t, r, pt, aad), mustSeal(t, r, pt, aad)
	if bytes.Equal(s1.WrappedKey, s2.WrappedKey) || bytes.Equal(s1.Ciphertext, s2.Ciphertext) {
		t.Errorf("two seals of the same plaintext share a wrapped key or ciphertext")
	}
	// Data keys are per seal: mixing one seal's wrapped key with another's ciphertext fails.
	mixed := Sealed{KeyVersion: 1, WrappedKey: s1.WrappedKey, Ciphertext: s2.Ciphertext}
	if _, err := r.Open(mixed, aad); !errors.Is(err, ErrOpen) {
		t.Errorf("Open(mixed) err = %v, want ErrOpen", err)
	}
}

func TestOpenWrongAAD(t *testing.T) {
	r := mustRing(t, entry(1, key1))
	pt := []byte(`{"number":"4242424242424242"}`)
	s := mustSeal(t, r, pt, AAD("card", "acct_1", "rec_1"))
	tests := []struct {
		name string
		aad  []byte
	}{
		{"ciphertext copied to another row fails to open", AAD("card", "acct_1", "rec_2")},
		{"another account", AAD("card", "acct_2", "rec_1")},
		{"another purpose", AAD("fingerprint-key", "acct_1", "rec_1")},
		{"nil aad", nil},
		{"shifted boundary", AAD("card", "acct_1r", "ec_1")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.Open(s, tt.aad)
			if !errors.Is(err, ErrOpen) {
				t.Fatalf("Open = %q, %v; want ErrOpen", got, err)
			}
			if got != nil {
				t.Errorf("Open returned plaintext %q on failure", got)
			}
			if _, err := r.Rewrap(s, tt.aad); !errors.Is(err, ErrOpen) {
				t.Errorf("Rewrap err = %v, want ErrOpen", err)
			}
		})
	}
}

func TestOpenTampered(t *testing.T) {
	r := mustRing(t, entry(1, key1)+","+entry(2, key2))
	aad := AAD("card", "acct_1", "rec_1")
	s := mustSeal(t, r, []byte(`{"number":"4242424242424242"}`), aad)
	flip := func(b []byte, i int) []byte {
		c := bytes.Clone(b)
		c[i] ^= 0x01
		return c
	}
	tests := []struct {
		name string
		s    Sealed
		want error
	}{
		{"ciphertext first byte (nonce)", Sealed{2, s.WrappedKey, flip(s.Ciphertext, 0)}, ErrOpen},
		{"ciphertext body", Sealed{2, s.WrappedKey, flip(s.Ciphertext, 14)}, ErrOpen},
		{"ciphertext tag", Sealed{2, s.WrappedKey, flip(s.Ciphertext, len(s.Ciphertext)-1)}, ErrOpen},
		{"ciphertext truncated", Sealed{2, s.WrappedKey, s.Ciphertext[:len(s.Ciphertext)-1]}, ErrOpen},
		{"ciphertext too short", Sealed{2, s.WrappedKey, s.Ciphertext[:27]}, ErrOpen},
		{"ciphertext empty", Sealed{2, s.WrappedKey, nil}, ErrOpen},
		{"ciphertext extended", Sealed{2, s.WrappedKey, append(bytes.Clone(s.Ciphertext), 0)}, ErrOpen},
		{"wrapped key nonce", Sealed{2, flip(s.WrappedKey, 0), s.Ciphertext}, ErrOpen},
		{"wrapped key body", Sealed{2, flip(s.WrappedKey, 20), s.Ciphertext}, ErrOpen},
		{"wrapped key tag", Sealed{2, flip(s.WrappedKey, wrappedLen-1), s.Ciphertext}, ErrOpen},
		{"wrapped key truncated", Sealed{2, s.WrappedKey[:wrappedLen-1], s.Ciphertext}, ErrOpen},
		{"wrapped key empty", Sealed{2, nil, s.Ciphertext}, ErrOpen},
		{"version changed to another held version", Sealed{1, s.WrappedKey, s.Ciphertext}, ErrOpen},
		{"unknown version", Sealed{3, s.WrappedKey, s.Ciphertext}, ErrUnknownVersion},
		{"version zero", Sealed{0, s.WrappedKey, s.Ciphertext}, ErrUnknownVersion},
		{"negative version", Sealed{-2, s.WrappedKey, s.Ciphertext}, ErrUnknownVersion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.Open(tt.s, aad)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Open = %q, %v; want %v", got, err, tt.want)
			}
			if err.Error() != tt.want.Error() {
				t.Errorf("error %q carries detail beyond %q", err, tt.want)
			}
		})
	}
	// The original still opens: tampering worked on copies.
	if _, err := r.Open(s, aad); err != nil {
		t.Fatalf("Open(original): %v", err)
	}
}

func TestUnknownVersion(t *testing.T) {
	s := mustSeal(t, mustRing(t, entry(3, key3)), []byte("x"), nil)
	r := mustRing(t, entry(1, key1)+","+entry(2, key2))
	if _, err := r.Open(s, nil); !errors.Is(err, ErrUnknownVersion) {
		t.Errorf("Open err = %v, want ErrUnknownVersion", err)
	}
	if _, err := r.Rewrap(s, nil); !errors.Is(err, ErrUnknownVersion) {
		t.Errorf("Rewrap err = %v, want ErrUnknownVersion", err)
	}
}

func TestRotation(t *testing.T) {
	aad := AAD("card", "acct_1", "rec_1")
	pt := []byte(`{"number":"4242424242424242","expire_month":12,"expire_year":2030}`)

	ring1 := mustRing(t, entry(1, key1))
	orig := mustSeal(t, ring1, pt, aad)
	if orig.KeyVersion != 1 {
		t.Fatalf("KeyVersion = %d, want 1", orig.KeyVersion)
	}

	ring2 := mustRing(t, entry(1, key1)+"\n"+entry(2, key2))
	if got, err := ring2.Open(orig, aad); err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("ring2.Open(orig) = %q, %v", got, err)
	}
	rew, err := ring2.Rewrap(orig, aad)
	if err != nil {
		t.Fatalf("Rewrap: %v", err)
	}
	if rew.KeyVersion != 2 {
		t.Errorf("rewrapped KeyVersion = %d, want 2", rew.KeyVersion)
	}
	if !bytes.Equal(rew.Ciphertext, orig.Ciphertext) {
		t.Errorf("Rewrap changed the ciphertext")
	}
	if bytes.Equal(rew.WrappedKey, orig.WrappedKey) {
		t.Errorf("Rewrap kept the wrapped key")
	}
	if got, err := ring2.Open(rew, aad); err != nil || !bytes.Equal(got, pt) {
		t.Errorf("ring2.Open(rewrapped) = %q, %v", got, err)
	}

	only2 := mustRing(t, entry(2, key2))
	if got, err := only2.Open(rew, aad); err != nil || !bytes.Equal(got, pt) {
		t.Errorf("only2.Open(rewrapped) = %q, %v", got, err)
	}
	if _, err := only2.Open(orig, aad); !errors.Is(err, ErrUnknownVersion) {
		t.Errorf("only2.Open(orig) err = %v, want ErrUnknownVersion", err)
	}
	if _, err := ring1.Open(rew, aad); !errors.Is(err, ErrUnknownVersion) {
		t.Errorf("ring1.Open(rewrapped) err = %v, want ErrUnknownVersion", err)
	}

	// Rewrap is bound to the row too.
	if _, err := ring2.Rewrap(orig, AAD("card", "acct_1", "rec_2")); !errors.Is(err, ErrOpen) {
		t.Errorf("Rewrap with another row's aad err = %v, want ErrOpen", err)
	}
	// Rewrapping a value already under the primary returns it as is.
	again, err := ring2.Rewrap(rew, aad)
	if err != nil {
		t.Fatalf("Rewrap(rewrapped): %v", err)
	}
	if diff := cmp.Diff(rew, again); diff != "" {
		t.Errorf("Rewrap of a primary value changed it (-want +got):\n%s", diff)
	}
	// A fingerprint key sealed under v1 gives the same fingerprint after rotation.
	fk, _ := NewSecret()
	fs := mustSeal(t, ring1, fk, AAD("fingerprint-key", "acct_1", ""))
	fs2, err := ring2.Rewrap(fs, AAD("fingerprint-key", "acct_1", ""))
	if err != nil {
		t.Fatal(err)
	}
	fk2, err := only2.Open(fs2, AAD("fingerprint-key", "acct_1", ""))
	if err != nil {
		t.Fatal(err)
	}
	if Fingerprint(fk, "4242424242424242") != Fingerprint(fk2, "4242424242424242") {
		t.Errorf("fingerprint changed across rotation")
	}
}

func TestRetired(t *testing.T) {
	base := mustRing(t, entry(1, key1)+","+entry(2, key2))
	aad := AAD("card", "a", "r")
	old := mustSeal(t, mustRing(t, entry(1, key1)), []byte("x"), aad)
	cur := mustSeal(t, base, []byte("y"), aad)

	r := base.WithRetired(1, 9) // 9 is not held: ignored
	if !r.Retired(1) || r.Retired(2) || r.Retired(9) {
		t.Errorf("Retired: v1=%v v2=%v v9=%v, want true false false", r.Retired(1), r.Retired(2), r.Retired(9))
	}
	if base.Retired(1) {
		t.Errorf("WithRetired changed the original ring")
	}
	if diff := cmp.Diff([]int{1, 2}, r.Versions()); diff != "" {
		t.Errorf("Versions (-want +got):\n%s", diff)
	}
	if got := r.String(); got != "keyring(v1,v2 primary=v2 retired=v1)" {
		t.Errorf("String = %q", got)
	}
	// A retired version still opens; the primary still wraps.
	if _, err := r.Open(old, aad); err != nil {
		t.Errorf("Open under retired v1: %v", err)
	}
	if _, err := r.Seal([]byte("z"), aad); err != nil {
		t.Errorf("Seal: %v", err)
	}
	if s, err := r.Rewrap(old, aad); err != nil || s.KeyVersion != 2 {
		t.Errorf("Rewrap = v%d, %v; want v2", s.KeyVersion, err)
	}

	// A retired primary refuses to wrap but still opens.
	rp := base.WithRetired(2)
	if _, err := rp.Seal([]byte("z"), aad); !errors.Is(err, ErrRetired) {
		t.Errorf("Seal with retired primary err = %v, want ErrRetired", err)
	}
	if _, err := rp.Rewrap(old, aad); !errors.Is(err, ErrRetired) {
		t.Errorf("Rewrap with retired primary err = %v, want ErrRetired", err)
	}
	if _, err := rp.Open(cur, aad); err != nil {
		t.Errorf("Open under retired primary: %v", err)
	}
}

func TestAAD(t *testing.T) {
	tests := []struct {
		name string
		a, b [3]string
	}{
		{"purpose/account boundary", [3]string{"ab", "c", "r"}, [3]string{"a", "bc", "r"}},
		{"account/record boundary", [3]string{"p", "ab", "c"}, [3]string{"p", "a", "bc"}},
		{"empty moves", [3]string{"", "ab", ""}, [3]string{"ab", "", ""}},
		{"separator-like bytes", [3]string{"p\x00", "a", "r"}, [3]string{"p", "\x00a", "r"}},
		{"record differs", [3]string{"card", "acct", "rec1"}, [3]string{"card", "acct", "rec2"}},
		{"account differs", [3]string{"card", "acct1", "rec"}, [3]string{"card", "acct2", "rec"}},
		{"order matters", [3]string{"x", "y", "z"}, [3]string{"z", "y", "x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := AAD(tt.a[0], tt.a[1], tt.a[2]), AAD(tt.b[0], tt.b[1], tt.b[2])
			if bytes.Equal(a, b) {
				t.Errorf("AAD%q == AAD%q", tt.a, tt.b)
			}
		})
	}
	if !bytes.Equal(AAD("card", "acct", "rec"), AAD("card", "acct", "rec")) {
		t.Errorf("AAD is not deterministic")
	}
	want := []byte("\x00\x00\x00\x01p\x00\x00\x00\x02ac\x00\x00\x00\x00")
	if got := AAD("p", "ac", ""); !bytes.Equal(got, want) {
		t.Errorf("AAD(p, ac, \"\") = %q, want %q", got, want)
	}
}

func TestFingerprint(t *testing.T) {
	const pan = "4242424242424242"
	a := Fingerprint(key1, pan)
	if len(a) != 32 || strings.ToLower(a) != a || strings.Trim(a, "0123456789abcdef") != "" {
		t.Fatalf("Fingerprint = %q, want 32 lowercase hex", a)
	}
	// Known answer: HMAC-SHA256(0x11*32, "4242424242424242")[:16].
	if got, want := a, knownFingerprint(t); got != want {
		t.Errorf("Fingerprint = %s, want %s", got, want)
	}
	if Fingerprint(key1, pan) != a {
		t.Errorf("Fingerprint is not stable")
	}
	tests := []struct {
		name   string
		key    []byte
		digits string
	}{
		{"another key (another account)", key2, pan},
		{"another number", key1, "4000056655665556"},
		{"one digit differs", key1, "4242424242424241"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Fingerprint(tt.key, tt.digits); got == a {
				t.Errorf("Fingerprint = %s, same as the reference", got)
			}
		})
	}
}

// knownFingerprint is HMAC-SHA256 under the key 0x11 repeated 32 times over "4242424242424242",
// truncated to 16 bytes, computed outside Go with
// `printf 4242424242424242 | openssl dgst -sha256 -mac HMAC -macopt hexkey:1111…11`.
func knownFingerprint(t *testing.T) string {
	t.Helper()
	return "7a8df82beede3f15dbd1e591c989d8b8"
}

func TestMarshalRoundTrip(t *testing.T) {
	r := mustRing(t, entry(1, key1)+","+entry(300, key2))
	aad := AAD("card", "acct", "rec")
	tests := []struct {
		name string
		pt   []byte
	}{
		{"empty", nil},
		{"card", []byte(`{"number":"4242424242424242"}`)},
		{"large", bytes.Repeat([]byte{7}, 100000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustSeal(t, r, tt.pt, aad)
			b := s.Marshal()
			if b[0] != formatV1 {
				t.Errorf("format byte = %d", b[0])
			}
			got, err := Unmarshal(b)
			if err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			if diff := cmp.Diff(s, got); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
			if !bytes.Equal(got.Marshal(), b) {
				t.Errorf("Marshal(Unmarshal(b)) != b")
			}
			// The decoded value does not alias the input.
			b[len(b)-1] ^= 1
			b[20] ^= 1
			pt, err := r.Open(got, aad)
			if err != nil {
				t.Fatalf("Open(decoded): %v", err)
			}
			if !bytes.Equal(pt, tt.pt) && len(pt)+len(tt.pt) > 0 {
				t.Errorf("Open(decoded) = %q", pt)
			}
		})
	}
}

func TestUnmarshalGarbage(t *testing.T) {
	r := mustRing(t, entry(1, key1))
	good := mustSeal(t, r, []byte("card"), nil).Marshal()
	with := func(i int, v byte) []byte {
		c := bytes.Clone(good)
		c[i] = v
		return c
	}
	tests := []struct {
		name string
		in   []byte
	}{
		{"nil", nil},
		{"empty", []byte{}},
		{"format 0", with(0, 0)},
		{"format 2", with(0, 2)},
		{"ascii", []byte("hello, world, this is not a sealed value at all")},
		{"json", []byte(`{"KeyVersion":1}`)},
		{"format only", []byte{1}},
		{"header truncated", good[:8]},
		{"version zero", with(4, 0)},
		{"version too large", with(1, 0x80)},
		{"wrapped length wrong", with(8, 59)},
		{"wrapped length huge", with(5, 0xff)},
		{"wrapped key truncated", good[:9+30]},
		{"ciphertext length missing", good[:9+wrappedLen]},
		{"ciphertext length partial", good[:9+wrappedLen+2]},
		{"ciphertext truncated", good[:len(good)-1]},
		{"trailing byte", append(bytes.Clone(good), 0)},
		{"ciphertext length huge", with(9+wrappedLen, 0xff)},
		{"ciphertext too short", func() []byte {
			s := Sealed{KeyVersion: 1, WrappedKey: make([]byte, wrappedLen), Ciphertext: make([]byte, 27)}
			return s.Marshal()
		}()},
		{"all 0xff", bytes.Repeat([]byte{0xff}, 128)},
		{"all zero", make([]byte, 128)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Unmarshal(tt.in)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Unmarshal = %+v, %v; want ErrMalformed", s, err)
			}
		})
	}
}

func TestRingDoesNotPrintKeys(t *testing.T) {
	material := entry(1, key1) + "\n" + entry(2, key2)
	r := mustRing(t, material)
	const want = "keyring(v1,v2 primary=v2)"
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T"} {
		t.Run(verb, func(t *testing.T) {
			for _, arg := range []any{r, *r, []*Ring{r}, struct{ R *Ring }{r}, struct{ R Ring }{*r}, map[string]*Ring{"k": r}} {
				out := fmt.Sprintf(verb, arg)
				assertNoKeyMaterial(t, out, material)
				if verb == "%v" || verb == "%s" {
					if _, ok := arg.(*Ring); ok && out != want {
						t.Errorf("Sprintf(%s) = %q, want %q", verb, out, want)
					}
				}
			}
		})
	}
	if got := r.String(); got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	if got := r.GoString(); got != want {
		t.Errorf("GoString = %q, want %q", got, want)
	}
	for _, newHandler := range []func(*bytes.Buffer) slog.Handler{
		func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
		func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
	} {
		var buf bytes.Buffer
		log := slog.New(newHandler(&buf))
		log.Info("keys loaded", "ring", r, "deref", *r, slog.Any("any", r), slog.Group("g", "ring", r))
		out := buf.String()
		assertNoKeyMaterial(t, out, material)
		if !strings.Contains(out, want) {
			t.Errorf("log output lacks %q: %s", want, out)
		}
	}
	var nilRing *Ring
	if got := fmt.Sprint(nilRing); got != "keyring()" {
		t.Errorf("Sprint(nil) = %q", got)
	}
}

func TestConcurrentUse(t *testing.T) {
	r := mustRing(t, entry(1, key1)+","+entry(2, key2))
	old := mustSeal(t, mustRing(t, entry(1, key1)), []byte("old"), AAD("p", "a", "old"))
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 50 {
				aad := AAD("p", "a", fmt.Sprint(i, j))
				pt := []byte(fmt.Sprint("card", i, j))
				s, err := r.Seal(pt, aad)
				if err != nil {
					t.Error(err)
					return
				}
				got, err := r.Open(s, aad)
				if err != nil || !bytes.Equal(got, pt) {
					t.Errorf("Open = %q, %v", got, err)
					return
				}
				if _, err := r.Rewrap(old, AAD("p", "a", "old")); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

var cardJSON = []byte(`{"number":"4242424242424242","expire_month":12,"expire_year":2030}`)

func BenchmarkSeal(b *testing.B) {
	r := mustRing(b, entry(1, key1))
	aad := AAD("card", "0123456789abcdef01234567", "0123456789abcdef01234567")
	b.SetBytes(int64(len(cardJSON)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Seal(cardJSON, aad); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	r := mustRing(b, entry(1, key1))
	aad := AAD("card", "0123456789abcdef01234567", "0123456789abcdef01234567")
	s := mustSeal(b, r, cardJSON, aad)
	b.SetBytes(int64(len(cardJSON)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Open(s, aad); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFingerprint(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = Fingerprint(key1, "4242424242424242")
	}
}
