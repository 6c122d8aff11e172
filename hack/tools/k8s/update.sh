#!/usr/bin/env bash
# Re-pins the Kubernetes control-plane binaries to VERSION (e.g. v1.37.2): rewrites the
# header, requirement and the replace block of go.mod, pinning every staging module that
# k8s.io/kubernetes requires at v0.0.0 to its published v0.Y.Z tag, then tidies.
set -euo pipefail
cd "$(dirname "$0")"
version=${1:?usage: update.sh VERSION (e.g. v1.37.2)}
staging=v0.${version#v1.}
upstream=$(GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$version" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
{
  sed -n '1,/^module /p' go.mod
  echo
  echo "go $(awk '$1 == "go" {print $2; exit}' "$upstream")"
  echo
  echo "require k8s.io/kubernetes $version"
  echo
  echo "replace ("
  awk -v v="$staging" '$1 ~ /^k8s\.io\// && $2 == "v0.0.0" {print "\t" $1 " => " $1 " " v}' "$upstream"
  echo ")"
  echo
  echo "tool ("
  for cmd in kube-apiserver kube-controller-manager kube-scheduler; do
    echo "	k8s.io/kubernetes/cmd/$cmd"
  done
  echo ")"
} > go.mod.new
mv go.mod.new go.mod
GOFLAGS=-mod=mod go mod tidy
echo "pinned k8s.io/kubernetes $version; rebuild with: bash hack/build-tools.sh," >&2
echo "then regenerate the CRDs' jobTemplate schema: make crd-schemas manifests" >&2
