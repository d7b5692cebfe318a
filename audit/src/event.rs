//! The CloudTrail-shaped audit event.
//!
//! Member names and value spellings follow CloudTrail's record format so that tools written
//! for CloudTrail (jq scripts, Athena tables, SIEM parsers) read keyraft's events unchanged.
//! Absent optional members are omitted, except `requestParameters` and `responseElements`,
//! which CloudTrail always writes (as `null` when there is nothing to record).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::redact;
use super::AuditError;
use crate::EpochMillis;

/// `eventVersion` of every event keyraft writes.
pub const EVENT_VERSION: &str = "1.08";
/// `eventSource`: the service, as AWS names it.
pub const EVENT_SOURCE: &str = "kms.amazonaws.com";
/// `eventCategory` of every KMS event.
pub const EVENT_CATEGORY: &str = "Management";
/// `resources[].type` of a KMS key.
pub const KMS_KEY_RESOURCE_TYPE: &str = "AWS::KMS::Key";
/// `sourceIPAddress`, `userAgent` and `userIdentity.invokedBy` of the service's own actions.
const AWS_INTERNAL: &str = "AWS Internal";

/// CloudTrail's `eventType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    /// A call to the API (either the AWS JSON API or gRPC), allowed or denied.
    AwsApiCall,
    /// An action the service took by itself: the Raft leader's scheduled rotation
    /// (`RotateKey`), deletion at the end of its window (`DeleteKey`) and expiry of imported
    /// material (`DeleteExpiredKeyMaterial`).
    AwsServiceEvent,
}

/// `userIdentity.type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum IdentityType {
    /// The account root principal.
    Root,
    /// An IAM user.
    #[serde(rename = "IAMUser")]
    IamUser,
    /// A role session.
    AssumedRole,
    /// An AWS service principal (e.g. a service identity calling through `kms:ViaService`).
    #[serde(rename = "AWSService")]
    AwsService,
    /// Another account (cross-account calls).
    #[serde(rename = "AWSAccount")]
    AwsAccount,
}

/// `userIdentity`: who made the call.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserIdentity {
    /// Kind of principal; absent for the service's own events (as in CloudTrail).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub identity_type: Option<IdentityType>,
    /// Stable principal id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_id: Option<String>,
    /// Principal ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    /// Account of the principal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// Access key id of a SigV4-signed call (never the secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    /// gRPC/mTLS calls: lowercase hex SHA-256 of the client's leaf certificate (DER).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_fingerprint: Option<String>,
    /// IAM user name, for IAMUser identities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    /// The service a call was made through (`kms:ViaService`), or `AWS Internal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoked_by: Option<String>,
}

/// One entry of `resources`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    /// Account that owns the resource.
    #[serde(rename = "accountId")]
    pub account_id: String,
    /// Resource type, [`KMS_KEY_RESOURCE_TYPE`] for keys.
    #[serde(rename = "type")]
    pub resource_type: String,
    /// Resource ARN.
    #[serde(rename = "ARN")]
    pub arn: String,
}

impl Resource {
    /// A KMS key resource.
    pub fn kms_key(account_id: impl Into<String>, key_arn: impl Into<String>) -> Self {
        Self {
            account_id: account_id.into(),
            resource_type: KMS_KEY_RESOURCE_TYPE.to_owned(),
            arn: key_arn.into(),
        }
    }
}

/// `tlsDetails`: the client's TLS session.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TlsDetails {
    /// `TLSv1.3` or `TLSv1.2`.
    pub tls_version: String,
    /// IANA name of the cipher suite (`TLS_AES_128_GCM_SHA256`).
    pub cipher_suite: String,
    /// The SNI / Host the client asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_provided_host_header: Option<String>,
}

/// One audit event: what CloudTrail would record for the same call.
///
/// Build it with [`AuditEvent::api_call`] or [`AuditEvent::service_event`] and the `with_*`
/// methods; [`AuditEvent::with_request`] and [`AuditEvent::with_response`] run the raw KMS
/// JSON through the allow-lists in `redact`, so a caller never handles redaction itself. The
/// fields are public for readers (lookup, reports); writers should not set
/// `request_parameters` / `response_elements` by hand.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    /// [`EVENT_VERSION`].
    pub event_version: String,
    /// Who made the call.
    pub user_identity: UserIdentity,
    /// RFC 3339 UTC, whole seconds (`2026-01-31T12:00:00Z`), see [`format_event_time`].
    pub event_time: String,
    /// [`EVENT_SOURCE`].
    pub event_source: String,
    /// The operation (`Encrypt`) or service action (`RotateKey`).
    pub event_name: String,
    /// Region that served the call.
    pub aws_region: String,
    /// Client address (`AWS Internal` for service events).
    #[serde(rename = "sourceIPAddress")]
    pub source_ip_address: String,
    /// Client `User-Agent` (`AWS Internal` for service events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// Redacted request members (camelCase), `null` when none.
    #[serde(default)]
    pub request_parameters: Value,
    /// Redacted response members (camelCase), `null` when none or on failure.
    #[serde(default)]
    pub response_elements: Option<Value>,
    /// AWS error code (`AccessDeniedException`) when the call failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// Error message when the call failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// The request id returned to the client (absent for service events).
    #[serde(rename = "requestID", default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Unique id of this event.
    #[serde(rename = "eventID")]
    pub event_id: String,
    /// AWS's read/write classification, see [`read_only`].
    pub read_only: bool,
    /// The keys the call touched.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<Resource>,
    /// Call or service action.
    pub event_type: EventType,
    /// Account whose trail receives the event (the key owner).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_account_id: Option<String>,
    /// Always true: every KMS event is a management event.
    pub management_event: bool,
    /// [`EVENT_CATEGORY`].
    pub event_category: String,
    /// The client's TLS session (absent for service events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_details: Option<TlsDetails>,
}

impl AuditEvent {
    /// An API call event with everything CloudTrail always has; fill the rest with `with_*`.
    /// `event_id` and `request_id` come from the caller (the front generates UUIDs) so this
    /// stays deterministic.
    pub fn api_call(
        operation: &str,
        event_time: EpochMillis,
        region: &str,
        identity: UserIdentity,
        event_id: impl Into<String>,
        request_id: impl Into<String>,
    ) -> Self {
        Self {
            event_version: EVENT_VERSION.to_owned(),
            recipient_account_id: identity.account_id.clone(),
            user_identity: identity,
            event_time: format_event_time(event_time),
            event_source: EVENT_SOURCE.to_owned(),
            event_name: operation.to_owned(),
            aws_region: region.to_owned(),
            source_ip_address: String::new(),
            user_agent: None,
            request_parameters: Value::Null,
            response_elements: None,
            error_code: None,
            error_message: None,
            request_id: Some(request_id.into()),
            event_id: event_id.into(),
            read_only: read_only(operation),
            resources: Vec::new(),
            event_type: EventType::AwsApiCall,
            management_event: true,
            event_category: EVENT_CATEGORY.to_owned(),
            tls_details: None,
        }
    }

    /// A service event: the leader's own scheduled action (`RotateKey`, `DeleteKey`,
    /// `DeleteExpiredKeyMaterial`) on a key of `account_id`. Shaped like CloudTrail's: the
    /// identity is only the account plus `invokedBy: AWS Internal`, no request id, and
    /// `responseElements.keyId` names the key (CloudTrail does this for DeleteKey).
    pub fn service_event(
        event_name: &str,
        event_time: EpochMillis,
        region: &str,
        account_id: &str,
        key_arn: &str,
        event_id: impl Into<String>,
    ) -> Self {
        let identity = UserIdentity {
            account_id: Some(account_id.to_owned()),
            invoked_by: Some(AWS_INTERNAL.to_owned()),
            ..UserIdentity::default()
        };
        let mut event = Self::api_call(event_name, event_time, region, identity, event_id, "");
        event.request_id = None;
        event.event_type = EventType::AwsServiceEvent;
        event.read_only = false;
        event.source_ip_address = AWS_INTERNAL.to_owned();
        event.user_agent = Some(AWS_INTERNAL.to_owned());
        event.response_elements = Some(serde_json::json!({ "keyId": key_arn }));
        event.resources = vec![Resource::kms_key(account_id, key_arn)];
        event
    }

    /// Client address and `User-Agent`.
    pub fn with_source(mut self, ip: impl Into<String>, user_agent: Option<String>) -> Self {
        self.source_ip_address = ip.into();
        self.user_agent = user_agent;
        self
    }

    /// The raw KMS JSON request (PascalCase); only allow-listed members are kept
    /// ([`redact::request_parameters`]).
    pub fn with_request(mut self, request: &Value) -> Self {
        self.request_parameters = redact::request_parameters(&self.event_name, request);
        self
    }

    /// The raw KMS JSON response (PascalCase) of a successful call; only allow-listed members
    /// are kept ([`redact::response_elements`]).
    pub fn with_response(mut self, response: &Value) -> Self {
        self.response_elements = redact::response_elements(&self.event_name, response);
        self
    }

    /// The call failed with this AWS error code and message. Clears any response elements.
    pub fn with_error(mut self, code: impl Into<String>, message: impl Into<String>) -> Self {
        self.error_code = Some(code.into());
        self.error_message = Some(message.into());
        self.response_elements = None;
        self
    }

    /// Adds a KMS key the call touched to `resources`.
    pub fn with_key(mut self, account_id: impl Into<String>, key_arn: impl Into<String>) -> Self {
        self.resources.push(Resource::kms_key(account_id, key_arn));
        self
    }

    /// The account whose trail receives the event (defaults to the caller's account).
    pub fn with_recipient_account(mut self, account_id: impl Into<String>) -> Self {
        self.recipient_account_id = Some(account_id.into());
        self
    }

    /// The client's TLS session.
    pub fn with_tls(mut self, tls: TlsDetails) -> Self {
        self.tls_details = Some(tls);
        self
    }

    /// The event's JSON text: what [`super::ChainHead::append`] takes and the chain stores
    /// verbatim. Deterministic for equal events (struct order, and `serde_json` keeps maps
    /// sorted).
    pub fn to_json(&self) -> String {
        // Serializing plain structs and `Value`s cannot fail (all map keys are strings);
        // the fallback only keeps this function total.
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }

    /// Parses an event from its JSON text (the `event` of an [`super::AuditRecord`]).
    pub fn from_json(text: &str) -> Result<Self, AuditError> {
        serde_json::from_str(text).map_err(|e| AuditError::Event(e.to_string()))
    }
}

/// CloudTrail's `readOnly` for a KMS operation: true for Describe*/List*/Get* and for the
/// cryptographic operations (CloudTrail's KMS examples record Encrypt, Decrypt, GenerateDataKey
/// … with `"readOnly": true`: they change no resource), false for everything that changes a
/// key, alias, grant, policy or identity, and false for unknown names (the cautious answer:
/// a trail filtered on write events still sees them).
pub fn read_only(operation: &str) -> bool {
    const CRYPTO: &[&str] = &[
        "Encrypt",
        "Decrypt",
        "ReEncrypt",
        "GenerateDataKey",
        "GenerateDataKeyWithoutPlaintext",
        "GenerateDataKeyPair",
        "GenerateDataKeyPairWithoutPlaintext",
        "GenerateRandom",
        "Sign",
        "Verify",
        "GenerateMac",
        "VerifyMac",
        "DeriveSharedSecret",
    ];
    // `Lookup`: KeyraftAudit.LookupEvents, read-only as CloudTrail marks its own lookups.
    ["Describe", "List", "Get", "Lookup"]
        .iter()
        .any(|p| operation.starts_with(p) && operation.len() > p.len())
        || CRYPTO.contains(&operation)
}

/// Epoch millis -> CloudTrail's `eventTime`: RFC 3339 in UTC with whole seconds
/// (`2026-01-31T12:00:00Z`). Total over all of `u64` (far-future years just get more digits).
pub fn format_event_time(millis: EpochMillis) -> String {
    let secs = millis / 1000;
    let (y, m, d) = civil_from_days(secs / 86_400);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

// Howard Hinnant's civil_from_days (public domain), for non-negative day counts.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}
