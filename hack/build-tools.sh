#!/usr/bin/env bash
# Builds, once per machine, the upstream binaries that the local control plane runs:
# kube-apiserver, kube-controller-manager, kube-scheduler, etcd, kwok and helm, each
# from the Go module pinned under hack/tools/<name>/go.mod, into a cache outside the
# repository (ALMANAC_CACHE, default ~/.cache/almanac), keyed by version.
#
# Binaries already present are reused. envtest's conventions are honoured first:
# TEST_ASSET_KUBE_APISERVER / TEST_ASSET_ETCD (a file) or KUBEBUILDER_ASSETS (a folder
# holding kube-apiserver, etcd, ...) so a user with setup-envtest binaries skips builds.
#
# Prints progress on stderr (a cold build takes many minutes on 2 cores) and, on
# stdout, one "name=/path/to/binary" line per tool for the caller to use.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${ALMANAC_CACHE:-$HOME/.cache/almanac}
export GOFLAGS=-mod=mod GOTOOLCHAIN=${GOTOOLCHAIN:-auto}

# One build at a time per cache: a second caller (a parallel test run, a helper's
# checkout) waits here for the first to finish, then finds the binaries and reuses them,
# instead of compiling into the same .partial folders at once.
mkdir -p "$cache"
exec 9>"$cache/.build.lock"
if ! flock -n 9; then
  printf '%s\n' "==> another build of the control-plane binaries is running; waiting for it ($cache/.build.lock)" >&2
  flock 9
fi

log() { printf '%s\n' "$*" >&2; }

# version MODULE_DIR MODULE_PATH: the version of MODULE_PATH that go.mod pins.
version() { awk -v m="$2" '{ sub(/^require/, ""); if ($1 == m && $2 ~ /^v/) { print $2; exit } }' "$here/tools/$1/go.mod"; }

# envtest_asset NAME: a prebuilt binary offered by the envtest variables, if any.
envtest_asset() {
  local var="TEST_ASSET_$(echo "$1" | tr 'a-z-' 'A-Z_')"
  if [ -n "${!var:-}" ] && [ -x "${!var}" ]; then echo "${!var}"; return; fi
  if [ -n "${KUBEBUILDER_ASSETS:-}" ] && [ -x "$KUBEBUILDER_ASSETS/$1" ]; then
    echo "$KUBEBUILDER_ASSETS/$1"
  fi
}

# go_build MODULE_DIR OUT_DIR LDFLAGS PACKAGE...: builds with a heartbeat every 30 s.
go_build() {
  local dir=$1 out=$2 ldflags=$3; shift 3
  local tmp="$out.partial" blog="$cache/build-$(basename "$(dirname "$out")").log"
  local names; names=$(for p in "$@"; do basename "${p%/v[0-9]*}"; done | tr '\n' ' ')
  mkdir -p "$tmp" "$cache"
  log "==> building ${names}from $(basename "$dir") (log: $blog)"
  local start=$SECONDS
  (cd "$here/tools/$dir" && CGO_ENABLED=0 go build -v -trimpath -tags selinux,notest \
      -ldflags "-s -w $ldflags" -o "$tmp/" "$@") >"$blog" 2>&1 &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -0 "$pid" 2>/dev/null || break
    log "    ... $(( (SECONDS - start) / 60 ))m$(( (SECONDS - start) % 60 ))s, $(wc -l <"$blog") packages compiled so far"
  done
  if ! wait "$pid"; then
    tail -n 30 "$blog" >&2
    log "error: building ${names}failed; the whole log is $blog"
    exit 1
  fi
  # go build names a binary after its package path, minus a /vN suffix: etcd's is "server".
  [ ! -e "$tmp/server" ] || mv "$tmp/server" "$tmp/etcd"
  mkdir -p "$out" && mv "$tmp"/* "$out"/ && rmdir "$tmp"
  log "    done in $(( (SECONDS - start) / 60 ))m$(( (SECONDS - start) % 60 ))s"
}

# ensure NAME MODULE_DIR VERSION_DIR LDFLAGS PACKAGE...: prints NAME=PATH, building if needed.
ensure() {
  local name=$1 dir=$2 vdir=$3 ldflags=$4; shift 4
  local found; found=$(envtest_asset "$name")
  if [ -z "$found" ]; then
    found="$cache/$vdir/bin/$name"
    [ -x "$found" ] || go_build "$dir" "$cache/$vdir/bin" "$ldflags" "$@"
  fi
  echo "$name=$found"
}

k8s=$(version k8s k8s.io/kubernetes)
minor=${k8s#v1.}; minor=${minor%%.*}
k8s_ld="-X k8s.io/component-base/version.gitVersion=$k8s -X k8s.io/component-base/version.gitMajor=1"
k8s_ld+=" -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
k8s_ld+=" -X k8s.io/component-base/version.buildDate=1970-01-01T00:00:00Z"
k8s_ld+=" -X k8s.io/client-go/pkg/version.gitVersion=$k8s -X k8s.io/client-go/pkg/version.gitMajor=1"
k8s_ld+=" -X k8s.io/client-go/pkg/version.gitMinor=$minor"
k8s_pkgs=(k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager
          k8s.io/kubernetes/cmd/kube-scheduler)

# The three Kubernetes binaries share most packages: build them in one go when any is missing.
missing=0
for p in "${k8s_pkgs[@]}"; do
  n=$(basename "$p")
  [ -n "$(envtest_asset "$n")" ] || [ -x "$cache/k8s-$k8s/bin/$n" ] || missing=1
done
if [ $missing = 1 ]; then
  log "Kubernetes $k8s is not built on this machine yet: a cold build takes about 15-25 minutes on 2 cores."
  go_build k8s "$cache/k8s-$k8s/bin" "$k8s_ld" "${k8s_pkgs[@]}"
fi
for p in "${k8s_pkgs[@]}"; do ensure "$(basename "$p")" k8s "k8s-$k8s" "$k8s_ld" "$p"; done

etcd=$(version etcd go.etcd.io/etcd/server/v3)
ensure etcd etcd "etcd-$etcd" "" go.etcd.io/etcd/server/v3

kwok=$(version kwok sigs.k8s.io/kwok)
ensure kwok kwok "kwok-$kwok" "" sigs.k8s.io/kwok/cmd/kwok

helm=$(version helm helm.sh/helm/v3)
ensure helm helm "helm-$helm" "-X helm.sh/helm/v3/internal/version.version=$helm" helm.sh/helm/v3/cmd/helm

# kwok's generic node and pod stages, from the module just built, beside the binary.
stages="$cache/kwok-$kwok/stages"
if [ ! -d "$stages" ]; then
  src=$(cd "$here/tools/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)/kustomize/stage
  mkdir -p "$stages.partial"
  cp "$src/node/fast/node-initialize.yaml" "$src/node/heartbeat/node-heartbeat.yaml" \
     "$src/pod/fast/pod-ready.yaml" "$src/pod/fast/pod-delete.yaml" "$stages.partial/"
  mv "$stages.partial" "$stages"
fi
echo "kwok-stages=$stages"
