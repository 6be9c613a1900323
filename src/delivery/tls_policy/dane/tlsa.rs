//! TLSA records as DANE for SMTP (RFC 7672 §3.1) uses them: which records are usable, and
//! whether a certificate (or its public key) matches one. Pure functions over DER bytes.
//!
//! SMTP uses DANE-TA(2) and DANE-EE(3) only; PKIX-TA(0) and PKIX-EE(1) presume a web-PKI trust
//! store that SMTP servers cannot be expected to chain to, so RFC 7672 §3.1.3 makes them
//! unusable, as are unknown selectors and matching types and digests of the wrong length.

use std::fmt;

use rustls::pki_types::CertificateDer;

/// DANE-TA(2): the record names a trust anchor of the server's chain.
pub const DANE_TA: u8 = 2;
/// DANE-EE(3): the record names the server's own certificate or key.
pub const DANE_EE: u8 = 3;

/// One TLSA record (RFC 6698 §2.1).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Tlsa {
    pub usage: u8,
    /// 0: the full certificate; 1: its SubjectPublicKeyInfo.
    pub selector: u8,
    /// 0: the data itself; 1: its SHA-256; 2: its SHA-512.
    pub matching: u8,
    pub data: Vec<u8>,
}

impl Tlsa {
    pub fn from_hickory(r: &hickory_resolver::proto::rr::rdata::TLSA) -> Tlsa {
        Tlsa {
            usage: u8::from(r.cert_usage),
            selector: u8::from(r.selector),
            matching: u8::from(r.matching),
            data: r.cert_data.clone(),
        }
    }

    /// Whether an SMTP client may use the record (RFC 7672 §3.1).
    pub fn is_usable(&self) -> bool {
        let length_ok = match self.matching {
            0 => !self.data.is_empty(),
            1 => self.data.len() == 32,
            2 => self.data.len() == 64,
            _ => false,
        };
        matches!(self.usage, DANE_TA | DANE_EE) && matches!(self.selector, 0 | 1) && length_ok
    }

    /// Whether `cert` (DER) matches the record's selector and matching type. A certificate whose
    /// public key cannot be found matches no selector-1 record.
    pub fn matches(&self, cert: &CertificateDer<'_>) -> bool {
        let selected = match self.selector {
            0 => cert.as_ref().to_vec(),
            1 => match spki(cert) {
                Some(spki) => spki,
                None => return false,
            },
            _ => return false,
        };
        match self.matching {
            0 => selected == self.data,
            1 => ring::digest::digest(&ring::digest::SHA256, &selected).as_ref() == self.data.as_slice(),
            2 => ring::digest::digest(&ring::digest::SHA512, &selected).as_ref() == self.data.as_slice(),
            _ => false,
        }
    }
}

impl fmt::Display for Tlsa {
    /// Presentation form with the data shortened: `3 1 1 8a2f…c3d1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex: String = self.data.iter().map(|b| format!("{b:02x}")).collect();
        let shown = if hex.len() > 16 { format!("{}…{}", &hex[..8], &hex[hex.len() - 8..]) } else { hex };
        write!(f, "{} {} {} {shown}", self.usage, self.selector, self.matching)
    }
}

/// The DER SubjectPublicKeyInfo of a certificate (webpki parses it).
pub fn spki(cert: &CertificateDer<'_>) -> Option<Vec<u8>> {
    let anchor = webpki::anchor_from_trusted_cert(cert).ok()?;
    Some(webpki::spki_for_anchor(&anchor).as_ref().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(usage: u8, selector: u8, matching: u8, data: Vec<u8>) -> Tlsa {
        Tlsa { usage, selector, matching, data }
    }

    #[test]
    fn only_dane_usages_with_known_selectors_and_digests_are_usable() {
        assert!(record(3, 1, 1, vec![0; 32]).is_usable());
        assert!(record(2, 0, 2, vec![0; 64]).is_usable());
        assert!(record(3, 0, 0, vec![1, 2, 3]).is_usable());
        // PKIX-TA / PKIX-EE: unusable for SMTP.
        assert!(!record(0, 1, 1, vec![0; 32]).is_usable());
        assert!(!record(1, 1, 1, vec![0; 32]).is_usable());
        // Unknown selector or matching type, or a digest of the wrong length.
        assert!(!record(3, 2, 1, vec![0; 32]).is_usable());
        assert!(!record(3, 1, 3, vec![0; 32]).is_usable());
        assert!(!record(3, 1, 1, vec![0; 31]).is_usable());
        assert!(!record(3, 1, 2, vec![0; 32]).is_usable());
    }

    #[test]
    fn certificates_and_keys_match_by_each_selector_and_matching_type() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["mx.example.com".into()]).unwrap().self_signed(&key).unwrap();
        let der = cert.der().clone();
        let spki_der = key.public_key_der();
        assert_eq!(spki(&der).as_deref(), Some(spki_der.as_slice()));
        let sha256 = |b: &[u8]| ring::digest::digest(&ring::digest::SHA256, b).as_ref().to_vec();
        let sha512 = |b: &[u8]| ring::digest::digest(&ring::digest::SHA512, b).as_ref().to_vec();
        assert!(record(3, 1, 1, sha256(&spki_der)).matches(&der));
        assert!(record(3, 1, 2, sha512(&spki_der)).matches(&der));
        assert!(record(3, 1, 0, spki_der.clone()).matches(&der));
        assert!(record(3, 0, 1, sha256(der.as_ref())).matches(&der));
        assert!(record(3, 0, 0, der.as_ref().to_vec()).matches(&der));
        // The other selector's digest, or another key, does not match.
        assert!(!record(3, 0, 1, sha256(&spki_der)).matches(&der));
        let other = rcgen::KeyPair::generate().unwrap();
        assert!(!record(3, 1, 1, sha256(&other.public_key_der())).matches(&der));
        assert_eq!(record(3, 1, 1, vec![0xab; 32]).to_string(), "3 1 1 abababab…abababab");
    }
}
