//! Images the nodes' Docker engines hold, with the real `openstack` CLI on a process
//! cluster (com1, com2 on this host's Docker engine): an image built here (FROM scratch
//! with Debian's static busybox) and never registered is listed by `openstack image
//! list` once the agents report it (named after its repo:tag, as Nova-Docker named
//! them, with the nodes that hold it), `server create --image` of it reaches ACTIVE with
//! a real container of that image, and once the image is removed from the engine it is
//! no longer listed.
//! Root (namespaces) and Docker: without them it skips loudly, except in CI (`CI` set),
//! where it fails; without the clients (`scripts/python-clients.sh`) likewise.
#![allow(clippy::unwrap_used)] // tests fail loudly

#[macro_use]
mod common;

use common::docker::{ImageContainers, build_busybox_image, docker, docker_running};
use common::nova::Cli;
use common::openstack::{OpenStackCluster, clients};
use common::wait_until;
use std::time::Duration;

const REPO: &str = "weft-test/node-image";

/// Removes this test's containers and image when it ends, passed or not.
struct Cleanup(ImageContainers);

impl Drop for Cleanup {
    fn drop(&mut self) {
        self.0.remove();
        let _ = docker(&["rmi", "-f", &self.0.0]);
    }
}

/// The id of the image named `name` in `openstack image list`, if listed.
fn listed(cli: &Cli, name: &str) -> Option<String> {
    cli.json(&["image", "list"])
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["Name"] == name)
        .map(|i| i["ID"].as_str().unwrap().to_string())
}

#[test]
fn an_image_only_the_nodes_hold_is_listed_by_glance_and_boots_a_server() {
    const TEST: &str = "an_image_only_the_nodes_hold_is_listed_by_glance";
    // Root: in CI a failure, elsewhere a loud skip.
    assert!(
        std::env::var_os("CI").is_none() || nix::unistd::geteuid().is_root(),
        "{TEST}: needs root (namespaces, nftables)"
    );
    require_root!();
    if !docker_running(TEST) {
        return;
    }
    let Some((openstack, _python)) = clients(TEST) else {
        return;
    };
    let name = format!("{REPO}:t{}", std::process::id());
    // `FROM scratch` plus the static busybox, sleeping.
    build_busybox_image(&name, &[], &["/bin/busybox", "sleep", "3600"]);
    let cleanup = Cleanup(ImageContainers::new(&name));
    // No warm containers: one would hold the image, and `docker rmi` below would be
    // refused while it exists (as for any container of the image).
    let os = OpenStackCluster::with_agent_args("osimg", &["--docker-spares", "0"]);
    let cli = Cli {
        os: &os,
        openstack,
        cloud: "weft",
    };

    // Never registered: listed once the agents report their engine's images.
    let mut id = None;
    wait_until(
        "the node image in openstack image list",
        Duration::from_secs(60),
        || {
            id = listed(&cli, &name);
            id.is_some()
        },
    );
    let id = id.unwrap();
    let shown = cli.json(&["image", "show", &id]);
    assert_eq!(shown["name"], name.as_str(), "{shown}");
    assert_eq!(shown["status"], "active", "{shown}");
    assert_eq!(shown["container_format"], "docker", "{shown}");
    assert_eq!(shown["visibility"], "public", "{shown}");
    let text = shown.to_string();
    assert!(
        text.contains("weft_nodes") && text.contains("com1") && text.contains("com2"),
        "{shown}"
    );
    // The id is the reference's: the same on the next listing.
    assert_eq!(listed(&cli, &name).as_deref(), Some(id.as_str()));

    // A server boots from it.
    cli.run(&["network", "create", "nw-img"]);
    cli.run(&[
        "subnet",
        "create",
        "--network",
        "nw-img",
        "--subnet-range",
        "10.9.0.0/24",
        "sn-img",
    ]);
    let server = cli.json(&[
        "server",
        "create",
        "--image",
        &name,
        "--flavor",
        "m1.tiny",
        "--network",
        "nw-img",
        "--wait",
        "vm-img",
    ]);
    assert_eq!(server["status"], "ACTIVE", "{server}");
    let shown = cli.json(&["server", "show", "vm-img"]);
    assert_eq!(shown["status"], "ACTIVE", "{shown}");
    assert!(shown.to_string().contains(&id), "{shown}");
    let (_, running) = docker(&["ps", "-q", "--filter", &format!("ancestor={name}")]);
    assert!(!running.trim().is_empty(), "no container of {name} runs");
    cli.run(&["server", "delete", "--wait", "vm-img"]);
    wait_until("the container is removed", Duration::from_secs(60), || {
        docker(&["ps", "-aq", "--filter", &format!("ancestor={name}")])
            .1
            .trim()
            .is_empty()
    });

    // Gone from the engine: gone from Glance.
    let (ok, _) = docker(&["rmi", &name]);
    assert!(ok, "docker rmi {name}");
    wait_until(
        "the removed image to leave openstack image list",
        Duration::from_secs(60),
        || listed(&cli, &name).is_none(),
    );
    cli.run(&["subnet", "delete", "sn-img"]);
    cli.run(&["network", "delete", "nw-img"]);
    drop(cleanup);
}
