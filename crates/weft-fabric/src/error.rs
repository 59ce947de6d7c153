//! Typed errors: each names the object that could not be installed and why.

use std::net::IpAddr;

#[derive(Debug, thiserror::Error)]
pub enum FabricError {
    #[error("invalid name {name:?}: {why}")]
    InvalidName { name: String, why: &'static str },
    #[error(
        "VRF {vrf}: subnet {subnet} of {bridge_domain} overlaps {other} of {other_bridge_domain}"
    )]
    SubnetClash {
        vrf: String,
        bridge_domain: String,
        subnet: ipnet::IpNet,
        other_bridge_domain: String,
        other: ipnet::IpNet,
    },
    #[error("endpoint {endpoint}: {why}")]
    Endpoint { endpoint: String, why: String },
    #[error("VRF {vrf}: address {ip} is claimed by both {first} and {second}")]
    DuplicateAddress {
        vrf: String,
        ip: IpAddr,
        first: String,
        second: String,
    },
    #[error("endpoint {endpoint}: network namespace {netns:?} does not exist")]
    MissingNamespace { endpoint: String, netns: String },
    #[error("namespace {name}: {op} failed: {source}")]
    Netns {
        name: String,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` (namespace {netns}) failed: {stderr}")]
    Command {
        netns: String,
        command: String,
        stderr: String,
    },
    #[error("nft refused the batch for namespace {netns}, nothing was changed: {stderr}")]
    NftRejected { netns: String, stderr: String },
    #[error("state file {path}: {why}")]
    State { path: String, why: String },
}

impl FabricError {
    pub(crate) fn netns(name: &str, op: &'static str, source: impl Into<std::io::Error>) -> Self {
        Self::Netns {
            name: name.to_string(),
            op,
            source: source.into(),
        }
    }
}
