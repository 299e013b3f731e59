//! Filter parser: RFC 7644 §3.4.2.2 examples, precedence, literals, errors.

use super::super::filter::{
    parse_filter, parse_filter_limited, AttrPath, CompareOp, Filter, Literal,
};

fn f(s: &str) -> Filter {
    match parse_filter(s) {
        Ok(f) => f,
        Err(e) => panic!("'{s}' should parse: {e}"),
    }
}

fn cmp(a: &str, op: CompareOp, v: Literal) -> Filter {
    Filter::Compare {
        path: AttrPath {
            urn: None,
            attr: a.into(),
            sub: None,
        },
        op,
        value: v,
    }
}

#[test]
fn rfc7644_examples_parse() {
    // Every example filter of RFC 7644 §3.4.2.2.
    for s in [
        r#"userName eq "bjensen""#,
        r#"name.familyName co "O'Malley""#,
        r#"userName sw "J""#,
        r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J""#,
        "title pr",
        r#"meta.lastModified gt "2011-05-13T04:42:34Z""#,
        r#"meta.lastModified ge "2011-05-13T04:42:34Z""#,
        r#"meta.lastModified lt "2011-05-13T04:42:34Z""#,
        r#"meta.lastModified le "2011-05-13T04:42:34Z""#,
        r#"title pr and userType eq "Employee""#,
        r#"title pr or userType eq "Intern""#,
        r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#,
        r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#,
        r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#,
        r#"userType eq "Employee" and (emails.type eq "work")"#,
        r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#,
        r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
    ] {
        let parsed = f(s);
        assert_eq!(f(&parsed.to_string()), parsed, "round trip of '{s}'");
    }
}

#[test]
fn urn_attribute_path() {
    let x = f(r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "x""#);
    let Filter::Compare { path, .. } = x else {
        panic!("expected a comparison")
    };
    assert_eq!(
        path.urn.as_deref(),
        Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User")
    );
    assert_eq!(path.attr, "manager");
    assert_eq!(path.sub.as_deref(), Some("value"));
}

#[test]
fn precedence_not_and_or() {
    // a or b and c  ==  a or (b and c)
    let x = f("a pr or b pr and c pr");
    let Filter::Or(operands) = x else {
        panic!("or must bind loosest")
    };
    assert_eq!(operands.len(), 2);
    assert!(matches!(operands[1], Filter::And(..)));
    // (a or b) and c
    let x = f("(a pr or b pr) and c pr");
    assert!(matches!(x, Filter::And(..)));
    // a chain is one flat node, in order
    let x = f("a pr and b pr and c pr");
    let Filter::And(operands) = x else {
        panic!("expected and")
    };
    let names: Vec<_> = operands
        .iter()
        .map(|o| match o {
            Filter::Present(p) => p.attr.as_str(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(names, ["a", "b", "c"]);
    // a bracketed chain on the right stays its own node; on the left it is the same chain
    let x = f("a pr and (b pr and c pr)");
    let Filter::And(operands) = x else {
        panic!("expected and")
    };
    assert_eq!(operands.len(), 2);
    assert!(matches!(&operands[1], Filter::And(inner) if inner.len() == 2));
    assert_eq!(
        x_to_string("a pr and (b pr and c pr)"),
        "a pr and (b pr and c pr)"
    );
    assert_eq!(f("(a pr and b pr) and c pr"), f("a pr and b pr and c pr"));
    assert!(matches!(f("not (a pr) and b pr"), Filter::And(..)));
}

#[test]
fn display_keeps_needed_parentheses() {
    assert_eq!(
        f("(a pr or b pr) and c pr").to_string(),
        "(a pr or b pr) and c pr"
    );
    assert_eq!(
        f("a pr or (b pr or c pr)").to_string(),
        "a pr or (b pr or c pr)"
    );
    assert_eq!(
        f("(a pr or b pr) or c pr").to_string(),
        "a pr or b pr or c pr"
    );
    assert_eq!(f("NOT(a pr)").to_string(), "not (a pr)");
}

#[test]
fn literals_and_case() {
    assert_eq!(f("a EQ TRUE"), cmp("a", CompareOp::Eq, Literal::True));
    assert_eq!(f("a ne null"), cmp("a", CompareOp::Ne, Literal::Null));
    assert_eq!(
        f("a gt -1.5e3"),
        cmp("a", CompareOp::Gt, Literal::Number("-1.5e3".into()))
    );
    assert_eq!(
        f(r#"a eq "x\"y\\z\u00e9\n""#),
        cmp(
            "a",
            CompareOp::Eq,
            Literal::String("x\"y\\z\u{e9}\n".into())
        )
    );
    assert_eq!(f(r#"a eq "x\"y""#).to_string(), r#"a eq "x\"y""#);
}

#[test]
fn lenient_whitespace() {
    assert_eq!(f("  a   eq\t\"x\"  "), f(r#"a eq "x""#));
    assert_eq!(f("( a pr )"), f("a pr"));
}

#[test]
fn malformed_filters_are_errors() {
    for bad in [
        "",
        "a",
        "a eq",
        "a eq x",
        "a xx 1",
        "a eq 01",
        "a eq 1.",
        "a eq -",
        r#"a eq "unterminated"#,
        r#"a eq "bad \q escape""#,
        "a pr and",
        "a pr or or b pr",
        "(a pr",
        "a pr)",
        "not a pr",
        "a[b eq 1",
        "a eq 1 b eq 2",
        r#"a eq "x"and"#,
        "foo:bar eq 1",
        "a.b.c eq 1",
        "a eq 1e",
    ] {
        assert!(parse_filter(bad).is_err(), "'{bad}' should not parse");
    }
}

fn x_to_string(s: &str) -> String {
    f(s).to_string()
}

/// Regression (reliability finding 1): ~100 000 `or` terms fit in a 1 MiB body. The parser
/// built a left-deep tree whose drop recursed once per term and overflowed the stack, aborting
/// the whole gate. Now the term count is bounded, and even without a bound the tree is flat.
#[test]
fn a_long_term_chain_is_bounded_and_never_deep() {
    let chain = |n: usize, kw: &str| {
        (0..n)
            .map(|i| format!("userName eq \"u{i}\""))
            .collect::<Vec<_>>()
            .join(&format!(" {kw} "))
    };
    for kw in ["or", "and"] {
        let long = chain(100_000, kw);
        let e = parse_filter(&long).expect_err("over the default bound");
        assert!(e.too_many_terms, "{e}");
        let e = parse_filter_limited(&chain(11, kw), 10).expect_err("over a bound of 10");
        assert!(e.too_many_terms, "{e}");
        assert!(parse_filter_limited(&chain(10, kw), 10).is_ok());
        // Unbounded, the same input parses into one flat node and drops without recursion.
        let parsed = parse_filter_limited(&long, usize::MAX).expect("parses");
        match &parsed {
            Filter::Or(v) | Filter::And(v) => assert_eq!(v.len(), 100_000),
            other => panic!("expected a flat chain, got {other:?}"),
        }
        drop(parsed);
    }
    // Terms inside brackets and value filters count too.
    let nested = format!("emails[{}]", chain(1001, "or"));
    assert!(parse_filter(&nested).expect_err("bounded").too_many_terms);
    let e = parse_filter("(a pr or b pr) and (c pr or d pr)").map(|_| ());
    assert!(e.is_ok());
    assert!(parse_filter_limited("(a pr or b pr) and (c pr or d pr)", 3).is_err());
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let deep = format!("{}a pr{}", "(".repeat(10_000), ")".repeat(10_000));
    assert!(parse_filter(&deep).is_err());
    let deep_not = format!("{}a pr{}", "not (".repeat(5_000), ")".repeat(5_000));
    assert!(parse_filter(&deep_not).is_err());
}
