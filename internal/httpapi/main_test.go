package httpapi_test

import (
	"testing"

	"switchyard/internal/pgtest"
)

// TestMain stops the PostgreSQL test cluster that apitest starts when
// SWITCHYARD_TEST_DB=postgres (pgtest).
func TestMain(m *testing.M) { pgtest.Main(m) }
