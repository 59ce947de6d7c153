//! Nova's flavors: a fixed set, each a weft CPU and memory limit for the server's one
//! task (`cpus` = vCPUs, `mem` = RAM in MiB; the root disk is not reserved: a
//! container writes to the node's disk). The scheduler places by these limits, and the
//! runtime enforces them (cgroup CPU quota and memory limit).

use crate::compute::{caller, compute_url, links};
use crate::error::NovaError;
use crate::{Controller, OpenStack};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::sync::Arc;
use weft_store::KvStore;

/// One flavor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flavor {
    pub id: &'static str,
    pub name: &'static str,
    pub vcpus: u32,
    /// MiB.
    pub ram: u64,
    /// GiB, as shown (not reserved).
    pub disk: u64,
}

impl Flavor {
    /// weft's CPU limit of the server's task.
    pub fn cpus(&self) -> f64 {
        f64::from(self.vcpus)
    }
}

/// Nova's classic defaults, m1.tiny to m1.large.
pub const FLAVORS: [Flavor; 4] = [
    Flavor {
        id: "1",
        name: "m1.tiny",
        vcpus: 1,
        ram: 512,
        disk: 1,
    },
    Flavor {
        id: "2",
        name: "m1.small",
        vcpus: 1,
        ram: 2048,
        disk: 20,
    },
    Flavor {
        id: "3",
        name: "m1.medium",
        vcpus: 2,
        ram: 4096,
        disk: 40,
    },
    Flavor {
        id: "4",
        name: "m1.large",
        vcpus: 4,
        ram: 8192,
        disk: 80,
    },
];

/// The flavor a reference names: its id, or a URL ending in it.
pub(crate) fn find(reference: &str) -> Option<&'static Flavor> {
    let id = reference.rsplit('/').next().unwrap_or(reference);
    FLAVORS.iter().find(|f| f.id == id)
}

fn brief(base: &str, f: &Flavor) -> Value {
    json!({"id": f.id, "name": f.name, "links": links(base, "flavors", f.id)})
}

fn detail(base: &str, f: &Flavor) -> Value {
    json!({
        "id": f.id,
        "name": f.name,
        "vcpus": f.vcpus,
        "ram": f.ram,
        "disk": f.disk,
        "swap": "",
        "OS-FLV-EXT-DATA:ephemeral": 0,
        "OS-FLV-DISABLED:disabled": false,
        "os-flavor-access:is_public": true,
        "rxtx_factor": 1.0,
        "links": links(base, "flavors", f.id),
    })
}

type Adapter<S, C> = State<Arc<OpenStack<S, C>>>;

pub(crate) async fn list<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
) -> Result<Response, NovaError> {
    caller(&a, &headers)?;
    let base = compute_url(&a.config.public_url);
    let all: Vec<Value> = FLAVORS.iter().map(|f| brief(&base, f)).collect();
    Ok(Json(json!({"flavors": all})).into_response())
}

pub(crate) async fn list_detail<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
) -> Result<Response, NovaError> {
    caller(&a, &headers)?;
    let base = compute_url(&a.config.public_url);
    let all: Vec<Value> = FLAVORS.iter().map(|f| detail(&base, f)).collect();
    Ok(Json(json!({"flavors": all})).into_response())
}

fn not_found(id: &str) -> NovaError {
    NovaError::not_found(format!("Flavor {id} could not be found."))
}

pub(crate) async fn show<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, NovaError> {
    caller(&a, &headers)?;
    let flavor = FLAVORS
        .iter()
        .find(|f| f.id == id)
        .ok_or_else(|| not_found(&id))?;
    let base = compute_url(&a.config.public_url);
    Ok(Json(json!({"flavor": detail(&base, flavor)})).into_response())
}

/// Extra specs: none yet (weft options through them are not served).
pub(crate) async fn extra_specs<S: KvStore + Clone, C: Controller>(
    State(a): Adapter<S, C>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, NovaError> {
    caller(&a, &headers)?;
    if !FLAVORS.iter().any(|f| f.id == id) {
        return Err(not_found(&id));
    }
    Ok(Json(json!({"extra_specs": {}})).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flavors_by_id_or_link() {
        assert_eq!(find("1").map(|f| f.name), Some("m1.tiny"));
        assert_eq!(
            find("http://h/compute/v2.1/flavors/4").map(|f| f.name),
            Some("m1.large")
        );
        assert!(find("m1.tiny").is_none());
        assert!(find("").is_none());
    }
}
