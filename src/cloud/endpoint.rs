//! Where a CloudJob's jobs API lives.

use url::Url;

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
        (None, Some(template)) => template
            .replace("{service}", service)
            .replace("{region}", region),
        (None, None) => public_endpoint(spec.cloud, service, region),
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
    Ok(url)
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

/// `{base}/v1/{project_id}/jobs/{job_id}`, keeping any path prefix of the base URL.
pub fn job_url(base: &Url, project_id: &str, job_id: &str) -> Url {
    let mut url = base.clone();
    url.set_query(None);
    url.set_fragment(None);
    if let Ok(mut segments) = url.path_segments_mut() {
        segments
            .pop_if_empty()
            .extend(["v1", project_id, "jobs", job_id]);
    }
    url
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
    fn bad_endpoints_are_errors() {
        let s = spec(Service::Ims, Cloud::Huaweicloud, "eu-de", Some("ftp://x"));
        assert!(base_url(&s, None).is_err());
        let s = spec(Service::Ims, Cloud::Huaweicloud, "eu-de", Some("not a url"));
        assert!(base_url(&s, None).is_err());
    }
}
