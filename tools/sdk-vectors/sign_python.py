#!/usr/bin/env python3
"""Signs every case on stdin with the official Python SDK signer (huaweicloudsdkcore).

`sign_python.py < cases.jsonl > python.jsonl`, one `{"id", "authorization", "canonical_request"}`
line per case. Drives `huaweicloudsdkcore.signer.signer.Signer.sign` directly, as the SDK's HTTP
client does: `resource_path` is the raw (still percent-encoded) path, which the signer decodes
itself; `query_params` are the decoded pairs, as the SDK's request models hold them.
"""

import json
import sys
from types import SimpleNamespace
from urllib.parse import unquote_plus

from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer


class RecordingSigner(Signer):
    """The SDK signer unchanged, keeping its canonical request for diagnosis."""

    last_canonical_request = None

    def _process_canonical_request(self, request, signed_headers):
        creq = super()._process_canonical_request(request, signed_headers)
        self.last_canonical_request = creq
        return creq


def query_pairs(query):
    """The wire query as decoded pairs: `&`-separated, split at the first `=`, `+` is a space,
    invalid UTF-8 replaced (what `urllib.parse.parse_qsl` does, keeping blank values)."""
    pairs = []
    for part in (query or "").split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        pairs.append((unquote_plus(key), unquote_plus(value)))
    return pairs


def sign(case):
    headers = {name: value for name, value in case["headers"]}
    headers["X-Sdk-Date"] = case["date"]
    if case["token"] is not None:
        # What the SDK's credentials add before signing temporary credentials.
        headers["X-Security-Token"] = case["token"]
    request = SdkRequest(
        method=case["method"],
        schema="https",
        host=case["host"],
        resource_path=case["path"],
        query_params=query_pairs(case["query"]),
        header_params=headers,
        body=case["body"].encode("utf-8"),
    )
    signer = RecordingSigner(SimpleNamespace(ak=case["ak"], sk=case["sk"]))
    signed = signer.sign(request)
    return {
        "id": case["id"],
        "authorization": signed.header_params["Authorization"],
        "canonical_request": signer.last_canonical_request,
    }


def main():
    for line in sys.stdin:
        out = sign(json.loads(line))
        sys.stdout.write(json.dumps(out, ensure_ascii=False, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
