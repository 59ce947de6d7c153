//! Element changes over nf_tables netlink leave exactly what the same batch leaves
//! through `nft -f`, a refused batch changes nothing, and the existence probe sees
//! the tables come and go.

mod common;
use std::collections::BTreeSet;
use std::sync::Arc;
use weft_fabric::FabricError;
use weft_fabric::exec::{Cmd, Runner, SystemRunner};
use weft_fabric::nft::apply::diff_batch;
use weft_fabric::nft::render::structure;
use weft_fabric::nft::{Element, NftApplier, NftBatch, NftDesired};
use weft_fabric::testbed::Testbed;

/// The real tools, without the netlink backend: every batch goes to `nft -f`.
#[derive(Debug)]
struct TextOnly;

impl Runner for TextOnly {
    fn run(&self, cmd: &Cmd) -> Result<String, FabricError> {
        SystemRunner.run(cmd)
    }
}

fn el(family: &str, set: &str, key: &str, value: Option<&str>) -> Element {
    Element {
        family: family.into(),
        set: set.into(),
        key: key.into(),
        value: value.map(Into::into),
    }
}

/// One or more elements of every hash set and map of both tables.
fn elements(n: u8) -> BTreeSet<Element> {
    let port = format!("\"weft-p{n}\"");
    let mac = format!("02:00:00:00:00:{n:02x}");
    let ip4 = format!("10.1.0.{n}");
    let ip6 = format!("fd00::{n:x}");
    let class = (16386 + u32::from(n)).to_string();
    [
        el("bridge", "ports", &port, None),
        el("bridge", "port_class", &port, Some(&class)),
        el("bridge", "port_mac", &format!("{port} . {mac}"), None),
        el(
            "bridge",
            "port_src4",
            &format!("{port} . {mac} . {ip4}"),
            Some(&class),
        ),
        el(
            "bridge",
            "port_src6",
            &format!("{port} . {mac} . {ip6}"),
            Some(&class),
        ),
        el("bridge", "port_dst4", &format!("{port} . {ip4}"), None),
        el("bridge", "port_dst6", &format!("{port} . {ip6}"), None),
        el("inet", "dst_class4", &ip4, Some(&class)),
        el("inet", "dst_class6", &ip6, Some(&class)),
        el(
            "inet",
            "t3_contract_exact",
            &format!("2 . {class} . 16390 . 6 . {}", 8000 + u32::from(n)),
            Some("accept"),
        ),
        el(
            "inet",
            "t2_deny_exact",
            &format!("10 . {class} . 16391 . 17 . 53"),
            Some("drop"),
        ),
        // Interval maps: ranges in any numeric field, marks among them.
        el(
            "inet",
            "t3_contract_range",
            &format!(
                "2-10 . {class} . 16386-16400 . 6 . 0-65535 . {}-9000",
                8000 + u32::from(n)
            ),
            Some("accept"),
        ),
        el(
            "inet",
            "t1_intra_epg_range",
            &format!("2 . {class} . {class} . 0-255 . 1024-65535 . 0-65535"),
            Some("drop"),
        ),
        el(
            "inet",
            "t3_contract_noport",
            &format!("2 . {class} . 0-4294967295 . 1"),
            Some("accept"),
        ),
        // Security groups and port security: address ranges in interval sets.
        el("bridge", "ports_open", &port, None),
        el("bridge", "port_open", &port, Some(&class)),
        el("inet", "sg_profile4", &ip4, Some(&class)),
        el("inet", "sg_profile6", &ip6, Some(&class)),
        el(
            "inet",
            "sg_in4",
            &format!("10.{n}.0.0-10.{n}.255.255 . {class} . 6 . 22"),
            None,
        ),
        el(
            "inet",
            "sg_out4",
            &format!("{ip4} . {class} . 0-255 . 0-65535"),
            None,
        ),
        el(
            "inet",
            "sg_in6",
            &format!("fd0{n}::-fd0{n}::ffff . {class} . 58 . 0-65535"),
            None,
        ),
        el(
            "inet",
            "sg_out6",
            &format!("{ip6}-{ip6} . {class}-{class} . 17-17 . 53-54"),
            None,
        ),
        el("inet", "sg_in4_any", &format!("{ip4} . {class}"), None),
        el(
            "inet",
            "sg_out4_proto",
            &format!("{ip4} . {class} . 1"),
            None,
        ),
        el(
            "inet",
            "sg_in6_port",
            &format!("{ip6} . {class} . 6 . 22"),
            None,
        ),
    ]
    .into()
}

fn desired(ns: &[u8]) -> NftDesired {
    NftDesired {
        elements: ns.iter().flat_map(|n| elements(*n)).collect(),
    }
}

fn tables() -> NftBatch {
    NftBatch {
        text: structure(),
        ..Default::default()
    }
}

#[test]
fn netlink_batches_install_what_nft_installs_and_refusals_change_nothing() {
    require_root!();
    let mut bed = Testbed::new("nftnl", &[]).expect("testbed");
    let via_netlink = bed.endpoint_netns("netlink").expect("netns");
    let via_text = bed.endpoint_netns("text").expect("netns");
    let netlink = NftApplier::new(Arc::new(SystemRunner));
    let text = NftApplier::new(Arc::new(TextOnly));

    assert!(!netlink.tables_exist(&via_netlink).expect("probe"));
    netlink.apply(&via_netlink, &tables()).expect("tables");
    text.apply(&via_text, &tables()).expect("tables");
    assert!(netlink.tables_exist(&via_netlink).expect("probe"));

    let empty = NftDesired::default();
    let mut current = empty.clone();
    for next in [desired(&[1, 2, 3]), desired(&[2, 3, 4, 5]), desired(&[5])] {
        let batch = diff_batch(Some(&current), true, &next);
        assert!(
            batch.netlink.is_some(),
            "every element here has a netlink encoding"
        );
        netlink.apply(&via_netlink, &batch).expect("netlink batch");
        text.apply(&via_text, &batch).expect("nft batch");
        assert_eq!(
            netlink.list_stateless(&via_netlink).expect("list"),
            text.list_stateless(&via_text).expect("list"),
            "netlink and nft -f disagree after moving to {} elements",
            next.elements.len()
        );
        current = next;
    }
    let installed = netlink.list_stateless(&via_netlink).expect("list");
    assert!(installed.contains("10.1.0.5 : 0x00004007"), "{installed}");
    assert!(
        installed.contains("0x00004007 . 0x00004002-0x00004010 . tcp"),
        "mark ranges: {installed}"
    );
    assert!(
        installed.contains("10.5.0.0/16 . 0x00004007 . tcp . 22"),
        "address ranges: {installed}"
    );

    // Deleting an element that is not there fails the whole batch: the addition in the
    // same batch does not happen either.
    let refused = diff_batch(Some(&desired(&[5, 6])), true, &desired(&[7]));
    let err = netlink
        .apply(&via_netlink, &refused)
        .expect_err("deleting absent elements is refused");
    assert!(
        matches!(&err, FabricError::NftRejected { netns, stderr }
            if netns == &via_netlink && stderr.contains("delete") && stderr.contains("No such file")),
        "{err}"
    );
    assert_eq!(
        netlink.list_stateless(&via_netlink).expect("list"),
        installed,
        "a refused batch changed the tables"
    );

    text.apply(
        &via_netlink,
        &NftBatch {
            text: "delete table bridge weft\n".into(),
            ..Default::default()
        },
    )
    .expect("delete");
    assert!(!netlink.tables_exist(&via_netlink).expect("probe"));
    bed.destroy().expect("clean-up");
    assert!(bed.leftovers().is_empty());
}
