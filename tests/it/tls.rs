//! TLS on both sides (issue 2): the gate's own rustls listener, and an HTTPS upstream whose
//! certificate is verified (chain to a trusted CA via `SSL_CERT_FILE`, name = the URL's host,
//! sent as SNI) — and refused with 502 when it does not verify.

use std::io::Write;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::harness::{
    assert_scim_error, metric_sum, read_response, GateOpts, GateProc, Response, TestToken,
};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use scim_demo::DemoDirectory;

const USER: &str =
    r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"tls@acme.com"}"#;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A test CA that can sign leaves.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("ca key");
        let cert = params.self_signed(&key).expect("ca cert");
        Ca { cert, key }
    }

    /// A leaf for `names`, signed by this CA: (certificate DER, PKCS#8 key DER).
    fn leaf(&self, names: &[&str]) -> (CertificateDer<'static>, Vec<u8>) {
        let params =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .expect("leaf params");
        let key = KeyPair::generate().expect("leaf key");
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("leaf cert");
        (cert.der().clone(), key.serialize_der())
    }
}

/// The demo directory served over TLS on a tokio runtime on its own thread. Records the SNI
/// each handshake asked for. Stops when dropped.
struct TlsDirectory {
    addr: SocketAddr,
    dir: Arc<DemoDirectory>,
    sni: Arc<Mutex<Vec<Option<String>>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TlsDirectory {
    fn start(bind: SocketAddr, chain: Vec<CertificateDer<'static>>, key: Vec<u8>) -> TlsDirectory {
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(chain, PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)))
            .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = std::net::TcpListener::bind(bind).expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let dir = DemoDirectory::new("/v2");
        dir.set_scheme("https");
        let sni = Arc::new(Mutex::new(Vec::new()));
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let (served, seen) = (dir.clone(), sni.clone());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let thread = std::thread::spawn(move || {
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                loop {
                    tokio::select! {
                        _ = &mut stopped => return,
                        accepted = listener.accept() => {
                            let Ok((stream, _)) = accepted else { continue };
                            let (acceptor, dir, seen) = (acceptor.clone(), served.clone(), seen.clone());
                            tokio::spawn(async move {
                                // A failed handshake (the gate refusing our certificate) just ends here.
                                if let Ok(tls) = acceptor.accept(stream).await {
                                    seen.lock().expect("sni").push(tls.get_ref().1.server_name().map(str::to_string));
                                    let _ = dir.serve_connection(tls).await;
                                }
                            });
                        }
                    }
                }
            })
        });
        TlsDirectory {
            addr,
            dir,
            sni,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for TlsDirectory {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The address `localhost` resolves to first — the one the gate connects to for a
/// `https://localhost:…` upstream.
fn localhost() -> SocketAddr {
    ("localhost", 0)
        .to_socket_addrs()
        .expect("resolve localhost")
        .next()
        .expect("an address")
}

/// A gate in front of `upstream_url`, trusting exactly the CA certificates in `trusted` (PEM).
fn gate_trusting(upstream_url: &str, trusted: &str, t: &TestToken) -> GateProc {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, trusted).expect("ca.pem");
    std::fs::write(
        dir.path().join("tokens.yaml"),
        crate::harness::token_file(&[t]),
    )
    .expect("tokens");
    let mut opts = GateOpts::new(upstream_url);
    opts.env = vec![
        ("SSL_CERT_FILE".into(), ca_file.display().to_string()),
        // Only the test CA: no system directory of roots.
        (
            "SSL_CERT_DIR".into(),
            dir.path().join("no-such-dir").display().to_string(),
        ),
    ];
    GateProc::start_in(dir, opts)
}

#[test]
fn the_gates_tls_listener_serves_scim_over_https() {
    let up = scim_demo::DemoServer::start("/v2", "127.0.0.1:0").expect("demo");
    let t = TestToken::new("tok_tls");
    let dir = tempfile::tempdir().expect("tempdir");
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("cert");
    std::fs::write(dir.path().join("cert.pem"), certified.cert.pem()).expect("cert.pem");
    std::fs::write(
        dir.path().join("key.pem"),
        certified.key_pair.serialize_pem(),
    )
    .expect("key.pem");
    std::fs::write(
        dir.path().join("tokens.yaml"),
        crate::harness::token_file(&[&t]),
    )
    .expect("tokens");
    let mut opts = GateOpts::new(&up.base_url());
    opts.server().tls = Some(scim_gate::config::raw::RawTls {
        cert: "cert.pem".into(),
        key: "key.pem".into(),
    });
    let gate = GateProc::start_in(dir, opts);

    let mut roots = rustls::RootCertStore::empty();
    roots.add(certified.cert.der().clone()).expect("root");
    let config = Arc::new(
        rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    let https = |raw: String| -> Response {
        let conn = rustls::ClientConnection::new(
            config.clone(),
            ServerName::try_from("localhost").expect("name"),
        )
        .expect("client");
        let tcp = TcpStream::connect(gate.addr()).expect("connect");
        tcp.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        tls.write_all(raw.as_bytes()).expect("write");
        read_response(&mut tls)
    };
    let host = format!("localhost:{}", gate.port);
    let r = https(format!(
        "GET /scim/v2/Users HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nAuthorization: Bearer {}\r\n\r\n",
        t.plaintext
    ));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(up.dir.received().len(), 1);
    // Locations point at the https listener.
    let r = https(format!(
        "POST /scim/v2/Users HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nAuthorization: Bearer {}\r\nContent-Type: application/scim+json\r\nContent-Length: {}\r\n\r\n{USER}",
        t.plaintext,
        USER.len()
    ));
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["id"].as_str().expect("id").to_string();
    assert_eq!(
        r.header("location"),
        Some(format!("https://{host}/scim/v2/Users/{id}").as_str())
    );
    // Auth is the same over TLS.
    let r = https(format!(
        "GET /scim/v2/Users HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    ));
    assert_scim_error(&r, 401, None);
    // Plain HTTP on the TLS port gets no HTTP answer and reaches nothing.
    let mut plain = TcpStream::connect(gate.addr()).expect("connect");
    plain
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let _ = plain.write_all(
        format!(
            "GET /scim/v2/Users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n",
            t.plaintext
        )
        .as_bytes(),
    );
    let mut buf = [0u8; 64];
    let n = std::io::Read::read(&mut plain, &mut buf).unwrap_or(0);
    assert!(
        !buf[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    assert_eq!(
        up.dir.received().len(),
        2,
        "only the two authenticated requests were forwarded"
    );
}

#[test]
fn an_https_upstream_signed_by_a_trusted_ca_works_with_sni() {
    let ca = Ca::new("scim-gate test CA");
    let (leaf, key) = ca.leaf(&["localhost"]);
    let up = TlsDirectory::start(localhost(), vec![leaf], key);
    let t = TestToken::new("tok_tls");
    let gate = gate_trusting(
        &format!("https://localhost:{}/v2", up.addr.port()),
        &ca.cert.pem(),
        &t,
    );
    let r = gate.call("GET", "/scim/v2/Users", Some(&t.plaintext), None);
    assert_eq!(r.status, 200, "{}\n{}", r.text(), gate.log());
    assert_eq!(up.dir.received().len(), 1);
    assert_eq!(
        up.sni
            .lock()
            .expect("sni")
            .first()
            .cloned()
            .flatten()
            .as_deref(),
        Some("localhost"),
        "SNI"
    );
    // A write, and the https upstream's locations rewritten to the gate's public http URL.
    let r = gate.call("POST", "/scim/v2/Users", Some(&t.plaintext), Some(USER));
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["id"].as_str().expect("id").to_string();
    let public = format!("http://127.0.0.1:{}/scim/v2/Users/{id}", gate.port);
    assert_eq!(r.header("location"), Some(public.as_str()));
    assert_eq!(r.json()["meta"]["location"], serde_json::json!(public));
    let received = up.dir.received();
    assert_eq!(
        received.last().map(|r| r.body.as_slice()),
        Some(USER.as_bytes())
    );
    assert_eq!(
        received.last().and_then(|r| r.header("host")),
        Some(format!("localhost:{}", up.addr.port()).as_str())
    );
}

fn assert_refused(gate: &GateProc, t: &TestToken, up: &TlsDirectory) {
    let r = gate.call("GET", "/scim/v2/Users", Some(&t.plaintext), None);
    assert_scim_error(&r, 502, None);
    let seen = up.dir.received();
    assert!(
        seen.is_empty(),
        "a request reached an unverified upstream: {seen:?}"
    );
    let m = gate.metrics();
    assert!(
        metric_sum(&m, "scim_gate_upstream_errors_total", &["kind=\"tls\""]) >= 1.0,
        "{m}"
    );
}

#[test]
fn an_https_upstream_whose_name_does_not_match_is_refused() {
    let ca = Ca::new("scim-gate test CA");
    // Signed by the trusted CA, but for another host than the URL names.
    let (leaf, key) = ca.leaf(&["other.example"]);
    let up = TlsDirectory::start(localhost(), vec![leaf], key);
    let t = TestToken::new("tok_tls");
    let gate = gate_trusting(
        &format!("https://localhost:{}/v2", up.addr.port()),
        &ca.cert.pem(),
        &t,
    );
    assert_refused(&gate, &t, &up);
}

#[test]
fn an_https_upstream_signed_by_an_untrusted_ca_is_refused() {
    let ca = Ca::new("scim-gate test CA");
    let stranger = Ca::new("some other CA");
    let (leaf, key) = ca.leaf(&["localhost"]);
    let up = TlsDirectory::start(localhost(), vec![leaf], key);
    let t = TestToken::new("tok_tls");
    // The gate trusts a different CA only.
    let gate = gate_trusting(
        &format!("https://localhost:{}/v2", up.addr.port()),
        &stranger.cert.pem(),
        &t,
    );
    assert_refused(&gate, &t, &up);
}

#[test]
fn a_self_signed_upstream_is_refused() {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    let up = TlsDirectory::start(
        localhost(),
        vec![certified.cert.der().clone()],
        certified.key_pair.serialize_der(),
    );
    let t = TestToken::new("tok_tls");
    let unrelated = Ca::new("unrelated CA");
    let gate = gate_trusting(
        &format!("https://localhost:{}/v2", up.addr.port()),
        &unrelated.cert.pem(),
        &t,
    );
    assert_refused(&gate, &t, &up);
}
