//! Replays the recorded official-SDK signatures (`fixtures/sdk-vectors.jsonl.gz`, made by
//! `tools/sdk-vectors/regenerate.sh`) through `aksk`.
//!
//! For every case and each SDK: `sign_as` with that SDK's profile must produce the very
//! `Authorization` header the SDK produced, and `verify` must accept the SDK's request. Then
//! `verify` must accept what `sign` produces. Mismatches are counted and the first few printed
//! with the canonical request, so one run shows every class of difference.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};

use aksk::{Credentials, Profile};
use http::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use jiff::Timestamp;
use serde_json::Value;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/sdk-vectors.jsonl.gz"
);
const MIN_CASES: usize = 10_000;
const SHOWN: usize = 5;

struct Case {
    id: u64,
    method: http::Method,
    uri: http::Uri,
    headers: HeaderMap,
    body: Vec<u8>,
    creds: Credentials,
    now: Timestamp,
    python: String,
    go: String,
}

fn str_field<'a>(v: &'a Value, name: &str) -> &'a str {
    v[name].as_str().unwrap_or_else(|| panic!("{name} in {v}"))
}

fn parse_case(v: &Value) -> Case {
    let query = match v["query"].as_str() {
        Some(q) => format!("?{q}"),
        None => String::new(),
    };
    let url = format!(
        "https://{}{}{query}",
        str_field(v, "host"),
        str_field(v, "path")
    );
    let mut headers = HeaderMap::new();
    for pair in v["headers"].as_array().unwrap() {
        let name = HeaderName::from_bytes(pair[0].as_str().unwrap().as_bytes()).unwrap();
        let value = HeaderValue::from_bytes(pair[1].as_str().unwrap().as_bytes()).unwrap();
        headers.append(name, value);
    }
    let date = str_field(v, "date");
    let now = jiff::civil::DateTime::strptime("%Y%m%dT%H%M%SZ", date)
        .unwrap()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .unwrap()
        .timestamp();
    Case {
        id: v["id"].as_u64().unwrap(),
        method: str_field(v, "method").parse().unwrap(),
        uri: url.parse().unwrap_or_else(|e| panic!("{url}: {e}")),
        headers,
        body: str_field(v, "body").as_bytes().to_vec(),
        creds: Credentials {
            access_key: str_field(v, "ak").to_owned(),
            secret_key: str_field(v, "sk").to_owned(),
            security_token: v["token"].as_str().map(str::to_owned),
        },
        now,
        python: str_field(v, "python").to_owned(),
        go: str_field(v, "go").to_owned(),
    }
}

/// The fixture's metadata line and its cases.
fn load() -> (Value, Vec<Case>) {
    let file = std::fs::File::open(FIXTURE).expect("fixture (run tools/sdk-vectors/regenerate.sh)");
    let mut lines = BufReader::new(flate2::read::GzDecoder::new(file)).lines();
    let meta: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    let cases = lines
        .map(|l| parse_case(&serde_json::from_str(&l.unwrap()).unwrap()))
        .collect();
    (meta, cases)
}

fn signed(case: &Case, profile: Profile) -> HeaderMap {
    let mut headers = case.headers.clone();
    aksk::sign_as(
        profile,
        &case.creds,
        &case.method,
        &case.uri,
        &mut headers,
        &case.body,
        case.now,
    )
    .unwrap();
    headers
}

fn verify(case: &Case, headers: &HeaderMap) -> Result<aksk::Verified, aksk::VerifyError> {
    aksk::verify(
        &case.method,
        &case.uri,
        headers,
        &case.body,
        |ak| (ak == case.creds.access_key).then(|| case.creds.secret_key.clone()),
        case.now,
        aksk::MAX_CLOCK_SKEW,
    )
}

fn auth(headers: &HeaderMap) -> &str {
    headers.get(AUTHORIZATION).unwrap().to_str().unwrap()
}

#[test]
fn sign_and_verify_match_both_official_sdks_on_every_recorded_case() {
    let (meta, cases) = load();
    println!("fixture: {}", meta["sdk_versions"]);
    assert!(cases.len() >= MIN_CASES, "only {} cases", cases.len());

    let mut failures = Vec::new();
    for (sdk, profile) in [("python", Profile::PythonSdk), ("go", Profile::GoSdk)] {
        let (mut sign_mismatches, mut verify_rejections) = (0, 0);
        for case in &cases {
            let expected = if sdk == "python" {
                &case.python
            } else {
                &case.go
            };
            let mut headers = signed(case, profile);
            if auth(&headers) != expected {
                sign_mismatches += 1;
                if sign_mismatches <= SHOWN {
                    let signed_names: Vec<String> = expected
                        .split("SignedHeaders=")
                        .nth(1)
                        .and_then(|s| s.split(',').next())
                        .unwrap_or("")
                        .split(';')
                        .map(str::to_owned)
                        .collect();
                    println!(
                        "{sdk} case {}: sdk {expected:?}\n  aksk {:?}\n  aksk canonical request {:?}",
                        case.id,
                        auth(&headers),
                        aksk::canonical_request(
                            profile,
                            &case.method,
                            &case.uri,
                            &headers,
                            &signed_names,
                            &case.body
                        )
                    );
                }
            }
            // The request as the SDK sent it: the same headers, the SDK's own signature.
            headers.insert(AUTHORIZATION, HeaderValue::from_str(expected).unwrap());
            if let Err(e) = verify(case, &headers) {
                verify_rejections += 1;
                if verify_rejections <= SHOWN {
                    println!(
                        "{sdk} case {}: verify rejected the SDK's request: {e}",
                        case.id
                    );
                }
            }
        }
        println!(
            "{sdk} ({}): {} cases, {sign_mismatches} sign mismatches, {verify_rejections} verify rejections",
            meta["sdk_versions"][sdk],
            cases.len()
        );
        if sign_mismatches + verify_rejections > 0 {
            failures.push(sdk);
        }
    }
    assert!(failures.is_empty(), "mismatches against {failures:?}");
}

#[test]
fn verify_accepts_what_sign_produces_for_every_case_and_profile() {
    let (_, cases) = load();
    let mut rejected = 0;
    for case in &cases {
        for profile in Profile::ALL {
            if let Err(e) = verify(case, &signed(case, profile)) {
                rejected += 1;
                println!("case {} {profile:?}: {e}", case.id);
            }
        }
    }
    println!(
        "round trip: {} cases x 2 profiles, {rejected} rejected",
        cases.len()
    );
    assert_eq!(rejected, 0);
}

#[test]
fn the_fixture_and_its_summary_agree_on_versions_and_disagreements() {
    // The README quotes the summary; it must describe the committed fixture.
    let (meta, cases) = load();
    let summary: Value = serde_json::from_str(
        &std::fs::read_to_string(FIXTURE.replace(".jsonl.gz", ".summary.json")).unwrap(),
    )
    .unwrap();
    let disagree = cases.iter().filter(|c| c.python != c.go).count();
    println!("the SDKs disagree on {disagree} of {} cases", cases.len());
    assert_eq!(summary["disagreements"].as_u64(), Some(disagree as u64));
    assert_eq!(summary["count"].as_u64(), Some(cases.len() as u64));
    assert_eq!(summary["sdk_versions"], meta["sdk_versions"]);
    let python = meta["sdk_versions"]["python"].as_str().unwrap();
    assert!(python.starts_with("huaweicloudsdkcore=="), "{python}");
    let go = meta["sdk_versions"]["go"].as_str().unwrap();
    assert!(
        go.starts_with("github.com/huaweicloud/huaweicloud-sdk-go-v3@v"),
        "{go}"
    );
}
