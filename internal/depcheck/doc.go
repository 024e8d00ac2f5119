// Package depcheck holds no code: its test keeps the package graph the
// shape docs/architecture.md describes, the way go-containerregistry's
// depcheck does, so that a package taking on a second job shows up as a
// failed test rather than as a cycle months later.
package depcheck
