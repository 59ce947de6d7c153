//! Endpoint addresses: the lowest free IP of the bridge domain's subnets (or a requested
//! one, checked) and a unique locally administered MAC.
//!
//! The store decides uniqueness: an endpoint's create transaction claims `ipam/ip/<vrf>/<ip>`
//! and `ipam/mac/<mac>` only if absent. The in-process reservations here only keep
//! concurrent requests of this server from racing for the same lowest address, so that
//! they rarely have to retry.

use crate::state::Snapshot;
use ipnet::IpNet;
use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use weft_api::MacAddr;
use weft_model::ObjectPath;

/// Endpoint MACs are `02:77:65:xx:xx:xx` (locally administered, unicast); gateway MACs use
/// `02:77:66:...`, so the two never collide.
const MAC_PREFIX: [u8; 3] = [0x02, 0x77, 0x65];
const MAC_SPACE: u32 = 1 << 24;

type Claim = (ObjectPath, IpAddr);

#[derive(Debug)]
pub struct Ipam {
    inflight: Arc<Mutex<HashSet<Claim>>>,
    next_mac: AtomicU32,
}

/// An address held for one request; released when dropped.
#[derive(Debug)]
pub struct Reservation {
    pub ip: IpAddr,
    pub subnet: IpNet,
    pub gateway: IpAddr,
    claim: Option<Claim>,
    inflight: Arc<Mutex<HashSet<Claim>>>,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(claim) = self.claim.take() {
            self.inflight
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&claim);
        }
    }
}

/// The highest endpoint MAC (as a number in its 24-bit space) in use in `snapshot`.
fn highest_mac(snapshot: &Snapshot) -> Option<u32> {
    snapshot
        .endpoints
        .values()
        .filter(|ep| ep.value.mac.0[..3] == MAC_PREFIX)
        .map(|ep| {
            let [_, _, _, a, b, c] = ep.value.mac.0;
            u32::from_be_bytes([0, a, b, c])
        })
        .max()
}

impl Ipam {
    /// Continues the MAC counter after the highest endpoint MAC in use.
    pub fn new(snapshot: &Snapshot) -> Self {
        Self {
            inflight: Arc::default(),
            next_mac: AtomicU32::new(highest_mac(snapshot).map_or(1, |h| h + 1)),
        }
    }

    /// The next MAC from the counter, never below the highest MAC `snapshot` shows in
    /// use: other controllers over the same store assign MACs too, so the counter
    /// catches up with theirs instead of proposing MACs they took (each one a lost
    /// claim and a retry). A collision that remains (a concurrent create elsewhere, a
    /// requested MAC) is caught by the store's create-only claim and the caller asks again.
    pub fn next_mac(&self, snapshot: &Snapshot) -> MacAddr {
        if let Some(highest) = highest_mac(snapshot) {
            self.next_mac.fetch_max(highest + 1, Ordering::Relaxed);
        }
        let n = self.next_mac.fetch_add(1, Ordering::Relaxed) % MAC_SPACE;
        let [_, a, b, c] = n.to_be_bytes();
        MacAddr([MAC_PREFIX[0], MAC_PREFIX[1], MAC_PREFIX[2], a, b, c])
    }

    /// Holds the lowest address of `subnets` that is neither in `used`, nor a gateway,
    /// network or broadcast address, nor held by another request.
    pub fn reserve_lowest(
        &self,
        vrf: &ObjectPath,
        subnets: &[(IpNet, IpAddr)],
        used: &HashSet<IpAddr>,
    ) -> Option<Reservation> {
        let mut inflight = self.inflight.lock().unwrap_or_else(PoisonError::into_inner);
        for (subnet, gateway) in subnets {
            let free = subnet.hosts().find(|ip| {
                usable(*subnet, *gateway, *ip)
                    && !used.contains(ip)
                    && !inflight.contains(&(vrf.clone(), *ip))
            });
            if let Some(ip) = free {
                let claim = (vrf.clone(), ip);
                inflight.insert(claim.clone());
                return Some(Reservation {
                    ip,
                    subnet: *subnet,
                    gateway: *gateway,
                    claim: Some(claim),
                    inflight: Arc::clone(&self.inflight),
                });
            }
        }
        None
    }

    /// Checks a requested address against the subnets (the store checks it is free).
    pub fn requested(
        &self,
        subnets: &[(IpNet, IpAddr)],
        ip: IpAddr,
    ) -> Result<Reservation, String> {
        let Some((subnet, gateway)) = subnets.iter().find(|(net, _)| net.contains(&ip)) else {
            let nets: Vec<String> = subnets.iter().map(|(n, _)| n.to_string()).collect();
            return Err(format!(
                "{ip} is in none of the bridge domain's subnets ({})",
                nets.join(", ")
            ));
        };
        if ip == *gateway {
            return Err(format!("{ip} is the gateway of {subnet}"));
        }
        if !usable(*subnet, *gateway, ip) {
            return Err(format!(
                "{ip} is the network or broadcast address of {subnet}"
            ));
        }
        Ok(Reservation {
            ip,
            subnet: *subnet,
            gateway: *gateway,
            claim: None,
            inflight: Arc::clone(&self.inflight),
        })
    }
}

fn usable(subnet: IpNet, gateway: IpAddr, ip: IpAddr) -> bool {
    if ip == gateway || ip == subnet.network() {
        return false;
    }
    match subnet {
        // /31 and /32 have no broadcast address (RFC 3021).
        IpNet::V4(net) if net.prefix_len() < 31 => ip != IpAddr::V4(net.broadcast()),
        _ => true,
    }
}

/// Locally administered and unicast: the only MACs an endpoint may ask for.
pub fn mac_is_assignable(mac: MacAddr) -> bool {
    mac.0[0] & 0x01 == 0 && mac.0 != [0; 6]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> IpNet {
        text.parse()
            .unwrap_or_else(|_| IpNet::V4(ipnet::Ipv4Net::default()))
    }

    #[test]
    fn lowest_free_skips_gateway_and_used() {
        let ipam = Ipam::new(&Snapshot::default());
        let vrf = ObjectPath::tenant("t").child("vrf", "v");
        let subnets = [(
            net("10.0.0.0/29"),
            "10.0.0.1".parse().unwrap_or(IpAddr::from([0; 4])),
        )];
        let used: HashSet<IpAddr> = [IpAddr::from([10, 0, 0, 2])].into();
        let a = ipam.reserve_lowest(&vrf, &subnets, &used);
        let b = ipam.reserve_lowest(&vrf, &subnets, &used);
        assert_eq!(a.as_ref().map(|r| r.ip), Some(IpAddr::from([10, 0, 0, 3])));
        assert_eq!(b.as_ref().map(|r| r.ip), Some(IpAddr::from([10, 0, 0, 4])));
        drop(a);
        let c = ipam.reserve_lowest(&vrf, &subnets, &used);
        assert_eq!(c.as_ref().map(|r| r.ip), Some(IpAddr::from([10, 0, 0, 3])));
        // .5 and .6 left; .7 is broadcast.
        let _d = ipam.reserve_lowest(&vrf, &subnets, &used);
        let _e = ipam.reserve_lowest(&vrf, &subnets, &used);
        assert!(ipam.reserve_lowest(&vrf, &subnets, &used).is_none());
    }

    #[test]
    fn requested_address_is_checked() {
        let ipam = Ipam::new(&Snapshot::default());
        let subnets = [(net("10.0.0.0/24"), IpAddr::from([10, 0, 0, 1]))];
        assert!(
            ipam.requested(&subnets, IpAddr::from([10, 0, 0, 9]))
                .is_ok()
        );
        assert!(
            ipam.requested(&subnets, IpAddr::from([10, 0, 0, 1]))
                .is_err()
        );
        assert!(
            ipam.requested(&subnets, IpAddr::from([10, 0, 0, 255]))
                .is_err()
        );
        assert!(
            ipam.requested(&subnets, IpAddr::from([10, 0, 1, 9]))
                .is_err()
        );
    }
}
