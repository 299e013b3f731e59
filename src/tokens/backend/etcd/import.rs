//! `scim-gate tokens import --from FILE`: a token file's records copied into etcd with their
//! ids and hashes, so IdPs change nothing when an operator moves to cluster mode.

use etcd_client::{Compare, CompareOp, GetOptions, Txn, TxnOp};

use super::{call, conn::Connections, decode_record, encode_record, Keys};
use crate::audit::{AuditEvent, AuditKind};
use crate::config::EtcdConfig;
use crate::tokens::{file, StoreError, TokenRecord};

/// Records per transaction (see [`import`]).
const IMPORT_CHUNK: usize = 120;

/// What an import did.
#[derive(Debug)]
pub struct Imported {
    /// Records written.
    pub count: usize,
    /// The revision they were committed at.
    pub revision: u64,
}

/// Copies `records` into etcd in one transaction; refuses (changing nothing) when an id
/// already exists there or the result would break `max_per_idp`. Replicas pick the records
/// up through their watch like any change.
pub async fn import(
    cfg: &EtcdConfig,
    max_per_idp: usize,
    records: &[TokenRecord],
) -> Result<Imported, StoreError> {
    let keys = Keys::new(&cfg.prefix);
    let mut client = Connections::new(cfg).connect().await?;
    let existing = call(
        "read the tokens",
        client.get(keys.tokens(), Some(GetOptions::new().with_prefix())),
    )
    .await?;
    let mut all: Vec<TokenRecord> = Vec::new();
    for kv in existing.kvs() {
        all.push(decode_record(kv).map_err(StoreError::Unavailable)?);
    }
    let taken: Vec<&str> = records
        .iter()
        .filter(|r| all.iter().any(|e| e.id == r.id))
        .map(|r| r.id.as_str())
        .collect();
    if !taken.is_empty() {
        return Err(StoreError::BadRequest(format!(
            "these ids already exist in etcd, nothing was imported: {}",
            taken.join(", ")
        )));
    }
    all.extend(records.iter().cloned());
    file::validate(&all, max_per_idp).map_err(|e| StoreError::BadRequest(e.to_string()))?;
    let mut seen = existing.header().map_or(0, |h| h.revision());
    // etcd allows 128 operations per transaction by default (`--max-txn-ops`): one
    // transaction per 120 records, each still a compare-and-swap on the generation.
    let mut done = 0;
    for chunk in records.chunks(IMPORT_CHUNK) {
        let mut when = vec![Compare::mod_revision(
            keys.generation(),
            CompareOp::Less,
            seen + 1,
        )];
        let mut ops = Vec::with_capacity(chunk.len() + 2);
        for r in chunk {
            when.push(Compare::create_revision(
                keys.token(&r.id),
                CompareOp::Equal,
                0,
            ));
            ops.push(TxnOp::put(keys.token(&r.id), encode_record(r)?, None));
        }
        ops.push(TxnOp::put(keys.generation(), seen.to_string(), None));
        let mut ev = AuditEvent::new(AuditKind::TokensImported);
        ev.changes = Some(serde_json::json!({
            "added": chunk.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            "counts": {"added": chunk.len()},
        }));
        // SAFETY: geteuid has no preconditions and cannot fail.
        ev.uid = Some(unsafe { libc::geteuid() });
        let value = serde_json::to_vec(&ev).map_err(|e| StoreError::Persist(e.to_string()))?;
        ops.push(TxnOp::put(keys.audit_event(ev.time, "import"), value, None));
        let resp = call("import", client.txn(Txn::new().when(when).and_then(ops))).await?;
        if !resp.succeeded() {
            return Err(StoreError::Unavailable(format!(
                "the token state changed during the import; {} of {} records were imported before it, run the import again with the rest",
                done,
                records.len()
            )));
        }
        seen = resp.header().map_or(0, |h| h.revision());
        done += chunk.len();
    }
    Ok(Imported {
        count: records.len(),
        revision: seen as u64,
    })
}
