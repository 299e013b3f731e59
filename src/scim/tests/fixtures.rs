//! Real request bodies from IdP documentation and issue trackers (tests/fixtures/idp), checked
//! against the default policy under `normalize`.

use serde_json::Value;

use super::*;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/idp");

fn str_field<'v>(f: &'v Value, k: &str, name: &str) -> &'v str {
    match f.get(k).and_then(Value::as_str) {
        Some(s) => s,
        None => panic!("{name}: missing '{k}'"),
    }
}

#[test]
fn every_fixture_meets_its_expectation() {
    let entries = match std::fs::read_dir(DIR) {
        Ok(e) => e,
        Err(e) => panic!("{DIR}: {e}"),
    };
    let p = policy(Dialect::Normalize);
    let mut seen = 0;
    let mut failures = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let name = path.display().to_string();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => panic!("{name}: {e}"),
        };
        let f: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => panic!("{name}: {e}"),
        };
        assert!(
            str_field(&f, "source", &name).starts_with("https://"),
            "{name}: source"
        );
        let resource = match str_field(&f, "path", &name) {
            s if s.starts_with("/Users") => Resource::Users,
            s if s.starts_with("/Groups") => Resource::Groups,
            other => panic!("{name}: path {other}"),
        };
        let method = match str_field(&f, "method", &name) {
            "POST" => WriteMethod::Post,
            "PUT" => WriteMethod::Put,
            "PATCH" => WriteMethod::Patch,
            other => panic!("{name}: method {other}"),
        };
        let body = match f.get("body") {
            Some(b) => b.to_string(),
            None => panic!("{name}: no body"),
        };
        let expect = str_field(&f, "expect", &name);
        let got = outcome(&run(
            &p,
            resource,
            method,
            body.as_bytes(),
            &[],
            f.get("current").cloned(),
        ));
        if got != expect {
            failures.push(format!("{name}: expected {expect}, got {got}"));
        }
        seen += 1;
    }
    assert!(seen >= 20, "only {seen} fixtures in {DIR}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
