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

use common::openstack::{OpenStackCluster, clients};
use common::wait_until;
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const IMAGE: &str = "weft-test/os-priv-busybox:latest";
/// The seed paper's flavor id.
const PAPER_FLAVOR: &str = "34af1383-3836-4815-8060-503bc5d1b61b";
/// What needs CAP_NET_ADMIN: an address on the container's own loopback, in the
/// namespace weft made for its endpoint.
const NET_ADMIN: &str = "ip addr add 10.99.0.1/32 dev lo";

/// `FROM scratch` plus the static busybox; the command tries [`NET_ADMIN`], says how it
/// went, and stays up.
fn build_image() {
    let dir = std::env::temp_dir().join(format!("weft-os-priv-image-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", dir.join("bin/busybox")).unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        format!(
            "FROM scratch\nCOPY bin/busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\nCMD [\"sh\", \"-c\", \"if {NET_ADMIN}; then echo net-admin-ok; else echo net-admin-denied; fi; exec sleep 1000000\"]\n"
        ),
    )
    .unwrap();
    let status = Command::new("docker")
        .args(["build", "-q", "-t", IMAGE])
        .arg(&dir)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        status.success(),
        "docker build failed (is dockerd running?)"
    );
}

/// Removes this test's containers (those of its image) when the test ends.
struct Containers;

impl Drop for Containers {
    fn drop(&mut self) {
        let (_, ids) = docker(&["ps", "-aq", "--filter", &format!("ancestor={IMAGE}")]);
        for id in ids.split_whitespace() {
            let _ = docker(&["rm", "-f", id]);
        }
    }
}

/// `docker ARGS`: success and stdout (with stderr).
fn docker(args: &[&str]) -> (bool, String) {
    let out = Command::new("docker").args(args).output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

struct Cli<'a> {
    os: &'a OpenStackCluster,
    openstack: PathBuf,
    cloud: &'static str,
}

impl Cli<'_> {
    fn output(&self, args: &[&str]) -> std::process::Output {
        self.os
            .command(&self.openstack)
            .args(["--os-cloud", self.cloud])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn run(&self, args: &[&str]) -> String {
        let out = self.output(args);
        assert!(
            out.status.success(),
            "openstack --os-cloud {} {}: {}{}",
            self.cloud,
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.extend(["-f", "json"]);
        let out = self.run(&args);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    }

    /// A command that must fail: its stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.output(args);
        assert!(
            !out.status.success(),
            "openstack --os-cloud {} {} succeeded: {}",
            self.cloud,
            args.join(" "),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).to_string()
    }
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
    shown["OS-EXT-SRV-ATTR:instance_name"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Whether [`NET_ADMIN`] succeeds with `docker exec` in `container`, and what it said.
fn net_admin(container: &str) -> (bool, String) {
    let mut args = vec!["exec", container];
    args.extend(NET_ADMIN.split_whitespace());
    docker(&args)
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
    build_image();
    let _containers = Containers;
    let os = OpenStackCluster::new("ospriv");
    // The admin's cloud: weft's admin token, which Keystone answers as its admin.
    let admin_token = std::fs::read_to_string(os.c.dir.join("server").join("admin.token"))
        .unwrap()
        .trim()
        .to_string();
    let clouds = os.home.path().join("clouds.yaml");
    let mut text = std::fs::read_to_string(&clouds).unwrap();
    text.push_str(&format!(
        "  weft-admin:\n    auth_type: v3token\n    auth:\n      auth_url: {}/v3\n      token: {admin_token}\n      project_name: admin\n      project_domain_name: Default\n    region_name: RegionOne\n    identity_api_version: 3\n",
        os.url
    ));
    std::fs::write(&clouds, text).unwrap();
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
    let refused = cli.fails(&[
        "flavor", "create", "--vcpus", "1", "--ram", "64", "--disk", "0", "mine",
    ]);
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
    let plain = admin.json(&[
        "flavor",
        "create",
        "--vcpus",
        "1",
        "--ram",
        "96",
        "--disk",
        "0",
        "m1.plain96",
    ]);
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
    let zero = admin.fails(&[
        "flavor", "create", "--vcpus", "0", "--ram", "64", "--disk", "0", "zero",
    ]);
    assert!(
        zero.contains("0 is less than the minimum of 1") && zero.contains("400"),
        "{zero}"
    );
    let twice = admin.fails(&[
        "flavor",
        "create",
        "--vcpus",
        "1",
        "--ram",
        "64",
        "--disk",
        "0",
        "m1.plain96",
    ]);
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
    for (name, privileged) in [("busybox-p", false), ("busybox-root", true)] {
        let mut args = vec![
            "image",
            "create",
            name,
            "--container-format",
            "docker",
            "--disk-format",
            "raw",
        ];
        let reference = format!("weft_docker_ref={IMAGE}");
        args.extend(["--property", &reference]);
        if privileged {
            args.extend(["--property", "weft:privileged=true"]);
        }
        cli.run(&args);
    }
    let root_image = cli.json(&["image", "show", "busybox-root"]);
    let props = root_image["properties"].clone();
    assert!(
        has_property(&props, "weft:privileged", "true") || root_image["weft:privileged"] == "true",
        "{root_image}"
    );

    // ---- unprivileged: the custom flavor's limits, no CAP_NET_ADMIN -------------------
    let started = Instant::now();
    cli.run(&[
        "server",
        "create",
        "--image",
        "busybox-p",
        "--flavor",
        "m1.plain96",
        "--network",
        "nw-p",
        "--wait",
        "vm-plain",
    ]);
    eprintln!("vm-plain ACTIVE after {} ms", started.elapsed().as_millis());
    let plain_container = container_of(&cli, "vm-plain");
    let (_, limits) = docker(&[
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
        docker(&["logs", &plain_container]).1.contains("net-admin-")
    });
    assert!(
        docker(&["logs", &plain_container])
            .1
            .contains("net-admin-denied")
    );

    // ---- privileged, not allowed: 403 and nothing created -------------------------------
    let before = cli.json(&["server", "list"]);
    for (image, flavor) in [("busybox-p", PAPER_FLAVOR), ("busybox-root", "m1.tiny")] {
        let refused = cli.fails(&[
            "server",
            "create",
            "--image",
            image,
            "--flavor",
            flavor,
            "--network",
            "nw-p",
            "vm-root",
        ]);
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
    let out =
        os.c.cli()
            .args(["tenant", "privilege", "show", "lab"])
            .output()
            .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("tenant lab: privileged tasks allowed"),
        "{text}"
    );

    let started = Instant::now();
    cli.run(&[
        "server",
        "create",
        "--image",
        "busybox-p",
        "--flavor",
        PAPER_FLAVOR,
        "--network",
        "nw-p",
        "--wait",
        "vm-root",
    ]);
    eprintln!("vm-root ACTIVE after {} ms", started.elapsed().as_millis());
    let shown = cli.json(&["server", "show", "vm-root"]);
    assert!(
        shown["flavor"].to_string().contains("m1.paper-root")
            || shown["flavor"].to_string().contains(PAPER_FLAVOR),
        "{shown}"
    );
    let root_container = container_of(&cli, "vm-root");
    let (_, limits) = docker(&[
        "inspect",
        "-f",
        "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}}",
        &root_container,
    ]);
    assert_eq!(limits.trim(), format!("{} 1000000000", 128 * 1024 * 1024));
    wait_until("vm-root's log", Duration::from_secs(20), || {
        docker(&["logs", &root_container]).1.contains("net-admin-")
    });
    let log = docker(&["logs", &root_container]).1;
    assert!(log.contains("net-admin-ok"), "{log}");
    let (ok, said) = docker(&["exec", &root_container, "ip", "addr", "show", "dev", "lo"]);
    assert!(ok && said.contains("10.99.0.1/32"), "{said}");
    let (ok, said) = docker(&[
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
    let out =
        os.c.cli()
            .args(["tenant", "privilege", "deny", "lab"])
            .output()
            .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("denied") && text.contains("server-"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let refused = cli.fails(&[
        "server",
        "create",
        "--image",
        "busybox-root",
        "--flavor",
        "m1.tiny",
        "--network",
        "nw-p",
        "vm-root2",
    ]);
    assert!(refused.contains("403"), "{refused}");
    assert_eq!(cli.json(&["server", "show", "vm-root"])["status"], "ACTIVE");

    // ---- clean up ---------------------------------------------------------------------
    cli.run(&["server", "delete", "--wait", "vm-plain", "vm-root"]);
    for container in [&plain_container, &root_container] {
        wait_until("the container is removed", Duration::from_secs(30), || {
            let (_, names) = docker(&["ps", "-a", "--format", "{{.Names}}"]);
            !names.lines().any(|n| n == container.as_str())
        });
    }
    admin.run(&["flavor", "delete", PAPER_FLAVOR, &plain_id]);
    let listed = cli.json(&["flavor", "list"]);
    assert_eq!(listed.as_array().unwrap().len(), 4, "{listed}");
    cli.run(&["image", "delete", "busybox-p", "busybox-root"]);
    cli.run(&["subnet", "delete", "sn-p"]);
    cli.run(&["network", "delete", "nw-p"]);
}
