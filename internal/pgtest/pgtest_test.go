package pgtest_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"switchyard/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func query(t *testing.T, url, sql string) string {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var s string
	if err := conn.QueryRow(context.Background(), sql).Scan(&s); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return s
}

// Each test gets its own migrated database; the cluster is the test kind.
func TestNewDatabase(t *testing.T) {
	a, b := pgtest.NewDatabase(t), pgtest.NewDatabase(t)
	if a == b || pgtest.Name(a) == pgtest.Name(b) {
		t.Fatalf("same database twice: %s", a)
	}
	if n := query(t, a, `SELECT count(*)::text FROM schema_migrations`); n == "0" {
		t.Error("template not migrated")
	}
	conn, err := pgx.Connect(context.Background(), a)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), `INSERT INTO key_versions (version, retired) VALUES (9, 1)`); err != nil {
		t.Fatal(err)
	}
	if n := query(t, b, `SELECT count(*)::text FROM key_versions`); n != "0" {
		t.Errorf("databases share rows: %s", n)
	}
	for setting, want := range map[string]string{"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"} {
		if got := query(t, a, `SHOW `+setting); got != want {
			t.Errorf("%s = %s, want %s", setting, got, want)
		}
	}
	if n := query(t, pgtest.NewEmptyDatabase(t), `SELECT count(*)::text FROM pg_tables WHERE schemaname = 'public'`); n != "0" {
		t.Errorf("empty database has %s tables", n)
	}
}
