//! The CLI's client side of the management API: a plain HTTP/1.1 GET to the daemon on this host.
//!
//! Hand-written because the CLI only ever talks to its own daemon over loopback with
//! `Connection: close`; a full HTTP client stack (and its TLS) would be most of the binary's
//! dependencies for a few lines of protocol.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::OnceLock;
use std::time::Duration;

use super::error::CliError;

/// `--api-key` or `EMBER_API_KEY`, set once when the command line is parsed; sent when a
/// caller gives no key of its own.
pub static API_KEY: OnceLock<String> = OnceLock::new();

/// Fetches `path` and returns the `data` member of the JSON envelope.
pub fn get(addr: SocketAddr, path: &str, api_key: Option<&str>) -> Result<serde_json::Value, CliError> {
    request(addr, "GET", path, None, api_key)
}

/// Posts a JSON body to `path`; returns the `data` member of the answer.
pub fn post(
    addr: SocketAddr,
    path: &str,
    body: &serde_json::Value,
    api_key: Option<&str>,
) -> Result<serde_json::Value, CliError> {
    request(addr, "POST", path, Some(body), api_key)
}

fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
    api_key: Option<&str>,
) -> Result<serde_json::Value, CliError> {
    let (status, json) = exchange(addr, method, path, body, api_key)?;
    if status != 200 {
        return Err(CliError::refused(status, &json));
    }
    Ok(json["data"].clone())
}

/// One request; the status and the JSON answer, whatever the status.
pub fn exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
    api_key: Option<&str>,
) -> Result<(u16, serde_json::Value), CliError> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|source| CliError::Unreachable { addr, source })?;
    stream.set_read_timeout(Some(Duration::from_secs(120))).map_err(CliError::Send)?;
    let key = api_key.or(API_KEY.get().map(String::as_str)).map(|k| format!("X-API-Key: {k}\r\n")).unwrap_or_default();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let content = if method == "POST" {
        format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len())
    } else {
        String::new()
    };
    write!(stream, "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{key}{content}Connection: close\r\n\r\n{body}")
        .map_err(CliError::Send)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(CliError::Read)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").ok_or(CliError::NoBody)?;
    let status: u16 = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or(CliError::StatusLine)?;
    let json: serde_json::Value = serde_json::from_str(body).map_err(CliError::NotJson)?;
    Ok((status, json))
}
