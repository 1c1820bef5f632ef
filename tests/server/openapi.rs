//! The OpenAPI document (`openapi/kvr.json`): served and printed as
//! committed, in step with the router and the error codes (drift),
//! valid for `openapi-spec-validator`, and Schemathesis fuzzing a real
//! server from it finds nothing.
//!
//! The Python tools live in a venv that `.ci/run` makes: `KVR_PY_VENV`, or
//! `.ci/venv` in the repository. Without it these tests fail when
//! `CI=true` and are skipped with a message otherwise.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::Value;

use crate::support::*;

const DOC_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/kvr.json");
const HOOKS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/openapi");
const TOKEN: &str = "fuzz-token";

fn document() -> Value {
    serde_json::from_str(kvr::openapi::DOCUMENT).unwrap()
}

fn planned(v: &Value) -> bool {
    v.get("x-kvr-planned") == Some(&Value::Bool(true))
}

/// `#/components/...` references resolved (one level: the document's
/// references never point at other references).
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => doc
            .pointer(r.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("dangling {r}")),
        None => v,
    }
}

#[test]
fn document_is_served_without_a_token_and_printed_without_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let committed = std::fs::read_to_string(DOC_PATH).unwrap();
    assert_eq!(committed, kvr::openapi::DOCUMENT);

    let out = kvr(dir.path(), &["--db", "none.redb", "openapi"], b"");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), committed);
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "kvr openapi created a file"
    );

    let s = Server::start(dir.path(), &["--token", TOKEN]);
    let r = http("GET", &format!("{}/v1/openapi.json", s.url), &[], None);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(r.text(), committed);
    assert_eq!(r.json()["openapi"], "3.1.0");
    // The rest still wants the token.
    let r = http("GET", &format!("{}/v1/stats", s.url), &[], None);
    assert_eq!(r.status, 401);
}

/// What the router knows: path -> method -> query parameters.
type Table = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

fn router_table() -> (Table, BTreeMap<String, bool>) {
    let (mut table, mut token) = (Table::new(), BTreeMap::new());
    for def in kvr::server::ROUTES {
        let methods = table.entry(def.path.to_string()).or_default();
        for (method, params) in def.methods {
            let names = params.iter().map(|p| p.to_string()).collect();
            assert!(methods.insert(method.as_str().to_string(), names).is_none());
        }
        token.insert(def.path.to_string(), def.needs_token);
    }
    (table, token)
}

/// What the document says, split into what is served and what is
/// planned: (served table, planned operations and parameters, token).
fn document_table(doc: &Value) -> (Table, BTreeSet<String>, BTreeMap<String, bool>) {
    let (mut table, mut planned_items, mut token) =
        (Table::new(), BTreeSet::new(), BTreeMap::new());
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let method = method.to_uppercase();
            if planned(op) {
                planned_items.insert(format!("{method} {path}"));
                continue;
            }
            let mut params = BTreeSet::new();
            for p in op["parameters"].as_array().into_iter().flatten() {
                let p = resolve(doc, p);
                if p["in"] != "query" {
                    continue;
                }
                let name = p["name"].as_str().unwrap().to_string();
                if planned(p) {
                    planned_items.insert(format!("{method} {path} ?{name}"));
                } else {
                    params.insert(name);
                }
            }
            table
                .entry(path.clone())
                .or_default()
                .insert(method.clone(), params);
            let open = op.get("security") == Some(&serde_json::json!([]));
            let earlier = token.insert(path.clone(), !open);
            assert!(earlier.is_none_or(|e| e != open), "{path}: mixed security");
        }
    }
    (table, planned_items, token)
}

/// Every route, method and query parameter of the router is in the
/// document and the other way round; what the document marks planned is
/// exactly what the router lacks.
#[test]
fn document_and_router_agree() {
    let doc = document();
    let (router, router_token) = router_table();
    let (served, planned_items, doc_token) = document_table(&doc);
    assert_eq!(served, router, "served operations: document vs router");
    assert_eq!(doc_token, router_token, "which paths need the token");
    for item in &planned_items {
        let mut words = item.split(' ');
        let (method, path) = (words.next().unwrap(), words.next().unwrap());
        let has = router.get(path).and_then(|m| m.get(method));
        match words.next() {
            None => assert!(has.is_none(), "{item} is planned but routed"),
            Some(param) => {
                let param = param.trim_start_matches('?');
                assert!(!has.unwrap().contains(param), "{item} is planned but taken");
            }
        }
    }
    // SPEC's routes the server does not have yet are in the document.
}

/// Every error code the server can answer is in the document with its
/// status, and the codes the document has beyond them are planned.
#[test]
fn document_and_error_codes_agree() {
    let doc = document();
    let mut documented = BTreeMap::new();
    let mut planned_codes = BTreeSet::new();
    for c in doc["components"]["schemas"]["ErrorCode"]["oneOf"]
        .as_array()
        .unwrap()
    {
        let name = c["const"].as_str().unwrap().to_string();
        let status = c["x-kvr-status"].as_u64().unwrap() as u16;
        if planned(c) {
            planned_codes.insert(name.clone());
        }
        assert!(documented.insert(name, status).is_none());
    }
    let served: BTreeMap<String, u16> = kvr::error::Code::ALL
        .iter()
        .map(|c| (c.as_str().to_string(), c.status()))
        .collect();
    let unplanned: BTreeMap<String, u16> = documented
        .iter()
        .filter(|(n, _)| !planned_codes.contains(*n))
        .map(|(n, s)| (n.clone(), *s))
        .collect();
    assert_eq!(unplanned, served, "error codes: document vs server");
    for code in [
        "idempotency_key_reused",
        "compacted",
        "not_clustered",
        "conflict",
        "removed",
        "outcome_unknown",
    ] {
        assert!(served.contains_key(code), "SPEC's {code} not served");
    }
    // Each error response names only codes of its own status.
    let mut checked = 0;
    for item in doc["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            for (status, resp) in op["responses"].as_object().unwrap() {
                let resp = resolve(&doc, resp);
                let codes = resp
                    .pointer("/content/application~1json/schema/allOf/1/properties/error/anyOf");
                for c in codes.and_then(Value::as_array).into_iter().flatten() {
                    let name = c["const"].as_str().unwrap();
                    assert_eq!(
                        documented[name].to_string(),
                        *status,
                        "{name} under {status}"
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 50, "only {checked} error codes under responses");
}

/// The router's table is what the server does: each method of each path
/// is answered (no 405, no `no_route`), each parameter accepted, and an
/// unknown one refused by name.
#[test]
fn router_table_is_what_the_server_answers() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let mut requests = 0;
    for def in kvr::server::ROUTES {
        let path = def.path.replace("{key}", "k");
        for (method, params) in def.methods {
            let mut query: Vec<String> = params
                .iter()
                .map(|p| format!("{p}={}", sample(p)))
                .collect();
            if method == "DELETE" && path == "/v1/range" {
                query.retain(|q| q.starts_with("prefix="));
            }
            let url = format!("{}{path}?{}", s.url, query.join("&"));
            if path == "/v1/watch" {
                // A stream that does not end: its status and first line.
                assert_eq!(stream_status(&url), 200, "{url}");
                let bogus = format!("{url}&bogus_param=1");
                let r = http(method.as_str(), &bogus, &[], None);
                assert_eq!(r.status, 400, "{bogus}");
                requests += 2;
                continue;
            }
            let r = http(method.as_str(), &url, &[], None);
            // A missing key is the one 404 (HEAD: without the body), but
            // for the cluster routes of this standalone server.
            let missing = r.status == 404
                && (method == "HEAD" || r.code() == "not_found" || r.code() == "not_clustered");
            assert!(
                r.status == 200 || missing,
                "{method} {url}: {} {}",
                r.status,
                r.text()
            );
            let bogus = format!("{url}&bogus_param=1");
            let r = http(method.as_str(), &bogus, &[], None);
            assert_eq!(r.status, 400, "{method} {bogus}");
            if method != "HEAD" {
                assert!(r.text().contains("bogus_param"), "{method} {bogus}");
            }
            requests += 2;
        }
    }
    assert!(requests >= 40);
}

/// The status of a streamed GET, read without waiting for its end.
fn stream_status(url: &str) -> u16 {
    use std::io::{BufRead, BufReader, Write};
    let rest = url.strip_prefix("http://").unwrap();
    let (addr, path) = rest.split_at(rest.find('/').unwrap());
    let mut sock = std::net::TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(sock, "GET {path} HTTP/1.1\r\nhost: {addr}\r\n\r\n").unwrap();
    let mut line = String::new();
    BufReader::new(sock).read_line(&mut line).unwrap();
    line.split(' ').nth(1).unwrap().parse().unwrap()
}

/// A value each query parameter accepts.
fn sample(param: &str) -> &'static str {
    match param {
        "ttl" | "progress" => "60",
        "from_revision" => "1",
        "limit" => "5",
        "reverse" | "keys_only" => "true",
        "cursor" => "",
        "prefix" => "zz-none",
        "consistency" => "stale",
        "id" => "1",
        _ => "k",
    }
}

/// The Python venv with the tools, or `None` (skip) outside CI.
fn venv(tool: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("KVR_PY_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/venv"));
    let bin = dir.join("bin").join(tool);
    if bin.exists() {
        return Some(bin);
    }
    let why = format!(
        "{} not found: run .ci/run (or python3 -m venv .ci/venv && .ci/venv/bin/pip install -r \
         .ci/requirements.txt), or set KVR_PY_VENV",
        bin.display()
    );
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
    eprintln!("skipping: {why}");
    None
}

#[test]
fn document_passes_openapi_spec_validator() {
    let Some(validator) = venv("openapi-spec-validator") else {
        return;
    };
    let out = Command::new(validator).arg(DOC_PATH).output().unwrap();
    assert!(
        out.status.success() && stdout(&out).contains("OK"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
}

/// The document without what is planned: what this server should answer.
fn served_document() -> Value {
    fn strip(v: &Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .filter(|(_, x)| !planned(x))
                    .map(|(k, x)| (k.clone(), strip(x)))
                    .collect(),
            ),
            Value::Array(a) => Value::Array(a.iter().filter(|x| !planned(x)).map(strip).collect()),
            other => other.clone(),
        }
    }
    let mut doc = strip(&document());
    doc["paths"]
        .as_object_mut()
        .unwrap()
        .retain(|_, item| item.as_object().is_some_and(|o| !o.is_empty()));
    doc
}

/// Examples per operation: enough to find what the first runs found,
/// bounded so the run stays well under a minute on two cores.
const FUZZ_EXAMPLES: &str = "40";

/// Schemathesis against a real server (with a token) from the document,
/// stateful phase included (the document's links: write, read with the
/// ETag, delete at that revision): every check but
/// `positive_data_acceptance`, which cannot hold for
/// kvr (a schema-valid `If-None-Match: *` is a 412 once the key exists;
/// an opaque cursor, `start` ≤ `end` and "at least one bound" are rules
/// a schema cannot state). No failure, no crash, and `/healthz` answers
/// afterwards.
#[test]
fn schemathesis_finds_nothing() {
    let Some(st) = venv("st") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let schema = dir.path().join("served.json");
    std::fs::write(&schema, served_document().to_string()).unwrap();
    let mut s = Server::start(dir.path(), &["--token", TOKEN]);
    let started = Instant::now();
    let out = Command::new(st)
        .current_dir(dir.path())
        .env("PYTHONPATH", HOOKS_DIR)
        .env("SCHEMATHESIS_HOOKS", "kvr_hooks")
        .env("NO_COLOR", "1")
        .args(["run", schema.to_str().unwrap(), "--url", &s.url])
        .args(["-H", &format!("Authorization: Bearer {TOKEN}")])
        .args([
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance",
        ])
        .args(["--max-examples", FUZZ_EXAMPLES, "--seed", "20261129"])
        // The watch stream does not end: it has tests of its own.
        .args(["--exclude-path", "/v1/watch"])
        // One worker: with two threads, CPython 3.11's ast.parse (under
        // Hypothesis' repr of a lambda) failed at random with
        // "AST constructor recursion depth mismatch" (a CPython 3.11 race).
        .args(["--workers", "1", "--request-timeout", "10"])
        .output()
        .unwrap();
    let took = started.elapsed();
    let report = stdout(&out);
    eprintln!("schemathesis took {took:.1?}\n{}", summary(&report));
    assert!(
        out.status.success(),
        "schemathesis failed:\n{report}\n{}",
        stderr(&out)
    );
    assert!(report.contains("Tested: "), "{report}");
    assert!(s.child.try_wait().unwrap().is_none(), "the server died");
    let r = http("GET", &format!("{}/healthz", s.url), &[], None);
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));
    assert!(s.terminate().success());
}

/// The report's figures: phases, stateful scenarios and links, test
/// cases, and the summary.
fn summary(report: &str) -> String {
    let figures = ["Scenarios:", "API Links:", " (in "];
    let head = report
        .lines()
        .take_while(|l| !l.contains("SUMMARY"))
        .filter(|l| figures.iter().any(|f| l.contains(f)));
    let tail = report.lines().skip_while(|l| !l.contains("SUMMARY"));
    head.chain(tail).collect::<Vec<_>>().join("\n")
}

/// Schemathesis never asks for a range as a stream (`Accept:
/// application/x-ndjson`), so each line of real streams, with values and
/// keys only, UTF-8 and not, is checked against `RangeItem` here.
#[test]
fn range_stream_lines_match_the_document() {
    let Some(python) = venv("python") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let batch = b"{\"key\":\"a\",\"value\":\"x\"}\n{\"key_b64\":\"/w==\",\"value_b64\":\"AP8=\"}\n";
    let r = http("POST", &format!("{}/v1/batch", s.url), &[], Some(batch));
    assert_eq!(r.status, 200, "{}", r.text());
    let mut lines = Vec::new();
    for query in ["", "?keys_only=true", "?reverse=true&limit=1"] {
        let url = format!("{}/v1/range{query}", s.url);
        let r = http("GET", &url, &[("Accept", "application/x-ndjson")], None);
        assert_eq!(
            r.header("content-type").as_deref(),
            Some("application/x-ndjson")
        );
        lines.extend(r.text().lines().map(str::to_string));
    }
    assert_eq!(lines.len(), 5, "{lines:?}");
    let samples = dir.path().join("lines.ndjson");
    std::fs::write(&samples, lines.join("\n")).unwrap();
    let check = r##"
import json, sys
import jsonschema
doc = json.load(open(sys.argv[1]))
schema = dict(doc, **{"$ref": "#/components/schemas/RangeItem"})
validator = jsonschema.Draft202012Validator(schema)
for line in open(sys.argv[2]):
    validator.validate(json.loads(line))
print("checked")
"##;
    let out = Command::new(python)
        .args(["-c", check, DOC_PATH, samples.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success() && stdout(&out).contains("checked"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
}
