// Package page holds list parameters shared by every list endpoint
// (spec §1.7): skip, limit, sort and the archived flag.
package page

// Params is one page request, already validated.
type Params struct {
	Skip     int
	Limit    int
	SortKey  string // a column name from the endpoint's allowed set
	Desc     bool
	Archived bool
}

// DefaultLimit and MaxLimit bound Limit.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)
