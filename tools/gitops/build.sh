#!/usr/bin/env bash
# Builds the GitOps clients the e2e tests run, from pinned Go modules, into the same cache as the control
# plane (tools/control-plane/build.sh), and prints one NAME=PATH line per tool:
#   helm4=              Helm 4 (HELM4_VERSION), beside the control plane's Helm 3
#   kstatus=            tools/gitops/kstatus: kstatus results of objects on stdin (Flux's cli-utils fork)
#   argocd_lua=         tools/gitops/argocd-lua: health.lua through Argo CD's Lua VM as argocd-cm runs it
#   argocd_upstream_test=  argo-cd's own util/lua test binary, built with deploy/argocd/cloudjob.io embedded
#                       among its resource_customizations (run it with tools/gitops/argocd-upstream-test.sh)
# Stable symlinks (helm4, kstatus, argocd-lua) point at the last build, for people.
#
# Cache: ${CLOUDJOB_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cloudjob-operator}/bin/<name>-<key>, keyed by
# the pinned version and, for the project's own programs, a hash of their sources (with objects/, the local
# module both read their input with). Each binary is built to a temporary file and renamed into place only
# when the build succeeded; a lock serializes concurrent callers.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

cache="${CLOUDJOB_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cloudjob-operator}"
bin="$cache/bin"
mkdir -p "$bin" "$cache/src"
export GOFLAGS="${GOFLAGS:--buildvcs=false}"
export CGO_ENABLED=0

log() { echo "gitops-tools: $*" >&2; }

# hash DIR...: a short hash of the files under the given directories (names and contents).
hash() {
  local d
  for d in "$@"; do
    (cd "$d" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
  done | sha256sum | cut -c1-12
}

# A separate lock from the control plane's: the two scripts may build at the same time.
exec 8>"$cache/gitops-build.lock"
flock 8

# --- Helm 4 is built with the control plane (tools/control-plane/build.sh), which runs first.
# shellcheck source=../control-plane/versions.env
source "$here/../control-plane/versions.env"
helm4="$bin/helm4-$HELM4_VERSION"
if [[ ! -x "$helm4" ]]; then
  log "missing $helm4: run tools/control-plane/build.sh first"
  exit 1
fi

# build_own NAME DIR LOCAL...: go build the module in DIR into $bin/NAME-<hash of DIR and LOCAL...>, where
# LOCAL are the local modules DIR/go.mod replaces an import with (a change to them rebuilds it too).
build_own() {
  local name="$1" dir="$2" target
  target="$bin/$name-$(hash "${@:2}")"
  if [[ ! -x "$target" ]]; then
    log "building $name (first run only)"
    local started=$SECONDS tmp="$target.tmp.$$"
    (cd "$dir" && go build -mod=readonly -trimpath -ldflags "-s -w" -o "$tmp" .) || { rm -f "$tmp"; return 1; }
    mv -f "$tmp" "$target"
    log "built $name in $((SECONDS - started)) s"
  fi
  echo "$target"
}
kstatus="$(build_own kstatus "$here/kstatus" "$here/objects")"
argocd_lua="$(build_own "argocd-lua-$ARGOCD_VERSION" "$here/argocd-lua" "$here/objects")"

# --- argo-cd's own health test (util/lua TestLuaHealthScript), unchanged. It reads each health.lua from
# the embedded resource_customizations package, so the test binary is built from a copy of the argo-cd
# module with deploy/argocd/cloudjob.io added to resource_customizations/, and keyed by that folder's hash.
custom="$root/deploy/argocd/cloudjob.io"
upstream_test="$bin/argocd-upstream-test-$ARGOCD_VERSION-$(hash "$custom" "$here/argocd-lua")"
if [[ ! -x "$upstream_test" ]]; then
  log "building argo-cd $ARGOCD_VERSION util/lua test with cloudjob.io/CloudJob"
  started=$SECONDS
  mod="$(cd "$here/argocd-lua" && go mod download -json "github.com/argoproj/argo-cd/v3@$ARGOCD_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  [[ -d "$mod" ]] || { log "argo-cd $ARGOCD_VERSION not in the module cache"; exit 1; }
  tree="$cache/src/argo-cd-$ARGOCD_VERSION"
  if [[ ! -f "$tree/.complete" ]]; then
    [[ -d "$tree" ]] && find "$tree" -type d -exec chmod u+w {} + && rm -rf "$tree"
    # Hard links where possible: the module is 200 MB and only go.mod, go.sum and one folder change.
    cp -al "$mod" "$tree.tmp.$$" 2>/dev/null || cp -a "$mod" "$tree.tmp.$$"
    chmod u+w "$tree.tmp.$$" "$tree.tmp.$$/resource_customizations"
    # argo-cd replaces gitops-engine by its ./gitops-engine directory, a nested module that is not in the
    # module zip: use the same replacement as tools/gitops/argocd-lua/go.mod (the version the proxy serves).
    engine="$(sed -n 's#^replace github.com/argoproj/argo-cd/gitops-engine => \(.*\)$#\1#p' "$here/argocd-lua/go.mod" | tr ' ' '@')"
    for f in go.mod go.sum; do cp --remove-destination "$mod/$f" "$tree.tmp.$$/$f"; chmod u+w "$tree.tmp.$$/$f"; done
    (cd "$tree.tmp.$$" &&
      go mod edit -dropreplace=github.com/argoproj/argo-cd/gitops-engine \
        -replace="github.com/argoproj/argo-cd/gitops-engine=$engine" &&
      grep -F "github.com/argoproj/argo-cd/gitops-engine" "$here/argocd-lua/go.sum" >>go.sum)
    touch "$tree.tmp.$$/.complete"
    mv "$tree.tmp.$$" "$tree"
  fi
  rm -rf "$tree/resource_customizations/cloudjob.io"
  cp -r "$custom" "$tree/resource_customizations/cloudjob.io"
  tmp="$upstream_test.tmp.$$"
  (cd "$tree" && go test -mod=mod -trimpath -c -o "$tmp" ./util/lua) || { rm -f "$tmp"; exit 1; }
  mv -f "$tmp" "$upstream_test"
  log "built the argo-cd util/lua test in $((SECONDS - started)) s"
fi

ln -sfn "$(basename "$kstatus")" "$bin/kstatus"
ln -sfn "$(basename "$argocd_lua")" "$bin/argocd-lua"
echo "helm4=$helm4"
echo "kstatus=$kstatus"
echo "argocd_lua=$argocd_lua"
echo "argocd_upstream_test=$upstream_test"
