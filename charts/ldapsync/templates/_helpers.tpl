{{/* Chart name, release-scoped names and labels. */}}
{{- define "ldapsync.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "ldapsync.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "ldapsync.controllerSelector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end -}}

{{- define "ldapsync.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "ldapsync.controllerServiceAccount" -}}
{{ include "ldapsync.fullname" . }}-controller
{{- end -}}

{{- define "ldapsync.agentNamespaces" -}}
{{- if .Values.agent.namespaces -}}
{{- join "," .Values.agent.namespaces -}}
{{- else -}}
{{- .Release.Namespace -}}
{{- end -}}
{{- end -}}

{{/*
The agent sidecar for a gateway pod. Use it in your gateway's pod template:

  spec:
    serviceAccountName: ldapsync-agent
    containers:
      - name: gateway
        ...
      {{- include "ldapsync.agentContainer" . | nindent 6 }}
    volumes:
      {{- include "ldapsync.agentVolumes" . | nindent 6 }}
      - name: ldapsync-cache
        emptyDir: {}          # or a volumeClaimTemplate, to keep the cache across pod restarts

and label the pod `ldapsync.io/gateway: "true"` (the controller's gatewaySelector). The gateway
reads lookups from http://{{ .Values.agent.listen }} (localhost only); the kubelet probes the
sidecar on its port `agent-probe`, which serves nothing but /healthz, /readyz and /metrics.
*/}}
{{- define "ldapsync.agentContainer" -}}
- name: ldapsync-agent
  image: {{ include "ldapsync.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  args:
    - agent
    - --store={{ .Values.agent.storePath }}
    - --listen={{ .Values.agent.listen }}
    - --probe-listen=0.0.0.0:{{ .Values.agent.probePort }}
    - --max-concurrent-syncs={{ .Values.agent.maxConcurrentSyncs }}
    {{- if .Values.agent.socketmap.port }}
    - --socketmap-listen=127.0.0.1:{{ .Values.agent.socketmap.port }}
    - --recipient-delimiter={{ .Values.agent.socketmap.recipientDelimiter }}
    {{- end }}
  env:
    - name: POD_NAME
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
    - name: POD_NAMESPACE
      valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
    - name: LDAPSYNC_LOG
      value: {{ .Values.agent.logLevel | quote }}
    # Keytabs are staged for GSSAPI in a memory-backed volume: the root filesystem is read-only.
    - name: TMPDIR
      value: /run/ldapsync
    {{- with .Values.agent.dnsServer }}
    # An environment variable, not a flag: `kubectl ldapsync check` runs in this container too.
    - name: LDAPSYNC_DNS_SERVER
      value: {{ . | quote }}
    {{- end }}
    {{- if .Values.agent.krb5Config }}
    - name: KRB5_CONFIG
      value: /etc/ldapsync/krb5/krb5.conf
    {{- end }}
  ports:
    - name: agent-probe
      containerPort: {{ .Values.agent.probePort }}
  readinessProbe:
    httpGet: {path: /readyz, port: agent-probe}
    periodSeconds: 5
  livenessProbe:
    httpGet: {path: /healthz, port: agent-probe}
    periodSeconds: 20
  resources:
    {{- toYaml .Values.agent.resources | nindent 4 }}
  securityContext:
    runAsNonRoot: true
    runAsUser: 65532
    allowPrivilegeEscalation: false
    readOnlyRootFilesystem: true
    capabilities: {drop: [ALL]}
  volumeMounts:
    - name: ldapsync-cache
      mountPath: {{ .Values.agent.storePath }}
    - name: ldapsync-run
      mountPath: /run/ldapsync
    {{- if .Values.agent.krb5Config }}
    - name: ldapsync-krb5
      mountPath: /etc/ldapsync/krb5
      readOnly: true
    {{- end }}
{{- end -}}

{{/* The volumes the sidecar needs besides its cache volume. */}}
{{- define "ldapsync.agentVolumes" -}}
- name: ldapsync-run
  emptyDir: {medium: Memory, sizeLimit: 16Mi}
{{- if .Values.agent.krb5Config }}
- name: ldapsync-krb5
  configMap: {name: {{ include "ldapsync.fullname" . }}-krb5}
{{- end }}
{{- end -}}
