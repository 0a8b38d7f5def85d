#!/usr/bin/env bash
# Runs Argo CD's own health-script test (argo-cd util/lua TestLuaHealthScript, unchanged, at ARGOCD_VERSION)
# on deploy/argocd/cloudjob.io, laid out as upstream's resource_customizations/cloudjob.io/CloudJob/.
# Upstream's test walks ../../resource_customizations from util/lua, reads each health_test.yaml and runs
# the embedded health.lua on every testdata object (with UseOpenLibs, as upstream's test does).
# Extra arguments go to the Go test binary (e.g. -test.v).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
test_bin="$("$here/build.sh" | sed -n 's/^argocd_upstream_test=//p')"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/util/lua" "$work/resource_customizations"
cp -r "$root/deploy/argocd/cloudjob.io" "$work/resource_customizations/cloudjob.io"
cd "$work/util/lua"
"$test_bin" -test.run '^TestLuaHealthScript$' -test.count=1 "$@"
