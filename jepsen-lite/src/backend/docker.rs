//! The docker backend: one region as the compose project in `deploy/docker`, one project per
//! run.
//!
//! ```text
//! start:  deploy/docker/build-image.sh                       image keyraft:dev (FROM scratch)
//!         D/compose.override.yml: node N reads its leader clock offset from D/clock/node-N.ms
//!         docker-compose -p jl-<pid>-<time> -f docker-compose.yml -f D/compose.override.yml
//!           up -d    init (PKI, keys, configs) → node1..3 → bootstrap (identities, D/env)
//!                    → front1, front2 (front1's JSON port is the one the env file names)
//! faults: kill   docker kill -s KILL / docker start         (a paused container is unpaused
//!                                                            first: the engine refuses to kill it)
//!         pause  docker pause / unpause                      (cgroup freezer: like SIGSTOP)
//!         cut    iptables DROP in each node's own network namespace (nsenter -t PID -n):
//!                node A drops packets from B's address and B from A's
//!         front  docker kill -s KILL front1 / docker start front1
//!         clock  D/clock/node-N.ms, bind-mounted at the same path
//! drop:   docker-compose logs > D/logs/compose.log, then docker-compose down -v
//! ```
//!
//! D is bind-mounted at the same path in every container (see the compose file), so the
//! env file, the CA and the clock files are plain host paths. A killed node's container keeps
//! its address and volume; its own iptables rules are gone after `docker start`, but the peer
//! side of a cut still drops its packets until [`Backend::heal_network`].

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};

use super::{Backend, ClusterStatus, Link, NodeId};

/// How to start a [`DockerBackend`].
#[derive(Debug, Clone)]
pub struct DockerOptions {
    /// Working directory (absolute after start): PKI, configs, env file, clock files, logs.
    pub dir: PathBuf,
    /// The `keyraft` binary the image is built from.
    pub keyraft_bin: PathBuf,
    /// Directory holding `docker-compose.yml` and `build-image.sh`.
    pub compose_dir: PathBuf,
    /// How long `up` and first readiness may take.
    pub startup_timeout: Duration,
}

impl DockerOptions {
    /// Defaults: the repository's `deploy/docker` (or `$KEYRAFT_DOCKER_DIR`), 180 s.
    pub fn new(dir: impl Into<PathBuf>, keyraft_bin: impl Into<PathBuf>) -> Self {
        let compose_dir = std::env::var_os("KEYRAFT_DOCKER_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/docker"));
        DockerOptions {
            dir: dir.into(),
            keyraft_bin: keyraft_bin.into(),
            compose_dir,
            startup_timeout: Duration::from_secs(180),
        }
    }
}

/// Storage nodes in the compose file.
const NODES: u64 = 3;
/// The front the env file (and so the workload) uses; front2 stays up as a spare.
const FRONT: &str = "front1";
/// The compose network the storage nodes share.
const REGION_NETWORK: &str = "region";

/// A region of `keyraft` containers.
pub struct DockerBackend {
    dir: PathBuf,
    env_file: PathBuf,
    project: String,
    compose_files: [PathBuf; 2],
    /// Host ports published by the compose project (`KEYRAFT_*_PORT_*`).
    ports: Vec<(&'static str, u16)>,
    /// Service name (`node1`, `front1`, ...) -> container id (stable across kill/start).
    containers: BTreeMap<String, String>,
    firewall: Result<(), String>,
}

impl DockerBackend {
    /// Builds the image, brings the compose project up and waits until the front reports a
    /// leader that every node agrees on. Tears the project down if that fails.
    pub fn start(opts: &DockerOptions) -> anyhow::Result<DockerBackend> {
        fs::create_dir_all(&opts.dir)
            .with_context(|| format!("creating {}", opts.dir.display()))?;
        let dir = fs::canonicalize(&opts.dir)?;
        let compose_dir = fs::canonicalize(&opts.compose_dir).with_context(|| {
            format!(
                "compose directory {} (set KEYRAFT_DOCKER_DIR)",
                opts.compose_dir.display()
            )
        })?;
        if !opts.keyraft_bin.is_file() {
            bail!(
                "keyraft binary not found at {} (build it with `cargo build -p keyraft-node`)",
                opts.keyraft_bin.display()
            );
        }
        run_logged(
            Command::new(compose_dir.join("build-image.sh")).env("KEYRAFT_BIN", &opts.keyraft_bin),
            "building the keyraft:dev image",
        )?;

        let region = dir.join("region");
        fs::create_dir_all(dir.join("clock"))?;
        fs::create_dir_all(dir.join("logs"))?;
        let mut override_yml = String::from(
            "# Written by jepsen-lite's docker backend: leader clock offsets per node.\nservices:\n",
        );
        for n in 1..=NODES {
            fs::write(clock_file(&dir, n), "0\n")?;
            override_yml.push_str(&format!(
                "  node{n}:\n    environment:\n      KEYRAFT_DANGER_CLOCK_OFFSET_FILE: \"{}\"\n",
                clock_file(&dir, n).display()
            ));
        }
        let override_file = dir.join("compose.override.yml");
        fs::write(&override_file, override_yml)?;

        let ports = free_ports(4)?;
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut backend = DockerBackend {
            env_file: region.join("env"),
            project: format!("jl-{}-{since_epoch}", std::process::id()),
            compose_files: [compose_dir.join("docker-compose.yml"), override_file],
            ports: vec![
                ("KEYRAFT_JSON_PORT_1", ports[0]),
                ("KEYRAFT_GRPC_PORT_1", ports[1]),
                ("KEYRAFT_JSON_PORT_2", ports[2]),
                ("KEYRAFT_GRPC_PORT_2", ports[3]),
            ],
            containers: BTreeMap::new(),
            firewall: Err("not started".into()),
            dir,
        };
        // From here on, Drop tears the project down whatever fails.
        fs::create_dir_all(&region)?;
        let mut up = backend.compose();
        up.env("KEYRAFT_AUDIT_DIGEST_INTERVAL_MS", "5000")
            .args(["up", "-d"]);
        run_logged(&mut up, "docker-compose up")?;
        for n in 1..=NODES {
            backend.lookup(&format!("node{n}"))?;
        }
        backend.lookup(FRONT)?;
        backend.firewall = backend.probe_firewall();
        backend
            .wait_ready(opts.startup_timeout)
            .with_context(|| format!("compose project {}", backend.project))?;
        Ok(backend)
    }

    /// The compose project name (unique per run).
    pub fn project(&self) -> &str {
        &self.project
    }

    /// `docker-compose -p PROJECT -f ... -f ...` with the port variables set.
    fn compose(&self) -> Command {
        let mut cmd = Command::new("docker-compose");
        cmd.arg("-p").arg(&self.project);
        for f in &self.compose_files {
            cmd.arg("-f").arg(f);
        }
        cmd.env("KEYRAFT_DIR", self.dir.join("region"));
        for (name, port) in &self.ports {
            cmd.env(name, port.to_string());
        }
        cmd.stdin(Stdio::null());
        cmd
    }

    fn lookup(&mut self, service: &str) -> anyhow::Result<()> {
        let out = output(self.compose().args(["ps", "-q", service]))?;
        let id = out.trim();
        if id.is_empty() {
            bail!(
                "compose project {} has no container for {service}",
                self.project
            );
        }
        self.containers.insert(service.to_string(), id.to_string());
        Ok(())
    }

    fn container(&self, service: &str) -> anyhow::Result<&str> {
        self.containers
            .get(service)
            .map(String::as_str)
            .with_context(|| format!("no container for {service}"))
    }

    fn node(&self, node: NodeId) -> anyhow::Result<&str> {
        self.container(&format!("node{node}"))
    }

    /// `(running, paused, pid)` of a container.
    fn state(&self, id: &str) -> anyhow::Result<(bool, bool, u32)> {
        let out = output(Command::new("docker").args([
            "inspect",
            "-f",
            "{{.State.Running}} {{.State.Paused}} {{.State.Pid}}",
            id,
        ]))?;
        let mut it = out.split_whitespace();
        let running = it.next() == Some("true");
        let paused = it.next() == Some("true");
        let pid = it.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        Ok((running, paused, pid))
    }

    fn docker(&self, args: &[&str]) -> anyhow::Result<()> {
        output(Command::new("docker").args(args)).map(drop)
    }

    fn kill_container(&self, id: &str) -> anyhow::Result<()> {
        let (running, paused, _) = self.state(id)?;
        if paused {
            self.docker(&["unpause", id])?;
        }
        if running {
            self.docker(&["kill", "-s", "KILL", id])?;
        }
        Ok(())
    }

    fn start_container(&self, id: &str) -> anyhow::Result<()> {
        let (running, paused, _) = self.state(id)?;
        if paused {
            return Ok(());
        }
        if !running {
            self.docker(&["start", id])?;
        }
        Ok(())
    }

    /// A node's address on the region network (it may change across restarts: asked each time).
    fn node_ip(&self, node: NodeId) -> anyhow::Result<String> {
        let format = format!(
            "{{{{range $k, $v := .NetworkSettings.Networks}}}}{{{{if eq $k \"{}_{REGION_NETWORK}\"}}}}{{{{$v.IPAddress}}}}{{{{end}}}}{{{{end}}}}",
            self.project
        );
        let ip = output(Command::new("docker").args(["inspect", "-f", &format, self.node(node)?]))?;
        let ip = ip.trim();
        if ip.is_empty() {
            bail!("node{node} has no address on the region network (is it running?)");
        }
        Ok(ip.to_string())
    }

    /// iptables in a running node's network namespace.
    fn node_iptables(&self, node: NodeId, args: &[&str]) -> anyhow::Result<()> {
        let (running, _, pid) = self.state(self.node(node)?)?;
        if !running || pid == 0 {
            bail!("node{node} is not running");
        }
        output(
            Command::new("nsenter")
                .arg("-t")
                .arg(pid.to_string())
                .args(["-n", "iptables", "-w"])
                .args(args),
        )
        .map(drop)
    }

    fn probe_firewall(&self) -> Result<(), String> {
        self.node_iptables(1, &["-L", "INPUT", "-n"])
            .map_err(|e| format!("cannot run iptables in a container's network namespace: {e:#}"))
    }
}

impl Backend for DockerBackend {
    fn name(&self) -> &str {
        "docker"
    }

    fn env_file(&self) -> &Path {
        &self.env_file
    }

    fn nodes(&self) -> Vec<NodeId> {
        (1..=NODES).collect()
    }

    fn kill(&self, node: NodeId) -> anyhow::Result<()> {
        self.kill_container(self.node(node)?)
    }

    fn start(&self, node: NodeId) -> anyhow::Result<()> {
        self.start_container(self.node(node)?)
    }

    fn pause(&self, node: NodeId) -> anyhow::Result<()> {
        let id = self.node(node)?;
        let (running, paused, _) = self.state(id)?;
        if running && !paused {
            self.docker(&["pause", id])?;
        }
        Ok(())
    }

    fn resume(&self, node: NodeId) -> anyhow::Result<()> {
        let id = self.node(node)?;
        if self.state(id)?.1 {
            self.docker(&["unpause", id])?;
        }
        Ok(())
    }

    fn partitions_unavailable(&self) -> Option<String> {
        self.firewall.as_ref().err().cloned()
    }

    fn cut(&self, links: &[Link]) -> anyhow::Result<()> {
        if let Err(why) = &self.firewall {
            bail!("partitions unavailable: {why}");
        }
        // Each side drops the other's packets: one side suffices to cut TCP, and the other
        // keeps the cut while the first restarts with a fresh network namespace.
        let mut first_err = None;
        for &(a, b) in links {
            if a == b {
                continue;
            }
            for (me, peer) in [(a, b), (b, a)] {
                let r = self.node_ip(peer).and_then(|ip| {
                    self.node_iptables(me, &["-A", "INPUT", "-s", &ip, "-j", "DROP"])
                });
                if let Err(e) = r {
                    first_err.get_or_insert(e);
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    fn heal_network(&self) -> anyhow::Result<()> {
        // The filter table of a container's namespace holds only our rules (the engine's
        // DNS rules live in its nat table). A stopped node has no rules to flush.
        for n in 1..=NODES {
            if self.state(self.node(n)?)?.0 {
                self.node_iptables(n, &["-F", "INPUT"])?;
            }
        }
        Ok(())
    }

    fn kill_front(&self) -> anyhow::Result<()> {
        self.kill_container(self.container(FRONT)?)
    }

    fn start_front(&self) -> anyhow::Result<()> {
        self.start_container(self.container(FRONT)?)
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
        let port = self.ports[0].1;
        let out = Command::new("curl")
            .args(["-sS", "--max-time"])
            .arg(format!("{:.1}", timeout.as_secs_f64()))
            .arg("--cacert")
            .arg(self.dir.join("region").join("ca.pem"))
            .arg(format!("https://127.0.0.1:{port}/status"))
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
}

impl Drop for DockerBackend {
    fn drop(&mut self) {
        if let Ok(log) = fs::File::create(self.dir.join("logs").join("compose.log")) {
            let _ = self
                .compose()
                .args(["logs", "--no-color", "--timestamps"])
                .stdout(log)
                .stderr(Stdio::null())
                .status();
        }
        let _ = self
            .compose()
            .args(["down", "-v", "-t", "1", "--remove-orphans"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn clock_file(dir: &Path, node: NodeId) -> PathBuf {
    dir.join("clock").join(format!("node-{node}.ms"))
}

/// Runs a command to completion; its stdout, or an error carrying its stderr.
fn output(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a command whose output only matters when it fails.
fn run_logged(cmd: &mut Command, what: &str) -> anyhow::Result<()> {
    output(cmd).map(drop).with_context(|| what.to_string())
}

/// Host ports nobody listens on now (bound together, then released).
fn free_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .context("picking free ports")?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}
