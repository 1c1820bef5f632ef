//! Requests are read strictly and alike however they are spelled: a
//! repeated query parameter is a 400 on every route, a conditional header
//! on several lines is the comma-joined list (RFC 9110 section 5.3), a GET
//! with a failing `If-Match` is 412, a DELETE with `If-Match: "0"` is 412
//! also on a missing key, `Accept` is read as weighted media ranges, and a
//! transfer coding other than `chunked` is refused.
//! Every refusal leaves the data as it was.

use serde_json::json;

use crate::support::*;

/// `(keys, revision)` from `/v1/stats`.
fn stats(u: &str) -> (u64, u64) {
    let s = http("GET", &format!("{u}/v1/stats"), &[], None).json();
    (s["keys"].as_u64().unwrap(), s["revision"].as_u64().unwrap())
}

fn put(u: &str, key: &str, value: &[u8]) -> u64 {
    let r = http("PUT", &format!("{u}/v1/kv/{key}"), &[], Some(value));
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["revision"].as_u64().unwrap()
}

fn value(u: &str, key: &str) -> (u16, String) {
    let r = http("GET", &format!("{u}/v1/kv/{key}"), &[], None);
    (r.status, r.text())
}

#[test]
fn a_repeated_query_parameter_is_refused_on_every_route() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let u = &s.url;
    for k in ["a", "b", "z1"] {
        put(u, k, b"1");
    }
    let before = stats(u);
    let cases: &[(&str, &str, &str)] = &[
        // The audit's case: the empty last prefix used to delete every key.
        ("DELETE", "/v1/range?prefix=z&prefix=", "prefix"),
        ("DELETE", "/v1/range?prefix=z&pre%66ix=", "prefix"),
        ("DELETE", "/v1/range?start=a&start=", "start"),
        ("DELETE", "/v1/range?start=y&end=z&end=", "end"),
        ("GET", "/v1/kv?key=a&key=b", "key"),
        ("HEAD", "/v1/kv?key=a&key=b", "key"),
        ("PUT", "/v1/kv?key=a&key=b", "key"),
        ("PUT", "/v1/kv/a?ttl=5&ttl=6", "ttl"),
        ("DELETE", "/v1/kv?key=zz&key=a", "key"),
        (
            "GET",
            "/v1/kv/a?consistency=stale&consistency=stale",
            "consistency",
        ),
        ("GET", "/v1/range?limit=2&limit=3", "limit"),
        ("GET", "/v1/range?reverse=true&reverse=false", "reverse"),
        ("POST", "/v1/batch?x=1&x=1", "x"),
        (
            "GET",
            "/v1/stats?consistency=stale&consistency=stale",
            "consistency",
        ),
        ("GET", "/v1/watch?prefix=a&prefix=b", "prefix"),
        (
            "GET",
            "/v1/backup?consistency=stale&consistency=stale",
            "consistency",
        ),
        ("GET", "/metrics?a&a", "a"),
        ("GET", "/v1/openapi.json?a=1&a=2", "a"),
        ("GET", "/healthz?a&a", "a"),
    ];
    for (method, target, name) in cases {
        let body = (*method == "POST" || *method == "PUT")
            .then_some(&b"{\"key\":\"new\",\"value\":\"x\"}\n"[..]);
        let r = http(method, &format!("{u}{target}"), &[], body);
        assert_eq!(r.status, 400, "{method} {target}: {}", r.text());
        if *method != "HEAD" {
            let msg = r.json()["message"].as_str().unwrap().to_string();
            assert_eq!(r.code(), "bad_request", "{method} {target}");
            assert!(
                msg.contains("repeated") && msg.contains(&format!("{name:?}")),
                "{method} {target}: {msg}"
            );
        }
    }
    assert_eq!(stats(u), before);
    for k in ["a", "b", "z1"] {
        assert_eq!(value(u, k), (200, "1".to_string()), "{k}");
    }
    // Given once, each works.
    let r = http("DELETE", &format!("{u}/v1/range?prefix=z"), &[], None);
    assert_eq!(r.json()["deleted"], json!(1));
}

#[test]
fn delete_with_if_match_zero_is_412_also_on_a_missing_key() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let u = &s.url;
    let rev = put(u, "here", b"v");
    let zero = [("If-Match", "\"0\"")];
    for target in ["/v1/kv/missing", "/v1/kv?key=missing"] {
        let r = http("DELETE", &format!("{u}{target}"), &zero, None);
        assert_eq!(
            (r.status, r.code()),
            (412, "precondition_failed".to_string()),
            "{target}: {}",
            r.text()
        );
        let body = r.json();
        assert_eq!(body["revision"], json!(null), "{body}");
        assert_eq!(body["expected"], json!(0), "{body}");
        assert_eq!(body["key"], json!("missing"), "{body}");
        // Not "expected revision 0, current absent", which reads as a match.
        assert!(
            body["message"].as_str().unwrap().contains(
                "expected revision 0 (absent: there is nothing to delete), current absent"
            ),
            "{body}"
        );
        assert_eq!(r.header("x-kvr-revision"), Some(rev.to_string()));
    }
    // A present key: 412 with its revision, still there.
    let r = http("DELETE", &format!("{u}/v1/kv/here"), &zero, None);
    assert_eq!((r.status, r.json()["revision"].clone()), (412, json!(rev)));
    // Unchanged: If-None-Match: * (the key must be absent) on a missing key
    // is the plain delete's 404.
    let r = http(
        "DELETE",
        &format!("{u}/v1/kv/missing"),
        &[("If-None-Match", "*")],
        None,
    );
    assert_eq!((r.status, r.code()), (404, "not_found".to_string()));
    assert_eq!(stats(u), (1, rev));
    assert_eq!(value(u, "here"), (200, "v".to_string()));
    // A PUT's If-Match: "0" still means "absent".
    let r = http("PUT", &format!("{u}/v1/kv/new"), &zero, Some(b"n"));
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn conditional_headers_on_several_lines_are_one_list() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let (u, addr) = (&s.url, s.addr.as_str());
    put(u, "other", b"o");
    let rev = put(u, "a", b"1");
    let (tag, old) = (format!("\"{rev}\""), "\"1\"");
    let get = |headers: &[(&str, &str)]| raw_http(addr, "GET", "/v1/kv/a", headers, b"");

    // If-None-Match: the audit's case, one line or two.
    let list = format!("{old}, {tag}");
    for headers in [
        vec![("If-None-Match", list.as_str())],
        vec![("If-None-Match", old), ("If-None-Match", tag.as_str())],
    ] {
        let r = get(&headers);
        assert_eq!(r.status, 304, "{headers:?}: {}", r.text());
        assert_eq!(r.header("etag"), Some(tag.clone()));
        assert!(r.body.is_empty());
    }
    assert_eq!(get(&[("If-None-Match", old)]).status, 200);

    // If-Match on a read: strong comparison, 412 when it does not match.
    for headers in [
        vec![("If-Match", tag.as_str())],
        vec![("If-Match", "*")],
        vec![("If-Match", list.as_str())],
        vec![("If-Match", old), ("If-Match", tag.as_str())],
    ] {
        let r = get(&headers);
        assert_eq!((r.status, r.text()), (200, "1".to_string()), "{headers:?}");
    }
    let weak = format!("W/{tag}");
    for headers in [
        vec![("If-Match", old)],
        vec![("If-Match", weak.as_str())],
        vec![("If-Match", old), ("If-Match", "\"99\"")],
        // If-Match is evaluated before If-None-Match.
        vec![("If-Match", old), ("If-None-Match", tag.as_str())],
    ] {
        let r = get(&headers);
        assert_eq!(r.status, 412, "{headers:?}: {}", r.text());
        assert_eq!(r.json()["error"], json!("precondition_failed"));
        assert_eq!(r.json()["revision"], json!(rev));
        assert_eq!(r.header("x-kvr-revision"), Some(rev.to_string()));
        let head = raw_http(addr, "HEAD", "/v1/kv/a", &headers, b"");
        assert_eq!(head.status, 412, "HEAD {headers:?}");
        // A weak tag: the message says why it did not match.
        let says_weak = r.json()["message"]
            .as_str()
            .unwrap()
            .contains("(a weak tag, W/\"N\", never matches If-Match)");
        assert_eq!(says_weak, headers[0].1.starts_with("W/"), "{}", r.text());
    }
    // A missing key stays a 404 whatever the conditions.
    let r = raw_http(addr, "GET", "/v1/kv/nokey", &[("If-Match", old)], b"");
    assert_eq!(r.status, 404);

    // A write's If-Match takes one revision: a list of two is the same 400
    // on one line or two, and nothing is written.
    let two = format!("{tag}, {old}");
    for method in ["PUT", "DELETE"] {
        for headers in [
            vec![("If-Match", two.as_str())],
            vec![("If-Match", tag.as_str()), ("If-Match", old)],
            vec![("If-Match", old), ("If-Match", tag.as_str())],
            vec![("If-Match", "*"), ("If-Match", tag.as_str())],
        ] {
            let r = raw_http(addr, method, "/v1/kv/a", &headers, b"2");
            assert_eq!(
                (r.status, r.json()["error"].clone()),
                (400, json!("bad_request")),
                "{method} {headers:?}: {}",
                r.text()
            );
        }
    }
    assert_eq!(stats(u), (2, rev));
    assert_eq!(value(u, "a"), (200, "1".to_string()));
    // The same tag on two lines is that one condition.
    let r = raw_http(
        addr,
        "PUT",
        "/v1/kv/a",
        &[("If-Match", tag.as_str()), ("If-Match", tag.as_str())],
        b"2",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = raw_http(
        addr,
        "PUT",
        "/v1/kv/a",
        &[("If-Match", tag.as_str()), ("If-Match", tag.as_str())],
        b"3",
    );
    assert_eq!(
        (r.status, r.json()["revision"].clone()),
        (412, json!(rev + 1))
    );
    assert_eq!(value(u, "a"), (200, "2".to_string()));
}

#[test]
fn accept_is_read_as_weighted_media_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let u = &s.url;
    for k in ["a", "b", "c"] {
        put(u, k, b"v");
    }
    let kind = |accept: &[&str]| {
        let headers: Vec<(&str, &str)> = accept.iter().map(|a| ("Accept", *a)).collect();
        let r = raw_http(&s.addr, "GET", "/v1/range?limit=1", &headers, b"");
        assert_eq!(r.status, 200, "{accept:?}");
        r.header("content-type").unwrap()
    };
    let (json, ndjson) = ("application/json", "application/x-ndjson");
    for (accept, want) in [
        (&[][..], json),
        (&["*/*"][..], json),
        (&["application/x-ndjson"][..], ndjson),
        // The audit's cases.
        (
            &["application/json;q=1, application/x-ndjson;q=0"][..],
            json,
        ),
        (&["application/json, application/x-ndjson;q=0.5"][..], json),
        (&["Application/X-NDJSON"][..], ndjson),
        // Several lines are one list.
        (
            &["application/json", "application/x-ndjson;q=0.5"][..],
            json,
        ),
        (
            &["application/json;q=0.2", "application/x-ndjson"][..],
            ndjson,
        ),
        (&["application/x-ndjson;q=0.5, */*;q=0.1"][..], ndjson),
        (&["application/x-ndjson;q=0.5, */*"][..], json),
        (&["application/x-ndjson, application/json"][..], ndjson),
    ] {
        assert_eq!(kind(accept), want, "{accept:?}");
    }
    // The stream takes no default limit: all three keys.
    let r = http(
        "GET",
        &format!("{u}/v1/range"),
        &[("Accept", "Application/X-NDJSON")],
        None,
    );
    assert_eq!(r.text().lines().count(), 3, "{}", r.text());
}

/// A transfer coding other than `chunked` is refused and nothing is
/// written (`gzip, chunked` stored the still-compressed bytes as the value).
#[test]
fn a_transfer_coding_other_than_chunked_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let before = stats(&s.url);
    for coding in ["gzip, chunked", "deflate,chunked", "x-custom , chunked"] {
        let request = format!(
            "PUT /v1/kv/te HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: {coding}\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        );
        let r = raw(&s.addr, request.as_bytes());
        assert!(r.starts_with("HTTP/1.1 400"), "{coding}: {r}");
        assert!(r.contains("is not supported (only chunked)"), "{r}");
    }
    // Chunked twice (on one line or two): the value would keep the inner
    // chunks' framing (audit finding: stored as if chunked once).
    for te in [
        "Transfer-Encoding: chunked, chunked",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
    ] {
        let request = format!(
            "PUT /v1/kv/te HTTP/1.1\r\nHost: x\r\n{te}\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        );
        let r = raw(&s.addr, request.as_bytes());
        assert!(r.starts_with("HTTP/1.1 400"), "{te}: {r}");
        assert!(r.contains("names chunked more than once"), "{r}");
    }
    assert_eq!(stats(&s.url), before);
    // Chunked alone is a body like any other.
    let r = raw(
        &s.addr,
        b"PUT /v1/kv/te HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert_eq!(value(&s.url, "te"), (200, "hello".to_string()));
}

/// A write's `If-Match` with only tags that can never match (a weak one:
/// If-Match compares strongly, RFC 9110 section 13.1.1; or a quoted tag
/// that is no revision) is 412 with the key's revision, as a revision that
/// does not match is, on a present and a missing key, and writes nothing.
/// (`W/"8"` was a 400; found by an audit.)
#[test]
fn a_write_if_match_that_can_never_match_is_412() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let (u, addr) = (&s.url, s.addr.as_str());
    let rev = put(u, "a", b"1");
    let weak = format!("W/\"{rev}\"");
    for method in ["PUT", "DELETE"] {
        for tag in [weak.as_str(), "\"abc\""] {
            for (key, current) in [("a", json!(rev)), ("none", json!(null))] {
                let target = format!("/v1/kv/{key}");
                let r = raw_http(addr, method, &target, &[("If-Match", tag)], b"2");
                assert_eq!(r.status, 412, "{method} {key} {tag}: {}", r.text());
                let body = r.json();
                assert_eq!(body["error"], json!("precondition_failed"));
                assert_eq!(body["revision"], current, "{body}");
                assert_eq!(body["key"], json!(key), "{body}");
                assert!(body.get("expected").is_none(), "{body}");
                let says_weak = body["message"]
                    .as_str()
                    .unwrap()
                    .contains("(a weak tag, W/\"N\", never matches If-Match)");
                assert_eq!(says_weak, tag.starts_with("W/"), "{body}");
            }
        }
    }
    assert_eq!(stats(u), (1, rev));
    assert_eq!(value(u, "a"), (200, "1".to_string()));
}

/// An HTTP/1.1 request without a `Host` header, or with two, is 400
/// `bad_request` (RFC 9112 section 3.2: a server must answer so), and
/// writes nothing; HTTP/1.0 has no `Host` to require. (Before, one without
/// was served; found by an audit.)
#[test]
fn an_http_1_1_request_without_one_host_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let before = stats(&s.url);
    for head in [
        "PUT /v1/kv/h HTTP/1.1\r\n",
        "PUT /v1/kv/h HTTP/1.1\r\nHost: x\r\nHost: y\r\n",
    ] {
        let request = format!("{head}Content-Length: 5\r\nConnection: close\r\n\r\nhello");
        let r = raw(&s.addr, request.as_bytes());
        assert!(r.starts_with("HTTP/1.1 400"), "{head}: {r}");
        let body = r.split_once("\r\n\r\n").unwrap().1;
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["error"], "bad_request", "{r}");
        assert!(json["message"].as_str().unwrap().contains("Host"), "{r}");
    }
    let r = raw(
        &s.addr,
        b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    assert_eq!(stats(&s.url), before);
    assert_eq!(value(&s.url, "h").0, 404);
    let r = raw(
        &s.addr,
        b"PUT /v1/kv/h HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello",
    );
    assert!(r.starts_with("HTTP/1.0 200"), "{r}");
    assert_eq!(value(&s.url, "h"), (200, "hello".to_string()));
}

/// An `Expect` other than `100-continue` is 417 with the error JSON
/// (`bad_request`) and writes nothing (RFC 9110 section 10.1.1; before,
/// `Expect: 200-ok` was ignored and the value written; found by an audit).
#[test]
fn an_expectation_other_than_100_continue_is_417() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let before = stats(&s.url);
    for expect in ["200-ok", "100-continue, x-more"] {
        let r = raw_http(&s.addr, "PUT", "/v1/kv/e", &[("Expect", expect)], b"hello");
        assert_eq!(r.status, 417, "{expect}: {}", r.text());
        assert_eq!(r.code(), "bad_request");
        assert!(r.text().contains("100-continue"), "{}", r.text());
    }
    assert_eq!(stats(&s.url), before);
    assert_eq!(value(&s.url, "e").0, 404);
    // (Answered `100 Continue`, then 200.)
    let r = raw(
        &s.addr,
        b"PUT /v1/kv/e HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    );
    assert!(r.contains("HTTP/1.1 200 "), "{r}");
    assert_eq!(value(&s.url, "e"), (200, "hello".to_string()));
}

/// A content coding is refused too: the value would be the compressed
/// bytes, which a GET then answers as if they were the value.
#[test]
fn a_content_coding_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let before = stats(&s.url);
    for (method, target, coding) in [
        ("PUT", "/v1/kv/ce", "gzip"),
        ("PUT", "/v1/kv/ce", "identity, br"),
        ("POST", "/v1/batch", "deflate"),
    ] {
        let request = format!(
            "{method} {target} HTTP/1.1\r\nHost: x\r\nContent-Encoding: {coding}\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"
        );
        let r = raw(&s.addr, request.as_bytes());
        assert!(r.starts_with("HTTP/1.1 400"), "{coding}: {r}");
        assert!(
            r.contains("is not supported: send the body as it is"),
            "{r}"
        );
    }
    assert_eq!(stats(&s.url), before);
    assert_eq!(value(&s.url, "ce").0, 404);
    // `identity` is no coding at all.
    let r = raw(
        &s.addr,
        b"PUT /v1/kv/ce HTTP/1.1\r\nHost: x\r\nContent-Encoding: identity\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    );
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert_eq!(value(&s.url, "ce"), (200, "hello".to_string()));
}

/// Sends `bytes`, then shuts down the write side (as `nc -N`, `printf |
/// nc -q` and some proxies do) and reads the answer to the end.
fn half_closed(addr: &str, bytes: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    s.write_all(bytes).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// A client may half-close after its request (RFC 9112 section 9.6): the
/// request is answered, and a write is applied exactly when it is
/// acknowledged. The server used to close at the EOF without answering,
/// while a PUT so sent was sometimes applied anyway.
#[test]
fn a_request_followed_by_a_half_close_is_answered() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let health = half_closed(&s.addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(health.starts_with("HTTP/1.1 200"), "{health:?}");
    assert!(health.ends_with("ok"), "{health:?}");
    let old = half_closed(&s.addr, b"GET /healthz HTTP/1.0\r\n\r\n");
    assert!(
        old.starts_with("HTTP/1.0 200") && old.ends_with("ok"),
        "{old:?}"
    );
    for i in 0..20 {
        let put = half_closed(
            &s.addr,
            format!(
                "PUT /v1/kv/half{i} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nv{}",
                i % 10
            )
            .as_bytes(),
        );
        assert!(put.starts_with("HTTP/1.1 200"), "{put:?}");
        assert!(
            put.contains(&format!("{{\"revision\":{}}}", i + 1)),
            "{put:?}"
        );
    }
    // Two requests pipelined before the half-close: both answered, in order.
    let two = half_closed(
        &s.addr,
        b"GET /v1/kv/half3 HTTP/1.1\r\nHost: x\r\n\r\nGET /v1/kv/half4 HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert_eq!(two.matches("HTTP/1.1 200").count(), 2, "{two:?}");
    assert!(two.find("v3").unwrap() < two.find("v4").unwrap(), "{two:?}");
    let stats = http("GET", &format!("{}/v1/stats", s.url), &[], None).json();
    assert_eq!(stats["keys"], 20);
    assert_eq!(stats["revision"], 20);
}

/// A PUT with neither `Content-Length` nor `Transfer-Encoding` has an empty
/// body (RFC 9112 §6.3) and stores an empty value: that is what
/// `curl -X PUT URL` sends, and how etcd's and most HTTP stores read it. A
/// batch POST so sent is an empty batch: answered, nothing written.
#[test]
fn a_put_without_body_framing_stores_an_empty_value() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    put(&s.url, "k", b"kept");
    let r = raw(
        &s.addr,
        b"PUT /v1/kv/e HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 200 "), "{r}");
    assert_eq!(value(&s.url, "e"), (200, String::new()));
    let before = stats(&s.url);
    let r = raw(
        &s.addr,
        b"POST /v1/batch HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 200 "), "{r}");
    assert_eq!(stats(&s.url), before);
    assert_eq!(value(&s.url, "k"), (200, "kept".to_string()));
}
