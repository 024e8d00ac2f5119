package check

import (
	"fmt"
	"maps"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// manifests is one kustomize build, decoded.
type manifests struct {
	deploy *appsv1.Deployment
	svc    *corev1.Service
	ing    *networkingv1.Ingress
	cm     *corev1.ConfigMap
	pdb    *policyv1.PodDisruptionBudget
	hpa    *autoscalingv2.HorizontalPodAutoscaler
	netpol *networkingv1.NetworkPolicy
}

// build runs kustomize on dir (relative to the repository) and decodes
// every document strictly into its Kubernetes type: a misspelt or
// misplaced field fails here instead of being dropped by the API server.
func build(t *testing.T, dir string) manifests {
	t.Helper()
	resMap, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), repoPath(dir))
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var m manifests
	seen := map[string]bool{}
	for _, r := range resMap.Resources() {
		doc, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		gvk := r.GetGvk()
		kind := gvk.ApiVersion() + " " + gvk.Kind
		if seen[kind] {
			t.Fatalf("%s: more than one %s", dir, kind)
		}
		seen[kind] = true
		var obj any
		switch kind {
		case "apps/v1 Deployment":
			m.deploy = &appsv1.Deployment{}
			obj = m.deploy
		case "v1 Service":
			m.svc = &corev1.Service{}
			obj = m.svc
		case "networking.k8s.io/v1 Ingress":
			m.ing = &networkingv1.Ingress{}
			obj = m.ing
		case "v1 ConfigMap":
			m.cm = &corev1.ConfigMap{}
			obj = m.cm
		case "policy/v1 PodDisruptionBudget":
			m.pdb = &policyv1.PodDisruptionBudget{}
			obj = m.pdb
		case "autoscaling/v2 HorizontalPodAutoscaler":
			m.hpa = &autoscalingv2.HorizontalPodAutoscaler{}
			obj = m.hpa
		case "networking.k8s.io/v1 NetworkPolicy":
			m.netpol = &networkingv1.NetworkPolicy{}
			obj = m.netpol
		case "v1 Namespace":
			obj = &corev1.Namespace{}
		default:
			t.Fatalf("%s: unexpected %s %s", dir, kind, r.GetName())
		}
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			t.Fatalf("%s: %s %s does not decode strictly: %v", dir, kind, r.GetName(), err)
		}
	}
	if m.deploy == nil || m.svc == nil || m.ing == nil || m.cm == nil || m.pdb == nil || m.hpa == nil || m.netpol == nil {
		t.Fatalf("%s: want one each of Deployment, Service, Ingress, ConfigMap, PodDisruptionBudget, HorizontalPodAutoscaler, NetworkPolicy", dir)
	}
	return m
}

func TestKustomize(t *testing.T) {
	vars := readmeVars(t)
	var builtins []string
	for _, r := range exampleRoutes(t) {
		builtins = append(builtins, r.name)
	}
	domains := map[string]string{}
	var trusted string
	for _, dir := range []string{"deploy/k8s/base", "deploy/k8s/overlays/example", "deploy/k8s/overlays/shared-cache"} {
		t.Run(dir, func(t *testing.T) {
			m := build(t, dir)
			env := m.cm.Data
			vars.checkKnown(t, "ConfigMap "+m.cm.Name, env)
			domains[dir] = env["RELAY_BASE_DOMAIN"]
			if dir == "deploy/k8s/overlays/example" {
				trusted = env["RELAY_TRUSTED_PROXIES"]
			}
			// Starting the relay with the ConfigMap proves it accepts every
			// value; a shared cache's endpoint is pointed at loopback, where
			// nothing answers, so the check reaches no real store.
			if env["RELAY_CACHE_S3_ENDPOINT"] != "" {
				env = maps.Clone(env)
				env["RELAY_CACHE_S3_ENDPOINT"] = "http://127.0.0.1:1"
			}
			hosts := servedHosts(t, vars, env)
			var served []string
			for _, r := range startRelay(t, env).servedRoutes(t) {
				served = append(served, r.name)
			}
			checkSet(t, "the routes the relay serves with ConfigMap "+m.cm.Name, served, builtins)
			if mirrorHost(vars, env) == "" {
				t.Errorf("ConfigMap %s switches the mirror host off", m.cm.Name)
			}
			checkIngress(t, m, hosts)
			checkDeployment(t, m, vars)
			checkService(t, m, vars)
			checkAvailability(t, m)
			checkNetworkPolicy(t, m, vars)
			checkTrustedProxies(t, m)
			if dir == "deploy/k8s/overlays/shared-cache" {
				checkSharedCache(t, m)
			}
		})
	}
	if trusted == "" {
		t.Error("the example overlay sets no RELAY_TRUSTED_PROXIES: show where the ingress controller's addresses go, or per-client limits and allow-lists see only the controller")
	}
	if domains["deploy/k8s/base"] == domains["deploy/k8s/overlays/example"] {
		t.Errorf("the example overlay keeps the base's RELAY_BASE_DOMAIN %q", domains["deploy/k8s/base"])
	}
}

func checkIngress(t *testing.T, m manifests, hosts []string) {
	t.Helper()
	ing := m.ing
	var ruleHosts []string
	for _, r := range ing.Spec.Rules {
		ruleHosts = append(ruleHosts, r.Host)
		if r.HTTP == nil || len(r.HTTP.Paths) != 1 {
			t.Errorf("ingress rule %s: want one path", r.Host)
			continue
		}
		p := r.HTTP.Paths[0]
		if p.Path != "/" || p.PathType == nil || *p.PathType != networkingv1.PathTypePrefix {
			t.Errorf("ingress rule %s: want path / of type Prefix, the relay serves /v2/, /token/ and /", r.Host)
		}
		if b := p.Backend.Service; b == nil || b.Name != m.svc.Name || servicePort(m.svc, b.Port) == nil ||
			servicePort(m.svc, b.Port).Name != "registry" {
			t.Errorf("ingress rule %s: backend must be the Service's registry port", r.Host)
		}
	}
	checkSet(t, "the ingress rules' hosts", ruleHosts, hosts)
	if len(ing.Spec.TLS) != 1 || ing.Spec.TLS[0].SecretName == "" {
		t.Fatalf("ingress: want one TLS entry with a secret, got %+v", ing.Spec.TLS)
	}
	checkSet(t, "the ingress TLS hosts", ing.Spec.TLS[0].Hosts, hosts)
	if ing.Spec.IngressClassName == nil || *ing.Spec.IngressClassName != "nginx" {
		t.Error("ingress: want ingressClassName nginx, the annotations are ingress-nginx's")
	}
	const p = "nginx.ingress.kubernetes.io/"
	for key, want := range map[string]string{p + "proxy-body-size": "0", p + "proxy-buffering": "off", p + "proxy-request-buffering": "off"} {
		if got := ing.Annotations[key]; got != want {
			t.Errorf("ingress annotation %s = %q, want %q", key, got, want)
		}
	}
	for _, key := range []string{p + "proxy-read-timeout", p + "proxy-send-timeout"} {
		// Longer than RELAY_UPSTREAM_HEADER_TIMEOUT's default 60s with room to spare.
		if s, err := strconv.Atoi(ing.Annotations[key]); err != nil || s < 300 {
			t.Errorf("ingress annotation %s = %q, want seconds >= 300", key, ing.Annotations[key])
		}
	}
}

func selects(selector, podLabels map[string]string) bool {
	return len(selector) > 0 && labels.SelectorFromSet(selector).Matches(labels.Set(podLabels))
}

func servicePort(svc *corev1.Service, p networkingv1.ServiceBackendPort) *corev1.ServicePort {
	for i, sp := range svc.Spec.Ports {
		if (p.Name != "" && sp.Name == p.Name) || (p.Name == "" && sp.Port == p.Number) {
			return &svc.Spec.Ports[i]
		}
	}
	return nil
}

// containerPort resolves a named or numbered port to the container's number.
func containerPort(c corev1.Container, p intstr.IntOrString) int32 {
	if p.Type == intstr.Int {
		return p.IntVal
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort
		}
	}
	return 0
}

// port is the port number of a listen address such as ":9090".
func port(t *testing.T, addr string) int32 {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("listen address %q: %v", addr, err)
	}
	n, err := strconv.ParseInt(p, 10, 32)
	if err != nil {
		t.Fatalf("listen address %q: %v", addr, err)
	}
	return int32(n)
}

func duration(t *testing.T, s string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatal(fmt.Errorf("duration %q: %w", s, err))
	}
	return d
}

// checkSharedCache: the s3-cache component turns the shared cache on with
// the disk in front, and takes credentials from an optional Secret (or the
// pod's workload identity), never from the ConfigMap.
func checkSharedCache(t *testing.T, m manifests) {
	t.Helper()
	env := m.cm.Data
	if env["RELAY_CACHE_S3_ENDPOINT"] == "" || env["RELAY_CACHE_S3_BUCKET"] == "" || env["RELAY_CACHE_DIR"] == "" {
		t.Errorf("the shared-cache overlay's ConfigMap: endpoint %q, bucket %q, dir %q; want the bucket with the disk in front",
			env["RELAY_CACHE_S3_ENDPOINT"], env["RELAY_CACHE_S3_BUCKET"], env["RELAY_CACHE_DIR"])
	}
	for k := range env {
		if strings.HasPrefix(k, "AWS_") {
			t.Errorf("the ConfigMap holds %s: credentials belong in the Secret", k)
		}
	}
	var secret bool
	for _, from := range m.deploy.Spec.Template.Spec.Containers[0].EnvFrom {
		if from.SecretRef != nil && from.SecretRef.Name == "registry-relay-s3" && from.SecretRef.Optional != nil && *from.SecretRef.Optional {
			secret = true
		}
	}
	if !secret {
		t.Error("the relay container does not read the optional registry-relay-s3 Secret")
	}
}
