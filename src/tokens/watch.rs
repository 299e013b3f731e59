//! Hot reload of the token file.
//!
//! The *folder* is watched, not the file: editors save by writing a new file and renaming it over
//! the old one, and Kubernetes Secret volumes swap a `..data` symlink; both replace the inode a
//! file watch would be attached to. Every event in the folder triggers a reload, which is a no-op
//! when the bytes did not change. A one-second metadata poll backs inotify up (network and
//! overlay filesystems do not always deliver events).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};

use super::backend::file::FileBackend;
use super::TokenStore;

/// How long to wait for an editor's burst of events to settle before reading the file.
const DEBOUNCE: Duration = Duration::from_millis(15);
/// The fallback poll.
const TICK: Duration = Duration::from_millis(500);

/// Starts the watcher thread; it runs for the life of the process.
pub fn spawn(backend: Arc<FileBackend>, store: Arc<TokenStore>) -> std::io::Result<()> {
    let file = backend.path().unwrap_or(Path::new("")).to_path_buf();
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let (tx, rx) = mpsc::channel::<()>();
    let name = file
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(event) = res {
            if concerns(&event, &name) {
                let _ = tx.send(());
            }
        }
    })
    .map_err(std::io::Error::other)?;
    watcher
        .watch(&dir, RecursiveMode::NonRecursive)
        .map_err(std::io::Error::other)?;
    std::thread::Builder::new()
        .name("token-watch".into())
        .spawn(move || {
            let _keep_alive = watcher;
            run(&backend, &store, &file, &rx);
        })?;
    Ok(())
}

/// Whether a folder event can have changed the token file: a write, create, rename or removal
/// or close-after-write of the file itself, or of a `..`-prefixed entry (Kubernetes' `..data`
/// symlink swap). Reads are ignored — the gate's own reload opens the file, and reacting to that
/// would loop.
fn concerns(event: &notify::Event, name: &std::ffi::OsStr) -> bool {
    use notify::event::{AccessKind, AccessMode, EventKind};
    // A close after writing is the moment an in-place edit is complete; every other access
    // (open, read, close after reading) is someone reading, the gate's own reload included.
    if let EventKind::Access(kind) = event.kind {
        if kind != AccessKind::Close(AccessMode::Write) {
            return false;
        }
    }
    event.paths.iter().any(|p| {
        p.file_name()
            .is_some_and(|n| n == name || n.to_string_lossy().starts_with(".."))
    })
}

fn signature(file: &Path) -> Option<(u64, u64, i64, i64)> {
    // Follows symlinks, so a swapped `..data` link changes the inode seen here.
    let m = std::fs::metadata(file).ok()?;
    Some((m.ino(), m.len(), m.mtime(), m.mtime_nsec()))
}

fn run(backend: &FileBackend, store: &TokenStore, file: &Path, rx: &mpsc::Receiver<()>) {
    let mut last_sig = signature(file);
    // An edit between the start-up read and the watch being in place raised no event and
    // already shows in `last_sig`: look once now (a no-op when the bytes are the ones read).
    let _ = backend.reload(store);
    loop {
        let event = match rx.recv_timeout(TICK) {
            Ok(()) => true,
            Err(mpsc::RecvTimeoutError::Timeout) => false,
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        if event {
            std::thread::sleep(DEBOUNCE);
            while rx.try_recv().is_ok() {}
        }
        let sig = signature(file);
        if event || sig != last_sig {
            last_sig = sig;
            // Errors are logged and counted inside; the previous set stays in force.
            let _ = backend.reload(store);
        }
    }
}
