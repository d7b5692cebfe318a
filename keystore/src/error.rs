//! Domain errors. Each maps to one AWS `__type` in the node's wire mapping; nothing here
//! ever carries plaintext or key material.

use serde::{Deserialize, Serialize};

/// Why a command or a cryptographic operation was refused by the domain.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum DomainError {
    /// `NotFoundException`.
    #[error("{0}")]
    NotFound(String),
    /// `AlreadyExistsException`.
    #[error("{0}")]
    AlreadyExists(String),
    /// `KMSInvalidStateException`.
    #[error("{0}")]
    InvalidState(String),
    /// `DisabledException`.
    #[error("{0}")]
    Disabled(String),
    /// `LimitExceededException`.
    #[error("{0}")]
    LimitExceeded(String),
    /// `TagException`.
    #[error("{0}")]
    Tag(String),
    /// `ValidationException`.
    #[error("{0}")]
    Validation(String),
    /// `InvalidCiphertextException`. One fixed message for every malformed blob.
    #[error("The ciphertext is invalid.")]
    InvalidCiphertext,
    /// `IncorrectKeyException`: the ciphertext was made under another key than the one named.
    #[error("{0}")]
    IncorrectKey(String),
    /// `InvalidKeyUsageException`.
    #[error("{0}")]
    InvalidKeyUsage(String),
    /// `UnsupportedOperationException` (e.g. rotating an asymmetric or imported key).
    #[error("{0}")]
    UnsupportedOperation(String),
    /// `ConflictException`: a rotation is in progress or about to start.
    #[error("{0}")]
    Conflict(String),
    /// `InvalidImportTokenException`: the import token is malformed, altered, or not the
    /// newest one GetParametersForImport returned for the key.
    #[error("{0}")]
    InvalidImportToken(String),
    /// `ExpiredImportTokenException`: the import parameters are older than 24 hours.
    #[error("{0}")]
    ExpiredImportToken(String),
    /// `IncorrectKeyMaterialException`: not the material previously imported into the key
    /// (or not valid material for its spec).
    #[error("{0}")]
    IncorrectKeyMaterial(String),
    /// `InvalidGrantTokenException`: a grant token that is malformed or names no grant.
    #[error("{0}")]
    InvalidGrantToken(String),
    /// `InvalidGrantIdException`: RetireGrant/RevokeGrant named a grant id the key does not
    /// have.
    #[error("{0}")]
    InvalidGrantId(String),
    /// `KMSInternalException`: something that should not happen (e.g. wrapped material that
    /// does not unwrap under the domain key). Never includes secret bytes.
    #[error("{0}")]
    Internal(String),
}
