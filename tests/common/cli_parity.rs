//! Random command sequences give the same stdout, stderr and exit code with
//! `--db` and with `--server` (SPEC "Command line": "output and exit codes
//! are the same as with a local file"). `cli_modes.rs` walks a fixed list;
//! this draws sequences from the flags and inputs that have differed
//! before: odd keys (`..`, `%`, `?`, `#`, non-UTF-8, 4,096 and 4,097
//! bytes), conditional writes, TTLs, range flags, deletes of ranges, and
//! batches with bad lines, expired lines and `--chunk-size`.
//!
//! Shared by `tests/server/cli_modes.rs` (`--db` against `--server`) and
//! `tests/cluster/parity.rs` (one server against a three-node cluster).
//! Each case spawns two processes per step, so cases are few by default;
//! `KVR_PARITY_CASES` runs more (a soak).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use proptest::prelude::*;

const KVR: &str = env!("CARGO_BIN_EXE_kvr");

/// One command: its arguments (bytes) and its stdin.
#[derive(Debug, Clone)]
pub struct Step {
    pub args: Vec<Vec<u8>>,
    pub stdin: Vec<u8>,
}

const KEYS: &[&[u8]] = &[
    b"a",
    b"b",
    b"k1",
    b"k2",
    b"a/b",
    b"..",
    b".",
    b"a b",
    b"a+b",
    b"a%2Fb",
    b"a?x=1",
    b"a#f",
    b"\xff\xfe",
    b"\xc3\xa9",
    b"-x",
    b"",
    b"k/",
    b"/k",
    b"k//x",
    b"a\nb",
    b"p:1",
    b"p:2",
    b"p:3",
    b"p;",
    b"%",
    b"%zz",
];
/// Values given as an argument (no NUL: argv cannot carry one).
const ARG_VALUES: &[&[u8]] = &[
    b"",
    b"v",
    b"-",
    b"{\"j\":1}",
    b"\xc3\xbcn",
    b"line\n",
    b"\xff",
];
/// Values given on stdin.
const STDIN_VALUES: &[&[u8]] = &[b"", b"\x00\xff", b"v\n", b"{\"j\": 1.50}"];

fn key() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        20 => proptest::sample::select(KEYS).prop_map(<[u8]>::to_vec),
        1 => Just(vec![b'x'; 4096]),
        1 => Just(vec![b'x'; 4097]),
    ]
}

fn maybe(p: f64, args: Vec<&'static str>) -> impl Strategy<Value = Vec<Vec<u8>>> {
    proptest::bool::weighted(p).prop_map(move |on| {
        if on {
            args.iter().map(|a| a.as_bytes().to_vec()).collect()
        } else {
            Vec::new()
        }
    })
}

fn if_revision() -> impl Strategy<Value = Vec<Vec<u8>>> {
    proptest::option::weighted(0.25, 0..6u8).prop_map(|n| {
        n.map_or_else(Vec::new, |n| {
            vec![b"--if-revision".to_vec(), n.to_string().into_bytes()]
        })
    })
}

fn put() -> impl Strategy<Value = Step> {
    let ttl = proptest::option::weighted(
        0.15,
        proptest::sample::select(&["5m", "2h", "1d", "0", "x", "-5", "3651d"][..]),
    );
    let value = prop_oneof![
        4 => proptest::sample::select(ARG_VALUES).prop_map(|v| (Some(v.to_vec()), Vec::new())),
        1 => proptest::sample::select(STDIN_VALUES).prop_map(|v| (None, v.to_vec())),
    ];
    (maybe(0.3, vec!["--json"]), if_revision(), ttl, key(), value).prop_map(
        |(json, cond, ttl, key, (arg, stdin))| {
            let mut args = vec![b"put".to_vec()];
            args.extend(json);
            args.extend(cond);
            if let Some(ttl) = ttl {
                args.extend([b"--ttl".to_vec(), ttl.as_bytes().to_vec()]);
            }
            args.extend([b"--".to_vec(), key]);
            args.extend(arg);
            Step { args, stdin }
        },
    )
}

fn get() -> impl Strategy<Value = Step> {
    (maybe(0.3, vec!["--json"]), key()).prop_map(|(json, key)| {
        let mut args = vec![b"get".to_vec()];
        args.extend(json);
        args.extend([b"--".to_vec(), key]);
        Step {
            args,
            stdin: Vec::new(),
        }
    })
}

fn delete() -> impl Strategy<Value = Step> {
    let name = proptest::sample::select(&["delete", "del", "rm"][..]);
    let what = prop_oneof![
        6 => key().prop_map(|k| vec![b"--".to_vec(), k]),
        1 => proptest::sample::select(&["p:", "k", "zz"][..])
            .prop_map(|p| vec![b"--prefix".to_vec(), p.as_bytes().to_vec()]),
        1 => (key(), key()).prop_map(|(a, b)| vec![b"--range".to_vec(), a, b]),
    ];
    (name, maybe(0.3, vec!["--json"]), if_revision(), what).prop_map(|(name, json, cond, what)| {
        let mut args = vec![name.as_bytes().to_vec()];
        args.extend(json);
        args.extend(cond);
        args.extend(what);
        Step {
            args,
            stdin: Vec::new(),
        }
    })
}

fn range() -> impl Strategy<Value = Step> {
    let limit = proptest::option::weighted(0.25, 0..4u8);
    let prefix = proptest::option::weighted(0.25, proptest::sample::select(KEYS));
    let bounds = proptest::collection::vec(key(), 0..=2);
    (
        maybe(0.25, vec!["--reverse"]),
        maybe(0.25, vec!["--keys-only"]),
        maybe(0.2, vec!["--count"]),
        maybe(0.1, vec!["--json"]),
        limit,
        prefix,
        bounds,
    )
        .prop_map(|(reverse, keys_only, count, json, limit, prefix, bounds)| {
            let mut args = vec![b"range".to_vec()];
            args.extend(reverse);
            args.extend(keys_only);
            args.extend(count);
            args.extend(json);
            if let Some(n) = limit {
                args.extend([b"--limit".to_vec(), n.to_string().into_bytes()]);
            }
            if let Some(p) = prefix {
                args.extend([b"--prefix".to_vec(), p.to_vec()]);
            }
            args.push(b"--".to_vec());
            args.extend(bounds);
            Step {
                args,
                stdin: Vec::new(),
            }
        })
}

/// A JSON line of a batch, or a bad one.
fn line() -> impl Strategy<Value = String> {
    let op = prop_oneof![
        4 => proptest::sample::select(&[
            r#""value":"v""#, r#""value":"""#, r#""value":{"n": 1.50}"#, r#""value":-3"#,
            r#""value_b64":"AP8=""#, r#""value_b64":"!!""#,
        ][..]).prop_map(str::to_string),
        1 => Just(r#""op":"delete""#.to_string()),
        1 => Just(String::new()), // a put without a value
    ];
    let extra = prop_oneof![
        12 => Just(String::new()),
        2 => (0..6u8).prop_map(|n| format!(r#","if_revision":{n}"#)),
        1 => proptest::sample::select(&["3600", "0", "-1", "315360001", "\"5\""][..])
            .prop_map(|t| format!(r#","ttl":{t}"#)),
        1 => proptest::sample::select(&["1", "4102444800000"][..])
            .prop_map(|t| format!(r#","expires_at_ms":{t}"#)),
        1 => Just(r#","revision":4"#.to_string()),
        1 => Just(r#","bogus":1"#.to_string()),
    ];
    let key = proptest::sample::select(
        &[
            r#""key":"a""#,
            r#""key":"b""#,
            r#""key":"p:1""#,
            r#""key":"..""#,
            r#""key":"""#,
            r#""key_b64":"//4=""#,
            r#""key":"k1","key_b64":"azE=""#,
        ][..],
    );
    prop_oneof![
        20 => (key, op, extra).prop_map(|(k, op, extra)| {
            let op = if op.is_empty() { String::new() } else { format!(",{op}") };
            format!("{{{k}{op}{extra}}}")
        }),
        1 => Just("not json".to_string()),
        1 => Just(String::new()),
        1 => Just("[1]".to_string()),
    ]
}

fn batch() -> impl Strategy<Value = Step> {
    let chunk = proptest::option::weighted(0.2, 1..4u8);
    (
        maybe(0.3, vec!["--json"]),
        chunk,
        proptest::collection::vec(line(), 0..6),
        proptest::bool::weighted(0.85),
    )
        .prop_map(|(json, chunk, lines, newline)| {
            let mut args = vec![b"batch".to_vec()];
            args.extend(json);
            if let Some(n) = chunk {
                args.extend([b"--chunk-size".to_vec(), n.to_string().into_bytes()]);
            }
            let mut stdin = lines.join("\n");
            if newline && !stdin.is_empty() {
                stdin.push('\n');
            }
            Step {
                args,
                stdin: stdin.into_bytes(),
            }
        })
}

/// A command of the sequence.
pub fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        5 => put(),
        3 => get(),
        2 => delete(),
        6 => range(),
        6 => batch(),
        1 => Just(Step { args: vec![b"stats".to_vec()], stdin: Vec::new() }),
    ]
}

/// An item of a sequence: a command, or a restart of the second side's
/// server (with SIGTERM, or `kill -9` as a crash), after which every
/// answer must still be the same: nothing acknowledged lost, revisions,
/// key counts, expiries and idempotency records recovered.
#[derive(Debug, Clone)]
pub enum Item {
    Run(Step),
    Restart { kill: bool },
}

/// A command, or now and then a restart.
pub fn item() -> impl Strategy<Value = Item> {
    prop_oneof![
        30 => step().prop_map(Item::Run),
        1 => any::<bool>().prop_map(|kill| Item::Restart { kill }),
    ]
}

/// What a run prints that differs between two runs of the same step:
/// timings, file sizes, and the expiry a TTL gives (the clock moved).
pub fn normalize(text: &[u8]) -> String {
    let text = String::from_utf8_lossy(text);
    let mut out = String::with_capacity(text.len());
    let mut rest = &*text;
    while !rest.is_empty() {
        let next = ["\"expires_at_ms\":", "\"file_bytes\":", " in "]
            .iter()
            .filter_map(|m| rest.find(m).map(|i| (i, *m)))
            .min();
        let Some((at, mark)) = next else {
            out.push_str(rest);
            break;
        };
        out.push_str(&rest[..at + mark.len()]);
        rest = &rest[at + mark.len()..];
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if digits > 0 {
            out.push('N');
            rest = &rest[digits..];
        }
    }
    out
}

/// Runs one step as `kvr MODE... ARGS`, with its stdin fed from a thread
/// (a command may exit before reading it).
pub fn run(dir: &Path, mode: &[&str], step: &Step) -> (Option<i32>, String, String) {
    let mut cmd = std::process::Command::new(KVR);
    cmd.env_clear().current_dir(dir);
    if let Ok(path) = std::env::var("PATH") {
        cmd.env("PATH", path);
    }
    cmd.args(mode)
        .args(step.args.iter().map(|a| OsStr::from_bytes(a)));
    let out = crate::child::output_with_stdin(&mut cmd, &step.stdin);
    (
        out.status.code(),
        normalize(&out.stdout),
        normalize(&out.stderr),
    )
}

/// Runs `items` in `a` and in `b` in turn (a restart calls `restart`);
/// fails at the first difference.
pub fn same_answers(
    dir: &Path,
    a: &[&str],
    b: &[&str],
    items: &[Item],
    restart: &mut dyn FnMut(bool),
) -> Result<(), TestCaseError> {
    // Both start from a database that exists (a read of a missing file is
    // exit 1 with `--db` but not with a server, and that is by design).
    for mode in [a, b] {
        let init = Step {
            args: vec![b"put".to_vec(), b"init".to_vec(), b"1".to_vec()],
            stdin: Vec::new(),
        };
        prop_assert_eq!(run(dir, mode, &init).0, Some(0));
    }
    for (i, item) in items.iter().enumerate() {
        let step = match item {
            Item::Run(step) => step,
            Item::Restart { kill } => {
                restart(*kill);
                continue;
            }
        };
        let left = run(dir, a, step);
        let right = run(dir, b, step);
        let shown: Vec<_> = step
            .args
            .iter()
            .map(|a| String::from_utf8_lossy(a))
            .collect();
        prop_assert_eq!(
            &left,
            &right,
            "item {} of {}: kvr {:?} with stdin {:?}",
            i + 1,
            items.len(),
            shown,
            String::from_utf8_lossy(&step.stdin)
        );
    }
    Ok(())
}

/// `cases` sequences (or `KVR_PARITY_CASES`), shrunk briefly: each step
/// is two processes, and a long shrink would take minutes.
pub fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("KVR_PARITY_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(cases),
        max_shrink_iters: 64,
        ..ProptestConfig::default()
    }
}

#[test]
fn normalize_hides_timings_sizes_and_expiry_times() {
    assert_eq!(
        normalize(b"applied 1 put, 0 deletes (revision 3) in 0.01 s\n"),
        "applied 1 put, 0 deletes (revision 3) in N s\n"
    );
    assert_eq!(
        normalize(br#"{"keys":2,"revision":4,"file_bytes":110592}"#),
        r#"{"keys":2,"revision":4,"file_bytes":N}"#
    );
    assert_eq!(
        normalize(br#"{"key":"a","value":"v","revision":2,"expires_at_ms":1795000000000}"#),
        r#"{"key":"a","value":"v","revision":2,"expires_at_ms":N}"#
    );
    // Other numbers stay.
    assert_eq!(normalize(b"key \"in 5\" at 7"), "key \"in 5\" at 7");
}
