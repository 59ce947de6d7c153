//! Placement rate onto 10,000 simulated nodes with mixed resources and constraints.
//!
//! `cargo run --release -p weft-scheduler --example place_bench`
//! Anchor: Nomad's C1M placed 3,750 containers/s on 5,000 hosts; the goal is 10x that.

use std::time::Instant;
use weft_app::{AppSpec, Constraint, Pattern};
use weft_model::EpgPath;
use weft_scheduler::{Node, PlacementOptions, Resources, SeededRng, place};

const NODES: usize = 10_000;
const APPS: usize = 200;
const INSTANCES: u32 = 500;
const GOAL: f64 = 37_500.0;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut rng = SeededRng::new(2015);
    let mut nodes: Vec<Node> = (0..NODES)
        .map(|i| {
            // Mixed shapes: 4 to 64 cores, 8 to 256 GiB.
            let cores = [4u64, 8, 16, 32, 64][rng.below(5)];
            let mem = cores * 4096 * [1u64, 2, 4][rng.below(3)];
            Node::new(
                &format!("node-{i:05}"),
                Resources::new(cores * 1000, mem, 500_000),
            )
            .with_attribute("rack", &format!("rack-{:03}", i % 250))
            .with_attribute("zone", ["eu-a", "eu-b", "us-a", "us-b"][i % 4])
        })
        .collect();
    let constraint_sets: Vec<Vec<Constraint>> = vec![
        vec![],
        vec![Constraint::Unique {
            attribute: "hostname".into(),
        }],
        vec![Constraint::MaxPer {
            attribute: "rack".into(),
            value: 4,
        }],
        vec![Constraint::Like {
            attribute: "zone".into(),
            value: Pattern::new("eu-.*")?,
        }],
        vec![Constraint::Spread {
            attribute: "zone".into(),
        }],
    ];
    let apps: Vec<AppSpec> = (0..APPS)
        .map(|i| {
            let mut app = AppSpec::new(
                &format!("app-{i}"),
                EpgPath::new("t", "p", "e"),
                [0.1, 0.25, 0.5, 1.0][i % 4],
                [64, 128, 256, 512][(i / 4) % 4],
            );
            app.instances = INSTANCES;
            app.constraints = constraint_sets[i % constraint_sets.len()].clone();
            app
        })
        .collect();

    let options = PlacementOptions::default();
    let started = Instant::now();
    let mut placed = 0u64;
    let mut unplaced = 0u64;
    for (i, app) in apps.iter().enumerate() {
        let out = place(&nodes, app, &[], app.instances, &options, i as u64);
        let need = Resources::of_app(app);
        for p in &out.placements {
            let n = &mut nodes[p.node_index];
            n.allocated = n.allocated.saturating_add(need);
        }
        placed += out.placements.len() as u64;
        unplaced += u64::from(out.unplaced);
    }
    let seconds = started.elapsed().as_secs_f64();
    let rate = placed as f64 / seconds;
    println!(
        "placed {placed} tasks ({unplaced} unplaced) of {APPS} apps onto {NODES} nodes in {seconds:.3}s"
    );
    println!("placements/s: {rate:.0}");
    println!("ratio to goal ({GOAL:.0}/s): {:.2}x", rate / GOAL);
    Ok(())
}
