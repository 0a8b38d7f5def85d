//! Property tests over generated requests (seeded, no external crate): the signature depends on
//! the *decoded* path and query only, never on how a client chose to encode them, and any change
//! to the decoded request is caught.
//!
//! Each case picks decoded path segments and query pairs, then writes two wire forms of them:
//! a minimal one (only what must be encoded is, pairs in order) and a noisy one (unreserved
//! characters encoded, lower-case hex, `/` inside a segment written raw where the first wrote
//! `%2F`, spaces as `+`, pairs shuffled). Both must sign identically and verify each other.
#![allow(clippy::unwrap_used)]

use aksk::{Credentials, MAX_CLOCK_SKEW, Profile};
use http::Method;
use http::header::{AUTHORIZATION, HOST, HeaderMap, HeaderValue};
use jiff::Timestamp;

const CASES: usize = 3_000;

/// SplitMix64: enough randomness for test inputs, reproducible from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const ALPHABET: &[char] = &[
    'a', 'b', 'Z', '0', '9', '-', '.', '_', '~', '/', '%', '+', ' ', '&', '=', '?', '#', ':', '@',
    '!', '$', '\'', '(', ')', '*', ',', ';', '"', '<', '>', '[', ']', '{', '}', '|', '\\', '^',
    '`', 'é', 'ß', '中', '€', '😀', '\t',
];
const UNRESERVED: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~";
const PATH_RAW: &str = "!$&'()*+,;=:@";
const QUERY_RAW: &str = "!$'()*,;:@/?";

fn text(rng: &mut Rng, max: usize) -> String {
    (0..rng.below(max + 1))
        .map(|_| *rng.pick(ALPHABET))
        .collect()
}

fn pct(c: char, lower: bool) -> String {
    let mut buf = [0; 4];
    c.encode_utf8(&mut buf)
        .bytes()
        .map(|b| {
            if lower {
                format!("%{b:02x}")
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Writes `s` for the wire: characters in `raw` may stay raw; `noisy` encodes some of them anyway
/// and uses lower-case hex at random; a space in a query is `+` (noisy) or `%20`.
fn wire(s: &str, raw: &str, query: bool, noisy: bool, rng: &mut Rng) -> String {
    s.chars()
        .map(|c| {
            let may_be_raw = UNRESERVED.contains(c) || raw.contains(c);
            if query && c == ' ' && noisy && rng.chance(50) {
                "+".to_owned()
            } else if may_be_raw && !(noisy && rng.chance(30)) {
                c.to_string()
            } else {
                pct(c, noisy && rng.chance(50))
            }
        })
        .collect()
}

struct Request {
    segments: Vec<String>,
    pairs: Vec<(String, String)>,
    trailing_slash: bool,
}

impl Request {
    fn generate(rng: &mut Rng) -> Self {
        let segments = (0..1 + rng.below(4))
            .map(|_| {
                // No decoded `/` here: the minimal form writes a segment's `/` as `%2F`, the
                // noisy one raw, so they would still be equal; that is tested via `split_slash`.
                text(rng, 6).replace('/', "")
            })
            .collect();
        let pairs = (0..rng.below(5))
            .map(|_| (text(rng, 5), text(rng, 5)))
            .collect();
        Request {
            segments,
            pairs,
            trailing_slash: rng.chance(20),
        }
    }

    /// `%2F` inside a segment and a raw `/` between two segments mean the same: the SDKs split on
    /// the decoded path.
    fn path(&self, noisy: bool, rng: &mut Rng) -> String {
        let mut out = String::new();
        let mut iter = self.segments.iter().peekable();
        while let Some(seg) = iter.next() {
            out.push('/');
            out.push_str(&wire(seg, PATH_RAW, false, noisy, rng));
            if !noisy && iter.peek().is_some() && rng.chance(30) {
                // Join this segment and the next with an encoded slash.
                out.push_str(&pct('/', rng.chance(50)));
                let next = iter.next().unwrap();
                out.push_str(&wire(next, PATH_RAW, false, noisy, rng));
            }
        }
        if self.trailing_slash || out.is_empty() {
            out.push('/');
        }
        out
    }

    fn query(&self, noisy: bool, rng: &mut Rng) -> String {
        let mut pairs: Vec<String> = self
            .pairs
            .iter()
            .map(|(k, v)| {
                let k = wire(k, QUERY_RAW, true, noisy, rng);
                if v.is_empty() && !k.is_empty() && noisy && rng.chance(50) {
                    k // `k` and `k=` are the same pair (but `` is no pair, unlike `=`)
                } else {
                    format!("{k}={}", wire(v, QUERY_RAW, true, noisy, rng))
                }
            })
            .collect();
        if noisy {
            for i in (1..pairs.len()).rev() {
                pairs.swap(i, rng.below(i + 1));
            }
        }
        pairs.join("&")
    }

    fn uri(&self, noisy: bool, rng: &mut Rng) -> http::Uri {
        let url = format!(
            "https://h.example{}?{}",
            self.path(noisy, rng),
            self.query(noisy, rng)
        );
        url.parse().unwrap_or_else(|e| panic!("{url}: {e}"))
    }
}

fn now() -> Timestamp {
    "2024-11-06T06:19:43Z".parse().unwrap()
}

fn sign(profile: Profile, uri: &http::Uri) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(HOST, HeaderValue::from_static("h.example"));
    let creds = Credentials::new("ak", "sk");
    aksk::sign_as(profile, &creds, &Method::GET, uri, &mut h, b"", now()).unwrap();
    h
}

fn verifies(uri: &http::Uri, headers: &HeaderMap) -> bool {
    aksk::verify(
        &Method::GET,
        uri,
        headers,
        b"",
        |ak| (ak == "ak").then(|| "sk".to_owned()),
        now(),
        MAX_CLOCK_SKEW,
    )
    .is_ok()
}

#[test]
fn the_signature_depends_on_the_decoded_request_not_its_encoding() {
    let mut rng = Rng(13);
    for case in 0..CASES {
        let req = Request::generate(&mut rng);
        let minimal = req.uri(false, &mut rng);
        let noisy = req.uri(true, &mut rng);
        for profile in Profile::ALL {
            let a = sign(profile, &minimal);
            let b = sign(profile, &noisy);
            assert_eq!(
                a[AUTHORIZATION], b[AUTHORIZATION],
                "case {case} {profile:?}: {minimal} and {noisy} must sign the same"
            );
            assert!(
                verifies(&noisy, &a),
                "case {case}: {noisy} with {minimal}'s signature"
            );
        }
    }
}

#[test]
fn any_change_to_the_decoded_path_or_query_breaks_the_signature() {
    let mut rng = Rng(42);
    let mut tampered = 0;
    for case in 0..CASES {
        let req = Request::generate(&mut rng);
        let uri = req.uri(false, &mut rng);
        let mut other = Request {
            segments: req.segments.clone(),
            pairs: req.pairs.clone(),
            trailing_slash: req.trailing_slash,
        };
        // Append a character to one segment, or to one query key or value.
        let c = *rng.pick(ALPHABET);
        match rng.below(3) {
            0 => {
                let i = rng.below(other.segments.len());
                other.segments[i].push(if c == '/' { 'x' } else { c });
            }
            _ if other.pairs.is_empty() => other.pairs.push(("k".into(), String::new())),
            1 => {
                let i = rng.below(other.pairs.len());
                other.pairs[i]
                    .0
                    .push(if c == '=' || c == '&' { 'y' } else { c });
            }
            _ => {
                let i = rng.below(other.pairs.len());
                other.pairs[i].1.push(c);
            }
        }
        let other_uri = other.uri(rng.chance(50), &mut rng);
        for profile in Profile::ALL {
            let h = sign(profile, &uri);
            assert!(
                !verifies(&other_uri, &h),
                "case {case} {profile:?}: {other_uri} accepted {uri}'s signature"
            );
            tampered += 1;
        }
    }
    println!("{tampered} tampered requests rejected");
}

#[test]
fn re_signing_replaces_the_previous_signature() {
    let mut rng = Rng(7);
    for _ in 0..200 {
        let uri = Request::generate(&mut rng).uri(true, &mut rng);
        for profile in Profile::ALL {
            let mut h = sign(profile, &uri);
            let first = h[AUTHORIZATION].clone();
            aksk::sign_as(
                profile,
                &Credentials::new("ak", "sk"),
                &Method::GET,
                &uri,
                &mut h,
                b"",
                now(),
            )
            .unwrap();
            assert_eq!(h[AUTHORIZATION], first);
            assert_eq!(h.get_all(AUTHORIZATION).iter().count(), 1);
        }
    }
}
