#!/usr/bin/env bash
# Chart checks for charts/authpipe-proxy, run by scripts/test.sh (and on its own):
#   1. installs helm, kubeconform and helm-unittest into ./.tools/bin if absent (Go module proxy);
#   2. generates strict Kubernetes JSON schemas offline from the OpenAPI document shipped in
#      the k8s.io/cli-runtime module (a helm dependency), with charts/authpipe-proxy/tools/k8sschema;
#   3. helm lint --strict and helm template over the required values, every ci/*-values.yaml
#      and the all-features fixture, then kubeconform -strict on each rendering (the Prometheus
#      Operator kinds against schemas vendored from its CRDs in tools/crd-schemas);
#   4. checks the rendered defaults keep the promises of the chart (security context, rollout,
#      probes, hook);
#   5. negative fixtures: broken manifests must fail kubeconform for the expected reason, a
#      broken rendering must fail, invalid values must fail helm;
#   6. every key of values.yaml has a row in the chart README, and every row names a key;
#   7. the render assertions in charts/authpipe-proxy/unittests (helm-unittest);
#   8. every bootstrap-key recipe in the chart docs makes a key the server accepts.
# Idempotent: tools and schemas are reused when already there at the pinned versions.
set -euo pipefail
cd "$(dirname "$0")/.."

CHART=charts/authpipe-proxy
TOOLS_BIN="$PWD/.tools/bin"
HELM_MODULE=helm.sh/helm/v3
HELM_VERSION=v3.19.0
KUBECONFORM_MODULE=github.com/yannh/kubeconform
KUBECONFORM_VERSION=v0.7.0
# The OpenAPI v2 document of a Kubernetes 1.28-era API that k8s.io/cli-runtime ships for its
# tests; helm v3.19.0 depends on this exact module version, so building helm fetched it.
SCHEMA_MODULE=k8s.io/cli-runtime
SCHEMA_MODULE_VERSION=v0.34.0
SCHEMA_SOURCE=artifacts/openapi/swagger-with-shared-parameters.json
KUBE_VERSION=1.28.0
SCHEMA_DIR="$PWD/.tools/k8s-schemas/cli-runtime-$SCHEMA_MODULE_VERSION"
# ServiceMonitor and PrometheusRule: strict schemas generated from the Prometheus Operator's
# CRDs (tools/k8sschema -crd), vendored in the chart's tools/crd-schemas.
CRD_SCHEMA_DIR="$PWD/$CHART/tools/crd-schemas"
# helm-unittest is a helm plugin; its module has replace directives, so `go install` refuses
# it: build it from the downloaded module instead.
UNITTEST_MODULE=github.com/helm-unittest/helm-unittest
UNITTEST_VERSION=v1.1.2

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
checks=0
pass() { checks=$((checks + 1)); echo "ok   $*"; }
die() { echo "FAIL $*" >&2; exit 1; }

# ensure_tool BIN MODULE VERSION PACKAGE: go install PACKAGE@VERSION unless BIN is there,
# built from MODULE at VERSION.
ensure_tool() {
	local bin=$1 module=$2 version=$3 pkg=$4
	if [ -x "$TOOLS_BIN/$bin" ] &&
		go version -m "$TOOLS_BIN/$bin" 2>/dev/null | grep -Eq "^[[:space:]]+mod[[:space:]]+$module[[:space:]]+$version([[:space:]]|$)"; then
		return 0
	fi
	echo "== installing $bin $version (go install $pkg@$version)"
	local start=$SECONDS
	mkdir -p "$TOOLS_BIN"
	GOBIN="$TOOLS_BIN" go install "$pkg@$version"
	echo "== installed $bin in $((SECONDS - start))s"
}

ensure_tool helm "$HELM_MODULE" "$HELM_VERSION" helm.sh/helm/v3/cmd/helm
ensure_tool kubeconform "$KUBECONFORM_MODULE" "$KUBECONFORM_VERSION" github.com/yannh/kubeconform/cmd/kubeconform
HELM="$TOOLS_BIN/helm"
KUBECONFORM="$TOOLS_BIN/kubeconform"
UNITTEST="$TOOLS_BIN/helm-unittest"
# Built inside its module, the binary says "(devel)": a stamp file records the version.
if ! { [ -x "$UNITTEST" ] && [ "$(cat "$UNITTEST.version" 2>/dev/null)" = "$UNITTEST_VERSION" ]; }; then
	echo "== building helm-unittest $UNITTEST_VERSION from the Go module proxy"
	start=$SECONDS
	unittest_dir=$(cd "$work" && go mod download -json "$UNITTEST_MODULE@$UNITTEST_VERSION" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	[ -d "$unittest_dir" ] || die "cannot download $UNITTEST_MODULE@$UNITTEST_VERSION"
	mkdir -p "$TOOLS_BIN"
	(cd "$unittest_dir" && GOFLAGS=-mod=readonly go build -trimpath -o "$UNITTEST" ./cmd/helm-unittest)
	echo "$UNITTEST_VERSION" >"$UNITTEST.version"
	echo "== built helm-unittest in $((SECONDS - start))s"
fi

# Schemas: regenerated when missing or when the generator changed.
generator_sum=$(cat "$CHART"/tools/k8sschema/*.go | sha256sum | cut -d' ' -f1)
if [ "$(cat "$SCHEMA_DIR/.generator-sha256" 2>/dev/null || true)" != "$generator_sum" ]; then
	echo "== generating Kubernetes JSON schemas from $SCHEMA_MODULE@$SCHEMA_MODULE_VERSION"
	# Outside any module, so the project's go.mod is never touched.
	module_dir=$(cd "$work" && go mod download -json "$SCHEMA_MODULE@$SCHEMA_MODULE_VERSION" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	[ -f "$module_dir/$SCHEMA_SOURCE" ] || die "no OpenAPI document at $module_dir/$SCHEMA_SOURCE"
	rm -rf "$SCHEMA_DIR"
	go run "./$CHART/tools/k8sschema" -in "$module_dir/$SCHEMA_SOURCE" -out "$SCHEMA_DIR"
	echo "$generator_sum" >"$SCHEMA_DIR/.generator-sha256"
fi
for kind in apps/v1/deployment batch/v1/job v1/v1/service v1/v1/serviceaccount v1/v1/configmap \
	policy/v1/poddisruptionbudget autoscaling/v2/horizontalpodautoscaler \
	networking.k8s.io/v1/networkpolicy networking.k8s.io/v1/ingress; do
	[ -s "$SCHEMA_DIR/$kind.json" ] || die "schema $kind missing from $SCHEMA_DIR"
done

kubeconform() {
	"$KUBECONFORM" -strict -summary \
		-kubernetes-version "$KUBE_VERSION" \
		-schema-location "$SCHEMA_DIR/{{ .Group }}/{{ .ResourceAPIVersion }}/{{ .ResourceKind }}.json" \
		-schema-location "$CRD_SCHEMA_DIR/{{ .Group }}/{{ .ResourceAPIVersion }}/{{ .ResourceKind }}.json" "$@"
}

render() { # render NAME [helm args...]: writes $work/NAME.yaml
	local name=$1
	shift
	"$HELM" template authpipe "$CHART" --namespace authpipe --kube-version "$KUBE_VERSION" "$@" >"$work/$name.yaml"
}

# 1. lint, render and validate every values set that must work. "default" is the chart's
# defaults plus the few values production requires (without them rendering must fail, below).
REQUIRED="$CHART/testdata/required-values.yaml"
value_sets=("default:$REQUIRED")
for f in "$CHART"/ci/*-values.yaml "$CHART"/testdata/all-features-values.yaml; do
	value_sets+=("$(basename "$f" .yaml):$f")
done
for set in "${value_sets[@]}"; do
	name=${set%%:*}
	file=${set#*:}
	args=()
	[ -n "$file" ] && args=(-f "$file")
	"$HELM" lint --strict --kube-version "$KUBE_VERSION" "$CHART" "${args[@]}" >"$work/lint.log" 2>&1 ||
		{ cat "$work/lint.log" >&2; die "helm lint --strict ($name)"; }
	pass "helm lint --strict ($name)"
	render "$name" "${args[@]}" || die "helm template ($name)"
	out=$(kubeconform "$work/$name.yaml") || { echo "$out" >&2; die "kubeconform -strict ($name)"; }
	pass "kubeconform -strict ($name): ${out#Summary: }"
done

# 2. what the default rendering promises.
expect() { # expect NAME PATTERN: the rendering NAME contains a line matching PATTERN
	grep -Eq -- "$2" "$work/$1.yaml" || die "rendering '$1' has no line matching: $2"
	pass "rendering '$1' has: $2"
}
expect_not() {
	! grep -Eq -- "$2" "$work/$1.yaml" || die "rendering '$1' has a line matching: $2"
	pass "rendering '$1' lacks: $2"
}
expect default '^  replicas: 2$'
expect default '^      maxUnavailable: 0$'
expect default 'whenUnsatisfiable: ScheduleAnyway'
expect default 'topologyKey: "topology.kubernetes.io/zone"'
expect default 'topologyKey: "kubernetes.io/hostname"'
expect default '^ +runAsNonRoot: true$'
expect default '^ +runAsUser: 65532$'
expect default '^ +readOnlyRootFilesystem: true$'
expect default '^ +allowPrivilegeEscalation: false$'
expect default '^ +- ALL$'
expect default '^ +type: RuntimeDefault$'
expect default '^ +mountPath: /tmp$'
expect default '^ +path: /healthz$'
expect default '^ +path: /readyz$'
expect default '^ +startupProbe:$'
expect default 'args: \["serve"\]'
expect default 'args: \["migrate"\]'
expect default 'helm.sh/hook: pre-install,pre-upgrade'
expect default '^  minAvailable: 1$'
expect default '^  AUTHPIPE_PROFILE: "production"$'
expect default '^  AUTHPIPE_LISTEN_ADDR: "0.0.0.0:8080"$'
expect default '^  AUTHPIPE_OUTBOUND_ALLOW_CIDRS: ""$'
# the operations endpoints on their own port: probes and the ServiceMonitor use it, the
# Ingress (service port http) never routes to it
expect default '^  AUTHPIPE_OPS_LISTEN_ADDR: "0.0.0.0:9090"$'
expect default '^              containerPort: 9090$'
expect default '^              port: ops$'
expect_not default '^              port: http$'
expect aws-kms-irsa-values '^    - port: ops$'
expect all-features-values '^                  name: http$'
expect default 'image: "ghcr.io/authpipe/authpipe-proxy:0.1.0"'
expect_not default 'kind: (HorizontalPodAutoscaler|ServiceMonitor|Ingress)$'
expect default 'AUTHPIPE_KEK_URI: "awskms://alias/authpipe-credentials'
expect default 'helm.sh/hook: test'
expect all-features-values 'kind: PrometheusRule'
expect all-features-values 'example.com/cost-center: security'
expect aws-kms-irsa-values 'eks.amazonaws.com/role-arn: arn:aws:iam::'
expect aws-kms-irsa-values 'AUTHPIPE_KEK_URI: "awskms://'
expect aws-kms-irsa-values 'kind: HorizontalPodAutoscaler'
expect aws-kms-irsa-values 'kind: ServiceMonitor'
expect_not aws-kms-irsa-values '^  replicas:'
expect pkcs11-values 'pin-source=file:/var/run/authpipe/pkcs11/pin'
expect pkcs11-values 'mountPath: "/var/run/authpipe/pkcs11"'
expect pkcs11-values 'iam.gke.io/gcp-service-account'
expect gke-workload-identity-values 'AUTHPIPE_KEK_URI: "gcpkms://projects/'
expect gke-workload-identity-values 'AUTHPIPE_CLIENT_SECRET_KEK_URI: "gcpkms://projects/'
expect gke-workload-identity-values 'iam.gke.io/gcp-service-account: authpipe-proxy@'
expect gke-workload-identity-values 'iam.gke.io/gke-metadata-server-enabled: "true"'
expect gke-workload-identity-values 'cidr: 169.254.169.252/32'
expect aks-workload-identity-values 'AUTHPIPE_KEK_URI: "azurekv://acme-authpipe.vault.azure.net/keys/'
expect aks-workload-identity-values 'AUTHPIPE_CLIENT_SECRET_KEK_URI: "azurekv://acme-authpipe-hsm.managedhsm.azure.net/keys/'
expect aks-workload-identity-values 'azure.workload.identity/client-id: '
expect aks-workload-identity-values '^        azure.workload.identity/use: "true"$'
expect all-features-values 'AUTHPIPE_TLS_CERT_FILE: "/var/run/authpipe/tls/tls.crt"'
expect all-features-values 'AUTHPIPE_TLS_CLIENT_CA_FILE: "/var/run/authpipe/client-ca/ca.crt"'
expect all-features-values 'AUTHPIPE_OUTBOUND_CA_FILE: "/var/run/authpipe/outbound-ca/ca.crt"'
expect all-features-values 'scheme: HTTPS'
expect all-features-values '@sha256:'

# The Service and the PodDisruptionBudget select the server pods only, never the migration
# Job's (which share the name and instance labels).
for t in service poddisruptionbudget; do
	"$HELM" template authpipe "$CHART" --kube-version "$KUBE_VERSION" -f "$REQUIRED" --show-only "templates/$t.yaml" >"$work/$t.yaml"
	grep -A4 -E '^  (selector|  matchLabels):$' "$work/$t.yaml" | grep -q 'app.kubernetes.io/component: server' ||
		die "the $t does not select app.kubernetes.io/component: server"
	pass "the $t selects the server pods only"
done
expect default '^        app.kubernetes.io/component: migration$'

# 3. negative fixtures: each must fail, for the reason its "# expect:" line gives.
expected_reason() { sed -n 's/^# expect: //p' "$1" | head -n1; }
n_bad=0
for f in "$CHART"/testdata/invalid-manifests/*.yaml; do
	reason=$(expected_reason "$f")
	[ -n "$reason" ] || die "$f has no '# expect:' line"
	if out=$(kubeconform "$f" 2>&1); then
		die "kubeconform accepted the broken manifest $f"
	fi
	grep -qF -- "$reason" <<<"$out" || { echo "$out" >&2; die "$f failed, but not with: $reason"; }
	pass "kubeconform rejects $(basename "$f"): $reason"
	n_bad=$((n_bad + 1))
done
[ "$n_bad" -ge 5 ] || die "expected at least 5 broken-manifest fixtures, found $n_bad"

render render-bad -f "$REQUIRED" -f "$CHART/testdata/render-bad-values.yaml" || die "helm template (render-bad-values)"
if out=$(kubeconform "$work/render-bad.yaml" 2>&1); then
	die "kubeconform accepted the broken rendering of testdata/render-bad-values.yaml"
fi
grep -qF "additional properties 'mountpath' not allowed" <<<"$out" || { echo "$out" >&2; die "broken rendering failed for another reason"; }
pass "kubeconform rejects the rendering of render-bad-values.yaml"

for f in "$CHART"/testdata/invalid-values/*.yaml; do
	reason=$(expected_reason "$f")
	[ -n "$reason" ] || die "$f has no '# expect:' line"
	if out=$("$HELM" template authpipe "$CHART" --kube-version "$KUBE_VERSION" -f "$REQUIRED" -f "$f" 2>&1); then
		die "helm accepted the invalid values $f"
	fi
	grep -qF -- "$reason" <<<"$out" || { echo "$out" >&2; die "$f failed, but not with: $reason"; }
	pass "helm rejects $(basename "$f"): $reason"
done

# 4. README coverage: every key of values.yaml (leaves; list items are values) has a row.
awk '
	BEGIN { listind = -1 }
	/^[[:space:]]*(#.*)?$/ { next }
	{
		match($0, /^ */); ind = RLENGTH; line = substr($0, ind + 1)
		if (listind >= 0) {
			if (ind > listind || (ind == listind && line ~ /^-( |$)/)) next
			listind = -1
		}
		if (line ~ /^-( |$)/) { listind = ind; next }
		if (ind % 2 != 0 || !match(line, /^[A-Za-z0-9_.\/-]+:( |$)/)) {
			printf "values.yaml:%d: cannot parse: %s\n", NR, $0 > "/dev/stderr"; bad = 1; exit 1
		}
		key = line; sub(/:.*/, "", key)
		depth = ind / 2; path[depth] = key
		p = path[0]; for (i = 1; i <= depth; i++) p = p "." path[i]
		print p
	}
	END { if (bad) exit 1 }
' "$CHART/values.yaml" >"$work/keys.txt" || die "cannot list the keys of values.yaml"
# leaves: keys that are no other key's parent
awk '{ k[NR] = $0 } END { for (i = 1; i <= NR; i++) { leaf = 1; for (j = 1; j <= NR; j++) if (index(k[j], k[i] ".") == 1) leaf = 0; if (leaf) print k[i] } }' \
	"$work/keys.txt" | sort >"$work/leaves.txt"
# the first column of the table under "## Values"
awk '/^## /{ values = ($0 == "## Values") } values' "$CHART/README.md" |
	sed -n 's/^| `\([^`]*\)` |.*/\1/p' | sort >"$work/readme-keys.txt"
missing=$(comm -23 "$work/leaves.txt" "$work/readme-keys.txt")
[ -z "$missing" ] || die "values missing from $CHART/README.md: $(echo $missing)"
stale=$(comm -13 "$work/leaves.txt" "$work/readme-keys.txt")
[ -z "$stale" ] || die "README rows for keys not in values.yaml: $(echo $stale)"
[ "$(wc -l <"$work/leaves.txt")" -ge 100 ] || die "suspiciously few values keys parsed"
pass "README documents all $(wc -l <"$work/leaves.txt") values keys"

# The chart's defaults alone (production profile) must not render: a release that cannot
# start should fail at `helm install`, naming what is missing, not crash-loop.
if out=$("$HELM" template authpipe "$CHART" --kube-version "$KUBE_VERSION" 2>&1); then
	die "the production defaults rendered without publicURL, KEK URIs and the Secret"
fi
grep -qF "config.profile=production needs: config.publicURL" <<<"$out" || { echo "$out" >&2; die "the defaults failed for another reason"; }
pass "the production defaults alone fail, naming what is missing"

# 7. render assertions (helm-unittest suites in the chart's unittests/).
"$UNITTEST" --color=false -f 'unittests/*_test.yaml' "$CHART" >"$work/unittest.log" 2>&1 || { cat "$work/unittest.log" >&2; die "helm-unittest"; }
pass "helm-unittest: $(grep -E '^Tests:' "$work/unittest.log" | tr -s ' ')"

# 8. every bootstrap-key recipe in the chart's docs makes a key the server accepts
# (admin.ValidKeyFormat: ap_ and at least 32 URL-safe characters).
n_recipes=0
while IFS= read -r recipe; do
	key=$(bash -c "printf '%s' $recipe") || die "bootstrap-key recipe failed: $recipe"
	[[ "$key" =~ ^ap_[A-Za-z0-9_-]{32,}$ ]] || die "bootstrap-key recipe $recipe makes an invalid key"
	n_recipes=$((n_recipes + 1))
done < <(grep -rhoE 'bootstrap-api-key="[^"]*"' "$CHART/README.md" "$CHART"/ci/*.yaml README.md 2>/dev/null | sed 's/^bootstrap-api-key=//')
[ "$n_recipes" -ge 3 ] || die "expected at least 3 bootstrap-key recipes, found $n_recipes"
pass "all $n_recipes bootstrap-key recipes make valid keys"

echo "== chart checks: $checks checks ok"
