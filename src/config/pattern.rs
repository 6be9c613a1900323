//! Domain match patterns (docs/config-reference.md, "Syntax") and their specificity order.
//!
//! Owns which `<domain>` pattern matches a destination and which of several matching patterns is
//! the more specific. Macro expansion happens before a pattern reaches this module.

use std::cmp::Ordering;
use std::fmt;
use std::net::IpAddr;

use super::values::Cidr;

/// A domain pattern that does not parse; each variant holds the text as written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("expected a domain pattern like example.com, *.example.com, [*.]example.com, [10/8] or *, found {0:?}")]
    Domain(String),
    #[error("expected a literal-IP pattern like [10.0.0.0/8] or [0/0], found {0:?}")]
    IpLiteral(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum DomainPattern {
    /// `*`: every domain.
    Any,
    /// `[*.]x.com`: the domain and its subdomains.
    SelfAndSubdomains(String),
    /// `*.x.com`: subdomains only.
    Subdomains(String),
    /// `x.com`.
    Exact(String),
    /// `[10/8]`: literal-IP destinations inside the block.
    IpLiteral(Cidr),
}

impl DomainPattern {
    pub fn parse(text: &str) -> Result<DomainPattern, PatternError> {
        let lower = text.trim().to_lowercase();
        if lower == "*" {
            return Ok(DomainPattern::Any);
        }
        if let Some(rest) = lower.strip_prefix("[*.]") {
            return Ok(DomainPattern::SelfAndSubdomains(check_domain(rest, text)?));
        }
        if let Some(rest) = lower.strip_prefix("*.") {
            return Ok(DomainPattern::Subdomains(check_domain(rest, text)?));
        }
        if let Some(inner) = lower.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            let cidr = Cidr::parse(inner).map_err(|_| PatternError::IpLiteral(text.to_string()))?;
            return Ok(DomainPattern::IpLiteral(cidr));
        }
        Ok(DomainPattern::Exact(check_domain(&lower, text)?))
    }

    /// Does this pattern match `domain` (lower case; a literal IP as `[1.2.3.4]`)?
    pub fn matches(&self, domain: &str) -> bool {
        match self {
            DomainPattern::Any => true,
            DomainPattern::Exact(d) => d == domain,
            DomainPattern::Subdomains(d) => is_subdomain(domain, d),
            DomainPattern::SelfAndSubdomains(d) => d == domain || is_subdomain(domain, d),
            DomainPattern::IpLiteral(cidr) => literal_ip(domain).is_some_and(|ip| cidr.contains(ip)),
        }
    }

    /// Orders patterns from general to specific: `*` < `[ip/mask]` < `[*.]x` < `*.x` < exact,
    /// and within one kind, longer (more labels or longer prefix) is more specific.
    pub fn specificity(&self) -> (u8, u32) {
        match self {
            DomainPattern::Any => (0, 0),
            DomainPattern::IpLiteral(c) => (1, u32::from(c.prefix())),
            DomainPattern::SelfAndSubdomains(d) => (2, label_count(d)),
            DomainPattern::Subdomains(d) => (3, label_count(d)),
            DomainPattern::Exact(d) => (4, label_count(d)),
        }
    }

    pub fn cmp_specificity(&self, other: &DomainPattern) -> Ordering {
        self.specificity().cmp(&other.specificity())
    }
}

impl fmt::Display for DomainPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DomainPattern::Any => f.write_str("*"),
            DomainPattern::SelfAndSubdomains(d) => write!(f, "[*.]{d}"),
            DomainPattern::Subdomains(d) => write!(f, "*.{d}"),
            DomainPattern::Exact(d) => f.write_str(d),
            DomainPattern::IpLiteral(c) => write!(f, "[{c}]"),
        }
    }
}

fn label_count(domain: &str) -> u32 {
    u32::try_from(domain.split('.').count()).unwrap_or(u32::MAX)
}

fn is_subdomain(domain: &str, parent: &str) -> bool {
    domain.len() > parent.len() + 1
        && domain.ends_with(parent)
        && domain.as_bytes()[domain.len() - parent.len() - 1] == b'.'
}

fn literal_ip(domain: &str) -> Option<IpAddr> {
    let inner = domain.strip_prefix('[')?.strip_suffix(']')?;
    let inner = inner.strip_prefix("ipv6:").unwrap_or(inner);
    inner.parse().ok()
}

/// Accepts DNS names including IDN (UTF-8) labels and reserved `{names}`.
fn check_domain(domain: &str, original: &str) -> Result<String, PatternError> {
    let reserved = domain.starts_with('{') && domain.ends_with('}') && domain.len() > 2;
    let valid = reserved
        || (!domain.is_empty()
            && domain.len() <= 253
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && label.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '_')
            }));
    if valid { Ok(domain.to_string()) } else { Err(PatternError::Domain(original.to_string())) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> DomainPattern {
        DomainPattern::parse(s).unwrap()
    }

    #[test]
    fn matching() {
        assert!(p("*").matches("x.com"));
        assert!(p("x.com").matches("x.com"));
        assert!(!p("x.com").matches("a.x.com"));
        assert!(p("*.x.com").matches("a.x.com"));
        assert!(!p("*.x.com").matches("x.com"));
        assert!(!p("*.x.com").matches("ax.com"));
        assert!(p("[*.]x.com").matches("x.com"));
        assert!(p("[*.]x.com").matches("b.a.x.com"));
        assert!(p("[10/8]").matches("[10.1.2.3]"));
        assert!(!p("[10/8]").matches("x.com"));
        assert!(p("Bücher.DE").matches("bücher.de"));
    }

    #[test]
    fn specificity_order() {
        let mut v = [p("x.com"), p("*.x.com"), p("*"), p("[*.]x.com"), p("[*.]com")];
        v.sort_by(|a, b| a.cmp_specificity(b));
        let shown: Vec<String> = v.iter().map(|x| x.to_string()).collect();
        assert_eq!(shown, ["*", "[*.]com", "[*.]x.com", "*.x.com", "x.com"]);
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "a..b", "-x.com", "[not-ip]", "x com", "*x.com"] {
            assert!(DomainPattern::parse(bad).is_err(), "{bad}");
        }
    }
}
