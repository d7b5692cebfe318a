//! Grants: the replicated `GrantRecord`, AWS's CreateGrant rules, what a grant allows, who may
//! retire it, and grant tokens.
//!
//! A grant gives one principal (the grantee) some operations on one key, optionally only for
//! requests whose encryption context matches its constraints. Everything here is pure; the
//! front picks the random parts (grant id, token nonce) with [`new_grant_id`] and
//! [`new_token_nonce`] before proposing `Command::CreateGrant`, so `apply` stays deterministic.
//!
//! # Layout
//!
//! ```text
//!  front: CreateGrant request -> GrantRecord (new_grant_id, new_token_nonce)
//!           -> validated(key, grant)        (also re-run by apply: key usage, constraints)
//!           -> Command::CreateGrant -> apply -> State.grants[(key_id, grant_id)]
//!           -> encode_grant_token(key_id, grant_id, nonce)   (opaque, returned to the caller)
//!  front: any request on a key -> grants of the key -> GrantRecord::allows(grantee, op, ctx)
//!  front: RetireGrant -> decode_grant_token | (key_id, grant_id) -> may_retire(grant, caller)
//! ```
//!
//! A grant token is not a credential: it only names a grant (key id, grant id, and the nonce of
//! the incarnation it was issued for), so a front can use a grant it has not cached yet. What
//! the grant allows is always read from the replicated record.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::error::DomainError;
use crate::model::{EpochMillis, KeyRecord, KeySpec, KeyUsage, State};

/// Most grants one key may carry (AWS quota "Grants per KMS key"); more is
/// `LimitExceededException`.
pub const MAX_GRANTS_PER_KEY: usize = 50_000;
/// Most grant tokens one request may carry (`GrantTokens`, AWS: 0..=10 members).
pub const MAX_GRANT_TOKENS: usize = 10;
/// Longest grant token AWS accepts, in characters.
pub const MAX_GRANT_TOKEN_LEN: usize = 8192;
/// Longest grant name, in characters.
pub const MAX_GRANT_NAME_LEN: usize = 256;
/// Longest grantee or retiring principal, in characters (AWS `PrincipalIdType`).
pub const MAX_PRINCIPAL_LEN: usize = 256;
/// Most encryption context pairs in one grant constraint.
pub const MAX_CONSTRAINT_PAIRS: usize = 8;
/// Longest encryption context value in a grant constraint, in characters.
pub const MAX_CONSTRAINT_VALUE_LEN: usize = 384;
/// Length of a grant id: 32 random bytes in lowercase hex, like AWS's.
pub const GRANT_ID_LEN: usize = 64;

/// `GrantOperation`: the operations a grant can allow. Serialized as the wire string
/// (`GenerateDataKey`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[allow(missing_docs)] // each variant is the KMS operation of the same name
pub enum GrantOperation {
    Decrypt,
    Encrypt,
    GenerateDataKey,
    GenerateDataKeyWithoutPlaintext,
    ReEncryptFrom,
    ReEncryptTo,
    Sign,
    Verify,
    GetPublicKey,
    CreateGrant,
    RetireGrant,
    DescribeKey,
    GenerateDataKeyPair,
    GenerateDataKeyPairWithoutPlaintext,
    GenerateMac,
    VerifyMac,
    DeriveSharedSecret,
}

impl GrantOperation {
    /// Every value, in the order AWS documents them.
    pub const ALL: &'static [GrantOperation] = &[
        GrantOperation::Decrypt,
        GrantOperation::Encrypt,
        GrantOperation::GenerateDataKey,
        GrantOperation::GenerateDataKeyWithoutPlaintext,
        GrantOperation::ReEncryptFrom,
        GrantOperation::ReEncryptTo,
        GrantOperation::Sign,
        GrantOperation::Verify,
        GrantOperation::GetPublicKey,
        GrantOperation::CreateGrant,
        GrantOperation::RetireGrant,
        GrantOperation::DescribeKey,
        GrantOperation::GenerateDataKeyPair,
        GrantOperation::GenerateDataKeyPairWithoutPlaintext,
        GrantOperation::GenerateMac,
        GrantOperation::VerifyMac,
        GrantOperation::DeriveSharedSecret,
    ];

    /// The AWS wire string.
    pub fn as_str(self) -> &'static str {
        use GrantOperation as G;
        match self {
            G::Decrypt => "Decrypt",
            G::Encrypt => "Encrypt",
            G::GenerateDataKey => "GenerateDataKey",
            G::GenerateDataKeyWithoutPlaintext => "GenerateDataKeyWithoutPlaintext",
            G::ReEncryptFrom => "ReEncryptFrom",
            G::ReEncryptTo => "ReEncryptTo",
            G::Sign => "Sign",
            G::Verify => "Verify",
            G::GetPublicKey => "GetPublicKey",
            G::CreateGrant => "CreateGrant",
            G::RetireGrant => "RetireGrant",
            G::DescribeKey => "DescribeKey",
            G::GenerateDataKeyPair => "GenerateDataKeyPair",
            G::GenerateDataKeyPairWithoutPlaintext => "GenerateDataKeyPairWithoutPlaintext",
            G::GenerateMac => "GenerateMac",
            G::VerifyMac => "VerifyMac",
            G::DeriveSharedSecret => "DeriveSharedSecret",
        }
    }

    /// Parses the wire string (exact, case-sensitive, like AWS). [`DomainError::Validation`]
    /// lists the accepted values otherwise.
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        GrantOperation::ALL
            .iter()
            .copied()
            .find(|op| op.as_str() == s)
            .ok_or_else(|| {
                let allowed: Vec<&str> = GrantOperation::ALL.iter().map(|o| o.as_str()).collect();
                DomainError::Validation(format!(
                    "1 validation error detected: Value '[{s}]' at 'operations' failed to \
                     satisfy constraint: Member must satisfy constraint: [Member must satisfy \
                     enum value set: [{}]]",
                    allowed.join(", ")
                ))
            })
    }

    /// Whether the operation takes an encryption context, so that grant constraints apply to
    /// it. (AWS: constraints do not apply to DescribeKey, RetireGrant, CreateGrant, nor to the
    /// asymmetric and HMAC operations, which take no context.)
    pub fn takes_encryption_context(self) -> bool {
        use GrantOperation as G;
        matches!(
            self,
            G::Decrypt
                | G::Encrypt
                | G::GenerateDataKey
                | G::GenerateDataKeyWithoutPlaintext
                | G::ReEncryptFrom
                | G::ReEncryptTo
                | G::GenerateDataKeyPair
                | G::GenerateDataKeyPairWithoutPlaintext
        )
    }

    /// Whether a grant with encryption context constraints may include this operation: the
    /// context-taking ones, plus the management operations the constraint simply does not
    /// apply to.
    fn allowed_with_constraints(self) -> bool {
        self.takes_encryption_context()
            || matches!(
                self,
                GrantOperation::DescribeKey
                    | GrantOperation::RetireGrant
                    | GrantOperation::CreateGrant
            )
    }

    /// Whether a grant on a key of this spec and usage may allow the operation (AWS's "grant
    /// operations" table: e.g. no Sign on a symmetric key, no GenerateDataKey on an RSA key).
    pub fn fits_key(self, spec: KeySpec, usage: KeyUsage) -> bool {
        use GrantOperation as G;
        let symmetric = spec == KeySpec::SymmetricDefault;
        match self {
            G::CreateGrant | G::RetireGrant | G::DescribeKey => true,
            G::Encrypt | G::Decrypt | G::ReEncryptFrom | G::ReEncryptTo => {
                usage == KeyUsage::EncryptDecrypt
            }
            G::GenerateDataKey
            | G::GenerateDataKeyWithoutPlaintext
            | G::GenerateDataKeyPair
            | G::GenerateDataKeyPairWithoutPlaintext => {
                symmetric && usage == KeyUsage::EncryptDecrypt
            }
            G::GetPublicKey => spec.is_asymmetric(),
            G::Sign | G::Verify => usage == KeyUsage::SignVerify,
            G::GenerateMac | G::VerifyMac => usage == KeyUsage::GenerateVerifyMac,
            G::DeriveSharedSecret => usage == KeyUsage::KeyAgreement,
        }
    }
}

impl std::fmt::Display for GrantOperation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for GrantOperation {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for GrantOperation {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str> as Deserialize>::deserialize(d)?;
        GrantOperation::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// `GrantConstraints`: the grant allows its context-taking operations only for requests whose
/// encryption context matches. In a constraint, keys compare case-insensitively and values
/// case-sensitively (AWS documents exactly this, unlike the case-sensitive match between
/// Encrypt's and Decrypt's contexts).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantConstraints {
    /// The request's context must be exactly these pairs.
    #[serde(default)]
    pub encryption_context_equals: Option<BTreeMap<String, String>>,
    /// The request's context must include these pairs (it may have more).
    #[serde(default)]
    pub encryption_context_subset: Option<BTreeMap<String, String>>,
}

/// Whether a constraint pair and a request pair are the same pair under grant-constraint rules.
fn pair_matches((ck, cv): (&String, &String), (rk, rv): (&String, &String)) -> bool {
    cv == rv && ck.to_lowercase() == rk.to_lowercase()
}

/// Every pair of `inner` appears in `outer` (keys ignoring case, values exactly).
fn pairs_included(inner: &BTreeMap<String, String>, outer: &BTreeMap<String, String>) -> bool {
    inner
        .iter()
        .all(|c| outer.iter().any(|r| pair_matches(c, r)))
}

/// Both maps hold the same pairs (keys ignoring case, values exactly).
fn pairs_equal(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> bool {
    pairs_included(a, b) && pairs_included(b, a)
}

impl GrantConstraints {
    /// Whether a request with this encryption context satisfies every constraint present.
    pub fn is_satisfied_by(&self, context: &BTreeMap<String, String>) -> bool {
        let equals = self
            .encryption_context_equals
            .as_ref()
            .is_none_or(|want| pairs_equal(want, context));
        let subset = self
            .encryption_context_subset
            .as_ref()
            .is_none_or(|want| pairs_included(want, context));
        equals && subset
    }

    /// Whether every request these constraints allow is also allowed by `parent` (AWS: a
    /// grant created through a grant's CreateGrant permission must carry an equally strict or
    /// stricter constraint). `None` on either side means "no constraint".
    pub fn at_least_as_strict(child: Option<&Self>, parent: Option<&Self>) -> bool {
        let Some(parent) = parent else {
            return true;
        };
        let empty = GrantConstraints::default();
        let child = child.unwrap_or(&empty);
        let equals_ok = parent.encryption_context_equals.as_ref().is_none_or(|p| {
            child
                .encryption_context_equals
                .as_ref()
                .is_some_and(|c| pairs_equal(p, c))
        });
        // A child's Equals or Subset that includes every pair of the parent's Subset allows
        // only contexts that include them too.
        let subset_ok = parent.encryption_context_subset.as_ref().is_none_or(|p| {
            [
                &child.encryption_context_equals,
                &child.encryption_context_subset,
            ]
            .into_iter()
            .flatten()
            .any(|c| pairs_included(p, c))
        });
        equals_ok && subset_ok
    }

    fn maps(&self) -> impl Iterator<Item = (&'static str, &BTreeMap<String, String>)> {
        [
            ("EncryptionContextEquals", &self.encryption_context_equals),
            ("EncryptionContextSubset", &self.encryption_context_subset),
        ]
        .into_iter()
        .filter_map(|(name, m)| m.as_ref().map(|m| (name, m)))
    }
}

/// A grant on one key, as replicated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantRecord {
    /// 64 lowercase hex digits ([`new_grant_id`]).
    pub grant_id: String,
    /// The key it is on.
    pub key_id: String,
    /// That key's ARN (what ListGrants reports as `KeyId`).
    pub key_arn: String,
    /// The key's account.
    pub account_id: String,
    /// Optional friendly name; also makes CreateGrant idempotent (same name and parameters
    /// return the existing grant).
    #[serde(default)]
    pub name: Option<String>,
    /// Who may use it: an ARN, or a service principal name.
    pub grantee_principal: String,
    /// Who may retire it, besides the grantee (with RetireGrant) and the issuing account.
    #[serde(default)]
    pub retiring_principal: Option<String>,
    /// `arn:aws:iam::<account>:root` of the account that created it (`IssuingAccount`).
    pub issuing_account: String,
    /// What it allows; non-empty, without duplicates (see [`validated`]).
    pub operations: Vec<GrantOperation>,
    /// Encryption context constraints on the context-taking operations.
    #[serde(default)]
    pub constraints: Option<GrantConstraints>,
    /// Creation time.
    pub creation_date: EpochMillis,
    /// Random, chosen by the front: tokens carry it, so a token names exactly this grant and
    /// not a later one that happens to reuse the id.
    pub token_nonce: [u8; 16],
}

impl GrantRecord {
    /// Whether this grant lets `grantee` call `operation` with `encryption_context` (`None`
    /// when the request has none, which counts as the empty context). Constraints apply only
    /// to operations that take a context.
    pub fn allows(
        &self,
        grantee: &str,
        operation: GrantOperation,
        encryption_context: Option<&BTreeMap<String, String>>,
    ) -> bool {
        if self.grantee_principal != grantee || !self.operations.contains(&operation) {
            return false;
        }
        match &self.constraints {
            Some(c) if operation.takes_encryption_context() => {
                let empty = BTreeMap::new();
                c.is_satisfied_by(encryption_context.unwrap_or(&empty))
            }
            _ => true,
        }
    }

    /// Whether `other` asks for the same grant: CreateGrant with a name returns the existing
    /// grant instead of creating a second one when name, grantee, retiring principal,
    /// operations (in any order) and constraints all match. Without a name it never does.
    pub fn same_request_as(&self, other: &GrantRecord) -> bool {
        let mut a = self.operations.clone();
        let mut b = other.operations.clone();
        a.sort();
        b.sort();
        self.name.is_some()
            && self.name == other.name
            && self.key_id == other.key_id
            && self.grantee_principal == other.grantee_principal
            && self.retiring_principal == other.retiring_principal
            && a == b
            && self.constraints == other.constraints
    }
}

fn validation(member: &str, value: &str, constraint: &str) -> DomainError {
    DomainError::Validation(format!(
        "1 validation error detected: Value '{value}' at '{member}' failed to satisfy \
         constraint: {constraint}"
    ))
}

fn is_grant_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, ':' | '/' | '_' | '-')
}

fn check_principal(member: &str, p: &str) -> Result<(), DomainError> {
    let len = p.chars().count();
    if len == 0 || len > MAX_PRINCIPAL_LEN {
        return Err(validation(
            member,
            p,
            &format!("Member must have length between 1 and {MAX_PRINCIPAL_LEN}"),
        ));
    }
    Ok(())
}

/// AWS's CreateGrant rules, checked against the key the grant is for. Returns the grant as it
/// is stored: duplicate operations dropped (AWS accepts and ignores them), first occurrence
/// kept. Every refusal is [`DomainError::Validation`].
pub fn validated(key: &KeyRecord, grant: &GrantRecord) -> Result<GrantRecord, DomainError> {
    // Alphanumeric keeps `<key id>/<grant id>` list markers unambiguous.
    if grant.grant_id.is_empty()
        || grant.grant_id.len() > 128
        || !grant.grant_id.chars().all(|c| c.is_ascii_alphanumeric())
    {
        return Err(validation(
            "grantId",
            &grant.grant_id,
            "Member must be 1 to 128 letters and digits",
        ));
    }
    if let Some(name) = &grant.name {
        let len = name.chars().count();
        if len == 0 || len > MAX_GRANT_NAME_LEN {
            return Err(validation(
                "name",
                name,
                &format!("Member must have length between 1 and {MAX_GRANT_NAME_LEN}"),
            ));
        }
        if !name.chars().all(is_grant_name_char) {
            return Err(validation(
                "name",
                name,
                "Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+$",
            ));
        }
    }
    check_principal("granteePrincipal", &grant.grantee_principal)?;
    if let Some(r) = &grant.retiring_principal {
        check_principal("retiringPrincipal", r)?;
    }

    let mut operations: Vec<GrantOperation> = Vec::with_capacity(grant.operations.len());
    for op in &grant.operations {
        if !operations.contains(op) {
            operations.push(*op);
        }
    }
    if operations.is_empty() {
        return Err(DomainError::Validation(
            "1 validation error detected: Value '[]' at 'operations' failed to satisfy \
             constraint: Member must have length greater than or equal to 1"
                .into(),
        ));
    }
    let unfit: Vec<&str> = operations
        .iter()
        .filter(|op| !op.fits_key(key.key_spec, key.key_usage))
        .map(|op| op.as_str())
        .collect();
    if !unfit.is_empty() {
        return Err(DomainError::Validation(format!(
            "Grant operations [{}] are not valid for a KMS key with KeySpec {} and KeyUsage {}",
            unfit.join(", "),
            key.key_spec,
            key.key_usage
        )));
    }

    if let Some(c) = &grant.constraints {
        if c.maps().next().is_some() {
            check_constraints(key, c, &operations)?;
        }
    }

    Ok(GrantRecord {
        operations,
        ..grant.clone()
    })
}

fn check_constraints(
    key: &KeyRecord,
    c: &GrantConstraints,
    operations: &[GrantOperation],
) -> Result<(), DomainError> {
    // Asymmetric and HMAC keys take no encryption context anywhere.
    if key.key_spec != KeySpec::SymmetricDefault {
        return Err(DomainError::Validation(format!(
            "Grant constraints are not supported for KMS keys with KeySpec {}; only symmetric \
             encryption KMS keys take an encryption context",
            key.key_spec
        )));
    }
    let unsupported: Vec<&str> = operations
        .iter()
        .filter(|op| !op.allowed_with_constraints())
        .map(|op| op.as_str())
        .collect();
    if !unsupported.is_empty() {
        return Err(DomainError::Validation(format!(
            "Grant constraints are supported only for operations that take an encryption \
             context; not for [{}]",
            unsupported.join(", ")
        )));
    }
    for (name, map) in c.maps() {
        if map.len() > MAX_CONSTRAINT_PAIRS {
            return Err(DomainError::Validation(format!(
                "{name} can have at most {MAX_CONSTRAINT_PAIRS} encryption context pairs"
            )));
        }
        if map
            .values()
            .any(|v| v.chars().count() > MAX_CONSTRAINT_VALUE_LEN)
        {
            return Err(DomainError::Validation(format!(
                "{name} values must be at most {MAX_CONSTRAINT_VALUE_LEN} characters long"
            )));
        }
    }
    Ok(())
}

/// The grants of one key, in grant-id order.
pub fn grants_of_key<'a>(
    state: &'a State,
    key_id: &'a str,
) -> impl Iterator<Item = &'a GrantRecord> + 'a {
    state
        .grants
        .range((key_id.to_owned(), String::new())..)
        .take_while(move |((k, _), _)| k == key_id)
        .map(|(_, g)| g)
}

/// Who may call RetireGrant on `grant` by virtue of the grant itself: its retiring principal,
/// its grantee if the grant includes RetireGrant, and the root user of the account that
/// created it. (AWS also lets principals retire grants when an IAM policy in that account
/// allows `kms:RetireGrant`; that is policy evaluation, the front's job.)
pub fn may_retire(grant: &GrantRecord, caller_arn: &str, caller_account: &str) -> bool {
    let retiring = grant.retiring_principal.as_deref() == Some(caller_arn);
    let grantee = grant.grantee_principal == caller_arn
        && grant.operations.contains(&GrantOperation::RetireGrant);
    let issuing_root =
        caller_arn == account_root_arn(caller_account) && grant.issuing_account == caller_arn;
    retiring || grantee || issuing_root
}

/// `arn:aws:iam::<account>:root`, the form AWS reports `IssuingAccount` in.
pub fn account_root_arn(account_id: &str) -> String {
    format!("arn:aws:iam::{account_id}:root")
}

/// A new random grant id: 32 bytes from the OS RNG as 64 lowercase hex digits. Front-side.
pub fn new_grant_id() -> String {
    let mut bytes = [0u8; 32];
    crate::crypto::fill_random(&mut bytes);
    hex::encode(bytes)
}

/// A new random token nonce. Front-side.
pub fn new_token_nonce() -> [u8; 16] {
    let mut nonce = [0u8; 16];
    crate::crypto::fill_random(&mut nonce);
    nonce
}

/// Version prefix of grant tokens; a future format gets a new prefix.
const TOKEN_PREFIX: &str = "krgt1.";

/// The opaque grant token CreateGrant returns: `krgt1.` + URL-safe base64 (no padding) of
/// `len(key_id) u16 BE | key_id | len(grant_id) u16 BE | grant_id | nonce[16]`.
pub fn encode_grant_token(key_id: &str, grant_id: &str, nonce: &[u8; 16]) -> String {
    let mut payload = Vec::with_capacity(4 + key_id.len() + grant_id.len() + nonce.len());
    for part in [key_id.as_bytes(), grant_id.as_bytes()] {
        // Key ids and grant ids are far shorter than 64 KiB; clamp rather than panic.
        let len = u16::try_from(part.len()).unwrap_or(u16::MAX);
        payload.extend_from_slice(&len.to_be_bytes());
        payload.extend_from_slice(&part[..usize::from(len)]);
    }
    payload.extend_from_slice(nonce);
    format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(payload)
    )
}

fn invalid_token() -> DomainError {
    DomainError::InvalidGrantToken("The grant token is invalid.".into())
}

/// Splits `len u16 BE | bytes` off the front of `rest` as a non-empty UTF-8 string.
fn take_field<'a>(rest: &mut &'a [u8]) -> Result<&'a str, DomainError> {
    let (len, tail) = rest.split_first_chunk::<2>().ok_or_else(invalid_token)?;
    let len = usize::from(u16::from_be_bytes(*len));
    if len == 0 || tail.len() < len {
        return Err(invalid_token());
    }
    let (field, tail) = tail.split_at(len);
    *rest = tail;
    std::str::from_utf8(field).map_err(|_| invalid_token())
}

/// Reads a token made by [`encode_grant_token`] back into `(key_id, grant_id, nonce)`.
/// Anything else (wrong prefix, bad base64, truncated or trailing bytes, too long) is
/// [`DomainError::InvalidGrantToken`]. Whether the grant exists is the caller's question.
pub fn decode_grant_token(token: &str) -> Result<(String, String, [u8; 16]), DomainError> {
    if token.len() > MAX_GRANT_TOKEN_LEN {
        return Err(invalid_token());
    }
    let body = token.strip_prefix(TOKEN_PREFIX).ok_or_else(invalid_token)?;
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| invalid_token())?;
    let mut rest = payload.as_slice();
    let key_id = take_field(&mut rest)?;
    let grant_id = take_field(&mut rest)?;
    let nonce: [u8; 16] = rest.try_into().map_err(|_| invalid_token())?;
    Ok((key_id.to_owned(), grant_id.to_owned(), nonce))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_round_trips_through_its_wire_string() {
        for op in GrantOperation::ALL {
            assert_eq!(GrantOperation::parse(op.as_str()), Ok(*op));
            let json = serde_json::to_string(op).unwrap();
            assert_eq!(json, format!("\"{}\"", op.as_str()));
            assert_eq!(serde_json::from_str::<GrantOperation>(&json).unwrap(), *op);
        }
        assert_eq!(GrantOperation::ALL.len(), 17);
    }

    #[test]
    fn parsing_an_unknown_operation_lists_the_allowed_values() {
        let Err(DomainError::Validation(m)) = GrantOperation::parse("decrypt") else {
            panic!("lowercase must be refused");
        };
        assert!(m.contains("'[decrypt]'"), "{m}");
        assert!(m.contains("Decrypt, Encrypt, GenerateDataKey,"), "{m}");
        assert!(m.ends_with("DeriveSharedSecret]]"), "{m}");
    }

    #[test]
    fn tokens_round_trip_and_are_url_safe() {
        let nonce = [0xfb; 16];
        let t = encode_grant_token("1234abcd-12ab", &"a".repeat(64), &nonce);
        assert!(t.starts_with("krgt1."));
        assert!(t
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')));
        assert_eq!(
            decode_grant_token(&t),
            Ok(("1234abcd-12ab".into(), "a".repeat(64), nonce))
        );
    }

    #[test]
    fn garbage_tokens_are_invalid_grant_tokens() {
        let good = encode_grant_token("k", "g", &[1; 16]);
        let body = good.strip_prefix(TOKEN_PREFIX).unwrap();
        let b64 = |b: &[u8]| {
            format!(
                "{TOKEN_PREFIX}{}",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
            )
        };
        let mut trailing = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(body)
            .unwrap();
        trailing.push(0);
        let long = format!("{good}{}", "A".repeat(MAX_GRANT_TOKEN_LEN));
        let cases = [
            String::new(),
            "krgt1.".into(),
            body.to_string(),                   // no prefix
            format!("krgt2.{body}"),            // unknown version
            format!("{TOKEN_PREFIX}!!!"),       // not base64
            format!("{good}="),                 // padding is not part of the format
            good[..good.len() - 3].to_string(), // truncated nonce
            b64(&trailing),                     // trailing byte
            b64(&[0, 0, 0, 1, b'g']),           // empty key id
            b64(&[0, 9, b'k']),                 // length past the end
            b64(&[
                0, 1, 0xff, 0, 1, b'g', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ]), // not UTF-8
            long,
        ];
        for t in cases {
            assert!(
                matches!(
                    decode_grant_token(&t),
                    Err(DomainError::InvalidGrantToken(_))
                ),
                "{t:?} must be refused"
            );
        }
    }

    const GRANTEE: &str = "arn:aws:iam::111122223333:role/app";

    fn ctx(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn grant(operations: &[GrantOperation], constraints: Option<GrantConstraints>) -> GrantRecord {
        GrantRecord {
            grant_id: "a".repeat(64),
            key_id: "k".into(),
            key_arn: "arn:aws:kms:us-east-1:111122223333:key/k".into(),
            account_id: "111122223333".into(),
            name: None,
            grantee_principal: GRANTEE.into(),
            retiring_principal: None,
            issuing_account: account_root_arn("111122223333"),
            operations: operations.to_vec(),
            constraints,
            creation_date: 1,
            token_nonce: [0; 16],
        }
    }

    fn equals(pairs: &[(&str, &str)]) -> Option<GrantConstraints> {
        Some(GrantConstraints {
            encryption_context_equals: Some(ctx(pairs)),
            encryption_context_subset: None,
        })
    }

    fn subset(pairs: &[(&str, &str)]) -> Option<GrantConstraints> {
        Some(GrantConstraints {
            encryption_context_equals: None,
            encryption_context_subset: Some(ctx(pairs)),
        })
    }

    fn both(eq: &[(&str, &str)], sub: &[(&str, &str)]) -> Option<GrantConstraints> {
        Some(GrantConstraints {
            encryption_context_equals: Some(ctx(eq)),
            encryption_context_subset: Some(ctx(sub)),
        })
    }

    #[test]
    fn allows_follows_grantee_operation_and_constraints() {
        use GrantOperation as G;
        let dept = [("Dept", "IT")];
        let dept_and_more = [("Dept", "IT"), ("Project", "x")];
        // (case, grant, caller, operation, request context, allowed)
        type Row<'a> = (
            &'a str,
            GrantRecord,
            &'a str,
            GrantOperation,
            Option<BTreeMap<String, String>>,
            bool,
        );
        #[rustfmt::skip]
        let rows: Vec<Row> = vec![
            ("plain grant allows its operation", grant(&[G::Decrypt], None), GRANTEE, G::Decrypt, None, true),
            ("another grantee is not allowed", grant(&[G::Decrypt], None), "arn:aws:iam::111122223333:role/other", G::Decrypt, None, false),
            ("grantee matches exactly, not by prefix", grant(&[G::Decrypt], None), "arn:aws:iam::111122223333:role/ap", G::Decrypt, None, false),
            ("an operation not in the grant", grant(&[G::Decrypt], None), GRANTEE, G::Encrypt, None, false),
            ("equals: the same context", grant(&[G::Decrypt], equals(&dept)), GRANTEE, G::Decrypt, Some(ctx(&dept)), true),
            ("equals: keys ignore case", grant(&[G::Decrypt], equals(&dept)), GRANTEE, G::Decrypt, Some(ctx(&[("dept", "IT")])), true),
            ("equals: values are case-sensitive", grant(&[G::Decrypt], equals(&dept)), GRANTEE, G::Decrypt, Some(ctx(&[("Dept", "it")])), false),
            ("equals: an extra pair fails", grant(&[G::Decrypt], equals(&dept)), GRANTEE, G::Decrypt, Some(ctx(&dept_and_more)), false),
            ("equals: a missing pair fails", grant(&[G::Decrypt], equals(&dept_and_more)), GRANTEE, G::Decrypt, Some(ctx(&dept)), false),
            ("equals: no context fails", grant(&[G::Decrypt], equals(&dept)), GRANTEE, G::Decrypt, None, false),
            ("equals: empty constraint wants no context", grant(&[G::Decrypt], equals(&[])), GRANTEE, G::Decrypt, None, true),
            ("subset: the same context", grant(&[G::Encrypt], subset(&dept)), GRANTEE, G::Encrypt, Some(ctx(&dept)), true),
            ("subset: extra pairs are fine", grant(&[G::Encrypt], subset(&dept)), GRANTEE, G::Encrypt, Some(ctx(&dept_and_more)), true),
            ("subset: a missing pair fails", grant(&[G::Encrypt], subset(&dept_and_more)), GRANTEE, G::Encrypt, Some(ctx(&dept)), false),
            ("subset: another value fails", grant(&[G::Encrypt], subset(&dept)), GRANTEE, G::Encrypt, Some(ctx(&[("Dept", "HR")])), false),
            ("subset: no context fails", grant(&[G::Encrypt], subset(&dept)), GRANTEE, G::Encrypt, None, false),
            ("subset applies to data key pairs", grant(&[G::GenerateDataKeyPair], subset(&dept)), GRANTEE, G::GenerateDataKeyPair, None, false),
            ("constraints do not apply to DescribeKey", grant(&[G::Decrypt, G::DescribeKey], equals(&dept)), GRANTEE, G::DescribeKey, None, true),
            ("constraints do not apply to RetireGrant", grant(&[G::RetireGrant], subset(&dept)), GRANTEE, G::RetireGrant, None, true),
            ("constraints do not apply to CreateGrant", grant(&[G::CreateGrant], subset(&dept)), GRANTEE, G::CreateGrant, None, true),
            ("both constraints must hold", grant(&[G::Decrypt], both(&dept_and_more, &dept)), GRANTEE, G::Decrypt, Some(ctx(&dept_and_more)), true),
            ("both constraints: equals fails", grant(&[G::Decrypt], both(&dept_and_more, &dept)), GRANTEE, G::Decrypt, Some(ctx(&dept)), false),
            ("an empty constraints object allows all", grant(&[G::Decrypt], Some(GrantConstraints::default())), GRANTEE, G::Decrypt, None, true),
        ];
        for (name, g, caller, op, context, want) in rows {
            assert_eq!(g.allows(caller, op, context.as_ref()), want, "{name}");
        }
    }

    #[test]
    fn child_grant_constraints_must_be_at_least_as_strict_as_the_parents() {
        let strict = |child: &Option<GrantConstraints>, parent: &Option<GrantConstraints>| {
            GrantConstraints::at_least_as_strict(child.as_ref(), parent.as_ref())
        };
        let a = [("a", "1")];
        let ab = [("a", "1"), ("b", "2")];
        assert!(strict(&None, &None));
        assert!(strict(&subset(&a), &None));
        assert!(!strict(&None, &subset(&a)));
        assert!(strict(&subset(&ab), &subset(&a)));
        assert!(strict(&equals(&ab), &subset(&a)));
        assert!(
            strict(&equals(&[("A", "1")]), &equals(&a)),
            "keys ignore case"
        );
        assert!(!strict(&subset(&a), &subset(&ab)));
        assert!(
            !strict(&subset(&a), &equals(&a)),
            "subset is looser than equals"
        );
        assert!(!strict(&equals(&ab), &equals(&a)));
        assert!(!strict(&equals(&[("a", "X")]), &subset(&a)));
    }

    #[test]
    fn retiring_principal_grantee_with_retire_grant_and_issuing_root_may_retire() {
        use GrantOperation as G;
        let acct = "111122223333";
        let root = account_root_arn(acct);
        let ops = "arn:aws:iam::111122223333:role/ops";
        let mut g = grant(&[G::Decrypt], None);
        g.retiring_principal = Some(ops.into());
        assert!(may_retire(&g, ops, acct), "retiring principal");
        assert!(may_retire(&g, &root, acct), "root of the issuing account");
        assert!(
            !may_retire(&g, GRANTEE, acct),
            "grantee without RetireGrant"
        );
        assert!(!may_retire(
            &g,
            "arn:aws:iam::444455556666:root",
            "444455556666"
        ));
        assert!(!may_retire(
            &g,
            "arn:aws:iam::111122223333:user/admin",
            acct
        ));
        // A root ARN claimed under another account is not that account's root.
        assert!(!may_retire(&g, &root, "444455556666"));
        let g = grant(&[G::Decrypt, G::RetireGrant], None);
        assert!(may_retire(&g, GRANTEE, acct), "grantee with RetireGrant");
    }

    #[test]
    fn grant_ids_are_64_lowercase_hex_digits_and_nonces_differ() {
        let id = new_grant_id();
        assert_eq!(id.len(), GRANT_ID_LEN);
        assert!(id
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)));
        assert_ne!(new_grant_id(), id);
        assert_ne!(new_token_nonce(), new_token_nonce());
    }
}
