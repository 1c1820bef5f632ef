//! Every route, status, header and error body of SPEC "HTTP API".

use std::io::{Read, Write};

use crate::support::*;

fn server() -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    (dir, s)
}

#[test]
fn point_routes_statuses_and_headers() {
    let (_d, s) = server();
    let u = &s.url;
    let r = http(
        "PUT",
        &format!("{u}/v1/kv/a"),
        &[("Content-Type", "text/plain")],
        Some(b"one"),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), serde_json::json!({"revision": 1}));
    assert_eq!(r.header("etag").as_deref(), Some("\"1\""));
    assert_eq!(r.header("x-kvr-revision").as_deref(), Some("1"));

    let r = http("GET", &format!("{u}/v1/kv/a"), &[], None);
    assert_eq!((r.status, r.body.as_slice()), (200, &b"one"[..]));
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/octet-stream")
    );
    assert_eq!(r.header("etag").as_deref(), Some("\"1\""));
    assert_eq!(r.header("content-length").as_deref(), Some("3"));
    let r = http("HEAD", &format!("{u}/v1/kv/a"), &[], None);
    assert_eq!((r.status, r.body.len()), (200, 0));
    assert_eq!(r.header("content-length").as_deref(), Some("3"));

    let r = http("GET", &format!("{u}/v1/kv/missing"), &[], None);
    assert_eq!((r.status, r.code()), (404, "not_found".to_string()));
    assert_eq!(r.header("x-kvr-revision").as_deref(), Some("1"));

    // Conditions.
    let put =
        |h: &[(&str, &str)], key: &str| http("PUT", &format!("{u}/v1/kv/{key}"), h, Some(b"x"));
    let r = put(&[("If-Match", "\"7\"")], "a");
    assert_eq!(
        (r.status, r.code()),
        (412, "precondition_failed".to_string())
    );
    assert_eq!(r.json()["revision"], 1);
    let r = put(&[("If-None-Match", "*")], "a");
    assert_eq!((r.status, r.json()["revision"].as_u64()), (412, Some(1)));
    let r = put(&[("If-Match", "*")], "nope");
    assert_eq!(r.status, 412);
    assert!(r.json()["revision"].is_null());
    assert_eq!(
        http("GET", &format!("{u}/v1/kv/nope"), &[], None).status,
        404
    );
    assert_eq!(put(&[("If-Match", "\"1\"")], "a").json()["revision"], 2);
    assert_eq!(put(&[("If-Match", "*")], "a").json()["revision"], 3);
    assert_eq!(put(&[("If-None-Match", "*")], "b").json()["revision"], 4);
    let r = put(&[("If-Match", "soon")], "a");
    assert_eq!((r.status, r.code()), (400, "bad_request".to_string()));

    // Delete.
    let del = |h: &[(&str, &str)], key: &str| http("DELETE", &format!("{u}/v1/kv/{key}"), h, None);
    assert_eq!(del(&[("If-Match", "\"2\"")], "a").status, 412);
    assert_eq!(del(&[], "zzz").code(), "not_found");
    let r = del(&[("If-Match", "\"3\"")], "a");
    assert_eq!((r.status, r.json()["revision"].as_u64()), (200, Some(5)));
    assert_eq!(r.header("x-kvr-revision").as_deref(), Some("5"));
    assert_eq!(http("GET", &format!("{u}/v1/kv/a"), &[], None).status, 404);

    // Stats, health, metrics, routing errors.
    let r = http("GET", &format!("{u}/v1/stats"), &[], None);
    assert_eq!(r.json()["keys"], 1);
    assert_eq!(r.json()["revision"], 5);
    assert!(r.json()["file_bytes"].as_u64().unwrap() > 0);
    let r = http("GET", &format!("{u}/healthz"), &[], None);
    assert_eq!((r.status, r.text()), (200, "ok".to_string()));
    assert_eq!(
        r.header("x-kvr-revision"),
        None,
        "healthz says nothing of data"
    );
    let r = http("GET", &format!("{u}/metrics"), &[], None);
    for series in [
        "kvr_http_requests_total{route=\"kv\",method=\"PUT\",status=\"412\"}",
        // Reads and writes of one route apart: their latencies differ.
        "kvr_http_request_duration_seconds_bucket{route=\"kv\",method=\"GET\",status=\"200\",le=",
        "kvr_http_request_duration_seconds_bucket{route=\"kv\",method=\"PUT\",status=\"200\",le=",
        "kvr_http_requests_total{route=\"kv\",method=\"DELETE\",status=\"200\"}",
        "kvr_commit_group_size_count",
        "kvr_write_queue_depth",
        "kvr_db_bytes",
    ] {
        assert!(r.text().contains(series), "{series} missing:\n{}", r.text());
    }
    let r = http("GET", &format!("{u}/v2/nothing"), &[], None);
    assert_eq!((r.status, r.code()), (404, "no_route".to_string()));
    assert!(r.text().contains("GET /v1/openapi.json"), "{}", r.text());
    let r = http("POST", &format!("{u}/v1/kv/a"), &[], Some(b""));
    assert_eq!(
        (r.status, r.code()),
        (405, "method_not_allowed".to_string())
    );
    assert!(r.header("allow").unwrap().contains("PUT"));
    assert_eq!(http("GET", &format!("{u}/v1/batch"), &[], None).status, 405);
    assert_eq!(
        http("DELETE", &format!("{u}/v1/stats"), &[], None).status,
        405
    );
}

#[test]
fn keys_are_raw_bytes_never_normalized() {
    let (_d, s) = server();
    let u = &s.url;
    // Non-UTF-8, slashes, dot segments, doubled slashes, plus signs.
    for (path, key) in [
        ("%FF%00k", &b"\xff\x00k"[..]),
        ("dir/sub/leaf", b"dir/sub/leaf"),
        ("a/../b", b"a/../b"),
        ("x//y", b"x//y"),
        ("p+q", b"p+q"),
    ] {
        let r = http(
            "PUT",
            &format!("{u}/v1/kv/{path}"),
            &[],
            Some(path.as_bytes()),
        );
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        let r = http("GET", &format!("{u}/v1/kv?key={}", enc(key)), &[], None);
        assert_eq!(
            (r.status, r.body.as_slice()),
            (200, path.as_bytes()),
            "{path}"
        );
    }
    // `..` alone only fits the query form; `+` in a query is a plus.
    let r = http("PUT", &format!("{u}/v1/kv?key=.."), &[], Some(b"dots"));
    assert_eq!(r.status, 200);
    let r = http("GET", &format!("{u}/v1/kv?key=p+q"), &[], None);
    assert_eq!(r.body, b"p+q");
    let out = s.cli(&["range", "--keys-only"], b"");
    assert!(
        stdout(&out).contains("{\"key\":\"..\"}"),
        "{}",
        stdout(&out)
    );
    let before = http("GET", &format!("{u}/v1/stats"), &[], None).json();
    // Bad encodings and ambiguous keys are 400s that change nothing.
    for bad in [
        "/v1/kv/%G1",
        "/v1/kv/%",
        "/v1/kv?key=%zz",
        "/v1/kv/a?key=b",
        "/v1/kv",
    ] {
        let r = http("PUT", &format!("{u}{bad}"), &[], Some(b"v"));
        assert_eq!(
            (r.status, r.code()),
            (400, "bad_request".to_string()),
            "{bad}"
        );
    }
    let long = "k".repeat(4097);
    assert_eq!(
        http("PUT", &format!("{u}/v1/kv/{long}"), &[], Some(b"v")).status,
        400
    );
    assert_eq!(
        http("GET", &format!("{u}/v1/stats"), &[], None).json(),
        before
    );
}

fn enc(key: &[u8]) -> String {
    key.iter().map(|b| format!("%{b:02X}")).collect()
}

#[test]
fn range_pages_cursor_and_stream() {
    let (_d, s) = server();
    let u = &s.url;
    let mut batch = String::new();
    for i in 0..25 {
        batch.push_str(&format!("{{\"key\":\"k{i:02}\",\"value\":\"v{i}\"}}\n"));
    }
    batch.push_str("{\"key\":\"other\",\"value\":\"o\"}\n");
    let r = http(
        "POST",
        &format!("{u}/v1/batch"),
        &[],
        Some(batch.as_bytes()),
    );
    // Byte for byte what `kvr batch --json` prints, fields in its order.
    assert_eq!(
        r.text(),
        "{\"applied\":26,\"revision\":26,\"puts\":26,\"deletes\":0}\n"
    );

    let walk = |params: &str| {
        let mut keys = Vec::new();
        let mut url = format!("{u}/v1/range?{params}");
        loop {
            let r = http("GET", &url, &[], None);
            assert_eq!(r.status, 200, "{}", r.text());
            let j = r.json();
            for item in j["items"].as_array().unwrap() {
                keys.push(item["key"].as_str().unwrap().to_string());
            }
            match j["cursor"].as_str() {
                Some(c) => url = format!("{u}/v1/range?cursor={c}"),
                None => return keys,
            }
        }
    };
    let all = walk("prefix=k&limit=10");
    assert_eq!(all.len(), 25);
    assert_eq!(all.first().map(String::as_str), Some("k00"));
    let rev = walk("prefix=k&limit=7&reverse=true");
    assert_eq!(rev, all.iter().rev().cloned().collect::<Vec<_>>());
    assert_eq!(walk("start=k05&end=k08"), ["k05", "k06", "k07"]);
    let exact = http("GET", &format!("{u}/v1/range?prefix=k&limit=25"), &[], None).json();
    assert!(exact["cursor"].is_null());
    let page = http(
        "GET",
        &format!("{u}/v1/range?limit=1&keys_only=true"),
        &[],
        None,
    )
    .json();
    assert_eq!(page["items"], serde_json::json!([{"key": "k00"}]));
    // A flag given bare is true; the message of a bad one says so.
    let bare = http("GET", &format!("{u}/v1/range?limit=1&keys_only"), &[], None);
    assert_eq!(bare.json()["items"], serde_json::json!([{"key": "k00"}]));
    let yes = http("GET", &format!("{u}/v1/range?keys_only=yes"), &[], None);
    assert_eq!(yes.status, 400);
    assert_eq!(
        yes.json()["message"],
        "query parameter keys_only must be true or false (or 1 or 0; given bare, \
         ?keys_only, it is true), not \"yes\""
    );
    let page = http("GET", &format!("{u}/v1/range?limit=1"), &[], None).json();
    assert_eq!(
        page["items"][0],
        serde_json::json!({"key":"k00","value":"v0","revision":1})
    );

    for bad in [
        "limit=0",
        "limit=10001",
        "limit=100000000000000000000",
        "limit=x",
        "limit=+5",
        "limit=",
        "start=b&end=a",
        "cursor=%21%21",
        "reverse=maybe",
    ] {
        let r = http("GET", &format!("{u}/v1/range?{bad}"), &[], None);
        assert_eq!(
            (r.status, r.code()),
            (400, "bad_request".to_string()),
            "{bad}"
        );
    }
    // NDJSON: one snapshot, no default limit, any positive limit.
    let nd = [("Accept", "application/x-ndjson")];
    let r = http("GET", &format!("{u}/v1/range"), &nd, None);
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/x-ndjson")
    );
    assert_eq!(r.header("x-kvr-revision").as_deref(), Some("26"));
    assert_eq!(r.text().lines().count(), 26);
    let r = http(
        "GET",
        &format!("{u}/v1/range?limit=20000&prefix=k"),
        &nd,
        None,
    );
    assert_eq!(r.text().lines().count(), 25);
    // Past u64: still a positive limit (it was "not a whole number").
    let r = http(
        "GET",
        &format!("{u}/v1/range?limit=100000000000000000000&prefix=k"),
        &nd,
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text().lines().count(), 25);
    assert_eq!(
        http("GET", &format!("{u}/v1/range?limit=0"), &nd, None).status,
        400
    );
}

#[test]
fn batch_errors_name_lines_and_limits() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(
        dir.path(),
        &[
            "--max-batch-ops",
            "3",
            "--max-batch-bytes",
            "1000",
            "--max-value-bytes",
            "10",
        ],
    );
    let u = &s.url;
    let post = |body: &str| http("POST", &format!("{u}/v1/batch"), &[], Some(body.as_bytes()));
    assert_eq!(
        post("{\"key\":\"a\",\"value\":\"1\"}\n").json()["revision"],
        1
    );
    let r = post("{\"key\":\"b\",\"value\":\"1\"}\n\nnot json\n");
    assert_eq!((r.status, r.json()["line"].as_u64()), (400, Some(3)));
    let r = post(
        "{\"key\":\"b\",\"value\":\"1\"}\n{\"key\":\"a\",\"value\":\"2\",\"if_revision\":5}\n",
    );
    assert_eq!((r.status, r.json()["line"].as_u64()), (412, Some(2)));
    assert_eq!(r.json()["revision"], 1);
    let r = post(&"{\"key\":\"c\",\"value\":\"1\"}\n".repeat(4));
    assert_eq!((r.status, r.code()), (413, "payload_too_large".to_string()));
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("--max-batch-ops")
    );
    let r = post(&format!(
        "{{\"key\":\"d\",\"value\":\"{}\"}}\n",
        "x".repeat(2000)
    ));
    assert_eq!(r.status, 413);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("--max-batch-bytes")
    );
    let r = post("{\"key\":\"e\",\"value\":\"0123456789ab\"}\n");
    assert_eq!((r.status, r.json()["line"].as_u64()), (400, Some(1)));
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("--max-value-bytes")
    );
    let r = http("PUT", &format!("{u}/v1/kv/big"), &[], Some(b"0123456789ab"));
    assert_eq!((r.status, r.code()), (413, "payload_too_large".to_string()));
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("--max-value-bytes")
    );
    // Nothing of the rejected requests was written.
    let stats = http("GET", &format!("{u}/v1/stats"), &[], None).json();
    assert_eq!(
        (stats["keys"].as_u64(), stats["revision"].as_u64()),
        (Some(1), Some(1))
    );
    let r = post("");
    assert_eq!((r.status, r.json()["applied"].as_u64()), (200, Some(0)));
}

#[test]
fn token_guards_every_route_but_healthz() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_env(dir.path(), &[], &[("KVR_TOKEN", "s3cret")]);
    let u = &s.url;
    for path in ["/v1/kv/a", "/v1/stats", "/metrics", "/v1/range", "/nowhere"] {
        let r = http("GET", &format!("{u}{path}"), &[], None);
        assert_eq!(
            (r.status, r.code()),
            (401, "unauthorized".to_string()),
            "{path}"
        );
        assert_eq!(r.header("www-authenticate").as_deref(), Some("Bearer"));
    }
    let wrong = [("Authorization", "Bearer nope")];
    assert_eq!(
        http("PUT", &format!("{u}/v1/kv/a"), &wrong, Some(b"v")).status,
        401
    );
    assert_eq!(http("GET", &format!("{u}/healthz"), &[], None).status, 200);
    let ok = [("Authorization", "Bearer s3cret")];
    assert_eq!(
        http("PUT", &format!("{u}/v1/kv/a"), &ok, Some(b"v")).status,
        200
    );
    // Two Authorization headers: refused in either order, nothing written.
    let (right, wrong) = (
        ("Authorization", "Bearer s3cret"),
        ("Authorization", "Bearer nope"),
    );
    for pair in [[right, wrong], [wrong, right]] {
        let r = http("PUT", &format!("{u}/v1/kv/a"), &pair, Some(b"w"));
        assert_eq!((r.status, r.code()), (401, "unauthorized".to_string()));
        assert!(r.text().contains("more than once"), "{}", r.text());
    }
    assert_eq!(http("GET", &format!("{u}/v1/kv/a"), &ok, None).text(), "v");
    // The CLI: no token is exit 3; --token and --token-file work.
    let out = s.cli(&["get", "a"], b"");
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with("kvr: error: unauthorized"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stdout(&s.cli(&["--token", "s3cret", "get", "a"], b"")), "v");
    std::fs::write(dir.path().join("tok"), "s3cret\n").unwrap();
    assert_eq!(
        stdout(&s.cli(&["--token-file", "tok", "get", "a"], b"")),
        "v"
    );
    let out = s.cli(&["--token", "x", "--token-file", "tok", "get", "a"], b"");
    assert_eq!(out.status.code(), Some(2));
    // Non-loopback without a token is refused.
    let out = kvr(
        dir.path(),
        &["--db", "other.redb", "serve", "--listen", "0.0.0.0:0"],
        b"",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--allow-unauthenticated"),
        "{}",
        stderr(&out)
    );
    // A host that does not resolve is said to be that, not a malformed
    // address; neither creates the file.
    for (listen, said) in [
        ("nohost.invalid:0", "its host does not resolve"),
        ("nohost", "is not an address: give HOST:PORT"),
    ] {
        let out = kvr(
            dir.path(),
            &["--db", "other.redb", "serve", "--listen", listen],
            b"",
        );
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains(said), "{}", stderr(&out));
        assert!(!dir.path().join("other.redb").exists());
    }
}

/// `serve ARGS` with `env`, which must exit by itself within 10 s (a
/// server that starts instead is killed and fails the test).
fn serve_must_exit(
    dir: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> std::process::Output {
    serve_on_must_exit(dir, "127.0.0.1:0", args, env)
}

/// [`serve_must_exit`] with `--listen listen`.
fn serve_on_must_exit(
    dir: &std::path::Path,
    listen: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> std::process::Output {
    let mut child = kvr_cmd(dir)
        .args(["--db", "db.redb", "serve", "--listen", listen])
        .args(args)
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("serve {args:?} started: {}", stdout(&out));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// A port another process holds: exit 3, saying what to do, and no
/// database file is made (it is made only once the address is bound).
#[test]
fn a_port_in_use_is_refused_with_what_to_do_and_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = held.local_addr().unwrap().to_string();
    let out = serve_on_must_exit(dir.path(), &addr, &[], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!("kvr: error: cannot listen on {addr}"))
            && err.contains("another process listens there")
            && err.contains("port 0 picks a free one"),
        "{err}"
    );
    assert!(!dir.path().join("db.redb").exists());
}

#[test]
fn an_empty_token_is_refused_not_taken_as_none() {
    let dir = tempfile::tempdir().unwrap();
    // `--token "$TOK"` with TOK unset used to serve without authentication.
    for (args, env, source) in [
        (&["--token", ""][..], &[][..], "--token"),
        (&[][..], &[("KVR_TOKEN", "")][..], "KVR_TOKEN"),
    ] {
        let out = serve_must_exit(dir.path(), args, env);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(
            stderr(&out).starts_with(&format!("kvr: error: {source} is empty")),
            "{}",
            stderr(&out)
        );
        assert!(stdout(&out).is_empty(), "{}", stdout(&out));
        assert!(!dir.path().join("db.redb").exists());
    }
    // An empty token file: as before.
    std::fs::write(dir.path().join("empty.tok"), "").unwrap();
    let out = serve_must_exit(dir.path(), &["--token-file", "empty.tok"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    // A token file wins over an empty KVR_TOKEN, and the token is required.
    std::fs::write(dir.path().join("tok"), "s3cret\n").unwrap();
    let s = Server::start_env(dir.path(), &["--token-file", "tok"], &[("KVR_TOKEN", "")]);
    let r = http("PUT", &format!("{}/v1/kv/a", s.url), &[], Some(b"v"));
    assert_eq!(r.status, 401);
}

#[test]
fn bad_http_input_never_crashes_it() {
    let (_d, s) = server();
    let u = &s.url;
    http("PUT", &format!("{u}/v1/kv/keep"), &[], Some(b"safe"));
    // hyper refuses these itself; they are answered as every error is.
    let garbage = raw(&s.addr, b"\x00\xff\x13garbage garbage\r\n\r\n");
    assert_parser_refusal(&garbage, 400);
    // A key's bytes sent as they are: the answer says to percent-encode.
    let r = raw(
        &s.addr,
        b"PUT /v1/kv/a<b>`c HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx",
    );
    assert_parser_refusal(&r, 400);
    assert!(r.contains("percent-encode them in a key"), "{r}");
    let r = raw(
        &s.addr,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nNo colon\r\n\r\n",
    );
    assert_parser_refusal(&r, 400);
    // After a good request on the same connection, which is answered.
    let r = raw(
        &s.addr,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n\x01\x02\r\n\r\n",
    );
    let (first, second) = r.split_once("\r\n\r\nok").unwrap_or_else(|| panic!("{r}"));
    assert!(first.starts_with("HTTP/1.1 200 OK"), "{r}");
    assert_parser_refusal(second, 400);
    let huge = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(200_000)
    );
    // (A client still sending when the server closes may see a reset
    // instead of the answer.)
    let r = raw(&s.addr, huge.as_bytes());
    if !r.is_empty() {
        assert_parser_refusal(&r, 431);
    }
    // Just over the 64 KiB head limit, sent in one write (hyper checked
    // its buffer limit only while a head was incomplete: this got 200).
    let over = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(70_000)
    );
    let r = raw(&s.addr, over.as_bytes());
    if !r.is_empty() {
        assert_parser_refusal(&r, 431);
    }
    // 100 header fields (Host, Connection and the rest) are fine; 101 in a
    // 1 KiB head are 431 too, and the
    // message names that limit (it said "over 64 KiB").
    for (fields, status) in [(100, 200), (101, 431)] {
        let extra: String = (0..fields - 2).map(|i| format!("X-H{i}: v\r\n")).collect();
        let head = format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n");
        let r = raw(&s.addr, head.as_bytes());
        if status == 200 {
            assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        } else {
            assert_parser_refusal(&r, 431);
            assert!(r.contains("more than 100 header fields"), "{r}");
        }
    }
    // A 10 GB Content-Length is refused before any body is read.
    let r = raw(
        &s.addr,
        b"PUT /v1/kv/keep HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000000\r\n\r\nabc",
    );
    assert!(r.starts_with("HTTP/1.1 413"), "{r}");
    let r = raw(
        &s.addr,
        b"POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 413"), "{r}");
    // Shorter body than announced, then the client gives up.
    let r = raw(
        &s.addr,
        b"PUT /v1/kv/keep HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\nConnection: close\r\n\r\nshort",
    );
    assert!(!r.starts_with("HTTP/1.1 200"), "{r}");
    // Longer body than announced: the rest is a bad next request.
    let r = raw(
        &s.addr,
        b"PUT /v1/kv/other HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nokEXTRA STUFF\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let r = raw(
        &s.addr,
        b"GET /v1/range?limit=ten HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    let r = raw(
        &s.addr,
        b"GET /v1/kv/%ZZ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    // Still up, and the data is as it was.
    assert_eq!(http("GET", &format!("{u}/healthz"), &[], None).status, 200);
    assert_eq!(
        http("GET", &format!("{u}/v1/kv/keep"), &[], None).body,
        b"safe"
    );
    assert_eq!(
        http("GET", &format!("{u}/v1/kv/other"), &[], None).body,
        b"ok"
    );
    assert_eq!(
        http("GET", &format!("{u}/v1/stats"), &[], None).json()["revision"],
        2
    );
}

#[test]
fn idle_connections_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(
        dir.path(),
        &["--idle-timeout", "0.5", "--header-timeout", "0.5"],
    );
    let started = std::time::Instant::now();
    let r = raw(&s.addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n");
    assert!(started.elapsed() < std::time::Duration::from_secs(4), "{r}");
    let started = std::time::Instant::now();
    let _ = raw(&s.addr, b"");
    assert!(started.elapsed() < std::time::Duration::from_secs(4));
}

#[test]
fn connection_cap_answers_503() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &["--max-connections", "2"]);
    let hold: Vec<_> = (0..2)
        .map(|_| std::net::TcpStream::connect(&s.addr).unwrap())
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(200));
    // (Monitoring requests are answered from a reserve: `reserve.rs`.)
    for _ in 0..3 {
        let r = raw(&s.addr, b"GET /v1/stats HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 503"), "{r}");
        assert!(r.contains("--max-connections"), "{r}");
    }
    drop(hold);
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(
        http("GET", &format!("{}/healthz", s.url), &[], None).status,
        200
    );
    // Counted apart from the requests answered (they were invisible), and
    // the open connections are a gauge: here only the scrape's own.
    assert_eq!(metric(&s.url, "kvr_connections_refused_total"), 3);
    // The /healthz connection counts until the server has seen it close,
    // which on a loaded machine can come after the next scrape.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while metric(&s.url, "kvr_connections_open") != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "open connections: {}",
            metric(&s.url, "kvr_connections_open")
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn a_stream_to_a_stalled_client_stays_in_constant_memory() {
    let (_d, s) = server();
    let value = "v".repeat(2000);
    let mut batch = String::new();
    for i in 0..20_000 {
        batch.push_str(&format!("{{\"key\":\"k{i:06}\",\"value\":\"{value}\"}}\n"));
    }
    let r = http(
        "POST",
        &format!("{}/v1/batch", s.url),
        &[],
        Some(batch.as_bytes()),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    drop(batch);
    // The batch's flush (data and its watch history) comes first: this
    // measures the stream, not the flush.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let m = http("GET", &format!("{}/metrics", s.url), &[], None).text();
        if m.lines().any(|l| l == "kvr_memtable_bytes 0") {
            break;
        }
        assert!(std::time::Instant::now() < until, "no flush:\n{m}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let before = s.rss_kib();
    // Ask for 40 MB of NDJSON and do not read it for a while.
    let mut conn = std::net::TcpStream::connect(&s.addr).unwrap();
    conn.write_all(
        b"GET /v1/range HTTP/1.1\r\nHost: x\r\nAccept: application/x-ndjson\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let stalled = s.rss_kib();
    assert!(
        stalled < before + 20 * 1024,
        "RSS grew from {before} to {stalled} KiB while the client did not read"
    );
    let mut all = Vec::new();
    conn.read_to_end(&mut all).unwrap();
    let lines = all
        .split(|&b| b == b'\n')
        .filter(|l| l.starts_with(b"{\"key\""))
        .count();
    assert_eq!(lines, 20_000);
}
