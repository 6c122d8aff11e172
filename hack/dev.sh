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
cat <<EOT

Almanac is about to run here, in the foreground. In another terminal:

    export KUBECONFIG=$KUBECONFIG
    kubectl -n $ns get scheduledjobs            # NEXT shows when each fires
    kubectl -n $ns get scheduledjobruns -w      # runs appear within a minute
    kubectl -n $ns describe sjr <run>           # per-service phases and Events
    kubectl -n $ns annotate sj <job> almanac.dev/run-now=now   # fire one now

Ctrl-C stops the operator; 'make cluster-down' stops the control plane.

EOT
exec .venv/bin/almanac run --liveness "" --metrics-port 0
