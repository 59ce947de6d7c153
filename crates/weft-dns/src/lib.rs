//! DNS for weft's discovery, in Consul's image.
//!
//! Names: `<service>.service.<domain>` (A, AAAA, SRV), `<tag>.<service>.service`,
//! RFC 2782's `_<service>._<tag>.service` (`_tcp`: any tag), `<node>.node`, and the
//! `<hex>.addr` targets of SRV answers; the datacenter label is optional
//! (`web.service.dc1.weft`). The domain is `weft.`, and `consul.` is answered too.
//!
//! The controller decides what each asker may be told (only passing instances, only the
//! asker's tenant, and, where the VRF's DNS knows policy, only instances its EPG may
//! reach) and ships that as a [`weft_api::DiscoveryView`]. This crate turns one VRF of
//! it into a [`Zone`] and answers from it: [`answer`] is the whole protocol decision,
//! pure and fuzzed; [`serve`] puts it on UDP and TCP sockets.
//!
//! Protocol details: answers in random order; TTL from the settings (0 by default);
//! negative answers carry the SOA (minimum = TTL); NXDOMAIN for a name that does not
//! exist, NODATA (NOERROR, no answers) for one that exists without the asked type, and
//! for empty non-terminals (RFC 8020); EDNS0 echoed with a 1232-byte payload, BADVERS
//! for versions above 0; UDP answers that do not fit are cut at a whole record and
//! marked TC so the client retries over TCP; anything that is not a plain query goes to
//! hickory's parser and gets FORMERR or NOTIMP when due; names outside the domains are
//! forwarded to the configured recursors or refused.

pub mod answer;
pub mod serve;
pub mod wire;
pub mod zone;

pub use answer::{Reply, Transport, answer};
pub use serve::{Limits, Service, SharedZone};
pub use zone::Zone;

/// A query message for `name` and `qtype` (`A`, `AAAA`, `SRV`, `ANY`, `SOA`, `NS`, or a
/// number), with EDNS0: what `weft dns query` asks on an endpoint's behalf.
pub fn query_message(name: &str, qtype: &str) -> Result<Vec<u8>, String> {
    let qtype = parse_type(qtype)?;
    let mut m = vec![0x77, 0x77, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1];
    let name = name.trim_end_matches('.');
    if name.len() > 253 {
        return Err("a name has at most 253 characters".into());
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!(
                "{name:?} is not a domain name: empty or over-long label"
            ));
        }
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.push(0);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&wire::CLASS_IN.to_be_bytes());
    m.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
    Ok(m)
}

fn parse_type(qtype: &str) -> Result<u16, String> {
    Ok(match qtype.to_ascii_uppercase().as_str() {
        "A" => wire::TYPE_A,
        "AAAA" => wire::TYPE_AAAA,
        "SRV" => wire::TYPE_SRV,
        "ANY" => wire::TYPE_ANY,
        "SOA" => wire::TYPE_SOA,
        "NS" => wire::TYPE_NS,
        other => other
            .parse()
            .map_err(|_| format!("unknown record type {qtype:?} (A, AAAA, SRV, ANY, SOA, NS)"))?,
    })
}

/// A response's RCODE mnemonic (`NOERROR`, `NXDOMAIN`, ..., as dig prints it) and its
/// answer records in presentation format.
pub fn describe(response: &[u8]) -> Result<(String, Vec<String>), String> {
    let m = hickory_proto::op::Message::from_vec(response).map_err(|e| e.to_string())?;
    let rcode = match u16::from(m.metadata.response_code) {
        0 => "NOERROR".to_string(),
        1 => "FORMERR".to_string(),
        2 => "SERVFAIL".to_string(),
        3 => "NXDOMAIN".to_string(),
        4 => "NOTIMP".to_string(),
        5 => "REFUSED".to_string(),
        16 => "BADVERS".to_string(),
        n => format!("RCODE{n}"),
    };
    Ok((rcode, m.answers.iter().map(ToString::to_string).collect()))
}
