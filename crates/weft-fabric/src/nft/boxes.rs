//! Rules as boxes in the match space (source class, destination class, L3 family,
//! L4 protocol, source port, destination port), and their split into disjoint boxes:
//! nftables interval sets refuse overlapping elements.

use weft_compiler::{ClassSel, Rule};
use weft_model::{IpFamily, Protocol};

/// `NFPROTO_IPV4` / `NFPROTO_IPV6`, what `meta nfproto` yields.
pub const NFPROTO_IPV4: u32 = 2;
pub const NFPROTO_IPV6: u32 = 10;
pub const IPPROTO_ICMP: u32 = 1;
pub const IPPROTO_TCP: u32 = 6;
pub const IPPROTO_UDP: u32 = 17;
pub const IPPROTO_ICMPV6: u32 = 58;
/// Every real class (0 = unknown is never matched by a wildcard).
pub const ANY_CLASS: Span = Span { lo: 1, hi: 65535 };

/// An inclusive range on one dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span {
    pub lo: u32,
    pub hi: u32,
}

impl Span {
    pub const fn point(v: u32) -> Self {
        Self { lo: v, hi: v }
    }
    pub const fn new(lo: u32, hi: u32) -> Self {
        Self { lo, hi }
    }
    pub fn is_point(self) -> bool {
        self.lo == self.hi
    }
    fn overlaps(self, o: Span) -> bool {
        self.lo <= o.hi && o.lo <= self.hi
    }
}

/// Dimensions: 0 sclass, 1 dclass, 2 nfproto, 3 l4proto, then (ported boxes only)
/// 4 sport, 5 dport. `N` is 6 for TCP/UDP boxes and 4 for the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Box<const N: usize>(pub [Span; N]);

pub type PortBox = Box<6>;
pub type PortlessBox = Box<4>;

impl<const N: usize> Box<N> {
    pub fn overlaps(&self, o: &Self) -> bool {
        self.0.iter().zip(o.0.iter()).all(|(a, b)| a.overlaps(*b))
    }

    /// `self` minus `o`, as at most 2·N disjoint boxes.
    pub fn subtract(&self, o: &Self) -> Vec<Self> {
        if !self.overlaps(o) {
            return vec![*self];
        }
        let mut rest = *self;
        let mut out = Vec::new();
        for d in 0..N {
            if rest.0[d].lo < o.0[d].lo {
                let mut piece = rest;
                piece.0[d].hi = o.0[d].lo - 1;
                out.push(piece);
                rest.0[d].lo = o.0[d].lo;
            }
            if rest.0[d].hi > o.0[d].hi {
                let mut piece = rest;
                piece.0[d].lo = o.0[d].hi + 1;
                out.push(piece);
                rest.0[d].hi = o.0[d].hi;
            }
        }
        out
    }
}

fn class_span(sel: ClassSel) -> Span {
    match sel {
        ClassSel::Class(c) => Span::point(u32::from(c.0)),
        // Nothing crosses VRFs in the fabric: "every EPG of this VRF" and "any class"
        // select the same packets here.
        ClassSel::Vrf | ClassSel::Any => ANY_CLASS,
    }
}

/// The boxes a rule covers: (TCP/UDP boxes, other-protocol boxes).
pub fn rule_boxes(rule: &Rule) -> (Vec<PortBox>, Vec<PortlessBox>) {
    let s = class_span(rule.src);
    let d = class_span(rule.dst);
    let families: &[u32] = match rule.family {
        None => &[NFPROTO_IPV4, NFPROTO_IPV6],
        Some(IpFamily::V4) => &[NFPROTO_IPV4],
        Some(IpFamily::V6) => &[NFPROTO_IPV6],
    };
    let fam_span = match rule.family {
        None => Span::new(NFPROTO_IPV4, NFPROTO_IPV6),
        Some(IpFamily::V4) => Span::point(NFPROTO_IPV4),
        Some(IpFamily::V6) => Span::point(NFPROTO_IPV6),
    };
    let sport = Span::new(u32::from(rule.sport.lo), u32::from(rule.sport.hi));
    let dport = Span::new(u32::from(rule.dport.lo), u32::from(rule.dport.hi));
    let ported = |l4: Span| Box([s, d, fam_span, l4, sport, dport]);
    match rule.proto {
        Protocol::Tcp => (vec![ported(Span::point(IPPROTO_TCP))], vec![]),
        Protocol::Udp => (vec![ported(Span::point(IPPROTO_UDP))], vec![]),
        Protocol::Icmp => {
            let portless = families
                .iter()
                .map(|&f| {
                    let icmp = if f == NFPROTO_IPV4 {
                        IPPROTO_ICMP
                    } else {
                        IPPROTO_ICMPV6
                    };
                    Box([s, d, Span::point(f), Span::point(icmp)])
                })
                .collect();
            (vec![], portless)
        }
        // Only TCP and UDP packets reach the ported lookups, so 6-17 means "TCP or UDP";
        // every other protocol is looked up without ports.
        Protocol::Any => (
            vec![ported(Span::new(IPPROTO_TCP, IPPROTO_UDP))],
            vec![Box([s, d, fam_span, Span::new(0, 255)])],
        ),
    }
}

/// Adds boxes in priority order, keeping only the parts not already covered by an
/// earlier box (first match wins). Boxes whose class dimensions are points are
/// bucketed by (sclass, dclass), so that the usual class-to-class rules are only
/// compared with their own bucket and with the few wildcard boxes.
#[derive(Debug)]
pub struct Disjoint<const N: usize, V> {
    exact: std::collections::HashMap<(u32, u32), Vec<usize>>,
    wide: Vec<usize>,
    pub boxes: Vec<(Box<N>, V)>,
}

impl<const N: usize, V: Clone> Default for Disjoint<N, V> {
    fn default() -> Self {
        Self {
            exact: Default::default(),
            wide: Vec::new(),
            boxes: Vec::new(),
        }
    }
}

impl<const N: usize, V: Clone> Disjoint<N, V> {
    pub fn add(&mut self, b: Box<N>, value: V) {
        let mut pieces = vec![b];
        let candidates: Vec<usize> = if b.0[0].is_point() && b.0[1].is_point() {
            let key = (b.0[0].lo, b.0[1].lo);
            let bucket = self.exact.get(&key).map(|v| v.as_slice()).unwrap_or(&[]);
            bucket.iter().chain(self.wide.iter()).copied().collect()
        } else {
            (0..self.boxes.len()).collect()
        };
        for i in candidates {
            let existing = self.boxes[i].0;
            pieces = pieces.iter().flat_map(|p| p.subtract(&existing)).collect();
            if pieces.is_empty() {
                return;
            }
        }
        for p in pieces {
            let idx = self.boxes.len();
            if p.0[0].is_point() && p.0[1].is_point() {
                self.exact
                    .entry((p.0[0].lo, p.0[1].lo))
                    .or_default()
                    .push(idx);
            } else {
                self.wide.push(idx);
            }
            self.boxes.push((p, value.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(spans: [(u32, u32); 4]) -> PortlessBox {
        Box(spans.map(|(lo, hi)| Span::new(lo, hi)))
    }

    fn covers(boxes: &[PortlessBox], p: [u32; 4]) -> usize {
        boxes
            .iter()
            .filter(|bx| bx.0.iter().zip(p).all(|(s, v)| s.lo <= v && v <= s.hi))
            .count()
    }

    #[test]
    fn subtraction_leaves_disjoint_pieces_covering_the_rest() {
        let a = b([(1, 10), (1, 10), (2, 2), (0, 255)]);
        let hole = b([(3, 4), (5, 5), (2, 2), (6, 6)]);
        let pieces = a.subtract(&hole);
        for x in 1..=10 {
            for y in 1..=10 {
                for p in [0, 6, 17, 255] {
                    let inside_hole = (3..=4).contains(&x) && y == 5 && p == 6;
                    assert_eq!(covers(&pieces, [x, y, 2, p]), usize::from(!inside_hole));
                }
            }
        }
    }

    #[test]
    fn first_added_box_wins_overlaps() {
        let mut d: Disjoint<4, &str> = Disjoint::default();
        d.add(b([(5, 5), (7, 7), (2, 2), (6, 6)]), "deny");
        d.add(b([(1, 65535), (7, 7), (2, 10), (0, 255)]), "permit");
        d.add(b([(5, 5), (7, 7), (2, 2), (6, 6)]), "permit-dup");
        let boxes: Vec<PortlessBox> = d.boxes.iter().map(|(b, _)| *b).collect();
        for i in 0..boxes.len() {
            for j in i + 1..boxes.len() {
                assert!(
                    !boxes[i].overlaps(&boxes[j]),
                    "{:?} overlaps {:?}",
                    boxes[i],
                    boxes[j]
                );
            }
        }
        let verdict = |p: [u32; 4]| {
            d.boxes
                .iter()
                .find(|(bx, _)| bx.0.iter().zip(p).all(|(s, v)| s.lo <= v && v <= s.hi))
                .map(|(_, v)| *v)
        };
        assert_eq!(verdict([5, 7, 2, 6]), Some("deny"));
        assert_eq!(verdict([5, 7, 2, 17]), Some("permit"));
        assert_eq!(verdict([9, 7, 10, 6]), Some("permit"));
        assert_eq!(verdict([9, 8, 2, 6]), None);
    }
}
