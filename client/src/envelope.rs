//! Client-side envelope encryption with a data-key cache, in the manner of the AWS Encryption
//! SDK's `CachingCryptoMaterialsManager`: records are sealed locally with AES-256-GCM under
//! data keys from KMS `GenerateDataKey`, and one data key serves many records, within limits.
//!
//! ```no_run
//! # async fn demo() -> Result<(), client::envelope::EnvelopeError> {
//! use std::time::Duration;
//! use client::envelope::{EncryptionContext, EnvelopeEncryptor};
//!
//! let kms = client::Client::from_env()?;
//! let envelope = EnvelopeEncryptor::builder(kms)
//!     .max_age(Duration::from_secs(300))
//!     .max_messages(100_000)
//!     .max_bytes(1 << 30)
//!     .build()?;
//! let ctx = EncryptionContext::from_pairs([("tenant", "acme"), ("table", "orders")]);
//! let record = envelope.encrypt("alias/orders", &ctx, b"4111 1111 1111 1111").await?;
//! let back = envelope.decrypt(&record, &ctx).await?;
//! assert_eq!(back, b"4111 1111 1111 1111");
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! ```text
//! encrypt(key id, ctx, plaintext)
//!   -> EncryptCache: key id -> canonical ctx -> Slot { current entry, refill lock }
//!        entry usable (age < max_age) and reserve(1 message, len bytes) fits -> seal locally
//!        else: one task per slot refills (DataKeyProvider::new_data_key = KMS GenerateDataKey
//!        AES_256 with ctx); the others wait on the refill lock and use what it installed
//!        at 75% of messages/bytes or 90% of age: a background task prefetches the next key
//!        (under the same lock),
//!        so the refill that retires the entry usually installs it without waiting for KMS
//!   -> record v1 = 0x01 | u16 edk len | edk | nonce | AES-256-GCM(plaintext, AAD = header || ctx)
//!
//! decrypt(record, ctx)
//!   -> parse header -> DecryptCache: edk -> Slot { ctx, once-initialised key } (LRU, max_age)
//!        miss: one task per edk calls DataKeyProvider::decrypt_data_key (KMS Decrypt with ctx)
//!   -> open locally; every failure of a well-formed record is `InvalidRecord`
//! ```
//!
//! The hot path takes two shared (read) locks and a few atomic operations per record; only a
//! refill or a new context takes a write lock, so tasks on many threads do not queue behind one
//! another. Plaintext data keys live in [`DataKey`] (zeroized on drop, no `Debug`) and in the
//! aws-lc-rs key schedule built from it (freed with `OPENSSL_free`, which cleanses).
//!
//! This module is the one place outside `keystore` that uses a crypto crate: client-side
//! encryption is the SDK's job (as in the AWS Encryption SDK), and asking the service to seal
//! every record would defeat its purpose. It uses aws-lc-rs, the provider rustls already links
//! into the SDK, so no new cryptographic code enters the build. See `docs/envelope.md`.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use zeroize::{Zeroize, Zeroizing};

use crate::client::Client;
use crate::error::Error;

/// The record format version this module writes and reads.
pub const RECORD_VERSION: u8 = 1;
/// Length of the random AES-GCM nonce in a record.
pub const NONCE_LEN: usize = 12;
/// Length of the AES-GCM tag at the end of a record.
pub const TAG_LEN: usize = 16;
/// Length of a data key (AES-256).
pub const DATA_KEY_LEN: usize = 32;
/// Largest plaintext one record may hold: AES-GCM's limit (2^39 - 256 bits, NIST SP 800-38D).
pub const MAX_RECORD_PLAINTEXT: u64 = (1 << 36) - 32;
/// Upper bound for `max_messages`: with random 96-bit nonces, NIST SP 800-38D allows at most
/// 2^32 messages per key. The AWS Encryption SDK caps its cache the same way.
pub const MAX_MESSAGES_LIMIT: u64 = 1 << 32;
/// Upper bound for `max_bytes` (the AWS Encryption SDK's: 2^63 - 1).
pub const MAX_BYTES_LIMIT: u64 = i64::MAX as u64;

/// Version byte and the encrypted data key's length prefix.
const FIXED_HEADER: usize = 1 + 2;

/// Errors of envelope encryption.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// A KMS call (GenerateDataKey or Decrypt) failed; the service's error is the source.
    #[error("KMS {operation} failed: {source}")]
    Kms {
        /// `GenerateDataKey` or `Decrypt`.
        operation: &'static str,
        /// The SDK error.
        #[source]
        source: Error,
    },
    /// The record is malformed, was tampered with, or was sealed under another encryption
    /// context. One variant for all of them, so that a failure tells an attacker nothing.
    #[error(
        "the record is malformed, was tampered with, or does not match the encryption context"
    )]
    InvalidRecord,
    /// The plaintext does not fit in one record.
    #[error("a record holds at most {max} bytes of plaintext, got {len}")]
    PlaintextTooLarge {
        /// The plaintext's length.
        len: u64,
        /// [`MAX_RECORD_PLAINTEXT`].
        max: u64,
    },
    /// The data key source answered with something that is not a usable AES-256 key.
    #[error("unusable data key: {0}")]
    BadDataKey(&'static str),
    /// The encryptor's settings are out of range.
    #[error("invalid envelope configuration: {0}")]
    Config(String),
    /// The local cryptographic provider failed (no randomness).
    #[error("local cryptography failed")]
    Crypto,
}

impl EnvelopeError {
    /// The AWS-style error type: the service's `__type` for KMS failures,
    /// `InvalidCiphertextException` for a bad record, `ValidationException` for an oversized
    /// plaintext, `ConfigError` for settings, `KMSInternalException` otherwise.
    pub fn error_type(&self) -> &str {
        match self {
            EnvelopeError::Kms { source, .. } => source.error_type(),
            EnvelopeError::InvalidRecord => "InvalidCiphertextException",
            EnvelopeError::PlaintextTooLarge { .. } => "ValidationException",
            EnvelopeError::Config(_) => "ConfigError",
            EnvelopeError::BadDataKey(_) | EnvelopeError::Crypto => "KMSInternalException",
        }
    }
}

impl From<Error> for EnvelopeError {
    /// Building a client (`Client::from_env()?`) fails with an SDK error; so can a KMS call.
    fn from(source: Error) -> Self {
        EnvelopeError::Kms {
            operation: "client",
            source,
        }
    }
}

/// An encryption context: non-secret key/value pairs bound to every record (as AAD) and to its
/// data key (by KMS). Build it once and reuse it; its canonical bytes are computed up front.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct EncryptionContext {
    pairs: BTreeMap<String, String>,
    canonical: Vec<u8>,
}

impl EncryptionContext {
    /// The empty context.
    pub fn new() -> Self {
        Self::from(BTreeMap::new())
    }

    /// A context from key/value pairs (a repeated key keeps its last value).
    pub fn from_pairs<K, V, I>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Self::from(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect::<BTreeMap<_, _>>(),
        )
    }

    /// The pairs, in key order.
    pub fn pairs(&self) -> &BTreeMap<String, String> {
        &self.pairs
    }

    /// `u32 BE count`, then per pair in key-byte order `u32 BE len(key) || key || u32 BE
    /// len(value) || value` (the service's canonical form; injective, so two contexts never
    /// share bytes).
    pub fn canonical_bytes(&self) -> &[u8] {
        &self.canonical
    }

    fn to_request_map(&self) -> HashMap<String, String> {
        self.pairs
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

impl From<BTreeMap<String, String>> for EncryptionContext {
    fn from(pairs: BTreeMap<String, String>) -> Self {
        let len = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes();
        let mut canonical = Vec::with_capacity(
            4 + pairs
                .iter()
                .map(|(k, v)| 8 + k.len() + v.len())
                .sum::<usize>(),
        );
        canonical.extend_from_slice(&len(pairs.len()));
        for (k, v) in &pairs {
            canonical.extend_from_slice(&len(k.len()));
            canonical.extend_from_slice(k.as_bytes());
            canonical.extend_from_slice(&len(v.len()));
            canonical.extend_from_slice(v.as_bytes());
        }
        EncryptionContext { pairs, canonical }
    }
}

impl From<HashMap<String, String>> for EncryptionContext {
    fn from(pairs: HashMap<String, String>) -> Self {
        Self::from(pairs.into_iter().collect::<BTreeMap<_, _>>())
    }
}

/// A plaintext AES-256 data key. Zeroized on drop; no `Debug`, `Display` or `Clone`; its bytes
/// come out only through [`DataKey::expose_secret`].
pub struct DataKey(Zeroizing<[u8; DATA_KEY_LEN]>);

impl DataKey {
    /// Takes the key out of `bytes` and zeroizes `bytes` (also when it has the wrong length).
    pub fn take_from(bytes: &mut Vec<u8>) -> Result<DataKey, EnvelopeError> {
        let mut key = Zeroizing::new([0u8; DATA_KEY_LEN]);
        let ok = bytes.len() == DATA_KEY_LEN;
        if ok {
            key.copy_from_slice(bytes);
        }
        bytes.zeroize();
        if ok {
            Ok(DataKey(key))
        } else {
            Err(EnvelopeError::BadDataKey("a data key must be 32 bytes"))
        }
    }

    /// The key bytes.
    pub fn expose_secret(&self) -> &[u8; DATA_KEY_LEN] {
        &self.0
    }

    fn aead_key(&self) -> Result<LessSafeKey, EnvelopeError> {
        UnboundKey::new(&AES_256_GCM, self.expose_secret().as_slice())
            .map(LessSafeKey::new)
            .map_err(|_| EnvelopeError::BadDataKey("not an AES-256 key"))
    }
}

/// A fresh data key: in plaintext for local use, and encrypted for the record.
pub struct GeneratedDataKey {
    /// The plaintext key.
    pub plaintext: DataKey,
    /// The key encrypted under the KMS key (the service's ciphertext blob), with the context.
    pub encrypted: Vec<u8>,
}

/// Where data keys come from and go back to. [`Client`] implements it with KMS
/// `GenerateDataKey` (`AES_256`) and `Decrypt`, passing the encryption context to both.
pub trait DataKeyProvider: Send + Sync + 'static {
    /// A fresh AES-256 data key under `key_id`, bound to `context`.
    fn new_data_key(
        &self,
        key_id: &str,
        context: &EncryptionContext,
    ) -> impl Future<Output = Result<GeneratedDataKey, EnvelopeError>> + Send;

    /// The plaintext of an encrypted data key, which must have been bound to `context`.
    fn decrypt_data_key(
        &self,
        encrypted: &[u8],
        context: &EncryptionContext,
    ) -> impl Future<Output = Result<DataKey, EnvelopeError>> + Send;
}

impl DataKeyProvider for Client {
    async fn new_data_key(
        &self,
        key_id: &str,
        context: &EncryptionContext,
    ) -> Result<GeneratedDataKey, EnvelopeError> {
        let mut out = self
            .generate_data_key()
            .key_id(key_id)
            .key_spec("AES_256")
            .set_encryption_context(context.to_request_map())
            .send()
            .await
            .map_err(|source| EnvelopeError::Kms {
                operation: "GenerateDataKey",
                source,
            })?;
        let plaintext = DataKey::take_from(&mut out.plaintext)?;
        Ok(GeneratedDataKey {
            plaintext,
            encrypted: std::mem::take(&mut out.ciphertext_blob),
        })
    }

    async fn decrypt_data_key(
        &self,
        encrypted: &[u8],
        context: &EncryptionContext,
    ) -> Result<DataKey, EnvelopeError> {
        let mut out = self
            .decrypt()
            .ciphertext_blob(encrypted.to_vec())
            .set_encryption_context(context.to_request_map())
            .send()
            .await
            .map_err(|source| EnvelopeError::Kms {
                operation: "Decrypt",
                source,
            })?;
        DataKey::take_from(&mut out.plaintext)
    }
}

/// Cache limits. An encryption entry serves at most `max_messages` records and `max_bytes`
/// plaintext bytes, for at most `max_age`; the record that would cross a limit retires the entry
/// (it is never used again) and gets a fresh data key. Decryption entries live `max_age`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheLimits {
    /// How long a data key is used after it was generated (or unwrapped, for decryption).
    pub max_age: Duration,
    /// Records per data key, 1..=2^32.
    pub max_messages: u64,
    /// Plaintext bytes per data key, 1..=2^63-1. A single record larger than this gets a data
    /// key of its own that is not cached (as the AWS Encryption SDK does).
    pub max_bytes: u64,
    /// Entries per cache (encryption: per key id and context; decryption: per encrypted data
    /// key); the least recently used goes first.
    pub capacity: usize,
    /// Refresh ahead: when an entry has used 75% of its messages or bytes or 90% of its age,
    /// fetch the next data key in a background task, so that the record which spends the
    /// entry need not wait for KMS. At most one prefetch per entry, skipped if the entry was
    /// replaced first; the prefetched key's age counts from its generation. Off gives the AWS
    /// Encryption SDK's behaviour (refill on demand only).
    pub prefetch: bool,
}

impl Default for CacheLimits {
    /// Five minutes, 2^32 records, 2^63-1 bytes, 1000 entries, prefetch on.
    fn default() -> Self {
        CacheLimits {
            max_age: Duration::from_secs(300),
            max_messages: MAX_MESSAGES_LIMIT,
            max_bytes: MAX_BYTES_LIMIT,
            capacity: 1000,
            prefetch: true,
        }
    }
}

impl CacheLimits {
    /// Checks every limit's range.
    pub fn validate(&self) -> Result<(), EnvelopeError> {
        if self.max_age.is_zero() {
            return Err(EnvelopeError::Config("max_age must be positive".into()));
        }
        if !(1..=MAX_MESSAGES_LIMIT).contains(&self.max_messages) {
            return Err(EnvelopeError::Config(format!(
                "max_messages must be 1..={MAX_MESSAGES_LIMIT} (random nonces), got {}",
                self.max_messages
            )));
        }
        if !(1..=MAX_BYTES_LIMIT).contains(&self.max_bytes) {
            return Err(EnvelopeError::Config(format!(
                "max_bytes must be 1..={MAX_BYTES_LIMIT}, got {}",
                self.max_bytes
            )));
        }
        if self.capacity == 0 {
            return Err(EnvelopeError::Config("capacity must be at least 1".into()));
        }
        Ok(())
    }
}

/// How many calls the encryptor made to its data key provider (KMS), since it was built.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EnvelopeStats {
    /// `GenerateDataKey` calls (cache refills and uncached oversized records).
    pub generate_data_key_calls: u64,
    /// `Decrypt` calls (decryption cache misses).
    pub decrypt_calls: u64,
}

/// Builder for [`EnvelopeEncryptor`].
pub struct EnvelopeEncryptorBuilder<P> {
    provider: P,
    limits: CacheLimits,
}

impl<P: DataKeyProvider> EnvelopeEncryptorBuilder<P> {
    /// Sets [`CacheLimits::max_age`].
    pub fn max_age(mut self, v: Duration) -> Self {
        self.limits.max_age = v;
        self
    }

    /// Sets [`CacheLimits::max_messages`].
    pub fn max_messages(mut self, v: u64) -> Self {
        self.limits.max_messages = v;
        self
    }

    /// Sets [`CacheLimits::max_bytes`].
    pub fn max_bytes(mut self, v: u64) -> Self {
        self.limits.max_bytes = v;
        self
    }

    /// Sets [`CacheLimits::capacity`].
    pub fn capacity(mut self, v: usize) -> Self {
        self.limits.capacity = v;
        self
    }

    /// Sets [`CacheLimits::prefetch`].
    pub fn prefetch(mut self, v: bool) -> Self {
        self.limits.prefetch = v;
        self
    }

    /// Replaces all limits.
    pub fn limits(mut self, limits: CacheLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Validates the limits and builds the encryptor (with empty caches).
    pub fn build(self) -> Result<EnvelopeEncryptor<P>, EnvelopeError> {
        self.limits.validate()?;
        Ok(EnvelopeEncryptor {
            inner: Arc::new(Inner {
                provider: self.provider,
                epoch: Instant::now(),
                enc: RwLock::new(EncMap::default()),
                dec: RwLock::new(HashMap::new()),
                generate_calls: AtomicU64::new(0),
                decrypt_calls: AtomicU64::new(0),
                limits: self.limits,
            }),
        })
    }
}

/// Envelope encryption of records under cached KMS data keys. Cheap to clone (clones share the
/// caches); safe to use from many tasks at once.
pub struct EnvelopeEncryptor<P = Client> {
    inner: Arc<Inner<P>>,
}

impl<P> Clone for EnvelopeEncryptor<P> {
    fn clone(&self) -> Self {
        EnvelopeEncryptor {
            inner: self.inner.clone(),
        }
    }
}

impl<P> std::fmt::Debug for EnvelopeEncryptor<P> {
    // Never the caches: they hold plaintext data keys.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvelopeEncryptor")
            .field("limits", &self.inner.limits)
            .field("stats", &self.inner.stats())
            .finish()
    }
}

struct Inner<P> {
    provider: P,
    limits: CacheLimits,
    /// Origin of the coarse LRU clock (milliseconds).
    epoch: Instant,
    enc: RwLock<EncMap>,
    dec: RwLock<HashMap<Vec<u8>, Arc<DecSlot>>>,
    generate_calls: AtomicU64,
    decrypt_calls: AtomicU64,
}

/// key id -> canonical context -> slot: nested so that a lookup borrows (`&str`, `&[u8]`)
/// instead of building an owned key per record.
#[derive(Default)]
struct EncMap {
    slots: HashMap<String, HashMap<Vec<u8>, Arc<EncSlot>>>,
    len: usize,
}

/// One (key id, context): the data key in use and the lock that makes refills single-flight.
struct EncSlot {
    current: RwLock<Option<Arc<EncEntry>>>,
    /// A prefetched data key, installed by the refill that retires `current`.
    next: Mutex<Option<Arc<EncEntry>>>,
    refill: tokio::sync::Mutex<()>,
    last_used: AtomicU64,
}

/// A cached data key for encryption and what it has been used for.
struct EncEntry {
    key: LessSafeKey,
    /// `header || canonical context`: the record prefix and the AAD are fixed per entry.
    aad: Vec<u8>,
    header_len: usize,
    created: Instant,
    messages: AtomicU64,
    bytes: AtomicU64,
    retired: AtomicBool,
    /// Set once a prefetch of the next data key has been started for this entry.
    prefetch_started: AtomicBool,
}

/// One encrypted data key in the decryption cache.
struct DecSlot {
    /// The canonical context the key was unwrapped with; other contexts do not hit.
    ctx: Vec<u8>,
    /// Set once by the task that unwraps the key; the others wait for it.
    entry: tokio::sync::OnceCell<DecEntry>,
    last_used: AtomicU64,
}

struct DecEntry {
    key: LessSafeKey,
    /// `header || canonical context`, as for [`EncEntry::aad`].
    aad: Vec<u8>,
    created: Instant,
}

/// A parsed record: borrowed parts, nothing decrypted.
struct RecordParts<'a> {
    header: &'a [u8],
    edk: &'a [u8],
    nonce: [u8; NONCE_LEN],
    /// Ciphertext followed by the tag.
    sealed: &'a [u8],
}

fn parse_record(record: &[u8]) -> Result<RecordParts<'_>, EnvelopeError> {
    if record.len() < FIXED_HEADER || record[0] != RECORD_VERSION {
        return Err(EnvelopeError::InvalidRecord);
    }
    let edk_len = u16::from_be_bytes([record[1], record[2]]) as usize;
    let header_len = FIXED_HEADER + edk_len;
    if edk_len == 0 || record.len() < header_len + NONCE_LEN + TAG_LEN {
        return Err(EnvelopeError::InvalidRecord);
    }
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&record[header_len..header_len + NONCE_LEN]);
    Ok(RecordParts {
        header: &record[..header_len],
        edk: &record[FIXED_HEADER..header_len],
        nonce,
        sealed: &record[header_len + NONCE_LEN..],
    })
}

/// The encrypted data key a record was sealed under (the KMS ciphertext blob, which KMS
/// `Decrypt` opens with the record's encryption context). `InvalidRecord` if malformed.
pub fn record_encrypted_data_key(record: &[u8]) -> Result<&[u8], EnvelopeError> {
    parse_record(record).map(|p| p.edk)
}

/// Opens a record with its plaintext data key obtained elsewhere (KMS `Decrypt` of
/// [`record_encrypted_data_key`] with the same context): for tools that hold the data key,
/// and to check a record against KMS directly. No cache, no KMS call.
pub fn decrypt_with_data_key(
    record: &[u8],
    key: &DataKey,
    context: &EncryptionContext,
) -> Result<Vec<u8>, EnvelopeError> {
    let parts = parse_record(record)?;
    let mut aad = parts.header.to_vec();
    aad.extend_from_slice(&context.canonical);
    open(&key.aead_key()?, &aad, &parts)
}

/// `header || ctx` for a data key: the record's first bytes and the AAD prefix.
fn header_and_aad(edk: &[u8], ctx: &EncryptionContext) -> Result<(Vec<u8>, usize), EnvelopeError> {
    let edk_len =
        u16::try_from(edk.len())
            .ok()
            .filter(|n| *n > 0)
            .ok_or(EnvelopeError::BadDataKey(
                "the encrypted data key must be 1..=65535 bytes",
            ))?;
    let mut aad = Vec::with_capacity(FIXED_HEADER + edk.len() + ctx.canonical.len());
    aad.push(RECORD_VERSION);
    aad.extend_from_slice(&edk_len.to_be_bytes());
    aad.extend_from_slice(edk);
    let header_len = aad.len();
    aad.extend_from_slice(&ctx.canonical);
    Ok((aad, header_len))
}

fn seal(
    key: &LessSafeKey,
    aad: &[u8],
    header_len: usize,
    plaintext: &[u8],
) -> Result<Vec<u8>, EnvelopeError> {
    let body = header_len + NONCE_LEN;
    let mut out = Vec::with_capacity(body + plaintext.len() + TAG_LEN);
    out.extend_from_slice(&aad[..header_len]);
    let mut nonce = [0u8; NONCE_LEN];
    // A fresh random nonce per record; max_messages <= 2^32 keeps collisions negligible.
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| EnvelopeError::Crypto)?;
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut out[body..],
        )
        .map_err(|_| EnvelopeError::Crypto)?;
    out.extend_from_slice(tag.as_ref());
    Ok(out)
}

fn open(key: &LessSafeKey, aad: &[u8], parts: &RecordParts<'_>) -> Result<Vec<u8>, EnvelopeError> {
    let mut buf = parts.sealed.to_vec();
    let opened = key
        .open_in_place(
            Nonce::assume_unique_for_key(parts.nonce),
            Aad::from(aad),
            &mut buf,
        )
        .map(|p| p.len());
    match opened {
        Ok(n) => {
            buf.truncate(n);
            Ok(buf)
        }
        Err(_) => {
            // The buffer may hold unauthenticated plaintext now.
            buf.zeroize();
            Err(EnvelopeError::InvalidRecord)
        }
    }
}

/// Lock helpers: a panic elsewhere must not make the cache unusable; every critical section
/// leaves the maps consistent, so a poisoned lock's data is still valid.
fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

fn lock<T>(l: &Mutex<T>) -> MutexGuard<'_, T> {
    l.lock().unwrap_or_else(|e| e.into_inner())
}

impl EncEntry {
    fn new(generated: GeneratedDataKey, ctx: &EncryptionContext) -> Result<Self, EnvelopeError> {
        let key = generated.plaintext.aead_key()?;
        let (aad, header_len) = header_and_aad(&generated.encrypted, ctx)?;
        Ok(EncEntry {
            key,
            aad,
            header_len,
            created: Instant::now(),
            messages: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            retired: AtomicBool::new(false),
            prefetch_started: AtomicBool::new(false),
        })
    }

    /// Claims one message of `len` bytes. Either both counters move or the entry is retired:
    /// a record that does not fit ends the entry for everyone (never reused after a limit).
    fn reserve(&self, len: u64, limits: &CacheLimits, now: Instant) -> bool {
        if self.retired.load(Ordering::Acquire) {
            return false;
        }
        if now.saturating_duration_since(self.created) >= limits.max_age
            || !bump(&self.messages, 1, limits.max_messages)
        {
            self.retired.store(true, Ordering::Release);
            return false;
        }
        if !bump(&self.bytes, len, limits.max_bytes) {
            self.retired.store(true, Ordering::Release);
            return false;
        }
        true
    }

    /// Time to fetch the next data key: 75% of the messages or bytes used, or 90% of the age.
    /// Early enough that the fetch usually lands before the entry is spent at full speed; the
    /// age threshold is late because a prefetched key ages while it waits.
    fn nearly_spent(&self, limits: &CacheLimits, now: Instant) -> bool {
        let near = |used: u64, max: u64| used >= max - max / 4;
        near(self.messages.load(Ordering::Relaxed), limits.max_messages)
            || near(self.bytes.load(Ordering::Relaxed), limits.max_bytes)
            || now.saturating_duration_since(self.created) >= limits.max_age - limits.max_age / 10
    }

    fn usable(&self, limits: &CacheLimits, now: Instant) -> bool {
        !self.retired.load(Ordering::Acquire)
            && now.saturating_duration_since(self.created) < limits.max_age
    }
}

/// Adds `n` to `counter` unless the sum would pass `max`.
fn bump(counter: &AtomicU64, n: u64, max: u64) -> bool {
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
            v.checked_add(n).filter(|s| *s <= max)
        })
        .is_ok()
}

impl<P: DataKeyProvider> EnvelopeEncryptor<P> {
    /// A builder with [`CacheLimits::default`].
    pub fn builder(provider: P) -> EnvelopeEncryptorBuilder<P> {
        EnvelopeEncryptorBuilder {
            provider,
            limits: CacheLimits::default(),
        }
    }

    /// An encryptor with [`CacheLimits::default`].
    pub fn new(provider: P) -> Self {
        Self::builder(provider)
            .build()
            .expect("the default limits are valid")
    }

    /// The limits in force.
    pub fn limits(&self) -> &CacheLimits {
        &self.inner.limits
    }

    /// Calls made to the data key provider so far.
    pub fn stats(&self) -> EnvelopeStats {
        self.inner.stats()
    }

    /// Seals `plaintext` into a self-describing record under a (cached) data key of `key_id`,
    /// bound to `context`. A KMS call happens only when the cache has no usable data key.
    pub async fn encrypt(
        &self,
        key_id: &str,
        context: &EncryptionContext,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, EnvelopeError> {
        let len = plaintext.len() as u64;
        if len > MAX_RECORD_PLAINTEXT {
            return Err(EnvelopeError::PlaintextTooLarge {
                len,
                max: MAX_RECORD_PLAINTEXT,
            });
        }
        let inner = &self.inner;
        if len > inner.limits.max_bytes {
            // Too big for any cache entry: a data key of its own, used once.
            let generated = inner.generate(key_id, context).await?;
            let entry = EncEntry::new(generated, context)?;
            return seal(&entry.key, &entry.aad, entry.header_len, plaintext);
        }
        if let Some(record) = inner.encrypt_cached(key_id, context, plaintext)? {
            return Ok(record);
        }
        inner.encrypt_refill(key_id, context, plaintext).await
    }

    /// Opens a record sealed by [`EnvelopeEncryptor::encrypt`] (by any encryptor) with the same
    /// encryption context. The data key comes from the cache or KMS `Decrypt`.
    pub async fn decrypt(
        &self,
        record: &[u8],
        context: &EncryptionContext,
    ) -> Result<Vec<u8>, EnvelopeError> {
        let parts = parse_record(record)?;
        let inner = &self.inner;
        let now = Instant::now();
        let slot = {
            let map = read(&inner.dec);
            map.get(parts.edk).cloned()
        };
        let slot = match slot {
            Some(slot) if slot.ctx != context.canonical => {
                // Cached under another context: ask KMS, which refuses unless the context is
                // the one the data key was bound to; cache nothing.
                let key = inner.unwrap(parts.edk, context).await?;
                return decrypt_with_data_key(record, &key, context);
            }
            Some(slot) if slot.fresh(&inner.limits, now) => slot,
            _ => inner.insert_dec_slot(parts.edk, context, now),
        };
        slot.last_used.store(inner.tick(now), Ordering::Relaxed);
        let entry = slot
            .entry
            .get_or_try_init(|| async {
                let key = inner.unwrap(parts.edk, context).await?.aead_key()?;
                let mut aad = parts.header.to_vec();
                aad.extend_from_slice(&context.canonical);
                Ok::<_, EnvelopeError>(DecEntry {
                    key,
                    aad,
                    created: Instant::now(),
                })
            })
            .await;
        match entry {
            Ok(entry) => open(&entry.key, &entry.aad, &parts),
            Err(e) => {
                // A refused unwrap (wrong context, no permission) must not leave a slot that
                // claims this data key for that context.
                let mut map = write(&inner.dec);
                if map.get(parts.edk).is_some_and(|s| Arc::ptr_eq(s, &slot)) {
                    map.remove(parts.edk);
                }
                Err(e)
            }
        }
    }
}

impl DecSlot {
    /// Not yet unwrapped (someone is on it) or unwrapped less than `max_age` ago.
    fn fresh(&self, limits: &CacheLimits, now: Instant) -> bool {
        self.entry
            .get()
            .is_none_or(|e| now.saturating_duration_since(e.created) < limits.max_age)
    }
}

impl<P> Inner<P> {
    fn stats(&self) -> EnvelopeStats {
        EnvelopeStats {
            generate_data_key_calls: self.generate_calls.load(Ordering::Relaxed),
            decrypt_calls: self.decrypt_calls.load(Ordering::Relaxed),
        }
    }

    fn tick(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_millis() as u64
    }
}

impl<P: DataKeyProvider> Inner<P> {
    async fn generate(
        &self,
        key_id: &str,
        ctx: &EncryptionContext,
    ) -> Result<GeneratedDataKey, EnvelopeError> {
        self.generate_calls.fetch_add(1, Ordering::Relaxed);
        self.provider.new_data_key(key_id, ctx).await
    }

    async fn unwrap(&self, edk: &[u8], ctx: &EncryptionContext) -> Result<DataKey, EnvelopeError> {
        self.decrypt_calls.fetch_add(1, Ordering::Relaxed);
        self.provider.decrypt_data_key(edk, ctx).await
    }

    /// The hot path: shared locks only. `None` when the slot is missing or its entry is spent.
    fn encrypt_cached(
        self: &Arc<Self>,
        key_id: &str,
        ctx: &EncryptionContext,
        plaintext: &[u8],
    ) -> Result<Option<Vec<u8>>, EnvelopeError> {
        let now = Instant::now();
        let map = read(&self.enc);
        let Some(slot) = map.slots.get(key_id).and_then(|m| m.get(&ctx.canonical)) else {
            return Ok(None);
        };
        let tick = self.tick(now);
        // Skip the store when the value is current: a shared cache line stays shared.
        if slot.last_used.load(Ordering::Relaxed) != tick {
            slot.last_used.store(tick, Ordering::Relaxed);
        }
        let current = read(&slot.current);
        match current.as_ref() {
            Some(e) if e.reserve(plaintext.len() as u64, &self.limits, now) => {
                if self.limits.prefetch
                    && e.nearly_spent(&self.limits, now)
                    && !e.prefetch_started.swap(true, Ordering::AcqRel)
                {
                    self.spawn_prefetch(slot.clone(), e.clone(), key_id, ctx);
                }
                seal(&e.key, &e.aad, e.header_len, plaintext).map(Some)
            }
            _ => Ok(None),
        }
    }

    /// Fetches the data key that will follow `spent` in `slot`, holding the refill lock so
    /// that a refill racing with it waits for it instead of calling KMS a second time. Does
    /// nothing if `spent` was replaced meanwhile (a refill got there first) or outside a tokio
    /// runtime. Errors are dropped: the refill that needs the key asks again and reports.
    fn spawn_prefetch(
        self: &Arc<Self>,
        slot: Arc<EncSlot>,
        spent: Arc<EncEntry>,
        key_id: &str,
        ctx: &EncryptionContext,
    ) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (inner, key_id, ctx) = (self.clone(), key_id.to_owned(), ctx.clone());
        runtime.spawn(async move {
            let _refilling = slot.refill.lock().await;
            let still_current = read(&slot.current)
                .as_ref()
                .is_some_and(|c| Arc::ptr_eq(c, &spent));
            if !still_current || lock(&slot.next).is_some() {
                return;
            }
            if let Ok(generated) = inner.generate(&key_id, &ctx).await {
                if let Ok(entry) = EncEntry::new(generated, &ctx) {
                    *lock(&slot.next) = Some(Arc::new(entry));
                }
            }
        });
    }

    /// The slow path: one task per slot asks KMS for a data key; tasks that queued behind it
    /// use the new entry if it has room.
    async fn encrypt_refill(
        &self,
        key_id: &str,
        ctx: &EncryptionContext,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, EnvelopeError> {
        let len = plaintext.len() as u64;
        let slot = self.enc_slot(key_id, ctx);
        let _refilling = slot.refill.lock().await;
        let now = Instant::now();
        {
            let current = read(&slot.current);
            if let Some(e) = current.as_ref() {
                if e.reserve(len, &self.limits, now) {
                    return seal(&e.key, &e.aad, e.header_len, plaintext);
                }
            }
        }
        let prefetched = lock(&slot.next).take();
        if let Some(next) = prefetched {
            // Reserved before it becomes visible, so this record is its first use.
            if next.reserve(len, &self.limits, now) {
                let record = seal(&next.key, &next.aad, next.header_len, plaintext);
                *write(&slot.current) = Some(next);
                return record;
            }
            // Aged out while waiting: dropped (and its key wiped) here.
        }
        let generated = self.generate(key_id, ctx).await?;
        let entry = Arc::new(EncEntry::new(generated, ctx)?);
        // A new entry has room for one record of up to max_bytes (larger ones never get
        // here); its age is checked from the next record on, so a slow KMS answer still
        // serves the record that asked for it.
        let reserved = bump(&entry.messages, 1, self.limits.max_messages)
            && bump(&entry.bytes, len, self.limits.max_bytes);
        debug_assert!(reserved);
        let record = seal(&entry.key, &entry.aad, entry.header_len, plaintext);
        *write(&slot.current) = Some(entry);
        record
    }

    /// The slot of (key id, context), inserted if missing. Inserting first drops spent
    /// entries, then the least recently used slot if the cache is still full.
    fn enc_slot(&self, key_id: &str, ctx: &EncryptionContext) -> Arc<EncSlot> {
        let now = Instant::now();
        if let Some(slot) = read(&self.enc)
            .slots
            .get(key_id)
            .and_then(|m| m.get(&ctx.canonical))
        {
            return slot.clone();
        }
        let mut map = write(&self.enc);
        if let Some(slot) = map.slots.get(key_id).and_then(|m| m.get(&ctx.canonical)) {
            return slot.clone();
        }
        if map.len >= self.limits.capacity {
            let limits = &self.limits;
            let mut removed = 0;
            for per_key in map.slots.values_mut() {
                per_key.retain(|_, s| {
                    // An empty slot is being filled right now: keep it.
                    let keep = read(&s.current)
                        .as_ref()
                        .is_none_or(|e| e.usable(limits, now));
                    removed += usize::from(!keep);
                    keep
                });
            }
            map.len -= removed;
            map.slots.retain(|_, m| !m.is_empty());
            if map.len >= self.limits.capacity {
                let victim = map
                    .slots
                    .iter()
                    .flat_map(|(k, m)| m.iter().map(move |(c, s)| (k, c, s)))
                    .min_by_key(|(_, _, s)| s.last_used.load(Ordering::Relaxed))
                    .map(|(k, c, _)| (k.clone(), c.clone()));
                if let Some((k, c)) = victim {
                    if let Some(m) = map.slots.get_mut(&k) {
                        m.remove(&c);
                        if m.is_empty() {
                            map.slots.remove(&k);
                        }
                    }
                    map.len -= 1;
                }
            }
        }
        let slot = Arc::new(EncSlot {
            current: RwLock::new(None),
            next: Mutex::new(None),
            refill: tokio::sync::Mutex::new(()),
            last_used: AtomicU64::new(self.tick(now)),
        });
        map.slots
            .entry(key_id.to_owned())
            .or_default()
            .insert(ctx.canonical.clone(), slot.clone());
        map.len += 1;
        slot
    }

    /// A fresh decryption slot for `edk` (replacing an expired one). Another task may have
    /// inserted a fresh one meanwhile: then that one is returned.
    fn insert_dec_slot(&self, edk: &[u8], ctx: &EncryptionContext, now: Instant) -> Arc<DecSlot> {
        let mut map = write(&self.dec);
        if let Some(slot) = map.get(edk) {
            if slot.ctx == ctx.canonical && slot.fresh(&self.limits, now) {
                return slot.clone();
            }
        }
        map.remove(edk);
        if map.len() >= self.limits.capacity {
            let limits = &self.limits;
            map.retain(|_, s| s.entry.get().is_none() || s.fresh(limits, now));
            if map.len() >= self.limits.capacity {
                let victim = map
                    .iter()
                    .min_by_key(|(_, s)| s.last_used.load(Ordering::Relaxed))
                    .map(|(k, _)| k.clone());
                if let Some(k) = victim {
                    map.remove(&k);
                }
            }
        }
        let slot = Arc::new(DecSlot {
            ctx: ctx.canonical.clone(),
            entry: tokio::sync::OnceCell::new(),
            last_used: AtomicU64::new(self.tick(now)),
        });
        map.insert(edk.to_vec(), slot.clone());
        slot
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// A local data key source for the cache and format tests: real AES-256-GCM wrapping under
    /// a random master key with `key id || context` as AAD, so a wrong context is refused as
    /// KMS refuses it. The KMS path itself is tested against a real region
    /// (node/tests/it/envelope.rs).
    struct LocalKeys {
        master: LessSafeKey,
        /// Makes each call yield a few times, so concurrent callers overlap.
        slow: bool,
    }

    impl LocalKeys {
        fn new() -> Self {
            let mut k = [0u8; 32];
            aws_lc_rs::rand::fill(&mut k).unwrap();
            LocalKeys {
                master: LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &k).unwrap()),
                slow: false,
            }
        }

        fn aad(key_id: &str, ctx: &EncryptionContext) -> Vec<u8> {
            [key_id.as_bytes(), b"\0", ctx.canonical_bytes()].concat()
        }

        fn refused(op: &'static str) -> EnvelopeError {
            EnvelopeError::Kms {
                operation: op,
                source: Error::Service {
                    error_type: "InvalidCiphertextException".into(),
                    message: String::new(),
                    code: tonic::Code::InvalidArgument,
                },
            }
        }
    }

    impl DataKeyProvider for LocalKeys {
        async fn new_data_key(
            &self,
            key_id: &str,
            ctx: &EncryptionContext,
        ) -> Result<GeneratedDataKey, EnvelopeError> {
            if self.slow {
                for _ in 0..5 {
                    tokio::task::yield_now().await;
                }
            }
            let mut plain = vec![0u8; 32];
            aws_lc_rs::rand::fill(&mut plain).unwrap();
            let mut nonce = [0u8; NONCE_LEN];
            aws_lc_rs::rand::fill(&mut nonce).unwrap();
            // edk = key id len | key id | nonce | wrapped key | tag
            let mut edk = vec![key_id.len() as u8];
            edk.extend_from_slice(key_id.as_bytes());
            edk.extend_from_slice(&nonce);
            let mut wrapped = plain.clone();
            let tag = self
                .master
                .seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(Self::aad(key_id, ctx)),
                    &mut wrapped,
                )
                .unwrap();
            edk.extend_from_slice(&wrapped);
            edk.extend_from_slice(tag.as_ref());
            Ok(GeneratedDataKey {
                plaintext: DataKey::take_from(&mut plain)?,
                encrypted: edk,
            })
        }

        async fn decrypt_data_key(
            &self,
            edk: &[u8],
            ctx: &EncryptionContext,
        ) -> Result<DataKey, EnvelopeError> {
            let n = *edk.first().ok_or(Self::refused("Decrypt"))? as usize;
            if edk.len() != 1 + n + NONCE_LEN + 32 + TAG_LEN {
                return Err(Self::refused("Decrypt"));
            }
            let key_id =
                std::str::from_utf8(&edk[1..1 + n]).map_err(|_| Self::refused("Decrypt"))?;
            let mut nonce = [0u8; NONCE_LEN];
            nonce.copy_from_slice(&edk[1 + n..1 + n + NONCE_LEN]);
            let mut buf = edk[1 + n + NONCE_LEN..].to_vec();
            let plain = self
                .master
                .open_in_place(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(Self::aad(key_id, ctx)),
                    &mut buf,
                )
                .map_err(|_| Self::refused("Decrypt"))?;
            DataKey::take_from(&mut plain.to_vec())
        }
    }

    fn ctx(pairs: &[(&str, &str)]) -> EncryptionContext {
        EncryptionContext::from_pairs(pairs.iter().copied())
    }

    fn encryptor(limits: CacheLimits) -> EnvelopeEncryptor<LocalKeys> {
        EnvelopeEncryptor::builder(LocalKeys::new())
            .limits(limits)
            .build()
            .unwrap()
    }

    fn edk(record: &[u8]) -> Vec<u8> {
        record_encrypted_data_key(record).unwrap().to_vec()
    }

    /// Groups consecutive records by data key: [2, 2, 1] = two under the first key, ...
    fn runs(records: &[Vec<u8>]) -> Vec<usize> {
        let mut out: Vec<(Vec<u8>, usize)> = Vec::new();
        for r in records {
            let k = edk(r);
            match out.last_mut() {
                Some((last, n)) if *last == k => *n += 1,
                _ => out.push((k, 1)),
            }
        }
        let distinct: BTreeSet<_> = out.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(distinct.len(), out.len(), "a retired data key came back");
        out.into_iter().map(|(_, n)| n).collect()
    }

    #[tokio::test]
    async fn round_trip_under_one_cached_data_key() {
        let env = encryptor(CacheLimits::default());
        let c = ctx(&[("tenant", "acme"), ("table", "orders")]);
        let mut records = Vec::new();
        for i in 0..100u32 {
            let pt = format!("record {i}").into_bytes();
            let r = env.encrypt("key-1", &c, &pt).await.unwrap();
            assert_eq!(env.decrypt(&r, &c).await.unwrap(), pt);
            records.push(r);
        }
        assert_eq!(runs(&records), vec![100]);
        assert_eq!(
            env.stats(),
            EnvelopeStats {
                generate_data_key_calls: 1,
                decrypt_calls: 1
            }
        );
    }

    #[tokio::test]
    async fn record_layout_is_version_edk_nonce_ciphertext_tag() {
        let env = encryptor(CacheLimits::default());
        let c = ctx(&[("a", "b")]);
        let pt = vec![7u8; 1024];
        let r = env.encrypt("key-1", &c, &pt).await.unwrap();
        let edk = edk(&r);
        assert_eq!(r[0], RECORD_VERSION);
        assert_eq!(u16::from_be_bytes([r[1], r[2]]) as usize, edk.len());
        assert_eq!(&r[3..3 + edk.len()], &edk[..]);
        assert_eq!(r.len(), 3 + edk.len() + NONCE_LEN + pt.len() + TAG_LEN);
        // Two records under one key never share a nonce and never show the plaintext.
        let r2 = env.encrypt("key-1", &c, &pt).await.unwrap();
        let nonce = |r: &[u8]| r[3 + edk.len()..3 + edk.len() + NONCE_LEN].to_vec();
        assert_ne!(nonce(&r), nonce(&r2));
        assert!(!r.windows(16).any(|w| w == &pt[..16]));
    }

    #[tokio::test]
    async fn max_messages_forces_a_new_data_key() {
        let env = encryptor(CacheLimits {
            max_messages: 3,
            ..CacheLimits::default()
        });
        let c = ctx(&[("k", "v")]);
        let mut records = Vec::new();
        for _ in 0..7 {
            records.push(env.encrypt("key-1", &c, b"x").await.unwrap());
        }
        assert_eq!(runs(&records), vec![3, 3, 1]);
        assert_eq!(env.stats().generate_data_key_calls, 3);
    }

    #[tokio::test]
    async fn a_prefetched_data_key_takes_over_without_a_kms_call_on_the_hot_path() {
        let c = ctx(&[("k", "v")]);
        for prefetch in [true, false] {
            let env = EnvelopeEncryptor::builder(LocalKeys::new())
                .max_messages(10)
                .prefetch(prefetch)
                .build()
                .unwrap();
            let mut records = Vec::new();
            for _ in 0..9 {
                records.push(env.encrypt("key-1", &c, b"x").await.unwrap());
            }
            // The 8th record reached 75%: the next key is fetched in the background.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let expected = if prefetch { 2 } else { 1 };
            assert_eq!(env.stats().generate_data_key_calls, expected);
            for _ in 0..3 {
                records.push(env.encrypt("key-1", &c, b"x").await.unwrap());
            }
            // 10 under the first key, the rest under the second; no third call either way.
            assert_eq!(runs(&records), vec![10, 2]);
            assert_eq!(env.stats().generate_data_key_calls, 2);
            for r in &records {
                assert_eq!(env.decrypt(r, &c).await.unwrap(), b"x");
            }
        }
    }

    #[tokio::test]
    async fn max_bytes_forces_a_new_data_key_and_the_spent_key_never_returns() {
        let env = encryptor(CacheLimits {
            max_bytes: 1500,
            ..CacheLimits::default()
        });
        let c = ctx(&[("k", "v")]);
        let mut records = Vec::new();
        // 1000 -> A; 600 would make A 1600 > 1500 -> B (600); 100 fits in B (700) and must
        // not go back to A, which had room for it (1100) but is retired.
        for len in [1000usize, 600, 100, 800, 1] {
            records.push(env.encrypt("key-1", &c, &vec![1u8; len]).await.unwrap());
        }
        // B: 600 + 100 + 800 = 1500 exactly (allowed); the last byte needs C.
        assert_eq!(runs(&records), vec![1, 3, 1]);
        assert_eq!(env.stats().generate_data_key_calls, 3);
    }

    #[tokio::test]
    async fn a_record_above_max_bytes_gets_an_uncached_data_key() {
        let env = encryptor(CacheLimits {
            max_bytes: 100,
            ..CacheLimits::default()
        });
        let c = ctx(&[]);
        let small1 = env.encrypt("key-1", &c, &[0u8; 10]).await.unwrap();
        let big = env.encrypt("key-1", &c, &[0u8; 200]).await.unwrap();
        let small2 = env.encrypt("key-1", &c, &[0u8; 10]).await.unwrap();
        assert_eq!(
            edk(&small1),
            edk(&small2),
            "the big record left the cache alone"
        );
        assert_ne!(edk(&small1), edk(&big));
        assert_eq!(env.stats().generate_data_key_calls, 2);
        assert_eq!(env.decrypt(&big, &c).await.unwrap(), vec![0u8; 200]);
    }

    #[tokio::test]
    async fn max_age_forces_a_new_data_key() {
        let env = encryptor(CacheLimits {
            max_age: Duration::from_millis(150),
            ..CacheLimits::default()
        });
        let c = ctx(&[("k", "v")]);
        let a = env.encrypt("key-1", &c, b"1").await.unwrap();
        let b = env.encrypt("key-1", &c, b"2").await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let d = env.encrypt("key-1", &c, b"3").await.unwrap();
        assert_eq!(runs(&[a.clone(), b, d.clone()]), vec![2, 1]);
        assert_eq!(env.stats().generate_data_key_calls, 2);

        // Decryption entries expire too: the old key is unwrapped again after max_age.
        env.decrypt(&a, &c).await.unwrap();
        env.decrypt(&a, &c).await.unwrap();
        assert_eq!(env.stats().decrypt_calls, 1);
        tokio::time::sleep(Duration::from_millis(200)).await;
        env.decrypt(&a, &c).await.unwrap();
        assert_eq!(env.stats().decrypt_calls, 2);
        env.decrypt(&d, &c).await.unwrap();
        assert_eq!(env.stats().decrypt_calls, 3);
    }

    #[tokio::test]
    async fn each_key_id_and_context_has_its_own_data_key() {
        let env = encryptor(CacheLimits::default());
        let (c1, c2) = (ctx(&[("t", "1")]), ctx(&[("t", "2")]));
        let a = env.encrypt("key-1", &c1, b"x").await.unwrap();
        let b = env.encrypt("key-1", &c2, b"x").await.unwrap();
        let d = env.encrypt("key-2", &c1, b"x").await.unwrap();
        let a2 = env.encrypt("key-1", &c1, b"x").await.unwrap();
        assert_eq!(edk(&a), edk(&a2));
        assert_ne!(edk(&a), edk(&b));
        assert_ne!(edk(&a), edk(&d));
        assert_eq!(env.stats().generate_data_key_calls, 3);
    }

    #[tokio::test]
    async fn a_record_does_not_decrypt_under_another_context() {
        let env = encryptor(CacheLimits::default());
        let (good, other) = (ctx(&[("tenant", "a")]), ctx(&[("tenant", "b")]));
        let r = env.encrypt("key-1", &good, b"secret").await.unwrap();
        // Cold cache: the data key source refuses the context.
        let err = env.decrypt(&r, &other).await.unwrap_err();
        assert_eq!(err.error_type(), "InvalidCiphertextException");
        // The refusal left nothing behind: the right context still works and is cached.
        assert_eq!(env.decrypt(&r, &good).await.unwrap(), b"secret");
        let calls = env.stats().decrypt_calls;
        assert_eq!(env.decrypt(&r, &good).await.unwrap(), b"secret");
        assert_eq!(env.stats().decrypt_calls, calls);
        // Warm cache under the right context: the other context still fails.
        let err = env.decrypt(&r, &other).await.unwrap_err();
        assert_eq!(err.error_type(), "InvalidCiphertextException");
        // An empty context is a context too.
        assert!(env.decrypt(&r, &ctx(&[])).await.is_err());
    }

    #[tokio::test]
    async fn the_context_is_bound_as_aad_even_with_the_right_data_key() {
        // Data key from the cache, ciphertext under `a`, asked to open under `b`: only the
        // record's AAD stands in the way (the cached key itself is the right one).
        let env = encryptor(CacheLimits::default());
        let a = ctx(&[("x", "1")]);
        let r = env.encrypt("key-1", &a, b"secret").await.unwrap();
        let parts = parse_record(&r).unwrap();
        let key = env
            .inner
            .provider
            .decrypt_data_key(parts.edk, &a)
            .await
            .unwrap()
            .aead_key()
            .unwrap();
        let (aad_b, _) = header_and_aad(parts.edk, &ctx(&[("x", "2")])).unwrap();
        assert!(matches!(
            open(&key, &aad_b, &parts),
            Err(EnvelopeError::InvalidRecord)
        ));
        let (aad_a, _) = header_and_aad(parts.edk, &a).unwrap();
        assert_eq!(open(&key, &aad_a, &parts).unwrap(), b"secret");
    }

    #[tokio::test]
    async fn every_tampered_byte_and_truncation_fails() {
        let env = encryptor(CacheLimits::default());
        let c = ctx(&[("k", "v")]);
        let r = env.encrypt("key-1", &c, b"0123456789abcdef").await.unwrap();
        env.decrypt(&r, &c).await.unwrap();
        for i in 0..r.len() {
            let mut t = r.clone();
            t[i] ^= 0x01;
            assert!(env.decrypt(&t, &c).await.is_err(), "flip at byte {i}");
        }
        for n in 0..r.len() {
            let err = env.decrypt(&r[..n], &c).await.unwrap_err();
            assert!(
                matches!(
                    err,
                    EnvelopeError::InvalidRecord | EnvelopeError::Kms { .. }
                ),
                "truncated to {n}"
            );
        }
        let mut longer = r.clone();
        longer.push(0);
        assert!(env.decrypt(&longer, &c).await.is_err());
        let mut v2 = r.clone();
        v2[0] = 2;
        assert!(matches!(
            env.decrypt(&v2, &c).await,
            Err(EnvelopeError::InvalidRecord)
        ));
        assert!(matches!(
            env.decrypt(&[], &c).await,
            Err(EnvelopeError::InvalidRecord)
        ));
    }

    #[tokio::test]
    async fn a_fresh_encryptor_with_the_same_keys_decrypts() {
        // Same master key in a second provider: as a second process, no shared cache.
        let mut master_copy = [0u8; 32];
        aws_lc_rs::rand::fill(&mut master_copy).unwrap();
        let a = EnvelopeEncryptor::new(LocalKeys {
            master: LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &master_copy).unwrap()),
            slow: false,
        });
        let b = EnvelopeEncryptor::new(LocalKeys {
            master: LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &master_copy).unwrap()),
            slow: false,
        });
        let c = ctx(&[("k", "v")]);
        let r = a.encrypt("key-1", &c, b"hello").await.unwrap();
        assert_eq!(b.decrypt(&r, &c).await.unwrap(), b"hello");
        assert_eq!(b.stats().decrypt_calls, 1);
        assert_eq!(b.stats().generate_data_key_calls, 0);
        // A provider with another master key cannot unwrap it.
        let stranger = EnvelopeEncryptor::new(LocalKeys::new());
        assert!(stranger.decrypt(&r, &c).await.is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_encrypts_never_exceed_max_messages_and_refill_once_per_key() {
        let env = EnvelopeEncryptor::builder(LocalKeys {
            slow: true,
            ..LocalKeys::new()
        })
        .max_messages(600)
        .build()
        .unwrap();
        let c = ctx(&[("k", "v")]);
        let mut tasks = Vec::new();
        for t in 0..8u8 {
            let env = env.clone();
            let c = c.clone();
            tasks.push(tokio::spawn(async move {
                let mut out = Vec::new();
                for _ in 0..1000 {
                    out.push(env.encrypt("key-1", &c, &[t; 64]).await.unwrap());
                }
                out
            }));
        }
        let mut per_key: HashMap<Vec<u8>, usize> = HashMap::new();
        for t in tasks {
            for r in t.await.unwrap() {
                *per_key.entry(edk(&r)).or_default() += 1;
            }
        }
        // 8000 records, 600 per key: 13 keys filled exactly and one with 200. One KMS call
        // per key (prefetched or not): no duplicate GenerateDataKey from tasks racing on an
        // exhausted entry, and the last key (33% used) triggered no prefetch.
        let mut counts: Vec<usize> = per_key.values().copied().collect();
        counts.sort_unstable();
        assert_eq!(counts, [vec![200], vec![600; 13]].concat(), "{per_key:?}");
        assert_eq!(env.stats().generate_data_key_calls, 14);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_decrypts_of_one_data_key_unwrap_it_once() {
        let env = EnvelopeEncryptor::new(LocalKeys {
            slow: true,
            ..LocalKeys::new()
        });
        let c = ctx(&[("k", "v")]);
        let r = env.encrypt("key-1", &c, b"x").await.unwrap();
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let (env, c, r) = (env.clone(), c.clone(), r.clone());
            tasks.push(tokio::spawn(
                async move { env.decrypt(&r, &c).await.unwrap() },
            ));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), b"x");
        }
        assert_eq!(env.stats().decrypt_calls, 1);
    }

    #[tokio::test]
    async fn caches_hold_at_most_capacity_entries_dropping_the_least_recently_used() {
        let env = encryptor(CacheLimits {
            capacity: 2,
            ..CacheLimits::default()
        });
        let (c1, c2, c3) = (ctx(&[("t", "1")]), ctx(&[("t", "2")]), ctx(&[("t", "3")]));
        let r1 = env.encrypt("k", &c1, b"x").await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        let r2 = env.encrypt("k", &c2, b"x").await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        env.encrypt("k", &c1, b"x").await.unwrap(); // c1 is now the most recent
        tokio::time::sleep(Duration::from_millis(5)).await;
        let r3 = env.encrypt("k", &c3, b"x").await.unwrap(); // evicts c2
        assert_eq!(env.stats().generate_data_key_calls, 3);
        assert_eq!(read(&env.inner.enc).len, 2);
        assert_eq!(edk(&env.encrypt("k", &c1, b"x").await.unwrap()), edk(&r1));
        assert_eq!(edk(&env.encrypt("k", &c3, b"x").await.unwrap()), edk(&r3));
        assert_ne!(edk(&env.encrypt("k", &c2, b"x").await.unwrap()), edk(&r2));
        assert_eq!(env.stats().generate_data_key_calls, 4);

        for (r, c) in [(&r1, &c1), (&r2, &c2), (&r3, &c3)] {
            env.decrypt(r, c).await.unwrap();
        }
        assert_eq!(read(&env.inner.dec).len(), 2);
        assert_eq!(env.stats().decrypt_calls, 3);
    }

    #[test]
    fn limits_out_of_range_are_refused() {
        let bad = [
            CacheLimits {
                max_messages: 0,
                ..CacheLimits::default()
            },
            CacheLimits {
                max_messages: MAX_MESSAGES_LIMIT + 1,
                ..CacheLimits::default()
            },
            CacheLimits {
                max_bytes: 0,
                ..CacheLimits::default()
            },
            CacheLimits {
                max_bytes: MAX_BYTES_LIMIT + 1,
                ..CacheLimits::default()
            },
            CacheLimits {
                max_age: Duration::ZERO,
                ..CacheLimits::default()
            },
            CacheLimits {
                capacity: 0,
                ..CacheLimits::default()
            },
        ];
        for limits in bad {
            let err = limits.validate().unwrap_err();
            assert_eq!(err.error_type(), "ConfigError", "{limits:?}");
        }
        CacheLimits::default().validate().unwrap();
    }

    #[test]
    fn data_keys_of_the_wrong_length_are_refused_and_wiped() {
        let mut short = vec![9u8; 31];
        assert!(DataKey::take_from(&mut short).is_err());
        assert!(short.iter().all(|b| *b == 0) || short.is_empty());
        let mut ok = vec![9u8; 32];
        let k = DataKey::take_from(&mut ok).unwrap();
        assert_eq!(k.expose_secret(), &[9u8; 32]);
        assert!(ok.iter().all(|b| *b == 0) || ok.is_empty());
    }

    #[test]
    fn context_canonical_bytes_match_the_service_encoding() {
        let c = ctx(&[("b", "2"), ("a", "1")]);
        let expected: Vec<u8> = [
            &[0, 0, 0, 2][..],
            &[0, 0, 0, 1],
            b"a",
            &[0, 0, 0, 1],
            b"1",
            &[0, 0, 0, 1],
            b"b",
            &[0, 0, 0, 1],
            b"2",
        ]
        .concat();
        assert_eq!(c.canonical_bytes(), &expected[..]);
        assert_eq!(EncryptionContext::new().canonical_bytes(), &[0, 0, 0, 0]);
    }
}
