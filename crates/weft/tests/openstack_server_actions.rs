//! Nova's server actions, `user_data`, hypervisors and hosts end to end with the real
//! `openstack` CLI on a process cluster (com1, com2) and real containers.
//!
//! A server booted with `--user-data FILE` sees the file's text as `WEFT_USER_DATA`;
//! `console log show` prints what its container printed; `server stop` makes it SHUTOFF
//! with its container stopped and no TCP answer, a second stop is Nova's 409, and a
//! controller restart leaves it stopped; `server start` brings it back ACTIVE and serving
//! (real TCP from a port of its network); `server reboot` (soft, then `--hard`) starts a
//! new container in place (same address, the boot count in its console). `hypervisor
//! list` and `host list` (weft's admin) list the nodes with their capacity; a project
//! may not.
//! Root (namespaces) and Docker; without the clients (`scripts/python-clients.sh`) it
//! skips loudly outside CI and fails in CI.
#![allow(clippy::unwrap_used)] // tests fail loudly

#[macro_use]
mod common;

use common::docker::{ImageContainers, build_busybox_image, docker, process_env, task_containers};
use common::nova::{Cli, add_admin_cloud, address, container};
use common::openstack::{OpenStackCluster, clients};
use common::wait_until;
use serde_json::Value;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use weft_fabric::probe::tcp_ok;

const IMAGE: &str = "weft-test/os-actions:latest";
const ECHO: u16 = 7007;
/// The image's command: says who it is and what it was given, then echoes TCP.
const BOOT: &str = "#!/bin/sh\necho \"weft-console: booted WEFT_BOOT=${WEFT_BOOT:-0}\"\necho \"weft-console: user data: $WEFT_USER_DATA\"\necho weft-console: ready\nexec nc -ll -p 7007 -e /bin/cat\n";
const USER_DATA: &str = "#cloud-config\nrole: worker\n";

/// The CLI as the project's user `lab`.
fn user<'a>(os: &'a OpenStackCluster, openstack: &Path) -> Cli<'a> {
    Cli {
        os,
        openstack: openstack.to_path_buf(),
        cloud: "weft",
    }
}

fn show(cli: &Cli, name: &str) -> Value {
    cli.json(&["server", "show", name])
}

/// Polls `server show` until its status is `status`; how long that took.
fn wait_status(cli: &Cli, name: &str, status: &str, since: Instant) -> Duration {
    let mut last = Value::Null;
    wait_until(
        &format!("server {name} {status}"),
        Duration::from_secs(90),
        || {
            last = show(cli, name);
            last["status"] == status
        },
    );
    since.elapsed()
}

/// Waits until the server at `ip` answers TCP from the namespace `probe_ns`.
fn wait_serving(what: &str, probe_ns: &str, ip: IpAddr) {
    wait_until(what, Duration::from_secs(30), || tcp_ok(probe_ns, ip, ECHO));
}

/// `docker inspect` of one field of a container; `None` when there is no such container.
fn inspect(container: &str, format: &str) -> Option<String> {
    let (ok, out) = docker(&["inspect", "-f", format, container]);
    ok.then(|| out.trim().to_string())
}

#[test]
fn server_actions_user_data_hypervisors_and_hosts_with_the_real_cli() {
    if !nix::unistd::geteuid().is_root() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs this test as root (namespaces, Docker)"
        );
    }
    require_root!();
    let Some((openstack, _python)) = clients("server_actions") else {
        return;
    };
    build_busybox_image(IMAGE, &[("boot", BOOT)], &["/bin/boot"]);
    let _containers = ImageContainers::new(IMAGE);
    let mut os = OpenStackCluster::new("osact");
    add_admin_cloud(&os);

    // The image, a network, and a port on it (com1) to probe the server from.
    {
        let cli = user(&os, &openstack);
        cli.image_create("actions", IMAGE, &[]);
        cli.run(&["network", "create", "net1"]);
        cli.run(&[
            "subnet",
            "create",
            "--network",
            "net1",
            "--subnet-range",
            "10.4.0.0/24",
            "sn1",
        ]);
        cli.run(&[
            "port",
            "create",
            "--network",
            "net1",
            "--host",
            "com1",
            "probe",
        ]);
    }
    os.c.wait_endpoints_ready();
    let probe_ns =
        os.c.rt
            .block_on(os.c.client.endpoints())
            .unwrap()
            .into_iter()
            .next()
            .map(|e| e.netns)
            .unwrap();

    // A server with user data (a file; the CLI sends it base64).
    let user_data = os.home.path().join("user-data.yaml");
    std::fs::write(&user_data, USER_DATA).unwrap();
    let cli1 = user(&os, &openstack);
    let created = Instant::now();
    let server = cli1.json(&[
        "server",
        "create",
        "--image",
        "actions",
        "--flavor",
        "m1.tiny",
        "--network",
        "net1",
        "--availability-zone",
        "nova:com2",
        "--user-data",
        user_data.to_str().unwrap(),
        "--wait",
        "vm1",
    ]);
    assert_eq!(server["status"], "ACTIVE", "{server}");
    eprintln!(
        "create --wait: ACTIVE after {} ms",
        created.elapsed().as_millis()
    );
    let shown = show(&cli1, "vm1");
    assert!(
        shown
            .get("OS-EXT-SRV-ATTR:user_data")
            .is_none_or(Value::is_null),
        "user_data is shown at 2.3+ only: {shown}"
    );
    assert!(
        !shown.to_string().contains("WEFT_USER_DATA"),
        "user_data is not metadata: {shown}"
    );
    let ip = address(&shown, None);
    let container = container(&shown);
    let env = process_env(&container);
    assert!(
        env.iter()
            .any(|v| *v == format!("WEFT_USER_DATA={USER_DATA}")),
        "the container's WEFT_USER_DATA: {env:?}"
    );
    wait_serving("the server answers TCP from the probe port", &probe_ns, ip);

    // Its console: what the container printed; `--lines 1` the last line only.
    let console = cli1.run(&["console", "log", "show", "vm1"]);
    assert!(
        console.contains("weft-console: booted WEFT_BOOT=0"),
        "{console}"
    );
    assert!(console.contains("role: worker"), "{console}");
    let last = cli1.run(&["console", "log", "show", "--lines", "1", "vm1"]);
    assert_eq!(last.lines().count(), 1, "{last}");
    assert_eq!(last, "weft-console: ready", "{console}");

    // Stop: SHUTOFF, the container stopped, no TCP answer; a second stop is 409.
    let t = Instant::now();
    cli1.run(&["server", "stop", "vm1"]);
    let stop_ms = wait_status(&cli1, "vm1", "SHUTOFF", t).as_millis();
    let stopped = show(&cli1, "vm1");
    assert_eq!(stopped["OS-EXT-STS:vm_state"], "stopped", "{stopped}");
    let power = &stopped["OS-EXT-STS:power_state"];
    assert!(*power == "Shutdown" || *power == 4, "{stopped}");
    wait_until(
        "the container is not running",
        Duration::from_secs(30),
        || inspect(&container, "{{.State.Running}}").is_none_or(|r| r == "false"),
    );
    let down_ms = t.elapsed().as_millis();
    assert!(!tcp_ok(&probe_ns, ip, ECHO), "a stopped server answered");
    let refused = cli1.fails(&["server", "stop", "vm1"]);
    assert!(
        refused.contains("Cannot 'stop' instance") && refused.contains("vm_state stopped"),
        "{refused}"
    );
    assert!(refused.contains("409"), "{refused}");
    let refused = cli1.fails(&["console", "log", "show", "vm1"]);
    assert!(refused.contains("409"), "{refused}");
    eprintln!("stop: SHUTOFF after {stop_ms} ms, container stopped after {down_ms} ms");
    drop(cli1);

    // A controller restart leaves it stopped: the stop is the app's instance count.
    os.c.kill_server();
    os.c.start_server();
    std::thread::sleep(Duration::from_secs(3));
    let cli1 = user(&os, &openstack);
    assert_eq!(show(&cli1, "vm1")["status"], "SHUTOFF");
    let running = task_containers(IMAGE, false);
    assert!(running.is_empty(), "a container runs: {running:?}");

    // Start: ACTIVE again, serving.
    let refused = cli1.fails(&["server", "reboot", "vm1"]);
    assert!(
        refused.contains("409"),
        "soft reboot of a stopped server: {refused}"
    );
    let t = Instant::now();
    cli1.run(&["server", "start", "vm1"]);
    let start_ms = wait_status(&cli1, "vm1", "ACTIVE", t).as_millis();
    let started = show(&cli1, "vm1");
    let ip = address(&started, None);
    let container = common::nova::container(&started);
    wait_serving("the started server answers TCP", &probe_ns, ip);
    let serving_ms = t.elapsed().as_millis();
    eprintln!("start: ACTIVE after {start_ms} ms, serving TCP after {serving_ms} ms");
    let refused = cli1.fails(&["server", "start", "vm1"]);
    assert!(
        refused.contains("Cannot 'start' instance") && refused.contains("409"),
        "{refused}"
    );

    // Reboot, soft then hard: a new container start in place (same address).
    for (n, hard) in [(1, false), (2, true)] {
        let before = inspect(&container, "{{.State.StartedAt}}").unwrap();
        let t = Instant::now();
        // The soft one with the CLI's --wait; the hard one seen HARD_REBOOT first (its
        // agent takes the stop grace to stop the old container).
        let args: &[&str] = if hard {
            &["server", "reboot", "--hard", "vm1"]
        } else {
            &["server", "reboot", "--wait", "vm1"]
        };
        cli1.run(args);
        if hard {
            let rebooting = show(&cli1, "vm1");
            assert_eq!(rebooting["status"], "HARD_REBOOT", "{rebooting}");
            assert_eq!(rebooting["OS-EXT-STS:task_state"], "reboot_started_hard");
            let refused = cli1.fails(&["server", "stop", "vm1"]);
            assert!(
                refused.contains("task_state reboot_started_hard") && refused.contains("409"),
                "{refused}"
            );
        }
        wait_until("a new container start", Duration::from_secs(60), || {
            inspect(&container, "{{.State.StartedAt}}").is_some_and(|after| after != before)
        });
        wait_status(&cli1, "vm1", "ACTIVE", t);
        let rebooted = show(&cli1, "vm1");
        assert_eq!(address(&rebooted, None), ip, "a reboot keeps the address");
        wait_serving("the rebooted server answers TCP", &probe_ns, ip);
        let console = cli1.run(&["console", "log", "show", "vm1"]);
        assert!(
            console.contains(&format!("weft-console: booted WEFT_BOOT={n}")),
            "{console}"
        );
        eprintln!(
            "reboot{}: ACTIVE and serving after {} ms",
            if hard { " --hard" } else { "" },
            t.elapsed().as_millis()
        );
    }

    // Hypervisors and hosts: weft's nodes, for the admin only.
    let admin = Cli {
        os: &os,
        openstack: openstack.clone(),
        cloud: "weft-admin",
    };
    drop(cli1);
    let cli1 = user(&os, &openstack);
    let hypervisors = admin.json(&["hypervisor", "list"]);
    eprintln!("hypervisor list: {hypervisors}");
    for node in ["com1", "com2"] {
        assert!(
            hypervisors
                .as_array()
                .unwrap()
                .iter()
                .any(|h| h["Hypervisor Hostname"] == node && h["State"] == "up"),
            "{hypervisors}"
        );
    }
    let com2 = admin.json(&["hypervisor", "show", "com2"]);
    eprintln!("hypervisor show com2: {com2}");
    assert_eq!(com2["running_vms"], 1, "{com2}");
    assert_eq!(com2["memory_mb_used"], 512, "{com2}");
    let hosts = admin.json(&["host", "list"]);
    eprintln!("host list: {hosts}");
    for node in ["com1", "com2"] {
        assert!(
            hosts
                .as_array()
                .unwrap()
                .iter()
                .any(|h| h["Host Name"] == node
                    && h["Service"] == "compute"
                    && h["Zone"] == "nova"),
            "{hosts}"
        );
    }
    let refused = cli1.fails(&["hypervisor", "list"]);
    assert!(
        refused.contains("403") || refused.contains("Policy"),
        "{refused}"
    );

    // Clean up.
    cli1.run(&["server", "delete", "--wait", "vm1"]);
    wait_until("the container is removed", Duration::from_secs(30), || {
        inspect(&container, "{{.Name}}").is_none()
    });
    cli1.run(&["port", "delete", "probe"]);
    cli1.run(&["network", "delete", "net1"]);
    cli1.run(&["image", "delete", "actions"]);
}
