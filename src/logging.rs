//! Process logging: `RUST_LOG` selects the level (default `info`), and no secret reaches a log
//! line even at `trace`.

use std::io::Write;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::tokens::secret;

/// Installs the process logger: env_logger (`RUST_LOG`, default `info`) behind `NoSecrets`,
/// writing through `BatchedStderr`.
pub fn init() {
    let env = env_logger::Env::default().default_filter_or("info");
    let logger = env_logger::Builder::from_env(env)
        .format_timestamp_millis()
        // No colour codes: the output is a pipe or file, and stripping them cost more than
        // the gate's own checks in the load benchmark's profile.
        .write_style(env_logger::WriteStyle::Never)
        .target(env_logger::Target::Pipe(Box::new(BatchedStderr::start())))
        .build();
    let max = logger.filter();
    // A second init (tests calling in-process) is harmless.
    if log::set_boxed_logger(Box::new(NoSecrets(logger))).is_ok() {
        log::set_max_level(max);
    }
}

/// Lines waiting for the writer thread.
static PENDING: Mutex<Vec<u8>> = Mutex::new(Vec::new());
static WRITER: OnceLock<()> = OnceLock::new();
/// How often the writer thread writes what has queued up.
const TICK: Duration = Duration::from_millis(5);
/// A queue this large is written by the logging thread itself (bounds memory under a flood).
const MAX_PENDING: usize = 1 << 20;

/// The access log writes a line per request. env_logger's own stderr target makes a `write(2)`
/// per line from each worker thread, and waking a writer thread per line costs a futex wake
/// and a context switch each: either halved the gate's throughput in the load benchmark.
/// Lines are appended to a buffer under an uncontended lock instead, and one thread writes
/// the buffer every few milliseconds — one syscall per burst, a line late by 5 ms at most.
struct BatchedStderr;

impl BatchedStderr {
    fn start() -> BatchedStderr {
        WRITER.get_or_init(|| {
            let spawned = std::thread::Builder::new()
                .name("log-writer".into())
                .spawn(|| loop {
                    std::thread::sleep(TICK);
                    flush();
                });
            if let Err(e) = spawned {
                eprintln!("scim-gate: cannot start the log writer, logging directly: {e}");
            }
        });
        BatchedStderr
    }
}

fn take_pending() -> Vec<u8> {
    let mut pending = PENDING.lock().unwrap_or_else(|p| p.into_inner());
    std::mem::take(&mut *pending)
}

impl Write for BatchedStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let full = {
            let mut pending = PENDING.lock().unwrap_or_else(|p| p.into_inner());
            pending.extend_from_slice(buf);
            pending.len() >= MAX_PENDING
        };
        if full {
            flush();
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes every line logged so far; the writer thread calls it on each tick, and the process
/// calls it before exiting on its own.
pub fn flush() {
    // Taking the stderr lock first keeps batches in order when two flushes race.
    let mut err = std::io::stderr().lock();
    let lines = take_pending();
    if !lines.is_empty() {
        let _ = err.write_all(&lines);
        let _ = err.flush();
    }
}

/// Keeps secrets out of debug output (docs/operations.md#logging). At `debug`/`trace` Pingora dumps whole request
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
