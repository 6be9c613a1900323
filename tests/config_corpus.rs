//! The configuration corpora under `tests/configs/`, run through the `ember` binary as an operator
//! would run it:
//!
//! - every `valid/*.conf` passes `ember check-config` (exit 0, a `FILE: OK: …` line), and so
//!   does every example config under `examples/`;
//! - every `broken/*.conf` fails (exit 1) with exactly the diagnostics its header announces,
//!   errors printed in file order;
//! - `ember show settings` on a few valid configs gives the values, and the `# FILE:LINE`
//!   sources, an operator expects from the inheritance rules, with secrets masked.
//!
//! Header format of a broken config (see `tests/configs/README.md`):
//!
//! ```text
//! # expect: LINE:COL: error: MESSAGE            (the first line, always)
//! # also: LINE:COL: error: MESSAGE              (optional: further errors the engine reports)
//! ```
//!
//! A location may name another file relative to the config's directory
//! (`parts/x.conf:5:9: error: …`). In messages, `{DIR}` stands for the config's directory as
//! passed to `ember` and `{ABSDIR}` for its canonical absolute path.
//!
//! Every file is checked and every mismatch collected before the test fails, so one run lists
//! all the broken expectations, each naming its file.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const EMBER: &str = env!("CARGO_BIN_EXE_ember");
const CONFIGS: &str = "tests/configs";

/// The crate root: `ember` runs there and is given paths relative to it, so every diagnostic
/// starts with a predictable `tests/configs/…` prefix.
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn ember(args: &[&str]) -> Output {
    Command::new(EMBER)
        .args(args)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {EMBER} {args:?}: {e}"))
}

/// The `*.conf` files directly in `tests/configs/DIR` (not in its `parts/`), sorted, as paths
/// relative to the crate root.
fn corpus(dir: &str) -> Vec<String> {
    let rel = format!("{CONFIGS}/{dir}");
    let entries = std::fs::read_dir(root().join(&rel)).unwrap_or_else(|e| panic!("cannot list {rel}: {e}"));
    let mut files: Vec<String> = entries
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "conf"))
        .map(|p| format!("{rel}/{}", p.file_name().expect("file name").to_string_lossy()))
        .collect();
    files.sort();
    files
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Fails the test with every collected problem, or does nothing when there are none.
fn report(what: &str, checked: usize, failures: &[String]) {
    if !failures.is_empty() {
        panic!("{} problem(s) in {checked} {what}:\n\n{}", failures.len(), failures.join("\n\n"));
    }
}

// ---- valid configs ---------------------------------------------------------------------------

#[test]
fn every_valid_config_passes_check_config() {
    let files = corpus("valid");
    assert!(files.len() >= 12, "tests/configs/valid holds {} configs, expected at least 12", files.len());
    let mut failures = Vec::new();
    for file in &files {
        let out = ember(&["check-config", "--quiet", file]);
        let stdout = text(&out.stdout);
        let ok_line = format!("{file}: OK: ");
        if out.status.code() != Some(0) || !stdout.lines().any(|l| l.starts_with(&ok_line)) {
            failures.push(format!(
                "{file}: expected exit 0 and a line starting {ok_line:?}, got {:?}\n--- stdout\n{stdout}--- stderr\n{}",
                out.status.code(),
                text(&out.stderr)
            ));
        }
    }
    report("valid configs", files.len(), &failures);
}

/// The example configs the README points to (`examples/*.conf`) pass `ember check-config`, and
/// their only warnings are about the data directories a first run creates.
#[test]
fn every_example_config_passes_check_config() {
    let entries = std::fs::read_dir(root().join("examples")).expect("cannot list examples/");
    let mut files: Vec<String> = entries
        .map(|e| e.expect("directory entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".conf"))
        .map(|name| format!("examples/{name}"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "examples/ holds {} configs, expected at least 3", files.len());
    let mut failures = Vec::new();
    for file in &files {
        let out = ember(&["check-config", file]);
        let stdout = text(&out.stdout);
        let stderr = text(&out.stderr);
        let ok_line = format!("{file}: OK: ");
        let unexpected: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains(": warning: ") && !(l.contains(": directory ") && l.ends_with(" does not exist")))
            .collect();
        if out.status.code() != Some(0) || !stdout.lines().any(|l| l.starts_with(&ok_line)) || !unexpected.is_empty() {
            failures.push(format!(
                "{file}: expected exit 0, a line starting {ok_line:?} and no warning but missing data \
                 directories, got {:?}\n--- stdout\n{stdout}--- stderr\n{stderr}",
                out.status.code(),
            ));
        }
    }
    report("example configs", files.len(), &failures);
}

/// The README's tour quotes lines of `ember show settings` on the examples (`#   LINE` right
/// after the command); each must be what the binary prints, up to runs of spaces.
#[test]
fn the_readme_tour_quotes_show_settings_as_printed() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let squeeze = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut failures = Vec::new();
    let mut quoted = 0;
    let lines: Vec<&str> = readme.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let Some(args) = line.strip_prefix("ember show settings ") else { continue };
        let args: Vec<&str> = args.split('#').next().unwrap_or_default().split_whitespace().collect();
        let mut cmd = vec!["show", "settings"];
        cmd.extend(&args);
        let out = ember(&cmd);
        let printed: Vec<String> = text(&out.stdout).lines().map(squeeze).collect();
        if out.status.code() != Some(0) {
            failures.push(format!("README.md:{}: `ember {}` exited {:?}", i + 1, cmd.join(" "), out.status.code()));
        }
        for (j, expected) in lines[i + 1..].iter().map_while(|l| l.strip_prefix("#   ")).enumerate() {
            quoted += 1;
            if !printed.contains(&squeeze(expected)) {
                failures.push(format!(
                    "README.md:{}: `ember {}` does not print {expected:?}",
                    i + j + 2,
                    cmd.join(" ")
                ));
            }
        }
    }
    assert!(quoted > 0, "the README quotes no `ember show settings` output");
    report("README show settings quotes", quoted, &failures);
}

// ---- broken configs --------------------------------------------------------------------------

/// The diagnostics a broken config announces in its header, as full stderr lines.
struct Expected {
    primary: String,
    also: Vec<String>,
}

/// Reads the header of a broken config: `# expect:` on the first line, then any `# also:` lines.
fn expected_diagnostics(file: &str) -> Result<Expected, String> {
    let bytes = std::fs::read(root().join(file)).map_err(|e| format!("cannot read: {e}"))?;
    // Lossy: one broken config is deliberately not UTF-8 (after its header).
    let content = text(&bytes);
    let mut lines = content.lines();
    let first = lines.next().unwrap_or_default();
    let spec = first
        .strip_prefix("# expect: ")
        .ok_or_else(|| format!("the first line must be `# expect: LINE:COL: error: MESSAGE`, found {first:?}"))?;
    let primary = expand(file, spec)?;
    let also = lines.map_while(|l| l.strip_prefix("# also: ")).map(|s| expand(file, s)).collect::<Result<_, _>>()?;
    Ok(Expected { primary, also })
}

/// Turns `[RELFILE:]LINE:COL: error: MESSAGE` into the exact line `ember` prints for `file`.
fn expand(file: &str, spec: &str) -> Result<String, String> {
    let malformed = || format!("malformed expectation {spec:?}: expected [FILE:]LINE:COL: error: MESSAGE");
    let (location, message) = spec.split_once(": error: ").ok_or_else(malformed)?;
    let dir = Path::new(file).parent().expect("corpus files live in a directory").to_string_lossy().into_owned();
    let mut parts: Vec<&str> = location.rsplitn(3, ':').collect();
    parts.reverse();
    let (shown_file, line, col) = match parts.as_slice() {
        [line, col] => (file.to_string(), *line, *col),
        [other, line, col] => (format!("{dir}/{other}"), *line, *col),
        _ => return Err(malformed()),
    };
    if line.parse::<u32>().is_err() || col.parse::<u32>().is_err() {
        return Err(malformed());
    }
    let absdir = std::fs::canonicalize(root().join(&dir)).map_err(|e| format!("cannot resolve {dir}: {e}"))?;
    let message = message.replace("{ABSDIR}", &absdir.to_string_lossy()).replace("{DIR}", &dir);
    Ok(format!("{shown_file}:{line}:{col}: error: {message}"))
}

/// Checks one broken config; returns what went wrong, if anything.
fn check_broken(file: &str) -> Option<String> {
    let expected = match expected_diagnostics(file) {
        Ok(e) => e,
        Err(e) => return Some(format!("{file}: {e}")),
    };
    let out = ember(&["check-config", "--quiet", file]);
    let stderr = text(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains(": error: ")).collect();
    let wanted: Vec<&str> =
        std::iter::once(expected.primary.as_str()).chain(expected.also.iter().map(String::as_str)).collect();
    let missing: Vec<&&str> = wanted.iter().filter(|w| !errors.contains(w)).collect();
    let unexpected: Vec<&&str> = errors.iter().filter(|e| !wanted.contains(e)).collect();
    let in_file_order = errors.windows(2).all(|w| position(w[0]) <= position(w[1]));
    if out.status.code() == Some(1) && missing.is_empty() && unexpected.is_empty() && in_file_order {
        return None;
    }
    let mut problem = format!("{file}: the diagnostics differ from its header");
    if out.status.code() != Some(1) {
        let _ = write!(problem, "\n  exit code:  {:?}, expected Some(1)", out.status.code());
    }
    if !in_file_order {
        let _ = write!(problem, "\n  order:      errors are not printed by file, line and column");
    }
    for m in missing {
        let _ = write!(problem, "\n  missing:    {m}");
    }
    for u in unexpected {
        let _ = write!(problem, "\n  unexpected: {u}");
    }
    let _ = write!(problem, "\n--- stderr\n{stderr}");
    Some(problem)
}

/// (FILE, LINE, COL) of a printed `FILE:LINE:COL: error: …` line, for ordering.
fn position(line: &str) -> (String, u32, u32) {
    let location = line.split(": error: ").next().unwrap_or_default();
    let mut parts = location.rsplitn(3, ':');
    let col = parts.next().and_then(|c| c.parse().ok()).unwrap_or(0);
    let number = parts.next().and_then(|l| l.parse().ok()).unwrap_or(0);
    (parts.next().unwrap_or_default().to_string(), number, col)
}

#[test]
fn every_broken_config_reports_the_announced_diagnostic() {
    let files = corpus("broken");
    assert!(files.len() >= 30, "tests/configs/broken holds {} configs, expected at least 30", files.len());
    let failures: Vec<String> = files.iter().filter_map(|f| check_broken(f)).collect();
    report("broken configs", files.len(), &failures);
}

// ---- show settings ---------------------------------------------------------------------------

/// One queue's `ember show settings` output: the `# applied:` layers and every printed
/// `directive value  # source` line.
struct Shown {
    context: String,
    layers: Vec<String>,
    settings: Vec<(String, String, String)>,
}

fn show(config: &str, queue: &str) -> Result<Shown, String> {
    let context = format!("{config}: show settings {queue}");
    let out = ember(&["show", "settings", queue, "--config", config]);
    let stdout = text(&out.stdout);
    if out.status.code() != Some(0) {
        return Err(format!("{context}: exit code {:?}\n--- stderr\n{}", out.status.code(), text(&out.stderr)));
    }
    let mut shown = Shown { context, layers: Vec::new(), settings: Vec::new() };
    for line in stdout.lines() {
        if let Some(layer) = line.strip_prefix("# applied: ") {
            shown.layers.push(layer.to_string());
            continue;
        }
        let line = line.trim();
        if line.starts_with('#') || line.starts_with('<') || line.is_empty() {
            continue;
        }
        let (setting, source) = line.split_once(" # ").unwrap_or((line, ""));
        let (name, value) = setting.trim_end().split_once(' ').unwrap_or((setting, ""));
        shown.settings.push((name.to_string(), value.to_string(), source.to_string()));
    }
    Ok(shown)
}

/// `FILE:LINE` of the one line of `file` whose content (comment and indentation removed) is
/// exactly `content`: where `show settings` must say a value came from. When there is no such
/// line, or several, the result names the problem, so the expectation using it fails clearly.
fn at(file: &str, content: &str) -> String {
    let text = std::fs::read_to_string(root().join(file)).unwrap_or_else(|e| panic!("cannot read {file}: {e}"));
    let lines: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.split('#').next().unwrap_or_default().trim() == content)
        .map(|(i, _)| i + 1)
        .collect();
    match lines.as_slice() {
        [line] => format!("{file}:{line}"),
        _ => format!("<{file} should have exactly one line {content:?}; it has {}>", lines.len()),
    }
}

impl Shown {
    /// Expects `directive value` from `source` (`FILE:LINE`, optionally `(written as …)`).
    fn expect(&self, failures: &mut Vec<String>, directive: &str, value: &str, source: &str) {
        let found: Vec<&(String, String, String)> = self.settings.iter().filter(|(n, _, _)| n == directive).collect();
        if !found.iter().any(|(_, v, s)| v == value && s == source) {
            let shown: Vec<String> = found.iter().map(|(n, v, s)| format!("{n} {v}  # {s}")).collect();
            failures.push(format!("{}: expected `{directive} {value}  # {source}`, found {shown:?}", self.context));
        }
    }

    /// Expects the `# applied:` layers, general to specific.
    fn expect_layers(&self, failures: &mut Vec<String>, layers: &[String]) {
        if self.layers != layers {
            failures.push(format!("{}: expected layers {layers:#?}\nfound {:#?}", self.context, self.layers));
        }
    }
}

/// `show settings` runs of one test and the failures they collected.
#[derive(Default)]
struct Checks {
    queues: usize,
    failures: Vec<String>,
}

impl Checks {
    /// Runs `show settings QUEUE --config CONFIG` and hands the parsed output to `check`.
    fn queue(&mut self, config: &str, queue: &str, check: impl FnOnce(&Shown, &mut Vec<String>)) {
        self.queues += 1;
        match show(config, queue) {
            Ok(shown) => check(&shown, &mut self.failures),
            Err(e) => self.failures.push(e),
        }
    }

    fn finish(self) {
        report("show settings queues", self.queues, &self.failures);
    }
}

#[test]
fn show_settings_layers_global_pool_and_vmta_domains() {
    let cfg = "tests/configs/valid/04-pools.conf";
    let mut checks = Checks::default();

    // bulk-a is in pool "bulk" (the one with <domain> blocks) and has its own <domain gmail.com>:
    // global <domain *> < global <domain gmail.com> < pool's < VMTA's.
    checks.queue(cfg, "gmail.com/bulk-a", |q, f| {
        q.expect_layers(
            f,
            &[
                format!("global <domain *> at {}", at(cfg, "<domain *>")),
                format!("global <domain gmail.com> at {}", line_before(cfg, "max-smtp-out 12")),
                format!("virtual-mta-pool bulk <domain gmail.com> at {}", line_before(cfg, "max-smtp-out 8")),
                format!("virtual-mta bulk-a <domain gmail.com> at {}", line_before(cfg, "max-smtp-out 3")),
            ],
        );
        q.expect(f, "max-smtp-out", "3", &at(cfg, "max-smtp-out 3"));
        q.expect(f, "max-msg-rate", "6000/h", &at(cfg, "max-msg-rate 6000/h"));
        q.expect(f, "backoff-max-msg-rate", "600/h", &at(cfg, "backoff-max-msg-rate 600/h"));
        q.expect(f, "bounce-after", "2d", &at(cfg, "bounce-after 2d"));
        q.expect(f, "retry-after", "10m", &at(cfg, "retry-after 10m"));
        q.expect(
            f,
            "max-cold-virtual-mta-msg",
            "100/d,200/d,400/d,800/d",
            &at(cfg, "max-cold-virtual-mta-msg 100/day,200/day,400/day,800/day"),
        );
        q.expect(f, "max-connect-rate", "unlimited", "default");
    });

    // bulk-b has no <domain> of its own: the pool's block is the most specific.
    checks.queue(cfg, "gmail.com/bulk-b", |q, f| {
        q.expect(f, "max-smtp-out", "8", &at(cfg, "max-smtp-out 8"));
        q.expect(f, "max-msg-rate", "6000/h", &at(cfg, "max-msg-rate 6000/h"));
    });

    // warmup is only in "everything", a pool without <domain> blocks: global blocks only.
    checks.queue(cfg, "gmail.com/warmup", |q, f| {
        q.expect(f, "max-smtp-out", "12", &at(cfg, "max-smtp-out 12"));
        q.expect(f, "max-msg-rate", "10000/h", &at(cfg, "max-msg-rate 10000/h"));
    });

    // The same VMTA towards another domain: only <domain *> applies.
    checks.queue(cfg, "example.org/bulk-a", |q, f| {
        q.expect(f, "max-smtp-out", "20", &at(cfg, "max-smtp-out 20"));
        q.expect(f, "bounce-after", "4d12h", "default");
    });

    checks.finish();
}

/// `FILE:LINE` of the line just before the unique line `content` (the opening tag of the block
/// whose first directive it is).
fn line_before(file: &str, content: &str) -> String {
    let here = at(file, content);
    match here.rsplit_once(':').and_then(|(path, line)| Some((path, line.parse::<u32>().ok()?))) {
        Some((path, line)) => format!("{path}:{}", line - 1),
        None => here,
    }
}

#[test]
fn show_settings_expands_domain_macros() {
    let cfg = "tests/configs/valid/05-domain-macros.conf";
    let mut checks = Checks::default();

    // yahoo.org comes from `domain-macro tld $com,org`: the nested macro expands.
    checks.queue(cfg, "yahoo.org", |q, f| {
        q.expect_layers(
            f,
            &[
                format!("global <domain *> at {}", at(cfg, "<domain *>")),
                format!("global <domain yahoo.org> at {}", at(cfg, "<domain yahoo.$tld>")),
            ],
        );
        q.expect(f, "max-smtp-out", "5", &at(cfg, "max-smtp-out 5"));
        q.expect(f, "retry-after", "15m", &at(cfg, "retry-after 15m"));
    });

    // yahoo.net is produced by $com inside $tld and also written out: the explicit block wins
    // for what it sets, the macro block still provides the rest.
    checks.queue(cfg, "yahoo.net", |q, f| {
        q.expect(f, "max-smtp-out", "2", &at(cfg, "max-smtp-out 2"));
        q.expect(f, "max-msg-rate", "2000/h", &at(cfg, "max-msg-rate 2000/h"));
    });

    // outlook.com is in $msft, whose block queues it as hotmail.com.
    checks.queue(cfg, "outlook.com", |q, f| {
        q.expect(f, "queue-to", "hotmail.com", &at(cfg, "queue-to hotmail.com"));
        q.expect(f, "max-smtp-out", "10", &at(cfg, "max-smtp-out 10"));
        q.expect(f, "smtp-pattern-list", "microsoft", &at(cfg, "smtp-pattern-list microsoft"));
    });

    // A macro defined after the block that uses it.
    checks.queue(cfg, "gmx.at", |q, f| {
        q.expect(f, "max-smtp-out", "4", &at(cfg, "max-smtp-out 4"));
    });

    // Subdomain patterns built from a macro: [*.]yahoo.$yahoo_cc covers mail.yahoo.fr.
    checks.queue(cfg, "mail.yahoo.fr", |q, f| {
        q.expect(f, "max-smtp-out", "3", &at(cfg, "max-smtp-out 3"));
        q.expect(f, "retry-after", "10m", &at(cfg, "retry-after 10m"));
    });

    checks.finish();
}

#[test]
fn show_settings_reports_dialect_spellings_clears_and_included_sources() {
    let mut checks = Checks::default();

    let dialect = "tests/configs/valid/12-field-dialect.conf";
    checks.queue(dialect, "hotmail.com", |q, f| {
        let written = |line: &str| format!("{} (written as {line})", at(dialect, line));
        q.expect(f, "max-msg-rate", "5000/h", &written("max-msg-per-hour 5000"));
        q.expect(f, "backoff-max-msg-rate", "1000/h", &written("backoff-max-msg-per-hour 1000"));
        q.expect(f, "retry-after", "20m", &written("retry-interval 20m"));
        q.expect(f, "bounce-after", "3d", &written("max-retry-time 3d"));
        q.expect(f, "retry-recipients-after", "15m", &written("min-retry-interval 15m"));
        q.expect(f, "backoff-rule", "421 RP-001 *, 1h, 5, 1000/h", &written("421 RP-001 *, 1h, 5, 1000"));
        q.expect(f, "backoff-rule", "421 4.3.2 *, 45m, 2, 500/h", &written("421 4.3.2 *, 45m, 2, 500"));
        // Top-level outbound-auth applies to every queue; the password is not printed, not even
        // in the spelling it was written with.
        let auth = format!(
            "{} (written as outbound-auth relay-user:********)",
            at(dialect, "outbound-auth relay-user:relay-pass")
        );
        q.expect(f, "auth-username", "relay-user", &auth);
        q.expect(f, "auth-password", "\"********\"", &auth);
    });

    let quoting = "tests/configs/valid/13-quoting-clearing-comments.conf";
    // `""` in <domain example.org> clears what <domain *> set.
    checks.queue(quoting, "example.org", |q, f| {
        q.expect(f, "backoff-notify", "\"\"", &at(quoting, "backoff-notify \"\""));
        q.expect(f, "smtp-hosts", "\"\"", &at(quoting, "smtp-hosts \"\""));
        q.expect(f, "max-smtp-out", "4", &at(quoting, "MAX-SMTP-OUT 4"));
    });
    checks.queue(quoting, "special.example.net", |q, f| {
        q.expect(f, "queue-to", "\"\"", &at(quoting, "queue-to \"\""));
        q.expect(
            f,
            "backoff-notify",
            "ops@example.com,oncall@example.com",
            &at(quoting, "backoff-notify ops@example.com,oncall@example.com"),
        );
    });

    // Values set in included fragments are attributed to the fragment's own lines.
    let includes = "tests/configs/valid/06-includes.conf";
    let parts = "tests/configs/valid/parts";
    checks.queue(includes, "gmail.com/shared", |q, f| {
        q.expect(f, "max-smtp-out", "2", &at(&format!("{parts}/shared-vmta-domains.conf"), "max-smtp-out 2"));
        q.expect(f, "max-msg-rate", "8000/h", &at(&format!("{parts}/domains/10-gmail.conf"), "max-msg-rate 8000/h"));
        q.expect(
            f,
            "retry-after",
            "10m,30m,1h",
            &at(&format!("{parts}/default-domain.conf"), "retry-after 10m,30m,1h"),
        );
    });

    // A macro-expanded <domain> inside a VMTA beats the pool's, which beats the global one.
    let esp = "tests/configs/valid/16-esp-production.conf";
    checks.queue(esp, "yahoo.com/gold-2", |q, f| {
        q.expect(f, "max-smtp-out", "2", &at(esp, "max-smtp-out 2"));
        q.expect(f, "max-msg-rate", "3000/h", &at(esp, "max-msg-rate 3000/h"));
        q.expect(
            f,
            "backoff-rule",
            "421 4.7.0 [TS04], 2h, 2, 300/h",
            &format!("{} (written as 421 4.7.0 \"[TS04]\", 2h, 2, 300)", at(esp, "421 4.7.0 \"[TS04]\", 2h, 2, 300")),
        );
    });
    checks.queue(esp, "yahoo.net/gold-1", |q, f| {
        q.expect(f, "max-smtp-out", "6", &at(esp, "max-smtp-out 6"));
    });

    checks.finish();
}

#[test]
fn show_settings_masks_secrets_and_stays_valid_config() {
    let cfg = "tests/configs/valid/12-field-dialect.conf";
    let out = ember(&["show", "settings", "hotmail.com", "--config", cfg]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!stdout.contains("relay-pass"), "password printed:\n{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with('#') && l.contains("masked")), "no note on masking:\n{stdout}");
    // The output is a config again: `check-config` accepts it as written.
    let dir = std::env::temp_dir().join(format!("ember-show-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let shown = dir.join("shown.conf");
    std::fs::write(&shown, &stdout).expect("write shown config");
    let check = ember(&["check-config", "--quiet", &shown.to_string_lossy()]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(check.status.code(), Some(0), "show settings output is not valid config:\n{}", text(&check.stderr));

    let json = ember(&["show", "settings", "hotmail.com", "--config", cfg, "--json"]);
    let json = text(&json.stdout);
    assert!(json.contains("\"********\"") && !json.contains("relay-pass"), "JSON shows the password:\n{json}");
}

#[test]
fn show_settings_reads_lists_with_spaces_after_commas() {
    let cfg = "tests/configs/valid/21-lists-with-spaces-after-commas.conf";
    let mut checks = Checks::default();
    checks.queue(cfg, "gmail.com/warm", |q, f| {
        q.expect(f, "retry-after", "10m,20m,1h", &at(cfg, "retry-after 10m, 20m, 1h"));
        q.expect(
            f,
            "backoff-notify",
            "ops@example.com,oncall@example.com",
            &at(cfg, "backoff-notify ops@example.com, oncall@example.com"),
        );
        q.expect(
            f,
            "max-cold-virtual-mta-msg",
            "100/d,200/d,400/d",
            &at(cfg, "max-cold-virtual-mta-msg 100/day, 200/day, 400/day"),
        );
    });
    checks.finish();
}
