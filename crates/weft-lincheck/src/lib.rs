//! Is a recorded history of concurrent operations linearizable?
//!
//! The model is a register per key with read, write and compare-and-swap, which is what
//! weft's store offers its clients (a CAS-guarded write; an endpoint create that claims
//! an IP is a CAS from "absent"). A history is checked per key (linearizability is
//! compositional), each with the search of Wing & Gong as improved by Lowe and used by
//! Jepsen's Knossos and Go's Porcupine: walk the operations in call order, tentatively
//! linearize any operation whose call precedes every pending return, backtrack when a
//! return is reached before its operation was linearized, and memoize (set of
//! linearized operations, register state) so that no configuration is explored twice.
//!
//! An operation whose outcome is unknown (a timeout, a crash of the server that was
//! asked) may have taken effect at any point after its call, or never: give it no
//! return time and no output.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

/// A register value; `None` is absent (never written, or deleted).
pub type Value = Option<String>;

/// What a client asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Read,
    Write(Value),
    /// Set to `new` if the register holds `expected`.
    Cas {
        expected: Value,
        new: Value,
    },
}

/// What the client was told; `None` when it never learnt (the op may or may not have
/// taken effect).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Read(Value),
    Written,
    Cas(bool),
}

/// One operation of one client on one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    pub client: usize,
    pub key: String,
    pub input: Input,
    pub output: Option<Output>,
    /// When the call was made and when its answer arrived (any monotonic clock);
    /// `returned: None` for an unknown outcome.
    pub called: u64,
    pub returned: Option<u64>,
}

/// Why a history is not linearizable: the key, and the operations of that key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub key: String,
    pub ops: Vec<Op>,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "no linearization of the {} operations on key {:?}:",
            self.ops.len(),
            self.key
        )?;
        for op in &self.ops {
            writeln!(
                f,
                "  client {} [{}, {}] {:?} -> {:?}",
                op.client,
                op.called,
                op.returned.map_or_else(|| "?".into(), |r| r.to_string()),
                op.input,
                op.output
            )?;
        }
        Ok(())
    }
}

/// Applies `input` to `state`; the new state if `output` is what it would return.
fn step(state: &Value, input: &Input, output: Option<&Output>) -> Option<Value> {
    match input {
        Input::Read => match output {
            None => Some(state.clone()),
            Some(Output::Read(v)) if v == state => Some(state.clone()),
            Some(_) => None,
        },
        Input::Write(v) => match output {
            None | Some(Output::Written) => Some(v.clone()),
            Some(_) => None,
        },
        Input::Cas { expected, new } => {
            let holds = expected == state;
            match output {
                None => Some(if holds { new.clone() } else { state.clone() }),
                Some(Output::Cas(ok)) if *ok == holds => {
                    Some(if holds { new.clone() } else { state.clone() })
                }
                Some(_) => None,
            }
        }
    }
}

/// Checks a whole history, key by key, from the initial value `None` on every key.
pub fn check(history: &[Op]) -> Result<(), Violation> {
    let mut by_key: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for op in history {
        by_key.entry(&op.key).or_default().push(op);
    }
    for (key, ops) in by_key {
        if !linearizable(&ops) {
            return Err(Violation {
                key: key.to_string(),
                ops: ops.into_iter().cloned().collect(),
            });
        }
    }
    Ok(())
}

/// One entry of the call/return sequence of one key.
#[derive(Debug, Clone, Copy)]
struct Entry {
    op: usize,
    is_call: bool,
    time: u64,
}

fn linearizable(ops: &[&Op]) -> bool {
    // Calls and returns in time order; at equal times returns go first (an answer
    // received before another call was made precedes it). Unknown outcomes return last.
    let mut entries: Vec<Entry> = Vec::with_capacity(ops.len() * 2);
    for (i, op) in ops.iter().enumerate() {
        entries.push(Entry {
            op: i,
            is_call: true,
            time: op.called,
        });
        entries.push(Entry {
            op: i,
            is_call: false,
            time: op.returned.unwrap_or(u64::MAX),
        });
    }
    entries.sort_by_key(|e| (e.time, e.is_call, e.op));
    let mut list = List::new(entries.len());
    let mut ret_of = vec![0usize; ops.len()];
    for (i, e) in entries.iter().enumerate() {
        if !e.is_call {
            ret_of[e.op] = i;
        }
    }
    let unknown = |i: usize| ops[entries[i].op].returned.is_none();

    let words = ops.len().div_ceil(64);
    let mut linearized = vec![0u64; words];
    let mut seen: HashSet<(Vec<u64>, Value)> = HashSet::new();
    let mut state: Value = None;
    // (call entry, state before it) of each tentatively linearized operation.
    let mut stack: Vec<(usize, Value)> = Vec::new();
    let mut at = list.first();
    while let Some(i) = at {
        let e = entries[i];
        if e.is_call {
            let op = ops[e.op];
            if let Some(new_state) = step(&state, &op.input, op.output.as_ref()) {
                let mut bits = linearized.clone();
                bits[e.op / 64] |= 1 << (e.op % 64);
                if seen.insert((bits.clone(), new_state.clone())) {
                    stack.push((i, state.clone()));
                    linearized = bits;
                    state = new_state;
                    // Lift the call and its return out of the list.
                    list.unlink(i);
                    list.unlink(ret_of[e.op]);
                    at = list.first();
                    continue;
                }
            }
            at = list.next(i);
        } else {
            // Only operations with unknown outcomes left: they need not have happened.
            if unknown(i) && list.iter().all(unknown) {
                return true;
            }
            // A return before its operation was linearized: undo the last choice.
            let Some((call, before)) = stack.pop() else {
                return false;
            };
            let op = entries[call].op;
            list.relink(ret_of[op]);
            list.relink(call);
            linearized[op / 64] &= !(1 << (op % 64));
            state = before;
            at = list.next(call);
        }
    }
    true
}

/// A doubly linked list over `0..n` that can take entries out and put them back in
/// reverse order (the search's lift and unlift).
struct List {
    next: Vec<usize>,
    prev: Vec<usize>,
}

impl List {
    const END: usize = usize::MAX;

    /// Entries `0..n`, with `n` the head.
    fn new(n: usize) -> Self {
        let mut next: Vec<usize> = (1..=n).collect();
        if let Some(last) = next.last_mut() {
            *last = Self::END;
        }
        next.push(if n == 0 { Self::END } else { 0 });
        let mut prev: Vec<usize> = std::iter::once(n).chain(0..n.saturating_sub(1)).collect();
        prev.push(Self::END);
        Self { next, prev }
    }

    fn head(&self) -> usize {
        self.next.len() - 1
    }

    fn first(&self) -> Option<usize> {
        self.next(self.head())
    }

    fn next(&self, i: usize) -> Option<usize> {
        Some(self.next[i]).filter(|n| *n != Self::END)
    }

    fn unlink(&mut self, i: usize) {
        let (p, q) = (self.prev[i], self.next[i]);
        self.next[p] = q;
        if q != Self::END {
            self.prev[q] = p;
        }
    }

    fn relink(&mut self, i: usize) {
        let (p, q) = (self.prev[i], self.next[i]);
        self.next[p] = i;
        if q != Self::END {
            self.prev[q] = i;
        }
    }

    fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        std::iter::successors(self.first(), |i| self.next(*i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Value {
        Some(s.to_string())
    }

    fn op(
        client: usize,
        input: Input,
        output: Option<Output>,
        called: u64,
        returned: Option<u64>,
    ) -> Op {
        Op {
            client,
            key: "k".into(),
            input,
            output,
            called,
            returned,
        }
    }

    #[test]
    fn sequential_histories() {
        let ok = [
            op(0, Input::Write(v("a")), Some(Output::Written), 0, Some(1)),
            op(0, Input::Read, Some(Output::Read(v("a"))), 2, Some(3)),
            op(
                0,
                Input::Cas {
                    expected: v("a"),
                    new: v("b"),
                },
                Some(Output::Cas(true)),
                4,
                Some(5),
            ),
            op(
                0,
                Input::Cas {
                    expected: v("a"),
                    new: v("c"),
                },
                Some(Output::Cas(false)),
                6,
                Some(7),
            ),
            op(0, Input::Read, Some(Output::Read(v("b"))), 8, Some(9)),
        ];
        assert!(check(&ok).is_ok());
        let stale = [
            op(0, Input::Write(v("a")), Some(Output::Written), 0, Some(1)),
            op(1, Input::Read, Some(Output::Read(None)), 2, Some(3)),
        ];
        let err = check(&stale).unwrap_err();
        assert_eq!(err.key, "k");
        assert!(err.to_string().contains("client 1"), "{err}");
    }

    #[test]
    fn concurrent_operations_may_take_effect_in_either_order() {
        // Two overlapping writes; reads after both may see either, but not both in turn.
        let either = [
            op(0, Input::Write(v("a")), Some(Output::Written), 0, Some(10)),
            op(1, Input::Write(v("b")), Some(Output::Written), 1, Some(9)),
            op(2, Input::Read, Some(Output::Read(v("a"))), 11, Some(12)),
        ];
        assert!(check(&either).is_ok());
        let flip = [
            op(0, Input::Write(v("a")), Some(Output::Written), 0, Some(10)),
            op(1, Input::Write(v("b")), Some(Output::Written), 1, Some(9)),
            op(2, Input::Read, Some(Output::Read(v("a"))), 11, Some(12)),
            op(2, Input::Read, Some(Output::Read(v("b"))), 13, Some(14)),
        ];
        assert!(check(&flip).is_err());
    }

    #[test]
    fn two_cas_from_the_same_value_cannot_both_win() {
        let both = [
            op(
                0,
                Input::Cas {
                    expected: None,
                    new: v("a"),
                },
                Some(Output::Cas(true)),
                0,
                Some(5),
            ),
            op(
                1,
                Input::Cas {
                    expected: None,
                    new: v("b"),
                },
                Some(Output::Cas(true)),
                1,
                Some(6),
            ),
        ];
        assert!(check(&both).is_err(), "a lost update must be caught");
        let one = [
            op(
                0,
                Input::Cas {
                    expected: None,
                    new: v("a"),
                },
                Some(Output::Cas(true)),
                0,
                Some(5),
            ),
            op(
                1,
                Input::Cas {
                    expected: None,
                    new: v("b"),
                },
                Some(Output::Cas(false)),
                1,
                Some(6),
            ),
            op(2, Input::Read, Some(Output::Read(v("a"))), 7, Some(8)),
        ];
        assert!(check(&one).is_ok());
    }

    #[test]
    fn an_unknown_outcome_may_or_may_not_have_taken_effect() {
        let took = [
            op(0, Input::Write(v("a")), None, 0, None),
            op(1, Input::Read, Some(Output::Read(v("a"))), 5, Some(6)),
        ];
        assert!(check(&took).is_ok());
        let did_not = [
            op(0, Input::Write(v("a")), None, 0, None),
            op(1, Input::Read, Some(Output::Read(None)), 5, Some(6)),
        ];
        assert!(check(&did_not).is_ok());
        // But not after it was seen: a later read cannot go back.
        let back = [
            op(0, Input::Write(v("a")), None, 0, None),
            op(1, Input::Read, Some(Output::Read(v("a"))), 5, Some(6)),
            op(1, Input::Read, Some(Output::Read(None)), 7, Some(8)),
        ];
        assert!(check(&back).is_err());
    }

    #[test]
    fn keys_are_checked_independently() {
        let mut h = vec![
            op(0, Input::Write(v("a")), Some(Output::Written), 0, Some(1)),
            op(0, Input::Read, Some(Output::Read(v("a"))), 2, Some(3)),
        ];
        let mut other = op(1, Input::Read, Some(Output::Read(None)), 2, Some(3));
        other.key = "j".into();
        h.push(other);
        assert!(check(&h).is_ok());
    }
}
