//! The answers weft's DNS gives, read back with hickory's parser (a client's view),
//! checked against what the issue and RFC 1035/2308/6891/8020 and Consul's DNS
//! interface say, and fuzzed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::net::IpAddr;
use weft_api::{
    DnsAsker, DnsInstance, DnsNode, DnsService, DnsSettings, TenantDiscovery, VrfDiscovery,
};
use weft_dns::{Reply, Transport, Zone, answer, query_message};

const WEB: &str = "10.1.0.10";
const APP_1: &str = "10.1.0.21";
const APP_2: &str = "10.1.0.22";
const DB: &str = "10.1.0.31";
const RED_WEB: &str = "10.9.0.10";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn instance(
    id: &str,
    address: &str,
    port: u16,
    tags: &[&str],
    hidden_from: Vec<u32>,
) -> DnsInstance {
    DnsInstance {
        id: id.into(),
        node: "n1".into(),
        address: ip(address),
        port,
        tags: tags.iter().map(|t| (*t).to_string()).collect(),
        hidden_from,
    }
}

/// Three tiers in tenant blue (web may reach app, app may reach db; class 0 = web,
/// class 1 = app), and tenant red with one service of the same name as blue's.
fn vrf(policy_aware: bool) -> VrfDiscovery {
    VrfDiscovery {
        vrf: "blue/main".into(),
        vrf_id: 1,
        policy_aware,
        classes: vec![
            "blue/shop/web".into(),
            "blue/shop/app".into(),
            "red/r/web".into(),
        ],
        askers: vec![
            DnsAsker {
                address: ip(WEB),
                endpoint: "web-1".into(),
                tenant: 0,
                class: 0,
            },
            DnsAsker {
                address: ip(APP_1),
                endpoint: "app-1".into(),
                tenant: 0,
                class: 1,
            },
            DnsAsker {
                address: ip(RED_WEB),
                endpoint: "red-web-1".into(),
                tenant: 1,
                class: 2,
            },
        ],
        tenants: vec![
            TenantDiscovery {
                tenant: "blue".into(),
                token: None,
                services: vec![
                    DnsService {
                        name: "app".into(),
                        instances: vec![
                            instance("app.1", APP_1, 8080, &["v1"], vec![1]),
                            instance("app.2", APP_2, 8080, &["v2"], vec![1]),
                        ],
                    },
                    DnsService {
                        name: "db".into(),
                        instances: vec![instance("db.1", DB, 5432, &[], vec![0])],
                    },
                    DnsService {
                        name: "web".into(),
                        instances: vec![instance("web.1", WEB, 80, &[], vec![0, 1])],
                    },
                ],
                nodes: vec![DnsNode {
                    name: "n1".into(),
                    address: ip("192.0.2.1"),
                }],
            },
            TenantDiscovery {
                tenant: "red".into(),
                token: None,
                services: vec![DnsService {
                    name: "secret".into(),
                    instances: vec![instance("secret.1", "10.9.0.50", 1, &[], vec![])],
                }],
                nodes: vec![],
            },
        ],
    }
}

fn zone(policy_aware: bool) -> Zone {
    Zone::build(&DnsSettings::default(), &vrf(policy_aware), 42)
}

fn ask(zone: &Zone, from: &str, name: &str, qtype: &str, transport: Transport) -> Message {
    let q = query_message(name, qtype).unwrap();
    let mut out = Vec::new();
    assert_eq!(answer(zone, &q, ip(from), transport, &mut out), Reply::Send);
    Message::from_vec(&out).unwrap()
}

fn addresses(m: &Message) -> BTreeSet<String> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0.to_string()),
            RData::AAAA(a) => Some(a.0.to_string()),
            _ => None,
        })
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_string()).collect()
}

#[test]
fn an_endpoint_is_told_only_of_instances_its_epg_may_reach() {
    let z = zone(true);
    let m = ask(&z, WEB, "app.service.weft", "A", Transport::Udp);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.authoritative);
    assert_eq!(addresses(&m), set(&[APP_1, APP_2]));
    // web may not reach db: the service has none left for it, so NXDOMAIN.
    let m = ask(&z, WEB, "db.service.weft", "A", Transport::Udp);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(m.answers.is_empty());
    // app may reach db.
    let m = ask(&z, APP_1, "db.service.weft", "A", Transport::Udp);
    assert_eq!(addresses(&m), set(&[DB]));
}

#[test]
fn with_the_vrfs_setting_off_every_passing_instance_is_answered() {
    let z = zone(false);
    let m = ask(&z, WEB, "db.service.weft", "A", Transport::Udp);
    assert_eq!(addresses(&m), set(&[DB]));
}

#[test]
fn nothing_crosses_tenants_and_unknown_sources_learn_nothing() {
    let z = zone(false);
    let m = ask(&z, WEB, "secret.service.weft", "A", Transport::Udp);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    let m = ask(&z, RED_WEB, "app.service.weft", "A", Transport::Udp);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    let m = ask(&z, RED_WEB, "secret.service.weft", "A", Transport::Udp);
    assert_eq!(addresses(&m), set(&["10.9.0.50"]));
    let m = ask(&z, "10.1.0.99", "app.service.weft", "A", Transport::Udp);
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    assert!(m.answers.is_empty());
}

#[test]
fn nxdomain_and_nodata_are_told_apart_with_the_soa() {
    let z = zone(true);
    // The name exists (it has A records), not AAAA: NODATA.
    let m = ask(&z, WEB, "app.service.weft", "AAAA", Transport::Udp);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    assert_eq!(m.authorities.len(), 1);
    assert_eq!(m.authorities[0].record_type(), RecordType::SOA);
    // An empty non-terminal: NODATA too (RFC 8020).
    let m = ask(&z, WEB, "service.weft", "A", Transport::Udp);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    // No such name: NXDOMAIN with the SOA.
    let m = ask(&z, WEB, "nope.service.weft", "A", Transport::Udp);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(m.authorities[0].record_type(), RecordType::SOA);
    // The apex answers its SOA.
    let m = ask(&z, WEB, "weft", "SOA", Transport::Udp);
    assert_eq!(m.answers[0].record_type(), RecordType::SOA);
}

#[test]
fn srv_answers_carry_the_port_and_a_target_with_its_address() {
    let z = zone(true);
    let m = ask(&z, WEB, "_app._tcp.service.weft", "SRV", Transport::Udp);
    assert_eq!(m.answers.len(), 2);
    let mut seen = BTreeSet::new();
    for r in &m.answers {
        let RData::SRV(srv) = &r.data else {
            panic!("not SRV: {r}")
        };
        assert_eq!(srv.port, 8080);
        let target = srv.target.to_string();
        assert!(target.ends_with(".addr.dc1.weft."), "{target}");
        let glue = m
            .additionals
            .iter()
            .find(|a| a.name.to_string() == target)
            .unwrap_or_else(|| panic!("no address for {target}"));
        let RData::A(a) = &glue.data else { panic!() };
        seen.insert(a.0.to_string());
    }
    assert_eq!(seen, set(&[APP_1, APP_2]));
    // The target resolves by itself too.
    let target = match &m.answers[0].data {
        RData::SRV(s) => s.target.to_string(),
        _ => unreachable!(),
    };
    let m = ask(&z, WEB, &target, "A", Transport::Udp);
    assert_eq!(addresses(&m).len(), 1);
}

#[test]
fn tags_rfc2782_datacenter_and_the_consul_domain() {
    let z = zone(true);
    assert_eq!(
        addresses(&ask(&z, WEB, "v1.app.service.weft", "A", Transport::Udp)),
        set(&[APP_1])
    );
    let m = ask(&z, WEB, "_app._v2.service.weft", "SRV", Transport::Udp);
    assert_eq!(m.answers.len(), 1);
    assert_eq!(
        addresses(&ask(&z, WEB, "app.service.dc1.weft", "A", Transport::Udp)),
        set(&[APP_1, APP_2])
    );
    assert_eq!(
        addresses(&ask(&z, WEB, "app.service.consul", "A", Transport::Udp)),
        set(&[APP_1, APP_2])
    );
    assert_eq!(
        addresses(&ask(&z, WEB, "n1.node.weft", "A", Transport::Udp)),
        set(&["192.0.2.1"])
    );
}

#[test]
fn names_match_without_case_and_the_question_is_echoed_as_asked() {
    let z = zone(true);
    let m = ask(&z, WEB, "ApP.SeRvIcE.WeFt", "A", Transport::Udp);
    assert_eq!(addresses(&m), set(&[APP_1, APP_2]));
    assert_eq!(m.queries[0].name().to_string(), "ApP.SeRvIcE.WeFt.");
}

#[test]
fn answers_come_in_random_order() {
    let z = zone(true);
    let mut firsts = BTreeSet::new();
    for _ in 0..64 {
        let m = ask(&z, WEB, "app.service.weft", "A", Transport::Udp);
        firsts.insert(m.answers[0].to_string());
    }
    assert_eq!(firsts.len(), 2, "both instances come first sometimes");
}

fn big_vrf(n: u8) -> VrfDiscovery {
    let mut v = vrf(false);
    v.tenants[0].services[0].instances = (0..n)
        .map(|i| {
            instance(
                &format!("app.{i}"),
                &format!("10.1.1.{i}"),
                8080,
                &[],
                vec![],
            )
        })
        .collect();
    v
}

#[test]
fn udp_answers_that_do_not_fit_are_cut_and_marked_truncated_tcp_carries_them_all() {
    let z = Zone::build(&DnsSettings::default(), &big_vrf(200), 1);
    let q = query_message("app.service.weft", "A").unwrap();
    // Without EDNS: 512 bytes at most.
    let mut plain = q.clone();
    plain[11] = 0;
    plain.truncate(plain.len() - 11);
    let mut out = Vec::new();
    answer(&z, &plain, ip(WEB), Transport::Udp, &mut out);
    assert!(out.len() <= 512, "{}", out.len());
    let m = Message::from_vec(&out).unwrap();
    assert!(m.metadata.truncation);
    assert!(!m.answers.is_empty());
    // With EDNS (payload 1232 asked): within it, still truncated.
    answer(&z, &q, ip(WEB), Transport::Udp, &mut out);
    assert!(out.len() <= 1232);
    let m = Message::from_vec(&out).unwrap();
    assert!(m.metadata.truncation);
    assert!(m.edns.is_some(), "EDNS is echoed");
    // Over TCP every instance.
    let m = ask(&z, WEB, "app.service.weft", "A", Transport::Tcp);
    assert!(!m.metadata.truncation);
    assert_eq!(m.answers.len(), 200);
}

#[test]
fn edns_versions_above_zero_get_badvers() {
    let z = zone(true);
    let mut q = query_message("app.service.weft", "A").unwrap();
    let n = q.len();
    q[n - 5] = 1; // the OPT's version byte
    let mut out = Vec::new();
    answer(&z, &q, ip(WEB), Transport::Udp, &mut out);
    let m = Message::from_vec(&out).unwrap();
    // RCODE 16 is BADVERS for an OPT (RFC 6891) and BADSIG for TSIG: hickory names it BADSIG.
    assert_eq!(u16::from(m.metadata.response_code), 16);
}

#[test]
fn names_outside_the_domain_are_refused_or_forwarded() {
    let z = zone(true);
    let m = ask(&z, WEB, "example.org", "A", Transport::Udp);
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    let z = zone(true).with_recursion(true);
    let q = query_message("example.org", "A").unwrap();
    let mut out = Vec::new();
    assert_eq!(
        answer(&z, &q, ip(WEB), Transport::Udp, &mut out),
        Reply::Forward
    );
}

#[test]
fn malformed_messages_get_formerr_or_notimp_and_responses_are_never_answered() {
    let z = zone(true);
    let mut out = Vec::new();
    // A header claiming one question, and garbage.
    let garbage = [0xab, 0xcd, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x3f, 1, 2];
    assert_eq!(
        answer(&z, &garbage, ip(WEB), Transport::Udp, &mut out),
        Reply::Send
    );
    let m = Message::from_vec(&out).unwrap();
    assert_eq!(m.metadata.id, 0xabcd);
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
    // Two questions: FORMERR.
    let mut two = query_message("app.service.weft", "A").unwrap();
    two[5] = 2;
    answer(&z, &two, ip(WEB), Transport::Udp, &mut out);
    assert_eq!(
        Message::from_vec(&out).unwrap().metadata.response_code,
        ResponseCode::FormErr
    );
    // An UPDATE (opcode 5): NOTIMP.
    let mut update = query_message("app.service.weft", "A").unwrap();
    update[2] = 5 << 3;
    answer(&z, &update, ip(WEB), Transport::Udp, &mut out);
    assert_eq!(
        Message::from_vec(&out).unwrap().metadata.response_code,
        ResponseCode::NotImp
    );
    // A response is dropped (no loops between servers).
    let mut response = query_message("app.service.weft", "A").unwrap();
    response[2] |= 0x80;
    assert_eq!(
        answer(&z, &response, ip(WEB), Transport::Udp, &mut out),
        Reply::Drop
    );
    // Less than a header: nothing to echo.
    assert_eq!(
        answer(&z, &[1, 2, 3], ip(WEB), Transport::Udp, &mut out),
        Reply::Drop
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    /// Any bytes: no panic, and whatever is sent back parses and echoes the ID.
    #[test]
    fn any_bytes_get_a_well_formed_answer_or_none(msg in proptest::collection::vec(any::<u8>(), 0..600)) {
        let z = zone(true);
        let mut out = Vec::new();
        if answer(&z, &msg, ip(WEB), Transport::Udp, &mut out) == Reply::Send {
            prop_assert!(out.len() <= 4096);
            prop_assert_eq!(&out[0..2], &msg[0..2]);
            prop_assert!(Message::from_vec(&out).is_ok(), "unparseable answer to {:?}", msg);
        }
    }

    /// A valid query with a few bytes changed: the same.
    #[test]
    fn mutated_queries_get_a_well_formed_answer_or_none(
        edits in proptest::collection::vec((0usize..64, any::<u8>()), 1..6),
        cut in 0usize..8,
    ) {
        let z = zone(true);
        let mut msg = query_message("_app._v1.service.dc1.weft", "SRV").unwrap();
        for (at, b) in edits {
            let n = msg.len();
            msg[at % n] = b;
        }
        msg.truncate(msg.len().saturating_sub(cut));
        let mut out = Vec::new();
        if answer(&z, &msg, ip(WEB), Transport::Udp, &mut out) == Reply::Send {
            prop_assert!(Message::from_vec(&out).is_ok());
        }
    }
}
