//! Placement: resources, constraints, explanations, determinism (with property tests).
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use proptest::prelude::*;
use std::collections::BTreeMap;
use weft_app::{Constraint, Pattern};
use weft_scheduler::{
    Node, PlacementOptions, Rejection, ResourceKind, Resources, Strategy as Scoring, place,
};

fn opts() -> PlacementOptions {
    PlacementOptions::default()
}

#[test]
fn bin_packing_fills_the_fuller_node_first() {
    let mut busy = node("busy", 4000, 4096, "r1");
    busy.allocated = Resources::new(2000, 2048, 0);
    let nodes = vec![node("empty", 4000, 4096, "r1"), busy];
    let exhaustive = PlacementOptions {
        candidate_limit: usize::MAX,
        ..opts()
    };
    let out = place(
        &nodes,
        &app("a", 1.0, 512, 1, vec![]),
        &[],
        1,
        &exhaustive,
        7,
    );
    assert_eq!(out.placements[0].node, "busy");
    let spread = PlacementOptions {
        strategy: Scoring::Spread,
        candidate_limit: usize::MAX,
    };
    let out = place(&nodes, &app("a", 1.0, 512, 1, vec![]), &[], 1, &spread, 7);
    assert_eq!(out.placements[0].node, "empty");
}

#[test]
fn an_impossible_request_is_explained_per_node() {
    let mut full = node("n2", 2000, 1024, "r1");
    full.ready = false;
    let nodes = vec![node("n1", 2000, 1024, "r1"), full];
    let out = place(
        &nodes,
        &app("big", 64.0, 512, 3, vec![]),
        &[],
        3,
        &opts(),
        1,
    );
    assert!(out.placements.is_empty());
    assert_eq!(out.unplaced, 3);
    let why = out.explanation.unwrap();
    assert_eq!(
        why.node("n1").unwrap().reasons,
        vec![Rejection::Insufficient {
            resource: ResourceKind::Cpu,
            have: 2000,
            need: 64_000
        }]
    );
    assert_eq!(why.node("n2").unwrap().reasons[0], Rejection::NotReady);
    let text = why.to_string();
    assert!(text.contains("app big: 3 task(s) pending"), "{text}");
    assert!(
        text.contains("2 of 2 node(s): not enough cpus (need 64)"),
        "{text}"
    );
    assert!(
        text.contains("n1: not enough cpus: have 2, need 64"),
        "{text}"
    );
}

#[test]
fn no_nodes_at_all_is_explained() {
    let out = place(&[], &app("a", 1.0, 1, 2, vec![]), &[], 2, &opts(), 1);
    assert_eq!(out.unplaced, 2);
    assert!(out.explanation.unwrap().to_string().contains("no nodes"));
}

#[test]
fn unique_hostname_counts_existing_tasks_and_explains() {
    let nodes = vec![node("n1", 8000, 8192, "r1"), node("n2", 8000, 8192, "r1")];
    let a = app("a", 1.0, 128, 3, vec![unique_hostname()]);
    let out = place(&nodes, &a, &[task("t1", "n1", 0)], 2, &opts(), 3);
    assert_eq!(out.placements.len(), 1);
    assert_eq!(out.placements[0].node, "n2");
    let why = out.explanation.unwrap();
    let Rejection::Constraint { constraint, detail } = &why.node("n1").unwrap().reasons[0] else {
        panic!("{why}");
    };
    assert_eq!(constraint, "hostname unique");
    assert_eq!(detail, "hostname=n1 already runs 1 task(s)");
}

#[test]
fn equal_like_and_max_per() {
    let nodes: Vec<Node> = (0..6)
        .map(|i| {
            node(&format!("n{i}"), 8000, 8192, &format!("r{}", i % 2))
                .with_attribute("zone", if i < 4 { "eu-west" } else { "us-east" })
        })
        .collect();
    let a = app(
        "a",
        0.1,
        16,
        10,
        vec![
            Constraint::Like {
                attribute: "zone".into(),
                value: Pattern::new("eu-.*").unwrap(),
            },
            Constraint::MaxPer {
                attribute: "rack".into(),
                value: 3,
            },
        ],
    );
    let out = place(&nodes, &a, &[], 10, &opts(), 9);
    assert_eq!(out.placements.len(), 6, "3 per rack, 2 racks");
    assert!(out.placements.iter().all(|p| p.node_index < 4));
    let eq = app(
        "b",
        0.1,
        16,
        2,
        vec![Constraint::Equal {
            attribute: "rack".into(),
            value: "r1".into(),
        }],
    );
    let out = place(&nodes, &eq, &[], 2, &opts(), 9);
    assert!(
        out.placements
            .iter()
            .all(|p| nodes[p.node_index].attributes["rack"] == "r1")
    );
}

#[test]
fn spread_balances_and_skips_full_values() {
    let mut nodes = vec![
        node("a1", 8000, 8192, "a"),
        node("a2", 8000, 8192, "a"),
        node("b1", 8000, 8192, "b"),
        node("c1", 1000, 8192, "c"), // room for one task only
    ];
    let spread = vec![Constraint::Spread {
        attribute: "rack".into(),
    }];
    let a = app("a", 1.0, 16, 9, spread);
    let out = place(&nodes, &a, &[], 9, &opts(), 5);
    assert_eq!(out.unplaced, 0);
    let mut per_rack = BTreeMap::new();
    for p in &out.placements {
        *per_rack
            .entry(nodes[p.node_index].attributes["rack"].clone())
            .or_insert(0) += 1;
    }
    assert_eq!(
        per_rack,
        BTreeMap::from([("a".into(), 4), ("b".into(), 4), ("c".into(), 1)])
    );
    nodes.truncate(0);
    assert_eq!(place(&nodes, &a, &[], 1, &opts(), 5).unplaced, 1);
}

#[test]
fn same_seed_same_placements() {
    let nodes: Vec<Node> = (0..50)
        .map(|i| {
            node(
                &format!("n{i}"),
                4000 + i * 10,
                8192,
                &format!("r{}", i % 5),
            )
        })
        .collect();
    let a = app("a", 0.5, 256, 20, vec![]);
    let one = place(&nodes, &a, &[], 20, &opts(), 42);
    assert_eq!(one, place(&nodes, &a, &[], 20, &opts(), 42));
    assert_ne!(
        one,
        place(&nodes, &a, &[], 20, &opts(), 43),
        "the seed matters"
    );
}

fn arb_nodes() -> impl Strategy<Value = Vec<Node>> {
    prop::collection::vec(
        (1u64..8000, 1u64..8192, 0u64..4000, 0usize..4, any::<bool>()),
        0..30,
    )
    .prop_map(|specs| {
        specs
            .into_iter()
            .enumerate()
            .map(|(i, (cpu, mem, used_cpu, rack, ready))| {
                let mut n = node(&format!("n{i}"), cpu, mem, &format!("r{rack}"));
                n.allocated = Resources::new(used_cpu.min(cpu), 0, 0);
                n.ready = ready || i % 3 != 0;
                n
            })
            .collect()
    })
}

fn arb_constraints() -> impl Strategy<Value = Vec<Constraint>> {
    prop::collection::vec(
        prop_oneof![
            Just(unique_hostname()),
            (1u32..4).prop_map(|v| Constraint::MaxPer {
                attribute: "rack".into(),
                value: v
            }),
            Just(Constraint::Spread {
                attribute: "rack".into()
            }),
            Just(Constraint::Equal {
                attribute: "rack".into(),
                value: "r1".into()
            }),
            Just(Constraint::Like {
                attribute: "rack".into(),
                value: Pattern::new("r[0-2]").unwrap()
            }),
        ],
        0..3,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn placements_never_overallocate_nor_break_constraints(
        nodes in arb_nodes(),
        constraints in arb_constraints(),
        cpus in 0.1f64..3.0,
        mem in 1u64..4096,
        count in 0u32..40,
        seed in any::<u64>(),
    ) {
        let a = app("a", cpus, mem, count, constraints.clone());
        let out = place(&nodes, &a, &[], count, &opts(), seed);
        prop_assert_eq!(out.placements.len() as u32 + out.unplaced, count);
        prop_assert_eq!(out.explanation.is_some(), out.unplaced > 0);
        // Determinism.
        prop_assert_eq!(&out, &place(&nodes, &a, &[], count, &opts(), seed));
        let need = Resources::of_app(&a);
        let mut used: Vec<Resources> = nodes.iter().map(|n| n.allocated).collect();
        let mut per_host: BTreeMap<&str, u32> = BTreeMap::new();
        let mut per_rack: BTreeMap<&str, u32> = BTreeMap::new();
        for p in &out.placements {
            let n = &nodes[p.node_index];
            prop_assert!(n.ready);
            used[p.node_index] = used[p.node_index].saturating_add(need);
            prop_assert!(n.total.fits(used[p.node_index]), "over-allocated {}", n.name);
            *per_host.entry(&n.name).or_default() += 1;
            *per_rack.entry(&n.attributes["rack"]).or_default() += 1;
        }
        for c in &constraints {
            match c {
                Constraint::Unique { .. } => prop_assert!(per_host.values().all(|&v| v <= 1)),
                Constraint::MaxPer { value, .. } => prop_assert!(per_rack.values().all(|v| v <= value)),
                Constraint::Equal { value, .. } => prop_assert!(per_rack.keys().all(|k| k == value)),
                Constraint::Like { value, .. } => prop_assert!(per_rack.keys().all(|k| value.matches(k))),
                Constraint::Spread { .. } if constraints.len() == 1 => {
                    // A rack may lag the busiest by two or more only if it is full.
                    let max = per_rack.values().max().copied().unwrap_or(0);
                    for (i, n) in nodes.iter().enumerate() {
                        let rack = n.attributes["rack"].as_str();
                        let lagging = per_rack.get(rack).copied().unwrap_or(0) + 1 < max;
                        if n.ready && lagging {
                            prop_assert!(!n.total.fits(used[i].saturating_add(need)),
                                "rack {} lags {:?} with room on {}", rack, per_rack, n.name);
                        }
                    }
                }
                Constraint::Spread { .. } => {}
            }
        }
    }
}
