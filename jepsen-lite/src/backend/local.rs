//! The local backend: one region on loopback, every role a child process of the harness.
//!
//! ```text
//! start:  keyraft dev --dir D --node-ips --port-base P ...   PKI, domain key, identities,
//!           wait for D/env, SIGTERM it                          D/node-N.toml, D/front.toml
//!         node-N.toml += danger_clock_offset_file = D/clock/node-N.ms
//!         keyraft node --config D/node-N.toml   x3   (node N on 127.0.0.(N+1))
//!         keyraft front --config D/front.toml         (127.0.0.1: JSON on P, gRPC on P+1)
//! faults: SIGKILL / respawn, SIGSTOP / SIGCONT, iptables chain KEYRAFT-JL-<pid>-<port base>
//!         hooked into INPUT, offset files
//! drop:   SIGKILL every child, delete the chain
//! ```
//!
//! `--node-ips` makes each node bind its outgoing connections to its own address, so rules on
//! `-s A -d B` (and the region's node ports) cut exactly the link between two nodes.
//!
//! Two regions (`regions: 2`, for multi-region keys): the bootstrap is `keyraft dev --regions
//! us-east-1,us-west-2`, which lays out region B in D/us-west-2 with ports P+20.. (its nodes
//! on the same 127.0.0.x addresses, on their own ports), trust files naming each other's
//! front, and one CA. Region B runs as this backend's [`Backend::peer`], a `LocalBackend` of
//! its own. Both fronts listen on 127.0.0.1 and deliver to each other's JSON port from
//! 127.0.0.1; the SDK clients use the gRPC ports, and the harness's `/status` polls come from
//! 127.0.0.250 in this mode, so the region partition (drop 127.0.0.1 -> 127.0.0.1 on the two
//! JSON ports, both directions) cuts exactly the replication traffic.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::{Backend, ClusterStatus, Link, NodeId};

/// How to start a [`LocalBackend`].
#[derive(Debug, Clone)]
pub struct LocalOptions {
    /// Working directory for PKI, configs, data and logs (created; should be empty).
    pub dir: PathBuf,
    /// The `keyraft` binary.
    pub keyraft_bin: PathBuf,
    /// First port; `None` picks a free range in 2000–9999.
    pub port_base: Option<u16>,
    /// The nodes' storage backend (`redb` or `sled`), passed to `keyraft dev --storage`.
    pub storage: String,
    /// How long bootstrap and first readiness may take.
    pub startup_timeout: Duration,
    /// 1, or 2 for a second region (multi-region keys) as the backend's peer.
    pub regions: u8,
}

impl LocalOptions {
    /// Defaults for a directory and a binary.
    pub fn new(dir: impl Into<PathBuf>, keyraft_bin: impl Into<PathBuf>) -> Self {
        LocalOptions {
            dir: dir.into(),
            keyraft_bin: keyraft_bin.into(),
            port_base: None,
            storage: "redb".into(),
            startup_timeout: Duration::from_secs(120),
            regions: 1,
        }
    }
}

/// Storage nodes per region in the local backend.
const NODES: u64 = 3;

/// Region names of a two-region run (region A is the primary's region).
pub const REGIONS: [&str; 2] = ["us-east-1", "us-west-2"];
/// Region B's ports start this far above region A's (as `keyraft dev --regions` lays them out).
const REGION_B_PORT_OFFSET: u16 = 20;
/// Where the harness's `/status` polls come from when two regions run (see the module docs).
const STATUS_SOURCE: &str = "127.0.0.250";

/// The children this backend owns.
#[derive(Default)]
struct Procs {
    nodes: BTreeMap<NodeId, Child>,
    paused: BTreeSet<NodeId>,
    front: Option<Child>,
}

/// A region of `keyraft` processes on this machine.
pub struct LocalBackend {
    name: String,
    dir: PathBuf,
    bin: PathBuf,
    port_base: u16,
    env_file: PathBuf,
    procs: Mutex<Procs>,
    firewall: Result<Firewall, String>,
    /// Source address of the `/status` polls (two regions only).
    status_source: Option<&'static str>,
    /// Region B of a two-region run.
    peer: Option<Box<LocalBackend>>,
}

impl LocalBackend {
    /// Bootstraps a region in `opts.dir` (two with `opts.regions == 2`), starts every role and
    /// waits until each front reports a leader that every node agrees on.
    pub fn start(opts: &LocalOptions) -> anyhow::Result<LocalBackend> {
        if !(1..=2).contains(&opts.regions) {
            bail!(
                "the local backend runs 1 or 2 regions, not {}",
                opts.regions
            );
        }
        let two = opts.regions == 2;
        fs::create_dir_all(&opts.dir)
            .with_context(|| format!("creating {}", opts.dir.display()))?;
        let dir = fs::canonicalize(&opts.dir)?;
        if !opts.keyraft_bin.is_file() {
            bail!(
                "keyraft binary not found at {} (build it with `cargo build -p keyraft-node`, \
                 or pass --keyraft-bin / KEYRAFT_BIN)",
                opts.keyraft_bin.display()
            );
        }
        let port_base = match opts.port_base {
            Some(p) => p,
            None => free_port_base(two)?,
        };
        bootstrap(
            &dir,
            &opts.keyraft_bin,
            port_base,
            &opts.storage,
            opts.startup_timeout,
            two,
        )?;
        let peer = if two {
            let b = Self::launch(
                format!("local {}", REGIONS[1]),
                &dir.join(REGIONS[1]),
                &opts.keyraft_bin,
                port_base + REGION_B_PORT_OFFSET,
                opts.startup_timeout,
                Some(STATUS_SOURCE),
            )?;
            Some(Box::new(b))
        } else {
            None
        };
        let mut backend = Self::launch(
            if two {
                format!("local {}", REGIONS[0])
            } else {
                "local".into()
            },
            &dir,
            &opts.keyraft_bin,
            port_base,
            opts.startup_timeout,
            two.then_some(STATUS_SOURCE),
        )?;
        backend.peer = peer;
        Ok(backend)
    }

    /// Starts the nodes and the front of a region `keyraft dev` laid out in `dir`.
    fn launch(
        name: String,
        dir: &Path,
        bin: &Path,
        port_base: u16,
        startup_timeout: Duration,
        status_source: Option<&'static str>,
    ) -> anyhow::Result<LocalBackend> {
        fs::create_dir_all(dir.join("clock"))?;
        fs::create_dir_all(dir.join("logs"))?;
        for n in 1..=NODES {
            let offset_file = clock_file(dir, n);
            fs::write(&offset_file, "0\n")?;
            // A top-level key must precede the [tls] table: prepend it.
            let config = dir.join(format!("node-{n}.toml"));
            let text = fs::read_to_string(&config)
                .with_context(|| format!("reading {}", config.display()))?;
            if !text.contains("danger_clock_offset_file") {
                fs::write(
                    &config,
                    format!(
                        "danger_clock_offset_file = \"{}\"\n{text}",
                        offset_file.display()
                    ),
                )?;
            }
        }
        let backend = LocalBackend {
            name,
            env_file: dir.join("env"),
            dir: dir.to_owned(),
            bin: bin.to_owned(),
            port_base,
            procs: Mutex::new(Procs::default()),
            firewall: Firewall::new(port_base),
            status_source,
            peer: None,
        };
        for n in 1..=NODES {
            backend.start(n)?;
        }
        backend.start_front()?;
        backend
            .wait_ready(startup_timeout)
            .with_context(|| format!("region in {}", dir.display()))?;
        Ok(backend)
    }

    /// The working directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// First port of the region (AWS JSON; gRPC is +1).
    pub fn port_base(&self) -> u16 {
        self.port_base
    }

    fn procs(&self) -> std::sync::MutexGuard<'_, Procs> {
        self.procs.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn spawn(&self, role: &str, config: &Path, log: &str) -> anyhow::Result<Child> {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("logs").join(log))?;
        Command::new(&self.bin)
            .arg(role)
            .arg("--config")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting keyraft {role}"))
    }
}

impl Backend for LocalBackend {
    fn name(&self) -> &str {
        &self.name
    }

    fn env_file(&self) -> &Path {
        &self.env_file
    }

    fn nodes(&self) -> Vec<NodeId> {
        (1..=NODES).collect()
    }

    fn kill(&self, node: NodeId) -> anyhow::Result<()> {
        let mut procs = self.procs();
        procs.paused.remove(&node);
        if let Some(mut child) = procs.nodes.remove(&node) {
            // SIGKILL also ends a stopped process.
            let _ = child.kill();
            child.wait()?;
        }
        Ok(())
    }

    fn start(&self, node: NodeId) -> anyhow::Result<()> {
        let mut procs = self.procs();
        if let Some(child) = procs.nodes.get_mut(&node) {
            if child.try_wait()?.is_none() {
                return Ok(());
            }
        }
        let child = self.spawn(
            "node",
            &self.dir.join(format!("node-{node}.toml")),
            &format!("jl-node-{node}.log"),
        )?;
        procs.paused.remove(&node);
        procs.nodes.insert(node, child);
        Ok(())
    }

    fn pause(&self, node: NodeId) -> anyhow::Result<()> {
        let mut procs = self.procs();
        let Some(child) = procs.nodes.get(&node) else {
            return Ok(());
        };
        signal(child.id(), "-STOP")?;
        procs.paused.insert(node);
        Ok(())
    }

    fn resume(&self, node: NodeId) -> anyhow::Result<()> {
        let mut procs = self.procs();
        if procs.paused.remove(&node) {
            if let Some(child) = procs.nodes.get(&node) {
                signal(child.id(), "-CONT")?;
            }
        }
        Ok(())
    }

    fn partitions_unavailable(&self) -> Option<String> {
        self.firewall.as_ref().err().cloned()
    }

    fn cut(&self, links: &[Link]) -> anyhow::Result<()> {
        match &self.firewall {
            Ok(fw) => fw.cut(links),
            Err(why) => bail!("partitions unavailable: {why}"),
        }
    }

    fn heal_network(&self) -> anyhow::Result<()> {
        match &self.firewall {
            Ok(fw) => fw.flush(),
            Err(_) => Ok(()),
        }
    }

    fn kill_front(&self) -> anyhow::Result<()> {
        if let Some(mut child) = self.procs().front.take() {
            let _ = child.kill();
            child.wait()?;
        }
        Ok(())
    }

    fn start_front(&self) -> anyhow::Result<()> {
        let mut procs = self.procs();
        if let Some(child) = procs.front.as_mut() {
            if child.try_wait()?.is_none() {
                return Ok(());
            }
        }
        procs.front = Some(self.spawn("front", &self.dir.join("front.toml"), "jl-front.log")?);
        Ok(())
    }

    fn set_clock_offset(&self, node: NodeId, offset_ms: i64) -> anyhow::Result<()> {
        // Write then rename: the node reads the file at every clock use.
        let path = clock_file(&self.dir, node);
        let tmp = path.with_extension("tmp");
        fs::write(&tmp, format!("{offset_ms}\n"))?;
        fs::rename(&tmp, &path)?;
        Ok(())
    }

    fn status(&self, timeout: Duration) -> anyhow::Result<ClusterStatus> {
        // curl keeps the harness free of an HTTP/TLS stack of its own; /status needs no auth.
        let mut curl = Command::new("curl");
        if let Some(source) = self.status_source {
            curl.args(["--interface", source]);
        }
        let out = curl
            .args(["-sS", "--max-time"])
            .arg(format!("{:.1}", timeout.as_secs_f64()))
            .arg("--cacert")
            .arg(self.dir.join("ca.pem"))
            .arg(format!("https://127.0.0.1:{}/status", self.port_base))
            .stdin(Stdio::null())
            .output()
            .context("running curl")?;
        if !out.status.success() {
            bail!(
                "GET /status: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        serde_json::from_slice(&out.stdout)
            .with_context(|| format!("parsing /status: {}", String::from_utf8_lossy(&out.stdout)))
    }

    fn peer(&self) -> Option<&dyn Backend> {
        self.peer.as_deref().map(|p| p as &dyn Backend)
    }

    fn cut_regions(&self) -> anyhow::Result<()> {
        let Some(peer) = &self.peer else {
            bail!("region partitions unavailable: one region only (run with --regions 2)");
        };
        match &self.firewall {
            Ok(fw) => fw.cut_fronts(&[self.port_base, peer.port_base]),
            Err(why) => bail!("partitions unavailable: {why}"),
        }
    }
}

impl Drop for LocalBackend {
    fn drop(&mut self) {
        let mut guard = self.procs();
        let procs = &mut *guard;
        let children = procs
            .nodes
            .values_mut()
            .chain(procs.front.as_mut())
            .collect::<Vec<_>>();
        for child in children {
            let _ = child.kill();
            let _ = child.wait();
        }
        // The firewall's own Drop deletes the chain.
    }
}

fn clock_file(dir: &Path, node: NodeId) -> PathBuf {
    dir.join("clock").join(format!("node-{node}.ms"))
}

fn node_ip(node: NodeId) -> String {
    format!("127.0.0.{}", node + 1)
}

/// Node N listens on port base + 10 + N (as `keyraft dev` lays it out).
fn node_port(port_base: u16, node: NodeId) -> u16 {
    port_base + 10 + node as u16
}

fn signal(pid: u32, sig: &str) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .arg(sig)
        .arg(pid.to_string())
        .status()
        .context("running kill")?;
    if !status.success() {
        bail!("kill {sig} {pid} failed");
    }
    Ok(())
}

/// A port range (P, P+1, node N on 127.0.0.(N+1):P+10+N) nobody listens on, in 2000–9999:
/// below Linux's ephemeral ports (32768+), so a node's port cannot be taken by some outgoing
/// connection while the nemesis has the node down, and apart from the ranges the project's
/// tests use (node/tests/it/common/mod.rs has the map).
fn free_port_base(two_regions: bool) -> anyhow::Result<u16> {
    let slot = (std::process::id() % 40) as u16;
    for i in 0..40u16 {
        let base = 2000 + ((slot + i) % 40) * 200;
        let mut addrs = Vec::new();
        let regions: &[u16] = if two_regions {
            &[0, REGION_B_PORT_OFFSET]
        } else {
            &[0]
        };
        for &offset in regions {
            let p = base + offset;
            addrs.push(format!("127.0.0.1:{p}"));
            addrs.push(format!("127.0.0.1:{}", p + 1));
            addrs.extend((1..=NODES).map(|n| format!("{}:{}", node_ip(n), node_port(p, n))));
        }
        if addrs
            .iter()
            .all(|a| std::net::TcpListener::bind(a.as_str()).is_ok())
        {
            return Ok(base);
        }
    }
    bail!("no free port range found between 2000 and 9999")
}

/// Runs `keyraft dev` until it has written the env file (PKI, domain key, identities and the
/// per-role config files exist then), and stops it.
fn bootstrap(
    dir: &Path,
    bin: &Path,
    port_base: u16,
    storage: &str,
    timeout: Duration,
    two_regions: bool,
) -> anyhow::Result<()> {
    let env = dir.join("env");
    let _ = fs::remove_file(&env);
    let log_path = dir.join("jl-dev.log");
    let log = fs::File::create(&log_path)?;
    let mut dev = Command::new(bin)
        .arg("dev")
        .arg("--dir")
        .arg(dir)
        .arg("--node-ips")
        .arg("--port-base")
        .arg(port_base.to_string())
        .args(["--audit-digest-interval-ms", "5000"])
        .args(["--storage", storage])
        .args(if two_regions {
            vec!["--regions".to_owned(), REGIONS.join(",")]
        } else {
            vec![]
        })
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting keyraft dev")?;
    let deadline = Instant::now() + timeout;
    let ready = loop {
        if env.exists() {
            break Ok(());
        }
        if let Some(status) = dev.try_wait()? {
            break Err(anyhow::anyhow!("keyraft dev exited early ({status})"));
        }
        if Instant::now() > deadline {
            break Err(anyhow::anyhow!(
                "keyraft dev wrote no env file in {timeout:?}"
            ));
        }
        if crate::signals::interrupted() {
            break Err(anyhow::anyhow!("interrupted"));
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    // SIGTERM lets dev stop its nodes cleanly (they close their databases).
    let _ = signal(dev.id(), "-TERM");
    let deadline = Instant::now() + Duration::from_secs(20);
    while dev.try_wait()?.is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = dev.kill();
    let _ = dev.wait();
    // Nodes dev could not stop must not hold the ports or the databases.
    let pid_dirs = [dir.join("pids"), dir.join(REGIONS[1]).join("pids")];
    for entry in pid_dirs
        .iter()
        .filter_map(|d| fs::read_dir(d).ok())
        .flat_map(|entries| entries.flatten())
    {
        if let Ok(pid) = fs::read_to_string(entry.path()) {
            let pid = pid.trim();
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&*dir.to_string_lossy()) {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
        let _ = fs::remove_file(entry.path());
    }
    ready.with_context(|| {
        let text = fs::read_to_string(&log_path).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(20).collect();
        format!(
            "bootstrapping with keyraft dev (log {}):\n{}",
            log_path.display(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )
    })
}

/// An iptables chain of this process, hooked into INPUT; deleted on drop (also on panic).
struct Firewall {
    chain: String,
    port_base: u16,
    cut: Mutex<BTreeSet<Link>>,
}

impl Firewall {
    /// Creates the chain, or says why partitions are unavailable.
    fn new(port_base: u16) -> Result<Firewall, String> {
        // One chain per region: a process may run several (tests).
        let chain = format!("KEYRAFT-JL-{}-{port_base}", std::process::id());
        iptables(&["-N", &chain]).map_err(|e| format!("cannot create an iptables chain: {e:#}"))?;
        let fw = Firewall {
            chain,
            port_base,
            cut: Mutex::new(BTreeSet::new()),
        };
        iptables(&["-I", "INPUT", "1", "-j", &fw.chain])
            .map_err(|e| format!("cannot hook the iptables chain into INPUT: {e:#}"))?;
        Ok(fw)
    }

    fn cut(&self, links: &[Link]) -> anyhow::Result<()> {
        let mut cut = self.cut.lock().unwrap_or_else(|e| e.into_inner());
        for &(a, b) in links {
            let link = (a.min(b), a.max(b));
            if a == b || !cut.insert(link) {
                continue;
            }
            // Match this region's node ports too, so that concurrent runs (which use the
            // same loopback addresses) do not cut each other's links: requests to either
            // node's listener and that node's answers, both ways.
            for (src, dst) in [(a, b), (b, a)] {
                for (dir, port) in [("--dport", dst), ("--sport", src)] {
                    iptables(&[
                        "-A",
                        &self.chain,
                        "-p",
                        "tcp",
                        "-s",
                        &node_ip(src),
                        "-d",
                        &node_ip(dst),
                        dir,
                        &node_port(self.port_base, port).to_string(),
                        "-j",
                        "DROP",
                    ])?;
                }
            }
        }
        Ok(())
    }

    /// Drops TCP between fronts on 127.0.0.1 to and from these (JSON) ports.
    fn cut_fronts(&self, ports: &[u16]) -> anyhow::Result<()> {
        for port in ports {
            for dir in ["--dport", "--sport"] {
                iptables(&[
                    "-A",
                    &self.chain,
                    "-p",
                    "tcp",
                    "-s",
                    "127.0.0.1",
                    "-d",
                    "127.0.0.1",
                    dir,
                    &port.to_string(),
                    "-j",
                    "DROP",
                ])?;
            }
        }
        Ok(())
    }

    fn flush(&self) -> anyhow::Result<()> {
        self.cut.lock().unwrap_or_else(|e| e.into_inner()).clear();
        iptables(&["-F", &self.chain])
    }
}

impl Drop for Firewall {
    fn drop(&mut self) {
        let _ = iptables(&["-D", "INPUT", "-j", &self.chain]);
        let _ = iptables(&["-F", &self.chain]);
        let _ = iptables(&["-X", &self.chain]);
    }
}

fn iptables(args: &[&str]) -> anyhow::Result<()> {
    let bin = if Path::new("/usr/sbin/iptables").exists() {
        "/usr/sbin/iptables"
    } else {
        "iptables"
    };
    let out = Command::new(bin)
        .arg("-w")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {bin}"))?;
    if !out.status.success() {
        let mut msg = Vec::new();
        let _ = write!(msg, "iptables {}: ", args.join(" "));
        msg.extend_from_slice(&out.stderr);
        bail!("{}", String::from_utf8_lossy(&msg).trim());
    }
    Ok(())
}
