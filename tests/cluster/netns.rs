//! Network partitions between cluster members on one machine. Each node
//! runs in a network namespace of its own (`ip netns exec`), with its own
//! address on a bridge in the test's namespace: the test reaches every
//! node's HTTP API directly, also a node cut off from its peers, and a
//! blackhole route inside a node's namespace drops what it sends to a peer.
//! A cut installs the routes on both sides, so no packet crosses it either
//! way: a connection attempt fails at once on the sender (the route says
//! so), and what is sent on an open connection is lost. Routes on one side
//! only make a one-way cut, where the other side hears silence: its
//! connection attempts and requests time out, as on a real partition.
//!
//! Why namespaces rather than proxies: a member has one advertised raft
//! address that every peer dials, so a proxy in front of it cannot tell
//! which peer is calling and cannot cut one link of three; namespaces cut
//! per pair at the IP layer, for the raft and the forwarded HTTP traffic
//! alike, without changing how the nodes are started. `ip` is iproute2; no
//! firewall tool is needed. It takes root (`CAP_NET_ADMIN` and
//! `CAP_SYS_ADMIN`): without it [`Net::new`] says why and the caller skips.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use super::{KVR, Node};

/// The first two octets of the nodes' addresses; the third is the
/// network's number (free ones are claimed by creating the bridge).
const PREFIX: &str = "10.213";

/// Namespaces `kvr{id}n{i}` on bridge `kvrb{id}`, removed when dropped.
pub struct Net {
    id: u32,
    nodes: usize,
    /// The blackhole routes in place: (in node, to node).
    cuts: Vec<(usize, usize)>,
    /// The port cuts in place: (in node, to node, TCP port).
    port_cuts: Vec<(usize, usize, u16)>,
}

/// The routing table a port cut sends its packets to: one blackhole
/// route per node cut off.
const PORT_CUT_TABLE: &str = "213";

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `ip` (iproute2): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}`: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The bridge's alias names the process that made it.
const OWNER: &str = "kvr-chaos-test-pid-";

/// Removes the bridges and namespaces of runs that were killed before
/// they could (a panic unwinds and removes them; SIGKILL does not).
fn remove_leftovers() {
    let Ok(out) = Command::new("ip")
        .args(["-o", "link", "show", "type", "bridge"])
        .output()
    else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split(':').nth(1).map(str::trim).unwrap_or_default();
        let Some(id) = name.strip_prefix("kvrb") else {
            continue;
        };
        let Some(pid) = line
            .split(OWNER)
            .nth(1)
            .and_then(|p| p.split_whitespace().next())
        else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        for i in 0..9 {
            let _ = ip(&["netns", "del", &format!("kvr{id}n{i}")]);
        }
        let _ = ip(&["link", "del", name]);
    }
}

impl Net {
    /// A bridge and `nodes` namespaces, each with one address on it.
    /// `Err`: why not (not root, no `ip`).
    pub fn new(nodes: usize) -> Result<Net, String> {
        remove_leftovers();
        // Claim a free network: creating the bridge fails if another run
        // holds that number.
        let first = std::process::id() % 200;
        let mut claimed = None;
        for k in 0..50 {
            let id = (first + k) % 200 + 1;
            match ip(&["link", "add", &format!("kvrb{id}"), "type", "bridge"]) {
                Ok(()) => {
                    claimed = Some(id);
                    break;
                }
                Err(e) if e.contains("File exists") => continue,
                Err(e) => return Err(e),
            }
        }
        let id = claimed.ok_or("no free kvrbN bridge name")?;
        let mut net = Net {
            id,
            nodes: 0,
            cuts: Vec::new(),
            port_cuts: Vec::new(),
        };
        let bridge = format!("kvrb{id}");
        // Its owner, for `remove_leftovers`.
        let owner = format!("{OWNER}{}", std::process::id());
        ip(&["link", "set", &bridge, "alias", &owner])?;
        ip(&[
            "addr",
            "add",
            &format!("{PREFIX}.{id}.254/24"),
            "dev",
            &bridge,
        ])?;
        ip(&["link", "set", &bridge, "up"])?;
        for i in 0..nodes {
            let ns = net.ns(i);
            ip(&["netns", "add", &ns])?;
            net.nodes = i + 1;
            let (host, inside) = (format!("kvr{id}h{i}"), format!("kvr{id}c{i}"));
            ip(&[
                "link", "add", &host, "type", "veth", "peer", "name", &inside, "netns", &ns,
            ])?;
            ip(&["link", "set", &host, "master", &bridge, "up"])?;
            let addr = format!("{}/24", net.host(i));
            ip(&["-n", &ns, "addr", "add", &addr, "dev", &inside])?;
            ip(&["-n", &ns, "link", "set", &inside, "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(net)
    }

    fn ns(&self, i: usize) -> String {
        format!("kvr{}n{i}", self.id)
    }

    /// Node `i`'s address.
    pub fn host(&self, i: usize) -> String {
        format!("{PREFIX}.{}.{}", self.id, i + 1)
    }

    /// `kvr --db DIR/NAME.redb serve --listen ADDR --raft-listen RAFT
    /// --quiet EXTRA...` in node `i`'s namespace, once both listening lines
    /// are out (as `super::spawn_at` does on 127.0.0.1).
    pub fn spawn(
        &self,
        dir: &Path,
        name: &str,
        i: usize,
        (listen, raft): (&str, &str),
        extra: &[&str],
    ) -> Node {
        let mut cmd = Command::new("ip");
        cmd.env_clear().current_dir(dir);
        if let Ok(path) = std::env::var("PATH") {
            cmd.env("PATH", path);
        }
        // `ip netns exec` execs in place: the child's pid is kvr's, for
        // kill -9 and SIGSTOP.
        cmd.args(["netns", "exec", &self.ns(i), KVR])
            .args(crate::member_args(name, listen, raft))
            .arg("--quiet")
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::from(
                std::fs::File::options()
                    .create(true)
                    .append(true)
                    .open(dir.join(format!("{name}.err")))
                    .unwrap(),
            ));
        let mut child = cmd.spawn().unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut lines = [String::new(), String::new()];
        for l in &mut lines {
            out.read_line(l).unwrap();
        }
        let err = || super::stderr_of(dir, name);
        let url = lines[0]
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("{name}: first line {:?}; stderr: {}", lines[0], err()))
            .to_string();
        let raft = lines[1]
            .trim()
            .strip_prefix("raft listening on ")
            .unwrap_or_else(|| panic!("{name}: second line {:?}; stderr: {}", lines[1], err()))
            .to_string();
        Node {
            child,
            url,
            raft,
            name: name.to_string(),
        }
    }

    /// Cuts every link between a node of `a` and a node of `b`, both ways.
    pub fn cut(&mut self, a: &[usize], b: &[usize]) {
        self.drop_packets(a, b);
        self.drop_packets(b, a);
    }

    /// Drops what nodes of `from` send to nodes of `to`, not the reverse:
    /// `to` hears silence (its connection attempts and requests time out,
    /// while what it sends still arrives).
    pub fn drop_packets(&mut self, from: &[usize], to: &[usize]) {
        for &i in from {
            for &j in to {
                let dest = format!("{}/32", self.host(j));
                ip(&["-n", &self.ns(i), "route", "add", "blackhole", &dest]).unwrap();
                self.cuts.push((i, j));
            }
        }
    }

    /// Drops what node `from` sends to TCP port `port` of node `to`, and
    /// nothing else: connections `to` opens to `from` still work both
    /// ways. (A policy rule on the destination port sends those packets to
    /// a table whose route for `to` is a blackhole.)
    pub fn drop_port(&mut self, from: usize, to: usize, port: u16) {
        self.port_rule("add", from, to, port);
        // The table's route may be there from another cut of this pair.
        let dest = format!("{}/32", self.host(to));
        let route = ["blackhole", &dest, "table", PORT_CUT_TABLE];
        let _ = ip(&[&["-n", &self.ns(from), "route", "add"][..], &route[..]].concat());
        self.port_cuts.push((from, to, port));
    }

    /// `ip rule add|del` of the rule of [`Net::drop_port`].
    fn port_rule(&self, what: &str, from: usize, to: usize, port: u16) {
        let (ns, dest, port) = (
            self.ns(from),
            format!("{}/32", self.host(to)),
            port.to_string(),
        );
        let rule = [
            "to",
            &dest,
            "ipproto",
            "tcp",
            "dport",
            &port,
            "table",
            PORT_CUT_TABLE,
        ];
        ip(&[&["-n", &ns, "rule", what][..], &rule[..]].concat()).unwrap();
    }

    /// Removes every cut.
    pub fn heal(&mut self) {
        for (from, to) in std::mem::take(&mut self.cuts) {
            let dest = format!("{}/32", self.host(to));
            ip(&["-n", &self.ns(from), "route", "del", "blackhole", &dest]).unwrap();
        }
        for (from, to, port) in std::mem::take(&mut self.port_cuts) {
            self.port_rule("del", from, to, port);
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        // Each veth pair first, at once: a removed namespace takes its
        // pair with it only later (the kernel cleans it up in the
        // background), and a run that claims this number meanwhile then
        // found `kvrNhI` still there ("File exists").
        for i in 0..self.nodes {
            let _ = ip(&["link", "del", &format!("kvr{}h{i}", self.id)]);
            let _ = ip(&["netns", "del", &self.ns(i)]);
        }
        let _ = ip(&["link", "del", &format!("kvrb{}", self.id)]);
    }
}
