//! Typed directive values: the `ValueType` each directive declares in the table, the parsed
//! `Value`, and the printing of a value back into documented config syntax.
//!
//! Owns turning a directive's tokens into a typed value with a precise error. Knows nothing about
//! blocks or inheritance.

use std::fmt;
use std::path::PathBuf;
#[cfg(test)]
use std::sync::Arc;

pub use super::compiled_regex::ConfigRegex;
use super::lexer::Token;
use super::pattern::DomainPattern;
use super::rules::{BackoffRule, PatternEntry, ReplyRule};
use super::values::{Cidr, DataRate, Interval, ListenAddr, Rate, Ratio, ScalarError, Size};

/// What `smtp-listener` takes, in "expected …" messages.
const LISTENER: &str = "ADDRESS:PORT [source=NAME] [tls=yes|no]";

/// The syntax a directive's value must follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueType {
    Bool,
    Uint,
    /// An integer within an inclusive range.
    UintRange(u64, u64),
    /// An integer, or `unlimited`.
    UintOrUnlimited,
    /// An integer, or `auto` (kept as the text `auto`).
    UintOrAuto,
    Interval,
    IntervalOrNever,
    /// `10m,10m,1h`: at most 30 entries, the last repeats.
    IntervalList,
    Rate,
    /// `PERCENT%/MIN-SAMPLE/WINDOW` (ratio triggers).
    Ratio,
    /// `1/day,2/day,3/day`.
    RateList,
    DataRate,
    Size,
    Cidr,
    Listen,
    /// `ADDRESS:PORT [source=NAME]` (the one-line `smtp-listener`). Parsed into
    /// `Value::Words([ADDRESS:PORT as written, "source=NAME"])`, the second word only when given.
    Listener,
    /// `PORT` or `ADDRESS:PORT`.
    PortOrListen,
    /// `/regex/`.
    Regex,
    DomainPattern,
    /// One word, no spaces.
    Word,
    /// An e-mail address (matched case-insensitively) or a `/regex/` over whole addresses.
    AddressOrRegex,
    /// Free text: the rest of the line (quotes keep spaces inside one value).
    Text,
    /// One of a fixed set of words.
    Enum(&'static [&'static str]),
    /// A comma-separated list of words.
    List,
    /// A file the running daemon must be able to read.
    File,
    /// A file the daemon writes: created (with its directory) when missing.
    OutputFile,
    /// A directory the running daemon uses.
    Dir,
    Email,
    /// `redis://` or `rediss://` URL of the cluster's Redis.
    RedisUrl,
    /// Comma-separated e-mail addresses.
    EmailList,
    /// `IP|CIDR [HOSTNAME]`.
    SourceHost,
    /// `CIDR LEVEL[,deny-logs]`.
    HttpAccess,
    /// `SELECTOR,DOMAIN|*,FILE` (and the field form `SELECTOR,,$domain,FILE`).
    DomainKey,
    /// `CIDR RATE`.
    CidrRate,
    /// `CIDR DATA-RATE`.
    CidrDataRate,
    /// `CIDR N`.
    CidrUint,
    /// `host[:port],…;…` MX override.
    SmtpHosts,
    /// `MX-PATTERN N`.
    MxConnectionLimit,
    /// `yes|no|TIME|never` (bounce-upon-no-mx).
    BoolOrInterval,
    /// `FILE [PASSWORD]`.
    FileWithPassword,
    /// `/regex/ action[,action…]` inside `<smtp-pattern-list>`.
    ReplyRule,
    /// `/regex/ result` (or `NAME /regex/ result` for headers) inside `<pattern-list>`.
    PatternEntry,
    /// `CODE MATCH MATCH, DURATION, CONNECTIONS, RATE`.
    BackoffRule,
    /// Several space-separated words, at least `min` of them (structured entries whose behaviour
    /// is owned by a later part: `record-fields d *`, `alias a b`, `mx host name`).
    Words {
        min: usize,
        max: usize,
    },
}

impl ValueType {
    /// A short description used in "expected …" messages and the docs.
    pub fn describe(&self) -> String {
        match self {
            ValueType::Bool => "yes or no".into(),
            ValueType::Uint => "a whole number".into(),
            ValueType::UintRange(a, b) => format!("a whole number from {a} to {b}"),
            ValueType::UintOrUnlimited => "a whole number or unlimited".into(),
            ValueType::UintOrAuto => "a whole number or auto".into(),
            ValueType::Interval => "a time interval like 30m or 4d12h".into(),
            ValueType::IntervalOrNever => "a time interval like 30m, or never".into(),
            ValueType::IntervalList => "a comma-separated list of time intervals like 10m,10m,1h".into(),
            ValueType::Rate => "a rate N/unit like 5000/h, or unlimited".into(),
            ValueType::Ratio => "a ratio trigger PERCENT%/MIN-SAMPLE/WINDOW like 5%/200/10m, or off".into(),
            ValueType::RateList => "a comma-separated list of rates like 1/day,2/day".into(),
            ValueType::DataRate => "a data rate like 1024K/15s, or unlimited".into(),
            ValueType::Size => "a size like 40K, 250M or unlimited".into(),
            ValueType::Cidr => "an IP address or CIDR like 10/8".into(),
            ValueType::Listen => "ADDRESS:PORT like 0/0:25".into(),
            ValueType::Listener => LISTENER.into(),
            ValueType::PortOrListen => "PORT or ADDRESS:PORT like 8080 or 127.0.0.1:8080".into(),
            ValueType::Regex => "a /regular expression/".into(),
            ValueType::DomainPattern => "a domain pattern".into(),
            ValueType::Word => "a single word".into(),
            ValueType::AddressOrRegex => "an e-mail address or a /regular expression/".into(),
            ValueType::Text => "text".into(),
            ValueType::Enum(words) => format!("one of {}", words.join(", ")),
            ValueType::List => "a comma-separated list".into(),
            ValueType::File | ValueType::OutputFile => "a file path".into(),
            ValueType::Dir => "a directory path".into(),
            ValueType::Email => "an e-mail address".into(),
            ValueType::RedisUrl => "a redis:// or rediss:// URL".into(),
            ValueType::EmailList => "a comma-separated list of e-mail addresses".into(),
            ValueType::SourceHost => "IP HOSTNAME like 203.0.113.21 mta1.example.com".into(),
            ValueType::HttpAccess => "CIDR LEVEL (none, monitor, operator, admin)".into(),
            ValueType::DomainKey => "SELECTOR,DOMAIN,FILE".into(),
            ValueType::CidrRate => "CIDR RATE like 10/8 100/h".into(),
            ValueType::CidrDataRate => "CIDR DATA-RATE like 10/8 1G/h".into(),
            ValueType::CidrUint => "CIDR N like 10/8 5".into(),
            ValueType::SmtpHosts => "a host list like [10.0.0.1]:25,mx.example.com;backup.example.com".into(),
            ValueType::MxConnectionLimit => "MX-PATTERN N".into(),
            ValueType::BoolOrInterval => "yes, no, a time interval, or never".into(),
            ValueType::FileWithPassword => "FILE [PASSWORD]".into(),
            ValueType::ReplyRule => "/regex/ action[,action…]".into(),
            ValueType::PatternEntry => "/regex/ virtual-mta=NAME|recipient-priority=N".into(),
            ValueType::BackoffRule => {
                "CODE MATCH *, DURATION, CONNECTIONS, RATE like 421 RP-001 *, 1h, 5, 1000/h".into()
            }
            ValueType::Words { min, .. } => format!("at least {min} value(s)"),
        }
    }

    /// Whether the value names a file that must exist where the daemon runs.
    pub fn refers_to_file(&self) -> bool {
        matches!(self, ValueType::File | ValueType::FileWithPassword | ValueType::DomainKey)
    }
}

/// A parsed directive value.
#[derive(Clone, Debug)]
pub enum Value {
    /// `""`: explicitly clears an inherited value.
    Cleared,
    Bool(bool),
    Uint(u64),
    Unlimited,
    Interval(Interval),
    Never,
    IntervalList(Vec<Interval>),
    Rate(Option<Rate>),
    /// `None`: `off`.
    Ratio(Option<Ratio>),
    RateList(Vec<Option<Rate>>),
    DataRate(Option<DataRate>),
    Size(Option<Size>),
    Cidr(Cidr),
    Listen(ListenAddr),
    Regex(ConfigRegex),
    Domain(DomainPattern),
    Text(String),
    List(Vec<String>),
    Path(PathBuf),
    SourceHost {
        cidr: Cidr,
        host: Option<String>,
    },
    HttpAccess {
        cidr: Cidr,
        level: String,
        deny_logs: bool,
    },
    DomainKey {
        selector: String,
        domain: String,
        file: PathBuf,
    },
    CidrRate(Cidr, Option<Rate>),
    CidrDataRate(Cidr, Option<DataRate>),
    CidrUint(Cidr, u64),
    SmtpHosts(Vec<Vec<String>>),
    MxConnectionLimit {
        pattern: String,
        limit: u64,
    },
    FileWithPassword {
        file: PathBuf,
        password: Option<String>,
    },
    ReplyRule(ReplyRule),
    PatternEntry(PatternEntry),
    BackoffRule(BackoffRule),
    Words(Vec<String>),
}

/// A value error: the column it points at and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueError {
    pub col: u32,
    pub message: String,
}

impl ValueError {
    fn at(token: &Token, message: impl fmt::Display) -> Self {
        ValueError { col: token.location.col, message: message.to_string() }
    }

    /// For `map_err`: whichever parser's error, reported at `token`'s column.
    fn on<E: fmt::Display>(token: &Token) -> impl Fn(E) -> ValueError + '_ {
        move |e| ValueError::at(token, e)
    }

    /// An error `offset` bytes into `token`'s text. The column is exact for text written without
    /// quotes (raw text such as a rule's); in a quoted token it is the token's own column.
    pub fn within(token: &Token, offset: usize, message: impl fmt::Display) -> Self {
        let shift = match token.text.get(..offset) {
            Some(before) if !token.quoted => u32::try_from(before.chars().count()).unwrap_or(0),
            _ => 0,
        };
        ValueError { col: token.location.col.saturating_add(shift), message: message.to_string() }
    }
}

/// Joins the words of a comma-separated list written with spaces around its commas: `a, b ,c`
/// is the one value `a,b,c`, at the column of `a` (docs/config-reference.md, "Syntax"). Only commas
/// written outside quotes join.
pub fn join_list_tokens(args: &[Token]) -> Vec<Token> {
    let mut out: Vec<Token> = Vec::with_capacity(args.len());
    for t in args {
        match out.last_mut() {
            Some(prev) if prev.continues_list() || t.continues_previous() => {
                prev.text.push_str(&t.text);
                prev.quoted |= t.quoted;
                prev.bare_ends.1 = t.bare_ends.1;
            }
            _ => out.push(t.clone()),
        }
    }
    out
}

/// Parses the arguments of one directive. `rest` is the raw text after the directive name.
pub fn parse_value(ty: ValueType, name_col: u32, args: &[Token], rest: &Token) -> Result<Value, ValueError> {
    if args.is_empty() {
        return Err(ValueError { col: name_col, message: format!("missing value: expected {}", ty.describe()) });
    }
    if args.len() == 1 && args[0].quoted && args[0].text.is_empty() {
        return Ok(Value::Cleared);
    }
    // Free text keeps its words as written; every other value reads `a, b` as the list `a,b`.
    let joined_lists;
    let args = if ty == ValueType::Text {
        args
    } else {
        joined_lists = join_list_tokens(args);
        joined_lists.as_slice()
    };
    let single = || -> Result<&Token, ValueError> {
        match args {
            [one] => Ok(one),
            [_, extra, ..] => Err(ValueError::at(
                extra,
                format!("unexpected extra value {:?}: expected {}", extra.text, ty.describe()),
            )),
            [] => unreachable!("checked above"),
        }
    };
    let joined = || args.iter().map(|t| t.text.as_str()).collect::<Vec<_>>().join(" ");
    let first = &args[0];
    let err = |message: String| ValueError::at(first, message);
    Ok(match ty {
        ValueType::Bool => Value::Bool(parse_bool(&single()?.text).map_err(ValueError::on(first))?),
        ValueType::Uint => Value::Uint(parse_uint(&single()?.text).map_err(ValueError::on(first))?),
        ValueType::UintRange(lo, hi) => {
            let n = parse_uint(&single()?.text).map_err(ValueError::on(first))?;
            if n < lo || n > hi {
                return Err(err(format!("expected a whole number from {lo} to {hi}, found {n}")));
            }
            Value::Uint(n)
        }
        ValueType::UintOrUnlimited => {
            let t = &single()?.text;
            if t.eq_ignore_ascii_case("unlimited") {
                Value::Unlimited
            } else {
                Value::Uint(parse_uint(t).map_err(ValueError::on(first))?)
            }
        }
        ValueType::UintOrAuto => {
            let t = &single()?.text;
            if t.eq_ignore_ascii_case("auto") {
                Value::Text("auto".into())
            } else {
                Value::Uint(parse_uint(t).map_err(ValueError::on(first))?)
            }
        }
        ValueType::Interval => Value::Interval(Interval::parse(&single()?.text).map_err(ValueError::on(first))?),
        ValueType::IntervalOrNever => {
            let t = &single()?.text;
            if t.eq_ignore_ascii_case("never") {
                Value::Never
            } else {
                Value::Interval(Interval::parse(t).map_err(ValueError::on(first))?)
            }
        }
        ValueType::IntervalList => {
            let items = split_list(&joined());
            if items.len() > 30 {
                return Err(err(format!("at most 30 intervals are allowed, found {}", items.len())));
            }
            Value::IntervalList(
                items.iter().map(|i| Interval::parse(i)).collect::<Result<_, _>>().map_err(ValueError::on(first))?,
            )
        }
        ValueType::Rate => Value::Rate(Rate::parse(&single()?.text).map_err(ValueError::on(first))?),
        ValueType::Ratio => {
            let t = &single()?.text;
            Value::Ratio(if t.eq_ignore_ascii_case("off") {
                None
            } else {
                Some(Ratio::parse(t).map_err(ValueError::on(first))?)
            })
        }
        ValueType::RateList => Value::RateList(
            split_list(&joined())
                .iter()
                .map(|r| Rate::parse(r))
                .collect::<Result<_, _>>()
                .map_err(ValueError::on(first))?,
        ),
        ValueType::DataRate => Value::DataRate(DataRate::parse(&single()?.text).map_err(ValueError::on(first))?),
        ValueType::Size => Value::Size(Size::parse(&single()?.text).map_err(ValueError::on(first))?),
        ValueType::Cidr => Value::Cidr(Cidr::parse(&single()?.text).map_err(ValueError::on(first))?),
        ValueType::Listen => Value::Listen(parse_listen(single()?)?),
        ValueType::Listener => {
            parse_listen(first)?;
            // The address, then `source=NAME` and `tls=yes|no` (PowerMTA 4.5: implicit TLS, SMTPS,
            // on this listener) in either order. Normalized to [address, source=NAME?, tls=yes?].
            let mut source = None;
            let mut tls = None;
            if let Some(extra) = args.get(3) {
                return Err(ValueError::at(
                    extra,
                    format!("unexpected extra value {:?}: expected {LISTENER}", extra.text),
                ));
            }
            for option in &args[1..] {
                let (key, value) = option.text.split_once('=').unwrap_or((&option.text, ""));
                let key = key.to_ascii_lowercase();
                match key.as_str() {
                    "source" if source.is_none() && !value.is_empty() => source = Some(value.to_string()),
                    "tls" if tls.is_none() => {
                        tls = Some(parse_bool(value).map_err(|m| ValueError::at(option, format!("tls={value}: {m}")))?)
                    }
                    _ => {
                        return Err(ValueError::at(
                            option,
                            format!("expected source=NAME or tls=yes|no after the address, found {:?}", option.text),
                        ));
                    }
                }
            }
            let mut words = vec![first.text.clone()];
            words.extend(source.map(|name| format!("source={name}")));
            if tls == Some(true) {
                words.push("tls=yes".to_string());
            }
            Value::Words(words)
        }
        ValueType::PortOrListen => {
            let t = &single()?.text;
            match t.parse::<u16>() {
                Ok(port) => Value::Uint(u64::from(port)),
                Err(_) if t.bytes().all(|b| b.is_ascii_digit()) => {
                    return Err(err(format!("port {t} is out of range (0-65535)")));
                }
                Err(_) => Value::Listen(
                    ListenAddr::parse(t).map_err(|_| err(format!("expected {}, found {t:?}", ty.describe())))?,
                ),
            }
        }
        ValueType::Regex => Value::Regex(ConfigRegex::parse(rest.text.trim(), false).map_err(ValueError::on(first))?),
        ValueType::DomainPattern => {
            Value::Domain(DomainPattern::parse(&single()?.text).map_err(ValueError::on(first))?)
        }
        ValueType::Word => Value::Text(single()?.text.clone()),
        ValueType::AddressOrRegex => {
            let t = &single()?.text;
            if t.starts_with('/') {
                Value::Regex(ConfigRegex::parse(t, true).map_err(ValueError::on(first))?)
            } else {
                Value::Text(t.to_lowercase())
            }
        }
        ValueType::Text => Value::Text(if args.len() == 1 { first.text.clone() } else { joined() }),
        ValueType::Enum(words) => {
            let mut t = single()?.text.to_lowercase();
            // `true`/`false` where the words include yes/no: PowerMTA reads them as yes/no.
            if !words.contains(&t.as_str()) && words.contains(&"yes") && words.contains(&"no") {
                match t.as_str() {
                    "true" | "on" => t = "yes".into(),
                    "false" | "off" => t = "no".into(),
                    _ => {}
                }
            }
            match words.iter().find(|w| **w == t) {
                Some(w) => Value::Text((*w).to_string()),
                None => return Err(err(format!("expected one of {}, found {:?}", words.join(", "), first.text))),
            }
        }
        ValueType::List => Value::List(split_list(&joined())),
        ValueType::File | ValueType::OutputFile | ValueType::Dir => Value::Path(PathBuf::from(&single()?.text)),
        ValueType::Email => Value::Text(parse_email(&single()?.text).map_err(ValueError::on(first))?),
        ValueType::RedisUrl => Value::Text(parse_redis_url(&single()?.text).map_err(ValueError::on(first))?),
        ValueType::EmailList => Value::List(
            split_list(&joined())
                .iter()
                .map(|e| parse_email(e))
                .collect::<Result<_, _>>()
                .map_err(ValueError::on(first))?,
        ),
        ValueType::SourceHost => {
            let cidr = Cidr::parse(&first.text).map_err(ValueError::on(first))?;
            match args {
                [_] => Value::SourceHost { cidr, host: None },
                [_, host] => Value::SourceHost {
                    cidr,
                    host: Some(parse_hostname(&host.text).map_err(|m| ValueError::at(host, m))?),
                },
                [_, _, extra, ..] => {
                    return Err(ValueError::at(
                        extra,
                        format!("unexpected extra value {:?}: expected {}", extra.text, ty.describe()),
                    ));
                }
                [] => unreachable!(),
            }
        }
        ValueType::HttpAccess => {
            let [cidr, level] = two(args, ty)?;
            let cidr = Cidr::parse(&cidr.text).map_err(ValueError::on(first))?;
            let mut parts = level.text.split(',').map(|p| p.trim().to_lowercase());
            let lvl = parts.next().unwrap_or_default();
            if !["none", "monitor", "operator", "admin"].contains(&lvl.as_str()) {
                return Err(ValueError::at(
                    level,
                    format!("expected an access level (none, monitor, operator, admin), found {:?}", level.text),
                ));
            }
            let mut deny_logs = false;
            for extra in parts {
                if extra == "deny-logs" {
                    deny_logs = true;
                } else {
                    return Err(ValueError::at(level, format!("unknown access option {extra:?}: expected deny-logs")));
                }
            }
            Value::HttpAccess { cidr, level: lvl, deny_logs }
        }
        ValueType::DomainKey => parse_domain_key(&joined()).map_err(ValueError::on(first))?,
        ValueType::CidrRate => {
            let [c, r] = two(args, ty)?;
            Value::CidrRate(
                Cidr::parse(&c.text).map_err(ValueError::on(first))?,
                Rate::parse(&r.text).map_err(|m| ValueError::at(r, m))?,
            )
        }
        ValueType::CidrDataRate => {
            let [c, r] = two(args, ty)?;
            Value::CidrDataRate(
                Cidr::parse(&c.text).map_err(ValueError::on(first))?,
                DataRate::parse(&r.text).map_err(|m| ValueError::at(r, m))?,
            )
        }
        // `max-smtp-out-per-source-ip N` alone (PowerMTA 4.x): N connections from each source
        // IP, that is the CIDR 0/0.
        ValueType::CidrUint if args.len() == 1 && parse_uint(&first.text).is_ok() => Value::CidrUint(
            Cidr::parse("0/0").map_err(ValueError::on(first))?,
            parse_uint(&first.text).map_err(ValueError::on(first))?,
        ),
        ValueType::CidrUint => {
            let [c, n] = two(args, ty)?;
            Value::CidrUint(
                Cidr::parse(&c.text).map_err(ValueError::on(first))?,
                parse_uint(&n.text).map_err(|m| ValueError::at(n, m))?,
            )
        }
        ValueType::SmtpHosts => Value::SmtpHosts(parse_smtp_hosts(&joined()).map_err(ValueError::on(first))?),
        ValueType::MxConnectionLimit => {
            let [p, n] = two(args, ty)?;
            Value::MxConnectionLimit {
                pattern: p.text.to_lowercase(),
                limit: parse_uint(&n.text).map_err(|m| ValueError::at(n, m))?,
            }
        }
        ValueType::BoolOrInterval => {
            let t = &single()?.text;
            if let Ok(b) = parse_bool(t) {
                Value::Bool(b)
            } else if t.eq_ignore_ascii_case("never") {
                Value::Never
            } else {
                Value::Interval(
                    Interval::parse(t).map_err(|_| err(format!("expected {}, found {t:?}", ty.describe())))?,
                )
            }
        }
        ValueType::FileWithPassword => match args {
            [f] => Value::FileWithPassword { file: PathBuf::from(&f.text), password: None },
            [f, p] => Value::FileWithPassword { file: PathBuf::from(&f.text), password: Some(p.text.clone()) },
            [_, _, extra, ..] => {
                return Err(ValueError::at(
                    extra,
                    format!("unexpected extra value {:?}: expected {}", extra.text, ty.describe()),
                ));
            }
            [] => unreachable!(),
        },
        ValueType::ReplyRule => Value::ReplyRule(ReplyRule::parse(&rest.text).map_err(|e| e.at(rest))?),
        ValueType::PatternEntry => Value::PatternEntry(PatternEntry::parse(&rest.text).map_err(|e| e.at(rest))?),
        ValueType::BackoffRule => Value::BackoffRule(BackoffRule::parse(&rest.text).map_err(|e| e.at(rest))?),
        ValueType::Words { min, max } => {
            if args.len() < min {
                return Err(err(format!("expected {min} values, found {}", args.len())));
            }
            if args.len() > max {
                let extra = &args[max];
                return Err(ValueError::at(extra, format!("unexpected extra value {:?}", extra.text)));
            }
            Value::Words(args.iter().map(|t| t.text.clone()).collect())
        }
    })
}

/// `ADDRESS:PORT`, pointing at the port when only the port is wrong.
pub fn parse_listen(token: &Token) -> Result<ListenAddr, ValueError> {
    ListenAddr::parse_located(&token.text).map_err(|(offset, message)| ValueError::within(token, offset, message))
}

fn two(args: &[Token], ty: ValueType) -> Result<[&Token; 2], ValueError> {
    match args {
        [a, b] => Ok([a, b]),
        [a] => Err(ValueError { col: a.location.col, message: format!("missing value: expected {}", ty.describe()) }),
        [_, _, extra, ..] => {
            Err(ValueError::at(extra, format!("unexpected extra value {:?}: expected {}", extra.text, ty.describe())))
        }
        [] => unreachable!(),
    }
}

/// A Redis URL the client can connect with: `redis://[user:password@]host[:port][/db]` or
/// `rediss://` for TLS (unix sockets are not offered: the nodes of a cluster are on other hosts).
pub fn parse_redis_url(text: &str) -> Result<String, ScalarError> {
    use redis::IntoConnectionInfo;
    if !(text.starts_with("redis://") || text.starts_with("rediss://")) {
        return Err(ScalarError::expected("a redis:// or rediss:// URL", text));
    }
    match text.into_connection_info() {
        Ok(_) => Ok(text.to_string()),
        Err(e) => Err(ScalarError::Invalid { what: "Redis URL", found: text.to_string(), why: e.to_string() }),
    }
}

pub fn parse_bool(text: &str) -> Result<bool, ScalarError> {
    match text.to_ascii_lowercase().as_str() {
        "yes" | "true" | "on" => Ok(true),
        "no" | "false" | "off" => Ok(false),
        _ => Err(ScalarError::expected("yes or no", text)),
    }
}

fn parse_uint(text: &str) -> Result<u64, ScalarError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ScalarError::expected("a whole number", text));
    }
    text.parse().map_err(|_| ScalarError::TooLarge { what: "number", found: text.to_string() })
}

/// Splits a comma-separated list, tolerating spaces after the commas.
pub fn split_list(text: &str) -> Vec<String> {
    text.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
}

fn parse_email(text: &str) -> Result<String, ScalarError> {
    let t = text.trim_start_matches('<').trim_end_matches('>');
    match t.rsplit_once('@') {
        Some((local, domain)) if !local.is_empty() && !domain.is_empty() && !t.contains(char::is_whitespace) => {
            Ok(t.to_string())
        }
        _ => Err(ScalarError::expected("an e-mail address like postmaster@example.com", text)),
    }
}

fn parse_hostname(text: &str) -> Result<String, ScalarError> {
    match DomainPattern::parse(text) {
        Ok(DomainPattern::Exact(h)) => Ok(h),
        _ => Err(ScalarError::expected("a host name like mta1.example.com", text)),
    }
}

/// `sel,domain,file`, `sel,*,file`, and the field spelling `sel,,$domain,file`
/// (docs/config-reference.md, "Field dialect"), which means "whatever domain the message is from",
/// i.e. `*`.
fn parse_domain_key(text: &str) -> Result<Value, ScalarError> {
    let parts: Vec<&str> = text.split(',').map(str::trim).collect();
    let expected = || ScalarError::expected("SELECTOR,DOMAIN,FILE like s1,example.com,/etc/ember/s1.pem", text);
    let (selector, domain, file) = match parts.as_slice() {
        [s, d, f] => (*s, *d, *f),
        [s, "", d, f] => (*s, *d, *f),
        _ => return Err(expected()),
    };
    if selector.is_empty() || domain.is_empty() || file.is_empty() {
        return Err(expected());
    }
    let domain = if domain.eq_ignore_ascii_case("$domain") { "*".to_string() } else { domain.to_lowercase() };
    if domain != "*" {
        parse_hostname(&domain)?;
    }
    Ok(Value::DomainKey { selector: selector.to_string(), domain, file: PathBuf::from(file) })
}

/// An `smtp-hosts` value that does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
enum SmtpHostsError {
    #[error(transparent)]
    Syntax(ScalarError),
    /// One host of the list, as written.
    #[error("invalid host {0:?} in smtp-hosts: expected name[:port], [ip][:port] or lookup-mx:domain")]
    Host(String),
}

fn parse_smtp_hosts(text: &str) -> Result<Vec<Vec<String>>, SmtpHostsError> {
    let mut tiers = Vec::new();
    for tier in text.split(';') {
        let hosts = split_list(tier);
        if hosts.is_empty() {
            return Err(SmtpHostsError::Syntax(ScalarError::expected(
                "a host list like [10.0.0.1]:25,mx.example.com;backup.example.com",
                text,
            )));
        }
        for h in &hosts {
            let valid = if let Some(domain) = h.strip_prefix("lookup-mx:") {
                parse_hostname(domain).is_ok()
            } else if let Some(rest) = h.strip_prefix('[') {
                let (ip, port) = rest.split_once(']').unwrap_or((rest, "!"));
                let ip = ip.strip_prefix("IPv6:").unwrap_or(ip);
                ip.parse::<std::net::IpAddr>().is_ok()
                    && (port.is_empty() || port.strip_prefix(':').is_some_and(|p| p.parse::<u16>().is_ok()))
            } else {
                let (host, port) = h.split_once(':').unwrap_or((h, ""));
                parse_hostname(host).is_ok() && (port.is_empty() || port.parse::<u16>().is_ok())
            };
            if !valid {
                return Err(SmtpHostsError::Host(h.clone()));
            }
        }
        tiers.push(hosts);
    }
    Ok(tiers)
}

/// Quotes a word when it would not survive re-parsing bare.
pub fn quote(text: &str) -> String {
    if !text.is_empty() && !text.contains(|c: char| c.is_whitespace() || c == '#' || c == '"') {
        return text.to_string();
    }
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn opt<T: fmt::Display>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "unlimited".to_string(), ToString::to_string)
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Cleared => f.write_str("\"\""),
            Value::Bool(b) => f.write_str(yes_no(*b)),
            Value::Uint(n) => write!(f, "{n}"),
            Value::Unlimited => f.write_str("unlimited"),
            Value::Interval(i) => write!(f, "{i}"),
            Value::Never => f.write_str("never"),
            Value::IntervalList(l) => f.write_str(&l.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")),
            Value::Rate(r) => f.write_str(&opt(r)),
            Value::Ratio(Some(r)) => write!(f, "{r}"),
            Value::Ratio(None) => f.write_str("off"),
            // In a list of daily caps, 0 means "none today", not "unlimited".
            Value::RateList(l) => f.write_str(
                &l.iter().map(|r| r.map_or_else(|| "0".to_string(), |r| r.to_string())).collect::<Vec<_>>().join(","),
            ),
            Value::DataRate(r) => f.write_str(&opt(r)),
            Value::Size(s) => f.write_str(&opt(s)),
            Value::Cidr(c) => write!(f, "{c}"),
            Value::Listen(l) => write!(f, "{l}"),
            Value::Regex(r) => f.write_str(&r.source),
            Value::Domain(d) => write!(f, "{d}"),
            Value::Text(t) => f.write_str(&quote(t)),
            Value::List(l) => f.write_str(&quote(&l.join(","))),
            Value::Path(p) => f.write_str(&quote(&p.display().to_string())),
            Value::SourceHost { cidr, host } => match host {
                Some(h) => write!(f, "{cidr} {h}"),
                None => write!(f, "{cidr}"),
            },
            Value::HttpAccess { cidr, level, deny_logs } => {
                write!(f, "{cidr} {level}{}", if *deny_logs { ",deny-logs" } else { "" })
            }
            Value::DomainKey { selector, domain, file } => {
                write!(f, "{},{},{}", selector, domain, quote(&file.display().to_string()))
            }
            Value::CidrRate(c, r) => write!(f, "{c} {}", opt(r)),
            Value::CidrDataRate(c, r) => write!(f, "{c} {}", opt(r)),
            Value::CidrUint(c, n) => write!(f, "{c} {n}"),
            Value::SmtpHosts(tiers) => f.write_str(&tiers.iter().map(|t| t.join(",")).collect::<Vec<_>>().join(";")),
            Value::MxConnectionLimit { pattern, limit } => write!(f, "{pattern} {limit}"),
            Value::FileWithPassword { file, password } => {
                write!(f, "{}", quote(&file.display().to_string()))?;
                if let Some(p) = password {
                    write!(f, " {}", quote(p))?;
                }
                Ok(())
            }
            Value::ReplyRule(r) => write!(f, "{r}"),
            Value::PatternEntry(p) => write!(f, "{p}"),
            Value::BackoffRule(b) => write!(f, "{b}"),
            Value::Words(w) => f.write_str(&w.iter().map(|x| quote(x)).collect::<Vec<_>>().join(" ")),
        }
    }
}

#[cfg(test)]
mod tests;
