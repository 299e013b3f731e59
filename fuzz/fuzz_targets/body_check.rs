//! Arbitrary bytes as the body of a PATCH, POST or PUT on /Users or /Groups, or of a /Bulk
//! request, through `Policy::prepare`/`prepare_bulk` and `Prepared::finish` with the default
//! policy (all three dialects, with and without token domains). Must never panic; a rewritten
//! body must itself be JSON that passes the same checks.
#![no_main]

use std::collections::HashMap;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use scim_gate::scim::{Dialect, Policy, PolicySpec, Request, Resource, WriteMethod};
use serde_json::json;

fn policies() -> &'static [Policy; 3] {
    static P: OnceLock<[Policy; 3]> = OnceLock::new();
    P.get_or_init(|| {
        [Dialect::Normalize, Dialect::Tolerate, Dialect::Strict].map(|dialect| {
            Policy::compile(&PolicySpec {
                dialect,
                ..PolicySpec::default()
            })
            .expect("default policy")
        })
    })
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks the request, the rest is the body.
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let p = &policies()[usize::from(sel % 3)];
    let domains = if sel & 0x80 != 0 {
        vec!["acme.com".to_string()]
    } else {
        vec![]
    };
    let resource = if sel & 0x40 != 0 {
        Resource::Groups
    } else {
        Resource::Users
    };
    let method = match (sel >> 3) % 4 {
        0 => WriteMethod::Post,
        1 => WriteMethod::Put,
        _ => WriteMethod::Patch,
    };
    let bulk = (sel >> 3) % 4 == 3 && sel & 0x04 != 0;
    let prepared = if bulk {
        p.prepare_bulk(body, &domains)
    } else {
        p.prepare(&Request {
            resource,
            method,
            id: Some("id1"),
            body,
            domains: &domains,
        })
    };
    let Ok(prepared) = prepared else {
        return;
    };
    // A current resource for every PUT: a plain user or group, or nothing (404).
    let mut current = HashMap::new();
    if sel & 0x02 == 0 {
        for (r, id) in prepared.needs() {
            let v = match r {
                Resource::Users => {
                    json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "id": id, "userName": "a@acme.com", "title": "t", "active": true,
                    "name": {"givenName": "A", "familyName": "B"},
                    "emails": [{"value": "a@acme.com", "type": "work"}]})
                }
                Resource::Groups => {
                    json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                    "id": id, "displayName": "G", "members": [{"value": "m1"}]})
                }
            };
            current.insert((*r, id.clone()), v);
        }
    }
    if let Ok(checked) = prepared.finish(&current) {
        if let Some(rewritten) = checked.body {
            // A normalised body is JSON, and normalising it again changes nothing.
            let v: serde_json::Value =
                serde_json::from_slice(&rewritten).expect("rewritten body is JSON");
            assert!(v.is_object());
            let again = if bulk {
                p.prepare_bulk(&rewritten, &domains)
            } else {
                p.prepare(&Request {
                    resource,
                    method,
                    id: Some("id1"),
                    body: &rewritten,
                    domains: &domains,
                })
            };
            let again = again.expect("a normalised body passes phase one again");
            let again = again.finish(&current).expect("and phase two");
            assert_eq!(again.body, None, "normalising is idempotent");
        }
    }
});
