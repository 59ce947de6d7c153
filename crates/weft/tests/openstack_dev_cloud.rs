//! `weft dev` serves OpenStack and names it in `~/.config/openstack/clouds.yaml`, as
//! devstack does: the real `weft dev` runs with `$HOME` in a temporary directory whose
//! clouds.yaml already holds another cloud (and a comment); the real `openstack` CLI,
//! with nothing but `HOME` and `PATH` in its environment, then lists networks and
//! issues a token through the cloud named after the cluster. Ctrl-C (SIGINT) stops the
//! cluster and takes exactly that entry out again: the file is byte for byte what it
//! was. Root (namespaces); without the clients (`scripts/python-clients.sh`) it skips
//! loudly outside CI and fails in CI.
#![allow(clippy::unwrap_used)] // tests fail loudly

#[macro_use]
mod common;

use common::weft;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What the user had before: another cloud, another top-level key and comments.
const BEFORE: &str = "# my clouds\nclouds:\n  # the lab's cloud\n  lab:\n    auth:\n      auth_url: https://lab.invalid:5000/v3\n      username: me\n      password: secret\n      project_name: mine\n    region_name: RegionTwo\ncache:\n  max_age: 3600\n";

/// Stops `weft dev` however the test ends; removes what a failed run left.
struct Dev {
    child: Option<Child>,
    tag: String,
    home: PathBuf,
}

impl Drop for Dev {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            let _ = weft()
                .args(["dev", "down", "--tag", &self.tag])
                .env("HOME", &self.home)
                .status();
        }
    }
}

/// `openstack --os-cloud CLOUD ARGS` with only HOME and PATH set.
fn openstack(openstack: &Path, home: &Path, cloud: &str, args: &[&str]) -> String {
    let out = Command::new(openstack)
        .args(["--os-cloud", cloud])
        .args(args)
        .env_clear()
        .env("HOME", home)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .current_dir(home)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openstack --os-cloud {cloud} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn weft_dev_writes_a_clouds_yaml_entry_the_openstack_cli_uses_and_removes_it() {
    require_root!();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let cli = root.join("target/pyvenv/bin/openstack");
    if !cli.exists() {
        let why = "python-openstackclient is not installed: run scripts/python-clients.sh";
        assert!(std::env::var_os("CI").is_none(), "{why}");
        eprintln!("\n*** SKIPPED weft_dev_writes_a_clouds_yaml_entry: {why} ***\n");
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join(".config/openstack/clouds.yaml");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, BEFORE).unwrap();
    // Its own tag (the cloud's name), so that a developer's `weft dev` is not in the way.
    let tag = format!("weft-t{}-osdev", std::process::id());
    let mut child = weft()
        .args(["dev", "--nodes", "2", "--tag", &tag])
        .env("HOME", home.path())
        .env_remove("OS_CLIENT_CONFIG_FILE")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("WEFT_CONFIG")
        .current_dir(home.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (stdout, stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let mut dev = Dev {
        child: Some(child),
        tag: tag.clone(),
        home: home.path().to_path_buf(),
    };
    let (tx, rx) = mpsc::channel();
    let tx2 = tx.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            eprintln!("[weft dev] {line}");
            let _ = tx.send(line);
        }
    });
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[weft dev] {line}");
            let _ = tx2.send(line);
        }
    });
    let mut banner = Vec::new();
    let start = Instant::now();
    while !banner.iter().any(|l: &String| l.contains("Ctrl-C stops")) {
        let left = Duration::from_secs(120).saturating_sub(start.elapsed());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("weft dev did not come up:\n{}", banner.join("\n")));
        banner.push(line);
    }
    let shown = banner.join("\n");
    assert!(
        shown.contains(&format!("openstack --os-cloud {tag} network list")),
        "{shown}"
    );
    assert!(
        shown.contains("user demo") && shown.contains("project demo"),
        "{shown}"
    );

    // The entry is merged in: the other cloud, key and comments are still there.
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains("# the lab's cloud") && text.contains("# my clouds"),
        "{text}"
    );
    assert!(
        text.contains("  lab:\n") && text.contains("max_age: 3600"),
        "{text}"
    );
    assert!(text.contains(&format!("  {tag}:\n")), "{text}");

    let os = |args: &[&str]| openstack(&cli, home.path(), &tag, args);
    assert_eq!(os(&["network", "list", "-f", "value"]), "");
    let token = os(&["token", "issue", "-f", "value", "-c", "id"]);
    assert!(!token.is_empty(), "a token");
    let project = os(&["token", "issue", "-f", "value", "-c", "project_id"]);
    assert_eq!(project.len(), 32, "a project id: {project}");
    os(&["network", "create", "dev-net"]);
    assert_eq!(
        os(&["network", "list", "-f", "value", "-c", "Name"]),
        "dev-net"
    );
    os(&["network", "delete", "dev-net"]);

    // Ctrl-C: the cluster goes, and the entry with it; the file is what it was.
    let mut child = dev.child.take().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            dev.child = Some(child);
            panic!("weft dev did not stop within 60 s of SIGINT");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "weft dev exited with {status}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), BEFORE);
    let left = weft_fabric::netns::list_with_prefix(&format!("{tag}-"));
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
}
