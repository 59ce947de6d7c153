//! The control plane end to end, as processes: `weft server` and one `weft agent` per
//! node namespace, real packets between real endpoint namespaces. Needs root.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

#[macro_use]
mod common;

use common::{ProcCluster, THREE_TIER, wait_until, weft};
use std::io::{Read, Write};
use std::net::IpAddr;
use std::time::Duration;
use weft_fabric::probe::{self, EchoServer};

/// web, app and db endpoints of the three-tier example on two nodes, with echo servers.
fn three_tier(c: &ProcCluster) -> (Vec<EchoServer>, [(String, IpAddr); 3]) {
    c.apply(THREE_TIER);
    let web = c.endpoint("web-1", "com1", "shop/store/web");
    let app = c.endpoint("app-1", "com2", "shop/store/app");
    let db = c.endpoint("db-1", "com2", "shop/store/db");
    c.wait_endpoints_ready();
    let servers = vec![
        EchoServer::start(&app.0, 8080).unwrap(),
        EchoServer::start(&db.0, 5432).unwrap(),
    ];
    (servers, [web, app, db])
}

fn echo(stream: &mut std::net::TcpStream, text: &[u8]) {
    stream.write_all(text).unwrap();
    let mut buf = vec![0u8; text.len()];
    stream.read_exact(&mut buf).unwrap();
    assert_eq!(buf, text);
}

#[test]
fn agents_killed_and_restarted_keep_streams_and_tables() {
    require_root!();
    let mut c = ProcCluster::new("ak");
    let (_servers, [web, app, db]) = three_tier(&c);
    assert!(
        probe::tcp_ok(&web.0, app.1, 8080),
        "web -> app 8080 must connect"
    );
    assert!(
        !probe::tcp_ok(&web.0, db.1, 5432),
        "web -> db 5432 must be blocked"
    );

    let mut stream = probe::tcp_connect(&web.0, app.1, 8080).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    echo(&mut stream, b"before the restart");
    let before = c.rulesets();

    for node in ["com1", "com2"] {
        c.kill_agent(node);
    }
    echo(&mut stream, b"while the agents are down");
    for node in ["com1", "com2"] {
        c.start_agent(node);
    }
    c.wait_nodes_ready();
    std::thread::sleep(Duration::from_secs(2)); // let them reconcile and report
    echo(&mut stream, b"after the restart");
    assert_eq!(
        before,
        c.rulesets(),
        "the agents' restart changed the installed tables"
    );
    assert!(
        !probe::tcp_ok(&web.0, db.1, 5432),
        "policy must still hold after the restart"
    );
}

#[test]
fn controller_killed_keeps_the_fabric_and_new_policy_applies_when_back() {
    require_root!();
    let mut c = ProcCluster::new("ck");
    let (_servers, [web, app, db]) = three_tier(&c);
    let before = c.rulesets();

    c.kill_server();
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        probe::tcp_ok(&web.0, app.1, 8080),
        "web -> app must keep working without a controller"
    );
    assert!(
        !probe::tcp_ok(&web.0, db.1, 5432),
        "web -> db must stay blocked without a controller"
    );
    assert_eq!(
        before,
        c.rulesets(),
        "tables changed while the controller was down"
    );

    c.start_server();
    let opened = THREE_TIER.replace(
        "consumes      = [\"web-to-app\"]",
        "consumes      = [\"web-to-app\", \"app-to-db\"]",
    );
    assert_ne!(
        opened, THREE_TIER,
        "the example changed: update this test's edit"
    );
    c.apply(&opened);
    wait_until(
        "the new contract web -> db to be enforced",
        Duration::from_secs(30),
        || probe::tcp_ok(&web.0, db.1, 5432),
    );
}

#[test]
fn demo_exits_0_and_leaves_nothing_behind() {
    require_root!();
    let out = weft().arg("demo").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "weft demo failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("every row matches"), "{stdout}");
    let left = weft_fabric::netns::list_with_prefix("weft-demo-");
    assert!(
        left.is_empty(),
        "weft demo left namespaces behind: {left:?}"
    );
}
