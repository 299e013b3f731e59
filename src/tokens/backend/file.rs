//! The token file as the source of the token state (docs/token-file.md): the default backend.
//!
//! A change takes in a pending hand edit first (so it never overwrites one), then writes the
//! whole file atomically, appends its audit event (putting the previous file back if that
//! fails), and publishes the new set. The watcher (`tokens::watch`) follows hand edits.
//! Revisions count the states this process published: one per change or reload.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{Backend, Committed, EditFn, Propagation};
use crate::audit::{AuditEvent, AuditKind, AuditLog};
use crate::metrics;
use crate::tokens::file::{self, TokenFileError, TokenRecord};
use crate::tokens::{release_freed_memory, watch, StoreError, TokenSet, TokenStore};

/// What the writer lock guards: the fingerprint of the file as the gate last read or wrote
/// it, so a watcher event caused by the gate's own write is recognised and not applied twice.
/// (A fingerprint, not the bytes: a million-token file is 230 MB.)
struct WriterState {
    last_digest: Option<Fingerprint>,
    /// The fingerprint of the last invalid file, so one bad edit is logged and counted once,
    /// not on every poll or watcher event until it is fixed.
    last_failed: Option<Fingerprint>,
}

/// Length and a 64-bit word-wise multiply-xor hash of the file's bytes: enough to tell "the
/// same file" from "an edit" (each step is a bijection, so a change confined to one 8-byte word
/// always changes the hash; the file is the operator's, not an adversary's). SipHash or SHA-256
/// of a 25 MB file took a fifth of a 100 000-token reload; this runs at memory speed.
type Fingerprint = (usize, u64);

fn fingerprint(bytes: &[u8]) -> Fingerprint {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        h = (h ^ u64::from_le_bytes(b)).wrapping_mul(PRIME);
    }
    for &b in words.remainder() {
        h = (h ^ u64::from(b)).wrapping_mul(PRIME);
    }
    (bytes.len(), h)
}

/// The token file backend; without a path, an in-memory set (tests, embedding without a file).
pub struct FileBackend {
    path: Option<PathBuf>,
    max_per_idp: usize,
    writer: Mutex<WriterState>,
    audit: Option<Arc<AuditLog>>,
}

impl FileBackend {
    /// Reads the token file (creating an empty one if it does not exist). An invalid file at
    /// start is an error: the gate must not start with a set the operator did not intend.
    pub fn open(
        path: &Path,
        max_per_idp: usize,
        audit: Option<Arc<AuditLog>>,
    ) -> Result<(FileBackend, Vec<TokenRecord>), TokenFileError> {
        let (records, bytes) = match std::fs::read(path) {
            Ok(bytes) => (file::parse(&bytes, max_per_idp)?, bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let bytes = file::render(&[]);
                file::write_atomic(path, &bytes)?;
                (Vec::new(), bytes)
            }
            Err(e) => return Err(TokenFileError::Io(path.display().to_string(), e)),
        };
        let backend = FileBackend {
            path: Some(path.to_path_buf()),
            max_per_idp,
            writer: Mutex::new(WriterState {
                last_digest: Some(fingerprint(&bytes)),
                last_failed: None,
            }),
            audit,
        };
        Ok((backend, records))
    }

    /// A backend with no file: changes live in memory only.
    pub fn in_memory(max_per_idp: usize) -> FileBackend {
        FileBackend {
            path: None,
            max_per_idp,
            writer: Mutex::new(WriterState {
                last_digest: None,
                last_failed: None,
            }),
            audit: None,
        }
    }

    /// The token file, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Re-reads the file after a change on disk. Unchanged bytes (including the gate's own last
    /// write) are a no-op; an invalid file keeps the previous set, logs why and counts an error.
    pub fn reload(&self, store: &TokenStore) -> Result<bool, TokenFileError> {
        let mut w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        self.reload_locked(store, &mut w)
    }

    fn reload_locked(
        &self,
        store: &TokenStore,
        w: &mut WriterState,
    ) -> Result<bool, TokenFileError> {
        let Some(path) = &self.path else {
            return Ok(false);
        };
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                let err = TokenFileError::Io(path.display().to_string(), e);
                return Err(self.reload_failed(path, w, None, err));
            }
        };
        let digest = fingerprint(&bytes);
        if w.last_digest == Some(digest) {
            return Ok(false);
        }
        let old = store.snapshot();
        // An editor that truncates and rewrites in place can be caught between the two; an
        // empty file never removes every token (`tokens: []` says so explicitly).
        if !old.is_empty() && bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(self.reload_failed(path, w, Some(digest), TokenFileError::Empty));
        }
        let records = match file::parse(&bytes, self.max_per_idp) {
            Ok(r) => r,
            Err(e) => return Err(self.reload_failed(path, w, Some(digest), e)),
        };
        drop(bytes);
        w.last_failed = None;
        let changes = super::super::diff(&old, &records);
        drop(old);
        store.publish_next(TokenSet::build(&records));
        w.last_digest = Some(digest);
        release_freed_memory(records.len());
        metrics::TOKEN_RELOADS.with_label_values(&["ok"]).inc();
        log::info!("token file {} reloaded: {}", path.display(), changes);
        if let Some(audit) = &self.audit {
            let mut ev = AuditEvent::new(AuditKind::TokensReloaded);
            ev.changes = Some(changes);
            if let Err(e) = audit.append(&ev) {
                log::error!("{e}");
            }
        }
        Ok(true)
    }

    /// Logs and counts a failed reload once per distinct bad file content.
    fn reload_failed(
        &self,
        path: &Path,
        w: &mut WriterState,
        digest: Option<Fingerprint>,
        e: TokenFileError,
    ) -> TokenFileError {
        if digest.is_none() || w.last_failed != digest {
            metrics::TOKEN_RELOADS.with_label_values(&["error"]).inc();
            log::error!(
                "token file {} not reloaded, previous tokens stay in force: {e}",
                path.display()
            );
        }
        if digest.is_some() {
            w.last_failed = digest;
        }
        e
    }

    /// The commit, synchronous: the file write and the audit append fsync.
    fn commit_blocking(
        &self,
        store: &TokenStore,
        edit: &mut EditFn<'_>,
    ) -> Result<Committed, StoreError> {
        let mut w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        // An operator's hand edit that the watcher has not picked up yet must not be
        // overwritten: take it in first (or refuse while the file is broken).
        self.reload_locked(store, &mut w)
            .map_err(StoreError::FileInvalid)?;
        let old = store.snapshot();
        let done = edit(&old)?;
        file::validate(&done.records, self.max_per_idp)
            .map_err(|e| StoreError::BadRequest(e.to_string()))?;
        if let Some(path) = &self.path {
            let bytes = file::render(&done.records);
            file::write_atomic(path, &bytes).map_err(|e| StoreError::Persist(e.to_string()))?;
            if let (Some(audit), Some(event)) = (&self.audit, &done.event) {
                if let Err(e) = audit.append(event) {
                    // Keep file and memory in agreement: put the previous state back (the file
                    // matched it: it was taken in just above).
                    let previous = file::render(&old.records());
                    match file::write_atomic(path, &previous) {
                        Ok(()) => w.last_digest = Some(fingerprint(&previous)),
                        Err(e2) => {
                            log::error!("cannot restore token file after audit failure: {e2}")
                        }
                    }
                    return Err(StoreError::Persist(e.to_string()));
                }
            }
            w.last_digest = Some(fingerprint(&bytes));
        }
        let revision = store.publish_next(TokenSet::build(&done.records));
        Ok(Committed {
            changed: done.changed,
            propagation: Propagation {
                revision,
                ..Propagation::default()
            },
        })
    }

    fn flush_blocking(&self, store: &TokenStore) -> Result<bool, StoreError> {
        let Some(path) = &self.path else {
            return Ok(false);
        };
        let mut w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        self.reload_locked(store, &mut w)
            .map_err(StoreError::FileInvalid)?;
        let set = store.snapshot();
        if !set.take_used_mark() {
            return Ok(false);
        }
        let bytes = file::render(&set.records());
        if let Err(e) = file::write_atomic(path, &bytes) {
            set.mark_used(); // try again next time
            return Err(StoreError::Persist(e.to_string()));
        }
        w.last_digest = Some(fingerprint(&bytes));
        Ok(true)
    }
}

#[async_trait]
impl Backend for FileBackend {
    fn name(&self) -> &'static str {
        "file"
    }

    async fn commit(
        &self,
        store: &TokenStore,
        edit: &mut EditFn<'_>,
    ) -> Result<Committed, StoreError> {
        blocking(|| self.commit_blocking(store, edit))
    }

    /// Starts the watcher thread for hand edits (nothing to follow without a file).
    async fn follow(self: Arc<Self>, store: Arc<TokenStore>) {
        if self.path.is_some() {
            if let Err(e) = watch::spawn(self.clone(), store) {
                log::error!("cannot watch the token file, hand edits need a restart: {e}");
            }
        }
    }

    async fn flush_last_used(&self, store: &TokenStore) -> Result<bool, StoreError> {
        blocking(|| self.flush_blocking(store))
    }
}

/// Runs file I/O that fsyncs (a change, a last-use flush) without stalling the other tasks of
/// the worker thread — the OAuth token endpoint commits from the proxy's runtime. Tokio can
/// only hand a worker's tasks to another thread on a multi-threaded runtime; on a
/// current-thread one (unit tests) the work simply runs inline.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::{test_record, Idp};

    #[test]
    fn the_file_fingerprint_sees_every_one_byte_edit() {
        let base = file::render(&[test_record("tok_a", "acme", Idp::Okta, "a")]);
        let f = fingerprint(&base);
        for i in 0..base.len() {
            let mut edited = base.clone();
            edited[i] ^= 0x20;
            assert_ne!(fingerprint(&edited), f, "byte {i}");
        }
        assert_eq!(fingerprint(&base), f);
    }
}
