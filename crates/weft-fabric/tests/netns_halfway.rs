//! What a namespace creation or deletion killed halfway leaves (a mount point with
//! nothing mounted: an agent stopped mid-reconcile) is not a namespace, can be deleted,
//! and can be created over: nothing is stuck on such a name.

mod common;
use weft_fabric::netns;

/// Creates `name`, then unmounts it as a deletion killed after its first step would.
fn half_deleted(name: &str) -> std::path::PathBuf {
    netns::create(name).expect("create");
    assert!(netns::exists(name), "a created namespace exists");
    let path = netns::path(name);
    nix::mount::umount2(&path, nix::mount::MntFlags::MNT_DETACH).expect("umount");
    assert!(path.exists(), "the mount point stays after the unmount");
    path
}

#[test]
fn a_half_deleted_namespace_is_deleted() {
    require_root!();
    let name = format!("weft-t{}-halfdel", std::process::id());
    let path = half_deleted(&name);
    assert!(
        !netns::exists(&name),
        "a bare mount point is not a namespace"
    );

    netns::delete(&name).expect("deleting a half-deleted namespace");
    assert!(!path.exists(), "mount point left behind");
    // And once more: nothing there is not an error.
    netns::delete(&name).expect("deleting a deleted namespace");
}

#[test]
fn a_namespace_is_created_over_a_bare_mount_point() {
    require_root!();
    let name = format!("weft-t{}-halfnew", std::process::id());
    let path = half_deleted(&name);

    netns::create(&name).expect("creating over a bare mount point");
    assert!(netns::exists(&name), "the namespace is there again");
    // It is a namespace of its own, entered like any other.
    let inode =
        |p: &std::path::Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
    let own = netns::in_netns(&name, || {
        std::fs::metadata("/proc/thread-self/ns/net")
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
    })
    .expect("enter")
    .expect("own namespace");
    assert_eq!(
        own,
        inode(&path),
        "entered the namespace mounted at its path"
    );
    assert_ne!(
        own,
        inode(std::path::Path::new("/proc/self/ns/net")),
        "not the test's own"
    );

    netns::delete(&name).expect("delete");
    assert!(!path.exists(), "mount point left behind");
}
