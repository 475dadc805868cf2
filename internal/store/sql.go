package store

import (
	"strconv"

	"switchyard/internal/page"
)

func itoa(i int) string { return strconv.Itoa(i) }

// orderBy builds a stable ORDER BY from an allowed sort map: the key, then
// id in the same direction (spec §1.7).
func orderBy(allowed map[string]string, p page.Params) string {
	col, ok := allowed[p.SortKey]
	if !ok {
		col = "created_at"
	}
	dir := " ASC"
	if p.Desc {
		dir = " DESC"
	}
	return col + dir + ", id" + dir
}
