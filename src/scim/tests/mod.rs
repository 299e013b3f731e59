//! Tests of the SCIM checks. Helpers build the default policy (`PolicySpec::default`).

mod catalogue;
mod destructive;
mod dialects;
mod filters;
mod fixtures;
mod paths;
mod props;
mod reliability;
mod rules;

use std::collections::HashMap;

use serde_json::{json, Value};

use super::*;

pub(super) const ENT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub(super) const IVANTI: &str = "urn:ietf:params:scim:schemas:extension:ivanti:2.0:User";
pub(super) const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub(super) const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub(super) const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

pub(super) fn policy(dialect: Dialect) -> Policy {
    let spec = PolicySpec {
        dialect,
        ..PolicySpec::default()
    };
    match Policy::compile(&spec) {
        Ok(p) => p,
        Err(e) => panic!("default policy must compile: {e}"),
    }
}

pub(super) fn patch_body(ops: Value) -> Vec<u8> {
    json!({"schemas": [PATCH], "Operations": ops})
        .to_string()
        .into_bytes()
}

/// Run phase one and, for a PUT, phase two with `current`.
pub(super) fn run(
    p: &Policy,
    resource: Resource,
    method: WriteMethod,
    body: &[u8],
    domains: &[String],
    current: Option<Value>,
) -> Result<Checked, Rejection> {
    let req = Request {
        resource,
        method,
        id: Some("id1"),
        body,
        domains,
    };
    let prepared = p.prepare(&req)?;
    let mut map = HashMap::new();
    if let Some(c) = current {
        for need in prepared.needs() {
            map.insert(need.clone(), c.clone());
        }
    }
    prepared.finish(&map)
}

pub(super) fn patch_users(p: &Policy, ops: Value) -> Result<Checked, Rejection> {
    run(
        p,
        Resource::Users,
        WriteMethod::Patch,
        &patch_body(ops),
        &[],
        None,
    )
}

pub(super) fn patch_groups(p: &Policy, ops: Value) -> Result<Checked, Rejection> {
    run(
        p,
        Resource::Groups,
        WriteMethod::Patch,
        &patch_body(ops),
        &[],
        None,
    )
}

pub(super) fn post_user(p: &Policy, body: Value) -> Result<Checked, Rejection> {
    run(
        p,
        Resource::Users,
        WriteMethod::Post,
        body.to_string().as_bytes(),
        &[],
        None,
    )
}

/// The reason label of a rejection, or "pass".
pub(super) fn outcome(r: &Result<Checked, Rejection>) -> String {
    match r {
        Ok(_) => "pass".into(),
        Err(e) => format!("reject:{}", e.reason.label()),
    }
}

/// The rewritten body as JSON (panics when nothing was rewritten: callers expect a rewrite).
pub(super) fn rewritten(r: Result<Checked, Rejection>) -> Value {
    match r {
        Ok(Checked { body: Some(b), .. }) => match serde_json::from_slice(&b) {
            Ok(v) => v,
            Err(e) => panic!("rewritten body is not JSON: {e}"),
        },
        other => panic!("expected a rewritten body, got {other:?}"),
    }
}

pub(super) fn rejection(r: Result<Checked, Rejection>) -> Rejection {
    match r {
        Err(e) => e,
        Ok(c) => panic!("expected a rejection, got {c:?}"),
    }
}
