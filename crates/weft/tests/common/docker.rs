//! Docker helpers for the tests that run real containers: images built locally `FROM
//! scratch` with Debian's static busybox (no registry is reachable), `docker` commands,
//! and the clean-up of a test's containers.

use std::path::Path;
use std::process::{Command, Stdio};

/// `docker ARGS`: success and stdout.
pub fn docker(args: &[&str]) -> (bool, String) {
    let out = Command::new("docker").args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
    )
}

/// Builds `tag`: `FROM scratch`, the static busybox with its applets in `/bin`, each of
/// `scripts` (name, text) as an executable `/bin/<name>`, and `cmd` as the command.
pub fn build_busybox_image(tag: &str, scripts: &[(&str, &str)], cmd: &[&str]) {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!(
        "weft-image-{}-{}",
        std::process::id(),
        tag.replace(['/', ':'], "-")
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    assert!(
        Path::new("/bin/busybox").exists(),
        "no /bin/busybox: install Debian's busybox-static"
    );
    std::fs::copy("/bin/busybox", dir.join("bin/busybox")).unwrap();
    let mut dockerfile = String::from(
        "FROM scratch\nCOPY bin/busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n",
    );
    for (name, text) in scripts {
        let path = dir.join("bin").join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        dockerfile.push_str(&format!("COPY bin/{name} /bin/{name}\n"));
    }
    dockerfile.push_str(&format!("CMD {}\n", serde_json::json!(cmd)));
    std::fs::write(dir.join("Dockerfile"), dockerfile).unwrap();
    let status = Command::new("docker")
        .args(["build", "-q", "-t", tag])
        .arg(&dir)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        status.success(),
        "docker build of {tag} failed (is dockerd running?)"
    );
}

/// The containers of one image, removed when this guard is dropped (the test passed or
/// not): an agent killed with its cluster leaves its containers behind.
pub struct ImageContainers(pub &'static str);

impl ImageContainers {
    /// Ids of the containers of this image, running or not.
    pub fn ids(&self) -> Vec<String> {
        let (_, ids) = docker(&["ps", "-aq", "--filter", &format!("ancestor={}", self.0)]);
        ids.split_whitespace().map(String::from).collect()
    }
}

impl Drop for ImageContainers {
    fn drop(&mut self) {
        for id in self.ids() {
            let _ = docker(&["rm", "-f", &id]);
        }
    }
}
