#!/usr/bin/env bash
# Installs the official Huawei Cloud Python SDK clients of every service the operator reads (pinned, from
# PyPI) into a venv under ${XDG_CACHE_HOME:-~/.cache}/cloudjob-operator/venv-sdk-clients, once.
# tests/sdk_clients.rs runs them against the simulator (tools/sdk-clients/check_clients.py).
# DeH has no job API in the SDKs, so it has no client here.
set -euo pipefail

SDK_VERSION=3.1.219   # the same huaweicloudsdkcore as tools/sdk-vectors
PACKAGES=(core ims bms sdrs eip rds dds gaussdb gaussdbforopengauss gaussdbfornosql dcs cce elb sfsturbo)

cache=${XDG_CACHE_HOME:-$HOME/.cache}/cloudjob-operator
venv=$cache/venv-sdk-clients
stamp=$venv/.installed-$SDK_VERSION-${#PACKAGES[@]}

if [[ -f $stamp ]]; then
  exit 0
fi
python3 -m venv "$venv"
specs=()
for p in "${PACKAGES[@]}"; do specs+=("huaweicloudsdk$p==$SDK_VERSION"); done
"$venv/bin/pip" install -q --disable-pip-version-check "${specs[@]}"
touch "$stamp"
echo "installed ${specs[*]} into $venv"
