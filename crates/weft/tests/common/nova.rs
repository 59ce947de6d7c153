//! The `openstack` CLI aimed at an [`OpenStackCluster`], as its user or as weft's admin,
//! for the Nova tests that drive real containers.

use super::openstack::OpenStackCluster;
use serde_json::Value;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Stdio;

/// The CLI with one of the cluster's clouds (`weft`: the user `lab`; `weft-admin`: weft's
/// admin token, after [`add_admin_cloud`]).
pub struct Cli<'a> {
    pub os: &'a OpenStackCluster,
    pub openstack: PathBuf,
    pub cloud: &'static str,
}

impl Cli<'_> {
    pub fn output(&self, args: &[&str]) -> std::process::Output {
        self.os
            .command(&self.openstack)
            .args(["--os-cloud", self.cloud])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// A command that must succeed: its stdout, trimmed.
    pub fn run(&self, args: &[&str]) -> String {
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

    /// `ARGS -f json`, parsed.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.extend(["-f", "json"]);
        let out = self.run(&args);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    }

    /// `image create NAME` of the Docker image `reference` (`--property
    /// weft_docker_ref=`), with `--property` each of `properties`: the image, shown.
    pub fn image_create(&self, name: &str, reference: &str, properties: &[&str]) -> Value {
        let reference = format!("weft_docker_ref={reference}");
        let mut args = vec![
            "image",
            "create",
            name,
            "--container-format",
            "docker",
            "--disk-format",
            "raw",
            "--property",
            &reference,
        ];
        for property in properties {
            args.extend(["--property", property]);
        }
        self.json(&args)
    }

    /// A command that must fail: its stderr.
    pub fn fails(&self, args: &[&str]) -> String {
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

/// Adds the cloud `weft-admin` to the cluster's clouds.yaml: weft's admin token through
/// Keystone's token method (`v3token`), which acts for every project.
pub fn add_admin_cloud(os: &OpenStackCluster) {
    let admin = std::fs::read_to_string(os.c.dir.join("server").join("admin.token")).unwrap();
    let path = os.home.path().join("clouds.yaml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!(
        "  weft-admin:\n    auth_type: v3token\n    auth:\n      auth_url: {}/v3\n      token: {}\n      project_name: admin\n      project_domain_name: Default\n    region_name: RegionOne\n    identity_api_version: 3\n",
        os.url,
        admin.trim()
    ));
    std::fs::write(path, text).unwrap();
}

/// The server's address on `network` (its first one with `None`) in `openstack server
/// show -f json`: `addresses` is `{"nw-a": ["10.1.0.5"]}` in the CLI's JSON.
pub fn address(server: &Value, network: Option<&str>) -> IpAddr {
    let addresses = &server["addresses"];
    let on = match network {
        Some(network) => addresses.get(network),
        None => addresses.as_object().and_then(|o| o.values().next()),
    };
    let text = on
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(Value::as_str)
        .map(String::from)
        .or_else(|| {
            // Older CLIs print "nw-a=10.1.0.5".
            addresses
                .as_str()
                .and_then(|s| s.split_once('=').map(|(_, ip)| ip.to_string()))
        })
        .unwrap_or_else(|| panic!("no address on {network:?}: {server}"));
    text.parse().unwrap()
}

/// The server's container: `OS-EXT-SRV-ATTR:instance_name` in `openstack server show -f
/// json`.
pub fn container(server: &Value) -> String {
    server["OS-EXT-SRV-ATTR:instance_name"]
        .as_str()
        .unwrap()
        .to_string()
}
