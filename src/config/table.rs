//! The directive table: every directive PowerMTA documents, with its scope, value type, PowerMTA
//! default, and whether Ember enforces it yet. This file is data; see `table_def.rs` for the
//! shape and `dialect.rs` for the field spellings mapped onto these names.
//!
//! It is long on purpose: one declaration per directive, grouped by the block it belongs to.
//! `docs/config-reference.md` is generated from it (`docs.rs`).

use super::table_def::scope::*;
use super::table_def::{DirectiveDef, Scope, Status, directives};
use super::value::ValueType::{self, *};

const DKIM_SIGN: &[&str] = &["yes", "no", "true", "false", "if-x-dkim-options-present"];
const DKIM_ALGORITHMS: &[&str] = &["rsa-sha256", "rsa-sha1", "ed25519-sha256"];
const CANON: &[&str] = &["relaxed", "simple"];
const DELIVERY_TYPES: &[&str] = &["smtp", "pipe", "file", "discard", "http-delivery"];
const FILE_FORMATS: &[&str] = &["newfile-plain", "newfile-pickup", "append-mbox"];
const DSN_FORMATS: &[&str] = &["standard", "plain-text"];
const DSN_RETURN: &[&str] = &["headers", "full", "system"];
const ADD_DATE: &[&str] = &["no", "yes", "override"];
const DATE_TIME: &[&str] = &["reception", "delivery"];
const AUTH_METHODS: &[&str] = &["password", "system", "certificate"];
const SORT_ORDERS: &[&str] = &["rcpt", "name", "size"];
const EVENT_LOG_MODES: &[&str] = &["auto", "yes", "no"];
const EVENT_SINK_TYPES: &[&str] = &["http", "nats", "file"];
const SPOOL_RCPTS: ValueType = UintOrAuto;
const SRC: u32 = SOURCE;
const D: u32 = DOMAIN;
const VP: u32 = VMTA | POOL;
const BF: u32 = BOUNCE_PROCESSOR | FBL_PROCESSOR;

directives! {
    // ---- 2.1 global ------------------------------------------------------------------------
    Postmaster => "postmaster", Email, GLOBAL, None, many, Enforced, "Administrator address: the envelope sender and From of Ember's notices (backoff-notify, disabled-source-ip-notify) and the From of DSNs when custom-dsn-from-header is unset.";
    HostName => "host-name", Word, GLOBAL | VP, None, many, Enforced, "Name used in the greeting and EHLO (the first one); per VMTA it overrides the global one.";
    SmtpListener => "smtp-listener", Listener, GLOBAL, None, many, Enforced, "Inbound listener ADDRESS:PORT [source=NAME] [tls=yes|no]; tls=yes is implicit TLS (SMTPS, as on port 465), like immediate-tls in an <smtp-listener> block.";
    SmtpSourceHost => "smtp-source-host", SourceHost, GLOBAL | VMTA, None, many, Enforced, "Outbound source IP (or CIDR) and HELO name; several are used round robin.";
    TotalMaxSmtpOut => "total-max-smtp-out", Uint, GLOBAL, Some("1200"), once, Enforced, "Global cap on outbound SMTP connections.";
    TotalMaxSmtpIn => "total-max-smtp-in", Uint, GLOBAL, Some("100"), once, Enforced, "Global cap on inbound SMTP connections.";
    SmtpAwaitSlot => "smtp-await-slot", Bool, GLOBAL, Some("no"), once, Enforced, "When inbound slots are full, wait instead of answering 421.";
    NameServer => "name-server", Word, GLOBAL, None, many, Enforced, "DNS server IP[:port] used instead of the system resolvers (round robin).";
    DomainSuffix => "domain-suffix", Word, GLOBAL, None, once, Enforced, "Suffix appended to unqualified addresses.";
    HostId => "host-id", Uint, GLOBAL, Some("0"), once, Enforced, "Per-server number added to the Message-IDs Ember generates (add-message-id-header): <TIME.N.HOSTID@HOST>; left out when 0.";
    RunAsRoot => "run-as-root", Bool, GLOBAL, Some("yes"), once, Enforced, "no: once the listeners are bound, give up root for good and run as the owner (user and group) of the first spool directory, which must exist and not be owned by root (restart needed).";
    SpoolDir => "spool", Dir, GLOBAL, None, many, Enforced, "Deprecated one-line spool directory; use <spool DIR>.";
    SpoolMaxRecipients => "spool-max-recipients", SPOOL_RCPTS, GLOBAL, Some("auto"), once, Enforced, "Cap on queued recipients: a message that would pass it gets 452 4.3.1 (auto: no cap but disk space).";
    SpoolDeleteCorrupted => "spool-delete-corrupted", Bool, GLOBAL, Some("no"), once, Enforced, "A corrupt spool record found at start or by compaction is dropped without a copy (no: copied to DIR/quarantine/); either way its message is lost and reported.";
    SpoolMinFreeSpace => "spool-min-free-space", Uint, GLOBAL, Some("0"), once, Enforced, "Deprecated: free space floor in MB; use <spool> min-free-space.";
    SmtpServerTlsCertificate => "smtp-server-tls-certificate", FileWithPassword, GLOBAL, None, once, Enforced, "Certificate (PEM, with key) for inbound STARTTLS.";
    SmtpServerTlsCaFile => "smtp-server-tls-ca-file", File, GLOBAL, None, once, Enforced, "CA bundle for inbound client certificates: clients are asked for one, and a certificate sent must chain to this CA or the handshake fails (a client without one is still served).";
    SmtpServerTlsCiphers => "smtp-server-tls-ciphers", Text, GLOBAL, Some("HIGH:!ADH:@STRENGTH"), once, NoEffect, "OpenSSL cipher string for inbound TLS; rustls offers only its own modern AEAD suites, which an OpenSSL string cannot select.";
    SmtpServerTlsAllowSslv3 => "smtp-server-tls-allow-sslv3", Bool, GLOBAL, Some("no"), once, NoEffect, "SSLv3 inbound: never offered, rustls does not implement SSLv3.";
    SmtpServerTlsAllowTlsv1 => "smtp-server-tls-allow-tlsv1", Bool, GLOBAL, Some("no"), once, NoEffect, "TLS 1.0 inbound: never offered, rustls implements TLS 1.2 and 1.3 only.";
    SmtpServerTlsAllowTlsv11 => "smtp-server-tls-allow-tlsv1.1", Bool, GLOBAL, Some("yes"), once, NoEffect, "TLS 1.1 inbound: never offered, rustls implements TLS 1.2 and 1.3 only.";
    SmtpServerTlsAllowTlsv12 => "smtp-server-tls-allow-tlsv1.2", Bool, GLOBAL, Some("yes"), once, Enforced, "Allow TLS 1.2 inbound.";
    CustomDsnFromHeader => "custom-dsn-from-header", Text, GLOBAL, None, once, Enforced, "From: header of generated DSNs.";
    Alias => "alias", Words { min: 2, max: 2 }, GLOBAL | ALIASES, None, many, Enforced, "Forward SOURCE to TARGET[,TARGET] at RCPT (SOURCE: an address, or a local part at each host-name; relay rights are checked for SOURCE, suppression for each TARGET; the original address becomes ORCPT; targets are not expanded again).";
    RelayDomain => "relay-domain", DomainPattern, GLOBAL | SRC, None, many, Enforced, "Domains accepted for inbound relay.";
    RelayAddress => "relay-address", AddressOrRegex, GLOBAL | SRC, None, many, Enforced, "Addresses (or /regex/) accepted for inbound relay.";
    RelayDebug => "relay-debug", Bool, GLOBAL, Some("no"), once, Enforced, "Answer relay refusals with 4xx instead of 5xx.";
    DomainKey => "domain-key", DomainKey, GLOBAL | VP | DOMAIN_KEY_LIST, None, many, Enforced, "DKIM key SELECTOR,DOMAIN|*,FILE.";
    DomainMacro => "domain-macro", Words { min: 2, max: 64 }, GLOBAL, None, many, Enforced, "Macro NAME LIST usable as $NAME in <domain> patterns.";
    ClusterRedis => "cluster-redis", RedisUrl, GLOBAL, None, once, Enforced, "Beyond PowerMTA: turns cluster mode on. The Redis (redis://HOST[:PORT][/DB], rediss:// for TLS) through which nodes share max-smtp-out as connection leases, every rate limit, backoff, pause and mode, and the global suppression list (restart needed). Without it a node keeps its limits to itself.";
    ClusterNodeName => "cluster-node-name", Word, GLOBAL, None, once, Enforced, "Beyond PowerMTA: this node's name in the cluster (default: the host name); a second node under a name a live node holds is refused membership.";
    GlobalSuppressionFile => "global-suppression-file", File, GLOBAL, None, once, Enforced, "Beyond PowerMTA: journal of the global suppression list (complaints, hard bounces, unsubscribes, ember suppression); default suppressed.journal in the first spool directory.";
    InvalidVirtualMtaFallback => "invalid-virtual-mta-fallback", Word, GLOBAL, None, once, Enforced, "VMTA used when the selected one does not exist.";
    IncludeHeadersFrom => "include-headers-from", File, GLOBAL | VP, None, many, Enforced, "File of header fields inserted right after Ember's Received header in injected mail; a VMTA's or pool's own file replaces the global one. Read at start and reload; an unreadable file or a line that is not a header field stops them.";
    Pickup => "pickup", Words { min: 1, max: 2 }, GLOBAL, None, once, Enforced, "Pickup directory DIR [BADDIR].";
    PickupRemoveDot => "pickup-remove-dot", Bool, GLOBAL, Some("no"), once, Enforced, "Undo dot-stuffing in pickup files.";
    DummySmtpIp => "dummy-smtp-ip", Cidr, GLOBAL, None, once, Enforced, "Address the built-in blackhole SMTP sink listens on (default: every IPv4 address).";
    DummySmtpPort => "dummy-smtp-port", UintRange(0, 65535), GLOBAL, Some("0"), once, Enforced, "Port of the built-in blackhole SMTP sink, which accepts and discards all mail (0: off).";
    TotalMaxFile => "total-max-file", Uint, GLOBAL, None, once, NoEffect, "Legacy PowerMTA 4.x directive (file writer threads), no effect; Ember's spool has no per-file threads.";
    DummySmtpHasMailmerge => "dummy-smtp-has-mailmerge", Bool, GLOBAL, Some("no"), once, NoEffect, "Legacy PowerMTA 4.x directive (blackhole sink mailmerge), no effect.";
    DummySmtpBlacklist => "dummy-smtp-blacklist", Text, GLOBAL, None, once, NoEffect, "Legacy PowerMTA 4.x directive (blackhole sink blacklist file), no effect.";
    DummySmtpLogBlacklist => "dummy-smtp-log-blacklist", Bool, GLOBAL, Some("no"), once, NoEffect, "Legacy PowerMTA 4.x directive (blackhole sink blacklist logging), no effect.";
    DummySmtpBlacklistBounceMethod => "dummy-smtp-blacklist-bounce-method", Word, GLOBAL, None, once, NoEffect, "Legacy PowerMTA 4.x directive (how the blackhole sink bounces blacklisted recipients), no effect.";
    DummySmtpBlacklistBouncePercent => "dummy-smtp-blacklist-bounce-percent", UintRange(0, 100), GLOBAL, None, once, NoEffect, "Legacy PowerMTA 4.x directive (share of blacklisted recipients the blackhole sink bounces), no effect.";
    DummySmtpAwaitSlot => "dummy-smtp-await-slot", Bool, GLOBAL, Some("no"), once, Enforced, "Each blackhole sink session first waits for (and holds) an inbound session slot of total-max-smtp-in.";
    DummySmtpHasChunking => "dummy-smtp-has-chunking", Bool, GLOBAL, Some("yes"), once, Enforced, "Blackhole sink offers CHUNKING (BDAT).";
    DummySmtpHasPipelining => "dummy-smtp-has-pipelining", Bool, GLOBAL, Some("yes"), once, Enforced, "Blackhole sink offers PIPELINING.";
    DummySmtpHasVerp => "dummy-smtp-has-verp", Bool, GLOBAL, Some("yes"), once, Enforced, "Blackhole sink offers XVERP (refused in MAIL FROM when off).";
    DummySmtpLatency => "dummy-smtp-latency", Interval, GLOBAL, Some("0s"), once, Enforced, "Blackhole sink waits this long before each answer it sends (once per round trip).";
    DummySmtpUpdateStats => "dummy-smtp-update-stats", Bool, GLOBAL, Some("no"), once, Enforced, "Count what the blackhole sink receives in the inbound statistics (status, metrics).";
    HttpMgmtPort => "http-mgmt-port", PortOrListen, GLOBAL, Some("8080"), once, Enforced, "Management HTTP port; 0 disables it. May be ADDRESS:PORT in Ember.";
    HttpAccess => "http-access", HttpAccess, GLOBAL, None, many, Enforced, "Ordered access list CIDR LEVEL for the management HTTP API.";
    HttpApiKey => "http-api-key", Word, GLOBAL, None, many, Enforced, "API key (32-128 of [A-Za-z0-9_]) granting admin access via X-API-Key.";
    HttpRedirectToHttps => "http-redirect-to-https", Bool, GLOBAL, Some("no"), once, Enforced, "With http-tls-certificate: plain HTTP requests on the management port get a 301 to the same path over HTTPS instead of being served.";
    HttpCsrfProtection => "http-csrf-protection", Bool, GLOBAL, Some("yes"), once, Enforced, "Cross-site request forgery rules of the management API: a POST must carry Content-Type: application/json and, when the browser sends Origin, come from this server's own origin; no drops both rules (access levels and keys still apply).";
    HttpStsMaxAge => "http-strict-transport-security-max-age", Interval, GLOBAL, None, once, Enforced, "Strict-Transport-Security max-age sent with every HTTPS answer of the management API (unset: no header).";
    HttpTlsCertificate => "http-tls-certificate", FileWithPassword, GLOBAL, None, once, Enforced, "PEM file (chain and unencrypted key) that turns on HTTPS on the management port (rustls, TLS 1.2 and 1.3); plain HTTP is still served there unless http-redirect-to-https. Read at start; a reload does not change it.";
    HttpLogRequests => "http-log-requests", Bool, GLOBAL, Some("no"), once, Enforced, "Log one line per management API request: client, method, path and query, status, time taken (never headers, which carry keys).";
    HttpLogData => "http-log-data", Bool, GLOBAL, Some("no"), once, Enforced, "Also log the body of each management API command request (escaped, the first 2048 bytes); suppression-list and injection bodies are not logged.";
    HttpLogTls => "http-log-tls", Bool, GLOBAL, Some("no"), once, Enforced, "Log each management HTTPS handshake: client, protocol and cipher, or why it failed.";
    HttpDefaultMaxItems => "http-default-max-items", Uint, GLOBAL, Some("10"), once, Enforced, "Items a management API listing (queues, domains, vmtas, jobs, messages) and the CLI's top views return when the request gives no maxitems (maxitems=all: every item).";
    HttpDefaultSortOrder => "http-default-sort-order", Enum(SORT_ORDERS), GLOBAL, Some("rcpt"), once, Pending, "Default sort of listings. Pending: needs per-queue byte totals for size (the API sorts by name unless sort= is given).";
    LogFile => "log-file", OutputFile, GLOBAL, None, once, Enforced, "Main log file (the daemon's log lines go here instead of stderr); created with its directory.";
    LogRotate => "log-rotate", Uint, GLOBAL, Some("8"), once, Enforced, "Rotated log files kept (FILE.1 is the newest).";
    LogAutoRotation => "log-auto-rotation", Bool, GLOBAL, Some("yes"), once, Enforced, "Rotate the log at midnight (UTC).";
    LogFileWorldReadable => "log-file-world-readable", Bool, GLOBAL, Some("no"), once, Enforced, "Make log files world-readable (0644 instead of 0640).";
    MxConnectionLimit => "mx-connection-limit", MxConnectionLimit, GLOBAL, None, many, Enforced, "PATTERN N: at most N connections from each source IP to MX hosts whose name matches PATTERN (* is any run of characters), across all queues; a queue at the cap waits for a slot up to connect-timeout.";
    IpConnectionLimit => "ip-connection-limit", CidrUint, GLOBAL, None, many, Enforced, "CIDR N: at most N connections, from all source IPs together, to destination addresses in CIDR, across all queues; a queue at the cap waits for a slot up to connect-timeout.";
    UseProxy => "use-proxy", List, GLOBAL | VMTA, None, once, Pending, "Failover list of <proxy> names for outbound connections. Pending: Ember connects to MX hosts directly; a SOCKS/HAProxy client path is not built yet.";
    ThreadMinPriority => "thread-min-priority", Uint, GLOBAL, Some("15"), once, NoEffect, "PowerMTA thread tuning; Ember runs async tasks on a fixed worker pool, so thread priorities have no meaning.";
    ThreadMaxPriority => "thread-max-priority", Uint, GLOBAL, Some("0"), once, NoEffect, "PowerMTA thread tuning; Ember runs async tasks on a fixed worker pool, so thread priorities have no meaning.";
    ThreadReuse => "thread-reuse", Bool, GLOBAL, Some("yes"), once, NoEffect, "PowerMTA thread tuning; Ember runs async tasks on a fixed worker pool, so there are no threads to reuse.";
    MailmergeExpandsUndefined => "mailmerge-expands-undefined-variables", Bool, GLOBAL, Some("yes"), once, Pending, "[var] expands to empty when undefined. Pending: Ember does not implement the XMRG mail-merge submission extension yet.";
    PmcAcctMinFreeSpace => "pmc-acct-min-free-space", Size, GLOBAL, Some("unlimited"), once, NoEffect, "Disk floor for files staged for PowerMTA Management Console; Ember stages nothing for PMC.";
    EnableSignals => "enable-signals", Bool, GLOBAL | VP, None, once, NoEffect, "SparkPost Signals upload, a SparkPost cloud service; Ember uploads nothing to it.";
    SyncMsgCreate => "sync-msg-create", Bool, GLOBAL, None, once, NoEffect, "PowerMTA fsync toggle; Ember always fsyncs a message before answering 250 and cannot be told not to.";
    SyncMsgUpdate => "sync-msg-update", Bool, GLOBAL, None, once, NoEffect, "PowerMTA fsync toggle; Ember fsyncs recipient state changes with its next group commit, at most about 20 ms later, whatever this says.";
    Include => "include", File, GLOBAL | SRC | D | VMTA | SMTP_PATTERN_LIST, None, many, Enforced, "Include FILE or GLOB, relative to the including file.";

    // ---- 2.2 <spool> -----------------------------------------------------------------------
    SpoolPriority => "priority", UintRange(1, 100), SPOOL, Some("1"), once, Enforced, "Spool priority; higher is used first.";
    MinFreeSpace => "min-free-space", Size, SPOOL | SIGNALS, Some("0"), once, Enforced, "Stop accepting into this spool below this free space (452 4.3.1).";
    DeliverOnly => "deliver-only", Bool, SPOOL, Some("no"), once, Enforced, "Drain only: attach a failed server's spool.";
    DeleteFileHolders => "delete-file-holders", Bool, SPOOL, Some("no"), once, NoEffect, "Recycles PowerMTA's per-message holder files; Ember's spool is a segment log with no holder files.";

    // ---- 2.3 <source> ----------------------------------------------------------------------
    SmtpService => "smtp-service", Bool, SRC, Some("yes"), once, Enforced, "Accept SMTP from this source; no gives 521 at greeting.";
    AlwaysAllowRelaying => "always-allow-relaying", Bool, GLOBAL | SRC, Some("no"), once, Enforced, "Relay to any domain (the feeder setting).";
    RequireAuth => "require-auth", Bool, SRC, Some("no"), once, Enforced, "AUTH required before MAIL.";
    AllowAuth => "allow-auth", Bool, SRC, Some("yes"), once, Enforced, "Advertise and accept AUTH.";
    AllowUnencryptedPlainAuth => "allow-unencrypted-plain-auth", Bool, SRC, Some("no"), once, Enforced, "Allow PLAIN/LOGIN without TLS.";
    AllowStarttls => "allow-starttls", Bool, SRC, Some("no"), once, Enforced, "Offer STARTTLS to injectors.";
    RequireStarttlsBeforeAuth => "require-starttls-before-auth", Bool, SRC, Some("no"), once, Enforced, "AUTH only after STARTTLS.";
    SmtpMaxAuthFailureRate => "smtp-max-auth-failure-rate", Rate, SRC, Some("unlimited"), once, Enforced, "Lock the source out after this many failed AUTH attempts.";
    ProcessXVirtualMta => "process-x-virtual-mta", Bool, SRC, Some("no"), once, Enforced, "Honour and strip X-Virtual-MTA.";
    RetainXVirtualMta => "retain-x-virtual-mta", Bool, SRC, Some("no"), once, Enforced, "Keep the X-Virtual-MTA header.";
    AllowEmptyXVirtualMta => "allow-empty-x-virtual-mta", Bool, SRC, Some("no"), once, Enforced, "An empty X-Virtual-MTA selects {default}.";
    RejectInvalidVirtualMta => "reject-invalid-virtual-mta", Bool, SRC, Some("yes"), once, Enforced, "Refuse mail that selects an unknown VMTA.";
    AddXVirtualMtaHeader => "add-x-virtual-mta-header", Bool, SRC, Some("no"), once, Enforced, "At delivery, add X-Virtual-MTA naming the delivering VMTA (the pool member, not the pool), replacing any X-Virtual-MTA the message has.";
    DefaultVirtualMta => "default-virtual-mta", Word, SRC, None, once, Enforced, "Fallback VMTA or pool, or by-smtp-source-ip.";
    PatternListRef => "pattern-list", Word, SRC, None, once, Enforced, "<pattern-list> used for VMTA and priority selection.";
    ProcessXJob => "process-x-job", Bool, SRC, Some("no"), once, Enforced, "X-Job header sets the job id.";
    RetainXJob => "retain-x-job", Bool, SRC, Some("no"), once, Enforced, "Keep the X-Job header.";
    JobidHeader => "jobid-header", Word, SRC, None, once, Enforced, "Alternative header for the job id.";
    JobidPrefix => "jobid-prefix", Word, SRC, None, once, Enforced, "Prefix for job ids; {auth} is the authenticated user.";
    ProcessXEnvid => "process-x-envid", Bool, SRC, Some("no"), once, Enforced, "X-Envid header sets the DSN ENVID.";
    ProcessXSchedule => "process-x-schedule", Bool, SRC, Some("no"), once, Pending, "X-Schedule delivery windows. Pending: needs a per-message not-before/not-after time in the spool envelope and queue scheduling that holds mail outside its window.";
    RetainXSchedule => "retain-x-schedule", Bool, SRC, Some("no"), once, Pending, "Keep the X-Schedule header. Pending: process-x-schedule is not enforced yet.";
    ProcessXDkimOptions => "process-x-dkim-options", Bool, SRC, Some("no"), once, Enforced, "Honour X-DKIM-Options: DKIM tags (d= i= s= a= c= h= l= q= t= x=) overriding the first signature's options for this message; the header is removed unless retain-x-dkim-options.";
    RetainXDkimOptions => "retain-x-dkim-options", Bool, SRC, Some("no"), once, Enforced, "Keep the X-DKIM-Options header in the message after processing it.";
    ProcessXDkimKey => "process-x-dkim-key", Bool, SRC, Some("no"), once, Pending, "Accept a private key in X-DKIM-Key. Pending: a signing key carried in a message header needs its own trust rules (which sources may, key checks) before Ember accepts one.";
    RetainXDkimKey => "retain-x-dkim-key", Bool, SRC, Some("no"), once, Pending, "Keep X-DKIM-Key. Pending: follows process-x-dkim-key; the header is delivered as written today.";
    AllowMailmerge => "allow-mailmerge", Bool, SRC, Some("no"), once, Pending, "Allow XMRG/XDFN/XPRT. Pending: Ember does not implement the XMRG mail-merge submission extension yet; the commands are refused as unknown.";
    AlwaysAllowApiSubmission => "always-allow-api-submission", Bool, SRC, Some("no"), once, Pending, "Same as allow-mailmerge. Pending: as allow-mailmerge.";
    VerpDefault => "verp-default", Bool, SRC, Some("no"), once, Enforced, "VERP every message: each recipient gets its own transaction from local+rcptlocal=rcptdomain@senderdomain (the null sender is left alone).";
    MaxMessageSize => "max-message-size", Size, SRC, Some("unlimited"), once, Enforced, "Largest message accepted (552 5.3.4 beyond).";
    MaxMessageHops => "max-message-hops", Uint, SRC | D, Some("100"), once, Enforced, "Most Received headers a message may carry.";
    MaxLoopCount => "max-loop-count", Uint, SRC | D, None, once, Enforced, "Field dialect: refuse or bounce mail that passed through this host more than N times.";
    MaxRcptPerMessage => "max-rcpt-per-message", Uint, SRC, Some("0"), once, Enforced, "Most recipients per message at injection (0: none).";
    TooManyRcptsFailsMessage => "too-many-rcpts-fails-message", Bool, SRC, Some("no"), once, Enforced, "Refuse at DATA rather than at RCPT.";
    AcceptInvalidRecipients => "accept-invalid-recipients", Bool, SRC, Some("no"), once, Enforced, "Accept bad or suppressed recipients, then bounce them.";
    SuppressionLists => "suppression-lists", List, SRC, None, once, Enforced, "Named <address-list> suppression lists.";
    AddReceivedHeader => "add-received-header", Bool, SRC, Some("yes"), once, Enforced, "Add a Received header.";
    HideMessageSource => "hide-message-source", Bool, SRC, Some("no"), once, Enforced, "Omit the submitter's name and IP from Received.";
    AddMessageIdHeader => "add-message-id-header", Bool, SRC, Some("no"), once, Enforced, "Add Message-ID when missing.";
    AddDateHeader => "add-date-header", Enum(ADD_DATE), SRC, Some("no"), once, Enforced, "Add (or override) the Date header.";
    DateHeaderTime => "date-header-time", Enum(DATE_TIME), SRC, Some("reception"), once, Enforced, "Time used in the Date header add-date-header adds: reception (at injection) or delivery (added as the message is sent).";
    RemoveHeader => "remove-header", List, SRC | D, None, once, Enforced, "Headers removed at delivery.";
    Bcc => "bcc", Email, SRC, None, once, Enforced, "Archive copy of everything from this source: the address is added as one more recipient, with NOTIFY=NEVER.";
    SuppressLocalDsn => "suppress-local-dsn", Bool, SRC, Some("no"), once, Enforced, "Send no DSN mail for messages injected from this source (accounting is still written); the source is kept with each spooled message.";
    DsnReturnDefault => "dsn-return-default", Enum(DSN_RETURN), SRC, Some("system"), once, Enforced, "RET when the sender gave none: headers or full; system returns headers.";
    DisconnectOnTransientError => "disconnect-on-transient-error", Bool, SRC, Some("no"), once, Enforced, "Drop the connection instead of answering 4xx.";
    SmtpDataTimeout => "smtp-data-timeout", Interval, SRC, Some("10m"), once, Enforced, "Inbound DATA timeout.";
    SmtpCommandTimeout => "smtp-command-timeout", Interval, SRC, Some("10m"), once, Enforced, "Inbound command timeout.";
    AllowChunking => "allow-chunking", Bool, SRC, Some("yes"), once, Enforced, "Offer CHUNKING (BDAT).";
    AllowSmtputf8 => "allow-smtputf8", Bool, SRC, Some("yes"), once, Enforced, "Offer SMTPUTF8.";
    AutoQualifyDomain => "auto-qualify-domain", Bool, SRC, Some("yes"), once, Enforced, "Qualify bare local parts with domain-suffix.";
    SourceGroupRef => "source-group", Word, SRC, None, once, Enforced, "<source-group> this source's connections count against (decided when a connection arrives, from its address and the listener's source=).";
    CheckSpfInbound => "check-spf-inbound", Bool, SRC, Some("no"), once, Pending, "Check SPF of inbound mail. Pending: Ember is an outbound MTA; inbound SPF results (an Authentication-Results header) are not computed yet.";
    CheckDkimInbound => "check-dkim-inbound", Bool, SRC, Some("no"), once, Pending, "Verify DKIM of inbound mail. Pending: inbound DKIM verification (an Authentication-Results header) is not built yet.";
    CheckMfromInbound => "check-mfrom-inbound", Bool, SRC, Some("no"), once, NoEffect, "Legacy PowerMTA 4.x directive (Sender ID MAIL FROM check of inbound mail), no effect.";
    CheckIprevInbound => "check-iprev-inbound", Bool, SRC, Some("no"), once, Pending, "Check reverse DNS of inbound clients. Pending: inbound iprev results are not computed yet.";
    LogConnections => "log-connections", Bool, SRC | D, Some("no"), once, Enforced, "Log connections.";
    LogCommands => "log-commands", Bool, SRC | D, Some("no"), once, Enforced, "Log SMTP commands and replies.";
    LogData => "log-data", Bool, SRC | D | TX_API, Some("no"), once, Enforced, "Log each message's data line by line (text, other bytes as \\xNN, first 64 KiB): as received from the source, as sent by the queue, or as posted to the transmissions API.";
    LogTls => "log-tls", Bool, SRC | D | TX_API, Some("no"), once, Enforced, "Log each TLS handshake (protocol, cipher; the certificate check when sending; failures and fallbacks to clear). The transmissions API is served over plain HTTP: nothing to log there.";
    RewriteListRef => "rewrite-list", Word, SRC | VP, None, once, Enforced, "<rewrite-list> applied to MAIL FROM and the From domain: a source's on receipt (what is spooled), a VMTA's (else its pool's) at delivery, before DKIM signing.";
    RemoveReceivedHeaders => "remove-received-headers", Bool, SRC, Some("no"), once, Enforced, "Strip the incoming message's Received headers (before Ember adds its own).";
    BrokenAuthClients => "broken-auth-clients", Bool, SRC, Some("no"), once, Enforced, "Also advertise the legacy `AUTH=LOGIN PLAIN` EHLO line old Outlook/Netscape clients look for.";
    ListUnsubscribe => "list-unsubscribe", Bool, SRC | VP | D, Some("no"), once, Enforced, "Beyond PowerMTA: add RFC 8058 one-click List-Unsubscribe and List-Unsubscribe-Post headers with a signed per-recipient token (the most specific of domain, VMTA, source wins).";
    ListUnsubscribeUrl => "list-unsubscribe-url", Word, SRC | VP | D, None, once, Enforced, "Beyond PowerMTA: https base URL of the one-click endpoint; the token is appended as the last path segment (Ember serves POST /unsubscribe/TOKEN).";
    ListUnsubscribeMailto => "list-unsubscribe-mailto", Email, SRC | VP | D, None, once, Enforced, "Beyond PowerMTA: address for mailto: unsubscribes (the token goes in the subject); mail to it is read by Ember.";
    ListUnsubscribeSecret => "list-unsubscribe-secret", Text, GLOBAL, None, once, Enforced, "Beyond PowerMTA: HMAC-SHA256 key of unsubscribe tokens (at least 16 characters; changing it invalidates tokens already sent).";
    SuppressFile => "suppress-file", File, SRC | D, None, once, Enforced, "Field dialect: suppression list file (address, @domain or /regex/ a line); complaints and unsubscribes are appended to it.";

    // ---- <smtp-user>, <source-group>, <smtp-listener> --------------------------------------
    Password => "password", Text, SMTP_USER, None, once, Enforced, "Password (plain text, or a crypt/argon2 hash).";
    AuthenticationMethod => "authentication-method", Enum(AUTH_METHODS), SMTP_USER, Some("password"), once, Enforced, "password: SMTP AUTH with the user's password; certificate: a TLS client certificate verified against smtp-server-tls-ca-file (or the listener's tls-ca-file) whose common name or DNS name is the user's name authenticates the session at the handshake; system is a config error (Ember does not read the system password database).";
    SourceRef => "source", Word, SMTP_USER | LISTENER, None, once, Enforced, "Named <source> applied to this user or listener.";
    TlsCertificate => "tls-certificate", FileWithPassword, SMTP_USER | LISTENER | TX_API_LISTENER, None, once, Enforced, "Certificate (PEM) for this listener or user.";
    MaxSmtpIn => "max-smtp-in", Uint, SOURCE_GROUP, None, once, Enforced, "Inbound connections the group's members may hold together; past it 421 4.7.0.";
    ReservedSmtpIn => "reserved-smtp-in", Uint, SOURCE_GROUP, Some("0"), once, Enforced, "Slots of total-max-smtp-in only this group may use; other clients get 421 4.7.0 when only reserved slots are free.";
    AwaitSlot => "await-slot", Bool, LISTENER, Some("no"), once, Enforced, "Wait for a free slot instead of answering 421.";
    ImmediateTls => "immediate-tls", Bool, LISTENER, Some("no"), once, Enforced, "Implicit TLS (SMTPS).";
    TlsAllowTlsv1 => "tls-allow-tlsv1", Bool, LISTENER | TX_API_LISTENER, Some("no"), once, NoEffect, "TLS 1.0 on this listener: never offered, rustls implements TLS 1.2 and 1.3 only.";
    TlsAllowTlsv11 => "tls-allow-tlsv1.1", Bool, LISTENER | TX_API_LISTENER, Some("yes"), once, NoEffect, "TLS 1.1 on this listener: never offered, rustls implements TLS 1.2 and 1.3 only.";
    TlsAllowTlsv12 => "tls-allow-tlsv1.2", Bool, LISTENER | TX_API_LISTENER, Some("yes"), once, Enforced, "Allow TLS 1.2 on this listener (no: TLS 1.3 only); unset, smtp-server-tls-allow-tlsv1.2 applies.";
    TlsAllowSslv3 => "tls-allow-sslv3", Bool, LISTENER | TX_API_LISTENER, Some("no"), once, NoEffect, "SSLv3 on this listener: never offered, rustls does not implement SSLv3.";
    TlsCiphers => "tls-ciphers", Text, LISTENER | TX_API_LISTENER, None, once, NoEffect, "OpenSSL cipher string for this listener; rustls offers only its own modern AEAD suites, which an OpenSSL string cannot select.";
    TlsCaFile => "tls-ca-file", File, LISTENER | TX_API_LISTENER, None, once, Enforced, "CA bundle client certificates on this listener must chain to (instead of smtp-server-tls-ca-file).";

    // ---- 2.4 <domain>: limits --------------------------------------------------------------
    MaxSmtpOut => "max-smtp-out", Uint, D | VP, Some("20"), once, Enforced, "Simultaneous connections per queue (in <virtual-mta>: across all its queues).";
    MaxMsgPerConnection => "max-msg-per-connection", Uint, D, Some("0"), once, Enforced, "Messages per connection before opening a new one (0: no limit).";
    MaxRcptPerTransaction => "max-rcpt-per-transaction", Uint, D, Some("1000"), once, Enforced, "Recipients per SMTP transaction.";
    MaxErrorsPerConnection => "max-errors-per-connection", UintOrUnlimited, D, Some("unlimited"), once, Enforced, "Drop the connection after N recipient errors.";
    MaxMsgRate => "max-msg-rate", Rate, D, Some("unlimited"), once, Enforced, "Attempted recipients per interval.";
    MaxConnectRate => "max-connect-rate", Rate, D, Some("unlimited"), once, Enforced, "New connections per interval.";
    MaxDataVolumeRate => "max-data-volume-rate", DataRate, D, Some("unlimited"), once, Enforced, "Bytes delivered per interval.";
    SourceIpMaxMsgRate => "source-ip-max-msg-rate", CidrRate, D, None, many, Enforced, "Message rate per local source IP within a queue.";
    SourceIpMaxConnectRate => "source-ip-max-connect-rate", CidrRate, D, None, many, Enforced, "Connection rate per local source IP within a queue.";
    SourceIpMaxDataVolumeRate => "source-ip-max-data-volume-rate", CidrDataRate, D, None, many, Enforced, "Data rate per local source IP within a queue.";
    SourceIpMaxSmtpOut => "source-ip-max-smtp-out", CidrUint, D, None, many, Enforced, "Connections per local source IP within a queue: CIDR N, or N alone for every source IP (the 4.x `max-smtp-out-per-source-ip N`).";
    SmtpOutRampupInterval => "smtp-out-rampup-interval", Interval, D, Some("0s"), once, Enforced, "Minimum delay before each additional connection.";
    ConnectionIdleTimeout => "connection-idle-timeout", Interval, D, Some("0s"), once, Enforced, "Keep idle connections open waiting for mail (at most 10m).";
    QueuePriority => "queue-priority", UintRange(0, 100), D, Some("50"), once, Enforced, "Connection-slot priority of the queue.";
    AllowPriorityInterruption => "allow-priority-interruption", Bool, D, Some("yes"), once, Pending, "Higher-priority queues may interrupt this one. Pending: queues do not preempt each other yet; each queue keeps the connections it has until its mail is out.";
    AllowPriorityInterruptionDuringTransfer => "allow-priority-interruption-during-transfer", Bool, D, Some("no"), once, Pending, "Interrupt even mid-transfer. Pending: as allow-priority-interruption.";
    BackoffRuleDir => "backoff-rule", BackoffRule, D, None, many, Enforced, "Reply-triggered backoff CODE MATCH *, DURATION, CONNECTIONS, RATE (the field dialect's bare 421 … lines).";

    // ---- 2.4 <domain>: retry and DSN -------------------------------------------------------
    RetryAfter => "retry-after", IntervalList, D, Some("10m"), once, Enforced, "Queue retry schedule; the last interval repeats.";
    RetryRecipientsAfter => "retry-recipients-after", Interval, D, Some("10m"), once, Enforced, "Minimum wait before retrying a recipient after a 4xx.";
    RetryAfterDnsError => "retry-after-dns-error", Interval, D, Some("1m"), once, Enforced, "Retry interval after DNS failures.";
    RetryUponNewMail => "retry-upon-new-mail", Bool, D, Some("no"), once, Enforced, "A message newly accepted for a queue in retry mode ends its retry wait: the queue is tried at once (mail recovered at start does not).";
    BounceAfter => "bounce-after", Interval, D, Some("4d12h"), once, Enforced, "Expiry: bounce as message-expired.";
    BounceOn4xxStatus => "bounce-on-4xx-status", Bool, D, Some("no"), once, Enforced, "Field dialect: yes bounces a recipient whose last retry step got a 4xx; no waits for bounce-after.";
    BounceUponNoMx => "bounce-upon-no-mx", BoolOrInterval, D, Some("no"), once, Enforced, "A domain that does not exist (NXDOMAIN, or neither MX nor address records): no retries the queue until bounce-after, yes bounces its mail at once, a time bounces mail queued that long and retries the rest. A null MX always bounces.";
    BounceUpon5xxGreeting => "bounce-upon-5xx-greeting", Bool, D, Some("yes"), once, Enforced, "Bounce on a 5xx greeting.";
    BounceUponTransferFailure => "bounce-upon-transfer-failure", Bool, D, Some("no"), once, Enforced, "A connection dropped or timed out while sending the data or waiting for the reply to its final dot bounces the message (5.4.2) instead of deferring it: the receiver may already hold it.";
    BounceUponPixTransferFailure => "bounce-upon-pix-transfer-failure", Bool, D, Some("no"), once, NoEffect, "Cisco PIX transfer-failure handling; Ember has no PIX workaround mode, so there is nothing to bounce on.";
    AssumeDeliveryUponDataTerminationTimeout => "assume-delivery-upon-data-termination-timeout", Bool, D, Some("no"), once, Enforced, "A timeout waiting for the reply to the final dot counts as delivered (2.0.0, noted in dsnDiag), so the message is not sent twice.";
    Smtp553MeansInvalidMailbox => "smtp-553-means-invalid-mailbox", Bool, D, Some("yes"), once, Enforced, "Treat a bare 553 (no enhanced code) as 5.1.1, bad mailbox: status, bounce category, DSN.";
    Smtp421MeansMxUnavailable => "smtp-421-means-mx-unavailable", Bool, D, Some("no"), once, Enforced, "yes: a 421 (greeting or any command) closes the session and the message goes to the next MX host at once. no: a 421 greeting puts the queue in retry mode without trying the other hosts; a 421 to a command defers its recipients.";
    ReplaceSmtp421ServiceResponse => "replace-smtp-421-service-response", Bool, D, Some("no"), once, Enforced, "A receiver's 421 keeps its codes; its text becomes \"Service not available, closing transmission channel\" in logs, accounting and DSNs.";
    NotifyOfDelayEvery => "notify-of-delay-every", IntervalOrNever, D, Some("4h"), once, Enforced, "Delay DSN interval for recipients that asked with NOTIFY=DELAY: one when this long has passed since arrival, then again every interval while they wait (never: none).";
    DsnFormat => "dsn-format", Enum(DSN_FORMATS), D, Some("standard"), once, Enforced, "DSN layout: standard (multipart/report) or plain-text (the delivery-status fields alone as text/plain).";
    DeliverLocalDsn => "deliver-local-dsn", Bool, D, Some("yes"), once, NoEffect, "PowerMTA 3.x switch for locally generated DSNs; Ember always queues its DSNs like any other mail.";
    BccUponDelivery => "bcc-upon-delivery", Email, D, None, once, Enforced, "Copy each delivered message (once per delivering transaction) to this address, from the null sender; a copy is never copied again.";
    DisableAcctRecords => "disable-acct-records", List, D, None, once, Enforced, "Accounting record types not written for this queue.";
    MaxEventsRecorded => "max-events-recorded", Uint, D, Some("10"), once, Enforced, "Errors (deferrals, bounces, queue failures) the queue detail of the management API keeps per queue.";
    TrackRecipientEvents => "track-recipient-events", Bool, D, Some("no"), once, Enforced, "Keep the last 50 recipient events of the queue for its detail in the management API (no: none).";
    LogDeliveryFailures => "log-delivery-failures", Bool, D, Some("no"), once, Enforced, "Field dialect: write b and t records for failures.";
    LogFallbackFailures => "log-fallback-failures", Bool, D, Some("no"), once, Pending, "Field dialect: record each MX that failed before a fallback MX. Pending: failed MX hosts are logged (log-connections) but not yet written to accounting records.";
    SanitizeHeaders => "sanitize-headers", Bool, D, Some("no"), once, Enforced, "Field dialect: strip internal and control headers before delivery.";

    // ---- 2.4 <domain>: timeouts ------------------------------------------------------------
    ConnectTimeout => "connect-timeout", Interval, D, Some("2m"), once, Enforced, "TCP connect timeout.";
    SmtpGreetingTimeout => "smtp-greeting-timeout", Interval, D, Some("5m"), once, Enforced, "Wait for the 220 greeting.";
    DataSendTimeout => "data-send-timeout", Interval, D, Some("3m"), once, Enforced, "Sending the message body.";
    SmtpDataTerminationTimeout => "smtp-data-termination-timeout", Interval, D, Some("10m"), once, Enforced, "Reply to the final dot.";
    SmtpMultipleLineResponseTimeout => "smtp-multiple-line-response-timeout", Interval, D, Some("5m"), once, Enforced, "Complete multi-line replies.";
    MxConnectionAttempts => "mx-connection-attempts", Uint, D, Some("10"), once, Enforced, "MX hosts tried per delivery attempt.";

    // ---- 2.4 <domain>: routing -------------------------------------------------------------
    SmtpHosts => "smtp-hosts", SmtpHosts, D, None, once, Enforced, "MX override: commas are equal preference, semicolons the next.";
    DefaultSmtpPort => "default-smtp-port", UintRange(1, 65535), D, Some("25"), once, Enforced, "Destination port.";
    QueueTo => "queue-to", Word, D, None, once, Enforced, "Put this domain's mail into queue NAME.";
    DisableMxRollup => "disable-mx-rollup", Bool, D, Some("no"), once, Enforced, "Opt out of <mx-rollup-list> and auto-mx-rollup.";
    AutoMxRollup => "auto-mx-rollup", Bool, D, Some("no"), once, Enforced, "Beyond PowerMTA: roll the domain up without an <mx-rollup-list> line: into PROVIDER.rollup when its most preferred MX hosts belong to a provider of the built-in table (google, outlook, yahoo, icloud, proton, fastmail, yandex, mailru), else with the other domains of the same MX host set once there are two (named after the hosts' common parent domain: hosting.example.rollup for mx1.hosting.example). <mx-rollup-list> lines win; the embedded default configuration sets yes in <domain *>.";
    RerouteToVirtualMta => "reroute-to-virtual-mta", Word, D, None, once, Enforced, "Move this queue's mail to another VMTA or pool.";
    DeliveryType => "type", Enum(DELIVERY_TYPES), D, Some("smtp"), once, Enforced, "Delivery method: smtp relays to the MX hosts; discard, file and pipe deliver locally (dlvType in accounting); http-delivery is not supported yet and keeps the queue in retry mode.";
    Ignore8bitmime => "ignore-8bitmime", Bool, D, Some("no"), once, Enforced, "Do not use 8BITMIME.";
    IgnoreChunking => "ignore-chunking", Bool, D, Some("no"), once, Enforced, "Do not use CHUNKING.";
    IgnorePipelining => "ignore-pipelining", Bool, D, Some("no"), once, Enforced, "Do not use PIPELINING.";
    IgnoreDsn => "ignore-dsn", Bool, D, Some("no"), once, Enforced, "Do not pass DSN parameters.";
    PixBugWorkaround => "pix-bug-workaround", Bool, D, Some("yes"), once, NoEffect, "Sends the final dot in its own packet for Cisco PIX firewalls of the 1990s; Ember writes the dot with the last data, which every current receiver accepts.";
    AllowCancelDuringTransfer => "allow-cancel-during-transfer", Bool, D, Some("yes"), once, Pending, "Allow cancelling a transfer mid-stream. Pending: a deleted message leaves the queue at once, but a transfer already in progress always runs to its end.";

    // ---- 2.4 <domain>: backoff -------------------------------------------------------------
    SmtpPatternListRef => "smtp-pattern-list", Word, D, None, once, Enforced, "<smtp-pattern-list> applied to replies of this queue.";
    BackoffMaxMsgRate => "backoff-max-msg-rate", Rate, D, None, once, Enforced, "Message rate in backoff (default: max-msg-rate).";
    BackoffMaxConnectRate => "backoff-max-connect-rate", Rate, D, None, once, Enforced, "Connection rate in backoff (default: max-connect-rate).";
    BackoffMaxDataVolumeRate => "backoff-max-data-volume-rate", DataRate, D, None, once, Enforced, "Data rate in backoff (default: max-data-volume-rate).";
    BackoffMaxSmtpOut => "backoff-max-smtp-out", Uint, D, Some("20"), once, Enforced, "Connections in backoff.";
    BackoffRetryAfter => "backoff-retry-after", IntervalList, D, Some("1h"), once, Enforced, "Retry schedule in backoff.";
    BackoffRerouteToVirtualMta => "backoff-reroute-to-virtual-mta", Word, D, None, once, Enforced, "Move the queue to another VMTA while in backoff.";
    BackoffNotify => "backoff-notify", EmailList, D, None, once, Enforced, "Mail these addresses when the queue enters or leaves backoff (from postmaster, through Ember's own queues).";
    BackoffToNormalAfter => "backoff-to-normal-after", IntervalOrNever, D, Some("never"), once, Enforced, "Leave backoff automatically after this long.";
    BackoffToNormalAfterDelivery => "backoff-to-normal-after-delivery", Bool, D, Some("no"), once, Enforced, "Leave backoff on the first delivery.";
    BackoffUponAllSourcesDisabled => "backoff-upon-all-sources-disabled", Bool, D, Some("no"), once, Enforced, "Enter backoff when every source IP is disabled.";
    ReenableSourceIpAfter => "reenable-source-ip-after", IntervalOrNever, D, Some("never"), once, Enforced, "Default re-enable time for disable-source-ip.";
    DisabledSourceIpNotify => "disabled-source-ip-notify", EmailList, D, None, once, Enforced, "Mail these addresses when a source IP is disabled or enabled for the queue (from postmaster, through Ember's own queues).";
    LogDisabledIps => "log-disabled-ips", Bool, D, Some("no"), once, NoEffect, "Log source IP disabling: no effect, Ember always logs every source IP it disables or enables (queue mode events, also in show queues).";

    // ---- <domain>: adaptive delivery (beyond PowerMTA) --------------------------------------
    AdaptiveDelivery => "adaptive-delivery", Bool, D, Some("no"), once, Enforced, "Beyond PowerMTA: learn the queue's message rate and connections (per source IP) from the receiver's replies, between adaptive-min-* and max-msg-rate / max-smtp-out: push-backs cut at once, clean delivery probes upward once per adaptive-interval. On in the embedded default config.";
    AdaptiveMinMsgRate => "adaptive-min-msg-rate", Rate, D, Some("60/h"), once, Enforced, "Beyond PowerMTA: the lowest rate adaptive delivery cuts to.";
    AdaptiveMinSmtpOut => "adaptive-min-smtp-out", Uint, D, Some("1"), once, Enforced, "Beyond PowerMTA: the fewest connections adaptive delivery cuts to.";
    AdaptiveInterval => "adaptive-interval", Interval, D, Some("1m"), once, Enforced, "Beyond PowerMTA: anti-flap: at most one upward step (and one ratio cut) per interval; no upward step within an interval of a push-back.";
    AdaptiveRateReply => "adaptive-rate-reply", Regex, D, None, many, Enforced, "Beyond PowerMTA: a 4xx reply matching this /regex/ is a rate push-back, besides the built-in list (RP-00x, [TS0x], 4.7.28, 4.7.0 … rate, too many, try again later, throttled).";
    AdaptiveConnectionReply => "adaptive-connection-reply", Regex, D, None, many, Enforced, "Beyond PowerMTA: a reply matching this /regex/ is a connection push-back, besides the built-in list (too many connections, too many sessions, connection limit).";
    AdaptiveDeferralRatio => "adaptive-deferral-ratio", Ratio, D, Some("5%/200/10m"), once, Enforced, "Beyond PowerMTA: more than PERCENT of at least MIN-SAMPLE attempts deferred within WINDOW cuts the rate by a quarter (off turns it off).";
    AdaptiveComplaintRatio => "adaptive-complaint-ratio", Ratio, D, Some("0.2%/1000/1d"), once, Enforced, "Beyond PowerMTA: more than PERCENT of at least MIN-SAMPLE deliveries complained about (feedback-loop reports read by a <feedback-loop-processor>) within WINDOW cuts the rate by a quarter (off turns it off).";
    AdaptiveBounceRatio => "adaptive-bounce-ratio", Ratio, D, Some("3%/200/10m"), once, Enforced, "Beyond PowerMTA: more than PERCENT of at least MIN-SAMPLE attempts bounced within WINDOW cuts the rate by a quarter (off turns it off).";

    // ---- 2.4 <domain>: warm-up, DKIM, auth, TLS --------------------------------------------
    MaxColdVirtualMtaMsg => "max-cold-virtual-mta-msg", RateList, D, Some("0"), once, Enforced, "First N messages per day per domain go to the cold VMTA (a list ramps daily).";
    WarmupSchedule => "warmup-schedule", RateList, D, None, once, Enforced, "Beyond PowerMTA: this VMTA's cap per step for the queue (50/day,100/day,…); a step advances only while the last one stayed under the ceilings.";
    WarmupMaxDeferralRate => "warmup-max-deferral-rate", UintRange(0, 100), D, Some("10"), once, Enforced, "Beyond PowerMTA: percent of a step's attempts deferred above which the warm-up ramp pauses.";
    WarmupMaxBounceRate => "warmup-max-bounce-rate", UintRange(0, 100), D, Some("5"), once, Enforced, "Beyond PowerMTA: percent of a step's attempts bounced above which the warm-up ramp pauses.";
    WarmupOverflowVirtualMta => "warmup-overflow-virtual-mta", Word, D, None, once, Enforced, "Beyond PowerMTA: VMTA or pool taking mail beyond the step's warm-up cap (without it, the mail waits).";
    DkimSign => "dkim-sign", Enum(DKIM_SIGN), D, Some("no"), once, Enforced, "DKIM-sign with the matching domain-key.";
    DkimAlgorithm => "dkim-algorithm", Enum(DKIM_ALGORITHMS), D, Some("rsa-sha256"), once, Enforced, "Signature algorithm.";
    DkimBodyCanon => "dkim-body-canon", Enum(CANON), D, Some("relaxed"), once, Enforced, "Body canonicalization.";
    DkimHeadersCanon => "dkim-headers-canon", Enum(CANON), D, Some("relaxed"), once, Enforced, "Header canonicalization.";
    DkimHeaders => "dkim-headers", List, D, None, once, Enforced, "Headers added to the signed set.";
    DkimIdentity => "dkim-identity", Word, D, Some("sender-or-from"), once, Enforced, "Signing identity: ADDR, @DOMAIN, sender-or-from or strict-from.";
    DkimIdentityFallback => "dkim-identity-fallback", Word, D, None, once, Enforced, "Identity when no key matches the primary one.";
    DkimAddBodyLimit => "dkim-add-body-limit", Bool, D, Some("no"), once, Enforced, "Add l= (the canonicalized body length) to signatures.";
    DkimAddTimestamp => "dkim-add-timestamp", Bool, D, Some("no"), once, Enforced, "Add t= to signatures.";
    DkimExpireAfter => "dkim-expire-after", IntervalOrNever, D, Some("never"), once, Enforced, "Add x= this long after signing.";
    DkimQueryMethod => "dkim-query-method", Word, D, None, once, Enforced, "q= tag written into signatures (dns/txt is the only method RFC 6376 defines).";
    DkimDisallowAddingHeaders => "dkim-disallow-adding-headers", List, D, None, once, Enforced, "Over-sign these headers.";
    SecondDkimSign => "second-dkim-sign", Enum(DKIM_SIGN), D, Some("no"), once, Enforced, "Add a second signature.";
    SecondDkimIdentity => "second-dkim-identity", Word, D, Some("sender-or-from"), once, Enforced, "Identity of the second signature.";
    SecondDkimAlgorithm => "second-dkim-algorithm", Enum(DKIM_ALGORITHMS), D, Some("rsa-sha256"), once, Enforced, "Algorithm of the second signature.";
    DkSign => "dk-sign", Bool, D, Some("no"), once, NoEffect, "DomainKeys (RFC 4870, historic since 2007) signing; Ember signs with DKIM only.";
    CheckSpfOutbound => "check-spf-outbound", Bool, D, Some("no"), once, Pending, "Bounce mail that would fail SPF from the chosen source IP. Pending: needs an SPF evaluation per queue and source IP, cached by sender domain; not built yet.";
    CheckMfromOutbound => "check-mfrom-outbound", Bool, D, Some("no"), once, NoEffect, "Legacy PowerMTA 4.x directive (Sender ID MAIL FROM check), no effect; Ember checks SPF with check-spf-outbound.";
    CheckPraOutbound => "check-pra-outbound", Bool, D, Some("no"), once, NoEffect, "Legacy PowerMTA 4.x directive (Sender ID PRA check, RFC 4407, historic), no effect.";
    AddGmToken => "add-gm-token", Bool, D, Some("no"), once, NoEffect, "Legacy PowerMTA 4.x directive (Gmail feedback-loop token header), no effect; write a Feedback-ID header instead.";
    SparkpostIpPool => "sparkpost-ip-pool", Word, D, None, once, Enforced, "SparkPost IP pool for mail relayed to SparkPost: with add-x-msys-api-header, X-MSYS-API: {\"options\":{\"ip_pool\":\"NAME\"}} is added to the queue's messages (merged into the message's own X-MSYS-API JSON, whose ip_pool wins).";
    AddXMsysApiHeader => "add-x-msys-api-header", Bool, D, Some("no"), once, Enforced, "Add the X-MSYS-API header SparkPost reads (options such as sparkpost-ip-pool) to the queue's messages, merged into an X-MSYS-API JSON object the message already has.";
    AuthUsername => "auth-username", Word, D, None, once, Enforced, "Outbound SMTP AUTH user.";
    AuthPassword => "auth-password", Text, D, None, once, Enforced, "Outbound SMTP AUTH password.";
    UseUnencryptedPlainAuth => "use-unencrypted-plain-auth", Bool, D, Some("no"), once, Enforced, "Allow PLAIN/LOGIN without TLS.";
    UseStarttls => "use-starttls", Bool, D, Some("yes"), once, Enforced, "Opportunistic STARTTLS.";
    RequireStarttls => "require-starttls", Bool, D, Some("no"), once, Enforced, "Never deliver in clear text.";
    UseDane => "use-dane", Bool, D, Some("no"), once, Enforced, "DANE for SMTP (RFC 7672): when the MX records and an MX host's addresses are DNSSEC-validated, its TLSA records (DANE-TA 2, DANE-EE 3) at _25._tcp.HOST bind its certificate: STARTTLS is mandatory and the certificate must match, otherwise the delivery is deferred (4.7.5, naming DANE); a failed (bogus) TLSA or MX lookup defers too. DANE wins over MTA-STS where it applies. Trusts the AD bit of a validating resolver on loopback only (name-server 127.0.0.1); with any other resolver DANE finds nothing secure and delivery is as without it. The embedded default configuration turns it on.";
    UseMtaSts => "use-mta-sts", Bool, D, Some("no"), once, Enforced, "Apply the recipient domain's MTA-STS policy (RFC 8461): discovered by TXT, fetched over HTTPS (system roots plus smtp-tls-ca-file), cached on disk for max_age; enforce mode delivers only to MX hosts the policy names, over STARTTLS with a certificate valid for the MX name, else defers; testing mode delivers and records the failure for TLS-RPT. The embedded default configuration turns it on.";
    ReuseSslSession => "reuse-ssl-session", Bool, D, Some("no"), once, Enforced, "TLS session resumption: yes keeps a session cache per queue (per MX name), so the queue's next connections resume instead of a full handshake; no resumes nothing.";
    SmtpTlsAllowTlsv1 => "smtp-tls-allow-tlsv1", Bool, D, Some("no"), once, NoEffect, "TLS 1.0 outbound: never used, rustls implements TLS 1.2 and 1.3 only.";
    SmtpTlsAllowTlsv11 => "smtp-tls-allow-tlsv1.1", Bool, D, Some("yes"), once, NoEffect, "TLS 1.1 outbound: never used, rustls implements TLS 1.2 and 1.3 only.";
    SmtpTlsAllowTlsv12 => "smtp-tls-allow-tlsv1.2", Bool, D, Some("yes"), once, Enforced, "Allow TLS 1.2 outbound (a receiver with nothing newer then fails the handshake: clear text, or no delivery under require-starttls).";
    SmtpTlsAllowTlsv13 => "smtp-tls-allow-tlsv1.3", Bool, D, Some("yes"), once, Enforced, "Allow TLS 1.3 outbound; both versions no is a config error.";
    SmtpTlsCaFile => "smtp-tls-ca-file", File, D, None, once, Enforced, "Verify receivers against this CA bundle.";
    SmtpTlsCiphers => "smtp-tls-ciphers", Text, D, Some("HIGH:!ADH:@STRENGTH"), once, NoEffect, "OpenSSL cipher string for outbound TLS 1.2; rustls offers only its own modern AEAD suites, which an OpenSSL string cannot select.";
    SmtpTlsTlsv13Ciphersuites => "smtp-tls-tlsv1.3-ciphersuites", Text, D, None, once, Enforced, "Outbound TLS 1.3 suites, OpenSSL names separated by colons, in preference order: TLS_AES_256_GCM_SHA384, TLS_AES_128_GCM_SHA256, TLS_CHACHA20_POLY1305_SHA256 (other names, CCM included, are a config error).";
    SmtpClientCertificate => "smtp-client-certificate", FileWithPassword, D, None, once, Enforced, "Client certificate presented on outbound STARTTLS when the receiver asks: one PEM file with the chain and an unencrypted key.";
    LogResolution => "log-resolution", Bool, D, Some("no"), once, Enforced, "Log each MX resolution of the queue: the hosts with preference and addresses, or why it failed.";
    LogTransferFailures => "log-transfer-failures", Bool, D, Some("no"), once, Enforced, "Log (warn) every connection broken after the message data started, with what became of its recipients.";
    LogMessages => "log-messages", Bool, D, Some("no"), once, Pending, "Log each message. Pending: no per-message log line yet; the accounting file records each message's every outcome.";

    // ---- 2.4 <domain>: non-SMTP delivery ---------------------------------------------------
    Command => "command", Text, D, None, once, Enforced, "Command for type pipe, run once per recipient without a shell, the message on stdin; its sysexits status delivers (0), defers (75, 71, other) or bounces (64-78).";
    MacroVariablesPreserveCase => "macro-variables-preserve-case", Bool, D, Some("no"), once, Enforced, "Keep the case of $user and $domain in command and file-destination (lower-cased by default).";
    FileFormat => "file-format", Enum(FILE_FORMATS), D, Some("newfile-plain"), once, Enforced, "Format for type file: a new file per recipient (plain, or with pickup x-sender/x-receiver lines), or appended to an mbox.";
    FileDestination => "file-destination", Text, D, None, once, Enforced, "Directory (newfile formats) or mbox file (append-mbox) for type file; takes $user, $domain and other recipient macros.";
    DiscardAsBounce => "discard-as-bounce", Bool, D, Some("no"), once, Enforced, "Type discard bounces each recipient (5.3.0) instead of recording it as delivered.";
    HttpDeliveryUrl => "http-delivery-url", Word, D, None, once, Pending, "Webhook URL for type http-delivery. Pending: needs an HTTP client design.";
    HttpDeliveryExtraHeaders => "http-delivery-extra-headers", File, D, None, once, Pending, "Extra HTTP headers file for type http-delivery. Pending: needs an HTTP client design.";

    // ---- 2.5 <virtual-mta> and <virtual-mta-pool> ------------------------------------------
    MaxSmtpMsgRate => "max-smtp-msg-rate", Rate, VP, Some("unlimited"), once, Enforced, "Attempted recipients per interval for the whole VMTA.";
    MaxSmtpDataVolumeRate => "max-smtp-data-volume-rate", DataRate, VP, Some("unlimited"), once, Enforced, "Bytes per interval for the whole VMTA.";
    ColdVirtualMta => "cold-virtual-mta", Word, VP, None, many, Enforced, "Warm-up diversion target (round robin when repeated).";
    VirtualMtaMember => "virtual-mta", Word, POOL, None, many, Enforced, "Pool member.";

    // ---- 2.6, 2.7 pattern lists ------------------------------------------------------------
    MailFromPattern => "mail-from", PatternEntry, PATTERN_LIST, None, many, Enforced, "mail-from /regex/ RESULT.";
    RcptToPattern => "rcpt-to", PatternEntry, PATTERN_LIST, None, many, Enforced, "rcpt-to /regex/ RESULT.";
    HeaderPattern => "header", PatternEntry, PATTERN_LIST, None, many, Enforced, "header NAME /regex/ RESULT.";
    CatchAllPattern => "*", PatternEntry, PATTERN_LIST, None, many, Enforced, "Catch-all RESULT.";
    Reply => "reply", ReplyRule, SMTP_PATTERN_LIST, None, many, Enforced, "reply /regex/ ACTION[,ACTION…].";

    // ---- 2.8 accounting --------------------------------------------------------------------
    Records => "records", List, ACCT_FILE, Some("d,b"), once, Enforced, "Record types written: d, b, t, tq, r, f, rb, rs.";
    RecordFields => "record-fields", Words { min: 2, max: 2 }, ACCT_FILE, None, many, Enforced, "TYPE FIELDLIST (* , names, !exclusions, header_NAME).";
    MapHeaderToField => "map-header-to-field", Words { min: 3, max: 3 }, ACCT_FILE | BF, None, many, Enforced, "TYPE header_NAME FIELD: the header of the original message included in a report (f, rb, rs records) is written in FIELD, a record field (replaced when the header is present; added as a column when the type lacks it) or a new column of that name (acct-file only). In a processor block it applies to that processor's records in every file. d, b, t, tq and r records carry no headers in Ember (a warning says so).";
    MoveInterval => "move-interval", Interval, ACCT_FILE, Some("1d"), once, Enforced, "Rotate the file this often.";
    MaxSize => "max-size", Size, ACCT_FILE | EVENT_SINK, Some("250M"), once, Enforced, "Rotate the file at this size (an <acct-file>, or the JSON-lines file of an <event-sink> of type file).";
    MoveTo => "move-to", Dir, ACCT_FILE, None, once, Enforced, "Directory rotated files move to.";
    DeleteAfter => "delete-after", IntervalOrNever, ACCT_FILE, Some("8d"), once, Enforced, "Delete rotated files after this long.";
    QueueFilter => "queue-filter", List, ACCT_FILE, None, once, Enforced, "Only (or, with !, never) these queues.";
    IsoTimes => "iso-times", Bool, ACCT_FILE, Some("yes"), once, Enforced, "ISO timestamps instead of time_t.";
    UserString => "user-string", Text, ACCT_FILE, None, once, Enforced, "Value of the userString field.";
    WorldReadable => "world-readable", Bool, ACCT_FILE, Some("no"), once, Enforced, "Make the file world-readable.";
    CountMovedRecords => "count-moved-records", Bool, ACCT_FILE, Some("no"), once, Pending, "Count records in rotated files. Pending: needs a record count kept per accounting file across restarts.";
    Sync => "sync", Bool, ACCT_FILE, Some("no"), once, Enforced, "fsync each record.";
    PrivacyPolicy => "privacy-policy", Words { min: 1, max: 2 }, ACCT_FILE | SIGNALS, Some("retain"), once, Enforced, "What the recipient columns (rcpt, orcpt) of the file hold: retain (the address), redact [STR] (local part replaced by STR, default redacted), siphash KEY (32 hex digits or 16 characters) or hmac-sha256 KEY (local part replaced by h-HEX, a keyed hash of the lower-cased address, so one recipient always reads the same); the domain stays. In <signals> it has no effect.";
    WriteTimeout => "write-timeout", Interval, ACCT_FILE, Some("1m"), once, Enforced, "For <acct-file |COMMAND>: a command that takes no records for this long has failed; it is killed and started again after retry-interval.";
    RetryInterval => "retry-interval", Interval, ACCT_FILE, Some("5m"), once, Enforced, "For <acct-file |COMMAND>: after a write error, a write-timeout or the command exiting, it is started again (header line first) this long after; records in between are lost and counted.";

    // ---- event log and <event-sink> (beyond PowerMTA) -------------------------------------
    EventLog => "event-log", Enum(EVENT_LOG_MODES), GLOBAL, Some("auto"), once, Enforced, "The durable event log (reception, attempts, outcomes, complaints, suppression, mode changes) that feeds <event-sink> blocks and the history (GET /api/v1/events, ember trace): auto keeps it when an <event-sink> is configured, yes always, no never (restart needed).";
    EventLogDir => "event-log-dir", Dir, GLOBAL, None, once, Enforced, "Directory of the event log's segments and the sinks' cursors; default events/ in the first spool directory (created there); a directory given here must exist (restart needed).";
    EventLogRetain => "event-log-retain", Interval, GLOBAL, Some("7d"), once, Enforced, "Events are kept at least this long for the history; a sink's retain keeps them longer.";
    EventSinkType => "type", Enum(EVENT_SINK_TYPES), EVENT_SINK, None, once, Enforced, "Where the sink sends events: http (POST a JSON array per batch), nats (JetStream publish) or file (JSON lines).";
    EventSinkUrl => "url", Word, EVENT_SINK, None, once, Enforced, "http: the http:// or https:// URL batches are POSTed to; nats: the nats://HOST:PORT server; file: the path of the JSON-lines file.";
    EventSinkSecret => "secret", Text, EVENT_SINK, None, once, Enforced, "http: key of the HMAC-SHA256 of each body, sent as X-Ember-Signature: sha256=HEX.";
    EventSinkSubject => "subject", Word, EVENT_SINK, Some("ember.events"), once, Enforced, "nats: the subject events are published on (a JetStream stream must take it).";
    EventSinkEvents => "events", List, EVENT_SINK, Some("reception,delivery,deferral,bounce,complaint,unsubscribe,suppression,adaptive,remote-status"), once, Enforced, "Event types the sink takes: reception, delivery, deferral, bounce, complaint, unsubscribe, suppression, adaptive (queue mode changes), remote-status.";
    EventSinkBatchSize => "batch-size", UintRange(1, 10000), EVENT_SINK, Some("100"), once, Enforced, "Most events in one batch (one POST, one file write).";
    EventSinkMaxDelay => "max-delay", Interval, EVENT_SINK, Some("1s"), once, Enforced, "A batch smaller than batch-size is sent once its oldest event has waited this long.";
    EventSinkRetain => "retain", Interval, EVENT_SINK, Some("7d"), once, Enforced, "How long the log keeps events this sink has not taken: it retries (with backoff) until then; older events are deleted and counted as lost.";

    // ---- 2.8 processors, lists and other blocks --------------------------------------------
    DeliverUnmatchedEmail => "deliver-unmatched-email", Bool, BF, Some("yes"), once, Enforced, "Mail to the processor's addresses that is not a report it can read is also delivered to its address like other mail (route the domain to a mailbox with <domain>); it is kept in unprocessed-reports either way.";
    DeliverMatchedEmail => "deliver-matched-email", Bool, BF, Some("no"), once, Enforced, "A report the processor read (and recorded) is also delivered to its address like other mail.";
    ForwardUnmatchedTo => "forward-unmatched-to", Email, BF, None, many, Enforced, "Forward unrecognised mail here.";
    ForwardErrorsTo => "forward-errors-to", Email, BF, None, many, Enforced, "Forward unparsable reports here.";
    SuppressHardBounces => "suppress-hard-bounces", Bool, BOUNCE_PROCESSOR, Some("no"), once, Enforced, "Add hard-bounced recipients to suppression.";
    Address => "address", Word, ADDRESS_LIST | SUPPRESSION_LIST, None, many, Enforced, "Address, local part or /regex/.";
    AddressFile => "address-file", File, ADDRESS_LIST | SUPPRESSION_LIST, None, many, Enforced, "File of addresses.";
    DomainEntry => "domain", DomainPattern, ADDRESS_LIST | SUPPRESSION_LIST, None, many, Enforced, "A whole domain.";
    BodyPatternFile => "body-pattern-file", File, EMAIL_PATTERNS, None, many, Enforced, "File of regular expressions, one a line (# comments), read against mail the processor does not recognise as ARF/JMRP or a DSN; the first that matches with a (?P<rcpt>…) capture makes it a complaint or bounce (also orig, status, diag, type, envId captures). A pattern that does not compile refuses the configuration; one without rcpt is ignored with a warning.";
    LogMatchInfo => "log-match-info", Bool, EMAIL_PATTERNS, Some("no"), once, Enforced, "Log which body-pattern-file line matched a message and what it captured.";
    RewriteMailFrom => "mail-from", Words { min: 2, max: 2 }, REWRITE_LIST, None, many, Enforced, "SOURCE TARGET (a@b, a@*, *@b, *@*, <>); a * in TARGET keeps that part of the sender; the first matching line wins.";
    FromDomain => "from-domain", Words { min: 2, max: 2 }, REWRITE_LIST, None, many, Enforced, "PATTERN TARGETDOMAIN: the domain of the From header's address, when it matches the domain pattern, becomes TARGETDOMAIN (the first matching line wins).";
    Mx => "mx", Words { min: 2, max: 3 }, MX_ROLLUP, None, many, Enforced, "MXHOST|*.pattern NAME.rollup [rollup-by-ip].";
    PrecachedDomainsFile => "precached-domains-file", File, DNS, None, once, Pending, "Domains kept resolved. Pending: Ember resolves on demand and caches by TTL; a refresh-ahead list is not built yet.";
    PrecachedRefreshInterval => "precached-refresh-interval", Interval, DNS, Some("5m"), once, Pending, "Refresh interval of precached domains. Pending: as precached-domains-file.";
    PrecachedMaxDomains => "precached-max-domains", Uint, DNS, Some("500"), once, Pending, "Most precached domains. Pending: as precached-domains-file.";
    ProxyServer => "server", Word, PROXY, None, once, Pending, "Proxy host:port. Pending: as use-proxy.";
    ProxyClient => "client", Words { min: 2, max: 2 }, PROXY, None, many, Pending, "IP[:port] HOSTNAME seen by receivers. Pending: as use-proxy.";
    ApiKey => "api-key", Word, TX_API | SIGNALS, None, many, Enforced, "API key (`<transmissions-api>`: the raw key a client sends as `Authorization`).";
    LogRequests => "log-requests", Bool, TX_API, Some("no"), once, Enforced, "Log one line per HTTP injection request: client, method, path, status, time taken (never the message).";
    UploadUrl => "upload-url", Word, SIGNALS, None, once, NoEffect, "SparkPost Signals upload URL; Ember uploads nothing to SparkPost Signals.";
    EngagementTracking => "engagement-tracking", Bool, SIGNALS, Some("no"), once, NoEffect, "SparkPost Signals engagement tracking; Ember uploads nothing to SparkPost Signals.";
    CustomMessageIdHeader => "custom-message-id-header", Word, SIGNALS, None, once, NoEffect, "SparkPost Signals message id header; Ember uploads nothing to SparkPost Signals.";
    ProcessXSpSubaccountId => "process-x-sp-subaccount-id", Bool, SIGNALS, Some("no"), once, NoEffect, "SparkPost Signals subaccount header; Ember uploads nothing to SparkPost Signals.";
    RetainXSpSubaccountId => "retain-x-sp-subaccount-id", Bool, SIGNALS, Some("no"), once, NoEffect, "SparkPost Signals subaccount header; Ember uploads nothing to SparkPost Signals.";
    LogVerbose => "log-verbose", Bool, SIGNALS, Some("no"), once, NoEffect, "SparkPost Signals upload logging; Ember uploads nothing to SparkPost Signals.";
    SenderOrFrom => "sender-or-from", Word, SIGNALS_FILTER, None, many, NoEffect, "SparkPost Signals filter; Ember uploads nothing to SparkPost Signals.";
}

/// Looks a directive up by name for a block. A name may be declared more than once with
/// disjoint scopes (`mail-from` in `<pattern-list>` and in `<rewrite-list>`).
pub fn lookup(name: &str, block: u32) -> Lookup {
    let mut found = None;
    for d in DIRECTIVES.iter().filter(|d| d.name == name) {
        if d.allowed_in(block) {
            return Lookup::Found(d);
        }
        found.get_or_insert(d);
    }
    match found {
        Some(d) => Lookup::WrongScope(d),
        None => Lookup::Unknown,
    }
}

pub enum Lookup {
    Found(&'static DirectiveDef),
    WrongScope(&'static DirectiveDef),
    Unknown,
}

impl Dir {
    pub fn def(self) -> &'static DirectiveDef {
        &DIRECTIVES[self as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_indexed_by_id_and_names_are_unique() {
        for (i, d) in DIRECTIVES.iter().enumerate() {
            assert_eq!(d.id as usize, i, "{}", d.name);
            let clashes = DIRECTIVES.iter().filter(|o| o.name == d.name && o.scope.0 & d.scope.0 != 0).count();
            assert_eq!(clashes, 1, "{} is declared twice for one scope", d.name);
        }
    }
}
