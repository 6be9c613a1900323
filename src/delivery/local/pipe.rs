//! `type pipe`: running `command` once per recipient with the message on its standard input,
//! and reading the exit status as `sysexits.h` defines it.
//!
//! The command line is split into words by `config::template` (double or single quotes group
//! words; inside double quotes `\"` and `\\` escape) and run directly, without a shell: a macro
//! such as `$user` becomes part of one argument and can never inject shell syntax.
//!
//! Exit 0 is delivered. `EX_TEMPFAIL` (75) and `EX_OSERR` (71), a signal, a timeout or any
//! status outside `sysexits.h` defer the recipient (nothing is lost; `bounce-after` still
//! applies). The other `sysexits.h` codes bounce it with the matching enhanced status.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::config::template::{CommandError, Macros, Template, command_words};
use crate::smtp::Reply;

/// A parsed `command`: the program and its arguments, each a template.
#[derive(Debug, Clone)]
pub struct CommandLine {
    words: Vec<Template>,
}

/// How much of the command's standard error is kept for the reply text.
const STDERR_KEPT: usize = 512;

impl CommandLine {
    pub fn parse(text: &str) -> Result<CommandLine, CommandError> {
        Ok(CommandLine { words: command_words(text)? })
    }

    /// The words, macros expanded (a NUL cannot reach an argument).
    pub fn expand(&self, macros: &Macros<'_>) -> Vec<String> {
        self.words.iter().map(|w| w.expand(macros, |v| v.replace('\0', "_"))).collect()
    }

    /// Runs the command for one recipient: `input` on its standard input, `SENDER` and
    /// `RECIPIENT` in its environment, killed after `timeout`.
    pub async fn run(&self, macros: &Macros<'_>, input: &[u8], timeout: Duration) -> Reply {
        let argv = self.expand(macros);
        let mut child = match tokio::process::Command::new(&argv[0])
            .args(&argv[1..])
            .env("SENDER", macros.sender)
            .env("RECIPIENT", macros.rcpt)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
        {
            Ok(c) => c,
            // A missing program is a configuration error the operator can fix: keep the mail.
            Err(e) => return Reply::new(451, "4.3.0", format!("cannot run {}: {e}", argv[0])),
        };
        let mut stdin = child.stdin.take();
        let mut stderr = child.stderr.take();
        let run = async {
            // The input is written while standard error is read, so a command that writes a
            // lot of errors before reading its input cannot deadlock with Ember.
            let feed = async {
                if let Some(mut s) = stdin.take() {
                    // A command that exits without reading all its input is judged by its
                    // status, not by the broken pipe.
                    let _ = s.write_all(input).await;
                }
            };
            let mut errors = Vec::new();
            let drain = async {
                if let Some(s) = stderr.as_mut() {
                    let _ = s.read_to_end(&mut errors).await;
                }
            };
            tokio::join!(feed, drain);
            let status = child.wait().await;
            (status, errors)
        };
        match tokio::time::timeout(timeout, run).await {
            Err(_) => Reply::new(451, "4.4.2", format!("{} did not finish within {}s", argv[0], timeout.as_secs())),
            Ok((Err(e), _)) => Reply::new(451, "4.3.0", format!("cannot wait for {}: {e}", argv[0])),
            Ok((Ok(status), errors)) => {
                let said = String::from_utf8_lossy(&errors[..errors.len().min(STDERR_KEPT)]).into_owned();
                match status.code() {
                    Some(code) => exit_reply(code, &argv[0], &said),
                    None => Reply::new(451, "4.3.0", format!("{} was killed by a signal", argv[0])),
                }
            }
        }
    }
}

/// The reply an exit status stands for; `said` (the command's standard error) ends the text,
/// on one line.
pub fn exit_reply(code: i32, program: &str, said: &str) -> Reply {
    let said = said.split_whitespace().collect::<Vec<_>>().join(" ");
    let (reply_code, status, meaning) = match code {
        0 => (250, "2.0.0", "delivered"),
        64 => (554, "5.3.0", "command line usage error"),
        65 => (554, "5.6.0", "data format error"),
        66 => (554, "5.3.0", "cannot open input"),
        67 => (550, "5.1.1", "addressee unknown"),
        68 => (550, "5.1.2", "host name unknown"),
        69 => (554, "5.3.0", "service unavailable"),
        70 => (554, "5.3.0", "internal software error"),
        71 => (451, "4.3.0", "system error"),
        72 => (554, "5.3.0", "critical OS file missing"),
        73 => (554, "5.2.0", "cannot create output file"),
        74 => (554, "5.3.0", "input/output error"),
        75 => (451, "4.3.0", "temporary failure"),
        76 => (554, "5.5.0", "remote error in protocol"),
        77 => (550, "5.7.0", "permission denied"),
        78 => (554, "5.3.5", "configuration error"),
        _ => (451, "4.3.0", "unknown exit status"),
    };
    let mut text = format!("{program} exited with {code} ({meaning})");
    if !said.is_empty() {
        text.push_str(": ");
        text.push_str(&said);
    }
    Reply::new(reply_code, status, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn macros(rcpt: &str) -> Macros<'_> {
        Macros { rcpt, sender: "s@ex.com", env_id: "E 1", ..Macros::default() }
    }

    #[test]
    fn words_quotes_and_macros_stay_one_argument_each() {
        let c = CommandLine::parse(r#"/usr/local/bin/deliver --envid "$envid" --user '$user' --dir C:\spool "a\"b""#)
            .unwrap();
        assert_eq!(
            c.expand(&macros("Bob;rm -rf@Ex.org")),
            ["/usr/local/bin/deliver", "--envid", "E 1", "--user", "bob;rm -rf", "--dir", r"C:\spool", "a\"b"]
        );
        assert_eq!(CommandLine::parse("  ").unwrap_err(), CommandError::Empty);
        assert_eq!(CommandLine::parse("x \"open").unwrap_err(), CommandError::Unterminated);
        assert!(matches!(CommandLine::parse("x $nope"), Err(CommandError::Template(_))));
    }

    #[test]
    fn sysexits_decide_delivered_deferred_or_bounced() {
        assert_eq!(exit_reply(0, "p", "").code, 250);
        for transient in [71, 75, 1, 255] {
            assert_eq!(exit_reply(transient, "p", "").code / 100, 4, "{transient}");
        }
        let unknown = exit_reply(67, "p", "no such user  bob\n");
        assert_eq!((unknown.code, &*unknown.enhanced), (550, "5.1.1"));
        assert_eq!(unknown.text, "p exited with 67 (addressee unknown): no such user bob");
        assert_eq!(exit_reply(78, "p", "").enhanced, "5.3.5");
    }

    #[tokio::test]
    async fn runs_the_command_with_the_message_on_stdin() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let script = format!("cat > {} && echo \"$$SENDER $$RECIPIENT $$1\" >> {}", out.display(), out.display());
        let c = CommandLine::parse(&format!("/bin/sh -c '{script}' sh $user")).unwrap();
        let reply = c.run(&macros("Bob@ex.org"), b"hello\n", Duration::from_secs(10)).await;
        assert_eq!(reply.code, 250, "{reply}");
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "hello\ns@ex.com Bob@ex.org bob\n");
        let failing = CommandLine::parse("/bin/sh -c 'echo nobody here >&2; exit 67'").unwrap();
        let reply = failing.run(&macros("x@y"), b"", Duration::from_secs(10)).await;
        assert_eq!((reply.code, reply.text.as_ref()), (550, "/bin/sh exited with 67 (addressee unknown): nobody here"));
        let slow = CommandLine::parse("/bin/sh -c 'exec sleep 30'").unwrap();
        let reply = slow.run(&macros("x@y"), b"", Duration::from_millis(200)).await;
        assert_eq!((reply.code, &*reply.enhanced), (451, "4.4.2"), "{reply}");
        let missing = CommandLine::parse("/nonexistent/program").unwrap();
        assert_eq!(missing.run(&macros("x@y"), b"", Duration::from_secs(5)).await.code, 451);
    }
}
