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

use common::openstack::{OpenStackCluster, clients};
use common::wait_until;
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

const REPO: &str = "weft-test/node-image";

/// Skips (loudly) or, in CI, fails when `why` is `Some`.
fn unmet(test: &str, why: Option<&str>) -> bool {
    let Some(why) = why else { return false };
    assert!(std::env::var_os("CI").is_none(), "{test}: {why}");
    eprintln!("\n*** SKIPPED {test}: {why} ***\n");
    true
}

/// `docker ARGS`: success and stdout.
fn docker(args: &[&str]) -> (bool, String) {
    match Command::new("docker").args(args).output() {
        Ok(out) => (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        ),
        Err(_) => (false, String::new()),
    }
}

/// `FROM scratch` plus the static busybox, sleeping; tagged `reference`.
fn build_image(reference: &str) {
    let dir = std::env::temp_dir().join(format!("weft-node-image-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", dir.join("bin/busybox")).unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM scratch\nCOPY bin/busybox /bin/busybox\nCMD [\"/bin/busybox\", \"sleep\", \"3600\"]\n",
    )
    .unwrap();
    let status = Command::new("docker")
        .args(["build", "-q", "-t", reference])
        .arg(&dir)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(status.success(), "docker build of {reference} failed");
}

/// Removes this test's containers and image when it ends, passed or not.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let (_, ids) = docker(&["ps", "-aq", "--filter", &format!("ancestor={}", self.0)]);
        for id in ids.split_whitespace() {
            let _ = docker(&["rm", "-f", id]);
        }
        let _ = docker(&["rmi", "-f", &self.0]);
    }
}

struct Cli<'a> {
    os: &'a OpenStackCluster,
    openstack: PathBuf,
}

impl Cli<'_> {
    fn run(&self, args: &[&str]) -> String {
        let out = self
            .os
            .command(&self.openstack)
            .args(["--os-cloud", "weft"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openstack {}: {}{}",
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

    /// The id of the listed image named `name`, if listed.
    fn listed(&self, name: &str) -> Option<String> {
        self.json(&["image", "list"])
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["Name"] == name)
            .map(|i| i["ID"].as_str().unwrap().to_string())
    }
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
    if unmet(
        TEST,
        (!docker(&["info"]).0).then_some("needs a running Docker engine (dockerd)"),
    ) {
        return;
    }
    let Some((openstack, _python)) = clients(TEST) else {
        return;
    };
    let name = format!("{REPO}:t{}", std::process::id());
    build_image(&name);
    let cleanup = Cleanup(name.clone());
    let os = OpenStackCluster::new("osimg");
    let cli = Cli { os: &os, openstack };

    // Never registered: listed once the agents report their engine's images.
    let mut id = None;
    wait_until(
        "the node image in openstack image list",
        Duration::from_secs(60),
        || {
            id = cli.listed(&name);
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
    assert_eq!(cli.listed(&name).as_deref(), Some(id.as_str()));

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
        || cli.listed(&name).is_none(),
    );
    cli.run(&["subnet", "delete", "sn-img"]);
    cli.run(&["network", "delete", "nw-img"]);
    drop(cleanup);
}
