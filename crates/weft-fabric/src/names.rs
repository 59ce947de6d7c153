//! Names of everything weft creates. Every name starts with `weft` so that clean-up
//! can remove exactly what weft made and nothing else.

use crate::error::FabricError;

pub const PREFIX: &str = "weft";
/// The endpoint-side interface inside an endpoint's namespace: its first, the one with
/// the default route. A namespace with several endpoints has `weft1`, `weft2`... too.
pub const ENDPOINT_IFNAME: &str = "weft0";

/// The endpoint-side interface number `n` inside an endpoint's namespace.
pub fn endpoint_ifname(n: u8) -> String {
    format!("{PREFIX}{n}")
}
/// Device group of every VXLAN uplink in a VRF namespace (endpoint ports keep the
/// default, 0): the bridge chains tell uplink frames from port frames with one integer
/// compare (`meta iifgroup`) instead of a name lookup.
pub const UPLINK_GROUP: u32 = 1;
/// VXLAN's IANA port; every node shares one socket per network namespace.
pub const VXLAN_PORT: u16 = 4789;
const IFNAMSIZ: usize = 15;

pub fn bridge(vni: u32) -> String {
    format!("weft-b{vni}")
}

pub fn vxlan(vni: u32) -> String {
    format!("weft-x{vni}")
}

/// The VRF namespace of a node: `<node prefix>-v<vrf id>`.
pub fn vrf_netns(node_prefix: &str, vrf_id: u32) -> String {
    format!("{node_prefix}-v{vrf_id}")
}

/// The bridge-side veth of an endpoint, stable for the endpoint's name (FNV-1a).
pub fn port(endpoint: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in endpoint.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("weft-p{h:08x}")
}

pub fn check_netns_name(name: &str) -> Result<(), FabricError> {
    let why = if !name.starts_with(PREFIX) {
        "weft only creates namespaces whose name starts with \"weft\""
    } else if name.len() > 200 {
        "too long"
    } else if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    {
        "only ASCII letters, digits, '-', '_' and '.' are allowed"
    } else {
        return Ok(());
    };
    Err(FabricError::InvalidName {
        name: name.to_string(),
        why,
    })
}

pub fn fits_ifname(name: &str) -> bool {
    name.len() <= IFNAMSIZ
}

pub fn mac_to_string(mac: [u8; 6]) -> String {
    let [a, b, c, d, e, f] = mac;
    format!("{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}")
}

/// The inverse of [`mac_to_string`] (any case, one or two digits per byte).
pub fn mac_from_str(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut out {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_round_trip_and_malformed_ones_are_refused() {
        let mac = [2, 0, 0, 0xab, 0, 0x0a];
        assert_eq!(mac_from_str(&mac_to_string(mac)), Some(mac));
        for bad in [
            "",
            "02:00:00:ab:00",
            "02:00:00:ab:00:0a:01",
            "02:00:00:ab:00:zz",
        ] {
            assert_eq!(mac_from_str(bad), None, "{bad}");
        }
    }

    #[test]
    fn interface_names_fit_ifnamsiz() {
        assert!(fits_ifname(&bridge(16_777_215)));
        assert!(fits_ifname(&vxlan(16_777_215)));
        assert!(fits_ifname(&port("some very long endpoint name")));
        assert_eq!(port("a"), port("a"));
        assert_ne!(port("a"), port("b"));
    }

    #[test]
    fn netns_names_must_carry_the_prefix() {
        assert!(check_netns_name("weft-t1-com1").is_ok());
        assert!(check_netns_name("default").is_err());
        assert!(check_netns_name("weft/../x").is_err());
    }
}
