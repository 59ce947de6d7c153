//! DNS messages on the wire (RFC 1035, RFC 6891): the query shapes resolvers send,
//! parsed without allocation, and the records weft answers with, written directly.
//!
//! Anything this parser does not take (compressed question names, several questions,
//! extra sections) goes to hickory's full parser in [`crate::answer`], which decides
//! between an answer, FORMERR and NOTIMP.

use std::net::IpAddr;

pub const HEADER_LEN: usize = 12;
pub const MAX_NAME_LEN: usize = 255;
/// The payload weft advertises and accepts over UDP with EDNS0 (the DNS flag day's
/// value, safe from fragmentation).
pub const EDNS_PAYLOAD: u16 = 1232;
/// Without EDNS0 a UDP message is at most 512 bytes (RFC 1035 4.2.1).
pub const PLAIN_UDP_LIMIT: usize = 512;

pub const TYPE_A: u16 = 1;
pub const TYPE_NS: u16 = 2;
pub const TYPE_SOA: u16 = 6;
pub const TYPE_AAAA: u16 = 28;
pub const TYPE_SRV: u16 = 33;
pub const TYPE_OPT: u16 = 41;
pub const TYPE_ANY: u16 = 255;
pub const CLASS_IN: u16 = 1;

pub const RCODE_NOERROR: u8 = 0;
pub const RCODE_FORMERR: u8 = 1;
pub const RCODE_SERVFAIL: u8 = 2;
pub const RCODE_NXDOMAIN: u8 = 3;
pub const RCODE_NOTIMP: u8 = 4;
pub const RCODE_REFUSED: u8 = 5;
/// Extended RCODE 16 (upper bits 1 in the OPT record, 0 in the header).
pub const RCODE_BADVERS: u16 = 16;

/// An OPT record in a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edns {
    pub payload: u16,
    pub version: u8,
}

/// A query with one question, as [`parse_query`] or hickory found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub id: u16,
    /// The RD bit, echoed in the answer.
    pub recursion_desired: bool,
    /// The question name in wire form exactly as asked (its case echoed, for resolvers
    /// that randomise it), ending with the root label.
    pub name: Vec<u8>,
    pub qtype: u16,
    pub qclass: u16,
    pub edns: Option<Edns>,
}

impl Query {
    /// The question's labels, lowercased.
    pub fn labels(&self) -> Labels<'_> {
        Labels {
            name: &self.name,
            at: 0,
        }
    }
}

/// Iterates the labels of a wire-form name without compression.
#[derive(Debug, Clone)]
pub struct Labels<'a> {
    name: &'a [u8],
    at: usize,
}

impl<'a> Iterator for Labels<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        let len = usize::from(*self.name.get(self.at)?);
        if len == 0 {
            return None;
        }
        let label = self.name.get(self.at + 1..self.at + 1 + len)?;
        self.at += 1 + len;
        Some(label)
    }
}

/// Why the fast parser passed a message on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unusual {
    /// Shorter than a header: nothing to answer (not even an ID to echo).
    NoHeader,
    /// Not a query this parser takes: hickory decides.
    Other,
}

/// Parses the common query shape: QR=0, a QUERY, one question with an uncompressed
/// name, no answer or authority records, and at most one additional record, an OPT.
pub fn parse_query(msg: &[u8]) -> Result<Query, Unusual> {
    if msg.len() < HEADER_LEN {
        return Err(Unusual::NoHeader);
    }
    let flags = u16::from_be_bytes([msg[2], msg[3]]);
    let counts = |i: usize| u16::from_be_bytes([msg[4 + 2 * i], msg[5 + 2 * i]]);
    let is_plain_query = flags & 0x8000 == 0 && (flags >> 11) & 0xf == 0;
    if !is_plain_query || counts(0) != 1 || counts(1) != 0 || counts(2) != 0 || counts(3) > 1 {
        return Err(Unusual::Other);
    }
    let mut at = HEADER_LEN;
    loop {
        let len = usize::from(*msg.get(at).ok_or(Unusual::Other)?);
        if len & 0xc0 != 0 {
            return Err(Unusual::Other);
        }
        at += 1 + len;
        if at - HEADER_LEN > MAX_NAME_LEN {
            return Err(Unusual::Other);
        }
        if len == 0 {
            break;
        }
    }
    let name = msg.get(HEADER_LEN..at).ok_or(Unusual::Other)?.to_vec();
    let fixed = msg.get(at..at + 4).ok_or(Unusual::Other)?;
    let qtype = u16::from_be_bytes([fixed[0], fixed[1]]);
    let qclass = u16::from_be_bytes([fixed[2], fixed[3]]);
    at += 4;
    let edns = if counts(3) == 1 {
        // An OPT: root owner, type 41, class = payload size, TTL = ext-rcode, version, flags.
        let opt = msg.get(at..at + 11).ok_or(Unusual::Other)?;
        if opt[0] != 0 || u16::from_be_bytes([opt[1], opt[2]]) != TYPE_OPT {
            return Err(Unusual::Other);
        }
        let rdlen = usize::from(u16::from_be_bytes([opt[9], opt[10]]));
        if msg.len() != at + 11 + rdlen {
            return Err(Unusual::Other);
        }
        Some(Edns {
            payload: u16::from_be_bytes([opt[3], opt[4]]),
            version: opt[6],
        })
    } else {
        if msg.len() != at {
            return Err(Unusual::Other);
        }
        None
    };
    Ok(Query {
        id: u16::from_be_bytes([msg[0], msg[1]]),
        recursion_desired: flags & 0x0100 != 0,
        name,
        qtype,
        qclass,
        edns,
    })
}

/// Writes a response into a buffer, keeping within a size limit: a record that would
/// not fit is left out and the message is marked truncated.
#[derive(Debug)]
pub struct Writer<'b> {
    buf: &'b mut Vec<u8>,
    limit: usize,
    /// Bytes kept free for the OPT record at the end.
    reserve: usize,
    counts: [u16; 4],
    truncated: bool,
    ttl: u32,
}

/// The offset of the question name in every response: a compression pointer to it
/// (`0xc00c`) names the question's owner in one two-byte field.
pub const QNAME_POINTER: u16 = 0xc000 | HEADER_LEN as u16;

impl<'b> Writer<'b> {
    /// Starts a response to `q` with the header and the question echoed.
    pub fn new(buf: &'b mut Vec<u8>, q: &Query, limit: usize, ttl: u32) -> Self {
        buf.clear();
        buf.extend_from_slice(&q.id.to_be_bytes());
        buf.extend_from_slice(&[0; 10]);
        buf.extend_from_slice(&q.name);
        buf.extend_from_slice(&q.qtype.to_be_bytes());
        buf.extend_from_slice(&q.qclass.to_be_bytes());
        let reserve = if q.edns.is_some() { 11 } else { 0 };
        Self {
            buf,
            limit,
            reserve,
            counts: [1, 0, 0, 0],
            truncated: false,
            ttl,
        }
    }

    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// Appends one record to section `section` (1 answer, 2 authority, 3 additional),
    /// or marks the message truncated if it does not fit.
    fn record(&mut self, section: usize, owner: &Owner<'_>, rtype: u16, rdata: &[u8]) -> bool {
        let owner_len = match owner {
            Owner::Pointer(_) => 2,
            Owner::Name(n) => n.len(),
            Owner::Labels(prefix, _) => prefix.len() + 2,
        };
        let len = owner_len + 10 + rdata.len();
        if self.truncated || self.buf.len() + len + self.reserve > self.limit {
            self.truncated = true;
            return false;
        }
        match owner {
            Owner::Pointer(p) => self.buf.extend_from_slice(&p.to_be_bytes()),
            Owner::Name(n) => self.buf.extend_from_slice(n),
            Owner::Labels(prefix, p) => {
                self.buf.extend_from_slice(prefix);
                self.buf.extend_from_slice(&p.to_be_bytes());
            }
        }
        self.buf.extend_from_slice(&rtype.to_be_bytes());
        self.buf.extend_from_slice(&CLASS_IN.to_be_bytes());
        self.buf.extend_from_slice(&self.ttl.to_be_bytes());
        // rdata is at most a name plus a few fixed fields: far below u16::MAX.
        self.buf
            .extend_from_slice(&u16::try_from(rdata.len()).unwrap_or(0).to_be_bytes());
        self.buf.extend_from_slice(rdata);
        self.counts[section] += 1;
        true
    }

    /// An A or AAAA record for `owner`.
    pub fn address(&mut self, section: usize, owner: &Owner<'_>, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(v4) => self.record(section, owner, TYPE_A, &v4.octets()),
            IpAddr::V6(v6) => self.record(section, owner, TYPE_AAAA, &v6.octets()),
        }
    }

    /// An SRV record (priority 1, weight 1) pointing at `target` (uncompressed, as
    /// RFC 2782 requires).
    pub fn srv(&mut self, owner: &Owner<'_>, port: u16, target: &[u8]) -> bool {
        let mut rdata = [0u8; 6 + MAX_NAME_LEN + 64];
        rdata[0..2].copy_from_slice(&1u16.to_be_bytes());
        rdata[2..4].copy_from_slice(&1u16.to_be_bytes());
        rdata[4..6].copy_from_slice(&port.to_be_bytes());
        let n = target.len().min(rdata.len() - 6);
        rdata[6..6 + n].copy_from_slice(&target[..n]);
        self.record(1, owner, TYPE_SRV, &rdata[..6 + n])
    }

    /// The zone's SOA (in `section`), owned by the domain at `apex` (a pointer into the
    /// question); its minimum, the negative-caching TTL, is the answer TTL.
    pub fn soa(&mut self, section: usize, apex: u16, serial: u32) -> bool {
        let mut rdata = Vec::with_capacity(48);
        for label in [&b"ns"[..], &b"hostmaster"[..]] {
            rdata.push(label.len() as u8);
            rdata.extend_from_slice(label);
            rdata.extend_from_slice(&apex.to_be_bytes());
        }
        for v in [serial, 3600, 600, 86400, self.ttl] {
            rdata.extend_from_slice(&v.to_be_bytes());
        }
        self.record(section, &Owner::Pointer(apex), TYPE_SOA, &rdata)
    }

    /// An NS record at the apex naming `ns.<domain>`.
    pub fn ns(&mut self, apex: u16) -> bool {
        let mut rdata = vec![2, b'n', b's'];
        rdata.extend_from_slice(&apex.to_be_bytes());
        self.record(1, &Owner::Pointer(apex), TYPE_NS, &rdata)
    }

    /// Completes the header (and the OPT record when the query had one).
    pub fn finish(mut self, q: &Query, authoritative: bool, recursion: bool, rcode: u16) {
        let mut flags: u16 = 0x8000 | u16::from(rcode as u8 & 0xf);
        if authoritative {
            flags |= 0x0400;
        }
        if self.truncated {
            flags |= 0x0200;
        }
        if q.recursion_desired {
            flags |= 0x0100;
        }
        if recursion {
            flags |= 0x0080;
        }
        if q.edns.is_some() {
            let ext = (rcode >> 4) as u8;
            self.buf.push(0);
            self.buf.extend_from_slice(&TYPE_OPT.to_be_bytes());
            self.buf.extend_from_slice(&EDNS_PAYLOAD.to_be_bytes());
            self.buf.extend_from_slice(&[ext, 0, 0, 0, 0, 0]);
            self.counts[3] += 1;
        }
        self.buf[2..4].copy_from_slice(&flags.to_be_bytes());
        for (i, c) in self.counts.iter().enumerate() {
            self.buf[4 + 2 * i..6 + 2 * i].copy_from_slice(&c.to_be_bytes());
        }
    }
}

/// A record's owner name.
#[derive(Debug, Clone, Copy)]
pub enum Owner<'a> {
    /// A compression pointer (e.g. [`QNAME_POINTER`]).
    Pointer(u16),
    /// A whole name in wire form.
    Name(&'a [u8]),
    /// Labels in wire form followed by a pointer.
    Labels(&'a [u8], u16),
}

/// A bare response with no records: for errors (FORMERR, NOTIMP, REFUSED, SERVFAIL)
/// to a message whose question could not be taken. Only the ID and RD are echoed.
pub fn bare_response(msg: &[u8], rcode: u8, out: &mut Vec<u8>) -> bool {
    if msg.len() < HEADER_LEN {
        return false;
    }
    out.clear();
    out.extend_from_slice(&msg[0..2]);
    let rd = msg[2] & 0x01;
    let opcode = msg[2] & 0x78;
    out.push(0x80 | opcode | rd);
    out.push(rcode & 0xf);
    out.extend_from_slice(&[0; 8]);
    true
}

/// Appends `labels` then `suffix` (both wire-form labels without the root) and the root:
/// a whole uncompressed name.
pub fn push_name(out: &mut Vec<u8>, labels: &[&[u8]]) {
    for l in labels {
        out.push(l.len() as u8);
        out.extend_from_slice(l);
    }
    out.push(0);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn query(name: &str, qtype: u16, edns: bool) -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, u8::from(edns)];
        for l in name.split('.').filter(|l| !l.is_empty()) {
            m.push(l.len() as u8);
            m.extend_from_slice(l.as_bytes());
        }
        m.push(0);
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&1u16.to_be_bytes());
        if edns {
            m.extend_from_slice(&[0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0]);
        }
        m
    }

    #[test]
    fn parses_a_plain_query_and_one_with_edns() {
        let q = parse_query(&query("Web.Service.weft.", TYPE_A, false)).unwrap();
        assert_eq!(q.id, 0x1234);
        assert!(q.recursion_desired);
        assert_eq!(q.qtype, TYPE_A);
        assert_eq!(q.edns, None);
        let labels: Vec<&[u8]> = q.labels().collect();
        assert_eq!(labels, vec![&b"Web"[..], b"Service", b"weft"]);
        let q = parse_query(&query("web.service.weft", TYPE_SRV, true)).unwrap();
        assert_eq!(
            q.edns,
            Some(Edns {
                payload: 4096,
                version: 0
            })
        );
    }

    #[test]
    fn passes_on_what_it_does_not_take() {
        assert_eq!(parse_query(&[1, 2, 3]), Err(Unusual::NoHeader));
        let mut m = query("a.weft", TYPE_A, false);
        m[2] |= 0x80; // a response
        assert_eq!(parse_query(&m), Err(Unusual::Other));
        let mut m = query("a.weft", TYPE_A, false);
        m.push(0); // trailing garbage
        assert_eq!(parse_query(&m), Err(Unusual::Other));
        let m = query("a.weft", TYPE_A, false);
        assert_eq!(parse_query(&m[..m.len() - 2]), Err(Unusual::Other));
    }

    #[test]
    fn the_writer_truncates_instead_of_exceeding_the_limit() {
        let q = parse_query(&query("web.service.weft", TYPE_A, false)).unwrap();
        let mut buf = Vec::new();
        let mut w = Writer::new(&mut buf, &q, PLAIN_UDP_LIMIT, 0);
        let mut written = 0;
        for i in 0..100u8 {
            if w.address(
                1,
                &Owner::Pointer(QNAME_POINTER),
                IpAddr::from([10, 0, 0, i]),
            ) {
                written += 1;
            }
        }
        assert!(w.truncated());
        w.finish(&q, true, false, 0);
        assert!(buf.len() <= PLAIN_UDP_LIMIT);
        assert_eq!(buf[2] & 0x02, 0x02, "TC set");
        assert_eq!(u16::from_be_bytes([buf[6], buf[7]]), written);
    }
}
