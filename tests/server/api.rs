//! The HTTP API rules added to SPEC by issue 10: cursors continue only
//! their own request, error bodies with plain keys and numeric revisions,
//! unknown parameters, empty keys, the Bearer scheme in any case, which
//! responses carry `X-Kvr-Revision`, and 304 for `If-None-Match` on reads.

use serde_json::{Value, json};

use crate::support::*;

fn server() -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    (dir, s)
}

fn get(url: &str) -> Reply {
    http("GET", url, &[], None)
}

/// The database's revision, from `/v1/stats`.
fn revision(u: &str) -> u64 {
    get(&format!("{u}/v1/stats")).json()["revision"]
        .as_u64()
        .unwrap()
}

fn keys(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["key"].as_str().unwrap().to_string())
        .collect()
}

fn bad_request(r: &Reply, what: &str) {
    assert_eq!(
        (r.status, r.code()),
        (400, "bad_request".to_string()),
        "{what}: {}",
        r.text()
    );
}

#[test]
fn a_cursor_continues_only_its_own_request() {
    let (_d, s) = server();
    let u = &s.url;
    let lines: String = (0..30)
        .map(|i| format!("{{\"key\":\"p:{i:03}\",\"value\":\"v\"}}\n"))
        .chain(["{\"key\":\"q\",\"value\":\"v\"}\n".to_string()])
        .collect();
    assert_eq!(
        http(
            "POST",
            &format!("{u}/v1/batch"),
            &[],
            Some(lines.as_bytes())
        )
        .status,
        200
    );
    let first = get(&format!("{u}/v1/range?prefix=p:&limit=10")).json();
    assert_eq!(keys(&first).last().map(String::as_str), Some("p:009"));
    let c = first["cursor"].as_str().unwrap().to_string();

    // The case: other parameters with a cursor of another request
    // used to be ignored (10 items, p:020 among them); now a 400 naming one.
    let r = get(&format!("{u}/v1/range?prefix=p:01&limit=5&cursor={c}"));
    bad_request(&r, "another prefix");
    assert!(r.json()["message"].as_str().unwrap().contains("prefix"));
    for other in [
        "start=p:015",
        "end=p:020",
        "reverse=true",
        "keys_only=true",
        "limit=0",
        "limit=10001",
    ] {
        bad_request(&get(&format!("{u}/v1/range?{other}&cursor={c}")), other);
    }
    // The cursor alone: the next page of the same size.
    let next = get(&format!("{u}/v1/range?cursor={c}")).json();
    assert_eq!(keys(&next).first().map(String::as_str), Some("p:010"));
    assert_eq!(keys(&next).len(), 10);
    // `limit` applies to the page it is given with, and to the next ones.
    let small = get(&format!("{u}/v1/range?limit=5&cursor={c}")).json();
    assert_eq!(keys(&small), ["p:010", "p:011", "p:012", "p:013", "p:014"]);
    let c2 = small["cursor"].as_str().unwrap();
    let after = get(&format!("{u}/v1/range?cursor={c2}")).json();
    assert_eq!(keys(&after).first().map(String::as_str), Some("p:015"));
    assert_eq!(keys(&after).len(), 5);

    // Repeating every parameter unchanged with each cursor walks the range.
    let mut all = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = get(&format!(
            "{u}/v1/range?prefix=p:&limit=7&reverse=false&cursor={cursor}"
        ))
        .json();
        all.extend(keys(&page));
        match page["cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => break,
        }
    }
    let want: Vec<String> = (0..30).map(|i| format!("p:{i:03}")).collect();
    assert_eq!(all, want);
    // Reverse, with start and end repeated.
    let back = get(&format!(
        "{u}/v1/range?start=p:005&end=p:020&reverse=true&limit=4"
    ))
    .json();
    let bc = back["cursor"].as_str().unwrap();
    let back2 = get(&format!(
        "{u}/v1/range?start=p:005&end=p:020&reverse=true&cursor={bc}"
    ))
    .json();
    assert_eq!(keys(&back2), ["p:015", "p:014", "p:013", "p:012"]);
    // Empty bounds mean none, with a cursor as without: equal to a
    // cursor's absent bound, different from a bound it has.
    let same = get(&format!("{u}/v1/range?start=&end=&prefix=p:&cursor={c}")).json();
    assert_eq!(keys(&same).first().map(String::as_str), Some("p:010"));
    for other in ["start=", "end=", "prefix=p:"] {
        bad_request(
            &get(&format!("{u}/v1/range?{other}&reverse=true&cursor={bc}")),
            other,
        );
    }
    bad_request(&get(&format!("{u}/v1/range?prefix=&cursor={c}")), "prefix=");

    // An NDJSON stream takes the cursor too: the rest of the range.
    let nd = [("Accept", "application/x-ndjson")];
    let r = http("GET", &format!("{u}/v1/range?cursor={c}"), &nd, None);
    assert_eq!(r.status, 200, "{}", r.text());
    let lines: Vec<Value> = r
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 20);
    assert_eq!(lines[0]["key"], "p:010");
    let r = http(
        "GET",
        &format!("{u}/v1/range?prefix=q&cursor={c}"),
        &nd,
        None,
    );
    bad_request(&r, "stream, another prefix");
    // An empty prefix is every key: another prefix too (it was taken as
    // absent and the cursor's prefix went on).
    let r = http(
        "GET",
        &format!("{u}/v1/range?prefix=&cursor={c}"),
        &nd,
        None,
    );
    bad_request(&r, "stream, an empty prefix");
}

#[test]
fn error_bodies_have_plain_keys_and_numeric_revisions() {
    let (_d, s) = server();
    let u = &s.url;
    let put =
        |key: &str, h: &[(&str, &str)]| http("PUT", &format!("{u}/v1/kv/{key}"), h, Some(b"x"));
    assert_eq!(put("a", &[]).status, 200);
    assert_eq!(put("a", &[]).status, 200); // revision 2
    assert_eq!(put("%FF", &[]).status, 200); // revision 3

    let r = get(&format!("{u}/v1/kv/nokey"));
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["key"], "nokey", "{}", r.text());
    assert!(r.json().get("key_b64").is_none());
    let r = get(&format!("{u}/v1/kv/%FF%00"));
    assert_eq!(
        (r.json()["key_b64"].clone(), r.json().get("key")),
        (json!("/wA="), None)
    );

    let checks: [(&str, &str, (&str, &str), Value); 5] = [
        (
            "PUT",
            "a",
            ("If-Match", "\"1\""),
            json!({"key":"a","expected":1,"revision":2}),
        ),
        (
            "PUT",
            "a",
            ("If-None-Match", "*"),
            json!({"key":"a","expected":0,"revision":2}),
        ),
        (
            "PUT",
            "new",
            ("If-Match", "*"),
            json!({"key":"new","revision":null}),
        ),
        (
            "DELETE",
            "new",
            ("If-Match", "\"5\""),
            json!({"key":"new","expected":5,"revision":null}),
        ),
        (
            "PUT",
            "%FF",
            ("If-Match", "\"9\""),
            json!({"key_b64":"/w==","expected":9,"revision":3}),
        ),
    ];
    for (method, key, header, want) in checks {
        let r = http(method, &format!("{u}/v1/kv/{key}"), &[header], Some(b"y"));
        assert_eq!(r.status, 412, "{method} {key}: {}", r.text());
        let mut body = r.json();
        assert_eq!(body["error"], "precondition_failed");
        let obj = body.as_object_mut().unwrap();
        obj.remove("error");
        obj.remove("message");
        assert_eq!(body, want, "{method} {key} {header:?}");
    }
    // A tag whose quote is never closed is a malformed tag (400), not an
    // empty header, and nothing is written.
    let before = get(&format!("{u}/v1/kv/a")).text();
    for method in ["PUT", "DELETE", "GET"] {
        let r = http(
            method,
            &format!("{u}/v1/kv/a"),
            &[("If-Match", "\"2")],
            Some(b"y"),
        );
        assert_eq!(r.status, 400, "{method}: {}", r.text());
        assert!(
            r.json()["message"]
                .as_str()
                .unwrap()
                .starts_with("If-Match must be"),
            "{}",
            r.text()
        );
    }
    assert_eq!(get(&format!("{u}/v1/kv/a")).text(), before);
    let batch =
        b"{\"key\":\"b\",\"value\":\"1\"}\n{\"key\":\"a\",\"value\":\"2\",\"if_revision\":1}\n";
    let r = http("POST", &format!("{u}/v1/batch"), &[], Some(batch));
    assert_eq!(r.status, 412);
    let j = r.json();
    assert_eq!(
        (&j["line"], &j["key"], &j["expected"], &j["revision"]),
        (&json!(2), &json!("a"), &json!(1), &json!(2))
    );
    // Nothing of the rejected requests was written.
    assert_eq!(revision(u), 3);
    assert_eq!(get(&format!("{u}/v1/kv/a")).body, b"x");
    assert_eq!(get(&format!("{u}/v1/kv/b")).status, 404);

    // The CLI reads these bodies back into the same messages as with --db.
    let out = s.cli(&["put", "--if-revision", "1", "a", "z"], b"");
    assert_eq!(out.status.code(), Some(4));
    assert!(
        stderr(&out).contains("key \"a\": expected revision 1, current 2"),
        "{}",
        stderr(&out)
    );
    let out = s.cli(&["get", "nokey"], b"");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("key \"nokey\" not found"),
        "{}",
        stderr(&out)
    );
    assert_eq!(revision(u), 3);
}

#[test]
fn unknown_query_parameters_are_400_naming_them() {
    let (_d, s) = server();
    let u = &s.url;
    assert_eq!(
        http("PUT", &format!("{u}/v1/kv/z"), &[], Some(b"1")).status,
        200
    );
    let r = get(&format!("{u}/v1/range?prefx=z"));
    bad_request(&r, "prefx");
    assert!(r.json()["message"].as_str().unwrap().contains("\"prefx\""));
    bad_request(&get(&format!("{u}/v1/range?limit=0")), "limit=0");
    // A number past u64 is quoted as sent, not as the largest u64; a
    // stream takes it as no limit at all.
    let huge = "18446744073709551616";
    let r = get(&format!("{u}/v1/range?limit={huge}"));
    bad_request(&r, "huge limit");
    let message = r.json()["message"].as_str().unwrap().to_string();
    assert!(
        message.contains(&format!("limit is {huge}, more than")),
        "{message}"
    );
    let nd = [("Accept", "application/x-ndjson")];
    let r = http("GET", &format!("{u}/v1/range?limit={huge}"), &nd, None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text().lines().count(), 1, "{}", r.text());
    bad_request(&get(&format!("{u}/v1/kv/z?verbose=1")), "kv");
    bad_request(&get(&format!("{u}/v1/kv?key=z&kye=z")), "kv ?key=");
    bad_request(&get(&format!("{u}/v1/stats?x")), "stats");
    bad_request(&get(&format!("{u}/metrics?x=1")), "metrics");
    // Writes with a typo: refused, nothing written.
    let r = http("PUT", &format!("{u}/v1/kv/z?if_revison=0"), &[], Some(b"2"));
    bad_request(&r, "put");
    let r = http("DELETE", &format!("{u}/v1/kv/z?force=1"), &[], None);
    bad_request(&r, "delete");
    let r = http(
        "POST",
        &format!("{u}/v1/batch?atomic=0"),
        &[],
        Some(b"{\"key\":\"y\",\"value\":\"v\"}\n"),
    );
    bad_request(&r, "batch");
    // The key twice (path and ?key=), or an empty path key beside ?key=:
    // said as that, not as an unknown parameter; nothing written.
    for (target, said) in [
        (
            "/v1/kv/z?key=y",
            "the key is given both in the path and as ?key=",
        ),
        ("/v1/kv/?key=y", "/v1/kv/?key= has a slash after kv"),
    ] {
        let r = http("PUT", &format!("{u}{target}"), &[], Some(b"2"));
        bad_request(&r, target);
        assert!(
            r.json()["message"].as_str().unwrap().starts_with(said),
            "{target}: {}",
            r.text()
        );
    }
    assert_eq!(revision(u), 1);
    assert_eq!(get(&format!("{u}/v1/kv/z")).body, b"1");
}

#[test]
fn an_empty_key_is_400_for_reads_and_writes() {
    let (_d, s) = server();
    let u = &s.url;
    assert_eq!(
        http("PUT", &format!("{u}/v1/kv/a"), &[], Some(b"1")).status,
        200
    );
    for target in ["/v1/kv/", "/v1/kv?key=", "/v1/kv"] {
        for method in ["GET", "HEAD", "DELETE", "PUT"] {
            let body = (method == "PUT").then_some(&b"v"[..]);
            let r = http(method, &format!("{u}{target}"), &[], body);
            assert_eq!(r.status, 400, "{method} {target}: {}", r.text());
        }
    }
    assert_eq!(revision(u), 1);
}

#[test]
fn the_bearer_scheme_is_case_insensitive_and_401s_say_no_revision() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_env(dir.path(), &[], &[("KVR_TOKEN", "s3cret")]);
    let u = &s.url;
    let ok = [("Authorization", "Bearer s3cret")];
    assert_eq!(
        http("PUT", &format!("{u}/v1/kv/a"), &ok, Some(b"v")).status,
        200
    );
    for scheme in ["bearer", "BEARER", "bEaReR"] {
        let h = format!("{scheme} s3cret");
        let r = http(
            "GET",
            &format!("{u}/v1/kv/a"),
            &[("Authorization", &h)],
            None,
        );
        assert_eq!((r.status, r.body.as_slice()), (200, &b"v"[..]), "{scheme}");
        assert_eq!(r.header("x-kvr-revision").as_deref(), Some("1"));
    }
    for auth in [
        None,
        Some("Bearer nope"),
        Some("Basic czNjcmV0"),
        Some("Bearers3cret"),
    ] {
        let h: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", *a)).collect();
        for path in ["/v1/kv/a", "/v1/stats", "/readyz", "/metrics"] {
            let r = http("GET", &format!("{u}{path}"), &h, None);
            assert_eq!(r.status, 401, "{auth:?} {path}");
            assert_eq!(r.header("x-kvr-revision"), None, "{auth:?} {path}");
        }
        let r = http("PUT", &format!("{u}/v1/kv/a"), &h, Some(b"w"));
        assert_eq!(r.status, 401);
    }
    let r = get(&format!("{u}/healthz"));
    assert_eq!((r.status, r.header("x-kvr-revision")), (200, None));
    let r = http("GET", &format!("{u}/readyz"), &ok, None);
    assert_eq!((r.status, r.text()), (200, "ready".to_string()));
    assert_eq!(r.header("x-kvr-revision"), None);
    let r = http("GET", &format!("{u}/v1/kv/a"), &ok, None);
    assert_eq!(r.body, b"v", "the 401s wrote nothing");
}

#[test]
fn if_none_match_on_a_read_answers_304_without_a_body() {
    let (_d, s) = server();
    let u = &s.url;
    let a = format!("{u}/v1/kv/a");
    assert_eq!(http("PUT", &a, &[], Some(b"one")).status, 200);
    assert_eq!(
        http("PUT", &format!("{u}/v1/kv/b"), &[], Some(b"x")).status,
        200
    );
    for tag in ["\"1\"", "W/\"1\"", "\"7\", \"1\"", "*"] {
        for method in ["GET", "HEAD"] {
            let r = http(method, &a, &[("If-None-Match", tag)], None);
            assert_eq!(r.status, 304, "{method} {tag}");
            assert!(r.body.is_empty());
            assert_eq!(r.header("etag").as_deref(), Some("\"1\""));
            assert_eq!(r.header("x-kvr-revision").as_deref(), Some("2"));
        }
    }
    for tag in ["\"2\"", "\"01x\"", "\"\""] {
        let r = http("GET", &a, &[("If-None-Match", tag)], None);
        assert_eq!((r.status, r.body.as_slice()), (200, &b"one"[..]), "{tag}");
    }
    bad_request(
        &http("GET", &a, &[("If-None-Match", "1")], None),
        "unquoted",
    );
    // An empty one (a tag variable left empty) is refused on reads as on
    // writes, and the writes change nothing.
    for method in ["GET", "HEAD", "PUT", "DELETE"] {
        let body = (method == "PUT").then_some(&b"new"[..]);
        let r = http(method, &a, &[("If-None-Match", "")], body);
        assert_eq!(r.status, 400, "{method}");
        if method != "HEAD" {
            assert!(
                r.text().contains("If-None-Match is empty"),
                "{method}: {}",
                r.text()
            );
        }
    }
    assert_eq!(http("GET", &a, &[], None).body, b"one");
    let r = http(
        "GET",
        &format!("{u}/v1/kv/nope"),
        &[("If-None-Match", "\"1\"")],
        None,
    );
    assert_eq!(r.status, 404);
    // A newer value: the old tag no longer matches.
    assert_eq!(http("PUT", &a, &[], Some(b"two")).status, 200);
    let r = http("GET", &a, &[("If-None-Match", "\"1\"")], None);
    assert_eq!((r.status, r.body.as_slice()), (200, &b"two"[..]));
    assert_eq!(r.header("etag").as_deref(), Some("\"3\""));
}

/// Pages of large values: a page stops early (with a cursor) past 8 MiB,
/// whether it was first tried on the connection's worker (which gives up
/// past 1 MiB and reads it again on a page reader thread) or not, and the
/// file's pages are read a bounded number of bytes at a time. Values in
/// the file (written with `--db` first) and in the memory table (through
/// the server) alike; walking the cursors yields every key once, in order,
/// with its value intact.
#[test]
fn pages_of_large_values_stop_by_bytes_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mib = 1 << 20;
    let value = |i: usize| format!("{i:02}").repeat(mib / 2);
    let lines: String = (0..12)
        .map(|i| format!("{{\"key\":\"big:{i:02}\",\"value\":\"{}\"}}\n", value(i)))
        .collect();
    let out = kvr(dir.path(), &["--db", "db.redb", "batch"], lines.as_bytes());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = Server::start(dir.path(), &[]);
    let u = &s.url;
    for i in 12..16 {
        let r = http(
            "PUT",
            &format!("{u}/v1/kv/big:{i:02}"),
            &[],
            Some(value(i).as_bytes()),
        );
        assert_eq!(r.status, 200, "{}", r.text());
    }
    for limit in [10, 300] {
        let mut seen = Vec::new();
        let mut cursor = String::new();
        loop {
            let page = get(&format!(
                "{u}/v1/range?prefix=big:&limit={limit}&cursor={cursor}"
            ));
            assert_eq!(page.status, 200, "{}", page.text());
            let page = page.json();
            let items = page["items"].as_array().unwrap();
            // 1 MiB values: past 8 items the page passes 8 MiB and stops.
            if seen.is_empty() {
                assert_eq!(items.len(), 8, "limit {limit}: the first page");
            }
            assert!(items.len() <= 8, "{} items in one page", items.len());
            for item in items {
                let key = item["key"].as_str().unwrap().to_string();
                let i: usize = key["big:".len()..].parse().unwrap();
                assert_eq!(item["value"].as_str().unwrap(), value(i), "{key}");
                seen.push(key);
            }
            match page["cursor"].as_str() {
                Some(c) => cursor = c.to_string(),
                None => break,
            }
        }
        let want: Vec<String> = (0..16).map(|i| format!("big:{i:02}")).collect();
        assert_eq!(seen, want, "limit {limit}");
    }
}

/// `GET /v1/stats` is the same text as `kvr stats` (its fields were in
/// another order).
#[test]
fn stats_over_http_is_the_text_kvr_stats_prints() {
    let (_d, s) = server();
    let u = &s.url;
    assert_eq!(
        http("PUT", &format!("{u}/v1/kv/a"), &[], Some(b"1")).status,
        200
    );
    let over_http = http("GET", &format!("{u}/v1/stats"), &[], None).text();
    let cli = stdout(&s.cli(&["stats"], b""));
    assert!(
        over_http.starts_with("{\"keys\":1,\"revision\":1,\"file_bytes\":"),
        "{over_http}"
    );
    assert_eq!(over_http, cli);
}
