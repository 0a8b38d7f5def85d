#!/usr/bin/env python3
"""Joins the cases with both SDKs' signatures into the committed fixture.

`merge.py CASES PYTHON GO OUT.jsonl.gz SUMMARY.json` (run by `regenerate.sh`). The fixture's first
line is metadata (SDK versions, seed, count); every other line is a case with `python` and `go`,
the `Authorization` header each SDK produced. The summary counts the cases where the two SDKs
disagree, by cause, for the README.
"""

import gzip
import json
import os
import sys


def load(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def signed_headers(auth):
    return auth.split("SignedHeaders=")[1].split(",")[0].split(";")


def cause(case, py_auth, go_auth):
    """A best-effort reason the SDKs disagree on this case (the first that applies)."""
    names = {n.lower() for n, _ in case["headers"]}
    py_signed, go_signed = signed_headers(py_auth), signed_headers(go_auth)
    if "host" not in names:
        return "python adds Host when absent"
    if any(h.startswith("content-type") for h in py_signed) and py_signed != go_signed:
        return "go does not sign content-type*"
    if "x-sdk-content-sha256" in py_signed and not case["body"]:
        return "empty body with X-Sdk-Content-Sha256"
    if "Content-Type" in dict(case["headers"]):
        return "unsigned-payload rule (startswith vs contains)"
    return "bytes that are not UTF-8 (python replaces, go keeps)"


def main():
    cases_path, py_path, go_path, out_path, summary_path = sys.argv[1:6]
    cases, py, go = load(cases_path), load(py_path), load(go_path)
    assert len(cases) == len(py) == len(go), "every case must be signed by both SDKs"
    meta = {
        "sdk_versions": {
            "python": "huaweicloudsdkcore==" + os.environ["PY_SDK_VERSION"],
            "go": "github.com/huaweicloud/huaweicloud-sdk-go-v3@" + os.environ["GO_SDK_VERSION"],
        },
        "signers": {
            "python": "huaweicloudsdkcore/signer/signer.py: Signer.sign",
            "go": "core/auth/signer/signer.go: Signer.Sign",
        },
        "generator": "tools/sdk-vectors/gen_cases.py",
        "seed": int(os.environ["SEED"]),
        "count": len(cases),
    }
    causes = {}
    with gzip.GzipFile(out_path, "wb", mtime=0) as raw:
        out = raw
        out.write((json.dumps(meta, separators=(",", ":")) + "\n").encode("utf-8"))
        for case, p, g in zip(cases, py, go):
            assert case["id"] == p["id"] == g["id"]
            case["python"] = p["authorization"]
            case["go"] = g["authorization"]
            if p["authorization"] != g["authorization"]:
                c = cause(case, p["authorization"], g["authorization"])
                causes[c] = causes.get(c, 0) + 1
            out.write((json.dumps(case, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8"))
    summary = dict(meta, disagreements=sum(causes.values()), disagreements_by_cause=causes)
    with open(summary_path, "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2, sort_keys=True)
        f.write("\n")
    print(json.dumps(summary, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
