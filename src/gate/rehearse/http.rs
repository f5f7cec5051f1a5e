//! A minimal HTTP/1.0 client over `std::net::TcpStream`, enough for etcd's client URL: `GET
//! /health`, `GET /version` and the v3 JSON gateway (`POST /v3/maintenance/status`,
//! `/v3/maintenance/hashkv`, registered in etcd 3.5's `api/etcdserverpb/gw/rpc.pb.gw.go`).
//!
//! HTTP/1.0 with `Connection: close`: the server ends the body by closing the connection, so no
//! chunked decoding is needed. Every connect, read and write has a deadline, and a response is
//! read up to [`MAX_RESPONSE`] bytes: nothing is sized by what the server sends.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// The most a response may hold; etcd's answers here are a few hundred bytes.
pub const MAX_RESPONSE: u64 = 1 << 20;

/// An HTTP response: status code and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

/// Why a request got no response.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("not an HTTP response: {0:?}")]
    Malformed(String),
    #[error("response longer than {MAX_RESPONSE} bytes")]
    TooLong,
}

/// Sends one request (`body` as JSON when given) and reads the whole response.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    timeout: Duration,
) -> Result<Response, HttpError> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let body = body.unwrap_or("");
    let head = format!(
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(format!("{head}{body}").as_bytes())?;
    let mut raw = Vec::new();
    stream.take(MAX_RESPONSE + 1).read_to_end(&mut raw)?;
    if raw.len() as u64 > MAX_RESPONSE {
        return Err(HttpError::TooLong);
    }
    parse(&raw)
}

/// Splits a raw HTTP/1.x response into status code and body.
pub fn parse(raw: &[u8]) -> Result<Response, HttpError> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| HttpError::Malformed(preview(&text)))?;
    let status_line = head.lines().next().unwrap_or_default();
    let mut parts = status_line.split_whitespace();
    let status = match (parts.next(), parts.next()) {
        (Some(version), Some(code)) if version.starts_with("HTTP/1.") => code.parse().ok(),
        _ => None,
    };
    match status {
        Some(status) => Ok(Response {
            status,
            body: body.to_string(),
        }),
        None => Err(HttpError::Malformed(preview(&text))),
    }
}

fn preview(text: &str) -> String {
    text.chars().take(120).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_and_body() {
        let r = parse(
            b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{\"health\":\"true\"}",
        )
        .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, "{\"health\":\"true\"}");
    }

    #[test]
    fn rejects_what_is_not_http() {
        assert!(matches!(
            parse(b"SSH-2.0-OpenSSH\r\n"),
            Err(HttpError::Malformed(_))
        ));
        assert!(matches!(
            parse(b"FOO 200\r\n\r\n"),
            Err(HttpError::Malformed(_))
        ));
        assert!(matches!(
            parse(b"HTTP/1.1 abc\r\n\r\n"),
            Err(HttpError::Malformed(_))
        ));
    }

    #[test]
    fn a_real_socket_round_trip() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut req = String::new();
            let mut buf = [0u8; 1024];
            while !req.ends_with("{}") {
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0, "{req}");
                req.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
            s.write_all(b"HTTP/1.0 404 Not Found\r\n\r\nnope").unwrap();
            req
        });
        let r = request(addr, "POST", "/v3/x", Some("{}"), Duration::from_secs(5)).unwrap();
        assert_eq!((r.status, r.body.as_str()), (404, "nope"));
        let req = server.join().unwrap();
        assert!(req.starts_with("POST /v3/x HTTP/1.0\r\n"), "{req}");
        assert!(req.ends_with("Content-Length: 2\r\n\r\n{}"), "{req}");
    }
}
