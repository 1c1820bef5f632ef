//! A linearizability checker for one key of kvr (Wing & Gong's search with
//! memoization, as in Lowe's and porcupine's checkers), and its own tests
//! on histories known to be linearizable or not.
//!
//! The model is a register with revisions: a write that succeeds returns a
//! revision above every earlier one of the key; a read returns the value
//! and the revision of the last write. An operation whose outcome is
//! unknown (a timeout, `outcome_unknown`) may take effect at any point
//! after its call, or never; a read that failed is left out.

use std::collections::{HashMap, HashSet};

/// The value of every write no read returned (see [`linearizable`]).
const UNREAD: u32 = u32::MAX;

/// What a client asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Put(u32),
    /// A put with `If-Match` (`0`: the key must be absent).
    Cas(u32, u64),
    Delete,
    Get,
}

/// What it got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Out {
    /// A write that took this revision.
    Written(u64),
    /// 412: the condition did not hold, nothing written.
    Refused,
    /// A delete of an absent key.
    Absent,
    /// A read: the value and its revision, or absent.
    Read(Option<(u32, u64)>),
    /// The write may or may not have happened.
    Unknown,
}

/// One operation of a history; times in any unit, `ret` = `u64::MAX` for
/// an unknown outcome.
#[derive(Debug, Clone, Copy)]
pub struct Event {
    pub call: u64,
    pub ret: u64,
    pub op: Op,
    pub out: Out,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct State {
    value: Option<u32>,
    /// The revision of the last write; `None` when that write's outcome
    /// was unknown (then it is above `floor`).
    rev: Option<u64>,
    /// The highest revision known so far.
    floor: u64,
}

fn matches(s: &State, rev: u64) -> bool {
    match s.rev {
        Some(r) => r == rev,
        None => rev > s.floor,
    }
}

/// The states `op` with outcome `out` can lead to from `s` (none: it
/// cannot happen there).
fn step(s: &State, op: Op, out: Out) -> Vec<State> {
    let written = |value: Option<u32>, r: u64| State {
        value,
        rev: Some(r),
        floor: r,
    };
    let unknown = |value: Option<u32>| State {
        value,
        rev: None,
        floor: s.floor,
    };
    match (op, out) {
        (Op::Put(v), Out::Written(r)) if r > s.floor => vec![written(Some(v), r)],
        (Op::Put(v), Out::Unknown) => vec![unknown(Some(v))],
        (Op::Cas(v, e), out) => {
            let holds = if e == 0 {
                s.value.is_none()
            } else {
                s.value.is_some() && matches(s, e)
            };
            // With an unknown revision the condition may fail too.
            let may_fail = !holds || (e != 0 && s.value.is_some() && s.rev.is_none());
            match out {
                Out::Written(r) if holds && r > s.floor.max(e) => vec![written(Some(v), r)],
                Out::Refused if may_fail => vec![*s],
                Out::Unknown => {
                    let mut next = Vec::new();
                    if holds {
                        next.push(State {
                            floor: s.floor.max(e),
                            ..unknown(Some(v))
                        });
                    }
                    if may_fail {
                        next.push(*s);
                    }
                    next
                }
                _ => Vec::new(),
            }
        }
        (Op::Delete, Out::Written(r)) if s.value.is_some() && r > s.floor => {
            vec![written(None, r)]
        }
        (Op::Delete, Out::Absent) if s.value.is_none() => vec![*s],
        (Op::Delete, Out::Unknown) if s.value.is_some() => vec![unknown(None), *s],
        (Op::Delete, Out::Unknown) => vec![*s],
        (Op::Get, Out::Read(None)) if s.value.is_none() => vec![*s],
        (Op::Get, Out::Read(Some((v, r)))) if s.value == Some(v) && matches(s, r) => {
            vec![State {
                value: Some(v),
                rev: Some(r),
                floor: s.floor.max(r),
            }]
        }
        _ => Vec::new(),
    }
}

/// Whether the history of one key (starting absent) is linearizable.
///
/// Two reductions keep long histories with many unknown outcomes cheap,
/// both exact: a value no read returned is replaced by one placeholder
/// (states that differ only there behave alike), and a search state is
/// dropped when one already seen has the same state and the same known
/// operations done but fewer of the unknown ones (those left over can
/// still take effect later, or never, so that one can do all this one can).
pub fn linearizable(events: &[Event]) -> bool {
    let read: HashSet<u32> = events
        .iter()
        .filter_map(|e| match e.out {
            Out::Read(Some((v, _))) => Some(v),
            _ => None,
        })
        .collect();
    let unread = |v: u32| if read.contains(&v) { v } else { UNREAD };
    let mut ev: Vec<Event> = events
        .iter()
        .map(|e| Event {
            op: match e.op {
                Op::Put(v) => Op::Put(unread(v)),
                Op::Cas(v, r) => Op::Cas(unread(v), r),
                op => op,
            },
            ..*e
        })
        .collect();
    ev.sort_by_key(|e| e.call);
    let n = ev.len();
    let known = ev.iter().filter(|e| e.ret != u64::MAX).count();
    let words = n.div_ceil(64);
    let is_in = |set: &[u64], i: usize| set[i / 64] >> (i % 64) & 1 == 1;
    let mut unknown_mask = vec![0u64; words];
    for (i, e) in ev.iter().enumerate() {
        if e.ret == u64::MAX {
            unknown_mask[i / 64] |= 1 << (i % 64);
        }
    }
    // (known operations done, state) -> the sets of unknown ones done
    // with which it was reached.
    let mut seen: HashMap<(Vec<u64>, State), Vec<Vec<u64>>> = HashMap::new();
    let start = State {
        value: None,
        rev: Some(0),
        floor: 0,
    };
    // Iterative depth-first search: (linearized set, how many of them have
    // a known outcome, state).
    let mut stack: Vec<(Vec<u64>, usize, State)> = vec![(vec![0; words], 0, start)];
    while let Some((set, count, state)) = stack.pop() {
        if count == known {
            return true;
        }
        let done_known: Vec<u64> = set.iter().zip(&unknown_mask).map(|(s, u)| s & !u).collect();
        let done_unknown: Vec<u64> = set.iter().zip(&unknown_mask).map(|(s, u)| s & u).collect();
        let before = seen.entry((done_known, state)).or_default();
        if before
            .iter()
            .any(|b| b.iter().zip(&done_unknown).all(|(b, d)| b & !d == 0))
        {
            continue;
        }
        before.push(done_unknown);
        // An operation can come next when no pending one returned before
        // it was called. In call order, the candidates end at the first
        // call after the earliest return so far (what is called later
        // returns later still).
        let first = set
            .iter()
            .position(|w| *w != u64::MAX)
            .map_or(n, |w| w * 64 + set[w].trailing_ones() as usize);
        let mut earliest_ret = u64::MAX;
        let mut end = first;
        while end < n && ev[end].call <= earliest_ret {
            if !is_in(&set, end) {
                earliest_ret = earliest_ret.min(ev[end].ret);
            }
            end += 1;
        }
        // Operations of unknown outcome are pushed first, so tried last:
        // one never has to take effect before something needs it.
        for unknown in [true, false] {
            for (i, e) in ev.iter().enumerate().take(end).skip(first) {
                if is_in(&set, i) || e.call > earliest_ret || (e.ret == u64::MAX) != unknown {
                    continue;
                }
                for next in step(&state, e.op, e.out) {
                    let mut s2 = set.clone();
                    s2[i / 64] |= 1 << (i % 64);
                    stack.push((s2, count + usize::from(!unknown), next));
                }
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(call: u64, ret: u64, op: Op, out: Out) -> Event {
        Event { call, ret, op, out }
    }

    #[test]
    fn sequential_writes_and_reads_are_linearizable() {
        let h = [
            ev(0, 1, Op::Put(1), Out::Written(5)),
            ev(2, 3, Op::Get, Out::Read(Some((1, 5)))),
            ev(4, 5, Op::Cas(2, 5), Out::Written(9)),
            ev(6, 7, Op::Cas(3, 5), Out::Refused),
            ev(8, 9, Op::Delete, Out::Written(12)),
            ev(10, 11, Op::Get, Out::Read(None)),
            ev(12, 13, Op::Delete, Out::Absent),
        ];
        assert!(linearizable(&h));
    }

    #[test]
    fn a_stale_read_after_a_write_completed_is_not() {
        let h = [
            ev(0, 1, Op::Put(1), Out::Written(5)),
            ev(2, 3, Op::Put(2), Out::Written(6)),
            ev(4, 5, Op::Get, Out::Read(Some((1, 5)))),
        ];
        assert!(!linearizable(&h));
    }

    #[test]
    fn concurrent_operations_may_take_either_order() {
        let h = [
            ev(0, 10, Op::Put(1), Out::Written(5)),
            ev(1, 9, Op::Get, Out::Read(None)),
            ev(2, 8, Op::Get, Out::Read(Some((1, 5)))),
        ];
        assert!(linearizable(&h));
        // But two reads in sequence cannot see the write and then not.
        let h = [
            ev(0, 10, Op::Put(1), Out::Written(5)),
            ev(1, 2, Op::Get, Out::Read(Some((1, 5)))),
            ev(3, 4, Op::Get, Out::Read(None)),
        ];
        assert!(!linearizable(&h));
    }

    #[test]
    fn a_lost_acknowledged_write_is_caught() {
        let h = [
            ev(0, 1, Op::Put(1), Out::Written(5)),
            ev(2, 3, Op::Get, Out::Read(None)),
        ];
        assert!(!linearizable(&h));
    }

    #[test]
    fn revisions_must_grow() {
        let h = [
            ev(0, 1, Op::Put(1), Out::Written(5)),
            ev(2, 3, Op::Put(2), Out::Written(4)),
        ];
        assert!(!linearizable(&h));
    }

    #[test]
    fn two_conditional_writes_cannot_both_win() {
        let h = [
            ev(0, 1, Op::Put(1), Out::Written(5)),
            ev(2, 6, Op::Cas(2, 5), Out::Written(6)),
            ev(3, 7, Op::Cas(3, 5), Out::Written(7)),
        ];
        assert!(!linearizable(&h));
    }

    #[test]
    fn unknown_writes_may_or_may_not_have_happened() {
        let h = [
            ev(0, u64::MAX, Op::Put(1), Out::Unknown),
            ev(5, 6, Op::Get, Out::Read(Some((1, 3)))),
            ev(7, 8, Op::Cas(2, 3), Out::Written(4)),
        ];
        assert!(linearizable(&h));
        let h = [
            ev(0, u64::MAX, Op::Put(1), Out::Unknown),
            ev(5, 6, Op::Get, Out::Read(None)),
        ];
        assert!(linearizable(&h));
        // But not before it was called.
        let h = [
            ev(0, 1, Op::Get, Out::Read(Some((1, 3)))),
            ev(5, u64::MAX, Op::Put(1), Out::Unknown),
        ];
        assert!(!linearizable(&h));
    }

    /// The plain search, without [`linearizable`]'s reductions: the
    /// reference it is compared with.
    fn plain(events: &[Event]) -> bool {
        let mut ev = events.to_vec();
        ev.sort_by_key(|e| e.call);
        let n = ev.len();
        let words = n.div_ceil(64);
        let mut seen: HashSet<(Vec<u64>, State)> = HashSet::new();
        // Iterative depth-first search: (linearized set, state, next candidate).
        let start = State {
            value: None,
            rev: Some(0),
            floor: 0,
        };
        let done =
            |set: &[u64]| (0..n).all(|i| set[i / 64] >> (i % 64) & 1 == 1 || ev[i].ret == u64::MAX);
        let mut stack: Vec<(Vec<u64>, State)> = vec![(vec![0; words], start)];
        while let Some((set, state)) = stack.pop() {
            if done(&set) {
                return true;
            }
            if !seen.insert((set.clone(), state)) {
                continue;
            }
            // An operation can come next when no pending one returned before
            // it was called.
            let earliest_ret = (0..n)
                .filter(|&i| set[i / 64] >> (i % 64) & 1 == 0)
                .map(|i| ev[i].ret)
                .min()
                .unwrap_or(u64::MAX);
            for (i, e) in ev.iter().enumerate() {
                if set[i / 64] >> (i % 64) & 1 == 1 || e.call > earliest_ret {
                    continue;
                }
                for next in step(&state, e.op, e.out) {
                    let mut s2 = set.clone();
                    s2[i / 64] |= 1 << (i % 64);
                    stack.push((s2, next));
                }
            }
        }
        false
    }

    /// A small xorshift generator: the same histories on every run.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    /// A history of concurrent operations on a real register, some with
    /// unknown outcomes (taking effect or not), and with probability 1/3
    /// one outcome altered (which may or may not break it).
    fn random_history(rng: &mut Rng) -> Vec<Event> {
        let (mut value, mut rev): (Option<u32>, u64) = (None, 0);
        let mut revs = vec![0];
        let mut h = Vec::new();
        for i in 0..rng.below(14) + 2 {
            // Each operation takes effect at 100 i, within its call and return.
            let at = 100 * (i + 1);
            let (call, ret) = (at - rng.below(150).min(at), at + rng.below(150));
            let v = i as u32 + 1;
            let op = match rng.below(5) {
                0 | 1 => Op::Put(v),
                2 => Op::Cas(v, revs[rng.below(revs.len() as u64) as usize]),
                3 => Op::Delete,
                _ => Op::Get,
            };
            let unknown = op != Op::Get && rng.below(4) == 0;
            if unknown && rng.below(2) == 0 {
                h.push(Event {
                    call,
                    ret: u64::MAX,
                    op,
                    out: Out::Unknown,
                });
                continue;
            }
            let new = match op {
                Op::Put(v) => Some(Some(v)),
                Op::Cas(v, e) if (e == 0 && value.is_none()) || (value.is_some() && e == rev) => {
                    Some(Some(v))
                }
                Op::Delete if value.is_some() => Some(None),
                _ => None,
            };
            let out = match (op, new) {
                (_, Some(new)) => {
                    rev += 1 + rng.below(2);
                    revs.push(rev);
                    value = new;
                    Out::Written(rev)
                }
                (Op::Cas(..), None) => Out::Refused,
                (Op::Delete, None) => Out::Absent,
                _ => Out::Read(value.map(|v| (v, rev))),
            };
            let (ret, out) = if unknown {
                (u64::MAX, Out::Unknown)
            } else {
                (ret, out)
            };
            h.push(Event { call, ret, op, out });
        }
        if rng.below(3) == 0 {
            let i = rng.below(h.len() as u64) as usize;
            h[i].out = match h[i].out {
                Out::Written(r) => Out::Written(r.saturating_sub(rng.below(3))),
                Out::Read(Some((v, r))) => Out::Read(Some((v.saturating_sub(1), r))),
                Out::Read(None) => Out::Read(Some((1, 1))),
                Out::Refused => Out::Absent,
                other => other,
            };
        }
        h
    }

    #[test]
    fn the_reductions_agree_with_the_plain_search() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut rejected = 0;
        for _ in 0..3000 {
            let h = random_history(&mut rng);
            let expected = plain(&h);
            assert_eq!(linearizable(&h), expected, "{h:?}");
            rejected += usize::from(!expected);
        }
        // Both kinds were compared.
        assert!(rejected > 100, "{rejected}");
    }

    #[test]
    fn an_unread_unknown_write_may_explain_a_delete() {
        // The delete found the key only if the unknown put happened.
        let h = [
            ev(0, u64::MAX, Op::Put(1), Out::Unknown),
            ev(5, 6, Op::Delete, Out::Written(4)),
            ev(7, 8, Op::Get, Out::Read(None)),
        ];
        assert!(linearizable(&h));
        // Two deletes cannot both find it.
        let h = [
            ev(0, u64::MAX, Op::Put(1), Out::Unknown),
            ev(5, 6, Op::Delete, Out::Written(4)),
            ev(7, 8, Op::Delete, Out::Written(5)),
        ];
        assert!(!linearizable(&h));
    }

    #[test]
    fn many_unknown_writes_do_not_hide_a_stale_read() {
        let mut h: Vec<Event> = (0..40)
            .map(|i| ev(i, u64::MAX, Op::Put(100 + i as u32), Out::Unknown))
            .collect();
        h.push(ev(50, 51, Op::Put(1), Out::Written(5)));
        h.push(ev(52, 53, Op::Put(2), Out::Written(6)));
        h.push(ev(54, 55, Op::Get, Out::Read(Some((1, 5)))));
        assert!(!linearizable(&h));
    }
}
