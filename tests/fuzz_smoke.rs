//! The fuzz targets' smoke run, as an ordinary test: no cargo-fuzz, no libFuzzer, stable Rust.
//!
//! Replays every seed, every committed corpus entry and every regression (a crash the fuzzer once
//! found, kept as the input that triggered it) of each target in `fuzz/` through the same harness
//! functions libFuzzer runs (`fuzz/src/targets.rs`, included below), then a few thousand
//! deterministic mutations of the seeds. The long runs (10 million executions per target) are
//! described in `fuzz/README.md`; they stay out of CI.

#[allow(dead_code)]
#[path = "../fuzz/src/targets.rs"]
mod targets;

use std::path::Path;

type Target = fn(&[u8]);

/// Each target with the mutations to run per seed: about 2,000 runs per target (the config
/// engine compiles regexes, so its runs cost more and it gets fewer).
const TARGETS: &[(&str, Target, usize)] = &[
    ("smtp_session", targets::smtp_session, 150),
    ("data_bdat", targets::data_bdat, 300),
    ("config", targets::config, 10),
    ("reply_ehlo", targets::reply_ehlo, 600),
    ("spool_records", targets::spool_records, 1000),
    ("arf_report", targets::arf_report, 400),
    ("dsn_report", targets::dsn_report, 400),
];

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut out = Vec::new();
    for kind in ["seeds", "corpus", "regressions"] {
        let Ok(dir) = std::fs::read_dir(root.join(kind).join(target)) else { continue };
        for entry in dir.flatten() {
            // A file can vanish under a fuzzer running on the same corpus (it replaces inputs
            // by smaller ones).
            let Ok(data) = std::fs::read(entry.path()) else { continue };
            out.push((format!("{kind}/{target}/{}", entry.file_name().to_string_lossy()), data));
        }
    }
    out.sort();
    out
}

/// xorshift64*: deterministic, so a failure here reproduces on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// The mutations libFuzzer starts with: flip, overwrite with an interesting byte, insert, erase,
/// duplicate a slice, splice another input in.
fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    const INTERESTING: &[u8] = b"\r\n.\0\xff<>:@ -=\"#$";
    let mut m = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(m.len() + 1);
        match rng.below(6) {
            0 if at < m.len() => m[at] ^= 1 << rng.below(8),
            1 if at < m.len() => m[at] = INTERESTING[rng.below(INTERESTING.len())],
            2 => m.insert(at, INTERESTING[rng.below(INTERESTING.len())]),
            3 if at < m.len() => {
                let end = (at + 1 + rng.below(16)).min(m.len());
                m.drain(at..end);
            }
            4 if at < m.len() => {
                let end = (at + 1 + rng.below(64)).min(m.len());
                let copy = m[at..end].to_vec();
                let to = rng.below(m.len() + 1);
                m.splice(to..to, copy);
            }
            _ if !other.is_empty() => {
                let from = rng.below(other.len());
                let end = (from + 1 + rng.below(256)).min(other.len());
                m.splice(at..at, other[from..end].iter().copied());
            }
            _ => {}
        }
    }
    m
}

fn smoke(name: &str, target: Target, mutations: usize) {
    let started = std::time::Instant::now();
    let inputs = inputs(name);
    assert!(!inputs.is_empty(), "no seeds for {name} in fuzz/seeds/{name}");
    for (file, data) in &inputs {
        let run = std::panic::catch_unwind(|| target(data));
        assert!(run.is_ok(), "fuzz/{file} fails again (see the panic above)");
    }
    // Mutations of the seeds only: the corpus is already the fuzzer's own variations.
    let seeds: Vec<_> = inputs.iter().filter(|(f, _)| f.starts_with("seeds/")).collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ name.len() as u64);
    for (k, (file, data)) in seeds.iter().enumerate() {
        let other = &seeds[(k + 1) % seeds.len()].1;
        for i in 0..mutations {
            let m = mutate(&mut rng, data, other);
            let run = std::panic::catch_unwind(|| target(&m));
            assert!(run.is_ok(), "mutation {i} of fuzz/{file} panics: add it to fuzz/regressions/{name}/: {m:?}");
        }
    }
    let runs = inputs.len() + seeds.len() * mutations;
    eprintln!("{name}: {runs} runs in {:.1} s", started.elapsed().as_secs_f64());
}

#[test]
fn fuzz_targets_survive_their_corpus_regressions_and_mutations() {
    for (name, target, mutations) in TARGETS {
        smoke(name, *target, *mutations);
    }
    targets::remove_scratch();
}

/// A regression filed under a name that is no target would silently never run.
#[test]
fn every_target_has_seeds_and_regressions_are_named() {
    for (name, _, _) in TARGETS {
        assert!(!inputs(name).is_empty(), "{name}");
    }
    let regressions = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    for dir in std::fs::read_dir(regressions).unwrap().flatten() {
        let target = dir.file_name().to_string_lossy().into_owned();
        assert!(TARGETS.iter().any(|(t, _, _)| *t == target), "fuzz/regressions/{target} is no target");
    }
}
