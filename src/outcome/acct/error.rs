//! Why accounting output could not be configured, opened, written or rotated.

use std::io;
use std::path::PathBuf;

/// The texts are what the operator has always read: configuration errors at load, `ember rotate
/// acct` replies and the writer's log lines.
#[derive(Debug, thiserror::Error)]
pub enum AcctError {
    /// An error in the `<acct-file>` block `name` (`<acct-file /var/log/acct.csv>`).
    #[error("{name}: {source}")]
    Block {
        name: String,
        #[source]
        source: Box<AcctError>,
    },
    #[error("{name}: the file is named by two <acct-file> blocks")]
    SameFile { name: String },

    #[error("records: unknown record type {0:?} (d, b, t, tq, r, f, rb, rs or their long names)")]
    RecordType(String),
    #[error("record-fields: unknown record type {0:?}")]
    RecordFieldsType(String),
    /// A bad FIELDLIST of `record-fields` for the record type with code `kind`.
    #[error("record-fields {kind}: {source}")]
    RecordFields {
        kind: &'static str,
        #[source]
        source: Box<AcctError>,
    },
    #[error("expected a list of fields like timeLogged,orig,rcpt or *")]
    EmptyFieldList,
    #[error("{0:?} is not a header field name")]
    NotAHeader(String),
    /// `hint` is the " (did you mean …?)" suffix, empty without a close match.
    #[error("unknown field {name:?}{hint}")]
    UnknownField { name: String, hint: String },

    #[error("map-header-to-field: {0:?} is not header_NAME")]
    MappedHeader(String),
    #[error("map-header-to-field: the type field cannot be mapped")]
    MappedType,
    #[error("map-header-to-field: unknown field {field:?}{hint}")]
    MappedField { field: String, hint: String },
    #[error("map-header-to-field: unknown record type {0:?}")]
    MappedRecordType(String),

    #[error("queue-filter: {text:?} is not a valid pattern: {source}")]
    QueueFilter {
        text: String,
        #[source]
        source: glob::PatternError,
    },

    #[error("privacy-policy: expected retain, redact [STR], siphash KEY or hmac-sha256 KEY")]
    PrivacyWords,
    #[error("privacy-policy redact: {0:?} must not contain '@'")]
    RedactionAt(String),
    #[error("privacy-policy {0}: a KEY is required")]
    KeyRequired(String),
    #[error("privacy-policy retain takes no argument, not {0:?}")]
    RetainArgument(String),
    #[error("privacy-policy: unknown policy {0:?} (retain, redact, siphash or hmac-sha256)")]
    UnknownPolicy(String),
    /// The key's length in characters.
    #[error("privacy-policy siphash: the key must be 32 hex digits or 16 characters, not {0} characters")]
    SipHashKey(usize),

    /// `action` is the verb: open, read, write to, sync, rename, truncate.
    #[error("cannot {action} {}: {source}", path.display())]
    File {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot start the writer: {0}")]
    Thread(#[source] io::Error),
    #[error("the writer of {} has stopped", .0.display())]
    WriterGone(PathBuf),
    #[error("the accounting writer has stopped")]
    Stopped,

    #[error("Error starting \"{command}\": {source}")]
    PipeStart {
        command: String,
        #[source]
        source: io::Error,
    },
    #[error("Error starting \"{command}\": no stdin")]
    PipeStdin { command: String },
    #[error("Error writing to \"{command}\"")]
    PipeHeader { command: String },
}

impl AcctError {
    pub(super) fn file(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> AcctError {
        AcctError::File { action, path: path.into(), source }
    }

    pub(super) fn in_block(self, name: &str) -> AcctError {
        AcctError::Block { name: name.to_string(), source: Box::new(self) }
    }
}
