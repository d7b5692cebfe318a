//! The read side of the audit trail from the outside, against a real dev region that signs a
//! digest every 200 ms: `kmsctl audit export` / `verify` (live and offline, with the public
//! keys from the dev region's file, never from the server), and every kind of tampering with
//! an export — an edited event, a deleted, swapped or forged record, a truncated file with its
//! last digest removed — named at the right record; `kmsctl audit lookup` filters; the raw
//! chain is for the region's administrators only, on gRPC and on the JSON endpoint; gRPC
//! LookupEvents through the Rust SDK.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::{port_base_for, DevRegion, Kmsctl};
use aws_sdk_kms::primitives::Blob;
use client::Client;
use serde_json::Value;

/// The current head seq, once a signed digest covers it.
async fn head_covered_by_a_digest(kms: &Client) -> u64 {
    let head = kms
        .get_audit_records()
        .max_records(1)
        .send()
        .await
        .unwrap()
        .head_seq;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let page = kms.get_audit_digests().from_seq(head).send().await.unwrap();
        if page.digests.iter().any(|d| d.to_seq >= head) {
            return head;
        }
        assert!(Instant::now() < deadline, "no digest reached record {head}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Some activity: a key, encryptions, a denied call.
async fn activity(region: &DevRegion) -> String {
    let admin = region.admin_client();
    let key = admin
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    let key_id = key.key_id().to_string();
    for _ in 0..4 {
        admin
            .encrypt()
            .key_id(&key_id)
            .plaintext(Blob::new(b"audit-cli".to_vec()))
            .send()
            .await
            .unwrap();
    }
    let denied = region
        .app_client()
        .schedule_key_deletion()
        .key_id(&key_id)
        .send()
        .await;
    assert!(denied.is_err());
    key_id
}

fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(path, text).unwrap();
}

/// Copies an export into a fresh directory, lets `tamper` change its (records, digests)
/// lines, and returns `kmsctl audit verify --dir`'s (exit code, stderr).
fn verify_tampered(
    kmsctl: &Kmsctl,
    export: &Path,
    (from, to): (u64, u64),
    tamper: impl FnOnce(&mut Vec<String>, &mut Vec<String>),
) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let records_name = format!("audit-{from}-{to}.jsonl");
    let digests_name = format!("audit-{from}-{to}.digests.jsonl");
    let mut records = read_lines(&export.join(&records_name));
    let mut digests = read_lines(&export.join(&digests_name));
    tamper(&mut records, &mut digests);
    write_lines(&dir.path().join(&records_name), &records);
    write_lines(&dir.path().join(&digests_name), &digests);
    kmsctl.fails_ignoring_stdout(&["audit", "verify", "--dir", dir.path().to_str().unwrap()])
}

/// The failure names record `seq`, as one of `kinds`.
fn assert_names(outcome: (i32, String), seq: u64, kinds: &[&str]) {
    let (code, stderr) = outcome;
    assert_eq!(code, 1, "verification failures exit 1: {stderr}");
    assert!(
        stderr.contains(&format!("FAILED at record {seq} "))
            && kinds.iter().any(|k| stderr.contains(&format!("({k})"))),
        "expected record {seq} ({kinds:?}): {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kmsctl_exports_verifies_and_names_every_kind_of_tampering() {
    let region = DevRegion::start_with(port_base_for(110), &["--audit-digest-interval-ms", "200"]);
    let kmsctl = Kmsctl::new(&region);
    let admin = region.grpc_admin();
    activity(&region).await;
    let head = head_covered_by_a_digest(&admin).await;
    assert!(head >= 6, "enough records to tamper with: {head}");

    // Export 1..=head, then verify it offline and the live log online.
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().to_str().unwrap();
    let to = head.to_string();
    let exported = kmsctl.json(&["audit", "export", "--out", dir, "--to", &to]);
    assert_eq!(exported["FromSeq"], 1);
    assert_eq!(exported["ToSeq"], head);
    assert_eq!(exported["Records"], head);
    assert_eq!(exported["CoveredBySignedDigestThrough"], head);
    let records_file = out.path().join(format!("audit-1-{head}.jsonl"));
    let digests_file = out.path().join(format!("audit-1-{head}.digests.jsonl"));
    assert_eq!(read_lines(&records_file).len() as u64, head);
    assert!(!read_lines(&digests_file).is_empty());
    let leftovers: Vec<_> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "temporary files renamed: {leftovers:?}"
    );
    // Each line is exactly the stored record.
    let stored = admin
        .get_audit_records()
        .from_seq(3)
        .max_records(1)
        .send()
        .await
        .unwrap()
        .records
        .remove(0)
        .to_record();
    let line: keystore::audit::AuditRecord =
        serde_json::from_str(&read_lines(&records_file)[2]).unwrap();
    assert_eq!(line, stored);

    let ok = kmsctl.json(&["audit", "verify", "--dir", dir]);
    assert_eq!(ok["Result"], "OK");
    assert_eq!(ok["RecordsVerified"], head);
    assert!(ok["DigestsVerified"].as_u64().unwrap() >= 1);
    let live = kmsctl.json(&["audit", "verify", "--to", &to]);
    assert_eq!(
        (&live["Result"], &live["RecordsVerified"]),
        (&"OK".into(), &head.into())
    );
    // A live range that starts mid-chain is anchored too.
    let mid = kmsctl.json(&["audit", "verify", "--from", "4", "--to", &to]);
    assert_eq!(mid["RecordsVerified"], head - 3);

    // A mid-chain export verifies on its own; marking it exported needs everything before it.
    let out2 = tempfile::tempdir().unwrap();
    let dir2 = out2.path().to_str().unwrap();
    let (code, stderr) = kmsctl.fails_ignoring_stdout(&[
        "audit",
        "export",
        "--out",
        dir2,
        "--from",
        "3",
        "--to",
        &to,
        "--mark-exported",
    ]);
    assert_eq!(code, 252, "{stderr}");
    assert!(stderr.contains("mark-exported"), "{stderr}");
    kmsctl.json(&["audit", "export", "--out", dir2, "--from", "3", "--to", &to]);
    let ok = kmsctl.json(&["audit", "verify", "--dir", dir2]);
    assert_eq!(
        (ok["FromSeq"].as_u64(), ok["RecordsVerified"].as_u64()),
        (Some(3), Some(head - 2))
    );

    // Tampering, each named at its record.
    let k = head / 2;
    let at = (k - 1) as usize; // line index of record k
    assert_names(
        verify_tampered(&kmsctl, out.path(), (1, head), |records, _| {
            let mut r: Value = serde_json::from_str(&records[at]).unwrap();
            let edited = r["event"]
                .as_str()
                .unwrap()
                .replacen("us-east-1", "us-west-2", 1);
            r["event"] = Value::String(edited);
            records[at] = r.to_string();
        }),
        k,
        &["EditedRecord"],
    );
    assert_names(
        verify_tampered(&kmsctl, out.path(), (1, head), |records, _| {
            records.remove(at);
        }),
        k,
        &["SequenceGap"],
    );
    assert_names(
        verify_tampered(&kmsctl, out.path(), (1, head), |records, _| {
            records.swap(at, at + 1);
        }),
        k,
        &["SequenceOutOfOrder"],
    );
    assert_names(
        verify_tampered(&kmsctl, out.path(), (1, head), |records, _| {
            // A well-formed forgery: right seq, linked to its predecessor, correct hash.
            let prev: keystore::audit::AuditRecord =
                serde_json::from_str(&records[at - 1]).unwrap();
            let prev_hash: [u8; 32] = hex_decode(&prev.hash);
            let event = r#"{"eventName":"Forged"}"#.to_string();
            let forged = keystore::audit::AuditRecord {
                seq: k,
                prev_hash: prev.hash.clone(),
                hash: hex_encode(&keystore::audit::record_hash(
                    k,
                    &prev_hash,
                    event.as_bytes(),
                )),
                event,
            };
            records.insert(at, serde_json::to_string(&forged).unwrap());
        }),
        k,
        // The real record k follows the forged one; if a digest ends at k, it disagrees first.
        &["SequenceOutOfOrder", "DigestMismatch"],
    );
    assert_names(
        verify_tampered(&kmsctl, out.path(), (1, head), |records, digests| {
            records.truncate(records.len() - 3);
            digests.pop();
        }),
        head - 2,
        &["Truncated"],
    );

    // A non-admin cannot export, and is told so; the attempt is itself audited.
    let (code, stderr) = kmsctl.fails_ignoring_stdout(&[
        "--client-cert",
        &region.var("KMS_ALT_CLIENT_CERT"),
        "--client-key",
        &region.var("KMS_ALT_CLIENT_KEY"),
        "audit",
        "export",
        "--out",
        dir2,
    ]);
    assert_eq!(code, 254, "{stderr}");
    assert!(
        stderr.contains("AccessDeniedException") && stderr.contains("GetAuditRecords"),
        "{stderr}"
    );

    // --mark-exported from the start: marks what a digest covers, once the files are written.
    let out3 = tempfile::tempdir().unwrap();
    let marked = kmsctl.json(&[
        "audit",
        "export",
        "--out",
        out3.path().to_str().unwrap(),
        "--to",
        &to,
        "--mark-exported",
    ]);
    assert_eq!(marked["ExportedThroughSeq"], head);
    let page = admin
        .get_audit_records()
        .max_records(1)
        .send()
        .await
        .unwrap();
    assert_eq!(page.exported_through_seq, head);
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(text: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_lookup_filters_and_the_raw_chain_is_for_administrators_only() {
    let region = DevRegion::start_with(port_base_for(111), &["--audit-digest-interval-ms", "200"]);
    let kmsctl = Kmsctl::new(&region);
    let key_a = activity(&region).await;
    let sdk = region.admin_client();
    let key_b = sdk.create_key().send().await.unwrap().key_metadata.unwrap();
    let key_b = key_b.key_id().to_string();
    sdk.encrypt()
        .key_id(&key_b)
        .plaintext(Blob::new(b"b".to_vec()))
        .send()
        .await
        .unwrap();

    // kmsctl audit lookup: by event name and key (one goes to the service, one is applied
    // locally), both ways round.
    let found = kmsctl.json(&[
        "audit",
        "lookup",
        "--event-name",
        "Encrypt",
        "--key-id",
        &key_a,
    ]);
    let events = found["Events"].as_array().unwrap();
    assert_eq!(events.len(), 4, "{found:#}");
    for e in events {
        assert_eq!(e["EventName"], "Encrypt");
        assert!(e["Resources"][0]["ResourceName"]
            .as_str()
            .unwrap()
            .ends_with(&key_a));
        assert_eq!(e["ReadOnly"], "true");
        let inner: Value = serde_json::from_str(e["CloudTrailEvent"].as_str().unwrap()).unwrap();
        assert_eq!(inner["eventName"], "Encrypt");
    }
    let b_only = kmsctl.json(&["audit", "lookup", "--key-id", &key_b]);
    let names: Vec<&str> = b_only["Events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["EventName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Encrypt", "CreateKey"], "newest first");
    let one = kmsctl.json(&[
        "audit",
        "lookup",
        "--event-name",
        "CreateKey",
        "--max-items",
        "1",
    ]);
    assert_eq!(one["Events"].as_array().unwrap().len(), 1);
    assert!(one["NextToken"].is_string(), "more remain: {one:#}");
    let denied = kmsctl.json(&["audit", "lookup", "--error-code", "AccessDeniedException"]);
    assert!(denied["Events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["EventName"] == "ScheduleKeyDeletion"));
    let future = kmsctl.json(&["audit", "lookup", "--start-time", "2999-01-01T00:00:00Z"]);
    assert!(future["Events"].as_array().unwrap().is_empty());
    let table = kmsctl.run(&["--output", "table", "audit", "lookup", "--key-id", &key_b]);
    assert!(table.status.success());
    let table = String::from_utf8(table.stdout).unwrap();
    assert!(table.starts_with("EventTime"), "{table}");
    assert_eq!(table.lines().count(), 3, "{table}");

    // gRPC LookupEvents through the Rust SDK.
    let admin = region.grpc_admin();
    let page = admin
        .lookup_events()
        .lookup_attribute("EventName", "Encrypt")
        .max_results(50)
        .send()
        .await
        .unwrap();
    assert_eq!(page.events.len(), 5);
    assert!(page
        .events
        .iter()
        .all(|e| e.event_name == "Encrypt" && e.read_only));
    assert!(page
        .events
        .windows(2)
        .all(|w| w[0].event_time >= w[1].event_time));
    let bad = admin
        .lookup_events()
        .lookup_attribute("Bogus", "x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(bad.error_type(), "ValidationException");

    // The raw chain: App is refused on gRPC and on the JSON endpoint; the admin is not.
    let app = region.grpc_app();
    let e = app.get_audit_records().send().await.unwrap_err();
    assert_eq!(e.error_type(), "AccessDeniedException");
    let e = app.get_audit_digests().send().await.unwrap_err();
    assert_eq!(e.error_type(), "AccessDeniedException");
    let e = app
        .mark_audit_exported()
        .through_seq(1)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.error_type(), "AccessDeniedException");
    let e = app.lookup_events().send().await.unwrap_err();
    assert_eq!(e.error_type(), "AccessDeniedException");
    let e = admin
        .get_audit_records()
        .max_records(0)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.error_type(), "ValidationException");

    let (status, body) = json_call(
        &region,
        "KeyraftAudit.GetAuditRecords",
        r#"{"MaxRecords":5}"#,
        &region.var("KMS_ALT_ACCESS_KEY_ID"),
        &region.var("KMS_ALT_SECRET_ACCESS_KEY"),
    )
    .await;
    assert_eq!(
        (status, body["__type"].as_str()),
        (400, Some("AccessDeniedException"))
    );
    let (status, body) = json_call(
        &region,
        "KeyraftAudit.GetAuditRecords",
        r#"{"FromSeq":1,"MaxRecords":5}"#,
        &region.var("AWS_ACCESS_KEY_ID"),
        &region.var("AWS_SECRET_ACCESS_KEY"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["Records"].as_array().unwrap().len(), 5);
    assert_eq!(body["Records"][0]["Seq"], 1);
    assert_eq!(body["NextSeq"], 6);
    let (status, body) = json_call(
        &region,
        "KeyraftAudit.GetAuditDigests",
        r#"{"FromSeq":1}"#,
        &region.var("AWS_ACCESS_KEY_ID"),
        &region.var("AWS_SECRET_ACCESS_KEY"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["Digests"][0]["DigestSeq"], 1);
    assert!(body["Digests"][0]["Signature"].is_string());
    let (status, body) = json_call(
        &region,
        "KeyraftAudit.MarkAuditExported",
        r#"{"ThroughSeq":"many"}"#,
        &region.var("AWS_ACCESS_KEY_ID"),
        &region.var("AWS_SECRET_ACCESS_KEY"),
    )
    .await;
    assert_eq!(status, 400, "{body}");

    // Each of those calls is itself in the trail, denied or not.
    let denied = admin
        .lookup_events()
        .lookup_attribute("EventName", "GetAuditRecords")
        .send()
        .await
        .unwrap();
    let codes: Vec<Option<String>> = denied
        .events
        .iter()
        .map(|e| {
            let v: Value = serde_json::from_str(&e.cloud_trail_event).unwrap();
            v["errorCode"].as_str().map(str::to_owned)
        })
        .collect();
    assert!(
        codes.contains(&Some("AccessDeniedException".into())),
        "{codes:?}"
    );
    assert!(codes.contains(&None), "{codes:?}");
}

/// One SigV4-signed call on the JSON endpoint; (HTTP status, JSON body).
async fn json_call(
    region: &DevRegion,
    target: &str,
    body: &str,
    access_key_id: &str,
    secret: &str,
) -> (u16, Value) {
    use keystore::sigv4;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(region.var("AWS_CA_BUNDLE")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let host = region
        .var("KMS_ENDPOINT")
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_string();
    let tcp = tokio::net::TcpStream::connect(&host).await.unwrap();
    let mut stream = connector
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let amz_date = sigv4::format_amz_date(now);
    let headers: Vec<(&str, &[u8])> = vec![
        ("host", host.as_bytes()),
        ("content-type", b"application/x-amz-json-1.1".as_slice()),
        ("x-amz-date", amz_date.as_bytes()),
        ("x-amz-target", target.as_bytes()),
    ];
    let request = sigv4::Request {
        method: "POST",
        path: "/",
        query: "",
        headers: &headers,
        payload: body.as_bytes(),
    };
    let auth = sigv4::sign(
        &request,
        &["host", "content-type", "x-amz-date", "x-amz-target"],
        access_key_id,
        secret.as_bytes(),
        &region.var("AWS_DEFAULT_REGION"),
        "kms",
    )
    .unwrap();
    let raw = format!(
        "POST / HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-amz-json-1.1\r\n\
         X-Amz-Date: {amz_date}\r\nX-Amz-Target: {target}\r\nAuthorization: {auth}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(raw.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    // rustls reports a missing close_notify after the data; the data is complete.
    let _ = stream.read_to_end(&mut response).await;
    let text = String::from_utf8(response).unwrap();
    let status = text.split(' ').nth(1).unwrap().parse().unwrap();
    let (_, body) = text.split_once("\r\n\r\n").unwrap();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}
