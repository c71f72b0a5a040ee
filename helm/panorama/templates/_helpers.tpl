{{/* Names and labels. */}}
{{- define "panorama.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "panorama.fullname" -}}
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

{{- define "panorama.selectorLabels" -}}
app.kubernetes.io/name: {{ include "panorama.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "panorama.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "panorama.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: panorama
{{- end }}

{{- define "panorama.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "panorama.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "panorama.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The image's data directory (Dockerfile: WORKDIR /var/lib/panorama, ./data): the one writable path. */}}
{{- define "panorama.dataDir" -}}/var/lib/panorama/data{{- end }}
{{- define "panorama.configDir" -}}/etc/panorama{{- end }}

{{/* "true" when the database is PostgreSQL (a Secret holds its URL), "" for the embedded SQLite. */}}
{{- define "panorama.postgresql" -}}
{{- if .Values.database.existingSecret }}true{{ end }}
{{- end }}

{{/* The environment variable carrying auth.tokens[i]: PANORAMA_TOKEN_<NAME>. */}}
{{- define "panorama.tokenEnv" -}}
{{- printf "PANORAMA_TOKEN_%s" (regexReplaceAll "[^A-Za-z0-9]" .name "_" | upper) }}
{{- end }}

{{/*
What the schema cannot say: combinations that would lose data or break replicas.
Included by every template that would otherwise render a broken release.
*/}}
{{- define "panorama.validate" -}}
{{- $postgresql := include "panorama.postgresql" . }}
{{- if and (not $postgresql) (gt (int .Values.replicaCount) 1) }}
{{- fail (printf "replicaCount: %d replicas need PostgreSQL (set database.existingSecret): SQLite is one file on one pod's volume" (int .Values.replicaCount)) }}
{{- end }}
{{- if and (not $postgresql) .Values.autoscaling.enabled }}
{{- fail "autoscaling.enabled: autoscaling needs PostgreSQL (set database.existingSecret): SQLite allows one replica" }}
{{- end }}
{{- if and (not $postgresql) (not .Values.persistence.enabled) }}
{{- fail "persistence.enabled: SQLite without a persistent volume loses every incident and rollup at the next restart; enable persistence or use PostgreSQL (database.existingSecret)" }}
{{- end }}
{{- if and $postgresql (not .Values.auth.adminToken.existingSecret) (not .Values.auth.tokens) (not (dig "auth" "tokens" list .Values.config)) }}
{{- fail "auth: with PostgreSQL every replica needs the same tokens: set auth.adminToken.existingSecret or auth.tokens (a generated token would differ per pod)" }}
{{- end }}
{{- if and .Values.autoscaling.enabled (lt (int .Values.autoscaling.maxReplicas) (int .Values.autoscaling.minReplicas)) }}
{{- fail "autoscaling.maxReplicas: must be at least autoscaling.minReplicas" }}
{{- end }}
{{- $names := dict }}
{{- range .Values.auth.tokens }}
{{- $env := include "panorama.tokenEnv" . }}
{{- if hasKey $names $env }}
{{- fail (printf "auth.tokens: %q and %q both become the variable %s; rename one" (get $names $env) .name $env) }}
{{- end }}
{{- $_ := set $names $env .name }}
{{- end }}
{{- end }}

{{/* The URL Panorama is reached at: publicUrl, else the in-cluster Service. */}}
{{- define "panorama.serviceUrl" -}}
{{- printf "http://%s.%s.svc:%d" (include "panorama.fullname" .) .Release.Namespace (int .Values.service.port) }}
{{- end }}
{{- define "panorama.publicUrl" -}}
{{- $fromConfig := dig "alerts" "public_url" "" .Values.config }}
{{- default (default (include "panorama.serviceUrl" .) $fromConfig) .Values.publicUrl | trimSuffix "/" }}
{{- end }}

{{/*
panorama.yaml: `config` from the values, plus what the chart owns: the data directory, the
database URL and the tokens, as ${VAR} references to the environment (never the secrets).
Written as JSON, which is YAML too: Go's YAML writer leaves values such as a matcher's `=` bare,
which a YAML 1.1 reader (Panorama's) does not take as a string.
*/}}
{{- define "panorama.config" -}}
{{- $config := deepCopy .Values.config }}
{{- $_ := set $config "data_dir" (include "panorama.dataDir" .) }}
{{- $database := get $config "database" | default dict }}
{{- if include "panorama.postgresql" . }}
{{- $_ := set $database "url" "${PANORAMA_DATABASE_URL}" }}
{{- else }}
{{- $_ := set $database "url" (printf "sqlite+aiosqlite:///%s/panorama.db" (include "panorama.dataDir" .)) }}
{{- end }}
{{- $_ := set $config "database" $database }}
{{- $alerts := get $config "alerts" | default dict }}
{{- $_ := set $alerts "public_url" (include "panorama.publicUrl" .) }}
{{- if .Values.alerts.webhookToken.existingSecret }}
{{- $_ := set $alerts "webhook_token" "${PANORAMA_WEBHOOK_TOKEN}" }}
{{- end }}
{{- $_ := set $config "alerts" $alerts }}
{{- if .Values.auth.tokens }}
{{- $auth := get $config "auth" | default dict }}
{{- $tokens := get $auth "tokens" | default list }}
{{- range .Values.auth.tokens }}
{{- $tokens = append $tokens (dict "name" .name "role" .role "token" (printf "${%s}" (include "panorama.tokenEnv" .))) }}
{{- end }}
{{- $_ := set $auth "tokens" $tokens }}
{{- $_ := set $config "auth" $auth }}
{{- end }}
{{- toPrettyJson $config }}
{{- end }}

{{/* The environment of Panorama's containers (server, migration): secrets by reference only. */}}
{{- define "panorama.env" -}}
- name: PANORAMA_CONFIG
  value: {{ include "panorama.configDir" . }}/panorama.yaml
{{- if include "panorama.postgresql" . }}
- name: PANORAMA_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.database.existingSecret }}
      key: {{ .Values.database.existingSecretKey }}
{{- end }}
{{- with .Values.auth.adminToken }}
{{- if .existingSecret }}
- name: PANORAMA_ADMIN_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret }}
      key: {{ .existingSecretKey }}
{{- end }}
{{- end }}
{{- with .Values.alerts.webhookToken }}
{{- if .existingSecret }}
- name: PANORAMA_WEBHOOK_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret }}
      key: {{ .existingSecretKey }}
{{- end }}
{{- end }}
{{- range .Values.auth.tokens }}
- name: {{ include "panorama.tokenEnv" . }}
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret }}
      key: {{ .existingSecretKey }}
{{- end }}
{{- range .Values.secretEnv }}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret }}
      key: {{ .existingSecretKey }}
{{- end }}
{{- with .Values.env }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Pod-level settings shared by the Deployment and the migration Job. */}}
{{- define "panorama.podCommon" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- end }}
