//! The seed's Table 1 through openstacksdk's Python API (`openstack-sdk/table1.py`):
//! three networks with a subnet each, router rt1 with interfaces on NW-A and NW-B, and
//! seven ports bound to com1 and com2 (`binding:host_id`). The six rows are checked with
//! real ICMP, TCP and UDP between the ports' namespaces; then the script deletes
//! everything in order (router interfaces, router, ports, subnets, networks) and nothing
//! is left behind: no endpoint in weft's API, no namespace of a port, no nft element
//! naming a port, its address or its MAC. Root (namespaces); without the clients
//! (`scripts/python-clients.sh`) it skips loudly outside CI and fails in CI.
#![allow(clippy::unwrap_used)] // tests fail loudly

#[macro_use]
mod common;

use common::openstack::{
    OpenStackCluster, assert_installed, assert_nothing_left, check_table1, clients,
    table1_endpoints,
};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// `python table1.py STEP` against the cluster: its last line of output.
fn script(os: &OpenStackCluster, python: &Path, step: &str) -> String {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/openstack-sdk/table1.py");
    let out = os.command(python).arg(script).arg(step).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "table1.py {step}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout.lines().last().unwrap_or_default().to_string()
}

#[test]
fn seed_table1_through_openstacksdk_real_packets_and_nothing_left() {
    require_root!();
    let Some((_, python)) = clients("seed_table1_through_openstacksdk") else {
        return;
    };
    let os = OpenStackCluster::new("ossdk1");
    let built = script(&os, &python, "build");
    let ips: BTreeMap<String, IpAddr> = serde_json::from_str(&built).unwrap();
    os.c.wait_endpoints_ready();
    let ports = table1_endpoints(&os.c, &ips);
    check_table1(&ports);
    let ports: Vec<_> = ports.into_values().collect();
    assert_installed(&os.c, &ports);

    assert_eq!(script(&os, &python, "teardown"), "teardown ok");
    assert_nothing_left(&os.c, &ports);
}
