//! Regular expressions written in a configuration (`/…/`): parsing the slashes, PowerMTA's
//! case-insensitivity for reply patterns, and one compiled expression per pattern text shared
//! by every configuration loaded in the process.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

/// A `/…/` pattern that does not parse.
#[derive(Debug, thiserror::Error)]
pub enum RegexError {
    #[error("expected a regular expression between slashes like /text/, found {0:?}")]
    Slashes(String),
    /// The regex crate's message spans several lines with a caret under the problem; a
    /// diagnostic is one line, so only its last line (what is wrong) is shown.
    #[error("invalid regular expression {text}: {}", last_line(source))]
    Invalid {
        text: String,
        #[source]
        source: regex::Error,
    },
}

fn last_line(error: &regex::Error) -> String {
    let detail = error.to_string();
    let last = detail.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("invalid").trim().to_string();
    last.trim_start_matches("error: ").to_string()
}

/// A compiled regular expression together with its spelling in the config.
#[derive(Clone, Debug)]
pub struct ConfigRegex {
    pub source: String,
    pub regex: Arc<regex::Regex>,
}

impl ConfigRegex {
    /// Parses `/…/`. PowerMTA's reply patterns are case-insensitive unless `(?-i)` says otherwise.
    pub fn parse(text: &str, case_insensitive: bool) -> Result<ConfigRegex, RegexError> {
        let inner = text
            .strip_prefix('/')
            .and_then(|t| t.strip_suffix('/'))
            .filter(|_| text.len() >= 2)
            .ok_or_else(|| RegexError::Slashes(text.to_string()))?;
        let pattern = if case_insensitive { format!("(?i){inner}") } else { inner.to_string() };
        let regex = compiled(pattern).map_err(|e| RegexError::Invalid { text: text.to_string(), source: e })?;
        Ok(ConfigRegex { source: text.to_string(), regex })
    }
}

/// Cached expressions are dropped once this many are cached, keeping those a live configuration
/// still holds.
const CACHE_TRIM: usize = 256;

static CACHE: LazyLock<Mutex<HashMap<String, Arc<regex::Regex>>>> = LazyLock::new(Mutex::default);

/// Compiles a pattern, or hands back the expression an earlier load compiled from the same text.
///
/// Reload, `check-config` and the management API's config check all rebuild the whole model, and
/// an ISP reply pattern costs far more to compile (the regex crate builds its DFAs and
/// prefilters up front) than everything else a directive does: with a few hundred
/// `<smtp-pattern-list>` entries that is most of a reload. Compiled expressions are immutable
/// and shared (`Arc`), so the old and the new configuration can hold the same one. The cache
/// keeps what a live configuration still holds; the rest is dropped when it grows past
/// [`CACHE_TRIM`], so a long run of reloads with changing patterns does not grow it.
fn compiled(pattern: String) -> Result<Arc<regex::Regex>, regex::Error> {
    if let Some(found) = cache().get(&pattern) {
        return Ok(Arc::clone(found));
    }
    // Compiled outside the lock: two loads at once may both compile a pattern; either copy works.
    let regex = Arc::new(regex::Regex::new(&pattern)?);
    let mut cache = cache();
    if cache.len() >= CACHE_TRIM {
        cache.retain(|_, r| Arc::strong_count(r) > 1);
        if cache.len() >= CACHE_TRIM * 4 {
            cache.clear();
        }
    }
    cache.insert(pattern, Arc::clone(&regex));
    Ok(regex)
}

fn cache() -> std::sync::MutexGuard<'static, HashMap<String, Arc<regex::Regex>>> {
    // A panic while the map was held cannot leave a half-inserted entry: keep using it.
    CACHE.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_pattern_text_shares_one_compiled_expression() {
        let a = ConfigRegex::parse("/ember-cache-test (a|b)+/", true).unwrap();
        let b = ConfigRegex::parse("/ember-cache-test (a|b)+/", true).unwrap();
        assert!(Arc::ptr_eq(&a.regex, &b.regex), "compiled twice");
        // Case sensitivity is part of the compiled pattern, so it is another entry.
        let c = ConfigRegex::parse("/ember-cache-test (a|b)+/", false).unwrap();
        assert!(!Arc::ptr_eq(&a.regex, &c.regex));
        assert!(a.regex.is_match("EMBER-CACHE-TEST ab") && !c.regex.is_match("EMBER-CACHE-TEST ab"));
        // Errors are not cached: they come back each time with the text the config gave.
        for _ in 0..2 {
            let e = ConfigRegex::parse("/ember-cache-test (/", true).unwrap_err().to_string();
            assert!(e.starts_with("invalid regular expression /ember-cache-test (/"), "{e}");
        }
    }

    #[test]
    fn the_regex_cache_stays_bounded_and_keeps_what_is_held() {
        let held = ConfigRegex::parse("/ember-held-pattern/", false).unwrap();
        for i in 0..CACHE_TRIM * 5 {
            ConfigRegex::parse(&format!("/ember-churn-{i}/"), false).unwrap();
        }
        let cached = cache().len();
        assert!(cached < CACHE_TRIM * 2, "{cached} expressions cached");
        // Still the same expression after a thousand others came and went.
        let again = compiled("ember-held-pattern".to_string()).unwrap();
        assert!(Arc::ptr_eq(&again, &held.regex));
    }
}
