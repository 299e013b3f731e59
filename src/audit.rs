//! The audit trail (docs/metrics.md#audit-log): one JSON object per line, append-only, fsynced before the admin
//! call that caused it answers. It names token ids, tenants and IdPs — never a secret.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// One line of the audit file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    #[serde(serialize_with = "rfc3339")]
    pub time: DateTime<Utc>,
    pub event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp: Option<String>,
    /// The admin peer's uid; absent for events the gate raises itself (expiry, file reloads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// For `tokens.reloaded`: `{"added":[ids],"removed":[ids],"changed":[ids]}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<serde_json::Value>,
    /// For a refresh, deactivation or deletion: the OAuth access tokens it revoked, when any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_access_tokens: Option<usize>,
}

fn rfc3339<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// Every event the audit trail can hold (docs/metrics.md#audit-log). The name written to the
/// file is [`AuditKind::name`]; the enum keeps a new event from being spelled two ways.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditKind {
    /// An admin created a token.
    TokenCreated,
    /// An admin refreshed a token: its previous secret stopped working.
    TokenRefreshed,
    /// An admin activated a token.
    TokenActivated,
    /// An admin deactivated a token.
    TokenDeactivated,
    /// An admin deleted a token.
    TokenDeleted,
    /// A token's expiry passed while the gate ran.
    TokenExpired,
    /// A valid edit of the token file was taken in.
    TokensReloaded,
    /// A token's destructive-change breaker tripped (`docs/guards.md`).
    GuardTripped,
    /// An admin released a token's breaker.
    GuardReleased,
    /// `scim-gate tokens import` copied a token file's records into etcd.
    TokensImported,
}

impl AuditKind {
    /// The event's name in the audit file and in `GET /audit`.
    pub fn name(self) -> &'static str {
        match self {
            AuditKind::TokenCreated => "token.created",
            AuditKind::TokenRefreshed => "token.refreshed",
            AuditKind::TokenActivated => "token.activated",
            AuditKind::TokenDeactivated => "token.deactivated",
            AuditKind::TokenDeleted => "token.deleted",
            AuditKind::TokenExpired => "token.expired",
            AuditKind::TokensReloaded => "tokens.reloaded",
            AuditKind::GuardTripped => "guard.tripped",
            AuditKind::GuardReleased => "guard.released",
            AuditKind::TokensImported => "tokens.imported",
        }
    }
}

impl AuditEvent {
    /// A new event of `kind`, stamped now; the caller fills in the token and the peer.
    pub fn new(kind: AuditKind) -> AuditEvent {
        // Millisecond precision, as written: `since=` an event's own time then finds that event.
        let now = Utc::now();
        let time = chrono::DurationRound::duration_trunc(now, chrono::Duration::milliseconds(1))
            .unwrap_or(now);
        AuditEvent {
            time,
            event: kind.name().to_string(),
            token_id: None,
            tenant: None,
            idp: None,
            uid: None,
            changes: None,
            revoked_access_tokens: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// The open audit file. Appends are serialised by a mutex: they happen on admin calls and token
/// events, never on the request path.
pub struct AuditLog {
    path: PathBuf,
    file: Mutex<File>,
}

impl AuditLog {
    pub fn open(path: &Path) -> Result<AuditLog, AuditError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| AuditError::Io {
                path: path.display().to_string(),
                source,
            })?;
        Ok(AuditLog {
            path: path.to_path_buf(),
            file: Mutex::new(file),
        })
    }

    fn io_err(&self, source: std::io::Error) -> AuditError {
        AuditError::Io {
            path: self.path.display().to_string(),
            source,
        }
    }

    /// Appends one event and fsyncs, so "the call answered" implies "the event is on disk".
    pub fn append(&self, event: &AuditEvent) -> Result<(), AuditError> {
        let mut line = serde_json::to_vec(event).map_err(|e| self.io_err(e.into()))?;
        line.push(b'\n');
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        f.write_all(&line).map_err(|e| self.io_err(e))?;
        f.sync_data().map_err(|e| self.io_err(e))
    }

    /// Events at or after `since`, oldest first. Lines that do not parse (a hand edit, a torn
    /// last line after a crash) are skipped with a warning rather than hiding the rest.
    pub fn read_since(&self, since: Option<DateTime<Utc>>) -> Result<Vec<AuditEvent>, AuditError> {
        let f = File::open(&self.path).map_err(|e| self.io_err(e))?;
        let mut out = Vec::new();
        for (n, line) in BufReader::new(f).lines().enumerate() {
            let line = line.map_err(|e| self.io_err(e))?;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<AuditEvent>(&line) {
                Ok(ev) if since.is_none_or(|s| ev.time >= s) => out.push(ev),
                Ok(_) => {}
                Err(e) => log::warn!(
                    "{}:{}: skipping unreadable audit line: {e}",
                    self.path.display(),
                    n + 1
                ),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_append_and_read_back_filtered_by_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = AuditLog::open(&dir.path().join("audit.jsonl")).expect("open");
        let mut a = AuditEvent::new(AuditKind::TokenCreated);
        a.token_id = Some("tok_1".into());
        a.idp = Some("okta".into());
        a.uid = Some(0);
        log.append(&a).expect("append");
        std::thread::sleep(std::time::Duration::from_millis(5));
        let cut = Utc::now();
        std::thread::sleep(std::time::Duration::from_millis(5));
        let b = AuditEvent::new(AuditKind::TokenDeleted);
        log.append(&b).expect("append");
        let all = log.read_since(None).expect("read");
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].event, "token.created");
        let later = log.read_since(Some(cut)).expect("read");
        assert_eq!(later.len(), 1);
        assert_eq!(later[0].event, "token.deleted");
        let text = std::fs::read_to_string(dir.path().join("audit.jsonl")).expect("read");
        assert!(text
            .lines()
            .next()
            .is_some_and(|l| l.contains("\"idp\":\"okta\"") && l.contains("\"uid\":0")));
    }
}
