//! The openraft type configuration and the log payload.

use std::fmt;

use keystore::command::{CommandOutput, Proposal};
use keystore::error::DomainError;
use serde::{Deserialize, Serialize};

/// What sits in a normal Raft log entry: a leader-stamped [`Proposal`] and, when the proposer
/// sent one, the [`RequestId`] of the logical proposal it belongs to.
///
/// The id lets the state machine apply each logical proposal once, however often the proposer
/// retried it (see `store::dedup`). On disk and on the wire this is the proposal's own JSON
/// (`{"now":..,"command":..}`) plus `"request_id"` when there is one, so entries written before
/// ids existed read back as `request_id: None` and a request without an id is byte-for-byte
/// the old format.
///
/// A struct of its own because openraft requires `Display` for log data, and because openraft
/// logs entries: both `Debug` and `Display` print only the command's kind, never its payload
/// (records carry wrapped material; fine on disk, noise in logs).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "RequestRepr")]
pub struct Request {
    /// The leader-stamped command.
    pub proposal: Proposal,
    /// The logical proposal this entry belongs to; `None` for proposals made without one (the
    /// leader's scheduler, entries written by older binaries).
    pub request_id: Option<RequestId>,
}

impl From<Proposal> for Request {
    fn from(proposal: Proposal) -> Self {
        Request {
            proposal,
            request_id: None,
        }
    }
}

impl Request {
    /// The command's variant name, e.g. `CreateKey`.
    pub fn kind(&self) -> &'static str {
        command_kind(&self.proposal.command)
    }
}

/// The serialized form of [`Request`]: the proposal's fields, inline, plus the optional id.
#[derive(Deserialize)]
struct RequestRepr {
    now: keystore::model::EpochMillis,
    command: keystore::command::Command,
    #[serde(default)]
    request_id: Option<RequestId>,
}

impl From<RequestRepr> for Request {
    fn from(r: RequestRepr) -> Self {
        Request {
            proposal: Proposal {
                now: r.now,
                command: r.command,
            },
            request_id: r.request_id,
        }
    }
}

impl Serialize for Request {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let n = if self.request_id.is_some() { 3 } else { 2 };
        let mut st = s.serialize_struct("Request", n)?;
        st.serialize_field("now", &self.proposal.now)?;
        st.serialize_field("command", &self.proposal.command)?;
        if let Some(id) = &self.request_id {
            st.serialize_field("request_id", id)?;
        }
        st.end()
    }
}

/// The id of one logical proposal: 128 random bits, made once per
/// [`crate::StoreClient::propose`] call and kept across its retries and across follower
/// forwarding. Serialized as 32 lowercase hex digits; on the gRPC wire as 16 big-endian bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u128);

impl RequestId {
    /// A fresh random id (from `keystore`'s CSPRNG: 2^-64 collision odds only after ~2^32 ids
    /// inside one deduplication window).
    pub fn random() -> Self {
        let bytes = keystore::crypto::random_secret(16);
        let mut b = [0u8; 16];
        b.copy_from_slice(bytes.expose_secret());
        RequestId(u128::from_be_bytes(b))
    }

    /// The gRPC form: 16 big-endian bytes.
    pub fn to_bytes(self) -> Vec<u8> {
        self.0.to_be_bytes().to_vec()
    }

    /// Parses the gRPC form: empty = no id, 16 bytes = an id, anything else is an error.
    pub fn from_bytes(b: &[u8]) -> Result<Option<Self>, String> {
        match b.len() {
            0 => Ok(None),
            16 => {
                let mut a = [0u8; 16];
                a.copy_from_slice(b);
                Ok(Some(RequestId(u128::from_be_bytes(a))))
            }
            n => Err(format!("request id must be 16 bytes, got {n}")),
        }
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl Serialize for RequestId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RequestId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.len() != 32 || !s.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(serde::de::Error::custom("request id must be 32 hex digits"));
        }
        u128::from_str_radix(&s, 16)
            .map(RequestId)
            .map_err(serde::de::Error::custom)
    }
}

/// The variant name of a command, for logs.
pub fn command_kind(c: &keystore::command::Command) -> &'static str {
    use keystore::command::Command as C;
    match c {
        C::CreateKey { .. } => "CreateKey",
        C::SetKeyEnabled { .. } => "SetKeyEnabled",
        C::UpdateKeyDescription { .. } => "UpdateKeyDescription",
        C::PutKeyPolicy { .. } => "PutKeyPolicy",
        C::ScheduleKeyDeletion { .. } => "ScheduleKeyDeletion",
        C::CancelKeyDeletion { .. } => "CancelKeyDeletion",
        C::DeleteDueKey { .. } => "DeleteDueKey",
        C::CreateAlias { .. } => "CreateAlias",
        C::UpdateAlias { .. } => "UpdateAlias",
        C::DeleteAlias { .. } => "DeleteAlias",
        C::TagResource { .. } => "TagResource",
        C::UntagResource { .. } => "UntagResource",
        C::PutIdentity { .. } => "PutIdentity",
        C::PutAccessKey { .. } => "PutAccessKey",
        C::EnableKeyRotation { .. } => "EnableKeyRotation",
        C::DisableKeyRotation { .. } => "DisableKeyRotation",
        C::PrepareNextMaterial { .. } => "PrepareNextMaterial",
        C::StartOnDemandRotation { .. } => "StartOnDemandRotation",
        C::RotateKey { .. } => "RotateKey",
        C::PutImportParameters { .. } => "PutImportParameters",
        C::ImportKeyMaterial { .. } => "ImportKeyMaterial",
        C::DeleteImportedKeyMaterial { .. } => "DeleteImportedKeyMaterial",
        C::ExpireImportedMaterial { .. } => "ExpireImportedMaterial",
        C::CreateGrant { .. } => "CreateGrant",
        C::RetireGrant { .. } => "RetireGrant",
        C::RevokeGrant { .. } => "RevokeGrant",
        C::DeleteIdentity { .. } => "DeleteIdentity",
        C::PutIdentityPolicy { .. } => "PutIdentityPolicy",
        C::DeleteIdentityPolicy { .. } => "DeleteIdentityPolicy",
        C::DeleteAccessKey { .. } => "DeleteAccessKey",
        C::AppendAudit { .. } => "AppendAudit",
        C::AppendDigest { .. } => "AppendDigest",
        C::MarkAuditExported { .. } => "MarkAuditExported",
        C::PruneAudit { .. } => "PruneAudit",
        C::ReplicateKey { .. } => "ReplicateKey",
        C::InstallReplica { .. } => "InstallReplica",
        C::AckReplication { .. } => "AckReplication",
        C::UpdatePrimaryRegion { .. } => "UpdatePrimaryRegion",
        C::RemoveReplicaRegion { .. } => "RemoveReplicaRegion",
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Request({}@{})", self.kind(), self.proposal.now)
    }
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// What applying a [`Request`] returns to its proposer.
pub type Response = Result<CommandOutput, DomainError>;

openraft::declare_raft_types!(
    /// keyraft's openraft type configuration: node ids are `u64`, nodes are `BasicNode`
    /// (`addr` = `host:port` of the node's gRPC endpoint).
    pub TypeConfig:
        D = Request,
        R = Response,
        NodeId = u64,
        Node = openraft::BasicNode,
);

/// A log entry of [`TypeConfig`].
pub type Entry = openraft::alias::EntryOf<TypeConfig>;
/// A log id of [`TypeConfig`].
pub type LogId = openraft::alias::LogIdOf<TypeConfig>;
/// A vote of [`TypeConfig`].
pub type Vote = openraft::alias::VoteOf<TypeConfig>;
/// Stored membership of [`TypeConfig`].
pub type StoredMembership = openraft::alias::StoredMembershipOf<TypeConfig>;
/// Snapshot metadata of [`TypeConfig`].
pub type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;
/// A snapshot: its meta and [`crate::store::SnapshotData`] (the stored state; the audit chain
/// is read from its tables only when the snapshot is sent).
pub type Snapshot = openraft::alias::SnapshotOf<TypeConfig, crate::store::SnapshotData>;
/// The openraft handle of a storage node.
pub type Raft = openraft::Raft<TypeConfig, crate::store::StateMachineStore>;

#[cfg(test)]
mod tests {
    use keystore::command::{Command, Proposal};
    use keystore::model::IdentityRecord;

    use super::{Request, RequestId};

    #[test]
    fn request_debug_and_display_show_only_the_command_kind() {
        let r = Request {
            proposal: Proposal {
                now: 42,
                command: Command::PutIdentity {
                    identity: IdentityRecord {
                        arn: "arn:aws:iam::111122223333:role/Secretive".into(),
                        account_id: "111122223333".into(),
                        admin: true,
                        ..Default::default()
                    },
                },
            },
            request_id: Some(RequestId(7)),
        };
        for s in [format!("{r:?}"), format!("{r}")] {
            assert_eq!(s, "Request(PutIdentity@42)");
        }
    }

    #[test]
    fn request_without_an_id_serializes_exactly_like_a_proposal() {
        let p = Proposal {
            now: 1,
            command: Command::CancelKeyDeletion { key_id: "k".into() },
        };
        assert_eq!(
            serde_json::to_string(&Request::from(p.clone())).unwrap(),
            serde_json::to_string(&p).unwrap()
        );
    }

    #[test]
    fn entries_written_before_request_ids_read_back_without_one() {
        let p = Proposal {
            now: 1,
            command: Command::CancelKeyDeletion { key_id: "k".into() },
        };
        let old = serde_json::to_vec(&p).unwrap();
        let r: Request = serde_json::from_slice(&old).unwrap();
        assert_eq!(r, Request::from(p));
    }

    #[test]
    fn request_id_round_trips_through_json_and_grpc_bytes() {
        let id = RequestId(0x0123_4567_89ab_cdef_0011_2233_4455_6677);
        let r = Request {
            proposal: Proposal {
                now: 3,
                command: Command::CancelKeyDeletion { key_id: "k".into() },
            },
            request_id: Some(id),
        };
        let json = serde_json::to_string(&r).unwrap();
        assert!(
            json.ends_with(r#","request_id":"0123456789abcdef0011223344556677"}"#),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<Request>(&json).unwrap(), r);
        assert_eq!(RequestId::from_bytes(&id.to_bytes()), Ok(Some(id)));
        assert_eq!(RequestId::from_bytes(&[]), Ok(None));
        assert!(RequestId::from_bytes(&[1, 2, 3]).is_err());
        assert!(serde_json::from_str::<RequestId>(r#""xyz""#).is_err());
        assert_ne!(RequestId::random(), RequestId::random());
    }
}

/// What a new storage node asks the leader when it joins a region (`RaftService.Join`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinRequest {
    /// The new node's id (not a current member's).
    pub node_id: u64,
    /// `host:port` peers reach it at.
    pub addr: String,
    /// Make it a voter once it caught up (else it stays a learner).
    pub voter: bool,
    /// A voter it replaces: removed from the membership in the same change.
    pub replaces: Option<u64>,
}

/// The leader's answer to a [`JoinRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinReply {
    /// The voters after the join.
    pub voters: Vec<u64>,
    /// The learners after the join.
    pub learners: Vec<u64>,
    /// Milliseconds from the request to the new node having caught up as a learner.
    pub caught_up_ms: u64,
}
