//! `kmsctl`: the `aws kms` command line, over the SDK.
//!
//! Subcommands, flags, JSON output and error text mirror `aws kms`, so scripts written for the
//! AWS CLI mostly work by swapping the command name:
//!
//! - blob arguments (`--plaintext`, `--ciphertext-blob`, `--message`, `--signature`, `--mac`,
//!   `--public-key`, `--import-token`, `--encrypted-key-material`) take `fileb://path` (raw bytes),
//!   `file://path` (the file's bytes) or literal text; with `--cli-binary-format base64` a
//!   literal is base64-decoded instead, as AWS CLI v2 does by default;
//! - `--encryption-context` takes shorthand `k=v,k2=v2` or JSON `{"k":"v"}` (or `file://`);
//! - `--tags` takes shorthand `TagKey=k,TagValue=v ...` or JSON `[{"TagKey":"k",...}]`;
//! - output is AWS's JSON shape (PascalCase, base64 blobs, ISO 8601 dates) on stdout;
//!   `--query A.B` selects a field and `--output text` prints a string field raw;
//! - errors go to stderr as `An error occurred (<__type>) when calling the <Op> operation:
//!   <message>`, exit code 254 (255 when no front answered, 252 for bad arguments).
//!
//! `kmsctl iam <subcommand>` manages identities (principals, access keys, identity policies,
//! client certificates) with the same conventions. `kmsctl audit lookup|export|verify` reads,
//! exports and verifies the audit trail (`cli_audit.rs`).
//!
//! Configuration precedence: flags, then `--env-file` (the `export K=V` file written by
//! `keyraft dev`), then the `KMS_*` environment.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::{json, Map, Value};

use crate::proto;
use crate::{Client, ClientBuilder, Error};

// `kmsctl iam ...`: a child module, so it shares the argument parsing and output helpers.
#[path = "cli_iam.rs"]
mod iam;
// `kmsctl audit ...`: lookup, export and offline verification of the audit trail.
#[path = "cli_audit.rs"]
mod audit;
// `kmsctl compliance report`.
#[path = "cli_compliance.rs"]
mod compliance_cli;

/// Exit code for a service error, as the AWS CLI.
pub const EXIT_SERVICE_ERROR: i32 = 254;
/// Exit code for any other failure (no front reachable, bad configuration).
pub const EXIT_OTHER_ERROR: i32 = 255;
/// Exit code for invalid command-line arguments, as the AWS CLI.
pub const EXIT_USAGE: i32 = 252;

/// `kmsctl` command line.
#[derive(Debug, Parser)]
#[command(
    name = "kmsctl",
    version,
    about = "Command line for keyraft, in the manner of `aws kms`"
)]
pub struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

/// How literal blob arguments are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum BinaryFormat {
    /// Literal text is used as its UTF-8 bytes.
    #[default]
    #[value(name = "raw-in-base64-out")]
    Raw,
    /// Literal text is base64 (AWS CLI v2's default).
    #[value(name = "base64")]
    Base64,
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum OutputFormat {
    /// Pretty JSON (AWS shapes).
    #[default]
    Json,
    /// Strings raw, everything else as JSON; most useful with `--query`.
    Text,
    /// A table where the command has one (`audit lookup`, `audit verify`); JSON otherwise.
    Table,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
struct GlobalArgs {
    /// Front gRPC endpoint(s), comma-separated or repeated (default: $KMS_GRPC_ENDPOINT).
    #[arg(long, alias = "endpoint-url", global = true, value_delimiter = ',')]
    endpoint: Vec<String>,
    /// CA bundle PEM file (default: $KMS_CA_BUNDLE).
    #[arg(long, global = true)]
    ca_bundle: Option<PathBuf>,
    /// Client certificate PEM file (default: $KMS_CLIENT_CERT).
    #[arg(long, global = true)]
    client_cert: Option<PathBuf>,
    /// Client private key PEM file (default: $KMS_CLIENT_KEY).
    #[arg(long, global = true)]
    client_key: Option<PathBuf>,
    /// TLS server name to verify instead of the endpoint host.
    #[arg(long, global = true)]
    server_name: Option<String>,
    /// Region (default: $KMS_REGION).
    #[arg(long, global = true)]
    region: Option<String>,
    /// An env file written by `keyraft dev` (`export KMS_...=...` lines).
    #[arg(long, global = true)]
    env_file: Option<PathBuf>,
    /// Attempts per call, including the first.
    #[arg(long, global = true)]
    max_attempts: Option<u32>,
    /// Seconds to wait for a connection.
    #[arg(long, global = true)]
    cli_connect_timeout: Option<u64>,
    /// Seconds to wait for an answer.
    #[arg(long, global = true)]
    cli_read_timeout: Option<u64>,
    /// How literal blob arguments are read.
    #[arg(long, global = true, value_enum, default_value_t)]
    cli_binary_format: BinaryFormat,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t)]
    output: OutputFormat,
    /// Select a field of the output, e.g. `CiphertextBlob` or `KeyMetadata.Arn`.
    #[arg(long, global = true)]
    query: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a KMS key.
    CreateKey {
        /// Description.
        #[arg(long)]
        description: Option<String>,
        /// ENCRYPT_DECRYPT (default), SIGN_VERIFY, GENERATE_VERIFY_MAC or KEY_AGREEMENT.
        #[arg(long)]
        key_usage: Option<String>,
        /// SYMMETRIC_DEFAULT (default), RSA_2048, ECC_NIST_P256, HMAC_256, ML_DSA_65, ...
        #[arg(long)]
        key_spec: Option<String>,
        /// Deprecated spelling of --key-spec.
        #[arg(long)]
        customer_master_key_spec: Option<String>,
        /// AWS_KMS (default) or EXTERNAL (no material until import-key-material).
        #[arg(long)]
        origin: Option<String>,
        /// Key policy JSON, or file://path.
        #[arg(long)]
        policy: Option<String>,
        /// Skip the policy lockout check.
        #[arg(long)]
        bypass_policy_lockout_safety_check: bool,
        /// TagKey=k,TagValue=v ... or JSON.
        #[arg(long, num_args = 1..)]
        tags: Vec<String>,
        /// Create a multi-Region primary key.
        #[arg(long)]
        multi_region: bool,
    },
    /// Describe a key.
    DescribeKey {
        /// Key id, key ARN, alias name (alias/x) or alias ARN.
        #[arg(long)]
        key_id: String,
        /// Grant tokens (space- or comma-separated).
        #[arg(long, num_args = 1.., value_delimiter = ',')]
        grant_tokens: Vec<String>,
    },
    /// List keys (all pages unless --limit, --marker or --no-paginate).
    ListKeys {
        /// Page size; disables automatic pagination.
        #[arg(long)]
        limit: Option<i32>,
        /// NextMarker of the previous page; disables automatic pagination.
        #[arg(long)]
        marker: Option<String>,
        /// Fetch one page only.
        #[arg(long)]
        no_paginate: bool,
    },
    /// Enable a key.
    EnableKey {
        /// Key id, key ARN, alias name (alias/x) or alias ARN.
        #[arg(long)]
        key_id: String,
    },
    /// Disable a key.
    DisableKey {
        /// Key id, key ARN, alias name (alias/x) or alias ARN.
        #[arg(long)]
        key_id: String,
    },
    /// Replace a key's description.
    UpdateKeyDescription {
        /// Key id, key ARN, alias name (alias/x) or alias ARN.
        #[arg(long)]
        key_id: String,
        /// New description.
        #[arg(long)]
        description: String,
    },
    /// Schedule a key's deletion.
    ScheduleKeyDeletion {
        /// Key id, key ARN, alias name (alias/x) or alias ARN.
        #[arg(long)]
        key_id: String,
        /// 7..=30 days (default 30).
        #[arg(long)]
        pending_window_in_days: Option<i32>,
    },
    /// Cancel a key's scheduled deletion.
    CancelKeyDeletion {
        /// Key id, key ARN, alias name (alias/x) or alias ARN.
        #[arg(long)]
        key_id: String,
    },
    /// Create an alias.
    CreateAlias {
        /// alias/NAME.
        #[arg(long)]
        alias_name: String,
        /// Key id or key ARN.
        #[arg(long)]
        target_key_id: String,
    },
    /// Point an alias at another key.
    UpdateAlias {
        /// alias/NAME.
        #[arg(long)]
        alias_name: String,
        /// Key id or key ARN.
        #[arg(long)]
        target_key_id: String,
    },
    /// Delete an alias.
    DeleteAlias {
        /// alias/NAME.
        #[arg(long)]
        alias_name: String,
    },
    /// List aliases (all pages unless --limit, --marker or --no-paginate).
    ListAliases {
        /// Key id or key ARN.
        #[arg(long)]
        key_id: Option<String>,
        /// Page size; disables automatic pagination.
        #[arg(long)]
        limit: Option<i32>,
        /// NextMarker of the previous page; disables automatic pagination.
        #[arg(long)]
        marker: Option<String>,
        /// Fetch one page only.
        #[arg(long)]
        no_paginate: bool,
    },
    /// Add or overwrite tags on a key.
    TagResource {
        /// Key id, key ARN, alias name (alias/x) or alias ARN.
        #[arg(long)]
        key_id: String,
        /// TagKey=k,TagValue=v ... or JSON.
        #[arg(long, num_args = 1.., required = true)]
        tags: Vec<String>,
    },
    /// Remove tags from a key.
    UntagResource {
        /// Key id, key ARN, alias name (alias/x) or alias ARN.
        #[arg(long)]
        key_id: String,
        /// Tag keys to remove.
        #[arg(long, num_args = 1.., required = true)]
        tag_keys: Vec<String>,
    },
    /// List a key's tags.
    ListResourceTags {
        /// Key id, key ARN, alias name (alias/x) or alias ARN.
        #[arg(long)]
        key_id: String,
        /// Page size; disables automatic pagination.
        #[arg(long)]
        limit: Option<i32>,
        /// NextMarker of the previous page; disables automatic pagination.
        #[arg(long)]
        marker: Option<String>,
    },
    /// Encrypt up to 4096 bytes.
    Encrypt {
        /// Key id, key ARN, alias name (alias/x) or alias ARN.
        #[arg(long)]
        key_id: String,
        /// fileb://path, file://path or literal text.
        #[arg(long)]
        plaintext: String,
        #[command(flatten)]
        common: CryptoArgs,
        /// SYMMETRIC_DEFAULT.
        #[arg(long)]
        encryption_algorithm: Option<String>,
    },
    /// Decrypt a ciphertext blob.
    Decrypt {
        /// fileb://path (or file://path, or literal with --cli-binary-format base64).
        #[arg(long)]
        ciphertext_blob: String,
        /// Key id or key ARN.
        #[arg(long)]
        key_id: Option<String>,
        #[command(flatten)]
        common: CryptoArgs,
        /// SYMMETRIC_DEFAULT.
        #[arg(long)]
        encryption_algorithm: Option<String>,
    },
    /// Decrypt and re-encrypt under another key or context, server-side.
    ReEncrypt {
        #[arg(long)]
        ciphertext_blob: String,
        /// Context the ciphertext was made with (k=v,... or JSON).
        #[arg(long)]
        source_encryption_context: Option<String>,
        /// Key that made the ciphertext (checked if given).
        #[arg(long)]
        source_key_id: Option<String>,
        /// Key for the new ciphertext.
        #[arg(long)]
        destination_key_id: String,
        /// Context for the new ciphertext (k=v,... or JSON).
        #[arg(long)]
        destination_encryption_context: Option<String>,
        /// SYMMETRIC_DEFAULT.
        #[arg(long)]
        source_encryption_algorithm: Option<String>,
        /// SYMMETRIC_DEFAULT.
        #[arg(long)]
        destination_encryption_algorithm: Option<String>,
        /// Grant tokens (space- or comma-separated).
        #[arg(long, num_args = 1.., value_delimiter = ',')]
        grant_tokens: Vec<String>,
        /// Check permissions without performing the operation.
        #[arg(long)]
        dry_run: bool,
    },
    /// Generate a data key (plaintext and encrypted).
    GenerateDataKey {
        #[command(flatten)]
        args: DataKeyArgs,
    },
    /// Generate a data key (encrypted only).
    GenerateDataKeyWithoutPlaintext {
        #[command(flatten)]
        args: DataKeyArgs,
    },
    /// Generate random bytes.
    GenerateRandom {
        /// Number of bytes (1..=1024).
        #[arg(long)]
        number_of_bytes: Option<i32>,
    },
    /// Get the DER public key of an asymmetric key.
    GetPublicKey {
        /// Key id, key ARN, alias name (alias/x) or alias ARN.
        #[arg(long)]
        key_id: String,
        /// Grant tokens (space- or comma-separated).
        #[arg(long, num_args = 1.., value_delimiter = ',')]
        grant_tokens: Vec<String>,
    },
    /// Sign a message or digest.
    Sign {
        #[command(flatten)]
        args: SignArgs,
    },
    /// Verify a signature (an invalid one is KMSInvalidSignatureException).
    Verify {
        #[command(flatten)]
        args: SignArgs,
        /// fileb://path (or file://path, or literal with --cli-binary-format base64).
        #[arg(long)]
        signature: String,
    },
    /// Compute an HMAC.
    GenerateMac {
        #[command(flatten)]
        args: MacArgs,
    },
    /// Verify an HMAC (an invalid one is KMSInvalidMacException).
    VerifyMac {
        #[command(flatten)]
        args: MacArgs,
        /// fileb://path (or file://path, or literal with --cli-binary-format base64).
        #[arg(long)]
        mac: String,
    },
    /// ECDH between a KEY_AGREEMENT key and a peer's public key.
    DeriveSharedSecret {
        /// Key id, key ARN, alias name (alias/x) or alias ARN.
        #[arg(long)]
        key_id: String,
        /// ECDH.
        #[arg(long)]
        key_agreement_algorithm: String,
        /// The peer's DER SubjectPublicKeyInfo: fileb://path.
        #[arg(long)]
        public_key: String,
        /// Grant tokens (space- or comma-separated).
        #[arg(long, num_args = 1.., value_delimiter = ',')]
        grant_tokens: Vec<String>,
        /// Check permissions without performing the operation.
        #[arg(long)]
        dry_run: bool,
    },
    /// Generate a key pair (private key in plaintext and encrypted).
    GenerateDataKeyPair {
        #[command(flatten)]
        args: DataKeyPairArgs,
    },
    /// Generate a key pair (private key encrypted only).
    GenerateDataKeyPairWithoutPlaintext {
        #[command(flatten)]
        args: DataKeyPairArgs,
    },
    /// Turn on automatic rotation.
    EnableKeyRotation {
        /// Key id or key ARN.
        #[arg(long)]
        key_id: String,
        /// 90..=2560 days (default 365).
        #[arg(long)]
        rotation_period_in_days: Option<i32>,
    },
    /// Turn off automatic rotation.
    DisableKeyRotation {
        /// Key id or key ARN.
        #[arg(long)]
        key_id: String,
    },
    /// Show whether automatic rotation is on.
    GetKeyRotationStatus {
        /// Key id or key ARN.
        #[arg(long)]
        key_id: String,
    },
    /// Show when a key was last used for a successful cryptographic operation.
    GetKeyLastUsage {
        /// Key id or key ARN (not an alias).
        #[arg(long)]
        key_id: String,
    },
    /// Replicate a multi-Region primary key into another region (run against the primary's
    /// region); the replica is Creating until its material has arrived.
    ReplicateKey {
        /// Key id or key ARN of the primary (mrk-...).
        #[arg(long)]
        key_id: String,
        /// The region the replica is created in (e.g. us-west-2).
        #[arg(long)]
        replica_region: String,
        /// The replica's description (default: empty, as AWS).
        #[arg(long)]
        description: Option<String>,
        /// The replica's key policy JSON, or file://path (default: the default key policy).
        #[arg(long)]
        policy: Option<String>,
        /// Skip the policy lockout check.
        #[arg(long)]
        bypass_policy_lockout_safety_check: bool,
        /// TagKey=k,TagValue=v ... or JSON: the replica's tags.
        #[arg(long, num_args = 1..)]
        tags: Vec<String>,
    },
    /// Make a replica region the primary of a multi-Region key (run against the current
    /// primary's region).
    UpdatePrimaryRegion {
        /// Key id or key ARN (mrk-...).
        #[arg(long)]
        key_id: String,
        /// The region whose replica becomes the primary.
        #[arg(long)]
        primary_region: String,
    },
    /// Rotate a key now (completes in the background).
    RotateKeyOnDemand {
        /// Key id or key ARN.
        #[arg(long)]
        key_id: String,
    },
    /// List a key's completed rotations (all pages unless --limit, --marker or --no-paginate).
    ListKeyRotations {
        /// Key id or key ARN.
        #[arg(long)]
        key_id: String,
        /// ALL_KEY_MATERIAL or ROTATIONS_ONLY.
        #[arg(long)]
        include_key_material: Option<String>,
        /// Page size; disables automatic pagination.
        #[arg(long)]
        limit: Option<i32>,
        /// NextMarker of the previous page; disables automatic pagination.
        #[arg(long)]
        marker: Option<String>,
        /// Fetch one page only.
        #[arg(long)]
        no_paginate: bool,
    },
    /// Get a wrapping public key and import token for an EXTERNAL key (valid 24 hours).
    GetParametersForImport {
        /// Key id or key ARN.
        #[arg(long)]
        key_id: String,
        /// RSAES_OAEP_SHA_256, RSAES_OAEP_SHA_1, RSAES_PKCS1_V1_5, RSA_AES_KEY_WRAP_SHA_256, ...
        #[arg(long)]
        wrapping_algorithm: String,
        /// RSA_2048, RSA_3072 or RSA_4096.
        #[arg(long)]
        wrapping_key_spec: String,
    },
    /// Import key material wrapped with the public key from get-parameters-for-import.
    ImportKeyMaterial {
        /// Key id or key ARN.
        #[arg(long)]
        key_id: String,
        /// fileb://path (or file://path, or literal with --cli-binary-format base64).
        #[arg(long)]
        import_token: String,
        /// fileb://path (or file://path, or literal with --cli-binary-format base64).
        #[arg(long)]
        encrypted_key_material: String,
        /// KEY_MATERIAL_DOES_NOT_EXPIRE (default) or KEY_MATERIAL_EXPIRES.
        #[arg(long)]
        expiration_model: Option<String>,
        /// When the material expires: ISO 8601 (2030-01-31T00:00:00Z) or epoch seconds.
        #[arg(long)]
        valid_to: Option<String>,
    },
    /// Delete imported key material (the key becomes PendingImport).
    DeleteImportedKeyMaterial {
        /// Key id or key ARN.
        #[arg(long)]
        key_id: String,
    },
    /// Replace a key's key policy.
    PutKeyPolicy {
        /// Key id or key ARN.
        #[arg(long)]
        key_id: String,
        /// Key policy JSON, or file://path.
        #[arg(long)]
        policy: String,
        /// default (the only key policy a key has).
        #[arg(long)]
        policy_name: Option<String>,
        /// Skip the policy lockout safety check.
        #[arg(long)]
        bypass_policy_lockout_safety_check: bool,
    },
    /// Print a key's key policy.
    GetKeyPolicy {
        /// Key id or key ARN.
        #[arg(long)]
        key_id: String,
        /// default.
        #[arg(long)]
        policy_name: Option<String>,
    },
    /// List a key's key policy names (always "default").
    ListKeyPolicies {
        /// Key id or key ARN.
        #[arg(long)]
        key_id: String,
        /// Page size.
        #[arg(long)]
        limit: Option<i32>,
        /// NextMarker of the previous page.
        #[arg(long)]
        marker: Option<String>,
    },
    /// Create a grant; prints its id and a token that works at once.
    CreateGrant {
        /// Key id or key ARN.
        #[arg(long)]
        key_id: String,
        /// The principal the grant lets in.
        #[arg(long)]
        grantee_principal: String,
        /// Operations, space- or comma-separated: Encrypt,Decrypt,GenerateDataKey,...
        #[arg(long, num_args = 1.., value_delimiter = ',', required = true)]
        operations: Vec<String>,
        /// Who may retire the grant.
        #[arg(long)]
        retiring_principal: Option<String>,
        /// Grant name (makes create-grant idempotent).
        #[arg(long)]
        name: Option<String>,
        /// JSON {"EncryptionContextSubset":{..},"EncryptionContextEquals":{..}} or file://path.
        #[arg(long, conflicts_with_all = ["constraints_encryption_context_subset",
            "constraints_encryption_context_equals"])]
        constraints: Option<String>,
        /// Pairs the request's context must contain: k=v,k2=v2 or JSON.
        #[arg(long)]
        constraints_encryption_context_subset: Option<String>,
        /// The exact context required: k=v,k2=v2 or JSON ("" = no context).
        #[arg(long)]
        constraints_encryption_context_equals: Option<String>,
        /// Grant tokens (space- or comma-separated).
        #[arg(long, num_args = 1.., value_delimiter = ',')]
        grant_tokens: Vec<String>,
        /// Check permissions without performing the operation.
        #[arg(long)]
        dry_run: bool,
    },
    /// List a key's grants (all pages unless --limit, --marker or --no-paginate).
    ListGrants {
        /// Key id or key ARN.
        #[arg(long)]
        key_id: String,
        /// Only this grant.
        #[arg(long)]
        grant_id: Option<String>,
        /// Only grants for this grantee.
        #[arg(long)]
        grantee_principal: Option<String>,
        /// Page size; disables automatic pagination.
        #[arg(long)]
        limit: Option<i32>,
        /// NextMarker of the previous page; disables automatic pagination.
        #[arg(long)]
        marker: Option<String>,
        /// Fetch one page only.
        #[arg(long)]
        no_paginate: bool,
    },
    /// List the grants a principal may retire (all pages unless --limit, --marker or
    /// --no-paginate).
    ListRetirableGrants {
        /// The retiring principal.
        #[arg(long)]
        retiring_principal: String,
        /// Page size; disables automatic pagination.
        #[arg(long)]
        limit: Option<i32>,
        /// NextMarker of the previous page; disables automatic pagination.
        #[arg(long)]
        marker: Option<String>,
        /// Fetch one page only.
        #[arg(long)]
        no_paginate: bool,
    },
    /// Retire a grant, by --grant-token or by --key-id and --grant-id.
    RetireGrant {
        /// The token create-grant printed.
        #[arg(long, conflicts_with_all = ["key_id", "grant_id"],
            required_unless_present_all = ["key_id", "grant_id"])]
        grant_token: Option<String>,
        /// Key id or key ARN (with --grant-id).
        #[arg(long, requires = "grant_id")]
        key_id: Option<String>,
        /// Grant id (with --key-id).
        #[arg(long, requires = "key_id")]
        grant_id: Option<String>,
        /// Check permissions without performing the operation.
        #[arg(long)]
        dry_run: bool,
    },
    /// Revoke a grant.
    RevokeGrant {
        /// Key id or key ARN.
        #[arg(long)]
        key_id: String,
        /// Grant id.
        #[arg(long)]
        grant_id: String,
        /// Check permissions without performing the operation.
        #[arg(long)]
        dry_run: bool,
    },
    /// Identity management: principals, access keys, identity policies, client certificates.
    #[command(subcommand)]
    Iam(iam::IamCommand),
    /// The audit trail: lookup, export, offline verification.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Compliance checks over the caller's account's keys and audit trail.
    #[command(subcommand)]
    Compliance(compliance_cli::ComplianceCommand),
}

#[derive(Debug, Args)]
struct SignArgs {
    /// Key id, key ARN, alias name (alias/x) or alias ARN.
    #[arg(long)]
    key_id: String,
    /// fileb://path, file://path or literal text (1..=4096 bytes).
    #[arg(long)]
    message: String,
    /// RAW (default), DIGEST or EXTERNAL_MU.
    #[arg(long)]
    message_type: Option<String>,
    /// ECDSA_SHA_256, RSASSA_PSS_SHA_256, ED25519_SHA_512, ML_DSA_SHAKE_256, ...
    #[arg(long)]
    signing_algorithm: String,
    /// Grant tokens (space- or comma-separated).
    #[arg(long, num_args = 1.., value_delimiter = ',')]
    grant_tokens: Vec<String>,
    /// Check permissions without performing the operation.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Debug, Args)]
struct MacArgs {
    /// Key id, key ARN, alias name (alias/x) or alias ARN.
    #[arg(long)]
    key_id: String,
    /// fileb://path, file://path or literal text (1..=4096 bytes).
    #[arg(long)]
    message: String,
    /// HMAC_SHA_224, HMAC_SHA_256, HMAC_SHA_384 or HMAC_SHA_512.
    #[arg(long)]
    mac_algorithm: String,
    /// Grant tokens (space- or comma-separated).
    #[arg(long, num_args = 1.., value_delimiter = ',')]
    grant_tokens: Vec<String>,
    /// Check permissions without performing the operation.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Debug, Args)]
struct DataKeyPairArgs {
    /// The symmetric key that encrypts the private key.
    #[arg(long)]
    key_id: String,
    /// RSA_2048, RSA_3072, RSA_4096, ECC_NIST_P256, ECC_NIST_P384, ECC_NIST_P521,
    /// ECC_SECG_P256K1, ECC_NIST_EDWARDS25519, ML_KEM_512, ML_KEM_768 or ML_KEM_1024.
    #[arg(long)]
    key_pair_spec: String,
    #[command(flatten)]
    common: CryptoArgs,
}

#[derive(Debug, Args)]
struct CryptoArgs {
    /// k=v,k2=v2 or JSON {"k":"v"} or file://path.
    #[arg(long)]
    encryption_context: Option<String>,
    /// Grant tokens (space- or comma-separated).
    #[arg(long, num_args = 1.., value_delimiter = ',')]
    grant_tokens: Vec<String>,
    /// Check permissions without performing the operation.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Debug, Args)]
struct DataKeyArgs {
    /// Key id, key ARN, alias name (alias/x) or alias ARN.
    #[arg(long)]
    key_id: String,
    /// AES_256 or AES_128.
    #[arg(long)]
    key_spec: Option<String>,
    /// Number of bytes (1..=1024).
    #[arg(long)]
    number_of_bytes: Option<i32>,
    #[command(flatten)]
    common: CryptoArgs,
}

/// A bad command-line value: reported as the AWS CLI does, exit code 252.
#[derive(Debug)]
pub struct ParamError {
    param: &'static str,
    message: String,
}

impl std::fmt::Display for ParamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Error parsing parameter '--{}': {}",
            self.param, self.message
        )
    }
}

impl std::error::Error for ParamError {}

fn param_err(param: &'static str, message: impl Into<String>) -> ParamError {
    ParamError {
        param,
        message: message.into(),
    }
}

/// Reads a blob argument: `fileb://path` (raw bytes), `file://path` (the file's bytes), or a
/// literal (its UTF-8 bytes, or base64-decoded with [`BinaryFormat::Base64`]).
pub fn parse_blob(
    param: &'static str,
    arg: &str,
    format: BinaryFormat,
) -> Result<Vec<u8>, ParamError> {
    if let Some(path) = arg
        .strip_prefix("fileb://")
        .or_else(|| arg.strip_prefix("file://"))
    {
        return std::fs::read(path)
            .map_err(|e| param_err(param, format!("Unable to load paramfile {arg}: {e}")));
    }
    match format {
        BinaryFormat::Raw => Ok(arg.as_bytes().to_vec()),
        BinaryFormat::Base64 => base64::engine::general_purpose::STANDARD
            .decode(arg.trim())
            .map_err(|e| param_err(param, format!("Invalid base64: {e}"))),
    }
}

/// Reads a text argument that may be `file://path`.
fn load_text(param: &'static str, arg: &str) -> Result<String, ParamError> {
    match arg.strip_prefix("file://") {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| param_err(param, format!("Unable to load paramfile {arg}: {e}"))),
        None => Ok(arg.to_owned()),
    }
}

/// Parses an encryption context: JSON object of strings, or shorthand `k=v,k2=v2`.
pub fn parse_encryption_context(
    param: &'static str,
    arg: &str,
) -> Result<HashMap<String, String>, ParamError> {
    let text = load_text(param, arg)?;
    let text = text.trim();
    if text.starts_with('{') {
        return serde_json::from_str::<HashMap<String, String>>(text).map_err(|e| {
            param_err(
                param,
                format!("Invalid JSON (expected an object of strings): {e}"),
            )
        });
    }
    let mut ctx = HashMap::new();
    if text.is_empty() {
        return Ok(ctx);
    }
    for pair in text.split(',') {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| param_err(param, format!("Expected: '=', received: {pair:?}")))?;
        let k = k.trim();
        if k.is_empty() {
            return Err(param_err(param, "Empty key in encryption context"));
        }
        if ctx.insert(k.to_owned(), v.trim().to_owned()).is_some() {
            return Err(param_err(param, format!("Duplicate key {k:?}")));
        }
    }
    Ok(ctx)
}

/// Parses `--tags` values: each either shorthand `TagKey=k,TagValue=v` or a JSON array of
/// `{"TagKey":..,"TagValue":..}` objects.
pub fn parse_tags(param: &'static str, args: &[String]) -> Result<Vec<proto::Tag>, ParamError> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase", deny_unknown_fields)]
    struct JsonTag {
        tag_key: String,
        tag_value: String,
    }
    let mut tags = Vec::new();
    for arg in args {
        let text = load_text(param, arg)?;
        let text = text.trim();
        if text.starts_with('[') || text.starts_with('{') {
            let parsed: Vec<JsonTag> = if text.starts_with('[') {
                serde_json::from_str(text)
            } else {
                serde_json::from_str(text).map(|t| vec![t])
            }
            .map_err(|e| param_err(param, format!("Invalid JSON: {e}")))?;
            tags.extend(parsed.into_iter().map(|t| proto::Tag {
                tag_key: t.tag_key,
                tag_value: t.tag_value,
            }));
            continue;
        }
        let (mut key, mut value) = (None, None);
        for part in text.split(',') {
            match part.split_once('=') {
                Some(("TagKey", k)) if key.is_none() => key = Some(k.to_owned()),
                Some(("TagValue", v)) if value.is_none() => value = Some(v.to_owned()),
                _ => {
                    return Err(param_err(
                        param,
                        format!("Expected TagKey=<key>,TagValue=<value>, received: {text:?}"),
                    ))
                }
            }
        }
        let tag_key = key.ok_or_else(|| param_err(param, "Missing TagKey"))?;
        tags.push(proto::Tag {
            tag_key,
            // AWS allows an empty tag value.
            tag_value: value.unwrap_or_default(),
        });
    }
    Ok(tags)
}

/// Runs kmsctl with `args` (including the program name), writing output and errors to the
/// given streams; returns the process exit code.
pub async fn run<I, T>(args: I, out: &mut dyn Write, err: &mut dyn Write) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { 0 };
            let rendered = e.render().to_string();
            let _ = if e.use_stderr() {
                err.write_all(rendered.as_bytes())
            } else {
                out.write_all(rendered.as_bytes())
            };
            return code;
        }
    };
    let op = cli.command.operation();
    let result = match build_client(&cli.global) {
        Ok(kms) => execute(&kms, &cli.global, cli.command).await,
        Err(e) => Err(Failure::Sdk(e)),
    };
    match result {
        Ok(None) => 0,
        Ok(Some(value)) => match render(&value, &cli.global) {
            Ok(text) => {
                let _ = writeln!(out, "{text}");
                0
            }
            Err(e) => {
                let _ = writeln!(err, "{e}");
                EXIT_USAGE
            }
        },
        Err(Failure::Param(e)) => {
            let _ = writeln!(err, "\n{e}\n");
            EXIT_USAGE
        }
        Err(Failure::Local { message, code }) => {
            let _ = writeln!(err, "\n{message}\n");
            code
        }
        Err(Failure::Findings { value, code }) => {
            if let Ok(text) = render(&value, &cli.global) {
                let _ = writeln!(out, "{text}");
            }
            code
        }
        Err(Failure::Sdk(e)) => match &e {
            Error::Service {
                error_type,
                message,
                ..
            } => {
                let _ = writeln!(
                    err,
                    "\nAn error occurred ({error_type}) when calling the {op} operation: {message}"
                );
                EXIT_SERVICE_ERROR
            }
            Error::Transport { message, .. } => {
                let _ = writeln!(
                    err,
                    "\nCould not connect to the endpoint when calling the {op} operation: {message}"
                );
                EXIT_OTHER_ERROR
            }
            _ => {
                let _ = writeln!(err, "\n{}", e.message());
                EXIT_OTHER_ERROR
            }
        },
    }
}

enum Failure {
    Param(ParamError),
    Sdk(Error),
    /// A check or local I/O failed (`audit verify`, `audit export`): the message on stderr,
    /// this exit code.
    Local {
        message: String,
        code: i32,
    },
    /// A result printed like a success, then this exit code (`compliance report` findings).
    Findings {
        value: Value,
        code: i32,
    },
}

impl From<ParamError> for Failure {
    fn from(e: ParamError) -> Self {
        Failure::Param(e)
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Sdk(e)
    }
}

fn build_client(g: &GlobalArgs) -> Result<Client, Error> {
    let mut b = ClientBuilder::from_env();
    if let Some(path) = &g.env_file {
        b = b.env_file(path)?;
    }
    if !g.endpoint.is_empty() {
        b = b.endpoints(g.endpoint.iter().filter(|e| !e.trim().is_empty()).cloned());
    }
    if let Some(p) = &g.ca_bundle {
        b = b.ca_bundle_file(p);
    }
    if let Some(p) = &g.client_cert {
        b = b.client_cert_file(p);
    }
    if let Some(p) = &g.client_key {
        b = b.client_key_file(p);
    }
    if let Some(n) = &g.server_name {
        b = b.server_name(n);
    }
    if let Some(r) = &g.region {
        b = b.region(r);
    }
    if let Some(n) = g.max_attempts {
        b = b.max_attempts(n);
    }
    if let Some(s) = g.cli_connect_timeout {
        b = b.connect_timeout(Duration::from_secs(s));
    }
    if let Some(s) = g.cli_read_timeout {
        b = b.request_timeout(Duration::from_secs(s));
    }
    b.build()
}

impl Command {
    /// The AWS operation name, for error messages.
    fn operation(&self) -> &'static str {
        match self {
            Command::CreateKey { .. } => "CreateKey",
            Command::DescribeKey { .. } => "DescribeKey",
            Command::ListKeys { .. } => "ListKeys",
            Command::EnableKey { .. } => "EnableKey",
            Command::DisableKey { .. } => "DisableKey",
            Command::UpdateKeyDescription { .. } => "UpdateKeyDescription",
            Command::ScheduleKeyDeletion { .. } => "ScheduleKeyDeletion",
            Command::CancelKeyDeletion { .. } => "CancelKeyDeletion",
            Command::CreateAlias { .. } => "CreateAlias",
            Command::UpdateAlias { .. } => "UpdateAlias",
            Command::DeleteAlias { .. } => "DeleteAlias",
            Command::ListAliases { .. } => "ListAliases",
            Command::TagResource { .. } => "TagResource",
            Command::UntagResource { .. } => "UntagResource",
            Command::ListResourceTags { .. } => "ListResourceTags",
            Command::Encrypt { .. } => "Encrypt",
            Command::Decrypt { .. } => "Decrypt",
            Command::ReEncrypt { .. } => "ReEncrypt",
            Command::GenerateDataKey { .. } => "GenerateDataKey",
            Command::GenerateDataKeyWithoutPlaintext { .. } => "GenerateDataKeyWithoutPlaintext",
            Command::GenerateRandom { .. } => "GenerateRandom",
            Command::GetPublicKey { .. } => "GetPublicKey",
            Command::Sign { .. } => "Sign",
            Command::Verify { .. } => "Verify",
            Command::GenerateMac { .. } => "GenerateMac",
            Command::VerifyMac { .. } => "VerifyMac",
            Command::DeriveSharedSecret { .. } => "DeriveSharedSecret",
            Command::GenerateDataKeyPair { .. } => "GenerateDataKeyPair",
            Command::GenerateDataKeyPairWithoutPlaintext { .. } => {
                "GenerateDataKeyPairWithoutPlaintext"
            }
            Command::EnableKeyRotation { .. } => "EnableKeyRotation",
            Command::DisableKeyRotation { .. } => "DisableKeyRotation",
            Command::GetKeyRotationStatus { .. } => "GetKeyRotationStatus",
            Command::GetKeyLastUsage { .. } => "GetKeyLastUsage",
            Command::ReplicateKey { .. } => "ReplicateKey",
            Command::UpdatePrimaryRegion { .. } => "UpdatePrimaryRegion",
            Command::RotateKeyOnDemand { .. } => "RotateKeyOnDemand",
            Command::ListKeyRotations { .. } => "ListKeyRotations",
            Command::GetParametersForImport { .. } => "GetParametersForImport",
            Command::ImportKeyMaterial { .. } => "ImportKeyMaterial",
            Command::DeleteImportedKeyMaterial { .. } => "DeleteImportedKeyMaterial",
            Command::PutKeyPolicy { .. } => "PutKeyPolicy",
            Command::GetKeyPolicy { .. } => "GetKeyPolicy",
            Command::ListKeyPolicies { .. } => "ListKeyPolicies",
            Command::CreateGrant { .. } => "CreateGrant",
            Command::ListGrants { .. } => "ListGrants",
            Command::ListRetirableGrants { .. } => "ListRetirableGrants",
            Command::RetireGrant { .. } => "RetireGrant",
            Command::RevokeGrant { .. } => "RevokeGrant",
            Command::Iam(cmd) => cmd.operation(),
            Command::Audit(cmd) => cmd.operation(),
            Command::Compliance(cmd) => cmd.operation(),
        }
    }
}

fn context(
    param: &'static str,
    arg: &Option<String>,
) -> Result<HashMap<String, String>, ParamError> {
    match arg {
        Some(a) => parse_encryption_context(param, a),
        None => Ok(HashMap::new()),
    }
}

/// Runs one subcommand; `None` means the operation has no output (the AWS CLI prints nothing).
async fn execute(kms: &Client, g: &GlobalArgs, cmd: Command) -> Result<Option<Value>, Failure> {
    let fmt = g.cli_binary_format;
    let v = match cmd {
        Command::CreateKey {
            description,
            key_usage,
            key_spec,
            customer_master_key_spec,
            origin,
            policy,
            bypass_policy_lockout_safety_check,
            tags,
            multi_region,
        } => {
            let policy = policy.map(|p| load_text("policy", &p)).transpose()?;
            let r = kms
                .create_key()
                .description(description.unwrap_or_default())
                .set_key_usage(key_usage)
                .set_key_spec(key_spec)
                .set_customer_master_key_spec(customer_master_key_spec)
                .set_origin(origin)
                .set_policy(policy)
                .bypass_policy_lockout_safety_check(bypass_policy_lockout_safety_check)
                .set_tags(parse_tags("tags", &tags)?)
                .multi_region(multi_region)
                .send()
                .await?;
            json!({ "KeyMetadata": r.key_metadata.as_ref().map(key_metadata_json) })
        }
        Command::DescribeKey {
            key_id,
            grant_tokens,
        } => {
            let r = kms
                .describe_key()
                .key_id(key_id)
                .set_grant_tokens(grant_tokens)
                .send()
                .await?;
            json!({ "KeyMetadata": r.key_metadata.as_ref().map(key_metadata_json) })
        }
        Command::ListKeys {
            limit,
            marker,
            no_paginate,
        } => {
            let b = kms.list_keys().set_limit(limit).set_marker(marker.clone());
            let key_json =
                |k: &proto::KeyListEntry| json!({ "KeyId": k.key_id, "KeyArn": k.key_arn });
            if limit.is_none() && marker.is_none() && !no_paginate {
                let keys = b.send_all().await?;
                page_json("Keys", keys.iter().map(key_json).collect(), None)
            } else {
                let r = b.send().await?;
                let next = r.next_marker.filter(|_| r.truncated);
                page_json("Keys", r.keys.iter().map(key_json).collect(), next)
            }
        }
        Command::EnableKey { key_id } => {
            kms.enable_key().key_id(key_id).send().await?;
            return Ok(None);
        }
        Command::DisableKey { key_id } => {
            kms.disable_key().key_id(key_id).send().await?;
            return Ok(None);
        }
        Command::UpdateKeyDescription {
            key_id,
            description,
        } => {
            kms.update_key_description()
                .key_id(key_id)
                .description(description)
                .send()
                .await?;
            return Ok(None);
        }
        Command::ScheduleKeyDeletion {
            key_id,
            pending_window_in_days,
        } => {
            let r = kms
                .schedule_key_deletion()
                .key_id(key_id)
                .set_pending_window_in_days(pending_window_in_days)
                .send()
                .await?;
            let mut m = Map::new();
            m.insert("KeyId".into(), json!(r.key_id));
            if let Some(d) = r.deletion_date {
                m.insert("DeletionDate".into(), json!(iso8601(d)));
            }
            m.insert("KeyState".into(), json!(r.key_state));
            if let Some(w) = r.pending_window_in_days {
                m.insert("PendingWindowInDays".into(), json!(w));
            }
            Value::Object(m)
        }
        Command::CancelKeyDeletion { key_id } => {
            let r = kms.cancel_key_deletion().key_id(key_id).send().await?;
            json!({ "KeyId": r.key_id })
        }
        Command::CreateAlias {
            alias_name,
            target_key_id,
        } => {
            kms.create_alias()
                .alias_name(alias_name)
                .target_key_id(target_key_id)
                .send()
                .await?;
            return Ok(None);
        }
        Command::UpdateAlias {
            alias_name,
            target_key_id,
        } => {
            kms.update_alias()
                .alias_name(alias_name)
                .target_key_id(target_key_id)
                .send()
                .await?;
            return Ok(None);
        }
        Command::DeleteAlias { alias_name } => {
            kms.delete_alias().alias_name(alias_name).send().await?;
            return Ok(None);
        }
        Command::ListAliases {
            key_id,
            limit,
            marker,
            no_paginate,
        } => {
            let b = kms
                .list_aliases()
                .set_key_id(key_id)
                .set_limit(limit)
                .set_marker(marker.clone());
            if limit.is_none() && marker.is_none() && !no_paginate {
                let aliases = b.send_all().await?;
                page_json("Aliases", aliases.iter().map(alias_json).collect(), None)
            } else {
                let r = b.send().await?;
                let next = r.next_marker.filter(|_| r.truncated);
                page_json("Aliases", r.aliases.iter().map(alias_json).collect(), next)
            }
        }
        Command::TagResource { key_id, tags } => {
            kms.tag_resource()
                .key_id(key_id)
                .set_tags(parse_tags("tags", &tags)?)
                .send()
                .await?;
            return Ok(None);
        }
        Command::UntagResource { key_id, tag_keys } => {
            kms.untag_resource()
                .key_id(key_id)
                .set_tag_keys(tag_keys)
                .send()
                .await?;
            return Ok(None);
        }
        Command::ListResourceTags {
            key_id,
            limit,
            marker,
        } => {
            let r = kms
                .list_resource_tags()
                .key_id(key_id)
                .set_limit(limit)
                .set_marker(marker)
                .send()
                .await?;
            let tags = r
                .tags
                .iter()
                .map(|t| json!({ "TagKey": t.tag_key, "TagValue": t.tag_value }))
                .collect();
            page_json("Tags", tags, r.next_marker.filter(|_| r.truncated))
        }
        Command::Encrypt {
            key_id,
            plaintext,
            common,
            encryption_algorithm,
        } => {
            let r = kms
                .encrypt()
                .key_id(key_id)
                .plaintext(parse_blob("plaintext", &plaintext, fmt)?)
                .set_encryption_context(context("encryption-context", &common.encryption_context)?)
                .set_grant_tokens(common.grant_tokens)
                .set_encryption_algorithm(encryption_algorithm)
                .dry_run(common.dry_run)
                .send()
                .await?;
            json!({
                "CiphertextBlob": b64(&r.ciphertext_blob),
                "KeyId": r.key_id,
                "EncryptionAlgorithm": r.encryption_algorithm,
            })
        }
        Command::Decrypt {
            ciphertext_blob,
            key_id,
            common,
            encryption_algorithm,
        } => {
            let r = kms
                .decrypt()
                .ciphertext_blob(parse_blob("ciphertext-blob", &ciphertext_blob, fmt)?)
                .set_key_id(key_id)
                .set_encryption_context(context("encryption-context", &common.encryption_context)?)
                .set_grant_tokens(common.grant_tokens)
                .set_encryption_algorithm(encryption_algorithm)
                .dry_run(common.dry_run)
                .send()
                .await?;
            json!({
                "KeyId": r.key_id,
                "Plaintext": b64(&r.plaintext),
                "EncryptionAlgorithm": r.encryption_algorithm,
            })
        }
        Command::ReEncrypt {
            ciphertext_blob,
            source_encryption_context,
            source_key_id,
            destination_key_id,
            destination_encryption_context,
            source_encryption_algorithm,
            destination_encryption_algorithm,
            grant_tokens,
            dry_run,
        } => {
            let r = kms
                .re_encrypt()
                .ciphertext_blob(parse_blob("ciphertext-blob", &ciphertext_blob, fmt)?)
                .set_source_encryption_context(context(
                    "source-encryption-context",
                    &source_encryption_context,
                )?)
                .set_source_key_id(source_key_id)
                .destination_key_id(destination_key_id)
                .set_destination_encryption_context(context(
                    "destination-encryption-context",
                    &destination_encryption_context,
                )?)
                .set_source_encryption_algorithm(source_encryption_algorithm)
                .set_destination_encryption_algorithm(destination_encryption_algorithm)
                .set_grant_tokens(grant_tokens)
                .dry_run(dry_run)
                .send()
                .await?;
            json!({
                "CiphertextBlob": b64(&r.ciphertext_blob),
                "SourceKeyId": r.source_key_id,
                "KeyId": r.key_id,
                "SourceEncryptionAlgorithm": r.source_encryption_algorithm,
                "DestinationEncryptionAlgorithm": r.destination_encryption_algorithm,
            })
        }
        Command::GenerateDataKey { args } => {
            let r = kms
                .generate_data_key()
                .key_id(args.key_id)
                .set_key_spec(args.key_spec)
                .set_number_of_bytes(args.number_of_bytes)
                .set_encryption_context(context(
                    "encryption-context",
                    &args.common.encryption_context,
                )?)
                .set_grant_tokens(args.common.grant_tokens)
                .dry_run(args.common.dry_run)
                .send()
                .await?;
            json!({
                "CiphertextBlob": b64(&r.ciphertext_blob),
                "Plaintext": b64(&r.plaintext),
                "KeyId": r.key_id,
            })
        }
        Command::GenerateDataKeyWithoutPlaintext { args } => {
            let r = kms
                .generate_data_key_without_plaintext()
                .key_id(args.key_id)
                .set_key_spec(args.key_spec)
                .set_number_of_bytes(args.number_of_bytes)
                .set_encryption_context(context(
                    "encryption-context",
                    &args.common.encryption_context,
                )?)
                .set_grant_tokens(args.common.grant_tokens)
                .dry_run(args.common.dry_run)
                .send()
                .await?;
            json!({ "CiphertextBlob": b64(&r.ciphertext_blob), "KeyId": r.key_id })
        }
        Command::GenerateRandom { number_of_bytes } => {
            let r = kms
                .generate_random()
                .set_number_of_bytes(number_of_bytes)
                .send()
                .await?;
            json!({ "Plaintext": b64(&r.plaintext) })
        }
        Command::GetPublicKey {
            key_id,
            grant_tokens,
        } => {
            let r = kms
                .get_public_key()
                .key_id(key_id)
                .set_grant_tokens(grant_tokens)
                .send()
                .await?;
            let mut m = Map::new();
            m.insert("KeyId".into(), json!(r.key_id));
            m.insert("PublicKey".into(), json!(b64(&r.public_key)));
            m.insert(
                "CustomerMasterKeySpec".into(),
                json!(r.customer_master_key_spec),
            );
            m.insert("KeySpec".into(), json!(r.key_spec));
            m.insert("KeyUsage".into(), json!(r.key_usage));
            insert_lists(
                &mut m,
                [
                    ("EncryptionAlgorithms", &r.encryption_algorithms),
                    ("SigningAlgorithms", &r.signing_algorithms),
                    ("KeyAgreementAlgorithms", &r.key_agreement_algorithms),
                ],
            );
            Value::Object(m)
        }
        Command::Sign { args } => {
            let r = kms
                .sign()
                .key_id(args.key_id)
                .message(parse_blob("message", &args.message, fmt)?)
                .set_message_type(args.message_type)
                .signing_algorithm(args.signing_algorithm)
                .set_grant_tokens(args.grant_tokens)
                .dry_run(args.dry_run)
                .send()
                .await?;
            json!({
                "KeyId": r.key_id,
                "Signature": b64(&r.signature),
                "SigningAlgorithm": r.signing_algorithm,
            })
        }
        Command::Verify { args, signature } => {
            let r = kms
                .verify()
                .key_id(args.key_id)
                .message(parse_blob("message", &args.message, fmt)?)
                .set_message_type(args.message_type)
                .signature(parse_blob("signature", &signature, fmt)?)
                .signing_algorithm(args.signing_algorithm)
                .set_grant_tokens(args.grant_tokens)
                .dry_run(args.dry_run)
                .send()
                .await?;
            json!({
                "KeyId": r.key_id,
                "SignatureValid": r.signature_valid,
                "SigningAlgorithm": r.signing_algorithm,
            })
        }
        Command::GenerateMac { args } => {
            let r = kms
                .generate_mac()
                .key_id(args.key_id)
                .message(parse_blob("message", &args.message, fmt)?)
                .mac_algorithm(args.mac_algorithm)
                .set_grant_tokens(args.grant_tokens)
                .dry_run(args.dry_run)
                .send()
                .await?;
            json!({
                "Mac": b64(&r.mac),
                "MacAlgorithm": r.mac_algorithm,
                "KeyId": r.key_id,
            })
        }
        Command::VerifyMac { args, mac } => {
            let r = kms
                .verify_mac()
                .key_id(args.key_id)
                .message(parse_blob("message", &args.message, fmt)?)
                .mac_algorithm(args.mac_algorithm)
                .mac(parse_blob("mac", &mac, fmt)?)
                .set_grant_tokens(args.grant_tokens)
                .dry_run(args.dry_run)
                .send()
                .await?;
            json!({
                "KeyId": r.key_id,
                "MacValid": r.mac_valid,
                "MacAlgorithm": r.mac_algorithm,
            })
        }
        Command::DeriveSharedSecret {
            key_id,
            key_agreement_algorithm,
            public_key,
            grant_tokens,
            dry_run,
        } => {
            let r = kms
                .derive_shared_secret()
                .key_id(key_id)
                .key_agreement_algorithm(key_agreement_algorithm)
                .public_key(parse_blob("public-key", &public_key, fmt)?)
                .set_grant_tokens(grant_tokens)
                .dry_run(dry_run)
                .send()
                .await?;
            let mut m = Map::new();
            m.insert("KeyId".into(), json!(r.key_id));
            m.insert("SharedSecret".into(), json!(b64(&r.shared_secret)));
            if let Some(c) = &r.ciphertext_for_recipient {
                m.insert("CiphertextForRecipient".into(), json!(b64(c)));
            }
            m.insert(
                "KeyAgreementAlgorithm".into(),
                json!(r.key_agreement_algorithm),
            );
            m.insert("KeyOrigin".into(), json!(r.key_origin));
            Value::Object(m)
        }
        Command::GenerateDataKeyPair { args } => {
            let r = kms
                .generate_data_key_pair()
                .key_id(args.key_id)
                .key_pair_spec(args.key_pair_spec)
                .set_encryption_context(context(
                    "encryption-context",
                    &args.common.encryption_context,
                )?)
                .set_grant_tokens(args.common.grant_tokens)
                .dry_run(args.common.dry_run)
                .send()
                .await?;
            json!({
                "PrivateKeyCiphertextBlob": b64(&r.private_key_ciphertext_blob),
                "PrivateKeyPlaintext": b64(&r.private_key_plaintext),
                "PublicKey": b64(&r.public_key),
                "KeyId": r.key_id,
                "KeyPairSpec": r.key_pair_spec,
            })
        }
        Command::GenerateDataKeyPairWithoutPlaintext { args } => {
            let r = kms
                .generate_data_key_pair_without_plaintext()
                .key_id(args.key_id)
                .key_pair_spec(args.key_pair_spec)
                .set_encryption_context(context(
                    "encryption-context",
                    &args.common.encryption_context,
                )?)
                .set_grant_tokens(args.common.grant_tokens)
                .dry_run(args.common.dry_run)
                .send()
                .await?;
            json!({
                "PrivateKeyCiphertextBlob": b64(&r.private_key_ciphertext_blob),
                "PublicKey": b64(&r.public_key),
                "KeyId": r.key_id,
                "KeyPairSpec": r.key_pair_spec,
            })
        }
        Command::EnableKeyRotation {
            key_id,
            rotation_period_in_days,
        } => {
            kms.enable_key_rotation()
                .key_id(key_id)
                .set_rotation_period_in_days(rotation_period_in_days)
                .send()
                .await?;
            return Ok(None);
        }
        Command::DisableKeyRotation { key_id } => {
            kms.disable_key_rotation().key_id(key_id).send().await?;
            return Ok(None);
        }
        Command::GetKeyLastUsage { key_id } => {
            let r = kms.get_key_last_usage().key_id(key_id).send().await?;
            let mut m = Map::new();
            m.insert("KeyId".into(), json!(r.key_id));
            if let Some(u) = r.key_last_usage {
                m.insert(
                    "KeyLastUsage".into(),
                    json!({
                        "Operation": u.operation,
                        "Timestamp": iso8601(u.timestamp),
                        "CloudTrailEventId": u.cloud_trail_event_id,
                        "KmsRequestId": u.kms_request_id,
                    }),
                );
            }
            if let Some(d) = r.tracking_start_date {
                m.insert("TrackingStartDate".into(), json!(iso8601(d)));
            }
            m.insert(
                "KeyCreationDate".into(),
                json!(iso8601(r.key_creation_date)),
            );
            Value::Object(m)
        }
        Command::GetKeyRotationStatus { key_id } => {
            let r = kms.get_key_rotation_status().key_id(key_id).send().await?;
            let mut m = Map::new();
            m.insert("KeyRotationEnabled".into(), json!(r.key_rotation_enabled));
            m.insert("KeyId".into(), json!(r.key_id));
            if let Some(d) = r.rotation_period_in_days {
                m.insert("RotationPeriodInDays".into(), json!(d));
            }
            if let Some(d) = r.next_rotation_date {
                m.insert("NextRotationDate".into(), json!(iso8601(d)));
            }
            if let Some(d) = r.on_demand_rotation_start_date {
                m.insert("OnDemandRotationStartDate".into(), json!(iso8601(d)));
            }
            Value::Object(m)
        }
        Command::ReplicateKey {
            key_id,
            replica_region,
            description,
            policy,
            bypass_policy_lockout_safety_check,
            tags,
        } => {
            let policy = policy.map(|p| load_text("policy", &p)).transpose()?;
            let r = kms
                .replicate_key()
                .key_id(key_id)
                .replica_region(replica_region)
                .description(description.unwrap_or_default())
                .set_policy(policy)
                .bypass_policy_lockout_safety_check(bypass_policy_lockout_safety_check)
                .set_tags(parse_tags("tags", &tags)?)
                .send()
                .await?;
            let tags: Vec<Value> = r
                .replica_tags
                .iter()
                .map(|t| json!({ "TagKey": t.tag_key, "TagValue": t.tag_value }))
                .collect();
            json!({
                "ReplicaKeyMetadata": r.replica_key_metadata.as_ref().map(key_metadata_json),
                "ReplicaPolicy": r.replica_policy,
                "ReplicaTags": tags,
            })
        }
        Command::UpdatePrimaryRegion {
            key_id,
            primary_region,
        } => {
            kms.update_primary_region()
                .key_id(key_id)
                .primary_region(primary_region)
                .send()
                .await?;
            return Ok(None);
        }
        Command::RotateKeyOnDemand { key_id } => {
            let r = kms.rotate_key_on_demand().key_id(key_id).send().await?;
            json!({ "KeyId": r.key_id })
        }
        Command::ListKeyRotations {
            key_id,
            include_key_material,
            limit,
            marker,
            no_paginate,
        } => {
            let b = kms
                .list_key_rotations()
                .key_id(key_id)
                .set_include_key_material(include_key_material)
                .set_limit(limit)
                .set_marker(marker.clone());
            if limit.is_none() && marker.is_none() && !no_paginate {
                let all = b.send_all().await?;
                page_json("Rotations", all.iter().map(rotation_json).collect(), None)
            } else {
                let r = b.send().await?;
                let next = r.next_marker.filter(|_| r.truncated);
                page_json(
                    "Rotations",
                    r.rotations.iter().map(rotation_json).collect(),
                    next,
                )
            }
        }
        Command::GetParametersForImport {
            key_id,
            wrapping_algorithm,
            wrapping_key_spec,
        } => {
            let r = kms
                .get_parameters_for_import()
                .key_id(key_id)
                .wrapping_algorithm(wrapping_algorithm)
                .wrapping_key_spec(wrapping_key_spec)
                .send()
                .await?;
            let mut m = Map::new();
            m.insert("KeyId".into(), json!(r.key_id));
            m.insert("ImportToken".into(), json!(b64(&r.import_token)));
            m.insert("PublicKey".into(), json!(b64(&r.public_key)));
            if let Some(d) = r.parameters_valid_to {
                m.insert("ParametersValidTo".into(), json!(iso8601(d)));
            }
            Value::Object(m)
        }
        Command::ImportKeyMaterial {
            key_id,
            import_token,
            encrypted_key_material,
            expiration_model,
            valid_to,
        } => {
            let import_token = parse_blob("import-token", &import_token, fmt)?;
            let encrypted_key_material =
                parse_blob("encrypted-key-material", &encrypted_key_material, fmt)?;
            let valid_to = valid_to
                .map(|v| parse_timestamp("valid-to", &v))
                .transpose()?;
            kms.import_key_material()
                .key_id(key_id)
                .import_token(import_token)
                .encrypted_key_material(encrypted_key_material)
                .set_expiration_model(expiration_model)
                .set_valid_to(valid_to)
                .send()
                .await?;
            return Ok(None);
        }
        Command::DeleteImportedKeyMaterial { key_id } => {
            kms.delete_imported_key_material()
                .key_id(key_id)
                .send()
                .await?;
            return Ok(None);
        }
        Command::PutKeyPolicy {
            key_id,
            policy,
            policy_name,
            bypass_policy_lockout_safety_check,
        } => {
            kms.put_key_policy()
                .key_id(key_id)
                .policy(load_text("policy", &policy)?)
                .set_policy_name(policy_name)
                .bypass_policy_lockout_safety_check(bypass_policy_lockout_safety_check)
                .send()
                .await?;
            return Ok(None);
        }
        Command::GetKeyPolicy {
            key_id,
            policy_name,
        } => {
            let r = kms
                .get_key_policy()
                .key_id(key_id)
                .set_policy_name(policy_name)
                .send()
                .await?;
            json!({ "Policy": r.policy, "PolicyName": r.policy_name })
        }
        Command::ListKeyPolicies {
            key_id,
            limit,
            marker,
        } => {
            let r = kms
                .list_key_policies()
                .key_id(key_id)
                .set_limit(limit)
                .set_marker(marker)
                .send()
                .await?;
            let names = r.policy_names.iter().map(|n| json!(n)).collect();
            page_json("PolicyNames", names, r.next_marker.filter(|_| r.truncated))
        }
        Command::CreateGrant {
            key_id,
            grantee_principal,
            operations,
            retiring_principal,
            name,
            constraints,
            constraints_encryption_context_subset,
            constraints_encryption_context_equals,
            grant_tokens,
            dry_run,
        } => {
            let mut b = kms
                .create_grant()
                .key_id(key_id)
                .grantee_principal(grantee_principal)
                .operations(operations)
                .set_retiring_principal(retiring_principal)
                .set_name(name)
                .set_grant_tokens(grant_tokens)
                .dry_run(dry_run);
            if let Some(c) = constraints {
                b = b.set_constraints(Some(parse_grant_constraints("constraints", &c)?));
            }
            if let Some(c) = constraints_encryption_context_subset {
                b = b.set_constraints_encryption_context_subset(parse_encryption_context(
                    "constraints-encryption-context-subset",
                    &c,
                )?);
            }
            if let Some(c) = constraints_encryption_context_equals {
                b = b.set_constraints_encryption_context_equals(parse_encryption_context(
                    "constraints-encryption-context-equals",
                    &c,
                )?);
            }
            let r = b.send().await?;
            json!({ "GrantToken": r.grant_token, "GrantId": r.grant_id })
        }
        Command::ListGrants {
            key_id,
            grant_id,
            grantee_principal,
            limit,
            marker,
            no_paginate,
        } => {
            let b = kms
                .list_grants()
                .key_id(key_id)
                .set_grant_id(grant_id)
                .set_grantee_principal(grantee_principal)
                .set_limit(limit)
                .set_marker(marker.clone());
            if limit.is_none() && marker.is_none() && !no_paginate {
                let all = b.send_all().await?;
                page_json("Grants", all.iter().map(grant_json).collect(), None)
            } else {
                let r = b.send().await?;
                let next = r.next_marker.filter(|_| r.truncated);
                page_json("Grants", r.grants.iter().map(grant_json).collect(), next)
            }
        }
        Command::ListRetirableGrants {
            retiring_principal,
            limit,
            marker,
            no_paginate,
        } => {
            let b = kms
                .list_retirable_grants()
                .retiring_principal(retiring_principal)
                .set_limit(limit)
                .set_marker(marker.clone());
            if limit.is_none() && marker.is_none() && !no_paginate {
                let all = b.send_all().await?;
                page_json("Grants", all.iter().map(grant_json).collect(), None)
            } else {
                let r = b.send().await?;
                let next = r.next_marker.filter(|_| r.truncated);
                page_json("Grants", r.grants.iter().map(grant_json).collect(), next)
            }
        }
        Command::RetireGrant {
            grant_token,
            key_id,
            grant_id,
            dry_run,
        } => {
            kms.retire_grant()
                .set_grant_token(grant_token)
                .set_key_id(key_id)
                .set_grant_id(grant_id)
                .dry_run(dry_run)
                .send()
                .await?;
            return Ok(None);
        }
        Command::RevokeGrant {
            key_id,
            grant_id,
            dry_run,
        } => {
            kms.revoke_grant()
                .key_id(key_id)
                .grant_id(grant_id)
                .dry_run(dry_run)
                .send()
                .await?;
            return Ok(None);
        }
        Command::Iam(cmd) => return iam::execute(kms, g, cmd).await,
        Command::Audit(cmd) => return audit::execute(kms, g, cmd).await,
        Command::Compliance(cmd) => return compliance_cli::execute(kms, g, cmd).await,
    };
    Ok(Some(v))
}

/// Parses a timestamp argument as the AWS CLI does: epoch seconds, or ISO 8601 in UTC
/// (`2030-01-31`, `2030-01-31T12:00:00Z`, `2030-01-31T12:00:00.5+00:00`).
pub fn parse_timestamp(param: &'static str, arg: &str) -> Result<f64, ParamError> {
    let arg = arg.trim();
    let bad = || {
        param_err(
            param,
            format!("Invalid timestamp {arg:?}: expected epoch seconds or ISO 8601 in UTC"),
        )
    };
    if let Ok(secs) = arg.parse::<f64>() {
        return secs.is_finite().then_some(secs).ok_or_else(bad);
    }
    let (date, time) = match arg.split_once(['T', ' ']) {
        Some((d, t)) => (d, t),
        None => (arg, "00:00:00Z"),
    };
    let time = time
        .strip_suffix('Z')
        .or_else(|| time.strip_suffix("+00:00"))
        .ok_or_else(bad)?;
    let num = |s: &str| s.parse::<i64>().map_err(|_| bad());
    let mut d = date.split('-');
    let (year, month, day) = match (d.next(), d.next(), d.next(), d.next()) {
        (Some(y), Some(m), Some(dd), None) => (num(y)?, num(m)?, num(dd)?),
        _ => return Err(bad()),
    };
    let mut t = time.split(':');
    let (hour, minute, second) = match (t.next(), t.next(), t.next(), t.next()) {
        (Some(h), Some(m), sec, None) => (
            num(h)?,
            num(m)?,
            sec.map(|s| s.parse::<f64>().map_err(|_| bad()))
                .transpose()?
                .unwrap_or(0.0),
        ),
        _ => return Err(bad()),
    };
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || !(0..24).contains(&hour)
        || !(0..60).contains(&minute)
        || !(0.0..61.0).contains(&second)
    {
        return Err(bad());
    }
    // Howard Hinnant's days_from_civil.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok((days * 86_400 + hour * 3600 + minute * 60) as f64 + second)
}

/// Adds each non-empty list under its name (the AWS CLI omits absent lists).
fn insert_lists<'a>(
    m: &mut Map<String, Value>,
    lists: impl IntoIterator<Item = (&'a str, &'a Vec<String>)>,
) {
    for (name, list) in lists {
        if !list.is_empty() {
            m.insert(name.into(), json!(list));
        }
    }
}

/// Parses `--constraints` as the AWS CLI's JSON form: `{"EncryptionContextSubset": {..},
/// "EncryptionContextEquals": {..}}` (or `file://`). A member that is given is present even
/// when empty.
pub fn parse_grant_constraints(
    param: &'static str,
    arg: &str,
) -> Result<proto::GrantConstraints, ParamError> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase", deny_unknown_fields)]
    struct Json {
        encryption_context_subset: Option<HashMap<String, String>>,
        encryption_context_equals: Option<HashMap<String, String>>,
    }
    let text = load_text(param, arg)?;
    let c: Json = serde_json::from_str(text.trim()).map_err(|e| {
        param_err(
            param,
            format!(
                "Invalid JSON (expected {{\"EncryptionContextSubset\": {{..}}, \
                 \"EncryptionContextEquals\": {{..}}}}): {e}"
            ),
        )
    })?;
    Ok(proto::GrantConstraints {
        has_encryption_context_subset: c.encryption_context_subset.is_some(),
        has_encryption_context_equals: c.encryption_context_equals.is_some(),
        encryption_context_subset: c.encryption_context_subset.unwrap_or_default(),
        encryption_context_equals: c.encryption_context_equals.unwrap_or_default(),
    })
}

/// A GrantListEntry in the AWS CLI's JSON shape (absent members omitted).
fn grant_json(g: &proto::GrantListEntry) -> Value {
    let mut m = Map::new();
    m.insert("KeyId".into(), json!(g.key_id));
    m.insert("GrantId".into(), json!(g.grant_id));
    if let Some(n) = &g.name {
        m.insert("Name".into(), json!(n));
    }
    m.insert("CreationDate".into(), json!(iso8601(g.creation_date)));
    m.insert("GranteePrincipal".into(), json!(g.grantee_principal));
    if let Some(r) = &g.retiring_principal {
        m.insert("RetiringPrincipal".into(), json!(r));
    }
    m.insert("IssuingAccount".into(), json!(g.issuing_account));
    m.insert("Operations".into(), json!(g.operations));
    if let Some(c) = &g.constraints {
        let sorted = |h: &HashMap<String, String>| {
            json!(h.iter().collect::<std::collections::BTreeMap<_, _>>())
        };
        let mut cm = Map::new();
        if c.has_encryption_context_subset || !c.encryption_context_subset.is_empty() {
            cm.insert(
                "EncryptionContextSubset".into(),
                sorted(&c.encryption_context_subset),
            );
        }
        if c.has_encryption_context_equals || !c.encryption_context_equals.is_empty() {
            cm.insert(
                "EncryptionContextEquals".into(),
                sorted(&c.encryption_context_equals),
            );
        }
        m.insert("Constraints".into(), Value::Object(cm));
    }
    Value::Object(m)
}

fn rotation_json(r: &proto::RotationsListEntry) -> Value {
    let mut m = Map::new();
    m.insert("KeyId".into(), json!(r.key_id));
    if let Some(d) = r.rotation_date {
        m.insert("RotationDate".into(), json!(iso8601(d)));
    }
    if !r.rotation_type.is_empty() {
        m.insert("RotationType".into(), json!(r.rotation_type));
    }
    if let Some(id) = &r.key_material_id {
        m.insert("KeyMaterialId".into(), json!(id));
    }
    if let Some(state) = &r.key_material_state {
        m.insert("KeyMaterialState".into(), json!(state));
    }
    Value::Object(m)
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn page_json(field: &str, items: Vec<Value>, next_marker: Option<String>) -> Value {
    let mut m = Map::new();
    m.insert(field.into(), Value::Array(items));
    m.insert("Truncated".into(), json!(next_marker.is_some()));
    if let Some(n) = next_marker {
        m.insert("NextMarker".into(), json!(n));
    }
    Value::Object(m)
}

fn alias_json(a: &proto::AliasListEntry) -> Value {
    let mut m = Map::new();
    m.insert("AliasName".into(), json!(a.alias_name));
    m.insert("AliasArn".into(), json!(a.alias_arn));
    if let Some(t) = &a.target_key_id {
        m.insert("TargetKeyId".into(), json!(t));
    }
    if let Some(d) = a.creation_date {
        m.insert("CreationDate".into(), json!(iso8601(d)));
    }
    if let Some(d) = a.last_updated_date {
        m.insert("LastUpdatedDate".into(), json!(iso8601(d)));
    }
    Value::Object(m)
}

/// KeyMetadata in the AWS CLI's JSON shape (empty lists and absent options omitted).
pub fn key_metadata_json(k: &proto::KeyMetadata) -> Value {
    let mut m = Map::new();
    m.insert("AWSAccountId".into(), json!(k.aws_account_id));
    m.insert("KeyId".into(), json!(k.key_id));
    m.insert("Arn".into(), json!(k.arn));
    m.insert("CreationDate".into(), json!(iso8601(k.creation_date)));
    m.insert("Enabled".into(), json!(k.enabled));
    m.insert("Description".into(), json!(k.description));
    m.insert("KeyUsage".into(), json!(k.key_usage));
    m.insert("KeyState".into(), json!(k.key_state));
    if let Some(d) = k.deletion_date {
        m.insert("DeletionDate".into(), json!(iso8601(d)));
    }
    if let Some(d) = k.valid_to {
        m.insert("ValidTo".into(), json!(iso8601(d)));
    }
    m.insert("Origin".into(), json!(k.origin));
    if let Some(c) = &k.custom_key_store_id {
        m.insert("CustomKeyStoreId".into(), json!(c));
    }
    m.insert("KeyManager".into(), json!(k.key_manager));
    m.insert(
        "CustomerMasterKeySpec".into(),
        json!(k.customer_master_key_spec),
    );
    m.insert("KeySpec".into(), json!(k.key_spec));
    insert_lists(
        &mut m,
        [
            ("EncryptionAlgorithms", &k.encryption_algorithms),
            ("SigningAlgorithms", &k.signing_algorithms),
            ("MacAlgorithms", &k.mac_algorithms),
            ("KeyAgreementAlgorithms", &k.key_agreement_algorithms),
        ],
    );
    if let Some(mr) = k.multi_region {
        m.insert("MultiRegion".into(), json!(mr));
    }
    if let Some(c) = &k.multi_region_configuration {
        let key = |k: &proto::MultiRegionKey| json!({ "Arn": k.arn, "Region": k.region });
        let mut mc = Map::new();
        mc.insert("MultiRegionKeyType".into(), json!(c.multi_region_key_type));
        if let Some(p) = &c.primary_key {
            mc.insert("PrimaryKey".into(), key(p));
        }
        mc.insert(
            "ReplicaKeys".into(),
            Value::Array(c.replica_keys.iter().map(key).collect()),
        );
        m.insert("MultiRegionConfiguration".into(), Value::Object(mc));
    }
    if let Some(w) = k.pending_deletion_window_in_days {
        m.insert("PendingDeletionWindowInDays".into(), json!(w));
    }
    if let Some(e) = &k.expiration_model {
        m.insert("ExpirationModel".into(), json!(e));
    }
    Value::Object(m)
}

/// Formats epoch seconds as the AWS CLI v2 does: `2024-03-01T12:00:00.123000+00:00`
/// (microseconds omitted when zero, like Python's `isoformat`).
pub fn iso8601(epoch_seconds: f64) -> String {
    if !epoch_seconds.is_finite() {
        return epoch_seconds.to_string();
    }
    let total_micros = (epoch_seconds * 1e6).round() as i64;
    let secs = total_micros.div_euclid(1_000_000);
    let micros = total_micros.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let frac = if micros == 0 {
        String::new()
    } else {
        format!(".{micros:06}")
    };
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}{frac}+00:00",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// Applies `--query` and `--output` to a result.
fn render(value: &Value, g: &GlobalArgs) -> Result<String, String> {
    let selected = match &g.query {
        None => value,
        Some(q) => {
            let mut v = value;
            for part in q.split('.') {
                v = v
                    .get(part)
                    .ok_or_else(|| format!("--query {q:?}: no field {part:?} in the output"))?;
            }
            v
        }
    };
    Ok(match (g.output, selected) {
        (OutputFormat::Text | OutputFormat::Table, Value::String(s)) => s.clone(),
        (OutputFormat::Text, Value::Null) => "None".into(),
        (OutputFormat::Text, v) if !v.is_object() && !v.is_array() => v.to_string(),
        (_, v) => serde_json::to_string_pretty(v).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fileb_reads_raw_bytes_and_literals_are_utf8() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("blob");
        std::fs::write(&f, [0u8, 159, 146, 150, 255]).unwrap();
        let arg = format!("fileb://{}", f.display());
        assert_eq!(
            parse_blob("plaintext", &arg, BinaryFormat::Raw).unwrap(),
            vec![0u8, 159, 146, 150, 255]
        );
        assert_eq!(
            parse_blob("plaintext", "hello", BinaryFormat::Raw).unwrap(),
            b"hello"
        );
        assert_eq!(
            parse_blob("plaintext", "aGVsbG8=", BinaryFormat::Base64).unwrap(),
            b"hello"
        );
    }

    #[test]
    fn bad_blob_arguments_name_the_parameter() {
        let e = parse_blob("plaintext", "fileb:///nonexistent/x", BinaryFormat::Raw).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("Error parsing parameter '--plaintext': Unable to load paramfile"),
            "{e}"
        );
        assert!(parse_blob("ciphertext-blob", "not base64!", BinaryFormat::Base64).is_err());
    }

    #[test]
    fn encryption_context_accepts_shorthand_and_json() {
        let short = parse_encryption_context("encryption-context", "a=1,b=x=y").unwrap();
        assert_eq!(short["a"], "1");
        assert_eq!(short["b"], "x=y");
        let json = parse_encryption_context("encryption-context", r#"{"a":"1","b":"2"}"#).unwrap();
        assert_eq!(json.len(), 2);
        assert!(parse_encryption_context("encryption-context", "a").is_err());
        assert!(parse_encryption_context("encryption-context", "a=1,a=2").is_err());
        assert!(parse_encryption_context("encryption-context", r#"{"a":1}"#).is_err());
    }

    #[test]
    fn tags_accept_shorthand_and_json() {
        let tags = parse_tags(
            "tags",
            &[
                "TagKey=env,TagValue=prod".into(),
                "TagKey=team,TagValue=".into(),
                r#"[{"TagKey":"a","TagValue":"b"}]"#.into(),
            ],
        )
        .unwrap();
        let pairs: Vec<_> = tags
            .iter()
            .map(|t| (t.tag_key.as_str(), t.tag_value.as_str()))
            .collect();
        assert_eq!(pairs, vec![("env", "prod"), ("team", ""), ("a", "b")]);
        for bad in [
            "env=prod",
            "TagValue=x",
            "TagKey=a,TagKey=b",
            r#"[{"Key":"a"}]"#,
        ] {
            assert!(parse_tags("tags", &[bad.into()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn timestamps_parse_as_epoch_seconds_or_iso8601_and_round_trip() {
        assert_eq!(
            parse_timestamp("valid-to", "1700000000").unwrap(),
            1_700_000_000.0
        );
        assert_eq!(parse_timestamp("valid-to", "1970-01-01").unwrap(), 0.0);
        for t in [0.0, 951_782_400.0, 1_700_000_000.5, 4_102_444_800.0] {
            assert_eq!(parse_timestamp("valid-to", &iso8601(t)).unwrap(), t);
        }
        assert_eq!(
            parse_timestamp("valid-to", "2000-02-29T00:00:00Z").unwrap(),
            951_782_400.0
        );
        for bad in [
            "",
            "tomorrow",
            "2030-13-01",
            "2030-01-01T00:00:00+02:00",
            "NaN",
        ] {
            assert!(parse_timestamp("valid-to", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn iso8601_matches_the_aws_cli() {
        assert_eq!(iso8601(0.0), "1970-01-01T00:00:00+00:00");
        assert_eq!(iso8601(1_700_000_000.5), "2023-11-14T22:13:20.500000+00:00");
        assert_eq!(iso8601(951_782_400.0), "2000-02-29T00:00:00+00:00");
        assert_eq!(iso8601(f64::NAN), "NaN");
    }

    #[test]
    fn cli_parses_aws_style_flags() {
        let cli = Cli::try_parse_from([
            "kmsctl",
            "--endpoint",
            "a:1,b:2",
            "encrypt",
            "--key-id",
            "alias/x",
            "--plaintext",
            "fileb://f",
            "--encryption-context",
            "k=v",
        ])
        .unwrap();
        assert_eq!(cli.global.endpoint, vec!["a:1", "b:2"]);
        assert!(matches!(cli.command, Command::Encrypt { ref key_id, .. } if key_id == "alias/x"));
        let cli = Cli::try_parse_from([
            "kmsctl",
            "create-key",
            "--tags",
            "TagKey=a,TagValue=b",
            "TagKey=c,TagValue=d",
            "--description",
            "x",
        ])
        .unwrap();
        assert!(matches!(cli.command, Command::CreateKey { ref tags, .. } if tags.len() == 2));
        let cli = Cli::try_parse_from([
            "kmsctl",
            "generate-data-key",
            "--key-id",
            "k",
            "--key-spec",
            "AES_256",
        ])
        .unwrap();
        assert_eq!(cli.command.operation(), "GenerateDataKey");
        let cli = Cli::try_parse_from([
            "kmsctl",
            "verify",
            "--key-id",
            "alias/s",
            "--message",
            "fileb://m",
            "--message-type",
            "RAW",
            "--signature",
            "fileb://sig",
            "--signing-algorithm",
            "ECDSA_SHA_256",
        ])
        .unwrap();
        assert!(
            matches!(cli.command, Command::Verify { ref signature, ref args }
                if signature == "fileb://sig" && args.message_type.as_deref() == Some("RAW"))
        );
        let cli = Cli::try_parse_from([
            "kmsctl",
            "enable-key-rotation",
            "--key-id",
            "k",
            "--rotation-period-in-days",
            "90",
        ])
        .unwrap();
        assert_eq!(cli.command.operation(), "EnableKeyRotation");
        // --signing-algorithm is required, as in the AWS CLI.
        assert!(
            Cli::try_parse_from(["kmsctl", "sign", "--key-id", "k", "--message", "m"]).is_err()
        );
    }

    #[test]
    fn grant_commands_parse_like_the_aws_cli() {
        let cli = Cli::try_parse_from([
            "kmsctl",
            "create-grant",
            "--key-id",
            "k",
            "--grantee-principal",
            "arn:aws:iam::111122223333:role/App",
            "--operations",
            "Encrypt,Decrypt",
            "GenerateDataKey",
            "--constraints-encryption-context-equals",
            "team=blue",
        ])
        .unwrap();
        assert!(
            matches!(cli.command, Command::CreateGrant { ref operations, .. }
            if operations == &["Encrypt", "Decrypt", "GenerateDataKey"])
        );
        // --constraints (JSON) and the shorthand flags are alternatives.
        assert!(Cli::try_parse_from([
            "kmsctl",
            "create-grant",
            "--key-id",
            "k",
            "--grantee-principal",
            "p",
            "--operations",
            "Encrypt",
            "--constraints",
            "{}",
            "--constraints-encryption-context-subset",
            "a=b",
        ])
        .is_err());
        // Operations are required.
        assert!(Cli::try_parse_from([
            "kmsctl",
            "create-grant",
            "--key-id",
            "k",
            "--grantee-principal",
            "p"
        ])
        .is_err());
        // retire-grant: a token, or a key and a grant id, never both, never half.
        let ok = |args: &[&str]| {
            let mut v = vec!["kmsctl", "retire-grant"];
            v.extend_from_slice(args);
            Cli::try_parse_from(v).is_ok()
        };
        assert!(ok(&["--grant-token", "t"]));
        assert!(ok(&["--key-id", "k", "--grant-id", "g"]));
        assert!(!ok(&[]));
        assert!(!ok(&["--key-id", "k"]));
        assert!(!ok(&["--grant-id", "g"]));
        assert!(!ok(&[
            "--grant-token",
            "t",
            "--key-id",
            "k",
            "--grant-id",
            "g"
        ]));
        // Grant tokens: comma- or space-separated on every command that takes them.
        let cli = Cli::try_parse_from([
            "kmsctl",
            "encrypt",
            "--key-id",
            "k",
            "--plaintext",
            "x",
            "--grant-tokens",
            "t1,t2",
            "t3",
        ])
        .unwrap();
        assert!(matches!(cli.command, Command::Encrypt { ref common, .. }
            if common.grant_tokens == ["t1", "t2", "t3"]));
    }

    #[test]
    fn grant_constraints_json_keeps_empty_members_present() {
        let c = parse_grant_constraints(
            "constraints",
            r#"{"EncryptionContextSubset":{"team":"blue"},"EncryptionContextEquals":{}}"#,
        )
        .unwrap();
        assert_eq!(c.encryption_context_subset["team"], "blue");
        assert!(c.has_encryption_context_subset && c.has_encryption_context_equals);
        let c = parse_grant_constraints("constraints", "{}").unwrap();
        assert!(!c.has_encryption_context_subset && !c.has_encryption_context_equals);
        for bad in [
            "",
            "[]",
            r#"{"Subset":{}}"#,
            r#"{"EncryptionContextEquals":{"a":1}}"#,
        ] {
            let e = parse_grant_constraints("constraints", bad).unwrap_err();
            assert!(
                e.to_string()
                    .starts_with("Error parsing parameter '--constraints'"),
                "{e}"
            );
        }
    }

    #[tokio::test]
    async fn usage_errors_exit_252_and_config_errors_255() {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run(["kmsctl", "encrypt"], &mut out, &mut err).await;
        assert_eq!(code, EXIT_USAGE);
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run(
            [
                "kmsctl",
                "--env-file",
                "/nonexistent/env",
                "generate-random",
            ],
            &mut out,
            &mut err,
        )
        .await;
        assert_eq!(code, EXIT_OTHER_ERROR);
        assert!(String::from_utf8_lossy(&err).contains("env file"));
    }

    #[tokio::test]
    async fn unreachable_front_is_reported_like_the_aws_cli() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run(
            [
                "kmsctl".to_string(),
                "--endpoint".into(),
                format!("http://127.0.0.1:{port}"),
                "--max-attempts".into(),
                "1".into(),
                "generate-random".into(),
                "--number-of-bytes".into(),
                "4".into(),
            ],
            &mut out,
            &mut err,
        )
        .await;
        assert_eq!(code, EXIT_OTHER_ERROR);
        let err = String::from_utf8_lossy(&err);
        assert!(err.contains("GenerateRandom"), "{err}");
    }

    #[test]
    fn query_and_text_output_extract_a_field() {
        let g = Cli::try_parse_from([
            "kmsctl",
            "--query",
            "KeyMetadata.KeyId",
            "--output",
            "text",
            "generate-random",
        ])
        .unwrap()
        .global;
        let v = json!({ "KeyMetadata": { "KeyId": "abc" } });
        assert_eq!(render(&v, &g).unwrap(), "abc");
    }
}
