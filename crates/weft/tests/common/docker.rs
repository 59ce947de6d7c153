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

/// The environment of a running container's first process, read from `/proc` (root):
/// the task's own, whether it started cold (the engine's `Config.Env`) or on a warm
/// container (the engine's configuration has the image's environment only).
pub fn process_env(container: &str) -> Vec<String> {
    let (ok, pid) = docker(&["inspect", "-f", "{{.State.Pid}}", container]);
    assert!(ok, "no container {container}");
    let pid = pid.trim();
    assert!(pid != "0", "{container} is not running");
    let environ = std::fs::read(format!("/proc/{pid}/environ"))
        .unwrap_or_else(|e| panic!("environment of {container} (pid {pid}): {e}"));
    environ
        .split(|b| *b == 0)
        .filter(|v| !v.is_empty())
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

/// `docker ARGS`: success, and stdout followed by stderr (what a failed command said).
pub fn docker_with_stderr(args: &[&str]) -> (bool, String) {
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

/// Whether a Docker engine answers (`docker info`; no `docker` at all is no); when not,
/// `test` is skipped loudly, or fails in CI (`CI` set).
pub fn docker_running(test: &str) -> bool {
    let answers = Command::new("docker")
        .arg("info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if answers {
        return true;
    }
    let why = "Docker is not running (dockerd)";
    assert!(std::env::var_os("CI").is_none(), "{test}: {why}");
    eprintln!("\n*** SKIPPED {test}: {why} ***\n");
    false
}

/// Waits until no container (running or not) is named `name`.
pub fn wait_container_removed(name: &str) {
    super::wait_until(
        "the container is removed",
        std::time::Duration::from_secs(30),
        || {
            let (_, names) = docker(&["ps", "-a", "--format", "{{.Names}}"]);
            !names.lines().any(|n| n == name)
        },
    );
}

/// Builds `tag`: `FROM scratch`, the static busybox with its applets in `/bin`, each of
/// `scripts` (name, text) as an executable `/bin/<name>`, and `cmd` as the command (none
/// when empty).
pub fn build_busybox_image(tag: &str, scripts: &[(&str, &str)], cmd: &[&str]) {
    build_busybox_image_with(tag, scripts, &[], cmd);
}

/// [`build_busybox_image`], with each of `host_files` (absolute paths of this host, links
/// followed) copied in at the same path.
pub fn build_busybox_image_with(
    tag: &str,
    scripts: &[(&str, &str)],
    host_files: &[String],
    cmd: &[&str],
) {
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
    for file in host_files {
        let to = dir.join("root").join(file.trim_start_matches('/'));
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(std::fs::canonicalize(file).unwrap(), &to).unwrap();
    }
    if !host_files.is_empty() {
        dockerfile.push_str("COPY root/ /\n");
    }
    if !cmd.is_empty() {
        dockerfile.push_str(&format!("CMD {}\n", serde_json::json!(cmd)));
    }
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

/// Ids of the containers of `image` that are tasks (not warm containers waiting for
/// one: `weft-_spare-…`), running ones only unless `all`.
pub fn task_containers(image: &str, all: bool) -> Vec<String> {
    let filter = format!("ancestor={image}");
    let mut args = vec![
        "ps",
        "--no-trunc",
        "--format",
        "{{.ID}} {{.Names}}",
        "--filter",
        &filter,
    ];
    if all {
        args.push("-a");
    }
    let (_, out) = docker(&args);
    out.lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(_, name)| !name.starts_with("weft-_spare-"))
        .map(|(id, _)| id.to_string())
        .collect()
}

/// The containers of one image, removed when this guard is dropped (the test passed or
/// not): an agent killed with its cluster leaves its containers behind.
pub struct ImageContainers(pub String);

impl ImageContainers {
    pub fn new(image: &str) -> Self {
        Self(image.to_string())
    }

    /// Ids of the task containers of this image, running or not (warm containers that
    /// took no task are not tasks).
    pub fn ids(&self) -> Vec<String> {
        task_containers(&self.0, true)
    }

    /// Removes them now, warm containers included.
    pub fn remove(&self) {
        let (_, ids) = docker(&["ps", "-aq", "--filter", &format!("ancestor={}", self.0)]);
        for id in ids.split_whitespace() {
            let _ = docker(&["rm", "-f", id]);
        }
    }
}

impl Drop for ImageContainers {
    fn drop(&mut self) {
        self.remove();
    }
}
