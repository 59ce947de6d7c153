//! Discovery that knows policy: an endpoint is told only of the instances its EPG may
//! reach on the service's port, by the evaluation `weft explain` uses. weft knows what
//! Consul cannot: who may reach whom; an address handed out that the fabric would drop
//! only turns a clear "no such service" into a timeout.

use crate::catalog::{ServiceView, View};
use crate::records::Status;
use crate::{Asker, Directory};
use std::net::IpAddr;

/// One instance of a service as an asker sees it: shown, or hidden and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub id: String,
    pub node: String,
    pub address: String,
    pub port: u16,
    pub shown: bool,
    pub why: String,
}

/// Decides every instance of `service` in `view` for `asker` (`None`: a query from
/// outside the fabric, which policy does not filter). Only instances whose checks all
/// pass are candidates.
pub(crate) fn decide(
    directory: &dyn Directory,
    view: &View,
    service: &str,
    asker: Option<&Asker>,
) -> Vec<Decision> {
    let mut out = Vec::new();
    for s in view.services.iter().filter(|s| s.record.service == service) {
        let address = instance_address(view, s);
        let failing: Vec<&str> = view
            .checks_of(s)
            .filter(|c| c.record.status != Status::Passing)
            .map(|c| c.record.check_id.as_str())
            .collect();
        let (shown, why) = if !failing.is_empty() {
            (false, format!("not passing: {}", failing.join(", ")))
        } else {
            match (asker, address.parse::<IpAddr>()) {
                (None, _) => (
                    true,
                    "passing (asked from outside the fabric: no policy applies)".into(),
                ),
                (Some(_), Err(_)) => (
                    true,
                    "passing; its address is not an IP, policy cannot tell".into(),
                ),
                (Some(a), Ok(ip)) => match directory.may_reach(a, ip, s.record.port) {
                    None => (
                        true,
                        "passing; not a weft endpoint, policy cannot tell".into(),
                    ),
                    Some(r) => (r.allowed, r.why),
                },
            }
        };
        out.push(Decision {
            id: s.record.id.clone(),
            node: s.record.node.clone(),
            address,
            port: s.record.port,
            shown,
            why,
        });
    }
    out
}

/// The instance's own address, else its node's (Consul's rule).
pub(crate) fn instance_address(view: &View, s: &ServiceView) -> String {
    if s.record.address.is_empty() {
        view.nodes
            .get(&s.record.node)
            .map(|n| n.address.clone())
            .unwrap_or_default()
    } else {
        s.record.address.clone()
    }
}

impl<S: weft_store::KvStore + Clone> crate::Consul<S> {
    /// Every instance of `service` of `tenant`, decided for `asker`: what DNS answers and
    /// `weft explain --dns` shows.
    pub async fn decide_service(
        &self,
        tenant: &str,
        service: &str,
        asker: Option<&Asker>,
    ) -> Result<Vec<Decision>, crate::ConsulError> {
        let view = self.view(tenant).await?;
        Ok(decide(self.directory.as_ref(), &view, service, asker))
    }

    /// The endpoint asking from `source` in `vrf`, if it is one of weft's.
    pub fn asker(&self, vrf: &str, source: IpAddr) -> Option<Asker> {
        self.directory.asker(vrf, source)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::catalog::{CheckView, NodeView};
    use crate::records::{CheckRecord, Probe, ServiceRecord};
    use crate::{ConsulError, Reach, WeftInstance, WeftNode};
    use std::collections::BTreeMap;

    /// Policy as a table: (asker EPG, target address) pairs that are allowed.
    struct Table(Vec<(&'static str, &'static str)>);

    impl Directory for Table {
        fn tenant(&self, _: Option<&str>) -> Result<String, ConsulError> {
            Ok("t".into())
        }
        fn nodes(&self) -> Vec<WeftNode> {
            Vec::new()
        }
        fn instances(&self, _: &str) -> Vec<WeftInstance> {
            Vec::new()
        }
        fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
            tokio::sync::watch::channel(0).1
        }
        fn fingerprint(&self) -> u64 {
            0
        }
        fn asker(&self, _: &str, _: IpAddr) -> Option<Asker> {
            None
        }
        fn may_reach(&self, asker: &Asker, address: IpAddr, _: u16) -> Option<Reach> {
            let a = address.to_string();
            if a.starts_with("192.") {
                return None;
            }
            let allowed = self.0.iter().any(|(e, t)| *e == asker.epg && *t == a);
            Some(Reach {
                allowed,
                why: if allowed {
                    "contract".into()
                } else {
                    "no contract".into()
                },
            })
        }
    }

    fn view() -> View {
        let mut v = View::default();
        v.nodes.insert(
            "n".into(),
            NodeView {
                name: "n".into(),
                id: String::new(),
                address: "10.0.0.254".into(),
                tagged_addresses: BTreeMap::new(),
                meta: BTreeMap::new(),
                create_index: 1,
                modify_index: 1,
            },
        );
        for (id, address) in [
            ("db-1", "10.0.0.1"),
            ("db-2", "10.0.0.2"),
            ("db-3", "10.0.0.3"),
            ("ext", "192.0.2.1"),
        ] {
            v.services.push(ServiceView {
                record: ServiceRecord {
                    id: id.into(),
                    service: "db".into(),
                    node: "n".into(),
                    address: address.into(),
                    port: 5432,
                    ..ServiceRecord::default()
                },
                create_index: 1,
                modify_index: 1,
            });
        }
        v.checks.push(CheckView {
            record: CheckRecord {
                check_id: "c".into(),
                name: String::new(),
                node: "n".into(),
                service_id: "db-3".into(),
                service_name: "db".into(),
                status: Status::Critical,
                notes: String::new(),
                output: String::new(),
                probe: Probe::None,
                updated_ms: 0,
                deregister_after_ms: None,
            },
            create_index: 1,
            modify_index: 1,
        });
        v
    }

    #[test]
    fn an_asker_sees_only_passing_instances_its_epg_may_reach() {
        let table = Table(vec![("t/a/app", "10.0.0.1"), ("t/a/app", "10.0.0.3")]);
        let app = Asker {
            endpoint: "app-1".into(),
            tenant: "t".into(),
            epg: "t/a/app".into(),
            vrf: "t/vrf:v".into(),
        };
        let shown = |asker: Option<&Asker>| -> Vec<String> {
            decide(&table, &view(), "db", asker)
                .into_iter()
                .filter(|d| d.shown)
                .map(|d| d.id)
                .collect()
        };
        // db-2: no contract; db-3: allowed but critical; ext: outside the fabric.
        assert_eq!(shown(Some(&app)), ["db-1", "ext"]);
        let web = Asker {
            epg: "t/a/web".into(),
            ..app.clone()
        };
        assert_eq!(shown(Some(&web)), ["ext"]);
        // From outside the fabric, policy does not filter; health still does.
        assert_eq!(shown(None), ["db-1", "db-2", "ext"]);
        let hidden = decide(&table, &view(), "db", Some(&web));
        let db3 = hidden.iter().find(|d| d.id == "db-3").unwrap();
        assert!(db3.why.contains("not passing: c"), "{}", db3.why);
        let db2 = hidden.iter().find(|d| d.id == "db-2").unwrap();
        assert_eq!((db2.shown, db2.why.as_str()), (false, "no contract"));
    }
}
