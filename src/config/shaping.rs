//! Static checks of shaping settings that no single value can make: warm-up schedules whose
//! steps cap nothing, and VMTA-to-VMTA moves (`reroute-to-virtual-mta`,
//! `backoff-reroute-to-virtual-mta`, `warmup-overflow-virtual-mta`) that lead back to where they
//! started. Backoff rules' own fields are checked where they are parsed (`rules.rs`).

use std::collections::{BTreeMap, BTreeSet};

use super::diag::{Diagnostics, Location};
use super::model::{Config, DomainBlock};
use super::settings::Origin;
use super::table::Dir;
use super::value::Value;
use super::values::Rate;

pub fn check(config: &Config, diags: &mut Diagnostics) {
    for (_, block) in domain_blocks(config) {
        warmup_schedule(block, diags);
    }
    move_loops(config, diags);
}

/// Every `<domain>` block with the VMTA or pool it sits in (`None`: global).
fn domain_blocks(config: &Config) -> impl Iterator<Item = (Option<&str>, &DomainBlock)> {
    let global = config.domains.iter().map(|d| (None, d));
    let vmtas = config.vmtas.iter().flat_map(|v| v.domains.iter().map(move |d| (Some(v.name.as_str()), d)));
    let pools = config.pools.iter().flat_map(|p| p.domains.iter().map(move |d| (Some(p.name.as_str()), d)));
    global.chain(vmtas).chain(pools)
}

/// A warm-up step of 0 sends nothing and never advances; `unlimited` is no warm-up.
fn warmup_schedule(block: &DomainBlock, diags: &mut Diagnostics) {
    for e in block.settings.raw(Dir::WarmupSchedule).unwrap_or_default() {
        let Value::RateList(steps) = &e.value else { continue };
        let Some(at) = e.origin.value_location() else { continue };
        if steps.is_empty() {
            diags.error(at, "warmup-schedule: a schedule needs at least one step, like 50/day,100/day");
            continue;
        }
        let Origin::Config { args, .. } = &e.origin else { continue };
        let written: Vec<&str> = args.iter().flat_map(|t| t.text.split(',')).map(str::trim).collect();
        for (i, step) in steps.iter().enumerate() {
            if step.is_some() {
                continue;
            }
            let item = written.get(i).copied().unwrap_or("");
            let where_ = e.origin.part_location(item).unwrap_or_else(|| at.clone());
            diags.error(
                &where_,
                format!(
                    "warmup-schedule: step {} is {item:?}; every step needs a cap of at least one message \
                     (0 sends nothing and never advances, unlimited is not a warm-up)",
                    i + 1
                ),
            );
        }
    }
}

/// One VMTA-to-VMTA move, for the domains of `pattern`.
struct Move<'a> {
    from: String,
    to: String,
    pattern: String,
    directive: &'static str,
    location: &'a Location,
}

/// Directives that move a queue's mail to another VMTA, and a name for each in messages.
const MOVES: [Dir; 3] = [Dir::RerouteToVirtualMta, Dir::BackoffRerouteToVirtualMta, Dir::WarmupOverflowVirtualMta];

/// A chain of moves that returns to its first VMTA would pass mail around for ever (or, for
/// backoff reroutes, bounce it between two queues in backoff). Moves apply per domain pattern:
/// a move for `*` joins every pattern's chains.
fn move_loops(config: &Config, diags: &mut Diagnostics) {
    let members = |name: &str| -> Vec<String> {
        match config.pool(name) {
            Some(p) => p.members().map(|(m, _)| m.to_string()).collect(),
            None => vec![name.to_string()],
        }
    };
    let all_vmtas: Vec<String> = config.vmtas.iter().map(|v| v.name.clone()).collect();
    let mut moves = Vec::new();
    for (holder, block) in domain_blocks(config) {
        let sources = match holder {
            Some(h) => members(h),
            None => all_vmtas.clone(),
        };
        for dir in MOVES {
            for e in block.settings.raw(dir).unwrap_or_default() {
                let (Value::Text(target), Some(location)) = (&e.value, e.origin.location()) else { continue };
                for from in &sources {
                    for to in members(target) {
                        if *from != to {
                            moves.push(Move {
                                from: from.clone(),
                                to,
                                pattern: block.pattern.to_string(),
                                directive: dir.def().name,
                                location,
                            });
                        }
                    }
                }
            }
        }
    }
    let patterns: BTreeSet<&str> = moves.iter().map(|m| m.pattern.as_str()).collect();
    let mut reported = BTreeSet::new();
    for pattern in patterns {
        let edges: Vec<&Move> = moves.iter().filter(|m| m.pattern == pattern || m.pattern == "*").collect();
        if let Some(cycle) = find_cycle(&edges) {
            let first = cycle[0];
            if !reported.insert(first.location.to_string()) {
                continue;
            }
            let path: Vec<String> = cycle.iter().map(|m| format!("{} -> {} ({})", m.from, m.to, m.directive)).collect();
            diags.error(
                first.location,
                format!("{}: mail for {pattern} would move in a loop: {}", first.directive, path.join(", then ")),
            );
        }
    }
}

/// A cycle among `edges`, as the edges in order, if there is one.
fn find_cycle<'a>(edges: &[&'a Move<'a>]) -> Option<Vec<&'a Move<'a>>> {
    let mut out: BTreeMap<&str, Vec<&'a Move<'a>>> = BTreeMap::new();
    for e in edges {
        out.entry(e.from.as_str()).or_default().push(e);
    }
    for start in out.keys().copied() {
        let mut path: Vec<&'a Move<'a>> = Vec::new();
        if walk(start, start, &out, &mut path, &mut BTreeSet::new()) {
            return Some(path);
        }
    }
    None
}

fn walk<'a>(
    start: &str,
    at: &str,
    out: &BTreeMap<&str, Vec<&'a Move<'a>>>,
    path: &mut Vec<&'a Move<'a>>,
    seen: &mut BTreeSet<String>,
) -> bool {
    for e in out.get(at).into_iter().flatten() {
        path.push(e);
        if e.to == start {
            return true;
        }
        if seen.insert(e.to.clone()) && walk(start, &e.to, out, path, seen) {
            return true;
        }
        path.pop();
    }
    false
}

/// Backoff rule rates and connections that would stop a queue instead of slowing it; used by
/// the rule parser so the error points at the field.
pub fn backoff_rate_problem(rate: Option<Rate>, written: &str) -> Option<String> {
    rate.is_none().then(|| {
        format!(
            "a backoff rule's rate must slow the queue: {written:?} would {}; write a rate like 1000/h \
             (use the defer-queue action to stop a queue)",
            if written == "0" { "stop it" } else { "not slow it" }
        )
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{FileCheck, load_str};

    fn errors(text: &str) -> Vec<String> {
        let loaded = load_str("s.conf", text, Path::new("."), FileCheck::Warn);
        loaded.diagnostics.errors().map(ToString::to_string).collect()
    }

    const VMTAS: &str = "<virtual-mta a>\n smtp-source-host 127.0.0.2 a.example\n</virtual-mta>\n\
                         <virtual-mta b>\n smtp-source-host 127.0.0.3 b.example\n</virtual-mta>\n";

    #[test]
    fn warmup_steps_of_zero_or_unlimited_are_refused_where_written() {
        let e = errors("<domain *>\n  warmup-schedule 50/day,0,unlimited\n</domain>\n");
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].starts_with("s.conf:2:26: error: warmup-schedule: step 2 is \"0\""), "{e:?}");
        assert!(e[1].starts_with("s.conf:2:28: error: warmup-schedule: step 3 is \"unlimited\""), "{e:?}");
        assert!(errors("<domain *>\n  warmup-schedule 50/day,100/day\n</domain>\n").is_empty());
    }

    #[test]
    fn reroute_loops_are_refused_and_chains_are_not() {
        let looped = format!(
            "{VMTAS}<virtual-mta-pool p>\n virtual-mta a\n <domain gmail.com>\n  backoff-reroute-to-virtual-mta b\n \
             </domain>\n</virtual-mta-pool>\n<domain *>\n  reroute-to-virtual-mta a\n</domain>\n"
        );
        let e = errors(&looped);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].contains("mail for gmail.com would move in a loop"), "{e:?}");
        assert!(
            e[0].contains("a -> b (backoff-reroute-to-virtual-mta), then b -> a (reroute-to-virtual-mta)"),
            "{e:?}"
        );
        let chain = "<virtual-mta b>\n smtp-source-host 127.0.0.3 b.example\n</virtual-mta>\n\
                     <virtual-mta a>\n smtp-source-host 127.0.0.2 a.example\n <domain *>\n  \
                     warmup-overflow-virtual-mta b\n </domain>\n</virtual-mta>\n";
        assert!(errors(chain).is_empty(), "{:?}", errors(chain));
    }
}
