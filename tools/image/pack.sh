#!/usr/bin/env bash
# Packs files into a single-layer OCI image, without Docker, a daemon or a registry, and writes it as a
# docker-archive tar that keeps its name (containerd's `ctr images import` and `docker load` read it).
#
#   pack.sh OUT.tar NAME:TAG --user U:G --entrypoint PATH [--cmd ARG]... [--port N/tcp]... \
#           [--label K=V]... -- SRC=DEST[:MODE]...
#
# Only the listed files are in the image (no base image, no shell). Needs umoci and skopeo
# (tools/node/setup.sh installs them). Used by tools/image/build.sh (the operator) and
# tools/control-plane/build.sh --node (the pause image).
set -euo pipefail

die() { echo "pack: $*" >&2; exit 1; }
[[ $# -ge 2 ]] || die "usage: pack.sh OUT.tar NAME:TAG [options] -- SRC=DEST[:MODE]..."
out="$1" name="$2"
shift 2
config=()
while [[ $# -gt 0 && "$1" != "--" ]]; do
  case "$1" in
    --user) config+=(--config.user "$2") ;;
    --entrypoint) config+=(--config.entrypoint "$2") ;;
    --cmd) config+=(--config.cmd "$2") ;;
    --port) config+=(--config.exposedports "$2") ;;
    --label) config+=(--config.label "$2") ;;
    --workdir) config+=(--config.workingdir "$2") ;;
    *) die "unknown option $1" ;;
  esac
  shift 2
done
[[ "${1:-}" == "--" ]] || die "missing -- before the files"
shift

for tool in umoci skopeo; do
  command -v "$tool" >/dev/null || die "$tool is missing (run tools/node/setup.sh as root)"
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# --rootless: the layer's files are owned by root:root in the image whoever runs this, and umoci needs
# no privileges for it.
umoci init --layout "$work/oci"
umoci new --image "$work/oci:img"
umoci unpack --rootless --image "$work/oci:img" "$work/bundle" >/dev/null
rootfs="$work/bundle/rootfs"
for spec in "$@"; do
  src="${spec%%=*}" rest="${spec#*=}"
  dest="${rest%%:*}" mode=0644
  [[ "$rest" == *:* ]] && mode="${rest#*:}"
  [[ -f "$src" ]] || die "$src is not a file"
  install -D -m "$mode" "$src" "$rootfs/${dest#/}"
done
# Reproducible timestamps: the same inputs give the same layer digest.
find "$rootfs" -exec touch -h -d @0 {} +
umoci repack --image "$work/oci:img" "$work/bundle" >/dev/null
umoci config --image "$work/oci:img" --history.created_by "tools/image/pack.sh" \
  --created 1970-01-01T00:00:00Z --os linux --architecture amd64 "${config[@]}"
umoci gc --layout "$work/oci"
mkdir -p "$(dirname "$out")"
rm -f "$out.tmp"
skopeo copy --quiet "oci:$work/oci:img" "docker-archive:$out.tmp:$name"
mv -f "$out.tmp" "$out"
