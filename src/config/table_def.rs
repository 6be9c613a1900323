//! The shape of the directive table: scopes, enforcement status and one directive's declaration.
//!
//! The table itself (`table.rs`) is data written with the `directives!` macro below; the parser,
//! `show settings`, the "did you mean" list and `docs/config-reference.md` are all derived from it.

use super::table::Dir;
use super::value::ValueType;

/// The blocks a directive may appear in, as a bit set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scope(pub u32);

pub mod scope {
    pub const GLOBAL: u32 = 1 << 0;
    pub const SOURCE: u32 = 1 << 1;
    pub const SMTP_USER: u32 = 1 << 2;
    pub const SOURCE_GROUP: u32 = 1 << 3;
    pub const LISTENER: u32 = 1 << 4;
    pub const DOMAIN: u32 = 1 << 5;
    pub const VMTA: u32 = 1 << 6;
    pub const POOL: u32 = 1 << 7;
    pub const PATTERN_LIST: u32 = 1 << 8;
    pub const SMTP_PATTERN_LIST: u32 = 1 << 9;
    pub const BOUNCE_CATEGORIES: u32 = 1 << 10;
    pub const ACCT_FILE: u32 = 1 << 11;
    pub const SPOOL: u32 = 1 << 12;
    pub const BOUNCE_PROCESSOR: u32 = 1 << 13;
    pub const FBL_PROCESSOR: u32 = 1 << 14;
    pub const ADDRESS_LIST: u32 = 1 << 15;
    pub const EMAIL_PATTERNS: u32 = 1 << 16;
    pub const ALIASES: u32 = 1 << 17;
    pub const REWRITE_LIST: u32 = 1 << 18;
    pub const DOMAIN_KEY_LIST: u32 = 1 << 19;
    pub const MX_ROLLUP: u32 = 1 << 20;
    pub const DNS: u32 = 1 << 21;
    pub const PROXY: u32 = 1 << 22;
    pub const TX_API: u32 = 1 << 23;
    pub const TX_API_LISTENER: u32 = 1 << 24;
    pub const SIGNALS: u32 = 1 << 25;
    pub const SIGNALS_FILTER: u32 = 1 << 26;
    pub const SUPPRESSION_LIST: u32 = 1 << 27;
    pub const EVENT_SINK: u32 = 1 << 28;
}

/// Every block tag, its scope bit and the blocks it may be nested in.
pub const BLOCKS: &[(&str, u32, u32)] = {
    use scope::*;
    &[
        ("source", SOURCE, GLOBAL),
        ("smtp-user", SMTP_USER, GLOBAL),
        ("source-group", SOURCE_GROUP, GLOBAL),
        ("smtp-listener", LISTENER, GLOBAL),
        ("domain", DOMAIN, GLOBAL | VMTA | POOL),
        ("virtual-mta", VMTA, GLOBAL),
        ("virtual-mta-pool", POOL, GLOBAL),
        ("pattern-list", PATTERN_LIST, GLOBAL | PATTERN_LIST),
        ("smtp-pattern-list", SMTP_PATTERN_LIST, GLOBAL),
        ("bounce-category-patterns", BOUNCE_CATEGORIES, GLOBAL),
        ("acct-file", ACCT_FILE, GLOBAL),
        ("spool", SPOOL, GLOBAL),
        ("bounce-processor", BOUNCE_PROCESSOR, GLOBAL),
        ("feedback-loop-processor", FBL_PROCESSOR, GLOBAL),
        ("address-list", ADDRESS_LIST, GLOBAL | BOUNCE_PROCESSOR | FBL_PROCESSOR),
        ("email-patterns", EMAIL_PATTERNS, BOUNCE_PROCESSOR | FBL_PROCESSOR),
        ("aliases", ALIASES, GLOBAL),
        ("rewrite-list", REWRITE_LIST, GLOBAL),
        ("domain-key-list", DOMAIN_KEY_LIST, GLOBAL),
        ("mx-rollup-list", MX_ROLLUP, GLOBAL),
        ("dns", DNS, GLOBAL),
        ("proxy", PROXY, GLOBAL),
        ("transmissions-api", TX_API, GLOBAL),
        ("transmissions-api-listener", TX_API_LISTENER, GLOBAL),
        ("signals", SIGNALS, GLOBAL),
        ("signals-filter", SIGNALS_FILTER, GLOBAL),
        ("suppression-list", SUPPRESSION_LIST, GLOBAL),
        ("event-sink", EVENT_SINK, GLOBAL),
    ]
};

/// Human names of scopes, for "belongs in …" messages.
pub fn scope_names(bits: u32) -> Vec<String> {
    let mut names = Vec::new();
    if bits & scope::GLOBAL != 0 {
        names.push("top level".to_string());
    }
    for (tag, bit, _) in BLOCKS {
        if bits & bit != 0 {
            names.push(format!("<{tag}>"));
        }
    }
    names
}

/// Where a directive or block may appear, for "it belongs …" messages: `at top level`,
/// `in <a>, <b>` or `at top level or in <a>, <b>`.
pub fn belongs(bits: u32) -> String {
    let blocks = scope_names(bits & !scope::GLOBAL).join(", ");
    match (bits & scope::GLOBAL != 0, blocks.is_empty()) {
        (true, true) => "at top level".into(),
        (true, false) => format!("at top level or in {blocks}"),
        (false, _) => format!("in {blocks}"),
    }
}

/// Whether Ember acts on a directive. `Pending` directives are parsed, typed and shown, and
/// `check-config` lists them as "accepted, not yet enforced". `NoEffect` directives have no
/// meaning for Ember (PowerMTA 4.x tuning knobs, protocol versions rustls does not implement, a
/// vendor's cloud upload): they are accepted so a PowerMTA file loads, and every file that uses
/// one gets a warning at its first use naming it and the directive's doc line, which says why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Enforced,
    Pending,
    NoEffect,
}

/// One directive's declaration.
#[derive(Debug)]
pub struct DirectiveDef {
    pub id: Dir,
    pub name: &'static str,
    pub ty: ValueType,
    pub scope: Scope,
    /// PowerMTA's default, in config syntax; `None` when unset by default.
    pub default: Option<&'static str>,
    /// Repeated lines accumulate (a list) instead of overriding each other.
    pub repeatable: bool,
    pub status: Status,
    pub doc: &'static str,
}

impl DirectiveDef {
    pub fn allowed_in(&self, bit: u32) -> bool {
        self.scope.0 & bit != 0
    }

    /// A per-queue directive: one that `<domain>` blocks set and `show settings` prints.
    pub fn per_queue(&self) -> bool {
        self.allowed_in(scope::DOMAIN)
    }
}

/// Declares the table: an enum `Dir` with one variant per directive, and `DIRECTIVES`, indexed by
/// `Dir as usize`.
macro_rules! directives {
    ($( $id:ident => $name:literal, $ty:expr, $scope:expr, $default:expr, $rep:ident, $status:ident, $doc:literal; )*) => {
        /// A directive's identity; `DIRECTIVES[dir as usize]` is its declaration.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Dir { $($id),* }

        pub static DIRECTIVES: &[DirectiveDef] = &[
            $( DirectiveDef {
                id: Dir::$id,
                name: $name,
                ty: $ty,
                scope: Scope($scope),
                default: $default,
                repeatable: directives!(@rep $rep),
                status: Status::$status,
                doc: $doc,
            } ),*
        ];
    };
    (@rep once) => { false };
    (@rep many) => { true };
}
pub(crate) use directives;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn belongs_reads_as_english() {
        assert_eq!(belongs(scope::GLOBAL), "at top level");
        assert_eq!(belongs(scope::DOMAIN | scope::VMTA), "in <domain>, <virtual-mta>");
        assert_eq!(belongs(scope::GLOBAL | scope::SOURCE), "at top level or in <source>");
    }
}
