//! How a TLS session is named in the log and in accounting, the same for the server side
//! (ingress STARTTLS) and the client side (delivery), so both read alike.

use rustls::ProtocolVersion;

/// The protocol and cipher suite of a TLS session, either side, spelled as accounting and the
/// log show them ("TLSv1.3", "TLS_AES_256_GCM_SHA384").
pub fn names(conn: &rustls::CommonState) -> (String, String) {
    let protocol = match conn.protocol_version() {
        Some(ProtocolVersion::TLSv1_3) => "TLSv1.3".to_string(),
        Some(ProtocolVersion::TLSv1_2) => "TLSv1.2".to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    };
    let cipher = conn.negotiated_cipher_suite().map_or_else(String::new, |s| {
        let suite = s.suite();
        match suite.as_str() {
            // rustls spells the TLS 1.3 suites TLS13_*; IANA (and OpenSSL) say TLS_*.
            Some(name) => name.strip_prefix("TLS13_").map_or_else(|| name.to_string(), |rest| format!("TLS_{rest}")),
            None => format!("{suite:?}"),
        }
    });
    (protocol, cipher)
}
