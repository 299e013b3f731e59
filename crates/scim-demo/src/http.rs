//! The smallest HTTP/1.1 server that still behaves: request line and headers, `Content-Length`
//! and chunked bodies, `Expect: 100-continue`, keep-alive and `Connection: close`, size limits.
//! Written by hand (no hyper) so the demo has no server stack of its own to configure, and strict
//! (ambiguous framing is a 400) so the gate's proxying is tested against a peer that notices.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::message::{DemoRequest, DemoResponse};

/// Request line plus headers.
pub const MAX_HEAD: usize = 64 * 1024;
/// Well above any SCIM `maxPayloadSize` the gate would let through (1 MiB by default).
pub const MAX_BODY: usize = 8 * 1024 * 1024;
/// A chunk-size or trailer line; real ones are a few bytes.
const MAX_LINE: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("malformed request: {0}")]
    Malformed(&'static str),
    #[error("request header section exceeds {MAX_HEAD} bytes")]
    HeadTooLarge,
    #[error("request body exceeds {MAX_BODY} bytes")]
    BodyTooLarge,
    #[error("connection closed in the middle of a request")]
    Truncated,
}

impl HttpError {
    /// The status to answer with before closing, when the peer can still be told anything.
    pub fn status(&self) -> Option<u16> {
        match self {
            HttpError::Malformed(_) => Some(400),
            HttpError::HeadTooLarge => Some(431),
            HttpError::BodyTooLarge => Some(413),
            HttpError::Io(_) | HttpError::Truncated => None,
        }
    }
}

/// One connection: the stream plus bytes read but not yet consumed (pipelined requests).
pub struct Conn<S> {
    stream: S,
    buf: Vec<u8>,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// RFC 9110 `token`: what a method or a header name may consist of.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    pub fn new(stream: S) -> Self {
        Conn {
            stream,
            buf: Vec::new(),
        }
    }

    /// Reads more bytes into the buffer; `false` at end of stream.
    async fn fill(&mut self) -> std::io::Result<bool> {
        let mut tmp = [0u8; 16 * 1024];
        let n = self.stream.read(&mut tmp).await?;
        self.buf.extend_from_slice(&tmp[..n]);
        Ok(n > 0)
    }

    /// The next request and whether the connection stays open after it; `None` when the peer
    /// closed cleanly between requests.
    pub async fn read_request(&mut self) -> Result<Option<(DemoRequest, bool)>, HttpError> {
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i;
            }
            if self.buf.len() > MAX_HEAD {
                return Err(HttpError::HeadTooLarge);
            }
            if !self.fill().await? {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(HttpError::Truncated)
                };
            }
        };
        if head_end + 4 > MAX_HEAD {
            return Err(HttpError::HeadTooLarge);
        }
        let head: Vec<u8> = self.buf.drain(..head_end + 4).collect();
        let head = std::str::from_utf8(&head[..head_end])
            .map_err(|_| HttpError::Malformed("header section is not UTF-8"))?;
        let mut lines = head.split("\r\n");
        let mut parts = lines.next().unwrap_or_default().split(' ');
        let (Some(method), Some(target), Some(version), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(HttpError::Malformed("request line"));
        };
        if !is_token(method) || target.is_empty() || target.bytes().any(|b| b <= b' ') {
            return Err(HttpError::Malformed("request line"));
        }
        let http10 = match version {
            "HTTP/1.1" => false,
            "HTTP/1.0" => true,
            _ => return Err(HttpError::Malformed("unsupported HTTP version")),
        };
        let mut headers = Vec::new();
        for line in lines {
            if line.starts_with([' ', '\t']) {
                return Err(HttpError::Malformed("obsolete header line folding"));
            }
            let (name, value) = line
                .split_once(':')
                .ok_or(HttpError::Malformed("header line without a colon"))?;
            if !is_token(name) {
                return Err(HttpError::Malformed("header name"));
            }
            headers.push((
                name.to_string(),
                value.trim_matches([' ', '\t']).to_string(),
            ));
        }

        let values = |name: &str| -> Vec<String> {
            headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .flat_map(|(_, v)| v.split(','))
                .map(|v| v.trim().to_ascii_lowercase())
                .filter(|v| !v.is_empty())
                .collect()
        };
        let connection = values("connection");
        let keep_alive = if http10 {
            connection.iter().any(|v| v == "keep-alive")
        } else {
            !connection.iter().any(|v| v == "close")
        };
        let expect_continue = values("expect").iter().any(|v| v == "100-continue");
        let te = values("transfer-encoding");
        let cl = values("content-length");

        // Both framings at once, or disagreeing lengths, is how requests get smuggled: refuse.
        let body = if !te.is_empty() {
            if !cl.is_empty() {
                return Err(HttpError::Malformed(
                    "both Transfer-Encoding and Content-Length",
                ));
            }
            if te.last().map(String::as_str) != Some("chunked") || te.len() > 1 {
                return Err(HttpError::Malformed("unsupported Transfer-Encoding"));
            }
            self.continue_if_asked(expect_continue).await?;
            self.read_chunked().await?
        } else if let Some(first) = cl.first() {
            if cl.iter().any(|v| v != first) || !first.bytes().all(|b| b.is_ascii_digit()) {
                return Err(HttpError::Malformed("Content-Length"));
            }
            let len: usize = first
                .parse()
                .map_err(|_| HttpError::Malformed("Content-Length"))?;
            if len > MAX_BODY {
                return Err(HttpError::BodyTooLarge);
            }
            if len > 0 {
                self.continue_if_asked(expect_continue).await?;
            }
            self.take(len).await?
        } else {
            Vec::new()
        };
        let req = DemoRequest {
            method: method.to_string(),
            path: target.to_string(),
            headers,
            body,
        };
        Ok(Some((req, keep_alive)))
    }

    /// curl sends `Expect: 100-continue` for larger bodies and waits a second for this.
    async fn continue_if_asked(&mut self, asked: bool) -> std::io::Result<()> {
        if asked && self.buf.is_empty() {
            self.stream
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await?;
            self.stream.flush().await?;
        }
        Ok(())
    }

    /// Exactly `n` bytes from the connection.
    async fn take(&mut self, n: usize) -> Result<Vec<u8>, HttpError> {
        while self.buf.len() < n {
            if !self.fill().await? {
                return Err(HttpError::Truncated);
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    /// A CRLF-terminated line, without the CRLF.
    async fn line(&mut self) -> Result<String, HttpError> {
        loop {
            if let Some(i) = find(&self.buf, b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..i + 2).take(i).collect();
                return String::from_utf8(line).map_err(|_| HttpError::Malformed("chunk line"));
            }
            if self.buf.len() > MAX_LINE {
                return Err(HttpError::Malformed("chunk line too long"));
            }
            if !self.fill().await? {
                return Err(HttpError::Truncated);
            }
        }
    }

    /// RFC 9112 §7.1: `size[;ext] CRLF data CRLF` … `0 CRLF` trailers `CRLF`. Trailers are dropped.
    async fn read_chunked(&mut self) -> Result<Vec<u8>, HttpError> {
        let mut body = Vec::new();
        loop {
            let line = self.line().await?;
            let size = line.split(';').next().unwrap_or_default().trim();
            if size.is_empty() || size.len() > 16 || !size.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(HttpError::Malformed("chunk size"));
            }
            let size =
                usize::from_str_radix(size, 16).map_err(|_| HttpError::Malformed("chunk size"))?;
            if size == 0 {
                break;
            }
            if size > MAX_BODY - body.len() {
                return Err(HttpError::BodyTooLarge);
            }
            body.extend(self.take(size).await?);
            if self.take(2).await? != b"\r\n" {
                return Err(HttpError::Malformed("chunk not followed by CRLF"));
            }
        }
        for _ in 0..100 {
            if self.line().await?.is_empty() {
                return Ok(body);
            }
        }
        Err(HttpError::Malformed("too many trailer lines"))
    }

    /// Writes the response with its own `Content-Length` (and `Connection: close` when closing);
    /// any framing headers in `resp` are dropped so they cannot contradict the real framing.
    pub async fn write_response(
        &mut self,
        resp: &DemoResponse,
        close: bool,
    ) -> std::io::Result<()> {
        let mut out = format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
        for (name, value) in &resp.headers {
            let framing = ["content-length", "transfer-encoding", "connection"]
                .iter()
                .any(|h| name.eq_ignore_ascii_case(h));
            if !framing {
                out.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        let bodyless = resp.status == 204 || resp.status == 304 || resp.status < 200;
        if !bodyless {
            out.push_str(&format!("Content-Length: {}\r\n", resp.body.len()));
        }
        if close {
            out.push_str("Connection: close\r\n");
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        if !bodyless {
            bytes.extend_from_slice(&resp.body);
        }
        self.stream.write_all(&bytes).await?;
        self.stream.flush().await
    }

    /// Best effort: TLS needs this to send close_notify; a plain socket sends FIN.
    pub async fn shutdown(&mut self) {
        let _ = self.stream.shutdown().await;
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        421 => "Misdirected Request",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        _ => "Unknown",
    }
}
