//! The deviation catalogue of `dialect.rs` and the table of `docs/scim-checks.md` are one list:
//! each row's id and its three outcomes must match [`Deviation::verdict`], in order.

use super::super::dialect::{Deviation, Verdict};
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
fn ids_are_unique_and_strict_refuses_only_what_it_can_name() {
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
