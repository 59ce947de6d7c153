//! Rolling updates: bounds, cancellation, deadline, and a property test that they never wedge.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use weft_app::{Duration, UpgradeStrategy};
use weft_scheduler::{Deployment, DeploymentStatus, DeploymentTask, Limits, Timestamp};

fn strategy(min: f64, over: f64) -> UpgradeStrategy {
    UpgradeStrategy {
        minimum_health_capacity: min,
        maximum_over_capacity: over,
    }
}

#[test]
fn marathon_limits() {
    assert_eq!(
        Limits::new(10, &strategy(0.5, 0.2)),
        Limits {
            min_healthy: 5,
            max_total: 12
        }
    );
    // No slack at all: one task of over-capacity, as Marathon allows.
    assert_eq!(
        Limits::new(1, &strategy(1.0, 0.0)),
        Limits {
            min_healthy: 1,
            max_total: 2
        }
    );
    assert_eq!(Limits::new(3, &strategy(0.3, 0.0)).min_healthy, 1);
}

#[test]
fn cancel_is_idempotent_and_stops_steps() {
    let d = Deployment::new(
        "a",
        3,
        &strategy(1.0, 1.0),
        Duration::from_secs(60),
        Timestamp(0),
    );
    let c = d.cancel();
    assert_eq!(c.status, DeploymentStatus::Cancelled);
    assert_eq!(c.cancel(), c);
    let (after, step) = c.step(&[], Timestamp(1));
    assert_eq!(after, c);
    assert_eq!(step.start_new, 0);
}

#[test]
fn no_progress_past_the_deadline_fails() {
    let old = |id: &str| DeploymentTask {
        id: id.into(),
        is_new: false,
        healthy: true,
    };
    let d = Deployment::new(
        "a",
        2,
        &strategy(1.0, 0.5),
        Duration::from_secs(60),
        Timestamp(0),
    );
    let (d, step) = d.step(&[old("o1"), old("o2")], Timestamp(0));
    assert_eq!(step.start_new, 1);
    assert!(step.stop.is_empty());
    let stuck = [
        old("o1"),
        old("o2"),
        DeploymentTask {
            id: "n1".into(),
            is_new: true,
            healthy: false,
        },
    ];
    let (d, _) = d.step(&stuck, Timestamp(30_000));
    assert_eq!(d.status, DeploymentStatus::InProgress);
    let (d, step) = d.step(&stuck, Timestamp(61_000));
    assert!(
        matches!(d.status, DeploymentStatus::Failed { ref reason } if reason.contains("no progress for 1m")),
        "{:?}",
        d.status
    );
    assert_eq!(step.start_new, 0);
}

/// A simulated task: new ones turn healthy after `delay` steps.
#[derive(Clone, Debug)]
struct SimTask {
    id: String,
    is_new: bool,
    healthy_in: u32,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn rolling_updates_keep_their_bounds_and_always_finish(
        old_count in 0u32..15,
        instances in 0u32..15,
        min in 0.0f64..=1.0,
        over in 0.0f64..=1.0,
        delays in prop::collection::vec(0u32..3, 64),
        old_unhealthy in 0u32..3,
    ) {
        let s = strategy(min, over);
        let limits = Limits::new(instances, &s);
        let mut d = Deployment::new("a", instances, &s, Duration::from_secs(3600), Timestamp(0));
        let mut tasks: Vec<SimTask> = (0..old_count)
            .map(|i| SimTask { id: format!("old-{i:02}"), is_new: false, healthy_in: u32::from(i < old_unhealthy) * u32::MAX })
            .collect();
        let bound = (old_count + instances + 2) * 5;
        let mut next_id = 0usize;
        let mut steps = 0;
        while d.status == DeploymentStatus::InProgress {
            prop_assert!(steps < bound, "wedged after {} steps: {:?} {:?}", steps, d, tasks);
            steps += 1;
            let view: Vec<DeploymentTask> = tasks.iter().map(|t| DeploymentTask {
                id: t.id.clone(), is_new: t.is_new, healthy: t.healthy_in == 0,
            }).collect();
            let healthy_before = view.iter().filter(|t| t.healthy).count() as u32;
            let total_before = view.len() as u32;
            let (next, step) = d.step(&view, Timestamp(steps.into()));
            d = next;
            // Starts are bounded before the stops complete (stops may be in flight).
            prop_assert!(total_before + step.start_new <= limits.max_total.max(total_before));
            tasks.retain(|t| !step.stop.contains(&t.id));
            let healthy_after = tasks.iter().filter(|t| t.healthy_in == 0).count() as u32;
            prop_assert!(healthy_after >= limits.min_healthy.min(healthy_before),
                "healthy {} < min {} (was {})", healthy_after, limits.min_healthy, healthy_before);
            for t in &mut tasks {
                t.healthy_in = t.healthy_in.saturating_sub(1).min(if t.is_new { u32::MAX } else { t.healthy_in });
            }
            for _ in 0..step.start_new {
                tasks.push(SimTask { id: format!("new-{next_id:03}"), is_new: true, healthy_in: delays[next_id % delays.len()] });
                next_id += 1;
            }
        }
        prop_assert_eq!(d.status, DeploymentStatus::Succeeded);
        prop_assert!(tasks.iter().all(|t| t.is_new));
        prop_assert_eq!(tasks.len() as u32, instances);
    }
}
