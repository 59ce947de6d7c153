//! The seed's Table 1 built with the real `openstack` CLI only: three networks with a
//! subnet each, router rt1 with interfaces on NW-A's and NW-B's subnets, and ports bound
//! to com1 and com2 (`openstack port create --host`). Real packets between the ports'
//! namespaces: A and B talk, C talks to neither. openstacksdk reads the ports back as
//! Terraform's provider would. Then everything is deleted in order and no endpoint is
//! left. Root (namespaces); skips loudly otherwise, and without the clients
//! (`scripts/python-clients.sh`) skips loudly outside CI.
#![allow(clippy::unwrap_used)] // tests fail loudly

#[macro_use]
mod common;

use common::{ProcCluster, wait_until};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use weft_fabric::probe::ping_ok;

/// `openstack ARGS` against the cluster.
fn os_output(home: &Path, openstack: &Path, args: &[&str]) -> std::process::Output {
    Command::new(openstack)
        .args(["--os-cloud", "weft"])
        .args(args)
        .env("OS_CLIENT_CONFIG_FILE", home.join("clouds.yaml"))
        .env("HOME", home)
        .output()
        .unwrap()
}

/// `openstack ARGS` that fails: its stderr.
fn os_fails(home: &Path, openstack: &Path, args: &[&str]) -> String {
    let out = os_output(home, openstack, args);
    assert!(
        !out.status.success(),
        "openstack {} should fail",
        args.join(" ")
    );
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// `openstack ARGS` against the cluster; stdout, or a panic naming stderr.
fn os(home: &Path, openstack: &Path, args: &[&str]) -> String {
    let out = os_output(home, openstack, args);
    assert!(
        out.status.success(),
        "openstack {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn seed_table1_through_the_openstack_cli_real_packets() {
    require_root!();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let openstack = root.join("target/pyvenv/bin/openstack");
    if !openstack.exists() {
        let why = "python-openstackclient is not installed: run scripts/python-clients.sh";
        assert!(std::env::var_os("CI").is_none(), "{why}");
        eprintln!("\n*** SKIPPED seed_table1_through_the_openstack_cli_real_packets: {why} ***\n");
        return;
    }
    let os_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let os_url = format!("http://127.0.0.1:{os_port}");
    let c = ProcCluster::with_server_args(
        "ostab1",
        &["--openstack-listen", &format!("127.0.0.1:{os_port}")],
    );
    let admin = std::fs::read_to_string(c.dir.join("server").join("admin.token")).unwrap();
    let made = Command::new("curl")
        .args(["-sf", "-X", "POST", "-H", "Content-Type: application/json"])
        .args(["-H", &format!("Authorization: Bearer {}", admin.trim())])
        .args(["-d", r#"{"name":"lab","password":"pw","project":"lab"}"#])
        .arg(format!("http://127.0.0.1:{}/v1/openstack/users", c.port))
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(made.success(), "creating the Keystone user");
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join("clouds.yaml"),
        format!(
            "clouds:\n  weft:\n    auth:\n      auth_url: {os_url}/v3\n      username: lab\n      password: pw\n      project_name: lab\n      user_domain_name: Default\n      project_domain_name: Default\n    region_name: RegionOne\n    identity_api_version: 3\n"
        ),
    )
    .unwrap();
    let run = |args: &[&str]| os(home.path(), &openstack, args);

    for (net, cidr) in [
        ("NW-A", "10.1.0.0/24"),
        ("NW-B", "10.2.0.0/24"),
        ("NW-C", "10.3.0.0/24"),
    ] {
        run(&["network", "create", net]);
        let subnet = format!("SN-{}", &net[3..]);
        run(&[
            "subnet",
            "create",
            "--network",
            net,
            "--subnet-range",
            cidr,
            &subnet,
        ]);
    }
    run(&["router", "create", "rt1"]);
    run(&["router", "add", "subnet", "rt1", "SN-A"]);
    run(&["router", "add", "subnet", "rt1", "SN-B"]);
    let fails = |args: &[&str]| os_fails(home.path(), &openstack, args);
    // The CLI shows the router's interfaces and Neutron's refusals.
    let shown = run(&["router", "show", "rt1", "-f", "json"]);
    assert_eq!(shown.matches("\"subnet_id\"").count(), 2, "{shown}");
    let stderr = fails(&["router", "delete", "rt1"]);
    assert!(stderr.contains("still has ports"), "{stderr}");
    let stderr = fails(&["router", "add", "subnet", "rt1", "SN-A"]);
    assert!(stderr.contains("already has a port on subnet"), "{stderr}");
    let stderr = fails(&["router", "create", "--external-gateway", "NW-C", "rt2"]);
    assert!(stderr.contains("north-south"), "{stderr}");
    let stderr = fails(&["port", "create", "--network", "NW-A", "unplaced"]);
    assert!(stderr.contains("binding:host_id"), "{stderr}");
    let stderr = fails(&["network", "delete", "NW-A"]);
    assert!(stderr.contains("in use"), "{stderr}");
    let ports = [
        ("pa1", "NW-A", "com1"),
        ("pb1", "NW-B", "com2"),
        ("pc1", "NW-C", "com1"),
    ];
    for (port, net, host) in ports {
        run(&["port", "create", "--network", net, "--host", host, port]);
        let shown = run(&["port", "show", port, "-f", "value", "-c", "binding_host_id"]);
        assert_eq!(shown, host);
    }
    c.wait_endpoints_ready();
    // openstacksdk (what Terraform's provider does in Go): a port by id, the router's.
    let sdk = Command::new(root.join("target/pyvenv/bin/python"))
        .arg("-c")
        .arg(
            r#"
import openstack
conn = openstack.connect(cloud="weft")
rt = conn.network.find_router("rt1")
owned = list(conn.network.ports(device_id=rt.id))
assert len(owned) == 2 and all(p.device_owner == "network:router_interface" for p in owned), owned
pa = conn.network.find_port("pa1")
again = conn.network.get_port(pa.id)
assert again.binding_host_id == "com1" and again.status == "ACTIVE", again
assert again.fixed_ips[0]["ip_address"].startswith("10.1."), again.fixed_ips
print("sdk ok")
"#,
        )
        .env("OS_CLIENT_CONFIG_FILE", home.path().join("clouds.yaml"))
        .env("HOME", home.path())
        .output()
        .unwrap();
    assert!(
        sdk.status.success(),
        "openstacksdk: {}{}",
        String::from_utf8_lossy(&sdk.stdout),
        String::from_utf8_lossy(&sdk.stderr)
    );
    let endpoints = c.rt.block_on(c.client.endpoints()).unwrap();
    assert_eq!(endpoints.len(), 3, "{endpoints:?}");
    let find = |prefix: &str| {
        let e = endpoints
            .iter()
            .find(|e| e.ip.to_string().starts_with(prefix))
            .unwrap();
        let IpAddr::V4(ip) = e.ip else {
            panic!("an IPv4 port")
        };
        (e.netns.clone(), ip)
    };
    let (a, b, cc) = (find("10.1."), find("10.2."), find("10.3."));
    let talks = |from: &(String, Ipv4Addr), to: &(String, Ipv4Addr)| ping_ok(&from.0, to.1);
    wait_until("A reaches B through rt1", Duration::from_secs(30), || {
        talks(&a, &b) && talks(&b, &a)
    });
    for (from, to) in [(&a, &cc), (&cc, &a), (&b, &cc), (&cc, &b)] {
        assert!(!talks(from, to), "{} reached {}", from.0, to.1);
    }

    // Everything away, in order.
    for (port, _, _) in ports {
        run(&["port", "delete", port]);
    }
    run(&["router", "remove", "subnet", "rt1", "SN-A"]);
    run(&["router", "remove", "subnet", "rt1", "SN-B"]);
    run(&["router", "delete", "rt1"]);
    for net in ["NW-A", "NW-B", "NW-C"] {
        run(&["subnet", "delete", &format!("SN-{}", &net[3..])]);
        run(&["network", "delete", net]);
    }
    assert_eq!(run(&["router", "list", "-f", "value"]), "");
    assert_eq!(run(&["network", "list", "-f", "value"]), "");
    assert_eq!(run(&["port", "list", "-f", "value"]), "");
    assert!(c.rt.block_on(c.client.endpoints()).unwrap().is_empty());
}
