//! `kvr bench`: a load generator in the spirit of redis-benchmark.
//!
//! N client tasks each send one request at a time, against a server over
//! HTTP (`target::Http`, one keep-alive connection per client) or against
//! the engine alone (`target::Local`: the same group-commit writer and
//! write-ahead log as the server, without HTTP). Latencies of successful
//! requests go into one HDR histogram per client, merged at the end; errors
//! are counted by kind. Only flags on the command line choose the target:
//! KVR_DB and KVR_SERVER are ignored, a run without `--db` uses a temporary
//! file, and against a server only keys under `kvr-bench/` are written.

mod target;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;

use crate::cli::{BenchArgs, Global, Workload, given_on_command_line};
use crate::error::Error;
use target::Target;

/// Run length when neither `--duration` nor `--requests` is given.
const DEFAULT_DURATION: Duration = Duration::from_secs(10);
/// Most clients of a run: each holds a connection and a histogram of about
/// 0.3 MB (100,000 clients took 23 GB and the machine's memory). A 2-core
/// server saturates long before this, and `serve` takes 4,096 connections
/// by default.
const MAX_CLIENTS: usize = 10_000;
/// Keys per prefill request: large enough to load a million keys in a few
/// seconds, small enough for the server's default batch limits.
const PREFILL_CHUNK: u64 = 10_000;
/// Highest latency the histograms track (longer ones are clamped).
const MAX_LATENCY: Duration = Duration::from_secs(60);
/// How long a client waits after a 503, unless `--no-backoff`: the
/// server's `Retry-After`.
const BACKOFF: Duration = Duration::from_secs(1);
/// Every key the benchmark writes starts with this.
pub const KEY_PREFIX: &str = "kvr-bench/";

pub fn run(g: &Global, args: BenchArgs) -> anyhow::Result<()> {
    check(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let target = Target::open(g, &args).await?;
        let result = bench(&target, &args).await;
        target.close().await;
        result
    })
}

fn check(args: &BenchArgs) -> Result<(), Error> {
    let bad = |m: &str| Err(Error::invalid(m.to_string()));
    if !(1..=MAX_CLIENTS).contains(&args.clients) {
        return Err(Error::invalid(format!(
            "--clients must be 1 to {MAX_CLIENTS} (each client is a connection and a \
             latency histogram of about 0.3 MB)"
        )));
    }
    if args.keyspace == 0 || args.batch_size == 0 || args.range_size == 0 {
        return bad("--keyspace, --batch-size and --range-size must be at least 1");
    }
    // Keys are the prefix and a hex index; the server takes 1 to 4,096 bytes.
    let shortest = KEY_PREFIX.len() + 1;
    if !(shortest..=crate::limits::MAX_KEY_BYTES).contains(&args.key_size) {
        return Err(Error::invalid(format!(
            "--key-size must be {shortest} to {} (keys are {KEY_PREFIX} and an index)",
            crate::limits::MAX_KEY_BYTES
        )));
    }
    // Every index the run writes or reads must fit the key's hex digits,
    // or the keys come out longer than --key-size.
    let indexes = args.keyspace.max(args.prefill);
    let digits = hex_digits_for(indexes);
    if args.key_size - KEY_PREFIX.len() < digits {
        return Err(Error::invalid(format!(
            "--key-size {} is too short for {indexes} keys: they are {KEY_PREFIX} and a hex \
             index of {digits} digits, so --key-size {} or more (or a smaller --keyspace)",
            args.key_size,
            KEY_PREFIX.len() + digits
        )));
    }
    if args.range_size > MAX_RANGE_SIZE {
        return Err(Error::invalid(format!(
            "--range-size must be at most {MAX_RANGE_SIZE} (a page of a range)"
        )));
    }
    if args.requests == Some(0) {
        return bad("--requests must be at least 1");
    }
    if !(0.0..=1.0).contains(&args.read_ratio) {
        return bad("--read-ratio must be between 0 and 1");
    }
    if let Some(d) = args.duration
        && !(d.is_finite() && d > 0.0)
    {
        return bad("--duration must be a positive number of seconds");
    }
    Ok(())
}

/// Hex digits that write every index below `n`.
fn hex_digits_for(n: u64) -> usize {
    let largest = n.saturating_sub(1);
    (64 - largest.leading_zeros() as usize).div_ceil(4).max(1)
}

/// The key of index `i`: the prefix, then `i` in hex padded to `--key-size`
/// (which [`check`] made wide enough for every index of the run).
pub fn key(i: u64, key_size: usize) -> Vec<u8> {
    let width = key_size.saturating_sub(KEY_PREFIX.len()).max(1);
    format!("{KEY_PREFIX}{i:0width$x}").into_bytes()
}

/// The most keys a range request of the range workload asks for: a JSON
/// page's limit (SPEC).
const MAX_RANGE_SIZE: usize = 10_000;

/// How long a client goes on while the server cannot be reached: past
/// this it stops, and the run fails (the server went away).
const LOST_AFTER: Duration = Duration::from_secs(1);

/// A seed of this run: keys are drawn afresh each run, so a get run after a
/// put run does not read exactly the keys that run just wrote.
fn run_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32)
}

/// A small, fast generator: each client has its own.
pub struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }

    fn chance(&mut self, p: f64) -> bool {
        (self.below(1 << 24) as f64) < p * f64::from(1u32 << 24)
    }
}

/// What one client saw.
struct Tally {
    latency: Histogram<u64>,
    errors: BTreeMap<String, u64>,
}

async fn bench(target: &Arc<Target>, args: &BenchArgs) -> anyhow::Result<()> {
    // SIGINT, SIGTERM or SIGHUP end the run early, the prefill included:
    // the clients stop, the figures so far are printed, a temporary file is
    // removed (the default handlers killed the process, leaving it and its
    // log behind).
    let stopped = Arc::new(std::sync::OnceLock::new());
    let watcher = tokio::spawn(watch_signals(stopped.clone()));
    if args.prefill > 0 {
        let started = Instant::now();
        let written = target.prefill(args, &stopped).await?;
        if let Some(signal) = stopped.get() {
            watcher.abort();
            return Err(Error::Interrupted(format!(
                "interrupted ({signal}) during the prefill, after {written} of {} keys; \
                 nothing was measured",
                args.prefill
            ))
            .into());
        }
        if !args.json {
            let _ = std::io::Write::write_fmt(
                &mut std::io::stderr(),
                format_args!(
                    "prefilled {} keys in {:.1} s\n",
                    args.prefill,
                    started.elapsed().as_secs_f64()
                ),
            );
        }
    }
    let budget = args.requests.map(AtomicU64::new).map(Arc::new);
    let duration = match (args.duration, args.requests) {
        (Some(d), _) => Some(Duration::from_secs_f64(d)),
        (None, Some(_)) => None,
        (None, None) => Some(DEFAULT_DURATION),
    };
    let started = Instant::now();
    let deadline = duration.map(|d| started + d);
    let mut tasks = Vec::with_capacity(args.clients);
    let seed = run_seed();
    for c in 0..args.clients {
        let (target, budget) = (target.clone(), budget.clone());
        let params = Params::of(args);
        let client_seed = seed.wrapping_add(c as u64);
        let stopped = stopped.clone();
        tasks.push(tokio::spawn(async move {
            let ends = Ends {
                deadline,
                budget: budget.as_deref(),
                stopped: &stopped,
            };
            client(client_seed, &target, &params, ends).await
        }));
    }
    let mut total = Tally {
        latency: new_histogram()?,
        errors: BTreeMap::new(),
    };
    for t in tasks {
        let tally = t.await.context("a client task failed")??;
        total
            .latency
            .add(&tally.latency)
            .context("merging histograms")?;
        for (k, n) in tally.errors {
            *total.errors.entry(k).or_default() += n;
        }
    }
    watcher.abort();
    report(args, &total, started.elapsed(), target.describe())?;
    if let Some(signal) = stopped.get() {
        return Err(Error::Interrupted(format!(
            "interrupted ({signal}): the run stopped early; the figures above are of the part \
             before"
        ))
        .into());
    }
    verdict(args, &total)
}

/// Sets `stopped` to the name of the first of SIGINT, SIGTERM and SIGHUP.
async fn watch_signals(stopped: Arc<std::sync::OnceLock<&'static str>>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        return;
    };
    let name = tokio::select! {
        _ = int.recv() => "SIGINT",
        _ = term.recv() => "SIGTERM",
        _ = hup.recv() => "SIGHUP",
    };
    let _ = stopped.set(name);
}

/// The error kind of a range request that found no key at or after its
/// start: like a GET of an absent key, it measured nothing.
pub const EMPTY_RANGE: &str = "empty_range";

/// What ends a client's run: the deadline, the request budget, a signal.
struct Ends<'a> {
    deadline: Option<Instant>,
    budget: Option<&'a AtomicU64>,
    stopped: &'a std::sync::OnceLock<&'static str>,
}

/// A run whose requests mostly failed measured nothing: exit 1 when they
/// were mostly reads of absent keys (with what to do), else 3.
fn verdict(args: &BenchArgs, t: &Tally) -> anyhow::Result<()> {
    let ok = t.latency.len();
    let errors: u64 = t.errors.values().sum();
    // The server went away during the run (it answered at the start):
    // whatever the counts, the figures are not a measurement of it.
    if let Some(n) = t.errors.get("connect") {
        return Err(Error::Unavailable {
            message: format!(
                "the server could not be reached for {n} requests during the run (it went \
                 away?); the run stopped and the figures above are not a measurement"
            ),
            overloaded: false,
        }
        .into());
    }
    if errors <= ok {
        return Ok(());
    }
    let (kind, n) = t
        .errors
        .iter()
        .max_by_key(|(_, n)| **n)
        .map_or(("none", 0), |(k, n)| (k.as_str(), *n));
    let not_found = kind == "not_found" || kind == EMPTY_RANGE;
    let mut message = format!(
        "{errors} of {} requests failed (most often: {kind}, {n} times); the figures above \
         measure failures",
        ok + errors
    );
    if not_found {
        // A run without --db or --server has a new, empty file: only a
        // prefill in the same run fills it.
        let earlier = match given_on_command_line("db") || given_on_command_line("server") {
            true => " (or run a put workload of that --keyspace first)",
            false => "",
        };
        message.push_str(&format!(
            "; most keys read were never written: add --prefill {}{earlier}",
            args.keyspace
        ));
    }
    Err(Error::MostlyFailed { message, not_found }.into())
}

fn new_histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, MAX_LATENCY.as_nanos() as u64, 3).context("histogram bounds")
}

/// What a client needs from the arguments.
#[derive(Clone)]
pub struct Params {
    pub workload: Workload,
    pub key_size: usize,
    pub value: bytes::Bytes,
    pub keyspace: u64,
    pub read_ratio: f64,
    pub batch_size: usize,
    pub range_size: usize,
    pub no_backoff: bool,
}

impl Params {
    fn of(args: &BenchArgs) -> Params {
        Params {
            workload: args.workload,
            key_size: args.key_size,
            value: bytes::Bytes::from(vec![b'x'; args.value_size]),
            keyspace: args.keyspace,
            read_ratio: args.read_ratio,
            batch_size: args.batch_size,
            range_size: args.range_size,
            no_backoff: args.no_backoff,
        }
    }
}

/// One client: requests back to back until the deadline or the budget.
async fn client(seed: u64, target: &Target, p: &Params, ends: Ends<'_>) -> anyhow::Result<Tally> {
    let Ends {
        deadline,
        budget,
        stopped,
    } = ends;
    let mut tally = Tally {
        latency: new_histogram()?,
        errors: BTreeMap::new(),
    };
    let mut rng = Rng::new(seed);
    let mut conn = target.connect().await;
    // Since when the server could not be reached, if it cannot now.
    let mut lost: Option<Instant> = None;
    loop {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        if lost.is_some_and(|at| at.elapsed() >= LOST_AFTER) || stopped.get().is_some() {
            break;
        }
        if let Some(b) = budget
            && b.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_err()
        {
            break;
        }
        let read = match p.workload {
            Workload::Get | Workload::Range | Workload::Healthz => true,
            Workload::Mixed => rng.chance(p.read_ratio),
            Workload::Put | Workload::Batch => false,
        };
        let started = Instant::now();
        match target.request(&mut conn, p, &mut rng, read).await {
            Ok(()) => {
                lost = None;
                tally
                    .latency
                    .saturating_record(started.elapsed().as_nanos() as u64)
            }
            Err(kind) => {
                if kind == "connect" {
                    lost.get_or_insert(started);
                }
                let retry_later = kind == "overloaded" || kind == "unavailable";
                *tally.errors.entry(kind).or_default() += 1;
                if retry_later && !p.no_backoff {
                    tokio::time::sleep(BACKOFF).await;
                }
            }
        }
    }
    Ok(tally)
}

fn report(args: &BenchArgs, t: &Tally, took: Duration, target: String) -> crate::error::Result<()> {
    let ok = t.latency.len();
    let secs = took.as_secs_f64().max(1e-9);
    let ops = ok as f64 / secs;
    let ms = |q: f64| t.latency.value_at_quantile(q) as f64 / 1e6;
    let max_ms = t.latency.max() as f64 / 1e6;
    let errors: u64 = t.errors.values().sum();
    // A batch request writes --batch-size keys: bulk loads are sized in keys.
    let keys_per_sec =
        matches!(args.workload, Workload::Batch).then(|| ops * args.batch_size as f64);
    if args.json {
        let mut v = serde_json::json!({
            "workload": format!("{:?}", args.workload).to_lowercase(),
            "target": target,
            "clients": args.clients,
            "duration_s": secs,
            "requests": ok + errors,
            "ok": ok,
            "ops_per_sec": ops,
            "p50_ms": ms(0.5), "p90_ms": ms(0.9), "p99_ms": ms(0.99), "p999_ms": ms(0.999),
            "max_ms": max_ms,
            "errors": t.errors,
            "errors_total": errors,
        });
        if let Some(keys) = keys_per_sec {
            v["keys_per_sec"] = keys.into();
        }
        return super::print_out(format!("{v}\n"));
    }
    use std::fmt::Write as _;
    let mut text = String::new();
    let _ = writeln!(
        text,
        "{:?} on {target}: {} client{}, {:.1} s",
        args.workload,
        args.clients,
        if args.clients == 1 { "" } else { "s" },
        secs
    );
    // A batch or range request is many operations: count what was sent.
    let rate = match (args.workload, keys_per_sec) {
        (_, Some(keys)) => format!("{ops:.0} requests/s, {keys:.0} keys/s"),
        (Workload::Range, _) => format!("{ops:.0} requests/s"),
        _ => format!("{ops:.0} ops/s"),
    };
    let _ = writeln!(text, "  {ok} ok, {errors} errors, {rate}");
    if ok == 0 {
        // Not a row of zeros, which reads as a very fast server.
        let _ = writeln!(text, "  latency ms: none (no request succeeded)");
    } else {
        let _ = writeln!(
            text,
            "  latency ms: p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
            ms(0.5),
            ms(0.9),
            ms(0.99),
            ms(0.999),
            max_ms
        );
    }
    for (kind, n) in &t.errors {
        let _ = writeln!(text, "  error {kind}: {n}");
    }
    super::print_out(text)
}

/// Whether the run goes to a server (only the command line decides).
fn server_url(g: &Global) -> Option<String> {
    if !given_on_command_line("server") {
        return None;
    }
    g.server
        .as_deref()
        .and_then(|s| s.split(',').next())
        .map(|s| crate::client::normal_url(s.trim()))
}
