//! The typed configuration model: the block tree turned into global settings, `<domain>` blocks
//! (macro-expanded), virtual MTAs, pools, sources and the other blocks, every value typed.
//!
//! Owns directive lookup (documented names, field dialect, scope checks, "did you mean") and value
//! typing with `FILE:LINE:COL` errors. Cross-block checks live in `validate.rs`; inheritance in
//! `resolve.rs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::diag::{Diagnostics, Location};
use super::dialect::{self, Mapping};
use super::lexer::Token;
use super::macros::{ExpandError, Macros};
use super::pattern::DomainPattern;
use super::policy::GlobalPolicy;
use super::settings::{Entry, Origin, SECRET_MASK, Settings};
use super::table::{self, DIRECTIVES, Dir, Lookup};
use super::table_def::{BLOCKS, Status, belongs, scope, scope_names};
use super::tree::{Block, Directive, Node, suggest};
use super::value::{ConfigRegex, Value, parse_listen, parse_value};
use super::values::Cidr;

/// A `<domain>` block, once per pattern its (macro-expanded) argument produced.
#[derive(Clone, Debug)]
pub struct DomainBlock {
    pub pattern: DomainPattern,
    /// Produced by a `$macro`; explicit patterns beat macro-produced ones of equal specificity.
    pub from_macro: bool,
    pub settings: Arc<Settings>,
    pub location: Location,
}

#[derive(Clone, Debug)]
pub struct VirtualMta {
    pub name: String,
    pub location: Location,
    pub settings: Settings,
    pub domains: Vec<DomainBlock>,
}

#[derive(Clone, Debug)]
pub struct Pool {
    pub name: String,
    pub location: Location,
    pub settings: Settings,
    pub domains: Vec<DomainBlock>,
}

impl Pool {
    pub fn members(&self) -> impl Iterator<Item = (&str, &Location)> {
        self.settings.all(Dir::VirtualMtaMember).iter().filter_map(|e| match (&e.value, e.origin.location()) {
            (Value::Text(name), Some(loc)) => Some((name.as_str(), loc)),
            _ => None,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceMatcher {
    Cidr(Cidr),
    /// A named source, including the reserved `{auth}`, `{pickup}`, `{transmissions-api}`.
    Name(String),
}

#[derive(Clone, Debug)]
pub struct SourceBlock {
    pub matcher: SourceMatcher,
    pub location: Location,
    pub settings: Settings,
}

/// Any other block: listeners, users, accounting files, spools, pattern lists, processors….
#[derive(Clone, Debug)]
pub struct OtherBlock {
    pub tag: String,
    pub arg: Option<String>,
    pub location: Location,
    pub settings: Settings,
    pub children: Vec<OtherBlock>,
}

/// `/regex/ category` inside `<bounce-category-patterns>`.
#[derive(Clone, Debug)]
pub struct CategoryPattern {
    pub pattern: ConfigRegex,
    pub category: String,
    pub location: Location,
}

/// A file or directory the configuration names, checked by `validate.rs`.
#[derive(Clone, Debug)]
pub struct FileRef {
    pub path: PathBuf,
    pub directive: String,
    pub location: Location,
    pub is_dir: bool,
}

#[derive(Clone, Debug, Default)]
pub struct Config {
    /// Directory relative file names are resolved against.
    pub base_dir: PathBuf,
    pub global: Settings,
    /// Per-queue values written at top level (the field dialect's global `outbound-auth`).
    pub queue_defaults: Settings,
    pub domains: Vec<DomainBlock>,
    pub vmtas: Vec<VirtualMta>,
    pub pools: Vec<Pool>,
    pub sources: Vec<SourceBlock>,
    pub blocks: Vec<OtherBlock>,
    pub bounce_categories: Vec<CategoryPattern>,
    /// First place each directive is used, for "accepted, not yet enforced".
    pub first_use: BTreeMap<Dir, Location>,
    pub file_refs: Vec<FileRef>,
    /// `global` read into typed fields; kept in step with it by `build`.
    pub policy: GlobalPolicy,
}

impl Config {
    pub fn vmta(&self, name: &str) -> Option<&VirtualMta> {
        self.vmtas.iter().find(|v| v.name == name)
    }

    pub fn pool(&self, name: &str) -> Option<&Pool> {
        self.pools.iter().find(|p| p.name == name)
    }

    pub fn blocks_of<'a>(&'a self, tag: &'a str) -> impl Iterator<Item = &'a OtherBlock> {
        self.blocks.iter().filter(move |b| b.tag == tag)
    }

    /// Resolves a path written in the config against the config's directory. `.` components
    /// are dropped from the join, so that what is printed and logged reads as written
    /// (`./ember-data/log`, not `././ember-data/log`, for the embedded default in `.`).
    pub fn path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            return p.to_path_buf();
        }
        let joined = self.base_dir.join(p);
        // `components` drops every `.` but a leading one.
        joined.components().collect()
    }
}

/// Builds the model from the block tree.
pub fn build(nodes: &[Node], base_dir: &Path, diags: &mut Diagnostics) -> Config {
    let macros = Macros::collect(nodes, diags);
    let mut builder =
        ModelBuilder { diags, macros, config: Config { base_dir: base_dir.to_path_buf(), ..Config::default() } };
    let mut global = Settings::default();
    for node in nodes {
        match node {
            Node::Directive(d) => builder.directive(d, scope::GLOBAL, &mut global),
            Node::Block(b) => builder.top_block(b),
        }
    }
    builder.config.policy = GlobalPolicy::new(&global);
    builder.config.global = global;
    builder.config
}

struct ModelBuilder<'a> {
    diags: &'a mut Diagnostics,
    macros: Macros,
    config: Config,
}

fn block_bit(tag: &str) -> Option<u32> {
    BLOCKS.iter().find(|(t, _, _)| *t == tag).map(|(_, bit, _)| *bit)
}

impl ModelBuilder<'_> {
    fn top_block(&mut self, b: &Block) {
        match b.tag.as_str() {
            "domain" => {
                let blocks = self.domain_block(b);
                self.config.domains.extend(blocks);
            }
            "virtual-mta" | "virtual-mta-pool" => {
                let Some(name) = self.name_arg(b) else { return };
                let bit = if b.tag == "virtual-mta" { scope::VMTA } else { scope::POOL };
                let mut settings = Settings::default();
                let mut domains = Vec::new();
                for child in &b.children {
                    match child {
                        Node::Directive(d) => self.directive(d, bit, &mut settings),
                        Node::Block(inner) if inner.tag == "domain" => domains.extend(self.domain_block(inner)),
                        Node::Block(_) => {} // reported by the tree builder
                    }
                }
                if bit == scope::VMTA {
                    self.config.vmtas.push(VirtualMta { name, location: b.location.clone(), settings, domains });
                } else {
                    self.config.pools.push(Pool { name, location: b.location.clone(), settings, domains });
                }
            }
            "source" => {
                let Some(arg) = self.required_arg(b) else { return };
                let Some(matcher) = self.source_matcher(arg) else { return };
                let settings = self.settings_of(&b.children, scope::SOURCE);
                self.config.sources.push(SourceBlock { matcher, location: b.location.clone(), settings });
            }
            "bounce-category-patterns" => {
                self.no_arg(b);
                self.category_patterns(b);
            }
            _ => {
                if let Some(block) = self.other_block(b) {
                    self.config.blocks.push(block);
                }
            }
        }
    }

    fn other_block(&mut self, b: &Block) -> Option<OtherBlock> {
        let bit = block_bit(&b.tag)?;
        let arg = self.check_block_arg(b)?;
        let mut settings = Settings::default();
        let mut children = Vec::new();
        for child in &b.children {
            match child {
                Node::Directive(d) => self.directive(d, bit, &mut settings),
                Node::Block(inner) => {
                    let allowed = BLOCKS.iter().any(|(t, _, parents)| *t == inner.tag && parents & bit != 0);
                    if allowed && let Some(block) = self.other_block(inner) {
                        children.push(block);
                    }
                }
            }
        }
        Some(OtherBlock { tag: b.tag.clone(), arg, location: b.location.clone(), settings, children })
    }

    /// Checks the argument a block takes. Returns `None` when the block is unusable.
    fn check_block_arg(&mut self, b: &Block) -> Option<Option<String>> {
        let arg = b.arg.as_ref();
        match b.tag.as_str() {
            "smtp-listener" | "transmissions-api-listener" => {
                let a = self.required_arg(b)?;
                match parse_listen(a) {
                    Ok(l) => Some(Some(l.to_string())),
                    Err(e) => {
                        let location = Location::new(&a.location.file, a.location.line, e.col);
                        self.diags.error(&location, format!("<{}>: {}", b.tag, e.message));
                        None
                    }
                }
            }
            "acct-file" | "spool" => {
                let a = self.required_arg(b)?;
                if b.tag == "spool" || !a.text.starts_with('|') {
                    let is_dir = b.tag == "spool";
                    let path = PathBuf::from(&a.text);
                    // An accounting file's directory must exist; the file itself is created.
                    let checked =
                        if is_dir { path.clone() } else { path.parent().map(Path::to_path_buf).unwrap_or_default() };
                    if !checked.as_os_str().is_empty() {
                        self.config.file_refs.push(FileRef {
                            path: checked,
                            directive: format!("<{}>", b.tag),
                            location: a.location.clone(),
                            is_dir: true,
                        });
                    }
                }
                Some(Some(a.text.clone()))
            }
            "smtp-user" | "source-group" | "smtp-pattern-list" | "rewrite-list" | "domain-key-list" | "proxy"
            | "suppression-list" | "event-sink" => self.name_arg(b).map(Some),
            "pattern-list" => {
                // Top-level lists are named; nested inline lists are not.
                Some(arg.map(|a| a.text.clone()))
            }
            "address-list" | "signals-filter" => Some(arg.map(|a| a.text.clone())),
            _ => {
                self.no_arg(b);
                Some(None)
            }
        }
    }

    fn required_arg<'b>(&mut self, b: &'b Block) -> Option<&'b Token> {
        match &b.arg {
            Some(a) if !a.text.is_empty() => Some(a),
            _ => {
                self.diags.error(&b.location, format!("<{}> needs an argument", b.tag));
                None
            }
        }
    }

    fn name_arg(&mut self, b: &Block) -> Option<String> {
        let a = self.required_arg(b)?;
        // SMTP AUTH user names are often e-mail addresses.
        let (extra, allowed) = if b.tag == "smtp-user" {
            ("-_.{}@+", "letters, digits, '-', '_', '.', '@' and '+'")
        } else {
            ("-_.{}", "letters, digits, '-', '_' and '.'")
        };
        let valid = a.text.chars().all(|c| c.is_alphanumeric() || extra.contains(c));
        if !valid {
            self.diags.error(&a.location, format!("<{}>: invalid name {:?}: use {allowed}", b.tag, a.text));
            return None;
        }
        let reserved = a.text.starts_with('{') && a.text.ends_with('}');
        if reserved && matches!(b.tag.as_str(), "virtual-mta" | "virtual-mta-pool") {
            self.diags.error(
                &a.location,
                format!(
                    "<{}>: invalid name {:?}: names in braces are reserved ({{default}} is the virtual MTA used when none is selected)",
                    b.tag, a.text
                ),
            );
            return None;
        }
        Some(a.text.clone())
    }

    fn no_arg(&mut self, b: &Block) {
        if let Some(a) = &b.arg {
            self.diags.error(&a.location, format!("<{}> takes no argument, found {:?}", b.tag, a.text));
        }
    }

    fn source_matcher(&mut self, arg: &Token) -> Option<SourceMatcher> {
        let text = arg.text.trim();
        let not_cidr = match Cidr::parse(text) {
            Ok(cidr) => return Some(SourceMatcher::Cidr(cidr)),
            Err(e) => e,
        };
        // Brace names other than the reserved {auth}, {pickup} and {transmissions-api} are
        // user-defined source names, as PowerMTA installers write them (`<source {pmta-auth}>`
        // named by an `<smtp-user>`'s `source {pmta-auth}`). They must be well formed.
        if text.starts_with('{') {
            let inner = text.strip_prefix('{').and_then(|t| t.strip_suffix('}'));
            let ok =
                inner.is_some_and(|i| !i.is_empty() && i.chars().all(|c| c.is_alphanumeric() || "-_.".contains(c)));
            if !ok {
                self.diags.error(
                    &arg.location,
                    format!("<source>: invalid source name {text:?}: expected {{NAME}} with letters, digits, '-', '_' or '.'"),
                );
                return None;
            }
        }
        // Digits, dots and slashes are an address with a mistake: say which (an octet above 255,
        // a prefix longer than the address).
        if text.chars().all(|c| c.is_ascii_digit() || c == '.' || c == '/' || c == ':') {
            self.diags.error(&arg.location, format!("<source>: {not_cidr}"));
            return None;
        }
        if !text.chars().all(|c| c.is_alphanumeric() || "-_.{}".contains(c)) {
            self.diags.error(
                &arg.location,
                format!("<source>: expected an IP address, CIDR (like 10/8 or 0/0) or source name, found {text:?}"),
            );
            return None;
        }
        Some(SourceMatcher::Name(text.to_string()))
    }

    /// One `<domain>` block, expanded into one entry per pattern its argument produces.
    fn domain_block(&mut self, b: &Block) -> Vec<DomainBlock> {
        let Some(arg) = self.required_arg(b) else { return Vec::new() };
        let settings = Arc::new(self.settings_of(&b.children, scope::DOMAIN));
        let expanded = match self.macros.expand(&arg.text) {
            Ok(e) => e,
            // Reported once, where the macro is defined.
            Err(ExpandError::BrokenMacro) => return Vec::new(),
            Err(ExpandError::Invalid(message)) => {
                self.diags.error(&arg.location, format!("<domain {}>: {message}", arg.text));
                return Vec::new();
            }
        };
        let mut blocks = Vec::new();
        for (text, from_macro) in expanded {
            match DomainPattern::parse(&text) {
                Ok(pattern) => blocks.push(DomainBlock {
                    pattern,
                    from_macro,
                    settings: Arc::clone(&settings),
                    location: b.location.clone(),
                }),
                Err(e) => self.diags.error(&arg.location, format!("<domain>: {e}")),
            }
        }
        blocks
    }

    fn settings_of(&mut self, children: &[Node], bit: u32) -> Settings {
        let mut settings = Settings::default();
        for child in children {
            if let Node::Directive(d) = child {
                self.directive(d, bit, &mut settings);
            }
        }
        settings
    }

    fn category_patterns(&mut self, b: &Block) {
        for child in &b.children {
            let Node::Directive(d) = child else { continue };
            // The category follows the closing slash, with or without a space between
            // (`/quota/quota-issues` is written in the wild).
            let (re, category) = match split_category(&d.full) {
                Some((re, cat)) => (re, cat),
                None => {
                    self.diags.error(
                        &d.location,
                        format!("expected /regex/ CATEGORY like /quota/ quota-issues, found {:?}", d.full),
                    );
                    continue;
                }
            };
            match ConfigRegex::parse(re, true) {
                Ok(pattern) => self.config.bounce_categories.push(CategoryPattern {
                    pattern,
                    category: category.to_string(),
                    location: d.location.clone(),
                }),
                Err(e) => self.diags.error(&d.location, e.to_string()),
            }
        }
    }

    /// Types one directive line and records it in `settings`.
    fn directive(&mut self, d: &Directive, bit: u32, settings: &mut Settings) {
        if bit == scope::DOMAIN && dialect::is_backoff_line(&d.name) {
            let args = vec![d.rest.clone()];
            let full = Token::bare(d.full.clone(), d.location.clone());
            self.typed(d, Dir::BackoffRuleDir, &args, &full, Some(d.full.clone()), settings, bit);
            return;
        }
        if let Some(mapping) = dialect::lookup(&d.name, bit) {
            self.dialect(d, mapping, bit, settings);
            return;
        }
        match table::lookup(&d.name, bit) {
            Lookup::Found(def) => {
                if def.id == Dir::DomainMacro {
                    // Collected before the model is built (`macros.rs`); record the use only.
                    self.config.first_use.entry(def.id).or_insert_with(|| d.location.clone());
                    return;
                }
                self.typed(d, def.id, &d.args, &d.rest, None, settings, bit);
            }
            Lookup::WrongScope(def) => {
                let here = if bit == scope::GLOBAL {
                    "at top level".to_string()
                } else {
                    format!("in {}", scope_names(bit).join(""))
                };
                let mut message = format!("{} is not allowed {here}: it belongs {}", d.name, belongs(def.scope.0));
                if def.per_queue() && bit == scope::GLOBAL {
                    message.push_str(" (put it in <domain *> to apply it to every queue)");
                }
                self.diags.error(&d.location, message);
            }
            Lookup::Unknown => {
                let known = DIRECTIVES.iter().map(|x| x.name).chain(dialect::DIALECT.iter().map(|(n, _, _)| *n));
                let suggestion = suggest(&d.name, known);
                self.diags.error(&d.location, format!("unknown directive {:?}{suggestion}", d.name));
            }
        }
    }

    fn dialect(&mut self, d: &Directive, mapping: Mapping, bit: u32, settings: &mut Settings) {
        let written = format!("{} {}", d.name, d.rest.text);
        match mapping {
            Mapping::Rename(dir) => self.typed(d, dir, &d.args, &d.rest, Some(written), settings, bit),
            Mapping::PerHour(dir) => {
                let mut args = d.args.clone();
                if let [one] = args.as_mut_slice()
                    && !one.text.is_empty()
                    && one.text.bytes().all(|b| b.is_ascii_digit())
                {
                    one.text.push_str("/h");
                }
                self.typed(d, dir, &args, &d.rest, Some(written), settings, bit)
            }
            Mapping::OutboundAuth => {
                let [cred] = d.args.as_slice() else {
                    self.diags.error(&d.location, format!("{}: expected USER:PASSWORD", d.name));
                    return;
                };
                let Some((user, pass)) = cred.text.split_once(':').filter(|(u, _)| !u.is_empty()) else {
                    self.diags
                        .error(&cred.location, format!("{}: expected USER:PASSWORD, found {:?}", d.name, cred.text));
                    return;
                };
                // At top level these become defaults for every queue.
                let target = if bit == scope::GLOBAL { &mut self.config.queue_defaults } else { settings };
                for (dir, value) in [(Dir::AuthUsername, user), (Dir::AuthPassword, pass)] {
                    let origin = Origin::Config {
                        location: d.location.clone(),
                        // The spelling is shown by `show settings`: not the password.
                        written_as: Some(format!("{} {user}:{SECRET_MASK}", d.name)),
                        args: Arc::from([cred.clone()]),
                    };
                    target.set(dir, Entry { value: Value::Text(value.to_string()), origin });
                    self.config.first_use.entry(dir).or_insert_with(|| d.location.clone());
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn typed(
        &mut self,
        d: &Directive,
        dir: Dir,
        args: &[Token],
        rest: &Token,
        written_as: Option<String>,
        settings: &mut Settings,
        _bit: u32,
    ) {
        let def = dir.def();
        let value = match parse_value(def.ty, d.location.col, args, rest) {
            Ok(v) => v,
            Err(e) => {
                let location = Location::new(&d.location.file, d.location.line, e.col);
                // A field-dialect backoff line is named by its reply code; say what it is.
                let label = if dir == Dir::BackoffRuleDir && d.name != def.name { "backoff rule" } else { &d.name };
                self.diags.error(&location, format!("{label}: {}", e.message));
                return;
            }
        };
        self.record_files(d, def.name, &value);
        let first = !self.config.first_use.contains_key(&dir);
        self.config.first_use.entry(dir).or_insert_with(|| d.location.clone());
        if first && def.status == Status::NoEffect {
            self.diags.warning(&d.location, format!("{}: accepted, has no effect in Ember: {}", d.name, def.doc));
        }
        let origin = Origin::Config { location: d.location.clone(), written_as, args: Arc::from(args) };
        if let Some(previous) = settings.set(dir, Entry { value, origin }) {
            self.diags.warning(
                &d.location,
                format!(
                    "{} is set again in this block; this value replaces the one at {}",
                    d.name,
                    previous.file_line()
                ),
            );
        }
    }

    fn record_files(&mut self, d: &Directive, name: &str, value: &Value) {
        let (path, is_dir) = match value {
            Value::Path(p) => (p.clone(), matches!(d.name.as_str(), "spool" | "move-to" | "event-log-dir")),
            Value::FileWithPassword { file, .. } => (file.clone(), false),
            Value::DomainKey { file, .. } => (file.clone(), false),
            Value::Words(w) if name == "pickup" => {
                for dir in w {
                    self.config.file_refs.push(FileRef {
                        path: dir.into(),
                        directive: name.into(),
                        location: d.location.clone(),
                        is_dir: true,
                    });
                }
                return;
            }
            _ => return,
        };
        if name == "include" {
            return;
        }
        if name == "log-file" {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                self.config.file_refs.push(FileRef {
                    path: parent.to_path_buf(),
                    directive: name.into(),
                    location: d.location.clone(),
                    is_dir: true,
                });
            }
            return;
        }
        self.config.file_refs.push(FileRef { path, directive: name.into(), location: d.location.clone(), is_dir });
    }
}

/// `/regex/ CATEGORY` or `/regex/CATEGORY`: the regex up to its last unescaped `/`, and the one
/// word after it.
fn split_category(full: &str) -> Option<(&str, &str)> {
    if !full.starts_with('/') {
        return None;
    }
    let mut escaped = false;
    let mut last = None;
    for (i, c) in full.char_indices().skip(1) {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '/' => last = Some(i),
            _ => {}
        }
    }
    let (re, cat) = full.split_at(last? + 1);
    let cat = cat.trim();
    (!cat.is_empty() && !cat.contains(char::is_whitespace)).then_some((re, cat))
}

#[cfg(test)]
mod path_tests {
    use std::path::{Path, PathBuf};

    use super::Config;

    fn config_in(dir: &str) -> Config {
        Config { base_dir: PathBuf::from(dir), ..Config::default() }
    }

    #[test]
    fn paths_resolve_against_the_config_directory_without_dot_components() {
        assert_eq!(config_in(".").path(Path::new("./ember-data/log")), Path::new("./ember-data/log"));
        assert_eq!(config_in(".").path(Path::new("ember-data/log")), Path::new("./ember-data/log"));
        assert_eq!(config_in("/etc/ember").path(Path::new("./spool")), Path::new("/etc/ember/spool"));
        assert_eq!(config_in("conf").path(Path::new("../spool")), Path::new("conf/../spool"));
        assert_eq!(config_in("conf").path(Path::new("/var/spool")), Path::new("/var/spool"));
    }
}

#[cfg(test)]
mod category_split_tests {
    use super::split_category;

    #[test]
    fn category_with_or_without_space() {
        assert_eq!(split_category("/quota/ quota-issues"), Some(("/quota/", "quota-issues")));
        assert_eq!(split_category("/quota/quota-issues"), Some(("/quota/", "quota-issues")));
        assert_eq!(split_category("/a\\/b/ other"), Some(("/a\\/b/", "other")));
        assert_eq!(split_category("/quota/"), None);
        assert_eq!(split_category("/quota/ a b"), None);
        assert_eq!(split_category("/unterminated"), None);
        assert_eq!(split_category("quota/ x"), None);
    }
}
