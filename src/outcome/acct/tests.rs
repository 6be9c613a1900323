//! Accounting stories: a config is written, records go through `Accounting`, and the files are
//! read back with the `csv` crate. The clock is injected; nothing sleeps except the pipe test,
//! which waits for the child process.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::*;
use crate::config::{FileCheck, load_str};

/// 2007-09-04 23:59:00 UTC.
const T0: u64 = 1_188_950_340;
/// 2007-09-05 00:00:00 UTC.
const MIDNIGHT: u64 = 1_188_950_400;

struct Story {
    dir: tempfile::TempDir,
    now: Arc<AtomicU64>,
}

impl Story {
    fn new() -> Story {
        Story { dir: tempfile::tempdir().unwrap(), now: Arc::new(AtomicU64::new(T0)) }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn set_time(&self, t: u64) {
        self.now.store(t, Ordering::SeqCst);
    }

    fn config(&self, text: &str) -> Config {
        let text = text.replace("DIR", self.dir.path().to_str().unwrap());
        let loaded = load_str("t.conf", &text, self.dir.path(), FileCheck::Warn);
        assert!(!loaded.diagnostics.has_errors(), "{:?}", loaded.diagnostics);
        loaded.config
    }

    fn open(&self, text: &str) -> Accounting {
        let now = Arc::clone(&self.now);
        Accounting::open_with_clock(&self.config(text), Arc::new(move || now.load(Ordering::SeqCst))).unwrap()
    }

    fn open_err(&self, text: &str) -> String {
        let now = Arc::clone(&self.now);
        match Accounting::open_with_clock(&self.config(text), Arc::new(move || now.load(Ordering::SeqCst))) {
            Ok(_) => panic!("opened"),
            Err(e) => e.to_string(),
        }
    }

    /// (header, rows) of a CSV file.
    fn read(&self, name: &str) -> (Vec<String>, Vec<Vec<String>>) {
        read_csv(&self.path(name))
    }

    fn files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }
}

fn read_csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let mut reader = csv::ReaderBuilder::new().flexible(false).from_path(path).unwrap();
    let header = reader.headers().unwrap().iter().map(str::to_string).collect();
    let rows = reader.records().map(|r| r.unwrap().iter().map(str::to_string).collect()).collect();
    (header, rows)
}

/// The value of `column` in `row`.
fn col<'a>(header: &[String], row: &'a [String], column: &str) -> &'a str {
    let i = header.iter().position(|h| h == column).unwrap_or_else(|| panic!("no column {column} in {header:?}"));
    &row[i]
}

fn delivered_facts() -> DeliveryFacts<'static> {
    DeliveryFacts {
        time_logged: 1_549_662_845,
        time_queued: 1_549_662_840,
        time_first_attempt: Some(1_549_662_844),
        orig: "AA-D=1181.com@bounce.bar.com",
        rcpt: "D@1181.com",
        orcpt: "",
        status: "2.0.0",
        diag: "smtp;250 DATA ok",
        remote_host: "mx.1181.com",
        remote_ip: Some("10.1.2.3".parse().unwrap()),
        bounce_cat: "success",
        src_type: "api",
        src_helo: "foo.int.port25.com",
        src_ip: Some("127.0.0.1".parse().unwrap()),
        dlv_type: "smtp",
        dlv_source_ip: Some("10.1.2.4".parse().unwrap()),
        esmtp_available: "ENHANCEDSTATUSCODES,8BITMIME,SMTPUTF8",
        size: Some(41159),
        vmta: "vmta48",
        vmta_pool: "pool1",
        queue: "1181.com/vmta48",
        job_id: "JoBID29546016861868",
        env_id: "",
        tls_protocol: "TLSv1.3",
        tls_cipher: "TLS13_AES_256_GCM_SHA384",
        message_id: None,
    }
}

fn bounced_facts() -> DeliveryFacts<'static> {
    DeliveryFacts {
        time_logged: 1_549_662_821,
        time_queued: 1_549_662_800,
        orig: "CB-A=yahoo.com@bounce.bar.com",
        rcpt: "A@yahoo.com",
        status: "5.7.1",
        diag: "smtp;554 5.7.1 Denied - Spam Suspected",
        remote_host: "foo.int.bar.com",
        remote_ip: Some("10.1.2.3".parse().unwrap()),
        bounce_cat: "spam-related",
        src_type: "api",
        src_helo: "feeder",
        src_ip: Some("127.0.0.1".parse().unwrap()),
        dlv_source_ip: Some("10.1.2.4".parse().unwrap()),
        vmta: "vmta18",
        queue: "yahoo.rollup/vmta18",
        ..DeliveryFacts::default()
    }
}

const D_FIELDS: &str = "type,timeLogged,timeQueued,orig,rcpt,orcpt,dsnAction,dsnStatus,dsnDiag,dsnMta,bounceCat,srcType,srcMta,dlvType,dlvSourceIp,dlvDestinationIp,dlvEsmtpAvailable,dlvSize,vmta,jobId,envId,queue,vmtaPool";

#[test]
fn default_file_has_powermta_columns_and_values() {
    let s = Story::new();
    let acct = s.open("<acct-file DIR/acct.csv>\n</acct-file>\n");
    assert!(acct.wants(RecordType::Delivery) && acct.wants(RecordType::Bounce));
    assert!(!acct.wants(RecordType::Transient) && !acct.wants(RecordType::Receipt));
    acct.write(&Record::delivery(RecordType::Delivery, &delivered_facts()));
    acct.write(&Record::delivery(RecordType::Bounce, &bounced_facts()));
    acct.write(&Record::delivery(RecordType::Transient, &bounced_facts())); // not taken
    acct.flush();

    let (header, rows) = s.read("acct.csv");
    assert_eq!(header.join(","), D_FIELDS);
    assert_eq!(rows.len(), 2);
    assert_eq!(
        rows[0].join("|"),
        "d|2019-02-08 21:54:05+0000|2019-02-08 21:54:00+0000|AA-D=1181.com@bounce.bar.com|D@1181.com||relayed|\
         2.0.0 (success)|smtp;250 DATA ok|mx.1181.com (10.1.2.3)||api|foo.int.port25.com (127.0.0.1)|smtp|10.1.2.4|\
         10.1.2.3|ENHANCEDSTATUSCODES,8BITMIME,SMTPUTF8|41159|vmta48|JoBID29546016861868||1181.com/vmta48|pool1"
    );
    // b records: the category; no source MTA or delivery columns.
    let b = &rows[1];
    assert_eq!(col(&header, b, "type"), "b");
    assert_eq!(col(&header, b, "dsnAction"), "failed");
    assert_eq!(col(&header, b, "dsnStatus"), "5.7.1 (delivery not authorized)");
    assert_eq!(col(&header, b, "dsnMta"), "foo.int.bar.com (10.1.2.3)");
    assert_eq!(col(&header, b, "bounceCat"), "spam-related");
    assert_eq!(col(&header, b, "srcType"), "api");
    for empty in ["srcMta", "dlvSourceIp", "dlvDestinationIp", "dlvEsmtpAvailable", "dlvSize", "dlvType"] {
        assert_eq!(col(&header, b, empty), "", "{empty}");
    }
    // The raw file quotes the comma-separated extension list, one record a line.
    let raw = std::fs::read_to_string(s.path("acct.csv")).unwrap();
    assert!(raw.contains(",\"ENHANCEDSTATUSCODES,8BITMIME,SMTPUTF8\",41159,"), "{raw}");
    assert_eq!(raw.lines().count(), 3);
}

#[test]
fn record_fields_choose_each_types_columns() {
    let s = Story::new();
    // The user guide's example: the file's columns are the union, each type fills its own.
    let acct = s.open(
        "<acct-file DIR/acct.csv>\n records d, b\n record-fields delivery timeLogged,orig,rcpt,dlvSourceIp\n \
         record-fields bounce timeLogged,orig,rcpt,bounceCat\n</acct-file>\n",
    );
    acct.write(&Record::delivery(RecordType::Delivery, &delivered_facts()));
    acct.write(&Record::delivery(RecordType::Bounce, &bounced_facts()));
    acct.flush();
    let raw = std::fs::read_to_string(s.path("acct.csv")).unwrap();
    assert_eq!(
        raw,
        "type,timeLogged,orig,rcpt,dlvSourceIp,bounceCat\n\
         d,2019-02-08 21:54:05+0000,AA-D=1181.com@bounce.bar.com,D@1181.com,10.1.2.4,\n\
         b,2019-02-08 21:53:41+0000,CB-A=yahoo.com@bounce.bar.com,A@yahoo.com,,spam-related\n"
    );
}

#[test]
fn record_fields_star_exclusions_extras_and_headers() {
    let s = Story::new();
    let acct = s.open(
        "<acct-file DIR/acct.csv>\n records d,t,tq\n record-fields d *,!orcpt,!vmtaPool,dlvTlsProtocol,dlvTlsCipher,header_X-Job,totalSecondsQueued,timeFirstAttempt\n \
         record-fields t !orcpt,!dlvEsmtpAvailable\n</acct-file>\n",
    );
    assert_eq!(acct.wanted_headers(), ["X-Job"]);
    let message =
        b"From: a@example.com\r\nx-job: spring\r\n sale\r\nX-Job: second\r\nSubject: s\r\n\r\nX-Job: body\r\n";
    let d = Record::delivery(RecordType::Delivery, &delivered_facts()).headers_from(message, acct.wanted_headers());
    acct.write(&d);
    acct.write(&Record::delivery(RecordType::Transient, &bounced_facts()));
    acct.write(&Record::delivery(
        RecordType::TransientQueue,
        &DeliveryFacts {
            time_logged: 1_549_662_819,
            queue: "bücher.de/vmta29",
            vmta: "vmta29",
            status: "4.4.1",
            diag: "",
            remote_host: "mx.xn--bcher-kva.de",
            remote_ip: Some("87.98.150.101".parse().unwrap()),
            dlv_source_ip: Some("0.0.0.0".parse().unwrap()),
            ..DeliveryFacts::default()
        },
    ));
    acct.flush();
    let (header, rows) = s.read("acct.csv");
    let mut d_columns: Vec<&str> =
        D_FIELDS.split(',').filter(|f| *f != "orcpt" && *f != "vmtaPool").collect::<Vec<_>>();
    d_columns.extend(["dlvTlsProtocol", "dlvTlsCipher", "header_X-Job", "totalSecondsQueued", "timeFirstAttempt"]);
    // t adds vmtaPool back (its own defaults, less orcpt); tq adds userString.
    let mut expected = d_columns.clone();
    expected.extend(["vmtaPool", "userString"]);
    assert_eq!(header, expected);
    let (d, t, tq) = (&rows[0], &rows[1], &rows[2]);
    assert_eq!(col(&header, d, "header_X-Job"), "spring sale");
    assert_eq!(col(&header, d, "dlvTlsProtocol"), "TLSv1.3");
    assert_eq!(col(&header, d, "totalSecondsQueued"), "5");
    assert_eq!(col(&header, d, "timeFirstAttempt"), "2019-02-08 21:54:04+0000");
    assert_eq!(col(&header, d, "vmtaPool"), "", "excluded from d");
    assert_eq!(col(&header, t, "dsnAction"), "delayed");
    assert_eq!(col(&header, t, "dlvEsmtpAvailable"), "");
    assert_eq!(col(&header, t, "header_X-Job"), "", "not a t field");
    assert_eq!(col(&header, t, "bounceCat"), "spam-related");
    assert_eq!(col(&header, tq, "type"), "tq");
    assert_eq!(col(&header, tq, "queue"), "bücher.de/vmta29");
    assert_eq!(col(&header, tq, "dsnStatus"), "4.4.1 (no answer from host)");
    assert_eq!(col(&header, tq, "dsnMta"), "mx.xn--bcher-kva.de (87.98.150.101)");
    assert_eq!(col(&header, tq, "dlvSourceIp"), "0.0.0.0");
    assert_eq!(col(&header, tq, "dlvType"), "smtp");
    assert_eq!(col(&header, tq, "rcpt"), "", "not a tq field");
}

#[test]
fn bad_record_fields_and_types_are_refused_with_the_file_named() {
    let s = Story::new();
    let e = s.open_err("<acct-file DIR/a.csv>\n record-fields d timeLoged,rcpt\n</acct-file>\n");
    assert!(e.contains("a.csv>: record-fields d: unknown field \"timeLoged\" (did you mean \"timeLogged\"?)"), "{e}");
    let e = s.open_err("<acct-file DIR/b.csv>\n records d,x\n</acct-file>\n");
    assert!(e.contains("b.csv>: records: unknown record type \"x\""), "{e}");
    let e = s.open_err("<acct-file DIR/c.csv>\n record-fields z *\n</acct-file>\n");
    assert!(e.contains("c.csv>: record-fields: unknown record type \"z\""), "{e}");
    let e = s.open_err("<acct-file DIR/d.csv>\n queue-filter [oops\n</acct-file>\n");
    assert!(e.contains("queue-filter"), "{e}");
}

#[test]
fn iso_times_no_writes_unix_times_even_for_text_set_times() {
    let s = Story::new();
    let acct = s.open("<acct-file DIR/acct.csv>\n records r,d\n iso-times no\n</acct-file>\n");
    // The ingress code sets timeLogged as text.
    acct.write(&Record::new(RecordType::Receipt).set("timeLogged", "2019-02-08 21:54:05+0000").set("rcpt", "x@y"));
    acct.write(&Record::delivery(RecordType::Delivery, &delivered_facts()));
    acct.flush();
    let (header, rows) = s.read("acct.csv");
    assert!(header.join(",").starts_with("type,timeLogged,orig,rcpt,orcpt,srcType,srcMta,rcvSourceIp"));
    assert_eq!(col(&header, &rows[0], "timeLogged"), "1549662845");
    assert_eq!(col(&header, &rows[1], "timeLogged"), "1549662845");
    assert_eq!(col(&header, &rows[1], "timeQueued"), "1549662840");
}

#[test]
fn user_string_fills_the_user_string_column() {
    let s = Story::new();
    let acct = s.open("<acct-file DIR/acct.csv>\n records d,tq\n user-string \"node 7\"\n</acct-file>\n");
    acct.write(&Record::delivery(RecordType::Delivery, &delivered_facts()));
    acct.flush();
    let (header, rows) = s.read("acct.csv");
    assert_eq!(header.last().map(String::as_str), Some("userString"));
    assert_eq!(col(&header, &rows[0], "userString"), "node 7");
}

#[test]
fn queue_filter_keeps_or_drops_queues() {
    let s = Story::new();
    let only = s.open("<acct-file DIR/only.csv>\n records d,r\n queue-filter gmail.com, */vmta2\n</acct-file>\n");
    let except = s.open("<acct-file DIR/except.csv>\n queue-filter !*.rollup, !hotmail.com/vmta1\n</acct-file>\n");
    let mut facts = delivered_facts();
    for queue in ["gmail.com/vmta1", "GMAIL.com/{default}", "yahoo.rollup/vmta2", "hotmail.com/vmta1", "aol.com/vmta1"]
    {
        facts.queue = queue;
        only.write(&Record::delivery(RecordType::Delivery, &facts));
        except.write(&Record::delivery(RecordType::Delivery, &facts));
    }
    only.write(&Record::new(RecordType::Receipt).set("rcpt", "r@x"));
    only.flush();
    except.flush();
    let queues = |name| {
        let (h, rows) = s.read(name);
        rows.iter().map(|r| format!("{}:{}", col(&h, r, "type"), col(&h, r, "queue"))).collect::<Vec<_>>()
    };
    assert_eq!(queues("only.csv"), ["d:gmail.com/vmta1", "d:GMAIL.com/{default}", "d:yahoo.rollup/vmta2", "r:"]);
    assert_eq!(queues("except.csv"), ["d:gmail.com/vmta1", "d:GMAIL.com/{default}", "d:aol.com/vmta1"]);
}

#[test]
fn per_queue_disable_and_log_delivery_failures() {
    let s = Story::new();
    let acct = s.open("<acct-file DIR/acct.csv>\n</acct-file>\n<acct-file DIR/t.csv>\n records t\n</acct-file>\n");
    let config = s.config(
        "<domain quiet.example>\n disable-acct-records d,t\n</domain>\n<domain loud.example>\n log-delivery-failures yes\n</domain>\n",
    );
    let quiet = QueueAcct::from_settings(&config.domains[0].settings);
    let loud = QueueAcct::from_settings(&config.domains[1].settings);
    assert_eq!(quiet, QueueAcct { disabled: vec![RecordType::Delivery, RecordType::Transient], log_failures: false });
    assert!(loud.log_failures);
    assert!(!acct.wants_for(RecordType::Delivery, &quiet) && acct.wants_for(RecordType::Bounce, &quiet));
    assert!(!acct.wants_for(RecordType::Transient, &quiet));
    assert!(acct.wants_for(RecordType::Transient, &loud));

    let mut t = bounced_facts();
    t.queue = "quiet.example/vmta1";
    acct.write_for(&Record::delivery(RecordType::Delivery, &delivered_facts()), &quiet);
    acct.write_for(&Record::delivery(RecordType::Transient, &t), &quiet);
    acct.write_for(&Record::delivery(RecordType::Bounce, &t), &quiet);
    t.queue = "loud.example/vmta1";
    acct.write_for(&Record::delivery(RecordType::Transient, &t), &loud);
    acct.write_for(&Record::delivery(RecordType::Transient, &t), &QueueAcct::default());
    acct.flush();
    let summary = |name| {
        let (h, rows) = s.read(name);
        rows.iter().map(|r| format!("{}:{}", col(&h, r, "type"), col(&h, r, "queue"))).collect::<Vec<_>>()
    };
    // The d,b file gets the loud queue's t record, in the d/b columns.
    assert_eq!(summary("acct.csv"), ["b:quiet.example/vmta1", "t:loud.example/vmta1"]);
    assert_eq!(summary("t.csv"), ["t:loud.example/vmta1", "t:loud.example/vmta1"]);
}

#[test]
fn rotation_by_size() {
    let s = Story::new();
    let acct = s.open("<acct-file DIR/acct.csv>\n max-size 1M\n</acct-file>\n");
    let record = Record::delivery(RecordType::Delivery, &delivered_facts());
    let row_len = {
        acct.write(&record);
        acct.flush();
        let (h, _) = s.read("acct.csv");
        std::fs::metadata(s.path("acct.csv")).unwrap().len() as usize - (h.join(",").len() + 1)
    };
    let needed = (1 << 20) / row_len + 1;
    s.set_time(T0 - 3600 + 180); // 23:02, well before midnight
    for _ in 1..needed {
        acct.write(&record);
    }
    acct.flush();
    assert_eq!(s.files(), ["acct-2007-09-04-2302.csv", "acct.csv"]);
    let (_, rotated) = s.read("acct-2007-09-04-2302.csv");
    assert_eq!(rotated.len(), needed);
    assert!(std::fs::metadata(s.path("acct-2007-09-04-2302.csv")).unwrap().len() >= 1 << 20);
    let (header, rows) = s.read("acct.csv");
    assert_eq!(header.join(","), D_FIELDS);
    assert!(rows.is_empty());
    acct.write(&record);
    acct.flush();
    assert_eq!(s.read("acct.csv").1.len(), 1);
}

#[test]
fn rotation_by_time_at_midnight_even_when_idle() {
    let s = Story::new();
    let acct = s.open("<acct-file DIR/acct.csv>\n move-interval 1d\n</acct-file>\n");
    acct.write(&Record::delivery(RecordType::Delivery, &delivered_facts()).set("rcpt", "before@midnight"));
    acct.flush();
    s.set_time(MIDNIGHT + 30);
    acct.write(&Record::delivery(RecordType::Delivery, &delivered_facts()).set("rcpt", "after@midnight"));
    acct.flush();
    assert_eq!(s.files(), ["acct-2007-09-05-0000.csv", "acct.csv"]);
    let (_, old) = s.read("acct-2007-09-05-0000.csv");
    let (header, new) = s.read("acct.csv");
    assert_eq!(header.join(","), D_FIELDS);
    assert_eq!(old.iter().map(|r| r[4].as_str()).collect::<Vec<_>>(), ["before@midnight"]);
    assert_eq!(new.iter().map(|r| r[4].as_str()).collect::<Vec<_>>(), ["after@midnight"]);

    // The next midnight passes with no record written after it: the file still moves.
    s.set_time(MIDNIGHT + 86_400 + 5);
    acct.flush();
    assert_eq!(s.files(), ["acct-2007-09-05-0000.csv", "acct-2007-09-06-0000.csv", "acct.csv"]);
    // And a day with no records at all leaves no empty rotated file behind.
    s.set_time(MIDNIGHT + 2 * 86_400 + 5);
    acct.flush();
    assert_eq!(s.files().len(), 3);
    assert!(s.read("acct.csv").1.is_empty());
}

#[test]
fn manual_rotation_move_to_and_delete_after() {
    let s = Story::new();
    std::fs::create_dir(s.path("old")).unwrap();
    // Rotated files from earlier days, and files that only look similar.
    for name in [
        "acct-2007-08-20-0000.csv",
        "acct-2007-09-03-0000.csv",
        "acct-2007-09-03-0000-1.csv",
        "acct-2007-09-04-1200.csv",
        "acct-notes.csv",
        "other-2007-08-01-0000.csv",
    ] {
        std::fs::write(s.path("old").join(name), "x\n").unwrap();
    }
    let acct = s.open("<acct-file DIR/acct.csv>\n move-to DIR/old\n delete-after 1d\n</acct-file>\n");
    // Opening already applies delete-after (now is 2007-09-04 23:59).
    let mut left: Vec<String> =
        std::fs::read_dir(s.path("old")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    left.sort();
    assert_eq!(left, ["acct-2007-09-04-1200.csv", "acct-notes.csv", "other-2007-08-01-0000.csv"]);

    // Nothing to rotate: nothing moves.
    assert_eq!(acct.rotate().unwrap(), Vec::<PathBuf>::new());
    acct.write(&Record::delivery(RecordType::Delivery, &delivered_facts()));
    s.set_time(MIDNIGHT - 20);
    let moved = acct.rotate().unwrap();
    assert_eq!(moved, [s.path("old").canonicalize().unwrap().join("acct-2007-09-04-2359.csv")]);
    assert_eq!(read_csv(&moved[0]).1.len(), 1);
    assert!(s.read("acct.csv").1.is_empty());
    // Rotating again within the same minute does not overwrite.
    acct.write(&Record::delivery(RecordType::Delivery, &delivered_facts()));
    let again = acct.rotate().unwrap();
    assert!(again[0].ends_with("acct-2007-09-04-2359-1.csv"), "{again:?}");
    // A day later the 12:00 file goes.
    s.set_time(MIDNIGHT + 12 * 3600 + 60);
    acct.write(&Record::delivery(RecordType::Delivery, &delivered_facts()));
    acct.rotate().unwrap();
    assert!(!s.path("old/acct-2007-09-04-1200.csv").exists());
    assert!(s.path("old/acct-2007-09-04-2359.csv").exists());
    assert!(s.path("old/acct-notes.csv").exists());
}

#[test]
fn world_readable_sets_the_mode() {
    let s = Story::new();
    let _a = s.open(
        "<acct-file DIR/private.csv>\n</acct-file>\n<acct-file DIR/public.csv>\n world-readable yes\n</acct-file>\n",
    );
    let mode = |n| std::fs::metadata(s.path(n)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("private.csv"), 0o640);
    assert_eq!(mode("public.csv"), 0o644);
}

#[test]
fn sync_writes_and_reads_back() {
    let s = Story::new();
    let acct = s.open("<acct-file DIR/acct.csv>\n sync yes\n</acct-file>\n");
    acct.write(&Record::delivery(RecordType::Delivery, &delivered_facts()));
    acct.flush();
    assert_eq!(s.read("acct.csv").1.len(), 1);
}

#[test]
fn reload_shares_the_writer_and_new_columns_start_a_new_file() {
    let s = Story::new();
    let first = s.open("<acct-file DIR/acct.csv>\n</acct-file>\n");
    first.write(&Record::delivery(RecordType::Delivery, &delivered_facts()));
    first.flush();
    // A reload with the same columns: same file, no second header.
    let same = s.open("<acct-file DIR/acct.csv>\n</acct-file>\n");
    same.write(&Record::delivery(RecordType::Delivery, &delivered_facts()));
    first.write(&Record::delivery(RecordType::Delivery, &delivered_facts()));
    same.flush();
    first.flush();
    assert_eq!(s.files(), ["acct.csv"]);
    assert_eq!(s.read("acct.csv").1.len(), 3);

    // Different columns: the old file is moved away; records of the old generation now follow
    // the new layout.
    s.set_time(T0 + 30);
    let narrow = s.open("<acct-file DIR/acct.csv>\n record-fields d timeLogged,rcpt\n</acct-file>\n");
    first.write(&Record::delivery(RecordType::Delivery, &delivered_facts()));
    narrow.write(&Record::delivery(RecordType::Bounce, &bounced_facts()));
    first.flush();
    narrow.flush();
    assert_eq!(s.files(), ["acct-2007-09-04-2359.csv", "acct.csv"]);
    assert_eq!(s.read("acct-2007-09-04-2359.csv").1.len(), 3);
    let (header, rows) = s.read("acct.csv");
    let mut expected = vec!["type", "timeLogged", "rcpt"];
    expected.extend(D_FIELDS.split(',').filter(|f| !["type", "timeLogged", "rcpt"].contains(f)));
    assert_eq!(header, expected);
    assert_eq!(rows.len(), 2);
    assert_eq!(col(&header, &rows[0], "orig"), "", "the d layout is now timeLogged,rcpt");
    assert_eq!(col(&header, &rows[1], "orig"), "CB-A=yahoo.com@bounce.bar.com");

    // A file left by another configuration (or version) with other columns is moved aside.
    drop((first, same, narrow));
    std::fs::write(s.path("other.csv"), "type,timeLogged\nd,1\n").unwrap();
    let fresh = s.open("<acct-file DIR/other.csv>\n</acct-file>\n");
    fresh.flush();
    assert!(s.files().contains(&"other-2007-09-04-2359.csv".to_string()), "{:?}", s.files());
    assert_eq!(s.read("other.csv").0.join(","), D_FIELDS);
}

#[test]
fn a_file_moved_away_behind_our_back_is_recreated() {
    let s = Story::new();
    let acct = s.open("<acct-file DIR/acct.csv>\n</acct-file>\n");
    acct.write(&Record::delivery(RecordType::Delivery, &delivered_facts()));
    acct.flush();
    std::fs::rename(s.path("acct.csv"), s.path("elsewhere.csv")).unwrap();
    acct.write(&Record::delivery(RecordType::Delivery, &delivered_facts()));
    acct.flush();
    assert_eq!(s.read("elsewhere.csv").1.len(), 1);
    let (header, rows) = s.read("acct.csv");
    assert_eq!(header.join(","), D_FIELDS);
    assert_eq!(rows.len(), 1);
}

#[test]
fn a_torn_last_line_is_ended_before_appending() {
    let s = Story::new();
    std::fs::write(s.path("acct.csv"), format!("{D_FIELDS}\nd,2019-02-08 21:54:05+0000,x")).unwrap();
    let acct = s.open("<acct-file DIR/acct.csv>\n</acct-file>\n");
    acct.write(&Record::delivery(RecordType::Delivery, &delivered_facts()));
    acct.flush();
    let raw = std::fs::read_to_string(s.path("acct.csv")).unwrap();
    assert!(raw.contains("d,2019-02-08 21:54:05+0000,x\nd,2019-02-08 21:54:05+0000,2019"), "{raw}");
}

#[test]
fn receipts_from_the_ingress_keep_their_columns() {
    let s = Story::new();
    let acct = s.open("<acct-file DIR/acct.csv>\n records r\n record-fields r *,header_Subject\n</acct-file>\n");
    acct.write(
        &Record::new(RecordType::Receipt)
            .set("timeLogged", "2010-04-17 20:19:57+0000")
            .set("orig", "test@port25.com")
            .set("rcpt", "test@port25.com")
            .set("srcType", "smtp")
            .set("srcMta", "tesFeeder (192.168.25.56)")
            .set("vmta", "vmta1")
            .set("jobId", "job2")
            .set("envId", "envid1234")
            .headers_from(b"Subject: hi there\r\n\r\n", &["subject".to_string()]),
    );
    acct.flush();
    let raw = std::fs::read_to_string(s.path("acct.csv")).unwrap();
    assert_eq!(
        raw,
        "type,timeLogged,orig,rcpt,orcpt,srcType,srcMta,rcvSourceIp,rcvDestinationIp,vmta,vmtaPool,jobId,envId,userString,rcvSmtpUser,header_Subject\n\
         r,2010-04-17 20:19:57+0000,test@port25.com,test@port25.com,,smtp,tesFeeder (192.168.25.56),,,vmta1,,job2,envid1234,,,hi there\n"
    );
}

#[test]
fn delivery_facts_from_the_envelope() {
    use crate::message::{MessageId, Origin};
    let mut rcpt = Recipient::new("x@example.org");
    rcpt.orcpt = Some("rfc822;x@example.org".into());
    let env = Envelope {
        id: MessageId(9),
        sender: "s@example.com".into(),
        recipients: vec![rcpt.clone()],
        vmta: None,
        job_id: Some("j1".into()),
        env_id: Some("e1".into()),
        ret: None,
        eight_bit: false,
        smtputf8: false,
        arrival_ms: 1_549_662_840_500,
        priority: None,
        dkim_options: None,
        origin: Origin {
            kind: "smtp".into(),
            helo: "feeder.example".into(),
            client_ip: Some("192.0.2.1".parse().unwrap()),
            ..Origin::default()
        },
    };
    let facts = DeliveryFacts { time_logged: 1_549_662_845, ..DeliveryFacts::from_envelope(&env, &rcpt) };
    let r = Record::delivery(RecordType::Delivery, &facts);
    assert_eq!(r.get("orig"), "s@example.com");
    assert_eq!(r.get("orcpt"), "rfc822;x@example.org");
    assert_eq!(r.get("srcMta"), "feeder.example (192.0.2.1)");
    assert_eq!(r.get("vmta"), "{default}");
    assert_eq!(r.get("jobId"), "j1");
    assert_eq!(r.get("totalSecondsQueued"), "5");
    assert_eq!(r.get("dsnStatus"), "2.0.0 (success)");
    assert_eq!(Record::delivery(RecordType::Bounce, &facts).get("dsnStatus"), "5.0.0 (undefined status)");
    assert_eq!(Record::delivery(RecordType::Transient, &facts).get("dsnStatus"), "4.0.0 (undefined status)");
    let pipe = DeliveryFacts { dlv_type: "pipe", ..facts };
    assert_eq!(Record::delivery(RecordType::Delivery, &pipe).get("dsnAction"), "delivered");
    assert_eq!(mta_text("", Some("192.0.2.9".parse().unwrap())), "[192.0.2.9] (192.0.2.9)");
    assert_eq!(mta_text("mx.example", None), "mx.example");
}

#[test]
fn the_same_file_twice_is_refused() {
    let s = Story::new();
    let e = s.open_err("<acct-file DIR/a.csv>\n</acct-file>\n<acct-file DIR/./a.csv>\n records t\n</acct-file>\n");
    assert!(e.contains("named by two <acct-file> blocks"), "{e}");
}

#[test]
fn pipes_get_the_header_then_records() {
    let s = Story::new();
    let out = s.path("piped.csv");
    let acct = s.open(&format!("<acct-file \"|cat > {}\">\n records d\n</acct-file>\n", out.display()));
    acct.write(&Record::delivery(RecordType::Delivery, &delivered_facts()));
    acct.write(&Record::delivery(RecordType::Bounce, &bounced_facts())); // not taken
    acct.flush();
    assert_eq!(acct.rotate().unwrap(), Vec::<PathBuf>::new(), "pipes do not rotate");
    drop(acct); // closes the pipe; cat exits
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        if text.lines().count() == 2 {
            let (header, rows) = read_csv(&out);
            assert_eq!(header.join(","), D_FIELDS);
            assert_eq!(rows[0][0], "d");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "pipe output: {text:?}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn privacy_policy_hides_recipients_but_keeps_their_domains() {
    let s = Story::new();
    let acct = s.open(
        "<acct-file DIR/plain.csv>\n</acct-file>\n<acct-file DIR/redacted.csv>\n privacy-policy redact\n</acct-file>\n\
         <acct-file DIR/hashed.csv>\n privacy-policy siphash 000102030405060708090a0b0c0d0e0f\n</acct-file>\n",
    );
    let mut facts = delivered_facts();
    facts.orcpt = "rfc822;D@1181.com";
    acct.write(&Record::delivery(RecordType::Delivery, &facts));
    acct.flush();
    let (h, plain) = s.read("plain.csv");
    assert_eq!(col(&h, &plain[0], "rcpt"), "D@1181.com");
    let (h, redacted) = s.read("redacted.csv");
    assert_eq!(col(&h, &redacted[0], "rcpt"), "redacted@1181.com");
    assert_eq!(col(&h, &redacted[0], "orcpt"), "redacted@1181.com");
    assert_eq!(col(&h, &redacted[0], "orig"), "AA-D=1181.com@bounce.bar.com", "the sender is ours, not private");
    let (h, hashed) = s.read("hashed.csv");
    let rcpt = col(&h, &hashed[0], "rcpt");
    assert!(rcpt.starts_with("h-") && rcpt.ends_with("@1181.com") && !rcpt.contains("D@"), "{rcpt}");
    let e = s.open_err("<acct-file DIR/bad.csv>\n privacy-policy siphash short\n</acct-file>\n");
    assert!(e.contains("<acct-file DIR/bad.csv>".replace("DIR", s.dir.path().to_str().unwrap()).as_str()), "{e}");
}

#[test]
fn map_header_to_field_fills_own_and_custom_fields_from_headers() {
    let s = Story::new();
    let acct = s.open(
        "<acct-file DIR/acct.csv>\n records f\n map-header-to-field f header_X-Campaign jobId\n \
         map-header-to-field f header_X-Customer-Id customerId\n</acct-file>\n",
    );
    let mut wanted = acct.wanted_headers().to_vec();
    wanted.sort();
    assert_eq!(wanted, ["X-Campaign", "X-Customer-Id"]);
    let message = b"From: a@b\r\nX-Campaign: spring\r\nX-Customer-Id: 42\r\n\r\nbody\r\n";
    let with = Record::new(RecordType::FeedbackLoop).set("rcpt", "v@isp.example").set("jobId", "from-report");
    acct.write(&with.clone().headers_from(message, acct.wanted_headers()));
    acct.write(&with.headers_from(b"From: a@b\r\n\r\n", acct.wanted_headers()));
    acct.flush();
    let (h, rows) = s.read("acct.csv");
    assert_eq!(h.last().map(String::as_str), Some("customerId"), "{h:?}");
    assert_eq!(col(&h, &rows[0], "jobId"), "spring");
    assert_eq!(col(&h, &rows[0], "customerId"), "42");
    // Without the headers the record keeps its own value and the custom column is empty.
    assert_eq!(col(&h, &rows[1], "jobId"), "from-report");
    assert_eq!(col(&h, &rows[1], "customerId"), "");
}
