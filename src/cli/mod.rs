//! The command line: argument parsing and dispatch to one module per subcommand.
//!
//! The names here are a contract: later parts and their tests rely on `run`, `check-config` and
//! `show settings` exactly as spelled.

mod check;
mod client;
mod drain;
mod error;
mod inject;
mod inspect;
mod ops;
mod remote;
mod run;
mod show;
mod suppression;
mod trace;
mod trust;
mod views;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "ember", version, about = "Ember: a PowerMTA-compatible outbound mail transfer agent")]
struct Cli {
    /// API key for the management API (sent as X-API-Key; grants admin).
    #[arg(long, global = true, env = "EMBER_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// PEM file with the CA (or the self-signed certificate) an https:// management API's
    /// certificate is verified against, besides the system's roots.
    #[arg(long, global = true, value_name = "FILE")]
    mgmt_ca: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the daemon in the foreground (the embedded default config without --config).
    Run {
        /// PowerMTA-syntax configuration file.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Validate a configuration file: exit 0 with a summary, or 1 with every problem as FILE:LINE:COL.
    CheckConfig {
        file: PathBuf,
        /// Treat missing files the config refers to (keys, certificates, lists) as errors.
        #[arg(long)]
        strict: bool,
        /// Do not list the directives that are accepted but not yet enforced.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Show information (computed offline from the config and the spool).
    Show {
        #[command(subcommand)]
        what: ShowCommand,
    },
    /// Why a queue is (not) sending right now: its mode with the reply and rule behind it, the
    /// cap or rate that holds it, its recent mode changes (from the running daemon).
    Explain {
        /// `domain/vmta`, or `domain` for its first virtual MTA.
        queue: String,
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[arg(long, value_parser = remote::parse_mgmt)]
        mgmt: Option<remote::Mgmt>,
        #[arg(long)]
        json: bool,
    },
    /// A recipient's or a message's history from the running daemon's event log: reception,
    /// every attempt with the reply and the MX, the outcome, complaints, suppression.
    Trace {
        #[command(flatten)]
        args: trace::TraceArgs,
        #[command(flatten)]
        remote: remote::Remote,
    },
    /// Change queues in the running daemon: `ember set queue --mode=backoff|normal QUEUE`.
    Set {
        #[command(subcommand)]
        what: SetCommand,
    },
    /// `ember disable source IP QUEUE [--reenable-after T]`: stop using a source IP for a queue.
    Disable {
        #[command(subcommand)]
        what: SourceCommand,
    },
    /// `ember enable source IP QUEUE`: use a disabled source IP again.
    Enable {
        #[command(subcommand)]
        what: SourceCommand,
    },
    /// DKIM keys: `ember dkim keygen --selector S --domain D [--algorithm rsa|ed25519]`.
    Dkim {
        #[command(subcommand)]
        what: DkimCommand,
    },
    /// The global suppression list: add, remove, check, import (a file, one entry a line), export.
    Suppression {
        #[command(subcommand)]
        what: SuppressionCommand,
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
        /// The daemon's management API (http://HOST:PORT, https://HOST:PORT or HOST:PORT);
        /// without a running daemon the journal is edited directly.
        #[arg(long, global = true, value_parser = remote::parse_mgmt)]
        mgmt: Option<remote::Mgmt>,
    },
    /// List queued recipients: from the running daemon with --mgmt, else read from the spool.
    List {
        #[command(flatten)]
        selection: ops::Selection,
        #[arg(long)]
        maxitems: Option<usize>,
        #[command(flatten)]
        remote: remote::Remote,
    },
    /// Delete queued recipients (--queue or --job-id required); `b` accounting records unless
    /// --no-accounting; DSNs with --dsn.
    Delete {
        #[command(flatten)]
        selection: ops::Selection,
        /// Only recipients of messages older than this (like 2h).
        #[arg(long)]
        older_than: Option<String>,
        #[arg(long)]
        no_accounting: bool,
        #[arg(long)]
        dsn: bool,
        #[command(flatten)]
        remote: remote::Remote,
    },
    /// `pause queue QUEUE` or `pause job ID`.
    Pause {
        #[command(subcommand)]
        what: PauseCommand,
    },
    /// `resume queue QUEUE` or `resume job ID`.
    Resume {
        #[command(subcommand)]
        what: PauseCommand,
    },
    /// End the retry wait of queues now (QUEUE: domain/vmta with `*` wildcards).
    Schedule {
        queue: String,
        /// Recipients waiting for their own retry time go too.
        #[arg(long)]
        retry_recipients: bool,
        #[command(flatten)]
        remote: remote::Remote,
    },
    /// Retire this node: refuse new mail (421 4.3.2), stop delivering and hand the queue over
    /// to the cluster's live peers over SMTP (or, with --wait, deliver it here), until the spool
    /// is empty.
    Drain {
        #[command(flatten)]
        args: drain::DrainArgs,
        #[command(flatten)]
        remote: remote::Remote,
    },
    /// Re-read the running daemon's configuration (refused with its errors when broken).
    Reload {
        #[command(flatten)]
        remote: remote::Remote,
    },
    /// Inject one RFC 5322 message to every address of a list, through the daemon's
    /// Transmissions API (progress bar, summary).
    Inject {
        /// The message file (headers, blank line, body).
        message: PathBuf,
        /// The recipient list: one address per line.
        #[arg(long)]
        rcpts: PathBuf,
        /// The envelope sender (return path).
        #[arg(long)]
        from: String,
        #[arg(long, alias = "jobId")]
        job_id: Option<String>,
        /// Recipients per request (each batch is one spooled message).
        #[arg(long, default_value_t = 100)]
        batch: usize,
        #[command(flatten)]
        remote: remote::Remote,
    },
    /// `rotate acct`: move every accounting file to its dated name now; `rotate log`: move the
    /// log-file to FILE.1 and start a new one.
    Rotate {
        #[command(subcommand)]
        what: RotateCommand,
    },
    /// `tlsrpt send`: mail the TLS-RPT (RFC 8460) reports of the sessions since the last ones
    /// now, to each recipient domain that publishes `_smtp._tls` (the daemon also sends them
    /// every day at midnight UTC).
    Tlsrpt {
        #[command(subcommand)]
        what: TlsrptCommand,
    },
}

#[derive(Subcommand, Debug)]
enum TlsrptCommand {
    Send {
        #[command(flatten)]
        remote: remote::Remote,
    },
}

#[derive(Subcommand, Debug)]
enum PauseCommand {
    Queue {
        queue: String,
        #[command(flatten)]
        remote: remote::Remote,
    },
    Job {
        id: String,
        #[command(flatten)]
        remote: remote::Remote,
    },
}

#[derive(Subcommand, Debug)]
enum RotateCommand {
    Acct {
        #[command(flatten)]
        remote: remote::Remote,
    },
    Log {
        #[command(flatten)]
        remote: remote::Remote,
    },
}

#[derive(Subcommand, Debug)]
enum SuppressionCommand {
    /// Suppress addresses (or @domain).
    Add {
        #[arg(required = true)]
        addresses: Vec<String>,
    },
    /// Stop suppressing addresses.
    Remove {
        #[arg(required = true)]
        addresses: Vec<String>,
    },
    /// Whether an address is suppressed (exit 0 yes, 2 no).
    Check { address: String },
    /// Add every entry of FILE (one address or @domain a line); bad lines are reported with
    /// their numbers and skipped.
    Import { file: PathBuf },
    /// Write every entry, one a line, to FILE (default: standard output).
    Export { file: Option<PathBuf> },
}

#[derive(Subcommand, Debug)]
enum DkimCommand {
    /// Write a new DKIM private key and print the DNS TXT record that publishes it.
    Keygen {
        #[arg(long)]
        selector: String,
        #[arg(long)]
        domain: String,
        #[arg(long, value_enum, default_value = "rsa")]
        algorithm: crate::dkim::keygen::Algorithm,
        /// Where to write the key (default SELECTOR._domainkey.DOMAIN.pem); never overwritten.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
enum ShowCommand {
    /// Effective per-queue settings of QUEUE (domain or domain/vmta), as valid config with the source of each value.
    Settings {
        /// `domain` or `domain/vmta`.
        queue: String,
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[arg(long)]
        json: bool,
        /// From the running daemon's configuration (implied by --mgmt).
        #[arg(long)]
        live: bool,
        #[arg(long, value_parser = remote::parse_mgmt)]
        mgmt: Option<remote::Mgmt>,
    },
    /// The running daemon's status: traffic, connections, DNS cache, queues, spool.
    Status {
        #[command(flatten)]
        remote: remote::Remote,
    },
    /// Queues: live from the running daemon (with filters), else read from the spool.
    Queues {
        #[command(flatten)]
        filters: views::QueueFilters,
        #[command(flatten)]
        remote: remote::Remote,
    },
    /// The queues with the most recipients (http-default-max-items, 10, unless --maxitems).
    Topqueues {
        #[command(flatten)]
        filters: views::QueueFilters,
        #[command(flatten)]
        remote: remote::Remote,
    },
    /// Queues summed per domain.
    Domains {
        #[arg(long)]
        vmta: Option<String>,
        #[arg(long)]
        maxitems: Option<usize>,
        #[command(flatten)]
        remote: remote::Remote,
    },
    /// The domains with the most recipients (http-default-max-items, 10, unless --maxitems).
    Topdomains {
        #[arg(long)]
        maxitems: Option<usize>,
        #[command(flatten)]
        remote: remote::Remote,
    },
    /// Virtual MTAs with their source hosts, pools and totals.
    Vmtas {
        #[arg(long)]
        maxitems: Option<usize>,
        #[command(flatten)]
        remote: remote::Remote,
    },
    /// The nodes of the cluster (cluster-redis): addresses, version, configuration hash, queue
    /// totals, last seen; this node's degraded or refused state.
    Cluster {
        #[command(flatten)]
        remote: remote::Remote,
    },
    /// Jobs with their totals since start and whether they are paused.
    Jobs {
        #[arg(long)]
        maxitems: Option<usize>,
        #[command(flatten)]
        remote: remote::Remote,
    },
    /// A spooled message: its envelope as JSON on the first line, then the message as stored.
    Message {
        /// The message id (16 hex digits, as `ember list` prints it).
        id: String,
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
enum SetCommand {
    /// Put queues in backoff or back to normal (QUEUE: domain/vmta, domain, `*` for either part).
    Queue {
        #[arg(long, value_parser = ["backoff", "normal"])]
        mode: String,
        queue: String,
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[arg(long, value_parser = remote::parse_mgmt)]
        mgmt: Option<remote::Mgmt>,
    },
}

#[derive(Subcommand, Debug)]
enum SourceCommand {
    Source {
        ip: std::net::IpAddr,
        queue: String,
        /// When a disabled IP comes back on its own (e.g. 1h); only with `disable`.
        #[arg(long)]
        reenable_after: Option<String>,
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[arg(long, value_parser = remote::parse_mgmt)]
        mgmt: Option<remote::Mgmt>,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    client::configure(client::Options { api_key: cli.api_key, ca: cli.mgmt_ca });
    match cli.command {
        Command::Run { config } => run::run(config.as_deref()),
        Command::CheckConfig { file, strict, quiet } => check::check(&file, strict, quiet),
        Command::Show { what } => show(what),
        Command::Set { what: SetCommand::Queue { mode, queue, config, mgmt } } => inspect::command(
            config.as_deref(),
            mgmt.as_ref(),
            "/api/v1/queues/mode",
            serde_json::json!({"queue": queue, "mode": mode}),
        ),
        Command::Disable { what: SourceCommand::Source { ip, queue, reenable_after, config, mgmt } } => {
            inspect::command(
                config.as_deref(),
                mgmt.as_ref(),
                "/api/v1/sources/disable",
                serde_json::json!({"ip": ip.to_string(), "queue": queue, "reenable_after": reenable_after}),
            )
        }
        Command::Enable { what: SourceCommand::Source { ip, queue, config, mgmt, .. } } => inspect::command(
            config.as_deref(),
            mgmt.as_ref(),
            "/api/v1/sources/enable",
            serde_json::json!({"ip": ip.to_string(), "queue": queue}),
        ),
        Command::Trace { args, remote } => trace::trace(&args, &remote),
        Command::Explain { queue, config, mgmt, json } => {
            inspect::explain(&queue, config.as_deref(), mgmt.as_ref(), json)
        }
        Command::Dkim { what: DkimCommand::Keygen { selector, domain, algorithm, out } } => {
            match crate::dkim::keygen::run(&selector, &domain, algorithm, out.as_deref()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("ember: dkim keygen: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Suppression { what, config, mgmt } => {
            let (config, mgmt) = (config.as_deref(), mgmt.as_ref());
            match what {
                SuppressionCommand::Add { addresses } => suppression::change(&addresses, true, config, mgmt),
                SuppressionCommand::Remove { addresses } => suppression::change(&addresses, false, config, mgmt),
                SuppressionCommand::Check { address } => suppression::check(&address, config, mgmt),
                SuppressionCommand::Import { file } => suppression::import(&file, config, mgmt),
                SuppressionCommand::Export { file } => suppression::export(file.as_deref(), config, mgmt),
            }
        }
        Command::List { selection, maxitems, remote } => {
            if remote.mgmt.is_some() {
                ops::list(&remote, &selection, maxitems)
            } else {
                inspect::list(remote.config.as_deref(), selection.queue.as_deref(), remote.json)
            }
        }
        Command::Delete { selection, older_than, no_accounting, dsn, remote } => {
            ops::delete(&remote, &selection, older_than.as_deref(), no_accounting, dsn)
        }
        Command::Pause { what: PauseCommand::Queue { queue, remote } } => ops::queue(&remote, &queue, true),
        Command::Resume { what: PauseCommand::Queue { queue, remote } } => ops::queue(&remote, &queue, false),
        Command::Pause { what: PauseCommand::Job { id, remote } } => ops::job(&remote, &id, true),
        Command::Resume { what: PauseCommand::Job { id, remote } } => ops::job(&remote, &id, false),
        Command::Schedule { queue, retry_recipients, remote } => ops::schedule(&remote, &queue, retry_recipients),
        Command::Reload { remote } => ops::reload(&remote),
        Command::Drain { args, remote } => drain::drain(&remote, &args),
        Command::Rotate { what: RotateCommand::Acct { remote } } => ops::rotate_acct(&remote),
        Command::Rotate { what: RotateCommand::Log { remote } } => ops::rotate_log(&remote),
        Command::Tlsrpt { what: TlsrptCommand::Send { remote } } => ops::tlsrpt_send(&remote),
        Command::Inject { message, rcpts, from, job_id, batch, remote } => inject::inject(
            &remote,
            &inject::Inject { message: &message, recipients: &rcpts, from: &from, job_id: job_id.as_deref(), batch },
        ),
    }
}

fn show(what: ShowCommand) -> ExitCode {
    match what {
        ShowCommand::Settings { queue, config, json, live, mgmt } if live || mgmt.is_some() => {
            views::settings(&remote::Remote { config, mgmt, json }, &queue)
        }
        ShowCommand::Settings { queue, config, json, .. } => show::settings(&queue, config.as_deref(), json),
        ShowCommand::Queues { filters, remote } => views::queues(&remote, &filters, false),
        ShowCommand::Topqueues { filters, remote } => views::queues(&remote, &filters, true),
        ShowCommand::Status { remote } => views::status(&remote),
        ShowCommand::Domains { vmta, maxitems, remote } => views::domains(&remote, vmta, maxitems, false),
        ShowCommand::Topdomains { maxitems, remote } => views::domains(&remote, None, maxitems, true),
        ShowCommand::Vmtas { maxitems, remote } => views::vmtas(&remote, maxitems),
        ShowCommand::Jobs { maxitems, remote } => views::jobs(&remote, maxitems),
        ShowCommand::Cluster { remote } => views::cluster(&remote),
        ShowCommand::Message { id, config } => inspect::show_message(config.as_deref(), &id),
    }
}

/// Prints diagnostics to stderr: errors, then warnings, each sorted by file, line and column.
fn print_diagnostics(diags: &crate::config::Diagnostics) {
    for d in diags.sorted() {
        eprintln!("{d}");
    }
}
