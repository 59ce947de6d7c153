//! Per-instance privilege (the seed paper's open problem 4) and Nova's flavors end to end
//! with the real clients on a process cluster and real containers. The admin (weft's
//! admin token, which Keystone takes as its admin: `auth_type: v3token`) creates a flavor
//! with the seed paper's id `34af1383-...` and `--property weft:privileged=true`, and a
//! plain one with a random id; the project's user sees both. A server of the plain one
//! runs with that flavor's CPU and memory (the container's limits) and cannot add an
//! address to its loopback (`ip addr add` needs CAP_NET_ADMIN), in its log and with
//! `docker exec`. A privileged server (by the flavor, or by an image registered with
//! `--property weft:privileged=true`) is refused with Nova's 403 and the reason while the
//! project is not allowed, and nothing is created; once the admin allows it (`openstack
//! project set --tag weft:privileged lab`), `server create --flavor 34af1383-...` runs
//! and the same command succeeds in its container. `weft tenant privilege deny` then
//! refuses new ones again (the running one is named, and keeps running). Bad input gets
//! Nova's errors: a tenant's flavor create (403), vcpus 0 (400), a duplicate name (409),
//! an unknown `weft:` extra spec (400 naming it).
//! Root (namespaces) and Docker; without the clients (`scripts/python-clients.sh`) it
//! skips loudly outside CI and fails in CI.
#![allow(clippy::unwrap_used, clippy::too_many_lines)] // tests fail loudly

#[macro_use]
mod common;

use common::docker::{
    ImageContainers, build_busybox_image, docker_with_stderr, wait_container_removed,
};
use common::nova::{Cli, add_admin_cloud, container};
use common::openstack::{OpenStackCluster, clients};
use common::wait_until;
use serde_json::Value;
use std::time::{Duration, Instant};

const IMAGE: &str = "weft-test/os-priv-busybox:latest";
/// The seed paper's flavor id.
const PAPER_FLAVOR: &str = "34af1383-3836-4815-8060-503bc5d1b61b";
/// What needs CAP_NET_ADMIN: an address on the container's own loopback, in the
/// namespace weft made for its endpoint.
const NET_ADMIN: &str = "ip addr add 10.99.0.1/32 dev lo";

/// `openstack flavor create` of `name` with `vcpus`, `ram` (MiB) and no disk.
fn flavor_create<'a>(vcpus: &'a str, ram: &'a str, name: &'a str) -> [&'a str; 9] {
    [
        "flavor", "create", "--vcpus", vcpus, "--ram", ram, "--disk", "0", name,
    ]
}

/// `openstack server create` of `name` from `image` with `flavor` on `nw-p`, with
/// `--wait` when `wait`.
fn server_create<'a>(image: &'a str, flavor: &'a str, name: &'a str, wait: bool) -> Vec<&'a str> {
    let mut args = vec![
        "server",
        "create",
        "--image",
        image,
        "--flavor",
        flavor,
        "--network",
        "nw-p",
    ];
    if wait {
        args.push("--wait");
    }
    args.push(name);
    args
}

/// `weft tenant privilege VERB lab`: how it went, and its stdout.
fn tenant_privilege(os: &OpenStackCluster, verb: &str) -> (std::process::Output, String) {
    let out =
        os.c.cli()
            .args(["tenant", "privilege", verb, "lab"])
            .output()
            .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    (out, text)
}

/// Whether `text` (a CLI property column: a dict or "k='v'" text) says `key` is `value`.
fn has_property(shown: &Value, key: &str, value: &str) -> bool {
    match shown {
        Value::Object(map) => map.get(key).and_then(Value::as_str) == Some(value),
        Value::String(s) => s.contains(&format!("{key}='{value}'")),
        _ => false,
    }
}

/// The container of server `name` (its `OS-EXT-SRV-ATTR:instance_name`).
fn container_of(cli: &Cli, name: &str) -> String {
    let shown = cli.json(&["server", "show", name]);
    assert_eq!(shown["status"], "ACTIVE", "{shown}");
    container(&shown)
}

/// Whether [`NET_ADMIN`] succeeds with `docker exec` in `container`, and what it said.
fn net_admin(container: &str) -> (bool, String) {
    let mut args = vec!["exec", container];
    args.extend(NET_ADMIN.split_whitespace());
    docker_with_stderr(&args)
}

#[test]
fn privileged_servers_only_in_allowed_projects_and_custom_flavors_with_the_real_clients() {
    if std::env::var_os("CI").is_some() {
        assert!(
            nix::unistd::geteuid().is_root(),
            "CI runs this test as root (namespaces, Docker)"
        );
    }
    require_root!();
    let Some((openstack, _python)) = clients("privileged_servers_only_in_allowed_projects") else {
        return;
    };
    // `FROM scratch` plus the static busybox; the command tries [`NET_ADMIN`], says how
    // it went, and stays up.
    let command = format!(
        "if {NET_ADMIN}; then echo net-admin-ok; else echo net-admin-denied; fi; exec sleep 1000000"
    );
    build_busybox_image(IMAGE, &[], &["sh", "-c", &command]);
    // Removes this test's containers (those of its image) when the test ends.
    let _containers = ImageContainers::new(IMAGE);
    let os = OpenStackCluster::new("ospriv");
    // The admin's cloud: weft's admin token, which Keystone answers as its admin.
    add_admin_cloud(&os);
    let cli = Cli {
        os: &os,
        openstack: openstack.clone(),
        cloud: "weft",
    };
    let admin = Cli {
        os: &os,
        openstack,
        cloud: "weft-admin",
    };

    // ---- flavors: the admin's -------------------------------------------------------
    let refused = cli.fails(&flavor_create("1", "64", "mine"));
    assert!(
        refused.contains("os-flavor-manage:create") && refused.contains("403"),
        "{refused}"
    );
    let paper = admin.json(&[
        "flavor",
        "create",
        "--id",
        PAPER_FLAVOR,
        "--vcpus",
        "1",
        "--ram",
        "128",
        "--disk",
        "1",
        "--property",
        "weft:privileged=true",
        "m1.paper-root",
    ]);
    assert_eq!(paper["id"], PAPER_FLAVOR, "{paper}");
    assert!(
        has_property(&paper["properties"], "weft:privileged", "true"),
        "{paper}"
    );
    let plain = admin.json(&flavor_create("1", "96", "m1.plain96"));
    let plain_id = plain["id"].as_str().unwrap().to_string();
    assert_eq!(plain_id.len(), 36, "a UUID is made: {plain}");
    let shown = cli.json(&["flavor", "show", PAPER_FLAVOR]);
    assert_eq!(shown["name"], "m1.paper-root", "{shown}");
    assert!(
        has_property(&shown["properties"], "weft:privileged", "true"),
        "{shown}"
    );
    let listed = cli.json(&["flavor", "list"]);
    for name in ["m1.tiny", "m1.paper-root", "m1.plain96"] {
        assert!(
            listed.as_array().unwrap().iter().any(|f| f["Name"] == name),
            "{name} not in {listed}"
        );
    }
    // Bad input, with Nova's errors.
    let zero = admin.fails(&flavor_create("0", "64", "zero"));
    assert!(
        zero.contains("0 is less than the minimum of 1") && zero.contains("400"),
        "{zero}"
    );
    let twice = admin.fails(&flavor_create("1", "64", "m1.plain96"));
    assert!(
        twice.contains("Flavor with name m1.plain96 already exists.") && twice.contains("409"),
        "{twice}"
    );
    let unknown = admin.fails(&["flavor", "set", "--property", "weft:nope=1", "m1.plain96"]);
    assert!(unknown.contains("weft:nope"), "{unknown}");
    eprintln!("flavors: {PAPER_FLAVOR} (weft:privileged=true) and {plain_id}; bad input refused");

    // ---- a network and two images (one privileged by its property) -------------------
    cli.run(&["network", "create", "nw-p"]);
    cli.run(&[
        "subnet",
        "create",
        "--network",
        "nw-p",
        "--subnet-range",
        "10.61.0.0/24",
        "sn-p",
    ]);
    cli.image_create("busybox-p", IMAGE, &[]);
    cli.image_create("busybox-root", IMAGE, &["weft:privileged=true"]);
    let root_image = cli.json(&["image", "show", "busybox-root"]);
    let props = root_image["properties"].clone();
    assert!(
        has_property(&props, "weft:privileged", "true") || root_image["weft:privileged"] == "true",
        "{root_image}"
    );

    // ---- unprivileged: the custom flavor's limits, no CAP_NET_ADMIN -------------------
    let started = Instant::now();
    cli.run(&server_create("busybox-p", "m1.plain96", "vm-plain", true));
    eprintln!("vm-plain ACTIVE after {} ms", started.elapsed().as_millis());
    let plain_container = container_of(&cli, "vm-plain");
    let (_, limits) = docker_with_stderr(&[
        "inspect",
        "-f",
        "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}} {{.HostConfig.Privileged}}",
        &plain_container,
    ]);
    assert_eq!(
        limits.trim(),
        format!("{} 1000000000 false", 96 * 1024 * 1024),
        "the flavor's RAM and vCPUs are the container's limits"
    );
    let (ok, said) = net_admin(&plain_container);
    assert!(
        !ok,
        "{NET_ADMIN} succeeded in an unprivileged server: {said}"
    );
    eprintln!("vm-plain: `{NET_ADMIN}` refused: {}", said.trim());
    wait_until("vm-plain's log", Duration::from_secs(20), || {
        docker_with_stderr(&["logs", &plain_container])
            .1
            .contains("net-admin-")
    });
    assert!(
        docker_with_stderr(&["logs", &plain_container])
            .1
            .contains("net-admin-denied")
    );

    // ---- privileged, not allowed: 403 and nothing created -------------------------------
    let before = cli.json(&["server", "list"]);
    for (image, flavor) in [("busybox-p", PAPER_FLAVOR), ("busybox-root", "m1.tiny")] {
        let refused = cli.fails(&server_create(image, flavor, "vm-root", false));
        assert!(
            refused.contains("403") && refused.contains("may not run privileged tasks"),
            "{refused}"
        );
        eprintln!(
            "refused ({image}, {flavor}): {}",
            refused.lines().last().unwrap_or_default()
        );
    }
    assert_eq!(cli.json(&["server", "list"]), before);
    // A project cannot allow itself.
    let project = cli.fails(&["project", "set", "--tag", "weft:privileged", "lab"]);
    assert!(!project.is_empty());

    // ---- the admin allows the project through Keystone ------------------------------
    admin.run(&["project", "set", "--tag", "weft:privileged", "lab"]);
    let shown = admin.json(&["project", "show", "lab"]);
    assert_eq!(shown["weft:privileged"], "true", "{shown}");
    let (_, text) = tenant_privilege(&os, "show");
    assert!(
        text.contains("tenant lab: privileged tasks allowed"),
        "{text}"
    );

    let started = Instant::now();
    cli.run(&server_create("busybox-p", PAPER_FLAVOR, "vm-root", true));
    eprintln!("vm-root ACTIVE after {} ms", started.elapsed().as_millis());
    let shown = cli.json(&["server", "show", "vm-root"]);
    assert!(
        shown["flavor"].to_string().contains("m1.paper-root")
            || shown["flavor"].to_string().contains(PAPER_FLAVOR),
        "{shown}"
    );
    let root_container = container_of(&cli, "vm-root");
    let (_, limits) = docker_with_stderr(&[
        "inspect",
        "-f",
        "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}}",
        &root_container,
    ]);
    assert_eq!(limits.trim(), format!("{} 1000000000", 128 * 1024 * 1024));
    wait_until("vm-root's log", Duration::from_secs(20), || {
        docker_with_stderr(&["logs", &root_container])
            .1
            .contains("net-admin-")
    });
    let log = docker_with_stderr(&["logs", &root_container]).1;
    assert!(log.contains("net-admin-ok"), "{log}");
    let (ok, said) =
        docker_with_stderr(&["exec", &root_container, "ip", "addr", "show", "dev", "lo"]);
    assert!(ok && said.contains("10.99.0.1/32"), "{said}");
    let (ok, said) = docker_with_stderr(&[
        "exec",
        &root_container,
        "ip",
        "addr",
        "add",
        "10.99.0.2/32",
        "dev",
        "lo",
    ]);
    assert!(ok, "CAP_NET_ADMIN in the privileged server: {said}");
    eprintln!("vm-root: `{NET_ADMIN}` succeeded (log: net-admin-ok; docker exec too)");

    // ---- denied again with weft's CLI: new ones refused, the running one named ---------
    let (out, text) = tenant_privilege(&os, "deny");
    assert!(
        out.status.success() && text.contains("denied") && text.contains("server-"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let refused = cli.fails(&server_create("busybox-root", "m1.tiny", "vm-root2", false));
    assert!(refused.contains("403"), "{refused}");
    assert_eq!(cli.json(&["server", "show", "vm-root"])["status"], "ACTIVE");

    // ---- clean up ---------------------------------------------------------------------
    cli.run(&["server", "delete", "--wait", "vm-plain", "vm-root"]);
    for container in [&plain_container, &root_container] {
        wait_container_removed(container);
    }
    admin.run(&["flavor", "delete", PAPER_FLAVOR, &plain_id]);
    let listed = cli.json(&["flavor", "list"]);
    assert_eq!(listed.as_array().unwrap().len(), 4, "{listed}");
    cli.run(&["image", "delete", "busybox-p", "busybox-root"]);
    cli.run(&["subnet", "delete", "sn-p"]);
    cli.run(&["network", "delete", "nw-p"]);
}
