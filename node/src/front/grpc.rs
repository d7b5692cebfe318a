//! The gRPC adapter (`proto/kms/v1`, package `keyraft.kms.v1`) over the transport-independent
//! [`Kms`] operations.
//!
//! # Layout
//!
//! ```text
//! TCP --mTLS (client cert required, chains to the CA)--> tonic Server
//!   KmsService::<op>(Request<pb::XRequest>)
//!     caller_of(request)        leaf cert -> clientAuth EKU + one IAM ARN URI SAN -> Caller
//!     convert::x_request(pb)    proto -> shapes (serde AWS shapes; empty = absent)
//!     Kms::<op>(&caller, req)   validate -> resolve -> authorize -> act
//!     Kms::audit_call           the AWS JSON form of request and response -> one audit
//!                               event, committed before the answer (GrpcKms::audited)
//!     convert::x_response(out)  shapes -> proto; metadata x-amzn-requestid on every answer
//!   KmsError --From--> tonic::Status { code, message, metadata x-kms-error-type: <__type> }
//! ```
//!
//! Proto3 cannot tell an empty string, map or list from an absent one; this adapter maps
//! empty to absent (`None`) so that a missing required member gets AWS's
//! "Value null at 'keyId'" `ValidationException`, exactly as on the JSON endpoint. Blobs that
//! are required (plaintext, ciphertext) are always passed, so an empty one meets the length
//! constraint instead.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context as _;
use futures::StreamExt as _;
use tokio::net::TcpListener;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic::{Request, Response, Status};
use tracing::Instrument as _;

use super::audit::{certificate_fingerprint, identity_of, CallInfo};
use super::authz::Caller;
use super::errors::KmsError;
use super::ops::Kms;

/// Messages and the server trait generated from `proto/kms/v1/kms.proto`.
#[allow(missing_docs, clippy::all)]
pub mod pb {
    tonic::include_proto!("keyraft.kms.v1");
}

use pb::kms_server::{Kms as KmsService, KmsServer};

// The identity management service (`proto/kms/v1/iam.proto`): a child module, so it shares
// this adapter's caller authentication.
#[path = "grpc_iam.rs"]
mod iam;
pub use self::iam::GrpcIam;

// The audit service (`proto/kms/v1/audit.proto`): a child module for the same reason.
#[path = "grpc_audit.rs"]
mod audit_service;
pub use self::audit_service::GrpcAudit;

/// The metadata key carrying the AWS error `__type` on every failed call.
pub const ERROR_TYPE_METADATA_KEY: &str = "x-kms-error-type";

/// The metadata key carrying the request id (as the JSON API's `x-amzn-RequestId`), on
/// answers and errors alike; the audit event's `requestID`.
pub const REQUEST_ID_METADATA_KEY: &str = "x-amzn-requestid";

/// Most items one batch call may carry.
pub const MAX_BATCH_ITEMS: usize = 1000;

/// How many items of one batch run at once.
const BATCH_CONCURRENCY: usize = 32;

/// Largest message accepted or sent: a full batch of 1000 items of 4 KiB plaintext plus
/// context and framing fits well within this.
const MAX_MESSAGE: usize = 16 * 1024 * 1024;

impl From<KmsError> for Status {
    fn from(e: KmsError) -> Self {
        use tonic::Code;
        use KmsError::*;
        let code = match &e {
            Validation(_)
            | Serialization(_)
            | InvalidAliasName(_)
            | InvalidArn(_)
            | InvalidMarker(_)
            | InvalidCiphertext(_)
            | IncorrectKey(_)
            | InvalidKeyUsage(_)
            | InvalidGrantToken(_)
            | InvalidGrantId(_)
            | Tag(_)
            | MalformedPolicyDocument(_)
            | KmsInvalidSignature(_)
            | KmsInvalidMac(_)
            | InvalidImportToken(_)
            | ExpiredImportToken(_)
            | IncorrectKeyMaterial(_) => Code::InvalidArgument,
            NotFound(_) => Code::NotFound,
            AlreadyExists(_) => Code::AlreadyExists,
            Disabled(_) | InvalidState(_) | DryRunOperation(_) => Code::FailedPrecondition,
            Conflict(_) => Code::Aborted,
            LimitExceeded(_) | RequestTooLarge(_) => Code::ResourceExhausted,
            NotAuthorized(_) | AccessDenied(_) => Code::PermissionDenied,
            UnrecognizedClient(_)
            | InvalidSignature(_)
            | IncompleteSignature(_)
            | MissingAuthenticationToken(_) => Code::Unauthenticated,
            UnknownOperation(_) | UnsupportedOperation(_) => Code::Unimplemented,
            // Retryable: clients back off and may fail over to another front.
            DependencyTimeout(_) => Code::Unavailable,
            Internal(_) => Code::Internal,
        };
        let mut status = Status::new(code, e.to_string());
        status.metadata_mut().insert(
            ERROR_TYPE_METADATA_KEY,
            tonic::metadata::MetadataValue::from_static(e.aws_type()),
        );
        status
    }
}

/// The server TLS configuration of the gRPC endpoint: this front's identity, and a client
/// certificate chaining to the deployment CA is required on every connection.
pub fn server_tls(files: &raft::TlsFiles) -> anyhow::Result<ServerTlsConfig> {
    let read =
        |p: &std::path::Path| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
    Ok(ServerTlsConfig::new()
        .identity(Identity::from_pem(read(&files.cert)?, read(&files.key)?))
        .client_ca_root(Certificate::from_pem(read(&files.ca)?))
        .client_auth_optional(false))
}

/// Serves the gRPC KMS API on `listener` until `shutdown` resolves. mTLS is always required.
pub async fn serve_grpc(
    kms: Arc<Kms>,
    listener: TcpListener,
    tls: ServerTlsConfig,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let tls = tls.client_auth_optional(false);
    Server::builder()
        .tls_config(tls)
        .context("gRPC TLS configuration")?
        .add_service(service(kms.clone()))
        .add_service(iam::service(kms.clone()))
        .add_service(audit_service::service(kms))
        .serve_with_incoming_shutdown(raft::tls::nodelay_incoming(listener), shutdown)
        .await
        .context("serving gRPC")
}

/// The tonic service, for embedding in another server (tests, a combined router).
pub fn service(kms: Arc<Kms>) -> KmsServer<GrpcKms> {
    KmsServer::new(GrpcKms { kms })
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE)
}

/// Implements the generated service trait over [`Kms`].
pub struct GrpcKms {
    kms: Arc<Kms>,
}

fn unauthenticated(message: &str) -> Status {
    Status::from(KmsError::UnrecognizedClient(message.to_owned()))
}

/// The caller named by the request's client certificate, with its address.
fn caller_of<T>(request: &Request<T>) -> Result<Caller, Status> {
    let certs = request
        .peer_certs()
        .ok_or_else(|| unauthenticated("A client certificate is required."))?;
    let leaf = certs
        .first()
        .ok_or_else(|| unauthenticated("A client certificate is required."))?;
    let mut caller = caller_from_cert(leaf.as_ref())?;
    caller.source_ip = request.remote_addr().map(|a| a.ip());
    Ok(caller)
}

/// Puts the request id on an answer's or an error's metadata.
fn tag_request_id(metadata: &mut tonic::metadata::MetadataMap, request_id: &str) {
    if let Ok(v) = tonic::metadata::MetadataValue::try_from(request_id) {
        metadata.insert(REQUEST_ID_METADATA_KEY, v);
    }
}

fn status_with_id(e: impl Into<Status>, request_id: &str) -> Status {
    let mut status: Status = e.into();
    tag_request_id(status.metadata_mut(), request_id);
    status
}

/// What a call's transport says about it, read before the request is consumed.
#[derive(Clone)]
struct Transport {
    request_id: String,
    source_ip: Option<std::net::IpAddr>,
    user_agent: Option<String>,
    fingerprint: Option<String>,
    on_behalf_of: Option<Result<String, ()>>,
}

impl Transport {
    /// The audit facts of one call by `caller` with this request.
    fn call<'a>(
        &'a self,
        operation: &'a str,
        caller: &Caller,
        request: &'a serde_json::Value,
    ) -> CallInfo<'a> {
        CallInfo {
            operation,
            request_id: &self.request_id,
            identity: identity_of(caller, None, self.fingerprint.clone()),
            source_ip: self.source_ip,
            user_agent: self.user_agent.clone(),
            // tonic does not expose the negotiated protocol and suite.
            tls: None,
            request,
        }
    }

    fn of<T>(request: &Request<T>) -> Transport {
        Transport {
            request_id: uuid::Uuid::new_v4().to_string(),
            source_ip: request.remote_addr().map(|a| a.ip()),
            user_agent: request
                .metadata()
                .get("user-agent")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            fingerprint: request
                .peer_certs()
                .and_then(|c| c.first().map(|leaf| certificate_fingerprint(leaf.as_ref()))),
            on_behalf_of: request
                .metadata()
                .get(super::aws_json::ON_BEHALF_OF_HEADER)
                .map(|v| v.to_str().map(str::to_owned).map_err(|_| ())),
        }
    }
}

impl GrpcKms {
    /// One audited call: authenticates (certificate, then the effective caller), runs `run`
    /// over the request shape, records the call's audit event — with the request and
    /// response in their AWS JSON form, which keystore redacts — and answers only once it is
    /// recorded (sync mode). A certificate that names no principal is refused unaudited.
    async fn audited<T, S, R, O, F, Fut>(
        &self,
        operation: &'static str,
        request: Request<T>,
        to_shape: impl FnOnce(T) -> Result<S, KmsError>,
        run: F,
        to_response: impl FnOnce(R) -> O,
    ) -> Result<Response<O>, Status>
    where
        S: serde::Serialize,
        R: serde::Serialize,
        F: FnOnce(Arc<Kms>, Caller, S) -> Fut,
        Fut: Future<Output = Result<R, KmsError>>,
    {
        let transport = Transport::of(&request);
        let request_id = transport.request_id.clone();
        let cert_caller = caller_of(&request).map_err(|s| status_with_id(s, &request_id))?;
        let span = request_span(operation, &cert_caller);
        let shape = to_shape(request.into_inner());
        let request_json = shape
            .as_ref()
            .ok()
            .and_then(|s| serde_json::to_value(s).ok())
            .unwrap_or(serde_json::Value::Null);
        let kms = self.kms.clone();
        let (caller, outcome) = async {
            let on_behalf_of = match transport.on_behalf_of.clone() {
                None => None,
                Some(Ok(v)) => Some(v),
                Some(Err(())) => {
                    let e =
                        KmsError::Validation("the on-behalf-of metadata is not valid ASCII".into());
                    return (cert_caller, Err(e));
                }
            };
            let caller = match kms
                .effective_caller(cert_caller.clone(), on_behalf_of.as_deref())
                .await
            {
                Ok(c) => c,
                Err(e) => return (cert_caller, Err(e)),
            };
            let outcome = match shape {
                Ok(shape) => run(kms.clone(), caller.clone(), shape).await,
                Err(e) => Err(e),
            };
            (caller, outcome)
        }
        .instrument(span.clone())
        .await;
        let response_json = match &outcome {
            Ok(out) => Ok(serde_json::to_value(out).unwrap_or(serde_json::Value::Null)),
            Err(e) => Err(e),
        };
        self.kms
            .audit_call(
                transport.call(operation, &caller, &request_json),
                response_json.as_ref().map_err(|e| *e),
            )
            .instrument(span)
            .await
            .map_err(|e| status_with_id(e, &request_id))?;
        match outcome {
            Ok(out) => {
                let mut response = Response::new(to_response(out));
                tag_request_id(response.metadata_mut(), &request_id);
                Ok(response)
            }
            Err(e) => Err(status_with_id(e, &request_id)),
        }
    }

    /// The transport facts and certificate caller of a batch call.
    fn batch_caller<T>(&self, request: &Request<T>) -> Result<(Transport, Caller), Status> {
        let transport = Transport::of(request);
        let caller = caller_of(request).map_err(|s| status_with_id(s, &transport.request_id))?;
        Ok((transport, caller))
    }

    /// A batch call: each item is one `operation` call with its own audit event (all sharing
    /// the batch's request id); an item whose event cannot be recorded fails on its own. A
    /// batch refused as a whole (caller, size) gets one event with the error.
    async fn audited_batch<S, R, O, F, Fut>(
        &self,
        operation: &'static str,
        transport: Transport,
        cert_caller: Caller,
        shapes: Result<Vec<S>, KmsError>,
        run: F,
        to_item: impl Fn(Result<R, KmsError>) -> O,
    ) -> Result<Vec<O>, Status>
    where
        S: serde::Serialize,
        R: serde::Serialize,
        F: Fn(Arc<Kms>, Caller, S) -> Fut,
        Fut: Future<Output = Result<R, KmsError>>,
    {
        let request_id = transport.request_id.clone();
        let span = request_span(operation, &cert_caller);
        let kms = self.kms.clone();
        let prepared = async {
            let on_behalf_of = match transport.on_behalf_of.clone() {
                None => None,
                Some(Ok(v)) => Some(v),
                Some(Err(())) => {
                    let e =
                        KmsError::Validation("the on-behalf-of metadata is not valid ASCII".into());
                    return Err((cert_caller, e));
                }
            };
            let caller = match kms
                .effective_caller(cert_caller.clone(), on_behalf_of.as_deref())
                .await
            {
                Ok(c) => c,
                Err(e) => return Err((cert_caller, e)),
            };
            match shapes {
                Ok(items) => Ok((caller, items)),
                Err(e) => Err((caller, e)),
            }
        }
        .instrument(span.clone())
        .await;
        let (caller, items) = match prepared {
            Ok(p) => p,
            Err((caller, e)) => {
                let null = serde_json::Value::Null;
                kms.audit_call(transport.call(operation, &caller, &null), Err(&e))
                    .instrument(span)
                    .await
                    .map_err(|e| status_with_id(e, &request_id))?;
                return Err(status_with_id(e, &request_id));
            }
        };
        let (kms, caller, run, transport, to_item) = (&kms, &caller, &run, &transport, &to_item);
        let results = futures::stream::iter(items)
            .map(|shape| async move {
                let request = serde_json::to_value(&shape).unwrap_or(serde_json::Value::Null);
                let outcome = run(kms.clone(), caller.clone(), shape).await;
                let response = match &outcome {
                    Ok(out) => Ok(serde_json::to_value(out).unwrap_or(serde_json::Value::Null)),
                    Err(e) => Err(e),
                };
                let recorded = kms
                    .audit_call(
                        transport.call(operation, caller, &request),
                        response.as_ref().map_err(|e| *e),
                    )
                    .await;
                match recorded {
                    Ok(()) => to_item(outcome),
                    Err(e) => to_item(Err(e)),
                }
            })
            .buffered(BATCH_CONCURRENCY)
            .collect()
            .instrument(span)
            .await;
        Ok(results)
    }
}

/// Authenticates a client certificate (DER): it must carry the clientAuth EKU and exactly one
/// URI SAN holding an IAM principal ARN (`arn:aws:iam::111122223333:role/App`). Chain
/// validation against the CA is rustls's job and has happened before this is called.
pub fn caller_from_cert(der: &[u8]) -> Result<Caller, Status> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|_| unauthenticated("The client certificate cannot be parsed."))?;
    let client_auth = matches!(cert.extended_key_usage(), Ok(Some(eku)) if eku.value.client_auth);
    if !client_auth {
        return Err(unauthenticated(
            "The client certificate is not valid for client authentication (no clientAuth extended key usage).",
        ));
    }
    let san = match cert.subject_alternative_name() {
        Ok(Some(san)) => san,
        _ => {
            return Err(unauthenticated(
                "The client certificate names no principal (no URI SAN).",
            ))
        }
    };
    let mut callers = san.value.general_names.iter().filter_map(|n| match n {
        GeneralName::URI(uri) => Caller::from_principal_arn(uri),
        _ => None,
    });
    match (callers.next(), callers.next()) {
        (Some(caller), None) => Ok(caller),
        (None, _) => Err(unauthenticated(
            "The client certificate names no principal (no URI SAN holding an IAM ARN).",
        )),
        (Some(_), Some(_)) => Err(unauthenticated(
            "The client certificate names more than one principal.",
        )),
    }
}

/// One span per call: the operation and who called, never a request member.
fn request_span(op: &'static str, caller: &Caller) -> tracing::Span {
    tracing::debug_span!("grpc", op, principal = %caller.principal_arn)
}

// `async_trait` rewrites `async fn`s it can see, so the macro emits the whole impl (with the
// attribute) rather than methods inside an annotated impl.
macro_rules! kms_service {
    (
        unary { $($method:ident $op:literal ($req:ident -> $resp:ident) => $to_req:path, $to_resp:path;)* }
        other { $($other:tt)* }
    ) => {
        #[tonic::async_trait]
        impl KmsService for GrpcKms {
            $(
                async fn $method(&self, request: Request<pb::$req>) -> Result<Response<pb::$resp>, Status> {
                    self.audited(
                        $op,
                        request,
                        |r| Ok($to_req(r)),
                        |kms, caller, req| async move { kms.$method(&caller, req).await },
                        $to_resp,
                    )
                    .await
                }
            )*
            $($other)*
        }
    };
}

kms_service! {
    unary {
        create_key "CreateKey"(CreateKeyRequest -> CreateKeyResponse) => convert::create_key, convert::create_key_out;
        describe_key "DescribeKey"(DescribeKeyRequest -> DescribeKeyResponse) => convert::describe_key, convert::describe_key_out;
        list_keys "ListKeys"(ListKeysRequest -> ListKeysResponse) => convert::list_keys, convert::list_keys_out;
        enable_key "EnableKey"(EnableKeyRequest -> EnableKeyResponse) => convert::enable_key, convert::empty;
        disable_key "DisableKey"(DisableKeyRequest -> DisableKeyResponse) => convert::disable_key, convert::empty;
        update_key_description "UpdateKeyDescription"(UpdateKeyDescriptionRequest -> UpdateKeyDescriptionResponse)
            => convert::update_key_description, convert::empty;
        schedule_key_deletion "ScheduleKeyDeletion"(ScheduleKeyDeletionRequest -> ScheduleKeyDeletionResponse)
            => convert::schedule_key_deletion, convert::schedule_key_deletion_out;
        cancel_key_deletion "CancelKeyDeletion"(CancelKeyDeletionRequest -> CancelKeyDeletionResponse)
            => convert::cancel_key_deletion, convert::cancel_key_deletion_out;
        create_alias "CreateAlias"(CreateAliasRequest -> CreateAliasResponse) => convert::create_alias, convert::empty;
        update_alias "UpdateAlias"(UpdateAliasRequest -> UpdateAliasResponse) => convert::update_alias, convert::empty;
        delete_alias "DeleteAlias"(DeleteAliasRequest -> DeleteAliasResponse) => convert::delete_alias, convert::empty;
        list_aliases "ListAliases"(ListAliasesRequest -> ListAliasesResponse) => convert::list_aliases, convert::list_aliases_out;
        tag_resource "TagResource"(TagResourceRequest -> TagResourceResponse) => convert::tag_resource, convert::empty;
        untag_resource "UntagResource"(UntagResourceRequest -> UntagResourceResponse) => convert::untag_resource, convert::empty;
        list_resource_tags "ListResourceTags"(ListResourceTagsRequest -> ListResourceTagsResponse)
            => convert::list_resource_tags, convert::list_resource_tags_out;
        encrypt "Encrypt"(EncryptRequest -> EncryptResponse) => convert::encrypt, convert::encrypt_out;
        decrypt "Decrypt"(DecryptRequest -> DecryptResponse) => convert::decrypt, convert::decrypt_out;
        re_encrypt "ReEncrypt"(ReEncryptRequest -> ReEncryptResponse) => convert::re_encrypt, convert::re_encrypt_out;
        generate_data_key "GenerateDataKey"(GenerateDataKeyRequest -> GenerateDataKeyResponse)
            => convert::generate_data_key, convert::generate_data_key_out;
        generate_data_key_without_plaintext "GenerateDataKeyWithoutPlaintext"(
            GenerateDataKeyWithoutPlaintextRequest -> GenerateDataKeyWithoutPlaintextResponse)
            => convert::generate_data_key_without_plaintext, convert::generate_data_key_without_plaintext_out;
        generate_random "GenerateRandom"(GenerateRandomRequest -> GenerateRandomResponse)
            => convert::generate_random, convert::generate_random_out;
        get_public_key "GetPublicKey"(GetPublicKeyRequest -> GetPublicKeyResponse)
            => convert::get_public_key, convert::get_public_key_out;
        sign "Sign"(SignRequest -> SignResponse) => convert::sign, convert::sign_out;
        verify "Verify"(VerifyRequest -> VerifyResponse) => convert::verify, convert::verify_out;
        generate_mac "GenerateMac"(GenerateMacRequest -> GenerateMacResponse) => convert::generate_mac, convert::generate_mac_out;
        verify_mac "VerifyMac"(VerifyMacRequest -> VerifyMacResponse) => convert::verify_mac, convert::verify_mac_out;
        derive_shared_secret "DeriveSharedSecret"(DeriveSharedSecretRequest -> DeriveSharedSecretResponse)
            => convert::derive_shared_secret, convert::derive_shared_secret_out;
        generate_data_key_pair "GenerateDataKeyPair"(GenerateDataKeyPairRequest -> GenerateDataKeyPairResponse)
            => convert::generate_data_key_pair, convert::generate_data_key_pair_out;
        generate_data_key_pair_without_plaintext "GenerateDataKeyPairWithoutPlaintext"(
            GenerateDataKeyPairWithoutPlaintextRequest -> GenerateDataKeyPairWithoutPlaintextResponse)
            => convert::generate_data_key_pair_without_plaintext,
               convert::generate_data_key_pair_without_plaintext_out;
        enable_key_rotation "EnableKeyRotation"(EnableKeyRotationRequest -> EnableKeyRotationResponse)
            => convert::enable_key_rotation, convert::empty;
        disable_key_rotation "DisableKeyRotation"(DisableKeyRotationRequest -> DisableKeyRotationResponse)
            => convert::disable_key_rotation, convert::empty;
        get_key_rotation_status "GetKeyRotationStatus"(GetKeyRotationStatusRequest -> GetKeyRotationStatusResponse)
            => convert::get_key_rotation_status, convert::get_key_rotation_status_out;
        rotate_key_on_demand "RotateKeyOnDemand"(RotateKeyOnDemandRequest -> RotateKeyOnDemandResponse)
            => convert::rotate_key_on_demand, convert::rotate_key_on_demand_out;
        list_key_rotations "ListKeyRotations"(ListKeyRotationsRequest -> ListKeyRotationsResponse)
            => convert::list_key_rotations, convert::list_key_rotations_out;
        delete_imported_key_material "DeleteImportedKeyMaterial"(DeleteImportedKeyMaterialRequest -> DeleteImportedKeyMaterialResponse)
            => convert::delete_imported_key_material, convert::empty;
        put_key_policy "PutKeyPolicy"(PutKeyPolicyRequest -> PutKeyPolicyResponse) => convert::put_key_policy, convert::empty;
        get_key_policy "GetKeyPolicy"(GetKeyPolicyRequest -> GetKeyPolicyResponse)
            => convert::get_key_policy, convert::get_key_policy_out;
        list_key_policies "ListKeyPolicies"(ListKeyPoliciesRequest -> ListKeyPoliciesResponse)
            => convert::list_key_policies, convert::list_key_policies_out;
        create_grant "CreateGrant"(CreateGrantRequest -> CreateGrantResponse) => convert::create_grant, convert::create_grant_out;
        list_grants "ListGrants"(ListGrantsRequest -> ListGrantsResponse) => convert::list_grants, convert::list_grants_out;
        list_retirable_grants "ListRetirableGrants"(ListRetirableGrantsRequest -> ListGrantsResponse)
            => convert::list_retirable_grants, convert::list_grants_out;
        retire_grant "RetireGrant"(RetireGrantRequest -> RetireGrantResponse) => convert::retire_grant, convert::empty;
        revoke_grant "RevokeGrant"(RevokeGrantRequest -> RevokeGrantResponse) => convert::revoke_grant, convert::empty;
        get_key_last_usage "GetKeyLastUsage"(GetKeyLastUsageRequest -> GetKeyLastUsageResponse)
            => convert::get_key_last_usage, convert::get_key_last_usage_out;
        replicate_key "ReplicateKey"(ReplicateKeyRequest -> ReplicateKeyResponse)
            => convert::replicate_key, convert::replicate_key_out;
        update_primary_region "UpdatePrimaryRegion"(UpdatePrimaryRegionRequest -> UpdatePrimaryRegionResponse)
            => convert::update_primary_region, convert::empty;
    }
    other {
    // The import shapes live in a private child module of `ops` (not re-exported), so this
    // adapter cannot name them: the request is built through their serde (AWS) form, the
    // response read by field. Same `Kms` operations as the JSON endpoint.
    async fn get_parameters_for_import(
        &self,
        request: Request<pb::GetParametersForImportRequest>,
    ) -> Result<Response<pb::GetParametersForImportResponse>, Status> {
        self.audited(
            "GetParametersForImport",
            request,
            convert::get_parameters_for_import,
            |kms, caller, req| async move { kms.get_parameters_for_import(&caller, req).await },
            |out| pb::GetParametersForImportResponse {
                key_id: out.key_id.unwrap_or_default(),
                import_token: out.import_token.map(|b| b.0).unwrap_or_default(),
                public_key: out.public_key.map(|b| b.0).unwrap_or_default(),
                parameters_valid_to: out.parameters_valid_to,
            },
        )
        .await
    }

    async fn import_key_material(
        &self,
        request: Request<pb::ImportKeyMaterialRequest>,
    ) -> Result<Response<pb::ImportKeyMaterialResponse>, Status> {
        self.audited(
            "ImportKeyMaterial",
            request,
            convert::import_key_material,
            |kms, caller, req| async move { kms.import_key_material(&caller, req).await },
            convert::empty,
        )
        .await
    }

    async fn batch_encrypt(
        &self,
        request: Request<pb::BatchEncryptRequest>,
    ) -> Result<Response<pb::BatchEncryptResponse>, Status> {
        let (transport, caller) = self.batch_caller(&request)?;
        let request_id = transport.request_id.clone();
        let items = request.into_inner().items;
        let shapes = check_batch(items.len()).map(|()| items.into_iter().map(convert::encrypt).collect());
        let results = self
            .audited_batch(
                "Encrypt",
                transport,
                caller,
                shapes,
                |kms, caller, req| async move { kms.encrypt(&caller, req).await },
                |r| pb::BatchEncryptResult {
                    result: Some(match r {
                        Ok(out) => pb::batch_encrypt_result::Result::Ok(convert::encrypt_out(out)),
                        Err(e) => pb::batch_encrypt_result::Result::Error(convert::item_error(&e)),
                    }),
                },
            )
            .await?;
        let mut response = Response::new(pb::BatchEncryptResponse { results });
        tag_request_id(response.metadata_mut(), &request_id);
        Ok(response)
    }

    async fn batch_decrypt(
        &self,
        request: Request<pb::BatchDecryptRequest>,
    ) -> Result<Response<pb::BatchDecryptResponse>, Status> {
        let (transport, caller) = self.batch_caller(&request)?;
        let request_id = transport.request_id.clone();
        let items = request.into_inner().items;
        let shapes = check_batch(items.len()).map(|()| items.into_iter().map(convert::decrypt).collect());
        let results = self
            .audited_batch(
                "Decrypt",
                transport,
                caller,
                shapes,
                |kms, caller, req| async move { kms.decrypt(&caller, req).await },
                |r| pb::BatchDecryptResult {
                    result: Some(match r {
                        Ok(out) => pb::batch_decrypt_result::Result::Ok(convert::decrypt_out(out)),
                        Err(e) => pb::batch_decrypt_result::Result::Error(convert::item_error(&e)),
                    }),
                },
            )
            .await?;
        let mut response = Response::new(pb::BatchDecryptResponse { results });
        tag_request_id(response.metadata_mut(), &request_id);
        Ok(response)
    }
    }
}

fn check_batch(n: usize) -> Result<(), KmsError> {
    if n == 0 || n > MAX_BATCH_ITEMS {
        return Err(KmsError::Validation(format!(
            "1 validation error detected: Value '{n}' at 'items' failed to satisfy constraint: \
             Member must have length between 1 and {MAX_BATCH_ITEMS}"
        )));
    }
    Ok(())
}

/// proto <-> AWS shapes. Requests: empty string/map/list -> `None`. Responses: `None` -> the
/// proto default (empty), except members that are `optional` in the proto.
mod convert {
    use std::collections::{BTreeMap, HashMap};

    use keystore::crypto::Secret;

    use super::pb;
    use crate::front::errors::KmsError;
    // The asymmetric and rotation shapes live next to their operations (re-exported by ops).
    use crate::front::ops as o;
    use crate::front::ops::multi_region as mr;
    use crate::front::shapes as s;

    fn text(v: String) -> Option<String> {
        (!v.is_empty()).then_some(v)
    }

    fn list<T>(v: Vec<T>) -> Option<Vec<T>> {
        (!v.is_empty()).then_some(v)
    }

    fn flag(v: bool) -> Option<bool> {
        v.then_some(true)
    }

    fn context(v: HashMap<String, String>) -> Option<BTreeMap<String, String>> {
        (!v.is_empty()).then(|| v.into_iter().collect())
    }

    // The proto message owns its plaintext buffer; moving it into a `Secret` means it is
    // zeroized when the operation is done with it.
    fn secret(v: Vec<u8>) -> Option<s::SecretBlob> {
        Some(s::SecretBlob(Secret::new(v)))
    }

    fn blob(v: Vec<u8>) -> Option<s::Blob> {
        Some(s::Blob(v))
    }

    // Copy out of the `Secret`: prost needs an owned `Vec`. The copy lives until tonic has
    // encoded the response; prost offers no zeroizing buffer.
    fn secret_out(v: Option<s::SecretBlob>) -> Vec<u8> {
        v.map(|b| b.expose_secret().to_vec()).unwrap_or_default()
    }

    fn blob_out(v: Option<s::Blob>) -> Vec<u8> {
        v.map(|b| b.0).unwrap_or_default()
    }

    fn tags(v: Vec<pb::Tag>) -> Option<Vec<s::Tag>> {
        list(
            v.into_iter()
                .map(|t| s::Tag {
                    tag_key: Some(t.tag_key),
                    tag_value: Some(t.tag_value),
                })
                .collect(),
        )
    }

    fn days(v: Option<u32>) -> Option<i32> {
        v.map(|d| i32::try_from(d).unwrap_or(i32::MAX))
    }

    pub fn item_error(e: &KmsError) -> pb::KmsError {
        pb::KmsError {
            error_type: e.aws_type().to_owned(),
            message: e.to_string(),
        }
    }

    pub fn empty<T: Default>(_: s::Empty) -> T {
        T::default()
    }

    pub fn key_metadata(k: s::KeyMetadata) -> pb::KeyMetadata {
        pb::KeyMetadata {
            aws_account_id: k.aws_account_id.unwrap_or_default(),
            key_id: k.key_id.unwrap_or_default(),
            arn: k.arn.unwrap_or_default(),
            creation_date: k.creation_date.unwrap_or_default(),
            enabled: k.enabled.unwrap_or_default(),
            description: k.description.unwrap_or_default(),
            key_usage: k.key_usage.unwrap_or_default(),
            key_state: k.key_state.unwrap_or_default(),
            deletion_date: k.deletion_date,
            valid_to: k.valid_to,
            origin: k.origin.unwrap_or_default(),
            key_manager: k.key_manager.unwrap_or_default(),
            customer_master_key_spec: k.customer_master_key_spec.unwrap_or_default(),
            key_spec: k.key_spec.unwrap_or_default(),
            encryption_algorithms: k.encryption_algorithms.unwrap_or_default(),
            signing_algorithms: k.signing_algorithms.unwrap_or_default(),
            mac_algorithms: k.mac_algorithms.unwrap_or_default(),
            key_agreement_algorithms: k.key_agreement_algorithms.unwrap_or_default(),
            multi_region: k.multi_region,
            multi_region_configuration: k.multi_region_configuration.map(|c| {
                let key = |k: s::MultiRegionKey| pb::MultiRegionKey {
                    arn: k.arn.unwrap_or_default(),
                    region: k.region.unwrap_or_default(),
                };
                pb::MultiRegionConfiguration {
                    multi_region_key_type: c.multi_region_key_type.unwrap_or_default(),
                    primary_key: c.primary_key.map(key),
                    replica_keys: c
                        .replica_keys
                        .unwrap_or_default()
                        .into_iter()
                        .map(key)
                        .collect(),
                }
            }),
            pending_deletion_window_in_days: days(k.pending_deletion_window_in_days),
            expiration_model: k.expiration_model,
            custom_key_store_id: None,
        }
    }

    pub fn create_key(r: pb::CreateKeyRequest) -> s::CreateKeyRequest {
        s::CreateKeyRequest {
            policy: r.policy,
            description: text(r.description),
            key_usage: r.key_usage,
            customer_master_key_spec: r.customer_master_key_spec,
            key_spec: r.key_spec,
            origin: r.origin,
            custom_key_store_id: None,
            bypass_policy_lockout_safety_check: flag(r.bypass_policy_lockout_safety_check),
            tags: tags(r.tags),
            multi_region: r.multi_region,
            xks_key_id: None,
        }
    }

    pub fn create_key_out(r: s::CreateKeyResponse) -> pb::CreateKeyResponse {
        pb::CreateKeyResponse {
            key_metadata: r.key_metadata.map(key_metadata),
        }
    }

    pub fn describe_key(r: pb::DescribeKeyRequest) -> s::DescribeKeyRequest {
        s::DescribeKeyRequest {
            key_id: text(r.key_id),
            grant_tokens: list(r.grant_tokens),
        }
    }

    pub fn describe_key_out(r: s::DescribeKeyResponse) -> pb::DescribeKeyResponse {
        pb::DescribeKeyResponse {
            key_metadata: r.key_metadata.map(key_metadata),
        }
    }

    pub fn list_keys(r: pb::ListKeysRequest) -> s::ListKeysRequest {
        s::ListKeysRequest {
            limit: r.limit.map(i64::from),
            marker: r.marker,
        }
    }

    pub fn list_keys_out(r: s::ListKeysResponse) -> pb::ListKeysResponse {
        pb::ListKeysResponse {
            keys: r
                .keys
                .into_iter()
                .map(|k| pb::KeyListEntry {
                    key_id: k.key_id.unwrap_or_default(),
                    key_arn: k.key_arn.unwrap_or_default(),
                })
                .collect(),
            next_marker: r.next_marker,
            truncated: r.truncated,
        }
    }

    pub fn enable_key(r: pb::EnableKeyRequest) -> s::KeyIdRequest {
        s::KeyIdRequest {
            key_id: text(r.key_id),
        }
    }

    pub fn disable_key(r: pb::DisableKeyRequest) -> s::KeyIdRequest {
        s::KeyIdRequest {
            key_id: text(r.key_id),
        }
    }

    pub fn cancel_key_deletion(r: pb::CancelKeyDeletionRequest) -> s::KeyIdRequest {
        s::KeyIdRequest {
            key_id: text(r.key_id),
        }
    }

    pub fn cancel_key_deletion_out(
        r: s::CancelKeyDeletionResponse,
    ) -> pb::CancelKeyDeletionResponse {
        pb::CancelKeyDeletionResponse {
            key_id: r.key_id.unwrap_or_default(),
        }
    }

    pub fn update_key_description(
        r: pb::UpdateKeyDescriptionRequest,
    ) -> s::UpdateKeyDescriptionRequest {
        // An empty description is a valid new description, not a missing one.
        s::UpdateKeyDescriptionRequest {
            key_id: text(r.key_id),
            description: Some(r.description),
        }
    }

    pub fn schedule_key_deletion(
        r: pb::ScheduleKeyDeletionRequest,
    ) -> s::ScheduleKeyDeletionRequest {
        s::ScheduleKeyDeletionRequest {
            key_id: text(r.key_id),
            pending_window_in_days: r.pending_window_in_days.map(i64::from),
        }
    }

    pub fn schedule_key_deletion_out(
        r: s::ScheduleKeyDeletionResponse,
    ) -> pb::ScheduleKeyDeletionResponse {
        pb::ScheduleKeyDeletionResponse {
            key_id: r.key_id.unwrap_or_default(),
            deletion_date: r.deletion_date,
            key_state: r.key_state.unwrap_or_default(),
            pending_window_in_days: days(r.pending_window_in_days),
        }
    }

    pub fn create_alias(r: pb::CreateAliasRequest) -> s::AliasRequest {
        s::AliasRequest {
            alias_name: text(r.alias_name),
            target_key_id: text(r.target_key_id),
        }
    }

    pub fn update_alias(r: pb::UpdateAliasRequest) -> s::AliasRequest {
        s::AliasRequest {
            alias_name: text(r.alias_name),
            target_key_id: text(r.target_key_id),
        }
    }

    pub fn delete_alias(r: pb::DeleteAliasRequest) -> s::DeleteAliasRequest {
        s::DeleteAliasRequest {
            alias_name: text(r.alias_name),
        }
    }

    pub fn list_aliases(r: pb::ListAliasesRequest) -> s::ListAliasesRequest {
        s::ListAliasesRequest {
            key_id: r.key_id,
            limit: r.limit.map(i64::from),
            marker: r.marker,
        }
    }

    pub fn list_aliases_out(r: s::ListAliasesResponse) -> pb::ListAliasesResponse {
        pb::ListAliasesResponse {
            aliases: r
                .aliases
                .into_iter()
                .map(|a| pb::AliasListEntry {
                    alias_name: a.alias_name.unwrap_or_default(),
                    alias_arn: a.alias_arn.unwrap_or_default(),
                    target_key_id: a.target_key_id,
                    creation_date: a.creation_date,
                    last_updated_date: a.last_updated_date,
                })
                .collect(),
            next_marker: r.next_marker,
            truncated: r.truncated,
        }
    }

    pub fn tag_resource(r: pb::TagResourceRequest) -> s::TagResourceRequest {
        s::TagResourceRequest {
            key_id: text(r.key_id),
            tags: tags(r.tags),
        }
    }

    pub fn untag_resource(r: pb::UntagResourceRequest) -> s::UntagResourceRequest {
        s::UntagResourceRequest {
            key_id: text(r.key_id),
            tag_keys: list(r.tag_keys),
        }
    }

    pub fn list_resource_tags(r: pb::ListResourceTagsRequest) -> s::ListResourceTagsRequest {
        s::ListResourceTagsRequest {
            key_id: text(r.key_id),
            limit: r.limit.map(i64::from),
            marker: r.marker,
        }
    }

    pub fn list_resource_tags_out(r: s::ListResourceTagsResponse) -> pb::ListResourceTagsResponse {
        pb::ListResourceTagsResponse {
            tags: r
                .tags
                .into_iter()
                .map(|t| pb::Tag {
                    tag_key: t.tag_key.unwrap_or_default(),
                    tag_value: t.tag_value.unwrap_or_default(),
                })
                .collect(),
            next_marker: r.next_marker,
            truncated: r.truncated,
        }
    }

    pub fn encrypt(r: pb::EncryptRequest) -> s::EncryptRequest {
        s::EncryptRequest {
            key_id: text(r.key_id),
            plaintext: secret(r.plaintext),
            encryption_context: context(r.encryption_context),
            grant_tokens: list(r.grant_tokens),
            encryption_algorithm: r.encryption_algorithm,
            dry_run: flag(r.dry_run),
        }
    }

    pub fn encrypt_out(r: s::EncryptResponse) -> pb::EncryptResponse {
        pb::EncryptResponse {
            ciphertext_blob: blob_out(r.ciphertext_blob),
            key_id: r.key_id.unwrap_or_default(),
            encryption_algorithm: r.encryption_algorithm.unwrap_or_default(),
        }
    }

    pub fn decrypt(r: pb::DecryptRequest) -> s::DecryptRequest {
        s::DecryptRequest {
            ciphertext_blob: blob(r.ciphertext_blob),
            encryption_context: context(r.encryption_context),
            grant_tokens: list(r.grant_tokens),
            key_id: r.key_id,
            encryption_algorithm: r.encryption_algorithm,
            dry_run: flag(r.dry_run),
        }
    }

    pub fn decrypt_out(r: s::DecryptResponse) -> pb::DecryptResponse {
        pb::DecryptResponse {
            key_id: r.key_id.unwrap_or_default(),
            plaintext: secret_out(r.plaintext),
            encryption_algorithm: r.encryption_algorithm.unwrap_or_default(),
        }
    }

    pub fn re_encrypt(r: pb::ReEncryptRequest) -> s::ReEncryptRequest {
        s::ReEncryptRequest {
            ciphertext_blob: blob(r.ciphertext_blob),
            source_encryption_context: context(r.source_encryption_context),
            source_key_id: r.source_key_id,
            destination_key_id: text(r.destination_key_id),
            destination_encryption_context: context(r.destination_encryption_context),
            source_encryption_algorithm: r.source_encryption_algorithm,
            destination_encryption_algorithm: r.destination_encryption_algorithm,
            grant_tokens: list(r.grant_tokens),
            dry_run: flag(r.dry_run),
        }
    }

    pub fn re_encrypt_out(r: s::ReEncryptResponse) -> pb::ReEncryptResponse {
        pb::ReEncryptResponse {
            ciphertext_blob: blob_out(r.ciphertext_blob),
            source_key_id: r.source_key_id.unwrap_or_default(),
            key_id: r.key_id.unwrap_or_default(),
            source_encryption_algorithm: r.source_encryption_algorithm.unwrap_or_default(),
            destination_encryption_algorithm: r
                .destination_encryption_algorithm
                .unwrap_or_default(),
        }
    }

    pub fn generate_data_key(r: pb::GenerateDataKeyRequest) -> s::GenerateDataKeyRequest {
        s::GenerateDataKeyRequest {
            key_id: text(r.key_id),
            encryption_context: context(r.encryption_context),
            number_of_bytes: r.number_of_bytes.map(i64::from),
            key_spec: r.key_spec,
            grant_tokens: list(r.grant_tokens),
            dry_run: flag(r.dry_run),
        }
    }

    pub fn generate_data_key_out(r: s::GenerateDataKeyResponse) -> pb::GenerateDataKeyResponse {
        pb::GenerateDataKeyResponse {
            ciphertext_blob: blob_out(r.ciphertext_blob),
            plaintext: secret_out(r.plaintext),
            key_id: r.key_id.unwrap_or_default(),
        }
    }

    pub fn generate_data_key_without_plaintext(
        r: pb::GenerateDataKeyWithoutPlaintextRequest,
    ) -> s::GenerateDataKeyRequest {
        s::GenerateDataKeyRequest {
            key_id: text(r.key_id),
            encryption_context: context(r.encryption_context),
            number_of_bytes: r.number_of_bytes.map(i64::from),
            key_spec: r.key_spec,
            grant_tokens: list(r.grant_tokens),
            dry_run: flag(r.dry_run),
        }
    }

    pub fn generate_data_key_without_plaintext_out(
        r: s::GenerateDataKeyWithoutPlaintextResponse,
    ) -> pb::GenerateDataKeyWithoutPlaintextResponse {
        pb::GenerateDataKeyWithoutPlaintextResponse {
            ciphertext_blob: blob_out(r.ciphertext_blob),
            key_id: r.key_id.unwrap_or_default(),
        }
    }

    pub fn generate_random(r: pb::GenerateRandomRequest) -> s::GenerateRandomRequest {
        s::GenerateRandomRequest {
            number_of_bytes: r.number_of_bytes.map(i64::from),
            custom_key_store_id: r.custom_key_store_id,
        }
    }

    pub fn generate_random_out(r: s::GenerateRandomResponse) -> pb::GenerateRandomResponse {
        pb::GenerateRandomResponse {
            plaintext: secret_out(r.plaintext),
        }
    }

    pub fn get_public_key(r: pb::GetPublicKeyRequest) -> o::GetPublicKeyRequest {
        o::GetPublicKeyRequest {
            key_id: text(r.key_id),
            grant_tokens: list(r.grant_tokens),
        }
    }

    pub fn get_public_key_out(r: o::GetPublicKeyResponse) -> pb::GetPublicKeyResponse {
        pb::GetPublicKeyResponse {
            key_id: r.key_id.unwrap_or_default(),
            public_key: blob_out(r.public_key),
            customer_master_key_spec: r.customer_master_key_spec.unwrap_or_default(),
            key_spec: r.key_spec.unwrap_or_default(),
            key_usage: r.key_usage.unwrap_or_default(),
            encryption_algorithms: r.encryption_algorithms.unwrap_or_default(),
            signing_algorithms: r.signing_algorithms.unwrap_or_default(),
            key_agreement_algorithms: r.key_agreement_algorithms.unwrap_or_default(),
        }
    }

    pub fn sign(r: pb::SignRequest) -> o::SignRequest {
        o::SignRequest {
            key_id: text(r.key_id),
            message: secret(r.message),
            message_type: r.message_type,
            grant_tokens: list(r.grant_tokens),
            signing_algorithm: text(r.signing_algorithm),
            dry_run: flag(r.dry_run),
        }
    }

    pub fn sign_out(r: o::SignResponse) -> pb::SignResponse {
        pb::SignResponse {
            key_id: r.key_id.unwrap_or_default(),
            signature: blob_out(r.signature),
            signing_algorithm: r.signing_algorithm.unwrap_or_default(),
        }
    }

    pub fn verify(r: pb::VerifyRequest) -> o::VerifyRequest {
        o::VerifyRequest {
            key_id: text(r.key_id),
            message: secret(r.message),
            message_type: r.message_type,
            signature: blob(r.signature),
            signing_algorithm: text(r.signing_algorithm),
            grant_tokens: list(r.grant_tokens),
            dry_run: flag(r.dry_run),
        }
    }

    pub fn verify_out(r: o::VerifyResponse) -> pb::VerifyResponse {
        pb::VerifyResponse {
            key_id: r.key_id.unwrap_or_default(),
            signature_valid: r.signature_valid.unwrap_or_default(),
            signing_algorithm: r.signing_algorithm.unwrap_or_default(),
        }
    }

    pub fn generate_mac(r: pb::GenerateMacRequest) -> o::GenerateMacRequest {
        o::GenerateMacRequest {
            message: secret(r.message),
            key_id: text(r.key_id),
            mac_algorithm: text(r.mac_algorithm),
            grant_tokens: list(r.grant_tokens),
            dry_run: flag(r.dry_run),
        }
    }

    pub fn generate_mac_out(r: o::GenerateMacResponse) -> pb::GenerateMacResponse {
        pb::GenerateMacResponse {
            mac: blob_out(r.mac),
            mac_algorithm: r.mac_algorithm.unwrap_or_default(),
            key_id: r.key_id.unwrap_or_default(),
        }
    }

    pub fn verify_mac(r: pb::VerifyMacRequest) -> o::VerifyMacRequest {
        o::VerifyMacRequest {
            message: secret(r.message),
            key_id: text(r.key_id),
            mac_algorithm: text(r.mac_algorithm),
            mac: blob(r.mac),
            grant_tokens: list(r.grant_tokens),
            dry_run: flag(r.dry_run),
        }
    }

    pub fn verify_mac_out(r: o::VerifyMacResponse) -> pb::VerifyMacResponse {
        pb::VerifyMacResponse {
            key_id: r.key_id.unwrap_or_default(),
            mac_valid: r.mac_valid.unwrap_or_default(),
            mac_algorithm: r.mac_algorithm.unwrap_or_default(),
        }
    }

    pub fn derive_shared_secret(r: pb::DeriveSharedSecretRequest) -> o::DeriveSharedSecretRequest {
        o::DeriveSharedSecretRequest {
            key_id: text(r.key_id),
            key_agreement_algorithm: text(r.key_agreement_algorithm),
            public_key: blob(r.public_key),
            grant_tokens: list(r.grant_tokens),
            dry_run: flag(r.dry_run),
            recipient: None,
        }
    }

    pub fn derive_shared_secret_out(
        r: o::DeriveSharedSecretResponse,
    ) -> pb::DeriveSharedSecretResponse {
        pb::DeriveSharedSecretResponse {
            key_id: r.key_id.unwrap_or_default(),
            shared_secret: secret_out(r.shared_secret),
            ciphertext_for_recipient: r.ciphertext_for_recipient.map(|b| b.0),
            key_agreement_algorithm: r.key_agreement_algorithm.unwrap_or_default(),
            key_origin: r.key_origin.unwrap_or_default(),
        }
    }

    pub fn generate_data_key_pair(
        r: pb::GenerateDataKeyPairRequest,
    ) -> o::GenerateDataKeyPairRequest {
        o::GenerateDataKeyPairRequest {
            encryption_context: context(r.encryption_context),
            key_id: text(r.key_id),
            key_pair_spec: text(r.key_pair_spec),
            grant_tokens: list(r.grant_tokens),
            recipient: None,
            dry_run: flag(r.dry_run),
        }
    }

    pub fn generate_data_key_pair_out(
        r: o::GenerateDataKeyPairResponse,
    ) -> pb::GenerateDataKeyPairResponse {
        pb::GenerateDataKeyPairResponse {
            private_key_ciphertext_blob: blob_out(r.private_key_ciphertext_blob),
            private_key_plaintext: secret_out(r.private_key_plaintext),
            public_key: blob_out(r.public_key),
            key_id: r.key_id.unwrap_or_default(),
            key_pair_spec: r.key_pair_spec.unwrap_or_default(),
        }
    }

    pub fn generate_data_key_pair_without_plaintext(
        r: pb::GenerateDataKeyPairWithoutPlaintextRequest,
    ) -> o::GenerateDataKeyPairRequest {
        o::GenerateDataKeyPairRequest {
            encryption_context: context(r.encryption_context),
            key_id: text(r.key_id),
            key_pair_spec: text(r.key_pair_spec),
            grant_tokens: list(r.grant_tokens),
            recipient: None,
            dry_run: flag(r.dry_run),
        }
    }

    pub fn generate_data_key_pair_without_plaintext_out(
        r: o::GenerateDataKeyPairWithoutPlaintextResponse,
    ) -> pb::GenerateDataKeyPairWithoutPlaintextResponse {
        pb::GenerateDataKeyPairWithoutPlaintextResponse {
            private_key_ciphertext_blob: blob_out(r.private_key_ciphertext_blob),
            public_key: blob_out(r.public_key),
            key_id: r.key_id.unwrap_or_default(),
            key_pair_spec: r.key_pair_spec.unwrap_or_default(),
        }
    }

    // The AWS JSON form of a request shape, decoded into whichever shape the operation takes.
    fn via_json<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T, KmsError> {
        serde_json::from_value(v).map_err(|_| KmsError::internal())
    }

    fn b64(v: Vec<u8>) -> Option<String> {
        use base64::Engine as _;
        // Required blobs are always passed (as on the other operations): an empty one meets
        // the length constraint.
        Some(base64::engine::general_purpose::STANDARD.encode(v))
    }

    pub fn get_parameters_for_import<T: serde::de::DeserializeOwned>(
        r: pb::GetParametersForImportRequest,
    ) -> Result<T, KmsError> {
        via_json(serde_json::json!({
            "KeyId": text(r.key_id),
            "WrappingAlgorithm": text(r.wrapping_algorithm),
            "WrappingKeySpec": text(r.wrapping_key_spec),
        }))
    }

    pub fn import_key_material<T: serde::de::DeserializeOwned>(
        r: pb::ImportKeyMaterialRequest,
    ) -> Result<T, KmsError> {
        via_json(serde_json::json!({
            "KeyId": text(r.key_id),
            "ImportToken": b64(r.import_token),
            "EncryptedKeyMaterial": b64(r.encrypted_key_material),
            "ValidTo": r.valid_to,
            "ExpirationModel": r.expiration_model,
            "ImportType": r.import_type,
            "KeyMaterialDescription": r.key_material_description,
            "KeyMaterialId": r.key_material_id,
        }))
    }

    pub fn delete_imported_key_material(
        r: pb::DeleteImportedKeyMaterialRequest,
    ) -> s::KeyIdRequest {
        s::KeyIdRequest {
            key_id: text(r.key_id),
        }
    }

    pub fn enable_key_rotation(r: pb::EnableKeyRotationRequest) -> o::EnableKeyRotationRequest {
        o::EnableKeyRotationRequest {
            key_id: text(r.key_id),
            rotation_period_in_days: r.rotation_period_in_days.map(i64::from),
        }
    }

    pub fn disable_key_rotation(r: pb::DisableKeyRotationRequest) -> s::KeyIdRequest {
        s::KeyIdRequest {
            key_id: text(r.key_id),
        }
    }

    pub fn get_key_rotation_status(r: pb::GetKeyRotationStatusRequest) -> s::KeyIdRequest {
        s::KeyIdRequest {
            key_id: text(r.key_id),
        }
    }

    pub fn get_key_rotation_status_out(
        r: o::GetKeyRotationStatusResponse,
    ) -> pb::GetKeyRotationStatusResponse {
        pb::GetKeyRotationStatusResponse {
            key_rotation_enabled: r.key_rotation_enabled,
            key_id: r.key_id.unwrap_or_default(),
            rotation_period_in_days: days(r.rotation_period_in_days),
            next_rotation_date: r.next_rotation_date,
            on_demand_rotation_start_date: r.on_demand_rotation_start_date,
        }
    }

    pub fn get_key_last_usage(r: pb::GetKeyLastUsageRequest) -> o::GetKeyLastUsageRequest {
        o::GetKeyLastUsageRequest {
            key_id: text(r.key_id),
        }
    }

    pub fn get_key_last_usage_out(r: o::GetKeyLastUsageResponse) -> pb::GetKeyLastUsageResponse {
        pb::GetKeyLastUsageResponse {
            key_id: r.key_id.unwrap_or_default(),
            key_last_usage: r.key_last_usage.map(|u| pb::KeyLastUsageData {
                operation: u.operation.unwrap_or_default(),
                timestamp: u.timestamp.unwrap_or_default(),
                cloud_trail_event_id: u.cloud_trail_event_id.unwrap_or_default(),
                kms_request_id: u.kms_request_id.unwrap_or_default(),
            }),
            tracking_start_date: r.tracking_start_date,
            key_creation_date: r.key_creation_date.unwrap_or_default(),
        }
    }

    pub fn replicate_key(r: pb::ReplicateKeyRequest) -> mr::ReplicateKeyRequest {
        mr::ReplicateKeyRequest {
            key_id: text(r.key_id),
            replica_region: text(r.replica_region),
            policy: r.policy,
            bypass_policy_lockout_safety_check: flag(r.bypass_policy_lockout_safety_check),
            description: text(r.description),
            tags: tags(r.tags),
        }
    }

    pub fn replicate_key_out(r: mr::ReplicateKeyResponse) -> pb::ReplicateKeyResponse {
        pb::ReplicateKeyResponse {
            replica_key_metadata: r.replica_key_metadata.map(key_metadata),
            replica_policy: r.replica_policy.unwrap_or_default(),
            replica_tags: r
                .replica_tags
                .unwrap_or_default()
                .into_iter()
                .map(|t| pb::Tag {
                    tag_key: t.tag_key.unwrap_or_default(),
                    tag_value: t.tag_value.unwrap_or_default(),
                })
                .collect(),
        }
    }

    pub fn update_primary_region(
        r: pb::UpdatePrimaryRegionRequest,
    ) -> mr::UpdatePrimaryRegionRequest {
        mr::UpdatePrimaryRegionRequest {
            key_id: text(r.key_id),
            primary_region: text(r.primary_region),
        }
    }

    pub fn rotate_key_on_demand(r: pb::RotateKeyOnDemandRequest) -> s::KeyIdRequest {
        s::KeyIdRequest {
            key_id: text(r.key_id),
        }
    }

    pub fn rotate_key_on_demand_out(
        r: o::RotateKeyOnDemandResponse,
    ) -> pb::RotateKeyOnDemandResponse {
        pb::RotateKeyOnDemandResponse {
            key_id: r.key_id.unwrap_or_default(),
        }
    }

    pub fn list_key_rotations(r: pb::ListKeyRotationsRequest) -> o::ListKeyRotationsRequest {
        o::ListKeyRotationsRequest {
            key_id: text(r.key_id),
            limit: r.limit.map(i64::from),
            marker: r.marker,
            include_key_material: r.include_key_material,
        }
    }

    pub fn list_key_rotations_out(r: o::ListKeyRotationsResponse) -> pb::ListKeyRotationsResponse {
        pb::ListKeyRotationsResponse {
            rotations: r
                .rotations
                .into_iter()
                .map(|e| pb::RotationsListEntry {
                    key_id: e.key_id.unwrap_or_default(),
                    rotation_date: e.rotation_date,
                    rotation_type: e.rotation_type.unwrap_or_default(),
                    key_material_id: e.key_material_id,
                    key_material_state: e.key_material_state,
                })
                .collect(),
            next_marker: r.next_marker,
            truncated: r.truncated,
        }
    }

    pub fn put_key_policy(r: pb::PutKeyPolicyRequest) -> s::PutKeyPolicyRequest {
        s::PutKeyPolicyRequest {
            key_id: text(r.key_id),
            policy_name: r.policy_name,
            policy: text(r.policy),
            bypass_policy_lockout_safety_check: flag(r.bypass_policy_lockout_safety_check),
        }
    }

    pub fn get_key_policy(r: pb::GetKeyPolicyRequest) -> s::GetKeyPolicyRequest {
        s::GetKeyPolicyRequest {
            key_id: text(r.key_id),
            policy_name: r.policy_name,
        }
    }

    pub fn get_key_policy_out(r: s::GetKeyPolicyResponse) -> pb::GetKeyPolicyResponse {
        pb::GetKeyPolicyResponse {
            policy: r.policy.unwrap_or_default(),
            policy_name: r.policy_name.unwrap_or_default(),
        }
    }

    pub fn list_key_policies(r: pb::ListKeyPoliciesRequest) -> s::ListKeyPoliciesRequest {
        s::ListKeyPoliciesRequest {
            key_id: text(r.key_id),
            limit: r.limit.map(i64::from),
            marker: r.marker,
        }
    }

    pub fn list_key_policies_out(r: s::ListKeyPoliciesResponse) -> pb::ListKeyPoliciesResponse {
        pb::ListKeyPoliciesResponse {
            policy_names: r.policy_names.unwrap_or_default(),
            next_marker: r.next_marker,
            truncated: r.truncated.unwrap_or_default(),
        }
    }

    // A constraint is present when its map is non-empty or its `has_` flag says so: an empty
    // EncryptionContextEquals (no context allowed) differs from none.
    fn constraint(map: HashMap<String, String>, present: bool) -> Option<BTreeMap<String, String>> {
        (present || !map.is_empty()).then(|| map.into_iter().collect())
    }

    fn constraints(c: pb::GrantConstraints) -> s::GrantConstraintsShape {
        s::GrantConstraintsShape {
            encryption_context_subset: constraint(
                c.encryption_context_subset,
                c.has_encryption_context_subset,
            ),
            encryption_context_equals: constraint(
                c.encryption_context_equals,
                c.has_encryption_context_equals,
            ),
        }
    }

    fn constraints_out(c: s::GrantConstraintsShape) -> pb::GrantConstraints {
        pb::GrantConstraints {
            has_encryption_context_subset: c.encryption_context_subset.is_some(),
            has_encryption_context_equals: c.encryption_context_equals.is_some(),
            encryption_context_subset: c
                .encryption_context_subset
                .unwrap_or_default()
                .into_iter()
                .collect(),
            encryption_context_equals: c
                .encryption_context_equals
                .unwrap_or_default()
                .into_iter()
                .collect(),
        }
    }

    pub fn create_grant(r: pb::CreateGrantRequest) -> s::CreateGrantRequest {
        s::CreateGrantRequest {
            key_id: text(r.key_id),
            grantee_principal: text(r.grantee_principal),
            retiring_principal: r.retiring_principal,
            operations: list(r.operations),
            constraints: r.constraints.map(constraints),
            grant_tokens: list(r.grant_tokens),
            name: r.name,
            dry_run: flag(r.dry_run),
        }
    }

    pub fn create_grant_out(r: s::CreateGrantResponse) -> pb::CreateGrantResponse {
        pb::CreateGrantResponse {
            grant_token: r.grant_token.unwrap_or_default(),
            grant_id: r.grant_id.unwrap_or_default(),
        }
    }

    pub fn list_grants(r: pb::ListGrantsRequest) -> s::ListGrantsRequest {
        s::ListGrantsRequest {
            limit: r.limit.map(i64::from),
            marker: r.marker,
            key_id: text(r.key_id),
            grant_id: r.grant_id,
            grantee_principal: r.grantee_principal,
        }
    }

    pub fn list_retirable_grants(
        r: pb::ListRetirableGrantsRequest,
    ) -> s::ListRetirableGrantsRequest {
        s::ListRetirableGrantsRequest {
            limit: r.limit.map(i64::from),
            marker: r.marker,
            retiring_principal: text(r.retiring_principal),
        }
    }

    pub fn list_grants_out(r: s::ListGrantsResponse) -> pb::ListGrantsResponse {
        pb::ListGrantsResponse {
            grants: r
                .grants
                .into_iter()
                .map(|g| pb::GrantListEntry {
                    key_id: g.key_id,
                    grant_id: g.grant_id,
                    name: g.name,
                    creation_date: g.creation_date,
                    grantee_principal: g.grantee_principal,
                    retiring_principal: g.retiring_principal,
                    issuing_account: g.issuing_account,
                    operations: g.operations,
                    constraints: g.constraints.map(constraints_out),
                })
                .collect(),
            next_marker: r.next_marker,
            truncated: r.truncated,
        }
    }

    pub fn retire_grant(r: pb::RetireGrantRequest) -> s::RetireGrantRequest {
        s::RetireGrantRequest {
            grant_token: r.grant_token,
            key_id: r.key_id,
            grant_id: r.grant_id,
            dry_run: flag(r.dry_run),
        }
    }

    pub fn revoke_grant(r: pb::RevokeGrantRequest) -> s::RevokeGrantRequest {
        s::RevokeGrantRequest {
            key_id: text(r.key_id),
            grant_id: text(r.grant_id),
            dry_run: flag(r.dry_run),
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn grant_constraints_keep_an_empty_but_present_map_apart_from_an_absent_one() {
            let r = create_grant(pb::CreateGrantRequest {
                key_id: "k".into(),
                grantee_principal: "arn:aws:iam::111122223333:role/App".into(),
                operations: vec!["Decrypt".into()],
                constraints: Some(pb::GrantConstraints {
                    encryption_context_subset: [("team".to_string(), "blue".to_string())].into(),
                    has_encryption_context_equals: true,
                    ..Default::default()
                }),
                ..Default::default()
            });
            let c = r.constraints.clone().unwrap();
            assert_eq!(c.encryption_context_subset.unwrap()["team"], "blue");
            assert_eq!(c.encryption_context_equals, Some(BTreeMap::new()));
            assert_eq!(r.retiring_principal, None);
            assert_eq!(r.name, None);
            assert_eq!(r.grant_tokens, None);
            let none = create_grant(pb::CreateGrantRequest {
                constraints: Some(pb::GrantConstraints::default()),
                ..Default::default()
            });
            assert_eq!(none.key_id, None);
            assert_eq!(none.operations, None);
            let c = none.constraints.unwrap();
            assert_eq!(c.encryption_context_subset, None);
            assert_eq!(c.encryption_context_equals, None);
            // Out again: the presence flags say what the maps cannot.
            let out = constraints_out(s::GrantConstraintsShape {
                encryption_context_subset: None,
                encryption_context_equals: Some(BTreeMap::new()),
            });
            assert!(out.has_encryption_context_equals && !out.has_encryption_context_subset);
        }

        #[test]
        fn grant_listings_map_every_member() {
            let l = list_grants_out(s::ListGrantsResponse {
                grants: vec![s::GrantListEntry {
                    key_id: "arn".into(),
                    grant_id: "g".into(),
                    name: Some("n".into()),
                    creation_date: 1.5,
                    grantee_principal: "grantee".into(),
                    retiring_principal: None,
                    issuing_account: "arn:aws:iam::111122223333:root".into(),
                    operations: vec!["Encrypt".into()],
                    constraints: None,
                }],
                next_marker: Some("m".into()),
                truncated: true,
            });
            let g = &l.grants[0];
            assert_eq!((g.key_id.as_str(), g.grant_id.as_str()), ("arn", "g"));
            assert_eq!(g.name.as_deref(), Some("n"));
            assert_eq!(g.creation_date, 1.5);
            assert_eq!(g.retiring_principal, None);
            assert_eq!(g.operations, vec!["Encrypt"]);
            assert!(l.truncated && l.next_marker.as_deref() == Some("m"));
            let r = retire_grant(pb::RetireGrantRequest::default());
            assert_eq!((r.grant_token, r.key_id, r.grant_id), (None, None, None));
            let k = revoke_grant(pb::RevokeGrantRequest::default());
            assert_eq!((k.key_id, k.grant_id), (None, None));
            let p = put_key_policy(pb::PutKeyPolicyRequest::default());
            assert_eq!(
                (p.policy, p.bypass_policy_lockout_safety_check),
                (None, None)
            );
        }

        #[test]
        fn import_requests_take_the_aws_json_form_with_empty_as_absent() {
            let v: serde_json::Value = import_key_material(pb::ImportKeyMaterialRequest {
                key_id: "k".into(),
                import_token: vec![1, 2, 3],
                valid_to: Some(1_700_000_000.5),
                ..Default::default()
            })
            .unwrap();
            assert_eq!(v["KeyId"], "k");
            assert_eq!(v["ImportToken"], "AQID");
            // Required blobs are passed even when empty, so the length constraint reports.
            assert_eq!(v["EncryptedKeyMaterial"], "");
            assert_eq!(v["ValidTo"], 1_700_000_000.5);
            assert!(v["ExpirationModel"].is_null());
            let v: serde_json::Value =
                get_parameters_for_import(pb::GetParametersForImportRequest::default()).unwrap();
            assert!(v["KeyId"].is_null() && v["WrappingAlgorithm"].is_null());
            assert_eq!(
                delete_imported_key_material(pb::DeleteImportedKeyMaterialRequest::default())
                    .key_id,
                None
            );
        }

        #[test]
        fn sign_and_verify_requests_pass_required_blobs_and_keep_absent_members_absent() {
            let r = sign(pb::SignRequest {
                key_id: "alias/s".into(),
                message: b"m".to_vec(),
                signing_algorithm: "ECDSA_SHA_256".into(),
                ..Default::default()
            });
            assert_eq!(r.key_id.as_deref(), Some("alias/s"));
            assert_eq!(r.message.unwrap().expose_secret(), b"m");
            assert_eq!(r.message_type, None);
            assert_eq!(r.signing_algorithm.as_deref(), Some("ECDSA_SHA_256"));
            assert_eq!(r.dry_run, None);
            // An empty signature is passed, so Verify reports its length constraint.
            let v = verify(pb::VerifyRequest::default());
            assert_eq!(v.signature, Some(s::Blob(vec![])));
            assert_eq!(v.signing_algorithm, None);
            let m = verify_mac(pb::VerifyMacRequest::default());
            assert_eq!(m.mac, Some(s::Blob(vec![])));
            assert_eq!(
                derive_shared_secret(pb::DeriveSharedSecretRequest::default()).recipient,
                None
            );
        }

        #[test]
        fn rotation_status_and_listing_map_every_member() {
            let st = get_key_rotation_status_out(o::GetKeyRotationStatusResponse {
                key_rotation_enabled: true,
                key_id: Some("arn".into()),
                rotation_period_in_days: Some(90),
                next_rotation_date: Some(3.5),
                on_demand_rotation_start_date: None,
            });
            assert!(st.key_rotation_enabled);
            assert_eq!(st.rotation_period_in_days, Some(90));
            assert_eq!(st.next_rotation_date, Some(3.5));
            assert_eq!(st.on_demand_rotation_start_date, None);
            let l = list_key_rotations_out(o::ListKeyRotationsResponse {
                rotations: vec![o::RotationsListEntry {
                    key_id: Some("k".into()),
                    rotation_date: Some(1.0),
                    rotation_type: Some("ON_DEMAND".into()),
                    key_material_id: Some(format!("{:064x}", 2)),
                    key_material_state: Some("CURRENT".into()),
                }],
                next_marker: Some("m".into()),
                truncated: true,
            });
            assert_eq!(l.rotations[0].rotation_type, "ON_DEMAND");
            assert_eq!(
                l.rotations[0].key_material_id.as_deref(),
                Some("0000000000000000000000000000000000000000000000000000000000000002")
            );
            assert_eq!(
                l.rotations[0].key_material_state.as_deref(),
                Some("CURRENT")
            );
            assert_eq!(l.next_marker.as_deref(), Some("m"));
            let e = enable_key_rotation(pb::EnableKeyRotationRequest {
                key_id: String::new(),
                rotation_period_in_days: Some(90),
            });
            assert_eq!(e.key_id, None);
            assert_eq!(e.rotation_period_in_days, Some(90));
        }

        #[test]
        fn empty_proto_members_become_absent_aws_members() {
            let r = encrypt(pb::EncryptRequest::default());
            assert_eq!(r.key_id, None);
            assert_eq!(r.encryption_context, None);
            assert_eq!(r.grant_tokens, None);
            assert_eq!(r.dry_run, None);
            // A required blob is passed even when empty, so its length constraint applies.
            assert_eq!(r.plaintext.map(|p| p.expose_secret().len()), Some(0));
        }

        #[test]
        fn update_key_description_keeps_an_empty_description() {
            let r = update_key_description(pb::UpdateKeyDescriptionRequest {
                key_id: "k".into(),
                description: String::new(),
            });
            assert_eq!(r.description.as_deref(), Some(""));
        }

        #[test]
        fn request_members_carry_over() {
            let r = generate_data_key(pb::GenerateDataKeyRequest {
                key_id: "alias/a".into(),
                encryption_context: [("k".to_string(), "v".to_string())].into(),
                number_of_bytes: Some(32),
                key_spec: None,
                grant_tokens: vec![],
                dry_run: false,
            });
            assert_eq!(r.key_id.as_deref(), Some("alias/a"));
            assert_eq!(r.encryption_context.unwrap()["k"], "v");
            assert_eq!(r.number_of_bytes, Some(32));
            let t = tag_resource(pb::TagResourceRequest {
                key_id: "k".into(),
                tags: vec![pb::Tag {
                    tag_key: "a".into(),
                    tag_value: String::new(),
                }],
            });
            assert_eq!(t.tags.unwrap()[0].tag_value.as_deref(), Some(""));
        }

        #[test]
        fn key_metadata_maps_every_member() {
            let m = key_metadata(s::KeyMetadata {
                aws_account_id: Some("111122223333".into()),
                key_id: Some("k".into()),
                arn: Some("arn".into()),
                creation_date: Some(1.5),
                enabled: Some(true),
                description: Some("d".into()),
                key_usage: Some("ENCRYPT_DECRYPT".into()),
                key_state: Some("Enabled".into()),
                deletion_date: Some(2.5),
                origin: Some("AWS_KMS".into()),
                key_manager: Some("CUSTOMER".into()),
                customer_master_key_spec: Some("SYMMETRIC_DEFAULT".into()),
                key_spec: Some("SYMMETRIC_DEFAULT".into()),
                encryption_algorithms: Some(vec!["SYMMETRIC_DEFAULT".into()]),
                multi_region: Some(false),
                pending_deletion_window_in_days: Some(7),
                ..Default::default()
            });
            assert_eq!(m.aws_account_id, "111122223333");
            assert_eq!(m.creation_date, 1.5);
            assert!(m.enabled);
            assert_eq!(m.deletion_date, Some(2.5));
            assert_eq!(m.encryption_algorithms, vec!["SYMMETRIC_DEFAULT"]);
            assert_eq!(m.multi_region, Some(false));
            assert_eq!(m.pending_deletion_window_in_days, Some(7));
        }

        #[test]
        fn plaintext_responses_carry_the_secret_bytes() {
            let r = decrypt_out(s::DecryptResponse {
                key_id: Some("arn".into()),
                plaintext: Some(s::SecretBlob(Secret::new(b"hi".to_vec()))),
                encryption_algorithm: Some("SYMMETRIC_DEFAULT".into()),
            });
            assert_eq!(r.plaintext, b"hi");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::DevCa;
    use rcgen::ExtendedKeyUsagePurpose;

    fn der(pem: &str) -> Vec<u8> {
        rustls_pemfile::certs(&mut pem.as_bytes())
            .next()
            .unwrap()
            .unwrap()
            .to_vec()
    }

    fn status_type(s: &Status) -> &str {
        s.metadata()
            .get(ERROR_TYPE_METADATA_KEY)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }

    #[test]
    fn client_certificate_with_arn_uri_san_and_client_auth_names_the_caller() {
        let ca = DevCa::generate("test ca").unwrap();
        let (pem, _) = ca
            .issue_client("arn:aws:iam::111122223333:role/App")
            .unwrap();
        let caller = caller_from_cert(&der(&pem)).unwrap();
        assert_eq!(caller.principal_arn, "arn:aws:iam::111122223333:role/App");
        assert_eq!(caller.account_id, "111122223333");
    }

    #[test]
    fn certificate_without_client_auth_eku_is_unauthenticated() {
        let ca = DevCa::generate("test ca").unwrap();
        for ekus in [vec![], vec![ExtendedKeyUsagePurpose::ServerAuth]] {
            let (pem, _) = ca
                .issue_client_with_eku("arn:aws:iam::111122223333:role/App", ekus)
                .unwrap();
            let e = caller_from_cert(&der(&pem)).unwrap_err();
            assert_eq!(e.code(), tonic::Code::Unauthenticated);
            assert_eq!(status_type(&e), "UnrecognizedClientException");
        }
    }

    #[test]
    fn certificate_without_an_iam_arn_uri_san_is_unauthenticated() {
        let ca = DevCa::generate("test ca").unwrap();
        // A server certificate: DNS SANs only.
        let (pem, _) = ca.issue_server("front", &["localhost"]).unwrap();
        assert_eq!(
            caller_from_cert(&der(&pem)).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
        // A URI SAN that is not an IAM principal ARN.
        let (pem, _) = ca.issue_client("spiffe://example.org/app").unwrap();
        assert_eq!(
            caller_from_cert(&der(&pem)).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
        assert_eq!(
            caller_from_cert(b"not a certificate").unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
    }

    #[test]
    fn kms_errors_carry_their_aws_type_and_a_matching_code() {
        use tonic::Code;
        let s = String::new;
        for (e, code) in [
            (KmsError::Validation(s()), Code::InvalidArgument),
            (KmsError::NotFound(s()), Code::NotFound),
            (KmsError::AlreadyExists(s()), Code::AlreadyExists),
            (KmsError::Disabled(s()), Code::FailedPrecondition),
            (KmsError::InvalidState(s()), Code::FailedPrecondition),
            (KmsError::AccessDenied(s()), Code::PermissionDenied),
            (KmsError::InvalidCiphertext(s()), Code::InvalidArgument),
            (KmsError::LimitExceeded(s()), Code::ResourceExhausted),
            (KmsError::DependencyTimeout(s()), Code::Unavailable),
            (KmsError::Internal(s()), Code::Internal),
            (KmsError::UnsupportedOperation(s()), Code::Unimplemented),
            (KmsError::KmsInvalidSignature(s()), Code::InvalidArgument),
            (KmsError::KmsInvalidMac(s()), Code::InvalidArgument),
            (KmsError::Conflict(s()), Code::Aborted),
        ] {
            let aws_type = e.aws_type();
            let status = Status::from(e);
            assert_eq!(status.code(), code, "{aws_type}");
            assert_eq!(status_type(&status), aws_type);
        }
        let status = Status::from(KmsError::NotFound("Key 'x' does not exist".into()));
        assert_eq!(status.message(), "Key 'x' does not exist");
    }

    #[test]
    fn batches_must_have_one_to_a_thousand_items() {
        assert!(check_batch(0).is_err());
        assert!(check_batch(1).is_ok());
        assert!(check_batch(MAX_BATCH_ITEMS).is_ok());
        assert_eq!(
            check_batch(MAX_BATCH_ITEMS + 1).unwrap_err().aws_type(),
            "ValidationException"
        );
    }
}

/// The adapter over real mTLS on an ephemeral port, with a real store client that reaches no
/// storage node (an outage): enough to prove authentication, the error mapping and batches end
/// to end without starting one.
#[cfg(test)]
mod serve_tests {
    use std::net::SocketAddr;
    use std::time::Duration;

    use keystore::crypto::DomainKey;
    use rcgen::ExtendedKeyUsagePurpose;
    use tokio::sync::oneshot;
    use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

    use super::*;
    use crate::certs::{write_pair, DevCa};
    use crate::front::testing::unreachable_store;

    fn error_type(s: &Status) -> &str {
        s.metadata()
            .get(ERROR_TYPE_METADATA_KEY)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }

    struct Fixture {
        addr: SocketAddr,
        ca: DevCa,
        _stop: oneshot::Sender<()>,
        _dir: tempfile::TempDir,
    }

    async fn start() -> Fixture {
        // No store behind this front: the calls under test answer without one, which only
        // async audit lets them do (sync audit fails them closed, see below).
        start_with(crate::front::audit::AuditMode::Async).await
    }

    async fn start_with(audit: crate::front::audit::AuditMode) -> Fixture {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let ca = DevCa::generate("test ca").unwrap();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca.cert_pem()).unwrap();
        let server = write_pair(
            dir.path(),
            "front",
            ca.issue_server("front", &["localhost", "127.0.0.1"])
                .unwrap(),
        )
        .unwrap();
        let tls = server_tls(&raft::TlsFiles {
            ca: ca_file,
            cert: server.cert,
            key: server.key,
        })
        .unwrap();
        let kms = Arc::new(
            Kms::new(
                "us-east-1".into(),
                unreachable_store().await,
                DomainKey::generate(1),
                Duration::from_secs(1),
            )
            .with_audit(crate::front::audit::AuditSettings {
                mode: audit,
                timeout: Duration::from_millis(500),
                ..Default::default()
            }),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(serve_grpc(kms, listener, tls, async {
            let _ = stopped.await;
        }));
        Fixture {
            addr,
            ca,
            _stop: stop,
            _dir: dir,
        }
    }

    async fn channel(
        f: &Fixture,
        identity: Option<(String, String)>,
    ) -> Result<Channel, tonic::transport::Error> {
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(f.ca.cert_pem()))
            .domain_name("localhost");
        if let Some((cert, key)) = identity {
            tls = tls.identity(Identity::from_pem(cert, key));
        }
        Endpoint::from_shared(format!("https://{}", f.addr))?
            .tls_config(tls)?
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
    }

    async fn unary<Req, Resp>(
        channel: Channel,
        method: &'static str,
        req: Req,
    ) -> Result<Resp, Status>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let path = http::uri::PathAndQuery::from_static(method);
        let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
        grpc.unary(Request::new(req), path, codec)
            .await
            .map(Response::into_inner)
    }

    fn random(n: i32) -> pb::GenerateRandomRequest {
        pb::GenerateRandomRequest {
            number_of_bytes: Some(n),
            custom_key_store_id: None,
        }
    }

    const GENERATE_RANDOM: &str = "/keyraft.kms.v1.Kms/GenerateRandom";

    #[tokio::test]
    async fn account_root_certificate_is_served_over_mtls() {
        let f = start().await;
        let id = f.ca.issue_client("arn:aws:iam::111122223333:root").unwrap();
        let ch = channel(&f, Some(id)).await.unwrap();
        let out: pb::GenerateRandomResponse = unary(ch, GENERATE_RANDOM, random(16)).await.unwrap();
        assert_eq!(out.plaintext.len(), 16);
    }

    #[tokio::test]
    async fn sync_audit_fails_a_call_closed_when_its_event_cannot_be_recorded() {
        // GenerateRandom needs no store; only its audit event does.
        let f = start_with(crate::front::audit::AuditMode::Sync).await;
        let id = f.ca.issue_client("arn:aws:iam::111122223333:root").unwrap();
        let ch = channel(&f, Some(id)).await.unwrap();
        let err = unary::<_, pb::GenerateRandomResponse>(ch, GENERATE_RANDOM, random(16))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::Internal);
        assert_eq!(error_type(&err), "KMSInternalException");
        assert!(
            err.message().starts_with(
                "The request could not be recorded in the audit trail; it was not answered."
            ),
            "{}",
            err.message()
        );
        let request_id = err.metadata().get(REQUEST_ID_METADATA_KEY).unwrap();
        assert_eq!(request_id.to_str().unwrap().len(), 36);
    }

    #[tokio::test]
    async fn validation_and_store_errors_carry_their_aws_type() {
        let f = start().await;
        let root = f.ca.issue_client("arn:aws:iam::111122223333:root").unwrap();
        let ch = channel(&f, Some(root)).await.unwrap();
        let e = unary::<_, pb::GenerateRandomResponse>(ch.clone(), GENERATE_RANDOM, random(0))
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert_eq!(error_type(&e), "ValidationException");
        // A role needs its identity record, and the store is down: retryable, Unavailable.
        let role =
            f.ca.issue_client("arn:aws:iam::111122223333:role/App")
                .unwrap();
        let ch = channel(&f, Some(role)).await.unwrap();
        let e = unary::<_, pb::GenerateRandomResponse>(ch, GENERATE_RANDOM, random(8))
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unavailable);
        assert_eq!(error_type(&e), "DependencyTimeoutException");
    }

    #[tokio::test]
    async fn new_rpcs_validate_before_reaching_the_store_and_carry_aws_error_types() {
        let f = start().await;
        let root = f.ca.issue_client("arn:aws:iam::111122223333:root").unwrap();
        let ch = channel(&f, Some(root)).await.unwrap();
        // An empty message is passed through (not "absent"), so its length constraint speaks.
        let e = unary::<_, pb::SignResponse>(
            ch.clone(),
            "/keyraft.kms.v1.Kms/Sign",
            pb::SignRequest {
                key_id: "alias/a".into(),
                signing_algorithm: "ECDSA_SHA_256".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert_eq!(error_type(&e), "ValidationException");
        assert!(e.message().contains("message"), "{}", e.message());
        let e = unary::<_, pb::EnableKeyRotationResponse>(
            ch.clone(),
            "/keyraft.kms.v1.Kms/EnableKeyRotation",
            pb::EnableKeyRotationRequest {
                key_id: "k".into(),
                rotation_period_in_days: Some(10),
            },
        )
        .await
        .unwrap_err();
        assert_eq!(error_type(&e), "ValidationException");
        // A valid request reaches the (unreachable) store: retryable, Unavailable.
        let e = unary::<_, pb::ListKeyRotationsResponse>(
            ch,
            "/keyraft.kms.v1.Kms/ListKeyRotations",
            pb::ListKeyRotationsRequest {
                key_id: "1234abcd-12ab-34cd-56ef-1234567890ab".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unavailable);
        assert_eq!(error_type(&e), "DependencyTimeoutException");
    }

    #[tokio::test]
    async fn batch_items_fail_individually_and_empty_batches_are_refused() {
        let f = start().await;
        let root = f.ca.issue_client("arn:aws:iam::111122223333:root").unwrap();
        let ch = channel(&f, Some(root)).await.unwrap();
        let item = |key: &str| pb::EncryptRequest {
            key_id: key.into(),
            plaintext: b"x".to_vec(),
            ..Default::default()
        };
        let out: pb::BatchEncryptResponse = unary(
            ch.clone(),
            "/keyraft.kms.v1.Kms/BatchEncrypt",
            pb::BatchEncryptRequest {
                items: vec![item("alias/a"), item("")],
            },
        )
        .await
        .unwrap();
        let types: Vec<_> = out
            .results
            .iter()
            .map(|r| match &r.result {
                Some(pb::batch_encrypt_result::Result::Error(e)) => e.error_type.as_str(),
                _ => "ok",
            })
            .collect();
        assert_eq!(
            types,
            vec!["DependencyTimeoutException", "ValidationException"]
        );
        let e = unary::<_, pb::BatchEncryptResponse>(
            ch,
            "/keyraft.kms.v1.Kms/BatchEncrypt",
            pb::BatchEncryptRequest { items: vec![] },
        )
        .await
        .unwrap_err();
        assert_eq!(error_type(&e), "ValidationException");
    }

    #[tokio::test]
    async fn certificate_without_client_auth_is_unauthenticated() {
        let f = start().await;
        // No EKU extension at all passes the TLS layer; the adapter insists on clientAuth.
        let id =
            f.ca.issue_client_with_eku("arn:aws:iam::111122223333:root", vec![])
                .unwrap();
        let ch = channel(&f, Some(id)).await.unwrap();
        let e = unary::<_, pb::GenerateRandomResponse>(ch, GENERATE_RANDOM, random(8))
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated);
        // A certificate restricted to serverAuth is already refused by the TLS layer.
        let id =
            f.ca.issue_client_with_eku(
                "arn:aws:iam::111122223333:root",
                vec![ExtendedKeyUsagePurpose::ServerAuth],
            )
            .unwrap();
        let refused = match channel(&f, Some(id)).await {
            Err(_) => true,
            Ok(ch) => unary::<_, pb::GenerateRandomResponse>(ch, GENERATE_RANDOM, random(8))
                .await
                .is_err(),
        };
        assert!(refused);
    }

    #[tokio::test]
    async fn connection_without_client_certificate_is_refused() {
        let f = start().await;
        let refused = match channel(&f, None).await {
            Err(_) => true,
            Ok(ch) => unary::<_, pb::GenerateRandomResponse>(ch, GENERATE_RANDOM, random(8))
                .await
                .is_err(),
        };
        assert!(refused);
    }
}
