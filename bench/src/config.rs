//! Where to send load and with which credentials: a `keyraft dev` env file, the usual
//! `BAO_*` variables for OpenBao, and flags over both.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

/// A secret string (SigV4 secret access key, OpenBao token): never printed.
#[derive(Clone, Default)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        SecretString(s.into())
    }
    /// The secret itself, for the one place that signs or authenticates with it.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Everything the targets need to connect. Built from an env file, then overridden by flags.
#[derive(Clone, Debug, Default)]
pub struct Endpoints {
    /// keyraft AWS JSON endpoint (`KMS_ENDPOINT`).
    pub json_url: Option<String>,
    /// keyraft gRPC endpoint (`KMS_GRPC_ENDPOINT`).
    pub grpc_url: Option<String>,
    /// SigV4 region (`KMS_REGION`).
    pub region: String,
    /// SigV4 access key id (`AWS_ACCESS_KEY_ID`).
    pub access_key_id: Option<String>,
    /// SigV4 secret (`AWS_SECRET_ACCESS_KEY`).
    pub secret_access_key: Option<SecretString>,
    /// CA bundle every keyraft and echo connection trusts (`KMS_CA_BUNDLE`).
    pub ca: Option<PathBuf>,
    /// Client certificate for gRPC mTLS (`KMS_CLIENT_CERT`).
    pub client_cert: Option<PathBuf>,
    /// Client key for gRPC mTLS (`KMS_CLIENT_KEY`).
    pub client_key: Option<PathBuf>,
    /// Server certificate of the in-process echo servers (dev: `front.pem` beside the env file).
    pub echo_cert: Option<PathBuf>,
    /// Server key of the echo servers (dev: `front.key`).
    pub echo_key: Option<PathBuf>,
    /// OpenBao address (`BAO_ADDR` / `VAULT_ADDR`).
    pub openbao_addr: Option<String>,
    /// OpenBao token (`BAO_TOKEN` / `VAULT_TOKEN`).
    pub openbao_token: Option<SecretString>,
    /// CA file for OpenBao's TLS (`BAO_CACERT` / `VAULT_CACERT`).
    pub openbao_ca: Option<PathBuf>,
}

impl Endpoints {
    /// Reads the keyraft settings of a `keyraft dev` env file (relative paths are taken from
    /// the file's directory) and the OpenBao ones from the process environment.
    pub fn load(env_file: Option<&Path>) -> anyhow::Result<Endpoints> {
        let mut e = Endpoints {
            region: "us-east-1".into(),
            ..Default::default()
        };
        let (vars, base) = match env_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading env file {}", path.display()))?;
                let vars = client::config::parse_env_file(&text)
                    .map_err(|err| anyhow::anyhow!("{}: {err}", path.display()))?;
                (vars, path.parent().map(Path::to_path_buf))
            }
            None => (BTreeMap::new(), None),
        };
        let file = |v: &String| {
            let p = PathBuf::from(v);
            match &base {
                Some(b) if p.is_relative() => b.join(p),
                _ => p,
            }
        };
        let get = |k: &str| vars.get(k).filter(|v| !v.is_empty());
        e.json_url = get("KMS_ENDPOINT").cloned();
        e.grpc_url = get("KMS_GRPC_ENDPOINT").cloned();
        if let Some(r) = get("KMS_REGION") {
            e.region = r.clone();
        }
        e.access_key_id = get("AWS_ACCESS_KEY_ID").cloned();
        e.secret_access_key = get("AWS_SECRET_ACCESS_KEY").map(SecretString::new);
        e.ca = get("KMS_CA_BUNDLE").map(file);
        e.client_cert = get("KMS_CLIENT_CERT").map(file);
        e.client_key = get("KMS_CLIENT_KEY").map(file);
        // `keyraft dev` keeps the front's own certificate beside the CA: the echo floors serve
        // with it, so their TLS costs what the front's does.
        if let Some(ca) = &e.ca {
            if let Some(dir) = ca.parent() {
                let (cert, key) = (dir.join("front.pem"), dir.join("front.key"));
                if cert.is_file() && key.is_file() {
                    e.echo_cert = Some(cert);
                    e.echo_key = Some(key);
                }
            }
        }
        let env = |a: &str, b: &str| {
            std::env::var(a)
                .ok()
                .or_else(|| std::env::var(b).ok())
                .filter(|v| !v.is_empty())
        };
        e.openbao_addr = env("BAO_ADDR", "VAULT_ADDR");
        e.openbao_token = env("BAO_TOKEN", "VAULT_TOKEN").map(SecretString::new);
        e.openbao_ca = env("BAO_CACERT", "VAULT_CACERT").map(PathBuf::from);
        Ok(e)
    }

    /// A required setting, or an error naming the flag and variable that set it.
    pub fn need<'a, T>(value: &'a Option<T>, what: &str) -> anyhow::Result<&'a T> {
        match value {
            Some(v) => Ok(v),
            None => bail!("missing {what}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dev_env_file_gives_endpoints_credentials_and_the_echo_certificate() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["ca.pem", "front.pem", "front.key"] {
            std::fs::write(dir.path().join(f), "x").unwrap();
        }
        let env = dir.path().join("env");
        std::fs::write(
            &env,
            "export KMS_ENDPOINT='https://127.0.0.1:7400'\nexport KMS_GRPC_ENDPOINT='https://127.0.0.1:7401'\n\
             export KMS_REGION='eu-west-1'\nexport AWS_ACCESS_KEY_ID='AKIA1'\nexport AWS_SECRET_ACCESS_KEY='s3cr3t'\n\
             export KMS_CA_BUNDLE='ca.pem'\nexport KMS_CLIENT_CERT='/abs/admin.pem'\n",
        )
        .unwrap();
        let e = Endpoints::load(Some(&env)).unwrap();
        assert_eq!(e.json_url.as_deref(), Some("https://127.0.0.1:7400"));
        assert_eq!(e.grpc_url.as_deref(), Some("https://127.0.0.1:7401"));
        assert_eq!(e.region, "eu-west-1");
        assert_eq!(
            e.secret_access_key.as_ref().unwrap().expose_secret(),
            "s3cr3t"
        );
        assert_eq!(e.ca.as_deref(), Some(dir.path().join("ca.pem").as_path()));
        assert_eq!(e.client_cert.as_deref(), Some(Path::new("/abs/admin.pem")));
        assert_eq!(
            e.echo_cert.as_deref(),
            Some(dir.path().join("front.pem").as_path())
        );
        assert!(
            !format!("{e:?}").contains("s3cr3t"),
            "secrets are not printed"
        );
    }
}
