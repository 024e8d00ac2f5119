package relaytest

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if a Registry, TokenIssuer or ClientTransport leaves
// goroutines behind, since relay tests that check for leaks build on them.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, IgnoreRegistryGoroutines())
}
