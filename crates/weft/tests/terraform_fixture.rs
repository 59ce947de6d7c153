//! The Terraform OpenStack provider's conversation for the seed's file 7.2 (read from the
//! provider's and gophercloud's source) is well-formed and covers every resource of
//! `examples/seed-terraform/7.2-today.tf` (checked by its own stdlib-only checker).

use std::path::PathBuf;
use std::process::Command;

#[test]
fn the_provider_fixture_covers_the_seed_file() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new("python3")
        .arg(root.join("tests/fixtures/terraform-openstack/check_fixture.py"))
        .arg(root.join("tests/fixtures/terraform-openstack/seed-7.2.json"))
        .arg(root.join("examples/seed-terraform/7.2-today.tf"))
        .output()
        .expect("python3 runs the fixture checker");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("99 steps"), "{text}");
}
