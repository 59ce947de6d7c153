//! Checks between apps: references to apps that do not exist, and dependency cycles.

use crate::error::{AppError, AppErrors};
use crate::spec::Apps;
use std::collections::{BTreeMap, BTreeSet};

/// Checks references between `apps`. Each app's own values were checked when parsed.
pub fn validate_apps(apps: &Apps) -> Result<(), AppErrors> {
    let mut errors = Vec::new();
    for app in apps.iter() {
        for (key, value) in &app.env {
            for target in value.referenced_apps() {
                if apps.get(target).is_none() {
                    errors.push(AppError {
                        loc: app.loc.clone(),
                        app: Some(app.id.clone()),
                        message: format!(
                            "env {key} refers to app {target:?}, which is not declared"
                        ),
                    });
                }
            }
        }
    }
    for cycle in find_cycles(apps) {
        let first = &cycle[0];
        let loc = apps.get(first).map(|a| a.loc.clone()).unwrap_or_default();
        errors.push(AppError {
            loc,
            app: Some(first.clone()),
            message: format!(
                "apps wait on each other's addresses in a cycle: {}",
                cycle.join(" -> ")
            ),
        });
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(AppErrors(errors))
    }
}

/// App ids in an order where every app comes after the apps it refers to (start order).
/// `None` if there is a cycle.
pub fn dependency_order(apps: &Apps) -> Option<Vec<String>> {
    let mut order = Vec::new();
    let mut state = BTreeMap::new();
    for id in apps.apps.keys() {
        let mut cycles = Vec::new();
        visit(
            apps,
            id,
            &mut state,
            &mut Vec::new(),
            &mut cycles,
            &mut order,
        );
        if !cycles.is_empty() {
            return None;
        }
    }
    Some(order)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mark {
    InProgress,
    Done,
}

/// Cycles, each as `a -> b -> ... -> a` (first element repeated last), one per back edge.
fn find_cycles(apps: &Apps) -> Vec<Vec<String>> {
    let mut state = BTreeMap::new();
    let mut cycles = Vec::new();
    let mut order = Vec::new();
    for id in apps.apps.keys() {
        visit(
            apps,
            id,
            &mut state,
            &mut Vec::new(),
            &mut cycles,
            &mut order,
        );
    }
    let mut seen = BTreeSet::new();
    cycles.retain(|c: &Vec<String>| seen.insert(canonical(c)));
    cycles
}

/// Depth-first: dependencies are emitted to `order` before their dependents.
fn visit(
    apps: &Apps,
    id: &str,
    state: &mut BTreeMap<String, Mark>,
    stack: &mut Vec<String>,
    cycles: &mut Vec<Vec<String>>,
    order: &mut Vec<String>,
) {
    match state.get(id) {
        Some(Mark::Done) => return,
        Some(Mark::InProgress) => {
            if let Some(start) = stack.iter().position(|s| s == id) {
                let mut cycle = stack[start..].to_vec();
                cycle.push(id.to_string());
                cycles.push(cycle);
            }
            return;
        }
        None => {}
    }
    let Some(app) = apps.get(id) else {
        return; // A missing app is reported on its own.
    };
    state.insert(id.to_string(), Mark::InProgress);
    stack.push(id.to_string());
    for dep in app.dependencies() {
        visit(apps, dep, state, stack, cycles, order);
    }
    stack.pop();
    state.insert(id.to_string(), Mark::Done);
    order.push(id.to_string());
}

/// The same cycle found from another starting app is the same cycle.
fn canonical(cycle: &[String]) -> Vec<String> {
    let ring = &cycle[..cycle.len().saturating_sub(1)];
    let start = ring
        .iter()
        .enumerate()
        .min_by_key(|(_, s)| *s)
        .map_or(0, |(i, _)| i);
    ring[start..]
        .iter()
        .chain(&ring[..start])
        .cloned()
        .collect()
}
