package app_test

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

// killProc is a real switchyard process.
type killProc struct {
	cmd    *exec.Cmd
	addr   string
	lines  []string
	stderr *bytes.Buffer
}

// killBuild builds the binary once per test.
func killBuild(t *testing.T) string {
	t.Helper()
	root, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
			break
		}
		if filepath.Dir(root) == root {
			t.Fatal("no go.mod above the package")
		}
		root = filepath.Dir(root)
	}
	bin := filepath.Join(t.TempDir(), "switchyard")
	build := exec.Command("go", "build", "-o", bin, "./cmd/switchyard")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func killStart(t *testing.T, bin string, args ...string) *killProc {
	t.Helper()
	p := &killProc{cmd: exec.Command(bin, append([]string{"serve", "--listen", "127.0.0.1:0"}, args...)...), stderr: &bytes.Buffer{}}
	p.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			_ = p.cmd.Wait()
		}
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.lines = append(p.lines, sc.Text())
			if a, ok := strings.CutPrefix(sc.Text(), "switchyard listening on http://"); ok {
				p.addr = a
				return
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatalf("no listening line")
	}
	if p.addr == "" {
		t.Fatalf("server did not start: %q", p.lines)
	}
	return p
}

func (p *killProc) key() string {
	for _, l := range p.lines {
		if k, ok := strings.CutPrefix(l, "secret key: "); ok {
			return k
		}
	}
	return ""
}

func killCall(t *testing.T, addr, key, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var rdr io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rdr = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, "http://"+addr+path, rdr)
	req.Header.Set("x-user-secret-key", key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil
	}
	defer res.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(res.Body).Decode(&m)
	return res.StatusCode, m
}

// TestKillBetweenGatewayAndOutcome kills the server (SIGKILL) after the
// Simulator has recorded a charge but before Switchyard has recorded the
// outcome; after a restart the reconciler must settle the charge from the
// gateway's ledger, without charging again (spec §8.8, issue 7).
func TestKillBetweenGatewayAndOutcome(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := killBuild(t)
	data := t.TempDir()
	// A long Simulator latency holds the charge between the ledger write
	// and the answer.
	p := killStart(t, bin, "--data-dir", data, "--simulator-latency", "30s", "--reconcile-interval", "200ms")
	key := p.key()
	st, m := killCall(t, p.addr, key, "POST", "/v1/vault/payment_sources", map[string]any{"card_name": "Kill Test",
		"card_number": "4242424242424242", "expire_month": 12, "expire_year": 2031})
	if st != 201 {
		t.Fatalf("vault: %d %v", st, m)
	}
	vt := m["resource"].(map[string]any)["data"].(map[string]any)["vault_token"].(string)
	st, m = killCall(t, p.addr, key, "POST", "/v1/customers", map[string]any{"payment_source": map[string]any{"vault_token": vt}})
	if st != 201 {
		t.Fatalf("customer: %d %v", st, m)
	}
	customer := m["resource"].(map[string]any)["data"].(map[string]any)["_id"].(string)

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		killCall(t, p.addr, key, "POST", "/v1/charges", map[string]any{"amount": "12.34", "currency": "AUD", "customer_id": customer})
	}()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(data, "switchyard.db")+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// The Simulator keeps its ledger in a file of its own.
	ldb, err := sql.Open("sqlite", "file:"+filepath.Join(data, "simulator.db")+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer ldb.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int
		_ = ldb.QueryRowContext(context.Background(), "SELECT count(*) FROM simulator_ledger").Scan(&n)
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the Simulator never recorded the charge; stderr: %s", p.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = p.cmd.Wait()
	wg.Wait()

	var status string
	if err := db.QueryRowContext(context.Background(), "SELECT status FROM charges").Scan(&status); err != nil || status != "inprogress" {
		t.Fatalf("after the kill the charge is %q (%v), want inprogress", status, err)
	}

	q := killStart(t, bin, "--data-dir", data, "--reconcile-interval", "200ms")
	deadline = time.Now().Add(30 * time.Second)
	for {
		st, m := killCall(t, q.addr, key, "GET", "/v1/charges", nil)
		if st == 200 {
			list := m["resource"].(map[string]any)["data"].([]any)
			if len(list) != 1 {
				t.Fatalf("charges after restart: %v", list)
			}
			c := list[0].(map[string]any)
			if c["status"] == "complete" {
				if c["external_id"] == nil || c["captured_amount"] != 12.34 {
					t.Fatalf("settled charge: %v", c)
				}
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the charge was not settled after restart: %d %v", st, m)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var ledger int
	if err := ldb.QueryRowContext(context.Background(), "SELECT count(*) FROM simulator_ledger").Scan(&ledger); err != nil || ledger != 1 {
		t.Fatalf("the gateway was called %d times (%v), want once", ledger, err)
	}
}
