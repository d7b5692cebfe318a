//! Client configuration: endpoints, mTLS material, retries, timeouts; from code, the
//! environment or a `keyraft dev` env file.
//!
//! Environment variables (the same names `keyraft dev` writes into its env file):
//!
//! | variable            | meaning                                                     |
//! |---------------------|-------------------------------------------------------------|
//! | `KMS_GRPC_ENDPOINT` | front gRPC endpoint(s), comma-separated, `https://host:port` |
//! | `KMS_CA_BUNDLE`     | PEM file with the CA certificate(s) to trust                 |
//! | `KMS_CLIENT_CERT`   | PEM file with the client certificate (chain)                 |
//! | `KMS_CLIENT_KEY`    | PEM file with the client private key                         |
//! | `KMS_REGION`        | the region (informational; the endpoint decides)             |
//! | `KMS_SERVER_NAME`   | TLS server name to verify instead of the endpoint's host     |

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::Error;
use crate::retry::RetryPolicy;
use crate::Client;

/// Env var: comma-separated front gRPC endpoints.
pub const ENV_ENDPOINT: &str = "KMS_GRPC_ENDPOINT";
/// Env var: CA bundle PEM file.
pub const ENV_CA_BUNDLE: &str = "KMS_CA_BUNDLE";
/// Env var: client certificate PEM file.
pub const ENV_CLIENT_CERT: &str = "KMS_CLIENT_CERT";
/// Env var: client private key PEM file.
pub const ENV_CLIENT_KEY: &str = "KMS_CLIENT_KEY";
/// Env var: region.
pub const ENV_REGION: &str = "KMS_REGION";
/// Env var: TLS server name override.
pub const ENV_SERVER_NAME: &str = "KMS_SERVER_NAME";

/// PEM input: a file read when the client is built, or the bytes themselves.
#[derive(Clone)]
pub enum Pem {
    /// A path to a PEM file.
    File(PathBuf),
    /// PEM text.
    Bytes(Vec<u8>),
}

// Never print PEM contents: a client key is a secret.
impl std::fmt::Debug for Pem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pem::File(p) => f.debug_tuple("File").field(p).finish(),
            Pem::Bytes(b) => write!(f, "Bytes(<{} bytes>)", b.len()),
        }
    }
}

impl Pem {
    fn load(&self, what: &str) -> Result<Vec<u8>, Error> {
        let bytes = match self {
            Pem::File(p) => std::fs::read(p)
                .map_err(|e| Error::config(format!("cannot read {what} {}: {e}", p.display())))?,
            Pem::Bytes(b) => b.clone(),
        };
        if !bytes
            .windows(b"-----BEGIN".len())
            .any(|w| w == b"-----BEGIN")
        {
            return Err(Error::config(format!("{what} is not PEM")));
        }
        Ok(bytes)
    }
}

/// Builds a [`Client`]. Start from [`Client::builder`] (empty) or [`ClientBuilder::from_env`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    pub(crate) endpoints: Vec<String>,
    pub(crate) ca_bundle: Option<Pem>,
    pub(crate) client_cert: Option<Pem>,
    pub(crate) client_key: Option<Pem>,
    pub(crate) server_name: Option<String>,
    pub(crate) region: Option<String>,
    pub(crate) retry: RetryPolicy,
    pub(crate) connect_timeout: Duration,
    pub(crate) request_timeout: Duration,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder {
            endpoints: Vec::new(),
            ca_bundle: None,
            client_cert: None,
            client_key: None,
            server_name: None,
            region: None,
            retry: RetryPolicy::default(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
        }
    }
}

impl ClientBuilder {
    /// An empty builder (no endpoint, no TLS material).
    pub fn new() -> Self {
        Self::default()
    }

    /// A builder preset from the process environment (`KMS_*`, see the module docs).
    pub fn from_env() -> Self {
        let vars = [
            ENV_ENDPOINT,
            ENV_CA_BUNDLE,
            ENV_CLIENT_CERT,
            ENV_CLIENT_KEY,
            ENV_REGION,
            ENV_SERVER_NAME,
        ]
        .into_iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_owned(), v)))
        .collect();
        Self::new().apply_vars(&vars, None)
    }

    /// Applies the `KMS_*` settings of an env file written by `keyraft dev` (`export K=V`
    /// lines). Settings present in the file replace those already set; relative paths are
    /// taken relative to the file's directory.
    pub fn env_file(self, path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::config(format!("cannot read env file {}: {e}", path.display())))?;
        let vars = parse_env_file(&text)?;
        Ok(self.apply_vars(&vars, path.parent()))
    }

    /// Applies `KMS_*` settings from a map of variables.
    pub fn apply_vars(mut self, vars: &BTreeMap<String, String>, base: Option<&Path>) -> Self {
        let file = |v: &String| {
            let p = PathBuf::from(v);
            match base {
                Some(b) if p.is_relative() => Pem::File(b.join(p)),
                _ => Pem::File(p),
            }
        };
        if let Some(v) = vars.get(ENV_ENDPOINT) {
            self.endpoints = split_endpoints(v);
        }
        if let Some(v) = vars.get(ENV_CA_BUNDLE).filter(|v| !v.is_empty()) {
            self.ca_bundle = Some(file(v));
        }
        if let Some(v) = vars.get(ENV_CLIENT_CERT).filter(|v| !v.is_empty()) {
            self.client_cert = Some(file(v));
        }
        if let Some(v) = vars.get(ENV_CLIENT_KEY).filter(|v| !v.is_empty()) {
            self.client_key = Some(file(v));
        }
        if let Some(v) = vars.get(ENV_REGION).filter(|v| !v.is_empty()) {
            self.region = Some(v.clone());
        }
        if let Some(v) = vars.get(ENV_SERVER_NAME).filter(|v| !v.is_empty()) {
            self.server_name = Some(v.clone());
        }
        self
    }

    /// Adds a front endpoint (`https://host:port`; a bare `host:port` means https). Calls go
    /// to the first endpoint and fail over to the next when one does not answer.
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoints.push(endpoint.into());
        self
    }

    /// Replaces the endpoint list.
    pub fn endpoints<I, S>(mut self, endpoints: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.endpoints = endpoints.into_iter().map(Into::into).collect();
        self
    }

    /// The CA bundle to trust, as a PEM file.
    pub fn ca_bundle_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_bundle = Some(Pem::File(path.into()));
        self
    }

    /// The CA bundle to trust, as PEM text.
    pub fn ca_bundle_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_bundle = Some(Pem::Bytes(pem.into()));
        self
    }

    /// The client certificate (chain), as a PEM file.
    pub fn client_cert_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.client_cert = Some(Pem::File(path.into()));
        self
    }

    /// The client certificate (chain), as PEM text.
    pub fn client_cert_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.client_cert = Some(Pem::Bytes(pem.into()));
        self
    }

    /// The client private key, as a PEM file.
    pub fn client_key_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.client_key = Some(Pem::File(path.into()));
        self
    }

    /// The client private key, as PEM text.
    pub fn client_key_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.client_key = Some(Pem::Bytes(pem.into()));
        self
    }

    /// Verifies the fronts' certificates against this name instead of the endpoint host.
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// The region (informational: the endpoints decide which region is called).
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// The retry policy (default: 3 attempts, 100 ms initial, 20 s max backoff).
    pub fn retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Total attempts per call, including the first; 0 is treated as 1.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.retry.max_attempts = attempts.max(1);
        self
    }

    /// Timeout for establishing a connection to one front (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Timeout for one attempt of one call (default 30 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Validates the configuration, loads the TLS material and returns a client. Connections
    /// are made lazily on first use, so this succeeds even while every front is down.
    /// Must be called within a tokio runtime.
    pub fn build(self) -> Result<Client, Error> {
        Client::from_builder(self)
    }
}

/// Splits a comma-separated endpoint list, dropping empty entries.
pub fn split_endpoints(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Normalizes an endpoint: a bare `host:port` becomes `https://host:port`.
pub(crate) fn normalize_endpoint(e: &str) -> String {
    if e.contains("://") {
        e.to_owned()
    } else {
        format!("https://{e}")
    }
}

/// Everything needed to open TLS connections, loaded and checked.
pub(crate) struct TlsMaterial {
    pub ca: Vec<u8>,
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
}

impl ClientBuilder {
    pub(crate) fn load_tls(&self) -> Result<Option<TlsMaterial>, Error> {
        match (&self.ca_bundle, &self.client_cert, &self.client_key) {
            (None, None, None) => Ok(None),
            (Some(ca), Some(cert), Some(key)) => Ok(Some(TlsMaterial {
                ca: ca.load("CA bundle")?,
                cert: cert.load("client certificate")?,
                key: key.load("client key")?,
            })),
            _ => Err(Error::config(
                "mTLS needs all three of a CA bundle, a client certificate and a client key \
                 (KMS_CA_BUNDLE, KMS_CLIENT_CERT, KMS_CLIENT_KEY)",
            )),
        }
    }
}

/// Parses a shell env file of `export K=V` / `K=V` lines, as written by `keyraft dev`.
///
/// Blank lines and `#` comments are skipped. Values may be bare, `'single-quoted'` (literal)
/// or `"double-quoted"` (with `\"`, `\\`, `\$` and `` \` `` escapes). Anything else (command
/// substitution, unterminated quotes, invalid names) is an error rather than a guess.
pub fn parse_env_file(text: &str) -> Result<BTreeMap<String, String>, Error> {
    let mut vars = BTreeMap::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line
            .strip_prefix("export")
            .filter(|rest| rest.starts_with(char::is_whitespace))
            .map(str::trim_start)
            .unwrap_or(line);
        let bad = |why: &str| Error::config(format!("env file line {}: {why}", n + 1));
        let (name, value) = line
            .split_once('=')
            .ok_or_else(|| bad("expected NAME=value"))?;
        let valid_name = !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_name {
            return Err(bad("invalid variable name"));
        }
        vars.insert(name.to_owned(), parse_shell_value(value).map_err(bad)?);
    }
    Ok(vars)
}

fn parse_shell_value(v: &str) -> Result<String, &'static str> {
    let mut out = String::new();
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => loop {
                match chars.next() {
                    Some('\'') => break,
                    Some(c) => out.push(c),
                    None => return Err("unterminated single quote"),
                }
            },
            '"' => loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some(c @ ('"' | '\\' | '$' | '`')) => out.push(c),
                        Some(c) => {
                            out.push('\\');
                            out.push(c);
                        }
                        None => return Err("unterminated double quote"),
                    },
                    Some('$' | '`') => return Err("shell expansion is not supported"),
                    Some(c) => out.push(c),
                    None => return Err("unterminated double quote"),
                }
            },
            '\\' => match chars.next() {
                Some(c) => out.push(c),
                None => return Err("trailing backslash"),
            },
            '$' | '`' => return Err("shell expansion is not supported"),
            '#' if out.is_empty() => break,
            c if c.is_whitespace() => {
                // An unquoted blank ends the value; only a comment may follow.
                let rest = chars.as_str().trim_start();
                if rest.is_empty() || rest.starts_with('#') {
                    break;
                }
                return Err("unquoted whitespace in value");
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_file_accepts_export_lines_quotes_and_comments() {
        let text = r#"
# written by keyraft dev
export KMS_GRPC_ENDPOINT=https://127.0.0.1:7443,https://127.0.0.1:7444
export KMS_CA_BUNDLE='/tmp/dev dir/ca.pem'
export KMS_CLIENT_CERT="/tmp/a \"b\"/app.pem"
KMS_REGION=us-east-1   # trailing comment
export AWS_ACCESS_KEY_ID=AKIAEXAMPLE
export EMPTY=
"#;
        let vars = parse_env_file(text).unwrap();
        assert_eq!(
            vars["KMS_GRPC_ENDPOINT"],
            "https://127.0.0.1:7443,https://127.0.0.1:7444"
        );
        assert_eq!(vars["KMS_CA_BUNDLE"], "/tmp/dev dir/ca.pem");
        assert_eq!(vars["KMS_CLIENT_CERT"], r#"/tmp/a "b"/app.pem"#);
        assert_eq!(vars["KMS_REGION"], "us-east-1");
        assert_eq!(vars["AWS_ACCESS_KEY_ID"], "AKIAEXAMPLE");
        assert_eq!(vars["EMPTY"], "");
    }

    #[test]
    fn env_file_rejects_what_it_cannot_read_faithfully() {
        for bad in [
            "export X='unterminated",
            "X=\"unterminated",
            "X=$(rm -rf /)",
            "X=\"$HOME\"",
            "X=a b",
            "1X=a",
            "NOEQUALS",
            "exportX",
        ] {
            assert!(parse_env_file(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn env_file_settings_resolve_relative_paths_against_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("env");
        std::fs::write(
            &path,
            "export KMS_GRPC_ENDPOINT='127.0.0.1:1, 127.0.0.1:2'\nexport KMS_CA_BUNDLE=ca.pem\n\
             export KMS_CLIENT_CERT=/abs/app.pem\nexport KMS_REGION=eu-west-1\n",
        )
        .unwrap();
        let b = ClientBuilder::new()
            .endpoint("x:1")
            .env_file(&path)
            .unwrap();
        assert_eq!(b.endpoints, vec!["127.0.0.1:1", "127.0.0.1:2"]);
        assert!(matches!(&b.ca_bundle, Some(Pem::File(p)) if p == &dir.path().join("ca.pem")));
        assert!(matches!(&b.client_cert, Some(Pem::File(p)) if p == Path::new("/abs/app.pem")));
        assert_eq!(b.region.as_deref(), Some("eu-west-1"));
    }

    #[test]
    fn bare_endpoints_default_to_https() {
        assert_eq!(normalize_endpoint("h:1"), "https://h:1");
        assert_eq!(normalize_endpoint("http://h:1"), "http://h:1");
        assert_eq!(split_endpoints(" a:1 ,,b:2,"), vec!["a:1", "b:2"]);
    }

    #[test]
    fn partial_tls_material_is_a_config_error() {
        let b = ClientBuilder::new().ca_bundle_pem("-----BEGIN CERTIFICATE-----");
        assert_eq!(b.load_tls().err().unwrap().error_type(), "ConfigError");
        let b = ClientBuilder::new()
            .ca_bundle_pem("not pem")
            .client_cert_pem("-----BEGIN CERTIFICATE-----")
            .client_key_pem("-----BEGIN PRIVATE KEY-----");
        assert!(b.load_tls().is_err());
    }

    #[test]
    fn pem_bytes_are_not_printed_by_debug() {
        let b = ClientBuilder::new().client_key_pem("-----BEGIN PRIVATE KEY----- secret");
        assert!(!format!("{b:?}").contains("secret"));
    }
}
