//! Identity management (`proto/kms/v1/iam.proto`, service `Iam`): principals, access keys,
//! identity policies and client certificates, one fluent builder per operation like the KMS
//! calls.
//!
//! ```no_run
//! # async fn demo() -> Result<(), client::Error> {
//! let kms = client::Client::from_env()?; // as the account root or an IAM administrator
//! let role = kms.create_principal().principal_name("role/Ci").send().await?;
//! let arn = role.principal.unwrap_or_default().arn;
//! let key = kms.create_access_key().principal_arn(&arn).send().await?;
//! // key.secret_access_key is shown only here; store it now.
//! kms.put_principal_policy()
//!     .principal_arn(&arn)
//!     .policy_name("CreateKeys")
//!     .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:CreateKey","Resource":"*"}]}"#)
//!     .send()
//!     .await?;
//! // Rotation: create a second key, move clients over, delete the first.
//! kms.delete_access_key().access_key_id(&key.access_key_id).send().await?;
//! # Ok(()) }
//! ```

use crate::client::Client;
use crate::error::Error;
use crate::proto;

// Responses carrying a secret: prost's derived Debug is skipped for them (build.rs).
impl std::fmt::Debug for proto::CreateAccessKeyResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateAccessKeyResponse")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("principal_arn", &self.principal_arn)
            .field("creation_date", &self.creation_date)
            .finish()
    }
}

impl std::fmt::Debug for proto::IssueClientCertificateResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssueClientCertificateResponse")
            .field("principal_arn", &self.principal_arn)
            .field("certificate_pem", &self.certificate_pem)
            .field("private_key_pem", &"<redacted>")
            .field("not_after", &self.not_after)
            .finish()
    }
}

macro_rules! iam_setter {
    (string $field:ident) => {
        #[doc = concat!("Sets `", stringify!($field), "`.")]
        pub fn $field(mut self, v: impl Into<String>) -> Self {
            self.req.$field = v.into();
            self
        }
    };
    (opt_string $field:ident) => {
        #[doc = concat!("Sets `", stringify!($field), "`.")]
        pub fn $field(mut self, v: impl Into<String>) -> Self {
            self.req.$field = Some(v.into());
            self
        }
    };
    (opt_i32 $field:ident) => {
        #[doc = concat!("Sets `", stringify!($field), "`.")]
        pub fn $field(mut self, v: i32) -> Self {
            self.req.$field = Some(v);
            self
        }
    };
}

macro_rules! iam_operations {
    ($(
        $(#[$doc:meta])*
        $method:ident => $builder:ident, $op:literal, $req:ident -> $resp:ident {
            $( $kind:ident $field:ident ; )*
        }
    )*) => {$(
        #[doc = concat!("Builder for the `", $op, "` operation; see [`Client::",
                        stringify!($method), "`].")]
        #[must_use = "a request does nothing until `.send().await`"]
        pub struct $builder {
            client: Client,
            req: proto::$req,
        }

        // Requests may hold policy documents: Debug names the operation only.
        impl std::fmt::Debug for $builder {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(stringify!($builder))
            }
        }

        impl $builder {
            $( iam_setter!($kind $field); )*

            /// The request as it would be sent.
            pub fn as_request(&self) -> &proto::$req {
                &self.req
            }

            #[doc = concat!("Sends the `", $op, "` request, with failover and retries.")]
            pub async fn send(self) -> Result<proto::$resp, Error> {
                self.client
                    .call_iam($op, self.req, |mut rpc, req| async move {
                        rpc.$method(req).await
                    })
                    .await
            }
        }

        impl Client {
            $(#[$doc])*
            pub fn $method(&self) -> $builder {
                $builder {
                    client: self.clone(),
                    req: Default::default(),
                }
            }
        }
    )*};
}

iam_operations! {
    /// Creates a user or role (`user/<name>`, `role/<name>`) in the caller's account, or a
    /// service identity with `.service(..)` (`CreatePrincipal`).
    create_principal => CreatePrincipalFluentBuilder, "CreatePrincipal",
        CreatePrincipalRequest -> CreatePrincipalResponse {
        string principal_name;
        opt_string service;
    }

    /// Lists the principals of the caller's account, one page at a time (`ListPrincipals`).
    list_principals => ListPrincipalsFluentBuilder, "ListPrincipals",
        ListPrincipalsRequest -> ListPrincipalsResponse {
        opt_i32 limit;
        opt_string marker;
    }

    /// Describes a principal: ARN, account, service, creation date, policy names
    /// (`GetPrincipal`).
    get_principal => GetPrincipalFluentBuilder, "GetPrincipal",
        GetPrincipalRequest -> GetPrincipalResponse {
        string principal_arn;
    }

    /// Deletes a principal with its policies and access keys; never the account root
    /// (`DeletePrincipal`).
    delete_principal => DeletePrincipalFluentBuilder, "DeletePrincipal",
        DeletePrincipalRequest -> DeletePrincipalResponse {
        string principal_arn;
    }

    /// Creates an access key (at most two per principal); the secret is in this response
    /// only (`CreateAccessKey`). Rotate by creating a second key, then deleting the first.
    create_access_key => CreateAccessKeyFluentBuilder, "CreateAccessKey",
        CreateAccessKeyRequest -> CreateAccessKeyResponse {
        string principal_arn;
    }

    /// Lists a principal's access key ids and creation dates (`ListAccessKeys`).
    list_access_keys => ListAccessKeysFluentBuilder, "ListAccessKeys",
        ListAccessKeysRequest -> ListAccessKeysResponse {
        string principal_arn;
    }

    /// Deletes an access key (`DeleteAccessKey`).
    delete_access_key => DeleteAccessKeyFluentBuilder, "DeleteAccessKey",
        DeleteAccessKeyRequest -> DeleteAccessKeyResponse {
        string access_key_id;
        opt_string principal_arn;
    }

    /// Creates or replaces an inline identity policy (`PutPrincipalPolicy`).
    put_principal_policy => PutPrincipalPolicyFluentBuilder, "PutPrincipalPolicy",
        PutPrincipalPolicyRequest -> PutPrincipalPolicyResponse {
        string principal_arn;
        string policy_name;
        string policy_document;
    }

    /// Reads an inline identity policy (`GetPrincipalPolicy`).
    get_principal_policy => GetPrincipalPolicyFluentBuilder, "GetPrincipalPolicy",
        GetPrincipalPolicyRequest -> GetPrincipalPolicyResponse {
        string principal_arn;
        string policy_name;
    }

    /// Lists a principal's inline policy names (`ListPrincipalPolicies`).
    list_principal_policies => ListPrincipalPoliciesFluentBuilder, "ListPrincipalPolicies",
        ListPrincipalPoliciesRequest -> ListPrincipalPoliciesResponse {
        string principal_arn;
    }

    /// Deletes an inline identity policy (`DeletePrincipalPolicy`).
    delete_principal_policy => DeletePrincipalPolicyFluentBuilder, "DeletePrincipalPolicy",
        DeletePrincipalPolicyRequest -> DeletePrincipalPolicyResponse {
        string principal_arn;
        string policy_name;
    }

    /// Issues a client certificate for a principal, signed by the deployment CA; the private
    /// key is in this response only (`IssueClientCertificate`).
    issue_client_certificate => IssueClientCertificateFluentBuilder, "IssueClientCertificate",
        IssueClientCertificateRequest -> IssueClientCertificateResponse {
        string principal_arn;
        opt_i32 validity_days;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_responses_redact_their_secret_in_debug() {
        let k = proto::CreateAccessKeyResponse {
            access_key_id: "AKIAEXAMPLE".into(),
            secret_access_key: "very-secret".into(),
            ..Default::default()
        };
        let c = proto::IssueClientCertificateResponse {
            private_key_pem: "-----BEGIN PRIVATE KEY----- very-secret".into(),
            ..Default::default()
        };
        for shown in [format!("{k:?}"), format!("{c:?}")] {
            assert!(!shown.contains("very-secret"), "{shown}");
        }
        assert!(format!("{k:?}").contains("AKIAEXAMPLE"));
    }

    #[tokio::test]
    async fn builders_fill_the_request() {
        let kms = Client::builder()
            .endpoint("http://127.0.0.1:1")
            .build()
            .unwrap();
        let b = kms
            .put_principal_policy()
            .principal_arn("arn:aws:iam::111122223333:role/Ci")
            .policy_name("p")
            .policy_document("{}");
        assert_eq!(b.as_request().policy_name, "p");
        assert_eq!(format!("{b:?}"), "PutPrincipalPolicyFluentBuilder");
        let d = kms
            .delete_access_key()
            .access_key_id("AKIA")
            .principal_arn("x");
        assert_eq!(d.as_request().principal_arn.as_deref(), Some("x"));
    }
}
