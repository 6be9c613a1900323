//! `map-header-to-field TYPE header_NAME FIELD`: the value of a message header written in a
//! field of TYPE records. FIELD may be one of the record's own fields (`jobId`, `envId`, …: the
//! header's value replaces the field's when the message has the header) or a name of the
//! operator's (`customerId`: a column of its own, empty when the message lacks the header).
//!
//! In an `<acct-file>` the mapping is applied by the output's layout (`layout.rs`); in a
//! `<feedback-loop-processor>` or `<bounce-processor>` by the processor, from the headers of the
//! original message included in the report, for every accounting file.

use crate::config::settings::Settings;
use crate::config::value::Value;
use crate::config::{Dir, tree::suggest};

use super::{AcctError, RecordType};

/// One `map-header-to-field` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderMapping {
    pub kind: RecordType,
    /// The header's name, without `header_`.
    pub header: String,
    pub field: MappedField,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MappedField {
    /// One of the accounting fields Ember writes (canonical spelling).
    Known(&'static str),
    /// A column named by the operator.
    Custom(String),
}

/// Every field a record type may carry, canonical spelling (`type` excluded: it is always the
/// record's type).
pub fn known_field(name: &str) -> Option<&'static str> {
    RecordType::ALL
        .iter()
        .flat_map(|t| t.fields().iter())
        .chain(super::layout::KNOWN_EXTRA_FIELDS.iter())
        .find(|f| f.eq_ignore_ascii_case(name) && **f != "type")
        .copied()
}

/// The `map-header-to-field` lines of a block. `custom` says whether FIELD may be a new column.
pub fn from_settings(settings: &Settings, custom: bool) -> Result<Vec<HeaderMapping>, AcctError> {
    let mut out = Vec::new();
    for entry in settings.all(Dir::MapHeaderToField) {
        let Value::Words(words) = &entry.value else { continue };
        let [kinds, header, field] = words.as_slice() else { continue };
        let name = header
            .strip_prefix("header_")
            .or_else(|| header.strip_prefix("HEADER_"))
            .filter(|h| !h.is_empty() && !h.contains(|c: char| c.is_whitespace() || c == ':'))
            .ok_or_else(|| AcctError::MappedHeader(header.clone()))?;
        let field = match known_field(field) {
            Some(f) => MappedField::Known(f),
            None if field.eq_ignore_ascii_case("type") => {
                return Err(AcctError::MappedType);
            }
            None if custom && field.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') => {
                MappedField::Custom(field.clone())
            }
            None => {
                let all = RecordType::ALL.iter().flat_map(|t| t.fields().iter().copied());
                return Err(AcctError::MappedField { field: field.clone(), hint: suggest(field, all) });
            }
        };
        for kind in kinds.split(',').map(str::trim).filter(|k| !k.is_empty()) {
            let kind = RecordType::parse(kind).ok_or_else(|| AcctError::MappedRecordType(kind.to_string()))?;
            out.push(HeaderMapping { kind, header: name.to_string(), field: field.clone() });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{FileCheck, load_str};

    fn mappings(lines: &str, custom: bool) -> Result<Vec<HeaderMapping>, AcctError> {
        let dir = tempfile::tempdir().unwrap();
        let text = format!("<acct-file {}/a.csv>\n{lines}</acct-file>\n", dir.path().display());
        let loaded = load_str("m.conf", &text, dir.path(), FileCheck::Warn);
        assert!(!loaded.diagnostics.has_errors(), "{:?}", loaded.diagnostics.sorted());
        let block = loaded.config.blocks_of("acct-file").next().unwrap().settings.clone();
        from_settings(&block, custom)
    }

    #[test]
    fn known_and_custom_fields() {
        let m = mappings(
            " map-header-to-field f,rb header_X-Campaign jobid\n map-header-to-field r header_X-Customer customerId\n",
            true,
        )
        .unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(
            m[0],
            HeaderMapping {
                kind: RecordType::FeedbackLoop,
                header: "X-Campaign".into(),
                field: MappedField::Known("jobId")
            }
        );
        assert_eq!(m[1].kind, RecordType::RemoteBounce);
        assert_eq!(m[2].field, MappedField::Custom("customerId".into()));
        let e = mappings(" map-header-to-field r header_X-Customer customerId\n", false).unwrap_err().to_string();
        assert!(e.contains("unknown field"), "{e}");
        let e = mappings(" map-header-to-field d X-Customer jobId\n", true).unwrap_err().to_string();
        assert!(e.contains("header_NAME"), "{e}");
        let e = mappings(" map-header-to-field q header_X jobId\n", true).unwrap_err().to_string();
        assert!(e.contains("record type"), "{e}");
    }
}
