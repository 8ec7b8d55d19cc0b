{{/* The chart's name, and the release's full name that names every object. */}}
{{- define "fluxtune.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "fluxtune.fullname" -}}
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

{{/* Labels of every object. app.kubernetes.io/part-of is the label deploy/kustomization.yaml sets. */}}
{{- define "fluxtune.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "fluxtune.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: fluxtune
{{- end }}

{{/* What selects the operator's pods: deploy/'s app.kubernetes.io/name, plus the release. */}}
{{- define "fluxtune.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fluxtune.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "fluxtune.serviceAccountName" -}}
{{- default (include "fluxtune.fullname" .) .Values.serviceAccount.name }}
{{- end }}

{{/*
The leader-election Lease: `fluxtune-leader` (the operator's --lease-name default) for a release
named fluxtune, so that two releases in one namespace never share a Lease.
*/}}
{{- define "fluxtune.leaseName" -}}
{{- printf "%s-leader" (include "fluxtune.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "fluxtune.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The operator's RBAC, rule for rule deploy/rbac.yaml (which names the code that needs each one;
e2e/helm-check.sh fails when the two differ). Split in two for a namespaced install
(watchNamespace): the rules on namespaced kinds, which a RoleBinding can grant in one namespace, and
the reads of CRDs, which are cluster-scoped.
*/}}
{{- define "fluxtune.rules.namespaced" -}}
# FluxProfiles: the controller's cache (list, watch); status through the status subresource.
- apiGroups: ["fluxtune.dev"]
  resources: ["fluxprofiles"]
  verbs: ["list", "watch"]
- apiGroups: ["fluxtune.dev"]
  resources: ["fluxprofiles/status"]
  verbs: ["patch"]
# The generated Flux objects: caches, server-side apply, reconcile requests, prune. No update.
- apiGroups: ["source.toolkit.fluxcd.io"]
  resources: ["gitrepositories"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["kustomize.toolkit.fluxcd.io"]
  resources: ["kustomizations"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["image.toolkit.fluxcd.io"]
  resources: ["imagerepositories", "imagepolicies", "imageupdateautomations"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["notification.toolkit.fluxcd.io"]
  resources: ["receivers"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# No Secrets, no verb at all. Events on the profiles.
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}

{{- define "fluxtune.rules.crds" -}}
# fluxtune's own CRD and the six Flux CRDs, by name: which kinds are installed, at start and when
# Flux is installed or upgraded later (a metadata watch selecting one CRD by name).
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["get"]
  resourceNames:
    - fluxprofiles.fluxtune.dev
    - gitrepositories.source.toolkit.fluxcd.io
    - kustomizations.kustomize.toolkit.fluxcd.io
    - imagerepositories.image.toolkit.fluxcd.io
    - imagepolicies.image.toolkit.fluxcd.io
    - imageupdateautomations.image.toolkit.fluxcd.io
    - receivers.notification.toolkit.fluxcd.io
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
  resourceNames:
    - gitrepositories.source.toolkit.fluxcd.io
    - kustomizations.kustomize.toolkit.fluxcd.io
    - imagerepositories.image.toolkit.fluxcd.io
    - imagepolicies.image.toolkit.fluxcd.io
    - imageupdateautomations.image.toolkit.fluxcd.io
    - receivers.notification.toolkit.fluxcd.io
{{- end }}
