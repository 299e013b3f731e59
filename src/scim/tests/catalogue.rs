//! The deviation catalogue of `dialect.rs` and the table of `docs/scim-checks.md` are one list:
//! each row's id and its three outcomes must match [`Deviation::verdict`], in order.

use super::super::dialect::{Deviation, Verdict};
use serde_json::json;

use super::*;

const DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/scim-checks.md");

/// The rows of the table under the `<!-- catalogue` marker: (id, [normalize, tolerate, strict]).
fn doc_rows() -> Vec<(String, [String; 3])> {
    let text = match std::fs::read_to_string(DOC) {
        Ok(t) => t,
        Err(e) => panic!("{DOC}: {e}"),
    };
    let Some(start) = text.find("<!-- catalogue") else {
        panic!("{DOC}: no '<!-- catalogue' marker");
    };
    text[start..]
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with('|'))
        .skip(2) // the header and the separator
        .map(|line| {
            let cells: Vec<String> = line
                .trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect();
            assert_eq!(cells.len(), 7, "{DOC}: a row needs 7 cells: {line}");
            (
                cells[0].clone(),
                [cells[4].clone(), cells[5].clone(), cells[6].clone()],
            )
        })
        .collect()
}

fn code_rows() -> Vec<(String, [String; 3])> {
    Deviation::ALL
        .iter()
        .map(|d| {
            let word = |dialect| d.verdict(dialect).word().to_string();
            (
                d.id().to_string(),
                [
                    word(Dialect::Normalize),
                    word(Dialect::Tolerate),
                    word(Dialect::Strict),
                ],
            )
        })
        .collect()
}

#[test]
fn the_docs_table_is_the_catalogue() {
    assert_eq!(doc_rows(), code_rows());
}

#[test]
fn ids_are_unique_and_only_strict_refuses() {
    let mut ids: Vec<&str> = Deviation::ALL.iter().map(|d| d.id()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), Deviation::ALL.len());
    // tolerate never refuses, and normalize refuses nothing either: only strict does.
    for d in Deviation::ALL {
        assert_ne!(d.verdict(Dialect::Tolerate), Verdict::Refuse, "{d:?}");
        assert_ne!(d.verdict(Dialect::Normalize), Verdict::Refuse, "{d:?}");
    }
}

/// The deviations every dialect accepts pass `strict` and are forwarded as sent.
#[test]
fn harmless_deviations_pass_strict_as_sent() {
    let p = policy(Dialect::Strict);
    let untouched = Ok(Checked {
        body: None,
        destructive: 0,
    });
    // padded-path
    let r = patch_users(
        &p,
        json!([{"op": "replace", "path": " displayName\t", "value": "x"}]),
    );
    assert_eq!(r, untouched);
    // single-value-for-multi
    let r = patch_groups(
        &p,
        json!([{"op": "add", "path": "members", "value": {"value": "u1"}}]),
    );
    assert_eq!(r, untouched);
    // nested-schemas, in a no-path value and in an extension object
    let r = patch_users(
        &p,
        json!([{"op": "replace", "value": {"schemas": [USER], "displayName": "x"}}]),
    );
    assert_eq!(r, untouched);
    let body = json!({"schemas": [USER, ENT], "userName": "a", ENT: {"schemas": [ENT], "department": "x"}});
    assert_eq!(post_user(&p, body), untouched);
    // bulk-method-case
    let bulk = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [{"method": "post", "path": "/Users", "bulkId": "b1",
                        "data": {"schemas": [USER], "userName": "a"}}]});
    let r = p.prepare_bulk(bulk.to_string().as_bytes(), &[]);
    assert!(matches!(
        r.map(|x| x.finish(&HashMap::new())),
        Ok(Ok(Checked {
            body: None,
            destructive: 0
        }))
    ));
}
