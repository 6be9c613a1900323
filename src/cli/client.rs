//! The CLI's one client of the daemon's management API (over `ureq`, HTTP or HTTPS): every
//! request carries the API key of `--api-key`/`EMBER_API_KEY`; JSON answers are unwrapped to the
//! `data` member of the API's envelope, refusals and transport failures become `CliError`s that
//! say what went wrong; text bodies (suppression import and export) are sent and read as streams.

use std::io::Read;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use serde::Serialize;
use ureq::http::Response;
use ureq::{Agent, Body};

use super::error::CliError;
use super::remote::Mgmt;

/// How long connecting (with the TLS handshake) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the daemon may stay silent: a reload, a large delete or an import chunk is slow.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);
/// The largest JSON answer read (`maxitems=all` lists of a big spool stay well below it).
const JSON_LIMIT: u64 = 1 << 30;

/// What the command line says about every request: `--api-key` (or `EMBER_API_KEY`) and
/// `--mgmt-ca`.
#[derive(Debug, Default, Clone)]
pub struct Options {
    pub api_key: Option<String>,
    pub ca: Option<PathBuf>,
}

static OPTIONS: OnceLock<Options> = OnceLock::new();

/// Sets the options once, when the command line is parsed.
pub fn configure(options: Options) {
    let _ = OPTIONS.set(options);
}

/// A client of one daemon's management API.
pub struct Client {
    mgmt: Mgmt,
    agent: Agent,
    api_key: Option<String>,
}

impl Client {
    /// A client with the command line's options.
    pub fn new(mgmt: Mgmt) -> Result<Client, CliError> {
        Client::with_options(mgmt, OPTIONS.get().cloned().unwrap_or_default())
    }

    pub fn with_options(mgmt: Mgmt, options: Options) -> Result<Client, CliError> {
        let mut config = Agent::config_builder()
            // Refusals carry a JSON message the operator must see.
            .http_status_as_error(false)
            // A redirect (plain HTTP sent to HTTPS) is reported, not followed with the key.
            .max_redirects(0)
            .max_redirects_will_error(false)
            // The management port is this host's or the site's: never through an HTTP(S)_PROXY
            // meant for the web.
            .proxy(None)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_per_read(Some(ANSWER_TIMEOUT));
        if mgmt.https {
            config = config.tls_config(super::trust::tls_config(options.ca.as_deref())?);
        }
        Ok(Client { mgmt, agent: config.build().new_agent(), api_key: options.api_key })
    }

    /// The `data` of `GET path`.
    pub fn get(&self, path: &str) -> Result<serde_json::Value, CliError> {
        let request = self.with_key(self.agent.get(self.mgmt.url(path)));
        data(self.json(path, request.call())?)
    }

    /// The `data` of `POST path` with a JSON body.
    pub fn post(&self, path: &str, body: &impl Serialize) -> Result<serde_json::Value, CliError> {
        data(self.exchange(path, body)?)
    }

    /// `POST path` with a JSON body: the status and the JSON answer, whatever the status (for
    /// APIs whose refusals are not the management envelope, as the Transmissions API's).
    pub fn exchange(&self, path: &str, body: &impl Serialize) -> Result<(u16, serde_json::Value), CliError> {
        let request = self.with_key(self.agent.post(self.mgmt.url(path)));
        self.json(path, request.send_json(body))
    }

    /// The `data` of `POST path` with a text body.
    pub fn post_text(&self, path: &str, body: &[u8]) -> Result<serde_json::Value, CliError> {
        let request =
            self.with_key(self.agent.post(self.mgmt.url(path))).header("Content-Type", "text/plain; charset=utf-8");
        data(self.json(path, request.send(body))?)
    }

    /// The text body of `GET path`, read as it arrives (an export can be far larger than memory
    /// needs to hold).
    pub fn get_text(&self, path: &str) -> Result<impl Read + use<>, CliError> {
        let request = self.with_key(self.agent.get(self.mgmt.url(path)));
        let response = self.answer(path, request.call())?;
        if response.status() != 200 {
            let (status, json) = read_json(response)?;
            return Err(CliError::refused(status, &json));
        }
        Ok(response.into_body().into_reader())
    }

    fn with_key<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.api_key {
            Some(key) => request.header("X-API-Key", key),
            None => request,
        }
    }

    /// The answer, or why there is none.
    fn answer(&self, path: &str, sent: Result<Response<Body>, ureq::Error>) -> Result<Response<Body>, CliError> {
        let response = sent.map_err(|e| self.failure(e))?;
        if response.status().is_redirection() {
            let location = response.headers().get("location").and_then(|l| l.to_str().ok()).unwrap_or("").to_string();
            let location_base = location.strip_suffix(path).unwrap_or(&location).to_string();
            return Err(CliError::Redirected { url: self.mgmt.to_string(), location, location_base });
        }
        Ok(response)
    }

    fn json(
        &self,
        path: &str,
        sent: Result<Response<Body>, ureq::Error>,
    ) -> Result<(u16, serde_json::Value), CliError> {
        read_json(self.answer(path, sent)?)
    }

    /// A request that got no answer: a certificate the client does not trust is told apart,
    /// since its remedy (`--mgmt-ca`) differs from that of a daemon that does not listen.
    fn failure(&self, e: ureq::Error) -> CliError {
        if let Some(reason) = certificate_problem(&e) {
            return CliError::Certificate { url: self.mgmt.to_string(), reason };
        }
        CliError::Unreachable { url: self.mgmt.to_string(), source: Box::new(e) }
    }
}

/// The status and JSON body of an answer.
fn read_json(response: Response<Body>) -> Result<(u16, serde_json::Value), CliError> {
    let status = response.status().as_u16();
    let bytes = response
        .into_body()
        .into_with_config()
        .limit(JSON_LIMIT)
        .read_to_vec()
        .map_err(|e| CliError::Read(Box::new(e)))?;
    let json = serde_json::from_slice(&bytes).map_err(CliError::NotJson)?;
    Ok((status, json))
}

/// The `data` of a 200 answer, or the daemon's refusal.
fn data((status, json): (u16, serde_json::Value)) -> Result<serde_json::Value, CliError> {
    if status != 200 {
        return Err(CliError::refused(status, &json));
    }
    Ok(json["data"].clone())
}

/// rustls's reason, when the handshake failed on the server's certificate (ureq reports it
/// directly, or inside the I/O error of the stream the handshake ran on).
fn certificate_problem(e: &ureq::Error) -> Option<String> {
    let tls = match e {
        ureq::Error::Rustls(tls) => tls,
        ureq::Error::Io(io) => io.get_ref()?.downcast_ref::<rustls::Error>()?,
        _ => return None,
    };
    matches!(tls, rustls::Error::InvalidCertificate(_)).then(|| tls.to_string())
}
