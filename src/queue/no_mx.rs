//! `bounce-upon-no-mx`: what a destination domain that does not exist (NXDOMAIN, or neither MX
//! nor address records) means for a queue's mail. PowerMTA's default retries such a queue like any
//! other that cannot be reached, until `bounce-after`; `yes` bounces its mail at once; a time
//! bounces only the mail queued longer than that and retries the rest. A null MX (RFC 7505) is
//! the domain's own statement that it takes no mail: it always bounces.

use std::time::Duration;

use crate::config::Dir;
use crate::config::settings::Settings;
use crate::config::value::Value;
use crate::smtp::Reply;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoMxPolicy {
    /// `no` (or `never`): retry mode, like any unreachable destination.
    Retry,
    /// `yes`: everything queued bounces.
    Bounce,
    /// A time: mail queued at least this long bounces, younger mail waits in retry mode.
    BounceOlderThan(Duration),
}

impl NoMxPolicy {
    pub fn from_settings(s: &Settings) -> NoMxPolicy {
        match s.effective(Dir::BounceUponNoMx) {
            Some(Value::Bool(true)) => NoMxPolicy::Bounce,
            Some(Value::Interval(i)) => NoMxPolicy::BounceOlderThan(Duration::from_secs(i.seconds())),
            _ => NoMxPolicy::Retry,
        }
    }

    /// Whether a message queued `age` ago bounces.
    pub fn bounces(&self, age: Duration) -> bool {
        match self {
            NoMxPolicy::Retry => false,
            NoMxPolicy::Bounce => true,
            NoMxPolicy::BounceOlderThan(limit) => age >= *limit,
        }
    }
}

/// The reply recorded while a queue whose domain does not exist waits to retry (`dsnDiag` of its
/// `t` records): the same words as the bounce, as a transient status.
pub fn deferral(bounce: &Reply) -> Reply {
    let enhanced = bounce.enhanced.strip_prefix('5').map_or_else(|| "4.1.2".to_string(), |rest| format!("4{rest}"));
    Reply::new(451, enhanced, bounce.text.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{FileCheck, load_str};

    fn policy(value: &str) -> NoMxPolicy {
        let text = format!("<domain x.test>\n    bounce-upon-no-mx {value}\n</domain>\n");
        let config = load_str("n.conf", &text, std::path::Path::new("."), FileCheck::Warn).config;
        NoMxPolicy::from_settings(&config.queue_settings("x.test", None).unwrap().settings)
    }

    #[test]
    fn the_directive_reads_as_a_policy() {
        assert_eq!(policy("no"), NoMxPolicy::Retry);
        assert_eq!(policy("never"), NoMxPolicy::Retry);
        assert_eq!(policy("yes"), NoMxPolicy::Bounce);
        assert_eq!(policy("2h"), NoMxPolicy::BounceOlderThan(Duration::from_secs(7200)));
        let default = load_str("n.conf", "", std::path::Path::new("."), FileCheck::Warn).config;
        let settings = default.queue_settings("x.test", None).unwrap().settings;
        assert_eq!(NoMxPolicy::from_settings(&settings), NoMxPolicy::Retry);
    }

    #[test]
    fn only_old_enough_mail_bounces_under_a_time() {
        let p = NoMxPolicy::BounceOlderThan(Duration::from_secs(3600));
        assert!(!p.bounces(Duration::from_secs(3599)));
        assert!(p.bounces(Duration::from_secs(3600)));
        assert!(NoMxPolicy::Bounce.bounces(Duration::ZERO));
        assert!(!NoMxPolicy::Retry.bounces(Duration::from_secs(86_400 * 30)));
    }

    #[test]
    fn the_deferral_keeps_the_words_with_a_transient_status() {
        let d = deferral(&Reply::new(550, "5.1.2", "bad destination system: no such domain"));
        assert_eq!(d.to_string(), "451 4.1.2 bad destination system: no such domain");
    }
}
