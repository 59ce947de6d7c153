//! One query in, one response out: the whole protocol decision, with no I/O.

use crate::wire::{
    self, Owner, QNAME_POINTER, Query, TYPE_A, TYPE_AAAA, TYPE_ANY, TYPE_NS, TYPE_SOA, TYPE_SRV,
    Unusual, Writer,
};
use crate::zone::{Entry, Target, Zone, hex_address};
use std::cell::Cell;
use std::net::IpAddr;

/// How the query arrived: it decides the size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// What to do with the buffer after [`answer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// Send the response written into the buffer.
    Send,
    /// The name is outside weft's domains: send the query to a recursor and relay its
    /// answer.
    Forward,
    /// Nothing to answer (a response, or less than a header).
    Drop,
}

/// Answers `msg` from `source` out of `zone`, writing the response into `out`.
pub fn answer(
    zone: &Zone,
    msg: &[u8],
    source: IpAddr,
    transport: Transport,
    out: &mut Vec<u8>,
) -> Reply {
    let query = match wire::parse_query(msg) {
        Ok(q) => q,
        Err(Unusual::NoHeader) => return Reply::Drop,
        Err(Unusual::Other) => match full_parse(msg, out) {
            Ok(q) => q,
            Err(reply) => return reply,
        },
    };
    answer_query(zone, &query, source, transport, out)
}

/// hickory's parser for every message the fast path did not take: it tells a query we
/// can still answer from one that gets FORMERR or NOTIMP (written into `out`).
fn full_parse(msg: &[u8], out: &mut Vec<u8>) -> Result<Query, Reply> {
    use hickory_proto::op::{Message, MessageType, OpCode};
    let Ok(m) = Message::from_vec(msg) else {
        return Err(bare(msg, wire::RCODE_FORMERR, out));
    };
    if m.metadata.message_type == MessageType::Response {
        return Err(Reply::Drop);
    }
    if m.metadata.op_code != OpCode::Query {
        return Err(bare(msg, wire::RCODE_NOTIMP, out));
    }
    let [q] = m.queries.as_slice() else {
        return Err(bare(msg, wire::RCODE_FORMERR, out));
    };
    let mut name = Vec::with_capacity(64);
    for label in q.name().iter() {
        name.push(label.len() as u8);
        name.extend_from_slice(label);
    }
    name.push(0);
    Ok(Query {
        id: m.metadata.id,
        recursion_desired: m.metadata.recursion_desired,
        name,
        qtype: u16::from(q.query_type()),
        qclass: u16::from(q.query_class()),
        edns: m.edns.as_ref().map(|e| wire::Edns {
            payload: e.max_payload(),
            version: e.version(),
        }),
    })
}

fn bare(msg: &[u8], rcode: u8, out: &mut Vec<u8>) -> Reply {
    if wire::bare_response(msg, rcode, out) {
        Reply::Send
    } else {
        Reply::Drop
    }
}

/// The size a response over `transport` may have for `q`.
fn limit(q: &Query, transport: Transport) -> usize {
    match (transport, q.edns) {
        (Transport::Tcp, _) => usize::from(u16::MAX),
        (Transport::Udp, None) => wire::PLAIN_UDP_LIMIT,
        (Transport::Udp, Some(e)) => usize::from(e.payload).clamp(wire::PLAIN_UDP_LIMIT, 4096),
    }
}

/// Where the query's name falls.
struct Split {
    /// The name below the domain, lowercased, labels joined by dots (`web.service`).
    relative: String,
    /// Offset of the domain's first label in the response (for pointers to it).
    apex: u16,
    /// Which of the zone's domains.
    domain: usize,
}

fn split(zone: &Zone, q: &Query) -> Option<Split> {
    let labels: Vec<&[u8]> = q.labels().collect();
    let (domain, n) = zone.domains.iter().enumerate().find_map(|(i, d)| {
        let n = d.len();
        (labels.len() >= n
            && labels[labels.len() - n..]
                .iter()
                .zip(d)
                .all(|(a, b)| a.eq_ignore_ascii_case(b)))
        .then_some((i, n))
    })?;
    let mut rel = &labels[..labels.len() - n];
    let offset: usize = rel.iter().map(|l| l.len() + 1).sum();
    // `web.service.dc1.weft`: the datacenter label is optional.
    if rel.len() >= 2
        && rel[rel.len() - 1].eq_ignore_ascii_case(&zone.datacenter)
        && [&b"service"[..], b"node", b"addr"]
            .iter()
            .any(|k| rel[rel.len() - 2].eq_ignore_ascii_case(k))
    {
        rel = &rel[..rel.len() - 1];
    }
    let mut relative = String::with_capacity(offset);
    for (i, l) in rel.iter().enumerate() {
        if i > 0 {
            relative.push('.');
        }
        relative.extend(l.iter().map(|b| char::from(b.to_ascii_lowercase())));
    }
    Some(Split {
        relative,
        apex: u16::try_from(wire::HEADER_LEN + offset).ok()? | 0xc000,
        domain,
    })
}

/// Answers a parsed query.
pub fn answer_query(
    zone: &Zone,
    q: &Query,
    source: IpAddr,
    transport: Transport,
    out: &mut Vec<u8>,
) -> Reply {
    let mut w = Writer::new(out, q, limit(q, transport), zone.ttl);
    if q.edns.is_some_and(|e| e.version > 0) {
        w.finish(q, false, zone.recursion, wire::RCODE_BADVERS);
        return Reply::Send;
    }
    if q.qclass != wire::CLASS_IN && q.qclass != TYPE_ANY {
        w.finish(q, false, zone.recursion, u16::from(wire::RCODE_REFUSED));
        return Reply::Send;
    }
    let Some(at) = split(zone, q) else {
        if zone.recursion {
            return Reply::Forward;
        }
        w.finish(q, false, false, u16::from(wire::RCODE_REFUSED));
        return Reply::Send;
    };
    let Some(table) = zone.table_for(source) else {
        // Not an endpoint weft knows in this VRF: it learns nothing.
        w.finish(q, false, zone.recursion, u16::from(wire::RCODE_REFUSED));
        return Reply::Send;
    };
    let rcode = if at.relative.is_empty() {
        apex(&mut w, q, &at, zone.serial)
    } else {
        match table.names.get(at.relative.as_str()) {
            None => {
                w.soa(2, at.apex, zone.serial);
                wire::RCODE_NXDOMAIN
            }
            Some(entry) => {
                if records(&mut w, zone, q, &at, entry) == 0 && !w.truncated() {
                    w.soa(2, at.apex, zone.serial);
                }
                wire::RCODE_NOERROR
            }
        }
    };
    w.finish(q, true, zone.recursion, u16::from(rcode));
    Reply::Send
}

fn apex(w: &mut Writer<'_>, q: &Query, at: &Split, serial: u32) -> u8 {
    let written = match q.qtype {
        TYPE_SOA => w.soa(1, at.apex, serial),
        TYPE_NS => w.ns(at.apex),
        _ => false,
    };
    if !written {
        w.soa(2, at.apex, serial);
    }
    wire::RCODE_NOERROR
}

fn wants(qtype: u16, ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(_) => qtype == TYPE_A || qtype == TYPE_ANY,
        IpAddr::V6(_) => qtype == TYPE_AAAA || qtype == TYPE_ANY,
    }
}

/// Writes the answers for `entry`; returns how many.
fn records(w: &mut Writer<'_>, zone: &Zone, q: &Query, at: &Split, entry: &Entry) -> usize {
    let owner = Owner::Pointer(QNAME_POINTER);
    match entry {
        Entry::EmptyNonTerminal => 0,
        Entry::Host(ip) => usize::from(wants(q.qtype, *ip) && w.address(1, &owner, *ip)),
        Entry::Service(targets) => {
            let mut order: Vec<&Target> = targets.iter().collect();
            shuffle(&mut order);
            if q.qtype == TYPE_SRV {
                srv(w, zone, at, &order)
            } else {
                let mut n = 0;
                for t in order.iter().filter(|t| wants(q.qtype, t.address)) {
                    if !w.address(1, &owner, t.address) {
                        break;
                    }
                    n += 1;
                }
                n
            }
        }
    }
}

/// SRV answers, each targeting `<hex address>.addr.<dc>.<domain>` (Consul's form for an
/// instance with its own address), with that name's address in the additional section.
fn srv(w: &mut Writer<'_>, zone: &Zone, at: &Split, order: &[&Target]) -> usize {
    let domain = &zone.domains[at.domain];
    let targets: Vec<(Vec<u8>, IpAddr)> = order
        .iter()
        .map(|t| {
            let hex = hex_address(t.address);
            let mut labels: Vec<&[u8]> = vec![hex.as_bytes(), b"addr", &zone.datacenter];
            labels.extend(domain.iter().map(Vec::as_slice));
            let mut name = Vec::with_capacity(64);
            wire::push_name(&mut name, &labels);
            (name, t.address)
        })
        .collect();
    let mut n = 0;
    for (t, (name, _)) in order.iter().zip(&targets) {
        if !w.srv(&Owner::Pointer(QNAME_POINTER), t.port, name) {
            break;
        }
        n += 1;
    }
    for (name, ip) in targets.iter().take(n) {
        if !w.address(3, &Owner::Name(name), *ip) {
            break;
        }
    }
    n
}

thread_local! {
    static RNG: Cell<u64> = Cell::new({
        let mut seed = [0u8; 8];
        let _ = getrandom::fill(&mut seed);
        u64::from_le_bytes(seed) | 1
    });
}

/// A uniform shuffle (Fisher-Yates on xorshift64*): answers come in random order, as
/// Consul's do, so clients that take the first address spread their load.
fn shuffle<T>(items: &mut [T]) {
    RNG.with(|rng| {
        let mut x = rng.get();
        for i in (1..items.len()).rev() {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            let r = x.wrapping_mul(0x2545_f491_4f6c_dd1d);
            items.swap(i, (r % (i as u64 + 1)) as usize);
        }
        rng.set(x);
    });
}
