//! HTTPS (SPEC "TLS"): `serve --tls-cert --tls-key`, clients verifying the
//! server by host name against the system's roots plus `--cacert`, clear
//! errors for a wrong CA and for plain HTTP and TLS mixed up, the warning
//! for a token in clear. Certificates come from a CA made at run time.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::pki::Pki;
use crate::support::*;

/// A server speaking HTTPS with `pki`'s certificate.
fn tls_server(dir: &Path, pki: &Pki, extra: &[&str]) -> Server {
    let mut args: Vec<String> = pki.serve_args();
    args.extend(extra.iter().map(|a| a.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::start(dir, &args);
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );
    server
}

/// `kvr --server URL --cacert CA ARGS`.
fn cli_with_ca(
    server: &Server,
    url: &str,
    ca: &Path,
    args: &[&str],
    stdin: &[u8],
) -> std::process::Output {
    let ca = ca.display().to_string();
    let mut all = vec!["--server", url, "--cacert", ca.as_str()];
    all.extend_from_slice(args);
    kvr(&server.dir, &all, stdin)
}

fn assert_code(out: &std::process::Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        stdout(out),
        stderr(out)
    );
    if code != 0 {
        assert!(stderr(out).starts_with("kvr: error:"), "{}", stderr(out));
    }
}

#[test]
fn every_command_over_https_with_cacert() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "a");
    let server = tls_server(dir.path(), &pki, &[]);
    let run = |args: &[&str], stdin: &[u8]| cli_with_ca(&server, &server.url, &pki.ca, args, stdin);
    assert_code(&run(&["put", "k", "v"], b""), 0);
    assert_eq!(stdout(&run(&["get", "k"], b"")), "v");
    // Many keys: the NDJSON range stream spans many TLS records.
    let lines: String = (0..5000)
        .map(|i| {
            format!(
                "{{\"key\":\"n{i:05}\",\"value\":\"{}\"}}\n",
                "x".repeat(100)
            )
        })
        .collect();
    let out = run(&["batch", "--json"], lines.as_bytes());
    assert_code(&out, 0);
    assert!(
        stdout(&out).contains("\"applied\":5000"),
        "{}",
        stdout(&out)
    );
    let out = run(&["range", "--prefix", "n"], b"");
    assert_code(&out, 0);
    assert_eq!(stdout(&out).lines().count(), 5000);
    assert_eq!(stdout(&out), {
        let mut want = String::new();
        for (i, _) in (0..5000).enumerate() {
            want.push_str(&format!(
                "{{\"key\":\"n{i:05}\",\"value\":\"{}\",\"revision\":{}}}\n",
                "x".repeat(100),
                i + 2
            ));
        }
        want
    });
    assert_code(&run(&["delete", "k"], b""), 0);
    assert_code(&run(&["get", "k"], b""), 1);
    let stats: serde_json::Value = serde_json::from_str(&stdout(&run(&["stats"], b""))).unwrap();
    assert_eq!(stats["keys"], 5000);
    // By host name too: the certificate names localhost.
    let by_name = server.url.replace("127.0.0.1", "localhost");
    let out = cli_with_ca(&server, &by_name, &pki.ca, &["get", "n04999"], b"");
    assert_eq!(stdout(&out), "x".repeat(100));
}

#[test]
fn a_wrong_or_missing_ca_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "a");
    let other = Pki::new(dir.path(), "b");
    let server = tls_server(dir.path(), &pki, &[]);
    for out in [
        cli_with_ca(&server, &server.url, &other.ca, &["put", "k", "v"], b""),
        server.cli(&["put", "k", "v"], b""),
    ] {
        assert_code(&out, 3);
        let err = stderr(&out);
        assert!(err.contains("could not be verified"), "{err}");
        assert!(err.contains(&server.url), "{err}");
        assert!(err.contains("--cacert"), "{err}");
    }
    assert_code(
        &cli_with_ca(&server, &server.url, &pki.ca, &["get", "k"], b""),
        1,
    );
    // The CA through KVR_CACERT.
    let out = kvr_cmd(&server.dir)
        .env("KVR_CACERT", &pki.ca)
        .args(["--server", &server.url, "put", "k", "v"])
        .output()
        .unwrap();
    assert_code(&out, 0);
}

#[test]
fn the_systems_roots_are_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "a");
    let server = tls_server(dir.path(), &pki, &[]);
    // rustls-native-certs takes the system's bundle from SSL_CERT_FILE.
    let out = kvr_cmd(&server.dir)
        .env("SSL_CERT_FILE", &pki.ca)
        .args(["--server", &server.url, "put", "k", "v"])
        .output()
        .unwrap();
    assert_code(&out, 0);
}

#[test]
fn the_host_name_is_verified() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::for_names(dir.path(), "a", &["localhost"]);
    let server = tls_server(dir.path(), &pki, &[]);
    let out = cli_with_ca(&server, &server.url, &pki.ca, &["put", "k", "v"], b"");
    assert_code(&out, 3);
    let err = stderr(&out);
    assert!(err.contains("could not be verified"), "{err}");
    assert!(err.contains("not valid for the host name"), "{err}");
    let by_name = server.url.replace("127.0.0.1", "localhost");
    assert_code(
        &cli_with_ca(&server, &by_name, &pki.ca, &["put", "k", "v"], b""),
        0,
    );
}

#[test]
fn plain_http_to_the_tls_port_is_told_to_use_https() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "a");
    let server = tls_server(dir.path(), &pki, &[]);
    let plain = format!("http://{}", server.addr);
    let out = kvr(&server.dir, &["--server", &plain, "put", "k", "v"], b"");
    assert_code(&out, 2);
    // Naming which URL of a --server list it was.
    assert!(
        stderr(&out).contains(&format!(
            "kvr: error: kvr server at {plain} speaks HTTPS only: use https://{}",
            server.addr
        )),
        "{}",
        stderr(&out)
    );
    let r = http("GET", &format!("{plain}/healthz"), &[], None);
    assert_eq!(r.status, 400);
    assert_eq!(r.code(), "bad_request");
    assert_code(
        &cli_with_ca(&server, &server.url, &pki.ca, &["get", "k"], b""),
        1,
    );
}

/// A request the HTTP parser refuses is answered over TLS as over plain
/// HTTP: a JSON error with the revision (the answer is rewritten above
/// the TLS layer, where it is still plain text).
#[test]
fn a_request_the_parser_refuses_gets_a_json_error_over_tls_too() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "a");
    let server = tls_server(dir.path(), &pki, &[]);
    let config = kvr::tls::client_config(Some(&pki.ca)).unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(config, name).unwrap();
    let tcp = TcpStream::connect(&server.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(b"\x00\xff\x13garbage garbage\r\n\r\n")
        .unwrap();
    let mut out = Vec::new();
    // (The answer is what counts, not how the close is signalled.)
    let _ = tls.read_to_end(&mut out);
    assert_parser_refusal(&String::from_utf8_lossy(&out), 400);
}

#[test]
fn https_to_a_plain_port_says_the_server_does_not_speak_tls() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "a");
    let server = Server::start(dir.path(), &[]);
    let https = format!("https://{}", server.addr);
    let out = cli_with_ca(&server, &https, &pki.ca, &["put", "k", "v"], b"");
    assert_code(&out, 3);
    let err = stderr(&out);
    assert!(err.contains("does not speak TLS"), "{err}");
    assert!(err.contains("http://"), "{err}");
    let out = cli_with_ca(
        &server,
        &https,
        &pki.ca,
        &["bench", "--requests", "10"],
        b"",
    );
    assert_code(&out, 3);
    assert!(
        stderr(&out).contains("does not speak TLS"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bench_over_https() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "a");
    let server = tls_server(dir.path(), &pki, &[]);
    for workload in ["put", "get"] {
        let out = cli_with_ca(
            &server,
            &server.url,
            &pki.ca,
            &[
                "bench",
                "--workload",
                workload,
                "--keyspace",
                "50",
                "--prefill",
                "50",
                "--requests",
                "200",
                "--clients",
                "4",
                "--json",
            ],
            b"",
        );
        assert_code(&out, 0);
        let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(r["ok"], 200, "{r}");
        assert_eq!(r["errors_total"], 0, "{r}");
    }
    let other = Pki::new(dir.path(), "b");
    let out = cli_with_ca(
        &server,
        &server.url,
        &other.ca,
        &["bench", "--requests", "10"],
        b"",
    );
    assert_code(&out, 3);
    assert!(
        stderr(&out).contains("could not be verified"),
        "{}",
        stderr(&out)
    );
}

/// `kvr serve ARGS` expected to fail before listening.
fn serve_fails(dir: &Path, args: &[&str], env: &[(&str, &Path)]) -> std::process::Output {
    let out = kvr_cmd(dir)
        .args(["--db", "db.redb", "serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "", "it must not listen");
    assert!(
        !dir.join("db.redb").exists(),
        "no database before listening"
    );
    out
}

#[test]
fn bad_certificates_and_keys_stop_serve_before_it_listens() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pki = Pki::new(d, "a");
    let other = Pki::new(d, "b");
    let (cert, key) = (pki.cert.to_str().unwrap(), pki.key.to_str().unwrap());
    // A certificate cut short: its block has no END line.
    let whole = std::fs::read_to_string(&pki.cert).unwrap();
    let cut = d.join("cut.pem");
    std::fs::write(&cut, &whole[..whole.len() / 2]).unwrap();
    let cut = cut.to_str().unwrap();
    // A key as `openssl pkcs8 -topk8` leaves it with a passphrase (the
    // block's content does not matter: its label is not a key's).
    let encrypted = d.join("encrypted.pem");
    std::fs::write(
        &encrypted,
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIFHDBOBgkqhkiG9w0BBQ0wQTApBgkqhkiG9w0BBQwwHAQI\n\
         -----END ENCRYPTED PRIVATE KEY-----\n",
    )
    .unwrap();
    let encrypted = encrypted.to_str().unwrap();
    let empty_pem = d.join("nothing.pem");
    std::fs::write(&empty_pem, "just text\n").unwrap();
    let empty_pem = empty_pem.to_str().unwrap();
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (
            vec!["--tls-cert", cut, "--tls-key", key],
            2,
            "a block has no -----END CERTIFICATE----- line: the file may be cut short",
        ),
        (vec!["--tls-cert", cert], 2, "--tls-cert needs --tls-key"),
        (vec!["--tls-key", key], 2, "--tls-key needs --tls-cert"),
        (
            vec!["--tls-cert", "missing.pem", "--tls-key", key],
            3,
            "cannot read --tls-cert missing.pem",
        ),
        (
            vec!["--tls-cert", cert, "--tls-key", "missing.pem"],
            3,
            "cannot read --tls-key missing.pem",
        ),
        (
            vec!["--tls-cert", key, "--tls-key", key],
            2,
            "no certificate",
        ),
        (
            vec!["--tls-cert", cert, "--tls-key", cert],
            2,
            "it holds a certificate, not a key",
        ),
        (
            vec!["--tls-cert", cert, "--tls-key", encrypted],
            2,
            "it holds an encrypted (passphrase-protected) key, which a server that starts on \
             its own cannot open; decrypt it once (openssl pkey -in KEY -out KEY.plain)",
        ),
        (
            vec!["--tls-cert", cert, "--tls-key", empty_pem],
            2,
            "no private key in PEM form",
        ),
        (
            vec!["--tls-cert", cert, "--tls-key", other.key.to_str().unwrap()],
            2,
            "the key does not belong to the certificate",
        ),
    ];
    for (args, code, message) in cases {
        let out = serve_fails(d, &args, &[]);
        assert_code(&out, code);
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
    }
    // Through the environment: KVR_TLS_CERT alone is the same usage error.
    let out = serve_fails(d, &[], &[("KVR_TLS_CERT", &pki.cert)]);
    assert_code(&out, 2);
    assert!(
        stderr(&out).contains("--tls-cert needs --tls-key"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn serve_takes_its_certificate_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "a");
    let server = Server::start_env(
        dir.path(),
        &[],
        &[
            ("KVR_TLS_CERT", pki.cert.to_str().unwrap()),
            ("KVR_TLS_KEY", pki.key.to_str().unwrap()),
        ],
    );
    assert!(server.url.starts_with("https://"), "{}", server.url);
    assert_code(
        &cli_with_ca(&server, &server.url, &pki.ca, &["put", "k", "v"], b""),
        0,
    );
}

/// Starts `kvr serve ARGS` and returns its stderr up to the listening line.
fn startup_stderr(dir: &Path, args: &[&str]) -> String {
    startup(dir, args).1
}

/// Starts `kvr serve ARGS`: the URL it listens on, and its stderr up to
/// the listening line.
fn startup(dir: &Path, args: &[&str]) -> (String, String) {
    let log = dir.join("serve.log");
    let mut child = kvr_cmd(dir)
        .args(["--db", "db.redb", "serve", "--quiet"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let url = crate::child::listening_url(&mut child);
    let _ = child.kill();
    let _ = child.wait();
    (url, std::fs::read_to_string(log).unwrap())
}

#[test]
fn a_token_in_clear_on_a_public_address_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "a");
    let tls = pki.serve_args();
    let tls: Vec<&str> = tls.iter().map(String::as_str).collect();
    let warned = |text: &str| text.contains("warning") && text.contains("travel in clear");
    let public = ["--listen", "0.0.0.0:0", "--token", "secret"];
    let err = startup_stderr(dir.path(), &public);
    assert!(warned(&err), "{err}");
    // Timestamped like every log line, and naming the port bound, not :0.
    let (url, err) = startup(dir.path(), &public);
    let line = err.lines().find(|l| warned(l)).unwrap();
    let b = line.as_bytes();
    assert!(
        line.len() > 25 && (b[4], b[10], b[23], b[24]) == (b'-', b'T', b'Z', b' '),
        "no timestamp: {line}"
    );
    let port = url.rsplit(':').next().unwrap();
    assert_ne!(port, "0");
    assert!(
        line.contains(&format!("listening on 0.0.0.0:{port} without TLS")),
        "{line} (bound {url})"
    );
    let err = startup_stderr(dir.path(), &[&public[..], &tls[..]].concat());
    assert!(!warned(&err), "{err}");
    let err = startup_stderr(
        dir.path(),
        &["--listen", "127.0.0.1:0", "--token", "secret"],
    );
    assert!(!warned(&err), "{err}");
    let err = startup_stderr(
        dir.path(),
        &["--listen", "0.0.0.0:0", "--allow-unauthenticated"],
    );
    assert!(!warned(&err), "{err}");
}

#[test]
fn a_stalled_handshake_is_cut_at_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "a");
    let server = tls_server(
        dir.path(),
        &pki,
        &["--header-timeout", "0.5", "--idle-timeout", "600"],
    );
    // The first byte of a ClientHello, then nothing.
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    stream.write_all(&[0x16]).unwrap();
    // Only a bound on a hung test, not a timing assertion: the server closes
    // the connection, and the read sees the end (or a reset).
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(n) => assert_eq!(n, 0, "unexpected bytes {:?}", &buf[..n]),
        Err(e) => assert!(
            !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "the server kept a stalled handshake open: {e}"
        ),
    }
    // The server still serves.
    assert_code(
        &cli_with_ca(&server, &server.url, &pki.ca, &["stats"], b""),
        0,
    );
}

/// A self-signed certificate with basicConstraints CA:TRUE, as `openssl
/// req -x509` makes by default, for localhost and 127.0.0.1.
fn self_signed_ca_cert(dir: &Path) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).unwrap();
    let pki = Pki {
        ca: dir.join("ss.pem"),
        cert: dir.join("ss.pem"),
        key: dir.join("ss-key.pem"),
    };
    std::fs::write(&pki.cert, cert.pem()).unwrap();
    std::fs::write(&pki.key, key.serialize_pem()).unwrap();
    pki
}

#[test]
fn a_ca_certificate_served_as_the_servers_own_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let pki = self_signed_ca_cert(dir.path());
    let mut args = pki.serve_args();
    args.extend(["--listen".to_string(), "127.0.0.1:0".to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // `serve` accepts it, with a warning at start.
    let (_, err) = startup(dir.path(), &args);
    assert!(
        err.contains("warning: the certificate in --tls-cert")
            && err.contains("is a CA certificate (basicConstraints CA:TRUE"),
        "{err}"
    );
    let server = tls_server(dir.path(), &pki, &[]);
    for out in [
        cli_with_ca(&server, &server.url, &pki.ca, &["put", "k", "v"], b""),
        server.cli(&["put", "k", "v"], b""),
    ] {
        assert_code(&out, 3);
        let err = stderr(&out);
        assert!(
            err.contains(
                "could not be verified: it is a CA certificate (basicConstraints CA:TRUE), \
                 which TLS does not accept as a server's own certificate; serve (--tls-cert) a \
                 leaf certificate signed by that CA"
            ),
            "{err}"
        );
        assert!(!err.contains("Other("), "{err}");
        assert!(!err.contains("give that CA with --cacert"), "{err}");
    }
    // A leaf with basicConstraints CA:FALSE is served without a warning.
    let leaf = Pki::new(dir.path(), "leaf");
    let mut args = leaf.serve_args();
    args.extend(["--listen".to_string(), "127.0.0.1:0".to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // Its own directory: the server above holds db.redb.
    let other_dir = tempfile::tempdir().unwrap();
    let (_, err) = startup(other_dir.path(), &args);
    assert!(!err.contains("warning"), "{err}");
}

#[test]
fn the_cacert_hint_is_given_only_when_it_can_help() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::for_names(dir.path(), "a", &["localhost"]);
    let other = Pki::new(dir.path(), "b");
    let server = tls_server(dir.path(), &pki, &[]);
    // Unknown issuer, no --cacert: the hint.
    let err = stderr(&server.cli(&["put", "k", "v"], b""));
    assert!(
        err.contains(
            "not signed by a certificate authority this client trusts; if the server's \
                      certificate is signed by your own CA, give that CA with --cacert PEM"
        ),
        "{err}"
    );
    // Unknown issuer with a --cacert: not "give that CA", which was done.
    let out = cli_with_ca(&server, &server.url, &other.ca, &["put", "k", "v"], b"");
    assert_code(&out, 3);
    let err = stderr(&out);
    assert!(!err.contains("give that CA with --cacert"), "{err}");
    assert!(
        err.contains("give the CA that signed the server's certificate with --cacert (now "),
        "{err}"
    );
    // A host name the certificate does not name: its own advice.
    let out = cli_with_ca(&server, &server.url, &pki.ca, &["put", "k", "v"], b"");
    assert_code(&out, 3);
    let err = stderr(&out);
    assert!(err.contains("not valid for the host name"), "{err}");
    assert!(
        err.contains("use a URL with a name the certificate is valid for"),
        "{err}"
    );
    assert!(!err.contains("--cacert"), "{err}");
    assert_code(
        &cli_with_ca(
            &server,
            &server.url.replace("127.0.0.1", "localhost"),
            &pki.ca,
            &["get", "k"],
            b"",
        ),
        1,
    );
}

/// Runs `attempt` every 200 ms until it returns true, for at most 30 s.
fn eventually(what: &str, mut attempt: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !attempt() {
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_certificate_renewed_in_place_is_served_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let first = Pki::new(dir.path(), "first");
    let log = dir.path().join("serve.log");
    let mut args = first.serve_args();
    args.push("--quiet".into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let log_file = std::fs::File::create(&log).unwrap();
    let server = Server::spawn(dir.path(), &args, &[], Stdio::from(log_file));
    let put = cli_with_ca(&server, &server.url, &first.ca, &["put", "k", "v1"], b"");
    assert_code(&put, 0);

    // Renewed by another CA, written over the same two files: new
    // connections get the new certificate, and the data stays.
    let renewed = Pki::new(dir.path(), "renewed");
    std::fs::copy(&renewed.cert, &first.cert).unwrap();
    std::fs::copy(&renewed.key, &first.key).unwrap();
    eventually("the renewed certificate is served", || {
        cli_with_ca(&server, &server.url, &renewed.ca, &["get", "k"], b"")
            .status
            .success()
    });
    let get = cli_with_ca(&server, &server.url, &renewed.ca, &["get", "k"], b"");
    assert_eq!(stdout(&get), "v1");
    let old = cli_with_ca(&server, &server.url, &first.ca, &["get", "k"], b"");
    assert_code(&old, 3);
    assert!(
        stderr(&old).contains("could not be verified"),
        "{}",
        stderr(&old)
    );
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(
        said.contains("changed: new connections get the certificate"),
        "{said}"
    );

    // A key that is not the certificate's is refused, and the certificate
    // served before stays: clients go on working.
    let stranger = Pki::new(dir.path(), "stranger");
    std::fs::copy(&stranger.key, &first.key).unwrap();
    eventually("the mismatched key is logged", || {
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("the key does not belong to the certificate")
    });
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(
        said.contains("the certificate read before is still served"),
        "{said}"
    );
    let put = cli_with_ca(&server, &server.url, &renewed.ca, &["put", "k", "v2"], b"");
    assert_code(&put, 0);
    let get = cli_with_ca(&server, &server.url, &renewed.ca, &["get", "k"], b"");
    assert_eq!(stdout(&get), "v2");

    // Once the key is put right, that certificate is served.
    std::fs::copy(&renewed.key, &first.key).unwrap();
    eventually(
        "the certificate is served again after its key was put right",
        || {
            std::fs::read_to_string(&log)
                .unwrap()
                .matches("changed: new connections get the certificate")
                .count()
                == 2
        },
    );
    let get = cli_with_ca(&server, &server.url, &renewed.ca, &["get", "k"], b"");
    assert_eq!(stdout(&get), "v2");
}

/// A certificate out of its validity is named at start (every client
/// refuses it; the server serves it all the same, as before), and is not
/// taken on a reload: the one served stays, where it may still be good.
#[test]
fn an_expired_certificate_is_warned_of_and_not_taken_on_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    let old_ca = crate::pki::Ca::new(dir.path(), "old");
    let expired = old_ca.issue_expired(dir.path(), "expired", &["localhost", "127.0.0.1"]);
    let log = dir.path().join("serve.log");
    let mut args = expired.serve_args();
    args.push("--quiet".into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let log_file = std::fs::File::create(&log).unwrap();
    let server = Server::spawn(dir.path(), &args, &[], Stdio::from(log_file));
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(
        said.contains("warning: the certificate in --tls-cert"),
        "{said}"
    );
    assert!(
        said.contains("expired on ") && said.contains("every client refuses it"),
        "{said}"
    );
    let refused = cli_with_ca(&server, &server.url, &expired.ca, &["get", "k"], b"");
    assert_code(&refused, 3);
    assert!(stderr(&refused).contains("expired"), "{}", stderr(&refused));

    // Renewed: taken.
    let good = Pki::new(dir.path(), "good");
    std::fs::copy(&good.cert, &expired.cert).unwrap();
    std::fs::copy(&good.key, &expired.key).unwrap();
    eventually("the good certificate is served", || {
        cli_with_ca(&server, &server.url, &good.ca, &["put", "k", "v"], b"")
            .status
            .success()
    });
    // The expired one again: not taken, the good one stays.
    let again = old_ca.issue_expired(dir.path(), "again", &["localhost", "127.0.0.1"]);
    std::fs::copy(&again.cert, &expired.cert).unwrap();
    std::fs::copy(&again.key, &expired.key).unwrap();
    eventually("the expired certificate is refused in the log", || {
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("cannot be used: its certificate expired on ")
    });
    let get = cli_with_ca(&server, &server.url, &good.ca, &["get", "k"], b"");
    assert_code(&get, 0);
    assert_eq!(stdout(&get), "v");
}
