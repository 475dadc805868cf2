package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// result is one run's figure; the text line and the -json object carry the
// same fields.
type result struct {
	Scenario        string  `json:"scenario"`
	Concurrency     int     `json:"c"`
	Duration        string  `json:"duration"`
	DurationSeconds float64 `json:"duration_seconds"` // measured window actually run
	Warmup          string  `json:"warmup"`
	Rate            float64 `json:"rate"` // 0 = closed loop
	Requests        int64   `json:"requests"`
	Errors          int64   `json:"errors"`
	Dropped         int64   `json:"dropped"` // open loop: arrivals skipped, all workers busy
	// Unfinished counts requests still unanswered when the run ended (not
	// in requests): when requests is 0 and this is not, one request takes
	// longer than the whole run.
	Unfinished   int64    `json:"unfinished"`
	RPS          float64  `json:"rps"`
	P50ms        float64  `json:"p50_ms"`
	P90ms        float64  `json:"p90_ms"`
	P99ms        float64  `json:"p99_ms"`
	MaxMs        float64  `json:"max_ms"`
	ErrorSamples []string `json:"error_samples,omitempty"`
	Dir          string   `json:"dir,omitempty"` // -scenario fsync: where the temp file was
}

func (r result) text() string {
	if r.Scenario == "fsync" {
		return fmt.Sprintf("scenario=fsync dir=%s duration=%s fsyncs=%d fsyncs/s=%.1f p50=%.3fms p90=%.3fms p99=%.3fms max=%.3fms",
			r.Dir, r.Duration, r.Requests, r.RPS, r.P50ms, r.P90ms, r.P99ms, r.MaxMs)
	}
	s := fmt.Sprintf("scenario=%s c=%d duration=%s requests=%d errors=%d rps=%.1f p50=%.3fms p90=%.3fms p99=%.3fms max=%.3fms",
		r.Scenario, r.Concurrency, r.Duration, r.Requests, r.Errors, r.RPS, r.P50ms, r.P90ms, r.P99ms, r.MaxMs)
	if r.Rate > 0 {
		s += fmt.Sprintf(" rate=%g dropped=%d", r.Rate, r.Dropped)
	}
	if r.Unfinished > 0 {
		s += fmt.Sprintf(" unfinished=%d", r.Unfinished)
	}
	return s
}

// execute does setup and the timed run. On failure it returns the exit code.
func execute(ctx context.Context, cfg config, stderr io.Writer) (result, int, error) {
	if cfg.scenario == "fsync" {
		res, err := measureFsync(ctx, cfg)
		if err != nil {
			return result{}, 1, err
		}
		return res, 0, nil
	}
	base := cfg.url
	if cfg.scenario == "bare" {
		bs, err := startBare()
		if err != nil {
			return result{}, 1, fmt.Errorf("starting bare server: %w", err)
		}
		defer bs.Close()
		base = bs.URL()
	} else if cfg.key == "" {
		fmt.Fprintln(stderr, "switchyard-load: note: -key is empty; no x-user-secret-key header is sent")
	}

	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // load goes straight to the target
	tr.MaxIdleConns = cfg.c + 16
	tr.MaxIdleConnsPerHost = cfg.c + 16 // >= concurrency: every worker keeps its connection
	defer tr.CloseIdleConnections()
	hc := &http.Client{
		Transport: tr,
		// A redirect is reported as its own status, not followed.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}

	// Setup: a reachability probe (any status will do), then the scenario's
	// own untimed requests.
	su := &setupper{hc: hc, key: cfg.key}
	if err := su.do(ctx, http.MethodGet, base+"/", nil, 0, nil); err != nil {
		return result{}, 1, err
	}
	tgt, err := scenarios[cfg.scenario](ctx, su, cfg, base)
	if err != nil {
		return result{}, 1, err
	}

	res := drive(ctx, hc, cfg, tgt)
	if res.DurationSeconds < cfg.d.Seconds() {
		fmt.Fprintf(stderr, "switchyard-load: run interrupted after %.2fs of %s\n", res.DurationSeconds, cfg.d)
	}
	return res, 0, nil
}

// worker holds one goroutine's private tallies; merged after the run.
type worker struct {
	lat      []time.Duration
	requests int64
	cut      int64 // unfinished at the end of the window
	errors   int64
	samples  []errSample
	idBuf    []byte
	wire     *wireClient
	base     string // the node this worker sends to, when -url names several
}

type errSample struct {
	key   string
	count int64
}

const maxSamples = 5

func (w *worker) fail(key string) {
	w.errors++
	for i := range w.samples {
		if w.samples[i].key == key {
			w.samples[i].count++
			return
		}
	}
	if len(w.samples) < maxSamples {
		w.samples = append(w.samples, errSample{key: key, count: 1})
	}
}

// drive runs the timed load: warmup, then the measured window, then stops.
// Every goroutine it starts has returned when it returns.
func drive(parent context.Context, hc *http.Client, cfg config, tgt target) result {
	var rid [6]byte
	_, _ = rand.Read(rid[:])
	runID := hex.EncodeToString(rid[:])
	var seq atomic.Uint64

	runStart := time.Now()
	measureStart := runStart.Add(cfg.warmup)
	end := measureStart.Add(cfg.d)
	ctx, cancel := context.WithDeadline(parent, end)
	defer cancel()

	// once sends one request. start is when the request was due: now in
	// closed loop, the scheduled arrival in open loop (so queueing delay
	// counts against latency rather than being hidden).
	once := func(w *worker, start time.Time) {
		n := seq.Add(1)
		w.idBuf = append(w.idBuf[:0], runID...)
		w.idBuf = append(w.idBuf, '-')
		w.idBuf = strconv.AppendUint(w.idBuf, n, 10)
		var body []byte
		if tgt.body != nil {
			body = tgt.body(w.idBuf)
		}
		url := tgt.url
		if tgt.urlFor != nil {
			url = tgt.urlFor()
		}
		if w.base != "" {
			url = w.base + strings.TrimPrefix(url, cfg.url)
		}
		var status int
		var snip []byte
		var err error
		if w.wire != nil {
			status, snip, err = w.wire.do(tgt.method, url, body, tgt.expect)
		} else {
			status, snip, err = netHTTPDo(ctx, hc, tgt.method, url, body, cfg.key, tgt.expect)
		}
		elapsed := time.Since(start)
		if err != nil && ctx.Err() != nil {
			w.cut++
			return // cut off by the end of the run: not a server error
		}
		if start.Before(measureStart) {
			return // warmup
		}
		w.requests++
		switch {
		case err != nil:
			w.fail("transport: " + truncate(err.Error()))
		case status != tgt.expect:
			w.lat = append(w.lat, elapsed)
			w.fail("status=" + strconv.Itoa(status) + " body=" + snippet(snip))
		default:
			w.lat = append(w.lat, elapsed)
		}
	}

	workers := make([]*worker, cfg.c)
	// newWorker spreads the workers over the nodes, as a load balancer
	// would spread connections.
	newWorker := func(i int) *worker {
		w := &worker{lat: make([]time.Duration, 0, 1024)}
		if cfg.client != "net/http" {
			w.wire = newWireClient(ctx, cfg.key)
		}
		if len(cfg.urls) > 1 && cfg.scenario != "bare" {
			w.base = cfg.urls[i%len(cfg.urls)]
		}
		return w
	}
	var wg sync.WaitGroup
	var dropped int64

	if cfg.rate <= 0 {
		// Closed loop: c workers, each sending back to back.
		for i := range workers {
			w := newWorker(i)
			workers[i] = w
			wg.Go(func() {
				for ctx.Err() == nil {
					once(w, time.Now())
				}
			})
		}
	} else {
		// Open loop: a dispatcher emits arrivals on schedule; c workers take
		// them. If every worker is busy and the queue (c deep) is full, the
		// arrival is dropped and counted, keeping the schedule honest.
		arrivals := make(chan time.Time, cfg.c)
		wg.Go(func() {
			defer close(arrivals)
			timer := time.NewTimer(0)
			defer timer.Stop()
			var sent int64
			at := func(i int64) time.Time {
				return runStart.Add(time.Duration(float64(i) / cfg.rate * float64(time.Second)))
			}
			for {
				now := time.Now()
				for ; !at(sent).After(now); sent++ {
					t := at(sent)
					if !t.Before(end) {
						return
					}
					select {
					case arrivals <- t:
					default:
						if !t.Before(measureStart) {
							dropped++
						}
					}
				}
				timer.Reset(time.Until(at(sent)))
				select {
				case <-ctx.Done():
					return
				case <-timer.C:
				}
			}
		})
		for i := range workers {
			w := newWorker(i)
			workers[i] = w
			wg.Go(func() {
				for {
					select {
					case <-ctx.Done():
						return
					case t, ok := <-arrivals:
						if !ok || ctx.Err() != nil {
							// select may pick a queued arrival after the end:
							// it was never sent, so it is not unfinished.
							return
						}
						once(w, t)
					}
				}
			})
		}
	}

	wg.Wait()
	for _, w := range workers {
		if w.wire != nil {
			w.wire.close()
		}
	}
	// The measured window: the full -d, or less if interrupted.
	window := min(max(time.Since(measureStart), 0), cfg.d)

	res := result{
		Scenario:        cfg.scenario,
		Concurrency:     cfg.c,
		Duration:        cfg.d.String(),
		DurationSeconds: window.Seconds(),
		Warmup:          cfg.warmup.String(),
		Rate:            cfg.rate,
		Dropped:         dropped,
	}
	var all []time.Duration
	total := 0
	for _, w := range workers {
		total += len(w.lat)
	}
	all = make([]time.Duration, 0, total)
	var samples []errSample
	for _, w := range workers {
		all = append(all, w.lat...)
		res.Requests += w.requests
		res.Errors += w.errors
		res.Unfinished += w.cut
		samples = mergeSamples(samples, w.samples)
	}
	slices.Sort(all)
	if window > 0 {
		res.RPS = float64(res.Requests) / window.Seconds()
	}
	res.P50ms = ms(percentile(all, 0.50))
	res.P90ms = ms(percentile(all, 0.90))
	res.P99ms = ms(percentile(all, 0.99))
	if len(all) > 0 {
		res.MaxMs = ms(all[len(all)-1])
	}
	for _, s := range samples {
		res.ErrorSamples = append(res.ErrorSamples, fmt.Sprintf("%s (x%d)", s.key, s.count))
	}
	return res
}

// netHTTPDo is the wire client's counterpart through Go's net/http client
// (-client net/http).
func netHTTPDo(ctx context.Context, hc *http.Client, method, url string, body []byte, key string, expect int) (int, []byte, error) {
	req, err := newRequest(ctx, method, url, body, key)
	if err != nil {
		return 0, nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var snip []byte
	if resp.StatusCode != expect {
		if snip, err = io.ReadAll(io.LimitReader(resp.Body, 200)); err != nil {
			return 0, nil, fmt.Errorf("reading body: %w", err)
		}
	}
	if _, err = io.Copy(io.Discard, resp.Body); err != nil {
		return 0, nil, fmt.Errorf("reading body: %w", err)
	}
	return resp.StatusCode, snip, nil
}

func mergeSamples(into, from []errSample) []errSample {
next:
	for _, f := range from {
		for i := range into {
			if into[i].key == f.key {
				into[i].count += f.count
				continue next
			}
		}
		if len(into) < maxSamples {
			into = append(into, f)
		}
	}
	return into
}

// percentile is the nearest-rank p-quantile of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func truncate(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}
