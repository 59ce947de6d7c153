//! Value checks of one app, shared by the HCL and JSON readers.
//!
//! Each problem names the field it is about (`health_check[0].timeout`) so that the HCL
//! reader can point at that attribute's line.

use crate::spec::{AppSpec, Constraint, HealthCheck, HealthCheckKind, MAX_EXTRA_NETWORKS};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub field: String,
    pub message: String,
}

fn problem(field: impl Into<String>, message: impl Into<String>) -> Problem {
    Problem {
        field: field.into(),
        message: message.into(),
    }
}

/// Consul's limits on what a service carries into discovery.
const MAX_TAGS: usize = 64;
const MAX_TAG_LEN: usize = 256;
const MAX_META: usize = 64;
const MAX_META_KEY: usize = 128;
const MAX_META_VALUE: usize = 512;
const MAX_PORTS: usize = 32;

/// A DNS label: `<tag>.<app>.service.weft` and `_<app>._<port>` must resolve.
fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && !s.starts_with('-')
}

fn check_discovery(app: &AppSpec, out: &mut Vec<Problem>) {
    if app.ports.len() > MAX_PORTS {
        out.push(problem("ports", format!("at most {MAX_PORTS} ports")));
    }
    for (name, port) in &app.ports {
        if !is_label(name) {
            out.push(problem(
                format!("ports.{name}"),
                format!("port name {name:?} must be letters, digits, '-' and '_' (a DNS label)"),
            ));
        }
        if *port == 0 {
            out.push(problem(
                format!("ports.{name}"),
                "port must be from 1 to 65535",
            ));
        }
    }
    if app.tags.len() > MAX_TAGS {
        out.push(problem(
            "tags",
            format!("at most {MAX_TAGS} tags, found {}", app.tags.len()),
        ));
    }
    for tag in &app.tags {
        if tag.len() > MAX_TAG_LEN || tag.is_empty() || tag.contains(char::is_whitespace) {
            out.push(problem(
                "tags",
                format!("tag {tag:?} must be 1 to {MAX_TAG_LEN} characters without spaces"),
            ));
        }
    }
    if app.meta.len() > MAX_META {
        out.push(problem("meta", format!("at most {MAX_META} meta entries")));
    }
    for (key, value) in &app.meta {
        if key.is_empty()
            || key.len() > MAX_META_KEY
            || !key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            out.push(problem(
                format!("meta.{key}"),
                format!("meta key {key:?} must be 1 to {MAX_META_KEY} letters, digits, '-' or '_'"),
            ));
        }
        if value.len() > MAX_META_VALUE {
            out.push(problem(
                format!("meta.{key}"),
                format!("meta value is {} bytes, over {MAX_META_VALUE}", value.len()),
            ));
        }
    }
}

/// An app on an existing endpoint: one task, replaced stop-first, with the endpoint's
/// own security groups.
fn check_endpoint_use(app: &AppSpec, endpoint: &str, out: &mut Vec<Problem>) {
    let name_ok = !endpoint.is_empty()
        && endpoint.len() <= 64
        && endpoint
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !name_ok {
        out.push(problem(
            "endpoint",
            format!("endpoint {endpoint:?} must be 1 to 64 letters, digits, '-', '_' or '.'"),
        ));
    }
    if app.security_groups.is_some() {
        out.push(problem(
            "security_groups",
            "an app on an existing endpoint has the endpoint's security groups: set them on the endpoint",
        ));
    }
    check_one_address(app, "an app on an existing endpoint", "endpoint", out);
}

/// An app whose task has one given address (an existing endpoint's, or a fixed ip): one
/// instance, replaced stop-first (two tasks cannot have the address at once).
fn check_one_address(app: &AppSpec, what: &str, field: &str, out: &mut Vec<Problem>) {
    if app.instances > 1 {
        out.push(problem(
            "instances",
            format!(
                "{what} has at most 1 instance (one address), found {}",
                app.instances
            ),
        ));
    }
    let upgrade = &app.upgrade_strategy;
    if upgrade.minimum_health_capacity != 0.0 || upgrade.maximum_over_capacity != 0.0 {
        out.push(problem(
            "upgrade_strategy",
            format!(
                "{what} replaces its task stop-first: set minimum_health_capacity = 0 and maximum_over_capacity = 0 (two tasks cannot have its {field}'s address at once)"
            ),
        ));
    }
}

/// The networks after the first: a bounded number, each fixed address only where one
/// task has it (as the first network's `ip`).
fn check_networks(app: &AppSpec, out: &mut Vec<Problem>) {
    if app.networks.len() > MAX_EXTRA_NETWORKS {
        out.push(problem(
            "network",
            format!(
                "a task joins at most {} networks (interfaces weft0 to weft{MAX_EXTRA_NETWORKS}): found {}",
                MAX_EXTRA_NETWORKS + 1,
                app.networks.len() + 1
            ),
        ));
    }
    for (i, network) in app.networks.iter().enumerate() {
        if network.ip.is_some() {
            check_one_address(
                app,
                "an app with a fixed ip on a network",
                &format!("network[{i}].ip"),
                out,
            );
        }
        let same = app.networks[..i]
            .iter()
            .position(|n| n.ip.is_some() && n.ip == network.ip);
        if let Some(first) = same {
            out.push(problem(
                format!("network[{i}].ip"),
                format!("network[{i}] and network[{first}] ask for the same ip"),
            ));
        }
    }
}

pub(crate) fn check_app(app: &AppSpec) -> Vec<Problem> {
    let mut out = Vec::new();
    if !app.cpus.is_finite() || app.cpus < 0.001 {
        out.push(problem(
            "cpus",
            format!("cpus must be at least 0.001, found {}", app.cpus),
        ));
    }
    if app.mem == 0 {
        out.push(problem("mem", "mem must be greater than 0 MiB"));
    }
    match (&app.cmd, &app.image) {
        (Some(_), Some(_)) => out.push(problem(
            "image",
            "set either cmd (a process) or image (a docker container), not both",
        )),
        (None, None) => out.push(problem(
            "",
            "missing cmd (a process) or image (a docker container): set exactly one",
        )),
        (Some(cmd), None) if cmd.trim().is_empty() => {
            out.push(problem("cmd", "cmd must not be empty"));
        }
        _ => {}
    }
    if app.cmd.is_some() && !app.args.is_empty() {
        out.push(problem(
            "args",
            "args are passed to an image; a cmd takes its arguments inline",
        ));
    }
    check_discovery(app, &mut out);
    if let Some(endpoint) = &app.endpoint {
        check_endpoint_use(app, endpoint, &mut out);
    }
    if app.ip.is_some() {
        check_one_address(app, "an app with a fixed ip", "ip", &mut out);
        if app.endpoint.is_some() {
            out.push(problem(
                "ip",
                "an app on an existing endpoint has the endpoint's address: set ip or endpoint, not both",
            ));
        }
    }
    check_networks(app, &mut out);
    for key in app.env.keys() {
        if !is_env_name(key) {
            out.push(problem(
                format!("env.{key}"),
                format!(
                    "env name {key:?} must be letters, digits and '_', not starting with a digit"
                ),
            ));
        }
    }
    for (i, c) in app.constraints.iter().enumerate() {
        let field = format!("constraint[{i}]");
        if c.attribute().is_empty() {
            out.push(problem(
                format!("{field}.attribute"),
                "constraint attribute must not be empty",
            ));
        }
        if let Constraint::MaxPer { value: 0, .. } = c {
            out.push(problem(
                format!("{field}.value"),
                "max_per value must be at least 1",
            ));
        }
    }
    for (i, h) in app.health_checks.iter().enumerate() {
        check_health(h, &format!("health_check[{i}]"), &mut out);
    }
    let restart = &app.restart;
    if !restart.backoff_factor.is_finite() || restart.backoff_factor < 1.0 {
        out.push(problem(
            "restart.backoff_factor",
            format!(
                "backoff_factor must be at least 1.0, found {}",
                restart.backoff_factor
            ),
        ));
    }
    if restart.max_delay < restart.backoff {
        out.push(problem(
            "restart.max_delay",
            format!(
                "max_delay {} is shorter than backoff {}",
                restart.max_delay, restart.backoff
            ),
        ));
    }
    let upgrade = &app.upgrade_strategy;
    for (name, value) in [
        ("minimum_health_capacity", upgrade.minimum_health_capacity),
        ("maximum_over_capacity", upgrade.maximum_over_capacity),
    ] {
        if !(0.0..=1.0).contains(&value) {
            out.push(problem(
                format!("upgrade_strategy.{name}"),
                format!("{name} must be a fraction from 0 to 1, found {value}"),
            ));
        }
    }
    out
}

fn check_health(h: &HealthCheck, field: &str, out: &mut Vec<Problem>) {
    let needs_port = matches!(h.kind, HealthCheckKind::Http | HealthCheckKind::Tcp);
    match (needs_port, h.port) {
        (true, None) => out.push(problem(
            format!("{field}.port"),
            "http and tcp health checks need a port",
        )),
        (true, Some(0)) => out.push(problem(
            format!("{field}.port"),
            "port must be from 1 to 65535",
        )),
        (false, Some(_)) => out.push(problem(
            format!("{field}.port"),
            "a command health check takes no port",
        )),
        _ => {}
    }
    if h.path.is_some() && h.kind != HealthCheckKind::Http {
        out.push(problem(
            format!("{field}.path"),
            "only http health checks take a path",
        ));
    }
    if let Some(path) = &h.path
        && !path.starts_with('/')
    {
        out.push(problem(
            format!("{field}.path"),
            format!("path {path:?} must start with '/'"),
        ));
    }
    match (&h.command, h.kind) {
        (None, HealthCheckKind::Command) => out.push(problem(
            format!("{field}.command"),
            "a command health check needs a command",
        )),
        (Some(c), HealthCheckKind::Command) if c.trim().is_empty() => out.push(problem(
            format!("{field}.command"),
            "command must not be empty",
        )),
        (Some(_), HealthCheckKind::Http | HealthCheckKind::Tcp) => out.push(problem(
            format!("{field}.command"),
            "only command health checks take a command",
        )),
        _ => {}
    }
    if h.interval.as_millis() == 0 {
        out.push(problem(
            format!("{field}.interval"),
            "interval must be longer than 0s",
        ));
    }
    if h.timeout.as_millis() == 0 || h.timeout >= h.interval {
        out.push(problem(
            format!("{field}.timeout"),
            format!(
                "timeout must be longer than 0s and shorter than interval {}, found {}",
                h.interval, h.timeout
            ),
        ));
    }
}

fn is_env_name(key: &str) -> bool {
    let mut bytes = key.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}
