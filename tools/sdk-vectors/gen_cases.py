#!/usr/bin/env python3
"""Generates the AK/SK signing cases that the official SDK signers are run on.

Seeded, so a rerun gives the same cases: `gen_cases.py [--count N] [--seed S] > cases.jsonl`.

Every case is what a gateway sees on the wire: a method, a host, a raw (percent-encoded) path and
a raw query string, headers, a body, and the credentials and `X-Sdk-Date` to sign with. The two
SDK drivers (`sign_python.py`, `go/main.go`) turn the wire form into each SDK's request object the
way its HTTP client would have built it (decoded path, decoded query pairs) and sign it.

Only ASCII that `http::Uri` accepts appears raw in a path or query; everything else is
percent-encoded, the way any client sends it.
"""

import argparse
import json
import random
import sys

UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
# Sub-delimiters and `:@` may appear raw in a path segment (RFC 3986 pchar).
PATH_RAW_RESERVED = "!$&'()*+,;=:@"
# In a query `&` and `=` are structure, `+` means a space; `/` and `?` are allowed raw.
QUERY_RAW_RESERVED = "!$'()*,;:@/?"
# Characters worth percent-encoding: structure characters, space, `%` itself, non-ASCII of every
# UTF-8 length.
ENCODED_CHARS = list("/ %&=+?#[]\"<>\\^`{|}") + ["é", "ü", "ß", "一", "中", "文", "€", "😀", "\u00a0", "\t"]
WORDS = ["v1", "v2", "v3", "jobs", "job", "cloudimages", "api", "projects", "0ab1c2", "a", "b",
         "resources", "images", "x", "test", "name", "limit", "offset", "id", "marker", "path"]
UNICODE_WORDS = ["ü", "中文", "日本", "é", "Ω", "😀", "ñ", "名前"]
METHODS = ["GET"] * 5 + ["POST"] * 3 + ["PUT"] * 2 + ["DELETE"] * 2 + ["PATCH"]
HOSTS = ["ims.eu-de.otc.t-systems.com", "ecs.cn-north-4.myhuaweicloud.com", "127.0.0.1:8443",
         "localhost", "service.endpoint.myhuaweicloud.com", "example.huaweicloud.com:443"]
CONTENT_TYPES = ["application/json", "application/json;charset=UTF-8", "text/plain",
                 "application/octet-stream", "application/x-www-form-urlencoded",
                 "multipart/form-data", "application/bson", "text/plain; note=application/json",
                 "application/xml"]
BODIES = ['{"name":"test","id":1}', '{"a":[1,2,3],"b":{"c":null}}', "plain text body",
          '{"名前":"中文","emoji":"😀"}', "k=v&x=y", " ", "\n", "{}"]


def pct(ch, rng):
    """Percent-encodes one character's UTF-8 bytes, in upper- or lower-case hex."""
    upper = rng.random() < 0.8
    return "".join(("%%%02X" if upper else "%%%02x") % b for b in ch.encode("utf-8"))


def atom(rng, raw_reserved, plus_literal):
    r = rng.random()
    if r < 0.45:
        return rng.choice(UNRESERVED)
    if r < 0.6:
        return rng.choice(raw_reserved)
    if r < 0.68 and plus_literal:
        return "+"
    if r < 0.9:
        return pct(rng.choice(ENCODED_CHARS), rng)
    if r < 0.96:
        # An unreserved character encoded for no reason: it must canonicalise to the raw one.
        return pct(rng.choice(UNRESERVED), rng)
    if r < 0.985:
        return "".join(pct(c, rng) for c in rng.choice(UNICODE_WORDS))
    # Bytes that are not UTF-8: the SDKs disagree on these (see README).
    return "%" + rng.choice(["FF", "C3", "80", "E4%B8", "fe"])


def component(rng, raw_reserved, plus_literal, max_atoms=6):
    r = rng.random()
    if r < 0.35:
        return rng.choice(WORDS)
    if r < 0.4:
        return "".join(pct(c, rng) for c in rng.choice(UNICODE_WORDS))
    return "".join(atom(rng, raw_reserved, plus_literal) for _ in range(rng.randint(1, max_atoms)))


def gen_path(rng):
    r = rng.random()
    if r < 0.04:
        return "/"
    segments = []
    for _ in range(rng.randint(1, 6)):
        s = rng.random()
        if s < 0.06:
            segments.append("")  # empty segment: `//`
        elif s < 0.08:
            segments.append(rng.choice([".", ".."]))
        elif s < 0.18:
            # A segment carrying an encoded `/`: the SDKs decode it and split there.
            segments.append(component(rng, PATH_RAW_RESERVED, True, 3) + pct("/", rng)
                            + component(rng, PATH_RAW_RESERVED, True, 3))
        else:
            segments.append(component(rng, PATH_RAW_RESERVED, True))
    path = "/" + "/".join(segments)
    if rng.random() < 0.2:
        path += "/"
    return path


def gen_query(rng):
    r = rng.random()
    if r < 0.25:
        return None
    if r < 0.27:
        return ""  # a bare `?`
    keys = []
    pairs = []
    for _ in range(rng.randint(1, 7)):
        if keys and rng.random() < 0.25:
            key = rng.choice(keys)  # repeated key
        elif rng.random() < 0.02:
            key = ""
        else:
            key = component(rng, QUERY_RAW_RESERVED, True, 4)
            keys.append(key)
        s = rng.random()
        if s < 0.12:
            pairs.append(key)  # no `=` at all
        elif s < 0.22:
            pairs.append(key + "=")
        elif s < 0.27:
            pairs.append(key + "=" + component(rng, QUERY_RAW_RESERVED, True, 3) + "="
                         + component(rng, QUERY_RAW_RESERVED, True, 3))
        else:
            pairs.append(key + "=" + component(rng, QUERY_RAW_RESERVED, True))
    if rng.random() < 0.05:
        pairs.insert(rng.randint(0, len(pairs)), "")  # `&&`
    return "&".join(pairs)


def random_case(name, rng):
    return "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in name)


def header_value(rng):
    r = rng.random()
    if r < 0.5:
        return "".join(rng.choice(UNRESERVED + " !\"#$%&'()*+,/:;<=>?@[\\]^`{|}") for _ in range(rng.randint(0, 16)))
    if r < 0.65:
        return rng.choice([" padded ", "\ttabbed\t", "  two  spaces  ", ""])
    if r < 0.75:
        return rng.choice(UNICODE_WORDS) + " " + rng.choice(WORDS)
    return rng.choice(WORDS)


def gen_headers(rng, host):
    """Headers as (name, value) pairs with distinct lower-case names."""
    headers = []
    seen = set()

    def add(name, value):
        if name.lower() not in seen:
            seen.add(name.lower())
            headers.append([name, value])

    if rng.random() < 0.5:
        add(random_case("Host", rng), host)
    if rng.random() < 0.5:
        add(random_case("X-Project-Id", rng), "%032x" % rng.getrandbits(128))
    # The SDKs look these two up by this exact spelling.
    if rng.random() < 0.25:
        add("Content-Type", rng.choice(CONTENT_TYPES))
    if rng.random() < 0.03:
        add("X-Sdk-Content-Sha256", rng.choice(["UNSIGNED-PAYLOAD", "%064x" % rng.getrandbits(256)]))
    for _ in range(rng.randint(0, 4)):
        s = rng.random()
        if s < 0.3:
            name = rng.choice(["TEST_UNDERSCORE", "x_custom", "X_Auth_Token", "a_b"])
        elif s < 0.4:
            name = random_case(rng.choice(["Content-Type-Options", "Content-Length", "Accept", "User-Agent", "X-Request-Id"]), rng)
        else:
            name = "X-" + "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789-") for _ in range(rng.randint(1, 10)))
            name = random_case(name, rng)
        add(name, header_value(rng))
    return headers


def gen_case(i, rng):
    host = rng.choice(HOSTS)
    method = rng.choice(METHODS)
    body = ""
    if method in ("POST", "PUT", "PATCH") and rng.random() < 0.8 or rng.random() < 0.05:
        body = rng.choice(BODIES) if rng.random() < 0.6 else "".join(rng.choice(UNRESERVED + " {}\":,") for _ in range(rng.randint(1, 60)))
    ak = rng.choice(["AccessKey", "HPUAXXXXXXXXXXXXXXXX", "ak", "".join(rng.choice(UNRESERVED) for _ in range(20))])
    sk = rng.choice(["SecretKey", "sk", "".join(rng.choice(UNRESERVED) for _ in range(40)), "sk-ü-中文"])
    token = None
    if rng.random() < 0.15:
        token = "".join(rng.choice(UNRESERVED + "+/=") for _ in range(rng.randint(8, 64)))
    date = "%04d%02d%02dT%02d%02d%02dZ" % (rng.randint(2000, 2099), rng.randint(1, 12), rng.randint(1, 28),
                                            rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59))
    return {
        "id": i,
        "method": method,
        "host": host,
        "path": gen_path(rng),
        "query": gen_query(rng),
        "headers": gen_headers(rng, host),
        "body": body,
        "ak": ak,
        "sk": sk,
        "token": token,
        "date": date,
    }


# The published SDK test vectors and the operator's own request come first, as fixed cases.
FIXED = [
    {"method": "GET", "host": "service.endpoint.myhuaweicloud.com", "path": "/resources", "query": "size=1",
     "headers": [["Host", "service.endpoint.myhuaweicloud.com"], ["TEST_UNDERSCORE", "TEST_VALUE"]],
     "body": "", "ak": "AccessKey", "sk": "SecretKey", "token": None, "date": "20200608T023900Z"},
    {"method": "POST", "host": "service.endpoint.myhuaweicloud.com", "path": "/resources", "query": "size=1",
     "headers": [["Host", "service.endpoint.myhuaweicloud.com"], ["TEST_UNDERSCORE", "TEST_VALUE"]],
     "body": '{"name":"test","id":1}', "ak": "AccessKey", "sk": "SecretKey", "token": None, "date": "20200608T023900Z"},
    {"method": "GET", "host": "example.huaweicloud.com", "path": "/path", "query": "limit=1",
     "headers": [["TEST_UNDERSCORE", "TEST_VALUE"]],
     "body": "", "ak": "AccessKey", "sk": "SecretKey", "token": None, "date": "20060102T150405Z"},
    {"method": "GET", "host": "ims.eu-de.otc.t-systems.com", "path": "/v1/0ab1c2d3e4f5/jobs/ff8080814dbd65d7014dc6b3a5b4fd6f",
     "query": None, "headers": [["Host", "ims.eu-de.otc.t-systems.com"], ["X-Project-Id", "0ab1c2d3e4f5"]],
     "body": "", "ak": "ak", "sk": "sk", "token": "tok", "date": "20241106T061943Z"},
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=12000)
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    for i in range(args.count):
        case = dict(FIXED[i], id=i) if i < len(FIXED) else gen_case(i, rng)
        sys.stdout.write(json.dumps(case, ensure_ascii=False, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
