package store

import (
	"context"
	"strconv"

	"switchyard/internal/page"
)

func itoa(i int) string { return strconv.Itoa(i) }

// orderBy builds a stable ORDER BY from an allowed sort map: the key, then
// id in the same direction (spec §1.7).
func orderBy(allowed map[string]string, p page.Params) string {
	return orderByKey(allowed, "id", p)
}

// orderByKey is orderBy for a table whose key column is not id.
func orderByKey(allowed map[string]string, key string, p page.Params) string {
	col, ok := allowed[p.SortKey]
	if !ok {
		col = "created_at"
	}
	dir := " ASC"
	if p.Desc {
		dir = " DESC"
	}
	return col + dir + ", " + key + dir
}

// scanner is a row to scan (*sql.Row and *sql.Rows both are).
type scanner interface{ Scan(...any) error }

// queryPage reads one page of a list: the rows of table matching cond
// (with args), in order, skip and limit applied.
func queryPage[T any](ctx context.Context, q Querier, cols, table, cond, order string, args []any, p page.Params, scan func(scanner) (T, error)) ([]T, error) {
	args = append(args, p.Limit, p.Skip)
	rows, err := q.QueryContext(ctx, `SELECT `+cols+` FROM `+table+` WHERE `+cond+` ORDER BY `+order+
		` LIMIT $`+itoa(len(args)-1)+` OFFSET $`+itoa(len(args)), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
