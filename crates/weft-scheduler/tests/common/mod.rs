//! Builders shared by the scheduler's tests.
#![allow(dead_code)]

use weft_app::{AppSpec, Constraint};
use weft_model::EpgPath;
use weft_scheduler::{Node, Resources, Task, TaskHealth, TaskState, Timestamp};

pub fn app(id: &str, cpus: f64, mem: u64, instances: u32, constraints: Vec<Constraint>) -> AppSpec {
    let mut app = AppSpec::new(id, EpgPath::new("t", "p", "e"), cpus, mem);
    app.instances = instances;
    app.constraints = constraints;
    app
}

pub fn node(name: &str, cpu_millis: u64, mem: u64, rack: &str) -> Node {
    Node::new(name, Resources::new(cpu_millis, mem, 100_000)).with_attribute("rack", rack)
}

pub fn task(id: &str, node: &str, started_at: u64) -> Task {
    Task {
        id: id.into(),
        node: node.into(),
        state: TaskState::Running,
        health: TaskHealth::Healthy,
        started_at: Timestamp(started_at),
    }
}

pub fn unique_hostname() -> Constraint {
    Constraint::Unique {
        attribute: "hostname".into(),
    }
}
