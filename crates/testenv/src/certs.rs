//! The control plane's PKI, generated fresh for every control plane: nothing is shared between runs.

use anyhow::Context as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// PEM-encoded material. One CA signs both the serving certificate and the admin client certificate:
/// kube-apiserver gets it as `--client-ca-file`, and kubeconfigs trust it as the cluster CA.
pub(crate) struct Pki {
    pub ca_cert: String,
    pub serving_cert: String,
    pub serving_key: String,
    pub admin_cert: String,
    pub admin_key: String,
    /// Service-account token signing key pair (`--service-account-signing-key-file` / `-key-file`).
    pub sa_private_key: String,
    pub sa_public_key: String,
}

/// The admin user's name; its group `system:masters` is what makes it cluster-admin under RBAC.
pub(crate) const ADMIN_USER: &str = "cloudjob-testenv-admin";

/// `extra_sans`: more names or IP addresses the serving certificate is valid for, beyond 127.0.0.1 and
/// localhost (a node's bridge address, the `kubernetes` Service IP).
pub(crate) fn generate(extra_sans: &[String]) -> anyhow::Result<Pki> {
    // ECDSA P-256 (rcgen's default) keeps generation in the microseconds, which matters because every
    // test starts its own control plane.
    let ca_key = KeyPair::generate().context("generating the CA key")?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).context("CA parameters")?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "cloudjob-testenv-ca");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params
        .self_signed(&ca_key)
        .context("self-signing the CA")?;
    let ca = Issuer::new(ca_params, ca_key);

    let serving_key = KeyPair::generate().context("generating the serving key")?;
    let mut sans = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
    sans.extend(extra_sans.iter().cloned());
    let mut serving_params =
        CertificateParams::new(sans).context("serving certificate parameters")?;
    serving_params
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    serving_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    serving_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let serving_cert = serving_params
        .signed_by(&serving_key, &ca)
        .context("signing the serving certificate")?;

    let admin_key = KeyPair::generate().context("generating the admin key")?;
    let mut admin_params =
        CertificateParams::new(Vec::<String>::new()).context("admin certificate parameters")?;
    admin_params
        .distinguished_name
        .push(DnType::CommonName, ADMIN_USER);
    admin_params
        .distinguished_name
        .push(DnType::OrganizationName, "system:masters");
    admin_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    admin_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let admin_cert = admin_params
        .signed_by(&admin_key, &ca)
        .context("signing the admin certificate")?;

    let sa_key = KeyPair::generate().context("generating the service-account signing key")?;

    Ok(Pki {
        ca_cert: ca_cert.pem(),
        serving_cert: serving_cert.pem(),
        serving_key: serving_key.serialize_pem(),
        admin_cert: admin_cert.pem(),
        admin_key: admin_key.serialize_pem(),
        sa_private_key: sa_key.serialize_pem(),
        sa_public_key: sa_key.public_key_pem(),
    })
}
