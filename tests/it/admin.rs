//! The admin socket (docs/admin-api.md) through the real binary: every route with its failures, peer-uid
//! refusal, socket mode, instant invalidation under load, crash safety, expiry and hand edits.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::{admin_request, eventually, GateOpts, GateProc, BIN};
use scim_demo::DemoServer;
use scim_gate::tokens::{file, secret};
use serde_json::{json, Value};

const USERS: &str = "/scim/v2/Users";

fn demo() -> DemoServer {
    DemoServer::start("/v2", "127.0.0.1:0").expect("demo")
}

fn start(up: &DemoServer) -> GateProc {
    GateProc::start(GateOpts::new(&up.base_url()), &[])
}

fn create(gate: &GateProc, tenant: &str, idp: &str) -> (String, String) {
    let r = gate.admin(
        "POST",
        "/tokens",
        Some(&json!({"tenant": tenant, "idp": idp}).to_string()),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let b = r.json();
    (
        b["id"].as_str().expect("id").to_string(),
        b["token"].as_str().expect("token").to_string(),
    )
}

fn status_of(gate: &GateProc, token: &str) -> u16 {
    gate.call("GET", USERS, Some(token), None).status
}

fn file_records(gate: &GateProc) -> Vec<file::TokenRecord> {
    file::parse(
        &std::fs::read(gate.path("tokens.yaml")).expect("token file"),
        2,
    )
    .expect("token file parses")
}

fn listed_ids(gate: &GateProc) -> Vec<String> {
    let r = gate.admin("GET", "/tokens", None);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["tokens"]
        .as_array()
        .expect("tokens array")
        .iter()
        .map(|t| t["id"].as_str().expect("id").to_string())
        .collect()
}

fn sha_hex(token: &str) -> String {
    secret::to_hex(&secret::sha256(token.as_bytes()))
}

/// A proxy request that never panics (for load threads and killed gates): the status, if any.
fn try_status(addr: SocketAddr, token: &str) -> Option<u16> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let req = format!("GET {USERS} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let head = String::from_utf8_lossy(&buf[..buf.len().min(64)]).into_owned();
    head.split(' ').nth(1)?.parse().ok()
}

#[test]
fn create_returns_the_secret_once_and_list_never_shows_it() {
    let up = demo();
    let gate = start(&up);
    let body =
        json!({"tenant": "acme", "idp": "okta", "domains": ["Acme.com"], "expires_in": "30d"});
    let r = gate.admin("POST", "/tokens", Some(&body.to_string()));
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    let b = r.json();
    let token = b["token"].as_str().expect("token").to_string();
    // docs/token-file.md#token-format: scimgate_ + 43 base62 + 6 checksum characters.
    assert!(
        token.starts_with("scimgate_") && token.len() == 9 + 43 + 6,
        "{token}"
    );
    assert!(
        token[9..].chars().all(|c| c.is_ascii_alphanumeric()),
        "{token}"
    );
    let id = b["id"].as_str().expect("id").to_string();
    assert_eq!(
        (
            b["tenant"].as_str(),
            b["idp"].as_str(),
            b["status"].as_str()
        ),
        (Some("acme"), Some("okta"), Some("active"))
    );
    assert_eq!(b["domains"], json!(["acme.com"]));
    assert!(
        b["expires_at"].is_string() && b["created_at"].is_string() && b["refreshed_at"].is_null(),
        "{b}"
    );
    assert!(
        b.get("sha256").is_none(),
        "the hash is not part of the admin answer: {b}"
    );

    // In force for the proxy at once.
    assert_eq!(status_of(&gate, &token), 200);

    let r = gate.admin("GET", "/tokens", None);
    assert_eq!(r.status, 200);
    let list = r.json();
    let tokens = list["tokens"].as_array().expect("array");
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0]["id"].as_str(), Some(id.as_str()));
    for t in tokens {
        assert!(t.get("token").is_none() && t.get("sha256").is_none(), "{t}");
    }
    assert!(
        !r.text().contains(&token) && !r.text().contains(&sha_hex(&token)),
        "{}",
        r.text()
    );

    // Persisted: the file holds the hash, never the secret.
    let recs = file_records(&gate);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].sha256, sha_hex(&token));
    assert!(!std::fs::read_to_string(gate.path("tokens.yaml"))
        .expect("file")
        .contains(&token));
}

#[test]
fn refresh_keeps_the_id_and_kills_the_old_secret() {
    let up = demo();
    let gate = start(&up);
    let (id, old) = create(&gate, "acme", "entra");
    let r = gate.admin("POST", &format!("/tokens/{id}/refresh"), None);
    assert_eq!(r.status, 200, "{}", r.text());
    let b = r.json();
    let new = b["token"].as_str().expect("token").to_string();
    assert_eq!(b["id"].as_str(), Some(id.as_str()));
    assert_ne!(new, old);
    assert!(b["refreshed_at"].is_string(), "{b}");
    assert_eq!(status_of(&gate, &old), 401);
    assert_eq!(status_of(&gate, &new), 200);
    assert_eq!(file_records(&gate)[0].sha256, sha_hex(&new));
    assert_eq!(listed_ids(&gate), vec![id.clone()]);
    // A percent-encoded id (as the CLI or curl may send it) names the same token.
    let encoded = id.replace('_', "%5F");
    let r = gate.admin("POST", &format!("/tokens/{encoded}/refresh"), None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["id"].as_str(), Some(id.as_str()));
    assert_eq!(status_of(&gate, &new), 401);
}

#[test]
fn deactivate_activate_and_delete_take_effect_at_once() {
    let up = demo();
    let gate = start(&up);
    let (id, token) = create(&gate, "acme", "google");
    assert_eq!(status_of(&gate, &token), 200);

    let r = gate.admin("POST", &format!("/tokens/{id}/deactivate"), None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"].as_str(), Some("inactive"));
    assert!(r.json().get("token").is_none());
    let p = gate.call("GET", USERS, Some(&token), None);
    assert_eq!(p.status, 401);
    assert!(
        p.json()["detail"]
            .as_str()
            .unwrap_or("")
            .contains("inactive"),
        "{}",
        p.text()
    );
    assert_eq!(file_records(&gate)[0].status, file::Status::Inactive);

    let r = gate.admin("POST", &format!("/tokens/{id}/activate"), None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"].as_str(), Some("active"));
    assert_eq!(status_of(&gate, &token), 200);

    let r = gate.admin("DELETE", &format!("/tokens/{id}"), None);
    assert_eq!(r.status, 204, "{}", r.text());
    assert!(r.body.is_empty());
    assert_eq!(status_of(&gate, &token), 401);
    assert!(listed_ids(&gate).is_empty());
    assert!(file_records(&gate).is_empty());
    assert!(!std::fs::read_to_string(gate.path("tokens.yaml"))
        .expect("file")
        .contains(&id));
}

#[test]
fn failures_are_4xx_with_a_json_error_that_says_what_is_wrong() {
    let up = demo();
    let gate = start(&up);
    // max_per_idp (2) per (tenant, idp): the third is 409, other idps and tenants are separate.
    let (a, _) = create(&gate, "acme", "okta");
    create(&gate, "acme", "okta");
    let r = gate.admin("POST", "/tokens", Some(r#"{"tenant":"acme","idp":"okta"}"#));
    assert_eq!(r.status, 409, "{}", r.text());
    let e = r.json()["error"].as_str().unwrap_or("").to_string();
    assert!(e.contains("acme") && e.contains("okta"), "{e}");
    create(&gate, "acme", "entra");
    create(&gate, "beta", "okta");
    assert_eq!(listed_ids(&gate).len(), 4);

    for (method, path) in [
        ("POST", "/tokens/tok_nope/refresh"),
        ("POST", "/tokens/tok_nope/activate"),
        ("POST", "/tokens/tok_nope/deactivate"),
        ("DELETE", "/tokens/tok_nope"),
    ] {
        let r = gate.admin(method, path, None);
        assert_eq!(r.status, 404, "{method} {path}: {}", r.text());
        assert!(
            r.json()["error"]
                .as_str()
                .unwrap_or("")
                .contains("tok_nope"),
            "{}",
            r.text()
        );
    }

    let bad_bodies = [
        (r#"{"tenant":"acme","idp":"#, "JSON"),
        ("", "JSON"),
        (r#"{"tenant":"acme","idp":"okta","colour":"red"}"#, "colour"),
        (r#"{"idp":"okta"}"#, "tenant"),
        (r#"{"tenant":"","idp":"okta"}"#, "tenant"),
        (r#"{"tenant":"acme","idp":"myspace"}"#, "myspace"),
        (
            r#"{"tenant":"acme","idp":"entra","expires_in":"5y"}"#,
            "expires_in",
        ),
        (
            r#"{"tenant":"acme","idp":"entra","expires_in":"soon"}"#,
            "expires_in",
        ),
        (
            r#"{"tenant":"acme","idp":"entra","expires_in":"0s"}"#,
            "expires_in",
        ),
        (
            r#"{"tenant":"acme","idp":"entra","expires_in":30}"#,
            "expires_in",
        ),
        (
            r#"{"tenant":"acme","idp":"entra","expires_in":"99999999d"}"#,
            "expires_in",
        ),
        (
            r#"{"tenant":"acme","idp":"entra","domains":"acme.com"}"#,
            "domains",
        ),
        (r#"{"tenant":7,"idp":"entra"}"#, "tenant"),
        (r#"["acme","okta"]"#, "object"),
        (
            r#"{"tenant":"acme","idp":"entra","domains":["a@b.com"]}"#,
            "domain",
        ),
    ];
    for (body, want) in bad_bodies {
        let r = gate.admin("POST", "/tokens", Some(body));
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        let e = r.json()["error"].as_str().unwrap_or("").to_string();
        assert!(
            e.contains(want),
            "{body}: error {e:?} should mention {want}"
        );
    }
    assert_eq!(
        listed_ids(&gate).len(),
        4,
        "no failed call changed anything"
    );
    assert_eq!(file_records(&gate).len(), 4);

    assert_eq!(gate.admin("GET", "/nope", None).status, 404);
    assert_eq!(gate.admin("PUT", "/tokens", None).status, 405);
    assert_eq!(
        gate.admin("GET", &format!("/tokens/{a}/refresh"), None)
            .status,
        405
    );
}

#[test]
fn concurrent_creates_never_exceed_max_per_idp() {
    let up = demo();
    let gate = start(&up);
    let sock = gate.admin_socket();
    let handles: Vec<_> = (0..6)
        .map(|_| {
            let sock = sock.clone();
            std::thread::spawn(move || {
                admin_request(
                    &sock,
                    "POST",
                    "/tokens",
                    Some(r#"{"tenant":"race","idp":"okta"}"#),
                )
                .expect("admin")
                .status
            })
        })
        .collect();
    let mut statuses: Vec<u16> = handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect();
    statuses.sort_unstable();
    assert_eq!(statuses, vec![201, 201, 409, 409, 409, 409]);
    assert_eq!(file_records(&gate).len(), 2);
}

#[test]
fn audit_trail_names_every_event_and_filters_by_since() {
    let up = demo();
    let gate = start(&up);
    let (id, _) = create(&gate, "acme", "jumpcloud");
    std::thread::sleep(Duration::from_millis(20));
    let cut = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    std::thread::sleep(Duration::from_millis(20));
    for action in ["refresh", "deactivate", "activate"] {
        assert_eq!(
            gate.admin("POST", &format!("/tokens/{id}/{action}"), None)
                .status,
            200
        );
    }
    assert_eq!(
        gate.admin("DELETE", &format!("/tokens/{id}"), None).status,
        204
    );

    let r = gate.admin("GET", "/audit", None);
    assert_eq!(r.status, 200, "{}", r.text());
    let events = r.json()["events"].as_array().expect("events").clone();
    let names: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(
        names,
        [
            "token.created",
            "token.refreshed",
            "token.deactivated",
            "token.activated",
            "token.deleted"
        ]
    );
    for e in &events {
        assert!(
            chrono::DateTime::parse_from_rfc3339(e["time"].as_str().expect("time")).is_ok(),
            "{e}"
        );
        assert_eq!(e["token_id"].as_str(), Some(id.as_str()), "{e}");
        assert_eq!(e["tenant"].as_str(), Some("acme"), "{e}");
        assert_eq!(e["idp"].as_str(), Some("jumpcloud"), "{e}");
        assert_eq!(e["uid"].as_u64(), Some(0), "{e}");
    }
    // The file holds the same lines.
    let lines = std::fs::read_to_string(gate.path("audit.jsonl")).expect("audit");
    assert_eq!(lines.lines().count(), 5);

    let r = gate.admin("GET", &format!("/audit?since={cut}"), None);
    assert_eq!(r.status, 200, "{}", r.text());
    let later: Vec<String> = r.json()["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["event"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        later,
        [
            "token.refreshed",
            "token.deactivated",
            "token.activated",
            "token.deleted"
        ]
    );
    // An offset written with an encoded '+' works too.
    let r = gate.admin("GET", "/audit?since=2000-01-01T00:00:00%2B02:00", None);
    assert_eq!(r.json()["events"].as_array().map(Vec::len), Some(5));
    let r = gate.admin("GET", "/audit?since=2999-01-01T00:00:00Z", None);
    assert_eq!(r.json()["events"].as_array().map(Vec::len), Some(0));

    for bad in [
        "/audit?since=yesterday",
        "/audit?since=2026-13-01T00:00:00Z",
        "/audit?until=2026-01-01T00:00:00Z",
    ] {
        let r = gate.admin("GET", bad, None);
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
        assert!(r.json()["error"].is_string(), "{}", r.text());
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p)
        .expect("stat")
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn the_socket_is_0600_even_over_an_existing_0666_file() {
    let up = demo();
    let gate = start(&up);
    assert_eq!(mode(&gate.admin_socket()), 0o600);
    drop(gate);

    // A stale socket left 0666 by someone, and a plain file with that mode.
    for stale_socket in [true, false] {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("tokens.yaml"), "tokens: []\n").expect("tokens");
        let sock = dir.path().join("admin.sock");
        if stale_socket {
            drop(std::os::unix::net::UnixListener::bind(&sock).expect("bind"));
        } else {
            std::fs::write(&sock, "junk").expect("file");
        }
        std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666)).expect("chmod");
        assert_eq!(mode(&sock), 0o666);
        let gate = GateProc::start_in(dir, GateOpts::new(&up.base_url()));
        assert_eq!(
            mode(&gate.admin_socket()),
            0o600,
            "stale socket: {stale_socket}"
        );
        assert_eq!(gate.admin("GET", "/tokens", None).status, 200);
    }
}

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// `scim-gate token ARGS --socket S` as uid/gid 65534 ("nobody"). If nobody cannot reach the
/// binary where it was built (a checkout under a private home folder), a copy in the gate's
/// folder is run instead.
fn cli_as_nobody(socket: &Path, args: &[&str]) -> std::process::Output {
    let run = |bin: &Path| {
        Command::new(bin)
            .arg("token")
            .args(args)
            .arg("--socket")
            .arg(socket)
            .uid(65534)
            .gid(65534)
            .env("RUST_LOG", "off")
            .output()
    };
    match run(Path::new(BIN)) {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            let copy = socket.with_file_name("scim-gate-copy");
            if !copy.exists() {
                std::fs::copy(BIN, &copy).expect("copy the binary");
                std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755))
                    .expect("chmod");
            }
            run(&copy).expect("run the CLI copy as nobody")
        }
        Err(e) => panic!("cannot run the CLI as nobody: {e}"),
    }
}

#[test]
fn another_uid_is_refused_by_peer_credentials_unless_allowed() {
    if !running_as_root() {
        println!("skipped: needs root to run a client as uid 65534");
        return;
    }
    let up = demo();
    let gate = start(&up);
    // Let nobody reach the socket's folder; the socket itself is 0600.
    std::fs::set_permissions(gate.dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod dir");
    let out = cli_as_nobody(&gate.admin_socket(), &["list"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Permission denied") && err.contains("admin.sock"),
        "{err}"
    );

    // With the file mode opened up, SO_PEERCRED still refuses the uid.
    std::fs::set_permissions(gate.admin_socket(), std::fs::Permissions::from_mode(0o666))
        .expect("chmod");
    let out = cli_as_nobody(
        &gate.admin_socket(),
        &["create", "--tenant", "evil", "--idp", "okta"],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("403") && err.contains("uid"), "{err}");
    assert!(out.stdout.is_empty());
    assert!(
        listed_ids(&gate).is_empty(),
        "the refused create changed nothing"
    );
    assert!(eventually(Duration::from_secs(2), || gate
        .log()
        .contains("refused a connection from uid Some(65534)")));
    drop(gate);

    // Listed in admin.allowed_uids: the same client is let in, and the audit names its uid.
    let mut opts = GateOpts::new(&up.base_url());
    opts.config
        .admin
        .get_or_insert_with(Default::default)
        .allowed_uids = Some(vec![65534]);
    let gate = GateProc::start(opts, &[]);
    std::fs::set_permissions(gate.dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod dir");
    std::fs::set_permissions(gate.admin_socket(), std::fs::Permissions::from_mode(0o666))
        .expect("chmod");
    let out = cli_as_nobody(
        &gate.admin_socket(),
        &["create", "--tenant", "ops", "--idp", "okta"],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let token = stdout.lines().next().expect("token line").to_string();
    assert!(token.starts_with("scimgate_"), "{stdout}");
    assert_eq!(status_of(&gate, &token), 200);
    let events = gate.admin("GET", "/audit", None).json();
    assert_eq!(events["events"][0]["uid"].as_u64(), Some(65534), "{events}");
    // Root (the gate's own uid) is still let in.
    assert_eq!(gate.admin("GET", "/tokens", None).status, 200);
}

#[test]
fn instant_invalidation_under_load() {
    let up = demo();
    let gate = start(&up);
    let (id, first) = create(&gate, "acme", "okta");
    let current = Arc::new(Mutex::new(first));
    let stop = Arc::new(AtomicBool::new(false));
    let load_ok = Arc::new(AtomicU64::new(0));
    let load_401 = Arc::new(AtomicU64::new(0));
    let load_other = Arc::new(AtomicU64::new(0));
    let addr = gate.addr();
    let hammers: Vec<_> = (0..4)
        .map(|_| {
            let (current, stop) = (current.clone(), stop.clone());
            let (ok, dead, other) = (load_ok.clone(), load_401.clone(), load_other.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let token = current.lock().expect("lock").clone();
                    // A hammer may race a refresh and send a secret that just died: that 401 is
                    // correct, so the load threads only count.
                    match try_status(addr, &token) {
                        Some(200) => ok.fetch_add(1, Ordering::Relaxed),
                        Some(401) => dead.fetch_add(1, Ordering::Relaxed),
                        _ => other.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();

    let started = Instant::now();
    let (mut old_401, mut old_miss, mut new_200, mut new_miss) = (0u32, 0u32, 0u32, 0u32);
    let mut misses = Vec::new();
    for i in 0..300 {
        let previous = current.lock().expect("lock").clone();
        let r = gate.admin("POST", &format!("/tokens/{id}/refresh"), None);
        assert_eq!(r.status, 200, "refresh {i}: {}", r.text());
        let new = r.json()["token"].as_str().expect("token").to_string();
        *current.lock().expect("lock") = new.clone();
        match try_status(addr, &previous) {
            Some(401) => old_401 += 1,
            s => {
                old_miss += 1;
                misses.push(format!("refresh {i}: previous secret got {s:?}"));
            }
        }
        match try_status(addr, &new) {
            Some(200) => new_200 += 1,
            s => {
                new_miss += 1;
                misses.push(format!("refresh {i}: new secret got {s:?}"));
            }
        }
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    for h in hammers {
        h.join().expect("hammer");
    }
    println!(
        "invalidation: 300 refreshes in {:.1}s under 4 load threads; previous secret 401: {old_401}, misses {old_miss}; \
         new secret 200: {new_200}, misses {new_miss}; load requests 200: {}, 401 (raced a refresh): {}, other: {}",
        elapsed.as_secs_f64(),
        load_ok.load(Ordering::Relaxed),
        load_401.load(Ordering::Relaxed),
        load_other.load(Ordering::Relaxed),
    );
    assert!(misses.is_empty(), "{misses:?}");
    assert_eq!((old_401, new_200), (300, 300));
    assert!(
        load_ok.load(Ordering::Relaxed) > 0,
        "the load threads got through"
    );
    assert_eq!(
        load_other.load(Ordering::Relaxed),
        0,
        "no load request failed other than by a raced refresh"
    );
    let events = std::fs::read_to_string(gate.path("audit.jsonl")).expect("audit");
    assert_eq!(
        events
            .lines()
            .filter(|l| l.contains("token.refreshed"))
            .count(),
        300
    );
}

/// What the crash writer has seen acknowledged, and the call it has in flight.
#[derive(Default)]
struct Acked {
    /// id → (sha256, status) as of the last answered call.
    tokens: HashMap<String, (String, file::Status)>,
    pending: Option<Pending>,
    calls: u32,
}

#[derive(Clone, Debug)]
enum Pending {
    Create,
    Refresh(String),
    Status(String),
    Delete(String),
}

/// Create → refresh → deactivate → delete, over and over, until the socket breaks.
fn crash_writer(sock: &Path, acked: &Mutex<Acked>) {
    let mut n = 0u32;
    loop {
        n += 1;
        let tenant = format!("t{}", n % 3);
        let set_pending = |p: Pending| acked.lock().expect("lock").pending = Some(p);
        set_pending(Pending::Create);
        let Ok(r) = admin_request(
            sock,
            "POST",
            "/tokens",
            Some(&json!({"tenant": tenant, "idp": "okta"}).to_string()),
        ) else {
            return;
        };
        if r.status != 201 {
            return;
        }
        let id = r.json()["id"].as_str().unwrap_or_default().to_string();
        let tok = r.json()["token"].as_str().unwrap_or_default().to_string();
        {
            let mut a = acked.lock().expect("lock");
            a.tokens
                .insert(id.clone(), (sha_hex(&tok), file::Status::Active));
            a.pending = None;
            a.calls += 1;
        }
        set_pending(Pending::Refresh(id.clone()));
        let Ok(r) = admin_request(sock, "POST", &format!("/tokens/{id}/refresh"), None) else {
            return;
        };
        if r.status != 200 {
            return;
        }
        let tok = r.json()["token"].as_str().unwrap_or_default().to_string();
        {
            let mut a = acked.lock().expect("lock");
            a.tokens
                .insert(id.clone(), (sha_hex(&tok), file::Status::Active));
            a.pending = None;
            a.calls += 1;
        }
        set_pending(Pending::Status(id.clone()));
        let Ok(r) = admin_request(sock, "POST", &format!("/tokens/{id}/deactivate"), None) else {
            return;
        };
        if r.status != 200 {
            return;
        }
        {
            let mut a = acked.lock().expect("lock");
            if let Some(t) = a.tokens.get_mut(&id) {
                t.1 = file::Status::Inactive;
            }
            a.pending = None;
            a.calls += 1;
        }
        set_pending(Pending::Delete(id.clone()));
        let Ok(r) = admin_request(sock, "DELETE", &format!("/tokens/{id}"), None) else {
            return;
        };
        if r.status != 204 {
            return;
        }
        let mut a = acked.lock().expect("lock");
        a.tokens.remove(&id);
        a.pending = None;
        a.calls += 1;
    }
}

/// The file must hold the acknowledged state, or that state plus the one interrupted call.
fn check_before_or_after(records: &[file::TokenRecord], acked: &Acked) -> Result<(), String> {
    let on_disk: HashMap<&str, (&str, file::Status)> = records
        .iter()
        .map(|r| (r.id.as_str(), (r.sha256.as_str(), r.status)))
        .collect();
    let pending_id = match &acked.pending {
        Some(Pending::Refresh(id) | Pending::Status(id) | Pending::Delete(id)) => Some(id.as_str()),
        _ => None,
    };
    for (id, (sha, status)) in &acked.tokens {
        let Some((dsha, dstatus)) = on_disk.get(id.as_str()) else {
            if pending_id == Some(id.as_str()) && matches!(acked.pending, Some(Pending::Delete(_)))
            {
                continue;
            }
            return Err(format!("acknowledged token {id} is missing"));
        };
        let sha_ok = dsha == sha || matches!(&acked.pending, Some(Pending::Refresh(p)) if p == id);
        let status_ok =
            dstatus == status || matches!(&acked.pending, Some(Pending::Status(p)) if p == id);
        if !sha_ok || !status_ok {
            return Err(format!(
                "token {id} is neither before nor after the interrupted call"
            ));
        }
    }
    let extra: Vec<&&str> = on_disk
        .keys()
        .filter(|id| !acked.tokens.contains_key(**id))
        .collect();
    match (&acked.pending, extra.len()) {
        (_, 0) | (Some(Pending::Create), 1) => Ok(()),
        (p, _) => Err(format!("unexpected tokens {extra:?} (pending {p:?})")),
    }
}

#[test]
fn sigkill_during_admin_writes_leaves_a_whole_file() {
    let up = demo();
    let mut gate = start(&up);
    let (base_id, base) = create(&gate, "base", "okta");
    let mut acked_total = 0;
    for round in 0..5u64 {
        let acked = Arc::new(Mutex::new(Acked::default()));
        {
            let mut a = acked.lock().expect("lock");
            for r in file_records(&gate) {
                a.tokens.insert(r.id.clone(), (r.sha256.clone(), r.status));
            }
        }
        let sock = gate.admin_socket();
        let writer = {
            let acked = acked.clone();
            std::thread::spawn(move || crash_writer(&sock, &acked))
        };
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() as u64)
            .unwrap_or(0);
        std::thread::sleep(Duration::from_millis(60 + (nanos + round * 97) % 300));
        gate.kill(); // SIGKILL
        writer.join().expect("writer");

        let bytes = std::fs::read(gate.path("tokens.yaml")).expect("token file");
        let records = file::parse(&bytes, 2).unwrap_or_else(|e| {
            panic!(
                "round {round}: torn token file ({e}): {}",
                String::from_utf8_lossy(&bytes)
            )
        });
        let a = acked.lock().expect("lock");
        acked_total += a.calls;
        if let Err(e) = check_before_or_after(&records, &a) {
            panic!(
                "round {round}: {e}\nfile: {}",
                String::from_utf8_lossy(&bytes)
            );
        }
        drop(a);

        gate.restart(&[]);
        let mut listed = listed_ids(&gate);
        let mut in_file: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
        listed.sort();
        in_file.sort();
        assert_eq!(
            listed, in_file,
            "round {round}: the restarted gate serves the file"
        );
        assert!(listed.contains(&base_id));
        assert_eq!(status_of(&gate, &base), 200, "round {round}");
    }
    println!(
        "crash safety: 5 SIGKILLs, {acked_total} acknowledged admin writes, file whole every time"
    );
    assert!(
        acked_total > 0,
        "the writer got calls through before the kills"
    );
}

#[test]
fn a_token_expires_on_time_without_any_admin_action() {
    let up = demo();
    let gate = start(&up);
    let created = Instant::now();
    let r = gate.admin(
        "POST",
        "/tokens",
        Some(r#"{"tenant":"acme","idp":"onelogin","expires_in":"2s"}"#),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["id"].as_str().expect("id").to_string();
    let token = r.json()["token"].as_str().expect("token").to_string();
    let expires_at =
        chrono::DateTime::parse_from_rfc3339(r.json()["expires_at"].as_str().expect("expires_at"))
            .expect("time");
    let left = expires_at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    assert!(
        left > chrono::Duration::milliseconds(1500) && left <= chrono::Duration::seconds(2),
        "{left}"
    );

    assert_eq!(status_of(&gate, &token), 200);
    let gauge = format!(
        "scim_gate_token_expiry_timestamp_seconds{{token_id=\"{id}\"}} {}",
        expires_at.timestamp()
    );
    assert!(
        gate.metrics().contains(&gauge),
        "{gauge} missing from\n{}",
        gate.metrics()
    );

    let mut last = None;
    assert!(
        eventually(Duration::from_secs(5), || {
            let r = gate.call("GET", USERS, Some(&token), None);
            let done = r.status == 401;
            last = Some(r);
            done
        }),
        "still accepted 5 s after creation"
    );
    let died = created.elapsed();
    let r = last.expect("response");
    assert!(
        r.json()["detail"]
            .as_str()
            .unwrap_or("")
            .contains("expired"),
        "{}",
        r.text()
    );
    assert!(!r.text().contains(&token));
    assert!(
        died >= Duration::from_millis(1900),
        "died after {died:?}, before its expiry"
    );

    // The gate announces it by itself.
    assert!(
        eventually(Duration::from_secs(3), || {
            gate.admin("GET", "/audit", None).json()["events"]
                .as_array()
                .is_some_and(|ev| {
                    ev.iter()
                        .any(|e| e["event"] == "token.expired" && e["token_id"] == id.as_str())
                })
        }),
        "no token.expired event: {}",
        gate.admin("GET", "/audit", None).text()
    );
    let ev = gate.admin("GET", "/audit", None).json();
    let expired: Vec<&Value> = ev["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["event"] == "token.expired")
        .collect();
    assert_eq!(expired.len(), 1, "announced once: {ev}");
    assert_eq!(
        (expired[0]["tenant"].as_str(), expired[0]["idp"].as_str()),
        (Some("acme"), Some("onelogin"))
    );
    // The gauges are refreshed right after the event is written.
    assert!(
        eventually(Duration::from_secs(2), || gate
            .metrics()
            .contains("scim_gate_tokens{status=\"expired\"} 1")),
        "{}",
        gate.metrics()
    );
    assert!(
        gate.metrics().contains(&gauge),
        "the gauge stays while the token exists"
    );
    assert_eq!(
        listed_ids(&gate),
        vec![id.clone()],
        "an expired token stays listed until deleted"
    );

    assert_eq!(
        gate.admin("DELETE", &format!("/tokens/{id}"), None).status,
        204
    );
    assert!(
        !gate.metrics().contains(&format!("token_id=\"{id}\"")),
        "the gauge goes with the token"
    );
}

#[test]
fn a_hand_edit_is_not_lost_by_an_admin_write_right_after() {
    let up = demo();
    let gate = start(&up);
    let (first_id, first) = create(&gate, "acme", "okta");
    let hand = crate::harness::TestToken::new("tok_byhand");
    let line = format!(
        "- {{id: tok_byhand, tenant: handmade, idp: other, status: active, sha256: {}, domains: [], created_at: 2026-11-22T10:00:00Z}}\n",
        sha_hex(&hand.plaintext)
    );
    // The operator appends a record (one write), and an admin create follows at once.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(gate.path("tokens.yaml"))
        .expect("open");
    f.write_all(line.as_bytes()).expect("append");
    drop(f);
    let (second_id, second) = create(&gate, "beta", "entra");

    let ids: Vec<String> = file_records(&gate).into_iter().map(|r| r.id).collect();
    for id in [&first_id, "tok_byhand", &second_id] {
        assert!(
            ids.iter().any(|i| i == id),
            "{id} missing from the file: {ids:?}"
        );
    }
    let mut listed = listed_ids(&gate);
    listed.sort();
    let mut want = vec![
        first_id.clone(),
        "tok_byhand".to_string(),
        second_id.clone(),
    ];
    want.sort();
    assert_eq!(listed, want);
    for t in [&first, &hand.plaintext, &second] {
        assert_eq!(status_of(&gate, t), 200);
    }
    // Still there once the watcher has seen the events, and recorded as an external edit.
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(status_of(&gate, &hand.plaintext), 200);
    assert_eq!(listed_ids(&gate).len(), 3);
    let audit = gate.admin("GET", "/audit", None).json();
    let reloads: Vec<&Value> = audit["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["event"] == "tokens.reloaded")
        .collect();
    assert_eq!(
        reloads.len(),
        1,
        "one external edit, recorded once: {audit}"
    );
    assert_eq!(reloads[0]["changes"]["added"], json!(["tok_byhand"]));
}
