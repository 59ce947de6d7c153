//! Named network namespaces under `/run/netns`, the same place `ip netns` and weft's fabric
//! use. The process runtime enters an existing one; the Docker runtime publishes its
//! container's namespace there (bind mount of `/proc/<pid>/ns/net`) for the fabric to plumb.

use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};
use nix::sys::statfs::{NSFS_MAGIC, fstatfs};

use crate::error::{Result, RuntimeError};

pub const NETNS_DIR: &str = "/run/netns";

pub fn netns_path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

fn netns_error(name: &str, why: impl Into<String>) -> RuntimeError {
    RuntimeError::Netns {
        name: name.to_string(),
        why: why.into(),
    }
}

/// Same alphabet as `ip netns` names weft's fabric creates.
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(netns_error(
            name,
            "only ASCII letters, digits, '-', '_' and '.' are allowed",
        ))
    }
}

/// Opens `/run/netns/<name>` (close-on-exec) and checks it really is a namespace, so a
/// missing or unmounted name fails here with a clear error rather than in the child.
pub fn open(name: &str) -> Result<OwnedFd> {
    check_name(name)?;
    let path = netns_path(name);
    let file = fs::File::open(&path)
        .map_err(|e| netns_error(name, format!("open {}: {e}", path.display())))?;
    let fs_type = fstatfs(&file)
        .map_err(|e| netns_error(name, format!("statfs: {e}")))?
        .filesystem_type();
    if fs_type != NSFS_MAGIC {
        return Err(netns_error(
            name,
            "exists but is not a mounted network namespace",
        ));
    }
    Ok(OwnedFd::from(file))
}

/// Makes `/proc/<pid>/ns/net` reachable as `/run/netns/<name>`. Fails if the name is taken.
pub fn publish(pid: u32, name: &str) -> Result<()> {
    check_name(name)?;
    fs::create_dir_all(NETNS_DIR).map_err(|e| RuntimeError::io("create", NETNS_DIR, e))?;
    let target = netns_path(name);
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&target)
        .map_err(|e| match e.kind() {
            io::ErrorKind::AlreadyExists => netns_error(name, "already exists"),
            _ => RuntimeError::io("create", &target, e),
        })?;
    let source = PathBuf::from(format!("/proc/{pid}/ns/net"));
    if let Err(e) = nix::mount::mount(
        Some(&source),
        &target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    ) {
        let _ = fs::remove_file(&target);
        return Err(netns_error(
            name,
            format!("bind mount {}: {e}", source.display()),
        ));
    }
    tracing::debug!(netns = name, pid, "published network namespace");
    Ok(())
}

/// Undoes [`publish`]; a name that is not there is not an error.
pub fn unpublish(name: &str) -> Result<()> {
    check_name(name)?;
    let target = netns_path(name);
    match nix::mount::umount2(&target, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(netns_error(name, format!("umount: {e}"))),
    }
    match fs::remove_file(&target) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(RuntimeError::io("remove", target, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check_name("weft-n1-ep-web1").is_ok());
        for bad in ["", "../etc", "a/b", ".hidden", "a b"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn opening_a_missing_namespace_is_a_typed_error() {
        assert!(matches!(
            open("weft-no-such-ns-xyz"),
            Err(RuntimeError::Netns { .. })
        ));
    }
}
