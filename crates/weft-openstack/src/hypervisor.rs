//! Nova's hypervisors and hosts (microversion 2.1, admin only as in Nova's default
//! policy): weft's registered nodes, with their capacity as the scheduler sees it.
//!
//! A node is one hypervisor (type `docker`) and one host running the `compute` service
//! in zone `nova`. `vcpus`, `memory_mb` and `local_gb` are what it registered;
//! `vcpus_used`, `memory_mb_used` and `local_gb_used` what the scheduler counts as
//! allocated there (every task placed on it, servers or not), `running_vms` those
//! tasks. `state` is `up` while its agent heartbeats. A hypervisor's id at 2.1 is an
//! integer: derived from the node's name, so it is stable.

use crate::compute::caller;
use crate::error::NovaError;
use crate::{Caller, Controller, OpenStack, WeftNode, sha256_hex};
use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use std::sync::Arc;
use weft_store::KvStore;

type Adapter<S, C> = State<Arc<OpenStack<S, C>>>;
type Answer = Result<Response, NovaError>;

pub(crate) fn routes<S: KvStore + Clone, C: Controller>() -> Router<Arc<OpenStack<S, C>>> {
    Router::new()
        .route("/v2.1/os-hypervisors", get(list::<S, C>))
        .route("/v2.1/os-hypervisors/detail", get(list_detail::<S, C>))
        .route("/v2.1/os-hypervisors/statistics", get(statistics::<S, C>))
        .route("/v2.1/os-hypervisors/{id}", get(show::<S, C>))
        .route("/v2.1/os-hypervisors/{id}/uptime", get(uptime::<S, C>))
        .route("/v2.1/os-aggregates", get(aggregates::<S, C>))
        .route("/v2.1/os-hosts", get(hosts::<S, C>))
        .route("/v2.1/os-hosts/{name}", get(host::<S, C>))
}

/// The caller, who must be weft's admin (Nova's default policy for these APIs).
fn admin<S: KvStore + Clone, C: Controller>(
    a: &OpenStack<S, C>,
    headers: &HeaderMap,
    rule: &str,
) -> Result<(), NovaError> {
    match caller(a, headers)? {
        Caller::Admin => Ok(()),
        Caller::Tenant(_) => Err(NovaError::forbidden(format!(
            "Policy doesn't allow os_compute_api:{rule} to be performed."
        ))),
    }
}

/// A node's hypervisor id: a positive integer derived from its name.
pub(crate) fn hypervisor_id(node: &str) -> u64 {
    let hex = sha256_hex(&[b"weft-openstack:hypervisor:", node.as_bytes()]);
    u64::from_str_radix(&hex[..7], 16).map_or(1, |n| n + 1)
}

/// Whole vCPUs (Nova counts them as integers): registered ones rounded down, used ones up.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn whole(cpus: f64, up: bool) -> u64 {
    let n = if up { cpus.ceil() } else { cpus.floor() };
    if n.is_finite() && n > 0.0 {
        n as u64
    } else {
        0
    }
}

fn gib(mb: u64) -> u64 {
    mb / 1024
}

fn summary(node: &WeftNode) -> Value {
    json!({
        "id": hypervisor_id(&node.name),
        "hypervisor_hostname": node.name,
        "state": if node.ready { "up" } else { "down" },
        "status": "enabled",
    })
}

fn detail(node: &WeftNode) -> Value {
    let id = hypervisor_id(&node.name);
    let (vcpus, vcpus_used) = (whole(node.cpus, false), whole(node.cpus_used, true));
    let (local_gb, local_gb_used) = (gib(node.disk_mb), gib(node.disk_mb_used));
    let mut value = summary(node);
    let extra = json!({
        "hypervisor_type": "docker",
        "hypervisor_version": 1,
        "host_ip": node.underlay_ip.to_string(),
        "cpu_info": json!({"arch": std::env::consts::ARCH, "topology": {"cores": vcpus}}).to_string(),
        "vcpus": vcpus,
        "vcpus_used": vcpus_used,
        "memory_mb": node.mem_mb,
        "memory_mb_used": node.mem_mb_used,
        "free_ram_mb": i128::from(node.mem_mb) - i128::from(node.mem_mb_used),
        "local_gb": local_gb,
        "local_gb_used": local_gb_used,
        "free_disk_gb": i128::from(local_gb) - i128::from(local_gb_used),
        "disk_available_least": local_gb.saturating_sub(local_gb_used),
        "running_vms": node.tasks,
        "current_workload": 0,
        "service": {"host": node.name, "id": id, "disabled_reason": null},
    });
    if let (Some(into), Some(from)) = (value.as_object_mut(), extra.as_object()) {
        into.extend(from.clone());
    }
    value
}

fn nodes<S: KvStore + Clone, C: Controller>(a: &OpenStack<S, C>) -> Vec<WeftNode> {
    let mut nodes = a.controller.node_capacity();
    nodes.sort_by(|x, y| x.name.cmp(&y.name));
    nodes
}

/// `GET /os-hypervisors`.
async fn list<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
) -> Answer {
    admin(&a, &headers, "os-hypervisors:list")?;
    let all: Vec<Value> = nodes(&a).iter().map(summary).collect();
    Ok(Json(json!({ "hypervisors": all })).into_response())
}

/// `GET /os-hypervisors/detail`.
async fn list_detail<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
) -> Answer {
    admin(&a, &headers, "os-hypervisors:list-detail")?;
    let all: Vec<Value> = nodes(&a).iter().map(detail).collect();
    Ok(Json(json!({ "hypervisors": all })).into_response())
}

/// `GET /os-hypervisors/{id}` (an integer at 2.1).
async fn show<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer {
    admin(&a, &headers, "os-hypervisors:show")?;
    let not_found =
        || NovaError::not_found(format!("Hypervisor with ID '{id:.64}' could not be found."));
    let wanted: u64 = id.parse().map_err(|_| not_found())?;
    let node = nodes(&a)
        .into_iter()
        .find(|n| hypervisor_id(&n.name) == wanted)
        .ok_or_else(not_found)?;
    Ok(Json(json!({ "hypervisor": detail(&node) })).into_response())
}

/// `GET /os-hypervisors/{id}/uptime`: 501, as Nova answers for a driver without it
/// (weft does not know its nodes' uptime); `openstack hypervisor show` expects that.
async fn uptime<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
) -> Answer {
    admin(&a, &headers, "os-hypervisors:uptime")?;
    Err(NovaError::new(
        axum::http::StatusCode::NOT_IMPLEMENTED,
        "notImplemented",
        "Virt driver does not implement uptime function.",
    ))
}

/// `GET /os-aggregates`: weft has no host aggregates (node labels are not shown as
/// aggregates); an empty list, which `openstack hypervisor show` reads.
async fn aggregates<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
) -> Answer {
    admin(&a, &headers, "os-aggregates:index")?;
    Ok(Json(json!({"aggregates": []})).into_response())
}

/// `GET /os-hypervisors/statistics`: the sums over every node.
async fn statistics<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
) -> Answer {
    admin(&a, &headers, "os-hypervisors:statistics")?;
    let all = nodes(&a);
    let keys = [
        "vcpus",
        "vcpus_used",
        "memory_mb",
        "memory_mb_used",
        "free_ram_mb",
        "local_gb",
        "local_gb_used",
        "free_disk_gb",
        "disk_available_least",
        "running_vms",
        "current_workload",
    ];
    let mut sums = serde_json::Map::new();
    sums.insert("count".into(), json!(all.len()));
    for key in keys {
        let total: i128 = all
            .iter()
            .map(|n| detail(n)[key].as_i64().map_or(0, i128::from))
            .sum();
        sums.insert(key.into(), json!(total));
    }
    Ok(Json(json!({ "hypervisor_statistics": sums })).into_response())
}

/// `GET /os-hosts`: every node as a `compute` host in zone `nova`.
async fn hosts<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
) -> Answer {
    admin(&a, &headers, "os-hosts:list")?;
    let all: Vec<Value> = nodes(&a)
        .iter()
        .map(|n| json!({"host_name": n.name, "service": "compute", "zone": "nova"}))
        .collect();
    Ok(Json(json!({ "hosts": all })).into_response())
}

/// `GET /os-hosts/{name}`: its resources, `(total)` and `(used_now)` (and `(used_max)`,
/// the same: weft allocates what tasks ask).
async fn host<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Answer {
    admin(&a, &headers, "os-hosts:show")?;
    let node = nodes(&a)
        .into_iter()
        .find(|n| n.name == name)
        .ok_or_else(|| {
            NovaError::not_found(format!("Compute host {name:.64} could not be found."))
        })?;
    let resource = |project: &str, cpu: u64, memory_mb: u64, disk_gb: u64| {
        json!({"resource": {"host": node.name, "project": project, "cpu": cpu,
                            "memory_mb": memory_mb, "disk_gb": disk_gb}})
    };
    let used = (
        whole(node.cpus_used, true),
        node.mem_mb_used,
        gib(node.disk_mb_used),
    );
    Ok(Json(json!({"host": [
        resource("(total)", whole(node.cpus, false), node.mem_mb, gib(node.disk_mb)),
        resource("(used_now)", used.0, used.1, used.2),
        resource("(used_max)", used.0, used.1, used.2),
    ]}))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn node() -> WeftNode {
        WeftNode {
            name: "com1".into(),
            underlay_ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            ready: true,
            cpus: 4.0,
            mem_mb: 8192,
            disk_mb: 20480,
            cpus_used: 1.5,
            mem_mb_used: 2560,
            disk_mb_used: 0,
            tasks: 2,
        }
    }

    #[test]
    fn a_node_is_a_hypervisor_with_the_schedulers_counts() {
        let d = detail(&node());
        assert_eq!(d["hypervisor_hostname"], "com1");
        assert_eq!(d["id"], hypervisor_id("com1"));
        assert_eq!(d["state"], "up");
        assert_eq!(d["vcpus"], 4);
        assert_eq!(d["vcpus_used"], 2);
        assert_eq!(d["memory_mb"], 8192);
        assert_eq!(d["memory_mb_used"], 2560);
        assert_eq!(d["free_ram_mb"], 8192 - 2560);
        assert_eq!(d["local_gb"], 20);
        assert_eq!(d["running_vms"], 2);
        assert_eq!(d["host_ip"], "10.0.0.1");
        assert!(d["cpu_info"].is_string());
        assert_eq!(d["service"]["host"], "com1");
        let s = summary(&WeftNode {
            ready: false,
            ..node()
        });
        assert_eq!(s["state"], "down");
        assert_eq!(s.as_object().map(serde_json::Map::len), Some(4));
    }

    #[test]
    fn ids_are_stable_positive_and_distinct() {
        assert_eq!(hypervisor_id("com1"), hypervisor_id("com1"));
        assert_ne!(hypervisor_id("com1"), hypervisor_id("com2"));
        assert!(hypervisor_id("") > 0);
        assert_eq!(whole(0.5, true), 1);
        assert_eq!(whole(0.5, false), 0);
        assert_eq!(whole(f64::NAN, true), 0);
    }
}
