//! A Redis Cluster of the test's own: `redis-server` processes in cluster mode on free loopback
//! ports, joined with `redis-cli --cluster create`.
//!
//! Each node runs without persistence, with its `nodes-PORT.conf` and log in a fresh temporary
//! directory. Dropping the [`RedisCluster`] kills every node and removes the directory. The
//! helpers drive what a test needs beyond the client: moving a hash slot by hand
//! ([`migrate_slot`](RedisCluster::migrate_slot), so that clients see `ASK` and `MOVED`) and a
//! manual failover ([`failover`](RedisCluster::failover)).
//!
//! ```no_run
//! # use sessions_tests::redis_cluster::RedisCluster;
//! let cluster = RedisCluster::start(3, 1); // 3 masters, 1 replica each
//! let nodes = cluster.urls(); // redis://127.0.0.1:PORT/ of every node
//! let slot = cluster.key_slot("{alice}:s");
//! let owner = cluster.master_of_slot(slot);
//! # drop((nodes, owner));
//! ```

use crate::redis_server::{fresh_dir, spawn_ready};
use std::{
    collections::BTreeMap,
    fs,
    io::ErrorKind,
    net::{Ipv4Addr, TcpListener},
    path::PathBuf,
    process::{Child, Command, Output, Stdio},
    thread,
    time::{Duration, Instant},
};

/// How long nodes get to answer, and the cluster to agree on its slots.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts at starting one node on a fresh port.
const START_ATTEMPTS: u32 = 5;
/// Redis Cluster's bus port is the client port plus this.
const BUS_PORT_OFFSET: u16 = 10_000;

const NOT_FOUND: &str = "redis-server or redis-cli not found on PATH: these tests start their \
     own Redis Cluster. Install them (Debian/Ubuntu: apt-get install redis-server redis-tools; \
     macOS: brew install redis)";

/// A node as `CLUSTER NODES` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNode {
    /// The node id (40 hex characters).
    pub id: String,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The id of its master, for a replica; `None` for a master.
    pub master_id: Option<String>,
    /// The slot ranges it serves (masters), inclusive.
    pub slots: Vec<(u16, u16)>,
}

impl ClusterNode {
    /// Whether the node is a master.
    pub fn is_master(&self) -> bool {
        self.master_id.is_none()
    }
}

/// A running Redis Cluster owned by a test. Dropping it kills every node and removes its
/// directory.
#[derive(Debug)]
pub struct RedisCluster {
    dir: PathBuf,
    nodes: Vec<(u16, Child)>,
}

impl RedisCluster {
    /// Starts `masters` masters with `replicas` replicas each, joins them into a cluster whose
    /// slots are spread evenly over the masters, and waits until every node reports
    /// `cluster_state:ok`, all nodes agree on the slots and every replica is in sync.
    ///
    /// # Panics
    ///
    /// If `redis-server` or `redis-cli` is not on `PATH` (the message says how to install
    /// them), `masters` is below 3 (Redis Cluster's minimum), or the cluster does not form.
    pub fn start(masters: usize, replicas: usize) -> RedisCluster {
        assert!(masters >= 3, "a Redis Cluster needs at least 3 masters");
        let dir = fresh_dir("cluster");
        let mut cluster = RedisCluster {
            dir,
            nodes: Vec::new(),
        };
        for _ in 0..masters * (1 + replicas) {
            let node = cluster.spawn_node();
            cluster.nodes.push(node);
        }
        let mut create = vec!["--cluster".to_owned(), "create".to_owned()];
        create.extend(cluster.ports().iter().map(|p| format!("127.0.0.1:{p}")));
        create.extend([
            "--cluster-replicas".to_owned(),
            replicas.to_string(),
            "--cluster-yes".to_owned(),
        ]);
        let output = redis_cli(&create.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        cluster.wait_until_healthy();
        cluster
    }

    /// The URL of every node: `redis://127.0.0.1:{port}/`.
    pub fn urls(&self) -> Vec<String> {
        self.ports()
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}/"))
            .collect()
    }

    /// The port of every node.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|(port, _)| *port).collect()
    }

    /// Runs `redis-cli -p port args...` and returns its output.
    ///
    /// # Panics
    ///
    /// If `redis-cli` fails or the reply is an error (`ERR ...`, `MOVED ...`).
    pub fn cli(&self, port: u16, args: &[&str]) -> String {
        let port = port.to_string();
        let mut full = vec!["-p", &port];
        full.extend_from_slice(args);
        let output = redis_cli(&full);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success() && !is_error_reply(&stdout),
            "redis-cli {full:?}: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    /// The hash slot of `key` (`CLUSTER KEYSLOT`).
    pub fn key_slot(&self, key: &str) -> u16 {
        let reply = self.cli(self.ports()[0], &["CLUSTER", "KEYSLOT", key]);
        reply
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("CLUSTER KEYSLOT {key:?}: {reply}"))
    }

    /// The nodes as the first live node sees them (`CLUSTER NODES`), failed ones left out.
    pub fn nodes(&self) -> Vec<ClusterNode> {
        parse_cluster_nodes(&self.cli(self.ports()[0], &["CLUSTER", "NODES"]))
    }

    /// The master that serves `slot`.
    ///
    /// # Panics
    ///
    /// If no master serves it.
    pub fn master_of_slot(&self, slot: u16) -> ClusterNode {
        self.nodes()
            .into_iter()
            .find(|n| n.is_master() && n.slots.iter().any(|&(a, b)| (a..=b).contains(&slot)))
            .unwrap_or_else(|| panic!("no master serves slot {slot}"))
    }

    /// Moves `slot` to the master `to` by hand, as `redis-cli --cluster reshard` does, but one
    /// key at a time with `pause` after each: `CLUSTER SETSLOT ... IMPORTING` on the target,
    /// `MIGRATING` on the source, `MIGRATE` of every key, then `CLUSTER SETSLOT ... NODE` on
    /// every master. Clients hitting the slot meanwhile get `ASK` (a key already moved) or
    /// `TRYAGAIN` (a multi-key command whose keys are split), and `MOVED` afterwards.
    /// Returns how many keys were moved.
    ///
    /// # Panics
    ///
    /// If a step fails, or `to` already serves the slot.
    pub fn migrate_slot(&self, slot: u16, to: &ClusterNode, pause: Duration) -> usize {
        let from = self.master_of_slot(slot);
        assert_ne!(from.id, to.id, "slot {slot} is already on {}", to.port);
        let slot_arg = slot.to_string();
        let to_port = to.port.to_string();
        self.cli(
            to.port,
            &["CLUSTER", "SETSLOT", &slot_arg, "IMPORTING", &from.id],
        );
        self.cli(
            from.port,
            &["CLUSTER", "SETSLOT", &slot_arg, "MIGRATING", &to.id],
        );
        let mut moved = 0;
        loop {
            let keys = self.cli(from.port, &["CLUSTER", "GETKEYSINSLOT", &slot_arg, "1"]);
            let Some(key) = keys.lines().next().filter(|k| !k.is_empty()) else {
                break;
            };
            let reply = self.cli(
                from.port,
                &[
                    "MIGRATE",
                    "127.0.0.1",
                    &to_port,
                    "",
                    "0",
                    "5000",
                    "KEYS",
                    key,
                ],
            );
            // NOKEY: the key expired or was deleted meanwhile.
            assert!(
                reply.trim() == "OK" || reply.trim() == "NOKEY",
                "MIGRATE {key}: {reply}"
            );
            moved += 1;
            thread::sleep(pause);
        }
        // The target first, then the source, then everyone else (the documented order).
        let masters: Vec<ClusterNode> =
            self.nodes().into_iter().filter(|n| n.is_master()).collect();
        self.cli(to.port, &["CLUSTER", "SETSLOT", &slot_arg, "NODE", &to.id]);
        self.cli(
            from.port,
            &["CLUSTER", "SETSLOT", &slot_arg, "NODE", &to.id],
        );
        for node in masters.iter().filter(|n| n.id != to.id && n.id != from.id) {
            self.cli(
                node.port,
                &["CLUSTER", "SETSLOT", &slot_arg, "NODE", &to.id],
            );
        }
        self.wait_until_healthy();
        moved
    }

    /// A manual failover of `master` (`CLUSTER FAILOVER` on one of its replicas): the replica
    /// catches up with the master's replication stream before they swap roles, so nothing
    /// the master acknowledged is lost. Waits until the cluster is healthy again and returns
    /// the new master.
    ///
    /// # Panics
    ///
    /// If `master` has no replica or the failover does not complete.
    pub fn failover(&self, master: &ClusterNode) -> ClusterNode {
        let replica = self
            .nodes()
            .into_iter()
            .find(|n| n.master_id.as_deref() == Some(master.id.as_str()))
            .unwrap_or_else(|| panic!("master {} has no replica", master.port));
        self.cli(replica.port, &["CLUSTER", "FAILOVER"]);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let seen_by_all = self.ports().iter().all(|&port| {
                let nodes = parse_cluster_nodes(&self.cli(port, &["CLUSTER", "NODES"]));
                nodes
                    .iter()
                    .any(|n| n.id == replica.id && n.is_master() && !n.slots.is_empty())
                    && nodes
                        .iter()
                        .any(|n| n.id == master.id && n.master_id.as_deref() == Some(&replica.id))
            });
            if seen_by_all {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "failover of {} to {} did not complete",
                master.port,
                replica.port
            );
            thread::sleep(Duration::from_millis(50));
        }
        self.wait_until_healthy();
        self.nodes()
            .into_iter()
            .find(|n| n.id == replica.id)
            .unwrap_or_else(|| panic!("node {} vanished", replica.port))
    }

    /// Error replies the nodes sent so far, by kind (`MOVED`, `ASK`, `TRYAGAIN`, ...), summed
    /// over every node (`INFO errorstats`).
    pub fn error_stats(&self) -> BTreeMap<String, u64> {
        let mut stats = BTreeMap::new();
        for port in self.ports() {
            for line in self.cli(port, &["INFO", "errorstats"]).lines() {
                // errorstat_MOVED:count=3
                let Some((kind, count)) = line
                    .strip_prefix("errorstat_")
                    .and_then(|rest| rest.trim().split_once(":count="))
                else {
                    continue;
                };
                *stats.entry(kind.to_owned()).or_insert(0) += count.parse::<u64>().unwrap_or(0);
            }
        }
        stats
    }

    /// Waits until every node reports `cluster_state:ok` with all 16384 slots served, every
    /// node agrees on the slots (`redis-cli --cluster check`) and every replica's link to its
    /// master is up.
    ///
    /// # Panics
    ///
    /// If that does not happen within 30 seconds.
    pub fn wait_until_healthy(&self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let Err(why) = self.health() else {
                return;
            };
            assert!(
                Instant::now() < deadline,
                "the cluster is not healthy after {READY_TIMEOUT:?}: {why}"
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn health(&self) -> Result<(), String> {
        for port in self.ports() {
            let info = cli_output(port, &["CLUSTER", "INFO"]);
            if !info.contains("cluster_state:ok") || !info.contains("cluster_slots_ok:16384") {
                return Err(format!("node {port}: {}", info.replace("\r\n", " ")));
            }
            let replication = cli_output(port, &["INFO", "replication"]);
            if replication.contains("role:slave") && !replication.contains("master_link_status:up")
            {
                return Err(format!("replica {port} not in sync"));
            }
        }
        let check = redis_cli(&[
            "--cluster",
            "check",
            &format!("127.0.0.1:{}", self.ports()[0]),
        ]);
        let out = String::from_utf8_lossy(&check.stdout);
        if check.status.success()
            && out.contains("[OK] All nodes agree about slots configuration")
            && out.contains("[OK] All 16384 slots covered")
            && !out.contains("[WARNING]")
        {
            Ok(())
        } else {
            Err(format!("redis-cli --cluster check: {out}"))
        }
    }

    /// Starts one cluster-mode node on a free port (its bus port free too) and waits until it
    /// answers as itself.
    fn spawn_node(&self) -> (u16, Child) {
        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS {
            let port = free_port_pair();
            let conf = self.dir.join(format!("nodes-{port}.conf"));
            let args = [
                "--cluster-enabled".to_owned(),
                "yes".to_owned(),
                "--cluster-config-file".to_owned(),
                conf.display().to_string(),
                "--cluster-node-timeout".to_owned(),
                "5000".to_owned(),
                "--appendonly".to_owned(),
                "no".to_owned(),
            ];
            match spawn_ready(port, &self.dir, &args) {
                Ok(child) => return (port, child),
                Err(err) => last_error = err,
            }
        }
        panic!("could not start a cluster node after {START_ATTEMPTS} attempts: {last_error}");
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for (_, child) in &mut self.nodes {
            let _ = child.kill();
        }
        for (_, child) in &mut self.nodes {
            let _ = child.wait();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Parses `CLUSTER NODES`, leaving out failed and handshaking nodes.
fn parse_cluster_nodes(text: &str) -> Vec<ClusterNode> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 8 {
                return None;
            }
            let flags = fields[2];
            if flags.contains("fail") || flags.contains("handshake") || flags.contains("noaddr") {
                return None;
            }
            // 127.0.0.1:PORT@BUSPORT[,hostname]
            let port = fields[1]
                .split('@')
                .next()?
                .rsplit_once(':')?
                .1
                .parse()
                .ok()?;
            let master_id = flags
                .contains("slave")
                .then(|| fields[3].to_owned())
                .filter(|m| m != "-");
            let slots = fields[8..]
                .iter()
                .filter(|s| !s.starts_with('['))
                .filter_map(|s| match s.split_once('-') {
                    Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                    None => s.parse().ok().map(|n| (n, n)),
                })
                .collect();
            Some(ClusterNode {
                id: fields[0].to_owned(),
                port,
                master_id,
                slots,
            })
        })
        .collect()
}

fn is_error_reply(stdout: &str) -> bool {
    let first = stdout.lines().next().unwrap_or_default();
    [
        "ERR",
        "MOVED",
        "ASK",
        "TRYAGAIN",
        "CLUSTERDOWN",
        "IOERR",
        "BUSYKEY",
        "(error)",
    ]
    .iter()
    .any(|prefix| first.starts_with(prefix))
}

/// Runs `redis-cli` (raw output, no colours) and returns its output.
fn redis_cli(args: &[&str]) -> Output {
    match Command::new("redis-cli")
        .arg("--no-raw")
        .args(args)
        .stdin(Stdio::null())
        .output()
    {
        Ok(output) => raw(output),
        Err(e) if e.kind() == ErrorKind::NotFound => panic!("{NOT_FOUND}"),
        Err(e) => panic!("cannot run redis-cli: {e}"),
    }
}

/// `--no-raw` keeps error replies recognisable (`(error) ...`); strip the decorations of the
/// plain replies we read: quotes around strings, `1) ` before array items.
fn raw(mut output: Output) -> Output {
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let lines: Vec<String> = text
        .lines()
        .map(|line| {
            let line = line.trim_start();
            let line = match line.split_once(") ") {
                Some((n, rest)) if n.bytes().all(|b| b.is_ascii_digit()) && !n.is_empty() => rest,
                _ => line,
            };
            let line = line.strip_prefix("(integer) ").unwrap_or(line);
            if line == "(empty array)" || line == "(nil)" {
                return String::new();
            }
            match line.strip_prefix('"').and_then(|l| l.strip_suffix('"')) {
                Some(inner) => inner.replace("\\r\\n", "\n").replace("\\n", "\n"),
                None => line.to_owned(),
            }
        })
        .collect();
    output.stdout = lines.join("\n").into_bytes();
    output
}

/// Output of `redis-cli -p port args`, or `""` when it fails (for polling).
fn cli_output(port: u16, args: &[&str]) -> String {
    let port = port.to_string();
    let mut full = vec!["-p", &port];
    full.extend_from_slice(args);
    let output = redis_cli(&full);
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A loopback port that was free a moment ago, and whose bus port (+10000) was free too.
fn free_port_pair() -> u16 {
    loop {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
        let port = listener
            .local_addr()
            .expect("local address of a bound listener")
            .port();
        let Some(bus) = port.checked_add(BUS_PORT_OFFSET) else {
            continue;
        };
        if TcpListener::bind((Ipv4Addr::LOCALHOST, bus)).is_ok() {
            return port;
        }
    }
}
