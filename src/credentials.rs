//! AK/SK credentials from the Secret a CloudJob names, cached by the Secret's resourceVersion.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use k8s_openapi::api::core::v1::Secret;

use crate::crd::SecretReference;

pub const DEFAULT_ACCESS_KEY_KEY: &str = "accessKey";
pub const DEFAULT_SECRET_KEY_KEY: &str = "secretKey";
pub const DEFAULT_SECURITY_TOKEN_KEY: &str = "securityToken";

/// Longest Secret name (a DNS subdomain) and longest key of a Secret's data.
pub const MAX_SECRET_NAME_LEN: usize = 253;

/// Why a Secret does not yield credentials. Never carries a value from the Secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    #[error("key {key:?} is missing from Secret {secret:?}")]
    MissingKey { secret: String, key: String },
    #[error(
        "key {key:?} of Secret {secret:?} is empty, not UTF-8 text, or holds characters a credential cannot have (only visible ASCII)"
    )]
    Unusable { secret: String, key: String },
    /// The reference itself is malformed (only possible for objects stored under an older, looser CRD):
    /// nothing is requested from the API server with it.
    #[error("{field} is not a valid {what}")]
    InvalidReference {
        field: &'static str,
        what: &'static str,
    },
}

/// Whether `name` is a DNS subdomain (RFC 1123), as Secret names must be: lower-case letters, digits, `-`
/// and `.`, starting and ending with a letter or digit, at most 253 characters.
pub fn is_dns_subdomain(name: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    !name.is_empty()
        && name.len() <= MAX_SECRET_NAME_LEN
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.starts_with(alnum)
                && label.ends_with(alnum)
                && label.chars().all(|c| alnum(c) || c == '-')
        })
}

/// Whether `key` is a valid key of a Secret's data: `[-._a-zA-Z0-9]+`, at most 253 characters.
pub fn is_secret_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_SECRET_NAME_LEN
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
}

/// Checks a reference before anything is requested with it: a name such as `?` would otherwise become a
/// request for `secrets/?`, which lists every Secret of the namespace.
pub fn validate_reference(reference: &SecretReference) -> Result<(), CredentialsError> {
    if !is_dns_subdomain(&reference.name) {
        return Err(CredentialsError::InvalidReference {
            field: "spec.credentialsSecretRef.name",
            what: "Secret name (a DNS subdomain: lower-case letters, digits, '-' and '.')",
        });
    }
    for (field, key) in [
        (
            "spec.credentialsSecretRef.accessKeyKey",
            &reference.access_key_key,
        ),
        (
            "spec.credentialsSecretRef.secretKeyKey",
            &reference.secret_key_key,
        ),
        (
            "spec.credentialsSecretRef.securityTokenKey",
            &reference.security_token_key,
        ),
    ] {
        if key.as_deref().is_some_and(|k| !is_secret_key(k)) {
            return Err(CredentialsError::InvalidReference {
                field,
                what: "Secret key (letters, digits, '-', '.' and '_')",
            });
        }
    }
    Ok(())
}

/// Whether a value can be a credential: AK, SK and security tokens are visible ASCII. Anything else
/// (control characters, spaces or bytes inside) could not be sent in a header anyway.
fn usable(value: &str) -> bool {
    !value.is_empty() && value.bytes().all(|b| b.is_ascii_graphic())
}

/// Reads the credentials out of `secret` as `reference` describes. Surrounding whitespace (a trailing
/// newline from `echo` is the usual one) is removed, since it can never be part of a key.
pub fn from_secret(
    secret: &Secret,
    reference: &SecretReference,
) -> Result<aksk::Credentials, CredentialsError> {
    let name = reference.name.clone();
    let read = |key: &str, required: bool| -> Result<Option<String>, CredentialsError> {
        let bytes = secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|b| b.0.clone())
            .or_else(|| {
                secret
                    .string_data
                    .as_ref()
                    .and_then(|d| d.get(key))
                    .map(|s| s.clone().into_bytes())
            });
        match bytes {
            None if required => Err(CredentialsError::MissingKey {
                secret: name.clone(),
                key: key.into(),
            }),
            None => Ok(None),
            Some(b) => match String::from_utf8(b).map(|s| s.trim().to_string()) {
                Ok(s) if usable(&s) => Ok(Some(s)),
                // An empty optional key (no security token) is absent; a broken one is an error.
                Ok(s) if s.is_empty() && !required => Ok(None),
                _ => Err(CredentialsError::Unusable {
                    secret: name.clone(),
                    key: key.into(),
                }),
            },
        }
    };
    let access_key = read(
        reference
            .access_key_key
            .as_deref()
            .unwrap_or(DEFAULT_ACCESS_KEY_KEY),
        true,
    )?;
    let secret_key = read(
        reference
            .secret_key_key
            .as_deref()
            .unwrap_or(DEFAULT_SECRET_KEY_KEY),
        true,
    )?;
    let security_token = read(
        reference
            .security_token_key
            .as_deref()
            .unwrap_or(DEFAULT_SECURITY_TOKEN_KEY),
        false,
    )?;
    Ok(aksk::Credentials {
        access_key: access_key.unwrap_or_default(),
        secret_key: secret_key.unwrap_or_default(),
        security_token,
    })
}

/// Parsed credentials by (namespace, Secret name), so that a poll does not cost an API server read of the
/// Secret. Only Secrets a CloudJob reads are kept. An entry is trusted until the Secret watch reports a
/// new resourceVersion or a deletion of that Secret; the periodic resync empties the cache, which bounds
/// how long a change missed in a watch gap can go unseen.
#[derive(Clone, Default)]
pub struct CredentialCache {
    entries: Arc<Mutex<HashMap<(String, String), CachedCredentials>>>,
}

#[derive(Clone)]
struct CachedCredentials {
    resource_version: String,
    reference: SecretReference,
    credentials: aksk::Credentials,
}

impl CredentialCache {
    /// Cached credentials for the Secret, read with the same keys.
    pub fn get(&self, namespace: &str, reference: &SecretReference) -> Option<aksk::Credentials> {
        let entries = self.entries.lock().ok()?;
        entries
            .get(&(namespace.to_string(), reference.name.clone()))
            .filter(|c| &c.reference == reference)
            .map(|c| c.credentials.clone())
    }

    pub fn insert(
        &self,
        namespace: &str,
        reference: &SecretReference,
        resource_version: String,
        credentials: aksk::Credentials,
    ) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.insert(
                (namespace.to_string(), reference.name.clone()),
                CachedCredentials {
                    resource_version,
                    reference: reference.clone(),
                    credentials,
                },
            );
        }
    }

    /// The watch saw the Secret at `resource_version`: a cached entry of another version is dropped.
    /// Returns whether one was.
    pub fn observe(&self, namespace: &str, name: &str, resource_version: &str) -> bool {
        let Ok(mut entries) = self.entries.lock() else {
            return false;
        };
        let key = (namespace.to_string(), name.to_string());
        let stale = entries
            .get(&key)
            .is_some_and(|c| c.resource_version != resource_version);
        if stale {
            entries.remove(&key);
        }
        stale
    }

    /// Forgets a Secret (deleted, or no longer readable).
    pub fn remove(&self, namespace: &str, name: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(&(namespace.to_string(), name.to_string()));
        }
    }

    /// Forgets every Secret.
    pub fn clear(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    fn secret(pairs: &[(&str, &[u8])]) -> Secret {
        Secret {
            data: Some(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.to_vec())))
                    .collect(),
            ),
            ..Default::default()
        }
    }

    fn reference() -> SecretReference {
        SecretReference {
            name: "creds".into(),
            namespace: None,
            access_key_key: None,
            secret_key_key: None,
            security_token_key: None,
        }
    }

    #[test]
    fn reads_default_keys_and_trims_newlines() {
        let c = from_secret(
            &secret(&[("accessKey", b"AK\n"), ("secretKey", b" SK ")]),
            &reference(),
        )
        .expect("creds");
        assert_eq!(
            (
                c.access_key.as_str(),
                c.secret_key.as_str(),
                c.security_token
            ),
            ("AK", "SK", None)
        );
    }

    #[test]
    fn custom_keys_and_token() {
        let mut r = reference();
        r.access_key_key = Some("ak".into());
        r.secret_key_key = Some("sk".into());
        let c = from_secret(
            &secret(&[("ak", b"A"), ("sk", b"S"), ("securityToken", b"T")]),
            &r,
        )
        .expect("creds");
        assert_eq!(c.security_token.as_deref(), Some("T"));
    }

    #[test]
    fn missing_or_empty_keys_are_named_without_values() {
        let err = from_secret(&secret(&[("accessKey", b"AK")]), &reference()).unwrap_err();
        assert_eq!(
            err,
            CredentialsError::MissingKey {
                secret: "creds".into(),
                key: "secretKey".into()
            }
        );
        let err = from_secret(
            &secret(&[("accessKey", b"AK"), ("secretKey", b"\xff\xfe")]),
            &reference(),
        )
        .unwrap_err();
        assert!(matches!(err, CredentialsError::Unusable { .. }));
        assert!(!err.to_string().contains("AK"));
    }

    #[test]
    fn bad_bytes_inside_a_value_make_the_secret_invalid() {
        for bad in [&b"AK\x01X"[..], b"A K", b"AK\nX", b"\xc3\xa9t\xc3\xa9"] {
            let err = from_secret(
                &secret(&[("accessKey", bad), ("secretKey", b"SK")]),
                &reference(),
            )
            .expect_err("unusable");
            assert!(matches!(err, CredentialsError::Unusable { .. }), "{bad:?}");
        }
    }

    #[test]
    fn references_are_validated_before_anything_is_requested() {
        assert_eq!(validate_reference(&reference()), Ok(()));
        for name in [
            "?",
            "??",
            "",
            "a/b",
            "UPPER",
            "-a",
            "a-",
            "a..b",
            &"a".repeat(254),
            "..",
            "secrets?watch=1",
        ] {
            let mut r = reference();
            r.name = name.to_string();
            assert!(validate_reference(&r).is_err(), "{name:?}");
        }
        for name in ["a", "creds", "my-creds.v2", &"a".repeat(63)] {
            let mut r = reference();
            r.name = name.to_string();
            assert_eq!(validate_reference(&r), Ok(()), "{name:?}");
        }
        let mut r = reference();
        r.secret_key_key = Some("a/b".into());
        assert!(matches!(
            validate_reference(&r),
            Err(CredentialsError::InvalidReference {
                field: "spec.credentialsSecretRef.secretKeyKey",
                ..
            })
        ));
        r.secret_key_key = Some("SK_1.x-y".into());
        assert_eq!(validate_reference(&r), Ok(()));
    }

    #[test]
    fn a_cached_secret_is_dropped_when_the_watch_sees_another_version_or_its_deletion() {
        let cache = CredentialCache::default();
        let creds = aksk::Credentials {
            access_key: "A".into(),
            secret_key: "S".into(),
            security_token: None,
        };
        cache.insert("ns", &reference(), "1".into(), creds.clone());
        assert_eq!(cache.get("ns", &reference(),), Some(creds.clone()));
        assert!(!cache.observe("ns", "creds", "1"), "same version: kept");
        assert!(
            !cache.observe("ns", "other", "9"),
            "not cached: nothing to drop"
        );
        assert!(cache.observe("ns", "creds", "2"), "new version: dropped");
        assert_eq!(cache.get("ns", &reference()), None);
        let mut other_keys = reference();
        other_keys.access_key_key = Some("ak".into());
        cache.insert("ns", &reference(), "2".into(), creds);
        assert_eq!(cache.get("ns", &other_keys), None, "read with other keys");
        cache.remove("ns", "creds");
        assert_eq!(cache.get("ns", &reference()), None);
    }
}
