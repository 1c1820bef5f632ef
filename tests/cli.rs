//! The command line through the real binary: every command, flag and exit
//! code of SPEC "Command line", each test in its own temp dir.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod util;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use serde_json::json;
use util::{Env, parse_lines};

/// Runs each listed `fn(Env)` twice: against the file (`--db`) and through a
/// `kvr serve` on it (`--server`). Output and exit codes must be the same.
macro_rules! in_both_modes {
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
    };
}

in_both_modes!(
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
fn db_flag_env_and_default() {
    let env = Env::new();
    // Default: ./kvr.redb in the current directory.
    env.kvr_bare(["put", "k", "default"]).ok();
    assert!(env.path("kvr.redb").exists());
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

fn delete_missing_key_exits_1_and_changes_nothing(env: Env) {
    env.kvr(["put", "a", "1"]).ok();
    let before = env.snapshot();
    env.kvr(["delete", "nope"]).code(1).stderr_has("not found");
    assert_eq!(env.snapshot(), before);
}

fn conditional_put(env: Env) {
    // 0: only if absent.
    env.kvr(["put", "--if-revision", "0", "k", "v1"]).ok();
    let before = env.snapshot();
    env.kvr(["put", "--if-revision", "0", "k", "v2"])
        .code(4)
        .stderr_has("precondition failed");
    env.kvr(["put", "--if-revision", "7", "k", "v2"]).code(4);
    assert_eq!(env.snapshot(), before);
    env.kvr(["put", "--if-revision", "1", "k", "v2"]).ok();
    assert_eq!(env.kvr(["get", "k"]).ok().out.stdout, b"v2");
}

fn conditional_delete(env: Env) {
    env.kvr(["put", "k", "v"]).ok();
    let before = env.snapshot();
    env.kvr(["delete", "--if-revision", "5", "k"]).code(4);
    // A missing key under a condition is a failed precondition, not "not found".
    env.kvr(["delete", "--if-revision", "1", "absent"]).code(4);
    // 0 would mean "absent": a usage error for delete.
    env.kvr(["delete", "--if-revision", "0", "k"]).code(2);
    assert_eq!(env.snapshot(), before);
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
    let input = "{\"key\":\"a\",\"value\":\"1\"}\n\n   \n{\"op\":\"delete\",\"key\":\"gone\"}\n{\"op\":\"delete\",\"key\":\"never\"}\n{\"key\":\"a\",\"value\":\"2\"}\n{\"op\":\"put\",\"key\":\"b\",\"value\":\"3\"}\n";
    let done = env.kvr(["batch", "--json"]).stdin(input).ok();
    // The delete of an absent key takes no revision.
    assert_eq!(done.stdout_text(), "{\"applied\":4,\"revision\":5}\n");
    assert!(
        done.stderr_text()
            .starts_with("applied 3 puts, 1 deletes (revision 5) in "),
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
    // A bad input file creates no database.
    let fresh = env.new_like();
    fresh
        .kvr(["batch", env.path("missing.jsonl").to_str().unwrap()])
        .code(2);
    if !fresh.is_served() {
        assert!(!fresh.db().exists());
    }
}

fn empty_batch_changes_nothing(env: Env) {
    env.kvr(["put", "k", "v"]).ok();
    let done = env.kvr(["batch", "--json"]).stdin("\n\n").ok();
    assert_eq!(done.stdout_text(), "{\"applied\":0,\"revision\":1}\n");
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
        ("needs a value", "{\"key\":\"a\"}".to_string()),
        (
            "not valid base64",
            "{\"key_b64\":\"%%%\",\"value\":\"x\"}".to_string(),
        ),
        (
            "not valid base64",
            "{\"key\":\"a\",\"value_b64\":\"YQ\"}".to_string(),
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
        assert_eq!(env.snapshot(), before, "{needle}");
    }
}

fn put_limits_hold_on_the_command_line(env: Env) {
    env.kvr(["put", "keep", "me"]).ok();
    let before = env.snapshot();
    env.kvr(["put", &"k".repeat(4097), "v"])
        .code(2)
        .stderr_has("4096");
    env.kvr(["put", "", "v"]).code(2).stderr_has("empty key");
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

fn batch_conditions_see_the_state_before_the_batch(env: Env) {
    env.kvr(["put", "k", "v"]).ok();
    // Line 1 changes k; line 2's condition still refers to revision 1.
    let input = "{\"key\":\"k\",\"value\":\"2\"}\n{\"key\":\"k\",\"value\":\"3\",\"if_revision\":1}\n{\"key\":\"new\",\"value\":\"x\",\"if_revision\":0}\n";
    env.kvr(["batch"]).stdin(input).ok();
    assert_eq!(env.kvr(["get", "k"]).ok().out.stdout, b"3");
    assert_eq!(env.stats()["revision"], 4);
}

fn revision_ttl_and_expires_at_ms_are_accepted(env: Env) {
    // `revision` (range output) is ignored; `ttl` and `expires_at_ms` are
    // known fields, checked and (until expiry is built) ignored.
    let input = "{\"key\":\"k\",\"value\":\"v\",\"revision\":99}\n\
                 {\"key\":\"t\",\"value\":\"v\",\"ttl\":60}\n\
                 {\"key\":\"e\",\"value\":\"v\",\"expires_at_ms\":4102444800000}\n";
    env.kvr(["batch"]).stdin(input).ok();
    assert_eq!(
        env.range_json(&[]),
        [
            json!({"key":"e","value":"v","revision":3}),
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
        .stderr_has("--limit must be at least 1");
    env.kvr(["range", "--count", "--limit", "0"]).code(2);
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
    assert_eq!(done.stdout_text(), "{\"applied\":5,\"revision\":5}\n");
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
    assert_eq!(done.stdout_text(), "{\"applied\":0,\"revision\":10}\n");
    let before = env.snapshot();
    env.kvr(["batch", "--chunk-size", "0"])
        .stdin(numbered_puts(0..2))
        .code(2)
        .stderr_has("--chunk-size");
    assert_eq!(env.snapshot(), before);
}

fn batch_chunk_size_failure_names_the_line_and_keeps_earlier_parts(env: Env) {
    // Parts of 2 lines: lines 1-2 apply; line 4 is bad, so lines 3-4 do not,
    // and nothing after them is tried.
    let mut input = numbered_puts(0..3);
    input.push_str("{\"key\":\"bad\",\"valu\":\"x\"}\n");
    input.push_str(&numbered_puts(4..6));
    let done = env.kvr(["batch", "--chunk-size", "2"]).stdin(input).code(2);
    let text = done.stderr_text();
    assert!(text.contains("lines 3-4 not applied"), "{text}");
    assert!(text.contains("lines 1-2 were applied"), "{text}");
    assert!(text.contains("line 4: unknown field `valu`"), "{text}");
    let keys = keys_of(&env.range_json(&[]));
    assert_eq!(keys, ["k00", "k01"]);
    // A failed condition in the second part: exit 4, its line counted in
    // the whole input.
    let mut input = numbered_puts(10..12);
    input.push_str("{\"key\":\"k00\",\"value\":\"x\",\"if_revision\":7}\n");
    env.kvr(["batch", "--chunk-size", "2"])
        .stdin(input)
        .code(4)
        .stderr_has("line 3: precondition failed");
    assert_eq!(env.stats()["revision"], 4);
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
    // A batch waiting on its stdin holds the database (it waits for the lock
    // itself, in case one of our probes below holds it at that moment).
    let mut holder = env.kvr(["--lock-timeout", "30", "batch"]).cmd;
    holder
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut child = holder.spawn().unwrap();
    // Wait until it holds the lock.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let out = env.kvr(["get", "k"]).output();
        if out.out.status.code() == Some(3) {
            let first = out.stderr_text();
            assert!(first.starts_with("kvr: error: "), "{first}");
            assert!(first.contains("in use"), "{first}");
            assert!(first.contains("--server"), "{first}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{}", out.report());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // With --lock-timeout the second one waits until the holder is done.
    let mut stdin = child.stdin.take().unwrap();
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
    let dir = env.path("a-directory");
    std::fs::create_dir(&dir).unwrap();
    let done = env.kvr(["batch", dir.to_str().unwrap()]).code(3);
    let text = done.stderr_text();
    assert!(
        text.starts_with("kvr: error: cannot read batch input: "),
        "{text}"
    );
    assert_eq!(text.matches("os error 21").count(), 1, "{text}");
    assert_eq!(env.stats()["revision"], 0);
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

/// The README's Quick start, run command by command through bash with the
/// real binary first on PATH: every command exits 0 and prints what the
/// README shows (stdout and stderr together; file sizes and timings masked).
#[test]
fn readme_quick_start_runs_as_shown() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme
        .split("\n## Quick start\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("README has a Quick start section");
    let mut steps: Vec<(String, Vec<String>)> = Vec::new();
    for line in section.lines().filter_map(|l| l.strip_prefix("    ")) {
        match line.strip_prefix("$ ") {
            Some(cmd) => steps.push((cmd.to_string(), Vec::new())),
            None => steps
                .last_mut()
                .expect("output before a command")
                .1
                .push(line.into()),
        }
    }
    assert!(steps.len() > 10, "{steps:?}");
    // A newline before `}`: a command may end in a `#` comment.
    let script: String = steps
        .iter()
        .enumerate()
        .map(|(i, (cmd, _))| {
            format!("echo '@@step {i}'\n{{ {cmd}\n}} 2>&1\nrc=$?\necho\necho \"@@rc $rc\"\n")
        })
        .collect();
    let env = Env::new();
    let bin_dir = std::path::Path::new(util::KVR).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = std::process::Command::new("bash");
    cmd.arg("-c")
        .arg(&script)
        .current_dir(env.dir.path())
        .env("PATH", path);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("KVR_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut got = text.split("@@step ").skip(1);
    for (i, (command, expected)) in steps.iter().enumerate() {
        let chunk = got
            .next()
            .unwrap_or_else(|| panic!("no output for {command}:\n{text}"));
        let mut lines: Vec<&str> = chunk.lines().skip(1).collect();
        let rc = lines.pop().unwrap_or_default();
        // The `echo` before the marker ends a last line without a newline
        // (`kvr get` adds none), else it is an empty line of its own.
        if lines.last() == Some(&"") {
            lines.pop();
        }
        assert_eq!(rc, "@@rc 0", "step {i} `{command}` failed:\n{chunk}");
        let shown: Vec<String> = expected.iter().map(|l| mask(l)).collect();
        let printed: Vec<String> = lines.iter().map(|l| mask(l)).collect();
        assert_eq!(
            printed, shown,
            "step {i} `{command}` prints other than the README shows"
        );
    }
}

/// Masks what differs between runs: `"file_bytes":N` and `in S s` timings.
fn mask(line: &str) -> String {
    let mut line = line.to_string();
    if let Some(at) = line.find("\"file_bytes\":") {
        let start = at + "\"file_bytes\":".len();
        let end = line[start..]
            .find(|c: char| !c.is_ascii_digit())
            .map_or(line.len(), |e| start + e);
        line.replace_range(start..end, "N");
    }
    if line.starts_with("applied ")
        && let Some(at) = line.rfind(" in ")
    {
        line.replace_range(at.., " in S s");
    }
    line
}

#[test]
fn db_and_server_flags_together_are_a_usage_error_for_every_command() {
    let env = Env::new();
    let db = env.path("never.redb");
    let commands: [&[&str]; 10] = [
        &["put", "k", "v"],
        &["get", "k"],
        &["delete", "k"],
        &["range"],
        &["batch"],
        &["stats"],
        &["tui"],
        &["completions", "bash"],
        // Were the check missing, these would fail differently, not hang.
        &["serve", "--listen", "256.0.0.1:1"],
        &["bench", "--requests", "1"],
    ];
    for args in commands {
        let mut run = env.kvr_bare([
            "--db",
            db.to_str().unwrap(),
            "--server",
            "http://127.0.0.1:1",
        ]);
        run.cmd.args(args);
        let done = run.stdin("").code(2);
        let done = done.stderr_has("give either --db or --server, not both");
        assert!(done.out.stdout.is_empty(), "{}", done.report());
        assert!(!db.exists(), "{args:?} created the database");
    }
    // An environment variable is beaten by the other flag: not an error.
    env.kvr_bare(["--db", db.to_str().unwrap(), "put", "k", "v"])
        .env("KVR_SERVER", "http://127.0.0.1:1")
        .ok();
}

#[test]
fn help_puts_global_options_apart_and_shows_no_empty_env_values() {
    let env = Env::new();
    let commands: [&[&str]; 6] = [
        &["--help"],
        &["serve", "--help"],
        &["completions", "--help"],
        &["bench", "--help"],
        &["put", "--help"],
        &["range", "--help"],
    ];
    for args in commands {
        let help = env.kvr_bare(args).ok().stdout_text();
        assert!(
            !help.contains("=]"),
            "{args:?} shows an empty env value:\n{help}"
        );
        if args.len() > 1 {
            let (own, global) = help
                .split_once("Global options:")
                .unwrap_or_else(|| panic!("{args:?} has no Global options heading:\n{help}"));
            // An option line, not a mention in the command's about text.
            let lists_db = own.lines().any(|l| l.trim_start().starts_with("--db"));
            assert!(!lists_db, "{args:?} lists --db as its own:\n{help}");
            assert!(
                global.contains("--db") && global.contains("--server"),
                "{help}"
            );
        }
    }
    let serve = env.kvr_bare(["serve", "--help"]).ok().stdout_text();
    let (own, _) = serve.split_once("Global options:").unwrap();
    assert!(
        own.contains("--listen") && !own.contains("--timeout <"),
        "{serve}"
    );
    // bench ignores KVR_DB and KVR_SERVER: its help says so and shows no [env: …].
    let bench = env.kvr_bare(["bench", "--help"]).ok().stdout_text();
    assert!(
        !bench.contains("[env: KVR_DB") && !bench.contains("[env: KVR_SERVER"),
        "{bench}"
    );
    let put = env.kvr_bare(["put", "--help"]).ok().stdout_text();
    assert!(put.contains("[env: KVR_DB]"), "{put}");
}

#[test]
fn batch_over_the_server_limits_names_them_and_writes_nothing() {
    let env = Env::served_with(&["--max-batch-ops", "10", "--max-batch-bytes", "2000"]);
    env.kvr(["put", "keep", "me"]).ok();
    let before = env.snapshot();
    let many = numbered_puts(0..25);
    let big = numbered_puts(0..90); // 10 lines a part, but over 2,000 bytes
    std::fs::write(env.path("many.jsonl"), &many).unwrap();
    std::fs::write(env.path("big.jsonl"), &big).unwrap();
    let runs = [
        (
            env.kvr(["batch"]).stdin(many.clone()),
            "more than 10 operations",
        ),
        (env.kvr(["batch", "many.jsonl"]), "more than 10 operations"),
        (env.kvr(["batch"]).stdin(big.clone()), "server's limit"),
        (env.kvr(["batch", "big.jsonl"]), "server's limit"),
    ];
    for (run, needle) in runs {
        let done = run.code(2).stderr_has(needle).stderr_has("server's limit");
        let done = done
            .stderr_has("--chunk-size")
            .stderr_has("nothing was written");
        let text = done.stderr_text();
        assert!(!text.contains("--max-batch"), "names a server flag: {text}");
        assert_eq!(env.snapshot(), before);
    }
    // In parts of 10 lines each request is within the limits.
    env.kvr(["batch", "--chunk-size", "10"]).stdin(many).ok();
    env.kvr(["batch", "--chunk-size", "10", "big.jsonl"]).ok();
    assert_eq!(env.stats()["keys"], 91);
}

#[test]
fn bench_fails_fast_on_an_unreachable_server() {
    let env = Env::new();
    let done = env
        .kvr_bare([
            "--server",
            "http://127.0.0.1:1",
            "bench",
            "--duration",
            "600",
        ])
        .code(5)
        .stderr_has("cannot reach kvr server");
    assert!(done.out.stdout.is_empty(), "{}", done.report());
}

#[test]
fn bench_of_mostly_failed_reads_exits_1_and_suggests_prefill() {
    let env = Env::new();
    let db = env.path("bench.redb");
    let db = db.to_str().unwrap();
    let get = ["--db", db, "bench", "--workload", "get", "--requests", "40"];
    let done = env.kvr_bare(get).env("KVR_DB", "ignored.redb").code(1);
    let done = done
        .stderr_has("40 of 40 requests failed")
        .stderr_has("--prefill");
    assert!(
        done.stdout_text().contains("error not_found: 40"),
        "{}",
        done.report()
    );
    // With the keys written first the same run succeeds.
    let prefilled = ["--prefill", "100", "--keyspace", "100", "--clients", "2"];
    let mut run = env.kvr_bare(get);
    run.cmd.args(prefilled);
    run.ok();
    assert!(!env.path("ignored.redb").exists());
}

/// A tmux server of a test's own (skipped without tmux, as the TUI test),
/// killed on drop.
struct Tmux(String);

impl Tmux {
    /// Runs `command` (through the shell) in an 80x10 terminal.
    fn start(command: &str) -> Option<Tmux> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let available = std::process::Command::new("tmux")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success());
        if !available {
            eprintln!("SKIPPED: tmux is not installed (CI installs it)");
            return None;
        }
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let tmux = Tmux(format!("kvr-cli-test-{}-{n}", std::process::id()));
        tmux.run(&[
            "new-session",
            "-d",
            "-x",
            "80",
            "-y",
            "10",
            "-s",
            "main",
            command,
        ]);
        Some(tmux)
    }

    fn run(&self, args: &[&str]) -> String {
        let out = std::process::Command::new("tmux")
            .args(["-L", &self.0])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "tmux {args:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "main"])
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = std::process::Command::new("tmux")
            .args(["-L", &self.0, "kill-server"])
            .status();
    }
}

/// Polls `read` until its text contains every one of `needles`; returns it.
fn wait_for(what: &str, needles: &[&str], read: impl Fn() -> String) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let text = read();
        if needles.iter().all(|n| text.contains(n)) {
            return text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what} never had {needles:?}: {text:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn shell_quote(p: &std::path::Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', r"'\''"))
}

/// `kvr put KEY` with stdin a terminal says where the value comes from.
#[test]
fn put_on_a_terminal_says_it_reads_stdin_until_ctrl_d() {
    let env = Env::new();
    let command = format!(
        "env -u KVR_DB -u KVR_SERVER {} --db {} put k 2>{}; echo $? >{}",
        util::KVR,
        shell_quote(&env.db()),
        shell_quote(&env.path("stderr")),
        shell_quote(&env.path("rc"))
    );
    let Some(tmux) = Tmux::start(&command) else {
        return;
    };
    let file = |name: &str| std::fs::read_to_string(env.path(name)).unwrap_or_default();
    let said = wait_for("stderr", &["Ctrl-D"], || file("stderr"));
    assert_eq!(
        said,
        "kvr: reading the value from stdin until Ctrl-D (end of input)\n"
    );
    // Typed text, then Ctrl-D twice: the first ends the unfinished line, the
    // second is the end of input.
    tmux.run(&["send-keys", "-t", "main", "-l", "typed value"]);
    tmux.run(&["send-keys", "-t", "main", "C-d"]);
    tmux.run(&["send-keys", "-t", "main", "C-d"]);
    assert_eq!(wait_for("rc", &["\n"], || file("rc")), "0\n");
    assert_eq!(env.kvr(["get", "k"]).ok().out.stdout, b"typed value");
    // Not on a terminal: nothing said (the other tests' stdin is a pipe).
    let done = env.kvr(["put", "k2"]).stdin("v").ok();
    assert_eq!(done.stderr_text(), "");
}

/// The batch progress bar on a terminal names its phase, and its clock runs
/// while no input arrives (the input here stalls after one line).
#[test]
fn batch_progress_shows_the_phase_and_a_running_clock() {
    let env = Env::new();
    let command = format!(
        "{{ echo '{{\"key\":\"a\",\"value\":\"1\"}}'; sleep 600; }} | \
         env -u KVR_DB -u KVR_SERVER {} --db {} batch",
        util::KVR,
        shell_quote(&env.db()),
    );
    let Some(tmux) = Tmux::start(&command) else {
        return;
    };
    // A clock past 2 s shows the bar redrawn with no input moving.
    let screen = wait_for("the screen", &["00:00:02", "reading: 1 lines"], || {
        tmux.screen()
    });
    assert!(screen.contains("lines/s"), "{screen}");
}
