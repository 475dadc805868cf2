package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"time"
)

// fsyncBlock is what one durable commit of a small write looks like: one
// 4 KiB page appended, then fsync.
const fsyncBlock = 4096

// fsyncWrap bounds the temp file: past it, writes start again at offset 0
// (still one 4 KiB write + fsync each).
const fsyncWrap = 64 << 20

// measureFsync writes 4 KiB + fsync in a loop for cfg.d (after cfg.warmup)
// in a temp file under cfg.dir, one writer, and reports fsyncs/s as the
// result's rate. The temp file is removed.
func measureFsync(ctx context.Context, cfg config) (result, error) {
	f, err := os.CreateTemp(cfg.dir, "switchyard-load-fsync-*")
	if err != nil {
		return result{}, fmt.Errorf("fsync: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()

	block := make([]byte, fsyncBlock)
	for i := range block {
		block[i] = byte(i)
	}
	var off int64
	lat := make([]time.Duration, 0, 4096)
	runStart := time.Now()
	measureStart := runStart.Add(cfg.warmup)
	end := measureStart.Add(cfg.d)
	var n int64
	for ctx.Err() == nil {
		start := time.Now()
		if !start.Before(end) {
			break
		}
		if _, err := f.WriteAt(block, off); err != nil {
			return result{}, fmt.Errorf("fsync: write: %w", err)
		}
		if err := f.Sync(); err != nil {
			return result{}, fmt.Errorf("fsync: %w", err)
		}
		if off += fsyncBlock; off >= fsyncWrap {
			off = 0
		}
		if start.Before(measureStart) {
			continue
		}
		n++
		lat = append(lat, time.Since(start))
	}
	window := min(max(time.Since(measureStart), 0), cfg.d)
	res := result{
		Scenario: "fsync", Concurrency: 1, Duration: cfg.d.String(), DurationSeconds: window.Seconds(),
		Warmup: cfg.warmup.String(), Requests: n, Dir: cfg.dir,
	}
	slices.Sort(lat)
	if window > 0 {
		res.RPS = float64(n) / window.Seconds()
	}
	res.P50ms, res.P90ms, res.P99ms = ms(percentile(lat, 0.50)), ms(percentile(lat, 0.90)), ms(percentile(lat, 0.99))
	if len(lat) > 0 {
		res.MaxMs = ms(lat[len(lat)-1])
	}
	return res, nil
}
