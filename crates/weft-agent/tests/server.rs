//! End to end with the real controller (`weft_server::serve`): the admin applies the
//! three-tier policy and creates endpoints through the API; the agents register with
//! the join token, create the endpoint namespaces the controller named, install the
//! fabric and report; the controller then shows the endpoints Ready.
#![allow(clippy::unwrap_used)]

mod common;
use common::{Agent, THREE_TIER, config, runtime, wait_until};
use std::time::Duration;
use weft_api::{Client, EndpointRequest, EndpointState};
use weft_fabric::probe::{self, EchoServer};
use weft_fabric::testbed::Testbed;

#[test]
fn agents_with_the_real_controller() {
    require_root!();
    let rt = runtime();
    let mut bed = Testbed::new("agtsv", &["n1", "n2"]).unwrap();
    let data = tempfile::tempdir().unwrap();
    let server = rt
        .block_on(weft_server::serve(weft_server::ServerConfig::new(
            "127.0.0.1:0".parse().unwrap(),
            data.path(),
        )))
        .unwrap();
    let admin = Client::new(&server.base_url(), Some(server.admin_token().to_string()));
    let model = weft_model::parse_hcl("three-tier.hcl", THREE_TIER).unwrap();
    rt.block_on(admin.apply(&model)).unwrap();

    let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut agents = Vec::new();
    for (i, n) in ["n1", "n2"].iter().enumerate() {
        let spec = bed.node(n).unwrap().clone();
        let cfg = config(
            &server.base_url(),
            server.join_token(),
            n,
            Some(&spec),
            &spec.vrf_netns_prefix,
            dirs[i].path(),
        );
        agents.push(Agent::start(&rt, cfg));
    }
    wait_until(Duration::from_secs(20), "both nodes registered", || {
        rt.block_on(admin.nodes()).is_ok_and(|n| n.len() == 2)
    });
    for (name, node, epg, ip) in [
        ("web", "n1", "shop/store/web", "10.1.0.11"),
        ("app", "n2", "shop/store/app", "10.1.0.21"),
        ("db", "n2", "shop/store/db", "10.1.0.31"),
    ] {
        let ep = rt
            .block_on(admin.create_endpoint(&EndpointRequest {
                ip: Some(ip.parse().unwrap()),
                ..EndpointRequest::new(name, epg.parse().unwrap(), node)
            }))
            .unwrap();
        assert_eq!(
            ep.netns,
            format!("{}-ep-{name}", bed.node(node).unwrap().vrf_netns_prefix)
        );
    }
    wait_until(Duration::from_secs(20), "every endpoint Ready", || {
        rt.block_on(admin.endpoints()).is_ok_and(|eps| {
            eps.len() == 3 && eps.iter().all(|e| e.status.state == EndpointState::Ready)
        })
    });
    let eps = rt.block_on(admin.endpoints()).unwrap();
    let find = |n: &str| eps.iter().find(|e| e.name == n).unwrap().clone();
    let (web, app, db) = (find("web"), find("app"), find("db"));
    let servers = [
        EchoServer::start(&app.netns, 8080).unwrap(),
        EchoServer::start(&db.netns, 5432).unwrap(),
    ];
    assert!(probe::tcp_ok(&web.netns, app.ip, 8080), "web → app:8080");
    assert!(
        !probe::tcp_ok(&web.netns, db.ip, 5432),
        "web → db:5432 blocked"
    );
    assert!(probe::tcp_ok(&app.netns, db.ip, 5432), "app → db:5432");

    drop(servers);
    for a in agents {
        a.shutdown(&rt).unwrap();
    }
    rt.block_on(server.shutdown());
    bed.destroy().unwrap();
    assert!(bed.leftovers().is_empty(), "{:?}", bed.leftovers());
}
