//! Constraint bookkeeping during one placement call: how many of the app's tasks sit on
//! each attribute value, so that each check is a hash lookup.

use crate::cluster::Node;
use std::collections::{BTreeMap, HashMap, HashSet};
use weft_app::Constraint;

/// Spread's eligible values and how many tasks each holds (`histogram`: count → values).
#[derive(Debug, Clone, Default)]
struct SpreadState {
    values: HashSet<String>,
    histogram: BTreeMap<u32, u32>,
}

impl SpreadState {
    fn fewest(&self) -> Option<u32> {
        self.histogram.keys().next().copied()
    }

    fn moved(&mut self, from: u32) {
        if let Some(n) = self.histogram.get_mut(&from) {
            *n -= 1;
            if *n == 0 {
                self.histogram.remove(&from);
            }
        }
        *self.histogram.entry(from + 1).or_default() += 1;
    }
}

#[derive(Debug)]
pub(crate) struct ConstraintTracker<'a> {
    constraints: &'a [Constraint],
    /// Per constraint: tasks per attribute value (empty for `=` and `like`).
    counts: Vec<HashMap<String, u32>>,
    spread: Vec<Option<SpreadState>>,
}

impl<'a> ConstraintTracker<'a> {
    /// Counts the app's existing tasks, given the node each one runs on.
    pub fn new<'n>(
        constraints: &'a [Constraint],
        task_nodes: impl Iterator<Item = &'n Node> + Clone,
    ) -> Self {
        let mut counts = vec![HashMap::new(); constraints.len()];
        for (i, c) in constraints.iter().enumerate() {
            if matches!(c, Constraint::Equal { .. } | Constraint::Like { .. }) {
                continue;
            }
            for node in task_nodes.clone() {
                if let Some(v) = node.attribute(c.attribute()) {
                    *counts[i].entry(v.to_string()).or_default() += 1;
                }
            }
        }
        Self {
            constraints,
            counts,
            spread: vec![None; constraints.len()],
        }
    }

    pub fn has_spread(&self) -> bool {
        self.constraints
            .iter()
            .any(|c| matches!(c, Constraint::Spread { .. }))
    }

    /// Sets the values each spread constraint balances over.
    pub fn set_spread_values(&mut self, i: usize, values: HashSet<String>) {
        let mut histogram = BTreeMap::new();
        for v in &values {
            let n = self.counts[i].get(v).copied().unwrap_or(0);
            *histogram.entry(n).or_default() += 1;
        }
        self.spread[i] = Some(SpreadState { values, histogram });
    }

    pub fn spread_values(&self, i: usize) -> Option<&HashSet<String>> {
        self.spread[i].as_ref().map(|s| &s.values)
    }

    pub fn constraints(&self) -> &'a [Constraint] {
        self.constraints
    }

    /// The index of the first constraint `node` fails, skipping spread if asked.
    pub fn first_failure(&self, node: &Node, skip_spread: bool) -> Option<usize> {
        (0..self.constraints.len()).find(|&i| {
            !(skip_spread && matches!(self.constraints[i], Constraint::Spread { .. }))
                && self.failure(i, node).is_some()
        })
    }

    /// Why `node` fails constraint `i`, or `None` if it passes.
    pub fn failure(&self, i: usize, node: &Node) -> Option<String> {
        let c = &self.constraints[i];
        let attribute = c.attribute();
        let Some(value) = node.attribute(attribute) else {
            return Some(format!("node has no attribute {attribute:?}"));
        };
        let count = || self.counts[i].get(value).copied().unwrap_or(0);
        match c {
            Constraint::Unique { .. } => {
                let n = count();
                (n > 0).then(|| format!("{attribute}={value} already runs {n} task(s)"))
            }
            Constraint::Equal { value: want, .. } => {
                (value != want).then(|| format!("{attribute}={value}, wanted {want:?}"))
            }
            Constraint::Like { value: pattern, .. } => (!pattern.matches(value))
                .then(|| format!("{attribute}={value} does not match {:?}", pattern.as_str())),
            Constraint::MaxPer { value: max, .. } => {
                let n = count();
                (n >= *max)
                    .then(|| format!("{attribute}={value} already runs {n} of at most {max}"))
            }
            Constraint::Spread { .. } => {
                let state = self.spread[i].as_ref()?;
                if !state.values.contains(value) {
                    return Some(format!("{attribute}={value} has no room in the spread"));
                }
                let n = count();
                let fewest = state.fewest().unwrap_or(0);
                (n > fewest).then(|| {
                    format!("{attribute}={value} runs {n} task(s); spread places next where the fewest ({fewest}) run")
                })
            }
        }
    }

    /// Counts a task placed on `node`.
    pub fn record(&mut self, node: &Node) {
        for (i, c) in self.constraints.iter().enumerate() {
            if matches!(c, Constraint::Equal { .. } | Constraint::Like { .. }) {
                continue;
            }
            let Some(value) = node.attribute(c.attribute()) else {
                continue;
            };
            let count = self.counts[i].entry(value.to_string()).or_default();
            let before = *count;
            *count += 1;
            if let Some(state) = &mut self.spread[i]
                && state.values.contains(value)
            {
                state.moved(before);
            }
        }
    }
}
