#!/usr/bin/env bash
# The project's whole test suite, as the README gives it and .ci/run calls it:
# builds the pinned local control plane on first use, checks formatting and lints, and runs every test
# (unit tests, the simulator's and the control plane's tests, the end-to-end tests against a real
# kube-apiserver + etcd with the real kubectl and helm, the GitOps clients (Helm 3 and 4 `--wait`, kstatus,
# Argo CD's own Lua VM and upstream health test), the chart and Argo CD health checks, the demo and the
# benchmark's smoke run), and the tests on a real kubelet node (the operator's own image installed with the
# chart: tests/e2e_node_*.rs, tests/image.rs, crates/testenv/tests/node.rs).
#
# The node needs root and apt-get (Debian packages: containerd, runc, CNI plugins, umoci, skopeo...). Where
# it cannot run, the node tests skip and say why; with CI=true that is a failure instead.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*"; }

step "control plane binaries (kube-apiserver, etcd, kubectl, helm; built once, then cached)"
tools/control-plane/build.sh

step "GitOps clients (Helm 4, kstatus checker, Argo CD's Lua VM and its upstream test; built once, then cached)"
tools/gitops/build.sh

step "node: Debian packages, kubelet/scheduler/controller-manager, pause image, operator image (built once, then cached)"
if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
  tools/node/setup.sh
  tools/control-plane/build.sh --node >/dev/null
  # The tag the node tests install (tests/node_support/mod.rs); the tests build it themselves too.
  tools/image/build.sh e2e >/dev/null
elif [[ "${CI:-}" == "true" ]]; then
  echo "CI=true but this machine cannot run the kubelet node (needs root and apt-get)" >&2
  exit 1
else
  echo "skipping the node preparation: needs root and apt-get; the node tests will skip themselves"
fi

step "official Python SDK clients of every service (pinned, from PyPI; installed once) for tests/sdk_clients.rs"
tools/sdk-clients/setup.sh

step "rustfmt"
cargo fmt --all -- --check

step "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo-nextest (the test runner; built from crates.io once, then cached)"
tools/nextest/install.sh

step "tests"
# Every test of every target, in parallel across binaries; .config/nextest.toml says how (the kubelet
# node's tests one at a time, beside the rest). Doc tests are not nextest's, so cargo runs them after.
cargo nextest run --workspace --all-targets --locked
cargo test --workspace --doc --locked
