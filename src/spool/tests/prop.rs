//! Property: any sequence of stores, updates, restarts and compactions leaves the spool holding
//! exactly what a plain in-memory model of it holds — same messages, states and bodies.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

#[derive(Clone, Debug)]
enum Step {
    Store {
        rcpts: usize,
        len: usize,
    },
    /// `pick` chooses a live message (modulo their number), `rcpt` may be out of range.
    Update {
        pick: usize,
        rcpt: usize,
        state: u8,
    },
    Reopen,
    Compact,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (1usize..4, 0usize..1500).prop_map(|(rcpts, len)| Step::Store { rcpts, len }),
        6 => (any::<usize>(), 0usize..4, 0u8..5).prop_map(|(pick, rcpt, state)| Step::Update { pick, rcpt, state }),
        1 => Just(Step::Reopen),
        1 => Just(Step::Compact),
    ]
}

fn state(k: u8, n: u64) -> RecipientState {
    match k {
        0 => RecipientState::Delivered,
        1 => RecipientState::Bounced,
        2 => RecipientState::Deleted,
        _ => RecipientState::Pending { not_before: n, attempts: k.into() },
    }
}

type Model = BTreeMap<u64, (Vec<RecipientState>, Vec<u8>)>;

fn check(spool: &Spool, model: &Model) -> Result<(), TestCaseError> {
    let want: Vec<(u64, Vec<RecipientState>)> = model.iter().map(|(id, (s, _))| (*id, s.clone())).collect();
    prop_assert_eq!(live_states(spool), want);
    for (id, (_, b)) in model {
        prop_assert_eq!(&spool.read_body(MessageId(*id)).unwrap(), b);
    }
    let s = spool.stats();
    prop_assert_eq!(s.live_messages, model.len());
    let pending = model.values().map(|(s, _)| s.iter().filter(|s| !s.is_final()).count() as u64).sum::<u64>();
    prop_assert_eq!(s.live_recipients, pending);
    Ok(())
}

async fn run(steps: Vec<Step>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(dir.path(), 2048);
    let (mut spool, _) = reopen(o.clone()).unwrap();
    let mut model = Model::new();
    let mut last_id = 0;
    for (n, step) in steps.into_iter().enumerate() {
        match step {
            Step::Store { rcpts, len } => {
                let names: Vec<String> = (0..rcpts).map(|r| format!("r{r}@d{n}.example")).collect();
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                let b = body(n, len);
                let id = spool.store(envelope(&names), b.clone()).await.unwrap();
                prop_assert!(id.0 > last_id);
                last_id = id.0;
                model.insert(id.0, (vec![fresh(); rcpts], b));
            }
            Step::Update { pick, rcpt, state: k } => {
                if model.is_empty() {
                    continue;
                }
                let id = *model.keys().nth(pick % model.len()).unwrap();
                let new = state(k, n as u64);
                let res = spool.update(vec![change(MessageId(id), rcpt, new)]).await;
                let (states, _) = model.get_mut(&id).unwrap();
                if rcpt >= states.len() {
                    prop_assert!(matches!(res, Err(SpoolError::NoSuchRecipient { .. })), "{:?}", res);
                    continue;
                }
                res.unwrap();
                if !states[rcpt].is_final() {
                    states[rcpt] = new;
                }
                if states.iter().all(|s| s.is_final()) {
                    model.remove(&id);
                }
            }
            Step::Reopen => {
                spool.close().await;
                let (s, rec) = reopen(o.clone()).unwrap();
                prop_assert_eq!((rec.quarantined, rec.torn_tail_truncated), (0, None));
                spool = s;
                check(&spool, &model)?;
            }
            Step::Compact => {
                spool.compact().await.unwrap();
                check(&spool, &model)?;
                prop_assert_eq!(segment_files(dir.path()).len(), 1);
            }
        }
    }
    check(&spool, &model)?;
    spool.close().await;
    let (spool, _) = reopen(o).unwrap();
    check(&spool, &model)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn the_spool_matches_a_simple_model(steps in proptest::collection::vec(step(), 1..60)) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(run(steps))?;
    }
}

/// Builds a spool of 20 messages over several segments; returns (id, body, segment, range).
async fn damaged_spool_base(dir: &Path) -> Vec<(MessageId, Vec<u8>, PathBuf, (u64, u64))> {
    let (spool, _) = reopen(opts(dir, 4096)).unwrap();
    let mut out = Vec::new();
    for i in 0..20 {
        let b = body(i, 300 + 37 * i);
        let id = spool.store(envelope(&["r@example.com"]), b.clone()).await.unwrap();
        let (start, len) = location(&spool, id);
        out.push((id, b, segment_of(&spool, id), (start, start + len)));
    }
    spool.close().await;
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Distrust every byte: whatever bytes are damaged, recovery neither fails nor panics,
    /// brings back exactly the messages whose records are intact, with their bodies, and
    /// reports the damage.
    #[test]
    fn recovery_keeps_exactly_the_intact_records(hits in proptest::collection::vec((0usize..20, any::<u16>(), 1u8..=255), 1..4)) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let msgs = damaged_spool_base(dir.path()).await;
            let segs = segment_files(dir.path());
            // Each hit: a segment (modulo their number), an offset in it, a xor mask.
            let mut damaged: Vec<(PathBuf, u64)> = Vec::new();
            for (s, off, mask) in hits {
                let seg = &segs[s % segs.len()];
                let mut bytes = std::fs::read(seg).unwrap();
                if bytes.is_empty() {
                    continue;
                }
                let at = off as usize % bytes.len();
                bytes[at] ^= mask;
                std::fs::write(seg, bytes).unwrap();
                damaged.push((seg.clone(), at as u64));
            }
            let (spool, rec) = reopen(opts(dir.path(), 4096))
                .unwrap_or_else(|e| panic!("recovery failed after damage at {damaged:?}: {e}"));
            let hit = |m: &(MessageId, Vec<u8>, PathBuf, (u64, u64))| {
                damaged.iter().any(|(p, at)| p == &m.2 && (m.3.0..m.3.1).contains(at))
            };
            let expect: Vec<MessageId> = msgs.iter().filter(|m| !hit(m)).map(|m| m.0).collect();
            let got: Vec<MessageId> = spool.live().iter().map(|e| e.id).collect();
            prop_assert_eq!(got, expect);
            for m in msgs.iter().filter(|m| !hit(m)) {
                prop_assert_eq!(&spool.read_body(m.0).unwrap(), &m.1);
            }
            if msgs.iter().any(hit) {
                prop_assert!(rec.quarantined > 0 || rec.torn_tail_truncated.is_some(), "{:?}", rec);
            }
            spool.close().await;
            Ok(())
        })?;
    }
}
