//! Learned limits survive a restart: one small JSON file beside the spool
//! (`adaptive.json`: queue → source IP → learned rate and connections), saved off the manager's
//! task by the state saver whenever a decision changes them.

use std::collections::HashMap;

use super::Learned;
use crate::queue::QueueKey;
use crate::queue::state_file::StateFile;

type Saved = HashMap<String, HashMap<String, Learned>>;

#[derive(Default)]
pub struct LearnedStore {
    file: Option<StateFile>,
    saved: Saved,
}

impl LearnedStore {
    pub fn load(file: Option<StateFile>) -> LearnedStore {
        let saved = file.as_ref().and_then(|f| f.load("adaptive delivery's learned limits")).unwrap_or_default();
        LearnedStore { file, saved }
    }

    /// What was learned for `key` before (empty for a queue never limited).
    pub fn saved(&self, key: &QueueKey) -> HashMap<String, Learned> {
        if self.saved.is_empty() {
            return HashMap::new();
        }
        self.saved.get(&key.to_string()).cloned().unwrap_or_default()
    }

    /// Records what `key` has learned now and hands the file to the saver.
    pub fn update(&mut self, key: &QueueKey, learned: HashMap<String, Learned>) {
        let name = key.to_string();
        if learned.is_empty() {
            self.saved.remove(&name);
        } else {
            self.saved.insert(name, learned);
        }
        if let Some(f) = &self.file {
            f.save(&self.saved);
        }
    }
}
