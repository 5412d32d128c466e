//! TLS: with `--tls-cert` and `--tls-key` (PEM) the server speaks HTTPS only, and the
//! `status` command reaches it with `--ca-cert`. The certificate is made by `openssl`.
#![allow(clippy::unwrap_used)]

mod support;
use std::process::Command;
use support::*;

fn path(p: &std::path::Path) -> String {
    p.to_str().unwrap().to_string()
}

/// A TLS connection to `addr` through rustls, trusting the test CA.
fn tls_stream(
    addr: std::net::SocketAddr,
    ca: &std::path::Path,
) -> rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream> {
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    rustls::StreamOwned::new(conn, tcp)
}

const PING: &[u8] = b"*1\r\n$4\r\nPING\r\n";

/// The RESP endpoint of a TLS server speaks TLS only: PING through rustls trusting the
/// test CA answers PONG; the same bytes in the clear get no PONG.
fn resp_over_tls(addr: std::net::SocketAddr, ca: &std::path::Path) {
    use std::io::{Read as _, Write as _};
    let mut tls = tls_stream(addr, ca);
    tls.write_all(PING).unwrap();
    let mut pong = [0u8; 7];
    tls.read_exact(&mut pong).unwrap();
    assert_eq!(&pong, b"+PONG\r\n");
    let mut plain = std::net::TcpStream::connect(addr).unwrap();
    plain
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    plain.write_all(PING).unwrap();
    let mut got = Vec::new();
    let _ = plain.read_to_end(&mut got);
    assert!(!got.starts_with(b"+PONG"), "PONG in the clear");
}

/// Past `--max-connections`, a TLS server tells the refused connection so over TLS, on
/// both endpoints, and closes it.
fn refusals_over_tls(s: &Server, ca: &std::path::Path) {
    use std::io::{Read as _, Write as _};
    let resp = s.resp.expect("no rediss:// line");
    let mut served = tls_stream(resp, ca);
    served.write_all(PING).unwrap();
    let mut pong = [0u8; 7];
    served.read_exact(&mut pong).unwrap();
    assert_eq!(&pong, b"+PONG\r\n");
    let read_all = |mut tls: rustls::StreamOwned<_, _>, request: &[u8]| {
        tls.write_all(request).unwrap();
        let mut got = Vec::new();
        let _ = tls.read_to_end(&mut got);
        String::from_utf8_lossy(&got).into_owned()
    };
    let refused = read_all(tls_stream(resp, ca), PING);
    assert_eq!(refused, "-ERR max number of clients reached\r\n");
    let refused = read_all(
        tls_stream(s.addr(), ca),
        b"GET /healthz HTTP/1.1\r\nHost: walden\r\n\r\n",
    );
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(refused.contains("too_many_connections"), "{refused}");
}

#[test]
fn serves_https_with_a_pem_certificate() {
    let dir = tempdir();
    let p = |name: &str| dir.path().join(name);
    let (ca, cert, key) = (p("ca.pem"), p("cert.pem"), p("key.pem"));
    std::fs::write(
        p("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let steps: [Vec<String>; 3] = [
        // A test CA...
        ["req", "-x509", "-days", "2", "-subj", "/CN=walden-test-ca"]
            .iter()
            .chain(&ec)
            .map(|s| s.to_string())
            .chain([
                "-keyout".into(),
                path(&p("ca.key")),
                "-out".into(),
                path(&ca),
            ])
            .collect(),
        // ...a server key and request...
        ["req", "-subj", "/CN=127.0.0.1"]
            .iter()
            .chain(&ec)
            .map(|s| s.to_string())
            .chain([
                "-keyout".into(),
                path(&key),
                "-out".into(),
                path(&p("leaf.csr")),
            ])
            .collect(),
        // ...signed by the CA for 127.0.0.1.
        ["x509", "-req", "-days", "2", "-CAcreateserial"]
            .iter()
            .map(|s| s.to_string())
            .chain(["-in".into(), path(&p("leaf.csr")), "-CA".into(), path(&ca)])
            .chain([
                "-CAkey".into(),
                path(&p("ca.key")),
                "-out".into(),
                path(&cert),
            ])
            .chain(["-extfile".into(), path(&p("ext.cnf"))])
            .collect(),
    ];
    for args in steps {
        let made = Command::new("openssl")
            .args(&args)
            .output()
            .expect("openssl (Debian package openssl) is needed for this test");
        assert!(
            made.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&made.stderr)
        );
    }

    // A TLS server with both endpoints, and `extra` flags.
    let start_tls = |data: &str, extra: &[&str]| {
        let mut args = vec![
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--resp-listen",
            "127.0.0.1:0",
        ];
        args.extend_from_slice(extra);
        Server::start(&dir.path().join(data), &args)
    };
    let s = start_tls("data", &[]);
    assert!(s.base.starts_with("https://127.0.0.1:"), "{}", s.base);
    resp_over_tls(s.resp.expect("no rediss:// line"), &ca);

    // The library's client, trusting the test CA.
    let client = walden_server::Client::new(&s.base, None, Some(&ca)).unwrap();
    assert_eq!(client.get_json("/healthz").unwrap()["status"], "ok");
    assert!(client.get_json("/v1/status").unwrap()["durable_lsn"].is_u64());
    // Without trusting it, the handshake fails.
    let stranger = walden_server::Client::new(&s.base, None, None).unwrap();
    assert!(stranger.get_json("/healthz").is_err());
    // Plain HTTP on the TLS port gets nothing useful.
    let plain = s.base.replace("https://", "http://");
    assert!(
        try_call(&agent(), "GET", &format!("{plain}/healthz"), None, &[])
            .map_or(true, |r| r.status != 200)
    );

    let out = Command::new(BIN)
        .args(["status", "--json", "--server", &s.base, "--ca-cert"])
        .arg(&ca)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A key that does not fit the certificate is refused at startup.
    let other_key = dir.path().join("other.pem");
    let made = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
        ])
        .arg(&other_key)
        .output()
        .unwrap();
    assert!(made.status.success());
    let failure = Server::start_env(
        &dir.path().join("data2"),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            other_key.to_str().unwrap(),
        ],
        &[],
    )
    .err()
    .expect("a mismatched key must be refused");
    assert!(failure.stderr.contains("do not fit"), "{}", failure.stderr);

    let full = start_tls("data3", &["--max-connections", "1"]);
    refusals_over_tls(&full, &ca);
}
