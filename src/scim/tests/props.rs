//! Property tests: the parsers never panic, and printing then parsing is the identity on what
//! they accept.

use proptest::prelude::*;

use super::super::filter::parse_filter;
use super::super::path::parse_path;
use super::{ENT, IVANTI, USER};

const KNOWN: &[&str] = &[USER, ENT, IVANTI];

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("emails".to_string()),
        Just("members".to_string()),
        Just("$ref".to_string()),
        "[a-zA-Z][a-zA-Z0-9_-]{0,8}",
    ]
}

fn attr_path() -> impl Strategy<Value = String> {
    (
        prop_oneof![
            Just(String::new()),
            Just(format!("{ENT}:")),
            Just("urn:x:y:".to_string())
        ],
        name(),
        proptest::option::of(name()),
    )
        .prop_map(|(u, a, s)| match s {
            Some(s) => format!("{u}{a}.{s}"),
            None => format!("{u}{a}"),
        })
}

fn literal() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>().prop_map(|s| serde_json::Value::String(s).to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        Just("1.5e-3".to_string()),
        Just("true".to_string()),
        Just("False".to_string()),
        Just("null".to_string()),
    ]
}

fn filter() -> impl Strategy<Value = String> {
    let op = prop_oneof![
        Just("eq"),
        Just("ne"),
        Just("co"),
        Just("sw"),
        Just("ew"),
        Just("gt"),
        Just("lt"),
        Just("ge"),
        Just("le"),
        Just("EQ")
    ];
    let leaf = prop_oneof![
        (attr_path(), op, literal()).prop_map(|(a, o, v)| format!("{a} {o} {v}")),
        attr_path().prop_map(|a| format!("{a} pr")),
    ];
    leaf.prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} and {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a}  OR {b}")),
            inner.clone().prop_map(|a| format!("not ({a})")),
            inner.clone().prop_map(|a| format!("( {a} )")),
            (name(), inner).prop_map(|(n, a)| format!("{n}[{a}]")),
        ]
    })
}

fn patch_path() -> impl Strategy<Value = String> {
    prop_oneof![
        attr_path(),
        (
            prop_oneof![Just(String::new()), Just(format!("{ENT}:"))],
            name(),
            filter(),
            proptest::option::of(name())
        )
            .prop_map(|(u, a, f, s)| match s {
                Some(s) => format!("{u}{a}[{f}].{s}"),
                None => format!("{u}{a}[{f}]"),
            }),
        Just(ENT.to_string()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn filter_parser_never_panics(s in any::<String>()) {
        let _ = parse_filter(&s);
    }

    #[test]
    fn filter_parser_never_panics_on_filter_like_text(s in "[a-z \\[\\]()\"\\\\.:0-9]{0,60}") {
        if let Ok(f) = parse_filter(&s) {
            prop_assert_eq!(parse_filter(&f.to_string()), Ok(f));
        }
    }

    #[test]
    fn path_parser_never_panics(s in any::<String>()) {
        let _ = parse_path(&s, KNOWN);
    }

    #[test]
    fn generated_filters_parse_and_round_trip(s in filter()) {
        let f = parse_filter(&s);
        prop_assert!(f.is_ok(), "{} did not parse: {:?}", s, f);
        if let Ok(f) = f {
            prop_assert_eq!(parse_filter(&f.to_string()), Ok(f));
        }
    }

    #[test]
    fn generated_paths_parse_and_round_trip(s in patch_path()) {
        let p = parse_path(&s, KNOWN);
        prop_assert!(p.is_ok(), "{} did not parse: {:?}", s, p);
        if let Ok(p) = p {
            prop_assert_eq!(parse_path(&p.to_string(), KNOWN), Ok(p));
        }
    }

    #[test]
    fn accepted_arbitrary_paths_round_trip(s in "[a-zA-Z:.\\[\\] \"=0-9]{0,40}") {
        if let Ok(p) = parse_path(&s, KNOWN) {
            prop_assert_eq!(parse_path(&p.to_string(), KNOWN), Ok(p));
        }
    }
}

/// Operations drawn from a pool of RFC-form and deviating shapes (never `add` on a value
/// filter, which normalize deliberately keeps as sent).
fn patch_op() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::json;
    let op = prop_oneof![Just("replace"), Just("Replace"), Just("add"), Just("ADD")];
    let value = prop_oneof![
        Just(json!("x")),
        Just(json!("False")),
        Just(json!(true)),
        Just(json!(null)),
        Just(json!([{"value": "a@b.c", "primary": "True"}])),
        Just(json!({"givenName": "A"})),
    ];
    let key = prop_oneof![
        Just("displayName".to_string()),
        Just("active".to_string()),
        Just("name.givenName".to_string()),
        Just("emails".to_string()),
        Just("id".to_string()),
        Just(format!("{ENT}:department")),
        Just(format!("{IVANTI}:Custom1")),
    ];
    prop_oneof![
        (op.clone(), key.clone(), value.clone())
            .prop_map(|(o, k, v)| json!({"op": o, "path": k, "value": v})),
        (op, proptest::collection::btree_map(key, value, 1..4))
            .prop_map(|(o, m)| json!({"op": o, "value": m})),
        Just(json!({"op": "Remove", "path": "emails", "value": [{"value": "a@b.c"}]})),
        Just(json!({"op": "remove", "path": "emails[type eq \"work\"]"})),
        Just(
            json!({"op": "replace", "path": "emails[type eq \"work\"].primary", "value": "false"})
        ),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever normalize accepts and rewrites, strict accepts as it is: the rewrite produces
    /// RFC form. And no body makes any dialect panic.
    #[test]
    fn normalized_patches_pass_strict(ops in proptest::collection::vec(patch_op(), 1..5)) {
        use super::{patch_users, policy};
        use super::super::{Checked, Dialect};
        let ops = serde_json::Value::Array(ops);
        let _ = patch_users(&policy(Dialect::Tolerate), ops.clone());
        let _ = patch_users(&policy(Dialect::Strict), ops.clone());
        if let Ok(Checked { body: Some(b), .. }) = patch_users(&policy(Dialect::Normalize), ops) {
            let v: serde_json::Value = serde_json::from_slice(&b).unwrap_or_default();
            let again = patch_users(&policy(Dialect::Strict), v["Operations"].clone());
            prop_assert_eq!(again.map(|c| c.body), Ok(None));
        }
    }
}
