package main

import (
	"fmt"
	"io"
	"strings"
)

// printInstructions prints commands that work as printed on a stock
// machine: localhost and 127.0.0.1 select the two routes without DNS or
// /etc/hosts edits, crane speaks plain http to localhost, and Docker treats
// 127.0.0.0/8 as an insecure registry by default.
func printInstructions(out io.Writer, ups *upstreams, port, adminPort int) {
	hub := fmt.Sprintf("localhost:%d", port)
	k8s := fmt.Sprintf("127.0.0.1:%d", port)
	lines := []string{
		"registry-relay demo is running, fully offline.",
		"  Docker Hub stand-in:      " + ups.dockerHub.URL + " (token auth via " + ups.issuer.Realm + ")",
		"  registry.k8s.io stand-in: " + ups.k8s.URL + " (anonymous)",
		"",
		"Try, from another terminal in this directory:",
		"",
		"  # Host localhost is the Docker Hub route; the challenge's realm now points at the relay",
		"  curl -si http://" + hub + "/v2/",
		"  # Host 127.0.0.1 is the registry.k8s.io route",
		"  curl -s http://" + k8s + "/v2/pause/tags/list",
		"  # hello is library/hello, as on Docker Hub: both digests are equal",
		"  ./bin/crane manifest " + hub + "/hello",
		"  ./bin/crane digest " + hub + "/hello",
		"  ./bin/crane digest " + hub + "/library/hello",
		"  # private/ needs credentials: 401 UNAUTHORIZED until you log in",
		"  ./bin/crane digest " + hub + "/private/hello",
		"  ./bin/crane auth login " + hub + " -u " + demoUser + " -p " + demoPassword,
		"  ./bin/crane digest " + hub + "/private/hello",
		"  ./bin/crane auth logout " + hub + "   # login wrote ~/.docker/config.json",
		"  # with a Docker daemon",
		"  docker pull " + hub + "/hello",
		"  docker pull " + hub + "/library/hello",
		"  # metrics live on the admin listener",
		fmt.Sprintf("  curl -s http://localhost:%d/metrics | grep relay_", adminPort),
		"",
		"Ctrl-C stops the demo.",
	}
	fmt.Fprintln(out, strings.Join(lines, "\n"))
}
