//! The rustls certificate verifier for DANE (RFC 7672 §3): the server's chain is checked against
//! the TLSA records of the MX host it was reached by (the TLS server name).
//!
//! - DANE-EE(3): the leaf certificate (selector 0) or its key (selector 1) matches; neither the
//!   name nor the validity period is checked (§3.1.1).
//! - DANE-TA(2): a certificate of the presented chain (or a full certificate in a `2 0 0`
//!   record) matches; the leaf must chain to it and be valid for the MX host name, which is
//!   the TLSA base domain (§3.2.2), within its validity period.
//! - A host with an unusable TLSA RRset gets TLS without authentication (§3.1.3); a host
//!   without TLSA records (in a domain where others have some) any certificate.
//!
//! The handshake signatures are still checked with the provider's algorithms.

use std::collections::HashMap;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, RootCertStore, SignatureScheme};

use super::tlsa::{DANE_EE, DANE_TA, Tlsa};

/// Why no TLSA record authenticated the server: shown in the deferral and the log.
#[derive(Debug, thiserror::Error)]
#[error("matches none of the TLSA records of {host} ({records})")]
pub struct NoTlsaMatch {
    pub host: String,
    pub records: String,
}

/// Verifies certificates against the usable TLSA records of each MX host (by server name).
#[derive(Debug)]
pub struct DaneVerifier {
    /// MX host name (lower case) → its usable TLSA records. Hosts not here are not
    /// authenticated.
    hosts: HashMap<String, Arc<Vec<Tlsa>>>,
    provider: Arc<CryptoProvider>,
}

impl DaneVerifier {
    pub fn new(hosts: HashMap<String, Arc<Vec<Tlsa>>>) -> DaneVerifier {
        DaneVerifier { hosts, provider: Arc::new(rustls::crypto::ring::default_provider()) }
    }
}

/// Checks the chain `leaf` + `intermediates` against `records` for `name` at `now`.
pub fn check(
    records: &[Tlsa],
    leaf: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    name: &ServerName<'_>,
    now: UnixTime,
    provider: &Arc<CryptoProvider>,
) -> Result<(), CertificateError> {
    let usable: Vec<&Tlsa> = records.iter().filter(|r| r.is_usable()).collect();
    if usable.iter().any(|r| r.usage == DANE_EE && r.matches(leaf)) {
        return Ok(());
    }
    // Trust anchors: certificates of the chain a DANE-TA record names, and full certificates
    // published in `2 0 0` records.
    let mut anchors: Vec<CertificateDer<'_>> =
        intermediates.iter().filter(|c| usable.iter().any(|r| r.usage == DANE_TA && r.matches(c))).cloned().collect();
    anchors.extend(
        usable
            .iter()
            .filter(|r| r.usage == DANE_TA && r.selector == 0 && r.matching == 0)
            .map(|r| CertificateDer::from(r.data.clone())),
    );
    let mut last = None;
    for anchor in anchors {
        let mut roots = RootCertStore::empty();
        if roots.add(anchor).is_err() {
            continue;
        }
        let verifier = match WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider)).build()
        {
            Ok(v) => v,
            Err(_) => continue,
        };
        match verifier.verify_server_cert(leaf, intermediates, name, &[], now) {
            Ok(_) => return Ok(()),
            Err(rustls::Error::InvalidCertificate(e)) => last = Some(e),
            Err(_) => {}
        }
    }
    // A trust anchor matched but the chain or name did not: that error says more.
    Err(last.unwrap_or_else(|| {
        let records: Vec<String> = usable.iter().map(ToString::to_string).collect();
        CertificateError::Other(OtherError(Arc::new(NoTlsaMatch {
            host: name.to_str().into_owned(),
            records: records.join(", "),
        })))
    }))
}

impl ServerCertVerifier for DaneVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let host = server_name.to_str().to_ascii_lowercase();
        let Some(records) = self.hosts.get(host.trim_end_matches('.')) else {
            return Ok(ServerCertVerified::assertion());
        };
        check(records, end_entity, intermediates, server_name, now, &self.provider)
            .map(|()| ServerCertVerified::assertion())
            .map_err(rustls::Error::InvalidCertificate)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

    struct Chain {
        ca: CertificateDer<'static>,
        ca_key: KeyPair,
        leaf: CertificateDer<'static>,
        leaf_key: KeyPair,
    }

    fn chain(name: &str, expired: bool) -> Chain {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, "DANE test CA");
        let ca_key = KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let mut params = CertificateParams::new(vec![name.to_string()]).unwrap();
        if expired {
            params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        }
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = params.signed_by(&leaf_key, &ca, &ca_key).unwrap();
        Chain { ca: ca.der().clone(), ca_key, leaf: leaf.der().clone(), leaf_key }
    }

    fn sha256(b: &[u8]) -> Vec<u8> {
        ring::digest::digest(&ring::digest::SHA256, b).as_ref().to_vec()
    }

    fn run(
        records: &[Tlsa],
        c: &Chain,
        intermediates: &[CertificateDer<'_>],
        name: &str,
    ) -> Result<(), CertificateError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let name = ServerName::try_from(name.to_string()).unwrap();
        check(records, &c.leaf, intermediates, &name, UnixTime::now(), &provider)
    }

    fn ee(data: Vec<u8>) -> Tlsa {
        Tlsa { usage: 3, selector: 1, matching: 1, data }
    }

    fn ta(data: Vec<u8>) -> Tlsa {
        Tlsa { usage: 2, selector: 1, matching: 1, data }
    }

    #[test]
    fn dane_ee_matches_the_leaf_key_whatever_its_name_and_dates() {
        let c = chain("other-name.example", true);
        let good = ee(sha256(&c.leaf_key.public_key_der()));
        assert!(run(std::slice::from_ref(&good), &c, &[], "mx.example.com").is_ok());
        let wrong = ee(sha256(&c.ca_key.public_key_der()));
        let err = run(std::slice::from_ref(&wrong), &c, &[], "mx.example.com").unwrap_err();
        let CertificateError::Other(why) = err else { panic!("{err:?}") };
        assert!(why.to_string().starts_with("matches none of the TLSA records of mx.example.com (3 1 1 "), "{why}");
        // One matching record among others is enough; unusable records are skipped.
        let pkix = Tlsa { usage: 1, ..good.clone() };
        assert!(run(&[wrong.clone(), good], &c, &[], "mx.example.com").is_ok());
        assert!(run(&[pkix, wrong], &c, &[], "mx.example.com").is_err());
    }

    #[test]
    fn dane_ta_needs_the_anchor_in_the_chain_a_valid_chain_and_the_mx_name() {
        let c = chain("mx.example.com", false);
        let anchor = ta(sha256(&c.ca_key.public_key_der()));
        assert!(run(std::slice::from_ref(&anchor), &c, std::slice::from_ref(&c.ca), "mx.example.com").is_ok());
        // The anchor must be presented (or published in full)…
        assert!(run(std::slice::from_ref(&anchor), &c, &[], "mx.example.com").is_err());
        let full = Tlsa { usage: 2, selector: 0, matching: 0, data: c.ca.as_ref().to_vec() };
        assert!(run(&[full], &c, &[], "mx.example.com").is_ok());
        // …and the leaf must carry the MX host name.
        let err = run(std::slice::from_ref(&anchor), &c, std::slice::from_ref(&c.ca), "mx.other.test").unwrap_err();
        assert!(
            matches!(err, CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }),
            "{err:?}"
        );
        // A DANE-TA record naming the leaf's own key is not a trust anchor.
        let leaf_as_ta = ta(sha256(&c.leaf_key.public_key_der()));
        assert!(run(&[leaf_as_ta], &c, &[], "mx.example.com").is_err());
    }

    #[test]
    fn dane_ta_checks_the_validity_period() {
        let c = chain("mx.example.com", true);
        let anchor = ta(sha256(&c.ca_key.public_key_der()));
        let err = run(&[anchor], &c, std::slice::from_ref(&c.ca), "mx.example.com").unwrap_err();
        assert!(matches!(err, CertificateError::Expired | CertificateError::ExpiredContext { .. }), "{err:?}");
    }

    #[test]
    fn the_verifier_authenticates_only_hosts_with_usable_records() {
        let c = chain("mx.example.com", false);
        let mut hosts = HashMap::new();
        hosts.insert("mx.example.com".to_string(), Arc::new(vec![ee(vec![0; 32])]));
        let v = DaneVerifier::new(hosts);
        let verify = |name: &str| {
            let name = ServerName::try_from(name.to_string()).unwrap();
            v.verify_server_cert(&c.leaf, &[], &name, &[], UnixTime::now())
        };
        assert!(matches!(verify("mx.example.com"), Err(rustls::Error::InvalidCertificate(_))));
        assert!(verify("MX.Example.COM").is_err());
        assert!(verify("mx2.example.com").is_ok());
    }
}
