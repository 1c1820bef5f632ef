//! A linearizability checker for one key of kvr (Wing & Gong's search with
//! memoization, as in Lowe's and porcupine's checkers), and its own tests
//! on histories known to be linearizable or not.
//!
//! The model is a register with revisions: a write that succeeds returns a
//! revision above every earlier one of the key; a read returns the value
//! and the revision of the last write. An operation whose outcome is
//! unknown (a timeout, `outcome_unknown`) may take effect at any point
//! after its call, or never; a read that failed is left out.

use std::collections::HashSet;

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
pub fn linearizable(events: &[Event]) -> bool {
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
}
