//! The monitoring reserve (README "HTTP server"): at `--max-connections`,
//! `GET`/`HEAD` of `/healthz`, `/readyz` and `/metrics` are still answered,
//! on a few connections beyond the limit, as on any other (token rules
//! included); every other request gets the 503 and changes nothing, and so
//! does a monitoring request once the reserve is full.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::pki::Pki;
use crate::support::*;

const TOKEN: &str = "reserve-token";
const BEARER: (&str, &str) = ("Authorization", "Bearer reserve-token");

/// The server's monitoring reserve (`MONITORING_RESERVE`).
const RESERVE: usize = 8;

/// `--max-connections 2`, with timeouts long enough that the connections
/// holding the limit stay open through a test.
const FULL: [&str; 6] = [
    "--max-connections",
    "2",
    "--header-timeout",
    "600",
    "--idle-timeout",
    "600",
];

/// Opens `n` connections that send nothing.
fn hold(addr: &str, n: usize) -> Vec<TcpStream> {
    (0..n).map(|_| TcpStream::connect(addr).unwrap()).collect()
}

/// Fills the limit of [`FULL`] with two connections that send nothing, so
/// that every later one is over it. A connection of an earlier request may
/// not be closed yet on the server's side as these are accepted: one of
/// them is then over the limit, and is refused or closed within the second
/// the server gives a head, where one under the limit waits. So they are
/// checked after that second, and made again until both are waiting.
fn fill_the_limit(addr: &str) -> Vec<TcpStream> {
    for _ in 0..10 {
        let held = hold(addr, 2);
        std::thread::sleep(Duration::from_millis(1300));
        let waiting = held.iter().all(|c| {
            let mut byte = [0u8; 1];
            c.set_nonblocking(true).unwrap();
            let quiet =
                matches!(c.peek(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
            c.set_nonblocking(false).unwrap();
            quiet
        });
        if waiting {
            return held;
        }
    }
    panic!("the limit was never filled by the connections made for it");
}

/// Asserts that `r` is the refusal of a connection over the limit.
fn assert_refused(r: &Reply) {
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.code(), "unavailable");
    assert!(r.text().contains("--max-connections"), "{}", r.text());
    assert_eq!(r.header("retry-after").as_deref(), Some("1"));
    assert_eq!(r.header("connection").as_deref(), Some("close"));
}

/// Asserts the same of a raw response.
fn assert_raw_refused(raw: &str) {
    assert!(raw.starts_with("HTTP/1.1 503 "), "{raw}");
    assert!(raw.contains("\r\nretry-after: 1\r\n"), "{raw}");
    assert!(raw.contains("the limit (--max-connections)"), "{raw}");
    assert_dated(raw);
}

#[test]
fn at_the_connection_limit_monitoring_is_answered_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["--token", TOKEN];
    args.extend(FULL);
    let s = Server::start(dir.path(), &args);
    let u = &s.url;
    let put = http("PUT", &format!("{u}/v1/kv/x"), &[BEARER], Some(b"before"));
    assert_eq!(put.status, 200, "{}", put.text());
    let held = fill_the_limit(&s.addr);
    // The counts so far (a scrape from the reserve, counted in them): the
    // filling may have been refused connections of its own.
    let base = http("GET", &format!("{u}/metrics"), &[BEARER], None).text();
    let refused_before = sample(&base, "kvr_connections_refused_total");
    let reserved_before = sample(&base, "kvr_connections_reserved_total");

    // Everything but monitoring gets the 503 and writes nothing: a read,
    // a write, a /v1 status route, a route that needs no token.
    let mut refused = 0;
    for (method, path, body) in [
        ("GET", "/v1/kv/x", None),
        ("PUT", "/v1/kv/x", Some(&b"after"[..])),
        ("DELETE", "/v1/kv/x", None),
        ("GET", "/v1/stats", None),
        ("GET", "/v1/openapi.json", None),
        ("POST", "/healthz", Some(&b""[..])),
    ] {
        assert_refused(&http(method, &format!("{u}{path}"), &[BEARER], body));
        refused += 1;
    }
    // So does a connection that says nothing, or too much.
    assert_raw_refused(&raw(&s.addr, b""));
    let big = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n",
        "p".repeat(8000)
    );
    assert_raw_refused(&raw(&s.addr, big.as_bytes()));
    refused += 2;

    // Monitoring is answered as on any connection, then closed; the token
    // rules are the routes' own.
    let r = http("GET", &format!("{u}/healthz"), &[], None);
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));
    assert_eq!(r.header("connection").as_deref(), Some("close"));
    let r = http("HEAD", &format!("{u}/healthz"), &[], None);
    assert_eq!(r.status, 200);
    let r = http("GET", &format!("{u}/readyz"), &[BEARER], None);
    assert_eq!((r.status, r.text().as_str()), (200, "ready"));
    let r = http("GET", &format!("{u}/metrics"), &[], None);
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.code(), "unauthorized");
    let r = http("HEAD", &format!("{u}/metrics"), &[BEARER], None);
    assert_eq!(r.status, 200);
    let r = http("GET", &format!("{u}/metrics"), &[BEARER], None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-kvr-revision").as_deref(), Some("1"));
    let m = r.text();
    assert!(m.contains("# TYPE kvr_keys gauge\nkvr_keys 1\n"), "{m}");
    assert_eq!(
        sample(&m, "kvr_connections_refused_total"),
        refused_before + refused as f64
    );
    // The open connections are those under the limit: the two held.
    assert_eq!(sample(&m, "kvr_connections_open"), 2.0);
    // healthz twice, readyz, metrics 3 times (this one included).
    assert_eq!(
        sample(&m, "kvr_connections_reserved_total"),
        reserved_before + 6.0
    );
    assert!(
        m.contains("kvr_http_requests_total{route=\"metrics\",method=\"GET\",status=\"401\"} 1\n"),
        "{m}"
    );
    for method in ["GET", "HEAD"] {
        assert!(
            m.contains(&format!(
                "kvr_http_requests_total{{route=\"healthz\",method=\"{method}\",status=\"200\"}} 1\n"
            )),
            "{m}"
        );
    }

    // Under the limit again: the data is as it was.
    // The server sees the held connections close when it next polls them:
    // wait for that (a loaded machine can take longer than a moment)
    // until only the scrape's own connection is open.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    let m = loop {
        let m = http("GET", &format!("{u}/metrics"), &[BEARER], None).text();
        if sample(&m, "kvr_connections_open") == 1.0 || Instant::now() > deadline {
            break m;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(sample(&m, "kvr_connections_open"), 1.0);
    let r = http("GET", &format!("{u}/v1/kv/x"), &[BEARER], None);
    assert_eq!((r.status, r.text().as_str()), (200, "before"));
    let r = http("GET", &format!("{u}/v1/stats"), &[BEARER], None);
    assert_eq!(r.json()["revision"], 1);
    // As above: the filling's own refusals are in the count.
    assert_eq!(
        sample(&m, "kvr_connections_refused_total"),
        refused_before + refused as f64
    );
}

/// A monitoring request whose head is not finished yet holds a place of
/// the reserve (for up to the second the server gives a head): with every
/// place so held, one more monitoring request gets the 503, and the held
/// ones, once finished, are answered.
#[test]
fn monitoring_beyond_the_reserve_gets_the_503() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &FULL);
    let _held = fill_the_limit(&s.addr);
    let healthz = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    // The places are taken as the server reads the request lines, and
    // given back a second after each connection was accepted: a round in
    // which the server had not read them all, or that second may have
    // passed (a slow machine), tells nothing, and is tried again.
    for _round in 0..5 {
        let start = Instant::now();
        let mut holders = hold(&s.addr, RESERVE);
        for h in &mut holders {
            h.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            h.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
        }
        // Time for the server to read the request lines.
        std::thread::sleep(Duration::from_millis(100));
        let extra = raw(&s.addr, healthz);
        for h in &mut holders {
            h.write_all(b"\r\n").unwrap();
        }
        let in_time = start.elapsed() < Duration::from_millis(800);
        let answers: Vec<String> = holders
            .iter_mut()
            .map(|h| {
                let mut out = Vec::new();
                let _ = h.read_to_end(&mut out);
                String::from_utf8_lossy(&out).into_owned()
            })
            .collect();
        // (A 200 here: a holder's line not read yet, a place still free.)
        let extra = Some(extra).filter(|r| r.starts_with("HTTP/1.1 503 "));
        let Some(extra) = extra.filter(|_| in_time) else {
            std::thread::sleep(Duration::from_millis(1500));
            continue;
        };
        assert_raw_refused(&extra);
        for a in &answers {
            assert!(a.starts_with("HTTP/1.1 200 "), "{a}");
            assert!(a.ends_with("\r\n\r\nok"), "{a}");
        }
        // The places are free again (once the server has closed them).
        std::thread::sleep(Duration::from_millis(200));
        let r = raw(&s.addr, healthz);
        assert!(r.starts_with("HTTP/1.1 200 "), "{r}");
        return;
    }
    panic!("no round held the whole reserve in time");
}

/// Over TLS the same, after the handshake.
#[test]
fn at_the_connection_limit_monitoring_is_answered_over_tls_too() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "a");
    let mut args: Vec<String> = pki.serve_args();
    args.extend(FULL.iter().map(|a| a.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let s = Server::start(dir.path(), &args);
    assert!(s.url.starts_with("https://"), "{}", s.url);
    // Held before their handshakes: the limit counts connections.
    let _held = fill_the_limit(&s.addr);
    let get = |path: &str| {
        let config = kvr::tls::client_config(Some(&pki.ca)).unwrap();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let conn = rustls::ClientConnection::new(config, name).unwrap();
        let tcp = TcpStream::connect(&s.addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
        tls.write_all(req.as_bytes()).unwrap();
        let mut out = Vec::new();
        // (The answer is what counts, not how the close is signalled.)
        let _ = tls.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    };
    let base = get("/metrics");
    let (_, base) = base.split_once("\r\n\r\n").unwrap();
    let refused_before = sample(base, "kvr_connections_refused_total");
    let reserved_before = sample(base, "kvr_connections_reserved_total");
    assert_raw_refused(&get("/v1/stats"));
    let r = get("/healthz");
    assert!(
        r.starts_with("HTTP/1.1 200 ") && r.ends_with("\r\n\r\nok"),
        "{r}"
    );
    let r = get("/metrics");
    assert!(r.starts_with("HTTP/1.1 200 "), "{r}");
    assert!(r.contains("\r\nconnection: close\r\n"), "{r}");
    let (_, m) = r.split_once("\r\n\r\n").unwrap();
    assert_eq!(
        sample(m, "kvr_connections_refused_total"),
        refused_before + 1.0
    );
    assert_eq!(
        sample(m, "kvr_connections_reserved_total"),
        reserved_before + 2.0
    );
}
