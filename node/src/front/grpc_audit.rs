//! The gRPC `Audit` service (`proto/kms/v1/audit.proto`) over the audit operations of [`Kms`]
//! (`front/audit_lookup.rs`, `front/audit_export.rs`). Callers authenticate exactly as on the
//! `Kms` service (client certificate, optional on-behalf-of metadata), every call is audited
//! like all calls, and empty strings mean absent, as there.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::pb;
use super::pb::audit_server::{Audit as AuditService, AuditServer};
use super::{GrpcKms, MAX_MESSAGE};
use crate::front::ops::{
    AuditRecordShape, DigestShape, GetAuditDigestsRequest, GetAuditRecordsRequest, LookupAttribute,
    LookupEvent, LookupEventsRequest, MarkAuditExportedRequest,
};
use crate::front::{Kms, KmsError};

/// The tonic service, for embedding in a server next to the `Kms` service.
pub fn service(kms: Arc<Kms>) -> AuditServer<GrpcAudit> {
    AuditServer::new(GrpcAudit(GrpcKms { kms }))
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE)
}

/// Implements the generated `Audit` trait over [`Kms`].
pub struct GrpcAudit(GrpcKms);

/// A proto `uint64` -> the shape's signed member; one beyond `i64` is out of any valid range
/// and becomes a `ValidationException` there rather than wrapping around.
fn seq(v: Option<u64>) -> Option<i64> {
    v.map(|n| i64::try_from(n).unwrap_or(i64::MAX))
}

fn lookup_request(req: pb::LookupEventsRequest) -> Result<LookupEventsRequest, KmsError> {
    Ok(LookupEventsRequest {
        start_time: req.start_time,
        end_time: req.end_time,
        lookup_attributes: (!req.lookup_attributes.is_empty()).then(|| {
            req.lookup_attributes
                .into_iter()
                .map(|a| LookupAttribute {
                    attribute_key: (!a.attribute_key.is_empty()).then_some(a.attribute_key),
                    attribute_value: (!a.attribute_value.is_empty()).then_some(a.attribute_value),
                })
                .collect()
        }),
        max_results: req.max_results.map(i64::from),
        next_token: req.next_token.filter(|t| !t.is_empty()),
    })
}

fn lookup_event(e: LookupEvent) -> pb::LookupEvent {
    pb::LookupEvent {
        event_id: e.event_id,
        event_name: e.event_name,
        read_only: e.read_only == "true",
        access_key_id: e.access_key_id,
        event_time: e.event_time,
        event_source: e.event_source,
        username: e.username,
        resources: e
            .resources
            .into_iter()
            .map(|r| pb::LookupResource {
                resource_type: r.resource_type,
                resource_name: r.resource_name,
            })
            .collect(),
        cloud_trail_event: e.cloud_trail_event,
    }
}

fn record(r: AuditRecordShape) -> pb::AuditRecord {
    pb::AuditRecord {
        seq: r.seq,
        prev_hash: r.prev_hash,
        hash: r.hash,
        event: r.event,
    }
}

fn digest(d: DigestShape) -> pb::DigestRecord {
    pb::DigestRecord {
        digest_seq: d.digest_seq,
        region: d.region,
        from_seq: d.from_seq,
        to_seq: d.to_seq,
        head_hash: d.head_hash,
        previous_digest_signature: d.previous_digest_signature,
        signed_at: d.signed_at,
        key_id: d.key_id,
        signature: d.signature,
    }
}

#[tonic::async_trait]
impl AuditService for GrpcAudit {
    async fn lookup_events(
        &self,
        request: Request<pb::LookupEventsRequest>,
    ) -> Result<Response<pb::LookupEventsResponse>, Status> {
        self.0
            .audited(
                "LookupEvents",
                request,
                lookup_request,
                |kms, caller, req| async move { kms.lookup_events(&caller, req).await },
                |out| pb::LookupEventsResponse {
                    events: out.events.into_iter().map(lookup_event).collect(),
                    next_token: out.next_token,
                },
            )
            .await
    }

    async fn get_audit_records(
        &self,
        request: Request<pb::GetAuditRecordsRequest>,
    ) -> Result<Response<pb::GetAuditRecordsResponse>, Status> {
        self.0
            .audited(
                "GetAuditRecords",
                request,
                |req| {
                    Ok(GetAuditRecordsRequest {
                        from_seq: seq(req.from_seq),
                        max_records: req.max_records.map(i64::from),
                    })
                },
                |kms, caller, req| async move { kms.get_audit_records(&caller, req).await },
                |out| pb::GetAuditRecordsResponse {
                    records: out.records.into_iter().map(record).collect(),
                    head_seq: out.head_seq,
                    first_retained_seq: out.first_retained_seq,
                    exported_through_seq: out.exported_through_seq,
                    next_seq: out.next_seq,
                },
            )
            .await
    }

    async fn get_audit_digests(
        &self,
        request: Request<pb::GetAuditDigestsRequest>,
    ) -> Result<Response<pb::GetAuditDigestsResponse>, Status> {
        self.0
            .audited(
                "GetAuditDigests",
                request,
                |req| {
                    Ok(GetAuditDigestsRequest {
                        from_digest_seq: seq(req.from_digest_seq),
                        from_seq: seq(req.from_seq),
                        max_results: req.max_results.map(i64::from),
                    })
                },
                |kms, caller, req| async move { kms.get_audit_digests(&caller, req).await },
                |out| pb::GetAuditDigestsResponse {
                    digests: out.digests.into_iter().map(digest).collect(),
                    next_digest_seq: out.next_digest_seq,
                },
            )
            .await
    }

    async fn mark_audit_exported(
        &self,
        request: Request<pb::MarkAuditExportedRequest>,
    ) -> Result<Response<pb::MarkAuditExportedResponse>, Status> {
        self.0
            .audited(
                "MarkAuditExported",
                request,
                // proto3 cannot tell 0 from absent: 0 is "Value null", as on the JSON side.
                |req| {
                    Ok(MarkAuditExportedRequest {
                        through_seq: seq(Some(req.through_seq).filter(|n| *n != 0)),
                    })
                },
                |kms, caller, req| async move { kms.mark_audit_exported(&caller, req).await },
                |out| pb::MarkAuditExportedResponse {
                    exported_through_seq: out.exported_through_seq,
                },
            )
            .await
    }
}
