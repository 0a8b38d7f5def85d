#!/usr/bin/env bash
# Installs what a local kubelet node and the image build need from Debian, when it is missing:
# containerd, runc, the CNI plugins, umoci and skopeo (images without Docker or a registry), iptables,
# conntrack, a C compiler with static libc (the pause binary) and musl-tools (the static operator binary).
# Also adds the Rust musl target. Idempotent: it installs nothing when everything is present.
#
# Needs root and apt-get. Exit status 3 means "this machine cannot get them" (not root or no apt-get), so
# callers can tell that apart from a failed installation.
set -euo pipefail

log() { echo "node-setup: $*" >&2; }

# command -> Debian package
declare -A want=(
  [containerd]=containerd
  [runc]=runc
  [umoci]=umoci
  [skopeo]=skopeo
  [iptables]=iptables
  [conntrack]=conntrack
  [musl-gcc]=musl-tools
  [gcc]=gcc
  [ip]=iproute2
  [nft]=nftables
  [flock]=util-linux
)
missing=()
for cmd in "${!want[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${want[$cmd]}")
done
# The CNI plugins are not on PATH.
[[ -x /usr/lib/cni/bridge && -x /usr/lib/cni/host-local && -x /usr/lib/cni/portmap && -x /usr/lib/cni/loopback ]] \
  || missing+=(containernetworking-plugins)
# gcc -static needs the static libc.
[[ -e /usr/lib/x86_64-linux-gnu/libc.a ]] || missing+=(libc6-dev)

if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    log "missing packages (${missing[*]}) and not root: cannot install them"
    exit 3
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    log "missing packages (${missing[*]}) and no apt-get: cannot install them"
    exit 3
  fi
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed | grep -qx x86_64-unknown-linux-musl; then
  log "adding the Rust target x86_64-unknown-linux-musl"
  rustup target add x86_64-unknown-linux-musl >&2
fi
