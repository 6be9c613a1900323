//! The injection policy of one SMTP session: the effective `<source>` settings
//! (docs/config-reference.md) read once into a typed struct, and the relay decision.
//!
//! Computed when a connection arrives (IP and listener source) and again after AUTH (adding
//! `{auth}` and the user's source), never per command.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::compiled_regex::ConfigRegex;
use crate::config::pattern::DomainPattern;
use crate::config::settings::Settings;
use crate::config::value::Value;
use crate::config::values::Rate;
use crate::config::{Config, Dir, policy as typed};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddDateHeader {
    No,
    Yes,
    Override,
}

/// One `relay-address` value.
#[derive(Clone, Debug)]
pub enum RelayAddress {
    /// Lowercased; compared case-insensitively.
    Exact(String),
    Regex(ConfigRegex),
}

impl RelayAddress {
    pub fn matches(&self, address: &str) -> bool {
        match self {
            RelayAddress::Exact(a) => a.eq_ignore_ascii_case(address),
            RelayAddress::Regex(r) => r.regex.is_match(address),
        }
    }
}

#[derive(Clone, Debug)]
pub struct SourcePolicy {
    pub smtp_service: bool,
    pub always_allow_relaying: bool,
    pub relay_domains: Vec<DomainPattern>,
    /// `relay-address` (global and source): whole addresses accepted for relay whatever their
    /// domain.
    pub relay_addresses: Vec<RelayAddress>,
    /// `domain-suffix` when the source has `auto-qualify-domain`: the domain a bare local part
    /// in MAIL FROM or RCPT TO gets.
    pub qualify_with: Option<String>,
    pub remove_received_headers: bool,
    pub relay_debug: bool,
    pub require_auth: bool,
    pub allow_auth: bool,
    pub allow_unencrypted_plain_auth: bool,
    pub allow_starttls: bool,
    pub require_starttls_before_auth: bool,
    pub auth_failure_rate: Option<Rate>,
    pub process_x_virtual_mta: bool,
    pub retain_x_virtual_mta: bool,
    pub allow_empty_x_virtual_mta: bool,
    pub reject_invalid_virtual_mta: bool,
    pub default_virtual_mta: Option<String>,
    /// The `<pattern-list>` that selects virtual MTA and priority for this source's mail.
    pub pattern_list: Option<String>,
    pub process_x_job: bool,
    pub retain_x_job: bool,
    pub jobid_header: Option<String>,
    pub jobid_prefix: Option<String>,
    pub process_x_envid: bool,
    pub max_message_size: Option<u64>,
    pub max_message_hops: u64,
    pub max_loop_count: Option<u64>,
    pub max_rcpt_per_message: Option<u64>,
    pub too_many_rcpts_fails_message: bool,
    pub accept_invalid_recipients: bool,
    pub suppression_lists: Vec<String>,
    pub suppress_file: Option<PathBuf>,
    /// The source's one-click unsubscribe settings (VMTA and domain settings override them).
    pub unsubscribe: crate::hygiene::unsubscribe::Spec,
    pub add_received_header: bool,
    pub hide_message_source: bool,
    pub add_message_id_header: bool,
    pub add_date_header: AddDateHeader,
    pub remove_header: Vec<String>,
    pub log_connections: bool,
    pub log_commands: bool,
    /// `log-data`: the data of each message received, in the log.
    pub log_data: bool,
    /// `log-tls`: each STARTTLS handshake (protocol, cipher), in the log.
    pub log_tls: bool,
    pub command_timeout: Duration,
    pub data_timeout: Duration,
    pub allow_chunking: bool,
    pub allow_smtputf8: bool,
    pub disconnect_on_transient_error: bool,
    /// `broken-auth-clients`: also advertise the pre-RFC 2554 `AUTH=LOGIN PLAIN` EHLO line that
    /// old Outlook and Netscape clients look for.
    pub broken_auth_clients: bool,
    /// The source's `<rewrite-list>`: MAIL FROM and the From domain, rewritten on receipt.
    pub rewrite: Option<std::sync::Arc<crate::config::rewrite::RewriteList>>,
    /// `process-x-dkim-options`, `retain-x-dkim-options`.
    pub process_x_dkim_options: bool,
    pub retain_x_dkim_options: bool,
    /// `bcc`: an archive copy of everything from this source goes here.
    pub bcc: Option<String>,
    /// `date-header-time delivery`: the Date header is added when the message is sent, not here.
    pub date_at_delivery: bool,
}

impl SourcePolicy {
    /// The policy for a client at `ip`, with the named sources that apply to it, general first.
    pub fn for_client(config: &Config, ip: IpAddr, named: &[&str]) -> SourcePolicy {
        let s = config.source_settings(ip, named);
        let mut relay_domains: Vec<DomainPattern> = Vec::new();
        for holder in [&config.global, &s] {
            for e in holder.all(Dir::RelayDomain) {
                if let Value::Domain(d) = &e.value {
                    relay_domains.push(d.clone());
                }
            }
        }
        // A host name Ember answers to is also a domain it accepts mail for (as in PowerMTA).
        for e in config.global.all(Dir::HostName) {
            if let Value::Text(h) = &e.value {
                relay_domains.push(DomainPattern::Exact(h.to_lowercase()));
            }
        }
        let mut relay_addresses = Vec::new();
        for holder in [&config.global, &s] {
            for e in holder.all(Dir::RelayAddress) {
                match &e.value {
                    Value::Text(a) => relay_addresses.push(RelayAddress::Exact(a.clone())),
                    Value::Regex(r) => relay_addresses.push(RelayAddress::Regex(r.clone())),
                    _ => {}
                }
            }
        }
        let qualify_with = config
            .global
            .text(Dir::DomainSuffix)
            .map(|d| d.trim_start_matches(['.', '@']).to_lowercase())
            .filter(|d| !d.is_empty() && s.flag(Dir::AutoQualifyDomain));
        let opt_text = |s: &Settings, d: Dir| s.text(d).map(str::to_string);
        SourcePolicy {
            smtp_service: s.flag(Dir::SmtpService),
            always_allow_relaying: s.flag(Dir::AlwaysAllowRelaying) || config.global.flag(Dir::AlwaysAllowRelaying),
            relay_domains,
            relay_addresses,
            qualify_with,
            remove_received_headers: s.flag(Dir::RemoveReceivedHeaders),
            relay_debug: config.global.flag(Dir::RelayDebug),
            require_auth: s.flag(Dir::RequireAuth),
            allow_auth: s.flag(Dir::AllowAuth),
            allow_unencrypted_plain_auth: s.flag(Dir::AllowUnencryptedPlainAuth),
            allow_starttls: s.flag(Dir::AllowStarttls),
            require_starttls_before_auth: s.flag(Dir::RequireStarttlsBeforeAuth),
            auth_failure_rate: s.rate(Dir::SmtpMaxAuthFailureRate),
            process_x_virtual_mta: s.flag(Dir::ProcessXVirtualMta),
            retain_x_virtual_mta: s.flag(Dir::RetainXVirtualMta),
            allow_empty_x_virtual_mta: s.flag(Dir::AllowEmptyXVirtualMta),
            reject_invalid_virtual_mta: s.flag(Dir::RejectInvalidVirtualMta),
            default_virtual_mta: opt_text(&s, Dir::DefaultVirtualMta),
            pattern_list: opt_text(&s, Dir::PatternListRef),
            process_x_job: s.flag(Dir::ProcessXJob),
            retain_x_job: s.flag(Dir::RetainXJob),
            jobid_header: opt_text(&s, Dir::JobidHeader),
            jobid_prefix: opt_text(&s, Dir::JobidPrefix),
            process_x_envid: s.flag(Dir::ProcessXEnvid),
            max_message_size: s.size(Dir::MaxMessageSize),
            max_message_hops: typed::uint(&s, Dir::MaxMessageHops),
            max_loop_count: s.uint(Dir::MaxLoopCount),
            max_rcpt_per_message: s.uint(Dir::MaxRcptPerMessage).filter(|n| *n > 0),
            too_many_rcpts_fails_message: s.flag(Dir::TooManyRcptsFailsMessage),
            accept_invalid_recipients: s.flag(Dir::AcceptInvalidRecipients),
            suppression_lists: s.list(Dir::SuppressionLists),
            suppress_file: s.path(Dir::SuppressFile).map(|p| config.path(p)),
            unsubscribe: {
                let mut spec = crate::hygiene::unsubscribe::Spec::default();
                spec.overlay(&s);
                spec
            },
            add_received_header: s.flag(Dir::AddReceivedHeader),
            hide_message_source: s.flag(Dir::HideMessageSource),
            add_message_id_header: s.flag(Dir::AddMessageIdHeader),
            add_date_header: match s.text(Dir::AddDateHeader) {
                Some("yes") => AddDateHeader::Yes,
                Some("override") => AddDateHeader::Override,
                _ => AddDateHeader::No,
            },
            remove_header: s.list(Dir::RemoveHeader),
            log_connections: s.flag(Dir::LogConnections),
            log_commands: s.flag(Dir::LogCommands),
            log_data: s.flag(Dir::LogData),
            log_tls: s.flag(Dir::LogTls),
            command_timeout: typed::interval(&s, Dir::SmtpCommandTimeout),
            data_timeout: typed::interval(&s, Dir::SmtpDataTimeout),
            allow_chunking: s.flag(Dir::AllowChunking),
            allow_smtputf8: s.flag(Dir::AllowSmtputf8),
            disconnect_on_transient_error: s.flag(Dir::DisconnectOnTransientError),
            broken_auth_clients: s.flag(Dir::BrokenAuthClients),
            rewrite: s
                .text(Dir::RewriteListRef)
                .and_then(|name| crate::config::rewrite::RewriteList::named(config, name))
                .map(std::sync::Arc::new),
            process_x_dkim_options: s.flag(Dir::ProcessXDkimOptions),
            retain_x_dkim_options: s.flag(Dir::RetainXDkimOptions),
            bcc: opt_text(&s, Dir::Bcc).filter(|a| !a.is_empty()),
            date_at_delivery: s.text(Dir::DateHeaderTime) == Some("delivery"),
        }
    }

    /// May this session send to `address` (whose domain is `domain`)? Feeders relay anywhere;
    /// others only to relay domains and relay addresses.
    pub fn may_relay_to(&self, address: &str, domain: &str) -> bool {
        self.always_allow_relaying
            || self.relay_domains.iter().any(|p| p.matches(domain))
            || self.relay_addresses.iter().any(|a| a.matches(address))
    }

    /// `local@domain-suffix` for a bare local part when the source qualifies them; `None` when
    /// the address is already qualified (or empty) or the source does not.
    pub fn qualify(&self, address: &str) -> Option<String> {
        let suffix = self.qualify_with.as_deref()?;
        (!address.is_empty() && !address.contains('@')).then(|| format!("{address}@{suffix}"))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{FileCheck, load_str};

    fn policy(text: &str, ip: &str, named: &[&str]) -> SourcePolicy {
        let loaded = load_str("p.conf", text, Path::new("."), FileCheck::Warn);
        assert!(!loaded.diagnostics.has_errors(), "{}", loaded.diagnostics);
        SourcePolicy::for_client(&loaded.config, ip.parse().unwrap(), named)
    }

    #[test]
    fn defaults_are_powermtas() {
        let p = policy("", "192.0.2.1", &[]);
        assert!(p.smtp_service && !p.always_allow_relaying && p.allow_auth && p.reject_invalid_virtual_mta);
        assert_eq!(p.max_message_size, None);
        assert_eq!(p.max_message_hops, 100);
        assert_eq!(p.command_timeout, Duration::from_secs(600));
    }

    #[test]
    fn relay_rights() {
        let text = "host-name mta.example.net\nrelay-domain [*.]inbound.example\n<source 127.0.0.1>\n always-allow-relay yes\n</source>\n";
        assert!(policy(text, "127.0.0.1", &[]).may_relay_to("x@gmail.com", "gmail.com"));
        let other = policy(text, "127.0.0.5", &[]);
        assert!(!other.may_relay_to("x@gmail.com", "gmail.com"));
        assert!(other.may_relay_to("x@a.inbound.example", "a.inbound.example"));
        assert!(other.may_relay_to("x@mta.example.net", "mta.example.net"));
    }

    #[test]
    fn relay_addresses_global_and_per_source() {
        let text = "relay-address Postmaster@Outside.example\n<source 127.0.0.2>\n relay-address /^ops-[a-z]+@partner\\.example$/\n</source>\n";
        let plain = policy(text, "127.0.0.5", &[]);
        assert!(plain.may_relay_to("postmaster@outside.EXAMPLE", "outside.example"));
        assert!(!plain.may_relay_to("other@outside.example", "outside.example"));
        assert!(!plain.may_relay_to("ops-a@partner.example", "partner.example"));
        let src = policy(text, "127.0.0.2", &[]);
        assert!(src.may_relay_to("postmaster@outside.example", "outside.example"));
        assert!(src.may_relay_to("OPS-night@partner.example", "partner.example"));
        assert!(!src.may_relay_to("ops-1@partner.example", "partner.example"));
        assert!(!src.may_relay_to("x-ops-a@partner.example.org", "partner.example.org"));
    }

    #[test]
    fn bare_local_parts_are_qualified_only_with_a_suffix_and_auto_qualify() {
        let text = "domain-suffix corp.example\n<source 127.0.0.2>\n auto-qualify-domain no\n</source>\n";
        let p = policy(text, "127.0.0.5", &[]);
        assert_eq!(p.qualify("bob").as_deref(), Some("bob@corp.example"));
        assert_eq!(p.qualify("bob@other.example"), None);
        assert_eq!(p.qualify(""), None, "the null sender stays null");
        assert_eq!(policy(text, "127.0.0.2", &[]).qualify("bob"), None);
        assert_eq!(policy("", "127.0.0.5", &[]).qualify("bob"), None);
    }

    #[test]
    fn a_bad_relay_address_regex_is_a_config_error() {
        let loaded = load_str("p.conf", "relay-address /(/\n", Path::new("."), FileCheck::Warn);
        let shown = loaded.diagnostics.to_string();
        assert!(loaded.diagnostics.has_errors() && shown.contains("p.conf:1"), "{shown}");
    }

    #[test]
    fn auth_source_refines() {
        let text = "<source 0/0>\n max-message-size 1M\n</source>\n<source {auth}>\n always-allow-relaying yes\n</source>\n<source big>\n max-message-size 50M\n</source>\n";
        let anon = policy(text, "192.0.2.1", &[]);
        assert_eq!(anon.max_message_size, Some(1 << 20));
        let authed = policy(text, "192.0.2.1", &["{auth}", "big"]);
        assert!(authed.always_allow_relaying);
        assert_eq!(authed.max_message_size, Some(50 << 20));
    }
}
