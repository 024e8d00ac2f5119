// Package check verifies deploy/, examples/ and the Dockerfile against the
// relay they configure: manifests decode strictly into Kubernetes types,
// hosts and variables match what the relay binary really serves and reads,
// Caddy, promtool and systemd accept their files, and a pull works through
// Caddy. It is a module of its own so the Kubernetes, kustomize and Compose
// libraries stay out of the relay's go.mod. Run it with `make deploy-check`.
package check
