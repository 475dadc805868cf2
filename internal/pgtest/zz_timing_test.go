package pgtest

import (
	"context"
	"fmt"
	"testing"
	"time"
)

func TestZZTiming(t *testing.T) {
	c := Require(t)
	ctx := context.Background()
	for _, strat := range []string{" STRATEGY WAL_LOG", " STRATEGY FILE_COPY", " STRATEGY WAL_LOG"} {
		start := time.Now()
		for i := 0; i < 10; i++ {
			name := fmt.Sprintf("zz%d_%d_%d", len(strat), i, time.Now().UnixNano())
			if _, err := c.admin.Exec(ctx, `CREATE DATABASE `+name+` TEMPLATE `+template+strat); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("%q: %v per db", strat, time.Since(start)/10)
	}
}
