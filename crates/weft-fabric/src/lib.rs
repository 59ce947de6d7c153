//! weft's software fabric on Linux.
//!
//! A node is a network namespace. Per node and VRF, weft keeps one "VRF namespace"
//! holding a Linux bridge per bridge domain (carrying the anycast gateway) and a
//! VXLAN-GBP device per bridge domain whose underlay socket lives in the node
//! namespace. Endpoints are namespaces with a veth into their bridge.
//!
//! Policy is enforced in two nftables tables per VRF namespace, both named `weft`:
//! - `table bridge weft` (ingress of every bridge port): port security, and the
//!   source class written into the packet mark from the port the frame entered on
//!   (or taken from the VXLAN-GBP group that the kernel copied into the mark);
//! - `table inet weft` (IP forward hook, which bridged traffic also traverses via
//!   br_netfilter): conntrack, destination class from the local endpoint map, and a
//!   constant number of verdict-map lookups in tier order. See [`nft`].
//!
//! Everything is reconciled from a desired-state snapshot ([`DesiredNode`]) by
//! [`Fabric::reconcile`]. Links, addresses, routes, neighbours and fdb entries are
//! programmed over rtnetlink ([`nl`]) by default, or with `ip`/`bridge` when
//! `WEFT_FABRIC_LINKS=ip`. nftables: the tables are loaded with `nft -f`; element
//! changes go over nf_tables netlink ([`nft::netlink`]) unless `WEFT_FABRIC_NFT=text`.

pub mod desired;
pub mod error;
pub mod exec;
pub mod link;
pub mod names;
pub mod netns;
pub mod nft;
pub mod nl;
pub mod probe;
pub mod reconcile;
pub mod security;
mod spare;
pub mod state;
pub mod testbed;

pub use desired::{AddressPair, DesiredNode, LocalEndpoint, RemoteEndpoint, VrfDesired};
pub use error::FabricError;
pub use reconcile::{Fabric, ReconcileReport};
