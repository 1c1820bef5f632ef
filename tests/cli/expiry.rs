//! SPEC "Expiry (TTL)" through the real binary, in every mode: `put
//! --ttl`, `ttl` / `expires_at_ms` on batch lines, expiry in `get --json`
//! and range lines, keys gone after their time (hidden by the clock and
//! removed by the next write with `--db`, deleted by the sweeper of a
//! server), each rejection leaving the data unchanged.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::util::{Env, parse_lines};

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn get_json(env: &Env, key: &str) -> serde_json::Value {
    let text = env.kvr(["get", "--json", key]).ok().stdout_text();
    serde_json::from_str(&text).unwrap()
}

fn revision(env: &Env) -> u64 {
    env.stats()["revision"].as_u64().unwrap()
}

/// How long a served test waits for the sweeper's delete: it looks every
/// 250 ms, so about a second after the expiry; a fixed sleep with a second
/// of slack failed on a loaded machine. How soon it acts is
/// tests/server/expiry.rs's check, not this file's.
const SWEEP_WAIT: Duration = Duration::from_secs(15);

/// Sleeps until this machine's clock is past `at_ms` (an expiry): with
/// `--db` that alone hides the key, no process has to act.
fn sleep_past(at_ms: u64) {
    let wait = (at_ms + 100).saturating_sub(now_ms());
    std::thread::sleep(Duration::from_millis(wait));
}

in_every_mode!(
    ttl_keys_carry_their_expiry_and_vanish,
    put_without_ttl_clears_the_expiry,
    ttl_rejections_change_nothing,
    batch_lines_take_ttl_and_expires_at_ms,
    range_into_batch_keeps_expiry,
    an_expired_key_is_absent_to_conditions,
    a_line_past_its_expiry_keeps_its_condition,
);

fn ttl_keys_carry_their_expiry_and_vanish(env: Env) {
    let before = now_ms();
    env.kvr(["put", "--ttl", "1", "session", "s"]).ok();
    let after = now_ms();
    env.kvr(["put", "keep", "k"]).ok();
    let line = get_json(&env, "session");
    let at = line["expires_at_ms"].as_u64().unwrap();
    assert!((before + 1000..=after + 1000).contains(&at), "{line}");
    assert_eq!(line["revision"], 1);
    assert!(get_json(&env, "keep").get("expires_at_ms").is_none());
    let lines = env.range_json(&[]);
    assert_eq!(lines[1]["key"], "session");
    assert_eq!(lines[1]["expires_at_ms"].as_u64(), Some(at));
    sleep_past(at);
    if env.is_served() {
        // Until the sweeper's delete (revision 3) the server still has it.
        env.wait_for_revision(3, SWEEP_WAIT, "no sweep");
    }
    env.kvr(["get", "session"]).code(1);
    let keys: Vec<_> = env
        .range_json(&[])
        .iter()
        .map(|l| l["key"].clone())
        .collect();
    assert_eq!(keys, vec!["keep"]);
    if env.is_served() {
        // The sweeper's delete took a revision.
        assert_eq!(revision(&env), 3);
    } else {
        // Hidden by the clock until a write deletes it, taking a revision.
        assert_eq!(revision(&env), 2);
        let out = env.kvr(["put", "--json", "x", "1"]).ok().stdout_text();
        assert_eq!(out, "{\"revision\":4}\n");
    }
    assert_eq!(env.stats()["keys"], if env.is_served() { 1 } else { 2 });
}

fn put_without_ttl_clears_the_expiry(env: Env) {
    env.kvr(["put", "--ttl", "5m", "k", "v1"]).ok();
    let at = get_json(&env, "k")["expires_at_ms"].as_u64().unwrap();
    assert!(at >= now_ms() + 290_000, "{at}");
    env.kvr(["put", "--ttl", "2h", "k", "v2"]).ok();
    let at = get_json(&env, "k")["expires_at_ms"].as_u64().unwrap();
    assert!(at >= now_ms() + 7_190_000, "{at}");
    env.kvr(["put", "k", "v3"]).ok();
    let line = get_json(&env, "k");
    assert!(line.get("expires_at_ms").is_none(), "{line}");
    assert_eq!(line["revision"], 3);
    env.kvr(["put", "--ttl", "1d", "d", "v"]).ok();
    let at = get_json(&env, "d")["expires_at_ms"].as_u64().unwrap();
    assert!(at >= now_ms() + 86_390_000, "{at}");
}

fn ttl_rejections_change_nothing(env: Env) {
    env.kvr(["put", "--ttl", "90", "k", "v"]).ok();
    let before = env.snapshot();
    for bad in [
        "0",
        "0s",
        "3651d",
        "315360001",
        "abc",
        "5x",
        "-5",
        "1.5",
        "",
    ] {
        env.kvr(["put", "--ttl", bad, "k", "other"]).code(2);
    }
    // The unit named as written, not its last letter.
    env.kvr(["put", "--ttl", "5sec", "k", "other"])
        .code(2)
        .stderr_has("unknown unit \"sec\"");
    // Letters alone are no number, not an unknown unit (found by an audit).
    env.kvr(["put", "--ttl", "abc", "k", "other"])
        .code(2)
        .stderr_has("\"abc\" is not a duration such as 90, 30s, 5m, 2h or 1d");
    for line in [
        r#"{"key":"a","value":"x","ttl":0}"#,
        r#"{"key":"a","value":"x","ttl":315360001}"#,
        r#"{"key":"a","value":"x","ttl":"5"}"#,
        r#"{"key":"a","value":"x","ttl":5,"expires_at_ms":99999999999999}"#,
        r#"{"key":"a","value":"x","expires_at_ms":-1}"#,
        r#"{"op":"delete","key":"k","ttl":5}"#,
    ] {
        let input = format!("{{\"key\":\"ok\",\"value\":\"1\"}}\n{line}\n");
        env.kvr(["batch"]).stdin(input).code(2).stderr_has("line 2");
    }
    assert_eq!(env.snapshot(), before);
}

fn batch_lines_take_ttl_and_expires_at_ms(env: Env) {
    let future = now_ms() + 3_600_000;
    let input = format!(
        "{{\"key\":\"a\",\"value\":\"1\",\"ttl\":100}}\n\
         {{\"key\":\"past\",\"value\":\"2\",\"expires_at_ms\":1}}\n\
         {{\"key\":\"c\",\"value\":\"3\",\"expires_at_ms\":{future}}}\n\
         {{\"key\":\"d\",\"value\":\"4\"}}\n"
    );
    let out = env.kvr(["batch", "--json"]).stdin(input).ok().stdout_text();
    let answer: serde_json::Value = serde_json::from_str(&out).unwrap();
    // The line whose expiry has passed is skipped and takes no revision.
    assert_eq!(
        (answer["applied"].as_u64(), answer["revision"].as_u64()),
        (Some(3), Some(3))
    );
    let lines = env.range_json(&[]);
    let keys: Vec<_> = lines.iter().map(|l| l["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["a", "c", "d"]);
    let a = lines[0]["expires_at_ms"].as_u64().unwrap();
    assert!(a >= now_ms() + 95_000 && a <= now_ms() + 100_000, "{a}");
    assert_eq!(lines[1]["expires_at_ms"].as_u64(), Some(future));
    assert!(lines[2].get("expires_at_ms").is_none());
    // Keys-only lines carry only the key.
    assert_eq!(
        env.range_json(&["--keys-only"])[0],
        serde_json::json!({"key":"a"})
    );
}

fn range_into_batch_keeps_expiry(env: Env) {
    let future = now_ms() + 3_600_000;
    env.kvr(["put", "--ttl", "1h", "a", "1"]).ok();
    env.kvr(["put", "b", "2"]).ok();
    env.kvr(["batch"])
        .stdin(format!(
            "{{\"key\":\"c\",\"value\":\"3\",\"expires_at_ms\":{future}}}\n"
        ))
        .ok();
    let dump = env.kvr(["range"]).ok().stdout_text();
    let copy = env.new_like();
    copy.kvr(["batch"]).stdin(dump.clone()).ok();
    assert_eq!(
        parse_lines(&copy.kvr(["range"]).ok().stdout_text()),
        parse_lines(&dump)
    );
}

fn an_expired_key_is_absent_to_conditions(env: Env) {
    // 3 s: the refused put and its check must run before the expiry, also
    // on a loaded machine.
    env.kvr(["put", "--ttl", "3", "lock", "me"]).ok();
    // Its expiry is at most this (set while the put ran).
    let at = now_ms() + 3000;
    let before = env.snapshot();
    env.kvr(["put", "--if-revision", "0", "lock", "you"])
        .code(4);
    assert_eq!(env.snapshot(), before);
    sleep_past(at);
    if env.is_served() {
        // The sweeper's delete first (revision 2), as the revisions below
        // say: a put between the expiry and the sweep would take 2 itself.
        env.wait_for_revision(2, SWEEP_WAIT, "no sweep");
    }
    env.kvr(["put", "--if-revision", "0", "lock", "you"]).ok();
    let line = get_json(&env, "lock");
    assert_eq!(line["value"], "you");
    assert!(line.get("expires_at_ms").is_none());
    // put 1, its expiry 2, the new put 3.
    assert_eq!(line["revision"], 3);
}

fn a_line_past_its_expiry_keeps_its_condition(env: Env) {
    env.kvr(["put", "x", "y"]).ok();
    let before = env.snapshot();
    // Skipped for its passed expiry, the line still makes the batch
    // conditional: x is at revision 1, not 99.
    let input = "{\"key\":\"other\",\"value\":\"1\"}\n\
                 {\"key\":\"x\",\"value\":\"1\",\"expires_at_ms\":1000,\"if_revision\":99}\n";
    env.kvr(["batch"]).stdin(input).code(4).stderr_has("line 2");
    assert_eq!(env.snapshot(), before);
    // With the condition met the line is skipped and the rest applied.
    let input = input.replace("99", "1");
    let out = env.kvr(["batch", "--json"]).stdin(input).ok().stdout_text();
    let answer: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(answer["applied"], 1);
    assert_eq!(env.kvr(["get", "x"]).ok().stdout_text(), "y");
    assert_eq!(env.kvr(["get", "other"]).ok().stdout_text(), "1");
}

/// With `--db`, the expired keys a write command deletes first are
/// committed with its write only: a rejected command changes nothing, and
/// the next accepted one (a batch of no-ops too) deletes them, each taking
/// a revision.
#[test]
fn a_rejected_write_leaves_expired_keys_for_the_next() {
    let env = Env::new();
    env.kvr(["put", "keep", "v"]).ok();
    env.kvr(["put", "--ttl", "1", "gone", "v"]).ok();
    std::thread::sleep(Duration::from_millis(1300));
    let before = env.snapshot();
    assert_eq!(revision(&env), 2);
    // Absent to reads, so not counted either (still in the file).
    assert_eq!(env.stats()["keys"], 1);
    assert_eq!(
        env.kvr(["range", "--count"]).ok().stdout_text(),
        "{\"count\":1}\n"
    );
    // `check` and `backup` count keys as `stats` does; `check` notes the
    // expired one, and the backup leaves it out.
    let checked = env.kvr(["check"]).ok();
    assert_eq!(checked.stdout_text(), "ok: 1 keys, revision 2\n");
    assert!(
        checked
            .stderr_text()
            .contains("1 more key in the file expired and is deleted by the next write"),
        "{}",
        checked.stderr_text()
    );
    let dest = env.path("copy.redb");
    let out = env
        .kvr(["backup", "--json", dest.to_str().unwrap()])
        .ok()
        .stdout_text();
    let out: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (out["keys"].as_u64(), out["revision"].as_u64()),
        (Some(1), Some(2))
    );
    let copy = dest.to_str().unwrap();
    assert_eq!(
        env.kvr_bare(["--db", copy, "check"]).ok().stdout_text(),
        "ok: 1 keys, revision 2\n"
    );
    assert_eq!(
        env.kvr_bare(["--db", copy, "range", "--keys-only"])
            .ok()
            .stdout_text(),
        "{\"key\":\"keep\"}\n"
    );
    std::fs::remove_file(&dest).unwrap();
    assert_eq!(env.snapshot(), before);
    env.kvr(["batch"])
        .stdin("{\"key\":\"\"}\n")
        .code(2)
        .stderr_has("line 1");
    env.kvr(["batch"])
        .stdin("{\"key\":\"keep\",\"value\":\"w\",\"if_revision\":9}\n")
        .code(4);
    env.kvr(["put", "--if-revision", "99", "keep", "w"]).code(4);
    env.kvr(["delete", "nosuch"]).code(1);
    env.kvr(["delete", "--if-revision", "7", "keep"]).code(4);
    env.kvr(["delete", "--range", "b", "a"]).code(2);
    assert_eq!(env.snapshot(), before);
    // A batch whose deletes find nothing is accepted (exit 0), so it
    // sweeps first as every write command does: the expiry delete takes
    // revision 3, the batch itself none.
    let out = env
        .kvr(["batch", "--json"])
        .stdin("{\"op\":\"delete\",\"key\":\"nosuch\"}\n")
        .ok()
        .stdout_text();
    assert_eq!(
        out,
        "{\"applied\":0,\"revision\":3,\"puts\":0,\"deletes\":0}\n"
    );
    assert_eq!(env.kvr(["get", "gone"]).code(1).stdout_text(), "");
    // The put takes revision 4.
    let out = env.kvr(["put", "--json", "x", "1"]).ok().stdout_text();
    assert_eq!(out, "{\"revision\":4}\n");
    let keys: Vec<_> = env
        .range_json(&[])
        .iter()
        .map(|l| l["key"].clone())
        .collect();
    assert_eq!(keys, ["keep", "x"]);
    assert_eq!(env.stats()["keys"], 2);
}

/// With `--db`, a write command deletes at most 10,000 expired keys first
/// (SPEC "Expiry (TTL)"; which ones, the first to expire, the model test
/// checks on the store); the rest stay absent to reads and go with the
/// next write, each taking a revision.
#[test]
fn a_write_deletes_at_most_10_000_expired_keys_first() {
    let env = Env::new();
    let at = now_ms() + 1500;
    let mut input = String::new();
    for i in 0..3 {
        input += &format!(
            "{{\"key\":\"a{i}\",\"value\":\"v\",\"expires_at_ms\":{}}}\n",
            at + 1
        );
    }
    for i in 0..10_000 {
        input += &format!("{{\"key\":\"k{i:05}\",\"value\":\"v\",\"expires_at_ms\":{at}}}\n");
    }
    env.kvr(["batch"]).stdin(input).ok();
    assert_eq!(revision(&env), 10_003);
    let wait = (at + 100).saturating_sub(now_ms());
    std::thread::sleep(Duration::from_millis(wait));
    let out = env.kvr(["put", "--json", "x", "1"]).ok().stdout_text();
    assert_eq!(out, format!("{{\"revision\":{}}}\n", 10_003 + 10_000 + 1));
    // Three are left: absent to reads, still in the file.
    for key in ["a0", "a1", "a2"] {
        env.kvr(["get", key]).code(1);
    }
    env.kvr(["get", "k09999"]).code(1);
    let checked = env.kvr(["check"]).ok();
    assert_eq!(checked.stdout_text(), "ok: 1 keys, revision 20004\n");
    assert!(
        checked
            .stderr_text()
            .contains("3 more keys in the file expired and are deleted by the next write"),
        "{}",
        checked.stderr_text()
    );
    // The next write deletes them, each taking a revision, then itself.
    let out = env.kvr(["put", "--json", "y", "1"]).ok().stdout_text();
    assert_eq!(out, "{\"revision\":20008}\n");
    let checked = env.kvr(["check"]).ok();
    assert_eq!(checked.stdout_text(), "ok: 2 keys, revision 20008\n");
    assert_eq!(checked.stderr_text(), "");
}

/// `kvr check` verifies the expiry index, and a backup carries expiry.
#[test]
fn check_and_backup_know_expiry() {
    let env = Env::new();
    env.kvr(["put", "--ttl", "1h", "a", "1"]).ok();
    env.kvr(["put", "b", "2"]).ok();
    env.kvr(["put", "--ttl", "2h", "a", "3"]).ok();
    env.kvr(["check"]).ok();
    let at = get_json(&env, "a")["expires_at_ms"].as_u64().unwrap();
    let dest = env.path("copy.redb");
    env.kvr(["backup", dest.to_str().unwrap()]).ok();
    let copy = env
        .kvr_bare(["--db", dest.to_str().unwrap(), "get", "--json", "a"])
        .ok()
        .stdout_text();
    let copy: serde_json::Value = serde_json::from_str(&copy).unwrap();
    assert_eq!(copy["expires_at_ms"].as_u64(), Some(at));
    env.kvr_bare(["--db", dest.to_str().unwrap(), "check"]).ok();
}

/// `kvr check` finds an expiry index out of step with the records.
#[test]
fn check_finds_a_damaged_expiry_index() {
    let env = Env::new();
    env.kvr(["put", "--ttl", "1h", "a", "1"]).ok();
    env.kvr(["put", "b", "2"]).ok();
    let table: redb::TableDefinition<(u64, &[u8]), u64> = redb::TableDefinition::new("expiry");
    {
        let db = redb::Database::open(env.db()).unwrap();
        let wtx = db.begin_write().unwrap();
        {
            let mut t = wtx.open_table(table).unwrap();
            let stale: Vec<(u64, Vec<u8>)> = redb::ReadableTable::iter(&t)
                .unwrap()
                .map(|e| {
                    let (k, _) = e.unwrap();
                    (k.value().0, k.value().1.to_vec())
                })
                .collect();
            assert_eq!(stale.len(), 1);
            t.remove((stale[0].0, stale[0].1.as_slice())).unwrap();
            t.insert((5, b"b".as_slice()), 2).unwrap();
        }
        wtx.commit().unwrap();
    }
    let done = env.kvr(["check"]).code(3);
    let out = format!("{}{}", done.stdout_text(), done.stderr_text());
    assert!(out.contains("expiry index has no entry"), "{out}");
    assert!(
        out.contains("the entry at 5 for revision 2 has no such record"),
        "{out}"
    );
}
