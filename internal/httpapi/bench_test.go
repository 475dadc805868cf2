package httpapi_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"

	"switchyard/internal/apitest"
)

// Benchmarks through the real router and a real listener, in parallel
// (b.SetParallelism scales goroutines). Throughput targets are measured
// with cmd/switchyard-load against the binary; these are for profiling:
//
//	go test -run x -bench . -cpuprofile cpu.out ./internal/httpapi/

func benchPost(b *testing.B, e *apitest.Env, path string, body func(i int64) []byte, want int) {
	b.Helper()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var n atomic.Int64
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("POST", e.URL+path, bytes.NewReader(body(n.Add(1))))
			req.Header.Set("x-user-secret-key", e.Secret)
			res, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != want {
				b.Errorf("status %d", res.StatusCode)
				return
			}
		}
	})
}

func BenchmarkGatewayCreate(b *testing.B) {
	e := apitest.New(b)
	benchPost(b, e, "/v1/gateways", func(i int64) []byte {
		return []byte(fmt.Sprintf(`{"type":"Simulator","name":"bench-%d"}`, i))
	}, 201)
}

func BenchmarkCustomerCreateFlow1(b *testing.B) {
	e := apitest.New(b)
	benchPost(b, e, "/v1/customers", func(i int64) []byte {
		return []byte(fmt.Sprintf(`{"first_name":"Bench","email":"b%d@example.com","payment_source":{"gateway_id":%q,"card_name":"Bench","card_number":"4111111111111111","expire_month":12,"expire_year":2031}}`, i, e.Gateway))
	}, 201)
}

func BenchmarkCustomerGet(b *testing.B) {
	e := apitest.New(b)
	r := e.Do("POST", "/v1/customers", map[string]any{"payment_source": map[string]any{"gateway_id": e.Gateway,
		"card_name": "Bench", "card_number": "4111111111111111", "expire_month": 12, "expire_year": 2031}})
	id := r.Data()["_id"].(string)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("GET", e.URL+"/v1/customers/"+id, nil)
			req.Header.Set("x-user-secret-key", e.Secret)
			res, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
	})
}
