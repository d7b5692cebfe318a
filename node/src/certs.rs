//! Development PKI: one CA per deployment, a server/peer certificate for storage nodes and
//! fronts, and client certificates that name their principal as an ARN in a URI SAN.
//!
//! Everything is written as PEM files with private keys at mode 0600. Production deployments
//! bring their own CA; this module exists so `keyraft dev` and tests need nothing else.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
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

    /// Issues a certificate for a storage node or front: usable as a TLS server (DNS and IP
    /// SANs) and as a TLS client towards peers (internal mTLS).
    pub fn issue_server(
        &self,
        common_name: &str,
        hosts: &[&str],
    ) -> anyhow::Result<(String, String)> {
        let mut params =
            CertificateParams::new(hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>())?;
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
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
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
