package govirtiofs

import (
	"testing"

	"github.com/govirtiofs/govirtiofs/internal/virtiofsdtest"
)

// Exported for the external tests (suite_test.go), which run the shared suites of
// internal/suite: that package imports this one, so only an external test package can use it.

// NewMemFS is newMemFS.
func NewMemFS(t testing.TB) *FS { return newMemFS(t) }

// DialTest is dialTest.
func DialTest(t testing.TB, opts Options, dopts virtiofsdtest.Options) (*FS, string) {
	return dialTest(t, opts, dopts)
}
