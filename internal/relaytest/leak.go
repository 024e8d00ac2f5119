package relaytest

import "go.uber.org/goleak"

// IgnoreRegistryGoroutines is a goleak option for tests that use NewRegistry.
//
// distribution v3.1.2 starts a go-events broadcaster in handlers.NewApp and
// keeps it in an unexported field that App.Shutdown does not close, so every
// Registry leaves one idle goroutine behind. Nothing else is ignored: the
// issuer, the registry's server and ClientTransport clean up fully.
func IgnoreRegistryGoroutines() goleak.Option {
	return goleak.IgnoreTopFunction("github.com/docker/go-events.(*Broadcaster).run")
}
