//! Typed policy: the directives Ember acts on, read once per configuration generation into plain
//! fields (`Duration`, `usize`, `bool`, `Option<Rate>`), so the code that acts on them never
//! repeats a default or reads a directive as the wrong type.
//!
//! Owns the one rule for defaults: a field is the value in force, else the directive table's
//! default (also when the configuration clears the directive with `""`). Every read checks the
//! table's type for its directive and, for a required field, that the table has a default: a
//! mismatch is a bug in Ember and panics, and the tests below build every policy from empty
//! settings, so each read runs at least once under `cargo test`.

use std::time::Duration;

use super::settings::{Settings, default_value};
use super::table::Dir;
use super::value::{Value, ValueType};
use super::values::{Rate, Ratio};

/// What a queue (destination × VMTA) does, from its effective settings. Built with the
/// `QueueSettings` it belongs to (`Config::queue_settings`), so once per queue per generation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuePolicy {
    /// `max-smtp-out`; at least 1, or the queue could never send.
    pub max_smtp_out: usize,
    /// `backoff-max-smtp-out`; at least 1, like `max_smtp_out`.
    pub backoff_max_smtp_out: usize,
    pub queue_priority: u64,
    /// `max-msg-per-connection`; 0 is no limit.
    pub max_msg_per_connection: usize,
    /// `max-errors-per-connection`; `None` is unlimited.
    pub max_errors_per_connection: Option<u64>,
    /// `max-rcpt-per-transaction`; 0 reads as the table default, since a transaction without a
    /// recipient cannot carry mail.
    pub max_rcpt_per_transaction: usize,
    /// `mx-connection-attempts`; at least 1, or no host would ever be tried.
    pub mx_connection_attempts: usize,
    pub default_smtp_port: u16,
    pub connect_timeout: Duration,
    pub greeting_timeout: Duration,
    /// `smtp-multiple-line-response-timeout`: how long any command's reply may take.
    pub command_timeout: Duration,
    pub data_send_timeout: Duration,
    pub data_termination_timeout: Duration,
    pub connection_idle_timeout: Duration,
    pub smtp_out_rampup_interval: Duration,
    /// `max-msg-rate`; `None` is unlimited.
    pub max_msg_rate: Option<Rate>,
    pub max_connect_rate: Option<Rate>,
    /// `backoff-max-msg-rate`, else `max-msg-rate`.
    pub backoff_max_msg_rate: Option<Rate>,
    /// `backoff-max-connect-rate`, else `max-connect-rate`.
    pub backoff_max_connect_rate: Option<Rate>,
    /// `backoff-to-normal-after`; `None` is never.
    pub backoff_to_normal_after: Option<Duration>,
    /// `reenable-source-ip-after`; `None` is never.
    pub reenable_source_ip_after: Option<Duration>,
    /// `retry-after`: never empty; the last entry repeats.
    pub retry_after: Vec<Duration>,
    /// `backoff-retry-after`: never empty; the last entry repeats.
    pub backoff_retry_after: Vec<Duration>,
    pub retry_recipients_after: Duration,
    pub retry_after_dns_error: Duration,
    pub bounce_after: Duration,
    pub bounce_on_4xx_status: bool,
    pub warmup_max_deferral_pct: u64,
    pub warmup_max_bounce_pct: u64,
    pub max_events_recorded: u64,
    pub track_recipient_events: bool,
    pub use_starttls: bool,
    pub require_starttls: bool,
    /// `use-mta-sts`: apply the recipient domain's MTA-STS policy.
    pub use_mta_sts: bool,
    /// `use-dane`: apply the DNSSEC-validated TLSA records of the recipient's MX hosts.
    pub use_dane: bool,
    pub allow_tls12: bool,
    pub allow_tls13: bool,
    pub use_unencrypted_plain_auth: bool,
    pub ignore_pipelining: bool,
    pub ignore_chunking: bool,
    pub ignore_8bitmime: bool,
    pub ignore_dsn: bool,
    pub bounce_upon_transfer_failure: bool,
    pub assume_delivery_upon_data_termination_timeout: bool,
    pub replace_smtp_421_service_response: bool,
    pub log_transfer_failures: bool,
    pub smtp_421_means_mx_unavailable: bool,
    pub bounce_upon_5xx_greeting: bool,
    pub log_tls: bool,
    pub log_resolution: bool,
    pub log_data: bool,
    pub retry_upon_new_mail: bool,
    pub backoff_upon_all_sources_disabled: bool,
    pub backoff_to_normal_after_delivery: bool,
    pub reuse_ssl_session: bool,
    pub disable_mx_rollup: bool,
    pub auto_mx_rollup: bool,
    /// `adaptive-delivery` and its bounds (src/queue/adaptive/).
    pub adaptive_delivery: bool,
    pub adaptive_min_msg_rate: Option<Rate>,
    pub adaptive_min_smtp_out: usize,
    pub adaptive_interval: Duration,
    /// `None`: the trigger is turned off.
    pub adaptive_deferral_ratio: Option<Ratio>,
    pub adaptive_bounce_ratio: Option<Ratio>,
    pub adaptive_complaint_ratio: Option<Ratio>,
}

impl QueuePolicy {
    pub fn new(s: &Settings) -> QueuePolicy {
        let max_rcpt = match uint(s, Dir::MaxRcptPerTransaction) {
            0 => table_uint(Dir::MaxRcptPerTransaction),
            n => n,
        };
        let max_msg_rate = rate(s, Dir::MaxMsgRate);
        let max_connect_rate = rate(s, Dir::MaxConnectRate);
        QueuePolicy {
            max_smtp_out: count(uint(s, Dir::MaxSmtpOut)).max(1),
            backoff_max_smtp_out: count(uint(s, Dir::BackoffMaxSmtpOut)).max(1),
            queue_priority: uint(s, Dir::QueuePriority),
            max_msg_per_connection: count(uint(s, Dir::MaxMsgPerConnection)),
            max_errors_per_connection: uint_or_unlimited(s, Dir::MaxErrorsPerConnection),
            max_rcpt_per_transaction: count(max_rcpt),
            mx_connection_attempts: count(uint(s, Dir::MxConnectionAttempts)).max(1),
            // The table bounds the port to 1..=65535.
            default_smtp_port: u16::try_from(uint(s, Dir::DefaultSmtpPort)).unwrap_or(u16::MAX),
            connect_timeout: interval(s, Dir::ConnectTimeout),
            greeting_timeout: interval(s, Dir::SmtpGreetingTimeout),
            command_timeout: interval(s, Dir::SmtpMultipleLineResponseTimeout),
            data_send_timeout: interval(s, Dir::DataSendTimeout),
            data_termination_timeout: interval(s, Dir::SmtpDataTerminationTimeout),
            connection_idle_timeout: interval(s, Dir::ConnectionIdleTimeout),
            smtp_out_rampup_interval: interval(s, Dir::SmtpOutRampupInterval),
            max_msg_rate,
            max_connect_rate,
            backoff_max_msg_rate: rate(s, Dir::BackoffMaxMsgRate).or(max_msg_rate),
            backoff_max_connect_rate: rate(s, Dir::BackoffMaxConnectRate).or(max_connect_rate),
            backoff_to_normal_after: interval_or_never(s, Dir::BackoffToNormalAfter),
            reenable_source_ip_after: interval_or_never(s, Dir::ReenableSourceIpAfter),
            retry_after: interval_list(s, Dir::RetryAfter),
            backoff_retry_after: interval_list(s, Dir::BackoffRetryAfter),
            retry_recipients_after: interval(s, Dir::RetryRecipientsAfter),
            retry_after_dns_error: interval(s, Dir::RetryAfterDnsError),
            bounce_after: interval(s, Dir::BounceAfter),
            bounce_on_4xx_status: flag(s, Dir::BounceOn4xxStatus),
            warmup_max_deferral_pct: uint(s, Dir::WarmupMaxDeferralRate),
            warmup_max_bounce_pct: uint(s, Dir::WarmupMaxBounceRate),
            max_events_recorded: uint(s, Dir::MaxEventsRecorded),
            track_recipient_events: flag(s, Dir::TrackRecipientEvents),
            use_starttls: flag(s, Dir::UseStarttls),
            require_starttls: flag(s, Dir::RequireStarttls),
            use_mta_sts: flag(s, Dir::UseMtaSts),
            use_dane: flag(s, Dir::UseDane),
            allow_tls12: flag(s, Dir::SmtpTlsAllowTlsv12),
            allow_tls13: flag(s, Dir::SmtpTlsAllowTlsv13),
            use_unencrypted_plain_auth: flag(s, Dir::UseUnencryptedPlainAuth),
            ignore_pipelining: flag(s, Dir::IgnorePipelining),
            ignore_chunking: flag(s, Dir::IgnoreChunking),
            ignore_8bitmime: flag(s, Dir::Ignore8bitmime),
            ignore_dsn: flag(s, Dir::IgnoreDsn),
            bounce_upon_transfer_failure: flag(s, Dir::BounceUponTransferFailure),
            assume_delivery_upon_data_termination_timeout: flag(s, Dir::AssumeDeliveryUponDataTerminationTimeout),
            replace_smtp_421_service_response: flag(s, Dir::ReplaceSmtp421ServiceResponse),
            log_transfer_failures: flag(s, Dir::LogTransferFailures),
            smtp_421_means_mx_unavailable: flag(s, Dir::Smtp421MeansMxUnavailable),
            bounce_upon_5xx_greeting: flag(s, Dir::BounceUpon5xxGreeting),
            log_tls: flag(s, Dir::LogTls),
            log_resolution: flag(s, Dir::LogResolution),
            log_data: flag(s, Dir::LogData),
            retry_upon_new_mail: flag(s, Dir::RetryUponNewMail),
            backoff_upon_all_sources_disabled: flag(s, Dir::BackoffUponAllSourcesDisabled),
            backoff_to_normal_after_delivery: flag(s, Dir::BackoffToNormalAfterDelivery),
            reuse_ssl_session: flag(s, Dir::ReuseSslSession),
            disable_mx_rollup: flag(s, Dir::DisableMxRollup),
            auto_mx_rollup: flag(s, Dir::AutoMxRollup),
            adaptive_delivery: flag(s, Dir::AdaptiveDelivery),
            adaptive_min_msg_rate: rate(s, Dir::AdaptiveMinMsgRate),
            adaptive_min_smtp_out: count(uint(s, Dir::AdaptiveMinSmtpOut)).max(1),
            adaptive_interval: interval(s, Dir::AdaptiveInterval),
            adaptive_deferral_ratio: ratio(s, Dir::AdaptiveDeferralRatio),
            adaptive_bounce_ratio: ratio(s, Dir::AdaptiveBounceRatio),
            adaptive_complaint_ratio: ratio(s, Dir::AdaptiveComplaintRatio),
        }
    }
}

impl Default for QueuePolicy {
    /// The table's defaults.
    fn default() -> QueuePolicy {
        QueuePolicy::new(&Settings::default())
    }
}

/// What the daemon as a whole does, from the top-level settings. Built with the `Config`
/// (`model::build`), so once per generation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GlobalPolicy {
    /// `total-max-smtp-out`: outbound connections across every queue.
    pub total_max_smtp_out: usize,
    /// `total-max-smtp-in`: inbound sessions across every listener.
    pub total_max_smtp_in: usize,
    pub smtp_await_slot: bool,
    pub host_id: u64,
    /// `log-rotate`: rotated log files kept.
    pub log_rotate: u64,
    /// `spool-min-free-space`, in bytes (the directive is written in MB).
    pub spool_min_free_space: u64,
    /// `smtp-server-tls-allow-tlsv1.2`: a listener's own setting takes precedence.
    pub server_allow_tls12: bool,
    pub dummy_smtp_latency: Duration,
    /// `cluster-redis`: cluster mode is on when set.
    pub cluster_redis: Option<String>,
    /// `cluster-node-name`, else the host name.
    pub cluster_node_name: String,
}

impl GlobalPolicy {
    pub fn new(s: &Settings) -> GlobalPolicy {
        GlobalPolicy {
            total_max_smtp_out: count(uint(s, Dir::TotalMaxSmtpOut)),
            total_max_smtp_in: count(uint(s, Dir::TotalMaxSmtpIn)),
            smtp_await_slot: flag(s, Dir::SmtpAwaitSlot),
            host_id: uint(s, Dir::HostId),
            log_rotate: uint(s, Dir::LogRotate),
            spool_min_free_space: uint(s, Dir::SpoolMinFreeSpace).saturating_mul(1 << 20),
            server_allow_tls12: flag(s, Dir::SmtpServerTlsAllowTlsv12),
            dummy_smtp_latency: interval(s, Dir::DummySmtpLatency),
            cluster_redis: optional(s, Dir::ClusterRedis, "a URL", |t| t == ValueType::RedisUrl).map(|v| match v {
                Value::Text(url) => url.clone(),
                other => mismatch(Dir::ClusterRedis, other),
            }),
            cluster_node_name: optional(s, Dir::ClusterNodeName, "a word", |t| t == ValueType::Word)
                .map(|v| match v {
                    Value::Text(name) => name.clone(),
                    other => mismatch(Dir::ClusterNodeName, other),
                })
                .unwrap_or_else(super::system_host_name),
        }
    }
}

impl Default for GlobalPolicy {
    /// The table's defaults.
    fn default() -> GlobalPolicy {
        GlobalPolicy::new(&Settings::default())
    }
}

/// A count from the configuration as a `usize`: a value past the address space is as good as
/// unlimited.
fn count(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// The value in force, else the table default (also when the configuration clears it). Panics
/// when the table's type for `dir` is not one `accepts` allows, or it has no default: both are
/// mistakes in this file, found by building a policy from empty settings.
fn required<'a>(s: &'a Settings, dir: Dir, reader: &str, accepts: fn(ValueType) -> bool) -> &'a Value {
    let def = dir.def();
    assert!(accepts(def.ty), "policy reads {} as {reader}, but the table types it {:?}", def.name, def.ty);
    s.effective(dir)
        .or_else(|| default_value(dir))
        .unwrap_or_else(|| panic!("policy needs a table default for {}", def.name))
}

/// The value in force of a directive without a table default, type-checked like `required`.
fn optional<'a>(s: &'a Settings, dir: Dir, reader: &str, accepts: fn(ValueType) -> bool) -> Option<&'a Value> {
    let def = dir.def();
    assert!(accepts(def.ty), "policy reads {} as {reader}, but the table types it {:?}", def.name, def.ty);
    s.effective(dir)
}

fn mismatch(dir: Dir, value: &Value) -> ! {
    panic!("{} holds {value:?}, not the type its table entry declares", dir.def().name)
}

// The reads below are public for the typed structs other modules build from one block's
// settings (a `<spool>`, a `<source-group>`, an `<acct-file>`, a source's injection policy): the
// same rule for defaults and the same type check as the policies above.

/// An integer directive with a table default.
pub fn uint(s: &Settings, dir: Dir) -> u64 {
    match required(s, dir, "an integer", |t| matches!(t, ValueType::Uint | ValueType::UintRange(..))) {
        Value::Uint(n) => *n,
        other => mismatch(dir, other),
    }
}

fn table_uint(dir: Dir) -> u64 {
    uint(&Settings::default(), dir)
}

fn uint_or_unlimited(s: &Settings, dir: Dir) -> Option<u64> {
    match required(s, dir, "an integer or unlimited", |t| t == ValueType::UintOrUnlimited) {
        Value::Uint(n) => Some(*n),
        Value::Unlimited => None,
        other => mismatch(dir, other),
    }
}

/// An interval directive with a table default.
pub fn interval(s: &Settings, dir: Dir) -> Duration {
    match required(s, dir, "an interval", |t| t == ValueType::Interval) {
        Value::Interval(i) => Duration::from_secs(i.seconds()),
        other => mismatch(dir, other),
    }
}

fn interval_or_never(s: &Settings, dir: Dir) -> Option<Duration> {
    match required(s, dir, "an interval or never", |t| t == ValueType::IntervalOrNever) {
        Value::Interval(i) => Some(Duration::from_secs(i.seconds())),
        Value::Never => None,
        other => mismatch(dir, other),
    }
}

/// Never empty: an empty list (which `check-config` refuses) reads as the table's.
fn interval_list(s: &Settings, dir: Dir) -> Vec<Duration> {
    match required(s, dir, "an interval list", |t| t == ValueType::IntervalList) {
        Value::IntervalList(l) if !l.is_empty() => l.iter().map(|i| Duration::from_secs(i.seconds())).collect(),
        Value::IntervalList(_) => interval_list(&Settings::default(), dir),
        other => mismatch(dir, other),
    }
}

/// A one-word or free-text directive with a table default.
pub fn text(s: &Settings, dir: Dir) -> &str {
    let words = |t| matches!(t, ValueType::Word | ValueType::Text | ValueType::Enum(_));
    match required(s, dir, "text", words) {
        Value::Text(t) => t,
        other => mismatch(dir, other),
    }
}

/// A size directive with a table default, in bytes; `None` is unlimited.
pub fn size(s: &Settings, dir: Dir) -> Option<u64> {
    match required(s, dir, "a size", |t| t == ValueType::Size) {
        Value::Size(size) => size.map(|b| b.0),
        other => mismatch(dir, other),
    }
}

fn flag(s: &Settings, dir: Dir) -> bool {
    match required(s, dir, "a flag", |t| t == ValueType::Bool) {
        Value::Bool(b) => *b,
        other => mismatch(dir, other),
    }
}

/// `None` is unlimited, and also unset for a rate without a table default.
fn rate(s: &Settings, dir: Dir) -> Option<Rate> {
    match optional(s, dir, "a rate", |t| t == ValueType::Rate) {
        Some(Value::Rate(r)) => *r,
        None => None,
        Some(other) => mismatch(dir, other),
    }
}

/// A ratio trigger with a table default; `None` is `off`.
fn ratio(s: &Settings, dir: Dir) -> Option<Ratio> {
    match required(s, dir, "a ratio", |t| t == ValueType::Ratio) {
        Value::Ratio(r) => *r,
        other => mismatch(dir, other),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::FileCheck;

    fn config(text: &str) -> crate::config::Config {
        let loaded = crate::config::load_str("t.conf", text, Path::new("/"), FileCheck::Warn);
        assert!(!loaded.diagnostics.has_errors(), "{:?}", loaded.diagnostics);
        loaded.config
    }

    fn queue(text: &str) -> QueuePolicy {
        config(text).queue_settings("example.com", None).unwrap().policy
    }

    fn secs(dir: Dir) -> Duration {
        match default_value(dir) {
            Some(Value::Interval(i)) => Duration::from_secs(i.seconds()),
            other => panic!("{other:?}"),
        }
    }

    fn table(dir: Dir) -> u64 {
        match default_value(dir) {
            Some(Value::Uint(n)) => *n,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_empty_config_gives_the_table_defaults() {
        let p = queue("");
        assert_eq!(p, QueuePolicy::default());
        assert_eq!(p.max_smtp_out as u64, table(Dir::MaxSmtpOut));
        assert_eq!(p.backoff_max_smtp_out as u64, table(Dir::BackoffMaxSmtpOut));
        assert_eq!(p.queue_priority, table(Dir::QueuePriority));
        assert_eq!(p.max_msg_per_connection as u64, table(Dir::MaxMsgPerConnection));
        assert_eq!(p.max_errors_per_connection, None);
        assert_eq!(p.max_rcpt_per_transaction as u64, table(Dir::MaxRcptPerTransaction));
        assert_eq!(p.mx_connection_attempts as u64, table(Dir::MxConnectionAttempts));
        assert_eq!(u64::from(p.default_smtp_port), table(Dir::DefaultSmtpPort));
        assert_eq!(p.connect_timeout, secs(Dir::ConnectTimeout));
        assert_eq!(p.greeting_timeout, secs(Dir::SmtpGreetingTimeout));
        assert_eq!(p.command_timeout, secs(Dir::SmtpMultipleLineResponseTimeout));
        assert_eq!(p.data_send_timeout, secs(Dir::DataSendTimeout));
        assert_eq!(p.data_termination_timeout, secs(Dir::SmtpDataTerminationTimeout));
        assert_eq!(p.connection_idle_timeout, secs(Dir::ConnectionIdleTimeout));
        assert_eq!(p.smtp_out_rampup_interval, secs(Dir::SmtpOutRampupInterval));
        assert_eq!(p.retry_recipients_after, secs(Dir::RetryRecipientsAfter));
        assert_eq!(p.retry_after_dns_error, secs(Dir::RetryAfterDnsError));
        assert_eq!(p.bounce_after, secs(Dir::BounceAfter));
        assert_eq!(p.warmup_max_deferral_pct, table(Dir::WarmupMaxDeferralRate));
        assert_eq!(p.warmup_max_bounce_pct, table(Dir::WarmupMaxBounceRate));
        assert_eq!(p.max_events_recorded, table(Dir::MaxEventsRecorded));
        assert_eq!((p.max_msg_rate, p.backoff_max_msg_rate), (None, None));
        assert_eq!((p.backoff_to_normal_after, p.reenable_source_ip_after), (None, None));
        // PowerMTA's documented values, so the table column itself is pinned too.
        assert_eq!(p.max_smtp_out, 20);
        assert_eq!(p.queue_priority, 50);
        assert_eq!(p.mx_connection_attempts, 10);
        assert_eq!(p.default_smtp_port, 25);
        assert_eq!(p.retry_after, vec![Duration::from_secs(600)]);
        assert_eq!(p.backoff_retry_after, vec![Duration::from_secs(3600)]);
        assert_eq!(p.bounce_after, Duration::from_secs(388_800));
        assert!(p.use_starttls && p.allow_tls12 && p.bounce_upon_5xx_greeting && !p.require_starttls);

        let g = config("").policy;
        assert_eq!(g, GlobalPolicy::default());
        assert_eq!(g.total_max_smtp_out as u64, table(Dir::TotalMaxSmtpOut));
        assert_eq!(g.total_max_smtp_in as u64, table(Dir::TotalMaxSmtpIn));
        assert_eq!(g.log_rotate, table(Dir::LogRotate));
        assert_eq!((g.total_max_smtp_out, g.total_max_smtp_in), (1200, 100));
        assert_eq!(g.dummy_smtp_latency, Duration::ZERO);
        assert!(g.server_allow_tls12 && !g.smtp_await_slot);
    }

    #[test]
    fn config_values_override_the_defaults() {
        let p = queue(
            "<domain example.com>\n max-smtp-out 3\n backoff-max-smtp-out 0\n queue-priority 90\n \
             max-errors-per-connection 4\n max-rcpt-per-transaction 0\n default-smtp-port 2525\n \
             connect-timeout 7s\n retry-after 1m,5m\n bounce-after 2h\n max-msg-rate 10/m\n \
             backoff-to-normal-after 30m\n use-starttls no\n log-data yes\n</domain>\n",
        );
        assert_eq!(p.max_smtp_out, 3);
        // 0 connections would stall the queue: the floor is one.
        assert_eq!(p.backoff_max_smtp_out, 1);
        assert_eq!(p.queue_priority, 90);
        assert_eq!(p.max_errors_per_connection, Some(4));
        assert_eq!(p.max_rcpt_per_transaction, 1000);
        assert_eq!(p.default_smtp_port, 2525);
        assert_eq!(p.connect_timeout, Duration::from_secs(7));
        assert_eq!(p.retry_after, vec![Duration::from_secs(60), Duration::from_secs(300)]);
        assert_eq!(p.bounce_after, Duration::from_secs(7200));
        assert_eq!(p.max_msg_rate.map(|r| r.to_string()), Some("10/m".to_string()));
        // backoff-max-msg-rate unset: backoff keeps max-msg-rate.
        assert_eq!(p.backoff_max_msg_rate, p.max_msg_rate);
        assert_eq!(p.backoff_to_normal_after, Some(Duration::from_secs(1800)));
        assert!(!p.use_starttls && p.log_data);

        let g = config("total-max-smtp-out 7\ntotal-max-smtp-in 9\nspool-min-free-space 2\n").policy;
        assert_eq!((g.total_max_smtp_out, g.total_max_smtp_in), (7, 9));
        assert_eq!(g.spool_min_free_space, 2 << 20);
    }

    #[test]
    fn a_cleared_directive_reads_as_the_table_default() {
        let p = queue("<domain example.com>\n max-smtp-out \"\"\n connect-timeout \"\"\n</domain>\n");
        assert_eq!(p.max_smtp_out, 20);
        assert_eq!(p.connect_timeout, secs(Dir::ConnectTimeout));
    }

    /// Every directive other modules read through the public readers, so each of those reads
    /// runs here and its default is the one the code used to repeat.
    #[test]
    fn the_block_reads_give_the_table_defaults() {
        let s = Settings::default();
        // A size of 0 is written like unlimited, and means no floor here.
        assert_eq!(size(&s, Dir::MinFreeSpace), None);
        assert_eq!(uint(&s, Dir::SpoolPriority), 1);
        assert_eq!(uint(&s, Dir::ReservedSmtpIn), 0);
        assert_eq!(uint(&s, Dir::MaxMessageHops), 100);
        assert_eq!(interval(&s, Dir::SmtpCommandTimeout), Duration::from_secs(600));
        assert_eq!(interval(&s, Dir::SmtpDataTimeout), Duration::from_secs(600));
        assert_eq!(interval(&s, Dir::WriteTimeout), Duration::from_secs(60));
        assert_eq!(interval(&s, Dir::RetryInterval), Duration::from_secs(300));
        assert_eq!(interval(&s, Dir::SmtpDataTerminationTimeout), Duration::from_secs(600));
        assert_eq!(text(&s, Dir::DeliveryType), "smtp");
        assert_eq!(text(&s, Dir::FileFormat), "newfile-plain");
        assert_eq!(text(&s, Dir::DkimIdentity), "sender-or-from");
        let g = config("").policy;
        assert_eq!((g.host_id, g.log_rotate, g.spool_min_free_space), (0, 8, 0));
    }

    #[test]
    #[should_panic(expected = "policy reads max-smtp-out as an interval")]
    fn a_read_of_the_wrong_type_is_refused() {
        interval(&Settings::default(), Dir::MaxSmtpOut);
    }

    #[test]
    #[should_panic(expected = "policy needs a table default for backoff-max-msg-rate")]
    fn a_required_read_needs_a_table_default() {
        required(&Settings::default(), Dir::BackoffMaxMsgRate, "a rate", |t| t == ValueType::Rate);
    }
}
