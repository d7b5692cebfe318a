//! The front's one error type and its AWS wire mapping (`__type`, HTTP status), in one place.
//!
//! Messages follow AWS's wording where clients or people match on it, and never contain
//! plaintext, key material, secrets or signatures. Statuses follow the AWS KMS API reference:
//! every client error is 400 (KMS does not use 403/404/409 for its own exceptions), faults
//! (`KMSInternalException`, `DependencyTimeoutException`) are 500, so SDKs retry them.

use keystore::error::DomainError;

/// Everything an operation can answer instead of its response.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[allow(missing_docs)] // each variant is the AWS exception of the same name
pub enum KmsError {
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    Serialization(String),
    #[error("{0}")]
    UnknownOperation(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    InvalidAliasName(String),
    #[error("{0}")]
    InvalidArn(String),
    #[error("{0}")]
    InvalidMarker(String),
    #[error("{0}")]
    InvalidCiphertext(String),
    #[error("{0}")]
    IncorrectKey(String),
    #[error("{0}")]
    InvalidKeyUsage(String),
    #[error("{0}")]
    InvalidGrantToken(String),
    #[error("{0}")]
    InvalidGrantId(String),
    #[error("{0}")]
    Disabled(String),
    #[error("{0}")]
    InvalidState(String),
    #[error("{0}")]
    LimitExceeded(String),
    #[error("{0}")]
    Tag(String),
    #[error("{0}")]
    MalformedPolicyDocument(String),
    /// Reserved names (`alias/aws/...`).
    #[error("{0}")]
    NotAuthorized(String),
    #[error("{0}")]
    AccessDenied(String),
    #[error("{0}")]
    UnrecognizedClient(String),
    #[error("{0}")]
    InvalidSignature(String),
    #[error("{0}")]
    IncompleteSignature(String),
    #[error("{0}")]
    MissingAuthenticationToken(String),
    /// `DryRun: true` on an operation that would have succeeded.
    #[error("{0}")]
    DryRunOperation(String),
    /// The store has no leader or cannot be reached; retryable.
    #[error("{0}")]
    DependencyTimeout(String),
    #[error("{0}")]
    Internal(String),
    #[error("{0}")]
    UnsupportedOperation(String),
    /// The request body exceeds the front's limit.
    #[error("{0}")]
    RequestTooLarge(String),
    /// RotateKeyOnDemand while a rotation is in progress or about to start.
    #[error("{0}")]
    Conflict(String),
    /// Verify: the signature is not valid (AWS raises, it never answers
    /// `SignatureValid: false`).
    #[error("{0}")]
    KmsInvalidSignature(String),
    /// VerifyMac: the MAC is not valid.
    #[error("{0}")]
    KmsInvalidMac(String),
    /// ImportKeyMaterial: the import token is malformed, altered or superseded.
    #[error("{0}")]
    InvalidImportToken(String),
    /// ImportKeyMaterial: the import parameters are older than 24 hours.
    #[error("{0}")]
    ExpiredImportToken(String),
    /// ImportKeyMaterial: not the material the key had, or not valid for its spec.
    #[error("{0}")]
    IncorrectKeyMaterial(String),
}

impl KmsError {
    /// The AWS `__type` and the HTTP status of this error.
    pub fn wire(&self) -> (&'static str, u16) {
        use KmsError::*;
        match self {
            Validation(_) => ("ValidationException", 400),
            Serialization(_) => ("SerializationException", 400),
            UnknownOperation(_) => ("UnknownOperationException", 400),
            NotFound(_) => ("NotFoundException", 400),
            AlreadyExists(_) => ("AlreadyExistsException", 400),
            InvalidAliasName(_) => ("InvalidAliasNameException", 400),
            InvalidArn(_) => ("InvalidArnException", 400),
            InvalidMarker(_) => ("InvalidMarkerException", 400),
            InvalidCiphertext(_) => ("InvalidCiphertextException", 400),
            IncorrectKey(_) => ("IncorrectKeyException", 400),
            InvalidKeyUsage(_) => ("InvalidKeyUsageException", 400),
            InvalidGrantToken(_) => ("InvalidGrantTokenException", 400),
            InvalidGrantId(_) => ("InvalidGrantIdException", 400),
            Disabled(_) => ("DisabledException", 400),
            InvalidState(_) => ("KMSInvalidStateException", 400),
            LimitExceeded(_) => ("LimitExceededException", 400),
            Tag(_) => ("TagException", 400),
            MalformedPolicyDocument(_) => ("MalformedPolicyDocumentException", 400),
            NotAuthorized(_) => ("NotAuthorizedException", 400),
            AccessDenied(_) => ("AccessDeniedException", 400),
            UnrecognizedClient(_) => ("UnrecognizedClientException", 400),
            InvalidSignature(_) => ("InvalidSignatureException", 400),
            IncompleteSignature(_) => ("IncompleteSignatureException", 400),
            MissingAuthenticationToken(_) => ("MissingAuthenticationTokenException", 400),
            DryRunOperation(_) => ("DryRunOperationException", 412),
            DependencyTimeout(_) => ("DependencyTimeoutException", 500),
            Internal(_) => ("KMSInternalException", 500),
            UnsupportedOperation(_) => ("UnsupportedOperationException", 400),
            RequestTooLarge(_) => ("RequestEntityTooLargeException", 413),
            Conflict(_) => ("ConflictException", 400),
            KmsInvalidSignature(_) => ("KMSInvalidSignatureException", 400),
            KmsInvalidMac(_) => ("KMSInvalidMacException", 400),
            InvalidImportToken(_) => ("InvalidImportTokenException", 400),
            ExpiredImportToken(_) => ("ExpiredImportTokenException", 400),
            IncorrectKeyMaterial(_) => ("IncorrectKeyMaterialException", 400),
        }
    }

    /// The AWS `__type` (e.g. `NotFoundException`).
    pub fn aws_type(&self) -> &'static str {
        self.wire().0
    }

    /// The HTTP status.
    pub fn http_status(&self) -> u16 {
        self.wire().1
    }

    /// Whether a client may retry the same request unchanged.
    pub fn is_retryable(&self) -> bool {
        matches!(self, KmsError::DependencyTimeout(_) | KmsError::Internal(_))
    }

    /// The JSON body AWS sends: `{"__type": "...", "message": "..."}`.
    pub fn to_json(&self) -> Vec<u8> {
        let msg = self.to_string();
        let mut body = serde_json::Map::new();
        body.insert("__type".into(), self.aws_type().into());
        if !msg.is_empty() {
            body.insert("message".into(), msg.into());
        }
        serde_json::to_vec(&serde_json::Value::Object(body)).unwrap_or_default()
    }

    /// `1 validation error detected: Value null at '<member>' failed to satisfy constraint:
    /// Member must not be null`.
    pub fn missing(member: &str) -> Self {
        KmsError::Validation(format!(
            "1 validation error detected: Value null at '{}' failed to satisfy constraint: \
             Member must not be null",
            lower_first(member)
        ))
    }

    /// AWS's wording for a member outside its length or range constraint. `value` is only
    /// echoed by callers for non-secret members.
    pub fn constraint(member: &str, value: &str, constraint: &str) -> Self {
        KmsError::Validation(format!(
            "1 validation error detected: Value {value} at '{}' failed to satisfy constraint: \
             {constraint}",
            lower_first(member)
        ))
    }
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

impl From<DomainError> for KmsError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::NotFound(m) => KmsError::NotFound(m),
            DomainError::AlreadyExists(m) => KmsError::AlreadyExists(m),
            DomainError::InvalidState(m) => KmsError::InvalidState(m),
            DomainError::Disabled(m) => KmsError::Disabled(m),
            DomainError::LimitExceeded(m) => KmsError::LimitExceeded(m),
            DomainError::Tag(m) => KmsError::Tag(m),
            DomainError::Validation(m) => KmsError::Validation(m),
            // One answer for every bad blob, so the error is no oracle.
            DomainError::InvalidCiphertext => KmsError::InvalidCiphertext(String::new()),
            DomainError::IncorrectKey(m) => KmsError::IncorrectKey(m),
            DomainError::InvalidKeyUsage(m) => KmsError::InvalidKeyUsage(m),
            DomainError::UnsupportedOperation(m) => KmsError::UnsupportedOperation(m),
            DomainError::Conflict(m) => KmsError::Conflict(m),
            DomainError::InvalidImportToken(m) => KmsError::InvalidImportToken(m),
            DomainError::ExpiredImportToken(m) => KmsError::ExpiredImportToken(m),
            DomainError::IncorrectKeyMaterial(m) => KmsError::IncorrectKeyMaterial(m),
            DomainError::InvalidGrantToken(m) => KmsError::InvalidGrantToken(m),
            DomainError::InvalidGrantId(m) => KmsError::InvalidGrantId(m),
            DomainError::Internal(detail) => {
                // The detail is for operators, not callers.
                tracing::error!(%detail, "internal domain error");
                KmsError::internal()
            }
        }
    }
}

impl From<raft::StoreError> for KmsError {
    fn from(e: raft::StoreError) -> Self {
        match e {
            raft::StoreError::Domain(d) => d.into(),
            raft::StoreError::Unavailable(why) => {
                tracing::warn!(%why, "store unavailable");
                KmsError::dependency_timeout()
            }
            #[allow(unreachable_patterns)]
            other => {
                tracing::error!(error = %other, "store error");
                KmsError::internal()
            }
        }
    }
}

impl KmsError {
    /// AWS's `KMSInternalException` with its generic message.
    pub fn internal() -> Self {
        KmsError::Internal("An internal error occurred. The request can be retried.".into())
    }

    /// AWS's `DependencyTimeoutException` with its generic message.
    pub fn dependency_timeout() -> Self {
        KmsError::DependencyTimeout(
            "The system timed out while trying to fulfill the request. You can retry the \
             request."
                .into(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_exception_maps_to_its_aws_type_and_status() {
        let s = String::new;
        let table = [
            (KmsError::Validation(s()), "ValidationException", 400),
            (KmsError::Serialization(s()), "SerializationException", 400),
            (
                KmsError::UnknownOperation(s()),
                "UnknownOperationException",
                400,
            ),
            (KmsError::NotFound(s()), "NotFoundException", 400),
            (KmsError::AlreadyExists(s()), "AlreadyExistsException", 400),
            (
                KmsError::InvalidAliasName(s()),
                "InvalidAliasNameException",
                400,
            ),
            (KmsError::InvalidArn(s()), "InvalidArnException", 400),
            (KmsError::InvalidMarker(s()), "InvalidMarkerException", 400),
            (
                KmsError::InvalidCiphertext(s()),
                "InvalidCiphertextException",
                400,
            ),
            (KmsError::IncorrectKey(s()), "IncorrectKeyException", 400),
            (
                KmsError::InvalidKeyUsage(s()),
                "InvalidKeyUsageException",
                400,
            ),
            (KmsError::Disabled(s()), "DisabledException", 400),
            (KmsError::InvalidState(s()), "KMSInvalidStateException", 400),
            (KmsError::LimitExceeded(s()), "LimitExceededException", 400),
            (KmsError::Tag(s()), "TagException", 400),
            (KmsError::AccessDenied(s()), "AccessDeniedException", 400),
            (KmsError::Conflict(s()), "ConflictException", 400),
            (
                KmsError::UnrecognizedClient(s()),
                "UnrecognizedClientException",
                400,
            ),
            (
                KmsError::InvalidSignature(s()),
                "InvalidSignatureException",
                400,
            ),
            (
                KmsError::IncompleteSignature(s()),
                "IncompleteSignatureException",
                400,
            ),
            (
                KmsError::MissingAuthenticationToken(s()),
                "MissingAuthenticationTokenException",
                400,
            ),
            (
                KmsError::DependencyTimeout(s()),
                "DependencyTimeoutException",
                500,
            ),
            (KmsError::Internal(s()), "KMSInternalException", 500),
            (
                KmsError::UnsupportedOperation(s()),
                "UnsupportedOperationException",
                400,
            ),
            (
                KmsError::KmsInvalidSignature(s()),
                "KMSInvalidSignatureException",
                400,
            ),
            (KmsError::KmsInvalidMac(s()), "KMSInvalidMacException", 400),
            (
                KmsError::InvalidImportToken(s()),
                "InvalidImportTokenException",
                400,
            ),
            (
                KmsError::ExpiredImportToken(s()),
                "ExpiredImportTokenException",
                400,
            ),
            (
                KmsError::IncorrectKeyMaterial(s()),
                "IncorrectKeyMaterialException",
                400,
            ),
        ];
        for (e, ty, status) in table {
            assert_eq!(e.wire(), (ty, status));
        }
    }

    #[test]
    fn domain_errors_keep_their_kind() {
        assert_eq!(
            KmsError::from(DomainError::Disabled("k is disabled.".into())),
            KmsError::Disabled("k is disabled.".into())
        );
        assert_eq!(
            KmsError::from(DomainError::InvalidCiphertext).aws_type(),
            "InvalidCiphertextException"
        );
    }

    #[test]
    fn internal_details_do_not_reach_the_wire() {
        let e = KmsError::from(DomainError::Internal("material v3 of key X fails".into()));
        assert_eq!(e.aws_type(), "KMSInternalException");
        assert!(!e.to_string().contains("material"));
    }

    #[test]
    fn store_unavailable_is_a_retryable_dependency_timeout() {
        let e = KmsError::from(raft::StoreError::Unavailable("no leader".into()));
        assert_eq!(e.aws_type(), "DependencyTimeoutException");
        assert!(e.is_retryable());
        assert!(!e.to_string().contains("leader"));
    }

    #[test]
    fn json_body_has_type_and_message() {
        let v: serde_json::Value =
            serde_json::from_slice(&KmsError::NotFound("Key 'x' does not exist".into()).to_json())
                .unwrap();
        assert_eq!(v["__type"], "NotFoundException");
        assert_eq!(v["message"], "Key 'x' does not exist");
        let v: serde_json::Value =
            serde_json::from_slice(&KmsError::InvalidCiphertext(String::new()).to_json()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"__type": "InvalidCiphertextException"})
        );
    }

    #[test]
    fn missing_member_message_matches_aws() {
        assert_eq!(
            KmsError::missing("KeyId").to_string(),
            "1 validation error detected: Value null at 'keyId' failed to satisfy constraint: \
             Member must not be null"
        );
    }
}
