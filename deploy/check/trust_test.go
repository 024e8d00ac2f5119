package check

// Checks of the trust boundary of one kustomize build: who may connect to
// the relay's pods (the NetworkPolicy), and whose X-Forwarded-For the relay
// believes (RELAY_TRUSTED_PROXIES). The two hold together: a peer that is
// trusted may name any client address, which <NAME>_ALLOW_CIDRS and the
// per-client limits then go by.

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// peerPod is a pod that might connect to the relay: its namespace and the
// labels of both.
type peerPod struct {
	what      string
	namespace string
	nsLabels  map[string]string
	labels    map[string]string
}

func newPeer(what, namespace string, podLabels map[string]string) peerPod {
	return peerPod{what: what, namespace: namespace,
		nsLabels: map[string]string{"kubernetes.io/metadata.name": namespace}, labels: podLabels}
}

var (
	// The ingress-nginx Helm chart's controller pods and the Prometheus of
	// kube-prometheus-stack, in their usual namespaces.
	ingressController = newPeer("the ingress-nginx controller", "ingress-nginx", map[string]string{
		"app.kubernetes.io/name": "ingress-nginx", "app.kubernetes.io/instance": "ingress-nginx",
		"app.kubernetes.io/component": "controller"})
	prometheusServer = newPeer("Prometheus", "monitoring", map[string]string{
		"app.kubernetes.io/name": "prometheus", "prometheus": "kube-prometheus-stack-prometheus"})
	// Pods that must reach neither port, each one selector away from an
	// admitted one.
	strangers = []peerPod{
		newPeer("an unlabelled pod in the relay's namespace", "registry-relay", map[string]string{"app": "debug"}),
		newPeer("a pod in default", "default", map[string]string{"app": "web"}),
		newPeer("a pod labelled as the controller in another namespace", "default", ingressController.labels),
		newPeer("ingress-nginx's admission webhook job", "ingress-nginx", map[string]string{
			"app.kubernetes.io/name": "ingress-nginx", "app.kubernetes.io/component": "admission-webhook"}),
		newPeer("a pod labelled as Prometheus in another namespace", "default", prometheusServer.labels),
		newPeer("Grafana next to Prometheus", "monitoring", map[string]string{"app.kubernetes.io/name": "grafana"}),
	}
)

// checkNetworkPolicy: the registry port is open to the ingress controller
// only and the admin port to Prometheus only, each by a namespace and pod
// selector, never by an address block or to everyone.
func checkNetworkPolicy(t *testing.T, m manifests, vars relayVars) {
	t.Helper()
	np := m.netpol
	if !selects(np.Spec.PodSelector.MatchLabels, m.deploy.Spec.Template.Labels) {
		t.Fatal("networkpolicy: podSelector does not select the relay's pods, so it restricts nothing")
	}
	if len(np.Spec.PolicyTypes) > 0 && !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) {
		t.Fatal("networkpolicy: policyTypes lacks Ingress, so connections to the relay are not restricted")
	}
	if slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) {
		t.Error("networkpolicy: egress must stay open, the upstream registries and their CDNs are on the internet")
	}
	for i, rule := range np.Spec.Ingress {
		if len(rule.From) == 0 {
			t.Errorf("networkpolicy: ingress rule %d has no from: it admits everyone", i)
		}
		if len(rule.Ports) == 0 {
			t.Errorf("networkpolicy: ingress rule %d has no ports: it admits every port", i)
		}
		for _, peer := range rule.From {
			if peer.IPBlock != nil {
				t.Errorf("networkpolicy: ingress rule %d admits the address block %s; admit pods by selector", i, peer.IPBlock.CIDR)
			}
			if isEmpty(peer.NamespaceSelector) || isEmpty(peer.PodSelector) {
				t.Errorf("networkpolicy: ingress rule %d: want a peer with both a namespaceSelector and a podSelector that select something specific", i)
			}
		}
	}
	c := m.deploy.Spec.Template.Spec.Containers[0]
	registry, admin := port(t, vars.effective(m.cm.Data, "RELAY_LISTEN")), port(t, vars.effective(m.cm.Data, "RELAY_ADMIN_LISTEN"))
	for _, tc := range []struct {
		pod             peerPod
		registry, admin bool
	}{
		{ingressController, true, false},
		{prometheusServer, false, true},
	} {
		if got := admits(t, np, c, tc.pod, registry); got != tc.registry {
			t.Errorf("networkpolicy: %s reaches the registry port: %v, want %v", tc.pod.what, got, tc.registry)
		}
		if got := admits(t, np, c, tc.pod, admin); got != tc.admin {
			t.Errorf("networkpolicy: %s reaches the admin port: %v, want %v", tc.pod.what, got, tc.admin)
		}
	}
	for _, pod := range strangers {
		for _, p := range []int32{registry, admin} {
			if admits(t, np, c, pod, p) {
				t.Errorf("networkpolicy: %s reaches port %d", pod.what, p)
			}
		}
	}
}

// admits evaluates np's ingress rules, as the network plugin would, for a
// TCP connection from pod to port n of the relay's container c.
func admits(t *testing.T, np *networkingv1.NetworkPolicy, c corev1.Container, pod peerPod, n int32) bool {
	t.Helper()
	for _, rule := range np.Spec.Ingress {
		if rulePorts(c, rule.Ports, n) && rulePeers(t, np.Namespace, rule.From, pod) {
			return true
		}
	}
	return false
}

func rulePorts(c corev1.Container, ports []networkingv1.NetworkPolicyPort, n int32) bool {
	if len(ports) == 0 {
		return true
	}
	for _, p := range ports {
		if p.Protocol != nil && *p.Protocol != corev1.ProtocolTCP {
			continue
		}
		if p.Port == nil {
			return true
		}
		lo := containerPort(c, *p.Port)
		hi := lo
		if p.EndPort != nil {
			hi = *p.EndPort
		}
		if lo <= n && n <= hi {
			return true
		}
	}
	return false
}

func rulePeers(t *testing.T, policyNS string, from []networkingv1.NetworkPolicyPeer, pod peerPod) bool {
	t.Helper()
	if len(from) == 0 {
		return true
	}
	if policyNS == "" {
		policyNS = "default"
	}
	for _, peer := range from {
		if peer.IPBlock != nil {
			return true // an address block may hold any pod's address
		}
		nsOK := pod.namespace == policyNS
		if peer.NamespaceSelector != nil {
			nsOK = matches(t, peer.NamespaceSelector, pod.nsLabels)
		}
		podOK := peer.PodSelector == nil || matches(t, peer.PodSelector, pod.labels)
		if nsOK && podOK {
			return true
		}
	}
	return false
}

func matches(t *testing.T, ls *metav1.LabelSelector, set map[string]string) bool {
	t.Helper()
	sel, err := metav1.LabelSelectorAsSelector(ls)
	if err != nil {
		t.Fatalf("networkpolicy: selector %v: %v", ls, err)
	}
	return sel.Matches(labels.Set(set))
}

func isEmpty(ls *metav1.LabelSelector) bool {
	return ls == nil || (len(ls.MatchLabels) == 0 && len(ls.MatchExpressions) == 0)
}

// broadRanges are networks that hold whole clusters (or everything): a
// trusted entry covering one lets every pod there claim any client address.
var broadRanges = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("0.0.0.0/0"),
	netip.MustParsePrefix("::/0"),
	netip.MustParsePrefix("fc00::/7"),
}

// checkTrustedProxies: the relay trusts at most the ingress controller's
// addresses, never a private range or a cluster's pod network, and makes
// https realms without trusting anyone for X-Forwarded-Proto.
func checkTrustedProxies(t *testing.T, m manifests) {
	t.Helper()
	if got := m.cm.Data["RELAY_PUBLIC_SCHEME"]; got != "https" {
		t.Errorf("RELAY_PUBLIC_SCHEME = %q, want https: the Ingress terminates TLS for every host, so realms are https without believing a proxy's X-Forwarded-Proto", got)
	}
	for _, p := range trustedProxies(t, m.cm.Data["RELAY_TRUSTED_PROXIES"]) {
		for _, b := range broadRanges {
			if p.Bits() <= b.Bits() && p.Contains(b.Addr()) {
				t.Errorf("RELAY_TRUSTED_PROXIES trusts %s, which covers %s: any pod there can pass an allow-list with X-Forwarded-For", p, b)
			}
		}
		// A /16 is a whole cluster's pod network; an ingress controller's
		// pods fit in far less.
		if max := map[bool]int{true: 16, false: 48}[p.Addr().Is4()]; p.Bits() <= max {
			t.Errorf("RELAY_TRUSTED_PROXIES trusts %s, a /%d or wider: trust the ingress controller's addresses only", p, max)
		}
	}
}

// trustedProxies parses a RELAY_TRUSTED_PROXIES value as the relay does:
// comma-separated CIDRs or single addresses, blanks skipped.
func trustedProxies(t *testing.T, list string) []netip.Prefix {
	t.Helper()
	var out []netip.Prefix
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				t.Errorf("RELAY_TRUSTED_PROXIES: %q is neither a CIDR nor an address", s)
				continue
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out
}
