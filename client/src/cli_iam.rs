//! `kmsctl iam <subcommand>`: identity management (principals, access keys, identity
//! policies, client certificates) over the `Iam` gRPC service. Output is the JSON shape of the
//! `KeyraftIam.*` operations on the JSON endpoint (PascalCase, ISO 8601 dates).

use clap::Subcommand;
use serde_json::{json, Map, Value};

use super::{iso8601, load_text, page_json, param_err, Failure, GlobalArgs};
use crate::{proto, Client};

/// `kmsctl iam` subcommands.
#[derive(Debug, Subcommand)]
pub(super) enum IamCommand {
    /// Create a user or role in the caller's account (optionally a service identity).
    CreatePrincipal {
        /// `user/<name>` or `role/<name>`.
        #[arg(long)]
        principal_name: String,
        /// Make it a service identity that may call on behalf of other principals, e.g.
        /// s3.us-east-1.amazonaws.com.
        #[arg(long)]
        service: Option<String>,
    },
    /// List the principals of the caller's account (all pages unless --limit or --marker).
    ListPrincipals {
        /// Page size; disables automatic pagination.
        #[arg(long)]
        limit: Option<i32>,
        /// NextMarker of the previous page; disables automatic pagination.
        #[arg(long)]
        marker: Option<String>,
    },
    /// Describe a principal.
    GetPrincipal {
        /// arn:aws:iam::<account>:root|user/<name>|role/<name>.
        #[arg(long)]
        principal_arn: String,
    },
    /// Delete a principal, its policies and its access keys (never the account root).
    DeletePrincipal {
        /// The principal's ARN.
        #[arg(long)]
        principal_arn: String,
    },
    /// Create an access key (at most two per principal). The secret is printed only now.
    ///
    /// To rotate a key: create-access-key (a second key), switch clients to it, then
    /// delete-access-key the old one.
    CreateAccessKey {
        /// The principal's ARN.
        #[arg(long)]
        principal_arn: String,
    },
    /// List a principal's access key ids and creation dates (never secrets).
    ListAccessKeys {
        /// The principal's ARN.
        #[arg(long)]
        principal_arn: String,
    },
    /// Delete an access key (the second half of a rotation).
    DeleteAccessKey {
        /// The access key id.
        #[arg(long)]
        access_key_id: String,
        /// Only if the key belongs to this principal.
        #[arg(long)]
        principal_arn: Option<String>,
    },
    /// Attach (create or replace) an inline identity policy.
    PutPrincipalPolicy {
        /// The principal's ARN.
        #[arg(long)]
        principal_arn: String,
        /// Policy name.
        #[arg(long)]
        policy_name: String,
        /// The policy JSON, or file://path.
        #[arg(long)]
        policy_document: String,
    },
    /// Print an inline identity policy.
    GetPrincipalPolicy {
        /// The principal's ARN.
        #[arg(long)]
        principal_arn: String,
        /// Policy name.
        #[arg(long)]
        policy_name: String,
    },
    /// List a principal's inline policy names.
    ListPrincipalPolicies {
        /// The principal's ARN.
        #[arg(long)]
        principal_arn: String,
    },
    /// Delete an inline identity policy.
    DeletePrincipalPolicy {
        /// The principal's ARN.
        #[arg(long)]
        principal_arn: String,
        /// Policy name.
        #[arg(long)]
        policy_name: String,
    },
    /// Issue a client certificate for a principal, signed by the deployment CA (needs the CA
    /// key on the front). The private key is shown only now.
    IssueClientCertificate {
        /// The principal's ARN.
        #[arg(long)]
        principal_arn: String,
        /// Validity in days (1..=3650, default 365).
        #[arg(long)]
        validity_days: Option<i32>,
        /// Write the certificate (PEM) here instead of printing it.
        #[arg(long)]
        out_cert: Option<std::path::PathBuf>,
        /// Write the private key (PEM, mode 0600) here instead of printing it.
        #[arg(long)]
        out_key: Option<std::path::PathBuf>,
    },
}

impl IamCommand {
    /// The operation name, for error messages.
    pub(super) fn operation(&self) -> &'static str {
        match self {
            IamCommand::CreatePrincipal { .. } => "CreatePrincipal",
            IamCommand::ListPrincipals { .. } => "ListPrincipals",
            IamCommand::GetPrincipal { .. } => "GetPrincipal",
            IamCommand::DeletePrincipal { .. } => "DeletePrincipal",
            IamCommand::CreateAccessKey { .. } => "CreateAccessKey",
            IamCommand::ListAccessKeys { .. } => "ListAccessKeys",
            IamCommand::DeleteAccessKey { .. } => "DeleteAccessKey",
            IamCommand::PutPrincipalPolicy { .. } => "PutPrincipalPolicy",
            IamCommand::GetPrincipalPolicy { .. } => "GetPrincipalPolicy",
            IamCommand::ListPrincipalPolicies { .. } => "ListPrincipalPolicies",
            IamCommand::DeletePrincipalPolicy { .. } => "DeletePrincipalPolicy",
            IamCommand::IssueClientCertificate { .. } => "IssueClientCertificate",
        }
    }
}

fn principal_json(p: &proto::Principal) -> Value {
    let mut m = Map::new();
    m.insert("Arn".into(), json!(p.arn));
    m.insert("AccountId".into(), json!(p.account_id));
    m.insert("PrincipalName".into(), json!(p.principal_name));
    if let Some(s) = &p.service {
        m.insert("Service".into(), json!(s));
    }
    m.insert("Admin".into(), json!(p.admin));
    m.insert("CreationDate".into(), json!(iso8601(p.creation_date)));
    m.insert("PolicyNames".into(), json!(p.policy_names));
    Value::Object(m)
}

fn write_file(
    param: &'static str,
    path: &std::path::Path,
    text: &str,
    private: bool,
) -> Result<(), Failure> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mode = if private { 0o600 } else { 0o644 };
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| param_err(param, format!("Unable to write {}: {e}", path.display())).into())
}

/// Runs one `kmsctl iam` subcommand; `None` means no output.
pub(super) async fn execute(
    kms: &Client,
    _g: &GlobalArgs,
    cmd: IamCommand,
) -> Result<Option<Value>, Failure> {
    let v = match cmd {
        IamCommand::CreatePrincipal {
            principal_name,
            service,
        } => {
            let mut b = kms.create_principal().principal_name(principal_name);
            if let Some(s) = service {
                b = b.service(s);
            }
            let r = b.send().await?;
            json!({ "Principal": r.principal.as_ref().map(principal_json) })
        }
        IamCommand::ListPrincipals { limit, marker } => {
            let paginate = limit.is_none() && marker.is_none();
            let mut all = Vec::new();
            let mut next = marker;
            loop {
                let mut b = kms.list_principals();
                if let Some(l) = limit {
                    b = b.limit(l);
                }
                if let Some(m) = next.take() {
                    b = b.marker(m);
                }
                let r = b.send().await?;
                all.extend(r.principals.iter().map(principal_json));
                next = r.next_marker.filter(|_| r.truncated);
                if !paginate || next.is_none() {
                    break;
                }
            }
            page_json("Principals", all, if paginate { None } else { next })
        }
        IamCommand::GetPrincipal { principal_arn } => {
            let r = kms
                .get_principal()
                .principal_arn(principal_arn)
                .send()
                .await?;
            json!({ "Principal": r.principal.as_ref().map(principal_json) })
        }
        IamCommand::DeletePrincipal { principal_arn } => {
            kms.delete_principal()
                .principal_arn(principal_arn)
                .send()
                .await?;
            return Ok(None);
        }
        IamCommand::CreateAccessKey { principal_arn } => {
            let r = kms
                .create_access_key()
                .principal_arn(principal_arn)
                .send()
                .await?;
            json!({ "AccessKey": {
                "AccessKeyId": r.access_key_id,
                "SecretAccessKey": r.secret_access_key,
                "PrincipalArn": r.principal_arn,
                "CreationDate": iso8601(r.creation_date),
            }})
        }
        IamCommand::ListAccessKeys { principal_arn } => {
            let r = kms
                .list_access_keys()
                .principal_arn(principal_arn)
                .send()
                .await?;
            let keys: Vec<Value> = r
                .access_keys
                .iter()
                .map(|k| {
                    json!({
                        "AccessKeyId": k.access_key_id,
                        "PrincipalArn": k.principal_arn,
                        "CreationDate": iso8601(k.creation_date),
                    })
                })
                .collect();
            json!({ "AccessKeys": keys })
        }
        IamCommand::DeleteAccessKey {
            access_key_id,
            principal_arn,
        } => {
            let mut b = kms.delete_access_key().access_key_id(access_key_id);
            if let Some(p) = principal_arn {
                b = b.principal_arn(p);
            }
            b.send().await?;
            return Ok(None);
        }
        IamCommand::PutPrincipalPolicy {
            principal_arn,
            policy_name,
            policy_document,
        } => {
            let document = load_text("policy-document", &policy_document)?;
            kms.put_principal_policy()
                .principal_arn(principal_arn)
                .policy_name(policy_name)
                .policy_document(document)
                .send()
                .await?;
            return Ok(None);
        }
        IamCommand::GetPrincipalPolicy {
            principal_arn,
            policy_name,
        } => {
            let r = kms
                .get_principal_policy()
                .principal_arn(principal_arn)
                .policy_name(policy_name)
                .send()
                .await?;
            json!({
                "PrincipalArn": r.principal_arn,
                "PolicyName": r.policy_name,
                "PolicyDocument": r.policy_document,
            })
        }
        IamCommand::ListPrincipalPolicies { principal_arn } => {
            let r = kms
                .list_principal_policies()
                .principal_arn(principal_arn)
                .send()
                .await?;
            json!({ "PolicyNames": r.policy_names })
        }
        IamCommand::DeletePrincipalPolicy {
            principal_arn,
            policy_name,
        } => {
            kms.delete_principal_policy()
                .principal_arn(principal_arn)
                .policy_name(policy_name)
                .send()
                .await?;
            return Ok(None);
        }
        IamCommand::IssueClientCertificate {
            principal_arn,
            validity_days,
            out_cert,
            out_key,
        } => {
            let mut b = kms.issue_client_certificate().principal_arn(principal_arn);
            if let Some(d) = validity_days {
                b = b.validity_days(d);
            }
            let r = b.send().await?;
            let mut m = Map::new();
            m.insert("PrincipalArn".into(), json!(r.principal_arn));
            match &out_cert {
                Some(path) => {
                    write_file("out-cert", path, &r.certificate_pem, false)?;
                    m.insert("CertificateFile".into(), json!(path.display().to_string()));
                }
                None => {
                    m.insert("CertificatePem".into(), json!(r.certificate_pem));
                }
            }
            match &out_key {
                Some(path) => {
                    write_file("out-key", path, &r.private_key_pem, true)?;
                    m.insert("PrivateKeyFile".into(), json!(path.display().to_string()));
                }
                None => {
                    m.insert("PrivateKeyPem".into(), json!(r.private_key_pem));
                }
            }
            m.insert("CaCertificatePem".into(), json!(r.ca_certificate_pem));
            m.insert("NotAfter".into(), json!(iso8601(r.not_after)));
            Value::Object(m)
        }
    };
    Ok(Some(v))
}
