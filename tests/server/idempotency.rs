//! `Idempotency-Key` (SPEC "Idempotency") through a real server: a
//! repeat gets the first outcome (200, 404, 412, with its revision) and
//! changes nothing, also after `kill -9` and a restart; another request
//! under the same key is 422; a malformed key is 400 and writes nothing;
//! the CLI sends a key with every write.

use crate::support::*;

fn stats(u: &str) -> (u64, u64) {
    let s = http("GET", &format!("{u}/v1/stats"), &[], None).json();
    (s["keys"].as_u64().unwrap(), s["revision"].as_u64().unwrap())
}

/// Sends each request twice with the same key: both answers are equal.
fn twice(method: &str, url: &str, key: &str, body: Option<&[u8]>) -> Reply {
    let first = http(method, url, &[("Idempotency-Key", key)], body);
    let again = http(method, url, &[("Idempotency-Key", key)], body);
    assert_eq!(
        (first.status, first.text()),
        (again.status, again.text()),
        "{method} {url}"
    );
    first
}

#[test]
fn repeats_get_the_first_outcome_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start(dir.path(), &[]);
    let u = s.url.clone();

    let r = twice("PUT", &format!("{u}/v1/kv/a"), "put-a", Some(b"1"));
    assert_eq!((r.status, r.json()["revision"].as_u64()), (200, Some(1)));
    assert_eq!(r.header("etag").as_deref(), Some("\"1\""));
    assert_eq!(stats(&u), (1, 1));
    // A conditional put that fails: the 412 is recorded with the revision
    // the key had, and a repeat gets it even after the key changed.
    let cond = [("Idempotency-Key", "cond-a"), ("If-Match", "\"7\"")];
    let r = http("PUT", &format!("{u}/v1/kv/a"), &cond, Some(b"x"));
    assert_eq!((r.status, r.json()["revision"].as_u64()), (412, Some(1)));
    http("PUT", &format!("{u}/v1/kv/a"), &[], Some(b"2"));
    let r = http("PUT", &format!("{u}/v1/kv/a"), &cond, Some(b"x"));
    assert_eq!((r.status, r.json()["revision"].as_u64()), (412, Some(1)));
    // A delete of an absent key: 404, and a repeat is 404 even once the
    // key exists (nothing deleted).
    let r = http(
        "DELETE",
        &format!("{u}/v1/kv/b"),
        &[("Idempotency-Key", "del-b")],
        None,
    );
    assert_eq!(r.status, 404);
    http("PUT", &format!("{u}/v1/kv/b"), &[], Some(b"here"));
    let r = http(
        "DELETE",
        &format!("{u}/v1/kv/b"),
        &[("Idempotency-Key", "del-b")],
        None,
    );
    assert_eq!(r.status, 404);
    assert_eq!(
        http("GET", &format!("{u}/v1/kv/b"), &[], None).text(),
        "here"
    );
    // A batch and a range delete, each applied once.
    let lines = b"{\"key\":\"c:1\",\"value\":\"x\"}\n{\"key\":\"c:2\",\"value\":\"y\"}\n";
    let r = twice("POST", &format!("{u}/v1/batch"), "batch-c", Some(lines));
    assert_eq!(r.json()["applied"].as_u64(), Some(2));
    let before = stats(&u);
    let r = twice(
        "DELETE",
        &format!("{u}/v1/range?prefix=c:"),
        "range-c",
        None,
    );
    assert_eq!(r.json()["deleted"].as_u64(), Some(2));
    assert_eq!(stats(&u), (before.0 - 2, before.1 + 2));
    let (keys, revision) = stats(&u);

    // After kill -9 and a restart (the records come back from the log),
    // repeats still get their first outcomes and write nothing.
    s.kill9();
    let s = Server::start(dir.path(), &[]);
    let u = s.url.clone();
    let r = http(
        "PUT",
        &format!("{u}/v1/kv/a"),
        &[("Idempotency-Key", "put-a")],
        Some(b"1"),
    );
    assert_eq!((r.status, r.json()["revision"].as_u64()), (200, Some(1)));
    let r = http("PUT", &format!("{u}/v1/kv/a"), &cond, Some(b"x"));
    assert_eq!(r.status, 412);
    let r = http(
        "DELETE",
        &format!("{u}/v1/kv/b"),
        &[("Idempotency-Key", "del-b")],
        None,
    );
    assert_eq!(r.status, 404);
    let r = http(
        "POST",
        &format!("{u}/v1/batch"),
        &[("Idempotency-Key", "batch-c")],
        Some(lines),
    );
    assert_eq!((r.status, r.json()["applied"].as_u64()), (200, Some(2)));
    assert_eq!(stats(&u), (keys, revision));
    assert_eq!(http("GET", &format!("{u}/v1/kv/a"), &[], None).text(), "2");
}

/// The precondition is part of the request: the same key and body with
/// another `If-Match` / `If-None-Match` is 422, not the first outcome; the
/// same condition on two header lines is the same request.
#[test]
fn a_different_precondition_is_a_different_request() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let u = &s.url;
    let reused = |r: &Reply| {
        assert_eq!(
            (r.status, r.code()),
            (422, "idempotency_key_reused".to_string()),
            "{}",
            r.text()
        );
    };
    // The audit's cases: a failed conditional put, then the same key and
    // body without the condition (used to replay the 412, so the write
    // never happened).
    let r = http(
        "PUT",
        &format!("{u}/v1/kv/d"),
        &[("Idempotency-Key", "ik-2"), ("If-Match", "\"999\"")],
        Some(b"v"),
    );
    assert_eq!(
        (r.status, r.json()["revision"].clone()),
        (412, serde_json::json!(null))
    );
    let r = http(
        "PUT",
        &format!("{u}/v1/kv/d"),
        &[("Idempotency-Key", "ik-2")],
        Some(b"v"),
    );
    reused(&r);
    // And a plain put, then the same with a condition that would fail
    // (used to replay the 200).
    let r = http(
        "PUT",
        &format!("{u}/v1/kv/c"),
        &[("Idempotency-Key", "ik-1")],
        Some(b"v"),
    );
    assert_eq!(r.status, 200);
    for condition in [
        ("If-Match", "\"999\""),
        ("If-Match", "*"),
        ("If-None-Match", "*"),
    ] {
        let r = http(
            "PUT",
            &format!("{u}/v1/kv/c"),
            &[("Idempotency-Key", "ik-1"), condition],
            Some(b"v"),
        );
        reused(&r);
    }
    // A delete alike.
    let r = http(
        "DELETE",
        &format!("{u}/v1/kv/c"),
        &[("Idempotency-Key", "ik-3"), ("If-Match", "\"5\"")],
        None,
    );
    assert_eq!(r.status, 412);
    let r = http(
        "DELETE",
        &format!("{u}/v1/kv/c"),
        &[("Idempotency-Key", "ik-3")],
        None,
    );
    reused(&r);
    assert_eq!(stats(u), (1, 1));
    assert_eq!(http("GET", &format!("{u}/v1/kv/d"), &[], None).status, 404);
    assert_eq!(http("GET", &format!("{u}/v1/kv/c"), &[], None).text(), "v");
    // The same condition however it is spelled: the first outcome again.
    let headers = [("Idempotency-Key", "ik-4"), ("If-Match", "\"1\"")];
    let first = raw_http(&s.addr, "PUT", "/v1/kv/c", &headers, b"w");
    assert_eq!(
        (first.status, first.json()["revision"].as_u64()),
        (200, Some(2))
    );
    let split = [
        ("Idempotency-Key", "ik-4"),
        ("If-Match", "\"1\""),
        ("If-Match", " \"1\" "),
    ];
    let again = raw_http(&s.addr, "PUT", "/v1/kv/c", &split, b"w");
    assert_eq!((again.status, again.text()), (first.status, first.text()));
    assert_eq!(stats(u), (1, 2));
    // The same key and parameters however the URL spells them (the key in
    // the path or as ?key=, escapes, parameter order): the same request.
    let key = [("Idempotency-Key", "ik-5")];
    let first = raw_http(&s.addr, "PUT", "/v1/kv/k%20x?ttl=60", &key, b"t");
    assert_eq!(
        (first.status, first.json()["revision"].as_u64()),
        (200, Some(3))
    );
    for path in ["/v1/kv?key=k%20x&ttl=60", "/v1/kv?ttl=%360&key=k%20x"] {
        let again = raw_http(&s.addr, "PUT", path, &key, b"t");
        assert_eq!(
            (again.status, again.text()),
            (first.status, first.text()),
            "{path}"
        );
    }
    // Another TTL is another request.
    reused(&raw_http(
        &s.addr,
        "PUT",
        "/v1/kv?key=k%20x&ttl=61",
        &key,
        b"t",
    ));
    assert_eq!(stats(u), (2, 3));
}

#[test]
fn a_reused_or_malformed_key_is_refused_and_nothing_changes() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let u = &s.url;
    let r = http(
        "PUT",
        &format!("{u}/v1/kv/a"),
        &[("Idempotency-Key", "k")],
        Some(b"1"),
    );
    assert_eq!(r.status, 200);
    let before = stats(u);
    // The same key with another body, key, method or query: 422.
    for (method, url, body) in [
        ("PUT", format!("{u}/v1/kv/a"), Some(b"2".as_slice())),
        ("PUT", format!("{u}/v1/kv/b"), Some(b"1".as_slice())),
        ("PUT", format!("{u}/v1/kv/a?ttl=60"), Some(b"1".as_slice())),
        ("DELETE", format!("{u}/v1/kv/a"), None),
        (
            "POST",
            format!("{u}/v1/batch"),
            Some(b"{\"key\":\"a\",\"value\":\"1\"}\n".as_slice()),
        ),
    ] {
        let r = http(method, &url, &[("Idempotency-Key", "k")], body);
        assert_eq!(
            (r.status, r.code()),
            (422, "idempotency_key_reused".to_string()),
            "{method} {url}"
        );
        assert_eq!(r.json()["idempotency_key"].as_str(), Some("k"));
    }
    // Malformed keys: 400 before anything is applied.
    let long = "x".repeat(129);
    for bad in [long.as_str(), "tab\there", "caf\u{e9}"] {
        let r = http(
            "PUT",
            &format!("{u}/v1/kv/new"),
            &[("Idempotency-Key", bad)],
            Some(b"v"),
        );
        assert_eq!(
            (r.status, r.code()),
            (400, "bad_request".to_string()),
            "{bad:?}"
        );
    }
    let r = raw(
        &s.addr,
        b"PUT /v1/kv/new HTTP/1.1\r\nHost: x\r\nIdempotency-Key:\r\nContent-Length: 1\r\nConnection: close\r\n\r\nv",
    );
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    // Two Idempotency-Key lines: no one key, so 400 (the last one was
    // taken, so the order of the lines chose what a request repeated).
    let r = raw(
        &s.addr,
        b"PUT /v1/kv/new HTTP/1.1\r\nHost: x\r\nIdempotency-Key: k\r\nIdempotency-Key: k2\r\nContent-Length: 1\r\nConnection: close\r\n\r\nv",
    );
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    assert!(r.contains("Idempotency-Key is given more than once"), "{r}");
    let longest = "y".repeat(128);
    let r = http(
        "PUT",
        &format!("{u}/v1/kv/ok"),
        &[("Idempotency-Key", &longest)],
        Some(b"v"),
    );
    assert_eq!(r.status, 200);
    assert_eq!(stats(u), (before.0 + 1, before.1 + 1));
    // Printable ASCII includes the space (SPEC): a key with spaces inside
    // is a key like any other, repeated without being applied again.
    for _ in 0..2 {
        let r = http(
            "PUT",
            &format!("{u}/v1/kv/spaced"),
            &[("Idempotency-Key", "order 42 / retry")],
            Some(b"v"),
        );
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!(stats(u), (before.0 + 2, before.1 + 2));
    assert_eq!(http("GET", &format!("{u}/v1/kv/a"), &[], None).text(), "1");
    assert_eq!(
        http("GET", &format!("{u}/v1/kv/new"), &[], None).status,
        404
    );
}

/// A listener that records each request's head and answers it with the
/// next of `answers` (status line and headers, then a JSON body).
fn recording_server(
    answers: Vec<(&'static str, &'static str)>,
) -> (String, std::thread::JoinHandle<Vec<String>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let mut heads = Vec::new();
        for (head, body) in answers {
            let (mut conn, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut request = String::new();
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if let Some(n) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = n.trim().parse().unwrap();
                }
                if line == "\r\n" || line.is_empty() {
                    break;
                }
                request.push_str(&line);
            }
            let mut body_in = vec![0u8; length];
            reader.read_exact(&mut body_in).unwrap();
            heads.push(request);
            let answer = format!(
                "{head}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            conn.write_all(answer.as_bytes()).unwrap();
        }
        heads
    });
    (url, handle)
}

fn idempotency_key(head: &str) -> String {
    head.lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("idempotency-key")
                .then(|| value.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no Idempotency-Key in {head}"))
}

#[test]
fn the_cli_sends_a_key_with_every_write_and_retries_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let ok = (
        "HTTP/1.1 200 OK\r\nX-Kvr-Revision: 1",
        r#"{"revision":1,"applied":1,"deleted":0}"#,
    );
    let (url, server) = recording_server(vec![ok; 4]);
    for (args, stdin) in [
        (vec!["put", "k", "v"], b"".as_slice()),
        (vec!["delete", "k"], b"".as_slice()),
        (vec!["delete", "--prefix", "p"], b"".as_slice()),
        (
            vec!["batch"],
            b"{\"key\":\"b\",\"value\":\"1\"}\n".as_slice(),
        ),
    ] {
        let mut full = vec!["--server", url.as_str()];
        full.extend(&args);
        let o = kvr(dir.path(), &full, stdin);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    }
    let keys: Vec<String> = server
        .join()
        .unwrap()
        .iter()
        .map(|h| idempotency_key(h))
        .collect();
    for k in &keys {
        assert!(
            k.len() == 32 && k.bytes().all(|b| b.is_ascii_hexdigit()),
            "{k}"
        );
    }
    let distinct: std::collections::BTreeSet<_> = keys.iter().collect();
    assert_eq!(distinct.len(), 4, "a new key per write: {keys:?}");

    // A cluster member that lost track of the write (outcome_unknown): the
    // CLI sends it again, with the same key, and reports the answer.
    let unknown = (
        "HTTP/1.1 503 Service Unavailable\r\nX-Kvr-Node: 1\r\nRetry-After: 0",
        r#"{"error":"outcome_unknown","message":"leadership lost"}"#,
    );
    let ok = (
        "HTTP/1.1 200 OK\r\nX-Kvr-Node: 1\r\nX-Kvr-Revision: 7",
        r#"{"revision":7}"#,
    );
    let (url, server) = recording_server(vec![unknown, ok]);
    let o = kvr(
        dir.path(),
        &["--server", &url, "put", "--json", "k", "v"],
        b"",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), r#"{"revision":7}"#);
    let heads = server.join().unwrap();
    assert_eq!(idempotency_key(&heads[0]), idempotency_key(&heads[1]));
}

/// A repeat answered from its record says the revision it was applied at
/// in its body and ETag, and the database's revision now in
/// `X-Kvr-Revision`: the header never goes backwards on a node, for
/// every write route (it went back to the recorded revision for 200s,
/// while a repeated 412 already carried the current one).
#[test]
fn a_repeat_reflects_the_current_revision_in_its_header() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let u = s.url.clone();
    let header = |r: &Reply| r.header("x-kvr-revision").unwrap().parse::<u64>().unwrap();
    let requests: [(&str, String, Option<&[u8]>); 4] = [
        ("PUT", format!("{u}/v1/kv/a"), Some(b"1")),
        (
            "POST",
            format!("{u}/v1/batch"),
            Some(b"{\"key\":\"b\",\"value\":\"2\"}\n"),
        ),
        ("DELETE", format!("{u}/v1/kv/a"), None),
        ("DELETE", format!("{u}/v1/range?prefix=b"), None),
    ];
    for (i, (method, url, body)) in requests.iter().enumerate() {
        let key = format!("repeat-{i}");
        let first = http(method, url, &[("Idempotency-Key", &key)], *body);
        assert_eq!(first.status, 200, "{method} {url}: {}", first.text());
        let at = first.json()["revision"].as_u64().unwrap();
        assert_eq!(header(&first), at, "{method} {url}");
        // Other writes move the database on.
        for n in 0..3 {
            let r = http("PUT", &format!("{u}/v1/kv/other{i}-{n}"), &[], Some(b"x"));
            assert_eq!(r.status, 200);
        }
        let (_, now) = stats(&u);
        let again = http(method, url, &[("Idempotency-Key", &key)], *body);
        assert_eq!((again.status, again.text()), (200, first.text()));
        assert_eq!(again.header("etag"), first.header("etag"));
        assert_eq!(
            header(&again),
            now,
            "{method} {url}: the header of a repeat"
        );
        assert_eq!(stats(&u).1, now, "a repeat changes nothing");
    }
}
