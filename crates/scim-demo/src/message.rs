//! One HTTP request and one response as plain values: what the HTTP layer parses into and
//! writes out, and what routing works on, so neither needs to know about the other.

/// One HTTP request as the directory received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoRequest {
    pub method: String,
    /// Path and query exactly as they appeared on the request line.
    pub path: String,
    /// In arrival order, duplicates kept, names as sent (compare them case-insensitively).
    pub headers: Vec<(String, String)>,
    /// The body bytes after de-chunking.
    pub body: Vec<u8>,
}

impl DemoRequest {
    /// First header called `name` (case-insensitive), for test assertions.
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

/// One HTTP response; `Content-Length` and `Connection` are added by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl DemoResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// A JSON response with the SCIM media type (RFC 7644 §3.1).
    pub(crate) fn scim(status: u16, body: &serde_json::Value) -> DemoResponse {
        DemoResponse {
            status,
            headers: vec![("Content-Type".into(), "application/scim+json".into())],
            body: body.to_string().into_bytes(),
        }
    }

    /// The body as JSON (`Value::Null` when empty or not JSON): convenient in tests.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_default()
    }
}

/// The first header called `name`, compared case-insensitively (RFC 9110 §5.1).
pub(crate) fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}
