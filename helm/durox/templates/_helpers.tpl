{{/* The release's full name, cut to the 63 characters a label value allows. */}}
{{- define "durox.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "durox.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "durox.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "durox.selectorLabels" -}}
app.kubernetes.io/name: durox-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "durox.labels" -}}
{{ include "durox.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: durox
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The Lease the replicas elect their leader on. */}}
{{- define "durox.leaseName" -}}
{{- default (include "durox.fullname" .) .Values.leaderElection.leaseName -}}
{{- end -}}
