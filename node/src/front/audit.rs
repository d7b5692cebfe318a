//! The front's side of the audit trail: one CloudTrail-shaped event per API call, group
//! committed to the region's hash chain before the call is answered.
//!
//! # Layout
//!
//! ```text
//! AuditSettings   mode (sync | async), batch window, batch max, timeout (front config)
//! CallInfo        what an adapter knows of a call: operation, request id, caller, source,
//!                 TLS, the request in its AWS JSON form
//! AuditSink       owned by `Kms`; `record_call` builds the event (keystore redacts) and
//!                 hands its text to the group-commit task
//! commit task     gathers events, proposes one Command::AppendAudit per batch, completes
//!                 every waiter (oneshot) with the outcome
//! ```
//!
//! # Data flow
//!
//! ```text
//! adapter: outcome of Kms::<op> --CallInfo + outcome--> Kms::audit_call --> AuditSink
//!   sync:  event --mpsc--> task --batch--> StoreClient::propose(AppendAudit) --committed-->
//!          oneshot --> adapter answers; failure / timeout -> KMSInternalException instead
//!   async: event --mpsc (bounded, try_send)--> task --> propose; the adapter answers at once,
//!          failures are logged and counted in AuditStats::dropped
//! ```
//!
//! Group commit: the task takes the first waiting event, drains whatever else is queued, and
//! commits at once when no batch is in flight (an idle front adds no delay). While batches are
//! in flight it keeps gathering for up to `batch_window` or `batch_max` events, so under load
//! one Raft entry carries many events. Up to [`MAX_IN_FLIGHT`] batches are proposed at once;
//! Raft orders them, and every event's position in the chain is its entry's log position.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use keystore::audit::{read_only, AuditEvent, IdentityType, TlsDetails, UserIdentity};
use keystore::command::{Command, CommandOutput};
use keystore::usage::{KeyUsageMark, TrackedOperation, UsageBatch};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::authz::Caller;
use super::errors::KmsError;

/// Batches proposed at once, by default.
pub const MAX_IN_FLIGHT: usize = 4;
/// The most batches in flight a front may be configured with.
pub const MAX_IN_FLIGHT_LIMIT: usize = 64;
/// Events queued (async mode: beyond this, events are dropped and counted).
const QUEUE: usize = 65_536;

/// Whether a call waits for its audit event to be durable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum AuditMode {
    /// Every call is answered only after its event is committed; if that fails or times
    /// out, the call fails (fail closed).
    #[default]
    Sync,
    /// Calls are answered at once and events appended in the background; an event that
    /// cannot be appended is logged and counted, and lost.
    Async,
}

/// The front's audit settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditSettings {
    /// Sync (fail closed) or async.
    pub mode: AuditMode,
    /// Longest time events are gathered into one batch while other batches are in flight.
    pub batch_window: Duration,
    /// Most events in one batch (one Raft entry).
    pub batch_max: usize,
    /// Most batches proposed and not yet committed at once (1 to [`MAX_IN_FLIGHT_LIMIT`]).
    pub batches_in_flight: usize,
    /// How long a call waits for its event to be committed before failing.
    pub timeout: Duration,
}

impl Default for AuditSettings {
    fn default() -> Self {
        AuditSettings {
            mode: AuditMode::Sync,
            batch_window: Duration::from_millis(2),
            batch_max: 256,
            batches_in_flight: MAX_IN_FLIGHT,
            timeout: Duration::from_secs(5),
        }
    }
}

/// Counters of one sink.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuditStats {
    /// Events committed.
    pub appended: u64,
    /// Batches (Raft entries) committed.
    pub batches: u64,
    /// Sync mode: calls that failed closed (their event's append failed or timed out).
    pub failed: u64,
    /// Async mode: events lost (append failed, or the queue was full).
    pub dropped: u64,
}

#[derive(Default)]
struct Counters {
    appended: AtomicU64,
    batches: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
}

/// Why an event could not be recorded. Holds no request data: store errors and timeouts only.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AuditFailure(pub String);

struct Pending {
    event: String,
    /// Last-usage marks of the event (successful tracked crypto operations only).
    usage: Vec<KeyUsageMark>,
    done: Option<oneshot::Sender<Result<u64, AuditFailure>>>,
}

/// What an adapter knows of one call, besides its outcome.
pub struct CallInfo<'a> {
    /// AWS operation name (`Encrypt`, `CreatePrincipal`).
    pub operation: &'a str,
    /// The request id returned to the client.
    pub request_id: &'a str,
    /// Who made the call.
    pub identity: UserIdentity,
    /// Client address.
    pub source_ip: Option<IpAddr>,
    /// HTTP `User-Agent` / gRPC `user-agent`.
    pub user_agent: Option<String>,
    /// The client's TLS session, when the transport exposes it.
    pub tls: Option<TlsDetails>,
    /// The request in its AWS JSON form (redacted by keystore; `Null` if unknown).
    pub request: &'a Value,
}

/// `userIdentity` of a caller. `access_key_id` for SigV4 calls, `certificate_fingerprint`
/// (hex SHA-256 of the leaf DER) for mTLS calls.
pub fn identity_of(
    caller: &Caller,
    access_key_id: Option<&str>,
    certificate_fingerprint: Option<String>,
) -> UserIdentity {
    let resource = caller
        .principal_arn
        .splitn(6, ':')
        .nth(5)
        .unwrap_or_default()
        .to_string();
    let (identity_type, user_name) = if caller.service_principal.is_some() {
        (IdentityType::AwsService, None)
    } else if caller.is_root() {
        (IdentityType::Root, None)
    } else if let Some(name) = resource.strip_prefix("user/") {
        (
            IdentityType::IamUser,
            Some(name.rsplit('/').next().unwrap_or(name).to_string()),
        )
    } else {
        (IdentityType::AssumedRole, None)
    };
    // keyraft has no opaque principal ids (AIDA…): the account for root (as CloudTrail), else
    // `<account>:<resource>`, stable for the principal's lifetime.
    let principal_id = match identity_type {
        IdentityType::Root => caller.account_id.clone(),
        _ => format!("{}:{resource}", caller.account_id),
    };
    UserIdentity {
        identity_type: Some(identity_type),
        principal_id: Some(principal_id),
        arn: Some(caller.principal_arn.clone()),
        account_id: Some(caller.account_id.clone()),
        access_key_id: access_key_id.map(str::to_owned),
        certificate_fingerprint,
        user_name,
        invoked_by: caller
            .via_service
            .clone()
            .or_else(|| caller.service_principal.clone()),
    }
}

/// Lowercase hex SHA-256 of a certificate (DER).
pub fn certificate_fingerprint(der: &[u8]) -> String {
    hex::encode(keystore::crypto::sha256(der))
}

/// `resources`, best effort: every key ARN the response names (`KeyId`, `KeyMetadata.Arn`,
/// `SourceKeyId`), else the key the request named when it is a key ARN or a bare key id (a
/// bare id is always in the caller's account). Alias references that the call did not
/// resolve (failures) name no resource.
fn key_resources(
    region: &str,
    account: &str,
    request: &Value,
    response: Option<&Value>,
) -> Vec<String> {
    fn add(arns: &mut Vec<String>, region: &str, account: &str, v: Option<&Value>, bare_ok: bool) {
        let Some(s) = v.and_then(Value::as_str) else {
            return;
        };
        let arn = if let Some((_, _, resource)) = keystore::ids::parse_kms_arn(s) {
            if !resource.starts_with("key/") {
                return;
            }
            s.to_string()
        } else if bare_ok && !s.is_empty() && !s.starts_with("alias/") && !s.contains(':') {
            keystore::ids::key_arn(region, account, s)
        } else {
            return;
        };
        if !arns.contains(&arn) {
            arns.push(arn);
        }
    }
    let mut arns: Vec<String> = Vec::new();
    if let Some(r) = response {
        for member in ["/KeyId", "/SourceKeyId", "/KeyMetadata/Arn"] {
            add(&mut arns, region, account, r.pointer(member), false);
        }
    }
    if arns.is_empty() {
        for member in ["KeyId", "SourceKeyId", "DestinationKeyId"] {
            add(&mut arns, region, account, request.get(member), true);
        }
    }
    arns
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The event of one call. `outcome` is the response JSON (AWS shape) or the error.
pub fn build_event(
    region: &str,
    call: CallInfo<'_>,
    outcome: Result<&Value, &KmsError>,
) -> AuditEvent {
    let account = call.identity.account_id.clone().unwrap_or_default();
    let mut event = AuditEvent::api_call(
        call.operation,
        now_millis(),
        region,
        call.identity,
        uuid::Uuid::new_v4().to_string(),
        call.request_id,
    )
    .with_source(
        call.source_ip.map(|ip| ip.to_string()).unwrap_or_default(),
        call.user_agent,
    )
    .with_request(call.request);
    let response = outcome.ok();
    for arn in key_resources(region, &account, call.request, response) {
        let key_account = keystore::ids::parse_kms_arn(&arn)
            .map(|(_, a, _)| a)
            .unwrap_or_else(|| account.clone());
        event = event.with_key(key_account, arn);
    }
    event = match outcome {
        Ok(response) => event.with_response(response),
        Err(e) => event.with_error(e.aws_type(), e.to_string()),
    };
    if let Some(tls) = call.tls {
        event = event.with_tls(tls);
    }
    event
}

/// The last-usage marks of a successful call (GetKeyLastUsage): one per key a tracked
/// cryptographic operation used, named by the response (`KeyId`, and `SourceKeyId` for
/// ReEncrypt). A failed call (including a signature or MAC that did not verify, which is an
/// error) is never passed here.
pub fn usage_marks(
    operation: &str,
    request_id: &str,
    event_id: &str,
    at: u64,
    response: &Value,
) -> Vec<KeyUsageMark> {
    let Some(op) = TrackedOperation::from_event_name(operation) else {
        return Vec::new();
    };
    // A Verify / VerifyMac answer always says valid (invalid is an error); check anyway.
    if response.get("SignatureValid") == Some(&Value::Bool(false))
        || response.get("MacValid") == Some(&Value::Bool(false))
    {
        return Vec::new();
    }
    let mut marks: Vec<KeyUsageMark> = Vec::new();
    for member in ["SourceKeyId", "KeyId"] {
        let Some(named) = response.get(member).and_then(Value::as_str) else {
            continue;
        };
        let key_id = match keystore::ids::parse_kms_arn(named) {
            Some((_, _, resource)) => match resource.strip_prefix("key/") {
                Some(id) => id.to_string(),
                None => continue,
            },
            None => named.to_string(),
        };
        if key_id.is_empty() || marks.iter().any(|m| m.key_id == key_id) {
            continue;
        }
        marks.push(KeyUsageMark {
            key_id,
            operation: op,
            event_id: event_id.to_string(),
            request_id: request_id.to_string(),
            at,
        });
    }
    marks
}

/// The error a call answers with when its event could not be recorded (sync mode).
pub fn not_recorded(operation: &str, succeeded: bool, why: &AuditFailure) -> KmsError {
    let changed = if succeeded && !read_only(operation) {
        ", but the change may have been applied"
    } else {
        ""
    };
    KmsError::Internal(format!(
        "The request could not be recorded in the audit trail; it was not answered{changed}. \
         (audit: {why})"
    ))
}

/// The group-commit sink of one front.
pub struct AuditSink {
    settings: AuditSettings,
    store: raft::StoreClient,
    tx: mpsc::Sender<Pending>,
    // Taken by the commit task when the first event arrives (inside the runtime), so `Kms`
    // can be built outside one.
    rx: Mutex<Option<mpsc::Receiver<Pending>>>,
    counters: Arc<Counters>,
    /// When this sink started attaching key-usage marks (GetKeyLastUsage's tracking start).
    tracked_since: u64,
}

impl AuditSink {
    /// A sink appending to `store`.
    pub fn new(store: raft::StoreClient, settings: AuditSettings) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        AuditSink {
            settings,
            store,
            tx,
            rx: Mutex::new(Some(rx)),
            counters: Arc::default(),
            tracked_since: now_millis(),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &AuditSettings {
        &self.settings
    }

    /// Counters so far.
    pub fn stats(&self) -> AuditStats {
        let c = &self.counters;
        AuditStats {
            appended: c.appended.load(Ordering::Relaxed),
            batches: c.batches.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
        }
    }

    fn start(&self) {
        let rx = match self.rx.lock() {
            Ok(mut rx) => rx.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(rx) = rx {
            let store = self.store.clone();
            let counters = self.counters.clone();
            let timeout = self.settings.timeout;
            let tracked_since = self.tracked_since;
            tokio::spawn(commit_loop(rx, self.settings.clone(), move |batch| {
                let (store, counters) = (store.clone(), counters.clone());
                async move { commit(&store, batch, timeout, &counters, tracked_since).await }
            }));
        }
    }

    /// Records one call. Sync: returns once the event is committed, or the error the call
    /// must answer with instead. Async: queues the event and returns at once.
    pub async fn record_call(
        &self,
        region: &str,
        call: CallInfo<'_>,
        outcome: Result<&Value, &KmsError>,
    ) -> Result<(), KmsError> {
        let operation = call.operation.to_string();
        let request_id = call.request_id.to_string();
        let at = now_millis();
        let event = build_event(region, call, outcome);
        let usage = outcome
            .ok()
            .map(|response| usage_marks(&operation, &request_id, &event.event_id, at, response))
            .unwrap_or_default();
        let event = event.to_json();
        self.record_with_usage(event, usage)
            .await
            .map_err(|why| match outcome {
                // The call already failed because the store is unreachable, which is also why
                // its event could not be written: AWS's retryable error says more than ours.
                Err(e @ KmsError::DependencyTimeout(_)) => e.clone(),
                _ => not_recorded(&operation, outcome.is_ok(), &why),
            })
    }

    /// Appends one event text (see [`AuditSink::record_call`]).
    pub async fn record(&self, event: String) -> Result<(), AuditFailure> {
        self.record_with_usage(event, Vec::new()).await
    }

    /// Appends one event text with the key-usage marks it stands for.
    async fn record_with_usage(
        &self,
        event: String,
        usage: Vec<KeyUsageMark>,
    ) -> Result<(), AuditFailure> {
        self.start();
        match self.settings.mode {
            AuditMode::Async => {
                let pending = Pending {
                    event,
                    usage,
                    done: None,
                };
                if self.tx.try_send(pending).is_err() {
                    self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        "audit queue full or closed: an event was dropped (audit = async)"
                    );
                }
                Ok(())
            }
            AuditMode::Sync => {
                let (done, waiting) = oneshot::channel();
                let timeout = self.settings.timeout;
                let r = tokio::time::timeout(timeout, async {
                    self.tx
                        .send(Pending {
                            event,
                            usage,
                            done: Some(done),
                        })
                        .await
                        .map_err(|_| AuditFailure("the audit writer has stopped".into()))?;
                    waiting
                        .await
                        .map_err(|_| AuditFailure("the audit writer has stopped".into()))?
                })
                .await;
                let r = match r {
                    Ok(Ok(_seq)) => Ok(()),
                    Ok(Err(e)) => Err(e),
                    Err(_) => Err(AuditFailure(format!(
                        "the event was not committed within {} ms",
                        timeout.as_millis()
                    ))),
                };
                if r.is_err() {
                    self.counters.failed.fetch_add(1, Ordering::Relaxed);
                }
                r
            }
        }
    }
}

/// Gathers queued events into batches and hands each to `commit` (its own task), at most
/// `settings.batches_in_flight` at once. `commit` must complete every waiter of its batch.
async fn commit_loop<C, F>(mut rx: mpsc::Receiver<Pending>, settings: AuditSettings, commit: C)
where
    C: Fn(Vec<Pending>) -> F,
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let slots = settings.batches_in_flight.clamp(1, MAX_IN_FLIGHT_LIMIT);
    let in_flight = Arc::new(Semaphore::new(slots));
    let max = settings.batch_max.max(1);
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        drain_queued(&mut rx, &mut batch, max);
        // Busy: gather for up to the window (or until the batch is full).
        if in_flight.available_permits() < slots {
            let deadline = tokio::time::Instant::now() + settings.batch_window;
            while batch.len() < max {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(p)) => batch.push(p),
                    Ok(None) | Err(_) => break,
                }
            }
        }
        // Every slot taken: keep gathering until one frees up, so the events that arrive
        // meanwhile ride in this batch instead of each starting a small one later. Under load
        // this is what sizes the batches: about the events that arrive during one commit.
        let permit = loop {
            if batch.len() >= max {
                break in_flight.clone().acquire_owned().await;
            }
            tokio::select! {
                biased;
                permit = in_flight.clone().acquire_owned() => break permit,
                next = rx.recv() => match next {
                    Some(p) => batch.push(p),
                    None => break in_flight.clone().acquire_owned().await,
                },
            }
        };
        let Ok(permit) = permit else {
            break;
        };
        drain_queued(&mut rx, &mut batch, max);
        let committed = commit(batch);
        tokio::spawn(async move {
            committed.await;
            drop(permit);
        });
    }
}

/// Moves what is already queued into `batch`, up to `max` events, without waiting.
fn drain_queued(rx: &mut mpsc::Receiver<Pending>, batch: &mut Vec<Pending>, max: usize) {
    while batch.len() < max {
        match rx.try_recv() {
            Ok(p) => batch.push(p),
            Err(_) => break,
        }
    }
}

#[tracing::instrument(level = "debug", skip_all, fields(events = batch.len()))]
async fn commit(
    store: &raft::StoreClient,
    batch: Vec<Pending>,
    timeout: Duration,
    counters: &Counters,
    tracked_since: u64,
) {
    let n = batch.len() as u64;
    let mut usage = Vec::new();
    let (events, waiters): (Vec<String>, Vec<_>) = batch
        .into_iter()
        .map(|p| {
            usage.extend(p.usage);
            (p.event, p.done)
        })
        .unzip();
    let usage = Some(UsageBatch {
        tracked_since,
        marks: usage,
    });
    let r = tokio::time::timeout(
        timeout,
        store.propose(Command::AppendAudit { events, usage }),
    )
    .await;
    let outcome = match r {
        Ok(Ok(CommandOutput::AuditAppended { first_seq, .. })) => Ok(first_seq),
        Ok(Ok(_)) => Err(AuditFailure("unexpected reply from the store".into())),
        Ok(Err(e)) => Err(AuditFailure(e.to_string())),
        Err(_) => Err(AuditFailure(format!(
            "the store did not commit the event within {} ms",
            timeout.as_millis()
        ))),
    };
    match &outcome {
        Ok(_) => {
            counters.appended.fetch_add(n, Ordering::Relaxed);
            counters.batches.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => {
            let unanswered = waiters.iter().filter(|w| w.is_none()).count() as u64;
            if unanswered > 0 {
                counters.dropped.fetch_add(unanswered, Ordering::Relaxed);
                tracing::warn!(error = %e, events = unanswered, "audit events dropped (audit = async)");
            } else {
                tracing::warn!(error = %e, events = n, "audit append failed; the calls fail closed");
            }
        }
    }
    for (i, done) in waiters.into_iter().enumerate() {
        if let Some(done) = done {
            let _ = done.send(outcome.clone().map(|first| first + i as u64));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn caller(arn: &str) -> Caller {
        Caller::from_principal_arn(arn).unwrap()
    }

    #[test]
    fn identities_take_cloudtrail_types() {
        let root = identity_of(
            &caller("arn:aws:iam::111122223333:root"),
            Some("AKIA1"),
            None,
        );
        assert_eq!(root.identity_type, Some(IdentityType::Root));
        assert_eq!(root.principal_id.as_deref(), Some("111122223333"));
        assert_eq!(root.access_key_id.as_deref(), Some("AKIA1"));
        let user = identity_of(
            &caller("arn:aws:iam::111122223333:user/ops/alice"),
            None,
            None,
        );
        assert_eq!(user.identity_type, Some(IdentityType::IamUser));
        assert_eq!(user.user_name.as_deref(), Some("alice"));
        let role = identity_of(
            &caller("arn:aws:iam::111122223333:role/App"),
            None,
            Some("ab".repeat(32)),
        );
        assert_eq!(role.identity_type, Some(IdentityType::AssumedRole));
        assert_eq!(role.certificate_fingerprint, Some("ab".repeat(32)));
        let mut via = caller("arn:aws:iam::111122223333:role/App");
        via.via_service = Some("s3.us-east-1.amazonaws.com".into());
        assert_eq!(
            identity_of(&via, None, None).invoked_by.as_deref(),
            Some("s3.us-east-1.amazonaws.com")
        );
        let mut service = caller("arn:aws:iam::111122223333:role/Trail");
        service.service_principal = Some("cloudtrail.amazonaws.com".into());
        let service = identity_of(&service, None, None);
        assert_eq!(service.identity_type, Some(IdentityType::AwsService));
        assert_eq!(
            service.invoked_by.as_deref(),
            Some("cloudtrail.amazonaws.com")
        );
    }

    #[test]
    fn certificate_fingerprints_are_lowercase_hex_sha256() {
        let f = certificate_fingerprint(b"abc");
        assert_eq!(
            f,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn resources_come_from_the_response_then_the_request() {
        let arn = "arn:aws:kms:us-east-1:444455556666:key/k2";
        let r = key_resources(
            "us-east-1",
            "111122223333",
            &json!({"KeyId": "alias/x"}),
            Some(&json!({"KeyId": arn})),
        );
        assert_eq!(r, vec![arn.to_string()]);
        let r = key_resources("us-east-1", "111122223333", &json!({"KeyId": "k1"}), None);
        assert_eq!(
            r,
            vec!["arn:aws:kms:us-east-1:111122223333:key/k1".to_string()]
        );
        assert!(key_resources("us-east-1", "1", &json!({"KeyId": "alias/x"}), None).is_empty());
        let meta = json!({"KeyMetadata": {"Arn": arn}});
        assert_eq!(
            key_resources("us-east-1", "1", &json!({}), Some(&meta)),
            vec![arn.to_string()]
        );
    }

    #[test]
    fn unrecorded_changes_say_they_may_have_been_applied() {
        let why = AuditFailure("store unavailable".into());
        let e = not_recorded("CreateKey", true, &why);
        assert_eq!(e.aws_type(), "KMSInternalException");
        assert_eq!(
            e.to_string(),
            "The request could not be recorded in the audit trail; it was not answered, but \
             the change may have been applied. (audit: store unavailable)"
        );
        let e = not_recorded("Encrypt", true, &why);
        assert_eq!(
            e.to_string(),
            "The request could not be recorded in the audit trail; it was not answered. \
             (audit: store unavailable)"
        );
        // A failed mutation changed nothing.
        assert!(!not_recorded("CreateKey", false, &why)
            .to_string()
            .contains("applied"));
    }

    #[test]
    fn events_redact_secrets_and_carry_errors() {
        let call = CallInfo {
            operation: "GenerateDataKey",
            request_id: "req-1",
            identity: identity_of(&caller("arn:aws:iam::111122223333:role/App"), None, None),
            source_ip: Some("127.0.0.1".parse().unwrap()),
            user_agent: Some("ua/1".into()),
            tls: None,
            request: &json!({"KeyId": "k1", "KeySpec": "AES_256"}),
        };
        let response = json!({"KeyId": "arn:aws:kms:us-east-1:111122223333:key/k1",
            "Plaintext": "U0VDUkVUU0VDUkVU", "CiphertextBlob": "Q0lQSEVS"});
        let text = build_event("us-east-1", call, Ok(&response)).to_json();
        assert!(!text.contains("U0VDUkVUU0VDUkVU"), "{text}");
        assert!(!text.contains("Q0lQSEVS"), "{text}");
        let e = AuditEvent::from_json(&text).unwrap();
        assert_eq!(e.request_id.as_deref(), Some("req-1"));
        assert_eq!(e.source_ip_address, "127.0.0.1");
        assert_eq!(e.request_parameters["keySpec"], "AES_256");
        let call = CallInfo {
            operation: "Encrypt",
            request_id: "req-2",
            identity: UserIdentity::default(),
            source_ip: None,
            user_agent: None,
            tls: None,
            request: &Value::Null,
        };
        let denied = KmsError::AccessDenied("no".into());
        let e = build_event("us-east-1", call, Err(&denied));
        assert_eq!(e.error_code.as_deref(), Some("AccessDeniedException"));
        assert_eq!(e.error_message.as_deref(), Some("no"));
        assert_eq!(e.response_elements, None);
    }

    /// Drives `commit_loop` with a committer that records each batch's size and holds it
    /// until the test releases it, so which events share a batch is decided by the loop alone.
    struct Harness {
        tx: mpsc::Sender<Pending>,
        batches: mpsc::UnboundedReceiver<(usize, oneshot::Sender<()>)>,
    }

    impl Harness {
        fn start(batches_in_flight: usize, batch_window: Duration) -> Harness {
            let (tx, rx) = mpsc::channel(QUEUE);
            let (seen_tx, batches) = mpsc::unbounded_channel();
            let settings = AuditSettings {
                batches_in_flight,
                batch_window,
                ..AuditSettings::default()
            };
            tokio::spawn(commit_loop(rx, settings, move |batch: Vec<Pending>| {
                let (release, released) = oneshot::channel();
                let _ = seen_tx.send((batch.len(), release));
                async move {
                    let _ = released.await;
                    for (i, p) in batch.into_iter().enumerate() {
                        if let Some(done) = p.done {
                            let _ = done.send(Ok(i as u64));
                        }
                    }
                }
            }));
            Harness { tx, batches }
        }

        async fn event(&self) -> oneshot::Receiver<Result<u64, AuditFailure>> {
            let (done, waiting) = oneshot::channel();
            let pending = Pending {
                event: "{}".into(),
                usage: Vec::new(),
                done: Some(done),
            };
            self.tx.send(pending).await.unwrap();
            waiting
        }

        async fn next_batch(&mut self) -> (usize, oneshot::Sender<()>) {
            tokio::time::timeout(Duration::from_secs(5), self.batches.recv())
                .await
                .expect("a batch within 5 s")
                .unwrap()
        }
    }

    #[tokio::test]
    async fn events_arriving_while_every_slot_is_busy_share_the_next_batch() {
        let mut h = Harness::start(1, Duration::from_millis(1));
        let first = h.event().await;
        let (n, release_first) = h.next_batch().await;
        assert_eq!(n, 1, "an idle sink commits at once");
        // The only slot is taken. Events that arrive well apart, each long after the gather
        // window, must all wait in one batch rather than be sealed into batches of their own.
        let mut later = Vec::new();
        for _ in 0..5 {
            later.push(h.event().await);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            h.batches.try_recv().is_err(),
            "no batch may start while the slot is busy"
        );
        release_first.send(()).unwrap();
        first.await.unwrap().unwrap();
        let (n, release) = h.next_batch().await;
        assert_eq!(n, 5, "the five waiting events form one batch");
        release.send(()).unwrap();
        for w in later {
            w.await.unwrap().unwrap();
        }
        assert!(h.batches.try_recv().is_err());
    }

    #[tokio::test]
    async fn batches_in_flight_bounds_the_batches_committing_at_once() {
        let mut h = Harness::start(2, Duration::ZERO);
        let _a = h.event().await;
        let (_, release_a) = h.next_batch().await;
        let _b = h.event().await;
        let (_, release_b) = h.next_batch().await;
        // Two in flight: a third waits, gathering, until one of them commits.
        let _c = h.event().await;
        tokio::time::sleep(Duration::from_millis(30)).await;
        let _d = h.event().await;
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(h.batches.try_recv().is_err(), "a third batch started");
        release_b.send(()).unwrap();
        let (n, release_cd) = h.next_batch().await;
        assert_eq!(n, 2);
        release_a.send(()).unwrap();
        release_cd.send(()).unwrap();
    }

    #[tokio::test]
    async fn events_are_group_committed_and_read_back_in_order() {
        let (kms, _node) = crate::front::testing::kms().await;
        let calls = (0..50).map(|i| {
            let kms = kms.clone();
            async move {
                let request = json!({"KeyId": format!("k{i}")});
                let call = CallInfo {
                    operation: "DescribeKey",
                    request_id: &format!("req-{i}"),
                    identity: identity_of(
                        &caller("arn:aws:iam::111122223333:role/App"),
                        None,
                        None,
                    ),
                    source_ip: None,
                    user_agent: None,
                    tls: None,
                    request: &request,
                };
                kms.audit_call(call, Ok(&json!({}))).await
            }
        });
        for r in futures::future::join_all(calls).await {
            r.unwrap();
        }
        let stats = kms.audit().stats();
        assert_eq!(stats.appended, 50);
        assert!(stats.batches < 50, "{stats:?}: no batching happened");
        let records = kms.audit_records(1, 1000).await.unwrap();
        assert_eq!(records.len(), 50);
        let mut ids: Vec<String> = records
            .iter()
            .map(|r| AuditEvent::from_json(&r.event).unwrap().request_id.unwrap())
            .collect();
        ids.sort();
        let mut want: Vec<String> = (0..50).map(|i| format!("req-{i}")).collect();
        want.sort();
        assert_eq!(ids, want);
    }
}
