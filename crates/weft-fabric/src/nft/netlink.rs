//! Element changes and existence probes over nf_tables netlink, without an `nft`
//! process (each costs 3-4 ms to spawn and start; the messages below cost tens of µs).
//!
//! Scope, on purpose small: adding and deleting elements of weft's sets and maps, in
//! one nfnetlink batch (one kernel transaction, all or nothing, like `nft -f`), and
//! asking whether a set exists. The tables themselves stay on `nft -f`, and so does a
//! batch that touches an element this module cannot encode.
//!
//! Interval maps here are all concatenations (the kernel's pipapo set): an element is a
//! key of the lower bounds and a `KEY_END` of the upper ones, and their `mark` fields
//! are big-endian (the rules convert the registers with `byteorder` before the lookup).
//!
//! The key and value types of each set are read from [`structure`], the text that
//! creates the tables, so the two cannot drift apart. Elements arrive as the renderer
//! writes them for `nft -f` (`"weft-p1" . 02:00:00:00:00:01 . 10.1.0.2`) and are
//! encoded as the kernel stores them: each field of a concatenation padded to 4 bytes,
//! `ifname` 16 bytes, addresses and ports in network order, marks in host order.
//!
//! The socket is opened on a thread inside the namespace ([`crate::netns::in_netns`])
//! and closed before the thread ends.

use super::render::{Element, TABLE, structure};
use crate::error::FabricError;
use std::collections::HashMap;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;

/// nf_tables over netlink; faked (absent) in unit tests, where batches go to the runner.
pub trait NftNetlink: Send + Sync + fmt::Debug {
    /// Whether every `(family, set)` exists in weft's tables in `netns` (one request).
    fn sets_exist(&self, netns: &str, sets: &[(&str, &str)]) -> Result<bool, FabricError>;
    /// Applies `change` as one transaction.
    fn apply(&self, netns: &str, change: &EncodedChange) -> Result<(), FabricError>;
}

/// Whether nftables elements go over netlink (the default) or always through `nft -f`
/// (`WEFT_FABRIC_NFT=text`).
pub fn selected() -> bool {
    std::env::var("WEFT_FABRIC_NFT").map_or(true, |v| v.trim() != "text")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    IfName,
    Ether,
    Ipv4,
    Ipv6,
    Mark,
    NfProto,
    InetProto,
    InetService,
}

impl Field {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "ifname" => Self::IfName,
            "ether_addr" => Self::Ether,
            "ipv4_addr" => Self::Ipv4,
            "ipv6_addr" => Self::Ipv6,
            "mark" => Self::Mark,
            "nf_proto" => Self::NfProto,
            "inet_proto" => Self::InetProto,
            "inet_service" => Self::InetService,
            _ => return None,
        })
    }

    /// Appends the field, padded to a multiple of 4 bytes as in a concatenation; in an
    /// interval set, a mark is big-endian.
    fn encode(self, text: &str, interval: bool, out: &mut Vec<u8>) -> Option<()> {
        let start = out.len();
        match self {
            Self::IfName => {
                let name = text.strip_prefix('"')?.strip_suffix('"')?;
                if name.len() >= 16 || name.contains('\0') {
                    return None;
                }
                out.extend_from_slice(name.as_bytes());
                out.resize(start + 16, 0);
            }
            Self::Ether => out.extend_from_slice(&crate::names::mac_from_str(text)?),
            Self::Ipv4 => out.extend_from_slice(&text.parse::<Ipv4Addr>().ok()?.octets()),
            Self::Ipv6 => out.extend_from_slice(&text.parse::<Ipv6Addr>().ok()?.octets()),
            Self::Mark if interval => {
                out.extend_from_slice(&text.parse::<u32>().ok()?.to_be_bytes())
            }
            Self::Mark => out.extend_from_slice(&text.parse::<u32>().ok()?.to_ne_bytes()),
            Self::NfProto | Self::InetProto => out.push(text.parse::<u8>().ok()?),
            Self::InetService => out.extend_from_slice(&text.parse::<u16>().ok()?.to_be_bytes()),
        }
        out.resize(start + (out.len() - start).div_ceil(4) * 4, 0);
        Some(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Mark,
    Verdict,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct SetType {
    key: Vec<Field>,
    value: Option<Value>,
    /// `flags interval`: elements carry a range end.
    interval: bool,
}

/// `(family, set)` -> type, for the sets this module can write.
fn schema() -> &'static HashMap<(String, String), SetType> {
    static SCHEMA: OnceLock<HashMap<(String, String), SetType>> = OnceLock::new();
    SCHEMA.get_or_init(|| parse_schema(&structure()))
}

/// Reads `table FAMILY NAME {` and `set|map NAME { type A . B [: V]; ... }` lines.
fn parse_schema(text: &str) -> HashMap<(String, String), SetType> {
    let mut out = HashMap::new();
    let mut family = "";
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["table", f, ..] => family = f,
            [kind @ ("set" | "map"), name, "{", "type", ..] => {
                let Some(decl) = line
                    .split_once("type ")
                    .and_then(|(_, rest)| rest.split(';').next())
                else {
                    continue;
                };
                let interval = line.contains("flags interval");
                let (key, value) = match decl.split_once(':') {
                    Some((k, v)) => (k, Some(v.trim())),
                    None => (decl, None),
                };
                let key: Option<Vec<Field>> =
                    key.split('.').map(|f| Field::parse(f.trim())).collect();
                let value = match (kind, value) {
                    (&"set", None) => None,
                    (&"map", Some("mark")) => Some(Value::Mark),
                    (&"map", Some("verdict")) => Some(Value::Verdict),
                    _ => continue,
                };
                if let Some(key) = key {
                    out.insert(
                        (family.to_string(), name.to_string()),
                        SetType {
                            key,
                            value,
                            interval,
                        },
                    );
                }
            }
            _ => {}
        }
    }
    out
}

/// One set's elements to add or delete, encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SetChange {
    family: &'static str,
    set: String,
    add: bool,
    elements: Vec<EncodedElement>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct EncodedElement {
    key: Vec<u8>,
    /// The upper bounds, in an interval set.
    key_end: Option<Vec<u8>>,
    value: Option<EncodedValue>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EncodedValue {
    Mark(u32),
    Verdict(u32),
}

/// A batch of element deletions then additions, ready for the kernel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EncodedChange {
    sets: Vec<SetChange>,
}

/// Elements per message: keeps every message well under the socket buffer.
const PER_MESSAGE: usize = 512;

impl EncodedChange {
    /// Encodes "delete `removed`, then add `added`", or `None` if one of them is of a
    /// set this module does not write (an interval map): then the batch goes to `nft -f`.
    pub fn encode(removed: &[&Element], added: &[&Element]) -> Option<Self> {
        let mut sets: Vec<SetChange> = Vec::new();
        for (add, elements) in [(false, removed), (true, added)] {
            let mut by_set: Vec<((&str, &str), Vec<EncodedElement>)> = Vec::new();
            for e in elements {
                let encoded = encode_element(e, add)?;
                match by_set
                    .iter_mut()
                    .find(|(k, _)| *k == (&e.family[..], &e.set[..]))
                {
                    Some((_, v)) => v.push(encoded),
                    None => by_set.push(((&e.family, &e.set), vec![encoded])),
                }
            }
            for ((family, set), elements) in by_set {
                let family = if family == "bridge" { "bridge" } else { "inet" };
                for chunk in elements.chunks(PER_MESSAGE) {
                    sets.push(SetChange {
                        family,
                        set: set.to_string(),
                        add,
                        elements: chunk.to_vec(),
                    });
                }
            }
        }
        Some(Self { sets })
    }

    pub fn is_empty(&self) -> bool {
        self.sets.is_empty()
    }
}

fn encode_element(e: &Element, with_value: bool) -> Option<EncodedElement> {
    if e.family != "bridge" && e.family != "inet" {
        return None;
    }
    let ty = schema().get(&(e.family.clone(), e.set.clone()))?;
    let fields: Vec<&str> = e.key.split(" . ").collect();
    if fields.len() != ty.key.len() {
        return None;
    }
    let mut key = Vec::with_capacity(32);
    let mut key_end = ty.interval.then(|| Vec::with_capacity(32));
    for (f, text) in ty.key.iter().zip(&fields) {
        let text = text.trim();
        match key_end.as_mut() {
            // `lo-hi` or a single value (then both bounds): numbers and addresses.
            Some(end) => {
                if matches!(f, Field::IfName | Field::Ether) {
                    return None;
                }
                let (lo, hi) = text.split_once('-').unwrap_or((text, text));
                f.encode(lo, true, &mut key)?;
                f.encode(hi, true, end)?;
            }
            None => f.encode(text, false, &mut key)?,
        }
    }
    let value = match (&ty.value, &e.value, with_value) {
        (_, _, false) | (None, None, true) => None,
        (Some(Value::Mark), Some(v), true) => Some(EncodedValue::Mark(v.parse().ok()?)),
        (Some(Value::Verdict), Some(v), true) => Some(EncodedValue::Verdict(match v.as_str() {
            "accept" => NF_ACCEPT,
            "drop" => NF_DROP,
            _ => return None,
        })),
        _ => return None,
    };
    Some(EncodedElement {
        key,
        key_end,
        value,
    })
}

// linux/netlink.h, linux/netfilter/nfnetlink.h, linux/netfilter/nf_tables.h
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_CREATE: u16 = 0x400;
const NLMSG_ERROR: u16 = 0x2;
const NLA_F_NESTED: u16 = 0x8000;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_GETSET: u16 = 10;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_DELSETELEM: u16 = 14;
const NFPROTO_INET: u8 = 1;
const NFPROTO_BRIDGE: u8 = 7;
const NFTA_SET_TABLE: u16 = 1;
const NFTA_SET_NAME: u16 = 2;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_DATA: u16 = 2;
const NFTA_SET_ELEM_KEY_END: u16 = 10;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NF_DROP: u32 = 0;
const NF_ACCEPT: u32 = 1;

fn family_number(family: &str) -> u8 {
    if family == "bridge" {
        NFPROTO_BRIDGE
    } else {
        NFPROTO_INET
    }
}

/// Builds netlink messages into one buffer.
#[derive(Default)]
struct Writer {
    buf: Vec<u8>,
    /// Offsets of open messages and attributes, whose lengths are patched on close.
    open: Vec<usize>,
}

impl Writer {
    fn pad(&mut self) {
        self.buf.resize(self.buf.len().div_ceil(4) * 4, 0);
    }

    fn begin_message(&mut self, kind: u16, flags: u16, seq: u32, family: u8, res_id: u16) {
        self.pad();
        self.open.push(self.buf.len());
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        // nfgenmsg: family, version 0, resource id (big-endian).
        self.buf.push(family);
        self.buf.push(0);
        self.buf.extend_from_slice(&res_id.to_be_bytes());
    }

    fn end_message(&mut self) {
        if let Some(at) = self.open.pop() {
            let len = (self.buf.len() - at) as u32;
            self.buf[at..at + 4].copy_from_slice(&len.to_ne_bytes());
        }
        self.pad();
    }

    fn attr(&mut self, kind: u16, data: &[u8]) {
        self.pad();
        let len = (4 + data.len()) as u16;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.pad();
    }

    fn attr_str(&mut self, kind: u16, s: &str) {
        let mut data = s.as_bytes().to_vec();
        data.push(0);
        self.attr(kind, &data);
    }

    fn begin_nested(&mut self, kind: u16) {
        self.pad();
        self.open.push(self.buf.len());
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
    }

    fn end_nested(&mut self) {
        if let Some(at) = self.open.pop() {
            let len = (self.buf.len() - at) as u16;
            self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
        }
    }
}

fn nft_type(msg: u16) -> u16 {
    (NFNL_SUBSYS_NFTABLES << 8) | msg
}

/// The batch's bytes and, per acknowledged message (by sequence number - 1), what it does.
fn batch_bytes(change: &EncodedChange) -> (Vec<u8>, Vec<String>) {
    let mut w = Writer::default();
    let mut what = Vec::new();
    w.begin_message(
        NFNL_MSG_BATCH_BEGIN,
        NLM_F_REQUEST,
        0,
        0,
        NFNL_SUBSYS_NFTABLES,
    );
    w.end_message();
    for (i, s) in change.sets.iter().enumerate() {
        let (kind, flags) = if s.add {
            (NFT_MSG_NEWSETELEM, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE)
        } else {
            (NFT_MSG_DELSETELEM, NLM_F_REQUEST | NLM_F_ACK)
        };
        w.begin_message(
            nft_type(kind),
            flags,
            i as u32 + 1,
            family_number(s.family),
            0,
        );
        w.attr_str(NFTA_SET_ELEM_LIST_TABLE, TABLE);
        w.attr_str(NFTA_SET_ELEM_LIST_SET, &s.set);
        w.begin_nested(NFTA_SET_ELEM_LIST_ELEMENTS);
        for e in &s.elements {
            w.begin_nested(NFTA_LIST_ELEM);
            w.begin_nested(NFTA_SET_ELEM_KEY);
            w.attr(NFTA_DATA_VALUE, &e.key);
            w.end_nested();
            if let Some(end) = &e.key_end {
                w.begin_nested(NFTA_SET_ELEM_KEY_END);
                w.attr(NFTA_DATA_VALUE, end);
                w.end_nested();
            }
            match e.value {
                Some(EncodedValue::Mark(m)) => {
                    w.begin_nested(NFTA_SET_ELEM_DATA);
                    w.attr(NFTA_DATA_VALUE, &m.to_ne_bytes());
                    w.end_nested();
                }
                Some(EncodedValue::Verdict(code)) => {
                    w.begin_nested(NFTA_SET_ELEM_DATA);
                    w.begin_nested(NFTA_DATA_VERDICT);
                    w.attr(NFTA_VERDICT_CODE, &code.to_be_bytes());
                    w.end_nested();
                    w.end_nested();
                }
                None => {}
            }
            w.end_nested();
        }
        w.end_nested();
        w.end_message();
        what.push(format!(
            "{} {} elements {} {} {TABLE} {}",
            if s.add { "add" } else { "delete" },
            s.elements.len(),
            if s.add { "to" } else { "from" },
            s.family,
            s.set
        ));
    }
    w.begin_message(
        NFNL_MSG_BATCH_END,
        NLM_F_REQUEST,
        change.sets.len() as u32 + 1,
        0,
        NFNL_SUBSYS_NFTABLES,
    );
    w.end_message();
    (w.buf, what)
}

/// The real thing: a NETLINK_NETFILTER socket on a thread inside the namespace.
#[derive(Debug, Default, Clone, Copy)]
pub struct NfNetlink;

impl NftNetlink for NfNetlink {
    fn sets_exist(&self, netns: &str, sets: &[(&str, &str)]) -> Result<bool, FabricError> {
        let mut w = Writer::default();
        for (i, (family, set)) in sets.iter().enumerate() {
            w.begin_message(
                nft_type(NFT_MSG_GETSET),
                NLM_F_REQUEST | NLM_F_ACK,
                i as u32 + 1,
                family_number(family),
                0,
            );
            w.attr_str(NFTA_SET_TABLE, TABLE);
            w.attr_str(NFTA_SET_NAME, set);
            w.end_message();
        }
        let label = netns.to_string();
        let expected = sets.len();
        let errors = crate::netns::in_netns(netns, move || exchange(&w.buf, expected))?
            .map_err(|e| FabricError::netns(&label, "nf_tables netlink", e))?;
        match errors.iter().find(|(_, code)| *code != libc::ENOENT) {
            Some((_, code)) => Err(FabricError::netns(
                netns,
                "nf_tables get set",
                std::io::Error::from_raw_os_error(*code),
            )),
            None => Ok(errors.is_empty()),
        }
    }

    fn apply(&self, netns: &str, change: &EncodedChange) -> Result<(), FabricError> {
        if change.is_empty() {
            return Ok(());
        }
        let (bytes, what) = batch_bytes(change);
        let expected = what.len();
        let label = netns.to_string();
        let errors = crate::netns::in_netns(netns, move || exchange(&bytes, expected))?
            .map_err(|e| FabricError::netns(&label, "nf_tables netlink", e))?;
        if errors.is_empty() {
            return Ok(());
        }
        let stderr = errors
            .iter()
            .map(|(seq, code)| {
                let op = (*seq as usize)
                    .checked_sub(1)
                    .and_then(|i| what.get(i))
                    .map_or("batch", String::as_str);
                format!("{op}: {}", std::io::Error::from_raw_os_error(*code))
            })
            .collect::<Vec<_>>()
            .join("; ");
        Err(FabricError::NftRejected {
            netns: netns.to_string(),
            stderr,
        })
    }
}

/// Sends `request`, then reads until `acks` acknowledgements or errors have arrived.
/// Returns the errors as (sequence number, errno).
fn exchange(request: &[u8], acks: usize) -> std::io::Result<Vec<(u32, i32)>> {
    use nix::sys::socket::{
        AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, recv, sendto,
        setsockopt, socket, sockopt,
    };
    use std::os::fd::AsRawFd;
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkNetFilter,
    )?;
    setsockopt(&fd, sockopt::SndBufForce, &(request.len() * 2 + 65536))?;
    setsockopt(
        &fd,
        sockopt::ReceiveTimeout,
        &nix::sys::time::TimeVal::new(10, 0),
    )?;
    sendto(
        fd.as_raw_fd(),
        request,
        &NetlinkAddr::new(0, 0),
        MsgFlags::empty(),
    )?;
    let mut errors = Vec::new();
    let mut seen = 0;
    let mut buf = vec![0u8; 65536];
    while seen < acks {
        let n = recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty())?;
        let mut rest = &buf[..n];
        while rest.len() >= 16 {
            let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            let kind = u16::from_ne_bytes([rest[4], rest[5]]);
            let seq = u32::from_ne_bytes([rest[8], rest[9], rest[10], rest[11]]);
            if len < 16 || len > rest.len() {
                break;
            }
            if kind == NLMSG_ERROR && len >= 20 {
                let code = i32::from_ne_bytes([rest[16], rest[17], rest[18], rest[19]]);
                seen += 1;
                if code != 0 {
                    errors.push((seq, -code));
                }
            }
            rest = rest.get(len.div_ceil(4) * 4..).unwrap_or(&[]);
        }
    }
    Ok(errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn el(family: &str, set: &str, key: &str, value: Option<&str>) -> Element {
        Element {
            family: family.into(),
            set: set.into(),
            key: key.into(),
            value: value.map(Into::into),
        }
    }

    #[test]
    fn the_schema_comes_from_the_table_text() {
        let s = schema();
        assert_eq!(
            s.get(&("bridge".into(), "port_src4".into())),
            Some(&SetType {
                key: vec![Field::IfName, Field::Ether, Field::Ipv4],
                value: Some(Value::Mark),
                interval: false,
            })
        );
        assert_eq!(
            s.get(&("inet".into(), "t3_contract_exact".into()))
                .map(|t| t.value.clone()),
            Some(Some(Value::Verdict))
        );
        assert!(
            s.get(&("inet".into(), "t3_contract_range".into()))
                .is_some_and(|t| t.interval && t.value == Some(Value::Verdict))
        );
        assert!(s.contains_key(&("bridge".into(), super::super::render::LAYOUT.into())));
    }

    #[test]
    fn keys_are_encoded_as_the_kernel_stores_them() {
        let e = el(
            "bridge",
            "port_src4",
            "\"weft-p1\" . 02:00:00:00:00:0a . 10.1.0.2",
            Some("16400"),
        );
        let enc = encode_element(&e, true).expect("encodes");
        let mut want = b"weft-p1".to_vec();
        want.resize(16, 0);
        want.extend_from_slice(&[2, 0, 0, 0, 0, 10, 0, 0]);
        want.extend_from_slice(&[10, 1, 0, 2]);
        assert_eq!(enc.key, want);
        assert_eq!(enc.value, Some(EncodedValue::Mark(16400)));

        let e = el(
            "inet",
            "t3_contract_exact",
            "2 . 16386 . 16387 . 6 . 8080",
            Some("accept"),
        );
        let enc = encode_element(&e, true).expect("encodes");
        let mut want = vec![2, 0, 0, 0];
        want.extend_from_slice(&16386u32.to_ne_bytes());
        want.extend_from_slice(&16387u32.to_ne_bytes());
        want.extend_from_slice(&[6, 0, 0, 0, 0x1f, 0x90, 0, 0]);
        assert_eq!(enc.key, want);
        assert_eq!(enc.value, Some(EncodedValue::Verdict(NF_ACCEPT)));
        // Deletions carry no value.
        assert_eq!(encode_element(&e, false).map(|e| e.value), Some(None));
    }

    #[test]
    fn anything_unknown_sends_the_whole_batch_to_nft() {
        let ok = el("inet", "dst_class4", "10.0.0.1", Some("5"));
        let range = el(
            "inet",
            "t3_contract_range",
            "2 . 1 . 2 . 6 . 0-65535 . 80",
            Some("accept"),
        );
        assert!(EncodedChange::encode(&[], &[&ok, &range]).is_some());
        // An interval element is its lower bounds and its upper bounds; marks big-endian.
        let enc = encode_element(&range, true).expect("encodes");
        let mut lo = vec![2, 0, 0, 0];
        lo.extend_from_slice(&1u32.to_be_bytes());
        lo.extend_from_slice(&2u32.to_be_bytes());
        lo.extend_from_slice(&[6, 0, 0, 0, 0, 0, 0, 0, 0, 80, 0, 0]);
        let mut hi = lo.clone();
        hi[16..18].copy_from_slice(&[0xff, 0xff]);
        assert_eq!((enc.key, enc.key_end), (lo, Some(hi)));
        for bad in [
            el("inet", "dst_class4", "10.0.0.300", Some("5")),
            el("inet", "dst_class4", "10.0.0.1", Some("x")),
            el("bridge", "ports", "\"a-name-much-too-long\"", None),
            el("bridge", "ports", "unquoted", None),
            el("inet", "nosuchset", "1", None),
            el(
                "inet",
                "t3_contract_range",
                "2 . 1 . 2 . 6 . 9-x . 80",
                Some("accept"),
            ),
        ] {
            assert!(EncodedChange::encode(&[], &[&bad]).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn a_batch_is_framed_and_every_message_is_acknowledged() {
        let a = el("inet", "dst_class4", "10.0.0.1", Some("5"));
        let b = el("bridge", "ports", "\"weft-p1\"", None);
        let change = EncodedChange::encode(&[&b], &[&a]).expect("encodes");
        let (bytes, what) = batch_bytes(&change);
        assert_eq!(
            what,
            vec![
                "delete 1 elements from bridge weft ports".to_string(),
                "add 1 elements to inet weft dst_class4".to_string(),
            ]
        );
        // Walk the messages: begin, two element messages, end; lengths add up.
        let mut kinds = Vec::new();
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            kinds.push(u16::from_ne_bytes([rest[4], rest[5]]));
            rest = &rest[len.div_ceil(4) * 4..];
        }
        assert_eq!(
            kinds,
            vec![
                NFNL_MSG_BATCH_BEGIN,
                nft_type(NFT_MSG_DELSETELEM),
                nft_type(NFT_MSG_NEWSETELEM),
                NFNL_MSG_BATCH_END,
            ]
        );
    }
}
