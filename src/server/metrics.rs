//! `/metrics`: counters and histograms in the Prometheus text format,
//! formatted by hand (a few series do not need a metrics library).
//!
//! Families, each with `# HELP` and `# TYPE`: `kvr_http_requests_total`
//! and `kvr_http_request_duration_seconds` by route and status;
//! `kvr_commit_group_size` (requests per group commit);
//! `kvr_commit_duration_seconds` (a group's log write and sync and its
//! memory-table insert: the disk's share of a write's latency);
//! `kvr_write_queue_depth`; `kvr_writes_rejected_total`; `kvr_revision`;
//! `kvr_keys`; `kvr_db_bytes`; `kvr_log_bytes`; `kvr_log_lines_dropped_total`;
//! `kvr_http_malformed_requests_total`; `kvr_expired_keys_total` and
//! `kvr_expiry_lag_seconds` (the sweeper's); and the
//! standard `process_*` families (`process.rs`). The engine adds its own
//! (`Engine::metrics`: flushes, memory tables), and a cluster member its
//! write rounds (`cluster/write_batch.rs`: entries and writes proposed).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds: 50 µs (a loopback GET)
/// to 10 s (a large batch), about three per decade.
const LATENCY_BUCKETS: [f64; 16] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 10.0,
];
/// Upper bounds of the group-size buckets: powers of two up to the group cap.
const GROUP_BUCKETS: [f64; 11] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

#[derive(Debug, Clone)]
struct Histogram<const N: usize> {
    counts: [u64; N],
    count: u64,
    sum: f64,
}

impl<const N: usize> Histogram<N> {
    fn new() -> Self {
        Histogram {
            counts: [0; N],
            count: 0,
            sum: 0.0,
        }
    }

    fn observe(&mut self, bounds: &[f64; N], v: f64) {
        if let Some(i) = bounds.iter().position(|&b| v <= b) {
            self.counts[i] += 1;
        }
        self.count += 1;
        self.sum += v;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str, bounds: &[f64; N]) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (b, c) in bounds.iter().zip(self.counts) {
            cumulative += c;
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {cumulative}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braced = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braced} {}", Rounded(self.sum));
        let _ = writeln!(out, "{name}_count{braced} {}", self.count);
    }
}

/// A sum of observations to the nanosecond, without the float noise of
/// adding many of them (`0.000027632000000000002`).
struct Rounded(f64);

impl std::fmt::Display for Rounded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = format!("{:.9}", self.0);
        let text = text.trim_end_matches('0').trim_end_matches('.');
        f.write_str(if text.is_empty() || text == "-" {
            "0"
        } else {
            text
        })
    }
}

/// Everything `/metrics` reports.
pub struct Metrics {
    /// By route, method and status.
    requests: Mutex<BTreeMap<(&'static str, &'static str, u16), Histogram<16>>>,
    groups: Mutex<Histogram<11>>,
    commits: Mutex<Histogram<16>>,
    queue_depth: AtomicUsize,
    rejected: AtomicU64,
    /// Access log lines dropped because the log thread fell behind.
    log_dropped: AtomicU64,
    /// Requests hyper refused before routing (400, 431).
    malformed: AtomicU64,
    /// Connections open now under `--max-connections`; those over it
    /// refused, and those answered from the monitoring reserve.
    connections_open: AtomicU64,
    connections_refused: AtomicU64,
    connections_reserved: AtomicU64,
    /// Keys the expiry sweeper's deletes removed.
    expired: AtomicU64,
    /// At the sweeper's last round, how long past its expiry the most
    /// overdue key it found was, in ms (0: none was due).
    expiry_lag_ms: AtomicU64,
}

/// Counts a connection as open while it is held (`kvr_connections_open`).
pub struct OpenConnection(Arc<Metrics>);

impl OpenConnection {
    pub fn new(metrics: Arc<Metrics>) -> OpenConnection {
        metrics.connections_open.fetch_add(1, Ordering::Relaxed);
        OpenConnection(metrics)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.connections_open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics {
            requests: Mutex::new(BTreeMap::new()),
            groups: Mutex::new(Histogram::new()),
            commits: Mutex::new(Histogram::new()),
            queue_depth: AtomicUsize::new(0),
            rejected: AtomicU64::new(0),
            log_dropped: AtomicU64::new(0),
            malformed: AtomicU64::new(0),
            connections_open: AtomicU64::new(0),
            connections_refused: AtomicU64::new(0),
            connections_reserved: AtomicU64::new(0),
            expired: AtomicU64::new(0),
            expiry_lag_ms: AtomicU64::new(0),
        }
    }

    /// A connection over `--max-connections` refused (503 before any
    /// route saw its request: not in `kvr_http_requests_total`).
    pub fn connection_refused(&self) {
        self.connections_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection over `--max-connections` whose monitoring request is
    /// answered from the reserve (the request is counted as any other).
    pub fn connection_reserved(&self) {
        self.connections_reserved.fetch_add(1, Ordering::Relaxed);
    }

    /// Records one answered request.
    pub fn request(&self, route: &'static str, method: &'static str, status: u16, took: Duration) {
        if let Ok(mut map) = self.requests.lock() {
            map.entry((route, method, status))
                .or_insert_with(Histogram::new)
                .observe(&LATENCY_BUCKETS, took.as_secs_f64());
        }
    }

    /// A group of `size` requests committed in `took` (its log write and
    /// sync, and its insert into the memory table).
    pub fn group_committed(&self, size: usize, took: Duration) {
        if let Ok(mut h) = self.groups.lock() {
            h.observe(&GROUP_BUCKETS, size as f64);
        }
        if let Ok(mut h) = self.commits.lock() {
            h.observe(&LATENCY_BUCKETS, took.as_secs_f64());
        }
    }

    pub fn queue_entered(&self) {
        self.queue_depth.fetch_add(1, Ordering::Relaxed);
    }

    /// A write refused with `overloaded`.
    pub fn rejected(&self) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }

    pub fn queue_left(&self) {
        self.queue_depth.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn log_line_dropped(&self) {
        self.log_dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// Access lines whose write failed (stderr closed or full).
    pub fn log_lines_lost(&self, lines: u64) {
        self.log_dropped.fetch_add(lines, Ordering::Relaxed);
    }

    /// A sweeper round: `lag_ms` past its expiry the most overdue key it
    /// found (0 when none was due), and `deleted` keys its deletes removed.
    pub fn swept(&self, lag_ms: u64, deleted: u64) {
        self.expiry_lag_ms.store(lag_ms, Ordering::Relaxed);
        self.expired.fetch_add(deleted, Ordering::Relaxed);
    }

    /// A request refused by the HTTP parser, before any route saw it.
    pub fn malformed_request(&self) {
        self.malformed.fetch_add(1, Ordering::Relaxed);
    }

    pub fn log_lines_dropped(&self) -> u64 {
        self.log_dropped.load(Ordering::Relaxed)
    }

    /// The Prometheus text of every family, each with `# HELP` and
    /// `# TYPE`; `db` is the database file's size and key count, if they
    /// could be read; `revision` the one applied here (on a cluster member,
    /// writes through other members included); `log_bytes` the size of
    /// the log beside the file ([`log_bytes`]).
    pub fn render(&self, db: Option<(u64, u64)>, revision: u64, log_bytes: Option<u64>) -> String {
        let mut out = String::new();
        let requests = self.requests.lock().map(|m| m.clone()).unwrap_or_default();
        family(
            &mut out,
            "kvr_http_requests_total",
            "counter",
            "HTTP requests answered, by route, method and status.",
        );
        for ((route, method, status), h) in &requests {
            let _ = writeln!(
                out,
                "kvr_http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}} {}",
                h.count
            );
        }
        family(
            &mut out,
            "kvr_http_request_duration_seconds",
            "histogram",
            "Time from a request's head to its response, by route, method and status.",
        );
        for ((route, method, status), h) in &requests {
            let labels = format!("route=\"{route}\",method=\"{method}\",status=\"{status}\"");
            h.render(
                &mut out,
                "kvr_http_request_duration_seconds",
                &labels,
                &LATENCY_BUCKETS,
            );
        }
        family(
            &mut out,
            "kvr_commit_group_size",
            "histogram",
            "Write requests per group commit (one log sync each; in a cluster, per Raft entry \
             proposed by this node).",
        );
        if let Ok(h) = self.groups.lock() {
            h.render(&mut out, "kvr_commit_group_size", "", &GROUP_BUCKETS);
        }
        family(
            &mut out,
            "kvr_commit_duration_seconds",
            "histogram",
            "Time to commit one group: its log write and sync, and its memory-table insert (in a \
             cluster: a Raft entry from its proposal to its apply here).",
        );
        if let Ok(h) = self.commits.lock() {
            h.render(
                &mut out,
                "kvr_commit_duration_seconds",
                "",
                &LATENCY_BUCKETS,
            );
        }
        let single = [
            (
                "kvr_write_queue_depth",
                "gauge",
                "Write requests waiting for the writer (503 overloaded beyond --queue-size).",
                Some(self.queue_depth.load(Ordering::Relaxed) as u64),
            ),
            (
                "kvr_revision",
                "gauge",
                "The database revision (last committed write).",
                Some(revision),
            ),
            (
                "kvr_keys",
                "gauge",
                "Keys in the database.",
                db.map(|(_, keys)| keys),
            ),
            (
                "kvr_db_bytes",
                "gauge",
                "Size of the database file in bytes.",
                db.map(|(bytes, _)| bytes),
            ),
            (
                "kvr_log_bytes",
                "gauge",
                "Size in bytes of the log beside the database file (DB.wal, or DB.raft in a \
                 cluster): writes not yet flushed into the file, which kvr_db_bytes leaves out.",
                log_bytes,
            ),
            (
                "kvr_log_lines_dropped_total",
                "counter",
                "Log lines (access and event lines) dropped because stderr could not keep up.",
                Some(self.log_lines_dropped() + super::log::events_dropped()),
            ),
            (
                "kvr_http_malformed_requests_total",
                "counter",
                "Requests refused by the HTTP parser before routing (400, 431): not in kvr_http_requests_total.",
                Some(self.malformed.load(Ordering::Relaxed)),
            ),
            (
                "kvr_connections_open",
                "gauge",
                "HTTP connections open now (at most --max-connections; those answered from the monitoring reserve beyond it are not counted).",
                Some(self.connections_open.load(Ordering::Relaxed)),
            ),
            (
                "kvr_connections_refused_total",
                "counter",
                "Connections over --max-connections refused with 503 before any route saw their request: not in kvr_http_requests_total.",
                Some(self.connections_refused.load(Ordering::Relaxed)),
            ),
            (
                "kvr_connections_reserved_total",
                "counter",
                "Connections over --max-connections whose monitoring request (/healthz, /readyz, /metrics) was answered from the reserve; the requests are in kvr_http_requests_total.",
                Some(self.connections_reserved.load(Ordering::Relaxed)),
            ),
            (
                "kvr_expired_keys_total",
                "counter",
                "Keys deleted by the expiry sweeper (each also a watch event with expired true); on a cluster member, by the leader's sweeper while this node led.",
                Some(self.expired.load(Ordering::Relaxed)),
            ),
            (
                "kvr_writes_rejected_total",
                "counter",
                "Writes refused with 503 overloaded (queue full or standing).",
                Some(self.rejected.load(Ordering::Relaxed)),
            ),
        ];
        for (name, kind, help, value) in single {
            if let Some(value) = value {
                family(&mut out, name, kind, help);
                let _ = writeln!(out, "{name} {value}");
            }
        }
        family(
            &mut out,
            "kvr_expiry_lag_seconds",
            "gauge",
            "At the expiry sweeper's last round, how long past its expiry the most overdue key it found was (0: none was due); SPEC deletes a key within about a second after it. On a cluster member, the leader's sweeper only.",
        );
        let lag_ms = self.expiry_lag_ms.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "kvr_expiry_lag_seconds {}",
            Rounded(lag_ms as f64 / 1000.0)
        );
        super::process::render(&mut out);
        out
    }
}

/// The `# HELP` and `# TYPE` lines of a family.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// The bytes of the files in a log directory and the directories in it
/// (a write-ahead log's segments, a Raft log's), `None` if it cannot be
/// read. Looked at per scrape: a few files.
pub fn log_bytes(dir: &std::path::Path) -> Option<u64> {
    let mut total = 0;
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).ok()?.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                dirs.push(entry.path());
            } else {
                total += meta.len();
            }
        }
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::Rounded;

    #[test]
    fn sums_print_to_the_nanosecond_without_float_noise() {
        let noisy = 0.000_012_316 + 0.000_015_316;
        assert_eq!(Rounded(noisy).to_string(), "0.000027632");
        assert_eq!(Rounded(0.0).to_string(), "0");
        assert_eq!(Rounded(1234.0).to_string(), "1234");
        assert_eq!(Rounded(2.5).to_string(), "2.5");
    }
}
