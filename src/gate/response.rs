//! Response rewriting: the upstream names itself in `Location`, `meta.location` and `$ref`; the
//! IdP must see the gate's public URLs instead, or its next request would bypass the gate.

use bytes::{Bytes, BytesMut};
use memchr::memmem::Finder;
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
            let upstream_prefix = ctx
                .upstream_prefix
                .as_deref()
                .unwrap_or(&self.upstream.prefix);
            if let Some(rest) = loc.strip_prefix(upstream_prefix) {
                let public = format!("{}{rest}", ctx.public_prefix);
                resp.insert_header(http::header::LOCATION, public)?;
            }
        }
        let json = resp
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| {
                ct.as_bytes()
                    .windows(4)
                    .any(|w| w.eq_ignore_ascii_case(b"json"))
            });
        let encoded = resp.headers.get(http::header::CONTENT_ENCODING).is_some();
        let has_body = !matches!(resp.status.as_u16(), 204 | 304);
        let spc = ctx.route == Some(Route::ServiceProviderConfig);
        let upstream_prefix = ctx
            .upstream_prefix
            .as_deref()
            .unwrap_or(&self.upstream.prefix);
        if json && has_body && !encoded && (spc || upstream_prefix != ctx.public_prefix) {
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
                Some(n) if !spc && ctx.public_prefix.len() <= upstream_prefix.len() => {
                    ctx.pad_to = Some(n);
                }
                _ => {
                    resp.remove_header(&http::header::CONTENT_LENGTH);
                    resp.insert_header(
                        http::header::TRANSFER_ENCODING,
                        http::HeaderValue::from_static("chunked"),
                    )?;
                }
            }
        }
        Ok(())
    }

    /// Replaces upstream URLs (`meta.location`, `$ref`) with public ones as the body streams
    /// through: each chunk goes on at once, less the few bytes at its end that could begin a
    /// URL split across two chunks (carried into the next). Memory held is bounded by the URL's
    /// length, whatever the body's size. Only `/ServiceProviderConfig`, a small document whose
    /// limits are rewritten as JSON, is read whole (up to [`SPC_LIMIT`]).
    pub(super) fn rewrite_response_body(
        &self,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut GateCtx,
    ) {
        if !ctx.rewrite_response {
            return;
        }
        // The search for the upstream's prefix is built once, at start; with `{tenant}` in the
        // upstream URL the prefix is this request's, and so is its search (an owned one, so the
        // buffers of `ctx` can be written while it is used).
        let tenant_finder;
        let finder = match &ctx.upstream_prefix {
            Some(prefix) => {
                tenant_finder = Finder::new(prefix.as_bytes()).into_owned();
                &tenant_finder
            }
            None => &self.upstream_finder,
        };
        let from = finder.needle();
        // `response_sent` is still 0 while a configuration document is being read whole.
        if ctx.route == Some(Route::ServiceProviderConfig) && ctx.response_sent == 0 {
            if let Some(chunk) = body.take() {
                ctx.response_buf.extend_from_slice(&chunk);
            }
            if end_of_stream {
                let whole = std::mem::take(&mut ctx.response_buf).freeze();
                let rewritten = replace_all(&whole, from, ctx.public_prefix.as_bytes());
                *body = Some(advertise_limits(
                    rewritten,
                    self.max_body,
                    self.bulk_max_operations,
                ));
                return;
            }
            if ctx.response_buf.len() <= SPC_LIMIT {
                *body = Some(Bytes::new());
                return;
            }
            // Too large to be a configuration document: stream it like any other body.
            *body = Some(std::mem::take(&mut ctx.response_buf).freeze());
        }
        let chunk = body.take().unwrap_or_default();
        let mut out = rewrite_chunk(
            &mut ctx.response_buf,
            chunk,
            finder,
            ctx.public_prefix.as_bytes(),
            end_of_stream,
        );
        ctx.response_sent += out.len();
        if end_of_stream {
            if let Some(n) = ctx.pad_to.filter(|n| *n > ctx.response_sent) {
                // The rewrite only shortened the body: JSON whitespace (RFC 8259 §2) makes up the
                // Content-Length already sent.
                // Padded in place when the rewrite's buffer is this chunk's alone (it is, for
                // a rewritten chunk: room for the URLs' difference was reserved), copied if not.
                let mut padded = out
                    .try_into_mut()
                    .unwrap_or_else(|b| BytesMut::from(&b[..]));
                padded.resize(padded.len() + (n - ctx.response_sent), b' ');
                ctx.response_sent = n;
                out = padded.freeze();
            }
        }
        *body = Some(out);
    }
}

/// The most of a `/ServiceProviderConfig` body read whole to rewrite its limits.
const SPC_LIMIT: usize = 256 * 1024;

/// Rewrites `carry + chunk`, returning what can go on now and leaving in `carry` the tail that
/// could be the start of a `from` split across chunks (at most `from.len() - 1` bytes). At the
/// end of the stream the carry goes out too. A chunk with no match and no carry is passed on
/// without a copy.
pub(super) fn rewrite_chunk(
    carry: &mut BytesMut,
    chunk: Bytes,
    finder: &Finder<'_>,
    to: &[u8],
    end_of_stream: bool,
) -> Bytes {
    let from = finder.needle();
    if from.is_empty() {
        return chunk;
    }
    let keep = if end_of_stream { 0 } else { from.len() - 1 };
    if carry.is_empty() && finder.find(&chunk).is_none() {
        let hold = partial_prefix_len(&chunk, from).min(keep);
        carry.extend_from_slice(&chunk[chunk.len() - hold..]);
        return chunk.slice(..chunk.len() - hold);
    }
    // Without a carry the chunk itself is searched: no copy of it first.
    let buf = if carry.is_empty() {
        chunk
    } else {
        carry.extend_from_slice(&chunk);
        std::mem::take(carry).freeze()
    };
    let mut out = BytesMut::with_capacity(buf.len() + to.len());
    let mut last = 0;
    for at in finder.find_iter(&buf) {
        out.extend_from_slice(&buf[last..at]);
        out.extend_from_slice(to);
        last = at + from.len();
    }
    let rest = &buf[last..];
    let hold = partial_prefix_len(rest, from).min(keep);
    out.extend_from_slice(&rest[..rest.len() - hold]);
    carry.extend_from_slice(&rest[rest.len() - hold..]);
    out.freeze()
}

/// The length of the longest end of `data` that is a proper prefix of `from`: the bytes that
/// may continue into a match in the next chunk.
fn partial_prefix_len(data: &[u8], from: &[u8]) -> usize {
    let max = (from.len() - 1).min(data.len());
    (1..=max)
        .rev()
        .find(|&k| data[data.len() - k..] == from[..k])
        .unwrap_or(0)
}

/// `/ServiceProviderConfig` answered through the gate advertises the gate's own Bulk limits
/// (`maxPayloadSize` = `policy.max_body_bytes`, `maxOperations` = `policy.bulk_max_operations`)
/// where they are lower than the upstream's, so an IdP that reads them never sends a Bulk
/// request the gate would refuse with 413.
fn advertise_limits(body: Bytes, max_body: usize, max_operations: usize) -> Bytes {
    let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return body;
    };
    let Some(bulk) = v.get_mut("bulk").and_then(|b| b.as_object_mut()) else {
        return body;
    };
    let mut lowered = false;
    for (key, ours) in [
        ("maxPayloadSize", max_body),
        ("maxOperations", max_operations),
    ] {
        let upstream = bulk.get(key).and_then(|n| n.as_u64());
        if upstream.is_none_or(|n| n > ours as u64) {
            bulk.insert(key.into(), ours.into());
            lowered = true;
        }
    }
    if !lowered {
        return body;
    }
    serde_json::to_vec(&v).map(Bytes::from).unwrap_or(body)
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
            serde_json::from_slice(&advertise_limits(up.clone(), 1024, 1000)).expect("json");
        assert_eq!(v["bulk"]["maxPayloadSize"], 1024);
        assert_eq!(v["bulk"]["maxOperations"], 100);
        let v: serde_json::Value =
            serde_json::from_slice(&advertise_limits(up, 1 << 30, 10)).expect("json");
        assert_eq!(v["bulk"]["maxPayloadSize"], 10485760);
        assert_eq!(v["bulk"]["maxOperations"], 10);
        let low = Bytes::from_static(br#"{"bulk":{"maxPayloadSize":512,"maxOperations":5}}"#);
        assert_eq!(advertise_limits(low.clone(), 1024, 1000), low);
        // An upstream that says nothing gets the gate's limits.
        let silent = Bytes::from_static(br#"{"bulk":{"supported":true}}"#);
        let v: serde_json::Value =
            serde_json::from_slice(&advertise_limits(silent, 1024, 1000)).expect("json");
        assert_eq!(
            (
                v["bulk"]["maxPayloadSize"].as_u64(),
                v["bulk"]["maxOperations"].as_u64()
            ),
            (Some(1024), Some(1000))
        );
        let none = Bytes::from_static(br#"{"patch":{"supported":true}}"#);
        assert_eq!(advertise_limits(none.clone(), 1024, 1000), none);
    }

    /// Runs `body` through the streaming rewrite cut into chunks of `size` bytes.
    fn stream(body: &[u8], size: usize, from: &[u8], to: &[u8]) -> Vec<u8> {
        let mut carry = BytesMut::new();
        let mut out = Vec::new();
        let chunks: Vec<&[u8]> = body.chunks(size).collect();
        for (i, c) in chunks.iter().enumerate() {
            let last = i + 1 == chunks.len();
            let piece = rewrite_chunk(
                &mut carry,
                Bytes::copy_from_slice(c),
                &Finder::new(from),
                to,
                last,
            );
            out.extend_from_slice(&piece);
            assert!(
                carry.len() < from.len(),
                "the carry stays below the URL's length"
            );
        }
        out
    }

    #[test]
    fn a_match_split_across_chunks_is_rewritten_at_every_cut() {
        let from = b"http://up:8080/v2";
        let to = b"https://gate/scim/v2";
        let body = br#"{"a":"http://up:8080/v2/Users/1","b":["http://up:8080/v2/Groups/2"],"c":"http://up:8080/v"}"#;
        let want = replace_all(body, from, to);
        for size in 1..=body.len() {
            assert_eq!(stream(body, size, from, to), &want[..], "chunks of {size}");
        }
        // A prefix of the URL at the very end of the body goes out as it is.
        assert_eq!(stream(b"x http://up:80", 3, from, to), b"x http://up:80");
    }

    #[test]
    fn a_chunk_without_a_match_passes_without_a_copy() {
        let mut carry = BytesMut::new();
        let chunk = Bytes::from_static(b"{\"plain\":true}");
        let out = rewrite_chunk(
            &mut carry,
            chunk.clone(),
            &Finder::new(b"http://up/v2"),
            b"x",
            false,
        );
        assert_eq!(out.as_ptr(), chunk.as_ptr());
        assert_eq!(out, chunk);
        assert!(carry.is_empty());
    }
}
