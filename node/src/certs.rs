//! Development PKI: one CA per deployment, internal certificates for storage nodes and fronts
//! (server + client, with a role URI SAN: [`raft::tls::ROLE_STORAGE`] or
//! [`raft::tls::ROLE_FRONT`]), and client certificates that name their principal as an ARN in
//! a URI SAN. Storage nodes admit callers by that role, so a user's certificate, which chains to
//! the same CA, cannot call them.
//!
//! Everything is written as PEM files with private keys at mode 0600. Production deployments
//! bring their own CA; this module exists so `keyraft dev` and tests need nothing else.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// Paths of one certificate + private key pair (PEM).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertFiles {
    /// Certificate chain (leaf first).
    pub cert: PathBuf,
    /// PKCS#8 private key, mode 0600.
    pub key: PathBuf,
}

/// A CA that can issue certificates.
pub struct DevCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl DevCa {
    /// Creates a new self-signed CA.
    pub fn generate(common_name: &str) -> anyhow::Result<Self> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate()?;
        Ok(Self {
            issuer: CertifiedIssuer::self_signed(params, key)?,
        })
    }

    /// The CA certificate in PEM.
    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    /// Loads an existing CA from its certificate and private key (PEM). Only the first
    /// certificate of `cert_pem` is used.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> anyhow::Result<IssuingCa> {
        let key = KeyPair::from_pem(key_pem).context("parsing the CA private key")?;
        let der = rustls_pemfile::certs(&mut cert_pem.as_bytes())
            .next()
            .context("no certificate in the CA certificate file")?
            .context("parsing the CA certificate")?;
        let issuer = Issuer::from_ca_cert_der(&der, key).context("reading the CA certificate")?;
        let key_matches = {
            let (_, cert) = x509_parser::parse_x509_certificate(&der)
                .map_err(|_| anyhow::anyhow!("parsing the CA certificate"))?;
            cert.public_key().subject_public_key.data.as_ref() == issuer.key().public_key_raw()
        };
        if !key_matches {
            anyhow::bail!("the CA private key does not belong to the CA certificate");
        }
        Ok(IssuingCa {
            issuer,
            ca_cert_pem: cert_pem.to_string(),
        })
    }

    /// The CA private key in PEM (dev mode keeps it, so its front can issue client
    /// certificates).
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// Issues a storage node's certificate: [`DevCa::issue_internal`] with
    /// [`raft::tls::ROLE_STORAGE`] (Raft RPCs and the store API).
    pub fn issue_storage(
        &self,
        common_name: &str,
        hosts: &[&str],
    ) -> anyhow::Result<(String, String)> {
        self.issue_internal(common_name, hosts, Some(raft::tls::ROLE_STORAGE))
    }

    /// Issues a front's certificate: [`DevCa::issue_internal`] with [`raft::tls::ROLE_FRONT`]
    /// (the store API, not Raft RPCs). Also its server certificate towards clients.
    pub fn issue_front(
        &self,
        common_name: &str,
        hosts: &[&str],
    ) -> anyhow::Result<(String, String)> {
        self.issue_internal(common_name, hosts, Some(raft::tls::ROLE_FRONT))
    }

    /// Issues a server certificate without an internal role (DNS and IP SANs, server + client
    /// EKUs): enough for a front's client-facing listener, refused by storage nodes. Storage
    /// nodes and fronts talking to them need [`DevCa::issue_storage`] / [`DevCa::issue_front`].
    pub fn issue_server(
        &self,
        common_name: &str,
        hosts: &[&str],
    ) -> anyhow::Result<(String, String)> {
        self.issue_internal(common_name, hosts, None)
    }

    /// Issues a certificate usable as a TLS server (DNS and IP SANs for `hosts`) and as a TLS
    /// client towards peers (internal mTLS), carrying `role` as a URI SAN when given.
    pub fn issue_internal(
        &self,
        common_name: &str,
        hosts: &[&str],
        role: Option<&str>,
    ) -> anyhow::Result<(String, String)> {
        let mut params =
            CertificateParams::new(hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>())?;
        if let Some(role) = role {
            params
                .subject_alt_names
                .push(SanType::URI(role.try_into()?));
        }
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        self.sign(params)
    }

    /// Issues a client certificate naming `principal_arn` in a URI SAN, with the clientAuth EKU.
    pub fn issue_client(&self, principal_arn: &str) -> anyhow::Result<(String, String)> {
        self.issue_client_with_eku(principal_arn, vec![ExtendedKeyUsagePurpose::ClientAuth])
    }

    /// Like [`DevCa::issue_client`] with explicit EKUs (tests issue certificates without
    /// clientAuth to prove they are refused).
    pub fn issue_client_with_eku(
        &self,
        principal_arn: &str,
        ekus: Vec<ExtendedKeyUsagePurpose>,
    ) -> anyhow::Result<(String, String)> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, principal_arn);
        params.subject_alt_names = vec![SanType::URI(principal_arn.try_into()?)];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = ekus;
        self.sign(params)
    }

    fn sign(&self, params: CertificateParams) -> anyhow::Result<(String, String)> {
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

/// A CA loaded from files ([`DevCa::from_pem`]) that issues client certificates on demand
/// (IssueClientCertificate). Holds the CA's private key: no `Debug`.
pub struct IssuingCa {
    issuer: Issuer<'static, KeyPair>,
    ca_cert_pem: String,
}

impl IssuingCa {
    /// The CA certificate(s) it was loaded with (PEM): what issued certificates chain to.
    pub fn ca_cert_pem(&self) -> &str {
        &self.ca_cert_pem
    }

    /// Issues a client certificate naming `principal_arn` in a URI SAN, with the clientAuth
    /// EKU, valid from five minutes ago (clock skew) for `validity_days`. Returns the
    /// certificate and a fresh PKCS#8 private key, both PEM.
    pub fn issue_client(
        &self,
        principal_arn: &str,
        validity_days: u32,
    ) -> anyhow::Result<(String, String)> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, principal_arn);
        params.subject_alt_names = vec![SanType::URI(principal_arn.try_into()?)];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let now = x509_parser::time::ASN1Time::now().timestamp();
        let at = |secs: i64| {
            x509_parser::time::ASN1Time::from_timestamp(secs)
                .map(|t| t.to_datetime())
                .map_err(|_| anyhow::anyhow!("certificate validity out of range"))
        };
        params.not_before = at(now - 300)?;
        params.not_after = at(now + i64::from(validity_days) * 86_400)?;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

/// Writes a certificate and its key as `<dir>/<name>.pem` and `<dir>/<name>.key`.
pub fn write_pair(
    dir: &Path,
    name: &str,
    (cert, key): (String, String),
) -> anyhow::Result<CertFiles> {
    let files = CertFiles {
        cert: dir.join(format!("{name}.pem")),
        key: dir.join(format!("{name}.key")),
    };
    fs::write(&files.cert, cert).with_context(|| format!("writing {}", files.cert.display()))?;
    write_private(&files.key, key.as_bytes())?;
    Ok(files)
}

/// Writes a file readable by its owner only (keys, domain key, env file with secrets).
pub fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    // Written beside the target and renamed over it, so a reader polling for the file (the
    // dev env file is how tests and scripts learn a region is up) never sees half of it.
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp_name);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_certificate_carries_principal_uri_san_and_client_auth() {
        let ca = DevCa::generate("test ca").unwrap();
        let (pem, _key) = ca
            .issue_client("arn:aws:iam::111122223333:role/App")
            .unwrap();
        let der = rustls_pemfile::certs(&mut pem.as_bytes())
            .next()
            .unwrap()
            .unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let san = cert.subject_alternative_name().unwrap().unwrap();
        let uris: Vec<String> = san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                x509_parser::extensions::GeneralName::URI(u) => Some(u.to_string()),
                _ => None,
            })
            .collect();
        assert_eq!(uris, vec!["arn:aws:iam::111122223333:role/App".to_string()]);
        let eku = cert.extended_key_usage().unwrap().unwrap();
        assert!(eku.value.client_auth);
        assert!(!eku.value.server_auth);
    }

    fn uri_sans(pem: &str) -> Vec<String> {
        let der = rustls_pemfile::certs(&mut pem.as_bytes())
            .next()
            .unwrap()
            .unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let san = cert.subject_alternative_name().unwrap().unwrap();
        san.value
            .general_names
            .iter()
            .filter_map(|n| match n {
                x509_parser::extensions::GeneralName::URI(u) => Some(u.to_string()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn internal_certificates_carry_their_role_and_keep_host_sans_and_both_ekus() {
        let ca = DevCa::generate("test ca").unwrap();
        let hosts = ["localhost", "127.0.0.1"];
        for (pem, role) in [
            (
                ca.issue_storage("storage", &hosts).unwrap().0,
                Some(raft::tls::ROLE_STORAGE),
            ),
            (
                ca.issue_front("front", &hosts).unwrap().0,
                Some(raft::tls::ROLE_FRONT),
            ),
            (ca.issue_server("server", &hosts).unwrap().0, None),
        ] {
            assert_eq!(
                uri_sans(&pem),
                role.map(String::from).into_iter().collect::<Vec<_>>()
            );
            let der = rustls_pemfile::certs(&mut pem.as_bytes())
                .next()
                .unwrap()
                .unwrap();
            let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
            let san = cert.subject_alternative_name().unwrap().unwrap();
            let names = format!("{:?}", san.value.general_names);
            assert!(names.contains("localhost"), "{names}");
            assert!(
                names.contains("127.0.0.1") || names.contains("IPAddress"),
                "{names}"
            );
            let eku = cert.extended_key_usage().unwrap().unwrap();
            assert!(eku.value.server_auth && eku.value.client_auth);
        }
    }

    #[test]
    fn private_files_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        write_private(&path, b"x").unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
