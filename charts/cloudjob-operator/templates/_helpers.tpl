{{/*
Chart name, cut to 63 characters (the limit of a label value and of many names).
*/}}
{{- define "cloudjob-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of every object: fullnameOverride, else the release name when it already contains the chart name,
else "<release>-<chart>". Stable, so tests and users can find the ServiceAccount and RBAC objects by it.
*/}}
{{- define "cloudjob-operator.fullname" -}}
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

{{- define "cloudjob-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every object.
*/}}
{{- define "cloudjob-operator.labels" -}}
helm.sh/chart: {{ include "cloudjob-operator.chart" . }}
{{ include "cloudjob-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: cloudjob-operator
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Labels that select the operator pods (immutable in a Deployment: never add to them).
*/}}
{{- define "cloudjob-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cloudjob-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end }}

{{/*
Name of the ServiceAccount the operator runs as.
*/}}
{{- define "cloudjob-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "cloudjob-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
"true" when leader election is on: always with more than one replica, or when asked for.
*/}}
{{- define "cloudjob-operator.leaderElection" -}}
{{- if or .Values.leaderElection.enabled (gt (int .Values.replicaCount) 1) }}true{{ else }}false{{ end }}
{{- end }}

{{/*
"true" when a PodDisruptionBudget is created: always with more than one replica, or when asked for.
*/}}
{{- define "cloudjob-operator.pdb" -}}
{{- if or .Values.podDisruptionBudget.enabled (gt (int .Values.replicaCount) 1) }}true{{ else }}false{{ end }}
{{- end }}

{{/*
The container image: repository@digest, else repository:tag (tag defaults to the chart's appVersion).
*/}}
{{- define "cloudjob-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The rules the operator needs on the namespaces it watches, shared by the ClusterRole (cluster-wide mode) and
the per-namespace Roles (namespaced mode). Nothing more: it never changes a CloudJob's spec and deletes nothing.
*/}}
{{- define "cloudjob-operator.watchRules" -}}
- apiGroups: ["cloudjob.io"]
  resources: ["cloudjobs"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["cloudjob.io"]
  resources: ["cloudjobs/status"]
  verbs: ["get", "patch", "update"]
# Credentials: the operator reads only Secrets in a CloudJob's own namespace.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
# spec.outputsConfigMap: read to make sure it is free or the CloudJob's own, then written (server-side
# apply creates or patches it). Never list, update or delete.
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "create", "patch"]
{{- end }}
