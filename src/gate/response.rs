//! Response rewriting: the upstream names itself in `Location`, `meta.location` and `$ref`; the
//! IdP must see the gate's public URLs instead, or its next request would bypass the gate.

use bytes::{Bytes, BytesMut};
use pingora::http::ResponseHeader;

use super::{Gate, GateCtx};
use crate::metrics::{self, UpstreamErrorKind};
use crate::routes::Route;

impl Gate {
    /// Rewrites `Location` and prepares the JSON body rewrite of upstream URLs.
    pub(super) fn rewrite_response_head(
        &self,
        resp: &mut ResponseHeader,
        ctx: &mut GateCtx,
    ) -> pingora::Result<()> {
        ctx.upstream_status = Some(resp.status.as_u16());
        if resp.status == http::StatusCode::SWITCHING_PROTOCOLS {
            // The gate forwards no `Upgrade`, so a 101 is an upstream switching on its own: a
            // tunnel would carry bytes no check sees. Refused as a bad upstream answer (502).
            return pingora::Error::e_explain(
                pingora::ErrorType::InvalidHTTPHeader,
                "upstream answered 101 Switching Protocols",
            );
        }
        if resp.status.is_server_error() {
            metrics::count_upstream_error(UpstreamErrorKind::Status5xx);
        }
        if let Some(loc) = resp
            .headers
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
        {
            if let Some(rest) = loc.strip_prefix(self.upstream.prefix.as_str()) {
                let public = format!("{}{rest}", ctx.public_prefix);
                resp.insert_header(http::header::LOCATION, public)?;
            }
        }
        let json = resp
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.to_ascii_lowercase().contains("json"));
        let encoded = resp.headers.get(http::header::CONTENT_ENCODING).is_some();
        let has_body = !matches!(resp.status.as_u16(), 204 | 304);
        let spc = ctx.route == Some(Route::ServiceProviderConfig);
        if json && has_body && !encoded && (spc || self.upstream.prefix != ctx.public_prefix) {
            ctx.rewrite_response = true;
            // The header leaves before the body is read, so a body whose length may change goes
            // out chunked — unless the public prefix is no longer than the upstream's: then the
            // rewrite can only shorten it, and padding it with JSON whitespace keeps the
            // upstream's Content-Length (no re-framing; the common case of a long internal URL).
            let length = resp
                .headers
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<usize>().ok());
            match length {
                Some(n) if !spc && ctx.public_prefix.len() <= self.upstream.prefix.len() => {
                    ctx.pad_to = Some(n);
                }
                _ => {
                    resp.remove_header(&http::header::CONTENT_LENGTH);
                    resp.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
                }
            }
        }
        Ok(())
    }

    /// Buffers a JSON response and replaces upstream URLs (`meta.location`, `$ref`) with public ones.
    pub(super) fn rewrite_response_body(
        &self,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut GateCtx,
    ) {
        if !ctx.rewrite_response {
            return;
        }
        if let Some(chunk) = body.take() {
            ctx.response_buf.extend_from_slice(&chunk);
        }
        if end_of_stream {
            let whole = std::mem::take(&mut ctx.response_buf);
            let rewritten = replace_all(
                &whole,
                self.upstream.prefix.as_bytes(),
                ctx.public_prefix.as_bytes(),
            );
            *body = Some(if ctx.route == Some(Route::ServiceProviderConfig) {
                advertise_limits(rewritten, self.max_body)
            } else if let Some(n) = ctx.pad_to {
                pad_to(whole.freeze(), rewritten, n)
            } else {
                rewritten
            });
        }
    }
}

/// `/ServiceProviderConfig` answered through the gate advertises the gate's own body limit
/// when it is lower than the upstream's, so an IdP that reads it never sends a Bulk request the
/// gate would refuse with 413.
fn advertise_limits(body: Bytes, max_body: usize) -> Bytes {
    let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return body;
    };
    let Some(bulk) = v.get_mut("bulk").and_then(|b| b.as_object_mut()) else {
        return body;
    };
    let upstream = bulk.get("maxPayloadSize").and_then(|n| n.as_u64());
    if upstream.is_some_and(|n| n <= max_body as u64) {
        return body;
    }
    bulk.insert("maxPayloadSize".into(), max_body.into());
    serde_json::to_vec(&v).map(Bytes::from).unwrap_or(body)
}

/// `rewritten` padded with trailing spaces (JSON whitespace, RFC 8259 §2) to `n` bytes, the
/// Content-Length already sent. Should the upstream have sent other than `n` bytes, the
/// original body is forwarded as it came, so the framing stays whatever the upstream made it.
fn pad_to(original: Bytes, rewritten: Bytes, n: usize) -> Bytes {
    if original.len() != n || rewritten.len() > n {
        return original;
    }
    let mut out = BytesMut::with_capacity(n);
    out.extend_from_slice(&rewritten);
    out.resize(n, b' ');
    out.freeze()
}

fn replace_all(haystack: &[u8], from: &[u8], to: &[u8]) -> Bytes {
    if from.is_empty() {
        return Bytes::copy_from_slice(haystack);
    }
    let mut out = Vec::with_capacity(haystack.len() + haystack.len() / 8);
    let mut last = 0;
    for at in memchr::memmem::find_iter(haystack, from) {
        out.extend_from_slice(&haystack[last..at]);
        out.extend_from_slice(to);
        last = at + from.len();
    }
    out.extend_from_slice(&haystack[last..]);
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn replace_all_rewrites_every_occurrence() {
        let out = replace_all(
            b"{\"a\":\"http://up/v2/Users/1\",\"b\":\"http://up/v2/Groups/2\"}",
            b"http://up/v2",
            b"https://gate/scim/v2",
        );
        assert_eq!(
            &out[..],
            &b"{\"a\":\"https://gate/scim/v2/Users/1\",\"b\":\"https://gate/scim/v2/Groups/2\"}"[..]
        );
    }

    #[test]
    fn service_provider_config_advertises_the_lower_limit() {
        let up = Bytes::from_static(
            br#"{"bulk":{"supported":true,"maxPayloadSize":10485760,"maxOperations":100}}"#,
        );
        let v: serde_json::Value =
            serde_json::from_slice(&advertise_limits(up, 1024)).expect("json");
        assert_eq!(v["bulk"]["maxPayloadSize"], 1024);
        assert_eq!(v["bulk"]["maxOperations"], 100);
        let low = Bytes::from_static(br#"{"bulk":{"maxPayloadSize":512}}"#);
        assert_eq!(advertise_limits(low.clone(), 1024), low);
        let none = Bytes::from_static(br#"{"patch":{"supported":true}}"#);
        assert_eq!(advertise_limits(none.clone(), 1024), none);
    }

    #[test]
    fn a_shrinking_rewrite_is_padded_to_the_sent_length() {
        let up = Bytes::from_static(br#"{"l":"http://directory.internal:8080/v2/Users/1"}"#);
        let re = replace_all(&up, b"http://directory.internal:8080/v2", b"https://g/scim");
        let out = pad_to(up.clone(), re, up.len());
        assert_eq!(out.len(), up.len());
        let v: serde_json::Value = serde_json::from_slice(&out).expect("still JSON");
        assert_eq!(v["l"], "https://g/scim/Users/1");
        assert_eq!(
            pad_to(up.clone(), Bytes::from_static(b"{}"), up.len() + 1),
            up
        );
    }
}
