//! SearchRequest members (RFC 7644 §3.4.3): the request writes nothing, but its filter and
//! attribute lists must parse, or the upstream might answer an unfiltered list.

use serde_json::Value;

use super::context::path_rejection;
use crate::scim::error::Rejection;
use crate::scim::filter::parse_filter_limited;
use crate::scim::path::parse_path_in;
use crate::scim::policy::Inner;

/// One member of a SearchRequest (RFC 7644 §3.4.3). Unknown members are refused: the gate
/// cannot vouch for a search parameter it does not understand.
pub(super) fn check_search_member(p: &Inner, k: &str, v: &Value) -> Result<(), Rejection> {
    let lk = k.to_ascii_lowercase();
    match lk.as_str() {
        "schemas" => Ok(()),
        "filter" => {
            let s = v
                .as_str()
                .ok_or_else(|| Rejection::filter("'filter' must be a string"))?;
            parse_filter_limited(s, p.max_filter_terms)
                .map(|_| ())
                .map_err(|e| Rejection::filter(format!("invalid filter: {e}")))
        }
        "attributes" | "excludedattributes" => {
            let items = v
                .as_array()
                .ok_or_else(|| Rejection::value(format!("'{k}' must be an array of strings")))?;
            for item in items {
                let s = item.as_str().ok_or_else(|| {
                    Rejection::value(format!("'{k}' must be an array of strings"))
                })?;
                parse_path_in(s, &p.known_urns, p.max_filter_terms)
                    .map_err(|e| path_rejection(format!("'{k}': invalid path '{s}'"), &e))?;
            }
            Ok(())
        }
        "sortby" if v.is_string() => Ok(()),
        "sortorder"
            if v.as_str().is_some_and(|s| {
                s.eq_ignore_ascii_case("ascending") || s.eq_ignore_ascii_case("descending")
            }) =>
        {
            Ok(())
        }
        "startindex" | "count" if v.is_i64() || v.is_u64() => Ok(()),
        "sortby" | "sortorder" | "startindex" | "count" => {
            Err(Rejection::value(format!("'{k}' has the wrong type")))
        }
        _ => Err(Rejection::value(format!(
            "unknown SearchRequest attribute '{k}'"
        ))),
    }
}
