{{/* The prefix of every object's name: the release's name, with "orrery" added unless it says so already. */}}
{{- define "orrery.fullname" -}}
{{- if contains "orrery" .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-orrery" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels that select one component's pods ({ctx, component}). */}}
{{- define "orrery.selectorLabels" -}}
app.kubernetes.io/name: orrery
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Every object's labels ({ctx, component}). */}}
{{- define "orrery.labels" -}}
{{ include "orrery.selectorLabels" . }}
app.kubernetes.io/part-of: orrery
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version }}
{{- end -}}

{{/* The Secret names, the user's or the placeholders'. */}}
{{- define "orrery.authSecret" -}}
{{- .Values.secrets.auth.existingSecret | default (printf "%s-auth" (include "orrery.fullname" .)) -}}
{{- end -}}
{{- define "orrery.grpcTLSSecret" -}}
{{- .Values.secrets.grpcTLS.existingSecret | default (printf "%s-grpc-tls" (include "orrery.fullname" .)) -}}
{{- end -}}
{{- define "orrery.gossipSecret" -}}
{{- .Values.secrets.gossip.existingSecret | default (printf "%s-gossip-key" (include "orrery.fullname" .)) -}}
{{- end -}}

{{/* Flags every component takes: the ring and gossip, the doors' locks,
the overrides and the gRPC client's TLS (rulers and queriers dial
ingesters, queriers dial frontends, ingesters dial each other). */}}
{{- define "orrery.commonArgs" -}}
- -instance.id=$(POD_NAME)
- -memberlist.advertise-address=$(POD_IP):7946
- -memberlist.join={{ include "orrery.fullname" . }}-gossip:7946
- -memberlist.key-file=/etc/orrery/gossip/key
- -memberlist.cluster-label={{ .Values.clusterLabel }}
- -replication-factor={{ int .Values.replicationFactor }}
{{- if .Values.zones }}
- -ring.zone-awareness-enabled=true
{{- end }}
- -auth.enabled=true
- -auth.admin-tokens-file=/etc/orrery/auth/admins.yaml
- -runtime-config.file=/etc/orrery/overrides/overrides.yaml
- -ingester.client.tls-enabled=true
- -ingester.client.tls-ca-path=/etc/orrery/tls/ca.crt
- -ingester.client.tls-cert-path=/etc/orrery/tls/tls.crt
- -ingester.client.tls-key-path=/etc/orrery/tls/tls.key
- -ingester.client.tls-server-name={{ .Values.grpcTLS.serverName }}
{{- end -}}

{{/* The gRPC server's flags: ingesters and frontends, mutual TLS. */}}
{{- define "orrery.grpcServerArgs" -}}
- -instance.addr=$(POD_IP):9095
- -grpc.tls-cert-path=/etc/orrery/tls/tls.crt
- -grpc.tls-key-path=/etc/orrery/tls/tls.key
- -grpc.tls-client-ca-path=/etc/orrery/tls/ca.crt
{{- end -}}

{{- define "orrery.env" -}}
- {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
- {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
{{- end -}}

{{- define "orrery.commonMounts" -}}
- {name: auth, mountPath: /etc/orrery/auth, readOnly: true}
- {name: grpc-tls, mountPath: /etc/orrery/tls, readOnly: true}
- {name: gossip-key, mountPath: /etc/orrery/gossip, readOnly: true}
- {name: overrides, mountPath: /etc/orrery/overrides, readOnly: true}
{{- end -}}

{{- define "orrery.commonVolumes" -}}
- {name: auth, secret: {secretName: {{ include "orrery.authSecret" . }}}}
- {name: grpc-tls, secret: {secretName: {{ include "orrery.grpcTLSSecret" . }}}}
- {name: gossip-key, secret: {secretName: {{ include "orrery.gossipSecret" . }}}}
- {name: overrides, configMap: {name: {{ include "orrery.fullname" . }}-overrides}}
{{- end -}}

{{- define "orrery.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65534
runAsGroup: 65534
fsGroup: 65534
fsGroupChangePolicy: OnRootMismatch
{{- end -}}

{{- define "orrery.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities: {drop: [ALL]}
{{- end -}}

{{/* The HTTP, gossip and, for gRPC servers ({grpc: true}), gRPC ports. */}}
{{- define "orrery.ports" -}}
- {name: http, containerPort: 9009}
{{- if .grpc }}
- {name: grpc, containerPort: 9095}
{{- end }}
- {name: gossip, containerPort: 7946, protocol: TCP}
- {name: gossip-udp, containerPort: 7946, protocol: UDP}
{{- end -}}

{{/* Ready once started and in the ring. No liveness probe: restarting a
process that is slow while it replays its WAL or hands over would only lose
that work. */}}
{{- define "orrery.readinessProbe" -}}
httpGet: {path: /ready, port: http}
periodSeconds: 5
{{- end -}}

{{/* Fails the render on a name Kubernetes would refuse ({what, name}). */}}
{{- define "orrery.checkName" -}}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" .name) -}}
{{- fail (printf "%s %q must be lower case letters, digits and '-' to name Kubernetes objects" .what .name) -}}
{{- end -}}
{{- end -}}

{{/* The tenants with rules, as a JSON array: those whose ConfigMap the
chart writes and those named in rules.existingConfigMaps, each once. */}}
{{- define "orrery.ruleTenants" -}}
{{- range $tenant, $_ := .Values.rules.existingConfigMaps -}}
{{- if hasKey $.Values.rules.tenants $tenant -}}
{{- fail (printf "tenant %q has rules both in rules.tenants and rules.existingConfigMaps; keep one" $tenant) -}}
{{- end -}}
{{- end -}}
{{- concat (keys .Values.rules.tenants) (keys .Values.rules.existingConfigMaps) | sortAlpha | toJson -}}
{{- end -}}
