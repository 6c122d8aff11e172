{{/*
Helpers shared by the templates. Every name is prefixed with "almanac.".
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "almanac.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The base name of every object: fullnameOverride, else the release name when it contains
the chart name ("almanac"), else "<release>-<chart>". Cut at 52 characters so that the
longest suffix added to it ("-webhook-tls", "-metrics", "-leader") keeps names within 63.
*/}}
{{- define "almanac.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* "almanac-0.1.0", for the helm.sh/chart label. */}}
{{- define "almanac.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The labels that select the operator pods; they never change across upgrades. */}}
{{- define "almanac.selectorLabels" -}}
app.kubernetes.io/name: {{ include "almanac.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/* Labels on every object of the release. */}}
{{- define "almanac.labels" -}}
app.kubernetes.io/name: {{ include "almanac.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: almanac
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ include "almanac.chart" . }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The operator's ServiceAccount. */}}
{{- define "almanac.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "almanac.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false: name an existing ServiceAccount in the release namespace" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* repository[:tag][@digest] of the operator image. */}}
{{- define "almanac.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* The leader-election Lease: its namespace and name. */}}
{{- define "almanac.leaderElectionNamespace" -}}
{{- default .Release.Namespace .Values.leaderElection.namespace }}
{{- end }}

{{- define "almanac.leaderElectionId" -}}
{{- default (printf "%s-leader" (include "almanac.fullname" .)) .Values.leaderElection.id }}
{{- end }}

{{/* The webhook's Service, Secret and cert-manager objects. */}}
{{- define "almanac.webhookServiceName" -}}
{{- printf "%s-webhook" (include "almanac.fullname" .) }}
{{- end }}

{{- define "almanac.webhookSecretName" -}}
{{- printf "%s-webhook-tls" (include "almanac.fullname" .) }}
{{- end }}

{{- /*
"true" when cert-manager issues the webhook's certificate: webhook.certManager.enabled
true, or "auto" and the cluster serves cert-manager.io/v1; else empty (the operator makes
and keeps its own, see --webhook-secret).
*/}}
{{- define "almanac.webhookCertManager" -}}
{{- $enabled := toString .Values.webhook.certManager.enabled }}
{{- if or (eq $enabled "true") (and (eq $enabled "auto") (.Capabilities.APIVersions.Has "cert-manager.io/v1")) }}true{{- end }}
{{- end }}

{{- define "almanac.webhookCertDir" -}}
/etc/almanac/webhook
{{- end }}

{{- define "almanac.smtpPasswordDir" -}}
/etc/almanac/smtp
{{- end }}

{{- define "almanac.smtpCaDir" -}}
/etc/almanac/smtp-ca
{{- end }}

{{/*
The namespaces the webhook sees: webhook.namespaceSelector when set, else the watched
namespaces (by their kubernetes.io/metadata.name label), else every namespace.
*/}}
{{- define "almanac.webhookNamespaceSelector" -}}
{{- if .Values.webhook.namespaceSelector }}
{{- toYaml .Values.webhook.namespaceSelector }}
{{- else if .Values.watchNamespaces }}
matchExpressions:
  - key: kubernetes.io/metadata.name
    operator: In
    values:
      {{- toYaml .Values.watchNamespaces | nindent 6 }}
{{- else }}
{}
{{- end }}
{{- end }}

{{/*
The operator's rules on the namespaced resources it reads and writes, shared by the
ClusterRole (every namespace) and the per-namespace Roles (watchNamespaces).
*/}}
{{- define "almanac.operatorRules" -}}
- apiGroups: [almanac.dev]
  resources: [scheduledjobs]
  verbs: [get, list, watch, patch]
- apiGroups: [almanac.dev]
  resources: [scheduledjobs/status]
  verbs: [get, patch]
- apiGroups: [almanac.dev]
  resources: [scheduledjobruns]
  verbs: [get, list, watch, create, delete, patch]
- apiGroups: [almanac.dev]
  resources: [scheduledjobruns/status]
  verbs: [get, patch]
# The runs and Jobs the operator creates block their owner's deletion
# (blockOwnerDeletion); where the OwnerReferencesPermissionEnforcement admission plugin
# is on (OpenShift), that needs update on the owner's finalizers, as Kubernetes grants
# its CronJob and Job controllers.
- apiGroups: [almanac.dev]
  resources: [scheduledjobs/finalizers, scheduledjobruns/finalizers]
  verbs: [update]
- apiGroups: [almanac.dev]
  resources: [calendars]
  verbs: [get, list, watch]
- apiGroups: [almanac.dev]
  resources: [backfills]
  verbs: [get, list, watch]
- apiGroups: [almanac.dev]
  resources: [backfills/status]
  verbs: [get, patch]
- apiGroups: [almanac.dev]
  resources: [calendars/status]  # a feed's kept copy and fetches (spec.source)
  verbs: [get, patch]
- apiGroups: [""]
  resources: [configmaps]  # a feed from a ConfigMap key (spec.source.configMapKeyRef)
  verbs: [get]
{{- if .Values.rbac.feedCABundleSecrets }}
- apiGroups: [""]
  resources: [secrets]  # a feed's CA bundle (spec.source.caBundleSecretRef): opt-in
  verbs: [get]
{{- end }}
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, create]
- apiGroups: [""]
  resources: [events]
  verbs: [create, list]  # list: why a service's Job makes no Pod (FailedCreate)
{{- if .Values.notifications.allowedHosts }}
# Webhooks on: the URL of a urlSecretRef, read at each attempt. get only (no list or
# watch): the operator reads the one Secret a job names, never the others.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
{{- end }}
{{- end }}

{{/*
Checks that catch settings which render but could not work, with what to set instead.
Included once, from the Deployment.
*/}}
{{- define "almanac.validate" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection.enabled) }}
{{- fail (printf "replicaCount is %d but leaderElection.enabled is false: two operators would both fire every ScheduledJob. Set leaderElection.enabled=true, or replicaCount=1." (int .Values.replicaCount)) }}
{{- end }}
{{- if and (eq .Values.updateStrategy.type "RollingUpdate") (not .Values.leaderElection.enabled) }}
{{- fail "updateStrategy.type is RollingUpdate but leaderElection.enabled is false: during a rollout the old and the new operator would both fire every ScheduledJob. Set leaderElection.enabled=true, or updateStrategy.type=Recreate." }}
{{- end }}
{{- if .Values.smtp.host }}
{{- if not .Values.smtp.from }}
{{- fail "smtp.host is set but smtp.from is empty: set smtp.from to the sender address, for example --set smtp.from='Almanac <almanac@example.com>'" }}
{{- end }}
{{- if and .Values.smtp.username (not .Values.smtp.existingSecret) }}
{{- fail "smtp.username is set but smtp.existingSecret is empty: create a Secret with the password (kubectl create secret generic almanac-smtp --from-literal=password=...) and set smtp.existingSecret=almanac-smtp" }}
{{- end }}
{{- if and .Values.smtp.existingSecret (not .Values.smtp.username) }}
{{- fail "smtp.existingSecret is set but smtp.username is empty: a password needs a user name; set smtp.username" }}
{{- end }}
{{- if and .Values.smtp.username (eq .Values.smtp.security "none") }}
{{- fail "smtp.security is none but smtp.username is set: the password would cross the network in clear text. Use smtp.security=starttls or tls" }}
{{- end }}
{{- else if or .Values.smtp.from .Values.smtp.to .Values.smtp.username .Values.smtp.existingSecret }}
{{- fail "smtp.from, smtp.to, smtp.username or smtp.existingSecret is set but smtp.host is empty: set smtp.host to your SMTP server, for example --set smtp.host=smtp.example.com" }}
{{- end }}
{{- $ports := list (int .Values.metrics.port) (int .Values.healthPort) }}
{{- if .Values.webhook.enabled }}
{{- $ports = append $ports (int .Values.webhook.port) }}
{{- end }}
{{- if ne (len $ports) (len (uniq $ports)) }}
{{- fail (printf "metrics.port, healthPort and webhook.port must differ (they are %s): the operator listens on each, and two on one port stop it at start. Give each its own, for example metrics.port=8080, healthPort=8081, webhook.port=9443" (join ", " $ports)) }}
{{- end }}
{{- if and .Values.networkPolicy.enabled .Values.webhook.enabled (not .Values.networkPolicy.webhookFrom) }}
{{- fail "networkPolicy.enabled is true but networkPolicy.webhookFrom is empty: the API server could not call the webhook. Give its addresses, for example --set 'networkPolicy.webhookFrom[0].ipBlock.cidr=10.0.0.10/32' (docs/install.md, Admission webhook)" }}
{{- end }}
{{- end }}
