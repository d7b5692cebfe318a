//! Cluster backends: a keyraft region the harness can start, hurt and heal.
//!
//! The nemesis drives a backend from its own thread while the workload runs on tokio, so the
//! trait is synchronous: every method is a handful of process signals, `iptables` calls or a
//! file write, and blocking for them never stalls a client.
//!
//! # Layout
//!
//! ```text
//! mod.rs     Backend trait, NodeId, Link, ClusterStatus (the front's GET /status)
//! local.rs   LocalBackend: `keyraft dev --node-ips` bootstrap, then 3 `keyraft node` + 1
//!            `keyraft front` child processes; kill/pause via signals, partitions via an
//!            iptables chain of its own, clock skew via per-node offset files; with
//!            `regions: 2` a second such region (`keyraft dev --regions`) as its `peer`
//! docker.rs  DockerBackend: the deploy/docker compose project (3 nodes, 2 fronts), one
//!            project per run; docker kill/start/pause, iptables in each node's namespace
//! ```

pub mod docker;
pub mod local;

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use docker::{DockerBackend, DockerOptions};
pub use local::{LocalBackend, LocalOptions};

/// A storage node's Raft id (1, 2, 3, ...).
pub type NodeId = u64;

/// A network link between two storage nodes; cut in both directions.
pub type Link = (NodeId, NodeId);

/// One storage node as the front's `/status` reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    /// The store endpoint the front dialled.
    #[serde(default)]
    pub endpoint: String,
    /// Raft id, when the node answered.
    #[serde(default)]
    pub node_id: Option<NodeId>,
    /// The leader this node knows of.
    #[serde(default)]
    pub leader_id: Option<NodeId>,
    /// Current term.
    #[serde(default)]
    pub term: Option<u64>,
    /// Last applied log index.
    #[serde(default)]
    pub last_applied: Option<u64>,
    /// `Leader`, `Follower`, `Candidate`, ...
    #[serde(default)]
    pub state: Option<String>,
    /// SHA-256 of the state machine taken at `state_applied`.
    #[serde(default)]
    pub state_hash: Option<String>,
    /// Log index at which `state_hash` was taken.
    #[serde(default)]
    pub state_applied: Option<u64>,
    /// Why the front could not get this node's status.
    #[serde(default)]
    pub error: Option<String>,
}

/// The region's Raft view from the front (`GET /status`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    /// Region name.
    #[serde(default)]
    pub region: String,
    /// The node that reports itself leader, if any.
    #[serde(default)]
    pub leader_id: Option<NodeId>,
    /// Every configured node.
    #[serde(default)]
    pub nodes: Vec<NodeStatus>,
}

impl ClusterStatus {
    /// Every node answered, all with the same `stateApplied` and a hash: the replicas can be
    /// compared. Returns `(node, hash)` pairs then.
    pub fn comparable_hashes(&self) -> Option<Vec<(NodeId, String)>> {
        let mut applied = None;
        let mut out = Vec::new();
        for n in &self.nodes {
            let (Some(id), Some(hash), Some(at)) = (n.node_id, &n.state_hash, n.state_applied)
            else {
                return None;
            };
            if *applied.get_or_insert(at) != at {
                return None;
            }
            out.push((id, hash.clone()));
        }
        (!out.is_empty()).then_some(out)
    }
}

/// A keyraft region under test, and the means to hurt it.
///
/// Faults are idempotent and healable: [`Backend::heal_all`] must bring every node and the
/// front back, reconnect the network and zero the clocks whatever was done before.
pub trait Backend: Send + Sync {
    /// Short name for logs (`local`, ...).
    fn name(&self) -> &str;
    /// The `keyraft dev` env file the SDK reads (endpoints, CA, client certificate).
    fn env_file(&self) -> &Path;
    /// Every storage node, running or not.
    fn nodes(&self) -> Vec<NodeId>;
    /// SIGKILLs a storage node (no-op if it is down).
    fn kill(&self, node: NodeId) -> anyhow::Result<()>;
    /// Starts a storage node that is down (no-op if it runs).
    fn start(&self, node: NodeId) -> anyhow::Result<()>;
    /// SIGSTOPs a storage node: alive, connections open, but silent.
    fn pause(&self, node: NodeId) -> anyhow::Result<()>;
    /// SIGCONTs a paused node.
    fn resume(&self, node: NodeId) -> anyhow::Result<()>;
    /// Why partitions cannot be injected here, or `None` if they can.
    fn partitions_unavailable(&self) -> Option<String>;
    /// Drops all traffic on these links (both directions), in addition to any already cut.
    fn cut(&self, links: &[Link]) -> anyhow::Result<()>;
    /// Reconnects every link.
    fn heal_network(&self) -> anyhow::Result<()>;
    /// SIGKILLs the front (no-op if it is down).
    fn kill_front(&self) -> anyhow::Result<()>;
    /// Starts the front if it is down.
    fn start_front(&self) -> anyhow::Result<()>;
    /// Sets the offset, in milliseconds, added to the node's leader clock.
    fn set_clock_offset(&self, node: NodeId, offset_ms: i64) -> anyhow::Result<()>;
    /// The front's view of the cluster (fails while the front is down).
    fn status(&self, timeout: Duration) -> anyhow::Result<ClusterStatus>;

    /// The second region of a two-region run (multi-region keys), if one runs. The nemesis
    /// hurts this region's nodes only; the second region is cut off by
    /// [`Backend::cut_regions`] and healed with the rest.
    fn peer(&self) -> Option<&dyn Backend> {
        None
    }

    /// Why the fronts of the two regions cannot be cut apart, or `None` if they can.
    fn region_partition_unavailable(&self) -> Option<String> {
        match self.peer() {
            None => Some("one region only (run with --regions 2)".into()),
            Some(_) => self.partitions_unavailable(),
        }
    }

    /// Cuts the replication traffic between the regions' fronts, both ways (each front's
    /// deliveries to the other's replication endpoint), until [`Backend::heal_network`].
    fn cut_regions(&self) -> anyhow::Result<()> {
        anyhow::bail!(
            "region partitions unavailable: {}",
            self.region_partition_unavailable()
                .unwrap_or_else(|| "not implemented by this backend".into())
        )
    }

    /// Waits until the front answers `/status` with a leader every node acknowledges.
    fn wait_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = std::time::Instant::now() + timeout;
        let mut last = String::from("no answer yet");
        while std::time::Instant::now() < deadline {
            if crate::signals::interrupted() {
                anyhow::bail!("interrupted while waiting for the {} region", self.name());
            }
            match self.status(Duration::from_secs(4)) {
                Ok(s) => {
                    let leader = s.leader_id;
                    if leader.is_some()
                        && s.nodes.len() == self.nodes().len()
                        && s.nodes
                            .iter()
                            .all(|n| n.error.is_none() && n.leader_id == leader)
                    {
                        return Ok(());
                    }
                    last = format!("{s:?}");
                }
                Err(e) => last = format!("{e:#}"),
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        anyhow::bail!("{} region not ready after {timeout:?}: {last}", self.name())
    }

    /// The current leader, if the front can tell.
    fn leader(&self) -> Option<NodeId> {
        self.status(Duration::from_secs(4)).ok()?.leader_id
    }

    /// Undoes every fault: network, clocks, pauses, kills, front.
    fn heal_all(&self) -> anyhow::Result<()> {
        let mut first_err = None;
        let mut note = |r: anyhow::Result<()>| {
            if let Err(e) = r {
                first_err.get_or_insert(e);
            }
        };
        if self.partitions_unavailable().is_none() {
            note(self.heal_network());
        }
        for n in self.nodes() {
            note(self.set_clock_offset(n, 0));
            note(self.resume(n));
            note(self.start(n));
        }
        note(self.start_front());
        if let Some(peer) = self.peer() {
            note(peer.heal_all());
        }
        first_err.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(json: &str) -> ClusterStatus {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn status_parses_the_fronts_json_including_unreachable_nodes() {
        let s = status(
            r#"{"region":"us-east-1","leaderId":2,"nodes":[
                {"endpoint":"127.0.0.2:7411","nodeId":1,"leaderId":2,"term":3,"lastApplied":40,
                 "state":"Follower","stateHash":"aa","stateApplied":40},
                {"endpoint":"127.0.0.3:7412","error":"connect timeout"}]}"#,
        );
        assert_eq!(s.leader_id, Some(2));
        assert_eq!(s.nodes[0].state_hash.as_deref(), Some("aa"));
        assert_eq!(s.nodes[1].error.as_deref(), Some("connect timeout"));
        assert_eq!(
            s.comparable_hashes(),
            None,
            "an unreachable node has no hash"
        );
    }

    #[test]
    fn hashes_are_comparable_only_at_one_state_applied() {
        let node = |id: u64, hash: &str, at: u64| NodeStatus {
            node_id: Some(id),
            state_hash: Some(hash.into()),
            state_applied: Some(at),
            ..NodeStatus::default()
        };
        let mut s = ClusterStatus {
            nodes: vec![node(1, "a", 7), node(2, "b", 7)],
            ..ClusterStatus::default()
        };
        assert_eq!(
            s.comparable_hashes(),
            Some(vec![(1, "a".into()), (2, "b".into())]),
            "different hashes at one index are a finding, not a reason to wait"
        );
        s.nodes[1].state_applied = Some(8);
        assert_eq!(s.comparable_hashes(), None);
    }
}
