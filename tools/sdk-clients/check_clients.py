"""Calls the official Huawei Cloud Python SDK clients against the jobs API simulator.

Reads a plan (JSON) on stdin: the simulator's port, the credentials, and one case per call:
    {"name", "package", "client", "method", "request", "params", "host", "fixture" | "unknown"}
Each client is pointed at http://{host}.eu-de.sim.test:{port} (the SDKs keep only the scheme and host of an
endpoint, so the simulator tells the services apart by the Host header, as the cloud does); names under
.sim.test resolve to 127.0.0.1 in this process only.

A case with a fixture passes when the SDK accepts the answer and its response model holds every field of the
fixture (recursively, by the model's JSON names), with the same values. A case "unknown" passes when the SDK
raises the error the plan expects (HTTP status, and the error code where given), or answers an empty list.
Prints one JSON line per case and exits 1 if any failed.
"""

import importlib
import json
import socket
import sys

_real_getaddrinfo = socket.getaddrinfo


def _sim_getaddrinfo(host, port, *args, **kwargs):
    if isinstance(host, str) and host.endswith(".sim.test"):
        host = "127.0.0.1"
    return _real_getaddrinfo(host, port, *args, **kwargs)


socket.getaddrinfo = _sim_getaddrinfo

from huaweicloudsdkcore.auth.credentials import BasicCredentials  # noqa: E402
from huaweicloudsdkcore.exceptions import exceptions  # noqa: E402
from huaweicloudsdkcore.http.http_config import HttpConfig  # noqa: E402


def missing_fields(model, expected, path="$"):
    """Where the SDK's model does not hold what the fixture says: unknown field, or another value."""
    problems = []
    if isinstance(expected, dict):
        if isinstance(model, dict):  # untyped (`object`, `dict(str, str)`) fields stay plain JSON
            if model != expected:
                problems.append("%s: %r != %r" % (path, model, expected))
            return problems
        attribute_map = getattr(model, "attribute_map", None)
        if attribute_map is None:
            return ["%s: the SDK gave %r for an object" % (path, type(model).__name__)]
        by_json = {json_name: attr for attr, json_name in attribute_map.items()}
        for key, value in expected.items():
            attr = by_json.get(key)
            if attr is None:
                problems.append("%s.%s: not a field of %s" % (path, key, type(model).__name__))
                continue
            got = getattr(model, attr)
            if value is None:
                if got is not None:
                    problems.append("%s.%s: %r for null" % (path, key, got))
                continue
            problems += missing_fields(got, value, "%s.%s" % (path, key))
    elif isinstance(expected, list):
        if not isinstance(model, list) or len(model) != len(expected):
            return ["%s: %r != %r" % (path, model, expected)]
        for i, (m, e) in enumerate(zip(model, expected)):
            problems += missing_fields(m, e, "%s[%d]" % (path, i))
    elif isinstance(expected, float) or isinstance(model, float):
        if model is None or abs(float(model) - float(expected)) > 1e-9:
            problems.append("%s: %r != %r" % (path, model, expected))
    elif model != expected:
        problems.append("%s: %r != %r" % (path, model, expected))
    return problems


def run(case, plan):
    package = importlib.import_module(case["package"])
    client_class = getattr(package, case["client"])
    config = HttpConfig.get_default_config()
    config.retry_times = 0
    client = (
        client_class.new_builder()
        .with_http_config(config)
        .with_credentials(BasicCredentials(plan["ak"], plan["sk"], plan["project_id"]))
        .with_endpoints(["http://%s.eu-de.sim.test:%d" % (case["host"], plan["port"])])
        .build()
    )
    request = getattr(package, case["request"])(**case["params"])
    method = getattr(client, case["method"])
    if "unknown" in case:
        want = case["unknown"]
        try:
            response = method(request)
        except exceptions.ClientRequestException as e:
            if e.status_code != want["status"]:
                return ["HTTP %s, expected %s" % (e.status_code, want["status"])]
            if want.get("code") and e.error_code != want["code"]:
                return ["error code %r, expected %r" % (e.error_code, want["code"])]
            return []
        if want.get("empty_list"):
            jobs = getattr(response, "jobs", None)
            return [] if jobs == [] else ["expected an empty list, got %r" % (jobs,)]
        return ["no error for an unknown job"]
    with open(case["fixture"]) as f:
        expected = json.load(f)
    response = method(request)
    return missing_fields(response, expected)


def main():
    plan = json.load(sys.stdin)
    failed = 0
    for case in plan["cases"]:
        try:
            problems = run(case, plan)
        except Exception as e:  # the SDK refused the answer or the request
            problems = ["%s: %s" % (type(e).__name__, e)]
        failed += bool(problems)
        print(json.dumps({"name": case["name"], "ok": not problems, "problems": problems}))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
