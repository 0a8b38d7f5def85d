#!/usr/bin/env bash
# The project's whole test suite, as the README gives it and .ci/run calls it:
# builds the pinned local control plane on first use, checks formatting and lints, and runs every test
# (unit tests, the simulator's and the control plane's tests, the end-to-end tests against a real
# kube-apiserver + etcd with the real kubectl and helm, the GitOps clients (Helm 3 and 4 `--wait`, kstatus,
# Argo CD's own Lua VM and upstream health test), the chart and Argo CD health checks, the demo and the
# benchmark's smoke run).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*"; }

step "control plane binaries (kube-apiserver, etcd, kubectl, helm; built once, then cached)"
tools/control-plane/build.sh

step "GitOps clients (Helm 4, kstatus checker, Argo CD's Lua VM and its upstream test; built once, then cached)"
tools/gitops/build.sh

step "rustfmt"
cargo fmt --all -- --check

step "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests"
cargo test --workspace --all-targets --locked
cargo test --workspace --doc --locked
