//! One pass of a hand-over (`ember drain`): every queued message goes, with the recipients still
//! queued here, to a peer over SMTP — the original envelope (MAIL FROM with ENVID and RET, RCPT
//! with NOTIFY and ORCPT, as stored), the stored bytes, and in front of them `X-Virtual-MTA` and
//! `X-Job` naming the virtual MTA (or pool) and job the message was injected with, which a peer
//! whose `<source>` has `process-x-virtual-mta` and `process-x-job` takes (and strips). A
//! recipient leaves this node's queue only after the peer's 250 for it; one a peer refuses, or
//! every recipient when the peer is unreachable, goes to the next peer; what no peer takes stays
//! queued here. Messages are spread over the peers: message n tries peer n first.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::QueueKey;
use super::manager::{Job, QueueHandle};
use super::worker::Remote;
use crate::delivery::client::{ClientConfig, Connection};
use crate::delivery::{OutgoingMessage, OutgoingRecipient};
use crate::message::{Envelope, MessageId};
use crate::smtp::Reply;
use crate::spool::Spool;

/// A node (or relay) mail is handed to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// The node's cluster name, or the address given with `--to`.
    pub name: String,
    pub addr: SocketAddr,
}

/// What one pass did.
#[derive(Debug, Default)]
pub struct PassReport {
    /// Messages seen queued at the start of the pass (0: the queue is empty).
    pub queued_messages: u64,
    /// Per peer: messages and recipients it took.
    pub handed: BTreeMap<String, (u64, u64)>,
    /// Recipients no peer took, and the last refusal.
    pub kept: u64,
    pub kept_reason: Option<String>,
}

impl PassReport {
    pub fn handed_recipients(&self) -> u64 {
        self.handed.values().map(|(_, r)| r).sum()
    }
}

/// The client settings for peers: opportunistic TLS, no authentication, bounded waits (a peer
/// that hangs must not stall the drain: the next one is tried).
fn client_config(helo: &str) -> ClientConfig {
    ClientConfig {
        connect_timeout: Duration::from_secs(10),
        greeting_timeout: Duration::from_secs(30),
        command_timeout: Duration::from_secs(60),
        data_send_timeout: Duration::from_secs(120),
        data_termination_timeout: Duration::from_secs(300),
        ..ClientConfig::new(helo)
    }
}

/// The stored message with the control headers a peer needs to queue it as it was injected.
fn with_control_headers(envelope: &Envelope, body: Vec<u8>) -> Vec<u8> {
    let clean = |v: &str| v.chars().filter(|c| !c.is_control()).collect::<String>();
    let mut out = Vec::with_capacity(body.len() + 128);
    if let Some(vmta) = &envelope.vmta {
        out.extend_from_slice(format!("X-Virtual-MTA: {}\r\n", clean(vmta)).as_bytes());
    }
    if let Some(job) = &envelope.job_id {
        out.extend_from_slice(format!("X-Job: {}\r\n", clean(job)).as_bytes());
    }
    out.extend_from_slice(&body);
    out
}

/// Open sessions to peers, reused from message to message.
struct Sessions {
    config: ClientConfig,
    open: HashMap<SocketAddr, Connection>,
}

impl Sessions {
    async fn send(&mut self, peer: &Peer, message: &OutgoingMessage) -> Result<(Vec<Reply>, Remote), String> {
        let mut conn = match self.open.remove(&peer.addr) {
            Some(c) if c.is_usable() => c,
            _ => Connection::open(peer.addr, &peer.name, &self.config).await.map_err(|e| e.to_string())?,
        };
        let remote = Remote {
            mx: peer.name.clone(),
            ip: peer.addr.ip().to_string(),
            source_ip: conn.local().ip().to_string(),
            esmtp: conn.esmtp_available(),
            tls: conn.tls(),
            dlv_type: "handover",
        };
        let outcome = conn.send(message).await.map_err(|e| e.to_string())?;
        if conn.is_usable() {
            self.open.insert(peer.addr, conn);
        }
        Ok((outcome.recipients, remote))
    }

    async fn close(self) {
        for (_, conn) in self.open {
            conn.quit().await;
        }
    }
}

/// One queued recipient: its queue, its index in the envelope, the attempts made.
type Queued = (QueueKey, usize, u32);

/// Hands every queued message over to `peers` once. The queue's connections must be closed
/// (the manager is draining), so nothing here races a delivery.
pub async fn pass(queues: &QueueHandle, spool: &Spool, peers: &[Peer], helo: &str) -> PassReport {
    let mut report = PassReport::default();
    // Per message, the (queue, recipient) pairs still queued, in id (arrival) order.
    let mut messages: BTreeMap<MessageId, (Arc<Envelope>, Vec<Queued>)> = BTreeMap::new();
    for (key, job) in queues.queued().await {
        let entry = messages.entry(job.envelope.id).or_insert_with(|| (Arc::clone(&job.envelope), Vec::new()));
        entry.1.extend(job.recipients.iter().map(|&i| (key.clone(), i, job.attempts)));
    }
    report.queued_messages = messages.len() as u64;
    if peers.is_empty() {
        report.kept = messages.values().map(|(_, r)| r.len() as u64).sum();
        report.kept_reason = Some("no live peer to hand over to".into());
        return report;
    }
    let mut sessions = Sessions { config: client_config(helo), open: HashMap::new() };
    for (n, (id, (envelope, mut left))) in messages.into_iter().enumerate() {
        let body = {
            let spool = spool.clone();
            tokio::task::spawn_blocking(move || spool.read_body(id)).await
        };
        let body = match body {
            Ok(Ok(b)) => Arc::new(with_control_headers(&envelope, b)),
            Ok(Err(e)) => {
                // Gone meanwhile (delivered or deleted), or unreadable: it stays as it is.
                tracing::warn!("drain: message {id} not handed over: {e}");
                report.kept += left.len() as u64;
                report.kept_reason = Some(format!("message {id}: {e}"));
                continue;
            }
            Err(e) => {
                tracing::error!("drain: reading message {id} failed: {e}");
                report.kept += left.len() as u64;
                continue;
            }
        };
        for k in 0..peers.len() {
            if left.is_empty() {
                break;
            }
            let peer = &peers[(n + k) % peers.len()];
            let message = OutgoingMessage {
                sender: envelope.sender.clone(),
                recipients: left
                    .iter()
                    .map(|(_, i, _)| {
                        let r = &envelope.recipients[*i];
                        OutgoingRecipient { address: r.address.clone(), notify: r.notify, orcpt: r.orcpt.clone() }
                    })
                    .collect(),
                env_id: envelope.env_id.clone(),
                ret: envelope.ret,
                eight_bit: envelope.eight_bit,
                smtputf8: envelope.smtputf8,
                body: Arc::clone(&body),
            };
            let (replies, remote) = match sessions.send(peer, &message).await {
                Ok(r) => r,
                Err(why) => {
                    tracing::warn!("drain: peer {} ({}) did not take message {id}: {why}", peer.name, peer.addr);
                    report.kept_reason = Some(format!("{} ({}): {why}", peer.name, peer.addr));
                    continue;
                }
            };
            // Accepted recipients, grouped by their queue; the rest try the next peer.
            let mut taken: BTreeMap<(QueueKey, u32), (Vec<usize>, Reply)> = BTreeMap::new();
            let mut refused = Vec::new();
            for ((key, i, attempts), reply) in
                left.drain(..).zip(replies.into_iter().map(Some).chain(std::iter::repeat(None)))
            {
                match reply {
                    Some(r) if r.is_positive() => {
                        taken.entry((key, attempts)).or_insert_with(|| (Vec::new(), r)).0.push(i);
                    }
                    other => {
                        let r = other.map_or_else(|| "no reply".to_string(), |r| r.to_string());
                        report.kept_reason = Some(format!(
                            "{} ({}) refused <{}>: {r}",
                            peer.name, peer.addr, envelope.recipients[i].address
                        ));
                        refused.push((key, i, attempts));
                    }
                }
            }
            left = refused;
            let count: u64 = taken.values().map(|(r, _)| r.len() as u64).sum();
            if count > 0 {
                let entry = report.handed.entry(peer.name.clone()).or_default();
                entry.0 += 1;
                entry.1 += count;
            }
            for ((key, attempts), (recipients, reply)) in taken {
                let job = Job { envelope: Arc::clone(&envelope), recipients, attempts };
                queues.handed_over(key, job, reply, remote.clone()).await;
            }
        }
        report.kept += left.len() as u64;
    }
    sessions.close().await;
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{MessageId, Recipient};

    fn envelope(vmta: Option<&str>, job: Option<&str>) -> Envelope {
        Envelope {
            id: MessageId(1),
            vmta: vmta.map(str::to_string),
            job_id: job.map(str::to_string),
            ..Envelope::new("a@example.net".into(), vec![Recipient::new("b@example.com")])
        }
    }

    #[test]
    fn the_virtual_mta_and_job_travel_in_front_of_the_stored_bytes() {
        let body = b"Subject: s\r\n\r\nhi\r\n".to_vec();
        let out = with_control_headers(&envelope(Some("pool-a"), Some("spring\r\nBcc: x")), body.clone());
        assert_eq!(out, [b"X-Virtual-MTA: pool-a\r\nX-Job: springBcc: x\r\n".as_slice(), &body].concat());
        // Nothing chosen at injection: the bytes go as stored.
        assert_eq!(with_control_headers(&envelope(None, None), body.clone()), body);
    }
}
