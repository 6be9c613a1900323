//! One message on an open connection: MAIL, RCPTs, DATA or BDAT, one reply per recipient.

use super::Connection;
use super::envelope::{DotStuffer, MailParams, is_unsafe_address, mail_command, rcpt_command};
use super::error::{ClientError, Phase};
use crate::delivery::{OutgoingMessage, TransactionOutcome};
use crate::smtp::Reply;

/// Body bytes handed to the socket per write; each write has `data_send_timeout`.
const DATA_BLOCK: usize = 64 * 1024;

/// Commands per pipelined write. Replies to one group are read before the next group is sent,
/// so neither side can block writing while the other does too (RFC 2920 §3.1): 100 replies fit
/// in any socket buffer.
const PIPELINE_GROUP: usize = 100;

/// The replies to MAIL, the RCPTs and (pipelined) DATA.
struct Envelope {
    mail: Reply,
    rcpts: Vec<Reply>,
    /// The reply to a pipelined DATA.
    data: Option<Reply>,
    /// The 421 that came: the server is leaving.
    closing: Option<Reply>,
}

impl Connection {
    /// Sends one message. See `TransactionOutcome`: one reply per recipient, in order.
    ///
    /// With more recipients than `max_rcpt_per_transaction`, the message goes as several
    /// transactions. If the server drops or times out in the first one, the error is returned
    /// (nothing was delivered, the caller defers everyone). If that happens in a later one, the
    /// earlier replies stand and the rest get the error's synthetic 4xx reply, so no recipient
    /// that was delivered is deferred again; the connection is then no longer usable.
    pub async fn send(&mut self, message: &OutgoingMessage) -> Result<TransactionOutcome, ClientError> {
        if !self.usable {
            return Err(ClientError::Disconnected {
                phase: Phase::Mail,
                detail: "the session was closed by an earlier failure".into(),
            });
        }
        let mut replies: Vec<Option<Reply>> = vec![None; message.recipients.len()];
        self.refuse_locally(message, &mut replies);
        let todo: Vec<usize> = (0..replies.len()).filter(|&i| replies[i].is_none()).collect();
        let per = match self.config.max_rcpt_per_transaction {
            0 => usize::MAX,
            n => n,
        };
        for (n, chunk) in todo.chunks(per).enumerate() {
            let outcome = if self.usable {
                self.transaction(message, chunk).await
            } else {
                Err(ClientError::Disconnected { phase: Phase::Mail, detail: "the server closed the session".into() })
            };
            match outcome {
                Ok(got) => {
                    for (&i, reply) in chunk.iter().zip(got) {
                        replies[i] = Some(reply);
                    }
                }
                Err(e) if n == 0 => {
                    self.usable = false;
                    return Err(e);
                }
                Err(e) => {
                    self.usable = false;
                    let reply = e.reply();
                    tracing::info!(mx = %self.mx_name, "transaction {} of a message failed: {e}", n + 1);
                    for slot in replies.iter_mut().filter(|r| r.is_none()) {
                        *slot = Some(reply.clone());
                    }
                    break;
                }
            }
        }
        if !todo.is_empty() {
            self.messages_sent += 1;
        }
        // Every slot is filled by now: refused locally, by a transaction, or by the error that
        // ended the later ones.
        Ok(TransactionOutcome { recipients: replies.into_iter().map(|r| r.unwrap_or_else(unfilled)).collect() })
    }

    /// Recipients that cannot go to this server at all get a reply without a transaction: an
    /// address that would break the command line, or a non-ASCII address for a server without
    /// SMTPUTF8 (RFC 6531 §3.2).
    fn refuse_locally(&self, message: &OutgoingMessage, replies: &mut [Option<Reply>]) {
        let no_utf8 = |addr: &str| !addr.is_ascii() && !self.ext.smtputf8;
        let sender_refusal = if is_unsafe_address(&message.sender) {
            Some(Reply::new(501, "5.1.7", "bad sender address syntax"))
        } else if no_utf8(&message.sender) {
            Some(Reply::new(553, "5.6.7", format!("{} does not offer SMTPUTF8, needed for the sender", self.mx_name)))
        } else {
            None
        };
        for (slot, rcpt) in replies.iter_mut().zip(&message.recipients) {
            *slot = if let Some(r) = &sender_refusal {
                Some(r.clone())
            } else if is_unsafe_address(&rcpt.address) {
                Some(Reply::new(501, "5.1.3", "bad recipient address syntax"))
            } else if no_utf8(&rcpt.address) {
                Some(Reply::new(
                    553,
                    "5.6.7",
                    format!("{} does not offer SMTPUTF8, needed for this address", self.mx_name),
                ))
            } else {
                None
            };
        }
    }

    /// One transaction for the recipients at `chunk`.
    async fn transaction(&mut self, message: &OutgoingMessage, chunk: &[usize]) -> Result<Vec<Reply>, ClientError> {
        let cfg = &self.config;
        let dsn = self.ext.dsn && !cfg.ignore_dsn;
        let needs_utf8 = message.smtputf8
            || !message.sender.is_ascii()
            || chunk.iter().any(|&i| !message.recipients[i].address.is_ascii());
        let params = MailParams {
            size: self.ext.size.is_some(),
            eight_bit_mime: message.eight_bit && self.ext.eight_bit_mime && !cfg.ignore_8bitmime,
            smtputf8: needs_utf8 && self.ext.smtputf8,
            dsn,
        };
        let bdat = self.ext.chunking && !cfg.ignore_chunking;
        let pipelining = self.ext.pipelining && !cfg.ignore_pipelining;
        let mail = mail_command(message, params);
        let rcpts: Vec<Vec<u8>> = chunk.iter().map(|&i| rcpt_command(&message.recipients[i], dsn)).collect();
        let env = if pipelining {
            self.envelope_pipelined(mail, rcpts, !bdat).await?
        } else {
            self.envelope_in_turn(mail, rcpts).await?
        };
        if let Some(bye) = &env.closing {
            // The server is leaving: accepted recipients were not delivered either.
            self.usable = false;
            let bye = bye.clone();
            return Ok(env.rcpts.into_iter().map(|r| if r.is_positive() { bye.clone() } else { r }).collect());
        }
        if !env.mail.is_positive() {
            self.abort(&env).await;
            return Ok(vec![env.mail; chunk.len()]);
        }
        if !env.rcpts.iter().any(Reply::is_positive) {
            self.abort(&env).await;
            return Ok(env.rcpts);
        }
        let sent = if bdat { self.send_bdat(message).await } else { self.send_data(message, env.data).await };
        let end = match sent {
            Ok(end) => end,
            Err(e) => {
                // The data had started: the receiver may hold the message already.
                let decided = self.config.transfer.reply_for(&e);
                if self.config.log_transfer_failures {
                    let outcome = decided.as_ref().map_or_else(|| "deferred".to_string(), ToString::to_string);
                    tracing::warn!(mx = %self.mx_name, addr = %self.remote, "transfer failure: {e}; recipients: {outcome}");
                }
                let Some(reply) = decided else { return Err(e) };
                self.usable = false;
                return Ok(env.rcpts.into_iter().map(|r| if r.is_positive() { reply.clone() } else { r }).collect());
            }
        };
        let reply = match end {
            DataEnd::Refused(reply) | DataEnd::Final(reply) if reply.code == 421 => {
                self.usable = false;
                reply
            }
            DataEnd::Refused(reply) => {
                self.reset().await;
                reply
            }
            DataEnd::Final(reply) => {
                // A refused BDAT may leave the transaction open (RFC 3030 §4.2); after DATA's
                // end it is over either way.
                if bdat && !reply.is_positive() {
                    self.reset().await;
                }
                reply
            }
        };
        Ok(env.rcpts.into_iter().map(|r| if r.is_positive() { reply.clone() } else { r }).collect())
    }

    /// MAIL, RCPTs and (`with_data`) DATA in pipelined groups, replies matched in order.
    async fn envelope_pipelined(
        &mut self,
        mail: Vec<u8>,
        rcpts: Vec<Vec<u8>>,
        with_data: bool,
    ) -> Result<Envelope, ClientError> {
        let timeout = self.config.command_timeout;
        let n = rcpts.len();
        let mut commands: Vec<(Vec<u8>, Phase)> = Vec::with_capacity(n + 2);
        commands.push((mail, Phase::Mail));
        commands.extend(rcpts.into_iter().map(|r| (r, Phase::Rcpt)));
        if with_data {
            commands.push((b"DATA\r\n".to_vec(), Phase::Data));
        }
        let mut replies: Vec<Reply> = Vec::with_capacity(commands.len());
        let mut closing: Option<Reply> = None;
        for group in commands.chunks(PIPELINE_GROUP) {
            if closing.is_some() || replies.first().is_some_and(|m| !m.is_positive()) {
                break;
            }
            let batch: Vec<u8> = group.iter().flat_map(|(c, _)| c.iter().copied()).collect();
            self.wire.write(&batch, timeout, group[0].1).await?;
            for (_, phase) in group {
                let reply = match &closing {
                    Some(c) => c.clone(),
                    None => self.wire.read_reply(timeout, *phase).await?,
                };
                if reply.code == 421 {
                    closing = Some(reply.clone());
                }
                replies.push(reply);
            }
        }
        let mail = replies[0].clone();
        // Commands not sent (MAIL refused or the server leaving) get the reply that stopped them.
        let stop = closing.clone().unwrap_or_else(|| mail.clone());
        let sent = replies.len();
        let rcpts = (1..=n).map(|i| if i < sent { replies[i].clone() } else { stop.clone() }).collect();
        let data = if with_data && sent == n + 2 { replies.pop() } else { None };
        Ok(Envelope { mail, rcpts, data, closing })
    }

    /// MAIL, then each RCPT, one at a time.
    async fn envelope_in_turn(&mut self, mail: Vec<u8>, rcpts: Vec<Vec<u8>>) -> Result<Envelope, ClientError> {
        let timeout = self.config.command_timeout;
        let mail = self.wire.command(&mail, timeout, Phase::Mail).await?;
        let mut closing = (mail.code == 421).then(|| mail.clone());
        if !mail.is_positive() {
            let rcpts = vec![mail.clone(); rcpts.len()];
            return Ok(Envelope { mail, rcpts, data: None, closing });
        }
        let mut replies = Vec::with_capacity(rcpts.len());
        for rcpt in rcpts {
            let reply = match &closing {
                Some(c) => c.clone(),
                None => self.wire.command(&rcpt, timeout, Phase::Rcpt).await?,
            };
            if reply.code == 421 {
                closing = Some(reply.clone());
            }
            replies.push(reply);
        }
        Ok(Envelope { mail, rcpts: replies, data: None, closing })
    }

    /// Ends a transaction that will carry no data: an empty message if a pipelined DATA was
    /// already accepted, then RSET.
    async fn abort(&mut self, env: &Envelope) {
        if env.data.as_ref().is_some_and(|d| d.code == 354) {
            let timeout = self.config.data_termination_timeout;
            if self.wire.command(b".\r\n", timeout, Phase::DataTermination).await.is_err() {
                self.usable = false;
                return;
            }
        }
        self.reset().await;
    }

    /// RSET; a session where it fails is not used again.
    async fn reset(&mut self) {
        match self.wire.command(b"RSET\r\n", self.config.command_timeout, Phase::Rset).await {
            Ok(reply) if reply.is_positive() => {}
            _ => self.usable = false,
        }
    }

    /// DATA (unless its pipelined reply is at hand), the dot-stuffed body, the final reply.
    async fn send_data(&mut self, message: &OutgoingMessage, data: Option<Reply>) -> Result<DataEnd, ClientError> {
        let reply = match data {
            Some(reply) => reply,
            None => self.wire.command(b"DATA\r\n", self.config.command_timeout, Phase::Data).await?,
        };
        if reply.code != 354 {
            return Ok(DataEnd::Refused(reply));
        }
        let mut stuffer = DotStuffer::default();
        let mut out = Vec::with_capacity(DATA_BLOCK + DATA_BLOCK / 16);
        let mut blocks = message.body.chunks(DATA_BLOCK).peekable();
        loop {
            out.clear();
            if let Some(block) = blocks.next() {
                stuffer.push(block, &mut out);
            }
            let last = blocks.peek().is_none();
            if last {
                stuffer.finish(&mut out);
            }
            self.wire.write(&out, self.config.data_send_timeout, Phase::DataSend).await?;
            if last {
                break;
            }
        }
        let end = self.wire.read_reply(self.config.data_termination_timeout, Phase::DataTermination).await?;
        Ok(DataEnd::Final(end))
    }

    /// `BDAT n LAST` with the body as it is (a missing final CRLF added), the final reply.
    async fn send_bdat(&mut self, message: &OutgoingMessage) -> Result<DataEnd, ClientError> {
        let body = &message.body[..];
        let tail: &[u8] = if body.is_empty() || body.ends_with(b"\r\n") { b"" } else { b"\r\n" };
        let mut out = format!("BDAT {} LAST\r\n", body.len() + tail.len()).into_bytes();
        let mut blocks = body.chunks(DATA_BLOCK).peekable();
        loop {
            if let Some(block) = blocks.next() {
                out.extend_from_slice(block);
            }
            let last = blocks.peek().is_none();
            if last {
                out.extend_from_slice(tail);
            }
            self.wire.write(&out, self.config.data_send_timeout, Phase::DataSend).await?;
            out.clear();
            if last {
                break;
            }
        }
        let end = self.wire.read_reply(self.config.data_termination_timeout, Phase::DataTermination).await?;
        Ok(DataEnd::Final(end))
    }
}

/// How the data phase ended.
enum DataEnd {
    /// DATA itself was refused; the transaction is still open.
    Refused(Reply),
    /// The reply to the end of data.
    Final(Reply),
}

/// Never used (see `send`); a transient reply rather than a panic if that ever changes.
fn unfilled() -> Reply {
    Reply::new(451, "4.3.0", "no reply recorded")
}
