#!/usr/bin/env bash
# Builds the operator's container image without Docker, a daemon or a registry, and writes it as a
# docker-archive tar named localhost/cloudjob-operator:TAG.
#
#   tools/image/build.sh [TAG]        # TAG defaults to the chart's appVersion
#
# The image holds exactly two files, like the Dockerfile's (the recipe for people with Docker; a test keeps
# the two in step): a static (musl) release binary at /usr/local/bin/cloudjob-operator and the CA
# certificates at /etc/ssl/certs/ca-certificates.crt. No shell, no base image; user 65532:65532,
# entrypoint the binary, CMD ["run"], port 8080. Prints the archive's path:
#   ${CLOUDJOB_IMAGE_DIR:-target/image}/cloudjob-operator-TAG.tar
# Load it with `ctr -n k8s.io images import FILE` (containerd), `docker load -i FILE` or
# `skopeo copy docker-archive:FILE docker://REGISTRY/...`.
#
# Needs cargo, the x86_64-unknown-linux-musl target and musl-gcc (ring compiles C), umoci and skopeo and the
# system CA bundle; tools/node/setup.sh installs them (Debian, as root).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"

app_version="$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' charts/cloudjob-operator/Chart.yaml)"
tag="${1:-$app_version}"
[[ -n "$tag" ]] || { echo "image: no tag given and no appVersion in the chart" >&2; exit 2; }
target=x86_64-unknown-linux-musl
out_dir="${CLOUDJOB_IMAGE_DIR:-$root/target/image}"
out="$out_dir/cloudjob-operator-$tag.tar"
ca_bundle="${CLOUDJOB_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"

log() { echo "image: $*" >&2; }

if ! rustup target list --installed 2>/dev/null | grep -qx "$target" || ! command -v musl-gcc >/dev/null ||
  ! command -v umoci >/dev/null || ! command -v skopeo >/dev/null; then
  "$root/tools/node/setup.sh"
fi
[[ -f "$ca_bundle" ]] || { echo "image: no CA bundle at $ca_bundle (install ca-certificates)" >&2; exit 1; }

started=$SECONDS
log "building the static release binary ($target)"
# ring's C code needs a musl C compiler; musl-gcc is what Debian's musl-tools provides.
CC_x86_64_unknown_linux_musl="${CC_x86_64_unknown_linux_musl:-musl-gcc}" \
  cargo build --locked --release --target "$target" --bin cloudjob-operator >&2
binary="$root/target/$target/release/cloudjob-operator"
# `ldd` says "not a dynamic executable" (or "statically linked") for a static binary; anything else
# would fail in an image without a libc.
if ldd "$binary" 2>&1 | grep -q '=>'; then
  echo "image: $binary is dynamically linked" >&2
  exit 1
fi

# Stripped, as the Dockerfile's `install -s`: the release profile keeps line tables for backtraces on
# developer machines, which would quadruple the image.
stripped="$(mktemp -d)"
trap 'rm -rf "$stripped"' EXIT
install -s -m 0755 "$binary" "$stripped/cloudjob-operator"

# Keep these in step with the Dockerfile (tests/image.rs compares them).
"$root/tools/image/pack.sh" "$out" "localhost/cloudjob-operator:$tag" \
  --user 65532:65532 \
  --entrypoint /usr/local/bin/cloudjob-operator \
  --cmd run \
  --port 8080/tcp \
  --label "org.opencontainers.image.source=https://github.com/cloudjob-io/cloudjob-operator" \
  --label "org.opencontainers.image.version=$tag" \
  --label "org.opencontainers.image.licenses=Apache-2.0" \
  -- \
  "$stripped/cloudjob-operator=/usr/local/bin/cloudjob-operator:0755" \
  "$ca_bundle=/etc/ssl/certs/ca-certificates.crt:0644"
log "wrote localhost/cloudjob-operator:$tag ($(du -h "$out" | cut -f1)) in $((SECONDS - started)) s"
echo "$out"
