//! The command line through the real binary: every command, flag and exit
//! code of SPEC "Command line", each test in its own temp dir.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod util;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use serde_json::json;
use util::{Env, parse_lines};

/// Runs each listed `fn(Env)` three times: against the file (`--db`),
/// through a `kvr serve` on it (`--server`), and through one serving HTTPS
/// (`--server https://… --cacert`). Output and exit codes must be the same.
macro_rules! in_every_mode {
    ($($name:ident),* $(,)?) => {
        mod with_db {
            $(#[test]
            fn $name() {
                super::$name(super::Env::new())
            })*
        }
        mod with_server {
            $(#[test]
            fn $name() {
                super::$name(super::Env::served())
            })*
        }
        mod with_tls_server {
            $(#[test]
            fn $name() {
                super::$name(super::Env::served_tls())
            })*
        }
    };
}

in_every_mode!(
    put_then_get_round_trips,
    put_json_prints_revision_and_every_put_takes_one,
    all_byte_values_round_trip_through_stdin,
    one_mib_random_value_round_trips,
    empty_stdin_stores_an_empty_value,
    value_arguments_are_literal,
    unusual_keys_work,
    get_missing_key_exits_1,
    delete_removes_and_takes_a_revision,
    delete_missing_key_exits_1_and_changes_nothing,
    delete_prefix_and_range_delete_atomically,
    conditional_put,
    conditional_delete,
    range_is_bytewise_ordered,
    range_bounds_are_half_open,
    range_start_after_end_is_a_usage_error,
    range_prefix,
    range_keys_only_lines,
    range_into_batch_reproduces_the_data,
    range_into_closed_pipe_exits_0_quietly,
    batch_applies_in_order_with_revisions,
    batch_from_file_and_dash,
    empty_batch_changes_nothing,
    a_batch_starting_with_a_bom_says_so,
    batch_rejections_name_the_line_and_write_nothing,
    put_limits_hold_on_the_command_line,
    batch_condition_failure_exits_4_and_writes_nothing,
    batch_conditions_see_the_state_before_the_batch,
    revision_ttl_and_expires_at_ms_are_accepted,
    stats_reports_counts_and_file_size,
    empty_key_is_a_usage_error_for_reads_too,
    del_and_rm_are_delete,
    stats_accepts_json,
    range_count_prints_only_the_count,
    range_limit_0_is_a_usage_error,
    unknown_fields_and_non_objects_are_bad_lines,
    batch_chunk_size_applies_parts_atomically,
    batch_chunk_size_failure_names_the_line_and_keeps_earlier_parts,
    batch_chunk_size_checks_a_file_whole_first,
    batch_bad_line_outranks_an_earlier_failed_condition,
);

fn put_then_get_round_trips(env: Env) {
    env.kvr(["put", "user:1", "alice"]).ok();
    assert_eq!(env.kvr(["get", "user:1"]).ok().out.stdout, b"alice");
    let line = env.kvr(["get", "--json", "user:1"]).ok().stdout_text();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&line).unwrap(),
        json!({"key":"user:1","value":"alice","revision":1})
    );
}

fn put_json_prints_revision_and_every_put_takes_one(env: Env) {
    let a = env.kvr(["put", "--json", "k", "v"]).ok().stdout_text();
    assert_eq!(a, "{\"revision\":1}\n");
    // Storing the same value again still takes a revision.
    let b = env.kvr(["put", "--json", "k", "v"]).ok().stdout_text();
    assert_eq!(b, "{\"revision\":2}\n");
    assert_eq!(env.kvr(["put", "k", "w"]).ok().stdout_text(), "");
    assert_eq!(env.stats()["revision"], 3);
    assert_eq!(env.stats()["keys"], 1);
}

fn all_byte_values_round_trip_through_stdin(env: Env) {
    let all: Vec<u8> = (0..=255u8).collect();
    env.kvr(["put", "bytes"]).stdin(all.clone()).ok();
    assert_eq!(env.kvr(["get", "bytes"]).ok().out.stdout, all);
    let line = &env.range_json(&[])[0];
    assert!(line.get("value_b64").is_some(), "{line}");
}

fn one_mib_random_value_round_trips(env: Env) {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let value: Vec<u8> = (0..1 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    env.kvr(["put", "big"]).stdin(value.clone()).ok();
    assert_eq!(env.kvr(["get", "big"]).ok().out.stdout, value);
}

fn empty_stdin_stores_an_empty_value(env: Env) {
    env.kvr(["put", "empty"]).stdin(Vec::new()).ok();
    assert_eq!(env.kvr(["get", "empty"]).ok().out.stdout, b"");
    env.kvr(["get", "empty"]).ok();
}

fn value_arguments_are_literal(env: Env) {
    // `-` is a value, not "read stdin".
    env.kvr(["put", "dash", "-"])
        .stdin(b"ignored".to_vec())
        .ok();
    assert_eq!(env.kvr(["get", "dash"]).ok().out.stdout, b"-");
    // After `--`, values starting with `-` work.
    env.kvr(["put", "--", "neg", "-5"]).ok();
    assert_eq!(env.kvr(["get", "neg"]).ok().out.stdout, b"-5");
    env.kvr(["put", "--", "--flag", "--json"]).ok();
    assert_eq!(env.kvr(["get", "--", "--flag"]).ok().out.stdout, b"--json");
}

fn unusual_keys_work(env: Env) {
    for key in ["a/b/c", "with space", "ключ", "日本語", "..", "%2F"] {
        env.kvr(["put", key, key]).ok();
        assert_eq!(env.kvr(["get", key]).ok().out.stdout, key.as_bytes());
    }
    // Binary keys through key_b64, readable back with raw argument bytes.
    env.kvr(["batch"])
        .stdin(r#"{"key_b64":"/v8B","value":"bin"}"#)
        .ok();
    let raw = OsStr::from_bytes(b"\xfe\xff\x01");
    let mut run = env.kvr(["get"]);
    run.cmd.arg(raw);
    assert!(run.ok().out.stdout == b"bin");
    let keys = env.range_json(&["--keys-only"]);
    assert!(keys.contains(&json!({"key_b64":"/v8B"})), "{keys:?}");
}

fn get_missing_key_exits_1(env: Env) {
    env.kvr(["put", "a", "1"]).ok();
    env.kvr(["get", "nope"]).code(1).stderr_has("not found");
    env.kvr(["get", "--json", "nope"]).code(1);
}

#[test]
fn read_commands_never_create_a_database() {
    let env = Env::new();
    let db = env.db();
    let expected = format!("kvr: error: {} does not exist", db.display());
    for args in [
        vec!["get", "k"],
        vec!["delete", "k"],
        vec!["range"],
        vec!["stats"],
    ] {
        let done = env.kvr(args).code(1);
        assert_eq!(done.stderr_text().lines().next().unwrap(), expected);
        assert!(!db.exists(), "{} created a file", done.report());
    }
}

#[test]
fn usage_errors_are_found_before_a_database_is_opened_or_created() {
    let env = Env::new();
    let db = env.db();
    let long = "k".repeat(4097);
    for args in [
        vec!["put", "", "v"],
        vec!["put", &long, "v"],
        vec!["get", ""],
        vec!["get", &long],
        vec!["get", "--json", &long],
        vec!["delete", ""],
        vec!["delete", "--if-revision", "0", "k"],
        vec!["range", "--limit", "0"],
        vec!["range", "b", "a"],
        vec!["batch", "--chunk-size", "0"],
        vec!["batch", "--chunk-size", "-1"],
        vec!["put", "--if-revision", "-1", "k", "v"],
        vec!["delete", "--if-revision", "-1", "k"],
    ] {
        let done = env
            .kvr(&args)
            .stdin("{\"key\":\"k\",\"value\":\"v\"}\n")
            .code(2);
        assert!(!db.exists(), "{} created a file", done.report());
    }
    // A negative number is said to be one, not taken for a flag (whose
    // tip, `-- -1`, led to another error).
    env.kvr(["put", "--if-revision", "-1", "k", "v"])
        .code(2)
        .stderr_has("invalid value '-1' for '--if-revision <N>': a revision is 0 or more");
    env.kvr(["batch", "--chunk-size", "-1"])
        .stdin("")
        .code(2)
        .stderr_has("invalid value '-1' for '--chunk-size <N>': must be at least 1");
}

/// An empty file name (`kvr backup "$DEST"` with DEST unset) says so:
/// clap's own message said that no value was supplied. Nothing is written.
#[test]
fn an_empty_file_name_is_refused_as_empty() {
    let env = Env::new();
    env.kvr(["put", "k", "v1"]).ok();
    let cases: [&[&str]; 3] = [
        &["backup", ""],
        &["batch", ""],
        &["--token-file", "", "stats"],
    ];
    let files = || std::fs::read_dir(env.path(".")).unwrap().count();
    let before = files();
    for args in cases {
        let done = env
            .kvr(args)
            .stdin("{\"key\":\"k\",\"value\":\"v2\"}\n")
            .code(2);
        let text = done.stderr_text();
        assert!(
            text.starts_with("kvr: error: invalid value '' for '"),
            "{text}"
        );
        assert!(text.contains("': a file name cannot be empty"), "{text}");
    }
    env.kvr(["stats"])
        .env("KVR_CACERT", "")
        .code(2)
        .stderr_has("invalid value '' in the environment variable KVR_CACERT (it sets --cacert): a file name cannot be empty");
    assert_eq!(files(), before);
    assert_eq!(env.kvr(["get", "k"]).ok().stdout_text(), "v1");
    let stats = env.kvr(["stats"]).ok().stdout_text();
    assert!(stats.contains("\"revision\":1"), "{stats}");
}

#[test]
fn db_flag_env_and_default() {
    let env = Env::new();
    // `--db "$DB"` with $DB unset: a usage error that says what to give.
    for args in [&["--db", "", "put", "k", "v"][..], &["--db=", "stats"]] {
        env.kvr_bare(args)
            .code(2)
            .stderr_has("kvr: error: --db needs a path (none was given, or an empty one)");
    }
    assert!(!env.path("kvr.redb").exists());
    // Default: ./kvr.redb in the current directory.
    env.kvr_bare(["put", "k", "default"]).ok();
    assert!(env.path("kvr.redb").exists());
    // A set but empty KVR_DB is the default too, and so is every other
    // empty variable but the tokens' and TLS files' (found by an audit:
    // KVR_TIMEOUT= was exit 2, "invalid value ''").
    let got = env.kvr_bare(["get", "k"]).env("KVR_DB", "").ok();
    assert_eq!(got.out.stdout, b"default");
    for var in [
        "KVR_TIMEOUT",
        "KVR_LOCK_TIMEOUT",
        "KVR_CACHE_MIB",
        "KVR_CONSISTENCY",
        "KVR_SERVER",
    ] {
        let got = env.kvr_bare(["get", "k"]).env(var, "").ok();
        assert_eq!(got.out.stdout, b"default", "{var}=");
    }
    env.kvr_bare(["serve", "--listen", "127.0.0.1:0"])
        .env("KVR_TLS_CERT", "")
        .code(2)
        .stderr_has("KVR_TLS_CERT");
    // KVR_DB names the file; a --db flag beats it.
    let from_env = env.path("env.redb");
    env.kvr_bare(["put", "k", "env"])
        .env("KVR_DB", &from_env)
        .ok();
    assert!(from_env.exists());
    let flag = env.path("flag.redb");
    env.kvr_bare(["--db", flag.to_str().unwrap(), "put", "k", "flag"])
        .env("KVR_DB", &from_env)
        .ok();
    let got = env
        .kvr_bare(["get", "k"])
        .env("KVR_DB", &from_env)
        .ok()
        .out
        .stdout;
    assert_eq!(got, b"env");
    let got = env
        .kvr_bare(["--db", flag.to_str().unwrap(), "get", "k"])
        .ok();
    assert_eq!(got.out.stdout, b"flag");
}

fn delete_removes_and_takes_a_revision(env: Env) {
    env.kvr(["put", "a", "1"]).ok();
    env.kvr(["put", "b", "2"]).ok();
    let out = env.kvr(["delete", "--json", "a"]).ok().stdout_text();
    assert_eq!(out, "{\"revision\":3}\n");
    env.kvr(["get", "a"]).code(1);
    assert_eq!(env.stats()["keys"], 1);
}

fn delete_prefix_and_range_delete_atomically(env: Env) {
    for k in ["a:1", "a:2", "b:1", "b:2", "c"] {
        env.kvr(["put", k, "v"]).ok();
    }
    let out = env
        .kvr(["delete", "--json", "--prefix", "a:"])
        .ok()
        .stdout_text();
    assert_eq!(out, "{\"deleted\":2,\"revision\":7}\n");
    env.kvr(["del", "--range", "b:2", "d"]).ok();
    assert_eq!(env.stats()["revision"], 9);
    // Nothing matched: exit 0, no revision taken.
    let out = env
        .kvr(["rm", "--json", "--prefix", "zz"])
        .ok()
        .stdout_text();
    assert_eq!(out, "{\"deleted\":0,\"revision\":9}\n");
    // A key with --prefix, or --range START > END: usage errors, nothing deleted.
    let before = env.snapshot();
    env.kvr(["delete", "b:1", "--prefix", "b"]).code(2);
    env.kvr(["delete", "--range", "z", "a"]).code(2);
    // Two empty bounds are no range: never "delete everything".
    env.kvr(["delete", "--range", "", ""])
        .code(2)
        .stderr_has("delete --range needs a non-empty START or END");
    assert_eq!(env.snapshot(), before);
    assert_eq!(env.stats()["keys"], 1);
    // An empty END is no bound: from b:1 on.
    let out = env
        .kvr(["delete", "--json", "--range", "b:1", ""])
        .ok()
        .stdout_text();
    assert_eq!(out, "{\"deleted\":1,\"revision\":10}\n");
    env.kvr(["put", "c", "v"]).ok();
    // '' is every key.
    env.kvr(["delete", "--prefix", ""]).ok();
    assert_eq!(env.stats()["keys"], 0);
}

fn delete_missing_key_exits_1_and_changes_nothing(env: Env) {
    env.kvr(["put", "a", "1"]).ok();
    let before = env.snapshot();
    let file = env.file_if_local();
    env.kvr(["delete", "nope"]).code(1).stderr_has("not found");
    assert_eq!(env.snapshot(), before);
    // Not a byte of the file either (it is not opened for writing).
    assert!(env.file_if_local() == file);
}

fn conditional_put(env: Env) {
    // 0: only if absent.
    env.kvr(["put", "--if-revision", "0", "k", "v1"]).ok();
    let before = env.snapshot();
    let file = env.file_if_local();
    env.kvr(["put", "--if-revision", "0", "k", "v2"])
        .code(4)
        .stderr_has("precondition failed");
    env.kvr(["put", "--if-revision", "7", "k", "v2"]).code(4);
    assert_eq!(env.snapshot(), before);
    assert!(env.file_if_local() == file);
    env.kvr(["put", "--if-revision", "1", "k", "v2"]).ok();
    assert_eq!(env.kvr(["get", "k"]).ok().out.stdout, b"v2");
}

fn conditional_delete(env: Env) {
    env.kvr(["put", "k", "v"]).ok();
    let before = env.snapshot();
    let file = env.file_if_local();
    env.kvr(["delete", "--if-revision", "5", "k"]).code(4);
    // A missing key under a condition is a failed precondition, not "not found".
    env.kvr(["delete", "--if-revision", "1", "absent"]).code(4);
    // 0 would mean "absent": a usage error for delete.
    env.kvr(["delete", "--if-revision", "0", "k"]).code(2);
    assert_eq!(env.snapshot(), before);
    assert!(env.file_if_local() == file);
    env.kvr(["delete", "--if-revision", "1", "k"]).ok();
    env.kvr(["get", "k"]).code(1);
}

fn load(env: &Env, keys: &[&[u8]]) {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let lines: String = keys
        .iter()
        .map(|k| format!("{{\"key_b64\":\"{}\",\"value\":\"v\"}}\n", b64.encode(k)))
        .collect();
    env.kvr(["batch"]).stdin(lines).ok();
}

fn keys_of(lines: &[serde_json::Value]) -> Vec<String> {
    lines
        .iter()
        .map(|l| {
            l["key"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| format!("b64:{}", l["key_b64"].as_str().unwrap()))
        })
        .collect()
}

fn range_is_bytewise_ordered(env: Env) {
    load(&env, &[b"b", b"a\x00", b"a", b"B", b"ab"]);
    let keys = keys_of(&env.range_json(&[]));
    assert_eq!(keys, ["B", "a", "a\u{0}", "ab", "b"]);
}

fn range_bounds_are_half_open(env: Env) {
    load(&env, &[b"a", b"b", b"c", b"d"]);
    assert_eq!(keys_of(&env.range_json(&["b", "d"])), ["b", "c"]);
    assert_eq!(keys_of(&env.range_json(&["b"])), ["b", "c", "d"]);
    assert_eq!(keys_of(&env.range_json(&["bb", "c"])), Vec::<String>::new());
    assert_eq!(keys_of(&env.range_json(&["b", "b"])), Vec::<String>::new());
    assert_eq!(keys_of(&env.range_json(&["", "b"])), ["a"]);
    // An empty START or END is no bound (no key is empty; HTTP's `end=`),
    // with --db as over a server.
    assert_eq!(keys_of(&env.range_json(&["b", ""])), ["b", "c", "d"]);
    assert_eq!(keys_of(&env.range_json(&["", ""])), ["a", "b", "c", "d"]);
    assert_eq!(keys_of(&env.range_json(&["x"])), Vec::<String>::new());
    assert_eq!(
        keys_of(&env.range_json(&["--reverse"])),
        ["d", "c", "b", "a"]
    );
    assert_eq!(
        keys_of(&env.range_json(&["--reverse", "b", "d"])),
        ["c", "b"]
    );
    assert_eq!(keys_of(&env.range_json(&["--limit", "2"])), ["a", "b"]);
    assert_eq!(
        keys_of(&env.range_json(&["--limit", "2", "--reverse"])),
        ["d", "c"]
    );
}

fn range_start_after_end_is_a_usage_error(env: Env) {
    load(&env, &[b"a"]);
    env.kvr(["range", "b", "a"]).code(2);
}

fn range_prefix(env: Env) {
    load(
        &env,
        &[
            b"app",
            b"apple",
            b"apply",
            b"apq",
            b"b",
            b"\xff",
            b"\xff\xff",
            b"\xff\xff\x01",
            b"\xfe",
        ],
    );
    assert_eq!(
        keys_of(&env.range_json(&["--prefix", "app"])),
        ["app", "apple", "apply"]
    );
    assert_eq!(
        keys_of(&env.range_json(&["--prefix", "app", "--reverse", "--limit", "2"])),
        ["apply", "apple"]
    );
    // Intersected with START/END.
    assert_eq!(
        keys_of(&env.range_json(&["--prefix", "app", "appl", "apply"])),
        ["apple"]
    );
    // A prefix of 0xFF bytes has no successor: the range is open-ended.
    let mut run = env.kvr(["range", "--keys-only", "--prefix"]);
    run.cmd.arg(OsStr::from_bytes(b"\xff\xff"));
    let keys = keys_of(&parse_lines(&run.ok().stdout_text()));
    assert_eq!(keys, ["b64://8=", "b64://8B"]);
}

fn range_keys_only_lines(env: Env) {
    env.kvr(["put", "k", "v"]).ok();
    assert_eq!(env.range_json(&["--keys-only"]), [json!({"key":"k"})]);
    assert_eq!(
        env.range_json(&[]),
        [json!({"key":"k","value":"v","revision":1})]
    );
}

fn range_into_batch_reproduces_the_data(env: Env) {
    let input = concat!(
        r#"{"key":"json","value":{"b":1,"a":[1.50,2]}}"#,
        "\n",
        r#"{"key_b64":"AP8=","value_b64":"AAEC/w=="}"#,
        "\n",
        r#"{"key":"text","value":"line\nbreak \"quoted\" ü"}"#,
        "\n",
        r#"{"key":"empty","value":""}"#,
        "\n"
    );
    env.kvr(["batch"]).stdin(input).ok();
    let export = env.kvr(["range"]).ok().out.stdout;
    let copy = env.new_like();
    copy.kvr(["batch"]).stdin(export.clone()).ok();
    let strip = |text: &[u8]| -> Vec<serde_json::Value> {
        parse_lines(std::str::from_utf8(text).unwrap())
            .into_iter()
            .map(|mut v| {
                v.as_object_mut().unwrap().remove("revision");
                v
            })
            .collect()
    };
    assert_eq!(strip(&copy.kvr(["range"]).ok().out.stdout), strip(&export));
    // Non-string JSON values are kept as written.
    assert_eq!(
        env.kvr(["get", "json"]).ok().out.stdout,
        br#"{"b":1,"a":[1.50,2]}"#
    );
}

fn range_into_closed_pipe_exits_0_quietly(env: Env) {
    let lines: String = (0..5000)
        .map(|i| {
            format!(
                "{{\"key\":\"key{i:05}\",\"value\":\"{}\"}}\n",
                "x".repeat(100)
            )
        })
        .collect();
    env.kvr(["batch"]).stdin(lines).ok();
    let mut run = env.kvr(["range"]);
    run.cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = run.cmd.spawn().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 16];
    std::io::Read::read_exact(&mut stdout, &mut first).unwrap();
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

fn batch_applies_in_order_with_revisions(env: Env) {
    env.kvr(["put", "gone", "x"]).ok();
    let input = "{\"key\":\"a\",\"value\":\"1\"}\n\n   \n{\"op\":\"delete\",\"key\":\"gone\"}\n{\"op\":\"delete\",\"key\":\"never\"}\n{\"key\":\"a\",\"value\":\"2\"}\n{\"key\":\"old\",\"value\":\"x\",\"expires_at_ms\":1000}\n{\"op\":\"put\",\"key\":\"b\",\"value\":\"3\"}";
    let done = env.kvr(["batch", "--json"]).stdin(input).ok();
    // The delete of an absent key and the put already expired take no
    // revision; the summary says so (the last line has no newline).
    assert_eq!(
        done.stdout_text(),
        "{\"applied\":4,\"revision\":5,\"puts\":3,\"deletes\":1}\n"
    );
    let said = done.stderr_text();
    assert!(
        said.starts_with("applied 3 puts, 1 delete (revision 5) in ")
            && said.ends_with(
                " s; 2 lines changed nothing (deletes of absent keys, or puts already expired)\n"
            ),
        "{}",
        done.report()
    );
    assert_eq!(
        env.range_json(&[]),
        [
            json!({"key":"a","value":"2","revision":4}),
            json!({"key":"b","value":"3","revision":5}),
        ]
    );
    assert_eq!(env.stats()["keys"], 2);
}

fn batch_from_file_and_dash(env: Env) {
    let file = env.path("in.jsonl");
    std::fs::write(&file, "{\"key\":\"f\",\"value\":\"1\"}\n").unwrap();
    env.kvr(["batch", file.to_str().unwrap()]).ok();
    env.kvr(["batch", "-"])
        .stdin("{\"key\":\"s\",\"value\":\"2\"}\n")
        .ok();
    assert_eq!(keys_of(&env.range_json(&[])), ["f", "s"]);
    env.kvr(["batch", env.path("missing.jsonl").to_str().unwrap()])
        .code(2)
        .stderr_has("does not exist");
    let dir = env.path("a-dir");
    std::fs::create_dir(&dir).unwrap();
    env.kvr(["batch", dir.to_str().unwrap()])
        .code(2)
        .stderr_has(&format!("batch input {} is a directory", dir.display()));
    // Stdin a directory (`< DIR`) is the same usage error, for put too
    // (it was exit 3 "cannot read batch input: Is a directory"; found by
    // an audit).
    env.kvr(["batch"])
        .stdin_from(&dir)
        .code(2)
        .stderr_has("stdin is a directory: give FILE");
    env.kvr(["put", "d"])
        .stdin_from(&dir)
        .code(2)
        .stderr_has("stdin is a directory: give VALUE");
    assert_eq!(keys_of(&env.range_json(&[])), ["f", "s"]);
    // A bad input file creates no database.
    let fresh = env.new_like();
    fresh
        .kvr(["batch", env.path("missing.jsonl").to_str().unwrap()])
        .code(2);
    if !fresh.is_served() {
        assert!(!fresh.db().exists());
    }
    fresh.kvr(["batch"]).stdin_from(&dir).code(2);
    fresh.kvr(["put", "d"]).stdin_from(&dir).code(2);
    if !fresh.is_served() {
        assert!(!fresh.db().exists());
    }
}

fn empty_batch_changes_nothing(env: Env) {
    env.kvr(["put", "k", "v"]).ok();
    let done = env.kvr(["batch", "--json"]).stdin("\n\n").ok();
    assert_eq!(
        done.stdout_text(),
        "{\"applied\":0,\"revision\":1,\"puts\":0,\"deletes\":0}\n"
    );
}

/// A UTF-8 byte order mark before the first line (an editor's) is named,
/// not reported as invalid JSON at column 1; nothing is written.
fn a_batch_starting_with_a_bom_says_so(env: Env) {
    env.kvr(["put", "keep", "me"]).ok();
    let before = env.snapshot();
    env.kvr(["batch"])
        .stdin("\u{feff}{\"key\":\"a\",\"value\":\"1\"}\n")
        .code(2)
        .stderr_has("line 1: the input starts with a UTF-8 byte order mark (BOM)");
    // UTF-16, with its BOM or without (Windows' "Unicode"), is named too:
    // it was "invalid JSON at column 1: expected value" (found by an
    // audit).
    let utf16 = |bom: &[u8]| {
        let mut bytes = bom.to_vec();
        for unit in "{\"key\":\"a\",\"value\":\"1\"}\n".encode_utf16() {
            bytes.extend_from_slice(&unit.to_le_bytes());
        }
        bytes
    };
    for input in [utf16(b"\xFF\xFE"), utf16(b"")] {
        env.kvr(["batch"])
            .stdin(input)
            .code(2)
            .stderr_has("line 1: the input is UTF-16, and JSON lines are UTF-8: convert it first");
    }
    // UTF-32 is named as itself, not as UTF-16 (whose conversion would
    // garble it; found by an audit).
    let utf32 = |bom: &[u8], le: bool| {
        let mut bytes = bom.to_vec();
        for c in "{\"key\":\"a\",\"value\":\"1\"}\n".chars() {
            let c = c as u32;
            bytes.extend_from_slice(&if le { c.to_le_bytes() } else { c.to_be_bytes() });
        }
        bytes
    };
    for input in [
        utf32(b"\xFF\xFE\0\0", true),
        utf32(b"\0\0\xFE\xFF", false),
        utf32(b"", true),
        utf32(b"", false),
    ] {
        env.kvr(["batch"])
            .stdin(input)
            .code(2)
            .stderr_has("line 1: the input is UTF-32, and JSON lines are UTF-8: convert it first");
    }
    assert_eq!(env.snapshot(), before);
}

fn batch_rejections_name_the_line_and_write_nothing(template: Env) {
    let over_key = format!("{{\"key\":\"{}\",\"value\":\"v\"}}", "k".repeat(4097));
    let over_value = format!(
        "{{\"key\":\"big\",\"value\":\"{}\"}}",
        "v".repeat((16 << 20) + 1)
    );
    let cases: Vec<(&str, String)> = vec![
        ("invalid JSON", "{\"key\":".to_string()),
        ("missing key", "{\"value\":\"x\"}".to_string()),
        ("empty key", "{\"key\":\"\",\"value\":\"x\"}".to_string()),
        (
            "both key and key_b64",
            "{\"key\":\"a\",\"key_b64\":\"YQ==\",\"value\":\"x\"}".to_string(),
        ),
        (
            "needs a value (value or value_b64); lines of range --keys-only are not batch input",
            "{\"key\":\"a\"}".to_string(),
        ),
        // What is wrong with the layout is said (found by an audit).
        (
            "the line ends inside an object: each object must be on one line",
            "{\"key\":\"a\",".to_string(),
        ),
        (
            "another object follows on the same line",
            "{\"key\":\"a\",\"value\":\"x\"} {\"key\":\"b\",\"value\":\"y\"}".to_string(),
        ),
        (
            "not an array: the input is JSON lines",
            "[{\"key\":\"a\",\"value\":\"x\"}]".to_string(),
        ),
        (
            "a lone surrogate escape such as \\ud800",
            "{\"key\":\"a\",\"value\":\"\\ud800\"}".to_string(),
        ),
        (
            "not valid base64",
            "{\"key_b64\":\"%%%\",\"value\":\"x\"}".to_string(),
        ),
        (
            "not valid base64",
            "{\"key\":\"a\",\"value_b64\":\"YQ\"}".to_string(),
        ),
        (
            "'_' at offset 1: that is URL-safe base64; value_b64 takes standard base64",
            "{\"key\":\"a\",\"value_b64\":\"A_8=\"}".to_string(),
        ),
        (
            "unknown op",
            "{\"op\":\"upsert\",\"key\":\"a\",\"value\":\"x\"}".to_string(),
        ),
        ("4097 bytes", over_key),
        ("over the limit", over_value),
    ];
    for (needle, bad) in cases {
        let env = template.new_like();
        env.kvr(["put", "keep", "me"]).ok();
        let before = env.snapshot();
        // Good lines before and after, a blank line: the bad one is line 4.
        let input = format!(
            "{{\"key\":\"x1\",\"value\":\"1\"}}\n\n{{\"key\":\"keep\",\"value\":\"changed\"}}\n{bad}\n{{\"key\":\"x2\",\"value\":\"2\"}}\n"
        );
        let done = env.kvr(["batch"]).stdin(input).code(2);
        let first = done.stderr_text().lines().next().unwrap().to_string();
        assert!(
            first.starts_with("kvr: error: line 4: "),
            "{}",
            done.report()
        );
        assert!(first.contains(needle), "{needle}: {}", done.report());
        if needle == "4097 bytes" {
            // The key limit is fixed: no flag to raise it is suggested.
            assert!(!first.contains("--max-value-bytes"), "{}", done.report());
        }
        assert_eq!(env.snapshot(), before, "{needle}");
    }
}

fn put_limits_hold_on_the_command_line(env: Env) {
    env.kvr(["put", "keep", "me"]).ok();
    let before = env.snapshot();
    let over_key = env
        .kvr(["put", &"k".repeat(4097), "v"])
        .code(2)
        .stderr_has("4096");
    // The key limit is fixed: no flag to raise it is suggested.
    assert!(
        !over_key.stderr_text().contains("--max-value-bytes"),
        "{}",
        over_key.report()
    );
    env.kvr(["put", "", "v"]).code(2).stderr_has("empty key");
    // Every command checks the key alike, in both modes (a `--db` delete
    // of a long key said "not found", exit 1, or 4 with --if-revision).
    let long = "k".repeat(4097);
    for args in [
        &["get", long.as_str()][..],
        &["delete", &long],
        &["delete", "--if-revision", "1", &long],
    ] {
        env.kvr(args)
            .code(2)
            .stderr_has("key of 4097 bytes is over the limit");
    }
    env.kvr(["put", "big"])
        .stdin(vec![b'x'; (16 << 20) + 1])
        .code(2)
        .stderr_has("limit");
    assert_eq!(env.snapshot(), before);
    // Exactly at the limits is fine.
    env.kvr(["put", &"k".repeat(4096), "v"]).ok();
    env.kvr(["put", "big"]).stdin(vec![b'x'; 16 << 20]).ok();
}

fn batch_condition_failure_exits_4_and_writes_nothing(env: Env) {
    env.kvr(["put", "k", "v"]).ok();
    let before = env.snapshot();
    let input =
        "{\"key\":\"a\",\"value\":\"1\"}\n{\"key\":\"k\",\"value\":\"2\",\"if_revision\":9}\n";
    env.kvr(["batch"]).stdin(input).code(4).stderr_has("line 2");
    let input = "{\"key\":\"k\",\"value\":\"2\",\"if_revision\":0}\n";
    env.kvr(["batch"]).stdin(input).code(4).stderr_has("line 1");
    assert_eq!(env.snapshot(), before);
}

/// With `--cache-mib 16` a sorted run holds 8 MiB of input, so 120,000
/// lines make three runs, read and sorted on a thread of their own while
/// the runs before are written: still all or nothing, and the first bad
/// line in input order is the one named, whichever run it is in.
#[test]
fn batch_spanning_several_runs_is_atomic_and_names_the_first_bad_line() {
    let env = Env::new();
    env.kvr(["put", "keep", "me"]).ok();
    let before = env.snapshot();
    let value = "v".repeat(100);
    // 7919 is prime to 120,000: every key once, in scattered order.
    let lines: Vec<String> = (0..120_000u32)
        .map(|i| {
            format!(
                "{{\"key\":\"key:{:06}\",\"value\":\"{value}\"}}",
                i * 7919 % 120_000
            )
        })
        .collect();
    let input = |changes: &[(usize, &str)]| {
        let mut l = lines.clone();
        for &(at, line) in changes {
            l[at] = line.to_string();
        }
        l.join("\n") + "\n"
    };
    let batch = || env.kvr(["--cache-mib", "16", "batch"]);
    // A malformed line in the last run.
    batch()
        .stdin(input(&[(110_000, "{\"key\":")]))
        .code(2)
        .stderr_has("line 110001:");
    assert_eq!(env.snapshot(), before);
    // A failed condition in the second run does not hide it: bad input is
    // reported first, as a server that parses the whole body first does.
    let failed = r#"{"key":"keep","value":"x","if_revision":99}"#;
    batch()
        .stdin(input(&[(50_000, failed), (110_000, "{\"key\":")]))
        .code(2)
        .stderr_has("line 110001:");
    assert_eq!(env.snapshot(), before);
    // Alone, the failed condition is the error.
    batch()
        .stdin(input(&[(50_000, failed)]))
        .code(4)
        .stderr_has("line 50001");
    assert_eq!(env.snapshot(), before);
    // All good: every line applied at its own revision.
    batch().stdin(input(&[])).ok();
    let stats = env.stats();
    assert_eq!(stats["keys"], 120_001);
    assert_eq!(stats["revision"], 120_001);
    assert_eq!(
        env.kvr(["get", "key:000007"]).ok().out.stdout,
        value.as_bytes()
    );
    assert_eq!(env.kvr(["get", "keep"]).ok().out.stdout, b"me");
}

fn batch_conditions_see_the_state_before_the_batch(env: Env) {
    env.kvr(["put", "k", "v"]).ok();
    // Line 1 changes k; line 2's condition still refers to revision 1.
    let input = "{\"key\":\"k\",\"value\":\"2\"}\n{\"key\":\"k\",\"value\":\"3\",\"if_revision\":1}\n{\"key\":\"new\",\"value\":\"x\",\"if_revision\":0}\n";
    env.kvr(["batch"]).stdin(input).ok();
    assert_eq!(env.kvr(["get", "k"]).ok().out.stdout, b"3");
    assert_eq!(env.stats()["revision"], 4);
}

fn revision_ttl_and_expires_at_ms_are_accepted(env: Env) {
    // `revision` (range output) is ignored; `ttl` and `expires_at_ms` set
    // the key's expiry (more in cli/expiry.rs).
    let input = "{\"key\":\"k\",\"value\":\"v\",\"revision\":99}\n\
                 {\"key\":\"t\",\"value\":\"v\",\"ttl\":60}\n\
                 {\"key\":\"e\",\"value\":\"v\",\"expires_at_ms\":4102444800000}\n";
    env.kvr(["batch"]).stdin(input).ok();
    let mut lines = env.range_json(&[]);
    let t_expiry = lines[2]["expires_at_ms"].take().as_u64().unwrap();
    assert!(t_expiry > 1_700_000_000_000 + 60_000, "{t_expiry}");
    lines[2].as_object_mut().unwrap().remove("expires_at_ms");
    assert_eq!(
        lines,
        [
            json!({"key":"e","value":"v","revision":3,"expires_at_ms":4102444800000u64}),
            json!({"key":"k","value":"v","revision":1}),
            json!({"key":"t","value":"v","revision":2}),
        ]
    );
}

fn empty_key_is_a_usage_error_for_reads_too(env: Env) {
    env.kvr(["put", "k", "v"]).ok();
    let before = env.snapshot();
    env.kvr(["get", ""]).code(2).stderr_has("empty key");
    env.kvr(["get", "--json", ""])
        .code(2)
        .stderr_has("empty key");
    env.kvr(["delete", ""]).code(2).stderr_has("empty key");
    env.kvr(["put", "", "v"]).code(2).stderr_has("empty key");
    assert_eq!(env.snapshot(), before);
}

fn del_and_rm_are_delete(env: Env) {
    env.kvr(["put", "a", "1"]).ok();
    env.kvr(["put", "b", "2"]).ok();
    assert_eq!(
        env.kvr(["del", "--json", "a"]).ok().stdout_text(),
        "{\"revision\":3}\n"
    );
    env.kvr(["rm", "b"]).ok();
    env.kvr(["rm", "b"]).code(1).stderr_has("not found");
    assert_eq!(env.stats()["keys"], 0);
    assert_eq!(env.stats()["revision"], 4);
}

fn stats_accepts_json(env: Env) {
    env.kvr(["put", "a", "1"]).ok();
    let plain = env.kvr(["stats"]).ok().stdout_text();
    let json: serde_json::Value =
        serde_json::from_str(&env.kvr(["stats", "--json"]).ok().stdout_text()).unwrap();
    let plain: serde_json::Value = serde_json::from_str(&plain).unwrap();
    assert_eq!(json["keys"], plain["keys"]);
    assert_eq!(json["revision"], 1);
}

fn range_count_prints_only_the_count(env: Env) {
    load(&env, &[b"a", b"p:1", b"p:2", b"p:3", b"z"]);
    let count = |args: &[&str]| {
        let mut full = vec!["range", "--count"];
        full.extend_from_slice(args);
        env.kvr(full).ok().stdout_text()
    };
    assert_eq!(count(&[]), "{\"count\":5}\n");
    assert_eq!(count(&["--prefix", "p:"]), "{\"count\":3}\n");
    assert_eq!(
        count(&["--prefix", "p:", "--limit", "2"]),
        "{\"count\":2}\n"
    );
    assert_eq!(count(&["--reverse", "--keys-only", "b"]), "{\"count\":4}\n");
    assert_eq!(count(&["p:2", "p:3"]), "{\"count\":1}\n");
    assert_eq!(count(&["--prefix", "none:"]), "{\"count\":0}\n");
}

fn range_limit_0_is_a_usage_error(env: Env) {
    env.kvr(["put", "a", "1"]).ok();
    env.kvr(["range", "--limit", "0"])
        .code(2)
        .stderr_has("'--limit <N>': must be at least 1");
    env.kvr(["range", "--count", "--limit", "0"]).code(2);
    // A negative N gets the same words (clap took it for a flag, with a
    // tip that did not apply), and so does a negative --ttl.
    env.kvr(["range", "--limit", "-1"])
        .code(2)
        .stderr_has("'--limit <N>': must be at least 1");
    // One past u64 is no whole number's fault: it says the bound.
    env.kvr(["range", "--limit", "18446744073709551616"])
        .code(2)
        .stderr_has("'--limit <N>': must be at most 18446744073709551615");
    env.kvr(["put", "--ttl", "-1", "a", "2"])
        .code(2)
        .stderr_has("\"-1\" is not a duration such as 90");
    assert_eq!(
        env.kvr(["range", "--limit", "1"])
            .ok()
            .stdout_text()
            .lines()
            .count(),
        1
    );
}

fn unknown_fields_and_non_objects_are_bad_lines(template: Env) {
    let cases = [
        // A misspelt if_revision must not make the write unconditional.
        (
            r#"{"key":"keep","value":"x","if_revison":0}"#,
            "unknown field `if_revison`",
        ),
        (
            r#"{"key":"a","value":"x","extra":[1]}"#,
            "unknown field `extra`",
        ),
        (r#"["a","b"]"#, "line 2: a line must be a JSON object"),
        (r#""a""#, "line 2: a line must be a JSON object"),
        ("17", "line 2: a line must be a JSON object"),
        ("null", "line 2: a line must be a JSON object"),
        (r#"{"key":"a","value":"x","ttl":0}"#, "ttl must be"),
        (r#"{"key":"a","value":"x","ttl":"5"}"#, "line 2: "),
        (
            r#"{"key":"a","value":"x","ttl":5,"expires_at_ms":1}"#,
            "not both",
        ),
        // A time in microseconds (year 55,000 as milliseconds).
        (
            r#"{"key":"a","value":"x","expires_at_ms":1795000000000000}"#,
            "expires_at_ms 1795000000000000 is past the year 9999",
        ),
    ];
    for (bad, needle) in cases {
        let env = template.new_like();
        env.kvr(["put", "keep", "me"]).ok();
        let before = env.snapshot();
        let input = format!("{{\"key\":\"x1\",\"value\":\"1\"}}\n{bad}\n");
        let done = env.kvr(["batch"]).stdin(input).code(2);
        let first = done.stderr_text().lines().next().unwrap().to_string();
        assert!(
            first.starts_with("kvr: error: line 2: "),
            "{}",
            done.report()
        );
        assert!(first.contains(needle), "{needle}: {}", done.report());
        assert!(!first.contains("invalid JSON"), "{}", done.report());
        assert_eq!(env.snapshot(), before, "{bad}");
    }
}

fn numbered_puts(range: std::ops::Range<u32>) -> String {
    range
        .map(|i| format!("{{\"key\":\"k{i:02}\",\"value\":\"{i}\"}}\n"))
        .collect()
}

fn batch_chunk_size_applies_parts_atomically(env: Env) {
    let done = env
        .kvr(["batch", "--json", "--chunk-size", "2"])
        .stdin(numbered_puts(0..5))
        .ok();
    assert_eq!(
        done.stdout_text(),
        "{\"applied\":5,\"revision\":5,\"puts\":5,\"deletes\":0}\n"
    );
    assert_eq!(env.stats()["keys"], 5);
    // An exact multiple of the size, and an empty input.
    env.kvr(["batch", "--chunk-size", "5"])
        .stdin(numbered_puts(5..10))
        .ok();
    assert_eq!(env.stats()["revision"], 10);
    let done = env
        .kvr(["batch", "--json", "--chunk-size", "3"])
        .stdin("")
        .ok();
    assert_eq!(
        done.stdout_text(),
        "{\"applied\":0,\"revision\":10,\"puts\":0,\"deletes\":0}\n"
    );
    let before = env.snapshot();
    env.kvr(["batch", "--chunk-size", "0"])
        .stdin(numbered_puts(0..2))
        .code(2)
        .stderr_has("--chunk-size");
    assert_eq!(env.snapshot(), before);
}

/// A bad line is reported before a failed condition on an earlier line,
/// wherever it is in the input (a server parses the whole body first; a
/// local batch reads on after the condition fails), so the error and exit
/// code are the same with `--db` and `--server`. Nothing is written.
fn batch_bad_line_outranks_an_earlier_failed_condition(env: Env) {
    env.kvr(["put", "a", "0"]).ok();
    let before = env.snapshot();
    let condition = "{\"key\":\"a\",\"value\":\"1\",\"if_revision\":99}\n";
    // In the same run as the condition, and far after it (36 MB of lines:
    // runs after the next one of a 16 MiB cache, which the local batch
    // has not read when the condition fails; under the default 100,000
    // operations of a server's batch).
    let near = format!("{condition}{{\"key\":\"b\",\"value\":\"1\"}}\nbad\n");
    let mut far = condition.to_string();
    for i in 0..90_000 {
        far.push_str(&format!(
            "{{\"key\":\"k{i:06}\",\"value\":\"{:0>400}\"}}\n",
            i
        ));
    }
    far.push_str("{\"key\":\"z\",\"valu\":\"x\"}\n");
    for (input, expected) in [
        (near, "kvr: error: line 3: invalid JSON"),
        (far, "kvr: error: line 90002: unknown field `valu`"),
    ] {
        env.kvr(["--cache-mib", "16", "batch"])
            .stdin(input)
            .code(2)
            .stderr_has(expected);
        assert_eq!(env.snapshot(), before);
    }
    // Without a bad line, the failed condition is the error.
    env.kvr(["batch"])
        .stdin(format!("{condition}{{\"key\":\"b\",\"value\":\"1\"}}\n"))
        .code(4)
        .stderr_has("line 1: precondition failed for key \"a\"");
    assert_eq!(env.snapshot(), before);
}

/// With a FILE (which can be read twice, unlike a pipe), `--chunk-size`
/// checks every line before it applies the first part: a bad line far
/// down is exit 2 with nothing written, as without `--chunk-size`. Before,
/// the parts ahead of it were applied (exit 3), and running the fixed file
/// again applied them twice.
fn batch_chunk_size_checks_a_file_whole_first(env: Env) {
    env.kvr(["put", "pre", "0"]).ok();
    let before = env.snapshot();
    let mut input = numbered_puts(0..50);
    input.push_str("{\"key\":\"bad\",\"valu\":\"x\"}\n");
    input.push_str(&numbered_puts(51..60));
    let file = env.path("parts.jsonl");
    std::fs::write(&file, &input).unwrap();
    let done = env
        .kvr([
            "batch",
            "--json",
            "--chunk-size",
            "10",
            file.to_str().unwrap(),
        ])
        .code(2)
        .stderr_has("kvr: error: line 51: unknown field `valu`");
    assert_eq!(done.stdout_text(), "", "nothing was applied");
    assert_eq!(env.snapshot(), before);
    // Fixed, it applies in parts as before.
    std::fs::write(&file, input.replace("valu\"", "value\"")).unwrap();
    env.kvr(["batch", "--chunk-size", "10", file.to_str().unwrap()])
        .ok();
    // pre, 0..50, bad, 51..60.
    assert_eq!(env.stats()["keys"], 61);
}

fn batch_chunk_size_failure_names_the_line_and_keeps_earlier_parts(env: Env) {
    env.kvr(["put", "pre", "0"]).ok();
    // A bad line in the first part: nothing written, exit 2.
    let mut input = numbered_puts(0..1);
    input.push_str("{\"key\":\"bad\",\"valu\":\"x\"}\n");
    input.push_str(&numbered_puts(2..4));
    let done = env
        .kvr(["batch", "--json", "--chunk-size", "2"])
        .stdin(input)
        .code(2)
        .stderr_has("kvr: error: line 2: unknown field `valu`");
    assert_eq!(done.stdout_text(), "", "nothing was applied");
    assert_eq!(env.stats()["revision"], 1);
    // Parts of 2 lines: lines 1-2 apply; line 4 is bad, so lines 3-4 do not,
    // and nothing after them is tried: the error says so ("from line 3 on";
    // it named lines 3-4 only, and resending those lost the rest). Not exit 2 ("nothing written"):
    // lines 1-2 were written, and running the input again repeats them.
    let mut input = numbered_puts(0..3);
    input.push_str("{\"key\":\"bad\",\"valu\":\"x\"}\n");
    input.push_str(&numbered_puts(4..6));
    let done = env
        .kvr(["batch", "--json", "--chunk-size", "2"])
        .stdin(input)
        .code(3);
    let text = done.stderr_text();
    assert!(
        text.starts_with(
            "kvr: error: the input from line 3 on was not applied; lines 1-2 were applied, in 1 part \
             (revision 3): line 4: unknown field `valu`"
        ),
        "{text}"
    );
    // `--json` says on stdout what the parts before the failure applied.
    assert_eq!(
        done.stdout_text(),
        "{\"applied\":2,\"revision\":3,\"puts\":2,\"deletes\":0}\n"
    );
    let keys = keys_of(&env.range_json(&[]));
    assert_eq!(keys, ["k00", "k01", "pre"]);
    // One line a part: one line is "line N", not "lines N-N".
    let mut input = numbered_puts(7..8);
    input.push_str("{\"key\":\"\"}\n");
    let done = env.kvr(["batch", "--chunk-size", "1"]).stdin(input).code(3);
    let text = done.stderr_text();
    assert!(
        text.starts_with(
            "kvr: error: the input from line 2 on was not applied; line 1 was applied, in 1 part (revision 4): \
             line 2: empty key"
        ),
        "{text}"
    );
    assert_eq!(keys_of(&env.range_json(&[])), ["k00", "k01", "k07", "pre"]);
    // A failed condition in the second part: exit 4, its line counted in
    // the whole input, and what the parts before it applied.
    let mut input = numbered_puts(10..12);
    input.push_str("{\"key\":\"k00\",\"value\":\"x\",\"if_revision\":7}\n");
    let done = env
        .kvr(["batch", "--json", "--chunk-size", "2"])
        .stdin(input)
        .code(4);
    assert_eq!(
        done.stdout_text(),
        "{\"applied\":2,\"revision\":6,\"puts\":2,\"deletes\":0}\n"
    );
    let text = done.stderr_text();
    assert!(
        text.starts_with(
            "kvr: error: the input from line 3 on was not applied; lines 1-2 were applied, in 1 part \
             (revision 6): line 3: precondition failed for key \"k00\""
        ),
        "{text}"
    );
    assert_eq!(env.stats()["revision"], 6);
    // Earlier parts that applied nothing (blank lines, a delete of a
    // missing key): the batch wrote nothing, so a bad line is exit 2 and
    // no part is said to have been applied.
    let before = env.snapshot();
    let input = "\n{\"op\":\"delete\",\"key\":\"missing\"}\n{\"key\":\"bad\",\"valu\":\"x\"}\n";
    let done = env
        .kvr(["batch", "--chunk-size", "2"])
        .stdin(input)
        .code(2)
        .stderr_has("kvr: error: line 3: unknown field `valu`");
    assert!(!done.stderr_text().contains("applied"), "{}", done.report());
    assert_eq!(env.snapshot(), before);
}

fn stats_reports_counts_and_file_size(env: Env) {
    env.kvr(["batch"])
        .stdin("{\"key\":\"a\",\"value\":\"1\"}\n{\"key\":\"b\",\"value\":\"2\"}\n{\"op\":\"delete\",\"key\":\"a\"}\n")
        .ok();
    let stats = env.stats();
    assert_eq!(stats["keys"], 1);
    assert_eq!(stats["revision"], 3);
    // st_size while the database is open; redb may trim free pages at close.
    let size = std::fs::metadata(env.db()).unwrap().len();
    let reported = stats["file_bytes"].as_u64().unwrap();
    assert!(reported.abs_diff(size) <= 64 << 10, "{reported} vs {size}");
}

#[test]
fn a_second_process_gets_in_use_and_can_wait() {
    let env = Env::new();
    env.kvr(["put", "k", "v"]).ok();
    // A batch that has begun reading its stdin holds the database until its
    // input ends (it waits for the lock itself, in case one of our probes
    // below holds it at that moment; it opens the file on its first bytes).
    let mut holder = env.kvr(["--lock-timeout", "30", "batch"]).cmd;
    holder
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut child = holder.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::io::Write::write_all(&mut stdin, b"{\"key\":\"k1\",\"value\":\"x\"}\n").unwrap();
    std::io::Write::flush(&mut stdin).unwrap();
    // Wait until it holds the lock.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let out = env.kvr(["get", "k"]).output();
        if out.out.status.code() == Some(3) {
            let first = out.stderr_text();
            assert!(first.starts_with("kvr: error: "), "{first}");
            assert!(first.contains("in use"), "{first}");
            assert!(first.contains(&format!("(pid {})", child.id())), "{first}");
            // A batch holds it, no server: the hint is to wait for it.
            assert!(
                first.contains("--lock-timeout SECS to wait for it"),
                "{first}"
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{}", out.report());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // With --lock-timeout the second one waits until the holder is done.
    let waiter = std::thread::spawn({
        let db = env.db();
        move || {
            let out = std::process::Command::new(util::KVR)
                .arg("--db")
                .arg(&db)
                .args(["--lock-timeout", "20", "get", "k2"])
                .output()
                .unwrap();
            (out.status.code(), out.stdout)
        }
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    std::io::Write::write_all(&mut stdin, b"{\"key\":\"k2\",\"value\":\"w\"}\n").unwrap();
    drop(stdin);
    assert!(child.wait().unwrap().success());
    assert_eq!(waiter.join().unwrap(), (Some(0), b"w".to_vec()));
}

#[test]
fn usage_errors_exit_2() {
    let env = Env::new();
    env.kvr(["frobnicate"]).code(2);
    env.kvr(["get"]).code(2);
    env.kvr(["range", "--limit", "abc"]).code(2);
    env.kvr(["put", "--if-revision", "-1", "k", "v"]).code(2);
    let help = env.kvr(["--help"]).ok().stdout_text();
    assert!(help.contains("batch"), "{help}");
    env.kvr(["--version"]).ok();
}

#[test]
fn completions_are_committed_and_fresh() {
    let env = Env::new();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("completions");
    for (shell, file) in [
        ("bash", "kvr.bash"),
        ("zsh", "_kvr"),
        ("fish", "kvr.fish"),
        ("elvish", "kvr.elv"),
        ("powershell", "_kvr.ps1"),
    ] {
        let fresh = env.kvr_bare(["completions", shell]).ok().out.stdout;
        assert!(!fresh.is_empty());
        let committed = std::fs::read(dir.join(file)).unwrap_or_default();
        assert!(
            committed == fresh,
            "completions/{file} is stale: run `kvr completions {shell} > completions/{file}`"
        );
    }
}

#[test]
fn a_database_from_release_0_1_still_opens() {
    let env = Env::new();
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v0.1.redb");
    std::fs::copy(&fixture, env.db()).unwrap();
    let expected = std::fs::read_to_string(fixture.with_extension("jsonl")).unwrap();
    assert_eq!(env.kvr(["range"]).ok().stdout_text(), expected);
    env.kvr(["put", "after", "upgrade"]).ok();
}

#[test]
fn an_io_error_names_its_cause_once() {
    let env = Env::new();
    // Reading /proc/self/mem from its start fails with EIO (a directory,
    // used before, is now refused by name before it is read).
    let done = env.kvr(["batch", "/proc/self/mem"]).code(3);
    let text = done.stderr_text();
    assert!(
        text.starts_with("kvr: error: cannot read batch input: "),
        "{text}"
    );
    assert_eq!(text.matches("os error 5").count(), 1, "{text}");
    // Nothing written, nothing created.
    assert!(!env.db().exists());
}

#[test]
fn cache_and_lock_options_are_checked() {
    let env = Env::new();
    env.kvr(["--cache-mib", "16", "put", "k", "v"]).ok();
    env.kvr(["get", "k"]).env("KVR_CACHE_MIB", "32").ok();
    let before = env.snapshot();
    env.kvr(["--cache-mib", "0", "put", "k", "w"])
        .code(2)
        .stderr_has("--cache-mib");
    env.kvr(["--lock-timeout=-1", "put", "k", "w"])
        .code(2)
        .stderr_has("--lock-timeout");
    env.kvr(["put", "k", "w"])
        .env("KVR_LOCK_TIMEOUT", "nan")
        .code(2)
        .stderr_has("--lock-timeout");
    assert_eq!(env.snapshot(), before);
}

#[path = "cli/usage.rs"]
mod usage;

#[path = "cli/expiry.rs"]
mod expiry;

#[path = "cli/read_only.rs"]
mod read_only;

#[path = "cli/batch_limits.rs"]
mod batch_limits;

/// Commands that print after their work never panic on a closed or full
/// stdout: a reader that went away is exit 0 and quiet, as for `range |
/// head`; a full disk is exit 3, "disk full" (for a write that was
/// applied: that it was, and only its output failed).
#[test]
fn a_closed_or_full_stdout_is_never_a_panic() {
    let env = Env::new();
    env.kvr(["put", "k", "v"]).ok();
    let input = env.path("in.jsonl");
    std::fs::write(&input, "{\"key\":\"a\",\"value\":\"1\"}\n").unwrap();
    let input = input.to_str().unwrap();
    let backup = env.path("copy.redb");
    let backup = backup.to_str().unwrap();
    let commands = [
        vec!["stats"],
        vec!["completions", "bash"],
        vec!["completions", "zsh"],
        vec!["compact"],
        vec!["batch", "--json", input],
        vec!["backup", "--json", "--force", backup],
        vec!["put", "--json", "k", "w"],
        vec!["bench", "--requests", "20", "--clients", "1"],
        vec!["bench", "--requests", "20", "--clients", "1", "--json"],
    ];
    for args in &commands {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let mut run = env.kvr(args);
        let out = run
            .cmd
            .stdin(std::process::Stdio::null())
            .stdout(writer)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?} closed: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");

        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let mut run = env.kvr(args);
        let out = run
            .cmd
            .stdin(std::process::Stdio::null())
            .stdout(full)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{args:?} full: {stderr}");
        // (batch prints its summary line first, as it always does.)
        let first = stderr.lines().find(|l| l.starts_with("kvr:"));
        // A write that was applied says so, not "disk full … retry" (which
        // would repeat it); the others say the disk is full.
        let write = ["batch", "backup", "put", "compact"].contains(&args[0]);
        let said = if write {
            "only writing its output failed: No space left on device"
        } else {
            "disk full"
        };
        assert!(
            first.is_some_and(|l| l.starts_with("kvr: error:") && l.contains(said)),
            "{args:?}: {stderr}"
        );
        assert_eq!(write, !stderr.contains("retry"), "{args:?}: {stderr}");
    }
    // The work was done all the same.
    assert_eq!(env.kvr(["get", "a"]).ok().stdout_text(), "1");
}

/// A batch into a new file creates it only once input arrives, and an
/// interrupted one (SIGINT, SIGTERM) removes it: no new, empty file is left
/// (nor its `DB.creating`).
#[test]
fn an_interrupted_batch_leaves_no_new_file() {
    use std::io::Write as _;
    let env = Env::new();
    let db = env.db();
    for signal in ["INT", "TERM"] {
        let mut run = env.kvr(["batch"]);
        let mut child = run
            .cmd
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert!(!db.exists(), "created before any input");
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(b"{\"key\":\"a\",\"value\":\"1\"}\n")
            .unwrap();
        stdin.flush().unwrap();
        // A bound against a hang, not a timed assertion. The new file is
        // built under DB.creating until the batch commits.
        let temp = kvr::store::create::temp_path(&db);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !temp.exists() {
            assert!(std::time::Instant::now() < deadline, "never created");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let sent = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{stderr}");
        assert!(stderr.starts_with("kvr: error: interrupted"), "{stderr}");
        assert!(!db.exists(), "SIG{signal} left the new file");
        assert!(!temp.exists(), "SIG{signal} left DB.creating");
        drop(stdin);
    }
    // An existing database is left alone by an interrupted batch, and a
    // later batch works.
    env.kvr(["batch"])
        .stdin("{\"key\":\"k\",\"value\":\"v\"}\n")
        .ok();
    assert_eq!(env.kvr(["get", "k"]).ok().stdout_text(), "v");
}

#[path = "cli/client_audit.rs"]
mod client_audit;

#[path = "cli/compact.rs"]
mod compact;

#[path = "cli/backup.rs"]
mod backup;

#[path = "cli/ergonomics.rs"]
mod ergonomics;
