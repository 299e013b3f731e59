//! Public route matching (docs/operations.md#routes, #path-canonicalisation).
//!
//! The path is percent-decoded once and matched case-insensitively, and every spelling that could
//! make the gate and the upstream disagree about which resource is meant — dot segments, encoded
//! slashes or backslashes, doubled slashes, NUL, invalid UTF-8 — is refused with 400 before any
//! check runs. The upstream then receives one canonical spelling (`/Users/{id}`), so no spelling
//! of a path can slip past the checks.

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};

use crate::error::ScimError;
pub use crate::scim::Resource;

/// A SCIM endpoint under `base_path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Collection(Resource),
    Item(Resource, String),
    /// `/.search` (None) or `/Users/.search`.
    Search(Option<Resource>),
    Bulk,
    ServiceProviderConfig,
    Schemas(Option<String>),
    ResourceTypes(Option<String>),
    /// `/oauth/token`: the OAuth 2.0 token endpoint (`docs/oauth.md`), answered by the gate.
    OAuthToken,
}

impl Route {
    /// Every value [`Route::label`] takes, in [`Route::label_index`] order.
    pub const LABELS: [&'static str; 8] = [
        "Users",
        "Groups",
        "search",
        "Bulk",
        "ServiceProviderConfig",
        "Schemas",
        "ResourceTypes",
        "oauth_token",
    ];

    /// A short, bounded label for metrics and logs (never an id).
    pub fn label(&self) -> &'static str {
        Route::LABELS[self.label_index()]
    }

    /// The label's place in [`Route::LABELS`], for metric series resolved once per label.
    pub fn label_index(&self) -> usize {
        match self {
            Route::Collection(Resource::Users) | Route::Item(Resource::Users, _) => 0,
            Route::Collection(Resource::Groups) | Route::Item(Resource::Groups, _) => 1,
            Route::Search(_) => 2,
            Route::Bulk => 3,
            Route::ServiceProviderConfig => 4,
            Route::Schemas(_) => 5,
            Route::ResourceTypes(_) => 6,
            Route::OAuthToken => 7,
        }
    }

    /// The canonical path below the SCIM root, as sent to the upstream.
    pub fn upstream_suffix(&self) -> String {
        let mut out = String::new();
        self.push_upstream_suffix(&mut out);
        out
    }

    /// About how long [`Route::upstream_suffix`] is, to size its buffer once (an encoded id may
    /// still grow it).
    pub fn upstream_suffix_len_hint(&self) -> usize {
        let id = match self {
            Route::Item(_, id) => id.len(),
            Route::Schemas(Some(id)) | Route::ResourceTypes(Some(id)) => id.len(),
            _ => 0,
        };
        // The longest fixed part is `/ServiceProviderConfig` (22 bytes), plus the `/` before an id.
        23 + id
    }

    /// [`Route::upstream_suffix`] appended to `out`: the request path builds the upstream's
    /// path in one buffer instead of formatting pieces into new strings.
    pub fn push_upstream_suffix(&self, out: &mut String) {
        fn res(r: Resource) -> &'static str {
            match r {
                Resource::Users => "/Users",
                Resource::Groups => "/Groups",
            }
        }
        let (head, id) = match self {
            Route::Collection(r) => (res(*r), None),
            Route::Item(r, id) => (res(*r), Some(id)),
            Route::Search(None) => ("/.search", None),
            Route::Search(Some(r)) => {
                out.push_str(res(*r));
                ("/.search", None)
            }
            Route::Bulk => ("/Bulk", None),
            Route::ServiceProviderConfig => ("/ServiceProviderConfig", None),
            Route::Schemas(id) => ("/Schemas", id.as_ref()),
            Route::ResourceTypes(id) => ("/ResourceTypes", id.as_ref()),
            // Never forwarded: the gate answers it (`gate::oauth`).
            Route::OAuthToken => ("/oauth/token", None),
        };
        out.push_str(head);
        if let Some(id) = id {
            out.push('/');
            out.extend(utf8_percent_encode(id, SEGMENT));
        }
    }

    /// Which methods the route takes. Anything else is 405, so e.g. a POST to `/Users/{id}`
    /// cannot reach an upstream that might treat it as a write the checks never saw.
    pub fn allows(&self, method: &http::Method) -> bool {
        use http::Method as M;
        match self {
            Route::Collection(_) => matches!(*method, M::GET | M::POST),
            Route::Item(..) => matches!(*method, M::GET | M::PUT | M::PATCH | M::DELETE),
            Route::Search(_) | Route::Bulk | Route::OAuthToken => *method == M::POST,
            Route::ServiceProviderConfig | Route::Schemas(_) | Route::ResourceTypes(_) => {
                *method == M::GET
            }
        }
    }
}

/// Characters re-encoded in an id sent upstream (everything that is not a plain path char).
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

fn bad(detail: &str) -> ScimError {
    ScimError::new(400, Some("invalidPath"), detail).reason("path_unsafe")
}

/// Whether `path` holds `%2f`, `%5c` or `%00` in any case: encoded separators would be decoded
/// into a different path by some upstreams and not by others. Scans bytes; allocates nothing.
fn has_encoded_separator(path: &str) -> bool {
    path.as_bytes().windows(3).any(|w| {
        w[0] == b'%'
            && matches!(
                [w[1], w[2].to_ascii_lowercase()],
                [b'2', b'f'] | [b'5', b'c'] | [b'0', b'0']
            )
    })
}

/// The most segments below `base_path` any route has (`/Users/{id}/`, trailing slash included);
/// a longer path is no route, so the matcher keeps them on the stack.
const MAX_ROUTE_SEGMENTS: usize = 3;

/// Matches a raw request path (no query) against `base_path` (already normalised, no trailing
/// slash). Errors are complete SCIM errors: 400 for unsafe spellings, 404, 501 for `/Me`.
///
/// Runs on every request, so it allocates nothing but the id of an item route: the path is
/// decoded only when it holds a `%`, and its segments are walked, not collected.
pub fn match_route(raw_path: &str, base_path: &str) -> Result<Route, ScimError> {
    if has_encoded_separator(raw_path) {
        return Err(bad(
            "encoded slashes, backslashes and NUL are not allowed in the path",
        ));
    }
    let decoded = percent_decode_str(raw_path)
        .decode_utf8()
        .map_err(|_| bad("the path is not valid UTF-8 after percent-decoding"))?;
    if decoded.contains("//") {
        return Err(bad("empty path segments ('//') are not allowed"));
    }
    if decoded.contains('\\') || decoded.chars().any(char::is_control) {
        return Err(bad(
            "backslashes and control characters are not allowed in the path",
        ));
    }
    // One walk over the segments: below `base_path`, the route's own (at most
    // MAX_ROUTE_SEGMENTS of them, kept on the stack). A dot segment anywhere is refused (400)
    // even when the path was already known to be no route, so the walk goes on to the end.
    let not_found = || ScimError::new(404, None, "no such SCIM endpoint").reason("route_unknown");
    let mut base = base_path.split('/').filter(|s| !s.is_empty());
    let mut outside_base = false;
    let mut rest = [""; MAX_ROUTE_SEGMENTS];
    let mut n = 0;
    let mut too_long = false;
    for segment in decoded.split('/').skip(1) {
        if segment == "." || segment == ".." {
            return Err(bad("dot segments are not allowed in the path"));
        }
        if outside_base || too_long {
            continue;
        }
        match base.next() {
            Some(b) => outside_base = !segment.eq_ignore_ascii_case(b),
            None if n == MAX_ROUTE_SEGMENTS => too_long = true,
            None => {
                rest[n] = segment;
                n += 1;
            }
        }
    }
    if outside_base || base.next().is_some() {
        return Err(not_found());
    }
    if !too_long && n > 0 && rest[n - 1].is_empty() {
        n -= 1;
    }
    let is = |s: &str, name: &str| s.eq_ignore_ascii_case(name);
    if n > 0 && is(rest[0], "Me") {
        return Err(
            ScimError::new(501, None, "/Me is not supported by this gate")
                .reason("me_not_implemented"),
        );
    }
    if too_long {
        return Err(not_found());
    }
    let resource = |s: &str| {
        if is(s, "Users") {
            Some(Resource::Users)
        } else if is(s, "Groups") {
            Some(Resource::Groups)
        } else {
            None
        }
    };
    match &rest[..n] {
        [r] if resource(r).is_some() => {
            Ok(Route::Collection(resource(r).unwrap_or(Resource::Users)))
        }
        [r, s] if resource(r).is_some() && is(s, ".search") => Ok(Route::Search(resource(r))),
        [r, id] if resource(r).is_some() && !id.is_empty() => Ok(Route::Item(
            resource(r).unwrap_or(Resource::Users),
            id.to_string(),
        )),
        [s] if is(s, ".search") => Ok(Route::Search(None)),
        [s] if is(s, "Bulk") => Ok(Route::Bulk),
        [s] if is(s, "ServiceProviderConfig") => Ok(Route::ServiceProviderConfig),
        [s] if is(s, "Schemas") => Ok(Route::Schemas(None)),
        [s, id] if is(s, "Schemas") && !id.is_empty() => Ok(Route::Schemas(Some(id.to_string()))),
        [s, t] if is(s, "oauth") && is(t, "token") => Ok(Route::OAuthToken),
        [s] if is(s, "ResourceTypes") => Ok(Route::ResourceTypes(None)),
        [s, id] if is(s, "ResourceTypes") && !id.is_empty() => {
            Ok(Route::ResourceTypes(Some(id.to_string())))
        }
        _ => Err(not_found()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "/scim/v2";

    #[test]
    fn every_spelling_of_users_is_the_same_route() {
        for p in [
            "/scim/v2/Users",
            "/scim/v2/users",
            "/SCIM/V2/USERS",
            "/scim/v2/Users/",
            "/scim/v2/%55sers",
            "/scim/v2/%75sers",
        ] {
            assert_eq!(
                match_route(p, BASE),
                Ok(Route::Collection(Resource::Users)),
                "{p}"
            );
        }
        assert_eq!(
            match_route("/scim/v2/Users/abc%20def", BASE),
            Ok(Route::Item(Resource::Users, "abc def".into()))
        );
        assert_eq!(
            Route::Item(Resource::Users, "abc def".into()).upstream_suffix(),
            "/Users/abc%20def"
        );
    }

    #[test]
    fn other_routes() {
        assert_eq!(
            match_route("/scim/v2/Groups/.search", BASE),
            Ok(Route::Search(Some(Resource::Groups)))
        );
        assert_eq!(
            match_route("/scim/v2/.search", BASE),
            Ok(Route::Search(None))
        );
        assert_eq!(match_route("/scim/v2/bulk", BASE), Ok(Route::Bulk));
        assert_eq!(
            match_route("/scim/v2/Schemas/urn:x", BASE),
            Ok(Route::Schemas(Some("urn:x".into())))
        );
        assert_eq!(
            match_route("/scim/v2/ResourceTypes", BASE),
            Ok(Route::ResourceTypes(None))
        );
        assert_eq!(
            match_route("/scim/v2/ServiceProviderConfig", BASE),
            Ok(Route::ServiceProviderConfig)
        );
    }

    #[test]
    fn unsafe_spellings_are_400() {
        for p in [
            "/scim/v2/Users/../Groups",
            "/scim/v2/./Users",
            "/scim/v2/%2e%2e/Users",
            "/scim/v2//Users",
            "/scim/v2/Users%2fabc",
            "/scim/v2/Users%2Fabc",
            "/scim/v2/Users%5cabc",
            "/scim/v2/Users/a%00",
            "/scim/v2/Users/%ff",
            "/scim//v2/Users",
        ] {
            let e = match_route(p, BASE).expect_err(p);
            assert_eq!((e.status, e.scim_type), (400, Some("invalidPath")), "{p}");
        }
    }

    #[test]
    fn unknown_is_404_and_me_is_501() {
        for p in [
            "/",
            "/scim",
            "/scim/v2",
            "/scim/v2/Nope",
            "/other/Users",
            "/scim/v2/Users/1/extra",
            "/scim/v3/Users",
        ] {
            assert_eq!(match_route(p, BASE).map_err(|e| e.status), Err(404), "{p}");
        }
        assert_eq!(
            match_route("/scim/v2/Me", BASE).map_err(|e| e.status),
            Err(501)
        );
        assert_eq!(
            match_route("/scim/v2/me/x", BASE).map_err(|e| e.status),
            Err(501)
        );
    }

    #[test]
    fn methods_are_limited_per_route() {
        assert!(Route::Collection(Resource::Users).allows(&http::Method::POST));
        assert!(!Route::Collection(Resource::Users).allows(&http::Method::PATCH));
        assert!(!Route::Item(Resource::Users, "1".into()).allows(&http::Method::POST));
        assert!(!Route::Search(None).allows(&http::Method::GET));
    }
}
