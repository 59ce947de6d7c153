//! Precedence cases found by hand, each with the document that shows it.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

use weft_compiler::{
    Allocation, CompileBudget, CompileError, Flow, Limit, Tier, compile, compile_within, explain,
};
use weft_model::{Action, EpgPath, Protocol, parse_hcl, validate};

/// VRF `v` whose vzAny block holds `any_sides`, contract `no-ssh` with one deny subject
/// over tcp/22, and EPGs `x` and `y` each with the line `epg_side`.
fn vzany_deny(any_sides: &str, epg_side: &str) -> String {
    format!(
        r#"
tenant "t" {{
  vrf "v" {{
    any {{
      {any_sides}
    }}
  }}
  bridge_domain "b" {{
    vrf = "v"
    subnet "10.0.0.0/24" {{ gateway = "10.0.0.1" }}
  }}
  filter "ssh" {{
    entry "tcp-22" {{
      protocol         = "tcp"
      destination_port = 22
    }}
  }}
  contract "no-ssh" {{
    subject "ssh" {{
      filters = ["ssh"]
      action  = "deny"
    }}
  }}
  application_profile "a" {{
    epg "x" {{
      bridge_domain = "b"
      {epg_side}
    }}
    epg "y" {{
      bridge_domain = "b"
      {epg_side}
    }}
  }}
}}
"#
    )
}

fn ssh() -> Flow {
    Flow::new(Protocol::Tcp, 22)
}

#[test]
fn a_vzany_deny_subject_never_blocks_traffic_inside_an_epg() {
    let x = EpgPath::new("t", "a", "x");
    let y = EpgPath::new("t", "a", "y");
    let cases = [
        ("consumes", "provides", "any consumes, x provides"),
        ("provides", "consumes", "any provides, x consumes"),
    ];
    for (any_side, epg_side, case) in cases {
        let doc = vzany_deny(
            &format!("{any_side} = [\"no-ssh\"]"),
            &format!("{epg_side} = [\"no-ssh\"]"),
        );
        let model = parse_hcl("t.hcl", &doc).unwrap();
        assert!(!validate(&model).has_errors(), "{case}");
        let policy = compile(&model, &Allocation::default()).unwrap();
        let inside = explain(&policy, &x, &x, &ssh()).unwrap();
        assert_eq!(
            inside.action,
            Action::Permit,
            "{case}: x -> x tcp/22: {inside}"
        );
        let rule = inside.rule.unwrap();
        assert_eq!(rule.tier, Tier::IntraEpg, "{case}: decided by {rule:?}");
        // Between EPGs the deny subject still applies, in the contract's direction.
        let (from, to) = if any_side == "consumes" {
            (&y, &x)
        } else {
            (&x, &y)
        };
        let between = explain(&policy, from, to, &ssh()).unwrap();
        assert_eq!(between.action, Action::Deny, "{case}: {from} -> {to}");
        assert_eq!(between.rule.unwrap().tier, Tier::Deny, "{case}");
    }
}

#[test]
fn a_vzany_deny_on_both_sides_still_lets_every_epg_talk_to_itself() {
    let doc = vzany_deny("consumes = [\"no-ssh\"]\n      provides = [\"no-ssh\"]", "");
    let model = parse_hcl("t.hcl", &doc).unwrap();
    assert!(!validate(&model).has_errors());
    let policy = compile(&model, &Allocation::default()).unwrap();
    for epg in ["x", "y"] {
        let e = EpgPath::new("t", "a", epg);
        let v = explain(&policy, &e, &e, &ssh()).unwrap();
        assert_eq!(v.action, Action::Permit, "{e} -> {e}: {v}");
    }
    let (x, y) = (EpgPath::new("t", "a", "x"), EpgPath::new("t", "a", "y"));
    assert_eq!(
        explain(&policy, &x, &y, &ssh()).unwrap().action,
        Action::Deny
    );
}

#[test]
fn isolation_still_denies_inside_an_epg_and_a_taboo_only_between_epgs() {
    let doc = r#"
tenant "t" {
  vrf "v" {}
  bridge_domain "b" {
    vrf = "v"
    subnet "10.0.0.0/24" { gateway = "10.0.0.1" }
  }
  filter "ssh" {
    entry "tcp-22" {
      protocol         = "tcp"
      destination_port = 22
    }
  }
  filter "all" {
    entry "ip" { protocol = "any" }
  }
  contract "open" {
    subject "all" { filters = ["all"] }
  }
  taboo "no-ssh" {
    subject "ssh" { filters = ["ssh"] }
  }
  application_profile "a" {
    epg "iso" {
      bridge_domain = "b"
      isolated      = true
    }
    epg "web" {
      bridge_domain = "b"
      consumes      = ["open"]
    }
    epg "db" {
      bridge_domain = "b"
      provides      = ["open"]
      taboos        = ["no-ssh"]
    }
  }
}
"#;
    let model = parse_hcl("t.hcl", doc).unwrap();
    assert!(!validate(&model).has_errors());
    let policy = compile(&model, &Allocation::default()).unwrap();
    let p = |e: &str| EpgPath::new("t", "a", e);
    let verdict = |s: &str, d: &str| explain(&policy, &p(s), &p(d), &ssh()).unwrap().action;
    assert_eq!(verdict("iso", "iso"), Action::Deny);
    assert_eq!(
        verdict("db", "db"),
        Action::Permit,
        "a taboo governs traffic between EPGs"
    );
    assert_eq!(
        verdict("web", "db"),
        Action::Deny,
        "the taboo beats the contract's permit"
    );
    let http = Flow::new(Protocol::Tcp, 80);
    let web_db = explain(&policy, &p("web"), &p("db"), &http).unwrap();
    assert_eq!(web_db.action, Action::Permit);
}

/// `n` EPGs in one VRF that all consume and provide one contract of `entries` entries.
fn many_to_many(n: usize, entries: usize) -> String {
    let mut doc = String::from(
        r#"tenant "t" {
  vrf "v" {}
  bridge_domain "b" {
    vrf = "v"
    subnet "10.0.0.0/16" { gateway = "10.0.0.1" }
  }
  filter "f" {
"#,
    );
    for e in 0..entries {
        doc.push_str(&format!(
            "    entry \"e{e}\" {{\n      protocol = \"tcp\"\n      destination_port = {}\n    }}\n",
            1000 + e
        ));
    }
    doc.push_str(
        "  }\n  contract \"mesh\" {\n    subject \"s\" { filters = [\"f\"] }\n  }\n  application_profile \"a\" {\n",
    );
    for i in 0..n {
        doc.push_str(&format!(
            "    epg \"e{i}\" {{\n      bridge_domain = \"b\"\n      consumes = [\"mesh\"]\n      provides = [\"mesh\"]\n    }}\n"
        ));
    }
    doc.push_str("  }\n}\n");
    doc
}

#[test]
fn the_budget_counts_exactly_what_the_compiler_expands() {
    // 30 EPGs x 29 others x 2 entries, plus one intra-EPG rule each.
    let model = parse_hcl("mesh.hcl", &many_to_many(30, 2)).unwrap();
    let exact = 30 * 29 * 2 + 30;
    let policy = compile(&model, &Allocation::default()).unwrap();
    assert_eq!(policy.rule_count(), exact);
    let at = CompileBudget {
        max_rules_per_vrf: exact,
        ..CompileBudget::default()
    };
    assert!(compile_within(&model, &Allocation::default(), at).is_ok());
    let under = CompileBudget {
        max_rules_per_vrf: exact - 1,
        ..CompileBudget::default()
    };
    let Err(CompileError::OverBudget(over)) = compile_within(&model, &Allocation::default(), under)
    else {
        panic!("one rule over the budget must be refused");
    };
    assert_eq!(over.value, exact);
    let Limit::RulesPerVrf(vrf) = &over.limit else {
        panic!("expected the per-VRF limit, got {:?}", over.limit);
    };
    assert_eq!(vrf.to_string(), "t/vrf:v");
}

#[test]
fn a_many_to_many_contract_is_refused_before_it_is_expanded() {
    // 2,000 EPGs on one contract: 4 million rules if expanded.
    let model = parse_hcl("mesh.hcl", &many_to_many(2_000, 1)).unwrap();
    assert!(!validate(&model).has_errors());
    let Err(err) = compile(&model, &Allocation::default()) else {
        panic!("a 4M-rule policy must be refused by the default budget");
    };
    let message = err.to_string();
    for needle in [
        "4000000 rules in VRF t/vrf:v",
        "contract t/contract:mesh",
        "2000 consuming x 2000 providing EPGs",
        "vzAny",
        "preferred group",
    ] {
        assert!(message.contains(needle), "{needle:?} not in: {message}");
    }
    // A total or memory budget names the same contract.
    let tight = CompileBudget {
        max_rules: 10_000,
        ..CompileBudget::UNLIMITED
    };
    let Err(CompileError::OverBudget(over)) = compile_within(&model, &Allocation::default(), tight)
    else {
        panic!("over the total budget");
    };
    assert_eq!(over.limit, Limit::Rules);
    assert_eq!(over.largest.unwrap().rules, 2_000 * 1_999);
}

#[test]
fn a_compiled_rule_is_small() {
    // The rule itself; its trace shares names and filter entries through `Arc`s.
    assert!(
        CompileBudget::rule_bytes() <= 80,
        "a rule takes {} bytes",
        CompileBudget::rule_bytes()
    );
}
