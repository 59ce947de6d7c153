//! The `openstack` CLI aimed at an [`OpenStackCluster`], as its user or as weft's admin,
//! for the Nova tests that drive real containers.

use super::openstack::OpenStackCluster;
use serde_json::Value;
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
            "openstack {}: {}{}",
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

    /// A command that must fail: its stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.output(args);
        assert!(
            !out.status.success(),
            "openstack {} succeeded: {}",
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
