//! The region-wide audit chain operations (`KeyraftAudit.GetAuditRecords`,
//! `GetAuditDigests`, `MarkAuditExported`, also on gRPC `keyraft.kms.v1.Audit`): the raw hash
//! chain and its signed digests, for export and offline verification by the region's
//! operators.
//!
//! # Layout
//!
//! ```text
//! Kms::authorize_region_operator   no service calls -> authorize_account("audit:<Op>")
//!                                  -> the caller's identity record must be `admin`
//! Kms::get_audit_records           validate -> authorize -> head + retention -> one page
//! Kms::get_audit_digests           validate -> authorize -> (by record seq: binary search
//!                                  over digest seqs) -> one page
//! Kms::mark_audit_exported         validate (covered by a digest) -> authorize
//!                                  -> propose MarkAuditExported -> retention
//! ```
//!
//! # Why region-wide callers only
//!
//! The chain links every account's events: a record can only be verified together with its
//! neighbours, so it cannot be filtered per account the way LookupEvents is. These operations
//! are therefore for the region's operators: an identity whose record says `admin` (set by
//! whoever runs the region, never through the API) *and* whose policies allow the action.
//! Records and digests go out exactly as stored, so that what is verified is what was signed.

use keystore::audit::{AuditRecord, DigestRecord};
use serde::{Deserialize, Serialize};

use super::*;

/// Largest (and default) page of records or digests; the store's page limit.
pub const MAX_AUDIT_PAGE: i64 = 1000;

/// `GetAuditRecordsRequest`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetAuditRecordsRequest {
    /// First seq wanted (default: the first retained record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_seq: Option<i64>,
    /// Page size (1..=1000, default 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_records: Option<i64>,
}

/// One chain record exactly as stored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AuditRecordShape {
    /// Position in the chain, from 1.
    pub seq: u64,
    /// Lowercase hex of the previous record's hash.
    pub prev_hash: String,
    /// Lowercase hex of this record's hash.
    pub hash: String,
    /// The event's JSON text, verbatim.
    pub event: String,
}

impl From<AuditRecord> for AuditRecordShape {
    fn from(r: AuditRecord) -> Self {
        AuditRecordShape {
            seq: r.seq,
            prev_hash: r.prev_hash,
            hash: r.hash,
            event: r.event,
        }
    }
}

/// `GetAuditRecordsResponse`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetAuditRecordsResponse {
    /// Consecutive records from the requested seq on.
    pub records: Vec<AuditRecordShape>,
    /// Seq of the newest record (0 for an empty chain).
    pub head_seq: u64,
    /// Seq of the oldest record still stored.
    pub first_retained_seq: u64,
    /// Every record up to this seq has been marked exported (0 = none).
    pub exported_through_seq: u64,
    /// The next page's `FromSeq`; absent once the page reached the head.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_seq: Option<u64>,
}

/// `GetAuditDigestsRequest`: by digest seq, or by the record seq a range starts at.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetAuditDigestsRequest {
    /// First digest wanted by its digest seq (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_digest_seq: Option<i64>,
    /// Or: start at the first digest whose range ends at `FromSeq - 1` or later (the digest
    /// anchoring a range that starts at `FromSeq`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_seq: Option<i64>,
    /// Page size (1..=1000, default 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_results: Option<i64>,
}

/// One signed digest exactly as stored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DigestShape {
    /// Position in the digest chain, from 1.
    pub digest_seq: u64,
    /// The region whose chain it covers.
    pub region: String,
    /// First record seq covered.
    pub from_seq: u64,
    /// Last record seq covered (inclusive).
    pub to_seq: u64,
    /// Lowercase hex chain hash at `to_seq`.
    pub head_hash: String,
    /// The previous digest's signature (absent for the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_digest_signature: Option<String>,
    /// Epoch millis.
    pub signed_at: u64,
    /// The audit key that signed it.
    pub key_id: String,
    /// Base64 Ed25519 signature.
    pub signature: String,
}

impl From<DigestRecord> for DigestShape {
    fn from(d: DigestRecord) -> Self {
        DigestShape {
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
}

/// `GetAuditDigestsResponse`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetAuditDigestsResponse {
    /// Digests in digest seq order.
    pub digests: Vec<DigestShape>,
    /// The next page's `FromDigestSeq`; absent once the page reached the newest digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_digest_seq: Option<u64>,
}

/// `MarkAuditExportedRequest`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct MarkAuditExportedRequest {
    /// Every record up to this seq has been exported durably.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub through_seq: Option<i64>,
}

/// `MarkAuditExportedResponse`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MarkAuditExportedResponse {
    /// Where the export mark stands now (it never decreases).
    pub exported_through_seq: u64,
}

fn page_size(member: &str, v: Option<i64>) -> Result<u32, KmsError> {
    let n = v.unwrap_or(MAX_AUDIT_PAGE);
    if !(1..=MAX_AUDIT_PAGE).contains(&n) {
        return Err(KmsError::Validation(format!(
            "1 validation error detected: Value '{n}' at '{member}' failed to satisfy \
             constraint: Member must have value between 1 and {MAX_AUDIT_PAGE}"
        )));
    }
    Ok(n as u32)
}

fn seq_member(member: &str, v: Option<i64>) -> Result<Option<u64>, KmsError> {
    match v {
        None => Ok(None),
        Some(n) if n >= 1 => Ok(Some(n as u64)),
        Some(n) => Err(KmsError::Validation(format!(
            "1 validation error detected: Value '{n}' at '{member}' failed to satisfy \
             constraint: Member must have value greater than or equal to 1"
        ))),
    }
}

impl Kms {
    /// The check every region-wide audit operation makes: a direct call (no service acting
    /// for someone), allowed by policy, by an identity marked `admin`.
    async fn authorize_region_operator(
        &self,
        caller: &Caller,
        op: AuditOperation,
    ) -> Result<(), KmsError> {
        let action = op.action();
        let who = caller
            .service_principal
            .as_deref()
            .unwrap_or(&caller.principal_arn);
        if caller.via_service.is_some() || caller.service_principal.is_some() {
            return Err(KmsError::AccessDenied(format!(
                "User: {who} is not authorized to perform: {action} through a service"
            )));
        }
        self.authorize_account(caller, action, Facts::none())
            .await?;
        let identity = self
            .cache
            .identity(&self.store, &caller.principal_arn)
            .await?;
        let admin = identity.is_some_and(|i| i.admin && i.account_id == caller.account_id);
        if !admin {
            return Err(KmsError::AccessDenied(format!(
                "User: {who} is not authorized to perform: {action} on resource: * because \
                 the audit chain is region-wide and only the region's administrators may read \
                 or mark it"
            )));
        }
        Ok(())
    }

    /// (exported_through, pruned_through) of the region's chain.
    async fn audit_retention(&self) -> Result<(u64, u64), KmsError> {
        match self.store.query(Query::AuditRetention).await? {
            QueryOutput::AuditRetention {
                exported_through,
                pruned_through,
            } => Ok((exported_through, pruned_through)),
            _ => Err(KmsError::internal()),
        }
    }

    /// GetAuditRecords: one page of the raw chain, as stored.
    pub async fn get_audit_records(
        &self,
        caller: &Caller,
        req: GetAuditRecordsRequest,
    ) -> Result<GetAuditRecordsResponse, KmsError> {
        let limit = page_size("maxRecords", req.max_records)?;
        let from = seq_member("fromSeq", req.from_seq)?;
        self.authorize_region_operator(caller, AuditOperation::GetAuditRecords)
            .await?;
        let (head, _) = self.store.audit_head().await?;
        let (exported_through, pruned_through) = self.audit_retention().await?;
        let first_retained_seq = pruned_through.saturating_add(1);
        let head_seq = head.last_seq();
        let from = from.unwrap_or(first_retained_seq).max(1);
        let records = if from > head_seq {
            vec![]
        } else {
            self.store.audit_records(from, limit).await?
        };
        // Only what the head read vouched for: a record appended meanwhile waits for the
        // next page, so HeadSeq and the page agree.
        let records: Vec<AuditRecordShape> = records
            .into_iter()
            .take_while(|r| r.seq <= head_seq)
            .map(Into::into)
            .collect();
        let next_seq = records
            .last()
            .map(|r| r.seq.saturating_add(1))
            .filter(|n| *n <= head_seq);
        Ok(GetAuditRecordsResponse {
            records,
            head_seq,
            first_retained_seq,
            exported_through_seq: exported_through,
            next_seq,
        })
    }

    /// GetAuditDigests: one page of signed digests, as stored.
    pub async fn get_audit_digests(
        &self,
        caller: &Caller,
        req: GetAuditDigestsRequest,
    ) -> Result<GetAuditDigestsResponse, KmsError> {
        let limit = page_size("maxResults", req.max_results)?;
        let from_digest = seq_member("fromDigestSeq", req.from_digest_seq)?;
        let from_seq = seq_member("fromSeq", req.from_seq)?;
        if from_digest.is_some() && from_seq.is_some() {
            return Err(KmsError::Validation(
                "FromDigestSeq and FromSeq are mutually exclusive".into(),
            ));
        }
        self.authorize_region_operator(caller, AuditOperation::GetAuditDigests)
            .await?;
        let (_, newest) = self.store.audit_head().await?;
        let Some(newest) = newest else {
            return Ok(GetAuditDigestsResponse::default());
        };
        let start = match (from_digest, from_seq) {
            (Some(d), _) => d,
            (None, Some(seq)) => self.first_digest_reaching(seq - 1, &newest).await?,
            (None, None) => 1,
        };
        if start > newest.digest_seq {
            return Ok(GetAuditDigestsResponse::default());
        }
        let digests: Vec<DigestShape> = self
            .store
            .audit_digests(start, limit)
            .await?
            .into_iter()
            .take_while(|d| d.digest_seq <= newest.digest_seq)
            .map(Into::into)
            .collect();
        let next_digest_seq = digests
            .last()
            .map(|d| d.digest_seq.saturating_add(1))
            .filter(|n| *n <= newest.digest_seq);
        Ok(GetAuditDigestsResponse {
            digests,
            next_digest_seq,
        })
    }

    /// The smallest digest seq whose digest covers up to `to_seq` or further (`to_seq` of
    /// digests never decreases along the digest chain); one past `newest` when none does.
    async fn first_digest_reaching(
        &self,
        to_seq: u64,
        newest: &DigestRecord,
    ) -> Result<u64, KmsError> {
        if newest.to_seq < to_seq {
            return Ok(newest.digest_seq.saturating_add(1));
        }
        // Invariant: the answer is in lo..=hi, and hi qualifies.
        let (mut lo, mut hi) = (1u64, newest.digest_seq);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            // The first stored digest at or after `mid` (older ones may be pruned).
            match self.store.audit_digests(mid, 1).await?.into_iter().next() {
                Some(d) if d.digest_seq <= hi && d.to_seq >= to_seq => hi = d.digest_seq,
                Some(d) if d.digest_seq <= hi => lo = d.digest_seq.saturating_add(1),
                _ => lo = hi,
            }
        }
        Ok(hi)
    }

    /// MarkAuditExported: records up to `ThroughSeq` are safely exported (retention may prune
    /// them). The seq must be covered by a signed digest, so that what is pruned can still be
    /// verified from the export.
    pub async fn mark_audit_exported(
        &self,
        caller: &Caller,
        req: MarkAuditExportedRequest,
    ) -> Result<MarkAuditExportedResponse, KmsError> {
        let Some(through) = seq_member("throughSeq", req.through_seq)? else {
            return Err(KmsError::Validation(
                "1 validation error detected: Value null at 'throughSeq' failed to satisfy \
                 constraint: Member must not be null"
                    .into(),
            ));
        };
        self.authorize_region_operator(caller, AuditOperation::MarkAuditExported)
            .await?;
        let (_, newest) = self.store.audit_head().await?;
        let covered = newest.map_or(0, |d| d.to_seq);
        if through > covered {
            return Err(KmsError::Validation(format!(
                "ThroughSeq {through} is not covered by a signed digest yet (the newest digest \
                 covers records up to {covered}); export again after the next digest"
            )));
        }
        self.propose(Command::MarkAuditExported {
            through_seq: through,
        })
        .await?;
        let (exported_through, _) = self.audit_retention().await?;
        Ok(MarkAuditExportedResponse {
            exported_through_seq: exported_through,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::front::testing::{self, ACCOUNT, ADMIN, APP, OTHER_ROOT};

    fn caller(arn: &str) -> Caller {
        Caller::from_principal_arn(arn).unwrap()
    }

    const ALLOW_AUDIT: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"audit:*","Resource":"*"}]}"#;

    async fn append(kms: &Kms, n: usize) {
        let events = (0..n).map(|i| format!("{{\"n\":{i}}}")).collect();
        kms.store
            .propose(Command::AppendAudit {
                events,
                usage: None,
            })
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn only_admin_identities_allowed_by_policy_read_the_chain() {
        let (kms, _node) = testing::kms().await;
        append(&kms, 3).await;
        // App may do audit:* by policy, but it is no region administrator.
        kms.store
            .propose(Command::PutIdentityPolicy {
                arn: APP.into(),
                name: "audit".into(),
                document: ALLOW_AUDIT.into(),
            })
            .await
            .unwrap();
        let page = kms
            .get_audit_records(&caller(ADMIN), GetAuditRecordsRequest::default())
            .await
            .unwrap();
        assert_eq!(page.records.len(), 3);
        assert_eq!((page.head_seq, page.first_retained_seq), (3, 1));
        assert_eq!(page.records[0].seq, 1);
        assert!(page.records[0].prev_hash.chars().all(|c| c == '0'));
        assert_eq!(page.next_seq, None);
        for who in [
            APP,
            OTHER_ROOT,
            &format!("arn:aws:iam::{ACCOUNT}:user/nobody"),
        ] {
            let e = kms
                .get_audit_records(&caller(who), GetAuditRecordsRequest::default())
                .await
                .unwrap_err();
            assert_eq!(e.aws_type(), "AccessDeniedException", "{who}");
            let e = kms
                .mark_audit_exported(
                    &caller(who),
                    MarkAuditExportedRequest {
                        through_seq: Some(1),
                    },
                )
                .await
                .unwrap_err();
            assert_eq!(e.aws_type(), "AccessDeniedException", "{who}");
        }
        let mut via = caller(ADMIN);
        via.via_service = Some("s3.us-east-1.amazonaws.com".into());
        let e = kms
            .get_audit_digests(&via, GetAuditDigestsRequest::default())
            .await
            .unwrap_err();
        assert_eq!(e.aws_type(), "AccessDeniedException");
    }

    #[tokio::test]
    async fn an_explicit_deny_wins_over_admin() {
        let (kms, _node) = testing::kms().await;
        let deny = ALLOW_AUDIT.replace("Allow", "Deny");
        kms.store
            .propose(Command::PutIdentityPolicy {
                arn: ADMIN.into(),
                name: "no-audit".into(),
                document: deny,
            })
            .await
            .unwrap();
        let e = kms
            .get_audit_records(&caller(ADMIN), GetAuditRecordsRequest::default())
            .await
            .unwrap_err();
        assert_eq!(e.aws_type(), "AccessDeniedException");
    }

    #[tokio::test]
    async fn pages_follow_next_seq_and_bad_input_is_a_validation_error() {
        let (kms, _node) = testing::kms().await;
        append(&kms, 5).await;
        let admin = caller(ADMIN);
        let page = kms
            .get_audit_records(
                &admin,
                GetAuditRecordsRequest {
                    from_seq: Some(2),
                    max_records: Some(2),
                },
            )
            .await
            .unwrap();
        let seqs: Vec<u64> = page.records.iter().map(|r| r.seq).collect();
        assert_eq!((seqs, page.next_seq), (vec![2, 3], Some(4)));
        let past = kms
            .get_audit_records(
                &admin,
                GetAuditRecordsRequest {
                    from_seq: Some(99),
                    max_records: None,
                },
            )
            .await
            .unwrap();
        assert!(past.records.is_empty() && past.next_seq.is_none());
        for body in [
            r#"{"MaxRecords":0}"#,
            r#"{"MaxRecords":1001}"#,
            r#"{"FromSeq":-1}"#,
        ] {
            let e = kms
                .dispatch_audit(&admin, AuditOperation::GetAuditRecords, body.as_bytes())
                .await
                .unwrap_err();
            assert_eq!(e.aws_type(), "ValidationException", "{body}");
        }
        for body in [
            r#"{}"#,
            r#"{"ThroughSeq":0}"#,
            // No digest covers anything yet (no audit key on this node).
            r#"{"ThroughSeq":3}"#,
        ] {
            let e = kms
                .dispatch_audit(&admin, AuditOperation::MarkAuditExported, body.as_bytes())
                .await
                .unwrap_err();
            assert_eq!(e.aws_type(), "ValidationException", "{body}");
        }
        let e = kms
            .dispatch_audit(
                &admin,
                AuditOperation::GetAuditDigests,
                br#"{"FromSeq":1,"FromDigestSeq":1}"#,
            )
            .await
            .unwrap_err();
        assert_eq!(e.aws_type(), "ValidationException");
        let e = kms
            .dispatch_audit(
                &admin,
                AuditOperation::GetAuditRecords,
                br#"{"FromSeq":"x"}"#,
            )
            .await
            .unwrap_err();
        assert_eq!(e.aws_type(), "SerializationException");
        // No digests without an audit key: an empty page, not an error.
        let d = kms
            .get_audit_digests(&admin, GetAuditDigestsRequest::default())
            .await
            .unwrap();
        assert!(d.digests.is_empty());
    }

    #[test]
    fn page_sizes_are_validated_in_aws_shape() {
        assert_eq!(page_size("maxRecords", None).unwrap(), 1000);
        assert_eq!(page_size("maxRecords", Some(1)).unwrap(), 1);
        for bad in [0, -1, 1001] {
            let e = page_size("maxRecords", Some(bad)).unwrap_err();
            assert_eq!(e.aws_type(), "ValidationException", "{bad}");
        }
    }

    #[test]
    fn seqs_start_at_one() {
        assert_eq!(seq_member("fromSeq", None).unwrap(), None);
        assert_eq!(seq_member("fromSeq", Some(7)).unwrap(), Some(7));
        assert_eq!(
            seq_member("fromSeq", Some(0)).unwrap_err().aws_type(),
            "ValidationException"
        );
    }

    #[test]
    fn records_and_digests_keep_every_stored_field() {
        let r = AuditRecord {
            seq: 3,
            prev_hash: "aa".into(),
            event: "{}".into(),
            hash: "bb".into(),
        };
        let shape = AuditRecordShape::from(r.clone());
        assert_eq!(
            (shape.seq, shape.prev_hash, shape.event, shape.hash),
            (r.seq, r.prev_hash, r.event, r.hash)
        );
        let json = serde_json::to_value(GetAuditDigestsResponse {
            digests: vec![DigestShape {
                digest_seq: 2,
                previous_digest_signature: Some("sig".into()),
                ..Default::default()
            }],
            next_digest_seq: None,
        })
        .unwrap();
        assert_eq!(json["Digests"][0]["PreviousDigestSignature"], "sig");
        assert!(json.get("NextDigestSeq").is_none());
    }
}
