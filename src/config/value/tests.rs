//! Parsing and printing of typed directive values.

use super::*;
use crate::config::diag::Location;

/// The tokens of a value as the lexer gives them, with their columns (the value starts at
/// column 10).
fn tokens(text: &str) -> (Vec<Token>, Token) {
    let file: Arc<str> = Arc::from("t.conf");
    let mut diags = crate::config::Diagnostics::default();
    let lines = crate::config::lexer::lex(&file, &format!("directive {text}"), &mut diags);
    assert!(diags.is_empty(), "{diags}");
    match lines.into_iter().next() {
        Some(crate::config::lexer::Line::Directive { args, rest, .. }) => (args, rest),
        other => panic!("{other:?}"),
    }
}

fn parse(ty: ValueType, text: &str) -> Result<Value, ValueError> {
    let (args, rest) = tokens(text);
    parse_value(ty, 1, &args, &rest)
}

#[test]
fn true_and_false_for_yes_and_no_enums() {
    const YES_NO: &[&str] = &["no", "yes", "override"];
    assert!(matches!(parse(ValueType::Enum(YES_NO), "true"), Ok(Value::Text(t)) if t == "yes"));
    assert!(matches!(parse(ValueType::Enum(YES_NO), "False"), Ok(Value::Text(t)) if t == "no"));
    assert!(parse(ValueType::Enum(&["a", "b"]), "true").is_err());
}

#[test]
fn a_number_or_auto() {
    assert!(matches!(parse(ValueType::UintOrAuto, "AUTO"), Ok(Value::Text(t)) if t == "auto"));
    assert!(matches!(parse(ValueType::UintOrAuto, "250000"), Ok(Value::Uint(250_000))));
    assert!(parse(ValueType::UintOrAuto, "lots").is_err());
    assert!(parse(ValueType::UintOrAuto, "-1").is_err());
}

#[test]
fn spaces_around_commas_join_a_list_in_every_type() {
    let shown = |ty, text| parse(ty, text).map(|v| v.to_string()).unwrap_or_else(|e| panic!("{text}: {e:?}"));
    assert_eq!(shown(ValueType::Words { min: 2, max: 2 }, "d timeLogged, orig, rcpt"), "d timeLogged,orig,rcpt");
    assert_eq!(shown(ValueType::Words { min: 2, max: 2 }, "a@x b@y, c@z"), "a@x b@y,c@z");
    assert_eq!(shown(ValueType::HttpAccess, "10/8 monitor, deny-logs"), "10.0.0.0/8 monitor,deny-logs");
    assert_eq!(shown(ValueType::HttpAccess, "10/8 monitor ,deny-logs"), "10.0.0.0/8 monitor,deny-logs");
    assert_eq!(shown(ValueType::HttpAccess, "10/8 monitor , deny-logs"), "10.0.0.0/8 monitor,deny-logs");
    assert_eq!(shown(ValueType::List, "a, b,c"), "a,b,c");
    // A comma inside quotes is text, not a list separator.
    assert!(parse(ValueType::Words { min: 2, max: 2 }, "a \"b,\" c").is_err());
    // Free text keeps what was written.
    assert_eq!(shown(ValueType::Text, "Mail Delivery, Inc"), "\"Mail Delivery, Inc\"");
}

#[test]
fn a_joined_value_is_reported_at_its_first_word() {
    let e = parse(ValueType::Uint, "20, 30").unwrap_err();
    assert_eq!((e.col, e.message.as_str()), (11, "expected a whole number, found \"20,30\""));
}

#[test]
fn listener_address_and_source() {
    let words = |text| match parse(ValueType::Listener, text) {
        Ok(Value::Words(w)) => w,
        other => panic!("{text}: {other:?}"),
    };
    assert_eq!(words("0/0:25"), ["0/0:25"]);
    assert_eq!(words("127.0.0.1:2525 source=feeder"), ["127.0.0.1:2525", "source=feeder"]);
    assert_eq!(words("[::1]:25 Source=feeder"), ["[::1]:25", "source=feeder"]);
    let err = |text| {
        let e = parse(ValueType::Listener, text).unwrap_err();
        (e.col, e.message)
    };
    // "directive " is 10 characters: the value starts at column 11.
    assert_eq!(err("127.0.0.1:99999"), (21, "port 99999 is out of range (0-65535)".to_string()));
    assert_eq!(
        err("127.0.0.1:2525 feeder"),
        (26, "expected source=NAME or tls=yes|no after the address, found \"feeder\"".into())
    );
    assert_eq!(
        err("127.0.0.1:2525 source="),
        (26, "expected source=NAME or tls=yes|no after the address, found \"source=\"".into())
    );
    assert_eq!(err("127.0.0.1:2525 source=a b").0, 35);
    assert_eq!(err("127.0.0.1").0, 11);
    assert_eq!(err("127.0.0.1:465 tls=maybe").0, 25);
    let words = |text: &str| match parse(ValueType::Listener, text) {
        Ok(Value::Words(w)) => w,
        other => panic!("{other:?}"),
    };
    assert_eq!(words("0/0:465 tls=yes source=feeder"), ["0/0:465", "source=feeder", "tls=yes"]);
    assert_eq!(words("0/0:25 tls=no"), ["0/0:25"]);
    let missing = parse_value(ValueType::Listener, 1, &[], &Token::bare("", Location::new(&Arc::from("t"), 1, 1)));
    assert_eq!(missing.unwrap_err().message, "missing value: expected ADDRESS:PORT [source=NAME] [tls=yes|no]");
}

#[test]
fn rule_errors_point_into_the_rule() {
    let e = parse(ValueType::BackoffRule, "421 RP-001 *, soon, 5, 1000").unwrap_err();
    assert_eq!(e.col, 25);
    let e = parse(ValueType::PatternEntry, "/x/ vmta=v1").unwrap_err();
    assert_eq!(e.col, 15);
}
