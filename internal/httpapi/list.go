package httpapi

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"switchyard/internal/contact"
	"switchyard/internal/errs"
	"switchyard/internal/page"
	"switchyard/internal/search"
)

// pageParams reads skip, limit, sortkey, sortdirection and archived
// (spec §1.7); sortKeys is the endpoint's allowed set.
func pageParams(c *call, sortKeys ...string) (page.Params, error) {
	p, err := skipLimit(c)
	if err != nil {
		return p, err
	}
	q := c.query
	if v := q.Get("sortkey"); v != "" {
		ok := false
		for _, k := range sortKeys {
			ok = ok || k == v
		}
		if !ok {
			return p, errs.Query("sortkey", "sortkey must be one of: "+strings.Join(sortKeys, ", "))
		}
		p.SortKey = v
	}
	if v := q.Get("sortdirection"); v != "" {
		switch strings.ToUpper(v) {
		case "ASC":
			p.Desc = false
		case "DESC":
			p.Desc = true
		default:
			return p, errs.Query("sortdirection", "sortdirection must be one of: ASC, DESC")
		}
	}
	b, err := queryBool(c, "archived")
	if err != nil {
		return p, err
	}
	p.Archived = b
	return p, nil
}

// skipLimit reads only skip and limit (§1.7), for a listing whose sort
// and filters are fixed: its other parameters are ignored like any unknown
// one (§1.1).
func skipLimit(c *call) (page.Params, error) {
	p := page.Params{Limit: page.DefaultLimit, SortKey: "created_at", Desc: true}
	q := c.query
	if v := q.Get("skip"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return p, errs.Query("skip", "skip must be a whole number from 0")
		}
		p.Skip = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > page.MaxLimit {
			return p, errs.Query("limit", "limit must be a whole number from 1 to 1000")
		}
		p.Limit = n
	}
	return p, nil
}

// searchParam reads search= (§7.5, §8.7) as a term to match. No stored
// field is longer than 255 characters, so a longer term could match
// nothing, and it would reach the database as a pattern too complex for
// it: it is refused.
func searchParam(c *call) (string, error) {
	v := c.query.Get("search")
	if utf8.RuneCountInString(v) > contact.MaxText {
		return "", errs.Query("search", fmt.Sprintf("search must be at most %d characters", contact.MaxText))
	}
	return search.Term(v), nil
}

// queryBool reads a boolean query value in any case (L12); empty is false.
func queryBool(c *call, name string) (bool, error) {
	switch strings.ToLower(c.query.Get(name)) {
	case "", "false":
		return false, nil
	case "true":
		return true, nil
	}
	return false, errs.Query(name, name+" must be true or false")
}
