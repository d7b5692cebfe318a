//! The nemesis: on a schedule, pick one fault, hold it, heal; record every window.
//!
//! ```text
//! |-- quiet (interval - hold) --|== fault (hold) ==|-- quiet --|== fault ==| ... final heal
//! ```
//!
//! Faults are dealt like cards (see [`Schedule`]): each round holds every enabled [`Family`]
//! once, in random order, and each family deals its [`Fault`]s once per round of its own, in
//! random order except that a kill round opens with [`Fault::KillLeader`]. So a one-minute run
//! with every family (six faults at the default interval) sees each family and at least one
//! leader kill, whose recovery time the runner measures. Killing one node or a minority that
//! happens to hold the leader counts as a leader kill too.
//! Every fault is healed with [`Backend::heal_all`], which is idempotent, so a heal never
//! depends on remembering exactly what was done. Runs on its own thread: the backend is
//! synchronous (signals, iptables, files).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::backend::{Backend, Link, NodeId};
use crate::history::{FaultWindow, Recorder};

/// A class of faults, as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    /// SIGKILL storage nodes (one, the leader, a minority, all), restart them on heal.
    Kill,
    /// SIGSTOP a node (one, the leader), SIGCONT on heal.
    Pause,
    /// Network partitions between storage nodes (iptables).
    Partition,
    /// Skew the nodes' leader clocks.
    Clock,
    /// SIGKILL the front and start it again.
    FrontRestart,
    /// Two regions: cut the fronts of one region from the other's replication endpoint,
    /// both ways (multi-region keys stop replicating until the heal).
    RegionPartition,
}

impl Family {
    /// Every family (`all`; the runner drops `region-partition` when one region runs).
    pub const ALL: [Family; 6] = [
        Family::Kill,
        Family::Pause,
        Family::Partition,
        Family::Clock,
        Family::FrontRestart,
        Family::RegionPartition,
    ];

    /// Command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Family::Kill => "kill",
            Family::Pause => "pause",
            Family::Partition => "partition",
            Family::Clock => "clock",
            Family::FrontRestart => "front-restart",
            Family::RegionPartition => "region-partition",
        }
    }

    /// Parses `all`, `none` or a comma-separated list of family names.
    pub fn parse_list(s: &str) -> anyhow::Result<Vec<Family>> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "all" => out.extend(Family::ALL),
                "none" => {}
                _ => match Family::ALL.iter().find(|f| f.name() == part) {
                    Some(f) => out.push(*f),
                    None => anyhow::bail!(
                        "unknown nemesis {part:?} (expected all, none or a list of kill, \
                         pause, partition, clock, front-restart, region-partition)"
                    ),
                },
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// The faults of this family.
    pub fn faults(self) -> &'static [Fault] {
        match self {
            Family::Kill => &[
                Fault::KillOne,
                Fault::KillLeader,
                Fault::KillMinority,
                Fault::KillAll,
            ],
            Family::Pause => &[Fault::PauseOne, Fault::PauseLeader],
            Family::Partition => &[
                Fault::IsolateOne,
                Fault::IsolateLeader,
                Fault::MajorityMinority,
                Fault::Bridge,
                Fault::Ring,
            ],
            Family::Clock => &[Fault::Clock],
            Family::FrontRestart => &[Fault::FrontRestart],
            Family::RegionPartition => &[Fault::RegionPartition],
        }
    }
}

/// One kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// Kill a random node.
    KillOne,
    /// Kill the current leader (recovery time is measured from here).
    KillLeader,
    /// Kill a random minority.
    KillMinority,
    /// Kill every node.
    KillAll,
    /// Pause a random node.
    PauseOne,
    /// Pause the leader.
    PauseLeader,
    /// Cut one random node off from the others.
    IsolateOne,
    /// Cut the leader off from the others.
    IsolateLeader,
    /// Split into a random majority and minority.
    MajorityMinority,
    /// Two halves that only reach each other through one bridge node.
    Bridge,
    /// Each node reaches only its two ring neighbours (a bridge on three nodes).
    Ring,
    /// Random leader-clock offsets on every node.
    Clock,
    /// Kill the front and start it again.
    FrontRestart,
    /// Cut replication between the two regions' fronts.
    RegionPartition,
}

/// Scheduling knobs.
#[derive(Debug, Clone)]
pub struct NemesisConfig {
    /// Enabled families (partition is dropped by the runner when unavailable).
    pub families: Vec<Family>,
    /// Time from one fault's start to the next one's.
    pub interval: Duration,
    /// How long each fault is held before healing.
    pub hold: Duration,
    /// Largest clock offset, in milliseconds, either way.
    pub clock_skew_ms: i64,
}

impl Default for NemesisConfig {
    fn default() -> Self {
        NemesisConfig {
            families: Family::ALL.to_vec(),
            interval: Duration::from_secs(10),
            hold: Duration::from_secs(5),
            clock_skew_ms: 10_000,
        }
    }
}

/// A leader kill, for recovery-time measurement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderKill {
    /// History time of the kill (ns).
    pub at: u64,
    /// The node killed.
    pub node: NodeId,
}

/// What the nemesis did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NemesisLog {
    /// Every fault window, in order.
    pub faults: Vec<FaultWindow>,
    /// Kills of a known leader.
    pub leader_kills: Vec<LeaderKill>,
    /// Faults injected, by kind (`kill-leader`, `partition-bridge`, ...).
    pub counts: BTreeMap<String, usize>,
    /// Faults or heals that could not be carried out.
    pub errors: Vec<String>,
}

/// Shared between the nemesis thread and the progress line.
#[derive(Debug, Default)]
pub struct NemesisState {
    /// Set to end the schedule (then the final heal runs).
    pub stop: AtomicBool,
    /// The fault being held, if any.
    pub current: Mutex<Option<String>>,
    /// History times of leader kills so far (for the recovery probe).
    pub leader_kills: Mutex<Vec<u64>>,
}

impl NemesisState {
    /// The fault being held, for progress lines.
    pub fn current(&self) -> Option<String> {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Leader kills so far (history times, ns).
    pub fn leader_kills(&self) -> Vec<u64> {
        self.leader_kills
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_current(&self, v: Option<String>) {
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = v;
    }
}

/// Runs the schedule until `state.stop` is set, then heals everything. Blocking.
pub fn run(
    backend: &dyn Backend,
    cfg: &NemesisConfig,
    recorder: &Recorder,
    state: &NemesisState,
) -> NemesisLog {
    let mut log = NemesisLog::default();
    let mut rng = rand::thread_rng();
    let quiet = cfg.interval.saturating_sub(cfg.hold);
    let mut schedule = Schedule::new(&cfg.families);
    while !cfg.families.is_empty() {
        if !sleep_unless_stopped(quiet, &state.stop) {
            break;
        }
        let Some(fault) = schedule.next(&mut rng) else {
            break;
        };
        let start = recorder.now();
        let kills_before = log.leader_kills.len();
        let injected = inject(backend, fault, cfg, recorder, &mut rng, &mut log);
        if let Some(k) = log.leader_kills.get(kills_before) {
            state
                .leader_kills
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(k.at);
        }
        let name = match injected {
            Ok(name) => name,
            Err(e) => {
                log.errors.push(format!("{fault:?}: {e:#}"));
                format!("{fault:?} (failed)")
            }
        };
        *log.counts.entry(kind_name(fault).to_owned()).or_default() += 1;
        state.set_current(Some(name.clone()));
        if fault == Fault::FrontRestart {
            // A restart, not an outage: down for a moment, then starting up during the hold.
            std::thread::sleep(Duration::from_secs(1).min(cfg.hold));
            if let Err(e) = backend.start_front() {
                log.errors.push(format!("restarting the front: {e:#}"));
            }
        }
        sleep_unless_stopped(cfg.hold, &state.stop);
        if let Err(e) = backend.heal_all() {
            log.errors.push(format!("healing {name}: {e:#}"));
        }
        state.set_current(None);
        log.faults.push(FaultWindow {
            start,
            end: recorder.now(),
            name,
        });
    }
    if let Err(e) = backend.heal_all() {
        log.errors.push(format!("final heal: {e:#}"));
    }
    log
}

/// Deals faults: every family once per round, every fault of a family once per round of that
/// family; a kill round starts with a leader kill.
#[derive(Debug, Clone)]
pub struct Schedule {
    families: Vec<Family>,
    round: Vec<Family>,
    decks: BTreeMap<Family, Vec<Fault>>,
}

impl Schedule {
    /// A schedule over the enabled families.
    pub fn new(families: &[Family]) -> Self {
        Schedule {
            families: families.to_vec(),
            round: Vec::new(),
            decks: BTreeMap::new(),
        }
    }

    /// The next fault (`None` when no family is enabled).
    pub fn next(&mut self, rng: &mut impl Rng) -> Option<Fault> {
        if self.round.is_empty() {
            self.round = self.families.clone();
            self.round.shuffle(rng);
        }
        let family = self.round.pop()?;
        let deck = self.decks.entry(family).or_default();
        if deck.is_empty() {
            deck.extend_from_slice(family.faults());
            deck.shuffle(rng);
            // Dealt from the back: the leader kill goes first.
            if let Some(i) = deck.iter().position(|f| *f == Fault::KillLeader) {
                let last = deck.len() - 1;
                deck.swap(i, last);
            }
        }
        deck.pop()
    }
}

/// Sleeps `d` in small steps; false if `stop` was set.
fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) -> bool {
    let until = Instant::now() + d;
    while Instant::now() < until {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50).min(until - Instant::now()));
    }
    !stop.load(Ordering::Relaxed)
}

fn kind_name(fault: Fault) -> &'static str {
    match fault {
        Fault::KillOne => "kill-one",
        Fault::KillLeader => "kill-leader",
        Fault::KillMinority => "kill-minority",
        Fault::KillAll => "kill-all",
        Fault::PauseOne => "pause-one",
        Fault::PauseLeader => "pause-leader",
        Fault::IsolateOne => "partition-isolate-one",
        Fault::IsolateLeader => "partition-isolate-leader",
        Fault::MajorityMinority => "partition-majority-minority",
        Fault::Bridge => "partition-bridge",
        Fault::Ring => "partition-ring",
        Fault::Clock => "clock",
        Fault::FrontRestart => "front-restart",
        Fault::RegionPartition => "region-partition",
    }
}

fn set(nodes: &[NodeId]) -> String {
    let names: Vec<String> = nodes.iter().map(|n| format!("n{n}")).collect();
    format!("{{{}}}", names.join(","))
}

/// Injects one fault; returns the window's name.
fn inject(
    backend: &dyn Backend,
    fault: Fault,
    cfg: &NemesisConfig,
    recorder: &Recorder,
    rng: &mut impl Rng,
    log: &mut NemesisLog,
) -> anyhow::Result<String> {
    let mut nodes = backend.nodes();
    nodes.shuffle(rng);
    let random = nodes[0];
    let leader_or_random = |what: &str| match backend.leader() {
        Some(l) => (l, format!("{what} n{l}")),
        None => (random, format!("{what} n{random} (leader unknown)")),
    };
    let minority = (nodes.len() - 1) / 2;
    Ok(match fault {
        Fault::KillOne => {
            let leader = backend.leader();
            let at = recorder.now();
            backend.kill(random)?;
            if leader == Some(random) {
                log.leader_kills.push(LeaderKill { at, node: random });
                format!("kill n{random} (leader)")
            } else {
                format!("kill n{random}")
            }
        }
        Fault::KillLeader => {
            let leader = backend.leader();
            let node = leader.unwrap_or(random);
            let at = recorder.now();
            backend.kill(node)?;
            match leader {
                Some(_) => {
                    log.leader_kills.push(LeaderKill { at, node });
                    format!("kill-leader n{node}")
                }
                None => format!("kill-leader n{node} (leader unknown)"),
            }
        }
        Fault::KillMinority => {
            let victims = &nodes[..minority.max(1)];
            let leader = backend.leader().filter(|l| victims.contains(l));
            let at = recorder.now();
            for &n in victims {
                backend.kill(n)?;
            }
            match leader {
                Some(node) => {
                    log.leader_kills.push(LeaderKill { at, node });
                    format!("kill-minority {} (leader n{node})", set(victims))
                }
                None => format!("kill-minority {}", set(victims)),
            }
        }
        Fault::KillAll => {
            for &n in &nodes {
                backend.kill(n)?;
            }
            "kill-all".to_owned()
        }
        Fault::PauseOne => {
            backend.pause(random)?;
            format!("pause n{random}")
        }
        Fault::PauseLeader => {
            let (node, name) = leader_or_random("pause-leader");
            backend.pause(node)?;
            name
        }
        Fault::IsolateOne | Fault::IsolateLeader => {
            let (node, name) = if fault == Fault::IsolateLeader {
                leader_or_random("partition isolate-leader")
            } else {
                (random, format!("partition isolate n{random}"))
            };
            let rest: Vec<NodeId> = nodes.iter().copied().filter(|&n| n != node).collect();
            backend.cut(&across(&[node], &rest))?;
            name
        }
        Fault::MajorityMinority => {
            let (small, big) = nodes.split_at(minority.max(1));
            backend.cut(&across(small, big))?;
            format!("partition majority {} | minority {}", set(big), set(small))
        }
        Fault::Bridge => bridge(backend, &nodes)?,
        Fault::Ring => {
            // Neighbours in the shuffled order stay connected; every other pair is cut.
            let n = nodes.len();
            let mut links = Vec::new();
            for i in 0..n {
                for j in i + 1..n {
                    let adjacent = j == i + 1 || (i == 0 && j == n - 1);
                    if !adjacent {
                        links.push((nodes[i], nodes[j]));
                    }
                }
            }
            if links.is_empty() {
                bridge(backend, &nodes)?
            } else {
                backend.cut(&links)?;
                format!("partition ring {}", set(&nodes))
            }
        }
        Fault::Clock => {
            let mut parts = Vec::new();
            let mut sorted = nodes.clone();
            sorted.sort();
            for n in sorted {
                let offset = rng.gen_range(-cfg.clock_skew_ms..=cfg.clock_skew_ms);
                backend.set_clock_offset(n, offset)?;
                parts.push(format!("n{n}:{offset:+}ms"));
            }
            format!("clock {}", parts.join(" "))
        }
        Fault::FrontRestart => {
            backend.kill_front()?;
            "front-restart".to_owned()
        }
        Fault::RegionPartition => {
            backend.cut_regions()?;
            match backend.peer() {
                Some(peer) => format!("region-partition {} | {}", backend.name(), peer.name()),
                None => "region-partition".to_owned(),
            }
        }
    })
}

/// Two halves connected only through `nodes[0]`.
fn bridge(backend: &dyn Backend, nodes: &[NodeId]) -> anyhow::Result<String> {
    let (bridge, rest) = nodes.split_first().expect("nodes");
    let (a, b) = rest.split_at(rest.len() / 2);
    backend.cut(&across(a, b))?;
    Ok(format!(
        "partition bridge {} <-> {} via n{bridge}",
        set(a),
        set(b)
    ))
}

/// Every link between a node of `a` and a node of `b`.
pub fn across(a: &[NodeId], b: &[NodeId]) -> Vec<Link> {
    a.iter()
        .flat_map(|&x| b.iter().map(move |&y| (x, y)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn family_lists_parse_all_none_and_names() {
        assert_eq!(Family::parse_list("all").unwrap(), Family::ALL.to_vec());
        assert!(Family::parse_list("none").unwrap().is_empty());
        assert_eq!(
            Family::parse_list("partition,kill,kill").unwrap(),
            vec![Family::Kill, Family::Partition]
        );
        assert!(Family::parse_list("kil").is_err());
    }

    #[test]
    fn every_family_comes_once_per_round_and_kill_rounds_open_with_the_leader() {
        let mut rng = rand::thread_rng();
        for _ in 0..50 {
            let mut s = Schedule::new(&Family::ALL);
            let round: Vec<Fault> = (0..Family::ALL.len())
                .map(|_| s.next(&mut rng).unwrap())
                .collect();
            for family in Family::ALL {
                let dealt: Vec<&Fault> = round
                    .iter()
                    .filter(|f| family.faults().contains(f))
                    .collect();
                assert_eq!(dealt.len(), 1, "{family:?} once per round: {round:?}");
            }
            assert!(round.contains(&Fault::KillLeader), "{round:?}");
        }
        let mut kills = Schedule::new(&[Family::Kill]);
        let dealt: Vec<Fault> = (0..8).map(|_| kills.next(&mut rng).unwrap()).collect();
        assert_eq!(dealt[0], Fault::KillLeader);
        assert_eq!(dealt[4], Fault::KillLeader);
        assert!(Schedule::new(&[]).next(&mut rng).is_none());
    }

    #[test]
    fn across_cuts_every_pair_between_the_sides() {
        assert_eq!(across(&[1], &[2, 3]), vec![(1, 2), (1, 3)]);
        assert!(across(&[], &[2, 3]).is_empty());
    }
}
