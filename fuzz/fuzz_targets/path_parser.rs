//! Arbitrary strings through the PATCH path parser and the filter parser. Must never panic;
//! whatever parses must print (Display) to a string that parses back to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scim_gate::scim::{parse_filter, parse_path};

const URNS: &[&str] = &[
    "urn:ietf:params:scim:schemas:core:2.0:User",
    "urn:ietf:params:scim:schemas:core:2.0:Group",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
    "urn:ietf:params:scim:schemas:extension:ivanti:2.0:User",
];

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(p) = parse_path(s, URNS) {
        let printed = p.to_string();
        let back = parse_path(&printed, URNS)
            .unwrap_or_else(|e| panic!("{s:?} printed as {printed:?} does not parse: {e}"));
        assert_eq!(back, p, "{s:?} printed as {printed:?}");
    }
    if let Ok(f) = parse_filter(s) {
        let printed = f.to_string();
        let back = parse_filter(&printed)
            .unwrap_or_else(|e| panic!("{s:?} printed as {printed:?} does not parse: {e}"));
        assert_eq!(back, f, "{s:?} printed as {printed:?}");
    }
});
