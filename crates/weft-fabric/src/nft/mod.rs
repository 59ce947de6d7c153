//! nftables: what weft installs in every VRF namespace, and how it gets there.
//!
//! Two tables, both named `weft` (no other table is read or touched):
//!
//! `table bridge weft`, on every bridge port:
//! - `prerouting` (priority -200, before br_netfilter hands IP to the inet hooks;
//!   the common case, an IPv4 packet from an endpoint, costs one map lookup):
//!   frames from a VXLAN uplink (checked first, by device group: one integer
//!   compare) keep the class that the kernel
//!   copied from the VXLAN-GBP group into `meta mark`; frames from an endpoint port
//!   must carry one of the port's (MAC, IP) pairs (own addresses + allowed address
//!   pairs): `port_src4/6` map exactly those to the port's class, which becomes
//!   `meta mark` in the same lookup. Anything else, including any port weft has not
//!   installed yet, is dropped and counted (`spoofed`), unless the port's port
//!   security is off (`port_open`: any source, the port's class). Every packet is checked, not
//!   only new connections: the bridge family has no conntrack here, and a forged
//!   source must not ride an established connection.
//! - `postrouting`: frames to a VXLAN uplink pass (one device-group compare); an
//!   endpoint port only receives IP packets addressed to one of its addresses (so a
//!   permitted destination class cannot be borrowed by a MAC trick, on established
//!   connections too); a port with port security off (`ports_open`) receives for any
//!   address.
//!
//! `table inet weft`, in the forward hook (routed and, via br_netfilter, bridged IP):
//! - `ct state established,related accept` (replies of permitted connections);
//! - security groups ([`security`]): a new connection to or from a port governed by
//!   groups must be admitted by the port's profile (`sg_profile4/6`, `sg_in4/6`,
//!   `sg_out4/6`), else it is dropped and counted (`sg_denied`); the contracts below
//!   must permit it as well;
//! - the destination class comes from `dst_class4/6` (local endpoint address -> class)
//!   and is written into `ct mark`; no entry means the destination lives on another
//!   node, where it is enforced, so the packet passes;
//! - then at most two lookups per tier, in tier order, keyed by
//!   `meta nfproto . meta mark . ct mark . meta l4proto [. th sport] . th dport`:
//!   `tN_exact` (hash: single classes, single port, any source port - the common
//!   case) and `tN_range` (interval: wildcards and port ranges), or `tN_noport` for
//!   protocols without ports. The first hit decides; nothing = `default_deny`.
//!   Lookups do not grow with rules or endpoints: 6 tiers x 2 maps at most.
//!   Every map element has its own counter (`counter` flag on the map).

pub mod apply;
pub mod boxes;
pub mod incremental;
pub mod netlink;
pub mod render;
pub mod security;

pub use apply::{NftApplier, NftBatch};
pub use incremental::{RenderDelta, VrfRenderer};
pub use render::{Element, NftDesired, render_vrf};
