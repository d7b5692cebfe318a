//! The audit trail (`proto/kms/v1/audit.proto`, service `Audit`): CloudTrail-style lookup of
//! the caller's account's events, and — for the region's administrators — the raw hash chain
//! and its signed digests, for export and offline verification. One fluent builder per
//! operation, like the KMS calls.
//!
//! ```no_run
//! # async fn demo() -> Result<(), client::Error> {
//! let kms = client::Client::from_env()?;
//! let page = kms
//!     .lookup_events()
//!     .lookup_attribute("EventName", "Decrypt")
//!     .max_results(20)
//!     .send()
//!     .await?;
//! for e in &page.events {
//!     println!("{} {} {:?}", e.event_time, e.event_name, e.username);
//! }
//! // Region administrators only: the chain exactly as stored, 1000 records at a time.
//! let records = kms.get_audit_records().from_seq(1).send().await?;
//! let digests = kms.get_audit_digests().from_seq(1).send().await?;
//! # let _ = (records, digests); Ok(()) }
//! ```

use crate::client::Client;
use crate::error::Error;
use crate::proto;

macro_rules! audit_setter {
    (opt_f64 $field:ident) => {
        #[doc = concat!("Sets `", stringify!($field), "`.")]
        pub fn $field(mut self, v: f64) -> Self {
            self.req.$field = Some(v);
            self
        }
    };
    (opt_i32 $field:ident) => {
        #[doc = concat!("Sets `", stringify!($field), "`.")]
        pub fn $field(mut self, v: i32) -> Self {
            self.req.$field = Some(v);
            self
        }
    };
    (opt_u64 $field:ident) => {
        #[doc = concat!("Sets `", stringify!($field), "`.")]
        pub fn $field(mut self, v: u64) -> Self {
            self.req.$field = Some(v);
            self
        }
    };
    (u64 $field:ident) => {
        #[doc = concat!("Sets `", stringify!($field), "`.")]
        pub fn $field(mut self, v: u64) -> Self {
            self.req.$field = v;
            self
        }
    };
    (opt_string $field:ident) => {
        #[doc = concat!("Sets `", stringify!($field), "`.")]
        pub fn $field(mut self, v: impl Into<String>) -> Self {
            self.req.$field = Some(v.into());
            self
        }
    };
}

macro_rules! audit_operations {
    ($(
        $(#[$doc:meta])*
        $method:ident => $builder:ident, $op:literal, $req:ident -> $resp:ident {
            $( $kind:ident $field:ident ; )*
        }
    )*) => {$(
        #[doc = concat!("Builder for the `", $op, "` operation; see [`Client::",
                        stringify!($method), "`].")]
        #[must_use = "a request does nothing until `.send().await`"]
        #[derive(Debug)]
        pub struct $builder {
            client: Client,
            req: proto::$req,
        }

        impl $builder {
            $( audit_setter!($kind $field); )*

            /// The request as it would be sent.
            pub fn as_request(&self) -> &proto::$req {
                &self.req
            }

            #[doc = concat!("Sends the `", $op, "` request, with failover and retries.")]
            pub async fn send(self) -> Result<proto::$resp, Error> {
                self.client
                    .call_audit($op, self.req, |mut rpc, req| async move {
                        rpc.$method(req).await
                    })
                    .await
            }
        }

        impl Client {
            $(#[$doc])*
            pub fn $method(&self) -> $builder {
                $builder {
                    client: self.clone(),
                    req: Default::default(),
                }
            }
        }
    )*};
}

audit_operations! {
    /// The caller's account's audit events, newest first, optionally in a time window and
    /// filtered by one attribute (`LookupEvents`; needs `audit:LookupEvents`). A page may be
    /// short or empty and still carry a `next_token`.
    lookup_events => LookupEventsFluentBuilder, "LookupEvents",
        LookupEventsRequest -> LookupEventsResponse {
        opt_f64 start_time;
        opt_f64 end_time;
        opt_i32 max_results;
        opt_string next_token;
    }

    /// One page (at most 1000) of the region's raw hash chain, exactly as stored, with the
    /// head and retention marks (`GetAuditRecords`; region administrators only).
    get_audit_records => GetAuditRecordsFluentBuilder, "GetAuditRecords",
        GetAuditRecordsRequest -> GetAuditRecordsResponse {
        opt_u64 from_seq;
        opt_i32 max_records;
    }

    /// One page of the region's signed digests, by digest seq or by the record seq a range
    /// starts at (`GetAuditDigests`; region administrators only).
    get_audit_digests => GetAuditDigestsFluentBuilder, "GetAuditDigests",
        GetAuditDigestsRequest -> GetAuditDigestsResponse {
        opt_u64 from_digest_seq;
        opt_u64 from_seq;
        opt_i32 max_results;
    }

    /// Records up to `through_seq` are exported durably and may be pruned by retention; the
    /// seq must be covered by a signed digest (`MarkAuditExported`; region administrators
    /// only).
    mark_audit_exported => MarkAuditExportedFluentBuilder, "MarkAuditExported",
        MarkAuditExportedRequest -> MarkAuditExportedResponse {
        u64 through_seq;
    }
}

impl LookupEventsFluentBuilder {
    /// Filters on one attribute: `EventName`, `ResourceName` (key ARN or id), `Username`
    /// (principal ARN), `EventId`, `ReadOnly` (`"true"`/`"false"`) or `ErrorCode`. The
    /// service accepts at most one.
    pub fn lookup_attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.req.lookup_attributes.push(proto::LookupAttribute {
            attribute_key: key.into(),
            attribute_value: value.into(),
        });
        self
    }
}

impl proto::AuditRecord {
    /// The record as `keyraft_audit` (= `keystore::audit`) verifies it.
    pub fn to_record(&self) -> keyraft_audit::AuditRecord {
        keyraft_audit::AuditRecord {
            seq: self.seq,
            prev_hash: self.prev_hash.clone(),
            event: self.event.clone(),
            hash: self.hash.clone(),
        }
    }
}

impl proto::DigestRecord {
    /// The digest as `keyraft_audit` (= `keystore::audit`) verifies it.
    pub fn to_digest(&self) -> keyraft_audit::DigestRecord {
        keyraft_audit::DigestRecord {
            digest_seq: self.digest_seq,
            region: self.region.clone(),
            from_seq: self.from_seq,
            to_seq: self.to_seq,
            head_hash: self.head_hash.clone(),
            previous_digest_signature: self.previous_digest_signature.clone(),
            signed_at: self.signed_at,
            key_id: self.key_id.clone(),
            signature: self.signature.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn builders_fill_the_request() {
        let kms = Client::builder()
            .endpoint("http://127.0.0.1:1")
            .build()
            .unwrap();
        let b = kms
            .lookup_events()
            .lookup_attribute("EventName", "Decrypt")
            .start_time(10.0)
            .max_results(5);
        let r = b.as_request();
        assert_eq!(r.lookup_attributes.len(), 1);
        assert_eq!(r.lookup_attributes[0].attribute_value, "Decrypt");
        assert_eq!((r.start_time, r.max_results), (Some(10.0), Some(5)));
        let m = kms.mark_audit_exported().through_seq(42);
        assert_eq!(m.as_request().through_seq, 42);
        let d = kms.get_audit_digests().from_seq(7);
        assert_eq!(d.as_request().from_seq, Some(7));
    }

    #[test]
    fn records_convert_field_for_field() {
        let r = proto::AuditRecord {
            seq: 9,
            prev_hash: "p".into(),
            hash: "h".into(),
            event: "{}".into(),
        };
        let k = r.to_record();
        assert_eq!(
            (k.seq, k.prev_hash, k.hash, k.event),
            (9, "p".into(), "h".into(), "{}".into())
        );
    }
}
