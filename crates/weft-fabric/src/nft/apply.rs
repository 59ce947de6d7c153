//! Turning (what is installed, what should be) into one atomic batch: element changes
//! over nf_tables netlink when every element can go that way, else `nft -f`.

use super::incremental::RenderDelta;
use super::netlink::{EncodedChange, NftNetlink};
use super::render::{Element, LAYOUT, NftDesired, TABLE, TIERS, structure};
use crate::error::FabricError;
use crate::exec::{Cmd, Program, Runner};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

/// Elements per `add element` statement: keeps lines reasonable for huge sets.
const CHUNK: usize = 4096;

/// Larger element changes (cold starts, huge policy changes) go to `nft -f`, which
/// splits its batch over several socket writes.
const NETLINK_MAX: usize = 20_000;

/// One transaction: applied by the kernel entirely or not at all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NftBatch {
    pub text: String,
    pub added: usize,
    pub removed: usize,
    /// The tables did not exist and are created by this batch.
    pub creates_tables: bool,
    /// The same change for nf_tables netlink, when it is only element changes that
    /// [`EncodedChange`] can write; `text` is then what it stands for.
    pub netlink: Option<EncodedChange>,
}

impl NftBatch {
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }
}

/// Sets and maps of weft's tables, as (family, kind, name), for a cold re-sync.
fn all_sets() -> Vec<(&'static str, &'static str, String)> {
    let mut v: Vec<(&str, &str, String)> = vec![
        ("bridge", "set", "ports".into()),
        ("bridge", "map", "port_class".into()),
        ("bridge", "set", "port_mac".into()),
        ("bridge", "map", "port_src4".into()),
        ("bridge", "map", "port_src6".into()),
        ("bridge", "set", "port_dst4".into()),
        ("bridge", "set", "port_dst6".into()),
        ("bridge", "map", "port_open".into()),
        ("bridge", "set", "ports_open".into()),
        ("inet", "map", "dst_class4".into()),
        ("inet", "map", "dst_class6".into()),
        ("inet", "map", "sg_profile4".into()),
        ("inet", "map", "sg_profile6".into()),
    ];
    for set in ["sg_in4", "sg_out4", "sg_in6", "sg_out6"] {
        for kind in ["", "_any", "_proto", "_port"] {
            v.push(("inet", "set", format!("{set}{kind}")));
        }
    }
    for (_, stem) in TIERS {
        for kind in ["exact", "range", "noport"] {
            v.push(("inet", "map", format!("{stem}_{kind}")));
        }
    }
    v
}

fn group<'a>(
    elements: impl Iterator<Item = &'a Element>,
) -> BTreeMap<(&'a str, &'a str), Vec<&'a Element>> {
    let mut g: BTreeMap<(&str, &str), Vec<&Element>> = BTreeMap::new();
    for e in elements {
        g.entry((e.family.as_str(), e.set.as_str()))
            .or_default()
            .push(e);
    }
    g
}

fn write_statements<'a>(
    out: &mut String,
    verb: &str,
    elements: impl Iterator<Item = &'a Element>,
    with_values: bool,
) {
    for ((family, set), els) in group(elements) {
        for chunk in els.chunks(CHUNK) {
            let items: Vec<String> = chunk
                .iter()
                .map(|e| match (&e.value, with_values) {
                    (Some(v), true) => format!("{} : {v}", e.key),
                    _ => e.key.clone(),
                })
                .collect();
            let _ = writeln!(
                out,
                "{verb} element {family} {TABLE} {set} {{ {} }}",
                items.join(", ")
            );
        }
    }
}

/// The batch that turns `current` into `desired`.
/// - `tables_exist == false`: create the tables and fill them.
/// - `current == None` with tables present (agent restarted without its state):
///   flush and refill every set in the same transaction - lookups see the old or the
///   new contents, never an empty set; conntrack is untouched.
/// - otherwise only the difference: deletions first, then additions.
pub fn diff_batch(
    current: Option<&NftDesired>,
    tables_exist: bool,
    desired: &NftDesired,
) -> NftBatch {
    let mut text = String::new();
    let mut batch = NftBatch::default();
    match (tables_exist, current) {
        (false, _) => {
            text.push_str(&structure());
            write_statements(&mut text, "add", desired.elements.iter(), true);
            batch.added = desired.elements.len();
            batch.creates_tables = true;
        }
        (true, None) => {
            for (family, kind, name) in all_sets() {
                let _ = writeln!(text, "flush {kind} {family} {TABLE} {name}");
            }
            write_statements(&mut text, "add", desired.elements.iter(), true);
            batch.added = desired.elements.len();
        }
        (true, Some(cur)) => {
            // A changed map value is a delete and an add of the same key.
            let gone: Vec<&Element> = cur.elements.difference(&desired.elements).collect();
            let new: Vec<&Element> = desired.elements.difference(&cur.elements).collect();
            write_statements(&mut text, "delete", gone.iter().copied(), false);
            write_statements(&mut text, "add", new.iter().copied(), true);
            batch.removed = gone.len();
            batch.added = new.len();
            batch.netlink = encode(&gone, &new);
        }
    }
    batch.text = text;
    batch
}

fn encode(removed: &[&Element], added: &[&Element]) -> Option<EncodedChange> {
    if removed.len() + added.len() > NETLINK_MAX {
        return None;
    }
    EncodedChange::encode(removed, added)
}

/// The batch for a delta from [`VrfRenderer`](super::VrfRenderer): deletions first.
pub fn delta_batch(delta: &RenderDelta) -> NftBatch {
    let mut text = String::new();
    write_statements(&mut text, "delete", delta.removed.iter(), false);
    write_statements(&mut text, "add", delta.added.iter(), true);
    let removed: Vec<&Element> = delta.removed.iter().collect();
    let added: Vec<&Element> = delta.added.iter().collect();
    NftBatch {
        text,
        added: delta.added.len(),
        removed: delta.removed.len(),
        creates_tables: false,
        netlink: encode(&removed, &added),
    }
}

/// Runs batches inside a namespace: over nf_tables netlink when the runner brings it
/// and the batch allows it, else with `nft -f -`.
#[derive(Debug, Clone)]
pub struct NftApplier {
    runner: Arc<dyn Runner>,
    netlink: Option<Arc<dyn NftNetlink>>,
}

impl NftApplier {
    pub fn new(runner: Arc<dyn Runner>) -> Self {
        let netlink = runner.nft_netlink();
        Self { runner, netlink }
    }

    /// Whether both tables exist in the current layout. Asks for one small object of
    /// each table: listing tables or all counters makes nft load every element (seconds
    /// at 200k elements). Tables of an older layout lack the [`LAYOUT`] set: "not
    /// found" here, and they are replaced
    /// ([`replace_structure`](super::render::replace_structure)).
    pub fn tables_exist(&self, netns: &str) -> Result<bool, FabricError> {
        if let Some(nl) = &self.netlink {
            return nl.sets_exist(netns, &[("bridge", LAYOUT), ("inet", "dst_class6")]);
        }
        for args in [
            ["list", "set", "bridge", TABLE, LAYOUT],
            ["list", "map", "inet", TABLE, "dst_class6"],
        ] {
            match self.runner.run(&Cmd::new(Some(netns), Program::Nft, &args)) {
                Ok(_) => {}
                Err(FabricError::Command { stderr, .. })
                    if stderr.contains("No such file or directory") =>
                {
                    return Ok(false);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    pub fn apply(&self, netns: &str, batch: &NftBatch) -> Result<(), FabricError> {
        if batch.is_empty() {
            return Ok(());
        }
        if let (Some(nl), Some(change)) = (&self.netlink, &batch.netlink) {
            return nl.apply(netns, change);
        }
        let cmd = Cmd::new(Some(netns), Program::Nft, &["-f", "-"]).with_stdin(batch.text.clone());
        self.runner.run(&cmd).map(|_| ()).map_err(|e| match e {
            FabricError::Command { stderr, .. } => FabricError::NftRejected {
                netns: netns.to_string(),
                stderr,
            },
            other => other,
        })
    }

    /// `nft -s list table ...` of both tables (no counters): for idempotency checks.
    pub fn list_stateless(&self, netns: &str) -> Result<String, FabricError> {
        let mut out = String::new();
        for family in ["bridge", "inet"] {
            out += &self.runner.run(&Cmd::new(
                Some(netns),
                Program::Nft,
                &["-s", "list", "table", family, TABLE],
            ))?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(set: &str, key: &str, value: Option<&str>) -> Element {
        Element {
            family: "inet".into(),
            set: set.into(),
            key: key.into(),
            value: value.map(Into::into),
        }
    }

    #[test]
    fn unchanged_state_gives_an_empty_batch() {
        let d = NftDesired {
            elements: [e("dst_class4", "10.0.0.1", Some("5"))].into(),
        };
        let b = diff_batch(Some(&d), true, &d);
        assert!(b.is_empty());
        assert_eq!((b.added, b.removed), (0, 0));
    }

    #[test]
    fn changes_are_element_deltas_deletions_first() {
        let cur = NftDesired {
            elements: [
                e("dst_class4", "10.0.0.1", Some("5")),
                e("dst_class4", "10.0.0.2", Some("5")),
            ]
            .into(),
        };
        let new = NftDesired {
            elements: [
                e("dst_class4", "10.0.0.1", Some("6")),
                e("dst_class4", "10.0.0.2", Some("5")),
            ]
            .into(),
        };
        let b = diff_batch(Some(&cur), true, &new);
        assert_eq!(
            b.text,
            "delete element inet weft dst_class4 { 10.0.0.1 }\nadd element inet weft dst_class4 { 10.0.0.1 : 6 }\n"
        );
        assert_eq!((b.added, b.removed), (1, 1));
    }

    #[test]
    fn cold_start_with_tables_refills_without_dropping_the_table() {
        let new = NftDesired {
            elements: [e("dst_class4", "10.0.0.1", Some("6"))].into(),
        };
        let b = diff_batch(None, true, &new);
        assert!(b.text.contains("flush map inet weft dst_class4"));
        assert!(!b.text.contains("flush table"));
        assert!(!b.text.contains("delete table"));
        let b = diff_batch(None, false, &new);
        assert!(b.creates_tables && b.text.starts_with("table bridge weft"));
    }
}
