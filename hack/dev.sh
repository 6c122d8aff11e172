#!/usr/bin/env bash
# `make dev`: the local control plane, the CRDs, the samples, and the operator in the
# foreground, so that a newcomer sees runs fire within a minute. Ctrl-C stops the
# operator; the control plane stays up until `make cluster-down`.
set -euo pipefail
cd "$(dirname "$0")/.."
export KUBECONFIG=$PWD/.cluster/kubeconfig
ns=almanac-demo

.venv/bin/python hack/cluster.py up
echo "==> CRDs (crds/) and samples (manifests/samples/) in namespace $ns"
kubectl apply --server-side --force-conflicts -f crds/ >/dev/null
kubectl wait --for=condition=Established crd --all --timeout=60s >/dev/null
kubectl get namespace "$ns" >/dev/null 2>&1 || kubectl create namespace "$ns" >/dev/null
kubectl -n "$ns" apply -f manifests/samples/
# The validating webhook, served by the operator below on a free loopback port with the
# certificate hack/cluster.py issued from the cluster's CA; only for the demo namespace,
# and removed when the operator stops.
if [ ! -f .cluster/pki/webhook/tls.crt ]; then
  echo "This control plane predates the local webhook certificate: run 'make cluster-down', then 'make dev'." >&2
  exit 1
fi
port=$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
ca=$(base64 -w0 .cluster/pki/ca.crt)
hook() {
  cat <<EOT
- name: $1.dev.almanac.dev
  clientConfig: {url: "https://127.0.0.1:$port/$2", caBundle: "$ca"}
  rules: [{apiGroups: [almanac.dev], apiVersions: [v1alpha1], operations: [CREATE, UPDATE], resources: [$1]}]
  namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: $ns}}
  failurePolicy: Fail
  sideEffects: None
  admissionReviewVersions: [v1]
  timeoutSeconds: 5
EOT
}
{
  printf 'apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingWebhookConfiguration\n'
  printf 'metadata: {name: almanac-dev}\nwebhooks:\n'
  hook scheduledjobs validate-scheduledjob
  hook calendars validate-calendar
  hook scheduledjobruns validate-scheduledjobrun
  hook backfills validate-backfill
} | kubectl apply -f - >/dev/null
trap 'kubectl delete validatingwebhookconfiguration almanac-dev --ignore-not-found >/dev/null' EXIT

cat <<EOT

Almanac is about to run here, in the foreground. In another terminal:

    export KUBECONFIG=$KUBECONFIG
    kubectl -n $ns get scheduledjobs            # NEXT shows when each fires
    kubectl -n $ns get scheduledjobruns -w      # runs appear within a minute
    kubectl -n $ns describe sjr <run>           # per-service phases and Events
    kubectl -n $ns annotate sj <job> almanac.dev/run-now=now   # fire one now
    kubectl -n $ns patch sj business-days --type=merge -p '{"spec":{"schedule":"61 * * * *"}}'
                                                # refused at once by the webhook, naming the field

Ctrl-C stops the operator; 'make cluster-down' stops the control plane.

EOT
.venv/bin/almanac run --liveness "" --metrics-port 0 \
  --webhook-port "$port" --webhook-cert-dir .cluster/pki/webhook
