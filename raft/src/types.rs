//! The openraft type configuration and the log payload.

use std::fmt;

use keystore::command::{CommandOutput, Proposal};
use keystore::error::DomainError;
use serde::{Deserialize, Serialize};

/// What sits in a normal Raft log entry: a leader-stamped [`Proposal`].
///
/// A newtype because openraft requires `Display` for log data, and because openraft logs
/// entries: both `Debug` and `Display` print only the command's kind, never its payload
/// (records carry wrapped material; fine on disk, noise in logs).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Request(pub Proposal);

impl Request {
    /// The command's variant name, e.g. `CreateKey`.
    pub fn kind(&self) -> &'static str {
        command_kind(&self.0.command)
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
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Request({}@{})", self.kind(), self.0.now)
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
/// A snapshot whose data is the serialized state (serde_json of `keystore::model::State`).
pub type Snapshot = openraft::alias::SnapshotOf<TypeConfig, Vec<u8>>;
/// The openraft handle of a storage node.
pub type Raft = openraft::Raft<TypeConfig, crate::store::StateMachineStore>;

#[cfg(test)]
mod tests {
    use keystore::command::{Command, Proposal};
    use keystore::model::IdentityRecord;

    use super::Request;

    #[test]
    fn request_debug_and_display_show_only_the_command_kind() {
        let r = Request(Proposal {
            now: 42,
            command: Command::PutIdentity {
                identity: IdentityRecord {
                    arn: "arn:aws:iam::111122223333:role/Secretive".into(),
                    account_id: "111122223333".into(),
                    admin: true,
                    ..Default::default()
                },
            },
        });
        for s in [format!("{r:?}"), format!("{r}")] {
            assert_eq!(s, "Request(PutIdentity@42)");
        }
    }

    #[test]
    fn request_serializes_exactly_like_a_proposal() {
        let p = Proposal {
            now: 1,
            command: Command::CancelKeyDeletion { key_id: "k".into() },
        };
        assert_eq!(
            serde_json::to_string(&Request(p.clone())).unwrap(),
            serde_json::to_string(&p).unwrap()
        );
    }
}
