//! The admin socket's client, used by `scim-gate token …`: one HTTP/1.1 request per connection
//! over the Unix socket, so no HTTP client dependency is needed for a handful of JSON calls.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to the admin socket {path}: {source} (is the gate running, and is this the right --socket or -c?)")]
    Connect {
        path: String,
        source: std::io::Error,
    },
    #[error("admin socket {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("admin socket {0}: the answer is not HTTP/JSON")]
    BadReply(String),
}

pub struct AdminClient {
    socket: PathBuf,
}

/// An answer: HTTP status and the JSON body (`Null` for 204).
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl AdminClient {
    pub fn new(socket: &Path) -> AdminClient {
        AdminClient {
            socket: socket.to_path_buf(),
        }
    }

    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply, ClientError> {
        let p = self.socket.display().to_string();
        let mut s = UnixStream::connect(&self.socket).map_err(|source| ClientError::Connect {
            path: p.clone(),
            source,
        })?;
        let io = |source| ClientError::Io {
            path: p.clone(),
            source,
        };
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(io)?;
        let payload = body.map(|b| b.to_string()).unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            payload.len()
        );
        let mut request = head.into_bytes();
        request.extend_from_slice(payload.as_bytes());
        // The gate may answer (a 403 to a refused uid) and close before reading the body; the
        // write then fails with EPIPE, but the answer is there to read and is what to report.
        let written = s.write_all(&request);
        let mut raw = Vec::new();
        let read = s.read_to_end(&mut raw);
        if let Some(reply) = parse_reply(&raw) {
            return Ok(reply);
        }
        written.map_err(io)?;
        read.map_err(io)?;
        Err(ClientError::BadReply(p))
    }
}

fn parse_reply(raw: &[u8]) -> Option<Reply> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let status: u16 = head.split(' ').nth(1)?.parse().ok()?;
    let mut body = &raw[split + 4..];
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase().starts_with("transfer-encoding:")
            && l.to_ascii_lowercase().contains("chunked")
    });
    let decoded;
    if chunked {
        decoded = dechunk(body)?;
        body = &decoded;
    }
    let body = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(body).ok()?
    };
    Some(Reply { status, body })
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = b.windows(2).position(|w| w == b"\r\n")?;
        let size = usize::from_str_radix(
            std::str::from_utf8(&b[..line_end])
                .ok()?
                .split(';')
                .next()?
                .trim(),
            16,
        )
        .ok()?;
        b = &b[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn replies_parse_plain_and_chunked() {
        let r = super::parse_reply(b"HTTP/1.1 201 Created\r\nContent-Length: 8\r\n\r\n{\"a\":1}\n")
            .expect("reply");
        assert_eq!((r.status, r.body["a"].as_i64()), (201, Some(1)));
        let r = super::parse_reply(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"b\r\n4\r\n\":2}\r\n0\r\n\r\n").expect("reply");
        assert_eq!(r.body["b"].as_i64(), Some(2));
        let r = super::parse_reply(b"HTTP/1.1 204 No Content\r\n\r\n").expect("reply");
        assert!(r.body.is_null());
    }
}
