{{- define "infragenius.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "infragenius.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "infragenius.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "infragenius.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "infragenius.selectorLabels" -}}
app.kubernetes.io/name: {{ include "infragenius.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "infragenius.labels" -}}
{{ include "infragenius.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "infragenius.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "infragenius.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "infragenius.webhookSecretName" -}}
{{- default (printf "%s-webhook" (include "infragenius.fullname" .)) .Values.webhook.token.existingSecret -}}
{{- end -}}

{{- /* The server's pods get their own app.kubernetes.io/name, so the operator's selectors (Deployment, Service,
PDB, NetworkPolicy) never match them, nor theirs the operator's. */ -}}
{{- define "infragenius.serverName" -}}
{{- printf "%s-server" (include "infragenius.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "infragenius.serverSelectorLabels" -}}
app.kubernetes.io/name: {{ printf "%s-server" (include "infragenius.name" .) | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "infragenius.serverLabels" -}}
{{ include "infragenius.serverSelectorLabels" . }}
app.kubernetes.io/component: server
app.kubernetes.io/part-of: {{ include "infragenius.name" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "infragenius.serverServiceAccountName" -}}
{{- if .Values.server.serviceAccount.create -}}
{{- default (include "infragenius.serverName" .) .Values.server.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.server.serviceAccount.name -}}
{{- end -}}
{{- end -}}
