//! How a CLI command reaches the running daemon: `--mgmt URL` (`http://` or `https://`, or a
//! bare `HOST:PORT` for plain HTTP), else the `http-mgmt-port` of `--config FILE` (HTTPS when that
//! configuration sets `http-tls-certificate`), else PowerMTA's default `http://127.0.0.1:8080`.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use clap::Args;

use super::client::Client;
use super::error::CliError;

/// The options every command that talks to the daemon takes.
#[derive(Args, Debug, Clone)]
pub struct Remote {
    /// The configuration whose http-mgmt-port the daemon listens on.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// The daemon's management API: http://HOST:PORT, https://HOST:PORT or HOST:PORT.
    #[arg(long, value_parser = parse_mgmt)]
    pub mgmt: Option<Mgmt>,
    /// Print the daemon's JSON answer instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Where the management API answers. `host` is kept as written: over HTTPS it is the name the
/// daemon's certificate must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mgmt {
    pub https: bool,
    pub host: String,
    pub port: u16,
}

/// PowerMTA's management port, for HTTP and HTTPS alike.
const DEFAULT_PORT: u16 = 8080;

impl Mgmt {
    /// The configured listening address; over HTTPS on loopback (or every address) the name is
    /// `localhost`, which a certificate for a loopback service carries and an IP cannot be sent as
    /// (TLS's server name indication carries host names only).
    pub fn from_listen(addr: SocketAddr, https: bool) -> Mgmt {
        let ip = addr.ip();
        let host = if https && (ip.is_loopback() || ip.is_unspecified()) {
            "localhost".to_string()
        } else if ip.is_unspecified() {
            "127.0.0.1".to_string()
        } else if ip.is_ipv6() {
            format!("[{ip}]")
        } else {
            ip.to_string()
        };
        Mgmt { https, host, port: addr.port() }
    }

    /// The URL of `path` (which starts with `/`) on this API.
    pub fn url(&self, path: &str) -> String {
        format!("{self}{path}")
    }

    /// The addresses `host` resolves to.
    pub fn socket_addrs(&self) -> Result<Vec<SocketAddr>, CliError> {
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<SocketAddr> = (host, self.port)
            .to_socket_addrs()
            .map_err(|source| CliError::MgmtAddress { text: self.to_string(), source })?
            .collect();
        if addrs.is_empty() {
            return Err(CliError::NoAddress(self.to_string()));
        }
        Ok(addrs)
    }
}

impl fmt::Display for Mgmt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}:{}", if self.https { "https" } else { "http" }, self.host, self.port)
    }
}

/// `http://127.0.0.1:8080/`, `https://mail.example.com:8080`, `127.0.0.1:8080`,
/// `localhost:8080`, `[::1]:8080`; the port defaults to 8080. The host must resolve.
pub fn parse_mgmt(text: &str) -> Result<Mgmt, CliError> {
    let (https, rest) = match text.split_once("://") {
        Some(("http", rest)) => (false, rest),
        Some(("https", rest)) => (true, rest),
        Some(_) => return Err(CliError::MgmtScheme(text.to_string())),
        None => (false, text),
    };
    let hostport = rest.split('/').next().unwrap_or(rest);
    let (host, port) = match hostport.rsplit_once(':') {
        // A bare IPv6 address without brackets has colons but no port.
        Some((host, port)) if !host.is_empty() && (!host.contains(':') || host.ends_with(']')) => {
            let port = port.parse().map_err(|_| CliError::MgmtPort(text.to_string()))?;
            (host, port)
        }
        _ => (hostport, DEFAULT_PORT),
    };
    if host.is_empty() || (host.contains(':') && !host.starts_with('[')) {
        return Err(CliError::NoAddress(text.to_string()));
    }
    let mgmt = Mgmt { https, host: host.to_string(), port };
    mgmt.socket_addrs().map_err(|e| match e {
        CliError::MgmtAddress { source, .. } => CliError::MgmtAddress { text: text.to_string(), source },
        _ => CliError::NoAddress(text.to_string()),
    })?;
    Ok(mgmt)
}

impl Remote {
    pub fn mgmt(&self) -> Result<Mgmt, CliError> {
        super::inspect::mgmt_address(self.config.as_deref(), self.mgmt.as_ref())
    }

    /// A client of this command's daemon.
    pub fn client(&self) -> Result<Client, CliError> {
        Client::new(self.mgmt()?)
    }

    /// The `data` of `GET path`.
    pub fn get(&self, path: &str) -> Result<serde_json::Value, CliError> {
        self.client()?.get(path)
    }

    /// The `data` of `POST path` with a JSON body.
    pub fn post(&self, path: &str, body: &impl serde::Serialize) -> Result<serde_json::Value, CliError> {
        self.client()?.post(path, body)
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
        let url = |text: &str| parse_mgmt(text).map(|m| m.to_string());
        assert_eq!(url("http://127.0.0.1:9000/").unwrap(), "http://127.0.0.1:9000");
        assert_eq!(url("127.0.0.1:9000").unwrap(), "http://127.0.0.1:9000");
        assert_eq!(url("http://127.0.0.1").unwrap(), "http://127.0.0.1:8080");
        assert_eq!(url("[::1]:81").unwrap(), "http://[::1]:81");
        assert_eq!(url("https://127.0.0.1:1").unwrap(), "https://127.0.0.1:1");
        assert_eq!(url("https://localhost:8443/api").unwrap(), "https://localhost:8443");
        assert_eq!(url("https://[::1]").unwrap(), "https://[::1]:8080");
        let https = parse_mgmt("https://localhost:8443").unwrap();
        assert!(https.https);
        assert_eq!(https.host, "localhost");
        assert_eq!(https.url("/api/v1/status"), "https://localhost:8443/api/v1/status");
        assert!(matches!(parse_mgmt("ftp://127.0.0.1:21"), Err(CliError::MgmtScheme(_))));
        assert!(matches!(parse_mgmt("127.0.0.1:http"), Err(CliError::MgmtPort(_))));
        assert!(matches!(parse_mgmt("https://"), Err(CliError::NoAddress(_))));
        let listen = |text: &str, https| Mgmt::from_listen(text.parse().unwrap(), https).to_string();
        assert_eq!(listen("0.0.0.0:8080", false), "http://127.0.0.1:8080");
        assert_eq!(listen("0.0.0.0:8080", true), "https://localhost:8080");
        assert_eq!(listen("127.0.0.1:81", true), "https://localhost:81");
        assert_eq!(listen("192.0.2.1:81", true), "https://192.0.2.1:81");
        assert_eq!(listen("[2001:db8::1]:81", false), "http://[2001:db8::1]:81");
        assert_eq!(query(&[("queue", Some("a b/{x}".into())), ("n", None)]), "?queue=a%20b/%7Bx%7D");
        assert_eq!(encode("o'brien+tag@exämple.com&x=1"), "o%27brien%2Btag@ex%C3%A4mple.com%26x%3D1");
    }
}
