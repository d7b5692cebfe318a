//! GetKeyLastUsage: when a key was last used for a successful cryptographic operation,
//! answered from the marks the audit sink attaches to each batch (`keystore::usage`).
//!
//! A child module of `ops`, so it shares `Kms`'s private plumbing (resolve, authorize) without
//! widening it.
//!
//! # Data flow
//!
//! ```text
//!  successful Encrypt/Decrypt/... --AuditSink (usage_marks)--> AppendAudit { events, usage }
//!      --apply--> State.key_last_usage (newest per key) + AuditLog.usage_tracking_start
//!  GetKeyLastUsage --resolve (key id / ARN only) --authorize kms:GetKeyLastUsage-->
//!      Query::GetKeyLastUsage (linearizable) --> response
//! ```

use serde::{Deserialize, Serialize};

use super::*;

/// `GetKeyLastUsageRequest`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetKeyLastUsageRequest {
    /// Key id or key ARN (aliases are refused, as AWS documents).
    #[serde(default)]
    pub key_id: Option<String>,
}

/// `KeyLastUsageData`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyLastUsageData {
    /// The operation (`KeyLastUsageTrackingOperation`: `Encrypt`, `Decrypt`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// When (the audit event's time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<EpochSeconds>,
    /// The audit event's `eventID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_trail_event_id: Option<String>,
    /// The call's request id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_request_id: Option<String>,
}

/// `GetKeyLastUsageResponse`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetKeyLastUsageResponse {
    /// The key id (not the ARN: AWS calls it "the globally unique identifier").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// Absent when the key has not been used since `TrackingStartDate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_last_usage: Option<KeyLastUsageData>,
    /// The later of the key's creation and the region's tracking start; absent only while
    /// the region has not started tracking (no batch with usage marks applied yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking_start_date: Option<EpochSeconds>,
    /// When the key was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_creation_date: Option<EpochSeconds>,
}

impl Kms {
    /// GetKeyLastUsage. Works in every key state (it reads no material).
    pub async fn get_key_last_usage(
        &self,
        caller: &Caller,
        req: GetKeyLastUsageRequest,
    ) -> Result<GetKeyLastUsageResponse, KmsError> {
        let key = self
            .resolve(caller, &require(req.key_id, "KeyId")?, MANAGEMENT)
            .await?;
        self.authorize_key(
            caller,
            Operation::GetKeyLastUsage.action(),
            &key,
            Facts::none(),
        )
        .await?;
        let q = Query::GetKeyLastUsage {
            key_id: key.key_id.clone(),
        };
        let (last_usage, tracking_start) = match self.store.query(q).await? {
            QueryOutput::KeyLastUsage {
                last_usage,
                tracking_start,
            } => (last_usage, tracking_start),
            _ => return Err(KmsError::internal()),
        };
        Ok(GetKeyLastUsageResponse {
            key_id: Some(key.key_id.clone()),
            key_last_usage: last_usage.map(|m| KeyLastUsageData {
                operation: Some(m.operation.as_str().to_string()),
                timestamp: Some(epoch_seconds(m.at)),
                cloud_trail_event_id: Some(m.event_id),
                kms_request_id: Some(m.request_id).filter(|r| !r.is_empty()),
            }),
            tracking_start_date: tracking_start
                .map(|start| epoch_seconds(start.max(key.creation_date))),
            key_creation_date: Some(epoch_seconds(key.creation_date)),
        })
    }
}
