//! The built-in provider table of `auto-mx-rollup`: the MX host names of large mailbox providers
//! whose inbound servers take mail for every domain they host, so one queue (and one set of
//! limits) per virtual MTA can carry the mail of all those domains. An `mx` line of
//! `<mx-rollup-list>` is matched first and wins over this table.
//!
//! Only providers whose MX hosts are shared by all their customers belong here: a provider that
//! gives each customer a dedicated cluster (per-customer MX names that refuse other customers'
//! domains) must not be rolled up, since a rollup queue connects to one member's MX hosts and
//! sends every member's mail there.

/// Provider name → MX host patterns (`*.suffix` matches any name below `suffix`). The rollup
/// queue of a provider is `NAME.rollup`.
pub const PROVIDERS: &[(&str, &[&str])] = &[
    // aspmx.l.google.com, gmail-smtp-in.l.google.com, smtp.google.com, aspmx2.googlemail.com
    ("google", &["*.google.com", "*.googlemail.com"]),
    // TENANT.mail.protection.outlook.com (Microsoft 365), hotmail-com.olc.protection.outlook.com
    ("outlook", &["*.protection.outlook.com"]),
    // mta5.am0.yahoodns.net (Yahoo), mx-aol.mail.gm0.yahoodns.net (AOL)
    ("yahoo", &["*.yahoodns.net"]),
    // mx01.mail.icloud.com, mx02.mail.icloud.com (icloud.com, me.com, mac.com, custom domains)
    ("icloud", &["*.mail.icloud.com"]),
    // mail.protonmail.ch, mailsec.protonmail.ch
    ("proton", &["*.protonmail.ch"]),
    // in1-smtp.messagingengine.com
    ("fastmail", &["*.messagingengine.com"]),
    // mx.yandex.ru, mx.yandex.net
    ("yandex", &["*.yandex.ru", "*.yandex.net"]),
    // mxs.mail.ru (mail.ru, bk.ru, inbox.ru, list.ru)
    ("mailru", &["*.mail.ru"]),
];

/// The provider of a domain whose most preferred MX hosts are `hosts` (lower case, no trailing
/// dot): the first provider one of them belongs to.
pub fn provider_for<'a>(hosts: impl IntoIterator<Item = &'a str> + Clone) -> Option<&'static str> {
    PROVIDERS
        .iter()
        .find(|(_, patterns)| hosts.clone().into_iter().any(|h| patterns.iter().any(|p| matches(p, h))))
        .map(|(name, _)| *name)
}

/// `*.suffix` matches a name with at least one label before `suffix`; a plain pattern only itself.
pub fn matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix('*') {
        Some(suffix) => host.len() > suffix.len() && host.ends_with(suffix),
        None => host == pattern,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_table_knows_the_large_mailbox_providers() {
        for (host, provider) in [
            ("aspmx.l.google.com", "google"),
            ("alt1.aspmx.l.google.com", "google"),
            ("gmail-smtp-in.l.google.com", "google"),
            ("smtp.google.com", "google"),
            ("aspmx2.googlemail.com", "google"),
            ("contoso-com.mail.protection.outlook.com", "outlook"),
            ("hotmail-com.olc.protection.outlook.com", "outlook"),
            ("mta5.am0.yahoodns.net", "yahoo"),
            ("mx-aol.mail.gm0.yahoodns.net", "yahoo"),
            ("mx01.mail.icloud.com", "icloud"),
            ("mail.protonmail.ch", "proton"),
            ("in1-smtp.messagingengine.com", "fastmail"),
            ("mx.yandex.ru", "yandex"),
            ("mxs.mail.ru", "mailru"),
        ] {
            assert_eq!(provider_for([host]), Some(provider), "{host}");
        }
    }

    #[test]
    fn provider_patterns_need_a_label_of_their_own() {
        // The suffix itself, and a name that only ends in the same characters, are not the provider.
        for host in [
            "google.com",
            "notgoogle.com",
            "evilgoogle.com",
            "protection.outlook.com",
            "yahoodns.net",
            "mx.example.test",
        ] {
            assert_eq!(provider_for([host]), None, "{host}");
        }
        // Any of the most preferred hosts decides.
        assert_eq!(provider_for(["mx.example.test", "aspmx.l.google.com"]), Some("google"));
        assert_eq!(provider_for(std::iter::empty::<&str>()), None);
    }
}
