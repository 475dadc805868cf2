// Package keyring holds the master keys and implements envelope encryption for the card vault.
//
// A Ring holds master-key versions; the highest is primary and wraps new data keys, every version can
// open. Each Seal draws a fresh random 256-bit data key, encrypts the plaintext with it under
// AES-256-GCM and wraps the data key with the primary master key, also under AES-256-GCM. Both operations
// bind the caller's additional authenticated data (see AAD), so a blob copied to another row fails to
// open. Rewrap moves a blob to the primary version without touching its ciphertext.
//
// Nothing in this package prints, logs or returns key material in an error: Ring implements
// fmt.Formatter, fmt.Stringer, fmt.GoStringer and slog.LogValuer and shows only its versions.
//
// A Ring is immutable once built and safe for concurrent use.
package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
)

// KeySize is the size in bytes of a master key, a data key and a secret from NewSecret.
const KeySize = 32

// MaxVersion is the highest master-key version accepted (versions are stored as 31-bit numbers).
const MaxVersion = math.MaxInt32

// Errors returned by Seal, Open, Rewrap and Unmarshal. They carry no detail about keys or data.
var (
	// ErrUnknownVersion: the blob names a master-key version the ring does not hold.
	ErrUnknownVersion = errors.New("keyring: unknown master-key version")
	// ErrOpen: authentication failed (wrong key, wrong AAD or tampered data).
	ErrOpen = errors.New("keyring: cannot open sealed value")
	// ErrRetired: the primary version is retired and refuses to wrap.
	ErrRetired = errors.New("keyring: primary master-key version is retired")
	// ErrMalformed: Unmarshal got bytes that are not an encoded Sealed.
	ErrMalformed = errors.New("keyring: malformed sealed value")
)

// gcm overhead with a random nonce: 12-byte nonce + 16-byte tag.
const overhead = 12 + 16

// wrappedLen is the length of a wrapped data key: nonce + 32-byte key + tag.
const wrappedLen = overhead + KeySize

// masterKey is one master-key version, ready to use. Its Format method keeps fmt from ever printing
// the expanded key, even when someone prints a Ring by value with %d or %x.
type masterKey struct {
	aead    cipher.AEAD
	retired bool
}

func (masterKey) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte("[redacted]")) }

// Ring holds master-key versions (N >= 1, 32 bytes each). The highest version is primary (used for new
// wraps); every version can open. Retired versions (see WithRetired) are refused for wrapping but may
// still open.
type Ring struct {
	versions []int // ascending, unique, >= 1
	keys     map[int]masterKey
}

// ParseMaterial parses key material: entries "vN:<std base64 of exactly 32 bytes>", one per line or
// comma-separated; blank lines and surrounding spaces are ignored, as are lines whose first non-space
// character is '#'. Errors name the entry by position (and version, when it parsed) and never echo the
// key.
func ParseMaterial(s string) (*Ring, error) {
	r := &Ring{keys: map[int]masterKey{}}
	n := 0
	for line := range strings.Lines(s) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		for field := range strings.SplitSeq(line, ",") {
			field = strings.TrimSpace(field)
			if field == "" {
				continue
			}
			n++
			v, key, err := parseEntry(n, field)
			if err != nil {
				return nil, err
			}
			if _, dup := r.keys[v]; dup {
				return nil, fmt.Errorf("keyring: entry %d: duplicate version v%d", n, v)
			}
			mk, err := newMasterKey(key)
			if err != nil {
				return nil, fmt.Errorf("keyring: entry %d (v%d): cannot use key", n, v)
			}
			r.keys[v] = mk
			r.versions = append(r.versions, v)
		}
	}
	if n == 0 {
		return nil, errors.New("keyring: no master-key entries")
	}
	slices.Sort(r.versions)
	return r, nil
}

// parseEntry parses "vN:<base64>". n is the entry's 1-based position, used in errors.
func parseEntry(n int, field string) (int, []byte, error) {
	label, b64, ok := strings.Cut(field, ":")
	label, b64 = strings.TrimSpace(label), strings.TrimSpace(b64)
	if !ok || len(label) < 2 || label[0] != 'v' {
		return 0, nil, fmt.Errorf("keyring: entry %d: want vN:<base64 of 32 bytes>", n)
	}
	digits := label[1:]
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, nil, fmt.Errorf("keyring: entry %d: version must be v followed by digits", n)
		}
	}
	v, err := strconv.Atoi(digits)
	if err != nil || v > MaxVersion {
		return 0, nil, fmt.Errorf("keyring: entry %d: version out of range (1..%d)", n, MaxVersion)
	}
	if v < 1 {
		return 0, nil, fmt.Errorf("keyring: entry %d: version must be 1 or more", n)
	}
	if digits[0] == '0' {
		return 0, nil, fmt.Errorf("keyring: entry %d (v%d): version has a leading zero", n, v)
	}
	if b64 == "" {
		return 0, nil, fmt.Errorf("keyring: entry %d (v%d): key is empty", n, v)
	}
	key, err := base64.StdEncoding.Strict().DecodeString(b64)
	if err != nil || strings.ContainsAny(b64, "\r\n") {
		// The decoder's error holds only an offset, but say nothing about the input anyway.
		return 0, nil, fmt.Errorf("keyring: entry %d (v%d): key is not valid standard base64", n, v)
	}
	if len(key) != KeySize {
		return 0, nil, fmt.Errorf("keyring: entry %d (v%d): key is %d bytes, want %d", n, v, len(key), KeySize)
	}
	return v, key, nil
}

func newMasterKey(key []byte) (masterKey, error) {
	aead, err := newAEAD(key)
	if err != nil {
		return masterKey{}, err
	}
	return masterKey{aead: aead}, nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCMWithRandomNonce(block)
}

// NewEntry returns one fresh random entry line "vN:<base64>" (no newline) for version n.
func NewEntry(n int) (string, error) {
	if n < 1 || n > MaxVersion {
		return "", fmt.Errorf("keyring: version %d out of range (1..%d)", n, MaxVersion)
	}
	key, err := NewSecret()
	if err != nil {
		return "", err
	}
	return "v" + strconv.Itoa(n) + ":" + base64.StdEncoding.EncodeToString(key), nil
}

// NewSecret returns 32 random bytes (for per-account fingerprint keys and the query-token signing key;
// the caller seals them with Seal).
func NewSecret() ([]byte, error) {
	b := make([]byte, KeySize)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("keyring: random: %w", err)
	}
	return b, nil
}

// WithRetired returns a copy of r in which the given versions are marked retired: they still open but
// refuse to wrap, so Seal and Rewrap fail with ErrRetired while the primary is retired. Versions the
// ring does not hold are ignored (a retired version's line is removed from the material afterwards).
func (r *Ring) WithRetired(versions ...int) *Ring {
	c := &Ring{versions: slices.Clone(r.versions), keys: make(map[int]masterKey, len(r.keys))}
	for v, k := range r.keys {
		c.keys[v] = k
	}
	for _, v := range versions {
		if k, ok := c.keys[v]; ok {
			k.retired = true
			c.keys[v] = k
		}
	}
	return c
}

// Retired reports whether version v is held and marked retired.
func (r *Ring) Retired(v int) bool { return r.keys[v].retired }

// Primary returns the highest version.
func (r *Ring) Primary() int { return r.versions[len(r.versions)-1] }

// Versions returns the versions held, ascending.
func (r *Ring) Versions() []int { return slices.Clone(r.versions) }

// Has reports whether the ring holds version v.
func (r *Ring) Has(v int) bool {
	_, ok := r.keys[v]
	return ok
}

// String returns the versions only, e.g. "keyring(v1,v2 primary=v2)" or, with a retired version,
// "keyring(v1,v2 primary=v2 retired=v1)".
func (r *Ring) String() string {
	if r == nil || len(r.versions) == 0 {
		return "keyring()"
	}
	var b strings.Builder
	b.WriteString("keyring(")
	var retired []string
	for i, v := range r.versions {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("v" + strconv.Itoa(v))
		if r.keys[v].retired {
			retired = append(retired, "v"+strconv.Itoa(v))
		}
	}
	b.WriteString(" primary=v" + strconv.Itoa(r.Primary()))
	if len(retired) > 0 {
		b.WriteString(" retired=" + strings.Join(retired, ","))
	}
	b.WriteByte(')')
	return b.String()
}

// GoString is String, so %#v shows no keys.
func (r *Ring) GoString() string { return r.String() }

// Format prints String for every verb, so no verb (%x, %d, %+v …) can reach the keys.
func (r *Ring) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(r.String())) }

// LogValue logs the versions only.
func (r *Ring) LogValue() slog.Value { return slog.StringValue(r.String()) }

// Sealed is one envelope-encrypted value: a fresh random 256-bit data key per Seal encrypts the
// plaintext with AES-256-GCM; the data key is itself AES-256-GCM-wrapped by master version KeyVersion.
// Both GCM operations bind aad so a blob copied to another row fails to open.
//
// WrappedKey and Ciphertext each hold a random 12-byte nonce, the GCM output and its 16-byte tag.
type Sealed struct {
	KeyVersion int
	WrappedKey []byte
	Ciphertext []byte
}

// Domain-separation prefixes for the two GCM operations' additional data.
const (
	wrapAADPrefix = "switchyard/keyring/wrap/v1\x00"
	dataAADPrefix = "switchyard/keyring/data/v1\x00"
)

// wrapAAD binds the master-key version and the caller's aad to a wrapped data key.
func wrapAAD(version int, aad []byte) []byte {
	b := make([]byte, 0, len(wrapAADPrefix)+4+len(aad))
	b = append(b, wrapAADPrefix...)
	b = binary.BigEndian.AppendUint32(b, uint32(version))
	return append(b, aad...)
}

func dataAAD(aad []byte) []byte {
	b := make([]byte, 0, len(dataAADPrefix)+len(aad))
	b = append(b, dataAADPrefix...)
	return append(b, aad...)
}

// wrapper returns the primary version and its key, refusing a retired primary.
func (r *Ring) wrapper() (int, masterKey, error) {
	v := r.Primary()
	k := r.keys[v]
	if k.retired {
		return 0, masterKey{}, ErrRetired
	}
	return v, k, nil
}

// Seal encrypts plaintext under a fresh data key wrapped by the primary version, binding aad.
func (r *Ring) Seal(plaintext, aad []byte) (Sealed, error) {
	v, mk, err := r.wrapper()
	if err != nil {
		return Sealed{}, err
	}
	dk, err := NewSecret()
	if err != nil {
		return Sealed{}, err
	}
	defer clear(dk)
	data, err := newAEAD(dk)
	if err != nil {
		return Sealed{}, fmt.Errorf("keyring: data key: %w", err)
	}
	return Sealed{
		KeyVersion: v,
		WrappedKey: mk.aead.Seal(nil, nil, dk, wrapAAD(v, aad)),
		Ciphertext: data.Seal(nil, nil, plaintext, dataAAD(aad)),
	}, nil
}

// unwrap returns s's data key, authenticated against aad.
func (r *Ring) unwrap(s Sealed, aad []byte) ([]byte, error) {
	mk, ok := r.keys[s.KeyVersion]
	if !ok {
		return nil, ErrUnknownVersion
	}
	if len(s.WrappedKey) != wrappedLen {
		return nil, ErrOpen
	}
	dk, err := mk.aead.Open(nil, nil, s.WrappedKey, wrapAAD(s.KeyVersion, aad))
	if err != nil || len(dk) != KeySize {
		return nil, ErrOpen
	}
	return dk, nil
}

// Open decrypts s, authenticating it against aad. It fails with ErrUnknownVersion when the ring lacks
// s.KeyVersion and with ErrOpen on any other failure (no detail is given).
func (r *Ring) Open(s Sealed, aad []byte) ([]byte, error) {
	dk, err := r.unwrap(s, aad)
	if err != nil {
		return nil, err
	}
	defer clear(dk)
	if len(s.Ciphertext) < overhead {
		return nil, ErrOpen
	}
	data, err := newAEAD(dk)
	if err != nil {
		return nil, ErrOpen
	}
	pt, err := data.Open(nil, nil, s.Ciphertext, dataAAD(aad))
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}

// Rewrap re-wraps s's data key under the primary version; the ciphertext is unchanged (cheap rotation).
// The wrapped key is authenticated against aad first (the ciphertext is not decrypted). A value already
// under the primary version is returned as is.
func (r *Ring) Rewrap(s Sealed, aad []byte) (Sealed, error) {
	v, mk, err := r.wrapper()
	if err != nil {
		return Sealed{}, err
	}
	dk, err := r.unwrap(s, aad)
	if err != nil {
		return Sealed{}, err
	}
	defer clear(dk)
	if s.KeyVersion == v {
		return s, nil
	}
	return Sealed{
		KeyVersion: v,
		WrappedKey: mk.aead.Seal(nil, nil, dk, wrapAAD(v, aad)),
		Ciphertext: s.Ciphertext,
	}, nil
}

// Encoding of Sealed, format 1 (big-endian):
//
//	[0]      format byte, 1
//	[1:5]    KeyVersion, uint32, 1..MaxVersion
//	[5:9]    len(WrappedKey), uint32, must be 60
//	         WrappedKey
//	[..+4]   len(Ciphertext), uint32, at least 28
//	         Ciphertext
//
// with nothing after. Every valid encoding is canonical: Unmarshal(b).Marshal() == b.
const formatV1 = 1

// Marshal encodes s for storing in one BLOB column.
func (s Sealed) Marshal() []byte {
	b := make([]byte, 0, 1+4+4+len(s.WrappedKey)+4+len(s.Ciphertext))
	b = append(b, formatV1)
	b = binary.BigEndian.AppendUint32(b, uint32(s.KeyVersion))
	b = binary.BigEndian.AppendUint32(b, uint32(len(s.WrappedKey)))
	b = append(b, s.WrappedKey...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(s.Ciphertext)))
	return append(b, s.Ciphertext...)
}

// Unmarshal decodes what Marshal produced. Truncated, oversized or garbage input fails with an error
// wrapping ErrMalformed; the returned slices do not alias b.
func Unmarshal(b []byte) (Sealed, error) {
	bad := func(what string) (Sealed, error) { return Sealed{}, fmt.Errorf("%w: %s", ErrMalformed, what) }
	if len(b) == 0 {
		return bad("empty")
	}
	if b[0] != formatV1 {
		return bad("unknown format " + strconv.Itoa(int(b[0])))
	}
	b = b[1:]
	if len(b) < 8 {
		return bad("truncated header")
	}
	v := binary.BigEndian.Uint32(b)
	if v < 1 || v > MaxVersion {
		return bad("key version out of range")
	}
	wl := binary.BigEndian.Uint32(b[4:])
	b = b[8:]
	if wl != wrappedLen {
		return bad("wrapped key length")
	}
	if uint64(len(b)) < uint64(wl)+4 {
		return bad("truncated wrapped key")
	}
	wrapped := slices.Clone(b[:wl])
	b = b[wl:]
	cl := binary.BigEndian.Uint32(b)
	b = b[4:]
	if cl < overhead {
		return bad("ciphertext too short")
	}
	if uint64(len(b)) != uint64(cl) {
		return bad("ciphertext length mismatch")
	}
	return Sealed{KeyVersion: int(v), WrappedKey: wrapped, Ciphertext: slices.Clone(b)}, nil
}

// AAD builds additional authenticated data binding a purpose, an account and a record id
// unambiguously: each part is prefixed by its length, so ("ab","c") and ("a","bc") differ.
func AAD(purpose, account, record string) []byte {
	b := make([]byte, 0, 12+len(purpose)+len(account)+len(record))
	for _, p := range [...]string{purpose, account, record} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(p)))
		b = append(b, p...)
	}
	return b
}

// Fingerprint returns the first 16 bytes of HMAC-SHA256(key, digits) as 32 lowercase hex characters.
func Fingerprint(key []byte, digits string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(digits))
	var sum [sha256.Size]byte
	return hex.EncodeToString(m.Sum(sum[:0])[:16])
}
