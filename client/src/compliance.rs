//! `kmsctl compliance report`: the checks of a weekly compliance job over one account's keys
//! and its audit trail — customer keys without automatic rotation, keys unused for N days,
//! keys pending deletion, denied calls by principal, calls per key and per principal.
//!
//! # Layout
//!
//! ```text
//! gather()   ListKeys -> DescribeKey, GetKeyRotationStatus, GetKeyLastUsage per key   -> KeyFacts
//!            LookupEvents over the period (every page)                                -> EventFacts
//! build()    KeyFacts + EventFacts + ReportParams -> ComplianceReport (pure, unit-tested)
//! render_table() / serde_json                       -> what kmsctl prints
//! ```
//!
//! The report sees what the caller may see: its own account's keys and events (LookupEvents
//! returns only those), so one account's job never reads another's trail.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::{Client, Error};

/// What the report needs to know about one key.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyFacts {
    /// Key id.
    pub key_id: String,
    /// Key ARN.
    pub arn: String,
    /// Description.
    pub description: String,
    /// KeyState (`Enabled`, `PendingDeletion`, ...).
    pub key_state: String,
    /// KeyUsage.
    pub key_usage: String,
    /// KeySpec.
    pub key_spec: String,
    /// Origin (`AWS_KMS`, `EXTERNAL`).
    pub origin: String,
    /// KeyManager (`CUSTOMER`, `AWS`).
    pub key_manager: String,
    /// Epoch seconds.
    pub creation_date: f64,
    /// Epoch seconds; set while PendingDeletion.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deletion_date: Option<f64>,
    /// `None` where automatic rotation does not apply (asymmetric, HMAC, imported material).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation_enabled: Option<bool>,
    /// Epoch seconds of the newest successful cryptographic use (GetKeyLastUsage).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_used: Option<f64>,
    /// The operation of that use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_used_operation: Option<String>,
}

impl KeyFacts {
    /// Customer-managed symmetric keys with KMS-generated material: the keys automatic
    /// rotation is for (AWS Config's `cmk-backing-key-rotation-enabled` scope).
    fn rotation_applies(&self) -> bool {
        self.key_manager == "CUSTOMER"
            && self.key_spec == "SYMMETRIC_DEFAULT"
            && self.origin == "AWS_KMS"
            && matches!(self.key_state.as_str(), "Enabled" | "Disabled")
    }
}

/// What the report needs to know about one audit event.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EventFacts {
    /// eventName.
    pub event_name: String,
    /// `userIdentity.arn` (or the service for service events).
    pub principal: String,
    /// Key ARNs the event names (`resources`).
    pub key_arns: Vec<String>,
    /// errorCode of a failed call.
    pub error_code: Option<String>,
    /// Epoch seconds.
    pub time: f64,
}

impl EventFacts {
    /// Reads the facts out of a CloudTrail event's JSON text. `None` if it is not an event.
    pub fn from_cloudtrail_json(text: &str) -> Option<EventFacts> {
        let v: serde_json::Value = serde_json::from_str(text).ok()?;
        let event_name = v["eventName"].as_str()?.to_string();
        let principal = v["userIdentity"]["arn"]
            .as_str()
            .or_else(|| v["userIdentity"]["invokedBy"].as_str())
            .unwrap_or("(unknown)")
            .to_string();
        let key_arns = v["resources"]
            .as_array()
            .map(|rs| {
                rs.iter()
                    .filter_map(|r| r["ARN"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let error_code = v["errorCode"].as_str().map(str::to_string);
        let time = v["eventTime"]
            .as_str()
            .and_then(|t| crate::cli::parse_timestamp("eventTime", t).ok())
            .unwrap_or(0.0);
        Some(EventFacts {
            event_name,
            principal,
            key_arns,
            error_code,
            time,
        })
    }
}

/// The report's inputs besides the facts.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportParams {
    /// When the report is made (epoch seconds).
    pub now: f64,
    /// A key is "unused" when its last use (or, never used, its creation) is older than this.
    pub unused_days: u32,
    /// Period of the call statistics (epoch seconds, inclusive).
    pub period_start: f64,
    /// End of the period (epoch seconds, inclusive).
    pub period_end: f64,
}

/// One key named by a check.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyFinding {
    /// Key id.
    pub key_id: String,
    /// Key ARN.
    pub arn: String,
    /// Description.
    pub description: String,
    /// KeyState.
    pub key_state: String,
    /// Why, in words (e.g. "last used 41 days ago (Decrypt)").
    pub detail: String,
}

/// Call counts of one principal or key over the period.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallCounts {
    /// Calls.
    pub calls: u64,
    /// Of which answered AccessDeniedException.
    pub denied: u64,
    /// Of which failed (any error, denials included).
    pub failed: u64,
}

/// The report.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ComplianceReport {
    /// The inputs.
    pub params: ReportParams,
    /// Keys listed and described.
    pub keys_examined: usize,
    /// Events in the period.
    pub events_examined: usize,
    /// Customer symmetric keys with automatic rotation off.
    pub keys_without_rotation: Vec<KeyFinding>,
    /// Enabled keys not used for `unused_days`.
    pub unused_keys: Vec<KeyFinding>,
    /// Keys scheduled for deletion.
    pub keys_pending_deletion: Vec<KeyFinding>,
    /// Principal ARN -> AccessDenied answers in the period.
    pub denied_calls_by_principal: BTreeMap<String, u64>,
    /// Key ARN -> calls naming it in the period.
    pub calls_by_key: BTreeMap<String, CallCounts>,
    /// Principal ARN -> calls in the period.
    pub calls_by_principal: BTreeMap<String, CallCounts>,
}

impl ComplianceReport {
    /// Whether every check passed (no finding; denied calls are reported, not failures).
    pub fn is_clean(&self) -> bool {
        self.keys_without_rotation.is_empty()
            && self.unused_keys.is_empty()
            && self.keys_pending_deletion.is_empty()
    }
}

const DAY: f64 = 86_400.0;

fn finding(k: &KeyFacts, detail: String) -> KeyFinding {
    KeyFinding {
        key_id: k.key_id.clone(),
        arn: k.arn.clone(),
        description: k.description.clone(),
        key_state: k.key_state.clone(),
        detail,
    }
}

/// Builds the report from gathered facts.
pub fn build(keys: &[KeyFacts], events: &[EventFacts], params: ReportParams) -> ComplianceReport {
    let days_ago = |t: f64| ((params.now - t) / DAY).floor().max(0.0) as u64;
    let unused_before = params.now - f64::from(params.unused_days) * DAY;
    let mut keys_without_rotation = Vec::new();
    let mut unused_keys = Vec::new();
    let mut keys_pending_deletion = Vec::new();
    for k in keys {
        if k.key_manager != "CUSTOMER" {
            continue;
        }
        if k.rotation_applies() && k.rotation_enabled == Some(false) {
            keys_without_rotation.push(finding(k, "automatic rotation is disabled".into()));
        }
        if k.key_state == "PendingDeletion" {
            let detail = match k.deletion_date {
                Some(d) => format!(
                    "deleted in {} day(s)",
                    ((d - params.now) / DAY).ceil().max(0.0)
                ),
                None => "pending deletion".into(),
            };
            keys_pending_deletion.push(finding(k, detail));
        }
        if k.key_state == "Enabled" {
            match k.last_used {
                Some(t) if t < unused_before => unused_keys.push(finding(
                    k,
                    format!(
                        "last used {} day(s) ago ({})",
                        days_ago(t),
                        k.last_used_operation.as_deref().unwrap_or("?")
                    ),
                )),
                None if k.creation_date < unused_before => unused_keys.push(finding(
                    k,
                    format!(
                        "never used; created {} day(s) ago",
                        days_ago(k.creation_date)
                    ),
                )),
                _ => {}
            }
        }
    }
    let mut denied_calls_by_principal = BTreeMap::new();
    let mut calls_by_key: BTreeMap<String, CallCounts> = BTreeMap::new();
    let mut calls_by_principal: BTreeMap<String, CallCounts> = BTreeMap::new();
    let mut events_examined = 0;
    for e in events {
        if e.time < params.period_start || e.time > params.period_end {
            continue;
        }
        events_examined += 1;
        let denied = e.error_code.as_deref() == Some("AccessDeniedException");
        let failed = e.error_code.is_some();
        let bump = |c: &mut CallCounts| {
            c.calls += 1;
            c.denied += u64::from(denied);
            c.failed += u64::from(failed);
        };
        bump(calls_by_principal.entry(e.principal.clone()).or_default());
        for arn in &e.key_arns {
            bump(calls_by_key.entry(arn.clone()).or_default());
        }
        if denied {
            *denied_calls_by_principal
                .entry(e.principal.clone())
                .or_insert(0) += 1;
        }
    }
    ComplianceReport {
        params,
        keys_examined: keys.len(),
        events_examined,
        keys_without_rotation,
        unused_keys,
        keys_pending_deletion,
        denied_calls_by_principal,
        calls_by_key,
        calls_by_principal,
    }
}

/// The report as a readable text table.
pub fn render_table(r: &ComplianceReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Compliance report: {} key(s), {} event(s) in the period, unused = {} day(s)",
        r.keys_examined, r.events_examined, r.params.unused_days
    );
    let section = |out: &mut String, title: &str, items: &[KeyFinding]| {
        let _ = writeln!(out, "\n{title}: {}", items.len());
        for f in items {
            let _ = writeln!(
                out,
                "  {:<36}  {:<15}  {}{}",
                f.key_id,
                f.key_state,
                f.detail,
                if f.description.is_empty() {
                    String::new()
                } else {
                    format!("  [{}]", f.description)
                }
            );
        }
    };
    section(
        &mut out,
        "Customer keys without automatic rotation",
        &r.keys_without_rotation,
    );
    section(&mut out, "Keys unused", &r.unused_keys);
    section(&mut out, "Keys pending deletion", &r.keys_pending_deletion);
    let _ = writeln!(
        out,
        "\nDenied calls by principal: {}",
        r.denied_calls_by_principal.len()
    );
    for (p, n) in &r.denied_calls_by_principal {
        let _ = writeln!(out, "  {n:>8}  {p}");
    }
    let counts = |out: &mut String, title: &str, m: &BTreeMap<String, CallCounts>| {
        let _ = writeln!(out, "\n{title}: {}", m.len());
        let _ = writeln!(
            out,
            "  {:>8} {:>8} {:>8}  name",
            "calls", "denied", "failed"
        );
        let mut rows: Vec<_> = m.iter().collect();
        rows.sort_by(|a, b| b.1.calls.cmp(&a.1.calls).then(a.0.cmp(b.0)));
        for (name, c) in rows {
            let _ = writeln!(
                out,
                "  {:>8} {:>8} {:>8}  {name}",
                c.calls, c.denied, c.failed
            );
        }
    };
    counts(&mut out, "Calls by key", &r.calls_by_key);
    counts(&mut out, "Calls by principal", &r.calls_by_principal);
    let _ = writeln!(
        out,
        "\nVerdict: {}",
        if r.is_clean() {
            "no findings"
        } else {
            "findings above"
        }
    );
    out
}

/// Gathers the key facts of every key the caller can list (DescribeKey, rotation status and
/// last usage per key; keys the caller may not describe are skipped with their error noted in
/// `skipped`).
pub async fn gather_keys(client: &Client) -> Result<(Vec<KeyFacts>, Vec<String>), Error> {
    let mut facts = Vec::new();
    let mut skipped = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let page = client
            .list_keys()
            .limit(1000)
            .set_marker(marker.clone())
            .send()
            .await?;
        for entry in page.keys {
            match key_facts(client, &entry.key_id).await {
                Ok(f) => facts.push(f),
                Err(e) => skipped.push(format!("{}: {}", entry.key_id, e.error_type())),
            }
        }
        match page.next_marker {
            Some(m) if page.truncated => marker = Some(m),
            _ => break,
        }
    }
    Ok((facts, skipped))
}

async fn key_facts(client: &Client, key_id: &str) -> Result<KeyFacts, Error> {
    let md = client
        .describe_key()
        .key_id(key_id)
        .send()
        .await?
        .key_metadata
        .unwrap_or_default();
    let mut f = KeyFacts {
        key_id: md.key_id.clone(),
        arn: md.arn.clone(),
        description: md.description.clone(),
        key_state: md.key_state.clone(),
        key_usage: md.key_usage.clone(),
        key_spec: md.key_spec.clone(),
        origin: md.origin.clone(),
        key_manager: md.key_manager.clone(),
        creation_date: md.creation_date,
        deletion_date: md.deletion_date,
        ..Default::default()
    };
    if f.rotation_applies() {
        let r = client
            .get_key_rotation_status()
            .key_id(key_id)
            .send()
            .await?;
        f.rotation_enabled = Some(r.key_rotation_enabled);
    }
    if f.key_state != "PendingDeletion" {
        let u = client.get_key_last_usage().key_id(key_id).send().await?;
        if let Some(last) = u.key_last_usage {
            f.last_used = Some(last.timestamp);
            f.last_used_operation = Some(last.operation).filter(|o| !o.is_empty());
        }
    }
    Ok(f)
}

/// Every event of the caller's account in `[start, end]` (epoch seconds), via LookupEvents
/// (newest first, every page).
pub async fn gather_events(
    client: &Client,
    start: f64,
    end: f64,
) -> Result<Vec<EventFacts>, Error> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut b = client
            .lookup_events()
            .start_time(start)
            .end_time(end)
            .max_results(50);
        if let Some(t) = token.take() {
            b = b.next_token(t);
        }
        let page = b.send().await?;
        out.extend(
            page.events
                .iter()
                .filter_map(|e| EventFacts::from_cloudtrail_json(&e.cloud_trail_event)),
        );
        match page.next_token {
            Some(t) => token = Some(t),
            None => return Ok(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: f64 = 1_800_000_000.0;

    fn key(id: &str) -> KeyFacts {
        KeyFacts {
            key_id: id.into(),
            arn: format!("arn:aws:kms:us-east-1:111122223333:key/{id}"),
            key_state: "Enabled".into(),
            key_usage: "ENCRYPT_DECRYPT".into(),
            key_spec: "SYMMETRIC_DEFAULT".into(),
            origin: "AWS_KMS".into(),
            key_manager: "CUSTOMER".into(),
            creation_date: NOW - 100.0 * DAY,
            rotation_enabled: Some(true),
            last_used: Some(NOW - DAY),
            last_used_operation: Some("Decrypt".into()),
            ..Default::default()
        }
    }

    fn params() -> ReportParams {
        ReportParams {
            now: NOW,
            unused_days: 30,
            period_start: NOW - 7.0 * DAY,
            period_end: NOW,
        }
    }

    #[test]
    fn each_check_names_exactly_the_keys_it_is_about() {
        let rotating = key("rotating");
        let no_rotation = KeyFacts {
            rotation_enabled: Some(false),
            ..key("no-rotation")
        };
        // Rotation does not apply to asymmetric or imported keys: never a finding.
        let asymmetric = KeyFacts {
            key_spec: "RSA_2048".into(),
            rotation_enabled: None,
            ..key("rsa")
        };
        let imported = KeyFacts {
            origin: "EXTERNAL".into(),
            rotation_enabled: None,
            ..key("imported")
        };
        let stale = KeyFacts {
            last_used: Some(NOW - 41.0 * DAY),
            ..key("stale")
        };
        let never_old = KeyFacts {
            last_used: None,
            last_used_operation: None,
            ..key("never-old")
        };
        let never_new = KeyFacts {
            last_used: None,
            creation_date: NOW - 2.0 * DAY,
            ..key("never-new")
        };
        let pending = KeyFacts {
            key_state: "PendingDeletion".into(),
            deletion_date: Some(NOW + 6.5 * DAY),
            last_used: None,
            ..key("pending")
        };
        let r = build(
            &[
                rotating,
                no_rotation,
                asymmetric,
                imported,
                stale,
                never_old,
                never_new,
                pending,
            ],
            &[],
            params(),
        );
        let ids = |v: &[KeyFinding]| v.iter().map(|f| f.key_id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&r.keys_without_rotation), ["no-rotation"]);
        assert_eq!(ids(&r.unused_keys), ["stale", "never-old"]);
        assert_eq!(r.unused_keys[0].detail, "last used 41 day(s) ago (Decrypt)");
        assert_eq!(ids(&r.keys_pending_deletion), ["pending"]);
        assert_eq!(r.keys_pending_deletion[0].detail, "deleted in 7 day(s)");
        assert!(!r.is_clean());
        let text = render_table(&r);
        assert!(
            text.contains("Customer keys without automatic rotation: 1"),
            "{text}"
        );
        assert!(text.contains("Keys unused: 2"), "{text}");
    }

    #[test]
    fn call_statistics_count_only_the_period_and_denials_by_principal() {
        let alice = "arn:aws:iam::111122223333:user/alice";
        let app = "arn:aws:iam::111122223333:role/App";
        let k1 = "arn:aws:kms:us-east-1:111122223333:key/k1";
        let ev = |who: &str, err: Option<&str>, t: f64| EventFacts {
            event_name: "Decrypt".into(),
            principal: who.into(),
            key_arns: vec![k1.into()],
            error_code: err.map(str::to_string),
            time: t,
        };
        let events = [
            ev(alice, None, NOW - DAY),
            ev(alice, None, NOW - 2.0 * DAY),
            ev(app, Some("AccessDeniedException"), NOW - DAY),
            ev(app, Some("AccessDeniedException"), NOW - 3.0 * DAY),
            ev(app, Some("InvalidCiphertextException"), NOW - DAY),
            // Outside the period: not counted.
            ev(app, Some("AccessDeniedException"), NOW - 30.0 * DAY),
        ];
        let r = build(&[key("k1")], &events, params());
        assert!(r.is_clean());
        assert_eq!(r.events_examined, 5);
        assert_eq!(r.denied_calls_by_principal.get(app), Some(&2));
        assert_eq!(r.denied_calls_by_principal.get(alice), None);
        assert_eq!(
            r.calls_by_key[k1],
            CallCounts {
                calls: 5,
                denied: 2,
                failed: 3
            }
        );
        assert_eq!(r.calls_by_principal[alice].calls, 2);
        assert_eq!(r.calls_by_principal[app].failed, 3);
    }

    #[test]
    fn cloudtrail_events_are_read_for_principal_keys_error_and_time() {
        let text = r#"{"eventVersion":"1.08","userIdentity":{"type":"AssumedRole","arn":"arn:aws:iam::111122223333:role/App"},"eventTime":"2026-11-28T21:00:05Z","eventName":"Encrypt","errorCode":"AccessDeniedException","resources":[{"accountId":"111122223333","type":"AWS::KMS::Key","ARN":"arn:aws:kms:us-east-1:111122223333:key/k"}]}"#;
        let e = EventFacts::from_cloudtrail_json(text).unwrap();
        assert_eq!(e.principal, "arn:aws:iam::111122223333:role/App");
        assert_eq!(e.key_arns, ["arn:aws:kms:us-east-1:111122223333:key/k"]);
        assert_eq!(e.error_code.as_deref(), Some("AccessDeniedException"));
        assert_eq!(e.time, 1_795_899_605.0);
        assert!(EventFacts::from_cloudtrail_json("not json").is_none());
    }
}
