//! The scalar value syntaxes of the PowerMTA grammar (docs/config-reference.md): time intervals,
//! rates, data-volume rates, sizes, CIDRs and listener addresses.
//!
//! Each type parses from the operator's spelling and prints back in the canonical documented
//! spelling (`5000/h`, `4d12h`, `250M`), which is what `show settings` writes. Errors
//! ([`ScalarError`]) say what was expected; the caller adds the location and directive name.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// Why a scalar value did not parse. The text is the configuration diagnostic's message, so
/// each variant prints exactly what the operator has always been shown.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScalarError {
    /// The text is not in the value's syntax; `expected` describes the syntax.
    #[error("expected {expected}, found {found:?}")]
    Expected { expected: &'static str, found: String },
    /// A rate whose period is zero.
    #[error("expected {expected}, found {found:?} (the period cannot be 0)")]
    ZeroPeriod { expected: &'static str, found: String },
    /// The value is well formed but does not fit in 64 bits; `what` names it (`size`, `number`).
    #[error("{what} {found:?} is too large")]
    TooLarge { what: &'static str, found: String },
    #[error("octet {octet} is out of range (0-255) in {found:?}")]
    Octet { octet: String, found: String },
    #[error("prefix length /{prefix} is longer than {max} bits in {found:?}")]
    Prefix { prefix: u8, max: u8, found: String },
    #[error("port {0} is out of range (0-65535)")]
    PortRange(String),
    #[error("expected a port number after the address, found {0:?}")]
    Port(String),
    /// Well formed on the surface, refused by the parser of what it names.
    #[error("{what} {found:?} is not valid: {why}")]
    Invalid { what: &'static str, found: String, why: String },
}

impl ScalarError {
    pub(crate) fn expected(expected: &'static str, found: &str) -> ScalarError {
        ScalarError::Expected { expected, found: found.to_string() }
    }

    fn too_large(what: &'static str, found: &str) -> ScalarError {
        ScalarError::TooLarge { what, found: found.to_string() }
    }
}

/// A time interval in whole seconds. `never` is represented by the callers as `None`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Interval(pub u64);

impl Interval {
    pub fn parse(text: &str) -> Result<Interval, ScalarError> {
        let expected = || ScalarError::expected("a time interval like 30m, 4d12h or 300s", text);
        if text.is_empty() {
            return Err(expected());
        }
        // A bare number is seconds: `show settings` prints `retry-recipients-after 600`.
        if text.bytes().all(|b| b.is_ascii_digit()) {
            return text.parse().map(Interval).map_err(|_| expected());
        }
        let mut total: u64 = 0;
        let mut number: Option<u64> = None;
        for c in text.chars() {
            if let Some(digit) = c.to_digit(10) {
                let n = number.unwrap_or(0).checked_mul(10).and_then(|n| n.checked_add(u64::from(digit)));
                number = Some(n.ok_or_else(|| ScalarError::too_large("time interval", text))?);
                continue;
            }
            let unit = match c.to_ascii_lowercase() {
                'w' => 7 * 86_400,
                'd' => 86_400,
                'h' => 3_600,
                'm' => 60,
                's' => 1,
                _ => return Err(expected()),
            };
            let n = number.take().ok_or_else(expected)?;
            total = n
                .checked_mul(unit)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(|| ScalarError::too_large("time interval", text))?;
        }
        if number.is_some() {
            return Err(expected());
        }
        Ok(Interval(total))
    }

    pub fn seconds(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        if rest == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
            if rest >= size {
                write!(f, "{}{unit}", rest / size)?;
                rest %= size;
            }
        }
        Ok(())
    }
}

/// Splits `N/[M]unit` into N and the period in seconds.
fn parse_per(text: &str, what: &'static str) -> Result<(String, u64), ScalarError> {
    let Some((amount, per)) = text.split_once('/') else {
        return Err(ScalarError::expected(what, text));
    };
    let digits = per.bytes().take_while(u8::is_ascii_digit).count();
    let multiplier: u64 =
        if digits == 0 { 1 } else { per[..digits].parse().map_err(|_| ScalarError::expected(what, text))? };
    let unit = match per[digits..].to_ascii_lowercase().as_str() {
        "d" | "day" | "days" => 86_400,
        "h" | "hr" | "hour" | "hours" => 3_600,
        "m" | "min" | "minute" | "minutes" => 60,
        "s" | "sec" | "second" | "seconds" => 1,
        _ => return Err(ScalarError::expected(what, text)),
    };
    if multiplier == 0 {
        return Err(ScalarError::ZeroPeriod { expected: what, found: text.to_string() });
    }
    let period = multiplier.checked_mul(unit).ok_or_else(|| ScalarError::too_large("period in", text))?;
    Ok((amount.to_string(), period))
}

fn fmt_period(f: &mut fmt::Formatter<'_>, period: u64) -> fmt::Result {
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if period.is_multiple_of(size) {
            let n = period / size;
            return if n == 1 { f.write_str(unit) } else { write!(f, "{n}{unit}") };
        }
    }
    if period == 1 { f.write_str("s") } else { write!(f, "{period}s") }
}

/// A ratio trigger `PERCENT%/MIN-SAMPLE/WINDOW` (beyond PowerMTA): more than PERCENT of at least
/// MIN-SAMPLE attempts within WINDOW, like `5%/200/10m`. The percentage is kept in basis points
/// (hundredths of a percent) so that `0.2%` is exact.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ratio {
    pub basis_points: u64,
    pub min_sample: u64,
    pub window: Interval,
}

impl Ratio {
    const EXPECTED: &'static str = "PERCENT%/MIN-SAMPLE/WINDOW (like 5%/200/10m)";

    pub fn parse(text: &str) -> Result<Ratio, ScalarError> {
        let expected = || ScalarError::expected(Self::EXPECTED, text);
        let mut parts = text.split('/');
        let (Some(pct), Some(sample), Some(window), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(expected());
        };
        let pct = pct.strip_suffix('%').ok_or_else(expected)?;
        let (whole, frac) = pct.split_once('.').unwrap_or((pct, ""));
        if whole.is_empty() || frac.len() > 2 || !(whole.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())) {
            return Err(expected());
        }
        let whole: u64 = whole.parse().map_err(|_| expected())?;
        let frac: u64 = format!("{frac:0<2}").parse().map_err(|_| expected())?;
        let basis_points = whole.checked_mul(100).and_then(|w| w.checked_add(frac)).ok_or_else(expected)?;
        if basis_points == 0 || basis_points > 10_000 {
            return Err(ScalarError::expected("a percentage above 0% and at most 100%", text));
        }
        let min_sample: u64 = sample.parse().map_err(|_| expected())?;
        let window = Interval::parse(window)?;
        if window.0 == 0 {
            return Err(expected());
        }
        Ok(Ratio { basis_points, min_sample: min_sample.max(1), window })
    }

    pub fn percent(&self) -> f64 {
        self.basis_points as f64 / 100.0
    }
}

impl fmt::Display for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (whole, frac) = (self.basis_points / 100, self.basis_points % 100);
        if frac == 0 {
            write!(f, "{whole}%")?;
        } else {
            write!(f, "{}%", format!("{whole}.{frac:02}").trim_end_matches('0'))?;
        }
        write!(f, "/{}/{}", self.min_sample, self.window)
    }
}

/// A message or connection rate: `count` events per `period` seconds. `None` is unlimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rate {
    pub count: u64,
    pub period: u64,
}

impl Rate {
    const EXPECTED: &'static str = "N/unit (like 5000/h, 83/10m or unlimited)";

    /// Parses a rate; `unlimited` and `0` give `None`.
    pub fn parse(text: &str) -> Result<Option<Rate>, ScalarError> {
        if text.eq_ignore_ascii_case("unlimited") || text == "0" {
            return Ok(None);
        }
        let (amount, period) = parse_per(text, Self::EXPECTED)?;
        let count: u64 = amount.parse().map_err(|_| ScalarError::expected(Self::EXPECTED, text))?;
        if count == 0 {
            return Ok(None);
        }
        Ok(Some(Rate { count, period }))
    }

    /// Events per second, for schedulers.
    pub fn per_second(&self) -> f64 {
        self.count as f64 / self.period as f64
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/", self.count)?;
        fmt_period(f, self.period)
    }
}

/// A byte count: `40K`, `250M`, `1G`. Units are powers of 1024.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Size(pub u64);

impl Size {
    /// Parses a size; `unlimited` and `0` give `None`.
    pub fn parse(text: &str) -> Result<Option<Size>, ScalarError> {
        if text.eq_ignore_ascii_case("unlimited") || text == "0" {
            return Ok(None);
        }
        Self::parse_bytes(text).map(Some)
    }

    pub fn parse_bytes(text: &str) -> Result<Size, ScalarError> {
        let expected = || ScalarError::expected("a size like 40K, 250M or 1G", text);
        let digits = text.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(expected());
        }
        let n: u64 = text[..digits].parse().map_err(|_| expected())?;
        let unit: u64 = match text[digits..].to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" => 1 << 10,
            "m" | "mb" => 1 << 20,
            "g" | "gb" => 1 << 30,
            "t" | "tb" => 1 << 40,
            _ => return Err(expected()),
        };
        n.checked_mul(unit).map(Size).ok_or_else(|| ScalarError::too_large("size", text))
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (unit, size) in [("T", 1u64 << 40), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)] {
            if self.0 >= size && self.0.is_multiple_of(size) {
                return write!(f, "{}{unit}", self.0 / size);
            }
        }
        write!(f, "{}b", self.0)
    }
}

/// Bytes per period: `1024K/15s`, `2g/10h`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DataRate {
    pub bytes: Size,
    pub period: u64,
}

impl DataRate {
    const EXPECTED: &'static str = "SIZE/unit (like 1024K/15s, 2G/10h or unlimited)";

    pub fn parse(text: &str) -> Result<Option<DataRate>, ScalarError> {
        if text.eq_ignore_ascii_case("unlimited") || text == "0" {
            return Ok(None);
        }
        let (amount, period) = parse_per(text, Self::EXPECTED)?;
        let bytes = Size::parse_bytes(&amount).map_err(|_| ScalarError::expected(Self::EXPECTED, text))?;
        if bytes.0 == 0 {
            return Ok(None);
        }
        Ok(Some(DataRate { bytes, period }))
    }
}

impl fmt::Display for DataRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/", self.bytes)?;
        fmt_period(f, self.period)
    }
}

/// An address block: `10/8`, `173.194/16`, `0/0`, `1.2.3.4`, `2001:db8::/32`.
///
/// An `ipnet::IpNet` with host bits cleared, behind PowerMTA's spellings: abbreviated IPv4
/// octets, a bare address for a single host, `[IPv6:…]` brackets, and IPv4 blocks that also
/// match IPv4-mapped IPv6 peers (a dual-stack listener sees `::ffff:10.1.2.3`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr(IpNet);

impl Cidr {
    pub fn parse(text: &str) -> Result<Cidr, ScalarError> {
        let expected = || ScalarError::expected("an IP address or CIDR like 10.0.0.0/8, 10/8 or 0/0", text);
        let inner = text.strip_prefix("[IPv6:").and_then(|t| t.strip_suffix(']')).unwrap_or(text);
        let (addr_text, prefix_text) = match inner.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (inner, None),
        };
        let addr: IpAddr = if addr_text.contains(':') {
            IpAddr::V6(addr_text.parse::<Ipv6Addr>().map_err(|_| expected())?)
        } else {
            // PowerMTA accepts abbreviated octets in CIDRs: `173.194/16` is 173.194.0.0/16.
            let parts: Vec<&str> = addr_text.split('.').collect();
            if parts.len() > 4 || (prefix_text.is_none() && parts.len() != 4) {
                return Err(expected());
            }
            let mut octets = [0u8; 4];
            for (i, p) in parts.iter().enumerate() {
                if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(expected());
                }
                octets[i] =
                    p.parse().map_err(|_| ScalarError::Octet { octet: (*p).to_string(), found: text.to_string() })?;
            }
            IpAddr::V4(Ipv4Addr::from(octets))
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix_text {
            None => max,
            Some(p) => p.parse().map_err(|_| expected())?,
        };
        let net = IpNet::new(addr, prefix).map_err(|_| ScalarError::Prefix { prefix, max, found: text.to_string() })?;
        Ok(Cidr(net.trunc()))
    }

    /// The block's first address (host bits are cleared when parsing).
    pub fn addr(&self) -> IpAddr {
        self.0.network()
    }

    pub fn prefix(&self) -> u8 {
        self.0.prefix_len()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match (self.0, ip) {
            (IpNet::V4(_), IpAddr::V6(v6)) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            _ => ip,
        };
        self.0.contains(&ip)
    }

    pub fn is_single_host(&self) -> bool {
        self.0.prefix_len() == self.0.max_prefix_len()
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_single_host() { write!(f, "{}", self.addr()) } else { write!(f, "{}", self.0) }
    }
}

/// A listener address `IP-or-CIDR:PORT`; `[v6]:PORT` for IPv6.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ListenAddr {
    pub cidr: Cidr,
    pub port: u16,
}

impl ListenAddr {
    pub fn parse(text: &str) -> Result<ListenAddr, ScalarError> {
        Self::parse_located(text).map_err(|(_, message)| message)
    }

    /// Like `parse`, also giving the byte offset in `text` where the problem is: the port when
    /// the address is fine and only the port is wrong, else the start.
    pub fn parse_located(text: &str) -> Result<ListenAddr, (usize, ScalarError)> {
        let expected = || (0, ScalarError::expected("ADDRESS:PORT like 0/0:25, 127.0.0.1:2525 or [::1]:25", text));
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            rest.split_once("]:").ok_or_else(expected)?
        } else {
            text.rsplit_once(':').ok_or_else(expected)?
        };
        if host.contains(':') && !text.starts_with('[') {
            return Err(expected());
        }
        let cidr = Cidr::parse(host).map_err(|_| expected())?;
        let port_at = text.len() - port.len();
        let port: u16 = match port.parse() {
            Ok(p) => p,
            Err(_) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
                return Err((port_at, ScalarError::PortRange(port.to_string())));
            }
            Err(_) => return Err((port_at, ScalarError::Port(port.to_string()))),
        };
        Ok(ListenAddr { cidr, port })
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.cidr.addr(), self.cidr.is_single_host()) {
            (addr @ IpAddr::V6(_), true) => write!(f, "[{addr}]:{}", self.port),
            (IpAddr::V6(_), false) => write!(f, "[{}]:{}", self.cidr, self.port),
            _ => write!(f, "{}:{}", self.cidr, self.port),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_parse_exactly_and_round_trip() {
        let r = Ratio::parse("0.2%/1000/1d").unwrap();
        assert_eq!((r.basis_points, r.min_sample, r.window), (20, 1000, Interval(86_400)));
        assert_eq!(r.to_string(), "0.2%/1000/1d");
        assert_eq!(Ratio::parse("5%/200/10m").unwrap().to_string(), "5%/200/10m");
        assert_eq!(Ratio::parse("12.5%/10/30s").unwrap().basis_points, 1250);
        for bad in ["5/200/10m", "5%/200", "0%/1/1m", "101%/1/1m", "5%/x/1m", "5%/1/0s", "5.123%/1/1m", "%/1/1m"] {
            assert!(Ratio::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn intervals_round_trip() {
        for (text, secs, shown) in [
            ("4d12h", 388_800, "4d12h"),
            ("1w2d12h", 820_800, "9d12h"),
            ("300s", 300, "5m"),
            ("600", 600, "10m"),
            ("90s", 90, "1m30s"),
            ("0", 0, "0s"),
        ] {
            let i = Interval::parse(text).unwrap();
            assert_eq!(i.0, secs, "{text}");
            assert_eq!(i.to_string(), shown);
        }
        for bad in ["", "4x", "h", "12h3", "99999999999999999999d"] {
            assert!(Interval::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rates() {
        assert_eq!(Rate::parse("5000/h").unwrap().unwrap().to_string(), "5000/h");
        assert_eq!(Rate::parse("83/10m").unwrap().unwrap().period, 600);
        assert_eq!(Rate::parse("6/sec").unwrap().unwrap().to_string(), "6/s");
        assert_eq!(Rate::parse("1/day").unwrap().unwrap().to_string(), "1/d");
        assert_eq!(Rate::parse("unlimited").unwrap(), None);
        assert_eq!(Rate::parse("0").unwrap(), None);
        assert!(Rate::parse("100/fortnight").is_err());
        assert!(Rate::parse("5000").is_err());
        assert!(Rate::parse("x/h").is_err());
        assert!(Rate::parse("1/0h").is_err());
    }

    #[test]
    fn sizes_and_data_rates() {
        assert_eq!(Size::parse("40K").unwrap().unwrap().0, 40 * 1024);
        assert_eq!(Size::parse("250m").unwrap().unwrap().to_string(), "250M");
        assert_eq!(Size::parse("unlimited").unwrap(), None);
        assert!(Size::parse("12q").is_err());
        let d = DataRate::parse("1024K/15s").unwrap().unwrap();
        assert_eq!(d.to_string(), "1M/15s");
        assert_eq!(DataRate::parse("1T/7d").unwrap().unwrap().period, 7 * 86_400);
    }

    #[test]
    fn cidrs() {
        let c = Cidr::parse("173.194/16").unwrap();
        assert_eq!(c.to_string(), "173.194.0.0/16");
        assert!(c.contains("173.194.3.4".parse().unwrap()));
        assert!(!c.contains("173.195.3.4".parse().unwrap()));
        assert!(Cidr::parse("0/0").unwrap().contains("8.8.8.8".parse().unwrap()));
        assert_eq!(Cidr::parse("0/0").unwrap().to_string(), "0.0.0.0/0");
        assert_eq!(Cidr::parse("127.0.0.1").unwrap().prefix(), 32);
        assert_eq!(Cidr::parse("127.0.0.1").unwrap().to_string(), "127.0.0.1");
        assert_eq!(Cidr::parse("[IPv6:2001:db8::1]").unwrap().prefix(), 128);
        assert_eq!(Cidr::parse("[IPv6:2001:db8::1]").unwrap().to_string(), "2001:db8::1");
        for bad in ["10.1", "300.1.1.1/8", "10/33", "a.b.c.d", "1.2.3.4.5", "::1/129", "10/x", "1.2.3.4/-1"] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Cidr::parse("10.1.2.300").unwrap_err().to_string(),
            "octet 300 is out of range (0-255) in \"10.1.2.300\""
        );
        assert_eq!(
            Cidr::parse("10/33").unwrap_err(),
            ScalarError::Prefix { prefix: 33, max: 32, found: "10/33".into() }
        );
    }

    #[test]
    fn cidr_host_bits_are_cleared() {
        let c = Cidr::parse("10.1.2.3/8").unwrap();
        assert_eq!((c.addr(), c.to_string()), ("10.0.0.0".parse().unwrap(), "10.0.0.0/8".to_string()));
        assert_eq!(c, Cidr::parse("10/8").unwrap());
        assert_eq!(Cidr::parse("2001:db8::1/32").unwrap().to_string(), "2001:db8::/32");
    }

    #[test]
    fn cidr_matching_across_families() {
        let v4 = Cidr::parse("10/8").unwrap();
        assert!(v4.contains("::ffff:10.9.8.7".parse().unwrap()));
        assert!(!v4.contains("::ffff:11.9.8.7".parse().unwrap()));
        assert!(!v4.contains("2001:db8::1".parse().unwrap()));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains("2001:db8:ffff::1".parse().unwrap()));
        assert!(!v6.contains("2001:db9::1".parse().unwrap()));
        assert!(!v6.contains("10.0.0.1".parse().unwrap()));
        assert!(Cidr::parse("::/0").unwrap().contains("::1".parse().unwrap()));
        assert!(!Cidr::parse("0/0").unwrap().contains("::1".parse().unwrap()));
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(ListenAddr::parse("0/0:25").unwrap().to_string(), "0.0.0.0/0:25");
        assert_eq!(ListenAddr::parse("127.0.0.1:2525").unwrap().port, 2525);
        assert_eq!(ListenAddr::parse("[::1]:25").unwrap().to_string(), "[::1]:25");
        assert!(ListenAddr::parse("127.0.0.1").is_err());
        assert!(ListenAddr::parse("::1:25").is_err());
        assert_eq!(ListenAddr::parse_located("127.0.0.1:99999").unwrap_err().0, 10);
        assert_eq!(ListenAddr::parse_located("[::1]:x").unwrap_err().0, 6);
        assert_eq!(ListenAddr::parse_located("300.0.0.1:25").unwrap_err().0, 0);
    }
}
