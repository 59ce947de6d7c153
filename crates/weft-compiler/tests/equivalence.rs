//! Property: for random models and random flows, the compiled rule table gives the same
#![allow(clippy::unwrap_used)] // tests fail loudly by design
//! verdict as the reference evaluator that reads the model directly.

mod reference;

use proptest::prelude::*;
use proptest::sample::subsequence;
use weft_compiler::{Allocation, Compiler, Flow, compile};
use weft_model::{
    Action, AppProfile, BridgeDomain, Contract, Epg, EpgPath, EtherType, Filter, FilterEntry,
    IpFamily, Model, PortRange, Protocol, Scope, Subject, Subnet, Taboo, TabooSubject, Tenant, Vrf,
    validate,
};

const PORTS: u16 = 8;

fn port_range() -> impl Strategy<Value = PortRange> {
    prop_oneof![
        Just(PortRange::ANY),
        (0..PORTS, 0..PORTS).prop_map(|(a, b)| PortRange {
            lo: a.min(b),
            hi: a.max(b)
        }),
    ]
}

fn entry() -> impl Strategy<Value = FilterEntry> {
    (
        prop_oneof![
            Just(EtherType::Ip),
            Just(EtherType::Ipv4),
            Just(EtherType::Ipv6)
        ],
        prop_oneof![
            Just(Protocol::Any),
            Just(Protocol::Tcp),
            Just(Protocol::Udp),
            Just(Protocol::Icmp)
        ],
        port_range(),
        port_range(),
    )
        .prop_map(|(ether_type, protocol, sport, dport)| {
            let (source_port, destination_port) = if protocol.has_ports() {
                (sport, dport)
            } else {
                (PortRange::ANY, PortRange::ANY)
            };
            FilterEntry {
                ether_type,
                protocol,
                source_port,
                destination_port,
                ..Default::default()
            }
        })
}

/// Knobs for one EPG: (bridge domain, app profile, isolated, preferred, provides, consumes, taboos).
type EpgKnobs = (usize, usize, bool, bool, Vec<usize>, Vec<usize>, Vec<usize>);

fn names(prefix: &str, picks: &[usize]) -> Vec<String> {
    picks.iter().map(|i| format!("{prefix}{i}")).collect()
}

prop_compose! {
    fn model()(
        vrf_enforced in prop::collection::vec(prop::bool::weighted(0.85), 1..=3),
        bd_vrf in prop::collection::vec(0usize..3, 1..=4),
        filters in prop::collection::vec(prop::collection::vec(entry(), 1..=3), 1..=4),
        contracts in prop::collection::vec(
            (
                prop_oneof![Just(Scope::ApplicationProfile), Just(Scope::Vrf), Just(Scope::Tenant)],
                prop::collection::vec((prop::bool::weighted(0.2), subsequence((0..4).collect::<Vec<_>>(), 1..=2)), 1..=2),
            ),
            1..=4,
        ),
        taboos in prop::collection::vec(subsequence((0..4).collect::<Vec<_>>(), 1..=2), 0..=2),
        epgs in prop::collection::vec(
            (
                0usize..4, 0usize..2, prop::bool::weighted(0.2), prop::bool::weighted(0.3),
                subsequence((0..4).collect::<Vec<_>>(), 0..=2),
                subsequence((0..4).collect::<Vec<_>>(), 0..=2),
                subsequence((0..2).collect::<Vec<_>>(), 0..=1),
            ),
            2..=7,
        ),
        any_sides in prop::collection::vec(
            (subsequence((0..4).collect::<Vec<_>>(), 0..=1), subsequence((0..4).collect::<Vec<_>>(), 0..=1)),
            3,
        ),
    ) -> Model {
        let n_filters = filters.len();
        let n_contracts = contracts.len();
        let mut t = Tenant::default();
        for (i, enforced) in vrf_enforced.iter().enumerate() {
            let (provides, consumes) = &any_sides[i];
            let mut vrf = Vrf { enforced: *enforced, ..Vrf::default() };
            vrf.any.provides = names("c", &provides.iter().copied().filter(|c| *c < n_contracts).collect::<Vec<_>>());
            vrf.any.consumes = names("c", &consumes.iter().copied().filter(|c| *c < n_contracts).collect::<Vec<_>>());
            t.vrfs.insert(format!("v{i}"), vrf);
        }
        for (i, v) in bd_vrf.iter().enumerate() {
            let vrf = format!("v{}", v % vrf_enforced.len());
            let mut bd = BridgeDomain { vrf, ..Default::default() };
            let cidr = format!("10.{i}.0.0/24");
            let subnet = Subnet {
                cidr: cidr.parse().unwrap(),
                gateway: format!("10.{i}.0.1").parse().unwrap(),
                loc: Default::default(),
            };
            bd.subnets.insert(cidr, subnet);
            t.bridge_domains.insert(format!("bd{i}"), bd);
        }
        for (i, entries) in filters.into_iter().enumerate() {
            let mut f = Filter::default();
            for (j, e) in entries.into_iter().enumerate() {
                f.entries.insert(format!("e{j}"), e);
            }
            t.filters.insert(format!("f{i}"), f);
        }
        let filter_names = |picks: &[usize]| -> Vec<String> {
            let mut picks: Vec<usize> = picks.iter().map(|f| f % n_filters).collect();
            picks.sort();
            picks.dedup();
            names("f", &picks)
        };
        for (i, (scope, subjects)) in contracts.into_iter().enumerate() {
            let mut c = Contract { scope, ..Default::default() };
            for (j, (deny, picks)) in subjects.into_iter().enumerate() {
                let action = if deny { Action::Deny } else { Action::Permit };
                c.subjects.insert(format!("s{j}"), Subject { filters: filter_names(&picks), action, ..Default::default() });
            }
            t.contracts.insert(format!("c{i}"), c);
        }
        for (i, picks) in taboos.iter().enumerate() {
            let mut taboo = Taboo::default();
            taboo.subjects.insert("s".into(), TabooSubject { filters: filter_names(picks), ..Default::default() });
            t.taboos.insert(format!("t{i}"), taboo);
        }
        let n_taboos = taboos.len();
        for (i, knobs) in epgs.into_iter().enumerate() {
            let (bd, ap, isolated, preferred_group, provides, consumes, taboo_picks): EpgKnobs = knobs;
            let in_range = |v: Vec<usize>, n: usize| v.into_iter().filter(|x| *x < n).collect::<Vec<_>>();
            let epg = Epg {
                bridge_domain: format!("bd{}", bd % bd_vrf.len()),
                provides: names("c", &in_range(provides, n_contracts)),
                consumes: names("c", &in_range(consumes, n_contracts)),
                taboos: names("t", &in_range(taboo_picks, n_taboos)),
                isolated,
                preferred_group,
                ..Default::default()
            };
            t.app_profiles.entry(format!("ap{ap}")).or_insert_with(AppProfile::default).epgs.insert(format!("e{i}"), epg);
        }
        let mut model = Model::default();
        model.tenants.insert("t".into(), t);
        model
    }
}

fn flow() -> impl Strategy<Value = Flow> {
    (
        prop_oneof![Just(IpFamily::V4), Just(IpFamily::V6)],
        prop_oneof![
            Just(Protocol::Tcp),
            Just(Protocol::Udp),
            Just(Protocol::Icmp)
        ],
        0..PORTS,
        0..PORTS,
    )
        .prop_map(|(family, proto, sport, dport)| Flow {
            family,
            proto,
            sport,
            dport,
        })
}

fn all_epgs(model: &Model) -> Vec<EpgPath> {
    let mut out = Vec::new();
    for (t, tenant) in &model.tenants {
        for (a, ap) in &tenant.app_profiles {
            for e in ap.epgs.keys() {
                out.push(EpgPath::new(t, a, e));
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn compiled_tables_agree_with_the_reference(
        model in model(),
        flows in prop::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>(), flow()), 24),
    ) {
        let report = validate(&model);
        prop_assume!(!report.has_errors());
        let policy = compile(&model, &Allocation::default()).unwrap();
        let epgs = all_epgs(&model);
        // Random pairs, plus every EPG with itself: intra-EPG traffic has its own rules
        // of precedence, which a random pair rarely exercises.
        let to_itself = epgs.iter().zip(flows.iter().map(|f| f.2)).map(|(e, f)| (e, e, f));
        let pairs = flows.iter().map(|(si, di, f)| (si.get(&epgs), di.get(&epgs), *f));
        for (s, d, flow) in pairs.chain(to_itself) {
            let expected = reference::verdict(&model, s, d, &flow);
            let (verdict, _) = policy.evaluate(s, d, &flow).unwrap();
            prop_assert_eq!(
                verdict.action, expected,
                "{} -> {} {:?}: compiled rule {:?}", s, d, flow, verdict.rule
            );
        }
    }

    /// Recompiling with the previous allocation keeps every class ID.
    #[test]
    fn recompiling_keeps_class_ids(model in model()) {
        prop_assume!(!validate(&model).has_errors());
        let first = compile(&model, &Allocation::default()).unwrap();
        let second = compile(&model, &first.allocation).unwrap();
        prop_assert_eq!(first, second);
    }

    /// Compiling B after A incrementally gives exactly what compiling B afresh gives.
    #[test]
    fn incremental_compile_equals_a_fresh_one(a in model(), b in model()) {
        prop_assume!(!validate(&a).has_errors() && !validate(&b).has_errors());
        let mut compiler = Compiler::new(Allocation::default());
        let first = compiler.compile(&a).unwrap().clone();
        let incremental = compiler.compile(&b).unwrap().clone();
        let fresh = compile(&b, &first.allocation).unwrap();
        prop_assert_eq!(&incremental, &fresh);
        // Once more after a small edit of B: one filter entry's port.
        let mut c = b.clone();
        let entry = c.tenants.get_mut("t")
            .and_then(|t| t.filters.values_mut().next())
            .and_then(|f| f.entries.values_mut().next());
        if let Some(entry) = entry.filter(|e| e.protocol.has_ports()) {
            entry.destination_port = PortRange::single(PORTS + 1);
        }
        let incremental = compiler.compile(&c).unwrap().clone();
        let fresh = compile(&c, &incremental.allocation).unwrap();
        prop_assert_eq!(incremental, fresh);
    }
}
