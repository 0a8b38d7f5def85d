//! Where a CloudJob's jobs API lives, and which endpoints a CloudJob may name.
//!
//! `spec.endpoint` is chosen by whoever may create a CloudJob, and the operator sends signed requests there
//! from inside the cluster. So an endpoint is *allowed*, not just accepted: its host must match the
//! operator's allow-list ([`AllowList`], `--allowed-endpoints`; by default the official cloud domains), or
//! be the host `--endpoint-template` names. Loopback, link-local, private and unspecified addresses and
//! cluster-internal names are refused unless a pattern names them explicitly (`*` never does). Hosts are
//! compared after `url`'s parsing, so `http://2130706433/`, `http://0x7f.1/` and `http://[::ffff:7f00:1]/`
//! are all 127.0.0.1.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    str::FromStr,
};

use url::{Host, Url};

use crate::crd::{Cloud, CloudJobSpec};

/// Why no URL could be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid endpoint {endpoint:?}: {reason}")]
pub struct EndpointError {
    pub endpoint: String,
    pub reason: String,
}

/// The base URL of the service endpoint: `spec.endpoint`, else the operator-wide template
/// (`--endpoint-template`, with `{service}` and `{region}` placeholders), else the cloud's public endpoint.
pub fn base_url(spec: &CloudJobSpec, template: Option<&str>) -> Result<Url, EndpointError> {
    let service = spec.service.as_str();
    let region = spec.region.as_str();
    let raw = match (&spec.endpoint, template) {
        (Some(endpoint), _) => endpoint.clone(),
        (None, Some(template)) => {
            let api = crate::cloud::catalogue::api(spec.service);
            // `{host}`: the service's host label (`vpc` for EIP, `gaussdb-nosql` for GeminiDB), for proxies
            // that mirror the official host names; `{service}`: the `spec.service` value.
            let host = api.host(spec.cloud).unwrap_or(api.huawei_host);
            template
                .replace("{service}", service)
                .replace("{host}", host)
                .replace("{region}", region)
        }
        (None, None) => {
            let api = crate::cloud::catalogue::api(spec.service);
            let Some(host) = api.host(spec.cloud) else {
                return Err(EndpointError {
                    endpoint: String::new(),
                    reason: format!(
                        "{service} has no documented public endpoint on this cloud: set spec.endpoint"
                    ),
                });
            };
            public_endpoint(spec.cloud, host, region)
        }
    };
    let url = Url::parse(&raw).map_err(|e| EndpointError {
        endpoint: raw.clone(),
        reason: e.to_string(),
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(EndpointError {
            endpoint: raw,
            reason: "must be an absolute http(s) URL".into(),
        });
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(EndpointError {
            // Never echo the password.
            endpoint: redacted(&url),
            reason: "must not carry a user name or password (user:password@): the operator signs requests with the Secret's credentials".into(),
        });
    }
    Ok(url)
}

fn redacted(url: &Url) -> String {
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.to_string()
}

/// The official endpoint domains of Huawei Cloud and Open Telekom Cloud: the default allow-list.
pub const OFFICIAL_ENDPOINT_PATTERNS: [&str; 4] = [
    "*.myhuaweicloud.com",
    "*.myhuaweicloud.eu",
    "*.otc.t-systems.com",
    "*.sc.otc.t-systems.com",
];

/// The keyword that stands for [`OFFICIAL_ENDPOINT_PATTERNS`] in `--allowed-endpoints`.
pub const OFFICIAL_KEYWORD: &str = "official";

/// One entry of the allow-list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostPattern {
    /// `*`: any host that is not sensitive (see [`sensitive`]).
    Any,
    /// `official`: the official cloud domains.
    Official,
    /// `*.example.com`: any name under `example.com` (not `example.com` itself).
    Suffix(String),
    /// `api.example.com`: that name only.
    Name(String),
    /// `10.1.2.3`, `::1`, `[::1]`: that address only.
    Ip(IpAddr),
    /// `10.0.0.0/8`, `fd00::/8`: addresses in that network.
    Net(IpAddr, u8),
}

impl FromStr for HostPattern {
    type Err = String;

    fn from_str(raw: &str) -> Result<HostPattern, String> {
        let p = raw.trim().trim_end_matches('.').to_ascii_lowercase();
        let bad = |why: &str| Err(format!("invalid endpoint pattern {raw:?}: {why}"));
        if p.is_empty() {
            return bad("empty");
        }
        if p == "*" {
            return Ok(HostPattern::Any);
        }
        if p == OFFICIAL_KEYWORD {
            return Ok(HostPattern::Official);
        }
        if let Some((addr, bits)) = p.split_once('/') {
            let addr = parse_ip(addr)
                .ok_or_else(|| format!("invalid endpoint pattern {raw:?}: not an IP network"))?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            return match bits.parse::<u8>() {
                Ok(bits) if bits <= max => Ok(HostPattern::Net(addr, bits)),
                _ => bad("bad prefix length"),
            };
        }
        if let Some(ip) = parse_ip(&p) {
            return Ok(HostPattern::Ip(ip));
        }
        let (suffix, name) = match p.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, p.as_str()),
        };
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        if name.len() > 253 || !name.split('.').all(label_ok) {
            return bad(
                "expected *, official, a host name, *.domain, an IP address or a CIDR network",
            );
        }
        Ok(if suffix {
            HostPattern::Suffix(format!(".{name}"))
        } else {
            HostPattern::Name(name.to_string())
        })
    }
}

fn parse_ip(raw: &str) -> Option<IpAddr> {
    let raw = raw.trim_start_matches('[').trim_end_matches(']');
    raw.parse::<IpAddr>().ok().map(canonical_ip)
}

/// IPv4-mapped IPv6 addresses (`::ffff:127.0.0.1`) are their IPv4 address.
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

impl HostPattern {
    /// Whether the pattern matches `host`; `explicit` tells whether it may also match a sensitive host.
    fn matches(&self, host: &CheckedHost) -> bool {
        match (self, host) {
            (HostPattern::Any, _) => host.sensitive.is_none() && !host.short,
            (
                HostPattern::Official,
                CheckedHost {
                    name: Some(name), ..
                },
            ) => OFFICIAL_ENDPOINT_PATTERNS
                .iter()
                .any(|p| name.ends_with(p.trim_start_matches('*'))),
            (
                HostPattern::Suffix(suffix),
                CheckedHost {
                    name: Some(name), ..
                },
            ) => name.ends_with(suffix.as_str()),
            (
                HostPattern::Name(want),
                CheckedHost {
                    name: Some(name), ..
                },
            ) => want == name,
            (HostPattern::Ip(want), CheckedHost { ip: Some(ip), .. }) => want == ip,
            (HostPattern::Net(net, bits), CheckedHost { ip: Some(ip), .. }) => {
                in_network(*ip, *net, *bits)
            }
            _ => false,
        }
    }
}

fn in_network(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

/// A host as the allow-list sees it: a lower-case name without trailing dot, or a canonical IP address,
/// and why it is sensitive, if it is.
struct CheckedHost {
    name: Option<String>,
    ip: Option<IpAddr>,
    sensitive: Option<&'static str>,
    /// `service` or `service.namespace`: the pod's DNS search domains may resolve it to a cluster
    /// service, so `*` does not allow it.
    short: bool,
}

impl CheckedHost {
    fn of(host: Host<&str>) -> CheckedHost {
        match host {
            Host::Domain(name) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                CheckedHost {
                    sensitive: sensitive_name(&name),
                    short: name.split('.').count() < 3,
                    name: Some(name),
                    ip: None,
                }
            }
            Host::Ipv4(v4) => Self::ip(IpAddr::V4(v4)),
            Host::Ipv6(v6) => Self::ip(canonical_ip(IpAddr::V6(v6))),
        }
    }

    fn ip(ip: IpAddr) -> CheckedHost {
        CheckedHost {
            name: None,
            short: false,
            ip: Some(ip),
            sensitive: Some(sensitive_ip(ip).unwrap_or("an IP address instead of a host name")),
        }
    }
}

/// Why a name may reach something inside the cluster or the node.
fn sensitive_name(name: &str) -> Option<&'static str> {
    const INTERNAL_SUFFIXES: [&str; 7] = [
        ".svc",
        ".pod",
        ".cluster.local",
        ".local",
        ".localhost",
        ".internal",
        ".localdomain",
    ];
    if name == "localhost" || name.ends_with(".localhost") {
        return Some("a loopback name");
    }
    if name == "kubernetes" || name.starts_with("kubernetes.default") {
        return Some("the Kubernetes API server");
    }
    if INTERNAL_SUFFIXES.iter().any(|s| name.ends_with(s)) {
        return Some("a cluster-internal name");
    }
    None
}

/// Why an address is not a public endpoint.
fn sensitive_ip(ip: IpAddr) -> Option<&'static str> {
    match canonical_ip(ip) {
        IpAddr::V4(v4) => sensitive_v4(v4),
        IpAddr::V6(v6) => sensitive_v6(v6),
    }
}

fn sensitive_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let net =
        |a: [u8; 4], bits: u8| in_network(IpAddr::V4(ip), IpAddr::V4(Ipv4Addr::from(a)), bits);
    if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_link_local() {
        Some("a link-local address (the cloud metadata service lives there)")
    } else if ip.is_unspecified() || net([0, 0, 0, 0], 8) {
        Some("an unspecified address")
    } else if ip.is_private() || net([100, 64, 0, 0], 10) {
        Some("a private address")
    } else if ip.is_multicast() || ip.is_broadcast() || net([240, 0, 0, 0], 4) {
        Some("a reserved address")
    } else {
        None
    }
}

fn sensitive_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let net = |a: Ipv6Addr, bits: u8| in_network(IpAddr::V6(ip), IpAddr::V6(a), bits);
    if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_unspecified() {
        Some("an unspecified address")
    } else if net(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10) {
        Some("a link-local address")
    } else if net(Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7) {
        Some("a private (unique local) address")
    } else if ip.is_multicast() {
        Some("a reserved address")
    } else {
        None
    }
}

/// The endpoints CloudJobs may name in `spec.endpoint` (`--allowed-endpoints`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowList {
    patterns: Vec<HostPattern>,
}

impl Default for AllowList {
    /// The official cloud domains.
    fn default() -> Self {
        AllowList {
            patterns: vec![HostPattern::Official],
        }
    }
}

impl AllowList {
    /// The given patterns; an empty list means the default (the official domains).
    pub fn new(patterns: Vec<HostPattern>) -> AllowList {
        if patterns.is_empty() {
            return AllowList::default();
        }
        AllowList { patterns }
    }

    /// Parses a comma-separated list of patterns.
    pub fn parse(list: &str) -> Result<AllowList, String> {
        let patterns = list
            .split(',')
            .filter(|p| !p.trim().is_empty())
            .map(HostPattern::from_str)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(AllowList::new(patterns))
    }

    /// The patterns as they were given, for messages.
    pub fn describe(&self) -> String {
        self.patterns
            .iter()
            .map(|p| match p {
                HostPattern::Any => "*".to_string(),
                HostPattern::Official => OFFICIAL_ENDPOINT_PATTERNS.join(", "),
                HostPattern::Suffix(s) => format!("*{s}"),
                HostPattern::Name(n) => n.clone(),
                HostPattern::Ip(ip) => ip.to_string(),
                HostPattern::Net(ip, bits) => format!("{ip}/{bits}"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn allows(&self, host: &CheckedHost) -> bool {
        self.patterns.iter().any(|p| p.matches(host))
    }

    /// Whether a connection to `ip`, an address `name` resolved to, may be made: a public address always;
    /// an internal one (loopback, link-local, private...) only when a pattern names that address, or names
    /// the host itself explicitly (not `official`, not `*`), or the host is the one `template` names. So a
    /// public name that points at the metadata service or a cluster address is still refused.
    pub fn may_connect(&self, name: &str, ip: IpAddr, template: Option<&str>) -> bool {
        let ip = canonical_ip(ip);
        if sensitive_ip(ip).is_none() {
            return true;
        }
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let by_address = CheckedHost::ip(ip);
        let by_name = CheckedHost {
            name: Some(name.clone()),
            ip: None,
            sensitive: None,
            short: false,
        };
        self.patterns.iter().any(|p| match p {
            HostPattern::Ip(_) | HostPattern::Net(..) => p.matches(&by_address),
            HostPattern::Name(_) | HostPattern::Suffix(_) => p.matches(&by_name),
            HostPattern::Any | HostPattern::Official => false,
        }) || template
            .and_then(template_host)
            .is_some_and(|t| host_glob(&t, &name))
    }
}

/// The host part of an endpoint template, placeholders kept (`{service}.proxy.example`).
fn template_host(template: &str) -> Option<String> {
    let rest = template.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => host.split(':').next()?,
    };
    Some(host.trim_end_matches('.').to_ascii_lowercase())
}

/// Whether `name` matches a template host, where `{service}`, `{host}` and `{region}` stand for any
/// characters but `.`.
fn host_glob(pattern: &str, name: &str) -> bool {
    let pattern = pattern
        .replace("{service}", "*")
        .replace("{host}", "*")
        .replace("{region}", "*");
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // Classic wildcard matching with one backtracking point; `*` never crosses a dot.
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if pi < p.len() && p[pi] == n[ni] {
            pi += 1;
            ni += 1;
        } else if let Some((sp, sn)) = star
            && n[sn] != '.'
        {
            star = Some((sp, sn + 1));
            pi = sp + 1;
            ni = sn + 1;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Why `spec.endpoint` is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "spec.endpoint host {host:?} is not allowed ({why}); the operator only calls endpoints on its allow-list ({allowed}). Use the cloud's official endpoint (leave spec.endpoint unset), or ask the operator's administrator to add this host to --allowed-endpoints"
)]
pub struct NotAllowed {
    pub host: String,
    pub why: String,
    pub allowed: String,
}

/// Checks the endpoint a CloudJob names against the allow-list. Endpoints the operator builds itself
/// (the public endpoint, or `--endpoint-template`) are always allowed, and so is a `spec.endpoint` on the
/// host the template names for this CloudJob.
pub fn check_allowed(
    spec: &CloudJobSpec,
    url: &Url,
    template: Option<&str>,
    allowed: &AllowList,
) -> Result<(), NotAllowed> {
    if spec.endpoint.is_none() {
        return Ok(());
    }
    let Some(host) = url.host() else {
        return Err(NotAllowed {
            host: String::new(),
            why: "no host".into(),
            allowed: allowed.describe(),
        });
    };
    let checked = CheckedHost::of(host.clone());
    if allowed.allows(&checked) {
        return Ok(());
    }
    if let Some(template) = template {
        let mut own = spec.clone();
        own.endpoint = None;
        if base_url(&own, Some(template)).is_ok_and(|t| t.host() == Some(host.clone())) {
            return Ok(());
        }
    }
    Err(NotAllowed {
        host: crate::cloud::model::bounded(&host.to_string(), 253),
        why: match (checked.sensitive, checked.short) {
            (Some(why), _) => why.to_string(),
            (None, true) => "not on the allow-list; `*` does not cover a short name, which the pod's DNS search domains may resolve to a cluster service".into(),
            (None, false) => "not on the allow-list".into(),
        },
        allowed: allowed.describe(),
    })
}

/// The public endpoint of a service in a region, as the clouds name them.
pub fn public_endpoint(cloud: Cloud, service: &str, region: &str) -> String {
    match cloud {
        // eu-west-101 (Dublin) is served from the .eu domain.
        Cloud::Huaweicloud
            if region.starts_with("eu-west-1") && region.len() > "eu-west-1".len() =>
        {
            format!("https://{service}.{region}.myhuaweicloud.eu")
        }
        Cloud::Huaweicloud => format!("https://{service}.{region}.myhuaweicloud.com"),
        // The Swiss region lives under sc.otc.t-systems.com.
        Cloud::Opentelekomcloud if region == "eu-ch2" => {
            format!("https://{service}.{region}.sc.otc.t-systems.com")
        }
        Cloud::Opentelekomcloud => format!("https://{service}.{region}.otc.t-systems.com"),
    }
}

/// `{base}/v1/{project_id}/jobs/{job_id}`, keeping any path prefix of the base URL (the ECS family's path;
/// every service's is [`crate::cloud::catalogue::JobPath::url`]).
pub fn job_url(base: &Url, project_id: &str, job_id: &str) -> Url {
    crate::cloud::catalogue::JobPath::ProjectJobsV1.url(base, project_id, job_id)
}

/// A stable key for per-endpoint rate limiting: scheme, host and port.
pub fn rate_limit_key(url: &Url) -> String {
    format!(
        "{}://{}:{}",
        url.scheme(),
        url.host_str().unwrap_or_default(),
        url.port_or_known_default().unwrap_or(0)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::Service;

    fn spec(service: Service, cloud: Cloud, region: &str, endpoint: Option<&str>) -> CloudJobSpec {
        let mut spec = crate::test_support::cloudjob("a").spec;
        spec.service = service;
        spec.cloud = cloud;
        spec.region = region.into();
        spec.endpoint = endpoint.map(Into::into);
        spec
    }

    #[test]
    fn public_endpoints_follow_each_clouds_naming() {
        let cases = [
            (
                Service::Ims,
                Cloud::Huaweicloud,
                "cn-north-4",
                "https://ims.cn-north-4.myhuaweicloud.com/",
            ),
            (
                Service::Evs,
                Cloud::Huaweicloud,
                "eu-west-101",
                "https://evs.eu-west-101.myhuaweicloud.eu/",
            ),
            (
                Service::Ecs,
                Cloud::Opentelekomcloud,
                "eu-de",
                "https://ecs.eu-de.otc.t-systems.com/",
            ),
            (
                Service::Ims,
                Cloud::Opentelekomcloud,
                "eu-ch2",
                "https://ims.eu-ch2.sc.otc.t-systems.com/",
            ),
        ];
        for (service, cloud, region, want) in cases {
            assert_eq!(
                base_url(&spec(service, cloud, region, None), None)
                    .expect("url")
                    .as_str(),
                want
            );
        }
    }

    #[test]
    fn override_and_template_take_precedence_and_keep_path_prefix() {
        let s = spec(
            Service::Ims,
            Cloud::Huaweicloud,
            "eu-de",
            Some("http://127.0.0.1:9000/ims"),
        );
        let base = base_url(&s, Some("http://ignored/{service}")).expect("url");
        assert_eq!(
            job_url(&base, "proj", "job1").as_str(),
            "http://127.0.0.1:9000/ims/v1/proj/jobs/job1"
        );
        let s = spec(Service::Evs, Cloud::Huaweicloud, "eu-de", None);
        let base = base_url(&s, Some("http://127.0.0.1:9000/{service}/")).expect("url");
        assert_eq!(
            job_url(&base, "p", "j").as_str(),
            "http://127.0.0.1:9000/evs/v1/p/jobs/j"
        );
    }

    #[test]
    fn public_endpoints_use_each_services_host_label() {
        for (service, cloud, want) in [
            (
                Service::Eip,
                Cloud::Huaweicloud,
                "https://vpc.eu-de.myhuaweicloud.com/",
            ),
            (
                Service::Opengauss,
                Cloud::Huaweicloud,
                "https://gaussdb-opengauss.eu-de.myhuaweicloud.com/",
            ),
            (
                Service::Rds,
                Cloud::Opentelekomcloud,
                "https://rds.eu-de.otc.t-systems.com/",
            ),
        ] {
            let url = base_url(&spec(service, cloud, "eu-de", None), None).expect("url");
            assert_eq!(url.as_str(), want);
        }
        let err = base_url(
            &spec(Service::Geminidb, Cloud::Opentelekomcloud, "eu-de", None),
            None,
        )
        .expect_err("no documented OTC endpoint");
        assert!(err.reason.contains("spec.endpoint"), "{err}");
    }

    #[test]
    fn the_template_names_the_service_or_its_host_label() {
        let s = spec(Service::Eip, Cloud::Huaweicloud, "eu-de", None);
        let url = |template: &str| base_url(&s, Some(template)).expect("url").to_string();
        assert_eq!(
            url("https://{host}.{region}.proxy.example/"),
            "https://vpc.eu-de.proxy.example/"
        );
        assert_eq!(
            url("http://127.0.0.1:8443/{service}"),
            "http://127.0.0.1:8443/eip"
        );
        assert!(host_glob(
            "{host}.{region}.proxy.example",
            "gaussdb-nosql.eu-de.proxy.example"
        ));
    }

    #[test]
    fn bad_endpoints_are_errors() {
        let s = spec(Service::Ims, Cloud::Huaweicloud, "eu-de", Some("ftp://x"));
        assert!(base_url(&s, None).is_err());
        let s = spec(Service::Ims, Cloud::Huaweicloud, "eu-de", Some("not a url"));
        assert!(base_url(&s, None).is_err());
    }

    fn allowed(list: &str, endpoint: &str) -> Result<(), NotAllowed> {
        let s = spec(Service::Ims, Cloud::Huaweicloud, "eu-de", Some(endpoint));
        let url = base_url(&s, None).expect("url");
        check_allowed(&s, &url, None, &AllowList::parse(list).expect("list"))
    }

    #[test]
    fn official_domains_are_allowed_by_default_and_nothing_else() {
        for ok in [
            "https://ims.eu-de.otc.t-systems.com",
            "https://ims.eu-ch2.sc.otc.t-systems.com/",
            "https://evs.cn-north-4.myhuaweicloud.com",
            "https://evs.eu-west-101.myhuaweicloud.eu",
        ] {
            assert_eq!(allowed("", ok), Ok(()), "{ok}");
        }
        for refused in [
            "https://example.com",
            "https://myhuaweicloud.com.evil.example",
            "https://evilmyhuaweicloud.com",
            "http://169.254.169.254/latest/meta-data",
            "http://kubernetes.default.svc",
            "http://127.0.0.1:8443",
        ] {
            let err = allowed("", refused).expect_err(refused);
            assert!(err.to_string().contains("--allowed-endpoints"), "{err}");
        }
    }

    #[test]
    fn internal_addresses_in_every_encoding_need_an_explicit_pattern() {
        for (endpoint, why) in [
            ("http://169.254.169.254/", "link-local"),
            ("http://2852039166/", "link-local"),
            ("http://0xa9.0xfe.0xa9.0xfe/", "link-local"),
            ("http://0251.0376.0251.0376/", "link-local"),
            ("http://127.1/", "loopback"),
            ("http://2130706433/", "loopback"),
            ("http://017700000001/", "loopback"),
            ("http://[::1]/", "loopback"),
            ("http://[::ffff:127.0.0.1]/", "loopback"),
            ("http://[fe80::1]/", "link-local"),
            ("http://[fd00::1]/", "private"),
            ("http://0.0.0.0/", "unspecified"),
            ("http://10.0.0.1/", "private"),
            ("http://192.168.1.1/", "private"),
            ("http://localhost/", "loopback"),
            ("http://kubernetes/", "Kubernetes API"),
            (
                "http://kubernetes.default.svc.cluster.local./",
                "Kubernetes API",
            ),
            ("http://metrics.monitoring.svc/", "cluster-internal"),
            ("http://my-service.my-namespace/", "allow-list"),
            ("http://metadata.google.internal/", "cluster-internal"),
        ] {
            let err = allowed("*", endpoint).expect_err(endpoint);
            assert!(err.why.contains(why), "{endpoint}: {err}");
        }
        // Named explicitly, they are allowed.
        assert_eq!(allowed("127.0.0.1", "http://2130706433:9000/"), Ok(()));
        assert_eq!(allowed("127.0.0.0/8", "http://127.0.0.2/"), Ok(()));
        assert_eq!(allowed("::1", "http://[::1]:8080/"), Ok(()));
        assert_eq!(
            allowed("*.svc.cluster.local", "http://proxy.ops.svc.cluster.local/"),
            Ok(())
        );
        assert!(allowed("127.0.0.1", "http://127.0.0.2/").is_err());
        // `*` allows public names, not public IP literals.
        assert_eq!(allowed("*", "https://api.example.com/"), Ok(()));
        assert!(allowed("*", "http://8.8.8.8/").is_err());
        assert_eq!(allowed("8.8.8.8", "http://8.8.8.8/"), Ok(()));
        assert_eq!(
            allowed("official,*.example.com", "https://a.b.example.com/"),
            Ok(())
        );
        assert_eq!(
            allowed(
                "official,*.example.com",
                "https://ims.eu-de.otc.t-systems.com/"
            ),
            Ok(())
        );
    }

    #[test]
    fn the_template_host_is_allowed_and_built_endpoints_are_never_checked() {
        let list = AllowList::default();
        let template = Some("http://127.0.0.1:9000/{service}");
        let mut s = spec(Service::Ims, Cloud::Huaweicloud, "eu-de", None);
        let url = base_url(&s, template).expect("url");
        assert_eq!(check_allowed(&s, &url, template, &list), Ok(()));
        s.endpoint = Some("http://127.0.0.1:9000/other".into());
        let url = base_url(&s, template).expect("url");
        assert_eq!(check_allowed(&s, &url, template, &list), Ok(()));
        s.endpoint = Some("http://127.0.0.2:9000/".into());
        let url = base_url(&s, template).expect("url");
        assert!(check_allowed(&s, &url, template, &list).is_err());
    }

    #[test]
    fn credentials_in_the_url_are_refused_without_echoing_them() {
        let s = spec(
            Service::Ims,
            Cloud::Huaweicloud,
            "eu-de",
            Some("https://user:hunter2@ims.eu-de.otc.t-systems.com"),
        );
        let err = base_url(&s, None).expect_err("userinfo");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(err.reason.contains("user:password@"));
    }

    #[test]
    fn bad_patterns_are_rejected() {
        for bad in ["", "http://x", "10.0.0.0/33", "a..b", "ex ample.com", "x/8"] {
            assert!(bad.parse::<HostPattern>().is_err(), "{bad:?}");
        }
        assert!(AllowList::parse("ok.example.com,http://x").is_err());
        assert_eq!(AllowList::parse(""), Ok(AllowList::default()));
    }

    #[test]
    fn resolved_internal_addresses_need_an_explicit_name_or_address() {
        let metadata: IpAddr = "169.254.169.254".parse().expect("ip");
        let public: IpAddr = "80.158.0.1".parse().expect("ip");
        let list = |l: &str| AllowList::parse(l).expect("list");
        // An official name (or `*`) pointing at an internal address is refused; public addresses pass.
        assert!(!list("official").may_connect("ims.eu-de.otc.t-systems.com", metadata, None));
        assert!(!list("*").may_connect("evil.example.com", metadata, None));
        assert!(list("official").may_connect("ims.eu-de.otc.t-systems.com", public, None));
        // Named explicitly, by host or by address, or through the template, it is the admin's choice.
        assert!(list("*.svc.cluster.local").may_connect(
            "proxy.ops.svc.cluster.local",
            "10.0.0.5".parse().expect("ip"),
            None
        ));
        assert!(list("10.0.0.0/8").may_connect(
            "proxy.example.com",
            "10.0.0.5".parse().expect("ip"),
            None
        ));
        assert!(list("official").may_connect(
            "ims.proxy.internal",
            "10.0.0.5".parse().expect("ip"),
            Some("http://{service}.proxy.internal:8080/x")
        ));
        assert!(!list("official").may_connect(
            "a.b.proxy.internal",
            "10.0.0.5".parse().expect("ip"),
            Some("http://{service}.proxy.internal:8080/x")
        ));
        assert!(host_glob("{service}.{region}.example", "ims.eu-de.example"));
        assert!(!host_glob("{service}.example", "example"));
        assert_eq!(
            template_host("https://u@[::1]:80/p").as_deref(),
            Some("::1")
        );
    }
}
