//! DKIM signing of outgoing mail: the keys of a configuration generation (`keys`), the
//! signatures a queue's settings ask for (`sign`), and `ember dkim keygen` (`keygen`).
//!
//! Signing happens at delivery, after `sanitize-headers` (see `delivery::prepare` and
//! docs/operations.md, "Where DKIM signing happens").

pub mod keygen;
pub mod keys;
pub mod options;
pub mod sign;

use std::sync::Arc;

use arc_swap::ArcSwap;

pub use keys::{KeyError, KeyStore};

/// The keys of the running configuration generation, replaced as a whole on reload; delivery
/// workers read the current set per message.
#[derive(Clone, Default)]
pub struct Keys(Arc<ArcSwap<KeyStore>>);

impl Keys {
    pub fn new(store: KeyStore) -> Keys {
        Keys(Arc::new(ArcSwap::from_pointee(store)))
    }

    pub fn current(&self) -> Arc<KeyStore> {
        self.0.load_full()
    }

    pub fn replace(&self, store: KeyStore) {
        self.0.store(Arc::new(store));
    }
}
