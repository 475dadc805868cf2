// Package idempotency keeps Idempotency-Key records (spec §9): a key is
// claimed when its first request starts, holds that request's response
// once it ends, and lives 24 hours. Claims go through the store, so two
// nodes that receive the same key at once cannot both run the request.
package idempotency

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"

	"switchyard/internal/errs"
)

// Retention is how long a key lives from its first use.
const Retention = 24 * time.Hour

// Lock is how long an unfinished claim blocks the key. A node that dies
// mid-request leaves a claim that frees itself after this; it is longer
// than any request may run (30 s shutdown grace plus a 30 s gateway call).
const Lock = 2 * time.Minute

// Record is a stored key.
type Record struct {
	Fingerprint string
	Done        bool
	Status      int
	Body        []byte
	// ChargeID or CustomerID is what an unfinished request created, when
	// its claim went stale (the request was interrupted): a retry answers
	// that charge or customer rather than running again.
	ChargeID   string
	CustomerID string
}

// Created reports whether an interrupted request created something.
func (r *Record) Created() bool { return r.ChargeID != "" || r.CustomerID != "" }

// Claim is the key a request holds, carried in its context so that the
// store can record the charge it creates with the charge's intent, or the
// customer it creates with the customer.
type Claim struct {
	Key       string
	ClaimedAt time.Time
}

type claimKey struct{}

// WithClaim returns ctx carrying c.
func WithClaim(ctx context.Context, c Claim) context.Context {
	return context.WithValue(ctx, claimKey{}, c)
}

// ClaimFrom returns the claim ctx carries.
func ClaimFrom(ctx context.Context) (Claim, bool) {
	c, ok := ctx.Value(claimKey{}).(Claim)
	return c, ok
}

// Store keeps the records.
type Store interface {
	// ClaimIdempotencyKey inserts a claim for (account, key), or takes over
	// an expired record or a stale claim, and returns nil; otherwise it
	// returns the existing record untouched. A stale claim whose request
	// created a charge or a customer is not taken over: it is returned with
	// ChargeID or CustomerID.
	ClaimIdempotencyKey(ctx context.Context, account, key, fingerprint string, now time.Time) (*Record, error)
	// FinishIdempotencyKey stores the response of the claim made at
	// claimedAt, and ReleaseIdempotencyKey frees it; both do nothing when
	// that claim went stale and another request took the key over.
	FinishIdempotencyKey(ctx context.Context, account, key string, claimedAt time.Time, status int, body []byte) error
	ReleaseIdempotencyKey(ctx context.Context, account, key string, claimedAt time.Time) error
	SweepIdempotencyKeys(ctx context.Context, now time.Time) (int, error)
}

// Fingerprint hashes the request (method, path without trailing slash, raw
// query, canonical body) with HMAC-SHA256 under the account's secret key.
// The spec's plain SHA-256 would let anyone reading the stored record try
// the few unknown digits of a card next to its stored masked response and
// get the PAN and CVV back; keyed, the stored hash tells nothing.
func Fingerprint(key []byte, method, path, rawQuery string, body []byte) string {
	h := hmac.New(sha256.New, key)
	for _, part := range [][]byte{[]byte(method), []byte(strings.TrimSuffix(path, "/")), []byte(rawQuery), body} {
		var n [8]byte
		l := len(part)
		for i := range n {
			n[i] = byte(l >> (8 * i))
		}
		h.Write(n[:])
		h.Write(part)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// ValidKey reports whether k is 1–255 visible ASCII characters.
func ValidKey(k string) bool {
	if len(k) == 0 || len(k) > 255 {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// Outcome of Begin.
type Outcome int

const (
	Run    Outcome = iota // the caller owns the key: run the request, then Finish or Release
	Replay                // a stored response: send Record.Status and Record.Body
	Resume                // an interrupted request made Record.ChargeID or CustomerID: answer it as it is now
)

// Begin claims key for a request with fingerprint fp.
func Begin(ctx context.Context, s Store, account, key, fp string, now time.Time) (Outcome, *Record, error) {
	rec, err := s.ClaimIdempotencyKey(ctx, account, key, fp, now)
	if err != nil {
		return 0, nil, err
	}
	if rec == nil {
		return Run, nil, nil
	}
	if rec.Fingerprint != fp {
		return 0, nil, errs.Unfulfilledf("idempotency-key", "idempotency key reused with different parameters")
	}
	if !rec.Done && rec.Created() {
		return Resume, rec, nil
	}
	if !rec.Done {
		m := "a request with this idempotency key is in progress"
		return 0, nil, &errs.Error{Kind: errs.Conflict, Message: m, Path: "idempotency-key", Messages: []string{m}}
	}
	return Replay, rec, nil
}
