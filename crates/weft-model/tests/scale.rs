//! Validation stays near-linear in the size of a document (issue 12.4: 65,000 subnets in
//! one VRF took a minute with a pairwise overlap check).
#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::fmt::Write;
use std::time::{Duration, Instant};
use weft_model::{Severity, parse_hcl, parse_json, validate};

const SUBNETS: u32 = 65_000;
const PER_BD: u32 = 650;

/// One tenant, one VRF, `SUBNETS` /30 subnets in bridge domains of `PER_BD` each, and
/// `extra` appended inside the tenant.
fn document(extra: &str) -> String {
    let mut text = String::from("tenant \"big\" {\n  vrf \"main\" {}\n");
    for bd in 0..SUBNETS / PER_BD {
        writeln!(text, "  bridge_domain \"bd{bd}\" {{\n    vrf = \"main\"").unwrap();
        for i in 0..PER_BD {
            let base = (bd * PER_BD + i) * 4;
            let [_, b, c, d] = base.to_be_bytes();
            writeln!(
                text,
                "    subnet \"10.{b}.{c}.{d}/30\" {{ gateway = \"10.{b}.{c}.{}\" }}",
                d + 1
            )
            .unwrap();
        }
        text.push_str("  }\n");
    }
    text.push_str(
        r#"  filter "f" {
    entry "e" {
      protocol         = "tcp"
      destination_port = 80
    }
  }
  contract "c" {
    subject "s" {
      filters = ["f"]
    }
  }
  application_profile "ap" {
    epg "a" {
      bridge_domain = "bd0"
      provides      = ["c"]
    }
    epg "b" {
      bridge_domain = "bd1"
      consumes      = ["c"]
    }
  }
"#,
    );
    text.push_str(extra);
    text.push_str("}\n");
    text
}

/// Generous: the quadratic check took about 60 s in a release build; the sweep takes
/// well under a second there and a few seconds in a debug build on a busy machine.
const BOUND: Duration = Duration::from_secs(20);

#[test]
fn sixty_five_thousand_subnets_in_one_vrf_validate_quickly() {
    let text = document("");
    let started = Instant::now();
    let model = parse_hcl("big.hcl", &text).unwrap_or_else(|e| panic!("{e}"));
    let parsed = started.elapsed();
    let report = validate(&model);
    let total = started.elapsed();
    eprintln!(
        "{} bytes, {SUBNETS} subnets: parse {parsed:?}, validate {:?}",
        text.len(),
        total - parsed
    );
    assert!(report.diagnostics.is_empty(), "{report}");
    assert!(total < BOUND, "parse and validate took {total:?}");
}

#[test]
fn an_overlap_among_sixty_five_thousand_subnets_is_found_with_its_line() {
    // 10.0.0.0/29 covers the first two /30s of bd0.
    let extra = "  bridge_domain \"late\" {\n    vrf = \"main\"\n    subnet \"10.0.0.0/29\" { gateway = \"10.0.0.6\" }\n  }\n";
    let text = document(extra);
    let line = u32::try_from(text.lines().count()).unwrap() - 2;
    let started = Instant::now();
    let model = parse_hcl("big.hcl", &text).unwrap_or_else(|e| panic!("{e}"));
    let report = validate(&model);
    let elapsed = started.elapsed();
    let errors: Vec<_> = report.errors().collect();
    // bd0's subnets come before "late" (bridge domains by name): "late" is reported once,
    // naming the first subnet it overlaps.
    assert_eq!(errors.len(), 1, "{report}");
    let e = errors[0];
    assert_eq!(e.severity, Severity::Error);
    assert_eq!((e.loc.file.as_str(), e.loc.line), ("big.hcl", line), "{e}");
    assert_eq!(
        e.path.as_str(),
        "big/bridge_domain:late/subnet:10.0.0.0/29",
        "{e}"
    );
    assert!(
        e.message
            .contains("overlaps subnet 10.0.0.0/30 of bridge_domain \"bd0\" (big.hcl:5)"),
        "{e}"
    );
    assert!(elapsed < BOUND, "parse and validate took {elapsed:?}");
}

#[test]
fn the_json_twin_of_sixty_five_thousand_subnets_validates_quickly() {
    let model = parse_hcl("big.hcl", &document("")).unwrap();
    let json = serde_json::to_string_pretty(&model).unwrap();
    let started = Instant::now();
    let twin = parse_json("big.json", &json).unwrap_or_else(|e| panic!("{e}"));
    let report = validate(&twin);
    let elapsed = started.elapsed();
    eprintln!(
        "{} bytes of JSON: parse and validate {elapsed:?}",
        json.len()
    );
    assert!(report.diagnostics.is_empty(), "{report}");
    assert!(elapsed < BOUND, "parse and validate took {elapsed:?}");
}
