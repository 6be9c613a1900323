//! Local delivery types (`type` in `<domain>`): what a queue does with its mail when it is not
//! relayed over SMTP. `discard` drops it (recorded as delivered, or as bounced under
//! `discard-as-bounce`), `file` writes it to disk (`file.rs`), `pipe` runs a command (`pipe.rs`).
//! Paths and command arguments take recipient macros (`config::template`).
//!
//! Every recipient gets its own copy and its own reply, which the queue treats like an SMTP
//! receiver's: 2xx delivered, 4xx deferred and retried, 5xx bounced.

pub mod file;
pub mod pipe;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::config::settings::Settings;
use crate::config::template::{self, CommandError, Macros, Template, TemplateError};
use crate::config::{Dir, policy};
use crate::delivery::OutgoingMessage;
use crate::smtp::Reply;
use file::FileFormat;
use pipe::CommandLine;

/// A queue's local delivery settings that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocalError {
    #[error("type file needs a file-destination")]
    NoDestination,
    #[error("type pipe needs a command")]
    NoCommand,
    #[error("file-destination: {0}")]
    Destination(TemplateError),
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error("type http-delivery is not supported by Ember yet")]
    Http,
}

#[derive(Debug, Clone)]
enum Method {
    Discard { as_bounce: bool },
    File { format: FileFormat, destination: Template, base: PathBuf },
    Pipe { command: CommandLine, timeout: Duration },
}

/// How one queue delivers locally.
#[derive(Debug, Clone)]
pub struct LocalDelivery {
    method: Method,
    /// `macro-variables-preserve-case`.
    preserve_case: bool,
}

/// What a copy's macros and file names need besides the message.
pub struct Context<'a> {
    pub queue: &'a str,
    pub vmta: &'a str,
    pub job_id: &'a str,
    pub msg_id: &'a str,
    /// The envelope index of each recipient of the message, which names its new file: unique
    /// per recipient even when a message's recipients are delivered in several jobs.
    pub recipients: &'a [usize],
}

impl LocalDelivery {
    /// The queue's local delivery, or `None` for `type smtp`. A relative `file-destination` is
    /// taken from `config_dir`.
    pub fn from_settings(s: &Settings, config_dir: &Path) -> Option<Result<LocalDelivery, LocalError>> {
        let preserve_case = s.flag(Dir::MacroVariablesPreserveCase);
        let method = match policy::text(s, Dir::DeliveryType) {
            "smtp" => return None,
            "discard" => Ok(Method::Discard { as_bounce: s.flag(Dir::DiscardAsBounce) }),
            "file" => file_method(s, config_dir),
            "pipe" => pipe_method(s),
            _ => Err(LocalError::Http),
        };
        Some(method.map(|method| LocalDelivery { method, preserve_case }))
    }

    /// `dlvType` in accounting records.
    pub fn dlv_type(&self) -> &'static str {
        match self.method {
            Method::Discard { .. } => "discard",
            Method::File { .. } => "file",
            Method::Pipe { .. } => "pipe",
        }
    }

    /// Delivers one message: one reply per recipient, in order.
    pub async fn deliver(&self, message: &OutgoingMessage, ctx: &Context<'_>) -> Vec<Reply> {
        let mut replies = Vec::with_capacity(message.recipients.len());
        for (i, rcpt) in message.recipients.iter().enumerate() {
            let macros = Macros {
                rcpt: &rcpt.address,
                sender: &message.sender,
                queue: ctx.queue,
                vmta: ctx.vmta,
                job_id: ctx.job_id,
                env_id: message.env_id.as_deref().unwrap_or(""),
                msg_id: ctx.msg_id,
                preserve_case: self.preserve_case,
            };
            let reply = match &self.method {
                Method::Discard { as_bounce: false } => Reply::new(250, "2.0.0", "discarded (type discard)"),
                Method::Discard { as_bounce: true } => {
                    Reply::new(550, "5.3.0", "discarded (type discard, discard-as-bounce yes)")
                }
                Method::File { format, destination, base } => {
                    let path = base.join(destination.expand(&macros, template::path_component));
                    let owned = (
                        message.sender.clone(),
                        rcpt.address.clone(),
                        macros.env_id.to_string(),
                        ctx.job_id.to_string(),
                        Arc::clone(&message.body),
                        format!("{}-{}", ctx.msg_id, ctx.recipients.get(i).copied().unwrap_or(i)),
                    );
                    let (format, target) = (*format, path.clone());
                    // File writes and flock block: off the async threads.
                    let written = tokio::task::spawn_blocking(move || {
                        let (sender, rcpt, env_id, job_id, body, unique) = owned;
                        let copy = file::Copy {
                            sender: &sender,
                            rcpt: &rcpt,
                            env_id: &env_id,
                            job_id: &job_id,
                            body: &body,
                            now: crate::time::now_secs(),
                            unique: &unique,
                        };
                        file::write(format, &target, &copy)
                    })
                    .await
                    .unwrap_or_else(|e| Err(std::io::Error::other(e)));
                    match written {
                        Ok(p) => Reply::new(250, "2.0.0", format!("written to {}", p.display())),
                        // Full disks and wrong permissions are fixed by the operator: retry.
                        Err(e) => Reply::new(451, "4.3.0", format!("cannot write {}: {e}", path.display())),
                    }
                }
                Method::Pipe { command, timeout } => command.run(&macros, &file::to_lf(&message.body), *timeout).await,
            };
            replies.push(reply);
        }
        replies
    }
}

fn file_method(s: &Settings, config_dir: &Path) -> Result<Method, LocalError> {
    let destination = s.text(Dir::FileDestination).ok_or(LocalError::NoDestination)?;
    let destination = Template::parse(destination).map_err(LocalError::Destination)?;
    // The table's word list is the one `FileFormat::parse` knows.
    let format = FileFormat::parse(policy::text(s, Dir::FileFormat)).unwrap_or(FileFormat::NewfilePlain);
    Ok(Method::File { format, destination, base: config_dir.to_path_buf() })
}

fn pipe_method(s: &Settings) -> Result<Method, LocalError> {
    let command = CommandLine::parse(s.text(Dir::Command).ok_or(LocalError::NoCommand)?)?;
    // The command plays the receiver's part after the data is sent: it has as long as an SMTP
    // server has to accept the end of data.
    let timeout = policy::interval(s, Dir::SmtpDataTerminationTimeout);
    Ok(Method::Pipe { command, timeout })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::OutgoingRecipient;

    fn message(rcpts: &[&str]) -> OutgoingMessage {
        OutgoingMessage {
            sender: "s@ex.com".into(),
            recipients: rcpts
                .iter()
                .map(|r| OutgoingRecipient { address: r.to_string(), notify: Default::default(), orcpt: None })
                .collect(),
            env_id: None,
            ret: None,
            eight_bit: false,
            smtputf8: false,
            body: Arc::new(b"Subject: x\r\n\r\nbody\r\n".to_vec()),
        }
    }

    fn ctx(recipients: &[usize]) -> Context<'_> {
        Context { queue: "ex.org/{default}", vmta: "{default}", job_id: "", msg_id: "7", recipients }
    }

    #[tokio::test]
    async fn each_recipient_gets_its_own_file_named_by_its_envelope_position() {
        let dir = tempfile::tempdir().unwrap();
        let local = LocalDelivery {
            method: Method::File {
                format: FileFormat::NewfilePlain,
                destination: Template::parse("$domain").unwrap(),
                base: dir.path().to_path_buf(),
            },
            preserve_case: false,
        };
        let replies = local.deliver(&message(&["a@Ex.org", "b@ex.org"]), &ctx(&[3, 5])).await;
        assert!(replies.iter().all(|r| r.code == 250), "{replies:?}");
        let mut names: Vec<_> =
            std::fs::read_dir(dir.path().join("ex.org")).unwrap().map(|e| e.unwrap().file_name()).collect();
        names.sort();
        assert_eq!(names, ["7-3.eml", "7-5.eml"]);
        assert_eq!(local.dlv_type(), "file");
    }

    #[tokio::test]
    async fn discard_delivers_or_bounces_every_recipient() {
        let kept = LocalDelivery { method: Method::Discard { as_bounce: false }, preserve_case: false };
        let bounced = LocalDelivery { method: Method::Discard { as_bounce: true }, preserve_case: false };
        let m = message(&["a@ex.org", "b@ex.org"]);
        assert!(kept.deliver(&m, &ctx(&[0, 1])).await.iter().all(|r| r.code == 250));
        assert!(bounced.deliver(&m, &ctx(&[0, 1])).await.iter().all(|r| r.code == 550 && r.enhanced == "5.3.0"));
        assert_eq!(kept.dlv_type(), "discard");
    }
}
