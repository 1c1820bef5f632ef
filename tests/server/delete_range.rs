//! `DELETE /v1/range` (SPEC "Deleting a range") through a real server:
//! atomic, a revision per key, a bound required, the batch limit, and the
//! refusals leave the data unchanged.

use crate::support::*;

fn keys(u: &str) -> Vec<String> {
    let r = http("GET", &format!("{u}/v1/range?keys_only=true"), &[], None);
    r.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["key"].as_str().unwrap().to_string())
        .collect()
}

fn fill(u: &str) {
    for k in ["a:1", "a:2", "a:3", "b:1", "b:2", "c"] {
        let r = http("PUT", &format!("{u}/v1/kv/{k}"), &[], Some(b"v"));
        assert_eq!(r.status, 200, "{}", r.text());
    }
}

#[test]
fn deletes_a_prefix_or_a_range_atomically_with_a_revision_per_key() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &["--max-batch-ops", "3"]);
    let u = &s.url;
    fill(u);
    // No bound: refused, nothing deleted.
    let r = http("DELETE", &format!("{u}/v1/range"), &[], None);
    assert_eq!((r.status, r.code()), (400, "bad_request".to_string()));
    // More keys than --max-batch-ops: 413, nothing deleted.
    let r = http("DELETE", &format!("{u}/v1/range?prefix="), &[], None);
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(keys(u).len(), 6);
    // `kvr delete --prefix ''` (every key) through the server: exit 2,
    // saying that nothing was deleted and what to do, as the range delete
    // is atomic and so never split.
    let out = s.cli(&["delete", "--prefix", ""], b"");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    for says in [
        "kvr: error: nothing was deleted: the range holds more than 3 keys",
        "restart the server with a larger --max-batch-ops",
        "run the delete with --db on its file",
        "narrower ranges (--range START END) of at most 3 keys each",
    ] {
        assert!(err.contains(says), "{says:?} in {err}");
    }
    assert_eq!(keys(u).len(), 6);

    let r = http("DELETE", &format!("{u}/v1/range?prefix=a:"), &[], None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), serde_json::json!({"deleted": 3, "revision": 9}));
    assert_eq!(r.header("x-kvr-revision").as_deref(), Some("9"));
    assert_eq!(keys(u), ["b:1", "b:2", "c"]);

    let r = http(
        "DELETE",
        &format!("{u}/v1/range?start=b:2&end=d"),
        &[],
        None,
    );
    assert_eq!(r.json(), serde_json::json!({"deleted": 2, "revision": 11}));
    // Nothing matched: 200, no revision taken.
    let r = http("DELETE", &format!("{u}/v1/range?prefix=zz"), &[], None);
    assert_eq!(r.json(), serde_json::json!({"deleted": 0, "revision": 11}));
    assert_eq!(keys(u), ["b:1"]);
    let stats = http("GET", &format!("{u}/v1/stats"), &[], None).json();
    assert_eq!(
        (stats["keys"].as_u64(), stats["revision"].as_u64()),
        (Some(1), Some(11))
    );
}

#[test]
fn an_empty_start_or_end_is_no_bound() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let u = &s.url;
    fill(u);
    // `?start=$EMPTY` used to mean "from the first key": every key.
    for query in ["start=", "end=", "start=&end="] {
        let r = http("DELETE", &format!("{u}/v1/range?{query}"), &[], None);
        assert_eq!(r.status, 400, "{query}: {}", r.text());
        assert_eq!(r.code(), "bad_request");
        assert!(r.json()["message"].as_str().unwrap().contains("non-empty"));
    }
    assert_eq!(keys(u).len(), 6);
    let stats = http("GET", &format!("{u}/v1/stats"), &[], None).json();
    assert_eq!(stats["revision"].as_u64(), Some(6));
    // One non-empty bound is enough; the empty one is unbounded.
    let r = http("DELETE", &format!("{u}/v1/range?start=&end=b"), &[], None);
    assert_eq!(r.json(), serde_json::json!({"deleted": 3, "revision": 9}));
    let r = http("DELETE", &format!("{u}/v1/range?start=c&end="), &[], None);
    assert_eq!(r.json(), serde_json::json!({"deleted": 1, "revision": 10}));
    assert_eq!(keys(u), ["b:1", "b:2"]);
    // `prefix=` (empty) is documented to mean every key.
    let r = http("DELETE", &format!("{u}/v1/range?prefix=&start="), &[], None);
    assert_eq!(r.json(), serde_json::json!({"deleted": 2, "revision": 12}));
}

#[test]
fn a_condition_on_a_range_delete_or_a_batch_is_refused_and_nothing_changes() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let u = &s.url;
    fill(u);
    // A guard the server would ignore is a guard dropped: 400, not a write.
    for (name, value) in [
        ("If-Match", "\"999\""),
        ("If-Match", "*"),
        ("If-None-Match", "*"),
    ] {
        let r = http(
            "DELETE",
            &format!("{u}/v1/range?prefix=a:"),
            &[(name, value)],
            None,
        );
        assert_eq!((r.status, r.code()), (400, "bad_request".to_string()));
        assert!(
            r.text().contains(&format!(
                "{name} applies to the write of one key (PUT or DELETE /v1/kv/KEY), not to a \
                 range delete; nothing was written"
            )),
            "{}",
            r.text()
        );
        let r = http(
            "POST",
            &format!("{u}/v1/batch"),
            &[(name, value)],
            Some(b"{\"key\":\"a:1\",\"value\":\"new\"}\n"),
        );
        assert_eq!((r.status, r.code()), (400, "bad_request".to_string()));
        assert!(r.text().contains("not to a batch"), "{}", r.text());
    }
    assert_eq!(keys(u), ["a:1", "a:2", "a:3", "b:1", "b:2", "c"]);
    let r = http("GET", &format!("{u}/v1/kv/a:1"), &[], None);
    assert_eq!(r.text(), "v");
    let stats = http("GET", &format!("{u}/v1/stats"), &[], None).json();
    assert_eq!(stats["revision"].as_u64(), Some(6));
}
