//! The command line: argument parsing and dispatch to one module per subcommand.
//!
//! The names here are a contract: later parts and their tests rely on `run`, `check-config` and
//! `show settings` exactly as spelled.

mod check;
mod inspect;
mod live;
mod run;
mod show;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "ember", version, about = "Ember: a PowerMTA-compatible outbound mail transfer agent")]
struct Cli {
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
        #[arg(long)]
        mgmt: Option<std::net::SocketAddr>,
        #[arg(long)]
        json: bool,
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
    /// List queued recipients (read from the spool, offline).
    List {
        /// Only this queue: `domain/vmta`, or `domain` for all its virtual MTAs.
        #[arg(long)]
        queue: Option<String>,
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[arg(long)]
        json: bool,
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
    },
    /// The running daemon's status: queues, connections, delivered/bounced/deferred counts, spool.
    Status {
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// The daemon's management API (ADDR:PORT); default: the config's http-mgmt-port on this host.
        #[arg(long)]
        mgmt: Option<std::net::SocketAddr>,
        #[arg(long)]
        json: bool,
    },
    /// Queues and their recipients: live from the running daemon, else read from the spool.
    Queues {
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// The daemon's management API (ADDR:PORT); default: the config's http-mgmt-port on this host.
        #[arg(long)]
        mgmt: Option<std::net::SocketAddr>,
        #[arg(long)]
        json: bool,
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
        #[arg(long)]
        mgmt: Option<std::net::SocketAddr>,
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
        #[arg(long)]
        mgmt: Option<std::net::SocketAddr>,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run { config } => run::run(config.as_deref()),
        Command::CheckConfig { file, strict, quiet } => check::check(&file, strict, quiet),
        Command::Show { what: ShowCommand::Settings { queue, config, json } } => {
            show::settings(&queue, config.as_deref(), json)
        }
        Command::Show { what: ShowCommand::Queues { config, mgmt, json } } => {
            inspect::show_queues(config.as_deref(), mgmt, json)
        }
        Command::Show { what: ShowCommand::Status { config, mgmt, json } } => {
            inspect::show_status(config.as_deref(), mgmt, json)
        }
        Command::Show { what: ShowCommand::Message { id, config } } => inspect::show_message(config.as_deref(), &id),
        Command::Set { what: SetCommand::Queue { mode, queue, config, mgmt } } => inspect::command(
            config.as_deref(),
            mgmt,
            "/api/v1/queues/mode",
            serde_json::json!({"queue": queue, "mode": mode}),
        ),
        Command::Disable { what: SourceCommand::Source { ip, queue, reenable_after, config, mgmt } } => {
            inspect::command(
                config.as_deref(),
                mgmt,
                "/api/v1/sources/disable",
                serde_json::json!({"ip": ip.to_string(), "queue": queue, "reenable_after": reenable_after}),
            )
        }
        Command::Enable { what: SourceCommand::Source { ip, queue, config, mgmt, .. } } => inspect::command(
            config.as_deref(),
            mgmt,
            "/api/v1/sources/enable",
            serde_json::json!({"ip": ip.to_string(), "queue": queue}),
        ),
        Command::Explain { queue, config, mgmt, json } => inspect::explain(&queue, config.as_deref(), mgmt, json),
        Command::List { queue, config, json } => inspect::list(config.as_deref(), queue.as_deref(), json),
    }
}

/// Prints diagnostics to stderr: errors, then warnings, each sorted by file, line and column.
fn print_diagnostics(diags: &crate::config::Diagnostics) {
    for d in diags.sorted() {
        eprintln!("{d}");
    }
}
