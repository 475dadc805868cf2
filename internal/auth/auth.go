// Package auth holds accounts and their API keys: generation, hashing and
// constant-time lookup. Keys are stored only as SHA-256 hashes; the clear
// key is shown once, when it is made.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"switchyard/internal/errs"
	"switchyard/internal/paydock"
)

// Account is a merchant account; every object belongs to one.
type Account struct {
	ID        string
	Name      string
	CreatedAt time.Time
}

// Keys are an account's clear keys, known only at creation.
type Keys struct {
	Secret string
	Public string
}

// KeyKind tells which credential a request presented.
type KeyKind int

const (
	SecretKey KeyKind = iota + 1
	PublicKey
)

// Store keeps accounts and key hashes.
type Store interface {
	CreateAccount(ctx context.Context, a Account, secretHash, publicHash string) error
	// AccountByKeyHash returns the account whose key of that kind hashes to
	// hash, and the stored hash; errs NotFound when none.
	AccountByKeyHash(ctx context.Context, kind KeyKind, hash string) (Account, string, error)
	CountAccounts(ctx context.Context) (int, error)
}

// Service creates accounts and authenticates keys.
type Service struct {
	store Store
	now   func() time.Time
	cache sync.Map // key hash → Account; keys never change, so entries never go stale
}

// NewService returns a Service over store.
func NewService(store Store, now func() time.Time) *Service {
	return &Service{store: store, now: now}
}

// NewKeys makes a fresh secret and public key: prefix + 40 lowercase hex.
func NewKeys() Keys {
	return Keys{Secret: newKey("sk_"), Public: newKey("pk_")}
}

func newKey(prefix string) string {
	var b [20]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return prefix + hex.EncodeToString(b[:])
}

// Hash is the stored form of a key: hex SHA-256.
func Hash(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// WellFormed reports whether key is prefix + 40 lowercase hex.
func WellFormed(key, prefix string) bool {
	if len(key) != len(prefix)+40 || !strings.HasPrefix(key, prefix) {
		return false
	}
	for _, c := range key[len(prefix):] {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// MaxNameLen bounds an account name.
const MaxNameLen = 100

// Create makes an account with fresh keys.
func (s *Service) Create(ctx context.Context, name string) (Account, Keys, error) {
	name = strings.TrimSpace(name)
	if name == "" || utf8.RuneCountInString(name) > MaxNameLen {
		return Account{}, Keys{}, errs.Invalidf("name", "name must be 1 to %d characters", MaxNameLen)
	}
	a := Account{ID: paydock.NewID(), Name: name, CreatedAt: s.now().UTC().Truncate(time.Millisecond)}
	k := NewKeys()
	if err := s.store.CreateAccount(ctx, a, Hash(k.Secret), Hash(k.Public)); err != nil {
		return Account{}, Keys{}, errs.Wrap("auth.Create", err)
	}
	return a, k, nil
}

// Count reports how many accounts exist.
func (s *Service) Count(ctx context.Context) (int, error) { return s.store.CountAccounts(ctx) }

// Forbidden is the one error for every authentication failure (spec §2.3).
func Forbidden() *errs.Error {
	return &errs.Error{Kind: errs.Forbidden}
}

// Authenticate returns the account owning key of kind, or Forbidden.
func (s *Service) Authenticate(ctx context.Context, kind KeyKind, key string) (Account, error) {
	prefix := "sk_"
	if kind == PublicKey {
		prefix = "pk_"
	}
	if !WellFormed(key, prefix) {
		return Account{}, Forbidden()
	}
	h := Hash(key)
	cacheKey := prefix + h
	if a, ok := s.cache.Load(cacheKey); ok {
		return a.(Account), nil
	}
	a, stored, err := s.store.AccountByKeyHash(ctx, kind, h)
	if err != nil {
		if errs.KindOf(err) == errs.NotFound {
			return Account{}, Forbidden()
		}
		return Account{}, err
	}
	if subtle.ConstantTimeCompare([]byte(stored), []byte(h)) != 1 {
		return Account{}, Forbidden()
	}
	s.cache.Store(cacheKey, a)
	return a, nil
}
