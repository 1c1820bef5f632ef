//! The server's log on stderr: every line starts with an RFC 3339 UTC
//! timestamp.
//!
//! Two kinds of lines take two paths:
//!
//! * events (start, shutdown, failures) are rare: the `log!` macro formats
//!   the whole line. In `kvr serve` ([`start_events`]) a thread of their own
//!   writes them, so that a stalled stderr (a full pipe nobody reads) never
//!   stops a request or the shutdown: a worker that wrote a line about a
//!   malformed request blocked there, and with every worker blocked the
//!   server answered nothing. The queue holds `EVENT_QUEUE` lines; past
//!   that a line is dropped and counted (`kvr_log_lines_dropped_total`), and
//!   the thread says how many once it can write again. [`flush_events`]
//!   waits for it at exit, for at most a second. Other commands write them
//!   at once;
//! * the access log, one line per request, is on the path of every request.
//!   A request only hands a small [`Access`] record to a bounded queue
//!   ([`try_send`](std::sync::mpsc::SyncSender::try_send), no waiting, no
//!   formatting); the [`AccessLog`] thread formats the lines and writes them
//!   in large chunks. When the queue is full (stderr slower than the
//!   requests) the record is dropped and counted
//!   (`kvr_log_lines_dropped_total`), and the thread says how many it
//!   lost, so a slow log never slows the requests down.
//!
//! A chunk always ends at the end of a line, so an event line written
//! directly never lands inside an access line.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{Method, Uri};

use super::metrics::Metrics;

/// The longest a flush waits for the log thread: far more than writing a
/// full queue takes on a working disk.
const FLUSH_WAIT: Duration = Duration::from_secs(1);
/// Access records that may wait for the log thread. A record is about 150
/// bytes, so the queue holds at most ~1.2 MiB; at 50,000 requests/s it
/// rides out a stall of stderr of about 160 ms before lines are dropped.
const QUEUE_LINES: usize = 8192;
/// While requests keep coming, the log thread wakes this often and writes
/// everything queued in one chunk, instead of being woken by every request
/// (a wake-up is a system call on the request's path). An idle thread
/// sleeps on the queue and wakes at the first record. Lines reach stderr
/// at most this late.
const TICK: Duration = Duration::from_millis(10);
/// The chunk is written once it is this large, even within a tick.
const CHUNK_BYTES: usize = 64 << 10;

/// One answered request, as the access log line shows it.
pub struct Access {
    pub time: SystemTime,
    pub peer: SocketAddr,
    pub method: Method,
    pub target: Target,
    pub status: u16,
    pub took: Duration,
}

/// Request targets up to this long are copied without an allocation; most
/// kvr targets (`/v1/kv/KEY`) are far shorter.
const TARGET_INLINE: usize = 96;

/// The request target (path and query), copied. Not a clone of hyper's
/// `Uri`: that is a slice of the connection's read buffer, and holding it
/// until the log thread is done would make hyper allocate a new buffer
/// for the next request on the connection.
pub enum Target {
    Inline { len: u8, bytes: [u8; TARGET_INLINE] },
    Heap(Box<str>),
}

impl Target {
    pub fn of(uri: &Uri) -> Target {
        let text = match uri.path_and_query() {
            Some(pq) => pq.as_str(),
            None => uri.authority().map_or("", |a| a.as_str()),
        };
        match u8::try_from(text.len()) {
            Ok(len) if text.len() <= TARGET_INLINE => {
                let mut bytes = [0; TARGET_INLINE];
                bytes[..text.len()].copy_from_slice(text.as_bytes());
                Target::Inline { len, bytes }
            }
            _ => Target::Heap(text.into()),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            Target::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or("?")
            }
            Target::Heap(s) => s,
        }
    }
}

enum Msg {
    Line(Access),
    /// Write everything queued, then answer.
    Flush(SyncSender<()>),
}

/// How much nicer than the request threads the access-log thread runs.
const LOG_NICE: i32 = 10;

/// The access-log thread and its queue; see the module comment. The
/// thread ends with the process (it sleeps on the queue while idle).
pub struct AccessLog {
    tx: SyncSender<Msg>,
    metrics: Arc<Metrics>,
}

impl AccessLog {
    pub fn start(metrics: Arc<Metrics>) -> std::io::Result<AccessLog> {
        let (tx, rx) = sync_channel(QUEUE_LINES);
        let m = metrics.clone();
        std::thread::Builder::new()
            .name("kvr-access-log".into())
            .spawn(move || {
                // Lines it cannot keep up with are dropped, not waited for;
                // at 10 none were, at 19 some (`docs/benchmarks.md`, "Background
                // threads run nicer").
                crate::background::run_nicer(LOG_NICE);
                run(&rx, &m)
            })?;
        Ok(AccessLog { tx, metrics })
    }

    /// Queues a line; drops it (and counts it) when the queue is full.
    pub fn record(&self, access: Access) {
        if self.tx.try_send(Msg::Line(access)).is_err() {
            self.metrics.log_line_dropped();
        }
    }

    /// Waits until every line queued so far is written (at shutdown, so
    /// that the last requests' lines come before the closing event lines),
    /// but at most `FLUSH_WAIT` (1 s): a stalled stderr must not stop the
    /// server from stopping.
    pub fn flush(&self) {
        let (done_tx, done_rx) = sync_channel(1);
        if self.tx.try_send(Msg::Flush(done_tx)).is_ok() {
            let _ = done_rx.recv_timeout(FLUSH_WAIT);
        }
    }
}

fn run(rx: &Receiver<Msg>, metrics: &Metrics) {
    let mut out = Stderr::new();
    let mut buf = Vec::with_capacity(CHUNK_BYTES * 2);
    let mut fmt = Formatter::default();
    let mut reported = 0;
    // Sleep on the queue while idle; once woken, drain it every tick until
    // a tick brings nothing.
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        loop {
            let mut got_any = false;
            while let Some(msg) = next.take().or_else(|| rx.try_recv().ok()) {
                got_any = true;
                match msg {
                    Msg::Line(a) => fmt.access(&mut buf, &a),
                    Msg::Flush(done) => {
                        out.write(&mut buf, metrics);
                        let _ = done.send(());
                    }
                }
                if buf.len() >= CHUNK_BYTES {
                    out.write(&mut buf, metrics);
                }
            }
            out.write(&mut buf, metrics);
            // Its own write: a notice that cannot be written is not an
            // access line lost (counted, it made the next notice, and so on).
            report_dropped(&mut buf, metrics, &mut reported);
            out.write_uncounted(&mut buf);
            if !got_any {
                break;
            }
            std::thread::sleep(TICK);
        }
    }
}

/// Adds a line saying how many access lines were dropped since the last
/// such line, if any were.
fn report_dropped(buf: &mut Vec<u8>, metrics: &Metrics, reported: &mut u64) {
    let dropped = metrics.log_lines_dropped();
    if dropped > *reported {
        let _ = writeln!(
            buf,
            "{} kvr serve: the log could not keep up: {} access log lines dropped \
             (kvr_log_lines_dropped_total)",
            Timestamp(SystemTime::now()),
            dropped - *reported
        );
        *reported = dropped;
    }
}

/// Formats access lines; keeps the timestamp's date and time to the
/// second, which all lines of a busy second share.
#[derive(Default)]
struct Formatter {
    second: Option<u64>,
    prefix: String,
}

impl Formatter {
    fn access(&mut self, buf: &mut Vec<u8>, a: &Access) {
        let since = a.time.duration_since(UNIX_EPOCH).unwrap_or_default();
        if self.second != Some(since.as_secs()) {
            let whole = UNIX_EPOCH + Duration::from_secs(since.as_secs());
            self.prefix = Timestamp(whole).to_string();
            self.prefix.truncate(self.prefix.len() - ".000Z".len());
            self.second = Some(since.as_secs());
        }
        // By hand rather than with `write!`: this runs for every request,
        // and the formatting machinery was most of the thread's time.
        buf.extend_from_slice(self.prefix.as_bytes());
        buf.push(b'.');
        digits(buf, u64::from(since.subsec_millis()), 3);
        buf.extend_from_slice(b"Z ");
        peer(buf, a.peer);
        buf.push(b' ');
        buf.extend_from_slice(a.method.as_str().as_bytes());
        buf.push(b' ');
        buf.extend_from_slice(a.target.as_str().as_bytes());
        buf.push(b' ');
        digits(buf, u64::from(a.status), 1);
        buf.push(b' ');
        let micros = u64::try_from(a.took.as_micros()).unwrap_or(u64::MAX);
        digits(buf, micros / 1000, 1);
        buf.push(b'.');
        digits(buf, micros % 1000, 3);
        buf.extend_from_slice(b"ms\n");
    }
}

/// Appends `ADDR:PORT` as `SocketAddr` shows it; an IPv4 peer (most) by
/// hand, as `write!` spent ~800 instructions on one.
fn peer(buf: &mut Vec<u8>, peer: SocketAddr) {
    let SocketAddr::V4(v4) = peer else {
        let _ = write!(buf, "{peer}");
        return;
    };
    for (i, octet) in v4.ip().octets().into_iter().enumerate() {
        if i > 0 {
            buf.push(b'.');
        }
        digits(buf, u64::from(octet), 1);
    }
    buf.push(b':');
    digits(buf, u64::from(v4.port()), 1);
}

/// Appends `n` in decimal, zero-padded to at least `width` digits.
fn digits(buf: &mut Vec<u8>, mut n: u64, width: usize) {
    let mut tmp = [b'0'; 20];
    let mut i = tmp.len();
    while n > 0 || tmp.len() - i < width {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    buf.extend_from_slice(&tmp[i..]);
}

/// Bytes written to a log file between two starts of its writeback.
const WRITEBACK_BYTES: u64 = 1 << 20;

/// Where access lines go. When stderr is a file, its writeback is started
/// every [`WRITEBACK_BYTES`]: otherwise the kernel writes the log out in
/// bursts of megabytes (at each journal commit), and the write-ahead log's
/// syncs, which wait for a device flush, waited behind them (p99.9 of
/// durable PUTs 33-90 ms with the log in a file, 11-24 ms with `--quiet`).
struct Stderr {
    file: bool,
    /// Bytes written since the last start of the writeback.
    since_writeback: u64,
}

impl Stderr {
    fn new() -> Stderr {
        let file = rustix::fs::fstat(std::io::stderr())
            .is_ok_and(|st| rustix::fs::FileType::from_raw_mode(st.st_mode).is_file());
        Stderr {
            file,
            since_writeback: 0,
        }
    }

    /// Writes the chunk (whole lines); a failure (a full disk, a closed
    /// stderr) loses the chunk, never the server: its lines are counted as
    /// dropped.
    fn write(&mut self, buf: &mut Vec<u8>, metrics: &Metrics) {
        if buf.is_empty() {
            return;
        }
        if std::io::stderr().write_all(buf).is_err() {
            metrics.log_lines_lost(lines_in(buf));
        }
        self.wrote(buf);
    }

    /// Writes lines that are not access lines (a failure is not counted).
    fn write_uncounted(&mut self, buf: &mut Vec<u8>) {
        if buf.is_empty() {
            return;
        }
        let _ = std::io::stderr().write_all(buf);
        self.wrote(buf);
    }

    /// Clears the chunk written, and starts the file's writeback every
    /// [`WRITEBACK_BYTES`].
    fn wrote(&mut self, buf: &mut Vec<u8>) {
        self.since_writeback += buf.len() as u64;
        buf.clear();
        if self.file && self.since_writeback >= WRITEBACK_BYTES {
            self.since_writeback = 0;
            let _ = start_writeback(std::io::stderr());
        }
    }
}

/// Starts writing a file's dirty pages out, without waiting (and drops
/// them from the page cache once clean: the server never reads its log
/// back).
fn start_writeback(file: impl std::os::fd::AsFd) -> rustix::io::Result<()> {
    rustix::fs::fadvise(file, 0, None, rustix::fs::Advice::DontNeed)
}

/// Event lines that may wait for their thread: far more than a server
/// logs in a burst of failures, and at most ~200 KiB.
const EVENT_QUEUE: usize = 1024;

enum EventMsg {
    Line(Vec<u8>),
    /// Write everything queued, then answer.
    Flush(SyncSender<()>),
}

/// The queue of the event thread, once [`start_events`] ran.
static EVENTS: std::sync::OnceLock<SyncSender<EventMsg>> = std::sync::OnceLock::new();
/// Event lines dropped because the queue was full (stderr stalled).
static EVENTS_DROPPED: AtomicU64 = AtomicU64::new(0);

/// Starts the thread that writes event lines (see the module header);
/// from then on [`event`] never waits for stderr. Once per process.
pub fn start_events() -> std::io::Result<()> {
    if EVENTS.get().is_some() {
        return Ok(());
    }
    let (tx, rx) = sync_channel(EVENT_QUEUE);
    std::thread::Builder::new()
        .name("kvr-log-events".into())
        .spawn(move || write_events(&rx))?;
    let _ = EVENTS.set(tx);
    Ok(())
}

fn write_events(rx: &Receiver<EventMsg>) {
    let mut reported = 0;
    let mut buf = Vec::new();
    while let Ok(msg) = rx.recv() {
        let mut next = Some(msg);
        let mut flushed = Vec::new();
        while let Some(msg) = next.take().or_else(|| rx.try_recv().ok()) {
            match msg {
                EventMsg::Line(line) => buf.extend_from_slice(&line),
                EventMsg::Flush(done) => flushed.push(done),
            }
        }
        let dropped = EVENTS_DROPPED.load(Ordering::Relaxed);
        if dropped > reported {
            let _ = writeln!(
                buf,
                "{} kvr serve: stderr could not keep up: {} event lines dropped \
                 (kvr_log_lines_dropped_total)",
                Timestamp(SystemTime::now()),
                dropped - reported
            );
            reported = dropped;
        }
        if std::io::stderr().write_all(&buf).is_err() {
            EVENTS_DROPPED.fetch_add(lines_in(&buf), Ordering::Relaxed);
            reported = EVENTS_DROPPED.load(Ordering::Relaxed);
        }
        buf.clear();
        for done in flushed {
            let _ = done.send(());
        }
    }
}

/// Lines in a chunk of whole lines.
fn lines_in(buf: &[u8]) -> u64 {
    buf.iter().filter(|&&b| b == b'\n').count() as u64
}

/// Event lines dropped so far (see [`start_events`]).
pub fn events_dropped() -> u64 {
    EVENTS_DROPPED.load(Ordering::Relaxed)
}

/// Waits until the event lines queued so far are written, for at most
/// `FLUSH_WAIT`: a stalled stderr must not stop the process from
/// exiting. Nothing to do before [`start_events`].
pub fn flush_events() {
    let Some(tx) = EVENTS.get() else {
        return;
    };
    let (done_tx, done_rx) = sync_channel(1);
    if tx.try_send(EventMsg::Flush(done_tx)).is_ok() {
        let _ = done_rx.recv_timeout(FLUSH_WAIT);
    }
}

/// [`event`], unless a line about `key` was written within `every`: a
/// failure that repeats with every request (a full disk, no file
/// descriptors left) would otherwise write thousands of lines a second,
/// onto the disk that is full perhaps. Says how many it left out.
pub fn event_at_most(key: &'static str, every: std::time::Duration, args: std::fmt::Arguments<'_>) {
    static LAST: Mutex<Vec<(&'static str, std::time::Instant, u64)>> = Mutex::new(Vec::new());
    let left_out = {
        let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
        let now = std::time::Instant::now();
        match last.iter_mut().find(|(k, _, _)| *k == key) {
            Some((_, at, skipped)) if now.duration_since(*at) < every => {
                *skipped += 1;
                return;
            }
            Some((_, at, skipped)) => {
                *at = now;
                std::mem::take(skipped)
            }
            None => {
                last.push((key, now, 0));
                0
            }
        }
    };
    match left_out {
        0 => event(args),
        n => event(format_args!(
            "{args} ({n} more like it since the last such line)"
        )),
    }
}

/// Writes one event line, with its timestamp: in one `write`, or through
/// the event thread once it runs (see the module header).
pub fn event(args: std::fmt::Arguments<'_>) {
    let mut line = Vec::with_capacity(128);
    let _ = writeln!(line, "{} {args}", Timestamp(SystemTime::now()));
    match EVENTS.get() {
        Some(tx) => {
            if tx.try_send(EventMsg::Line(line)).is_err() {
                EVENTS_DROPPED.fetch_add(1, Ordering::Relaxed);
            }
        }
        None => {
            let _ = std::io::stderr().write_all(&line);
        }
    }
}

/// RFC 3339 in UTC with milliseconds: `2026-11-29T05:05:05.123Z`.
pub struct Timestamp(pub SystemTime);

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let since = self.0.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since.as_secs();
        let (days, rem) = (secs / 86_400, secs % 86_400);
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
            rem / 3600,
            rem / 60 % 60,
            rem % 60,
            since.subsec_millis()
        )
    }
}

/// Year, month, day of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for days after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::{Access, Formatter, Target, Timestamp};

    #[test]
    fn access_lines_show_time_peer_request_status_and_duration() {
        let mut fmt = Formatter::default();
        let mut buf = Vec::new();
        for (ms, took) in [(5, 1_234_567), (999, 250), (0, 12_345_678_901)] {
            let access = Access {
                time: UNIX_EPOCH + Duration::from_millis(1_709_251_200_000 + ms),
                peer: "127.0.0.1:5000".parse().unwrap(),
                method: http::Method::GET,
                target: Target::of(&"/v1/kv/a?x=%FF".parse().unwrap()),
                status: 200,
                took: Duration::from_nanos(took),
            };
            fmt.access(&mut buf, &access);
        }
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "2024-03-01T00:00:00.005Z 127.0.0.1:5000 GET /v1/kv/a?x=%FF 200 1.234ms\n\
             2024-03-01T00:00:00.999Z 127.0.0.1:5000 GET /v1/kv/a?x=%FF 200 0.000ms\n\
             2024-03-01T00:00:00.000Z 127.0.0.1:5000 GET /v1/kv/a?x=%FF 200 12345.678ms\n"
        );
    }

    #[test]
    fn peers_are_written_as_socket_addr_shows_them() {
        for text in [
            "127.0.0.1:5000",
            "0.0.0.0:0",
            "255.255.255.255:65535",
            "10.20.0.9:80",
            "[::1]:8080",
            "[2001:db8::7]:1",
        ] {
            let addr: std::net::SocketAddr = text.parse().unwrap();
            let mut buf = Vec::new();
            super::peer(&mut buf, addr);
            assert_eq!(String::from_utf8(buf).unwrap(), addr.to_string());
            assert_eq!(addr.to_string(), text);
        }
    }

    #[test]
    fn targets_of_any_length_are_kept() {
        for len in [0, 1, 95, 96, 97, 255, 256, 5000] {
            let text = format!("/{}", "k".repeat(len));
            let uri: http::Uri = text.parse().unwrap();
            assert_eq!(Target::of(&uri).as_str(), text);
        }
        let uri: http::Uri = "http://h:1/p?q".parse().unwrap();
        assert_eq!(Target::of(&uri).as_str(), "/p?q");
    }

    #[test]
    fn starting_a_log_files_writeback_keeps_what_was_written() {
        use std::io::{Read, Seek, Write};
        let mut file = tempfile::tempfile().unwrap();
        let lines: Vec<u8> = (0..40_000)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect();
        file.write_all(&lines).unwrap();
        super::start_writeback(&file).unwrap();
        file.write_all(b"after\n").unwrap();
        file.rewind().unwrap();
        let mut back = Vec::new();
        file.read_to_end(&mut back).unwrap();
        assert_eq!(&back[..lines.len()], &lines[..]);
        assert_eq!(&back[lines.len()..], b"after\n");
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let at = |s: u64, ms: u64| {
            Timestamp(UNIX_EPOCH + Duration::from_secs(s) + Duration::from_millis(ms)).to_string()
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        // 2000-02-29 (a leap day of a century leap year), 23:59:59.999.
        assert_eq!(at(951_868_799, 999), "2000-02-29T23:59:59.999Z");
        assert_eq!(at(1_709_251_200, 5), "2024-03-01T00:00:00.005Z");
        assert_eq!(at(4_102_444_800, 0), "2100-01-01T00:00:00.000Z");
    }
}
