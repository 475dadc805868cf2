package app_test

// Two real server processes on one PostgreSQL database (issue 6): what one
// node writes the other reads; a one-time token used on both at once is
// consumed once; one idempotency key sent to both at once makes one
// customer and one charge. And a database that goes away answers 503, then
// recovers by itself.

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"switchyard/internal/pgtest"
)

func (p *killProc) gatewayID() string {
	for _, l := range p.lines {
		if k, ok := strings.CutPrefix(l, "gateway id: "); ok {
			return k
		}
	}
	return ""
}

func (p *killProc) publicKey() string {
	for _, l := range p.lines {
		if k, ok := strings.CutPrefix(l, "public key: "); ok {
			return k
		}
	}
	return ""
}

func mnData(t *testing.T, m map[string]any) map[string]any {
	t.Helper()
	res, _ := m["resource"].(map[string]any)
	d, _ := res["data"].(map[string]any)
	if d == nil {
		t.Fatalf("no resource.data in %v", m)
	}
	return d
}

func mnCount(t *testing.T, addr, key, path string) int {
	t.Helper()
	st, m := killCall(t, addr, key, "GET", path, nil)
	if st != 200 {
		t.Fatalf("GET %s: %d %v", path, st, m)
	}
	return int(m["resource"].(map[string]any)["count"].(float64))
}

// mnPost sends a raw JSON body with the secret key and extra headers.
func mnPost(addr, key, path, body string, headers ...string) int {
	req, _ := mnRequest("POST", "http://"+addr+path, body)
	req.Header.Set("x-user-secret-key", key)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := mnClient.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode
}

func TestTwoNodesOnePostgreSQL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	pgtest.Require(t)
	db := pgtest.NewDatabase(t)
	keys := pgKeyFile(t)
	bin := killBuild(t)
	a := killStart(t, bin, "--database-url", db, "--master-key-file", keys)
	b := killStart(t, bin, "--database-url", db, "--master-key-file", keys)
	sk, pk := a.key(), a.publicKey()
	if sk == "" || b.key() != "" {
		t.Fatalf("the first node must make the sandbox and the second must not: %q / %q", a.lines, b.lines)
	}

	// Create on A, read and update on B, read the update on A.
	st, m := killCall(t, a.addr, sk, "POST", "/v1/vault/payment_sources", map[string]any{"card_name": "Two Nodes",
		"card_number": "4242424242424242", "expire_month": 12, "expire_year": 2031})
	if st != 201 {
		t.Fatalf("vault on A: %d %v", st, m)
	}
	vt := mnData(t, m)["vault_token"].(string)
	st, m = killCall(t, a.addr, sk, "POST", "/v1/customers", map[string]any{"first_name": "Ada", "payment_source": map[string]any{"vault_token": vt}})
	if st != 201 {
		t.Fatalf("customer on A: %d %v", st, m)
	}
	id := mnData(t, m)["_id"].(string)
	if st, m = killCall(t, b.addr, sk, "GET", "/v1/customers/"+id, nil); st != 200 || mnData(t, m)["first_name"] != "Ada" {
		t.Fatalf("read on B: %d %v", st, m)
	}
	if st, m = killCall(t, b.addr, sk, "POST", "/v1/customers/"+id, map[string]any{"first_name": "Grace"}); st != 200 {
		t.Fatalf("update on B: %d %v", st, m)
	}
	if st, m = killCall(t, a.addr, sk, "GET", "/v1/customers/"+id, nil); st != 200 || mnData(t, m)["first_name"] != "Grace" {
		t.Fatalf("A does not see B's update: %d %v", st, m)
	}

	// One one-time token, used on both nodes at once: exactly one use wins.
	req, _ := mnRequest("POST", "http://"+a.addr+"/v1/payment_sources/tokens", `{"card_name":"Race","card_number":"4111111111111111","expire_month":1,"expire_year":2031}`)
	req.Header.Set("x-user-public-key", pk)
	res, err := mnClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	tok := mnDecode(t, res)["resource"].(map[string]any)["data"].(string)
	before := mnCount(t, a.addr, sk, "/v1/customers")
	statuses := mnRace(10, func(i int) int {
		addr := a.addr
		if i%2 == 1 {
			addr = b.addr
		}
		return mnPost(addr, sk, "/v1/customers", `{"token":"`+tok+`"}`)
	})
	if n := mnCountOf(statuses, 201); n != 1 || mnCountOf(statuses, 400) != 9 {
		t.Fatalf("token uses on two nodes: %v, want one 201 and nine 400", statuses)
	}
	if after := mnCount(t, b.addr, sk, "/v1/customers"); after != before+1 {
		t.Fatalf("customers %d → %d, want one more", before, after)
	}

	// One idempotency key sent to both nodes at once: one customer, one charge.
	before = mnCount(t, a.addr, sk, "/v1/customers")
	statuses = mnRace(10, func(i int) int {
		addr := a.addr
		if i%2 == 1 {
			addr = b.addr
		}
		return mnPost(addr, sk, "/v1/customers", `{"first_name":"Idem","payment_source":{"vault_token":"`+vt+`"}}`, "Idempotency-Key", "two-nodes-customer")
	})
	if mnCountOf(statuses, 201)+mnCountOf(statuses, 409) != 10 || mnCountOf(statuses, 201) < 1 {
		t.Fatalf("idempotent creates: %v", statuses)
	}
	if after := mnCount(t, a.addr, sk, "/v1/customers"); after != before+1 {
		t.Fatalf("customers %d → %d with one idempotency key, want one more (%v)", before, after, statuses)
	}
	beforeCharges := mnCount(t, a.addr, sk, "/v1/charges")
	statuses = mnRace(10, func(i int) int {
		addr := a.addr
		if i%2 == 1 {
			addr = b.addr
		}
		return mnPost(addr, sk, "/v1/charges", `{"amount":"9.99","currency":"AUD","customer_id":"`+id+`"}`, "Idempotency-Key", "two-nodes-charge")
	})
	if mnCountOf(statuses, 201)+mnCountOf(statuses, 409) != 10 || mnCountOf(statuses, 201) < 1 {
		t.Fatalf("idempotent charges: %v", statuses)
	}
	if after := mnCount(t, b.addr, sk, "/v1/charges"); after != beforeCharges+1 {
		t.Fatalf("charges %d → %d with one idempotency key, want one more (%v)", beforeCharges, after, statuses)
	}
}

// TestDatabaseOutageAnswers503 cuts the node's connection to PostgreSQL:
// requests and /healthz answer 503 (never 500), and the node recovers by
// itself when the database is back.
func TestDatabaseOutageAnswers503(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	c := pgtest.Require(t)
	db := pgtest.NewDatabase(t)
	px := c.NewProxy(t)
	url := px.URL(pgtest.Name(db), "connect_timeout=2")
	bin := killBuild(t)
	p := killStart(t, bin, "--database-url", url, "--master-key-file", pgKeyFile(t))
	sk := p.key()
	if n := mnCount(t, p.addr, sk, "/v1/gateways"); n != 1 {
		t.Fatalf("gateways %d", n)
	}

	px.Cut()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, m := killCall(t, p.addr, sk, "GET", "/v1/gateways", nil)
		if st == 503 {
			e := m["error"].(map[string]any)
			if e["code"] != "ServiceUnavailable" || m["error_summary"].(map[string]any)["code"] != "service_unavailable" {
				t.Fatalf("503 body: %v", m)
			}
			break
		}
		if st == 500 || time.Now().After(deadline) {
			t.Fatalf("during the outage: %d %v", st, m)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if res, err := mnClient.Get("http://" + p.addr + "/healthz"); err != nil || res.StatusCode != 503 {
		t.Fatalf("healthz during the outage: %v %v", res, err)
	}

	px.Restore()
	deadline = time.Now().Add(30 * time.Second)
	for {
		st, _ := killCall(t, p.addr, sk, "GET", "/v1/gateways", nil)
		if st == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery after the database came back: %d", st)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if res, err := mnClient.Get("http://" + p.addr + "/healthz"); err != nil || res.StatusCode != 200 {
		t.Fatalf("healthz after recovery: %v %v", res, err)
	}
}

func mnRace(n int, f func(i int) int) []int {
	out := make([]int, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			out[i] = f(i)
		}(i)
	}
	close(start)
	wg.Wait()
	return out
}

func mnCountOf(xs []int, v int) int {
	n := 0
	for _, x := range xs {
		if x == v {
			n++
		}
	}
	return n
}

var mnClient = &http.Client{Timeout: 30 * time.Second}

func mnRequest(method, url, body string) (*http.Request, error) {
	return http.NewRequest(method, url, strings.NewReader(body))
}

func mnDecode(t *testing.T, res *http.Response) map[string]any {
	t.Helper()
	defer res.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(res.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestKeyFreedAfterOutage: a keyed create that fails with 503 because the
// database went away mid-request leaves its key claimed (the release fails
// too); the node keeps trying, so soon after the database returns the key
// is free and a retry runs, instead of 409 until the claim lapses.
func TestKeyFreedAfterOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	c := pgtest.Require(t)
	db := pgtest.NewDatabase(t)
	px := c.NewProxy(t)
	bin := killBuild(t)
	p := killStart(t, bin, "--database-url", px.URL(pgtest.Name(db), "connect_timeout=2"), "--master-key-file", pgKeyFile(t),
		"--simulator-latency", "1500ms")
	sk := p.key()
	body, _ := json.Marshal(map[string]any{"first_name": "Ada", "payment_source": map[string]any{"gateway_id": p.gatewayID(),
		"card_name": "Ada Lovelace", "card_number": "4111111111111111", "expire_month": 9, "expire_year": 2030}})
	post := func() int {
		req, _ := http.NewRequest("POST", "http://"+p.addr+"/v1/customers", bytes.NewReader(body))
		req.Header.Set("x-user-secret-key", sk)
		req.Header.Set("Idempotency-Key", "outage-1")
		res, err := mnClient.Do(req)
		if err != nil {
			t.Fatalf("POST: %v", err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	first := make(chan int, 1)
	go func() { first <- post() }()
	time.Sleep(500 * time.Millisecond) // the create is in its gateway call
	px.Cut()
	if st := <-first; st != 503 {
		t.Fatalf("create during the outage: %d, want 503", st)
	}
	px.Restore()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := post()
		if st == 201 {
			break
		}
		if st != 409 && st != 503 || time.Now().After(deadline) {
			t.Fatalf("retry after the outage: %d", st)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
