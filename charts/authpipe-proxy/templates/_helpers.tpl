{{/* Chart name. */}}
{{- define "authpipe-proxy.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release-chart unless the release name already contains the chart name. */}}
{{- define "authpipe-proxy.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "authpipe-proxy.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "authpipe-proxy.selectorLabels" -}}
app.kubernetes.io/name: {{ include "authpipe-proxy.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The server pods only: the migration Job's pods share the name and instance labels. */}}
{{- define "authpipe-proxy.serverSelectorLabels" -}}
{{ include "authpipe-proxy.selectorLabels" . }}
app.kubernetes.io/component: server
{{- end }}

{{- define "authpipe-proxy.labels" -}}
helm.sh/chart: {{ include "authpipe-proxy.chart" . }}
{{ include "authpipe-proxy.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: authpipe
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "authpipe-proxy.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "authpipe-proxy.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The ServiceAccount the migration hook runs as: it must exist before the release's own resources do. */}}
{{- define "authpipe-proxy.migrationServiceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- printf "%s-migrate" (include "authpipe-proxy.serviceAccountName" .) | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- include "authpipe-proxy.serviceAccountName" . }}
{{- end }}
{{- end }}

{{/* repository@digest, or repository:tag (tag defaults to appVersion). */}}
{{- define "authpipe-proxy.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The container port, taken from config.listenAddr (host:port). */}}
{{- define "authpipe-proxy.containerPort" -}}
{{- regexFind "[0-9]+$" .Values.config.listenAddr | int }}
{{- end }}

{{/* The ops port (config.opsListenAddr), 0 when the operations endpoints stay on http. */}}
{{- define "authpipe-proxy.opsPort" -}}
{{- with .Values.config.opsListenAddr }}{{ regexFind "[0-9]+$" . | int }}{{ else }}0{{ end }}
{{- end }}

{{/* The named container port that serves /healthz, /readyz and /metrics. */}}
{{- define "authpipe-proxy.opsPortName" -}}
{{- if .Values.config.opsListenAddr }}ops{{ else }}http{{ end }}
{{- end }}

{{- define "authpipe-proxy.scheme" -}}
{{- if .Values.tls.enabled }}HTTPS{{ else }}HTTP{{ end }}
{{- end }}

{{/*
The non-secret settings as a YAML map of environment variable name to value. The
ConfigMap renders it as data; the migration hook (which runs before the ConfigMap exists)
renders it as env entries.
*/}}
{{- define "authpipe-proxy.configEnv" -}}
{{- $c := .Values.config -}}
AUTHPIPE_PROFILE: {{ $c.profile | quote }}
AUTHPIPE_LISTEN_ADDR: {{ $c.listenAddr | quote }}
{{- with $c.opsListenAddr }}
AUTHPIPE_OPS_LISTEN_ADDR: {{ . | quote }}
{{- end }}
{{- with $c.publicURL }}
AUTHPIPE_PUBLIC_URL: {{ . | quote }}
{{- end }}
{{- with $c.kekURI }}
AUTHPIPE_KEK_URI: {{ . | quote }}
{{- end }}
{{- with $c.kekPreviousURIs }}
AUTHPIPE_KEK_PREVIOUS_URIS: {{ join "," . | quote }}
{{- end }}
{{- with $c.clientSecretKekURI }}
AUTHPIPE_CLIENT_SECRET_KEK_URI: {{ . | quote }}
{{- end }}
AUTHPIPE_REFRESH_SCHEDULE: {{ $c.refreshSchedule | quote }}
AUTHPIPE_REFRESH_LEAD: {{ $c.refreshLead | quote }}
AUTHPIPE_FORCED_REFRESH_INTERVAL: {{ $c.forcedRefreshInterval | quote }}
AUTHPIPE_RETENTION: {{ $c.retention | quote }}
AUTHPIPE_SHUTDOWN_DELAY: {{ $c.shutdownDelay | quote }}
AUTHPIPE_LOG_LEVEL: {{ $c.logLevel | quote }}
AUTHPIPE_LOG_FORMAT: {{ $c.logFormat | quote }}
AUTHPIPE_OUTBOUND_ALLOW_CIDRS: {{ join "," $c.outboundAllowCIDRs | quote }}
{{- with $c.controlPlaneURL }}
AUTHPIPE_CONTROL_PLANE_URL: {{ . | quote }}
{{- end }}
{{- with $c.controlPlanePins }}
AUTHPIPE_CONTROL_PLANE_PINS: {{ join "," . | quote }}
{{- end }}
{{- if .Values.tls.enabled }}
AUTHPIPE_TLS_CERT_FILE: {{ printf "%s/tls.crt" .Values.tls.mountPath | quote }}
AUTHPIPE_TLS_KEY_FILE: {{ printf "%s/tls.key" .Values.tls.mountPath | quote }}
{{- with .Values.tls.clientCASecret }}
AUTHPIPE_TLS_CLIENT_CA_FILE: {{ printf "%s/ca.crt" $.Values.tls.clientCAMountPath | quote }}
{{- end }}
{{- end }}
{{- if .Values.outboundCA.configMapName }}
AUTHPIPE_OUTBOUND_CA_FILE: {{ printf "%s/ca.crt" .Values.outboundCA.mountPath | quote }}
{{- end }}
{{- end }}

{{/* Environment variables read from the existing Secret, plus extraEnv. */}}
{{- define "authpipe-proxy.secretEnv" -}}
{{- $secret := .Values.secrets.existingSecret -}}
{{- if $secret }}
{{- $keys := .Values.secrets.keys }}
- name: AUTHPIPE_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ $secret | quote }}
      key: {{ $keys.databaseURL | quote }}
{{- range $env := list
    (list "AUTHPIPE_BOOTSTRAP_API_KEY" $keys.bootstrapAPIKey)
    (list "AUTHPIPE_CONTROL_PLANE_TOKEN" $keys.controlPlaneToken)
    (list "VAULT_TOKEN" $keys.vaultToken)
    (list "AWS_ACCESS_KEY_ID" $keys.awsAccessKeyID)
    (list "AWS_SECRET_ACCESS_KEY" $keys.awsSecretAccessKey)
    (list "AWS_SESSION_TOKEN" $keys.awsSessionToken) }}
{{- if index $env 1 }}
- name: {{ index $env 0 }}
  valueFrom:
    secretKeyRef:
      name: {{ $secret | quote }}
      key: {{ index $env 1 | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Volumes shared by the Deployment and the migration Job. */}}
{{- define "authpipe-proxy.volumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit | quote }}
{{- if .Values.pkcs11.enabled }}
- name: pkcs11-pin
  secret:
    secretName: {{ .Values.pkcs11.pinSecretName | quote }}
    defaultMode: 0440
    items:
      - key: {{ .Values.pkcs11.pinSecretKey | quote }}
        path: pin
{{- end }}
{{- if .Values.tls.enabled }}
- name: tls
  secret:
    secretName: {{ .Values.tls.secretName | quote }}
    defaultMode: 0440
{{- end }}
{{- if and .Values.tls.enabled .Values.tls.clientCASecret }}
- name: tls-client-ca
  secret:
    secretName: {{ .Values.tls.clientCASecret | quote }}
    defaultMode: 0440
{{- end }}
{{- if .Values.outboundCA.configMapName }}
- name: outbound-ca
  configMap:
    name: {{ .Values.outboundCA.configMapName | quote }}
    defaultMode: 0444
{{- end }}
{{- if .Values.database.clientCertSecret }}
- name: postgres-client-certs
  secret:
    secretName: {{ .Values.database.clientCertSecret | quote }}
    defaultMode: 0440
{{- end }}
{{- with .Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "authpipe-proxy.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if .Values.pkcs11.enabled }}
- name: pkcs11-pin
  mountPath: {{ .Values.pkcs11.mountPath | quote }}
  readOnly: true
{{- end }}
{{- if .Values.tls.enabled }}
- name: tls
  mountPath: {{ .Values.tls.mountPath | quote }}
  readOnly: true
{{- end }}
{{- if and .Values.tls.enabled .Values.tls.clientCASecret }}
- name: tls-client-ca
  mountPath: {{ .Values.tls.clientCAMountPath | quote }}
  readOnly: true
{{- end }}
{{- if .Values.outboundCA.configMapName }}
- name: outbound-ca
  mountPath: {{ .Values.outboundCA.mountPath | quote }}
  readOnly: true
{{- end }}
{{- if .Values.database.clientCertSecret }}
- name: postgres-client-certs
  mountPath: {{ .Values.database.mountPath | quote }}
  readOnly: true
{{- end }}
{{- with .Values.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Fail rendering on combinations the schema cannot express. */}}
{{- define "authpipe-proxy.validate" -}}
{{- if eq .Values.config.profile "production" }}
{{- $missing := list }}
{{- if not .Values.config.publicURL }}{{ $missing = append $missing "config.publicURL (the https URL browsers reach)" }}{{ end }}
{{- if not .Values.config.kekURI }}{{ $missing = append $missing "config.kekURI" }}{{ end }}
{{- if not .Values.config.clientSecretKekURI }}{{ $missing = append $missing "config.clientSecretKekURI" }}{{ end }}
{{- if not .Values.secrets.existingSecret }}{{ $missing = append $missing "secrets.existingSecret (holding AUTHPIPE_DATABASE_URL)" }}{{ end }}
{{- if $missing }}
{{- fail (printf "config.profile=production needs: %s. See the chart README, \"Install\"." (join ", " $missing)) }}
{{- end }}
{{- end }}
{{- if and .Values.pkcs11.enabled (not .Values.pkcs11.pinSecretName) }}
{{- fail "pkcs11.enabled needs pkcs11.pinSecretName" }}
{{- end }}
{{- if and .Values.tls.enabled (not .Values.tls.secretName) }}
{{- fail "tls.enabled needs tls.secretName" }}
{{- end }}
{{- if and .Values.tls.clientCASecret (not .Values.tls.enabled) }}
{{- fail "tls.clientCASecret needs tls.enabled: client certificates only exist over TLS" }}
{{- end }}
{{- if and .Values.config.kekURI (eq .Values.config.kekURI .Values.config.clientSecretKekURI) }}
{{- fail "config.clientSecretKekURI must differ from config.kekURI" }}
{{- end }}
{{- if and .Values.autoscaling.enabled (lt (int .Values.autoscaling.maxReplicas) (int .Values.autoscaling.minReplicas)) }}
{{- fail "autoscaling.maxReplicas must be at least autoscaling.minReplicas" }}
{{- end }}
{{- $np := .Values.networkPolicy }}
{{- if and $np.enabled (not $np.egress.database.cidrs) (not $np.egress.database.to) }}
{{- fail "networkPolicy.enabled needs networkPolicy.egress.database.cidrs or .to: without either the pods cannot reach PostgreSQL (or set networkPolicy.enabled=false)" }}
{{- end }}
{{- if ge (include "authpipe-proxy.seconds" .Values.config.shutdownDelay | int) (int .Values.terminationGracePeriodSeconds) }}
{{- fail "config.shutdownDelay must be shorter than terminationGracePeriodSeconds: the pod would be killed while still draining" }}
{{- end }}
{{- end }}

{{/* Whole seconds of a Go duration (e.g. 1m30s; sub-second parts are dropped); 0 when empty. */}}
{{- define "authpipe-proxy.seconds" -}}
{{- $total := 0 }}
{{- range regexFindAll "[0-9]+(\\.[0-9]+)?(ns|us|µs|ms|h|m|s)" (default "0s" .) -1 }}
{{- $n := regexFind "^[0-9]+" . | int }}
{{- if regexMatch "(ns|us|µs|ms)$" . }}{{/* below a second */}}
{{- else if hasSuffix "h" . }}{{ $total = add $total (mul $n 3600) }}{{ else if hasSuffix "m" . }}{{ $total = add $total (mul $n 60) }}{{ else }}{{ $total = add $total $n }}{{ end }}
{{- end }}
{{- $total }}
{{- end }}
