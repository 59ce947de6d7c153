//! Placement: which nodes get an app's new tasks, and, for those that fit nowhere,
//! why not — per node (`weft app why-pending`).
//!
//! Nodes are visited in a seeded pseudo-random order (a random start and a stride
//! coprime with the node count, so every node is visited once). The first
//! `candidate_limit` feasible nodes are scored and the best wins, as Nomad does: the
//! cost of a placement stays flat as the cluster grows. The default score is
//! **bin-packing** (highest utilization after placement, Nomad's default): it keeps
//! nodes whole for large tasks and answers the paper's problem 2, lost packing density.
//! `Strategy::Spread` prefers the least allocated node instead.

use crate::cluster::{Node, ResourceKind, Resources, Task};
use crate::constraints::ConstraintTracker;
use crate::explain::{Explanation, NodeVerdict, Rejection};
use crate::rng::SeededRng;
use std::collections::{HashMap, HashSet};
use weft_app::{AppSpec, Constraint};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Strategy {
    /// Fullest node that fits (dense packing).
    #[default]
    BinPack,
    /// Emptiest node (even load).
    Spread,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacementOptions {
    pub strategy: Strategy,
    /// Feasible nodes scored per placement; `usize::MAX` scores every node.
    pub candidate_limit: usize,
}

impl Default for PlacementOptions {
    fn default() -> Self {
        Self {
            strategy: Strategy::BinPack,
            candidate_limit: 8,
        }
    }
}

/// One new task's node.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Placement {
    pub node: String,
    /// Index into the `nodes` slice that was passed in.
    pub node_index: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlacementOutcome {
    pub placements: Vec<Placement>,
    /// Tasks that fit nowhere; `explanation` says why.
    pub unplaced: u32,
    pub explanation: Option<Explanation>,
}

/// Places `count` new tasks of `app`. `existing` are the app's tasks (only active
/// ones count for constraints); every node's `allocated` already includes them.
pub fn place(
    nodes: &[Node],
    app: &AppSpec,
    existing: &[Task],
    count: u32,
    options: &PlacementOptions,
    seed: u64,
) -> PlacementOutcome {
    place_avoiding(nodes, &HashSet::new(), app, existing, count, options, seed)
}

/// As [`place`], never on the nodes named in `unreachable` (stale heartbeats).
pub(crate) fn place_avoiding(
    nodes: &[Node],
    unreachable: &HashSet<&str>,
    app: &AppSpec,
    existing: &[Task],
    count: u32,
    options: &PlacementOptions,
    seed: u64,
) -> PlacementOutcome {
    let need = Resources::of_app(app);
    let usable: Vec<Option<Rejection>> = nodes
        .iter()
        .map(|n| {
            if unreachable.contains(n.name.as_str()) {
                Some(Rejection::Unreachable)
            } else if !n.ready {
                Some(Rejection::NotReady)
            } else {
                None
            }
        })
        .collect();
    let mut free: Vec<Resources> = nodes.iter().map(Node::free).collect();
    let by_name: HashMap<&str, &Node> = if existing.is_empty() || app.constraints.is_empty() {
        HashMap::new()
    } else {
        nodes.iter().map(|n| (n.name.as_str(), n)).collect()
    };
    let task_nodes = existing
        .iter()
        .filter(|t| t.state.is_active())
        .filter_map(|t| by_name.get(t.node.as_str()).copied());
    let mut tracker = ConstraintTracker::new(&app.constraints, task_nodes);
    for (i, c) in app.constraints.iter().enumerate() {
        if let Constraint::Spread { attribute } = c {
            let values = nodes
                .iter()
                .zip(&usable)
                .filter(|(_, u)| u.is_none())
                .filter_map(|(n, _)| n.attribute(attribute).map(str::to_string))
                .collect();
            tracker.set_spread_values(i, values);
        }
    }

    let mut rng = SeededRng::new(seed);
    let mut placements = Vec::with_capacity(count as usize);
    let search = Search {
        nodes,
        usable: &usable,
        need,
        options,
    };
    while placements.len() < count as usize {
        let chosen = match search.best(&free, &tracker, &mut rng) {
            Some(i) => Some(i),
            // A spread value whose nodes are all full or excluded would block every
            // placement: balance over the values that can still take a task.
            None if tracker.has_spread() && narrow_spread(&search, &free, &mut tracker) => {
                search.best(&free, &tracker, &mut rng)
            }
            None => None,
        };
        let Some(i) = chosen else {
            break;
        };
        free[i] = free[i].saturating_sub(need);
        tracker.record(&nodes[i]);
        placements.push(Placement {
            node: nodes[i].name.clone(),
            node_index: i,
        });
    }
    let placed = u32::try_from(placements.len()).unwrap_or(u32::MAX);
    let unplaced = count - placed;
    let explanation = (unplaced > 0).then(|| search.explain(app, unplaced, &free, &tracker));
    PlacementOutcome {
        placements,
        unplaced,
        explanation,
    }
}

struct Search<'a> {
    nodes: &'a [Node],
    usable: &'a [Option<Rejection>],
    need: Resources,
    options: &'a PlacementOptions,
}

impl Search<'_> {
    fn feasible(&self, i: usize, free: &[Resources], tracker: &ConstraintTracker<'_>) -> bool {
        self.usable[i].is_none()
            && free[i].fits(self.need)
            && tracker.first_failure(&self.nodes[i], false).is_none()
    }

    /// The best-scoring node among the first `candidate_limit` feasible ones.
    fn best(
        &self,
        free: &[Resources],
        tracker: &ConstraintTracker<'_>,
        rng: &mut SeededRng,
    ) -> Option<usize> {
        let n = self.nodes.len();
        if n == 0 {
            return None;
        }
        let mut index = rng.below(n);
        let stride = coprime_stride(n, rng);
        let mut best: Option<(f64, usize)> = None;
        let mut found = 0;
        for _ in 0..n {
            if self.feasible(index, free, tracker) {
                let score = self.score(index, free);
                if best.is_none_or(|(s, _)| score > s) {
                    best = Some((score, index));
                }
                found += 1;
                if found >= self.options.candidate_limit {
                    break;
                }
            }
            index += stride;
            if index >= n {
                index -= n;
            }
        }
        best.map(|(_, i)| i)
    }

    /// Mean of cpu and mem utilization after placing; higher is better for bin-packing.
    fn score(&self, i: usize, free: &[Resources]) -> f64 {
        let total = self.nodes[i].total;
        let after = free[i].saturating_sub(self.need);
        let used = |total: u64, free: u64| {
            if total == 0 {
                1.0
            } else {
                (total - free.min(total)) as f64 / total as f64
            }
        };
        let utilization =
            (used(total.cpu_millis, after.cpu_millis) + used(total.mem_mib, after.mem_mib)) / 2.0;
        match self.options.strategy {
            Strategy::BinPack => utilization,
            Strategy::Spread => -utilization,
        }
    }

    /// Every reason each node refuses the task.
    fn explain(
        &self,
        app: &AppSpec,
        unplaced: u32,
        free: &[Resources],
        tracker: &ConstraintTracker<'_>,
    ) -> Explanation {
        let nodes = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, node)| {
                let mut reasons = Vec::new();
                if let Some(r) = &self.usable[i] {
                    reasons.push(r.clone());
                }
                let have = free[i];
                for (resource, have, need) in [
                    (ResourceKind::Cpu, have.cpu_millis, self.need.cpu_millis),
                    (ResourceKind::Mem, have.mem_mib, self.need.mem_mib),
                    (ResourceKind::Disk, have.disk_mib, self.need.disk_mib),
                ] {
                    if have < need {
                        reasons.push(Rejection::Insufficient {
                            resource,
                            have,
                            need,
                        });
                    }
                }
                for (c, constraint) in tracker.constraints().iter().enumerate() {
                    if let Some(detail) = tracker.failure(c, node) {
                        reasons.push(Rejection::Constraint {
                            constraint: constraint.to_string(),
                            detail,
                        });
                    }
                }
                NodeVerdict {
                    node: node.name.clone(),
                    reasons,
                }
            })
            .collect();
        Explanation {
            app: app.id.clone(),
            need: self.need,
            unplaced,
            nodes,
        }
    }
}

/// Drops, from each spread, the values where no node could take the task for any other
/// reason. Returns whether anything changed (so a retry may succeed).
fn narrow_spread(
    search: &Search<'_>,
    free: &[Resources],
    tracker: &mut ConstraintTracker<'_>,
) -> bool {
    let mut changed = false;
    let constraints = tracker.constraints();
    for (c, constraint) in constraints.iter().enumerate() {
        let Constraint::Spread { attribute } = constraint else {
            continue;
        };
        let Some(current) = tracker.spread_values(c) else {
            continue;
        };
        let viable: HashSet<String> = search
            .nodes
            .iter()
            .enumerate()
            .filter(|&(i, node)| {
                search.usable[i].is_none()
                    && free[i].fits(search.need)
                    && tracker.first_failure(node, true).is_none()
            })
            .filter_map(|(_, node)| node.attribute(attribute))
            .filter(|v| current.contains(*v))
            .map(str::to_string)
            .collect();
        if viable.len() < current.len() {
            tracker.set_spread_values(c, viable);
            changed = true;
        }
    }
    changed
}

/// A step in `1..n` sharing no factor with `n`, so that stepping visits every node once.
fn coprime_stride(n: usize, rng: &mut SeededRng) -> usize {
    if n <= 2 {
        return 1;
    }
    loop {
        let stride = 1 + rng.below(n - 1);
        if gcd(stride, n) == 1 {
            return stride;
        }
    }
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}
