package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	_ "modernc.org/sqlite" // database/sql driver "sqlite"

	"switchyard/internal/search"
)

// Bulk seeding (-seed N) writes customers straight into a STOPPED server's
// embedded store, for the measurements that need a million customers in one
// account (issue 5). Each customer gets one active, gateway-agnostic
// payment source (as flow 4 makes), all linked to one real permanent vault
// record that was created through the HTTP API, so its card data is sealed
// by the server's keyring and every read path works as on real data.
//
// With -url the tool first reads the account id (company_id of GET
// /v1/gateways) and makes that vault record over HTTP, then waits (up to
// seedWaitStop) until the server no longer answers before it opens the
// file. Without -url the server must already be stopped: the account is
// the one whose secret key hash matches -key, and the vault record is
// -vault-token or the account's newest active permanent one.

const (
	seedMax      = 10_000_000
	seedWaitStop = 2 * time.Minute
	dbFile       = "switchyard.db" // internal/store/sqlite.Path
)

func checkSeedFlags(cfg *config) error {
	switch {
	case cfg.seed < 0 || cfg.seed > seedMax:
		return fmt.Errorf("-seed must be in [1, %d], got %d", seedMax, cfg.seed)
	case cfg.dataDir == "":
		return errors.New("-data-dir is required with -seed")
	case cfg.key == "":
		return errors.New("-key (the account's secret key) is required with -seed")
	case cfg.batch < 1 || cfg.batch > 1_000_000:
		return fmt.Errorf("-batch must be in [1, 1000000], got %d", cfg.batch)
	}
	if cfg.url != "" {
		u, err := url.Parse(cfg.url)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("-url must be an absolute http(s) URL, got %q", cfg.url)
		}
		cfg.url = strings.TrimRight(cfg.url, "/")
	}
	if st, err := os.Stat(filepath.Join(cfg.dataDir, dbFile)); err != nil || !st.Mode().IsRegular() {
		return fmt.Errorf("-data-dir %q holds no %s", cfg.dataDir, dbFile)
	}
	return nil
}

// seedResult is what -seed prints.
type seedResult struct {
	Customers   int     `json:"customers"`
	Rows        int     `json:"rows"` // customers + payment_sources
	AccountID   string  `json:"account_id"`
	VaultToken  string  `json:"vault_token"`
	FirstRef    int     `json:"first_reference"` // references are REF-<first> … REF-<first+customers-1>
	Batch       int     `json:"batch"`
	Seconds     float64 `json:"seconds"`
	CustomersPS float64 `json:"customers_per_s"`
	RowsPS      float64 `json:"rows_per_s"`
}

func (r seedResult) text() string {
	return fmt.Sprintf("seeded customers=%d rows=%d account=%s vault_token=%s references=REF-%d..REF-%d batch=%d seconds=%.1f customers/s=%.0f rows/s=%.0f",
		r.Customers, r.Rows, r.AccountID, r.VaultToken, r.FirstRef, r.FirstRef+r.Customers-1, r.Batch, r.Seconds, r.CustomersPS, r.RowsPS)
}

func runSeed(ctx context.Context, cfg config, stdout, stderr io.Writer) int {
	res, code, err := seed(ctx, cfg, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "switchyard-load: seed:", err)
		return code
	}
	if cfg.json {
		if err := json.NewEncoder(stdout).Encode(res); err != nil {
			fmt.Fprintln(stderr, "switchyard-load:", err)
			return 1
		}
	} else {
		fmt.Fprintln(stdout, res.text())
	}
	return 0
}

func seed(ctx context.Context, cfg config, stderr io.Writer) (seedResult, int, error) {
	var httpAccount string
	token := cfg.vaultToken
	if cfg.url != "" {
		var err error
		if httpAccount, token, err = seedOverHTTP(ctx, cfg, stderr); err != nil {
			return seedResult{}, 1, err
		}
	}

	db, err := openSeedDB(cfg.dataDir)
	if err != nil {
		return seedResult{}, 1, err
	}
	defer db.Close()
	// The exclusive lock is taken here: a server still holding the file
	// open makes this fail instead of racing it.
	conn, err := db.Conn(ctx)
	if err != nil {
		return seedResult{}, 1, err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN EXCLUSIVE"); err != nil {
		return seedResult{}, 1, fmt.Errorf("cannot lock %s (is the server still running? stop it first): %w", dbFile, err)
	}
	_, _ = conn.ExecContext(ctx, "ROLLBACK")

	account, err := seedAccount(ctx, conn, cfg.key)
	if err != nil {
		return seedResult{}, 1, err
	}
	if httpAccount != "" && httpAccount != account {
		return seedResult{}, 1, fmt.Errorf("GET /v1/gateways says company_id %s but -key belongs to account %s in %s: wrong -data-dir?", httpAccount, account, cfg.dataDir)
	}
	if token, err = seedVaultRecord(ctx, conn, account, token); err != nil {
		return seedResult{}, 1, err
	}
	var first int
	if err := conn.QueryRowContext(ctx, `SELECT COALESCE(SUM(n), 0) FROM customer_counts WHERE account_id = $1`, account).Scan(&first); err != nil {
		return seedResult{}, 1, err
	}

	start := time.Now()
	gen := newSeedGen(first, cfg.seed, start)
	for done := 0; done < cfg.seed; {
		n := min(cfg.batch, cfg.seed-done)
		if err := seedBatch(ctx, conn, account, token, gen, n); err != nil {
			return seedResult{}, 1, fmt.Errorf("after %d customers: %w", done, err)
		}
		done += n
		if done%100_000 < n && done < cfg.seed {
			fmt.Fprintf(stderr, "switchyard-load: seed: %d/%d customers, %.0f/s\n", done, cfg.seed, float64(done)/time.Since(start).Seconds())
		}
	}
	// Leave a clean file: everything in the main database, WAL emptied.
	if _, err := conn.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		return seedResult{}, 1, fmt.Errorf("checkpoint: %w", err)
	}
	el := time.Since(start).Seconds()
	return seedResult{
		Customers: cfg.seed, Rows: 2 * cfg.seed, AccountID: account, VaultToken: token, FirstRef: first, Batch: cfg.batch,
		Seconds: el, CustomersPS: float64(cfg.seed) / el, RowsPS: float64(2*cfg.seed) / el,
	}, 0, nil
}

// seedOverHTTP reads the account id and makes the vault record (unless
// -vault-token names one) while the server runs, then waits for it to stop.
func seedOverHTTP(ctx context.Context, cfg config, stderr io.Writer) (account, token string, err error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	defer tr.CloseIdleConnections()
	su := &setupper{hc: &http.Client{Transport: tr}, key: cfg.key}
	var gws []struct {
		CompanyID string `json:"company_id"`
	}
	if err := su.do(ctx, http.MethodGet, cfg.url+"/v1/gateways?limit=1", nil, http.StatusOK, &gws); err != nil {
		return "", "", err
	}
	if len(gws) == 0 || gws[0].CompanyID == "" {
		return "", "", setupError{"GET /v1/gateways: no gateway to read company_id from"}
	}
	account, token = gws[0].CompanyID, cfg.vaultToken
	if token == "" {
		if token, err = su.vaultToken(ctx, cfg.url); err != nil {
			return "", "", err
		}
	}
	tr.CloseIdleConnections()
	fmt.Fprintf(stderr, "switchyard-load: seed: account %s, vault token %s; waiting for the server at %s to stop\n", account, token, cfg.url)
	if err := waitStopped(ctx, cfg.url, seedWaitStop); err != nil {
		return "", "", err
	}
	return account, token, nil
}

// waitStopped polls base until it no longer accepts connections.
func waitStopped(ctx context.Context, base string, limit time.Duration) error {
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: time.Second}
	deadline := time.Now().Add(limit)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/healthz", nil)
		if err != nil {
			return err
		}
		resp, err := hc.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return nil // refused (or no answer within a second): stopped
		}
		resp.Body.Close()
		if time.Now().After(deadline) {
			return fmt.Errorf("the server at %s still answers after %s: stop it, then seed", base, limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// openSeedDB opens the store for a bulk load: one connection holding an
// exclusive lock (so no server can share the file meanwhile), NORMAL sync
// (WAL: fsync at checkpoints; the last checkpoint is explicit) and a cache
// big enough for the random-order primary-key indexes of a million rows.
func openSeedDB(dataDir string) (*sql.DB, error) {
	q := strings.Join([]string{
		"_pragma=busy_timeout(2000)",
		"_pragma=locking_mode(EXCLUSIVE)",
		"_pragma=journal_mode(WAL)",
		"_pragma=synchronous(NORMAL)",
		"_pragma=foreign_keys(ON)",
		"_pragma=cache_size(-524288)", // 512 MiB
		"_txlock=immediate",
	}, "&")
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dataDir, dbFile)+"?"+q)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

func seedAccount(ctx context.Context, conn *sql.Conn, key string) (string, error) {
	sum := sha256.Sum256([]byte(key))
	var id string
	err := conn.QueryRowContext(ctx, `SELECT id FROM accounts WHERE secret_hash = $1`, hex.EncodeToString(sum[:])).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", errors.New("no account in the store has this -key")
	}
	return id, err
}

// seedVaultRecord checks token (or picks the account's newest usable one):
// an active permanent record of account holding sealed card data.
func seedVaultRecord(ctx context.Context, conn *sql.Conn, account, token string) (string, error) {
	const usable = `account_id = $1 AND kind = 'permanent' AND status = 'active' AND sealed IS NOT NULL`
	if token == "" {
		err := conn.QueryRowContext(ctx, `SELECT token FROM vault_records WHERE `+usable+` ORDER BY created_at DESC LIMIT 1`, account).Scan(&token)
		if errors.Is(err, sql.ErrNoRows) {
			return "", errors.New("the account has no permanent vault record: create one through the HTTP API first (POST /v1/vault/payment_sources) or give -url")
		}
		return token, err
	}
	var n int
	if err := conn.QueryRowContext(ctx, `SELECT count(*) FROM vault_records WHERE token = $2 AND `+usable, account, token).Scan(&n); err != nil {
		return "", err
	}
	if n != 1 {
		return "", fmt.Errorf("vault token %s is not an active permanent record of account %s", token, account)
	}
	return token, nil
}

const (
	seedCustomerSQL = `INSERT INTO customers (id, account_id, archived, first_name, last_name, email, phone, reference, description,
 company_name, search, meta, default_source, successful_transactions, total_collected_amount, created_at, updated_at)
 VALUES ($1, $2, 0, $3, $4, $5, $6, $7, '', $8, $9, NULL, $10, 0, 0, $11, $11)`
	seedSourceSQL = `INSERT INTO payment_sources (id, account_id, customer_id, vault_token, status, gateway_id, ref_token, gateway_ref,
 address_line1, address_line2, address_line3, address_city, address_state, address_postcode, address_country, created_at, updated_at)
 VALUES ($1, $2, $3, $4, 'active', '', '', '', '', '', '', '', '', '', '', $5, $5)`
	// Totals are sharded (see internal/store); any shard may hold the
	// seeded ones, since a total is the sum of the shards.
	seedCountSQL = `INSERT INTO customer_counts (account_id, archived, shard, n) VALUES ($1, 0, 0, $2)
 ON CONFLICT (account_id, archived, shard) DO UPDATE SET n = customer_counts.n + excluded.n`
)

func seedBatch(ctx context.Context, conn *sql.Conn, account, token string, gen *seedGen, n int) (err error) {
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_, _ = conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
		}
	}()
	cst, err := conn.PrepareContext(ctx, seedCustomerSQL)
	if err != nil {
		return err
	}
	defer cst.Close()
	sst, err := conn.PrepareContext(ctx, seedSourceSQL)
	if err != nil {
		return err
	}
	defer sst.Close()
	for range n {
		c := gen.next()
		if _, err := cst.ExecContext(ctx, c.id, account, c.first, c.last, c.email, c.phone, c.reference, c.company, c.search(),
			c.sourceID, c.createdMS); err != nil {
			return err
		}
		if _, err := sst.ExecContext(ctx, c.sourceID, account, c.id, token, c.createdMS); err != nil {
			return err
		}
	}
	if _, err := conn.ExecContext(ctx, seedCountSQL, account, n); err != nil {
		return err
	}
	_, err = conn.ExecContext(ctx, "COMMIT")
	return err
}

// seedGen makes varied, realistic customers: names from lists, a unique
// email and reference (REF-<n>) each, a company on three in four, ids as
// random 24-hex like the server's, created_at one second apart and older
// than now.
type seedGen struct {
	n, end int
	rng    *mrand.ChaCha8
	base   int64 // created_at of the last customer, ms
	first  int
}

func newSeedGen(first, count int, now time.Time) *seedGen {
	var s [32]byte
	_, _ = rand.Read(s[:]) // crypto/rand.Read never fails
	return &seedGen{n: first, first: first, end: first + count, rng: mrand.NewChaCha8(s), base: now.UnixMilli() - 1000}
}

type seedCustomer struct {
	id, sourceID              string
	first, last, email, phone string
	company, reference        string
	createdMS                 int64
}

// search is the customers.search column: what customer.Text.Search makes.
func (c seedCustomer) search() string {
	return search.Text(c.first, c.last, c.email, c.company, c.reference)
}

var (
	seedFirst = []string{"Ada", "Alan", "Grace", "Katherine", "Edsger", "Barbara", "Donald", "Margaret", "Ken", "Radia",
		"Dennis", "Frances", "John", "Hedy", "Tim", "Sophie", "Linus", "Annie", "Claude", "Mary", "Niklaus", "Shafi",
		"Leslie", "Jean", "Guido", "Karen", "Bjarne", "Lynn", "Whitfield", "Evelyn", "Vint", "Joan", "Rob", "Carol",
		"Brian", "Anita", "Ivan", "Adele", "Robin", "Elaine"}
	seedLast = []string{"Lovelace", "Turing", "Hopper", "Johnson", "Dijkstra", "Liskov", "Knuth", "Hamilton", "Thompson",
		"Perlman", "Ritchie", "Allen", "McCarthy", "Lamarr", "Berners-Lee", "Wilson", "Torvalds", "Easley", "Shannon",
		"Keller", "Wirth", "Goldwasser", "Lamport", "Bartik", "van Rossum", "Jones", "Stroustrup", "Conway", "Diffie",
		"Boyd", "Cerf", "Clarke", "Pike", "Shaw", "Kernighan", "Borg", "Sutherland", "Goldberg", "Milner", "Rich"}
	seedCompany = []string{"Acme Pty Ltd", "Globex", "Initech", "Umbrella Corp", "Stark Industries", "Wayne Enterprises",
		"Hooli", "Vandelay Industries", "Soylent", "Tyrell Corp", "Cyberdyne", "Wonka Industries", "Oceanic Airlines",
		"Dunder Mifflin", "Pied Piper", "Aperture Science", "Black Mesa", "Massive Dynamic", "Prestige Worldwide",
		"Bluth Company", "Sterling Cooper", "Monsters Inc", "Gringotts", "Nakatomi Trading", "Los Pollos Hermanos"}
	seedDomain = []string{"example.com", "example.org", "example.net", "mail.example.com", "shop.example.com.au"}
)

func (g *seedGen) id() string {
	var b [12]byte
	_, _ = g.rng.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (g *seedGen) next() seedCustomer {
	n := g.n
	g.n++
	first := seedFirst[n%len(seedFirst)]
	last := seedLast[(n/len(seedFirst)+n/7)%len(seedLast)]
	num := strconv.Itoa(n)
	c := seedCustomer{
		id: g.id(), sourceID: g.id(), first: first, last: last,
		email:     strings.ToLower(first+"."+strings.ReplaceAll(last, " ", "")) + num + "@" + seedDomain[n%len(seedDomain)],
		phone:     fmt.Sprintf("+614%08d", n%100_000_000),
		reference: "REF-" + num,
		createdMS: g.base - int64(g.end-1-n)*1000,
	}
	if n%4 != 3 {
		c.company = seedCompany[(n/4)%len(seedCompany)]
	}
	return c
}
