#!/usr/bin/env bash
# Builds the pinned test control plane (kube-apiserver, kubectl, etcd, helm) from Go modules into a cache
# outside the repository and prints the directory that holds them. Binaries already in the cache are reused.
#
#   build.sh          the control plane only
#   build.sh --node   also what a local kubelet node needs: kube-scheduler, kube-controller-manager and
#                     kubelet (same k8s.io/kubernetes module), helm 4 as `helm4` (the node tests install
#                     the chart with Helm 3 and Helm 4), and the pause image (pause.c from that
#                     module's source, compiled with gcc -static, packed with tools/image/pack.sh into
#                     $cache/images/pause-$PAUSE_VERSION.tar). The node's Debian packages come from
#                     tools/node/setup.sh.
#
# Cache: ${CLOUDJOB_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cloudjob-operator}/bin/<name>-<version>
# Each binary is built to a temporary file and renamed into place only when `go build` succeeded, so an
# interrupted or failed build never leaves a broken cache entry. A lock file serializes concurrent callers.
set -euo pipefail

node=false
case "${1:-}" in
  --node) node=true ;;
  "") ;;
  *) echo "usage: build.sh [--node]" >&2; exit 2 ;;
esac

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

cache="${CLOUDJOB_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cloudjob-operator}"
bin="$cache/bin"
mkdir -p "$bin"
export GOFLAGS="${GOFLAGS:--buildvcs=false}"
export CGO_ENABLED=0

log() { echo "control-plane: $*" >&2; }

# build NAME VERSION DIR -- GO-BUILD-ARGS...: go build into $bin/NAME-VERSION unless it is there already.
build() {
  local name="$1" version="$2" dir="$3"
  shift 4
  local target="$bin/$name-$version"
  if [[ -x "$target" ]]; then return 0; fi
  log "building $name $version (first run only; this takes several minutes)"
  local started=$SECONDS tmp="$target.tmp.$$"
  trap 'rm -f "$tmp"' RETURN
  (cd "$dir" && go build -trimpath -o "$tmp" "$@")
  mv -f "$tmp" "$target"
  log "built $name $version in $((SECONDS - started)) s"
}

exec 9>"$cache/build.lock"
flock 9

k8s_minor="${KUBERNETES_VERSION#v1.}"; k8s_minor="${k8s_minor%%.*}"
k8s_ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$KUBERNETES_VERSION \
 -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$k8s_minor \
 -X k8s.io/client-go/pkg/version.gitVersion=$KUBERNETES_VERSION \
 -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$k8s_minor"

build kube-apiserver "$KUBERNETES_VERSION" "$here/kubernetes" -- -ldflags "$k8s_ldflags" k8s.io/kubernetes/cmd/kube-apiserver
build kubectl "$KUBERNETES_VERSION" "$here/kubernetes" -- -ldflags "$k8s_ldflags" k8s.io/kubernetes/cmd/kubectl
build etcd "$ETCD_VERSION" "$here/etcd" -- -ldflags "-s -w" .
# helm has no replace directives, so `go install` builds it straight from its module.
# build_helm NAME VERSION: helm VERSION (v3 or v4) as $bin/NAME-VERSION.
build_helm() {
  local name="$1" version="$2"
  local major="${version%%.*}"
  if [[ -x "$bin/$name-$version" ]]; then return 0; fi
  log "building helm $version as $name"
  local gobin
  gobin="$(mktemp -d "$bin/.$name.XXXXXX")"
  trap 'rm -rf "$gobin"' RETURN
  # Stamp the full version: without it `helm version` only knows the minor version ("v3.22").
  GOBIN="$gobin" go install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/$major/internal/version.version=$version" \
    "helm.sh/helm/$major/cmd/helm@$version"
  mv -f "$gobin/helm" "$bin/$name-$version"
}
build_helm helm "$HELM_VERSION"
# Helm 4 beside Helm 3: the GitOps and node tests run `helm install --wait` with both.
build_helm helm4 "$HELM4_VERSION"

pairs=("kube-apiserver:$KUBERNETES_VERSION" "kubectl:$KUBERNETES_VERSION" "etcd:$ETCD_VERSION" "helm:$HELM_VERSION" "helm4:$HELM4_VERSION")
if $node; then
  for cmd in kube-scheduler kube-controller-manager kubelet; do
    build "$cmd" "$KUBERNETES_VERSION" "$here/kubernetes" -- -ldflags "$k8s_ldflags" "k8s.io/kubernetes/cmd/$cmd"
    pairs+=("$cmd:$KUBERNETES_VERSION")
  done
  # The sandbox ("pause") image, built from the pinned module's own source, as the upstream Makefile does.
  pause_image="$cache/images/pause-$PAUSE_VERSION.tar"
  if [[ ! -s "$pause_image" ]]; then
    log "building the pause image $PAUSE_VERSION"
    src="$(cd "$here/kubernetes" && go list -m -f '{{.Dir}}' k8s.io/kubernetes)/build/pause/linux/pause.c"
    work="$(mktemp -d)"
    gcc -Os -Wall -Werror -static "-DVERSION=v$PAUSE_VERSION-$KUBERNETES_VERSION" -o "$work/pause" "$src"
    "$here/../image/pack.sh" "$pause_image" "registry.k8s.io/pause:$PAUSE_VERSION" \
      --user 65535:65535 --entrypoint /pause -- "$work/pause=/pause:0755"
    rm -rf "$work"
  fi
fi

# Stable names for people and tests: symlinks to the pinned versions.
for pair in "${pairs[@]}"; do
  ln -sfn "${pair%%:*}-${pair#*:}" "$bin/${pair%%:*}"
done
echo "$bin"
