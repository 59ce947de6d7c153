//! The checker against simulated stores: a register that applies each operation at one
//! instant inside its call (linearizable by construction) always passes; one whose CAS
//! decides at the call and writes at the return (an acknowledgement not backed by an
//! atomic transaction) is caught.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use weft_lincheck::{Input, Op, Output, Value, check};

#[derive(Debug, Clone)]
struct Plan {
    client: usize,
    input: Input,
    called: u64,
    /// Offsets of the linearization point and of the return after the call.
    apply: u64,
    ret: u64,
}

fn value(n: u8) -> Value {
    Some(format!("v{n}"))
}

fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        Just(Input::Read),
        (0u8..3).prop_map(|n| Input::Write(value(n))),
        (0u8..3, 0u8..3).prop_map(|(e, n)| Input::Cas {
            expected: if e == 0 { None } else { value(e) },
            new: value(n)
        }),
    ]
}

fn plans() -> impl Strategy<Value = Vec<Plan>> {
    prop::collection::vec((0usize..4, input(), 0u64..40, 0u64..6, 0u64..6), 1..14).prop_map(|v| {
        v.into_iter()
            .map(|(client, input, called, apply, ret)| Plan {
                client,
                input,
                called,
                apply,
                ret,
            })
            .collect()
    })
}

/// Runs the plans on a register; `atomic: false` makes CAS decide at the call and write
/// at the return.
fn run(plans: &[Plan], atomic: bool) -> Vec<Op> {
    // A client runs one operation at a time: space each client's operations out.
    let mut busy_until = [0u64; 4];
    let mut timed: Vec<Plan> = Vec::new();
    let mut sorted = plans.to_vec();
    sorted.sort_by_key(|p| p.called);
    for mut p in sorted {
        p.called = p.called.max(busy_until[p.client]);
        busy_until[p.client] = p.called + p.apply + p.ret + 1;
        timed.push(p);
    }
    // Events: (time, kind, index) where kind 0 = call, 1 = apply, 2 = return.
    let mut events: Vec<(u64, u8, usize)> = Vec::new();
    for (i, p) in timed.iter().enumerate() {
        events.push((p.called * 4, 0, i));
        events.push(((p.called + p.apply) * 4 + 1, 1, i));
        events.push(((p.called + p.apply + p.ret) * 4 + 2, 2, i));
    }
    events.sort();
    let mut state: Value = None;
    let mut outputs: Vec<Option<Output>> = vec![None; timed.len()];
    let mut decided: Vec<Option<bool>> = vec![None; timed.len()];
    for (_, kind, i) in events {
        let p = &timed[i];
        match (kind, &p.input) {
            (0, Input::Cas { expected, .. }) if !atomic => decided[i] = Some(*expected == state),
            (1, Input::Read) => outputs[i] = Some(Output::Read(state.clone())),
            (1, Input::Write(v)) => {
                state = v.clone();
                outputs[i] = Some(Output::Written);
            }
            (1, Input::Cas { expected, new }) if atomic => {
                let ok = *expected == state;
                if ok {
                    state = new.clone();
                }
                outputs[i] = Some(Output::Cas(ok));
            }
            (2, Input::Cas { new, .. }) if !atomic => {
                let ok = decided[i].unwrap_or(false);
                if ok {
                    state = new.clone();
                }
                outputs[i] = Some(Output::Cas(ok));
            }
            _ => {}
        }
    }
    timed
        .iter()
        .zip(outputs)
        .map(|(p, output)| Op {
            client: p.client,
            key: "k".into(),
            input: p.input.clone(),
            output,
            called: p.called * 4,
            returned: Some((p.called + p.apply + p.ret) * 4 + 2),
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn an_atomic_register_is_always_linearizable(plans in plans()) {
        let history = run(&plans, true);
        prop_assert!(check(&history).is_ok(), "{}", check(&history).unwrap_err());
    }
}

#[test]
fn a_register_that_acknowledges_cas_before_applying_it_atomically_is_caught() {
    // Two clients race CAS from "absent"; both decide at their call, both win.
    let race = [
        Plan {
            client: 0,
            input: Input::Cas {
                expected: None,
                new: value(1),
            },
            called: 0,
            apply: 0,
            ret: 5,
        },
        Plan {
            client: 1,
            input: Input::Cas {
                expected: None,
                new: value(2),
            },
            called: 1,
            apply: 0,
            ret: 5,
        },
        Plan {
            client: 2,
            input: Input::Read,
            called: 20,
            apply: 0,
            ret: 1,
        },
    ];
    assert!(check(&run(&race, true)).is_ok());
    let broken = run(&race, false);
    let err = check(&broken).unwrap_err();
    assert_eq!(err.key, "k");
    // And among random plans, the broken register is caught again and again.
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let mut caught = 0;
    for _ in 0..300 {
        let random = plans().new_tree(&mut runner).unwrap().current();
        if check(&run(&random, false)).is_err() {
            caught += 1;
        }
    }
    assert!(
        caught >= 10,
        "the broken register was caught only {caught} times in 300"
    );
}
