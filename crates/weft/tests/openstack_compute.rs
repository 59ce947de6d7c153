//! Nova and Glance end to end with the real clients on a process cluster (com1, com2)
//! and real containers: the `openstack` CLI registers a busybox image (a local image
//! built FROM scratch with Debian's static busybox; no registry is reachable) and lists
//! it, builds the seed's networks (NW-A and NW-B on router rt1, NW-C alone), and
//! `server create --image busybox --flavor m1.tiny --network nw-a --availability-zone
//! nova:com2 --property master=10.0.0.5 --wait` reaches ACTIVE with its address; `env`
//! in the container shows `master=10.0.0.5`; with real TCP the server reaches a port of
//! NW-B and is reached from it, and nothing of NW-C either way; `network delete` of its
//! network is refused while it runs; `server delete --wait` removes the container, the
//! endpoint and its namespace. A server on two networks has an interface in each (the
//! default route through the first), and each network's policy holds on its own
//! interface. openstacksdk's Python API sees an unknown image and an
//! unknown flavor refused with Nova's messages, servers in ERROR with the fault that says
//! why (an image no node holds, a flavor no node has room for), and boots and deletes a
//! server too.
//! Root (namespaces) and Docker; without the clients (`scripts/python-clients.sh`) it
//! skips loudly outside CI and fails in CI.
#![allow(clippy::unwrap_used)] // tests fail loudly

#[macro_use]
mod common;

use common::docker::{
    ImageContainers, build_busybox_image, docker, process_env, wait_container_removed,
};
use common::nova::{Cli, address, container};
use common::openstack::{OpenStackCluster, clients};
use common::wait_until;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use weft_fabric::probe::{EchoServer, tcp_ok};

const IMAGE: &str = "weft-test/os-busybox:latest";
/// The port every echo server listens on: the image's command, and the ports' probes.
const ECHO: u16 = 7007;

/// Whether a TCP echo through `nc` from inside `container` to `ip` comes back.
fn container_reaches(container: &str, ip: IpAddr) -> bool {
    let (ok, out) = docker(&[
        "exec",
        container,
        "sh",
        "-c",
        &format!("echo weft-probe | nc -w 2 {ip} {ECHO}"),
    ]);
    ok && out.contains("weft-probe")
}

/// `python -c SCRIPT` against the cluster: stdout, or panics with stderr.
fn sdk(os: &OpenStackCluster, python: &Path, script: &str) -> String {
    let out = os.command(python).args(["-c", script]).output().unwrap();
    assert!(
        out.status.success(),
        "openstacksdk script failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn nova_servers_are_docker_tasks_in_their_networks_epg_with_the_real_clients() {
    require_root!();
    let Some((openstack, python)) = clients("nova_servers_are_docker_tasks") else {
        return;
    };
    // `FROM scratch` plus the static busybox, listening as a TCP echo server on [`ECHO`].
    build_busybox_image(
        IMAGE,
        &[],
        &["nc", "-ll", "-p", &ECHO.to_string(), "-e", "/bin/cat"],
    );
    // Removes this test's containers when it ends, passed or not: an agent killed with
    // its cluster leaves a stopped container behind.
    let _containers = ImageContainers::new(IMAGE);
    let os = OpenStackCluster::new("osnova");
    let cli = Cli {
        os: &os,
        openstack,
        cloud: "weft",
    };

    // The image: registered through Glance with its Docker reference, then listed.
    let image = cli.image_create("busybox", IMAGE, &[]);
    let image_id = image["id"].as_str().unwrap().to_string();
    let images = cli.json(&["image", "list"]);
    assert!(
        images
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["Name"] == "busybox" && i["ID"] == image_id.as_str()),
        "{images}"
    );
    let zones = cli.json(&["availability", "zone", "list", "--compute", "--long"]);
    for node in ["com1", "com2"] {
        assert!(
            zones
                .as_array()
                .unwrap()
                .iter()
                .any(|z| z["Zone Name"] == "nova" && z["Host Name"] == node),
            "{zones}"
        );
    }
    let flavors = cli.json(&["flavor", "list"]);
    assert!(
        flavors
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["Name"] == "m1.tiny"),
        "{flavors}"
    );

    // The seed's networks: NW-A and NW-B on router rt1, NW-C alone.
    for (net, cidr) in [
        ("nw-a", "10.1.0.0/24"),
        ("nw-b", "10.2.0.0/24"),
        ("nw-c", "10.3.0.0/24"),
    ] {
        cli.run(&["network", "create", net]);
        cli.run(&[
            "subnet",
            "create",
            "--network",
            net,
            "--subnet-range",
            cidr,
            &format!("sn-{net}"),
        ]);
    }
    cli.run(&["router", "create", "rt1"]);
    cli.run(&["router", "add", "subnet", "rt1", "sn-nw-a"]);
    cli.run(&["router", "add", "subnet", "rt1", "sn-nw-b"]);
    // A port on NW-B (reachable through the router) and one on NW-C (not), on com1,
    // each with an echo server in its namespace; like the server, they are in the
    // project's default group, which admits its members: the contracts decide.
    let mut probes = Vec::new();
    for (port, net) in [("pb", "nw-b"), ("pc", "nw-c")] {
        let created = cli.json(&["port", "create", "--network", net, "--host", "com1", port]);
        let ip: IpAddr = created["fixed_ips"][0]["ip_address"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        probes.push((port, ip));
    }
    os.c.wait_endpoints_ready();
    let endpoints = os.c.rt.block_on(os.c.client.endpoints()).unwrap();
    let netns_of = |ip: IpAddr| {
        endpoints
            .iter()
            .find(|e| e.ip == ip)
            .map(|e| e.netns.clone())
            .unwrap()
    };
    let (pb_ip, pc_ip) = (probes[0].1, probes[1].1);
    let (pb_ns, pc_ns) = (netns_of(pb_ip), netns_of(pc_ip));
    let _echo_b = EchoServer::start(&pb_ns, ECHO).unwrap();
    let _echo_c = EchoServer::start(&pc_ns, ECHO).unwrap();

    // The server.
    let started = Instant::now();
    let server = cli.json(&[
        "server",
        "create",
        "--image",
        "busybox",
        "--flavor",
        "m1.tiny",
        "--network",
        "nw-a",
        "--availability-zone",
        "nova:com2",
        "--property",
        "master=10.0.0.5",
        "--wait",
        "vm1",
    ]);
    eprintln!(
        "server create --wait: ACTIVE after {} ms",
        started.elapsed().as_millis()
    );
    assert_eq!(server["status"], "ACTIVE", "{server}");
    let shown = cli.json(&["server", "show", "vm1"]);
    assert_eq!(shown["status"], "ACTIVE", "{shown}");
    let ip = address(&shown, Some("nw-a"));
    assert!(ip.to_string().starts_with("10.1.0."), "{shown}");
    assert_eq!(shown["accessIPv4"], ip.to_string(), "{shown}");
    assert_eq!(shown["OS-EXT-SRV-ATTR:host"], "com2", "{shown}");
    let container = container(&shown);
    assert!(container.starts_with("weft-server-"), "{shown}");
    let listed = cli.json(&["server", "list"]);
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["Name"] == "vm1" && s["Status"] == "ACTIVE" && s["Image"] == "busybox"),
        "{listed}"
    );

    // Its container: metadata as environment variables of the server's process (read
    // from /proc: a server started on a warm container has it there, not in the engine's
    // configuration).
    let env = process_env(&container);
    assert!(
        env.iter().any(|l| l == "master=10.0.0.5"),
        "no master=10.0.0.5 in {container}'s environment:\n{env:?}"
    );
    // Its endpoint, in NW-A's EPG, on com2, with the server's address.
    let task =
        os.c.rt
            .block_on(os.c.client.endpoints())
            .unwrap()
            .into_iter()
            .find(|e| e.ip == ip)
            .unwrap();
    assert_eq!(task.node, "com2");
    assert_eq!(format!("weft-{}", task.name), container);

    // What NW-A's EPG may reach, with real TCP both ways: NW-B (router) yes, NW-C no.
    wait_until(
        "the server reaches NW-B's port and is reached from it",
        Duration::from_secs(30),
        || container_reaches(&container, pb_ip) && tcp_ok(&pb_ns, ip, ECHO),
    );
    assert!(
        !container_reaches(&container, pc_ip),
        "the server reached NW-C's port"
    );
    assert!(!tcp_ok(&pc_ns, ip, ECHO), "NW-C's port reached the server");
    eprintln!("server vm1 ({ip}): NW-B reachable both ways, NW-C refused both ways");

    // A server on an existing port (`--port`): it has the port's address and node, the
    // port names it as its device, NW-A's policy holds; the port outlives it.
    let made = cli.json(&[
        "port",
        "create",
        "--network",
        "nw-a",
        "--host",
        "com1",
        "pa",
    ]);
    let pa_ip: IpAddr = made["fixed_ips"][0]["ip_address"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let pa_id = made["id"].as_str().unwrap().to_string();
    let on_port = cli.json(&[
        "server", "create", "--image", "busybox", "--flavor", "m1.tiny", "--port", "pa", "--wait",
        "vm-port",
    ]);
    assert_eq!(on_port["status"], "ACTIVE", "{on_port}");
    let shown_port = cli.json(&["server", "show", "vm-port"]);
    assert_eq!(address(&shown_port, Some("nw-a")), pa_ip, "{shown_port}");
    assert_eq!(shown_port["OS-EXT-SRV-ATTR:host"], "com1", "{shown_port}");
    let port_shown = cli.json(&["port", "show", "pa"]);
    assert_eq!(port_shown["device_id"], shown_port["id"], "{port_shown}");
    assert_eq!(port_shown["device_owner"], "compute:nova", "{port_shown}");
    let port_container = common::nova::container(&shown_port);
    wait_until(
        "the server on port pa reaches NW-B's port and is reached from it",
        Duration::from_secs(30),
        || container_reaches(&port_container, pb_ip) && tcp_ok(&pb_ns, pa_ip, ECHO),
    );
    assert!(
        !container_reaches(&port_container, pc_ip),
        "the server on pa reached NW-C's port"
    );
    let refused = cli.fails(&[
        "server", "create", "--image", "busybox", "--flavor", "m1.tiny", "--port", "pa", "vm-port2",
    ]);
    assert!(
        refused.contains("409") && refused.contains("in use"),
        "{refused}"
    );
    let refused = cli.fails(&["port", "delete", "pa"]);
    assert!(
        refused.contains("409") || refused.contains("in use"),
        "{refused}"
    );
    cli.run(&["server", "delete", "--wait", "vm-port"]);
    wait_container_removed(&port_container);
    let port_after = cli.json(&["port", "show", "pa"]);
    assert_eq!(port_after["id"], pa_id.as_str(), "{port_after}");
    assert_eq!(port_after["fixed_ips"][0]["ip_address"], pa_ip.to_string());
    assert_eq!(port_after["device_id"], "", "{port_after}");
    // A plain port again: its namespace is back, and reached through it.
    os.c.wait_endpoints_ready();
    let pa_ns =
        os.c.rt
            .block_on(os.c.client.endpoints())
            .unwrap()
            .into_iter()
            .find(|e| e.ip == pa_ip)
            .unwrap()
            .netns;
    // The agent makes it once the container (which had published its own under the
    // name) is gone.
    wait_until(
        "the detached port's namespace is made again",
        Duration::from_secs(30),
        || weft_fabric::netns::list_with_prefix("weft").contains(&pa_ns),
    );
    let echo_a = EchoServer::start(&pa_ns, ECHO).unwrap();
    wait_until(
        "the detached port pa answers NW-B's port",
        Duration::from_secs(30),
        || tcp_ok(&pb_ns, pa_ip, ECHO),
    );
    drop(echo_a);
    cli.run(&["port", "delete", "pa"]);
    eprintln!("server vm-port on port pa ({pa_ip}): ACTIVE, NW-A's policy, port kept after delete");

    // A fixed address (`--nic net-id=..,v4-fixed-ip=..`): the server has it, and NW-A's
    // policy holds for it.
    let nw_a_id = cli.json(&["network", "show", "nw-a"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let fixed = cli.json(&[
        "server",
        "create",
        "--image",
        "busybox",
        "--flavor",
        "m1.tiny",
        "--nic",
        &format!("net-id={nw_a_id},v4-fixed-ip=10.1.0.77"),
        "--wait",
        "vm-fixed",
    ]);
    assert_eq!(fixed["status"], "ACTIVE", "{fixed}");
    let fixed_ip: IpAddr = "10.1.0.77".parse().unwrap();
    assert_eq!(
        address(&cli.json(&["server", "show", "vm-fixed"]), Some("nw-a")),
        fixed_ip
    );
    wait_until(
        "NW-B's port reaches the server at its fixed address",
        Duration::from_secs(30),
        || tcp_ok(&pb_ns, fixed_ip, ECHO),
    );
    cli.run(&["server", "delete", "--wait", "vm-fixed"]);

    // Two networks (`--network nw-a --nic net-id=NW-C,v4-fixed-ip=..`): one container
    // with an interface in each, the default route only through the first; each
    // network's policy holds on its own interface; its ports are the server's; NW-C is
    // in use while it runs; delete removes both endpoints.
    let nw_c_id = cli.json(&["network", "show", "nw-c"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let multi = cli.json(&[
        "server",
        "create",
        "--image",
        "busybox",
        "--flavor",
        "m1.tiny",
        "--network",
        "nw-a",
        "--nic",
        &format!("net-id={nw_c_id},v4-fixed-ip=10.3.0.50"),
        "--availability-zone",
        "nova:com2",
        "--wait",
        "vm-multi",
    ]);
    assert_eq!(multi["status"], "ACTIVE", "{multi}");
    let shown_multi = cli.json(&["server", "show", "vm-multi"]);
    let (multi_a, multi_c) = (
        address(&shown_multi, Some("nw-a")),
        address(&shown_multi, Some("nw-c")),
    );
    assert!(multi_a.to_string().starts_with("10.1.0."), "{shown_multi}");
    assert_eq!(multi_c, "10.3.0.50".parse::<IpAddr>().unwrap());
    assert_eq!(
        shown_multi["accessIPv4"],
        multi_a.to_string(),
        "{shown_multi}"
    );
    let multi_container = common::nova::container(&shown_multi);
    // ACTIVE is the container running; its interfaces are plumbed into its namespace
    // once it is there.
    wait_until(
        "both interfaces in vm-multi's namespace",
        Duration::from_secs(30),
        || {
            docker(&["exec", &multi_container, "ip", "-o", "addr", "show"])
                .1
                .contains(" weft1 ")
        },
    );
    let (ok, addrs) = docker(&["exec", &multi_container, "ip", "-o", "addr", "show"]);
    assert!(ok, "{addrs}");
    assert!(
        addrs
            .lines()
            .any(|l| l.contains(" weft0 ") && l.contains(&format!(" {multi_a}/24 "))),
        "{addrs}"
    );
    assert!(
        addrs
            .lines()
            .any(|l| l.contains(" weft1 ") && l.contains(" 10.3.0.50/24 ")),
        "{addrs}"
    );
    let (ok, routes) = docker(&["exec", &multi_container, "ip", "route", "show"]);
    assert!(ok, "{routes}");
    let defaults: Vec<&str> = routes
        .lines()
        .filter(|l| l.starts_with("default"))
        .collect();
    assert_eq!(defaults, ["default via 10.1.0.1 dev weft0 "], "{routes}");
    // NW-C's own port talks to it on its NW-C interface, both ways, across nodes.
    wait_until(
        "the server reaches NW-C's port through weft1, and is reached from it",
        Duration::from_secs(30),
        || container_reaches(&multi_container, pc_ip) && tcp_ok(&pc_ns, multi_c, ECHO),
    );
    // NW-B reaches it on NW-A's address (the router's contract), never on NW-C's.
    wait_until(
        "NW-B's port reaches the server on its NW-A address",
        Duration::from_secs(30),
        || tcp_ok(&pb_ns, multi_a, ECHO),
    );
    assert!(
        !tcp_ok(&pb_ns, multi_c, ECHO),
        "NW-B's port reached the server's NW-C address"
    );
    let multi_id = shown_multi["id"].as_str().unwrap().to_string();
    let ports = cli.json(&["port", "list", "--server", "vm-multi", "--long"]);
    let mut port_ips: Vec<String> = ports
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["Fixed IP Addresses"].to_string())
        .collect();
    port_ips.sort();
    assert_eq!(port_ips.len(), 2, "{ports}");
    assert!(
        port_ips[0].contains(&multi_a.to_string()) && port_ips[1].contains("10.3.0.50"),
        "{ports}"
    );
    let port_c = cli.json(&[
        "port",
        "list",
        "--device-id",
        &multi_id,
        "--network",
        "nw-c",
    ]);
    assert_eq!(port_c.as_array().unwrap().len(), 1, "{port_c}");
    let refused = cli.fails(&["network", "delete", "nw-c"]);
    assert!(
        refused.contains("in use") || refused.contains("409"),
        "{refused}"
    );
    let multi_endpoints: Vec<weft_api::Endpoint> =
        os.c.rt
            .block_on(os.c.client.endpoints())
            .unwrap()
            .into_iter()
            .filter(|e| e.ip == multi_a || e.ip == multi_c)
            .collect();
    assert_eq!(multi_endpoints.len(), 2, "{multi_endpoints:?}");
    assert_eq!(multi_endpoints[0].netns, multi_endpoints[1].netns);
    cli.run(&["server", "delete", "--wait", "vm-multi"]);
    wait_container_removed(&multi_container);
    wait_until(
        "both endpoints of vm-multi are gone",
        Duration::from_secs(30),
        || {
            let endpoints = os.c.rt.block_on(os.c.client.endpoints()).unwrap();
            !endpoints
                .iter()
                .any(|e| multi_endpoints.iter().any(|m| m.name == e.name))
        },
    );
    eprintln!(
        "server vm-multi: {multi_a} on nw-a (default route), {multi_c} on nw-c; each network's policy holds"
    );

    // Its network is in use while it runs.
    let refused = cli.fails(&["network", "delete", "nw-a"]);
    assert!(
        refused.contains("in use") || refused.contains("409"),
        "{refused}"
    );

    // openstacksdk: unknown image and flavor refused with Nova's messages; a server of
    // its own booted and deleted.
    // An image no node holds.
    let absent = cli.image_create("absent", "weft-test/absent-image:latest", &[]);
    let absent_id = absent["id"].as_str().unwrap().to_string();
    let networks = cli.json(&["network", "show", "nw-a"]);
    let net_id = networks["id"].as_str().unwrap();
    let script = format!(
        r#"
import openstack
from openstack import exceptions
conn = openstack.connect(cloud="weft")
net = "{net_id}"
for image, flavor in (("00000000-0000-4000-8000-000000000000", "1"), ("{image_id}", "99")):
    try:
        conn.compute.create_server(name="bad", image_id=image, flavor_id=flavor, networks=[{{"uuid": net}}])
        raise SystemExit("created a server with image %s flavor %s" % (image, flavor))
    except exceptions.BadRequestException as e:
        print("refused:", e.status_code, e.details)
for name, image, flavor in (("noimage", "{absent_id}", "1"), ("nocapacity", "{image_id}", "4")):
    s = conn.compute.create_server(name=name, image_id=image, flavor_id=flavor, networks=[{{"uuid": net}}])
    try:
        conn.compute.wait_for_server(s, status="ACTIVE", failures=["ERROR"], wait=120)
        raise SystemExit("server %s became ACTIVE" % name)
    except exceptions.ResourceFailure:
        s = conn.compute.get_server(s.id)
        print("fault:", name, s.status, s.fault["code"], s.fault["message"])
    conn.compute.delete_server(s)
    conn.compute.wait_for_delete(s, wait=60)
s = conn.compute.create_server(name="vm2", image_id="{image_id}", flavor_id="1", networks=[{{"uuid": net}}], metadata={{"role": "agent"}})
s = conn.compute.wait_for_server(s, status="ACTIVE", wait=120)
print("active:", s.status, s.access_ipv4, sorted(s.addresses))
conn.compute.delete_server(s)
conn.compute.wait_for_delete(s, wait=60)
print("deleted")
"#
    );
    let out = sdk(&os, &python, &script);
    eprintln!("openstacksdk:\n{out}");
    assert!(
        out.contains("refused: 400") && out.contains("could not be found"),
        "{out}"
    );
    assert_eq!(out.matches("refused: 400").count(), 2, "{out}");
    assert!(
        out.contains("active: ACTIVE 10.1.0.") && out.contains("['nw-a']"),
        "{out}"
    );
    assert!(out.ends_with("deleted"), "{out}");
    assert!(
        out.lines().any(
            |l| l.starts_with("fault: noimage ERROR 500 image not found on node")
                && l.contains("weft-test/absent-image:latest")
        ),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("fault: nocapacity ERROR 500 No valid host was found.")),
        "{out}"
    );

    // Delete: the container, the endpoint and its namespace go.
    cli.run(&["server", "delete", "--wait", "vm1"]);
    wait_container_removed(&container);
    wait_until(
        "the endpoint and its namespace are gone",
        Duration::from_secs(30),
        || {
            let endpoints = os.c.rt.block_on(os.c.client.endpoints()).unwrap();
            !endpoints.iter().any(|e| e.name == task.name)
                && !weft_fabric::netns::list_with_prefix("weft").contains(&task.netns)
        },
    );
    assert_eq!(cli.json(&["server", "list"]), serde_json::json!([]));

    // Everything else goes, in order.
    for port in ["pb", "pc"] {
        cli.run(&["port", "delete", port]);
    }
    cli.run(&["router", "remove", "subnet", "rt1", "sn-nw-a"]);
    cli.run(&["router", "remove", "subnet", "rt1", "sn-nw-b"]);
    cli.run(&["router", "delete", "rt1"]);
    for net in ["nw-a", "nw-b", "nw-c"] {
        cli.run(&["network", "delete", net]);
    }
    cli.run(&["image", "delete", "busybox", "absent"]);
    // What is left are the host engine's images (the nodes report them), none registered.
    let left = cli.json(&["image", "list"]);
    assert!(
        left.as_array()
            .unwrap()
            .iter()
            .all(|i| i["ID"] != image_id.as_str() && i["Name"] != "absent"),
        "{left}"
    );
}
