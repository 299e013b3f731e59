//! A real etcd for the cluster tests: Debian's `etcd-server` (scripts/ensure-deps.sh installs
//! it), on loopback ports of its own, data on tmpfs, fast elections (heartbeat 50 ms, election
//! 500 ms: the minimum lease TTL is then 1 s). Killed and its data removed on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

/// One etcd member.
struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    data: PathBuf,
    child: Option<Child>,
}

/// A single etcd or a cluster of members.
pub struct Etcd {
    members: Vec<Member>,
    initial_cluster: String,
}

fn scratch() -> PathBuf {
    let shm = PathBuf::from("/dev/shm");
    if shm.is_dir() {
        shm
    } else {
        std::env::temp_dir()
    }
}

impl Etcd {
    /// One member.
    pub fn single() -> Etcd {
        Etcd::cluster(1)
    }

    /// `n` members forming one cluster.
    pub fn cluster(n: usize) -> Etcd {
        assert!(
            which("etcd"),
            "etcd is not installed: scripts/ensure-deps.sh installs Debian's etcd-server"
        );
        // Ports "free a moment ago" may be taken before etcd binds them (another test's client
        // socket): a member that exits at once gets new ports, up to three times.
        for attempt in 0.. {
            let mut etcd = Etcd::configure(n);
            for i in 0..n {
                etcd.spawn(i);
            }
            match etcd.try_wait_ready() {
                Ok(()) => return etcd,
                Err(e) if attempt < 3 => eprintln!("etcd did not start ({e}), new ports"),
                Err(e) => panic!("etcd did not start: {e}"),
            }
        }
        unreachable!()
    }

    fn configure(n: usize) -> Etcd {
        let unique = format!(
            "scim-gate-etcd-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        );
        let members: Vec<Member> = (0..n)
            .map(|i| Member {
                name: format!("n{i}"),
                client_port: free_port(),
                peer_port: free_port(),
                data: scratch().join(format!("{unique}-n{i}")),
                child: None,
            })
            .collect();
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        Etcd {
            members,
            initial_cluster,
        }
    }

    fn spawn(&mut self, i: usize) {
        let m = &mut self.members[i];
        let log = std::fs::File::create(format!("{}.log", m.data.display())).expect("etcd log");
        let client = format!("http://127.0.0.1:{}", m.client_port);
        let peer = format!("http://127.0.0.1:{}", m.peer_port);
        let child = Command::new("etcd")
            .args(["--name", &m.name])
            .arg("--data-dir")
            .arg(&m.data)
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &self.initial_cluster])
            .args(["--initial-cluster-state", "new"])
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            .args(["--experimental-watch-progress-notify-interval", "1s"])
            .args(["--log-level", "error"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn etcd");
        m.child = Some(child);
    }

    /// Waits until every running member answers a status call (the cluster has a leader).
    pub fn wait_ready(&mut self) {
        if let Err(e) = self.try_wait_ready() {
            panic!("etcd did not start: {e}");
        }
    }

    fn try_wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        for m in self.members.iter_mut().filter(|m| m.child.is_some()) {
            let url = format!("http://127.0.0.1:{}", m.client_port);
            loop {
                if status(&url).is_some_and(|(_, leader)| leader != 0) {
                    break;
                }
                if let Some(Ok(Some(code))) = m.child.as_mut().map(|c| c.try_wait()) {
                    return Err(format!("member {} exited ({code})", m.name));
                }
                if Instant::now() >= deadline {
                    return Err(format!("member {} did not answer within 20 s", m.name));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }

    /// The client URLs of all members.
    pub fn endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| format!("http://127.0.0.1:{}", m.client_port))
            .collect()
    }

    /// Kills member `i` (SIGKILL); its data stays for [`Etcd::restart`].
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts member `i` again on its data.
    pub fn restart(&mut self, i: usize) {
        self.spawn(i);
    }

    /// Kills member `i`, removes its data and starts it afresh on the same ports (a single
    /// member: a new, empty store whose revisions start again from 1).
    pub fn wipe(&mut self, i: usize) {
        self.kill(i);
        let _ = std::fs::remove_dir_all(&self.members[i].data);
        self.spawn(i);
        self.wait_ready();
    }

    /// The index of the current leader.
    pub fn leader(&self) -> Option<usize> {
        self.members.iter().position(|m| {
            m.child.is_some()
                && status(&format!("http://127.0.0.1:{}", m.client_port))
                    .is_some_and(|(me, leader)| me == leader)
        })
    }

    /// Runs `f` with a client on the first live member.
    pub fn with_client<T>(&self, f: impl AsyncFnOnce(&mut etcd_client::Client) -> T) -> T {
        let url = self
            .members
            .iter()
            .find(|m| m.child.is_some())
            .map(|m| format!("http://127.0.0.1:{}", m.client_port))
            .expect("a live member");
        runtime().block_on(async {
            let mut client = etcd_client::Client::connect([url], None)
                .await
                .expect("etcd client");
            f(&mut client).await
        })
    }

    /// Every key and value under `prefix`, as text (for secret greps).
    pub fn dump(&self, prefix: &str) -> String {
        self.with_client(async |c| {
            let got = c
                .get(prefix, Some(etcd_client::GetOptions::new().with_prefix()))
                .await
                .expect("get");
            got.kvs()
                .iter()
                .map(|kv| {
                    format!(
                        "{} = {}\n",
                        String::from_utf8_lossy(kv.key()),
                        String::from_utf8_lossy(kv.value())
                    )
                })
                .collect()
        })
    }

    /// Compacts the history up to the current revision.
    pub fn compact(&self) -> i64 {
        self.with_client(async |c| {
            let rev = c
                .get("/", None)
                .await
                .expect("get")
                .header()
                .map_or(0, |h| h.revision());
            c.compact(rev, None).await.expect("compact");
            rev
        })
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
            let _ = std::fs::remove_dir_all(&self.members[i].data);
            let _ = std::fs::remove_file(format!("{}.log", self.members[i].data.display()));
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// (this member's id, the leader's id) from `url`, if it answers.
fn status(url: &str) -> Option<(u64, u64)> {
    runtime().block_on(async {
        let connect = etcd_client::Client::connect(
            [url],
            Some(
                etcd_client::ConnectOptions::new().with_connect_timeout(Duration::from_millis(300)),
            ),
        );
        let mut c = tokio::time::timeout(Duration::from_millis(500), connect)
            .await
            .ok()?
            .ok()?;
        let s = tokio::time::timeout(Duration::from_millis(500), c.status())
            .await
            .ok()?
            .ok()?;
        Some((s.header()?.member_id(), s.leader()))
    })
}

fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false)
}
