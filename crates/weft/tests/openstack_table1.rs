//! The seed's Table 1 built with the real `openstack` CLI only: three networks with a
//! subnet each, router rt1 with interfaces on NW-A's and NW-B's subnets, and seven ports
//! bound to com1 and com2 (`openstack port create --host`). The six rows are checked with
//! real ICMP, TCP and UDP between the ports' namespaces: A talks to C, D, F and G (same
//! network, or through rt1) and to neither B nor E (NW-C). openstacksdk reads the ports
//! back as Terraform's provider would. Then everything is deleted in order and nothing is
//! left: no endpoint, namespace or nft element of a port. Root (namespaces); skips loudly
//! otherwise, and without the clients (`scripts/python-clients.sh`) skips loudly outside
//! CI.
#![allow(clippy::unwrap_used)] // tests fail loudly

#[macro_use]
mod common;

use common::openstack::{
    OpenStackCluster, TABLE1_NETWORKS, TABLE1_PORTS, assert_installed, assert_nothing_left,
    check_table1, clients, table1_endpoints,
};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

/// `openstack ARGS` against the cluster.
fn os_output(os: &OpenStackCluster, openstack: &Path, args: &[&str]) -> std::process::Output {
    os.command(openstack)
        .args(["--os-cloud", "weft"])
        .args(args)
        .output()
        .unwrap()
}

/// `openstack ARGS` that fails: its stderr.
fn os_fails(os: &OpenStackCluster, openstack: &Path, args: &[&str]) -> String {
    let out = os_output(os, openstack, args);
    assert!(
        !out.status.success(),
        "openstack {} should fail",
        args.join(" ")
    );
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// `openstack ARGS` against the cluster; stdout, or a panic naming stderr.
fn os_run(os: &OpenStackCluster, openstack: &Path, args: &[&str]) -> String {
    let out = os_output(os, openstack, args);
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
    let Some((openstack, python)) = clients("seed_table1_through_the_openstack_cli_real_packets")
    else {
        return;
    };
    let os = OpenStackCluster::new("ostab1");
    let c = &os.c;
    let run = |args: &[&str]| os_run(&os, &openstack, args);

    for (net, cidr) in TABLE1_NETWORKS {
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
    let fails = |args: &[&str]| os_fails(&os, &openstack, args);
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
    for (port, net, host) in TABLE1_PORTS {
        run(&["port", "create", "--network", net, "--host", host, port]);
        let shown = run(&["port", "show", port, "-f", "value", "-c", "binding_host_id"]);
        assert_eq!(shown, host);
    }
    c.wait_endpoints_ready();
    // openstacksdk (what Terraform's provider does in Go): a port by id, the router's.
    let sdk = os
        .command(&python)
        .arg("-c")
        .arg(
            r#"
import openstack
conn = openstack.connect(cloud="weft")
rt = conn.network.find_router("rt1")
owned = list(conn.network.ports(device_id=rt.id))
assert len(owned) == 2 and all(p.device_owner == "network:router_interface" for p in owned), owned
pa = conn.network.find_port("A")
again = conn.network.get_port(pa.id)
assert again.binding_host_id == "com1" and again.status == "ACTIVE", again
assert again.fixed_ips[0]["ip_address"].startswith("10.1."), again.fixed_ips
print("sdk ok")
"#,
        )
        .output()
        .unwrap();
    assert!(
        sdk.status.success(),
        "openstacksdk: {}{}",
        String::from_utf8_lossy(&sdk.stdout),
        String::from_utf8_lossy(&sdk.stderr)
    );
    // Each port's address as the CLI shows it, then its endpoint and real packets.
    let ips: BTreeMap<String, IpAddr> = TABLE1_PORTS
        .iter()
        .map(|(port, _, _)| {
            let shown = run(&["port", "show", port, "-f", "json", "-c", "fixed_ips"]);
            let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
            let ip = shown["fixed_ips"][0]["ip_address"].as_str().unwrap();
            ((*port).to_string(), ip.parse().unwrap())
        })
        .collect();
    let ports = table1_endpoints(c, &ips);
    check_table1(&ports);
    let ports: Vec<_> = ports.into_values().collect();
    assert_installed(c, &ports);

    // Everything away, in order.
    for (port, _, _) in TABLE1_PORTS {
        run(&["port", "delete", port]);
    }
    run(&["router", "remove", "subnet", "rt1", "SN-A"]);
    run(&["router", "remove", "subnet", "rt1", "SN-B"]);
    run(&["router", "delete", "rt1"]);
    for (net, _) in TABLE1_NETWORKS {
        run(&["subnet", "delete", &format!("SN-{}", &net[3..])]);
        run(&["network", "delete", net]);
    }
    assert_eq!(run(&["router", "list", "-f", "value"]), "");
    assert_eq!(run(&["network", "list", "-f", "value"]), "");
    assert_eq!(run(&["port", "list", "-f", "value"]), "");
    assert_nothing_left(c, &ports);
}
