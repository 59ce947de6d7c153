//! The catalog as DNS at a gateway serves it: per service, its passing instances, each
//! with the asker classes that policy keeps from reaching it. The controller decides it
//! here once per view; the node's agent only encodes answers (see `weft-dns`).

use crate::policy::instance_address;
use crate::records::Status;
use crate::{Asker, Consul, ConsulError};
use std::collections::BTreeMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use weft_api::{DnsInstance, DnsService};
use weft_store::KvStore;

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
}
