package main

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/nexusrag/nexusrag/internal/version"
)

// The manifests are checked here, in the package of the registry they must agree with,
// without a cluster: kustomize renders each overlay as `kubectl kustomize` would, and
// every object is decoded into the Kubernetes API types as strictly as the API server
// does (unknown and duplicate fields fail). The kustomize, Kubernetes and compose modules
// are test dependencies only: nothing of them links into the binary (ADR 0023).

const (
	k8sDir      = "../../deploy/k8s"
	k8sNS       = "nexusrag"
	grpcPort    = 9000
	configName  = "nexusrag-config"
	secretsName = "nexusrag-secrets" // deploy/k8s/secret.example.yaml
)

// externalSecrets are created by the operator (deploy/k8s/README.md), never rendered.
var externalSecrets = []string{secretsName, "nexusrag-service-auth"}

var overlays = []string{"split", "all-in-one"}

// k8sObjects is one rendered overlay in the Kubernetes API types.
type k8sObjects struct {
	deployments []appsv1.Deployment
	services    []corev1.Service
	configMaps  []corev1.ConfigMap
	claims      []corev1.PersistentVolumeClaim
	jobs        []batchv1.Job
	pdbs        []policyv1.PodDisruptionBudget
	hpas        []autoscalingv2.HorizontalPodAutoscaler
	namespaces  []corev1.Namespace
}

func decodeStrict[T any](tb testing.TB, b []byte, what string) T {
	tb.Helper()
	var v T
	strict, err := sigsjson.UnmarshalStrict(b, &v, sigsjson.DisallowDuplicateFields, sigsjson.DisallowUnknownFields)
	require.NoError(tb, err, what)
	require.Empty(tb, strict, "%s: fields the API would refuse", what)
	return v
}

func renderOverlay(tb testing.TB, overlay string) k8sObjects {
	tb.Helper()
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), filepath.Join(k8sDir, "overlays", overlay))
	require.NoError(tb, err, "kustomize build overlays/%s", overlay)
	var o k8sObjects
	for _, r := range m.Resources() {
		b, err := r.MarshalJSON()
		require.NoError(tb, err)
		what := overlay + ": " + r.GetKind() + " " + r.GetName()
		if r.GetKind() != "Namespace" {
			require.Equal(tb, k8sNS, r.GetNamespace(), what)
		}
		require.Equal(tb, k8sNS, r.GetLabels()["app.kubernetes.io/part-of"], what)
		switch r.GetApiVersion() + " " + r.GetKind() {
		case "apps/v1 Deployment":
			o.deployments = append(o.deployments, decodeStrict[appsv1.Deployment](tb, b, what))
		case "v1 Service":
			o.services = append(o.services, decodeStrict[corev1.Service](tb, b, what))
		case "v1 ConfigMap":
			o.configMaps = append(o.configMaps, decodeStrict[corev1.ConfigMap](tb, b, what))
		case "v1 PersistentVolumeClaim":
			o.claims = append(o.claims, decodeStrict[corev1.PersistentVolumeClaim](tb, b, what))
		case "batch/v1 Job":
			o.jobs = append(o.jobs, decodeStrict[batchv1.Job](tb, b, what))
		case "policy/v1 PodDisruptionBudget":
			o.pdbs = append(o.pdbs, decodeStrict[policyv1.PodDisruptionBudget](tb, b, what))
		case "autoscaling/v2 HorizontalPodAutoscaler":
			o.hpas = append(o.hpas, decodeStrict[autoscalingv2.HorizontalPodAutoscaler](tb, b, what))
		case "v1 Namespace":
			o.namespaces = append(o.namespaces, decodeStrict[corev1.Namespace](tb, b, what))
		default:
			tb.Fatalf("%s: %s is not a kind this test decodes; add its API type", what, r.GetApiVersion())
		}
	}
	return o
}

// pods are the pod templates of the Deployments and Jobs, by name.
func (o k8sObjects) pods() map[string]corev1.PodSpec {
	out := map[string]corev1.PodSpec{}
	for _, d := range o.deployments {
		out["Deployment "+d.Name] = d.Spec.Template.Spec
	}
	for _, j := range o.jobs {
		out["Job "+j.Name] = j.Spec.Template.Spec
	}
	return out
}

func (o k8sObjects) deployment(name string) (appsv1.Deployment, bool) {
	i := slices.IndexFunc(o.deployments, func(d appsv1.Deployment) bool { return d.Name == name })
	if i < 0 {
		return appsv1.Deployment{}, false
	}
	return o.deployments[i], true
}

// selected are the Deployments whose pods match selector.
func (o k8sObjects) selected(selector map[string]string) []appsv1.Deployment {
	var out []appsv1.Deployment
	for _, d := range o.deployments {
		if len(selector) > 0 && matches(selector, d.Spec.Template.Labels) {
			out = append(out, d)
		}
	}
	return out
}

func matches(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// minReplicas is the fewest pods a Deployment runs: its autoscaler's floor, or its count.
func (o k8sObjects) minReplicas(d appsv1.Deployment) int32 {
	for _, h := range o.hpas {
		if h.Spec.ScaleTargetRef.Kind == "Deployment" && h.Spec.ScaleTargetRef.Name == d.Name && h.Spec.MinReplicas != nil {
			return *h.Spec.MinReplicas
		}
	}
	if d.Spec.Replicas == nil {
		return 1
	}
	return *d.Spec.Replicas
}

// hostedServices are the registry's services a container's `serve` runs (nil when it
// does not serve): --services=..., or every service without the flag.
func hostedServices(tb testing.TB, c corev1.Container) []string {
	return servedBy(tb, append(slices.Clone(c.Command), c.Args...))
}

func servedBy(tb testing.TB, args []string) []string {
	tb.Helper()
	if len(args) == 0 || args[0] != "serve" {
		return nil
	}
	flag := "all"
	for _, a := range args[1:] {
		if v, ok := strings.CutPrefix(a, "--services="); ok {
			flag = v
		}
	}
	list, err := modules().selectServices(flag)
	require.NoError(tb, err)
	return list
}

// peersOf are the services a process running services calls in other processes: each
// needs its <NAME>_GRPC_ADDR.
func peersOf(tb testing.TB, services []string) []string {
	tb.Helper()
	p, err := modules().plan(append(slices.Clone(services), modGRPCListener))
	require.NoError(tb, err)
	return p.remote
}

func containerPort(c corev1.Container, name string) (int32, bool) {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort, true
		}
	}
	return 0, false
}

// imageTag splits an image reference into its name and tag ("" when it has none).
func imageTag(ref string) (name, tag string) {
	ref, _, _ = strings.Cut(ref, "@")
	slash, colon := strings.LastIndex(ref, "/"), strings.LastIndex(ref, ":")
	if colon > slash {
		return ref[:colon], ref[colon+1:]
	}
	return ref, ""
}

// requireTagged: every image names a tag other than latest, and the project's own
// images carry the release (internal/version), so that the manifests and the binary
// cannot drift apart.
func requireTagged(tb testing.TB, image, what string) {
	tb.Helper()
	name, tag := imageTag(image)
	require.NotEmpty(tb, tag, "%s: image %s has no tag", what, image)
	require.NotEqual(tb, "latest", tag, "%s: image %s", what, image)
	if base := filepath.Base(name); base == "nexusrag" || base == "nexusrag-ingest" || base == "nexusrag-failover" {
		require.Equal(tb, version.Version, tag, "%s: image %s is not the release (deploy/k8s/components/release)", what, image)
	}
}

// TestKubernetesOverlays renders both overlays and checks what a cluster would otherwise
// find out at apply or run time.
func TestKubernetesOverlays(t *testing.T) {
	rendered := map[string]k8sObjects{}
	for _, overlay := range overlays {
		t.Run(overlay, func(t *testing.T) {
			o := renderOverlay(t, overlay)
			rendered[overlay] = o
			require.Len(t, o.namespaces, 1)
			require.Equal(t, k8sNS, o.namespaces[0].Name)
			require.Len(t, o.jobs, 1, "the migrate Job")
			require.Equal(t, []string{"migrate"}, o.jobs[0].Spec.Template.Spec.Containers[0].Args)
			requirePodsHardened(t, o)
			requireReferencesResolve(t, o)
			for _, d := range o.deployments {
				requireServingContainer(t, o, d)
			}
			requireServicesSelectPods(t, o)
			requireDisruptionBudgetsAndAutoscalers(t, o)
		})
	}
	aio := rendered["all-in-one"]
	require.Len(t, aio.deployments, 1)
	require.Equal(t, modules().serviceNames(), hostedServices(t, aio.deployments[0].Spec.Template.Spec.Containers[0]))
	var scaled []string
	for _, h := range rendered["split"].hpas {
		scaled = append(scaled, h.Spec.ScaleTargetRef.Name)
	}
	require.ElementsMatch(t, []string{"gateway", "run", "ingest"}, scaled, "the autoscaled Deployments")
}

// requirePodsHardened: what every pod of the current manifests does, kept.
func requirePodsHardened(t *testing.T, o k8sObjects) {
	for name, pod := range o.pods() {
		require.Equal(t, ptrTo(false), pod.AutomountServiceAccountToken, name)
		require.Equal(t, ptrTo(false), pod.EnableServiceLinks, name)
		require.NotNil(t, pod.SecurityContext, name)
		require.Equal(t, ptrTo(true), pod.SecurityContext.RunAsNonRoot, name)
		require.Equal(t, ptrTo(int64(65532)), pod.SecurityContext.RunAsUser, name)
		require.NotNil(t, pod.SecurityContext.SeccompProfile, name)
		require.Equal(t, corev1.SeccompProfileTypeRuntimeDefault, pod.SecurityContext.SeccompProfile.Type, name)
		for _, c := range pod.Containers {
			what := name + " container " + c.Name
			requireTagged(t, c.Image, what)
			sc := c.SecurityContext
			require.NotNil(t, sc, what)
			require.Equal(t, ptrTo(false), sc.AllowPrivilegeEscalation, what)
			require.Equal(t, ptrTo(true), sc.ReadOnlyRootFilesystem, what)
			require.NotNil(t, sc.Capabilities, what)
			require.Contains(t, sc.Capabilities.Drop, corev1.Capability("ALL"), what)
			for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				req, lim := c.Resources.Requests[r], c.Resources.Limits[r]
				require.False(t, req.IsZero(), "%s: no %s request", what, r)
				require.False(t, lim.IsZero(), "%s: no %s limit", what, r)
				require.LessOrEqual(t, req.Cmp(lim), 0, "%s: %s request above its limit", what, r)
			}
		}
	}
}

// requireReferencesResolve: config comes from a rendered ConfigMap, secrets from the
// Secrets the operator creates, volumes from rendered claims.
func requireReferencesResolve(t *testing.T, o k8sObjects) {
	configMaps := map[string]bool{}
	for _, cm := range o.configMaps {
		configMaps[cm.Name] = true
	}
	claims := map[string]bool{}
	for _, c := range o.claims {
		claims[c.Name] = true
	}
	for name, pod := range o.pods() {
		for _, c := range pod.Containers {
			what := name + " container " + c.Name
			var fromConfig, fromSecret bool
			for _, ef := range c.EnvFrom {
				switch {
				case ef.ConfigMapRef != nil:
					require.True(t, configMaps[ef.ConfigMapRef.Name], "%s: envFrom ConfigMap %s is not rendered", what, ef.ConfigMapRef.Name)
					fromConfig = fromConfig || ef.ConfigMapRef.Name == configName
				case ef.SecretRef != nil:
					require.Contains(t, externalSecrets, ef.SecretRef.Name, what)
					fromSecret = fromSecret || ef.SecretRef.Name == secretsName
				}
			}
			require.True(t, fromConfig, "%s: no env from %s", what, configName)
			require.True(t, fromSecret, "%s: no env from %s", what, secretsName)
			for _, e := range c.Env {
				if e.ValueFrom == nil {
					continue
				}
				if r := e.ValueFrom.SecretKeyRef; r != nil {
					require.Contains(t, externalSecrets, r.Name, what)
				}
				if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
					require.True(t, configMaps[r.Name], "%s: ConfigMap %s is not rendered", what, r.Name)
				}
			}
		}
		for _, v := range pod.Volumes {
			switch {
			case v.Secret != nil:
				require.Contains(t, externalSecrets, v.Secret.SecretName, name)
			case v.PersistentVolumeClaim != nil:
				require.True(t, claims[v.PersistentVolumeClaim.ClaimName], "%s: claim %s is not rendered", name, v.PersistentVolumeClaim.ClaimName)
			case v.ConfigMap != nil:
				require.True(t, configMaps[v.ConfigMap.Name], "%s: ConfigMap %s is not rendered", name, v.ConfigMap.Name)
			}
		}
	}
	readme, err := os.ReadFile(filepath.Join(k8sDir, "README.md"))
	require.NoError(t, err)
	for _, s := range externalSecrets {
		require.Contains(t, string(readme), "create secret generic "+s, "deploy/k8s/README.md says how to create %s", s)
	}
}

// requireServingContainer: a Deployment runs `serve`, is probed over gRPC on its gRPC
// port, is scraped by Prometheus, spreads its pods, and the failover service gets the
// image with the PostgreSQL client tools and a volume for its backups.
func requireServingContainer(t *testing.T, o k8sObjects, d appsv1.Deployment) {
	what := "Deployment " + d.Name
	pod := d.Spec.Template.Spec
	require.Len(t, pod.Containers, 1, what)
	c := pod.Containers[0]
	services := hostedServices(t, c)
	require.NotEmpty(t, services, "%s does not run `serve`", what)
	port, ok := containerPort(c, "grpc")
	require.True(t, ok, "%s: no container port named grpc", what)
	require.EqualValues(t, grpcPort, port, what)
	for probe, p := range map[string]*corev1.Probe{"startup": c.StartupProbe, "readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		require.NotNil(t, p, "%s: no %s probe", what, probe)
		require.NotNil(t, p.GRPC, "%s: the %s probe is not gRPC", what, probe)
		require.Equal(t, port, p.GRPC.Port, "%s: the %s probe is not on the gRPC port", what, probe)
		require.Nil(t, p.GRPC.Service, "%s: the %s probe asks for the whole process (empty service name)", what, probe)
	}
	if slices.Contains(services, "gateway") {
		_, ok := containerPort(c, "http")
		require.True(t, ok, "%s hosts the gateway: it needs its http port", what)
	}
	annotations := d.Spec.Template.Annotations
	require.Equal(t, "true", annotations["prometheus.io/scrape"], what)
	metrics, ok := containerPort(c, "metrics")
	require.True(t, ok, what)
	require.Equal(t, strconv.Itoa(int(metrics)), annotations["prometheus.io/port"], what)
	if o.minReplicas(d) > 1 {
		require.True(t, slices.ContainsFunc(pod.TopologySpreadConstraints, func(c corev1.TopologySpreadConstraint) bool {
			return c.LabelSelector != nil && matches(c.LabelSelector.MatchLabels, d.Spec.Template.Labels) &&
				matches(d.Spec.Template.Labels, c.LabelSelector.MatchLabels)
		}), "%s: its pods spread over nodes", what)
	}
	if slices.Contains(services, "ingest") {
		name, _ := imageTag(c.Image)
		require.Contains(t, []string{"nexusrag-ingest", "nexusrag-failover"}, filepath.Base(name), "%s hosts ingest: it needs pdftotext", what)
	}
	if slices.Contains(services, "failover") {
		name, _ := imageTag(c.Image)
		require.Equal(t, "nexusrag-failover", filepath.Base(name), "%s hosts failover: it needs pg_dump", what)
		dir := envValue(c, "BACKUP_LOCAL_DIR")
		require.NotEmpty(t, dir, what)
		mount := slices.IndexFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == dir })
		require.GreaterOrEqual(t, mount, 0, "%s: BACKUP_LOCAL_DIR is not a mounted volume", what)
		vol := slices.IndexFunc(pod.Volumes, func(v corev1.Volume) bool { return v.Name == c.VolumeMounts[mount].Name })
		require.GreaterOrEqual(t, vol, 0, what)
		require.NotNil(t, pod.Volumes[vol].PersistentVolumeClaim, "%s: the backups outlive the pod", what)
	}
}

func envValue(c corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

// requireServicesSelectPods: each Service selects the pods of a Deployment, on ports
// that those pods' container declares.
func requireServicesSelectPods(t *testing.T, o k8sObjects) {
	for _, s := range o.services {
		what := "Service " + s.Name
		selected := o.selected(s.Spec.Selector)
		require.NotEmpty(t, selected, "%s selects no pods", what)
		for _, d := range selected {
			c := d.Spec.Template.Spec.Containers[0]
			for _, p := range s.Spec.Ports {
				require.True(t, slices.ContainsFunc(c.Ports, func(cp corev1.ContainerPort) bool {
					return (p.TargetPort.Type == intstr.String && cp.Name == p.TargetPort.StrVal) ||
						(p.TargetPort.Type == intstr.Int && cp.ContainerPort == p.TargetPort.IntVal)
				}), "%s port %s: Deployment %s has no container port %s", what, p.Name, d.Name, p.TargetPort.String())
			}
		}
	}
}

// requireDisruptionBudgetsAndAutoscalers: every Deployment that runs more than one pod
// has one PodDisruptionBudget; budgets and autoscalers name existing Deployments, and an
// autoscaled Deployment leaves its replica count to the autoscaler.
func requireDisruptionBudgetsAndAutoscalers(t *testing.T, o k8sObjects) {
	budgets := map[string]int{}
	for _, b := range o.pdbs {
		require.NotNil(t, b.Spec.Selector, b.Name)
		selected := o.selected(b.Spec.Selector.MatchLabels)
		require.Len(t, selected, 1, "PodDisruptionBudget %s selects the pods of one Deployment", b.Name)
		budgets[selected[0].Name]++
		require.True(t, b.Spec.MaxUnavailable != nil || b.Spec.MinAvailable != nil, b.Name)
	}
	for _, d := range o.deployments {
		if o.minReplicas(d) > 1 {
			require.Equal(t, 1, budgets[d.Name], "Deployment %s runs %d pods: it needs one PodDisruptionBudget", d.Name, o.minReplicas(d))
		} else {
			require.Zero(t, budgets[d.Name], "Deployment %s runs one pod: a budget would block node drains", d.Name)
		}
	}
	for _, h := range o.hpas {
		ref := h.Spec.ScaleTargetRef
		require.Equal(t, "apps/v1", ref.APIVersion, h.Name)
		require.Equal(t, "Deployment", ref.Kind, h.Name)
		d, ok := o.deployment(ref.Name)
		require.True(t, ok, "HorizontalPodAutoscaler %s scales Deployment %s, which is not rendered", h.Name, ref.Name)
		require.Nil(t, d.Spec.Replicas, "Deployment %s is autoscaled: a replica count in it would undo the autoscaler on every apply", d.Name)
		require.NotNil(t, h.Spec.MinReplicas, h.Name)
		require.GreaterOrEqual(t, *h.Spec.MinReplicas, int32(2), h.Name)
		require.Greater(t, h.Spec.MaxReplicas, *h.Spec.MinReplicas, h.Name)
		require.NotEmpty(t, h.Spec.Metrics, h.Name)
		for _, m := range h.Spec.Metrics {
			if m.Resource != nil {
				for _, c := range d.Spec.Template.Spec.Containers {
					_, ok := c.Resources.Requests[m.Resource.Name]
					require.True(t, ok, "HorizontalPodAutoscaler %s scales on %s, which container %s does not request", h.Name, m.Resource.Name, c.Name)
				}
			}
		}
	}
}

func ptrTo[T any](v T) *T { return &v }

// documentedEnv are the variables .env.example documents.
func documentedEnv(tb testing.TB) map[string]bool {
	tb.Helper()
	f, err := os.Open("../../.env.example")
	require.NoError(tb, err)
	defer func() { _ = f.Close() }()
	out := map[string]bool{}
	line := regexp.MustCompile(`^([A-Z][A-Z0-9_]*)=`)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := line.FindStringSubmatch(sc.Text()); m != nil {
			out[m[1]] = true
		}
	}
	require.NoError(tb, sc.Err())
	require.NotEmpty(tb, out)
	return out
}

// k8sEnv are the variables the Kubernetes manifests give the product: the ConfigMaps'
// keys, each container's env, and the keys of the example Secret.
func k8sEnv(tb testing.TB) map[string]string {
	tb.Helper()
	out := map[string]string{}
	for _, overlay := range overlays {
		o := renderOverlay(tb, overlay)
		for _, cm := range o.configMaps {
			for k := range cm.Data {
				out[k] = overlay + " ConfigMap " + cm.Name
			}
		}
		for name, pod := range o.pods() {
			for _, c := range pod.Containers {
				for _, e := range c.Env {
					out[e.Name] = overlay + " " + name
					if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
						out[e.ValueFrom.SecretKeyRef.Key] = overlay + " " + name + " secretKeyRef"
					}
				}
			}
		}
	}
	b, err := os.ReadFile(filepath.Join(k8sDir, "secret.example.yaml"))
	require.NoError(tb, err)
	j, err := sigsyaml.YAMLToJSON(b)
	require.NoError(tb, err)
	secret := decodeStrict[corev1.Secret](tb, j, "secret.example.yaml")
	require.Equal(tb, secretsName, secret.Name)
	for k := range secret.StringData {
		out[k] = "secret.example.yaml"
	}
	return out
}
