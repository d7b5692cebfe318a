//! The gRPC `Iam` service (`proto/kms/v1/iam.proto`) over the identity management operations
//! of [`Kms`] (`front/iam.rs`). Callers authenticate exactly as on the `Kms` service (client
//! certificate, optional on-behalf-of metadata); empty strings mean absent, as there.

use std::fmt;
use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::pb;
use super::pb::iam_server::{Iam as IamService, IamServer};
use super::{GrpcKms, MAX_MESSAGE};
use crate::front::ops::{
    AccessKeyMetadata, CreatePrincipalRequest, DeleteAccessKeyRequest,
    IssueClientCertificateRequest, ListPrincipalsRequest, PrincipalArnRequest, PrincipalMetadata,
    PrincipalPolicyRequest, PutPrincipalPolicyRequest,
};
use crate::front::Kms;

/// The tonic service, for embedding in a server next to the `Kms` service.
pub fn service(kms: Arc<Kms>) -> IamServer<GrpcIam> {
    IamServer::new(GrpcIam(GrpcKms { kms }))
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE)
}

/// Implements the generated `Iam` trait over [`Kms`].
pub struct GrpcIam(GrpcKms);

// Secret-carrying responses: prost's derived Debug is skipped for them (build.rs).
impl fmt::Debug for pb::CreateAccessKeyResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreateAccessKeyResponse")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("principal_arn", &self.principal_arn)
            .finish()
    }
}

impl fmt::Debug for pb::IssueClientCertificateResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssueClientCertificateResponse")
            .field("principal_arn", &self.principal_arn)
            .field("private_key_pem", &"<redacted>")
            .finish()
    }
}

fn opt(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

fn principal(p: PrincipalMetadata) -> pb::Principal {
    pb::Principal {
        arn: p.arn,
        account_id: p.account_id,
        principal_name: p.principal_name,
        service: p.service,
        admin: p.admin,
        creation_date: p.creation_date,
        policy_names: p.policy_names,
    }
}

fn access_key(k: AccessKeyMetadata) -> pb::AccessKeyMetadata {
    pb::AccessKeyMetadata {
        access_key_id: k.access_key_id,
        principal_arn: k.principal_arn,
        creation_date: k.creation_date,
    }
}

fn arn_request(principal_arn: String) -> PrincipalArnRequest {
    PrincipalArnRequest {
        principal_arn: opt(principal_arn),
    }
}

/// One audited call (see `GrpcKms::audited`): `$op` is the operation's wire name (its
/// audit eventName), `$method` the `Kms` method, then request -> shape and output -> answer.
macro_rules! call {
    ($self:ident, $request:ident, $op:literal, $method:ident,
     |$req:ident| $shape:expr, |$out:pat_param| $answer:expr) => {
        $self
            .0
            .audited(
                $op,
                $request,
                |$req| Ok($shape),
                |kms, caller, shape| async move { kms.$method(&caller, shape).await },
                |$out| $answer,
            )
            .await
    };
}

#[tonic::async_trait]
impl IamService for GrpcIam {
    async fn create_principal(
        &self,
        request: Request<pb::CreatePrincipalRequest>,
    ) -> Result<Response<pb::CreatePrincipalResponse>, Status> {
        call!(
            self,
            request,
            "CreatePrincipal",
            create_principal,
            |req| CreatePrincipalRequest {
                principal_name: opt(req.principal_name),
                service: req.service.and_then(opt),
            },
            |out| pb::CreatePrincipalResponse {
                principal: Some(principal(out.principal)),
            }
        )
    }

    async fn list_principals(
        &self,
        request: Request<pb::ListPrincipalsRequest>,
    ) -> Result<Response<pb::ListPrincipalsResponse>, Status> {
        call!(
            self,
            request,
            "ListPrincipals",
            list_principals,
            |req| ListPrincipalsRequest {
                limit: req.limit.map(i64::from),
                marker: req.marker.and_then(opt),
            },
            |out| pb::ListPrincipalsResponse {
                principals: out.principals.into_iter().map(principal).collect(),
                next_marker: out.next_marker,
                truncated: out.truncated,
            }
        )
    }

    async fn get_principal(
        &self,
        request: Request<pb::GetPrincipalRequest>,
    ) -> Result<Response<pb::GetPrincipalResponse>, Status> {
        call!(
            self,
            request,
            "GetPrincipal",
            get_principal,
            |req| arn_request(req.principal_arn),
            |out| pb::GetPrincipalResponse {
                principal: Some(principal(out.principal)),
            }
        )
    }

    async fn delete_principal(
        &self,
        request: Request<pb::DeletePrincipalRequest>,
    ) -> Result<Response<pb::DeletePrincipalResponse>, Status> {
        call!(
            self,
            request,
            "DeletePrincipal",
            delete_principal,
            |req| arn_request(req.principal_arn),
            |_out| pb::DeletePrincipalResponse {}
        )
    }

    async fn create_access_key(
        &self,
        request: Request<pb::CreateAccessKeyRequest>,
    ) -> Result<Response<pb::CreateAccessKeyResponse>, Status> {
        call!(
            self,
            request,
            "CreateAccessKey",
            create_access_key,
            |req| arn_request(req.principal_arn),
            |out| {
                let k = out.access_key;
                pb::CreateAccessKeyResponse {
                    access_key_id: k.access_key_id,
                    secret_access_key: k.secret_access_key.expose_secret().to_string(),
                    principal_arn: k.principal_arn,
                    creation_date: k.creation_date,
                }
            }
        )
    }

    async fn list_access_keys(
        &self,
        request: Request<pb::ListAccessKeysRequest>,
    ) -> Result<Response<pb::ListAccessKeysResponse>, Status> {
        call!(
            self,
            request,
            "ListAccessKeys",
            list_access_keys,
            |req| arn_request(req.principal_arn),
            |out| pb::ListAccessKeysResponse {
                access_keys: out.access_keys.into_iter().map(access_key).collect(),
            }
        )
    }

    async fn delete_access_key(
        &self,
        request: Request<pb::DeleteAccessKeyRequest>,
    ) -> Result<Response<pb::DeleteAccessKeyResponse>, Status> {
        call!(
            self,
            request,
            "DeleteAccessKey",
            delete_access_key,
            |req| DeleteAccessKeyRequest {
                access_key_id: opt(req.access_key_id),
                principal_arn: req.principal_arn.and_then(opt),
            },
            |_out| pb::DeleteAccessKeyResponse {}
        )
    }

    async fn put_principal_policy(
        &self,
        request: Request<pb::PutPrincipalPolicyRequest>,
    ) -> Result<Response<pb::PutPrincipalPolicyResponse>, Status> {
        call!(
            self,
            request,
            "PutPrincipalPolicy",
            put_principal_policy,
            |req| PutPrincipalPolicyRequest {
                principal_arn: opt(req.principal_arn),
                policy_name: opt(req.policy_name),
                policy_document: opt(req.policy_document),
            },
            |_out| pb::PutPrincipalPolicyResponse {}
        )
    }

    async fn get_principal_policy(
        &self,
        request: Request<pb::GetPrincipalPolicyRequest>,
    ) -> Result<Response<pb::GetPrincipalPolicyResponse>, Status> {
        call!(
            self,
            request,
            "GetPrincipalPolicy",
            get_principal_policy,
            |req| PrincipalPolicyRequest {
                principal_arn: opt(req.principal_arn),
                policy_name: opt(req.policy_name),
            },
            |out| pb::GetPrincipalPolicyResponse {
                principal_arn: out.principal_arn,
                policy_name: out.policy_name,
                policy_document: out.policy_document,
            }
        )
    }

    async fn list_principal_policies(
        &self,
        request: Request<pb::ListPrincipalPoliciesRequest>,
    ) -> Result<Response<pb::ListPrincipalPoliciesResponse>, Status> {
        call!(
            self,
            request,
            "ListPrincipalPolicies",
            list_principal_policies,
            |req| arn_request(req.principal_arn),
            |out| pb::ListPrincipalPoliciesResponse {
                policy_names: out.policy_names,
            }
        )
    }

    async fn delete_principal_policy(
        &self,
        request: Request<pb::DeletePrincipalPolicyRequest>,
    ) -> Result<Response<pb::DeletePrincipalPolicyResponse>, Status> {
        call!(
            self,
            request,
            "DeletePrincipalPolicy",
            delete_principal_policy,
            |req| PrincipalPolicyRequest {
                principal_arn: opt(req.principal_arn),
                policy_name: opt(req.policy_name),
            },
            |_out| pb::DeletePrincipalPolicyResponse {}
        )
    }

    async fn issue_client_certificate(
        &self,
        request: Request<pb::IssueClientCertificateRequest>,
    ) -> Result<Response<pb::IssueClientCertificateResponse>, Status> {
        call!(
            self,
            request,
            "IssueClientCertificate",
            issue_client_certificate,
            |req| IssueClientCertificateRequest {
                principal_arn: opt(req.principal_arn),
                validity_days: req.validity_days.map(i64::from),
            },
            |out| pb::IssueClientCertificateResponse {
                principal_arn: out.principal_arn,
                certificate_pem: out.certificate_pem,
                private_key_pem: out.private_key_pem.expose_secret().to_string(),
                ca_certificate_pem: out.ca_certificate_pem,
                not_after: out.not_after,
            }
        )
    }
}
