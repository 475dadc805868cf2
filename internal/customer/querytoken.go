package customer

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"

	"switchyard/internal/errs"
	"switchyard/internal/page"
	"switchyard/internal/vault"
)

// QueryTokenTTL is how long a query token is valid (spec §7.5).
const QueryTokenTTL = time.Hour

// queryClaims is what a query token records: the account, the filters
// and the sort order, not the page.
type queryClaims struct {
	Account  string `json:"acc"`
	Filter   Filter `json:"f"`
	SortKey  string `json:"s"`
	Desc     bool   `json:"d"`
	Archived bool   `json:"a"`
	Exp      int64  `json:"exp"`
}

var jwtHeader = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))

// QueryToken signs a search (HS256 JWT) under the account's query-token
// key, a random secret stored sealed, so rotation never invalidates it.
func (s *Service) QueryToken(ctx context.Context, account string, f Filter, p page.Params) (string, error) {
	key, err := s.vault.Secret(ctx, account, vault.QueryTokenKey)
	if err != nil {
		return "", err
	}
	claims, err := json.Marshal(queryClaims{Account: account, Filter: f, SortKey: p.SortKey, Desc: p.Desc, Archived: p.Archived,
		Exp: s.now().Add(QueryTokenTTL).Unix()})
	if err != nil {
		return "", errs.Wrap("customer.QueryToken", err)
	}
	body := jwtHeader + "." + base64.RawURLEncoding.EncodeToString(claims)
	return body + "." + sign(key, body), nil
}

func sign(key []byte, body string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(body))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func badQueryToken() error { return errs.Query("query_token", "query_token is invalid or expired") }

// parseQueryToken verifies a token for account.
func (s *Service) parseQueryToken(ctx context.Context, account, tok string) (queryClaims, error) {
	var c queryClaims
	parts := strings.Split(tok, ".")
	if len(parts) != 3 || parts[0] != jwtHeader {
		return c, badQueryToken()
	}
	key, err := s.vault.Secret(ctx, account, vault.QueryTokenKey)
	if err != nil {
		return c, err
	}
	if !hmac.Equal([]byte(sign(key, parts[0]+"."+parts[1])), []byte(parts[2])) {
		return c, badQueryToken()
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil || json.Unmarshal(raw, &c) != nil {
		return c, badQueryToken()
	}
	if c.Account != account || time.Unix(c.Exp, 0).Before(s.now()) {
		return c, badQueryToken()
	}
	return c, nil
}

// PublicSource is one item of the public listing (spec §7.12).
type PublicSource struct {
	Source
	CustomerReference string
	Primary           bool
}

// maxPublicCustomers bounds how many matching customers one public
// listing walks.
const maxPublicCustomers = 10000

// PublicQuery is a verified query token: the search a public listing
// (spec §7.12) runs.
type PublicQuery struct{ c queryClaims }

// OpenQueryToken verifies tok, issued for account and unexpired: the
// listing's first parameter, checked before its skip and limit.
func (s *Service) OpenQueryToken(ctx context.Context, account, tok string) (PublicQuery, error) {
	if tok == "" {
		return PublicQuery{}, errs.Query("query_token", "query_token is required")
	}
	c, err := s.parseQueryToken(ctx, account, tok)
	return PublicQuery{c}, err
}

// PublicSources lists the active sources of the customers the query's
// search matches now, ordered as that search; skip and limit apply to
// sources.
func (s *Service) PublicSources(ctx context.Context, account string, q PublicQuery, skip, limit int) ([]PublicSource, int, error) {
	c := q.c
	var all []PublicSource
	p := page.Params{Limit: page.MaxLimit, SortKey: c.SortKey, Desc: c.Desc, Archived: c.Archived}
	for p.Skip < maxPublicCustomers {
		cs, _, err := s.List(ctx, account, c.Filter, p)
		if err != nil {
			return nil, 0, err
		}
		for _, cu := range cs {
			for _, src := range cu.Sources {
				all = append(all, PublicSource{Source: src, CustomerReference: cu.Text.Reference, Primary: src.ID == cu.DefaultSource})
			}
		}
		if len(cs) < p.Limit {
			break
		}
		p.Skip += p.Limit
	}
	n := len(all)
	if skip > n {
		skip = n
	}
	end := skip + limit
	if end > n {
		end = n
	}
	return all[skip:end], n, nil
}
