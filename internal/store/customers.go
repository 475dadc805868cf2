package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"switchyard/internal/customer"
	"switchyard/internal/errs"
	"switchyard/internal/page"
)

const customerCols = `id, account_id, archived, first_name, last_name, email, phone, reference, description, company_name,
 meta, default_source, successful_transactions, total_collected_amount, created_at, updated_at`

func scanCustomer(row scanner) (customer.Customer, error) {
	var c customer.Customer
	var arch int
	var meta sql.NullString
	var created, updated int64
	t := &c.Text
	err := row.Scan(&c.ID, &c.AccountID, &arch, &t.FirstName, &t.LastName, &t.Email, &t.Phone, &t.Reference, &t.Description,
		&t.CompanyName, &meta, &c.DefaultSource, &c.Successful, &c.Collected, &created, &updated)
	if err != nil {
		return c, err
	}
	c.Archived = arch == 1
	c.CreatedAt, c.UpdatedAt = fromMS(created), fromMS(updated)
	if meta.Valid && meta.String != "" {
		dec := json.NewDecoder(strings.NewReader(meta.String))
		dec.UseNumber()
		if err := dec.Decode(&c.Meta); err != nil {
			return c, err
		}
	}
	return c, nil
}

func metaText(m map[string]any) any {
	if len(m) == 0 {
		return nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		return nil
	}
	return strings.TrimSpace(buf.String())
}

const sourceCols = `ps.id, ps.customer_id, ps.account_id, ps.vault_token, ps.status, ps.gateway_id, COALESCE(g.name, ''), COALESCE(g.type, ''),
 COALESCE(g.mode, ''), ps.ref_token, ps.gateway_ref, ps.address_line1, ps.address_line2, ps.address_line3, ps.address_city,
 ps.address_state, ps.address_postcode, ps.address_country, ps.created_at, ps.updated_at,
 v.card_name, v.card_scheme, v.card_bin, v.card_last4, v.card_fingerprint, v.expire_month, v.expire_year`

const sourceFrom = ` FROM payment_sources ps JOIN vault_records v ON v.token = ps.vault_token LEFT JOIN gateways g ON g.id = ps.gateway_id`

func scanSource(row scanner) (customer.Source, error) {
	var s customer.Source
	var created, updated int64
	a := &s.Address
	v := &s.Card
	err := row.Scan(&s.ID, &s.CustomerID, &s.AccountID, &s.VaultToken, &s.Status, &s.GatewayID, &s.GatewayName, &s.GatewayType,
		&s.GatewayMode, &s.RefToken, &s.GatewayRef, &a.Line1, &a.Line2, &a.Line3, &a.City, &a.State, &a.Postcode, &a.Country,
		&created, &updated, &v.CardName, &v.Scheme, &v.BIN, &v.Last4, &v.Fingerprint, &v.ExpMonth, &v.ExpYear)
	s.CreatedAt, s.UpdatedAt = fromMS(created), fromMS(updated)
	v.Token = s.VaultToken
	return s, err
}

// attachSources loads the active sources of cs, oldest first.
func attachSources(ctx context.Context, q Querier, cs []customer.Customer) error {
	if len(cs) == 0 {
		return nil
	}
	idx := map[string]int{}
	args := []any{}
	for i, c := range cs {
		idx[c.ID] = i
		args = append(args, c.ID)
	}
	// The customers are already this account's: filtering on the account
	// again would tempt the planner onto the (account, gateway) index and
	// through every source of the account.
	rows, err := q.QueryContext(ctx, `SELECT `+sourceCols+sourceFrom+` WHERE ps.customer_id IN (`+
		placeholders(len(cs))+`) AND ps.status = 'active' ORDER BY ps.created_at, ps.id`, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		s, err := scanSource(rows)
		if err != nil {
			return err
		}
		i := idx[s.CustomerID]
		cs[i].Sources = append(cs[i].Sources, s)
	}
	return rows.Err()
}

// customerWithSources reads one customer and its active sources in a single
// query: a GET is one statement, not two.
var customerWithSources = `SELECT ` + prefixCols("c.", customerCols) + `,
 COALESCE(ps.id, ''), COALESCE(ps.customer_id, ''), COALESCE(ps.account_id, ''), COALESCE(ps.vault_token, ''), COALESCE(ps.status, ''),
 COALESCE(ps.gateway_id, ''), COALESCE(g.name, ''), COALESCE(g.type, ''), COALESCE(g.mode, ''), COALESCE(ps.ref_token, ''),
 COALESCE(ps.gateway_ref, ''), COALESCE(ps.address_line1, ''), COALESCE(ps.address_line2, ''), COALESCE(ps.address_line3, ''),
 COALESCE(ps.address_city, ''), COALESCE(ps.address_state, ''), COALESCE(ps.address_postcode, ''), COALESCE(ps.address_country, ''),
 COALESCE(ps.created_at, 0), COALESCE(ps.updated_at, 0), COALESCE(v.card_name, ''), COALESCE(v.card_scheme, ''), COALESCE(v.card_bin, ''),
 COALESCE(v.card_last4, ''), COALESCE(v.card_fingerprint, ''), COALESCE(v.expire_month, 0), COALESCE(v.expire_year, 0)
 FROM customers c
 LEFT JOIN payment_sources ps ON ps.customer_id = c.id AND ps.status = 'active'
 LEFT JOIN vault_records v ON v.token = ps.vault_token
 LEFT JOIN gateways g ON g.id = ps.gateway_id
 WHERE c.id = $1 AND c.account_id = $2
 ORDER BY ps.created_at, ps.id`

// prefixCols qualifies a column list with a table alias.
func prefixCols(alias, cols string) string {
	parts := strings.Split(cols, ",")
	for i, p := range parts {
		parts[i] = alias + strings.TrimSpace(p)
	}
	return strings.Join(parts, ", ")
}

func getCustomer(ctx context.Context, q Querier, account, id string) (customer.Customer, error) {
	rows, err := q.QueryContext(ctx, customerWithSources, id, account)
	if err != nil {
		return customer.Customer{}, err
	}
	defer rows.Close()
	var c customer.Customer
	found := false
	for rows.Next() {
		var cu customer.Customer
		var src customer.Source
		var meta sql.NullString
		var arch int
		var created, updated, sCreated, sUpdated int64
		t, a, v := &cu.Text, &src.Address, &src.Card
		if err := rows.Scan(&cu.ID, &cu.AccountID, &arch, &t.FirstName, &t.LastName, &t.Email, &t.Phone, &t.Reference, &t.Description,
			&t.CompanyName, &meta, &cu.DefaultSource, &cu.Successful, &cu.Collected, &created, &updated,
			&src.ID, &src.CustomerID, &src.AccountID, &src.VaultToken, &src.Status, &src.GatewayID, &src.GatewayName, &src.GatewayType,
			&src.GatewayMode, &src.RefToken, &src.GatewayRef, &a.Line1, &a.Line2, &a.Line3, &a.City, &a.State, &a.Postcode, &a.Country,
			&sCreated, &sUpdated, &v.CardName, &v.Scheme, &v.BIN, &v.Last4, &v.Fingerprint, &v.ExpMonth, &v.ExpYear); err != nil {
			return customer.Customer{}, err
		}
		if !found {
			found = true
			c = cu
			c.Archived = arch == 1
			c.CreatedAt, c.UpdatedAt = fromMS(created), fromMS(updated)
			if meta.Valid && meta.String != "" {
				dec := json.NewDecoder(strings.NewReader(meta.String))
				dec.UseNumber()
				if err := dec.Decode(&c.Meta); err != nil {
					return customer.Customer{}, err
				}
			}
		}
		if src.ID != "" {
			src.CreatedAt, src.UpdatedAt = fromMS(sCreated), fromMS(sUpdated)
			v.Token = src.VaultToken
			c.Sources = append(c.Sources, src)
		}
	}
	if err := rows.Err(); err != nil {
		return customer.Customer{}, err
	}
	if !found {
		return customer.Customer{}, notFound("store.GetCustomer")
	}
	return c, nil
}

// countShards spreads an account's customer totals over rows, so that
// concurrent creates do not all update one row (on PostgreSQL they would
// fail each other's serializable transactions).
const countShards = 256

// countShard is the shard of a customer: its id's first byte.
func countShard(id string) int {
	if len(id) < 2 {
		return 0
	}
	v, err := strconv.ParseUint(id[:2], 16, 8)
	if err != nil {
		return 0
	}
	return int(v) % countShards
}

func bumpCount(ctx context.Context, q Querier, account, customerID string, archived bool, delta int) error {
	return execStmts(ctx, q, nil, []Stmt{countStmt(account, customerID, archived, delta)})
}

func countStmt(account, customerID string, archived bool, delta int) Stmt {
	return Stmt{`INSERT INTO customer_counts (account_id, archived, shard, n) VALUES ($1, $2, $3, $4)
		ON CONFLICT (account_id, archived, shard) DO UPDATE SET n = customer_counts.n + excluded.n`,
		[]any{account, b2i(archived), countShard(customerID), delta}}
}

// The inserts of a customer create, built once (they run in the writer).
var (
	insertSourceSQL = `INSERT INTO payment_sources (id, account_id, customer_id, vault_token, status, gateway_id, ref_token, gateway_ref,
		address_line1, address_line2, address_line3, address_city, address_state, address_postcode, address_country, created_at, updated_at)
		VALUES (` + placeholders(17) + `)`
	insertCustomer = `INSERT INTO customers (` + customerCols + `, search) VALUES (` + placeholders(17) + `)`
)

func insertSource(ctx context.Context, q Querier, src customer.NewSource) error {
	return execStmts(ctx, q, nil, sourceStmts(src))
}

// sourceStmts inserts a new source and, first, its new vault record.
func sourceStmts(src customer.NewSource) []Stmt {
	var out []Stmt
	if src.Vault != nil {
		out = append(out, Stmt{insertVault, vaultArgs(src.Vault)})
	}
	s, a := src.Source, src.Source.Address
	return append(out, Stmt{insertSourceSQL, []any{s.ID, s.AccountID, s.CustomerID, s.VaultToken, s.Status, s.GatewayID, s.RefToken, s.GatewayRef,
		a.Line1, a.Line2, a.Line3, a.City, a.State, a.Postcode, a.Country, ms(s.CreatedAt), ms(s.UpdatedAt)}})
}

// CreateCustomer implements customer.Store: customer, source and new vault
// record in one transaction, a blind write, which also records the
// customer on the idempotent request's claim (see claimedStmt).
func (s *Store) CreateCustomer(ctx context.Context, c *customer.Customer, src customer.NewSource) error {
	stmts := append([]Stmt{customerStmt(c, true)}, sourceStmts(src)...)
	stmts = append(stmts, countStmt(c.AccountID, c.ID, false, 1))
	if st, ok := claimedStmt(ctx, c.AccountID, "customer_id", c.ID); ok {
		stmts = append(stmts, st)
	}
	_, err := writeStmts(ctx, s.eng, stmts...)
	return s.wrap("store.CreateCustomer", err)
}

func writeCustomer(ctx context.Context, q Querier, c *customer.Customer, insert bool) error {
	return execStmts(ctx, q, nil, []Stmt{customerStmt(c, insert)})
}

// customerStmt inserts c, or updates it in place.
func customerStmt(c *customer.Customer, insert bool) Stmt {
	t := c.Text
	args := []any{c.ID, c.AccountID, b2i(c.Archived), t.FirstName, t.LastName, t.Email, t.Phone, t.Reference, t.Description,
		t.CompanyName, metaText(c.Meta), c.DefaultSource, c.Successful, c.Collected, ms(c.CreatedAt), ms(c.UpdatedAt), t.Search()}
	if insert {
		return Stmt{insertCustomer, args}
	}
	return Stmt{`UPDATE customers SET archived = $3, first_name = $4, last_name = $5, email = $6, phone = $7,
		reference = $8, description = $9, company_name = $10, meta = $11, default_source = $12, successful_transactions = $13,
		total_collected_amount = $14, created_at = $15, updated_at = $16, search = $17 WHERE id = $1 AND account_id = $2`, args}
}

// GetCustomer implements customer.Store.
func (s *Store) GetCustomer(ctx context.Context, account, id string) (customer.Customer, error) {
	c, err := getCustomer(keyed(ctx), s.eng.Reader(), account, id)
	return c, s.wrap("store.GetCustomer", err)
}

// UpdateCustomer implements customer.Store.
func (s *Store) UpdateCustomer(ctx context.Context, account, id string, fn func(c *customer.Customer) error, src *customer.NewSource) (customer.Customer, error) {
	var out customer.Customer
	var fnErr error
	// The customer's row is locked before it is read, so nothing it reads
	// changes before this commits: row locks are enough (LockingWriter),
	// and concurrent updates of one customer wait for each other instead
	// of failing serialization. Every write to a customer's sources also
	// writes its row.
	err := writeLocking(ctx, s.eng, func(q Querier) error {
		out, fnErr = customer.Customer{}, nil // fn may run again (engine retry)
		if _, err := q.ExecContext(ctx, `UPDATE customers SET updated_at = updated_at WHERE id = $1 AND account_id = $2`, id, account); err != nil {
			return err
		}
		c, err := getCustomer(ctx, q, account, id)
		if err != nil {
			return err
		}
		wasArchived := c.Archived
		if fnErr = fn(&c); fnErr != nil {
			return fnErr
		}
		if src != nil {
			if err := insertSource(ctx, q, *src); err != nil {
				return err
			}
			c.Sources = append(c.Sources, src.Source)
		}
		if err := writeCustomer(ctx, q, &c, false); err != nil {
			return err
		}
		if err := recordClaim(ctx, q, account, "customer_id", id); err != nil {
			return err
		}
		if c.Archived != wasArchived {
			if err := bumpCount(ctx, q, account, id, wasArchived, -1); err != nil {
				return err
			}
			if err := bumpCount(ctx, q, account, id, c.Archived, 1); err != nil {
				return err
			}
		}
		out = c
		return nil
	})
	if fnErr != nil {
		return customer.Customer{}, fnErr
	}
	return out, s.wrap("store.UpdateCustomer", err)
}

// ReplaceSource implements customer.Store.
func (s *Store) ReplaceSource(ctx context.Context, account, customerID string, src customer.Source, now time.Time) (customer.Customer, error) {
	var out customer.Customer
	err := s.eng.Write(ctx, func(q Querier) error {
		a := src.Address
		res, err := q.ExecContext(ctx, `UPDATE payment_sources SET vault_token = $1, gateway_ref = $2, address_line1 = $3, address_line2 = $4,
			address_line3 = $5, address_city = $6, address_state = $7, address_postcode = $8, address_country = $9, updated_at = $10
			WHERE id = $11 AND customer_id = $12 AND account_id = $13 AND status = 'active'`,
			src.VaultToken, src.GatewayRef, a.Line1, a.Line2, a.Line3, a.City, a.State, a.Postcode, a.Country, ms(now), src.ID, customerID, account)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return errs.NotFoundf("payment_source_id", "payment source not found")
		}
		if _, err := q.ExecContext(ctx, `UPDATE customers SET updated_at = $1 WHERE id = $2 AND account_id = $3`, ms(now), customerID, account); err != nil {
			return err
		}
		out, err = getCustomer(ctx, q, account, customerID)
		return err
	})
	return out, s.wrap("store.ReplaceSource", err)
}

// ArchiveSource implements customer.Store.
func (s *Store) ArchiveSource(ctx context.Context, account, customerID, sourceID string, now time.Time) (customer.Customer, error) {
	var out customer.Customer
	err := s.eng.Write(ctx, func(q Querier) error {
		var status string
		err := q.QueryRowContext(ctx, `SELECT status FROM payment_sources WHERE id = $1 AND customer_id = $2 AND account_id = $3`,
			sourceID, customerID, account).Scan(&status)
		if errors.Is(err, sql.ErrNoRows) {
			return notFound("store.ArchiveSource")
		}
		if err != nil {
			return err
		}
		if status == "active" {
			if _, err := q.ExecContext(ctx, `UPDATE payment_sources SET status = 'archived', updated_at = $1 WHERE id = $2`, ms(now), sourceID); err != nil {
				return err
			}
			if _, err := q.ExecContext(ctx, `UPDATE customers SET updated_at = $1,
				default_source = CASE WHEN default_source = $2 THEN COALESCE((SELECT id FROM payment_sources
				  WHERE customer_id = $3 AND status = 'active' ORDER BY created_at DESC, id DESC LIMIT 1), '') ELSE default_source END
				WHERE id = $3 AND account_id = $4`, ms(now), sourceID, customerID, account); err != nil {
				return err
			}
		}
		out, err = getCustomer(ctx, q, account, customerID)
		return err
	})
	return out, s.wrap("store.ArchiveSource", err)
}

var customerSort = map[string]string{"created_at": "created_at", "updated_at": "updated_at", "first_name": "first_name",
	"last_name": "last_name", "email": "email", "reference": "reference", "company_name": "company_name"}

// likeEscape escapes LIKE wildcards so search matches its text literally.
func likeEscape(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(s)
}

// ListCustomers implements customer.Store.
func (s *Store) ListCustomers(ctx context.Context, account string, f customer.Filter, p page.Params) ([]customer.Customer, int, error) {
	where := []string{"account_id = $1", "archived = $2"}
	args := []any{account, b2i(p.Archived)}
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, strings.ReplaceAll(cond, "?", "$"+itoa(len(args))))
	}
	filtered := false
	if f.Status != "" {
		filtered = true
		if (f.Status == "archived") != p.Archived {
			where = append(where, "1 = 0")
		}
	}
	if f.ID != "" {
		filtered = true
		add("id = ?", f.ID)
	}
	if f.Reference != "" {
		filtered = true
		add("reference = ?", f.Reference)
	}
	if f.CompanyName != "" {
		filtered = true
		add("company_name = ?", f.CompanyName)
	}
	if f.Search != "" {
		filtered = true
		add(`search LIKE ? ESCAPE '\'`, "%"+likeEscape(f.Search)+"%")
	}
	if f.GatewayID != "" {
		filtered = true
		add("EXISTS (SELECT 1 FROM payment_sources ps WHERE ps.customer_id = customers.id AND ps.gateway_id = ? AND ps.status = 'active')", f.GatewayID)
	}
	if f.PaymentSourceID != "" {
		filtered = true
		add("EXISTS (SELECT 1 FROM payment_sources ps WHERE ps.customer_id = customers.id AND ps.id = ? AND ps.status = 'active')", f.PaymentSourceID)
	}
	cond := strings.Join(where, " AND ")
	r := s.eng.Reader()
	var n int
	var err error
	if filtered {
		err = r.QueryRowContext(ctx, `SELECT count(*) FROM customers WHERE `+cond, args...).Scan(&n)
	} else {
		err = r.QueryRowContext(ctx, `SELECT COALESCE(SUM(n), 0) FROM customer_counts WHERE account_id = $1 AND archived = $2`, args...).Scan(&n)
	}
	if err != nil {
		return nil, 0, s.wrap("store.ListCustomers", err)
	}
	out, err := queryPage(ctx, r, customerCols, "customers", cond, orderBy(customerSort, p), args, p, scanCustomer)
	if err != nil {
		return nil, 0, s.wrap("store.ListCustomers", err)
	}
	if err := attachSources(ctx, r, out); err != nil {
		return nil, 0, s.wrap("store.ListCustomers", err)
	}
	return out, n, nil
}
