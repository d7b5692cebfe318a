//! The audit trail's "done when", against a real three-node region: a scripted mix of 1,000
//! calls (allowed and denied, AWS JSON and gRPC) leaves exactly 1,000 events with the right
//! fields; then, with the front and the storage leader killed (-9) and restarted mid-run, no
//! answered call lacks its event and no event names a call that was never made.
//!
//! Calls are correlated with events by a per-call encryption context value (`call`), which the
//! audit trail records as AWS does, and on the JSON API also by the answer's request id.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{error_code, port_base_for, DevRegion};
use aws_sdk_kms::operation::RequestId as _;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use client::{Client, RetryPolicy};
use futures::StreamExt as _;
use keystore::audit::AuditEvent;

const ADMIN: &str = "arn:aws:iam::111122223333:role/Admin";
const APP: &str = "arn:aws:iam::111122223333:role/App";
const CALLS: usize = 1000;
const CONCURRENCY: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Api {
    Json,
    Grpc,
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Encrypt,
    GenerateDataKey,
    GenerateDataKeyWithoutPlaintext,
    DescribeKey,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Encrypt => "Encrypt",
            Op::GenerateDataKey => "GenerateDataKey",
            Op::GenerateDataKeyWithoutPlaintext => "GenerateDataKeyWithoutPlaintext",
            Op::DescribeKey => "DescribeKey",
        }
    }
}

/// One scripted call: which API, who, what, and the tag that finds its event.
#[derive(Clone, Debug)]
struct Call {
    tag: String,
    api: Api,
    admin: bool,
    op: Op,
}

/// What the caller saw.
#[derive(Debug)]
struct Outcome {
    call: Call,
    /// `None`: not answered (transport failure, front down); `Some(None)`: success;
    /// `Some(Some(code))`: an AWS error answer.
    answer: Option<Option<String>>,
    request_id: Option<String>,
}

/// The script: 1/4 of the calls by App (denied on Admin's key), half over gRPC, four
/// operations; deterministic so a failure can be replayed.
fn script(phase: &str, n: usize) -> Vec<Call> {
    let ops = [
        Op::Encrypt,
        Op::GenerateDataKey,
        Op::GenerateDataKeyWithoutPlaintext,
        Op::DescribeKey,
    ];
    (0..n)
        .map(|i| {
            let api = if i % 2 == 0 { Api::Json } else { Api::Grpc };
            let op = ops[(i / 2) % ops.len()];
            // DescribeKey carries no encryption context: only the JSON request id finds it.
            let op = if api == Api::Grpc && matches!(op, Op::DescribeKey) {
                Op::Encrypt
            } else {
                op
            };
            Call {
                tag: format!("{phase}-{i}"),
                api,
                admin: i % 4 != 3,
                op,
            }
        })
        .collect()
}

struct Clients {
    json_admin: aws_sdk_kms::Client,
    json_app: aws_sdk_kms::Client,
    grpc_admin: Client,
    grpc_app: Client,
}

impl Clients {
    /// Clients without retries: each call is one attempt, so each answer has one event.
    fn new(region: &DevRegion) -> Clients {
        let none = aws_sdk_kms::config::retry::RetryConfig::disabled;
        Clients {
            json_admin: region.sdk_client_with_retries(
                &region.var("AWS_ACCESS_KEY_ID"),
                &region.var("AWS_SECRET_ACCESS_KEY"),
                none(),
            ),
            json_app: region.sdk_client_with_retries(
                &region.var("KMS_ALT_ACCESS_KEY_ID"),
                &region.var("KMS_ALT_SECRET_ACCESS_KEY"),
                none(),
            ),
            grpc_admin: region
                .grpc_admin_builder()
                .retry_policy(RetryPolicy::none())
                .build()
                .unwrap(),
            grpc_app: region
                .grpc_app_builder()
                .retry_policy(RetryPolicy::none())
                .build()
                .unwrap(),
        }
    }

    async fn run(&self, key_id: &str, call: Call) -> Outcome {
        let (answer, request_id) = match call.api {
            Api::Json => self.run_json(key_id, &call).await,
            Api::Grpc => (self.run_grpc(key_id, &call).await, None),
        };
        Outcome {
            call,
            answer,
            request_id,
        }
    }

    async fn run_json(
        &self,
        key_id: &str,
        call: &Call,
    ) -> (Option<Option<String>>, Option<String>) {
        let kms = if call.admin {
            &self.json_admin
        } else {
            &self.json_app
        };
        macro_rules! outcome {
            ($fut:expr) => {
                match $fut.await {
                    Ok(out) => (Some(None), out.request_id().map(str::to_string)),
                    Err(e) => match e.as_service_error() {
                        Some(service) => (
                            Some(Some(error_code(&e))),
                            service.request_id().map(str::to_string),
                        ),
                        None => (None, None),
                    },
                }
            };
        }
        match call.op {
            Op::Encrypt => outcome!(kms
                .encrypt()
                .key_id(key_id)
                .plaintext(Blob::new(b"audited".to_vec()))
                .encryption_context("call", &call.tag)
                .send()),
            Op::GenerateDataKey => outcome!(kms
                .generate_data_key()
                .key_id(key_id)
                .key_spec(DataKeySpec::Aes256)
                .encryption_context("call", &call.tag)
                .send()),
            Op::GenerateDataKeyWithoutPlaintext => outcome!(kms
                .generate_data_key_without_plaintext()
                .key_id(key_id)
                .key_spec(DataKeySpec::Aes128)
                .encryption_context("call", &call.tag)
                .send()),
            Op::DescribeKey => outcome!(kms.describe_key().key_id(key_id).send()),
        }
    }

    async fn run_grpc(&self, key_id: &str, call: &Call) -> Option<Option<String>> {
        let kms = if call.admin {
            &self.grpc_admin
        } else {
            &self.grpc_app
        };
        let result = match call.op {
            Op::Encrypt | Op::DescribeKey => kms
                .encrypt()
                .key_id(key_id)
                .plaintext(b"audited".to_vec())
                .encryption_context("call", &call.tag)
                .send()
                .await
                .map(drop),
            Op::GenerateDataKey => kms
                .generate_data_key()
                .key_id(key_id)
                .key_spec("AES_256")
                .encryption_context("call", &call.tag)
                .send()
                .await
                .map(drop),
            Op::GenerateDataKeyWithoutPlaintext => kms
                .generate_data_key_without_plaintext()
                .key_id(key_id)
                .key_spec("AES_128")
                .encryption_context("call", &call.tag)
                .send()
                .await
                .map(drop),
        };
        match result {
            Ok(()) => Some(None),
            // An error the front chose (it has an AWS type) is an answer; a transport failure
            // (front down, connection reset) is not.
            Err(client::Error::Service { error_type, .. }) => Some(Some(error_type)),
            Err(_) => None,
        }
    }
}

/// Every audit event of the region from `from_seq` on, in chain order.
async fn events_from(region: &DevRegion, from_seq: u64) -> Vec<AuditEvent> {
    let events = region.audit_events_from(from_seq).await;
    events.into_iter().map(|(_, event)| event).collect()
}

/// The seq the next event will get.
async fn next_seq(region: &DevRegion) -> u64 {
    let head = region.store().await.audit_head().await.unwrap().0;
    head.last_seq() + 1
}

/// The tag (encryption context `call`) of an event, if it has one.
fn tag_of(event: &AuditEvent) -> Option<String> {
    event.request_parameters["encryptionContext"]["call"]
        .as_str()
        .map(str::to_string)
}

/// Matches events to calls: returns, per call tag, the events that name it; panics on an
/// event that names no scripted call of this phase.
fn match_events<'a>(
    events: &'a [AuditEvent],
    calls: &[Call],
    phase: &str,
    request_ids: &HashMap<String, String>,
) -> HashMap<String, Vec<&'a AuditEvent>> {
    let known: HashMap<&str, &Call> = calls.iter().map(|c| (c.tag.as_str(), c)).collect();
    let mut by_tag: HashMap<String, Vec<&AuditEvent>> = HashMap::new();
    for e in events {
        let tag = match tag_of(e) {
            Some(t) => t,
            None => match e.request_id.as_ref().and_then(|r| request_ids.get(r)) {
                Some(t) => t.clone(),
                // A DescribeKey whose answer never arrived: its request id is unknown. It must
                // still be one of ours (a DescribeKey in this phase's script).
                None => {
                    assert_eq!(e.event_name, "DescribeKey", "unexplained event {e:?}");
                    continue;
                }
            },
        };
        assert!(
            tag.starts_with(phase) && known.contains_key(tag.as_str()),
            "event for a call that was never made: {tag} {e:?}"
        );
        by_tag.entry(tag).or_default().push(e);
    }
    by_tag
}

/// The fields an event of `call` must have.
fn check_fields(event: &AuditEvent, outcome: &Outcome, key_arn: &str, access_keys: (&str, &str)) {
    let call = &outcome.call;
    let what = format!("{call:?} -> {event:?}");
    assert_eq!(event.event_name, call.op.name(), "{what}");
    assert_eq!(event.event_source, "kms.amazonaws.com", "{what}");
    assert_eq!(event.aws_region, "us-east-1", "{what}");
    let arn = if call.admin { ADMIN } else { APP };
    assert_eq!(event.user_identity.arn.as_deref(), Some(arn), "{what}");
    assert_eq!(
        event.user_identity.account_id.as_deref(),
        Some("111122223333"),
        "{what}"
    );
    assert!(event.read_only, "{what}");
    assert_eq!(event.event_id.len(), 36, "{what}");
    assert!(event.event_time.ends_with('Z'), "{what}");
    assert_eq!(event.resources.len(), 1, "{what}");
    assert_eq!(event.resources[0].arn, key_arn, "{what}");
    match call.api {
        Api::Json => {
            let want_key = if call.admin {
                access_keys.0
            } else {
                access_keys.1
            };
            assert_eq!(
                event.user_identity.access_key_id.as_deref(),
                Some(want_key),
                "{what}"
            );
            assert!(event.tls_details.is_some(), "{what}");
            if let Some(rid) = &outcome.request_id {
                assert_eq!(event.request_id.as_deref(), Some(rid.as_str()), "{what}");
            }
        }
        Api::Grpc => {
            assert!(
                event
                    .user_identity
                    .certificate_fingerprint
                    .as_ref()
                    .is_some_and(|f| f.len() == 64),
                "{what}"
            );
            assert!(event.request_id.is_some(), "{what}");
        }
    }
    let want_error = outcome.answer.clone().flatten();
    assert_eq!(event.error_code, want_error, "{what}");
    if want_error.is_none() && !matches!(call.op, Op::DescribeKey) {
        assert_eq!(
            event.request_parameters["encryptionContext"]["call"].as_str(),
            Some(call.tag.as_str()),
            "{what}"
        );
    }
}

/// Runs `calls` with `CONCURRENCY` in flight; `on_progress(answered)` runs after each answer.
async fn run_script(
    clients: Arc<Clients>,
    key_id: String,
    calls: Vec<Call>,
    answered: Arc<AtomicUsize>,
) -> Vec<Outcome> {
    futures::stream::iter(calls)
        .map(|call| {
            let clients = clients.clone();
            let key_id = key_id.clone();
            let answered = answered.clone();
            async move {
                let outcome = clients.run(&key_id, call).await;
                if outcome.answer.is_some() {
                    answered.fetch_add(1, Ordering::SeqCst);
                }
                outcome
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await
}

struct Processes {
    nodes: Vec<Option<Child>>,
    front: Option<Child>,
    dir: std::path::PathBuf,
}

impl Processes {
    fn spawn(dir: &std::path::Path, role: &str, config: &str, log: &str) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(log))
            .unwrap();
        Command::new(env!("CARGO_BIN_EXE_keyraft"))
            .args([role, "--config"])
            .arg(dir.join(config))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    fn start(dir: &std::path::Path) -> Processes {
        let nodes = (1..=3)
            .map(|n| {
                Some(Self::spawn(
                    dir,
                    "node",
                    &format!("node-{n}.toml"),
                    &format!("sep-node-{n}.log"),
                ))
            })
            .collect();
        let front = Some(Self::spawn(dir, "front", "front.toml", "sep-front.log"));
        Processes {
            nodes,
            front,
            dir: dir.to_path_buf(),
        }
    }

    fn kill(child: &mut Option<Child>) {
        if let Some(mut c) = child.take() {
            let _ = c.kill(); // SIGKILL
            let _ = c.wait();
        }
    }

    fn restart_front(&mut self) {
        Self::kill(&mut self.front);
        self.front = Some(Self::spawn(
            &self.dir,
            "front",
            "front.toml",
            "sep-front.log",
        ));
    }

    fn kill_node(&mut self, id: u64) {
        Self::kill(&mut self.nodes[(id - 1) as usize]);
    }

    fn restart_node(&mut self, id: u64) {
        self.nodes[(id - 1) as usize] = Some(Self::spawn(
            &self.dir,
            "node",
            &format!("node-{id}.toml"),
            &format!("sep-node-{id}.log"),
        ));
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for f in [
            "sep-front.log",
            "sep-node-1.log",
            "sep-node-2.log",
            "sep-node-3.log",
        ] {
            let text = std::fs::read_to_string(self.dir.join(f)).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            out.push_str(&format!("--- {f} ---\n"));
            for l in tail.into_iter().rev() {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        Self::kill(&mut self.front);
        for n in &mut self.nodes {
            Self::kill(n);
        }
    }
}

/// Waits until the front answers a DescribeKey.
async fn wait_serving(kms: &aws_sdk_kms::Client, key_id: &str, what: &str, procs: &Processes) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match kms.describe_key().key_id(key_id).send().await {
            Ok(_) => return,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("{what}: region never served again: {e:?}\n{}", procs.logs()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_calls_leave_a_thousand_events_and_crashes_lose_no_answered_event() {
    let base = port_base_for(130);
    let mut region = DevRegion::start(base);
    let admin = region.admin_client();
    let key = admin
        .create_key()
        .description("audit durability")
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    let key_id = key.key_id().to_string();
    let key_arn = key.arn().unwrap().to_string();
    let access_keys = (
        region.var("AWS_ACCESS_KEY_ID"),
        region.var("KMS_ALT_ACCESS_KEY_ID"),
    );

    // ---- Phase 1: 1,000 calls, no faults: exactly 1,000 events. ----
    let clients = Arc::new(Clients::new(&region));
    let from = next_seq(&region).await;
    let calls = script("p1", CALLS);
    let outcomes = run_script(
        clients.clone(),
        key_id.clone(),
        calls.clone(),
        Arc::new(AtomicUsize::new(0)),
    )
    .await;
    for o in &outcomes {
        assert!(o.answer.is_some(), "every call is answered: {o:?}");
    }
    let denied = outcomes
        .iter()
        .filter(|o| o.answer == Some(Some("AccessDeniedException".into())))
        .count();
    assert_eq!(denied, CALLS / 4, "App's calls are denied");
    let events = events_from(&region, from).await;
    assert_eq!(events.len(), CALLS, "exactly one event per call");
    let request_ids: HashMap<String, String> = outcomes
        .iter()
        .filter_map(|o| Some((o.request_id.clone()?, o.call.tag.clone())))
        .collect();
    let by_tag = match_events(&events, &calls, "p1", &request_ids);
    for o in &outcomes {
        let found = by_tag.get(&o.call.tag).map(Vec::as_slice).unwrap_or(&[]);
        assert_eq!(found.len(), 1, "one event for {:?}", o.call);
        check_fields(found[0], o, &key_arn, (&access_keys.0, &access_keys.1));
    }

    // ---- Phase 2: the same mix with the front and the storage leader killed mid-run. ----
    region.stop();
    let mut procs = Processes::start(&region.dir);
    let admin = region.admin_client();
    wait_serving(&admin, &key_id, "role-by-role start", &procs).await;
    let from = next_seq(&region).await;
    let clients = Arc::new(Clients::new(&region));
    let calls = script("p2", CALLS);
    let answered = Arc::new(AtomicUsize::new(0));
    let run = tokio::spawn(run_script(
        clients.clone(),
        key_id.clone(),
        calls.clone(),
        answered.clone(),
    ));
    let wait_for = |n: usize| {
        let answered = answered.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(120);
            while answered.load(Ordering::SeqCst) < n && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    wait_for(CALLS / 4).await;
    procs.restart_front(); // kill -9 mid-run, then start again
    wait_serving(&admin, &key_id, "front restart", &procs).await;
    wait_for(CALLS / 2).await;
    let leader = region.leader_id().await;
    procs.kill_node(leader);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    procs.restart_node(leader);
    let outcomes = run.await.unwrap();
    wait_serving(&admin, &key_id, "after the run", &procs).await;

    let answered: Vec<&Outcome> = outcomes.iter().filter(|o| o.answer.is_some()).collect();
    let unanswered = outcomes.len() - answered.len();
    assert!(
        answered.len() >= CALLS / 2,
        "most calls are answered despite the faults: {} of {CALLS}\n{}",
        answered.len(),
        procs.logs()
    );
    let events = events_from(&region, from).await;
    let request_ids: HashMap<String, String> = outcomes
        .iter()
        .filter_map(|o| Some((o.request_id.clone()?, o.call.tag.clone())))
        .collect();
    let by_tag = match_events(&events, &calls, "p2", &request_ids);
    // The admin's DescribeKey probes (wait_serving) and the leader lookup are not in the
    // script; they are DescribeKey events without a tag, skipped by match_events.
    for o in &answered {
        let found = by_tag.get(&o.call.tag).map(Vec::as_slice).unwrap_or(&[]);
        assert_eq!(
            found.len(),
            1,
            "an answered call has exactly one event: {o:?}\n{}",
            procs.logs()
        );
        check_fields(found[0], o, &key_arn, (&access_keys.0, &access_keys.1));
    }
    // A call the front never answered may have an event (its batch committed before the
    // crash) but never two.
    for o in outcomes.iter().filter(|o| o.answer.is_none()) {
        assert!(by_tag.get(&o.call.tag).map_or(0, Vec::len) <= 1, "{o:?}");
    }
    eprintln!(
        "phase 2: {} answered, {unanswered} unanswered, {} events",
        answered.len(),
        events.len()
    );
}
