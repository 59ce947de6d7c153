//! The paper's open problem 1: web, app and db of one application in one cluster and
//! one bridge domain, separated by contracts.

mod common;
use common::{Cluster, THREE_TIER_HCL};
use weft_fabric::probe::EchoServer;

#[test]
fn three_tier_in_one_cluster() {
    require_root!();
    let mut c = Cluster::new("3tier", &["com1", "com2"], THREE_TIER_HCL);
    c.endpoint("web1", "com1", "shop/store/web", "10.1.0.11");
    c.endpoint("web2", "com2", "shop/store/web", "10.1.0.12");
    c.endpoint("app1", "com1", "shop/store/app", "10.1.0.21");
    c.endpoint("app2", "com2", "shop/store/app", "10.1.0.22");
    c.endpoint("db1", "com1", "shop/store/db", "10.1.0.31");
    c.endpoint("db2", "com2", "shop/store/db", "10.1.0.32");
    c.reconcile();
    let mut servers = Vec::new();
    for ep in ["web1", "web2", "app1", "app2", "db1", "db2"] {
        for port in [8080, 5432] {
            servers.push(EchoServer::start(&c.ns(ep), port).expect("server"));
        }
    }
    let mut wrong = Vec::new();
    let mut expect = |what: &str, got: bool, want: bool| {
        if got != want {
            wrong.push(format!("{what}: expected {want}, got {got}"));
        }
    };
    for (web, app, db) in [
        ("web1", "app1", "db1"),
        ("web1", "app2", "db2"),
        ("web2", "app1", "db1"),
    ] {
        expect(
            &format!("{web} -> {app} tcp/8080"),
            c.tcp(web, app, 8080),
            true,
        );
        expect(
            &format!("{web} -> {db} tcp/5432"),
            c.tcp(web, db, 5432),
            false,
        );
        expect(
            &format!("{app} -> {db} tcp/5432"),
            c.tcp(app, db, 5432),
            true,
        );
        expect(
            &format!("{db} -> {web} tcp/8080"),
            c.tcp(db, web, 8080),
            false,
        );
        // Replies of web -> app flow (the echo above), but app may not open to web.
        expect(
            &format!("{app} -> {web} tcp/8080 (against the contract)"),
            c.tcp(app, web, 8080),
            false,
        );
        expect(
            &format!("{web} -> {app} tcp/5432 (not in the contract)"),
            c.tcp(web, app, 5432),
            false,
        );
        expect(
            &format!("{web} -> {app} udp/8080 (not in the contract)"),
            c.udp(web, app, 8080),
            false,
        );
    }
    // Members of one EPG talk freely (no isolation configured).
    expect("web1 -> web2 tcp/8080", c.tcp("web1", "web2", 8080), true);
    assert!(
        wrong.is_empty(),
        "three-tier mismatches:\n{}",
        wrong.join("\n")
    );
    drop(servers);
    c.finish();
}
