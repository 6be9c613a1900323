//! Property tests: no input makes the configuration engine panic. Random bytes, and valid
//! configurations mutated with the characters the grammar cares about, must all come back as a
//! config or as diagnostics.

use std::path::Path;

use ember::config::{FileCheck, load_str};
use proptest::prelude::*;

/// The project's "hot" example: field-dialect spellings, macros, pools and backoff lines.
const HOT: &str = include_str!("../examples/hot.conf");

/// Installer idioms: brace-named sources, continued macro lists, 4.x spellings (and, as they
/// are added, the other constructs of operator-published configs).
const INSTALLER: &str = include_str!("configs/valid/22-installer-idioms.conf");

const VALID: &str = "\
domain-macro tld com,net
domain-macro big yahoo.$tld, aol.com
smtp-listener 127.0.0.1:2525 source=feeder
<source feeder>
    always-allow-relaying yes
</source>
<virtual-mta v1>
    smtp-source-host 127.0.0.2 v1.example.net
    <domain $big>
        max-msg-rate 100/10m
        retry-after 10m,20m,1h
    </domain>
</virtual-mta>
<virtual-mta-pool p>
    virtual-mta v1
</virtual-mta-pool>
<smtp-pattern-list blocks>
    reply /^421 .*too many/ mode=backoff,skip-mx
</smtp-pattern-list>
<domain [*.]example.com>
    smtp-pattern-list blocks
    smtp-hosts [127.0.0.1]:2526,mx.example.com;backup.example.com
    queue-to \"example.queue\"
    421 RP-001 *, 1h, 5, 1000
</domain>
<acct-file \"|/bin/cat\">
    records d,b,t
</acct-file>
";

/// Pieces that tend to break a hand-written parser.
const FRAGMENTS: &[&str] = &[
    "<",
    ">",
    "</",
    "</domain>",
    "<domain",
    "\"",
    "\\",
    "$",
    "$tld",
    "#",
    ",",
    "/",
    "//",
    "\n",
    " ",
    "\t",
    "\r",
    "*",
    "[*.]",
    "[",
    "]",
    "0/0",
    ":",
    "=",
    "include x.conf",
    "<virtual-mta v1>",
    "</virtual-mta>",
    "ä",
    "\u{feff}",
    "99999999999999999999999",
    "/(/",
    "4d12h",
    "unlimited",
    "\"\"",
];

fn load(text: &str) {
    let loaded = load_str("fuzz.conf", text, Path::new("/nonexistent-ember-fuzz"), FileCheck::Warn);
    // Exercise resolution too: it must cope with whatever the model kept.
    for domain in ["example.com", "yahoo.com", "x"] {
        let _ = loaded.config.queue_settings(domain, None);
        let _ = loaded.config.queue_settings(domain, Some("v1"));
    }
    for d in loaded.diagnostics.iter() {
        // Every diagnostic points somewhere real.
        assert!(d.location.line >= 1 && d.location.col >= 1, "{d}");
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Insert(usize, &'static str),
    Delete(usize, usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), proptest::sample::select(FRAGMENTS)).prop_map(|(p, f)| Mutation::Insert(p, f)),
        (any::<usize>(), 1usize..20).prop_map(|(p, n)| Mutation::Delete(p, n)),
        any::<usize>().prop_map(Mutation::DuplicateLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
    ]
}

fn apply(text: &str, mutations: &[Mutation]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for m in mutations {
        match m {
            Mutation::Insert(p, f) => {
                let at = p % (chars.len() + 1);
                chars.splice(at..at, f.chars());
            }
            Mutation::Delete(p, n) if !chars.is_empty() => {
                let at = p % chars.len();
                let end = (at + n).min(chars.len());
                chars.drain(at..end);
            }
            Mutation::DuplicateLine(p) | Mutation::SwapLines(p, _) => {
                let s: String = chars.iter().collect();
                let mut lines: Vec<&str> = s.split('\n').collect();
                let a = p % lines.len();
                if let Mutation::SwapLines(_, q) = m {
                    let b = q % lines.len();
                    lines.swap(a, b);
                } else {
                    lines.insert(a, lines[a]);
                }
                chars = lines.join("\n").chars().collect();
            }
            Mutation::Delete(..) => {}
        }
    }
    chars.into_iter().collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn random_text_never_panics(text in "\\PC{0,400}") {
        load(&text);
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        // Bytes go through the file reader, which owns the UTF-8 check.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bytes.conf");
        std::fs::write(&path, &bytes).unwrap();
        let loaded = ember::config::load_file(&path, FileCheck::Warn);
        if std::str::from_utf8(&bytes).is_err() {
            prop_assert!(loaded.diagnostics.has_errors());
        }
    }

    #[test]
    fn mutated_valid_configs_never_panic(mutations in proptest::collection::vec(mutation(), 1..8), which in 0..3u8) {
        let base = [HOT, VALID, INSTALLER][usize::from(which)];
        load(&apply(base, &mutations));
    }
}

#[test]
fn the_bases_are_valid() {
    for text in [HOT, VALID, INSTALLER] {
        let loaded = load_str("base.conf", text, Path::new("."), FileCheck::Warn);
        assert!(!loaded.diagnostics.has_errors(), "{}", loaded.diagnostics);
    }
}
