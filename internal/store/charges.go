package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"switchyard/internal/charge"
	"switchyard/internal/errs"
	"switchyard/internal/gateway/simulator"
	"switchyard/internal/money"
	"switchyard/internal/page"
	"switchyard/internal/search"
)

const chargeCols = `id, account_id, customer_id, source_id, gateway_id, external_id, amount, captured, refunded, currency,
 reference, description, meta, status, capture, one_off, archived, customer, created_at, updated_at`

const txnCols = `id, charge_id, seq, type, status, amount, external_id, decline, attempts, next_attempt_at, created_at, updated_at`

func scanCharge(row scanner) (charge.Charge, error) {
	var c charge.Charge
	var cur string
	var meta sql.NullString
	var snap string
	var capture, oneOff, archived int
	var created, updated int64
	err := row.Scan(&c.ID, &c.AccountID, &c.CustomerID, &c.SourceID, &c.GatewayID, &c.ExternalID, &c.Amount, &c.Captured, &c.Refunded,
		&cur, &c.Reference, &c.Description, &meta, &c.Status, &capture, &oneOff, &archived, &snap, &created, &updated)
	if err != nil {
		return c, err
	}
	c.Currency, _ = money.LookupCurrency(cur)
	c.Capture, c.OneOff, c.Archived = capture == 1, oneOff == 1, archived == 1
	c.Authorization = !c.Capture
	c.CreatedAt, c.UpdatedAt = fromMS(created), fromMS(updated)
	if err := json.Unmarshal([]byte(snap), &c.Customer); err != nil {
		return c, err
	}
	if meta.Valid && meta.String != "" {
		dec := json.NewDecoder(strings.NewReader(meta.String))
		dec.UseNumber()
		if err := dec.Decode(&c.Meta); err != nil {
			return c, err
		}
	}
	return c, nil
}

func scanTxn(row scanner) (charge.Txn, string, error) {
	var t charge.Txn
	var chargeID string
	var seq int
	var decline sql.NullString
	var next, created, updated int64
	err := row.Scan(&t.ID, &chargeID, &seq, &t.Type, &t.Status, &t.Amount, &t.ExternalID, &decline, &t.Attempts, &next, &created, &updated)
	if err != nil {
		return t, "", err
	}
	if decline.Valid && decline.String != "" {
		t.Decline = &errs.Decline{}
		if err := json.Unmarshal([]byte(decline.String), t.Decline); err != nil {
			return t, "", err
		}
	}
	if next > 0 {
		t.NextAttemptAt = fromMS(next)
	}
	t.CreatedAt, t.UpdatedAt = fromMS(created), fromMS(updated)
	return t, chargeID, nil
}

func attachTxns(ctx context.Context, q Querier, cs []charge.Charge) error {
	if len(cs) == 0 {
		return nil
	}
	idx := map[string]int{}
	args := []any{}
	for i, c := range cs {
		idx[c.ID] = i
		args = append(args, c.ID)
	}
	rows, err := q.QueryContext(ctx, `SELECT `+txnCols+` FROM charge_transactions WHERE charge_id IN (`+placeholders(len(cs))+`) ORDER BY charge_id, seq`, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		t, cid, err := scanTxn(rows)
		if err != nil {
			return err
		}
		i := idx[cid]
		cs[i].Transactions = append(cs[i].Transactions, t)
	}
	return rows.Err()
}

func getCharge(ctx context.Context, q Querier, account, id string) (charge.Charge, error) {
	c, err := scanCharge(q.QueryRowContext(ctx, `SELECT `+chargeCols+` FROM charges WHERE id = $1 AND account_id = $2`, id, account))
	if errors.Is(err, sql.ErrNoRows) {
		return c, notFound("store.GetCharge")
	}
	if err != nil {
		return c, err
	}
	cs := []charge.Charge{c}
	err = attachTxns(ctx, q, cs)
	return cs[0], err
}

func chargeSearch(c *charge.Charge) string {
	return search.Text(c.Reference, c.Description, c.Customer.Email, c.Customer.FirstName, c.Customer.LastName)
}

// The statements writeCharge runs in the writer, built once.
var (
	insertCharge = `INSERT INTO charges (` + chargeCols + `, search) VALUES (` + placeholders(21) + `)`
	upsertTxn    = `INSERT INTO charge_transactions (` + txnCols + `) VALUES (` + placeholders(12) + `)
			ON CONFLICT (id) DO UPDATE SET status = excluded.status, amount = excluded.amount, external_id = excluded.external_id,
			decline = excluded.decline, attempts = excluded.attempts, next_attempt_at = excluded.next_attempt_at, updated_at = excluded.updated_at`
)

func writeCharge(ctx context.Context, q Querier, c *charge.Charge, insert bool) error {
	stmts, err := chargeStmts(c, insert)
	if err != nil {
		return err
	}
	return execStmts(ctx, q, nil, stmts)
}

// chargeStmts insert c, or update it in place, with its transactions.
func chargeStmts(c *charge.Charge, insert bool) ([]Stmt, error) {
	snap, err := json.Marshal(c.Customer)
	if err != nil {
		return nil, err
	}
	args := []any{c.ID, c.AccountID, c.CustomerID, c.SourceID, c.GatewayID, c.ExternalID, c.Amount, c.Captured, c.Refunded, c.Currency.Code,
		c.Reference, c.Description, metaText(c.Meta), c.Status, b2i(c.Capture), b2i(c.OneOff), b2i(c.Archived), string(snap),
		ms(c.CreatedAt), ms(c.UpdatedAt), chargeSearch(c)}
	stmts := make([]Stmt, 0, 1+len(c.Transactions))
	if insert {
		stmts = append(stmts, Stmt{insertCharge, args})
	} else {
		stmts = append(stmts, Stmt{`UPDATE charges SET customer_id = $3, source_id = $4, gateway_id = $5, external_id = $6, amount = $7,
			captured = $8, refunded = $9, currency = $10, reference = $11, description = $12, meta = $13, status = $14, capture = $15,
			one_off = $16, archived = $17, customer = $18, created_at = $19, updated_at = $20, search = $21 WHERE id = $1 AND account_id = $2`, args})
	}
	for i, t := range c.Transactions {
		var decline any
		if t.Decline != nil {
			b, err := json.Marshal(t.Decline)
			if err != nil {
				return nil, err
			}
			decline = string(b)
		}
		var next int64
		if !t.NextAttemptAt.IsZero() {
			next = ms(t.NextAttemptAt)
		}
		stmts = append(stmts, Stmt{upsertTxn,
			[]any{t.ID, c.ID, i, t.Type, t.Status, t.Amount, t.ExternalID, decline, t.Attempts, next, ms(t.CreatedAt), ms(t.UpdatedAt)}})
	}
	return stmts, nil
}

// CreateCharge implements charge.Store.
func (s *Store) CreateCharge(ctx context.Context, c *charge.Charge) error {
	stmts, err := chargeStmts(c, true)
	if err != nil {
		return s.wrap("store.CreateCharge", err)
	}
	if st, ok := claimedStmt(ctx, c.AccountID, "charge_id", c.ID); ok {
		stmts = append(stmts, st)
	}
	_, err = writeStmts(ctx, s.eng, stmts...)
	return s.wrap("store.CreateCharge", err)
}

// GetCharge implements charge.Store.
func (s *Store) GetCharge(ctx context.Context, account, id string) (charge.Charge, error) {
	c, err := getCharge(keyed(ctx), s.eng.Reader(), account, id)
	return c, s.wrap("store.GetCharge", err)
}

// UpdateCharge implements charge.Store.
func (s *Store) UpdateCharge(ctx context.Context, account, id string, fn func(c *charge.Charge) (*charge.Stats, error)) (charge.Charge, error) {
	var out charge.Charge
	var fnErr error
	err := s.eng.Write(ctx, func(q Querier) error {
		fnErr = nil
		c, err := getCharge(ctx, q, account, id)
		if err != nil {
			return err
		}
		st, err := fn(&c)
		if err != nil {
			fnErr = err
			return err
		}
		if err := writeCharge(ctx, q, &c, false); err != nil {
			return err
		}
		if err := addStats(ctx, q, account, st); err != nil {
			return err
		}
		if err := recordClaim(ctx, q, account, "charge_id", c.ID); err != nil {
			return err
		}
		out = c
		return nil
	})
	if fnErr != nil {
		return charge.Charge{}, fnErr
	}
	return out, s.wrap("store.UpdateCharge", err)
}

// addStats adds a settled charge's effect to its customer's statistics
// (nothing when st is nil), in the charge's own transaction.
func addStats(ctx context.Context, q Querier, account string, st *charge.Stats) error {
	if st == nil {
		return nil
	}
	_, err := q.ExecContext(ctx, `UPDATE customers SET successful_transactions = successful_transactions + $1,
		total_collected_amount = total_collected_amount + $2 WHERE id = $3 AND account_id = $4`, st.Count, st.Collected, st.CustomerID, account)
	return err
}

var chargeSort = map[string]string{"created_at": "created_at", "updated_at": "updated_at", "amount": amountOrder, "reference": "reference"}

// amountOrder is a charge's amount as the wire shows it, in major units,
// so that sortkey=amount orders charges in different currencies as their
// amounts read (1 KWD before 3 AUD before 100 JPY): the minor units
// scaled, exactly, to the finest minor unit of any currency.
var amountOrder = func() string {
	cs := money.Currencies()
	finest := 0
	for _, c := range cs {
		finest = max(finest, c.Exponent)
	}
	scale := func(exp int) string {
		n := 1
		for range finest - exp {
			n *= 10
		}
		return itoa(n)
	}
	var b strings.Builder
	b.WriteString("amount * CASE currency")
	for _, c := range cs {
		if c.Exponent != 2 {
			b.WriteString(" WHEN '" + c.Code + "' THEN " + scale(c.Exponent))
		}
	}
	b.WriteString(" ELSE " + scale(2) + " END")
	return b.String()
}()

// ListCharges implements charge.Store.
func (s *Store) ListCharges(ctx context.Context, account string, f charge.Filter, p page.Params) ([]charge.Charge, int, error) {
	where := []string{"account_id = $1", "archived = $2"}
	args := []any{account, b2i(p.Archived)}
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, strings.ReplaceAll(cond, "?", "$"+itoa(len(args))))
	}
	if f.Status != "" {
		add("status = ?", f.Status)
	}
	if f.Reference != "" {
		add("reference = ?", f.Reference)
	}
	if f.CustomerID != "" {
		add("customer_id = ?", f.CustomerID)
	}
	if f.GatewayID != "" {
		add("gateway_id = ?", f.GatewayID)
	}
	if f.Search != "" {
		add(`search LIKE ? ESCAPE '\'`, "%"+likeEscape(f.Search)+"%")
	}
	if !f.From.IsZero() {
		add("created_at >= ?", ms(f.From))
	}
	if !f.To.IsZero() {
		add("created_at < ?", ms(f.To))
	}
	cond := strings.Join(where, " AND ")
	r := s.eng.Reader()
	var n int
	if err := r.QueryRowContext(ctx, `SELECT count(*) FROM charges WHERE `+cond, args...).Scan(&n); err != nil {
		return nil, 0, s.wrap("store.ListCharges", err)
	}
	out, err := queryPage(ctx, r, chargeCols, "charges", cond, orderBy(chargeSort, p), args, p, scanCharge)
	if err != nil {
		return nil, 0, s.wrap("store.ListCharges", err)
	}
	if err := attachTxns(ctx, r, out); err != nil {
		return nil, 0, s.wrap("store.ListCharges", err)
	}
	return out, n, nil
}

// DueForReconcile implements charge.Store: due transactions are pushed to
// lease in the same transaction that selects them, so each charge is
// claimed by one node at a time.
func (s *Store) DueForReconcile(ctx context.Context, now, lease time.Time, limit int) ([]charge.Charge, error) {
	type key struct{ account, id string }
	var keys []key
	err := s.eng.Write(ctx, func(q Querier) error {
		keys = keys[:0]
		rows, err := q.QueryContext(ctx, `SELECT t.id, c.account_id, c.id FROM charge_transactions t JOIN charges c ON c.id = t.charge_id
			WHERE t.next_attempt_at > 0 AND t.next_attempt_at <= $1 ORDER BY t.next_attempt_at LIMIT $2`, ms(now), limit)
		if err != nil {
			return err
		}
		var txns []string
		seen := map[key]bool{}
		for rows.Next() {
			var tid string
			var k key
			if err := rows.Scan(&tid, &k.account, &k.id); err != nil {
				rows.Close()
				return err
			}
			txns = append(txns, tid)
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, tid := range txns {
			// The lease keeps the row's due time in the future while this
			// node looks it up; the lookup's outcome then sets the real one.
			if _, err := q.ExecContext(ctx, `UPDATE charge_transactions SET next_attempt_at = $1 WHERE id = $2 AND next_attempt_at <= $3 AND next_attempt_at > 0`,
				ms(lease), tid, ms(now)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, s.wrap("store.DueForReconcile", err)
	}
	out := make([]charge.Charge, 0, len(keys))
	for _, k := range keys {
		c, err := getCharge(ctx, s.eng.Reader(), k.account, k.id)
		if err != nil {
			return nil, s.wrap("store.DueForReconcile", err)
		}
		// Present the claimed transactions as due to the caller.
		for i := range c.Transactions {
			if c.Transactions[i].NextAttemptAt.Equal(fromMS(ms(lease))) {
				c.Transactions[i].NextAttemptAt = now
			}
		}
		out = append(out, c)
	}
	return out, nil
}

// RecordLedger implements simulator.Ledger.
func (s *Store) RecordLedger(ctx context.Context, e simulator.Entry) (simulator.Entry, error) {
	n, err := writeStmts(ctx, s.ledger, Stmt{`INSERT INTO simulator_ledger (txn_id, account_id, kind, amount, currency, external_id, succeeded, decline_code, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (txn_id) DO NOTHING`,
		[]any{e.TxnID, e.AccountID, e.Kind, e.Amount, e.Currency, e.ExternalID, b2i(e.Succeeded), e.DeclineCode, ms(e.CreatedAt)}})
	if err != nil {
		return simulator.Entry{}, s.wrap("store.RecordLedger", err)
	}
	if n[0] == 1 {
		out := e // ours is the entry: nothing to read back
		out.CreatedAt = fromMS(ms(e.CreatedAt))
		return out, nil
	}
	// Entries are never removed: the one that was there is still there.
	out, ok, err := lookupLedger(ctx, s.ledger.Reader(), e.AccountID, e.TxnID)
	if err == nil && !ok {
		err = errors.New("ledger entry vanished")
	}
	return out, s.wrap("store.RecordLedger", err)
}

// LookupLedger implements simulator.Ledger. Where the ledger has its own
// engine, an entry not found there is looked for in the main database,
// which held the ledger before it moved (entries of charges still
// inprogress across the upgrade).
func (s *Store) LookupLedger(ctx context.Context, account, txnID string) (simulator.Entry, bool, error) {
	e, ok, err := lookupLedger(keyed(ctx), s.ledger.Reader(), account, txnID)
	if err == nil && !ok && s.ledger != s.eng {
		e, ok, err = lookupLedger(ctx, s.eng.Reader(), account, txnID)
	}
	return e, ok, s.wrap("store.LookupLedger", err)
}

func lookupLedger(ctx context.Context, q Querier, account, txnID string) (simulator.Entry, bool, error) {
	var e simulator.Entry
	var ok int
	var created int64
	err := q.QueryRowContext(ctx, `SELECT txn_id, account_id, kind, amount, currency, external_id, succeeded, decline_code, created_at
		FROM simulator_ledger WHERE txn_id = $1 AND account_id = $2`, txnID, account).
		Scan(&e.TxnID, &e.AccountID, &e.Kind, &e.Amount, &e.Currency, &e.ExternalID, &ok, &e.DeclineCode, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return e, false, nil
	}
	e.Succeeded, e.CreatedAt = ok == 1, fromMS(created)
	return e, err == nil, err
}

// CountChargesInProgress counts charges whose outcome is unknown (metrics).
func (s *Store) CountChargesInProgress(ctx context.Context) (int, error) {
	var n int
	err := s.eng.Reader().QueryRowContext(ctx, `SELECT count(*) FROM charges WHERE status = 'inprogress'`).Scan(&n)
	return n, s.wrap("store.CountChargesInProgress", err)
}

// SettleTxn implements charge.Store: the transaction's outcome and the
// charge's new state, conditional on the transaction still being inprogress.
func (s *Store) SettleTxn(ctx context.Context, c *charge.Charge, txnID string, st *charge.Stats) (bool, error) {
	var t *charge.Txn
	for i := range c.Transactions {
		if c.Transactions[i].ID == txnID {
			t = &c.Transactions[i]
		}
	}
	if t == nil {
		return false, errs.Wrap("store.SettleTxn", errors.New("no such transaction on the charge"))
	}
	var decline any
	if t.Decline != nil {
		b, err := json.Marshal(t.Decline)
		if err != nil {
			return false, errs.Wrap("store.SettleTxn", err)
		}
		decline = string(b)
	}
	var next int64
	if !t.NextAttemptAt.IsZero() {
		next = ms(t.NextAttemptAt)
	}
	var ok bool
	// Each decision below is the conditional UPDATE of the row it changes:
	// row locks are enough (LockingWriter).
	err := writeLocking(ctx, s.eng, func(q Querier) error {
		ok = false
		res, err := q.ExecContext(ctx, `UPDATE charge_transactions SET status = $1, external_id = $2, decline = $3, next_attempt_at = $4, updated_at = $5
			WHERE id = $6 AND charge_id = $7 AND status = 'inprogress'`, t.Status, t.ExternalID, decline, next, ms(t.UpdatedAt), t.ID, c.ID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return err
		}
		if _, err := q.ExecContext(ctx, `UPDATE charges SET status = $1, external_id = $2, captured = $3, refunded = $4, updated_at = $5
			WHERE id = $6 AND account_id = $7`, c.Status, c.ExternalID, c.Captured, c.Refunded, ms(c.UpdatedAt), c.ID, c.AccountID); err != nil {
			return err
		}
		if err := addStats(ctx, q, c.AccountID, st); err != nil {
			return err
		}
		ok = true
		return nil
	})
	return ok, s.wrap("store.SettleTxn", err)
}
