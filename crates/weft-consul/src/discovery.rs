//! The catalog as DNS at a gateway serves it: per service, its passing instances, each
//! with the asker classes that policy keeps from reaching it. The controller decides it
//! here once per view; the node's agent only encodes answers (see `weft-dns`).

use crate::checks::{self, Reported, report_validity_ms};
use crate::policy::instance_address;
use crate::records::{CheckRecord, Probe, Status, prefix};
use crate::{Asker, Consul, ConsulError, EndpointSite};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use weft_api::{
    DnsInstance, DnsService, MAX_PROBE_OUTPUT, ProbeKind, ProbeReport, ProbeReportResponse,
};
use weft_store::KvStore;

/// An HTTP or TCP check run by a node's agent (see [`crate::Directory::endpoint_at`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignedProbe {
    /// The node whose agent runs it, and the VRF it runs from.
    pub site: EndpointSite,
    pub tenant: String,
    /// The Consul node the check is registered on.
    pub node: String,
    pub check_id: String,
    pub kind: ProbeKind,
}

type Boxed<'a, T> = Pin<Box<dyn Future<Output = Result<T, ConsulError>> + Send + 'a>>;

/// The controller's own `consul` service: its address is the controller's, which tasks
/// do not reach; they find Consul's API at their gateway instead.
const OWN_SERVICE: &str = "consul";

/// What the controller asks of the adapter to build a node's discovery view.
pub trait DnsSource: Send + Sync + 'static {
    /// Every service of `tenant` with its passing instances; `hidden_from` lists the
    /// indices of `classes` (one asker per EPG) that policy keeps from each instance.
    fn dns_services<'a>(
        &'a self,
        tenant: &'a str,
        classes: &'a [Asker],
    ) -> Pin<Box<dyn Future<Output = Result<Vec<DnsService>, ConsulError>> + Send + 'a>>;

    /// Every instance of `service` decided for `asker`, shown or hidden, and why.
    fn decide<'a>(
        &'a self,
        tenant: &'a str,
        service: &'a str,
        asker: Option<&'a Asker>,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<crate::Decision>, ConsulError>> + Send + 'a>>;

    /// Every HTTP and TCP check of `tenant` that an agent runs, in store order.
    fn assigned_probes<'a>(&'a self, tenant: &'a str) -> Boxed<'a, Vec<AssignedProbe>>;

    /// Records what `reporter`'s agent reports of the checks it runs; reports of checks
    /// that are not assigned to it (any more) are ignored.
    fn report_probes<'a>(
        &'a self,
        reporter: &'a str,
        reports: &'a [ProbeReport],
    ) -> Boxed<'a, ProbeReportResponse>;
}

impl std::fmt::Debug for dyn DnsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DnsSource")
    }
}

impl<S: KvStore + Clone> DnsSource for Consul<S> {
    fn dns_services<'a>(
        &'a self,
        tenant: &'a str,
        classes: &'a [Asker],
    ) -> Pin<Box<dyn Future<Output = Result<Vec<DnsService>, ConsulError>> + Send + 'a>> {
        Box::pin(async move {
            let view = self.view(tenant).await?;
            let mut services: BTreeMap<&str, Vec<DnsInstance>> = BTreeMap::new();
            for s in &view.services {
                let r = &s.record;
                if r.service == OWN_SERVICE && r.node == self.config.node_name {
                    continue;
                }
                // Its own checks and its node's (serfHealth among them) must all pass.
                let passing = view
                    .checks_of(s)
                    .all(|c| c.record.status == Status::Passing);
                let Ok(address) = instance_address(&view, s).parse::<IpAddr>() else {
                    continue;
                };
                if !passing {
                    continue;
                }
                let hidden_from = classes
                    .iter()
                    .enumerate()
                    .filter(|(_, asker)| {
                        self.directory
                            .may_reach(asker, address, r.port)
                            .is_some_and(|reach| !reach.allowed)
                    })
                    .filter_map(|(i, _)| u32::try_from(i).ok())
                    .collect();
                services.entry(&r.service).or_default().push(DnsInstance {
                    id: r.id.clone(),
                    node: r.node.clone(),
                    address,
                    port: r.port,
                    tags: r.tags.clone(),
                    hidden_from,
                });
            }
            Ok(services
                .into_iter()
                .map(|(name, instances)| DnsService {
                    name: name.to_string(),
                    instances,
                })
                .collect())
        })
    }

    fn decide<'a>(
        &'a self,
        tenant: &'a str,
        service: &'a str,
        asker: Option<&'a Asker>,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<crate::Decision>, ConsulError>> + Send + 'a>> {
        Box::pin(self.decide_service(tenant, service, asker))
    }

    fn assigned_probes<'a>(&'a self, tenant: &'a str) -> Boxed<'a, Vec<AssignedProbe>> {
        Box::pin(async move {
            let read = self
                .store
                .range(prefix(tenant, "check").as_bytes(), None)
                .await?;
            let mut sites: HashMap<IpAddr, Option<EndpointSite>> = HashMap::new();
            let mut out = Vec::new();
            for kv in &read.kvs {
                let Ok(check) = serde_json::from_slice::<CheckRecord>(&kv.value) else {
                    continue;
                };
                let Some(ip) = checks::probe_host(&check.probe) else {
                    continue;
                };
                let site = sites
                    .entry(ip)
                    .or_insert_with(|| self.directory.endpoint_at(tenant, ip))
                    .clone();
                let (Some(site), Some(kind)) = (site, probe_kind(&check.probe)) else {
                    continue;
                };
                out.push(AssignedProbe {
                    site,
                    tenant: tenant.to_string(),
                    node: check.node,
                    check_id: check.check_id,
                    kind,
                });
            }
            Ok(out)
        })
    }

    fn report_probes<'a>(
        &'a self,
        reporter: &'a str,
        reports: &'a [ProbeReport],
    ) -> Boxed<'a, ProbeReportResponse> {
        Box::pin(async move {
            let mut by_tenant: BTreeMap<&str, Vec<&ProbeReport>> = BTreeMap::new();
            for r in reports {
                by_tenant.entry(&r.tenant).or_default().push(r);
            }
            let mut out = ProbeReportResponse::default();
            for (tenant, reports) in by_tenant {
                let assigned: HashMap<(String, String), u64> = self
                    .assigned_probes(tenant)
                    .await?
                    .into_iter()
                    .filter(|a| a.site.node == reporter)
                    .map(|a| ((a.node, a.check_id), a.kind.interval_ms()))
                    .collect();
                for r in reports {
                    let status = Status::parse(&r.status).filter(|s| *s != Status::Maintenance);
                    let interval = assigned.get(&(r.node.clone(), r.check_id.clone()));
                    let (Some(status), Some(interval)) = (status, interval) else {
                        out.ignored += 1;
                        continue;
                    };
                    self.checks.record_reported(
                        reporter,
                        Reported {
                            tenant,
                            node: &r.node,
                            check: &r.check_id,
                            status,
                            output: truncate(&r.output, MAX_PROBE_OUTPUT),
                            valid_for_ms: report_validity_ms(*interval),
                        },
                    );
                    out.accepted += 1;
                }
            }
            Ok(out)
        })
    }
}

/// What an agent runs for a stored probe.
fn probe_kind(p: &Probe) -> Option<ProbeKind> {
    match p {
        Probe::Http {
            url,
            interval_ms,
            timeout_ms,
            method,
        } => Some(ProbeKind::Http {
            url: url.clone(),
            method: method.clone(),
            timeout_ms: *timeout_ms,
            interval_ms: *interval_ms,
        }),
        Probe::Tcp {
            address,
            interval_ms,
            timeout_ms,
        } => Some(ProbeKind::Tcp {
            address: address.clone(),
            timeout_ms: *timeout_ms,
            interval_ms: *interval_ms,
        }),
        _ => None,
    }
}

/// `text` cut to at most `max` bytes, on a character boundary.
fn truncate(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}
