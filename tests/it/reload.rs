//! Hot reload of the token file ([docs/token-file.md](docs/token-file.md)): edits in place, by rename and by a Kubernetes-style
//! symlink swap take effect within 1 s; invalid edits leave the previous set in force and are
//! counted as errors.

use std::os::unix::fs::symlink;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::harness::{eventually, token_file, GateOpts, GateProc, TestToken};
use scim_demo::DemoServer;

/// docs/token-file.md#hot-reload: a valid edit is in force within a second.
const RELOAD_LIMIT: Duration = Duration::from_secs(1);
const RELOAD_ERRORS: &str = "scim_gate_token_reloads_total{result=\"error\"}";

fn status(gate: &GateProc, token: &TestToken) -> u16 {
    gate.call("GET", "/scim/v2/Users", Some(&token.plaintext), None)
        .status
}

/// Writes a sibling temp file and renames it over `path`, as editors and the gate itself do.
fn replace_by_rename(path: &Path, content: &str) {
    let tmp = path.with_extension("yaml.tmp");
    std::fs::write(&tmp, content).expect("temp file");
    std::fs::rename(&tmp, path).expect("rename");
}

#[test]
fn an_added_token_is_accepted_within_one_second() {
    let up = DemoServer::start("/v2", "127.0.0.1:0").expect("demo");
    let a = TestToken::new("tok_a");
    let b = TestToken::new("tok_b");
    let gate = GateProc::start(GateOpts::new(&up.base_url()), &[&a]);
    assert_eq!(status(&gate, &b), 401);
    // An in-place edit (truncate + write), the way `echo >> tokens.yaml` or a naive editor does it.
    std::fs::write(gate.path("tokens.yaml"), token_file(&[&a, &b])).expect("write");
    assert!(
        eventually(RELOAD_LIMIT, || status(&gate, &b) == 200),
        "the added token was not accepted within 1 s: {}",
        gate.log()
    );
    assert_eq!(status(&gate, &a), 200);
    assert!(gate.metric("scim_gate_token_reloads_total{result=\"ok\"}") >= 1.0);
}

#[test]
fn a_removed_token_is_refused_within_one_second() {
    let up = DemoServer::start("/v2", "127.0.0.1:0").expect("demo");
    let a = TestToken::new("tok_a");
    let b = TestToken::new("tok_b");
    let gate = GateProc::start(GateOpts::new(&up.base_url()), &[&a, &b]);
    assert_eq!(status(&gate, &b), 200);
    std::fs::write(gate.path("tokens.yaml"), token_file(&[&a])).expect("write");
    assert!(
        eventually(RELOAD_LIMIT, || status(&gate, &b) == 401),
        "the removed token still passed after 1 s: {}",
        gate.log()
    );
    assert_eq!(status(&gate, &a), 200);
    // Emptying the file is a valid edit too: nothing passes any more.
    std::fs::write(gate.path("tokens.yaml"), token_file(&[])).expect("write");
    assert!(
        eventually(RELOAD_LIMIT, || status(&gate, &a) == 401),
        "{}",
        gate.log()
    );
}

#[test]
fn deactivating_a_token_by_hand_takes_effect_within_one_second() {
    let up = DemoServer::start("/v2", "127.0.0.1:0").expect("demo");
    let mut a = TestToken::new("tok_a");
    let gate = GateProc::start(GateOpts::new(&up.base_url()), &[&a]);
    assert_eq!(status(&gate, &a), 200);
    a.status = "inactive".into();
    replace_by_rename(&gate.path("tokens.yaml"), &token_file(&[&a]));
    assert!(
        eventually(RELOAD_LIMIT, || status(&gate, &a) == 401),
        "{}",
        gate.log()
    );
    let r = gate.call("GET", "/scim/v2/Users", Some(&a.plaintext), None);
    assert!(r.text().contains("inactive"), "{}", r.text());
}

#[test]
fn invalid_edits_keep_the_previous_set_and_count_errors() {
    let up = DemoServer::start("/v2", "127.0.0.1:0").expect("demo");
    let a = TestToken::new("tok_a");
    let b = TestToken::new("tok_b");
    let gate = GateProc::start(GateOpts::new(&up.base_url()), &[&a]);
    let file = gate.path("tokens.yaml");
    let bad_hash = b.yaml().replace(
        &scim_gate::tokens::secret::to_hex(&scim_gate::tokens::secret::sha256(
            b.plaintext.as_bytes(),
        )),
        "not-a-hash",
    );
    let mut dup = TestToken::new("tok_a");
    dup.plaintext = b.plaintext.clone();
    let invalid_edits = [
        // Bad YAML — and it names b, which must not become valid.
        format!("{}  - {{ id: tok_b, tenant: [unclosed\n", token_file(&[&a])),
        // A bad hash.
        format!("tokens:\n{}{}", a.yaml(), bad_hash),
        // A duplicate id (the second line would let b's secret in as tok_a).
        format!("tokens:\n{}{}", a.yaml(), dup.yaml()),
        // An unknown key.
        format!("tokens:\n{}bogus: 1\n", a.yaml()),
    ];
    for (i, content) in invalid_edits.iter().enumerate() {
        let before = gate.metric(RELOAD_ERRORS);
        replace_by_rename(&file, content);
        assert!(
            eventually(Duration::from_secs(2), || gate.metric(RELOAD_ERRORS)
                > before),
            "edit {i} was not counted as a reload error: {}\n{}",
            gate.metrics(),
            gate.log()
        );
        assert_eq!(
            status(&gate, &a),
            200,
            "edit {i}: the previous set stays in force"
        );
        assert_eq!(
            status(&gate, &b),
            401,
            "edit {i}: nothing from the invalid file is in force"
        );
    }
    assert!(
        gate.log_shows("not reloaded"),
        "the reason is logged: {}",
        gate.log()
    );
    // A valid edit afterwards is applied again.
    replace_by_rename(&file, &token_file(&[&a, &b]));
    assert!(
        eventually(RELOAD_LIMIT, || status(&gate, &b) == 200),
        "{}",
        gate.log()
    );
}

#[test]
fn a_file_replaced_by_rename_is_picked_up_within_one_second() {
    let up = DemoServer::start("/v2", "127.0.0.1:0").expect("demo");
    let a = TestToken::new("tok_a");
    let b = TestToken::new("tok_b");
    let gate = GateProc::start(GateOpts::new(&up.base_url()), &[&a]);
    let file = gate.path("tokens.yaml");
    replace_by_rename(&file, &token_file(&[&a, &b]));
    assert!(
        eventually(RELOAD_LIMIT, || status(&gate, &b) == 200),
        "add by rename: {}",
        gate.log()
    );
    replace_by_rename(&file, &token_file(&[&b]));
    assert!(
        eventually(RELOAD_LIMIT, || status(&gate, &a) == 401),
        "remove by rename: {}",
        gate.log()
    );
    assert_eq!(status(&gate, &b), 200);
}

/// The layout kubelet gives a Secret volume: `tokens.yaml -> ..data/tokens.yaml`, `..data` a
/// symlink to a timestamped folder; an update writes a new folder and renames a new `..data`
/// link over the old one, then removes the old folder.
struct SecretMount {
    dir: std::path::PathBuf,
    generation: u32,
}

impl SecretMount {
    fn create(dir: &Path, content: &str) -> SecretMount {
        let mut m = SecretMount {
            dir: dir.to_path_buf(),
            generation: 0,
        };
        let first = m.write_generation(content);
        symlink(&first, dir.join("..data")).expect("..data");
        symlink("..data/tokens.yaml", dir.join("tokens.yaml")).expect("tokens.yaml link");
        m
    }

    fn write_generation(&mut self, content: &str) -> String {
        self.generation += 1;
        let name = format!(
            "..2026_01_01_00_00_{:02}.{}",
            self.generation,
            std::process::id()
        );
        std::fs::create_dir(self.dir.join(&name)).expect("generation dir");
        std::fs::write(self.dir.join(&name).join("tokens.yaml"), content).expect("secret file");
        name
    }

    fn swap(&mut self, content: &str) {
        let old = std::fs::read_link(self.dir.join("..data")).expect("..data");
        let new = self.write_generation(content);
        symlink(&new, self.dir.join("..data_tmp")).expect("..data_tmp");
        std::fs::rename(self.dir.join("..data_tmp"), self.dir.join("..data")).expect("atomic swap");
        std::fs::remove_dir_all(self.dir.join(old)).expect("remove old generation");
    }
}

#[test]
fn a_kubernetes_style_symlink_swap_is_picked_up_within_one_second() {
    let up = DemoServer::start("/v2", "127.0.0.1:0").expect("demo");
    let a = TestToken::new("tok_a");
    let b = TestToken::new("tok_b");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut mount = SecretMount::create(dir.path(), &token_file(&[&a]));
    let gate = GateProc::start_in(dir, GateOpts::new(&up.base_url()));
    assert!(
        std::fs::symlink_metadata(gate.path("tokens.yaml"))
            .expect("link")
            .file_type()
            .is_symlink(),
        "the config's tokens.file is the symlinked path"
    );
    assert_eq!(status(&gate, &a), 200);
    assert_eq!(status(&gate, &b), 401);
    mount.swap(&token_file(&[&a, &b]));
    assert!(
        eventually(RELOAD_LIMIT, || status(&gate, &b) == 200),
        "add by symlink swap: {}",
        gate.log()
    );
    mount.swap(&token_file(&[&b]));
    assert!(
        eventually(RELOAD_LIMIT, || status(&gate, &a) == 401),
        "remove by symlink swap: {}",
        gate.log()
    );
    assert_eq!(status(&gate, &b), 200);
    // The gate read through the links; it did not replace them with a regular file.
    assert!(std::fs::symlink_metadata(gate.path("tokens.yaml"))
        .expect("link")
        .file_type()
        .is_symlink());
}

#[test]
fn reloads_do_not_drop_requests() {
    let up = DemoServer::start("/v2", "127.0.0.1:0").expect("demo");
    let a = Arc::new(TestToken::new("tok_a"));
    let b = TestToken::new("tok_b");
    let gate = Arc::new(GateProc::start(GateOpts::new(&up.base_url()), &[&a]));
    let stop = Arc::new(AtomicBool::new(false));
    let client = {
        let (gate, a, stop) = (gate.clone(), a.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut statuses = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                statuses.push(status(&gate, &a));
            }
            statuses
        })
    };
    let file = gate.path("tokens.yaml");
    for i in 0..10 {
        let content = if i % 2 == 0 {
            token_file(&[&a, &b])
        } else {
            token_file(&[&a])
        };
        replace_by_rename(&file, &content);
        let want = if i % 2 == 0 { 200 } else { 401 };
        assert!(
            eventually(RELOAD_LIMIT, || status(&gate, &b) == want),
            "round {i}: {}",
            gate.log()
        );
    }
    stop.store(true, Ordering::Relaxed);
    let statuses = client.join().expect("client thread");
    assert!(!statuses.is_empty());
    assert!(
        statuses.iter().all(|s| *s == 200),
        "a token that stayed in the file was refused during a reload: {statuses:?}"
    );
}
