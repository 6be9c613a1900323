//! How a CLI command reaches the running daemon: `--mgmt URL` (or `ADDR:PORT`), else the
//! `http-mgmt-port` of `--config FILE`, else PowerMTA's default `http://127.0.0.1:8080`; and the
//! API key of `--api-key` or `EMBER_API_KEY`, sent as `X-API-Key`.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use clap::Args;

use super::error::CliError;

/// The options every command that talks to the daemon takes.
#[derive(Args, Debug, Clone)]
pub struct Remote {
    /// The configuration whose http-mgmt-port the daemon listens on.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// The daemon's management API: http://HOST:PORT or HOST:PORT.
    #[arg(long, value_parser = parse_mgmt)]
    pub mgmt: Option<SocketAddr>,
    /// Print the daemon's JSON answer instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `http://127.0.0.1:8080/`, `127.0.0.1:8080`, `localhost:8080`, `[::1]:8080`.
pub fn parse_mgmt(text: &str) -> Result<SocketAddr, CliError> {
    let rest = text.strip_prefix("http://").unwrap_or(text);
    if text.starts_with("https://") {
        return Err(CliError::Https);
    }
    let hostport = rest.split('/').next().unwrap_or(rest);
    let hostport = if hostport.contains(':') && !hostport.ends_with(']') {
        hostport.to_string()
    } else {
        format!("{hostport}:8080")
    };
    hostport
        .to_socket_addrs()
        .map_err(|source| CliError::MgmtAddress { text: text.to_string(), source })?
        .next()
        .ok_or_else(|| CliError::NoAddress(text.to_string()))
}

impl Remote {
    pub fn addr(&self) -> Result<SocketAddr, CliError> {
        super::inspect::mgmt_address(self.config.as_deref(), self.mgmt)
    }

    /// The `data` of `GET path`.
    pub fn get(&self, path: &str) -> Result<serde_json::Value, CliError> {
        super::live::get(self.addr()?, path, None)
    }

    /// The `data` of `POST path` with a JSON body.
    pub fn post(&self, path: &str, body: &serde_json::Value) -> Result<serde_json::Value, CliError> {
        super::live::post(self.addr()?, path, body, None)
    }
}

/// `a=b&c=d` from the pairs that have a value, percent-encoded.
pub fn query(pairs: &[(&str, Option<String>)]) -> String {
    let encoded: Vec<String> =
        pairs.iter().filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", encode(v)))).collect();
    if encoded.is_empty() { String::new() } else { format!("?{}", encoded.join("&")) }
}

/// What a query value keeps as it is: RFC 3986's unreserved characters, and `*`, `/` and `@`,
/// which a query may hold as they are and which keep queue names and addresses readable in logs.
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'*')
    .remove(b'/')
    .remove(b'@');

/// One query value, percent-encoded (UTF-8 bytes outside `QUERY_VALUE` as `%XX`).
pub fn encode(v: &str) -> String {
    percent_encoding::utf8_percent_encode(v, QUERY_VALUE).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn management_addresses() {
        assert_eq!(parse_mgmt("http://127.0.0.1:9000/").unwrap(), "127.0.0.1:9000".parse().unwrap());
        assert_eq!(parse_mgmt("127.0.0.1:9000").unwrap(), "127.0.0.1:9000".parse().unwrap());
        assert_eq!(parse_mgmt("http://127.0.0.1").unwrap(), "127.0.0.1:8080".parse().unwrap());
        assert_eq!(parse_mgmt("[::1]:81").unwrap(), "[::1]:81".parse().unwrap());
        assert!(parse_mgmt("https://127.0.0.1:1").is_err());
        assert_eq!(query(&[("queue", Some("a b/{x}".into())), ("n", None)]), "?queue=a%20b/%7Bx%7D");
        assert_eq!(encode("o'brien+tag@exämple.com&x=1"), "o%27brien%2Btag@ex%C3%A4mple.com%26x%3D1");
    }
}
