//! Process logging: `RUST_LOG` selects the level (default `info`), and no secret reaches a log
//! line even at `trace`.

mod scrub;

use std::cell::RefCell;

use log::Log as _;
use std::fmt::Write as _;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

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

/// One thread's lines waiting for the writer thread.
type Pending = Arc<Mutex<Vec<u8>>>;

/// Every thread's [`Pending`] lines, in the order the threads first logged, each with the spare
/// buffer the writer swaps in ([`drain_pending`]). Locked when a thread logs for the first time
/// and on each tick of the writer, never per line.
static THREAD_BUFFERS: Mutex<Vec<(Pending, Vec<u8>)>> = Mutex::new(Vec::new());

thread_local! {
    /// This thread's lines: a line is appended under this thread's own lock, which only the
    /// writer thread's tick ever contends — two workers logging at once share no lock and no
    /// cache line.
    static PENDING: Pending = {
        let mine = Pending::default();
        lock(&THREAD_BUFFERS).push((mine.clone(), Vec::new()));
        mine
    };
}

static WRITER: OnceLock<()> = OnceLock::new();
/// How often the writer thread writes what has queued up.
const TICK: Duration = Duration::from_millis(5);
/// A thread's queue this large is written by that thread itself (bounds memory under a flood).
const MAX_PENDING: usize = 1 << 20;
/// A thread's buffer keeps at most this much room between ticks.
const KEEP_PENDING: usize = 64 * 1024;

/// A lock whose holder panicked still guards plain bytes: take it anyway.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The access log writes a line per request. env_logger's own stderr target makes a `write(2)`
/// per line from each worker thread, and waking a writer thread per line costs a futex wake
/// and a context switch each: either halved the gate's throughput in the load benchmark.
/// Lines are appended to the logging thread's own buffer instead ([`PENDING`]), and one thread
/// writes every buffer every few milliseconds — one syscall per burst, a line late by 5 ms at
/// most, no lock or cache line shared between workers per line.
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

/// Hands every thread's lines so far to `sink`, thread by thread (each thread's in order; lines
/// of different threads within one tick are not interleaved by time — each carries its
/// timestamp). Each thread's buffer is swapped with a spare of the same capacity, so a tick
/// copies and allocates nothing, and a worker's lock is held only for the swap.
fn drain_pending(mut sink: impl FnMut(&[u8])) {
    // A thread that ended left its buffer here alone: written one last time, then dropped.
    lock(&THREAD_BUFFERS).retain_mut(|(pending, spare)| {
        std::mem::swap(&mut *lock(pending), spare);
        if !spare.is_empty() {
            sink(spare);
        }
        spare.clear();
        if spare.capacity() > KEEP_PENDING {
            *spare = Vec::new();
        }
        Arc::strong_count(pending) > 1
    });
}

impl Write for BatchedStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let full = PENDING.try_with(|mine| {
            let mut lines = lock(mine);
            lines.extend_from_slice(buf);
            lines.len() >= MAX_PENDING
        });
        match full {
            Ok(true) => flush(),
            Ok(false) => {}
            // This thread is ending and its buffer is gone: straight to stderr.
            Err(_) => {
                let _ = std::io::stderr().write_all(buf);
            }
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
    drain_pending(|lines| {
        let _ = err.write_all(lines);
    });
    let _ = err.flush();
}

/// Writes one access line (target `access`, level `info`, the layout env_logger gives every
/// other line: `[2026-12-01T18:40:12.513Z INFO  access] …`) straight into the batched writer.
/// The access log writes a line per request; through `log` it was formatted twice (into the
/// scrub buffer, then by env_logger) and scrubbed, about 14 k instructions of a gate GET's 160 k
/// (BENCHMARKS.md). Its fields are the gate's own — ids, bounded labels, numbers — never a
/// client's text, so it needs no scrub. `RUST_LOG` still decides (`access=off` silences it).
pub(crate) fn access(fields: &AccessFields<'_>) {
    if !log::log_enabled!(target: "access", log::Level::Info) {
        return;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let written = ACCESS_LINE.try_with(|line| {
        let Ok(mut line) = line.try_borrow_mut() else {
            return false;
        };
        let AccessLine { second, stamp, buf } = &mut *line;
        // The date and time to the second, formatted once a second per thread.
        if *second != now.as_secs() || stamp.is_empty() {
            *second = now.as_secs();
            stamp.clear();
            let t = chrono::DateTime::from_timestamp(now.as_secs() as i64, 0).unwrap_or_default();
            let _ = write!(stamp, "{}", t.format("%Y-%m-%dT%H:%M:%S"));
        }
        buf.clear();
        buf.push('[');
        buf.push_str(stamp);
        buf.push('.');
        push_padded(buf, now.subsec_millis(), 3);
        buf.push_str("Z INFO  access] ");
        fields.push_to(buf);
        buf.push('\n');
        let _ = BatchedStderr.write(buf.as_bytes());
        if buf.capacity() > KEEP_CAPACITY {
            *buf = String::new();
        }
        true
    });
    if written != Ok(true) {
        let mut line = String::new();
        fields.push_to(&mut line);
        log::info!(target: "access", "{line}");
    }
}

/// The fields of one access line (docs/operations.md#logging). Written by hand, not through
/// `format_args!`: the line is written once per request, and the formatting machinery (a float
/// among it) cost more than the rest of the line.
pub(crate) struct AccessFields<'a> {
    pub token: &'a str,
    pub tenant: &'a str,
    pub method: &'a str,
    pub route: &'a str,
    /// 0 when no response was written.
    pub status: u16,
    pub upstream_status: Option<u16>,
    pub outcome: &'a str,
    pub limited: &'a str,
    pub duration: Duration,
}

impl AccessFields<'_> {
    /// `token=… tenant=… method=… route=… status=… upstream_status=… outcome=… limited=…
    /// duration_ms=…` (milliseconds with two decimals, rounded).
    fn push_to(&self, out: &mut String) {
        let mut num = itoa::Buffer::new();
        for (key, value) in [
            ("token=", self.token),
            (" tenant=", self.tenant),
            (" method=", self.method),
            (" route=", self.route),
        ] {
            out.push_str(key);
            out.push_str(value);
        }
        out.push_str(" status=");
        out.push_str(num.format(self.status));
        out.push_str(" upstream_status=");
        match self.upstream_status {
            Some(n) => out.push_str(num.format(n)),
            None => out.push('-'),
        }
        for (key, value) in [(" outcome=", self.outcome), (" limited=", self.limited)] {
            out.push_str(key);
            out.push_str(value);
        }
        out.push_str(" duration_ms=");
        let hundredths = (self.duration.as_micros() + 5) / 10;
        out.push_str(num.format(hundredths / 100));
        out.push('.');
        push_padded(out, (hundredths % 100) as u32, 2);
    }
}

/// `n` in decimal, left-padded with zeros to `width` digits.
fn push_padded(out: &mut String, n: u32, width: usize) {
    let mut num = itoa::Buffer::new();
    let digits = num.format(n);
    for _ in digits.len()..width {
        out.push('0');
    }
    out.push_str(digits);
}

/// The per-thread state of [`access`].
#[derive(Default)]
struct AccessLine {
    second: u64,
    stamp: String,
    buf: String,
}

thread_local! {
    static ACCESS_LINE: RefCell<AccessLine> = RefCell::new(AccessLine::default());
}

/// Keeps secrets out of every log line (docs/operations.md#logging). At `debug`/`trace` Pingora dumps
/// whole request heads, and at `error` it names the request line with its query string; an
/// IdP's credential can sit in any of those. Every message, from any crate and at any level, is
/// formatted once and passed through [`scrub::scrub`] before env_logger writes it.
struct NoSecrets(env_logger::Logger);

/// Per-thread buffers for the formatted and the scrubbed message: the access log writes a line
/// per request, and these keep it from allocating two strings each time.
#[derive(Default)]
struct Buffers {
    raw: String,
    clean: String,
}

/// A message longer than this gives its buffers back after use instead of keeping them.
const KEEP_CAPACITY: usize = 16 * 1024;

thread_local! {
    static BUFFERS: RefCell<Buffers> = RefCell::new(Buffers::default());
}

impl NoSecrets {
    fn write_scrubbed(&self, record: &log::Record<'_>, bufs: &mut Buffers) {
        bufs.raw.clear();
        bufs.clean.clear();
        // Formatting into a String only fails if a Display impl does; log what was written.
        let _ = write!(bufs.raw, "{}", record.args());
        scrub::scrub(&bufs.raw, &mut bufs.clean);
        self.0.log(
            &log::Record::builder()
                .args(format_args!("{}", bufs.clean))
                .level(record.level())
                .target(record.target())
                .module_path(record.module_path())
                .file(record.file())
                .line(record.line())
                .build(),
        );
        if bufs.raw.capacity() > KEEP_CAPACITY {
            *bufs = Buffers::default();
        }
    }
}

impl log::Log for NoSecrets {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        self.0.enabled(metadata)
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.0.enabled(record.metadata()) {
            return;
        }
        // A Display impl that logs while being formatted finds the buffers borrowed; it gets
        // fresh ones.
        let done = BUFFERS
            .try_with(|b| match b.try_borrow_mut() {
                Ok(mut bufs) => {
                    self.write_scrubbed(record, &mut bufs);
                    true
                }
                Err(_) => false,
            })
            .unwrap_or(false);
        if !done {
            self.write_scrubbed(record, &mut Buffers::default());
        }
    }

    fn flush(&self) {
        self.0.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taken_lines() -> String {
        let mut all = Vec::new();
        drain_pending(|lines| all.extend_from_slice(lines));
        String::from_utf8(all).expect("utf8")
    }

    #[test]
    fn lines_of_every_thread_are_taken_in_each_threads_order_and_ended_threads_let_go() {
        let write = |tag: &'static str| {
            std::thread::spawn(move || {
                for i in 0..3 {
                    let _ = BatchedStderr.write(format!("{tag}-{i}\n").as_bytes());
                }
                PENDING.with(Arc::downgrade)
            })
        };
        let threads = [write("batched-a"), write("batched-b")];
        let buffers: Vec<_> = threads
            .into_iter()
            .map(|t| t.join().expect("writer thread"))
            .collect();
        let taken = taken_lines();
        for tag in ["batched-a", "batched-b"] {
            let at: Vec<usize> = (0..3)
                .map(|i| taken.find(&format!("{tag}-{i}\n")).expect("line taken"))
                .collect();
            assert!(
                at.windows(2).all(|w| w[0] < w[1]),
                "{tag} in order: {taken}"
            );
        }
        // Both threads ended: their buffers were written one last time and dropped.
        assert!(buffers.iter().all(|b| b.upgrade().is_none()));
        assert!(!taken_lines().contains("batched-"));
    }

    #[test]
    fn the_access_fields_read_as_before() {
        let mut line = String::new();
        AccessFields {
            token: "tok_1",
            tenant: "acme",
            method: "GET",
            route: "Users",
            status: 200,
            upstream_status: None,
            outcome: "forwarded",
            limited: "-",
            duration: Duration::from_micros(1_235),
        }
        .push_to(&mut line);
        assert_eq!(
            line,
            "token=tok_1 tenant=acme method=GET route=Users status=200 upstream_status=- \
             outcome=forwarded limited=- duration_ms=1.24"
        );
        line.clear();
        AccessFields {
            token: "-",
            tenant: "-",
            method: "PATCH",
            route: "none",
            status: 0,
            upstream_status: Some(502),
            outcome: "upstream_error",
            limited: "rate",
            duration: Duration::from_micros(12_345_004),
        }
        .push_to(&mut line);
        assert!(line.ends_with("status=0 upstream_status=502 outcome=upstream_error limited=rate duration_ms=12345.00"), "{line}");
    }
}
