#!/usr/bin/env bash
# Regenerates crates/aksk/tests/fixtures/sdk-vectors.jsonl.gz: generates the cases, signs each
# with the official Python and Go SDK signers (pinned below), and merges the results.
# Needs python3, go and access to PyPI and the Go module proxy; the Rust tests do not.
#   tools/sdk-vectors/regenerate.sh [COUNT] [SEED]
set -euo pipefail

PY_SDK_VERSION=3.1.219   # huaweicloudsdkcore on PyPI
GO_SDK_VERSION=v0.1.207  # github.com/huaweicloud/huaweicloud-sdk-go-v3 (go/go.mod pins the same)
COUNT=${1:-12000}
SEED=${2:-13}

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/cloudjob-operator
venv=$cache/venv
work=$cache/sdk-vectors
mkdir -p "$work"

if ! "$venv/bin/python" -c "import huaweicloudsdkcore" 2>/dev/null ||
   [ "$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("huaweicloudsdkcore"))')" != "$PY_SDK_VERSION" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "huaweicloudsdkcore==$PY_SDK_VERSION"
fi
grep -q "huaweicloud-sdk-go-v3 $GO_SDK_VERSION" "$here/go/go.mod" || {
  echo "go/go.mod does not pin huaweicloud-sdk-go-v3 $GO_SDK_VERSION" >&2; exit 1; }

python3 "$here/gen_cases.py" --count "$COUNT" --seed "$SEED" > "$work/cases.jsonl"
"$venv/bin/python" "$here/sign_python.py" < "$work/cases.jsonl" > "$work/python.jsonl"
(cd "$here/go" && go build -o "$work/sign-go" .)
"$work/sign-go" < "$work/cases.jsonl" > "$work/go.jsonl"

mkdir -p "$root/crates/aksk/tests/fixtures"
PY_SDK_VERSION=$PY_SDK_VERSION GO_SDK_VERSION=$GO_SDK_VERSION SEED=$SEED python3 "$here/merge.py" \
  "$work/cases.jsonl" "$work/python.jsonl" "$work/go.jsonl" \
  "$root/crates/aksk/tests/fixtures/sdk-vectors.jsonl.gz" \
  "$root/crates/aksk/tests/fixtures/sdk-vectors.summary.json"
echo "Python canonical requests (for diagnosis): $work/python.jsonl" >&2
