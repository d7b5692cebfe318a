//! `KeyraftAudit.LookupEvents`: CloudTrail's LookupEvents over the region's audit chain
//! (`X-Amz-Target: KeyraftAudit.LookupEvents` on the JSON endpoint), and the routing of every
//! `KeyraftAudit.<Op>` (the region-wide chain operations live in `audit_export.rs`).
//!
//! # Layout
//!
//! ```text
//! AuditOperation        wire name <-> "audit:<Operation>" action
//! Kms::dispatch_audit   JSON body -> LookupEventsRequest -> Kms::lookup_events -> JSON body
//! Kms::lookup_events    validate -> authorize_account("audit:LookupEvents") -> scan backwards
//! ```
//!
//! Events come newest first: the chain head is read, then records are read backwards in
//! pages of at most [`AUDIT_READ_CHUNK`], at most [`MAX_SCAN_PER_CALL`] records per call. A
//! caller sees only events of its own account (`recipientAccountId` or
//! `userIdentity.accountId`). `NextToken` is the seq to continue below (base64 of its decimal
//! text; plain decimal is accepted too).

use base64::Engine as _;
use keystore::audit::{AuditEvent, AuditRecord};
use serde::{Deserialize, Serialize};

use super::*;

/// Largest (and default) `MaxResults`, as in CloudTrail.
pub const MAX_LOOKUP_RESULTS: i64 = 50;
/// Records read from the store per request.
pub const AUDIT_READ_CHUNK: u64 = 1000;
/// Records examined per LookupEvents call at most; a `NextToken` continues the scan.
pub const MAX_SCAN_PER_CALL: u64 = 10_000;

/// The audit operations, by wire name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuditOperation {
    /// LookupEvents.
    LookupEvents,
    /// GetAuditRecords (region-wide; `audit_export.rs`).
    GetAuditRecords,
    /// GetAuditDigests (region-wide; `audit_export.rs`).
    GetAuditDigests,
    /// MarkAuditExported (region-wide; `audit_export.rs`).
    MarkAuditExported,
}

impl AuditOperation {
    /// The `X-Amz-Target` prefix of these operations.
    pub const TARGET_PREFIX: &'static str = "KeyraftAudit.";

    /// Every operation.
    pub const ALL: [AuditOperation; 4] = [
        AuditOperation::LookupEvents,
        AuditOperation::GetAuditRecords,
        AuditOperation::GetAuditDigests,
        AuditOperation::MarkAuditExported,
    ];

    /// `KeyraftAudit.<Operation>` -> the operation.
    pub fn from_target(target: &str) -> Option<AuditOperation> {
        let name = target.strip_prefix(Self::TARGET_PREFIX)?;
        Self::ALL.into_iter().find(|op| op.name() == name)
    }

    /// The wire name.
    pub fn name(self) -> &'static str {
        self.action().trim_start_matches("audit:")
    }

    /// The action an identity policy must allow.
    pub fn action(self) -> &'static str {
        match self {
            AuditOperation::LookupEvents => "audit:LookupEvents",
            AuditOperation::GetAuditRecords => "audit:GetAuditRecords",
            AuditOperation::GetAuditDigests => "audit:GetAuditDigests",
            AuditOperation::MarkAuditExported => "audit:MarkAuditExported",
        }
    }
}

/// `LookupEventsRequest`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct LookupEventsRequest {
    /// Oldest event time (epoch seconds, inclusive).
    pub start_time: Option<EpochSeconds>,
    /// Newest event time (epoch seconds, inclusive).
    pub end_time: Option<EpochSeconds>,
    /// At most one attribute to filter on.
    pub lookup_attributes: Option<Vec<LookupAttribute>>,
    /// Page size (1..=50, default 50).
    pub max_results: Option<i64>,
    /// The previous page's `NextToken`.
    pub next_token: Option<String>,
}

/// `LookupAttribute`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct LookupAttribute {
    /// EventName, ResourceName, Username, EventId, ReadOnly or ErrorCode.
    pub attribute_key: Option<String>,
    /// The value to match.
    pub attribute_value: Option<String>,
}

/// `LookupEventsResponse`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct LookupEventsResponse {
    /// Matching events, newest first.
    pub events: Vec<LookupEvent>,
    /// Pass back to continue (absent when the chain's start was reached).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// One event as LookupEvents shows it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct LookupEvent {
    /// `eventID`.
    pub event_id: String,
    /// `eventName`.
    pub event_name: String,
    /// `"true"` or `"false"`, as CloudTrail writes it here.
    pub read_only: String,
    /// The access key of a SigV4 call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    /// `eventTime` as epoch seconds.
    pub event_time: EpochSeconds,
    /// `eventSource`.
    pub event_source: String,
    /// The caller's principal ARN (its user name or invoking service when it has none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The event's resources.
    pub resources: Vec<LookupResource>,
    /// The whole event's JSON text, verbatim from the chain.
    pub cloud_trail_event: String,
}

/// `Resource` of a looked-up event.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct LookupResource {
    /// `AWS::KMS::Key`.
    pub resource_type: String,
    /// The resource ARN.
    pub resource_name: String,
}

/// A validated attribute filter.
#[derive(Clone, Debug, PartialEq)]
enum Filter {
    EventName(String),
    ResourceName(String),
    Username(String),
    EventId(String),
    ReadOnly(bool),
    ErrorCode(String),
}

impl Filter {
    fn parse(attrs: &[LookupAttribute]) -> Result<Option<Filter>, KmsError> {
        let attr = match attrs {
            [] => return Ok(None),
            [a] => a,
            _ => {
                return Err(KmsError::Validation(
                    "LookupAttributes accepts at most one attribute".into(),
                ))
            }
        };
        let key = attr.attribute_key.as_deref().ok_or_else(|| {
            KmsError::Validation("Value null at 'lookupAttributes.1.member.attributeKey'".into())
        })?;
        let value = attr
            .attribute_value
            .clone()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                KmsError::Validation(
                    "AttributeValue must be a non-empty string in LookupAttributes".into(),
                )
            })?;
        Ok(Some(match key {
            "EventName" => Filter::EventName(value),
            "ResourceName" => Filter::ResourceName(value),
            "Username" => Filter::Username(value),
            "EventId" => Filter::EventId(value),
            "ErrorCode" => Filter::ErrorCode(value),
            "ReadOnly" => match value.as_str() {
                "true" => Filter::ReadOnly(true),
                "false" => Filter::ReadOnly(false),
                _ => {
                    return Err(KmsError::Validation(
                        "ReadOnly AttributeValue must be \"true\" or \"false\"".into(),
                    ))
                }
            },
            _ => {
                return Err(KmsError::Validation(
                    "AttributeKey must be one of EventName, ResourceName, Username, EventId, \
                     ReadOnly, ErrorCode"
                        .into(),
                ))
            }
        }))
    }

    fn matches(&self, e: &AuditEvent) -> bool {
        match self {
            Filter::EventName(v) => &e.event_name == v,
            Filter::ResourceName(v) => e.resources.iter().any(|r| {
                &r.arn == v
                    || r.arn
                        .rsplit_once('/')
                        .is_some_and(|(_, id)| id == v.as_str())
            }),
            Filter::Username(v) => {
                e.user_identity.arn.as_deref() == Some(v.as_str())
                    || e.user_identity.user_name.as_deref() == Some(v.as_str())
            }
            Filter::EventId(v) => &e.event_id == v,
            Filter::ReadOnly(v) => e.read_only == *v,
            Filter::ErrorCode(v) => e.error_code.as_deref() == Some(v.as_str()),
        }
    }
}

fn encode_token(seq: u64) -> String {
    base64::engine::general_purpose::STANDARD.encode(seq.to_string())
}

/// A `NextToken` -> the seq to continue below.
fn decode_token(token: &str) -> Option<u64> {
    if let Ok(seq) = token.parse::<u64>() {
        return Some(seq);
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(token.as_bytes())
        .ok()?;
    std::str::from_utf8(&bytes).ok()?.parse().ok()
}

/// CloudTrail's `eventTime` (`YYYY-MM-DDTHH:MM:SS[.fff]Z`) -> epoch seconds, with the audit
/// core's parser (the one retention decides by).
fn parse_event_time(text: &str) -> Option<EpochSeconds> {
    keystore::audit::retention::parse_event_time(text).map(|ms| ms as f64 / 1000.0)
}

fn lookup_event(record: &AuditRecord, e: &AuditEvent) -> LookupEvent {
    let id = &e.user_identity;
    LookupEvent {
        event_id: e.event_id.clone(),
        event_name: e.event_name.clone(),
        read_only: e.read_only.to_string(),
        access_key_id: id.access_key_id.clone(),
        event_time: parse_event_time(&e.event_time).unwrap_or(0.0),
        event_source: e.event_source.clone(),
        username: id
            .arn
            .clone()
            .or_else(|| id.user_name.clone())
            .or_else(|| id.invoked_by.clone()),
        resources: e
            .resources
            .iter()
            .map(|r| LookupResource {
                resource_type: r.resource_type.clone(),
                resource_name: r.arn.clone(),
            })
            .collect(),
        cloud_trail_event: record.event.clone(),
    }
}

impl Kms {
    /// Runs one `KeyraftAudit.<Operation>` call: JSON body in, JSON body out.
    pub async fn dispatch_audit(
        &self,
        caller: &Caller,
        op: AuditOperation,
        body: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        match op {
            AuditOperation::LookupEvents => {
                to_body(&self.lookup_events(caller, parse_request(body)?).await?)
            }
            AuditOperation::GetAuditRecords => {
                to_body(&self.get_audit_records(caller, parse_request(body)?).await?)
            }
            AuditOperation::GetAuditDigests => {
                to_body(&self.get_audit_digests(caller, parse_request(body)?).await?)
            }
            AuditOperation::MarkAuditExported => to_body(
                &self
                    .mark_audit_exported(caller, parse_request(body)?)
                    .await?,
            ),
        }
    }

    /// LookupEvents: the caller's account's events, newest first, filtered.
    pub async fn lookup_events(
        &self,
        caller: &Caller,
        req: LookupEventsRequest,
    ) -> Result<LookupEventsResponse, KmsError> {
        let max = req.max_results.unwrap_or(MAX_LOOKUP_RESULTS);
        if !(1..=MAX_LOOKUP_RESULTS).contains(&max) {
            return Err(KmsError::Validation(format!(
                "MaxResults must be between 1 and {MAX_LOOKUP_RESULTS}"
            )));
        }
        let max = max as usize;
        let filter = Filter::parse(req.lookup_attributes.as_deref().unwrap_or(&[]))?;
        if let (Some(s), Some(e)) = (req.start_time, req.end_time) {
            if s > e {
                return Err(KmsError::Validation(
                    "StartTime must not be after EndTime".into(),
                ));
            }
        }
        let token = match req.next_token.as_deref() {
            Some(t) => Some(decode_token(t).filter(|s| *s >= 1).ok_or_else(|| {
                KmsError::Validation(
                    "Invalid NextToken: pass the value a previous call returned".into(),
                )
            })?),
            None => None,
        };
        let action = AuditOperation::LookupEvents.action();
        if caller.via_service.is_some() || caller.service_principal.is_some() {
            return Err(KmsError::AccessDenied(format!(
                "User: {} is not authorized to perform: {action} through a service",
                caller
                    .service_principal
                    .as_deref()
                    .unwrap_or(&caller.principal_arn),
            )));
        }
        self.authorize_account(caller, action, Facts::none())
            .await?;

        let (head, _) = self.store.audit_head().await?;
        // Seqs strictly below `upper` remain to be scanned.
        let mut upper = match token {
            Some(t) if t > head.next_seq => {
                return Err(KmsError::Validation(
                    "Invalid NextToken: pass the value a previous call returned".into(),
                ))
            }
            Some(t) => t,
            None => head.next_seq,
        };
        let mut scanned = 0u64;
        let mut events = Vec::new();
        'scan: while upper > 1 && scanned < MAX_SCAN_PER_CALL {
            let chunk = AUDIT_READ_CHUNK
                .min(upper - 1)
                .min(MAX_SCAN_PER_CALL - scanned);
            let from = upper - chunk;
            let records = self.audit_records(from, chunk as u32).await?;
            let below = upper;
            for record in records.iter().rev().filter(|r| r.seq < below) {
                scanned += 1;
                upper = record.seq;
                let Ok(event) = AuditEvent::from_json(&record.event) else {
                    continue;
                };
                if !self.visible(caller, &event, &filter, &req) {
                    continue;
                }
                events.push(lookup_event(record, &event));
                if events.len() >= max {
                    break 'scan;
                }
            }
            // Below what this page returned (a short page or gaps end the scan there too).
            upper = upper.min(from);
            if records.is_empty() {
                scanned += chunk;
            }
        }
        Ok(LookupEventsResponse {
            events,
            next_token: (upper > 1).then(|| encode_token(upper)),
        })
    }

    fn visible(
        &self,
        caller: &Caller,
        e: &AuditEvent,
        filter: &Option<Filter>,
        req: &LookupEventsRequest,
    ) -> bool {
        let own = e.recipient_account_id.as_deref() == Some(caller.account_id.as_str())
            || e.user_identity.account_id.as_deref() == Some(caller.account_id.as_str());
        if !own {
            return false;
        }
        if req.start_time.is_some() || req.end_time.is_some() {
            let Some(t) = parse_event_time(&e.event_time) else {
                return false;
            };
            // eventTime has whole seconds: compare against the floor of the bounds.
            if req.start_time.is_some_and(|s| t < s.floor()) || req.end_time.is_some_and(|x| t > x)
            {
                return false;
            }
        }
        filter.as_ref().is_none_or(|f| f.matches(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_time_parses() {
        assert_eq!(parse_event_time("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(
            parse_event_time("2026-01-31T12:00:00Z"),
            Some(1_769_860_800.0)
        );
        assert_eq!(parse_event_time("2026-01-31 12:00:00"), None);
    }

    #[test]
    fn tokens_round_trip() {
        assert_eq!(decode_token(&encode_token(1234)), Some(1234));
        assert_eq!(decode_token("77"), Some(77));
        assert_eq!(decode_token("not a token!"), None);
    }

    #[test]
    fn attributes_validate() {
        let a = |k: &str, v: &str| LookupAttribute {
            attribute_key: Some(k.into()),
            attribute_value: Some(v.into()),
        };
        assert_eq!(
            Filter::parse(&[a("EventName", "Encrypt")]).unwrap(),
            Some(Filter::EventName("Encrypt".into()))
        );
        assert!(Filter::parse(&[a("EventName", "x"), a("EventId", "y")]).is_err());
        assert!(Filter::parse(&[a("Bogus", "x")]).is_err());
        assert!(Filter::parse(&[a("ReadOnly", "maybe")]).is_err());
        assert_eq!(Filter::parse(&[]).unwrap(), None);
    }

    #[test]
    fn targets_route() {
        assert_eq!(
            AuditOperation::from_target("KeyraftAudit.LookupEvents"),
            Some(AuditOperation::LookupEvents)
        );
        assert_eq!(AuditOperation::from_target("KeyraftIam.LookupEvents"), None);
        for op in AuditOperation::ALL {
            let target = format!("KeyraftAudit.{}", op.name());
            assert_eq!(AuditOperation::from_target(&target), Some(op));
        }
    }
}
