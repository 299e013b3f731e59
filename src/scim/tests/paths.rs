//! PATCH path parser: RFC 7644 §3.5.2 examples, URN prefixes, malformed paths.

use super::super::filter::{AttrPath, CompareOp, Filter, Literal};
use super::super::path::{parse_path, PatchPath};
use super::{ENT, IVANTI, USER};

const KNOWN: &[&str] = &[USER, ENT, IVANTI];

fn p(s: &str) -> PatchPath {
    match parse_path(s, KNOWN) {
        Ok(p) => p,
        Err(e) => panic!("'{s}' should parse: {e}"),
    }
}

fn attr(a: &str) -> AttrPath {
    AttrPath {
        urn: None,
        attr: a.into(),
        sub: None,
    }
}

#[test]
fn plain_and_sub_attribute() {
    let x = p("name.givenName");
    assert_eq!(x.urn, None);
    assert_eq!(x.attr.as_deref(), Some("name"));
    assert_eq!(x.sub.as_deref(), Some("givenName"));
    assert!(x.filter.is_none());
    assert_eq!(p("displayName").attr.as_deref(), Some("displayName"));
}

#[test]
fn rfc7644_examples() {
    // RFC 7644 §3.5.2.1 – §3.5.2.3.
    let x = p(r#"members[value eq "2819c223-7f76-453a-919d-413861904646"]"#);
    assert_eq!(x.attr.as_deref(), Some("members"));
    assert_eq!(
        x.filter,
        Some(Filter::Compare {
            path: attr("value"),
            op: CompareOp::Eq,
            value: Literal::String("2819c223-7f76-453a-919d-413861904646".into())
        })
    );
    let x = p(r#"emails[type eq "work" and value ew "example.com"]"#);
    assert!(matches!(x.filter, Some(Filter::And(..))));
    let x = p(r#"addresses[type eq "work"].streetAddress"#);
    assert_eq!(x.sub.as_deref(), Some("streetAddress"));
    assert!(x.filter.is_some());
    let x = p(r#"members[value eq "2819c223...919d413861904646"].displayName"#);
    assert_eq!(x.sub.as_deref(), Some("displayName"));
    assert_eq!(p("members").attr.as_deref(), Some("members"));
}

#[test]
fn urn_prefix_splits_on_longest_known_urn() {
    let x = p("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value");
    assert_eq!(x.urn.as_deref(), Some(ENT));
    assert_eq!(x.attr.as_deref(), Some("manager"));
    assert_eq!(x.sub.as_deref(), Some("value"));
    // Case-insensitive match, spelling kept.
    let x = p("URN:IETF:params:scim:schemas:extension:ENTERPRISE:2.0:User:department");
    assert_eq!(
        x.urn.as_deref(),
        Some("URN:IETF:params:scim:schemas:extension:ENTERPRISE:2.0:User")
    );
    assert_eq!(x.attr.as_deref(), Some("department"));
    let x = p("urn:ietf:params:scim:schemas:core:2.0:User:name.familyName");
    assert_eq!(x.urn.as_deref(), Some(USER));
    assert_eq!(x.sub.as_deref(), Some("familyName"));
}

#[test]
fn longest_urn_wins_over_a_shorter_prefix() {
    let known = ["urn:a:b", "urn:a:b:c"];
    let x = match parse_path("urn:a:b:c:attr", &known) {
        Ok(x) => x,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(x.urn.as_deref(), Some("urn:a:b:c"));
    assert_eq!(x.attr.as_deref(), Some("attr"));
}

#[test]
fn bare_urn_is_whole_extension() {
    let x = p(ENT);
    assert_eq!(x.urn.as_deref(), Some(ENT));
    assert_eq!(x.attr, None);
    assert_eq!(x.to_string(), ENT);
}

#[test]
fn unknown_urn_splits_at_last_colon() {
    let x = p("urn:ietf:params:scim:schemas:extension:custom:2.0:User:employeeNumber");
    assert_eq!(
        x.urn.as_deref(),
        Some("urn:ietf:params:scim:schemas:extension:custom:2.0:User")
    );
    assert_eq!(x.attr.as_deref(), Some("employeeNumber"));
    let x = p(r#"urn:x:y:emails[value eq "a:b"].value"#);
    assert_eq!(x.urn.as_deref(), Some("urn:x:y"));
    assert_eq!(x.attr.as_deref(), Some("emails"));
}

#[test]
fn whitespace_in_filter_is_lenient() {
    let a = p(r#"emails[ type   eq	"work" ]"#);
    let b = p(r#"emails[type eq "work"]"#);
    assert_eq!(a, b);
}

#[test]
fn display_is_canonical() {
    assert_eq!(
        p(r#"emails[TYPE EQ "work"].value"#).to_string(),
        r#"emails[TYPE eq "work"].value"#
    );
    assert_eq!(
        p(&format!("{ENT}:manager.value")).to_string(),
        format!("{ENT}:manager.value")
    );
}

#[test]
fn malformed_paths_are_errors() {
    for bad in [
        "",
        "   ",
        "name..givenName",
        "name.givenName.x",
        ".name",
        "name.",
        "1abc",
        "emails[",
        "emails[]",
        r#"emails[type eq "work""#,
        r#"emails[type eq "work"]value"#,
        r#"emails[type eq "work"].value.x"#,
        r#"emails[type eq work]"#,
        r#"emails[type zz "work"]"#,
        r#"name.givenName[x eq 1]"#,
        "urn:ietf:params:scim:schemas:core:2.0:User:",
        "urn:x",
        "emails]",
        "a b",
        "emails[type eq \"w\"]]",
    ] {
        assert!(parse_path(bad, KNOWN).is_err(), "'{bad}' should not parse");
    }
}
