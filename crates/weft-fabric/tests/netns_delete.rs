//! Deleting a namespace is idempotent, also after a deletion that was killed between
//! its two steps (unmount, then remove the mount point): an agent stopped mid-reconcile
//! must not leave a name that nothing can delete.

mod common;
use weft_fabric::netns;

#[test]
fn a_half_deleted_namespace_is_deleted() {
    require_root!();
    let name = format!("weft-t{}-halfdel", std::process::id());
    netns::create(&name).expect("create");
    let path = netns::path(&name);

    // What a deletion killed after its unmount leaves: the mount point, nothing mounted.
    nix::mount::umount2(&path, nix::mount::MntFlags::MNT_DETACH).expect("umount");
    assert!(path.exists(), "the mount point stays after the unmount");

    netns::delete(&name).expect("deleting a half-deleted namespace");
    assert!(!path.exists(), "mount point left behind");
    // And once more: nothing there is not an error.
    netns::delete(&name).expect("deleting a deleted namespace");
}
