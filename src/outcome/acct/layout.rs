//! The columns of one accounting output and how a record becomes a CSV row: `records`,
//! `record-fields TYPE FIELDLIST` (`*`, explicit lists, `!field` exclusions, `header_NAME`),
//! `user-string`, `iso-times`, `queue-filter`, `map-header-to-field` and `privacy-policy`
//! (`privacy.rs`).
//!
//! Runs on the output's writer thread; knows nothing about files.

use crate::config::Dir;
use crate::config::settings::Settings;
use crate::config::tree::suggest;
use crate::config::value::Value;
use crate::time;

use super::mapping::{self, HeaderMapping, MappedField};
use super::privacy::{Privacy, RECIPIENT_FIELDS};
use super::{AcctError, Record, RecordType, TIME_FIELDS};

/// Fields `record-fields` may name besides the default fields of the record types.
pub const KNOWN_EXTRA_FIELDS: &[&str] =
    &["totalSecondsQueued", "timeFirstAttempt", "userString", "dlvTlsProtocol", "dlvTlsCipher", "rcvSmtpUser"];

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Column {
    Field(&'static str),
    /// A `header_NAME` column: its title as written, and NAME.
    Header {
        title: String,
        name: String,
    },
}

impl Column {
    fn title(&self) -> &str {
        match self {
            Column::Field(f) => f,
            Column::Header { title, .. } => title,
        }
    }
}

/// How one output lays out records.
#[derive(Clone, Debug)]
pub(super) struct Layout {
    pub types: Vec<RecordType>,
    pub columns: Vec<Column>,
    /// For each type taken, which columns it fills.
    masks: Vec<(RecordType, Vec<bool>)>,
    user_string: Option<String>,
    iso_times: bool,
    filter: QueueFilter,
    privacy: Privacy,
    /// `map-header-to-field` lines naming a record's own field (custom fields are columns).
    mapped: Vec<HeaderMapping>,
}

impl Layout {
    pub fn from_settings(settings: &Settings) -> Result<Layout, AcctError> {
        let types: Vec<RecordType> = match settings.effective(Dir::Records) {
            Some(Value::List(list)) => list
                .iter()
                .map(|t| RecordType::parse(t).ok_or_else(|| AcctError::RecordType(t.clone())))
                .collect::<Result<_, _>>()?,
            _ => vec![RecordType::Delivery, RecordType::Bounce],
        };
        let user_string = settings.text(Dir::UserString).map(str::to_string);
        let mut overrides: Vec<(RecordType, Vec<Column>)> = Vec::new();
        for entry in settings.all(Dir::RecordFields) {
            let Value::Words(words) = &entry.value else { continue };
            let [kinds, list] = words.as_slice() else { continue };
            for kind in kinds.split(',').filter(|k| !k.trim().is_empty()) {
                let kind =
                    RecordType::parse(kind).ok_or_else(|| AcctError::RecordFieldsType(kind.trim().to_string()))?;
                let fields = field_list(kind, list)
                    .map_err(|e| AcctError::RecordFields { kind: kind.code(), source: Box::new(e) })?;
                overrides.retain(|(k, _)| *k != kind);
                overrides.push((kind, fields));
            }
        }
        let mappings = mapping::from_settings(settings, true)?;
        let fields_of = |kind: RecordType| -> Vec<Column> {
            let mut f: Vec<Column> = match overrides.iter().find(|(k, _)| *k == kind) {
                Some((_, f)) => f.clone(),
                None => kind.fields().iter().map(|f| Column::Field(f)).collect(),
            };
            // With a user-string, every default layout carries it.
            if user_string.is_some()
                && !overrides.iter().any(|(k, _)| *k == kind)
                && !f.contains(&Column::Field("userString"))
            {
                f.push(Column::Field("userString"));
            }
            // A header mapped to a field of the operator's own is a column of that name.
            // A mapped field the type does not carry becomes one of its columns.
            for m in mappings.iter().filter(|m| m.kind == kind) {
                let column = match &m.field {
                    MappedField::Custom(title) => Column::Header { title: title.clone(), name: m.header.clone() },
                    MappedField::Known(field) => Column::Field(field),
                };
                if !f.iter().any(|c| c.title() == column.title()) {
                    f.push(column);
                }
            }
            f
        };
        let mut columns: Vec<Column> = Vec::new();
        let per_type: Vec<(RecordType, Vec<Column>)> = types.iter().map(|t| (*t, fields_of(*t))).collect();
        for (_, fields) in &per_type {
            for f in fields {
                if !columns.iter().any(|c| same(c, f)) {
                    columns.push(f.clone());
                }
            }
        }
        let masks = per_type
            .iter()
            .map(|(t, fields)| (*t, columns.iter().map(|c| fields.iter().any(|f| same(c, f))).collect()))
            .collect();
        Ok(Layout {
            types,
            columns,
            masks,
            user_string,
            iso_times: settings.effective(Dir::IsoTimes).is_none_or(|v| matches!(v, Value::Bool(true))),
            filter: QueueFilter::parse(&settings.list(Dir::QueueFilter))?,
            privacy: match settings.effective(Dir::PrivacyPolicy) {
                Some(Value::Words(words)) => Privacy::parse(words)?,
                _ => Privacy::Retain,
            },
            mapped: mappings.into_iter().filter(|m| matches!(m.field, MappedField::Known(_))).collect(),
        })
    }

    /// The names of the headers the `header_*` columns and `map-header-to-field` read.
    pub fn header_names(&self) -> impl Iterator<Item = &str> {
        self.columns
            .iter()
            .filter_map(|c| match c {
                Column::Header { name, .. } => Some(name.as_str()),
                Column::Field(_) => None,
            })
            .chain(self.mapped.iter().map(|m| m.header.as_str()))
    }

    /// The header line, `\n`-terminated.
    pub fn header_line(&self) -> Vec<u8> {
        let mut w = writer(Vec::new());
        // Writing to a Vec cannot fail.
        let _ = w.write_record(self.columns.iter().map(Column::title));
        w.into_inner().unwrap_or_default()
    }

    /// The rows of a batch. A record is skipped when the output no longer takes its type (a
    /// reload changed `records`) or `queue-filter` excludes its queue; `forced` records
    /// (`log-delivery-failures`) use the `d` or `b` layout when the type has none of its own.
    pub fn rows<'r>(&self, records: impl Iterator<Item = (&'r Record, bool)>) -> Vec<u8> {
        let mut w = writer(Vec::new());
        for (record, forced) in records {
            let mask = self.masks.iter().find(|(k, _)| *k == record.kind).or_else(|| {
                forced
                    .then(|| self.masks.iter().find(|(k, _)| matches!(k, RecordType::Delivery | RecordType::Bounce)))?
            });
            let Some((_, mask)) = mask else { continue };
            if !self.filter.allows(record.get("queue")) {
                continue;
            }
            let row =
                self.columns.iter().zip(mask).map(|(c, on)| if *on { self.value(record, c) } else { String::new() });
            let _ = w.write_record(row);
        }
        w.into_inner().unwrap_or_default()
    }

    fn value(&self, record: &Record, column: &Column) -> String {
        if let Column::Field(f) = column
            && let Some(m) = self.mapped.iter().find(|m| m.kind == record.kind && m.field == MappedField::Known(f))
            && !record.header_value(&m.header).is_empty()
        {
            return record.header_value(&m.header).to_string();
        }
        match column {
            Column::Header { name, .. } => record.header_value(name).to_string(),
            Column::Field("type") => record.kind.code().to_string(),
            Column::Field("userString") => {
                self.user_string.clone().unwrap_or_else(|| record.get("userString").to_string())
            }
            Column::Field(f) if TIME_FIELDS.contains(f) => match record.time_of(f) {
                Some(t) if self.iso_times => time::acct(t),
                Some(t) => t.to_string(),
                None if self.iso_times => record.get(f).to_string(),
                None => time::parse_acct(record.get(f)).map_or_else(|| record.get(f).to_string(), |t| t.to_string()),
            },
            Column::Field(f) if RECIPIENT_FIELDS.contains(f) && !self.privacy.is_retain() => {
                self.privacy.apply(record.get(f))
            }
            Column::Field(f) => record.get(f).to_string(),
        }
    }
}

fn writer(out: Vec<u8>) -> csv::Writer<Vec<u8>> {
    csv::WriterBuilder::new().terminator(csv::Terminator::Any(b'\n')).flexible(true).from_writer(out)
}

fn same(a: &Column, b: &Column) -> bool {
    match (a, b) {
        (Column::Field(x), Column::Field(y)) => x == y,
        (Column::Header { name: x, .. }, Column::Header { name: y, .. }) => x.eq_ignore_ascii_case(y),
        _ => false,
    }
}

/// Every field name a record-fields list may use, canonical spelling.
fn known_fields() -> Vec<&'static str> {
    let mut all: Vec<&'static str> = Vec::new();
    for t in RecordType::ALL {
        for f in t.fields() {
            if !all.contains(f) {
                all.push(f);
            }
        }
    }
    for f in KNOWN_EXTRA_FIELDS {
        if !all.contains(f) {
            all.push(f);
        }
    }
    all
}

/// One type's fields from a FIELDLIST: `*` stands for the type's default fields; a list of
/// only `!exclusions` starts from them too; other names are added in order; `type` is always
/// first.
fn field_list(kind: RecordType, list: &str) -> Result<Vec<Column>, AcctError> {
    let items: Vec<&str> = list.split(',').map(str::trim).filter(|i| !i.is_empty()).collect();
    if items.is_empty() {
        return Err(AcctError::EmptyFieldList);
    }
    let known = known_fields();
    let resolve = |name: &str| -> Result<Column, AcctError> {
        if let Some(h) = name.strip_prefix("header_").or_else(|| name.strip_prefix("HEADER_")) {
            if h.is_empty() || h.contains(|c: char| c.is_whitespace() || c == ':') {
                return Err(AcctError::NotAHeader(name.to_string()));
            }
            return Ok(Column::Header { title: name.to_string(), name: h.to_string() });
        }
        known.iter().find(|k| k.eq_ignore_ascii_case(name)).map(|k| Column::Field(k)).ok_or_else(|| {
            AcctError::UnknownField { name: name.to_string(), hint: suggest(name, known.iter().copied()) }
        })
    };
    let defaults = items.contains(&"*") || items.iter().all(|i| i.starts_with('!'));
    let mut fields: Vec<Column> = vec![Column::Field("type")];
    if defaults {
        fields.extend(kind.fields().iter().skip(1).map(|f| Column::Field(f)));
    }
    let mut excluded = Vec::new();
    for item in &items {
        if *item == "*" {
            continue;
        }
        if let Some(name) = item.strip_prefix('!') {
            excluded.push(resolve(name.trim())?);
            continue;
        }
        let column = resolve(item)?;
        if !fields.iter().any(|f| same(f, &column)) {
            fields.push(column);
        }
    }
    fields.retain(|f| *f == Column::Field("type") || !excluded.iter().any(|x| same(f, x)));
    Ok(fields)
}

/// `queue-filter [!]queue,…`: entries are glob patterns (`*`, `?`) over the queue
/// (`domain/vmta`); an entry without `/` matches the domain part (any virtual MTA). With any
/// positive entries, only matching queues are written; `!` entries exclude. Records without a
/// queue (`r`, `f`) pass.
#[derive(Clone, Debug, Default)]
pub(super) struct QueueFilter {
    include: Vec<glob::Pattern>,
    exclude: Vec<glob::Pattern>,
}

impl QueueFilter {
    fn parse(entries: &[String]) -> Result<QueueFilter, AcctError> {
        let mut f = QueueFilter::default();
        for e in entries {
            let (negated, text) = match e.trim().strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, e.trim()),
            };
            if text.is_empty() {
                continue;
            }
            let pattern = glob::Pattern::new(&text.to_ascii_lowercase())
                .map_err(|source| AcctError::QueueFilter { text: text.to_string(), source })?;
            if negated { f.exclude.push(pattern) } else { f.include.push(pattern) }
        }
        Ok(f)
    }

    pub fn allows(&self, queue: &str) -> bool {
        if queue.is_empty() {
            return true;
        }
        let queue = queue.to_ascii_lowercase();
        let domain = queue.split('/').next().unwrap_or("");
        let hit = |p: &glob::Pattern| if p.as_str().contains('/') { p.matches(&queue) } else { p.matches(domain) };
        (self.include.is_empty() || self.include.iter().any(hit)) && !self.exclude.iter().any(hit)
    }
}
