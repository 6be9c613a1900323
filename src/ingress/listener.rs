//! SMTP listeners: `smtp-listener ADDR:PORT [source=NAME]` lines and `<smtp-listener>` blocks,
//! the global inbound connection cap (`total-max-smtp-in`, shared with `<source-group>` caps and
//! reservations, `groups.rs`) and what happens at the cap (`smtp-await-slot`: wait for a slot,
//! else `421`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::context::Context;
use super::groups::{self, Admission, SourceGroups};
use super::session::{Connection, serve};
use super::tls::{ServerTls, server_config};
use crate::config::value::Value;
use crate::config::values::ListenAddr;
use crate::config::{Config, Dir};

/// One configured listener.
#[derive(Clone, Debug)]
pub struct ListenerSpec {
    pub addr: SocketAddr,
    pub source: Option<String>,
    pub implicit_tls: bool,
    pub await_slot: Option<bool>,
    /// A listener-specific certificate (PEM with key).
    pub certificate: Option<std::path::PathBuf>,
    /// `tls-allow-tlsv1.2` of the listener block (else `smtp-server-tls-allow-tlsv1.2`).
    pub allow_tls12: Option<bool>,
    /// `tls-ca-file` of the listener block (else `smtp-server-tls-ca-file`).
    pub client_ca: Option<std::path::PathBuf>,
}

fn socket_addr(l: &ListenAddr) -> SocketAddr {
    // A CIDR listener (`0/0:25`) binds the unspecified address of its family.
    let ip = if l.cidr.is_single_host() {
        l.cidr.addr()
    } else if l.cidr.addr().is_ipv4() {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
    };
    SocketAddr::new(ip, l.port)
}

/// The listeners a configuration asks for; PowerMTA's default `0.0.0.0:25` when none.
pub fn specs(config: &Config) -> Vec<ListenerSpec> {
    let mut out = Vec::new();
    for e in config.global.all(Dir::SmtpListener) {
        if let Value::Words(w) = &e.value
            && let Ok(l) = ListenAddr::parse(&w[0])
        {
            let source = w.iter().skip(1).find_map(|s| s.strip_prefix("source=")).map(str::to_string);
            out.push(ListenerSpec {
                addr: socket_addr(&l),
                source,
                // `smtp-listener ADDR:PORT tls=yes`: SMTPS, as `immediate-tls` in a listener block.
                implicit_tls: w.iter().any(|s| s == "tls=yes"),
                await_slot: None,
                certificate: None,
                allow_tls12: None,
                client_ca: None,
            });
        }
    }
    for b in config.blocks_of("smtp-listener") {
        if let Some(l) = b.arg.as_deref().and_then(|a| ListenAddr::parse(a).ok()) {
            out.push(ListenerSpec {
                addr: socket_addr(&l),
                source: b.settings.text(Dir::SourceRef).map(str::to_string),
                implicit_tls: b.settings.flag(Dir::ImmediateTls),
                await_slot: b.settings.get(Dir::AwaitSlot).map(|_| b.settings.flag(Dir::AwaitSlot)),
                certificate: b.settings.path(Dir::TlsCertificate).map(|p| config.path(p)),
                allow_tls12: b.settings.get(Dir::TlsAllowTlsv12).map(|_| b.settings.flag(Dir::TlsAllowTlsv12)),
                client_ca: b.settings.path(Dir::TlsCaFile).map(|p| config.path(p)),
            });
        }
    }
    if out.is_empty() {
        out.push(ListenerSpec {
            addr: "0.0.0.0:25".parse().expect("literal"),
            source: None,
            implicit_tls: false,
            await_slot: None,
            certificate: None,
            allow_tls12: None,
            client_ca: None,
        });
    }
    out
}

/// The server-wide TLS settings (`smtp-server-tls-*`); `None` without a certificate.
fn global_spec(config: &Config) -> Option<ServerTls> {
    Some(ServerTls {
        certificate: config.path(config.global.path(Dir::SmtpServerTlsCertificate)?),
        allow_tls12: config.global.flag(Dir::SmtpServerTlsAllowTlsv12),
        client_ca: config.global.path(Dir::SmtpServerTlsCaFile).map(|p| config.path(p)),
    })
}

/// The STARTTLS configuration of the whole server (`smtp-server-tls-certificate`), if any.
pub fn global_tls(config: &Config) -> Result<Option<Arc<rustls::ServerConfig>>, super::tls::TlsConfigError> {
    global_spec(config).map(|spec| server_config(&spec)).transpose()
}

/// The TLS settings of one listener: its block's, each falling back to the server-wide one.
/// `None` when neither names a certificate.
pub fn listener_tls(config: &Config, spec: &ListenerSpec) -> Option<ServerTls> {
    let global = global_spec(config);
    let certificate = spec.certificate.clone().or_else(|| global.as_ref().map(|g| g.certificate.clone()))?;
    Some(ServerTls {
        certificate,
        allow_tls12: spec.allow_tls12.unwrap_or(config.policy.server_allow_tls12),
        client_ca: spec.client_ca.clone().or_else(|| global.and_then(|g| g.client_ca)),
    })
}

/// A bound listener, ready to accept.
pub struct Bound {
    pub spec: ListenerSpec,
    pub listener: TcpListener,
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// Why the listeners cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] super::tls::TlsConfigError),
    #[error("<smtp-listener {0}> has immediate-tls but no tls-certificate (nor smtp-server-tls-certificate)")]
    ImmediateTlsWithoutCertificate(SocketAddr),
}

/// Binds every listener before any accepts, so a port in use stops start-up with a clear error.
pub async fn bind(config: &Config, global_tls: &Option<Arc<rustls::ServerConfig>>) -> Result<Vec<Bound>, BindError> {
    let mut bound = Vec::new();
    for spec in specs(config) {
        let listener =
            TcpListener::bind(spec.addr).await.map_err(|source| BindError::Listen { addr: spec.addr, source })?;
        // A listener without TLS settings of its own shares the server-wide configuration.
        let tls = match listener_tls(config, &spec) {
            Some(own) if Some(&own) != global_spec(config).as_ref() => Some(server_config(&own)?),
            _ => global_tls.clone(),
        };
        if spec.implicit_tls && tls.is_none() {
            return Err(BindError::ImmediateTlsWithoutCertificate(spec.addr));
        }
        bound.push(Bound { spec, listener, tls });
    }
    Ok(bound)
}

/// Accepts connections forever, each session running on the context current when it arrived.
pub async fn accept_loop(
    bound: Bound,
    contexts: Arc<ArcSwap<Context>>,
    slots: Arc<Semaphore>,
    groups: Arc<SourceGroups>,
) {
    loop {
        let (mut socket, peer) = match bound.listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::error!("accept on {}: {e}", bound.spec.addr);
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = socket.set_nodelay(true);
        let ctx = contexts.load_full();
        if ctx.intake.is_closed() {
            let mut refusal = Vec::new();
            super::intake::Intake::refusal(ctx.host_name()).write_to(&mut refusal);
            tokio::spawn(async move {
                let _ = socket.write_all(&refusal).await;
                let _ = socket.shutdown().await;
            });
            continue;
        }
        let await_slot = bound.spec.await_slot.unwrap_or(ctx.config.policy.smtp_await_slot);
        let group = groups::group_of(&ctx.config, peer.ip(), bound.spec.source.as_deref());
        let admitted = loop {
            break match groups.admit(&ctx.config, group.as_deref(), &slots) {
                Admission::Admitted(slot) => Ok(slot),
                Admission::TotalFull if await_slot => {
                    // Wait until a slot is free, then decide again (reservations still apply).
                    match slots.acquire().await {
                        Ok(p) => drop(p),
                        Err(_) => return,
                    }
                    continue;
                }
                Admission::TotalFull => Err("too many connections".to_string()),
                Admission::Reserved => Err("too many connections (the free ones are reserved)".to_string()),
                Admission::GroupFull { group, max } => {
                    Err(format!("too many connections from source-group {group} (max-smtp-in {max})"))
                }
            };
        };
        let permit = match admitted {
            Ok(slot) => slot,
            Err(refusal) => {
                let host = ctx.host_name().to_string();
                tokio::spawn(async move {
                    let _ =
                        socket.write_all(format!("421 4.7.0 {host} {refusal}, try again later\r\n").as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
                continue;
            }
        };
        let local = socket.local_addr().unwrap_or(bound.spec.addr);
        let tls = bound.tls.clone();
        let spec = bound.spec.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let conn = Connection {
                peer,
                local,
                listener_source: spec.source.clone(),
                tls: tls.clone(),
                encrypted: spec.implicit_tls,
                client_names: Vec::new(),
            };
            if spec.implicit_tls {
                let Some(tls) = tls else { return };
                match tokio_rustls::TlsAcceptor::from(tls).accept(socket).await {
                    Ok(stream) => {
                        let conn = Connection { client_names: super::tls::client_names(stream.get_ref().1), ..conn };
                        serve(ctx, conn, Box::new(stream)).await
                    }
                    Err(e) => tracing::info!(%peer, "TLS handshake failed on {}: {e}", spec.addr),
                }
            } else {
                serve(ctx, conn, Box::new(socket)).await;
            }
        });
    }
}
