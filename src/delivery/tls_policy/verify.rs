//! The web PKI as MTA-STS means it (RFC 8461 §4.2): the system's trusted roots plus, for a
//! private CA, the domain's `smtp-tls-ca-file`; the certificate must be valid for the name
//! asked. One verifier per CA file, built once (reading the system store is blocking file I/O,
//! so callers build on a blocking thread).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use rustls::RootCertStore;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

#[derive(Debug, thiserror::Error)]
pub enum VerifierError {
    #[error("cannot read smtp-tls-ca-file {}: {source}", path.display())]
    CaFile {
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("no trusted roots: the system store is empty and no smtp-tls-ca-file is set")]
    NoRoots,
    #[error("cannot build the certificate verifier: {0}")]
    Build(String),
}

/// Verifiers by CA file (`None`: the system roots only).
#[derive(Default)]
pub struct Verifiers {
    built: Mutex<HashMap<Option<PathBuf>, Arc<dyn ServerCertVerifier>>>,
}

impl Verifiers {
    /// The verifier for `ca_file` if it was built already.
    pub fn built(&self, ca_file: Option<&Path>) -> Option<Arc<dyn ServerCertVerifier>> {
        self.built.lock().unwrap_or_else(|p| p.into_inner()).get(&ca_file.map(Path::to_path_buf)).cloned()
    }

    /// The verifier for `ca_file`; blocking the first time (reads the system store and the
    /// file).
    pub fn get_blocking(&self, ca_file: Option<&Path>) -> Result<Arc<dyn ServerCertVerifier>, VerifierError> {
        let key = ca_file.map(Path::to_path_buf);
        if let Some(v) = self.built.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Ok(Arc::clone(v));
        }
        let verifier = build(ca_file)?;
        self.built.lock().unwrap_or_else(|p| p.into_inner()).insert(key, Arc::clone(&verifier));
        Ok(verifier)
    }

    /// Forgets every verifier (a reload may have changed a CA file).
    pub fn clear(&self) {
        self.built.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// The system's roots, read once per process.
fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::warn!("system trust store: {e}");
        }
        found.certs
    })
}

fn build(ca_file: Option<&Path>) -> Result<Arc<dyn ServerCertVerifier>, VerifierError> {
    let mut roots = RootCertStore::empty();
    // A system root rustls cannot use (an odd encoding) is skipped, as every client does.
    let (_added, _ignored) = roots.add_parsable_certificates(system_roots().iter().cloned());
    if let Some(path) = ca_file {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
            .map_err(|source| VerifierError::CaFile { path: path.to_path_buf(), source })?;
        roots.add_parsable_certificates(certs);
    }
    if roots.is_empty() {
        return Err(VerifierError::NoRoots);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| VerifierError::Build(e.to_string()))?;
    Ok(verifier)
}
