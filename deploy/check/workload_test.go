package check

// Checks of the Deployment, Service, PodDisruptionBudget and
// HorizontalPodAutoscaler of one kustomize build.

import (
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func checkDeployment(t *testing.T, m manifests, vars relayVars) {
	t.Helper()
	d := m.deploy
	if d.Spec.Replicas == nil || *d.Spec.Replicas < 2 {
		t.Error("deployment: want replicas >= 2")
	}
	pod := d.Spec.Template.Spec
	if !selects(d.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
		t.Error("deployment: selector does not match the pod labels")
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("deployment: want one container, got %d", len(pod.Containers))
	}
	c := pod.Containers[0]
	if c.Image == "" {
		t.Error("deployment: no image")
	}
	// The ConfigMap first; only Secrets (the shared cache's credentials)
	// may follow it.
	if len(c.EnvFrom) == 0 || c.EnvFrom[0].ConfigMapRef == nil || c.EnvFrom[0].ConfigMapRef.Name != m.cm.Name ||
		slices.ContainsFunc(c.EnvFrom[1:], func(e corev1.EnvFromSource) bool { return e.SecretRef == nil }) {
		t.Errorf("container: want envFrom the ConfigMap %s, then Secrets only", m.cm.Name)
	}
	listen, admin := port(t, vars.effective(m.cm.Data, "RELAY_LISTEN")), port(t, vars.effective(m.cm.Data, "RELAY_ADMIN_LISTEN"))
	if got := containerPort(c, intstr.FromString("registry")); got != listen {
		t.Errorf("container port registry = %d, the relay listens on %d", got, listen)
	}
	if got := containerPort(c, intstr.FromString("admin")); got != admin {
		t.Errorf("container port admin = %d, the relay's admin listener is on %d", got, admin)
	}
	checkProbe(t, "readiness", c.ReadinessProbe, c, "/readyz", admin)
	checkProbe(t, "liveness", c.LivenessProbe, c, "/healthz", admin)
	for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, lim := c.Resources.Requests[res], c.Resources.Limits[res]
		if req.IsZero() || lim.IsZero() || req.Cmp(lim) > 0 {
			t.Errorf("container %s: want a request <= a limit, got %s / %s", res, req.String(), lim.String())
		}
	}
	checkSecurity(t, pod, c)
	delay := duration(t, vars.effective(m.cm.Data, "RELAY_SHUTDOWN_DELAY"))
	grace := duration(t, vars.effective(m.cm.Data, "RELAY_SHUTDOWN_GRACE"))
	if g := pod.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second <= delay+grace {
		t.Errorf("terminationGracePeriodSeconds must exceed RELAY_SHUTDOWN_DELAY + RELAY_SHUTDOWN_GRACE = %s", delay+grace)
	}
}

func checkProbe(t *testing.T, what string, p *corev1.Probe, c corev1.Container, path string, port int32) {
	t.Helper()
	if p == nil || p.HTTPGet == nil {
		t.Errorf("%s probe: want an httpGet of %s", what, path)
		return
	}
	if p.HTTPGet.Path != path || containerPort(c, p.HTTPGet.Port) != port {
		t.Errorf("%s probe: GET %s on port %s, want %s on the admin port %d", what, p.HTTPGet.Path, p.HTTPGet.Port.String(), path, port)
	}
}

// checkSecurity checks the effective settings: the container's own, else
// the pod's.
func checkSecurity(t *testing.T, pod corev1.PodSpec, c corev1.Container) {
	t.Helper()
	ps, cs := pod.SecurityContext, c.SecurityContext
	if ps == nil {
		ps = &corev1.PodSecurityContext{}
	}
	if cs == nil {
		cs = &corev1.SecurityContext{}
	}
	pick := func(c, p *bool) bool {
		if c != nil {
			return *c
		}
		return p != nil && *p
	}
	if !pick(cs.RunAsNonRoot, ps.RunAsNonRoot) {
		t.Error("security: want runAsNonRoot")
	}
	if !pick(cs.ReadOnlyRootFilesystem, nil) {
		t.Error("security: want readOnlyRootFilesystem")
	}
	if cs.AllowPrivilegeEscalation == nil || *cs.AllowPrivilegeEscalation {
		t.Error("security: want allowPrivilegeEscalation false")
	}
	if cs.Capabilities == nil || !slices.Equal(cs.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(cs.Capabilities.Add) > 0 {
		t.Error("security: want capabilities drop [ALL] and nothing added")
	}
	seccomp := ps.SeccompProfile
	if cs.SeccompProfile != nil {
		seccomp = cs.SeccompProfile
	}
	if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Error("security: want seccompProfile RuntimeDefault")
	}
}

func checkService(t *testing.T, m manifests, vars relayVars) {
	t.Helper()
	if !selects(m.svc.Spec.Selector, m.deploy.Spec.Template.Labels) {
		t.Error("service: selector does not match the pods")
	}
	c := m.deploy.Spec.Template.Spec.Containers[0]
	for name, env := range map[string]string{"registry": "RELAY_LISTEN", "admin": "RELAY_ADMIN_LISTEN"} {
		sp := servicePort(m.svc, networkingv1.ServiceBackendPort{Name: name})
		want := port(t, vars.effective(m.cm.Data, env))
		if sp == nil || containerPort(c, sp.TargetPort) != want {
			t.Errorf("service port %s must target the container port %d (%s)", name, want, env)
		}
	}
}

// checkAvailability: the PDB lets a drain evict one pod while others
// serve, and the HPA scales this Deployment without dropping below two.
func checkAvailability(t *testing.T, m manifests) {
	t.Helper()
	if m.pdb.Spec.Selector == nil || !selects(m.pdb.Spec.Selector.MatchLabels, m.deploy.Spec.Template.Labels) {
		t.Error("pdb: selector does not match the pods")
	}
	h := m.hpa.Spec
	if h.ScaleTargetRef.APIVersion != "apps/v1" || h.ScaleTargetRef.Kind != "Deployment" || h.ScaleTargetRef.Name != m.deploy.Name {
		t.Errorf("hpa: scaleTargetRef %+v is not the Deployment %s", h.ScaleTargetRef, m.deploy.Name)
	}
	if h.MinReplicas == nil || *h.MinReplicas < 2 || h.MaxReplicas < *h.MinReplicas {
		t.Error("hpa: want 2 <= minReplicas <= maxReplicas")
		return
	}
	min := int(*h.MinReplicas)
	switch pdb := m.pdb.Spec; {
	case pdb.MaxUnavailable != nil:
		if n, err := intstr.GetScaledValueFromIntOrPercent(pdb.MaxUnavailable, min, false); err != nil || n < 1 || n >= min {
			t.Errorf("pdb: maxUnavailable %s must allow 1 to %d evictions at %d replicas", pdb.MaxUnavailable.String(), min-1, min)
		}
	case pdb.MinAvailable != nil:
		if n, err := intstr.GetScaledValueFromIntOrPercent(pdb.MinAvailable, min, true); err != nil || n < 1 || n >= min {
			t.Errorf("pdb: minAvailable %s must keep 1 to %d of %d replicas", pdb.MinAvailable.String(), min-1, min)
		}
	default:
		t.Error("pdb: want maxUnavailable or minAvailable")
	}
}
