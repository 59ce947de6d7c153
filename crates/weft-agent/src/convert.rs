//! weft-api's wire types → weft-fabric's inputs.

use weft_api::{Endpoint, NodeDesired, NodeRegistration};
use weft_compiler::CompiledPolicy;
use weft_fabric::AddressPair;
use weft_fabric::desired::{EndpointSpec, NodeSpec};

/// Everything [`weft_fabric::DesiredNode::from_policy`] needs, for one node. Compared
/// between polls: equal inputs need no reconcile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inputs {
    pub me: NodeSpec,
    pub nodes: Vec<NodeSpec>,
    pub endpoints: Vec<EndpointSpec>,
    pub policy: CompiledPolicy,
}

impl Inputs {
    /// Endpoints attached to this node.
    pub fn local(&self) -> impl Iterator<Item = &EndpointSpec> {
        self.endpoints.iter().filter(|e| e.node == self.me.name)
    }
}

pub fn node_spec(registration: &NodeRegistration) -> NodeSpec {
    NodeSpec {
        name: registration.name.clone(),
        netns: registration.netns.clone(),
        underlay_ip: registration.underlay_ip,
        vrf_netns_prefix: registration.netns_prefix.clone(),
    }
}

pub fn endpoint_spec(ep: &Endpoint) -> EndpointSpec {
    EndpointSpec {
        name: ep.name.clone(),
        node: ep.node.clone(),
        netns: ep.netns.clone(),
        interface: ep.interface,
        epg: ep.epg.clone(),
        ips: vec![ep.ip],
        mac: ep.mac.0,
        allowed_pairs: ep
            .allowed_address_pairs
            .iter()
            .map(|p| AddressPair {
                ip: p.ip,
                mac: p.mac.map(|m| m.0),
            })
            .collect(),
        port_security: ep.port_security,
        security_groups: ep.security_groups.clone(),
    }
}

/// The fabric's inputs for node `me`. This node is described by its own registration
/// (what it is, not what the controller last heard); endpoints on nodes the controller
/// does not list cannot be reached and are left out, with a warning.
pub fn inputs(me: &NodeRegistration, desired: &NodeDesired) -> Inputs {
    let me_spec = node_spec(me);
    let mut nodes: Vec<NodeSpec> = desired
        .nodes
        .iter()
        .filter(|n| n.name != me.name)
        .map(node_spec)
        .collect();
    nodes.push(me_spec.clone());
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    let mut endpoints = Vec::with_capacity(desired.endpoints.len());
    for ep in &desired.endpoints {
        if nodes.iter().any(|n| n.name == ep.node) {
            endpoints.push(endpoint_spec(ep));
        } else {
            tracing::warn!(endpoint = %ep.name, node = %ep.node, "endpoint on an unknown node left out");
        }
    }
    endpoints.sort_by(|a, b| a.name.cmp(&b.name));
    Inputs {
        me: me_spec,
        nodes,
        endpoints,
        policy: desired.policy.clone(),
    }
}

/// The prefix of the endpoint namespaces this node's agent creates (and may delete).
pub fn endpoint_netns_prefix(registration: &NodeRegistration) -> String {
    format!("{}-ep-", registration.netns_prefix)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use weft_api::{AddressPair as ApiPair, EndpointState, EndpointStatus, MacAddr, Resources};
    use weft_compiler::Allocation;

    pub const THREE_TIER: &str = include_str!("../../../examples/three-tier.hcl");

    pub fn policy(hcl: &str) -> CompiledPolicy {
        let model = weft_model::parse_hcl("t.hcl", hcl).expect("hcl");
        weft_compiler::compile(&model, &Allocation::default()).expect("compile")
    }

    pub fn registration(name: &str, n: u8) -> NodeRegistration {
        NodeRegistration {
            name: name.into(),
            underlay_ip: std::net::Ipv4Addr::new(10, 255, 0, n),
            netns: Some(format!("weft-test-{name}")),
            netns_prefix: format!("weft-test-{name}"),
            api: None,
            resources: Resources {
                cpus: 1.0,
                mem_mb: 1,
                disk_mb: 1,
            },
            labels: BTreeMap::new(),
        }
    }

    pub fn endpoint(name: &str, node: &str, epg: &str, ip: &str, n: u8) -> Endpoint {
        Endpoint {
            name: name.into(),
            epg: epg.parse().expect("epg"),
            node: node.into(),
            netns: format!("weft-test-{node}-ep-{name}"),
            interface: 0,
            ip: ip.parse().expect("ip"),
            prefix_len: 24,
            gateway: "10.1.0.1".parse().expect("ip"),
            mac: MacAddr([2, 0, 0, 0, 1, n]),
            allowed_address_pairs: vec![],
            port_security: true,
            security_groups: None,
            revision: 1,
            status: EndpointStatus {
                state: EndpointState::Pending,
                message: None,
            },
        }
    }

    pub fn desired(revision: u64, endpoints: Vec<Endpoint>) -> NodeDesired {
        let nodes = vec![registration("n1", 1), registration("n2", 2)];
        NodeDesired {
            revision,
            policy: policy(THREE_TIER),
            nodes,
            endpoints,
            tasks: Vec::new(),
        }
    }

    pub fn three_tier(revision: u64) -> NodeDesired {
        desired(
            revision,
            vec![
                endpoint("web", "n1", "shop/store/web", "10.1.0.11", 1),
                endpoint("app", "n2", "shop/store/app", "10.1.0.21", 2),
                endpoint("db", "n2", "shop/store/db", "10.1.0.31", 3),
            ],
        )
    }

    #[test]
    fn endpoint_converts_field_by_field() {
        let mut ep = endpoint("web", "n1", "shop/store/web", "10.1.0.11", 1);
        ep.allowed_address_pairs = vec![
            ApiPair {
                ip: "10.1.0.99".parse().expect("ip"),
                mac: None,
            },
            ApiPair {
                ip: "10.1.0.98".parse().expect("ip"),
                mac: Some(MacAddr([2, 9, 9, 9, 9, 9])),
            },
        ];
        let spec = endpoint_spec(&ep);
        assert_eq!(spec.netns, "weft-test-n1-ep-web");
        assert_eq!(spec.ips, vec![ep.ip]);
        assert_eq!(spec.mac, [2, 0, 0, 0, 1, 1]);
        assert_eq!(spec.epg.to_string(), "shop/store/web");
        assert_eq!(spec.allowed_pairs[0].mac, None);
        assert_eq!(spec.allowed_pairs[1].mac, Some([2, 9, 9, 9, 9, 9]));
    }

    #[test]
    fn inputs_build_the_fabric_desired_state() {
        let me = registration("n1", 1);
        let d = three_tier(5);
        let inputs = inputs(&me, &d);
        assert_eq!(inputs.me.vrf_netns_prefix, "weft-test-n1");
        assert_eq!(inputs.nodes.len(), 2);
        assert_eq!(inputs.local().count(), 1);
        let node = weft_fabric::DesiredNode::from_policy(
            &inputs.me,
            &inputs.nodes,
            &inputs.policy,
            &inputs.endpoints,
        )
        .expect("desired");
        assert_eq!(node.node_netns.as_deref(), Some("weft-test-n1"));
        assert_eq!(node.vrfs.len(), 1);
        let vrf = &node.vrfs[0];
        assert_eq!(vrf.local.len(), 1);
        assert_eq!(vrf.local[0].netns, "weft-test-n1-ep-web");
        assert_eq!(vrf.remote.len(), 2);
        assert!(
            vrf.remote
                .iter()
                .all(|r| r.node_underlay == std::net::Ipv4Addr::new(10, 255, 0, 2))
        );
        node.validate().expect("valid");
    }

    #[test]
    fn this_node_comes_from_its_registration_and_unknown_nodes_are_dropped() {
        let mut me = registration("n1", 1);
        me.underlay_ip = std::net::Ipv4Addr::new(10, 255, 0, 77);
        let mut d = three_tier(5);
        d.nodes.retain(|n| n.name != "n1");
        d.endpoints
            .push(endpoint("x", "gone", "shop/store/app", "10.1.0.50", 9));
        let inputs = inputs(&me, &d);
        assert_eq!(inputs.me.underlay_ip, me.underlay_ip);
        assert!(inputs.nodes.iter().any(|n| n.name == "n1"));
        assert!(inputs.endpoints.iter().all(|e| e.name != "x"));
        // Statuses do not change the inputs.
        let mut later = three_tier(6);
        later.endpoints[0].status.state = EndpointState::Ready;
        assert_eq!(
            super::inputs(&me, &three_tier(5)),
            super::inputs(&me, &later)
        );
    }
}
