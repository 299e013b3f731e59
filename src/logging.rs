//! Process logging: `RUST_LOG` selects the level (default `info`), and no secret reaches a log
//! line even at `trace`.

use std::io::Write;
use std::sync::{mpsc, OnceLock};

use crate::tokens::secret;

/// Installs the process logger: env_logger (`RUST_LOG`, default `info`) behind [`NoSecrets`],
/// writing through [`BatchedStderr`].
pub fn init() {
    let env = env_logger::Env::default().default_filter_or("info");
    let logger = env_logger::Builder::from_env(env)
        .format_timestamp_millis()
        .target(env_logger::Target::Pipe(Box::new(BatchedStderr::start())))
        .build();
    let max = logger.filter();
    // A second init (tests calling in-process) is harmless.
    if log::set_boxed_logger(Box::new(NoSecrets(logger))).is_ok() {
        log::set_max_level(max);
    }
}

enum Line {
    Bytes(Vec<u8>),
    Flush(mpsc::SyncSender<()>),
}

static WRITER: OnceLock<mpsc::SyncSender<Line>> = OnceLock::new();

/// The access log writes a line per request; a `write(2)` to stderr per line from each worker
/// thread (env_logger's own target) costs more than the gate's checks. Lines go through a
/// channel to one writer thread instead, which writes whatever has queued up in one batch —
/// one syscall per burst under load, the same immediacy when idle.
struct BatchedStderr {
    tx: mpsc::SyncSender<Line>,
}

impl BatchedStderr {
    fn start() -> BatchedStderr {
        let tx = WRITER
            .get_or_init(|| {
                let (tx, rx) = mpsc::sync_channel::<Line>(16 * 1024);
                let spawned = std::thread::Builder::new()
                    .name("log-writer".into())
                    .spawn(move || write_batches(&rx));
                if let Err(e) = spawned {
                    eprintln!("scim-gate: cannot start the log writer: {e}");
                }
                tx
            })
            .clone();
        BatchedStderr { tx }
    }
}

fn write_batches(rx: &mpsc::Receiver<Line>) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stderr());
    while let Ok(first) = rx.recv() {
        let mut waiting = Vec::new();
        let mut next = Some(first);
        while let Some(line) = next {
            match line {
                Line::Bytes(b) => {
                    let _ = out.write_all(&b);
                }
                Line::Flush(done) => waiting.push(done),
            }
            next = rx.try_recv().ok();
        }
        let _ = out.flush();
        for done in waiting {
            let _ = done.send(());
        }
    }
}

impl Write for BatchedStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // A full queue blocks the logging thread: lines are never dropped.
        self.tx
            .send(Line::Bytes(buf.to_vec()))
            .map_err(|_| std::io::Error::other("log writer stopped"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Waits (at most a second) until every line logged so far is written; called before the
/// process exits on its own.
pub fn flush() {
    if let Some(tx) = WRITER.get() {
        let (done_tx, done_rx) = mpsc::sync_channel(1);
        if tx.send(Line::Flush(done_tx)).is_ok() {
            let _ = done_rx.recv_timeout(std::time::Duration::from_secs(1));
        }
    }
}

/// Keeps secrets out of debug output (SPEC §3). At `debug`/`trace` Pingora dumps whole request
/// headers (`pingora_proxy` "Request header: …", `proxy_h1` "Sending header to upstream …",
/// the h1 client "Writing request header …"), which would print the IdP's bearer token and the
/// upstream credential. A message from another crate that mentions an Authorization header or
/// holds a gate token is replaced by a note; the gate's own messages never carry either.
struct NoSecrets(env_logger::Logger);

const WITHHELD: &str = "[message withheld: it contained an Authorization header or a token]";

fn may_hold_a_secret(record: &log::Record<'_>) -> bool {
    if record.target().starts_with("scim_gate") || record.target() == "access" {
        return false;
    }
    let text = record.args().to_string().to_ascii_lowercase();
    text.contains("authorization") || text.contains(secret::PREFIX)
}

impl log::Log for NoSecrets {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        self.0.enabled(metadata)
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.0.enabled(record.metadata()) {
            return;
        }
        if may_hold_a_secret(record) {
            self.0.log(
                &log::Record::builder()
                    .args(format_args!("{WITHHELD}"))
                    .level(record.level())
                    .target(record.target())
                    .module_path(record.module_path())
                    .file(record.file())
                    .line(record.line())
                    .build(),
            );
        } else {
            self.0.log(record);
        }
    }

    fn flush(&self) {
        self.0.flush();
    }
}
