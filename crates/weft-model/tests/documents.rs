//! Every document and validation error: its message and its location.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

use weft_model::{
    Diagnostic, DocumentError, Documents, EpgPath, Severity, parse_hcl, parse_json, validate,
};

const FILE: &str = "policy.hcl";

fn parse_errors(text: &str) -> Vec<DocumentError> {
    match parse_hcl(FILE, text) {
        Ok(_) => panic!("expected parse errors for:\n{text}"),
        Err(e) => e.0,
    }
}

/// The single parse error of `text`, checked for line and message fragment.
fn assert_parse_error(text: &str, line: u32, path: Option<&str>, fragment: &str) {
    let errors = parse_errors(text);
    assert_eq!(
        errors.len(),
        1,
        "expected exactly one error, got {errors:#?}"
    );
    let e = &errors[0];
    assert_eq!(e.loc.file, FILE);
    assert_eq!(e.loc.line, line, "wrong line for {e}");
    assert_eq!(
        e.path.as_ref().map(|p| p.as_str()),
        path,
        "wrong path for {e}"
    );
    assert!(
        e.message.contains(fragment),
        "{:?} does not contain {fragment:?}",
        e.message
    );
    assert!(
        e.to_string().starts_with(&format!("{FILE}:{line}")),
        "display: {e}"
    );
}

fn diagnostics(text: &str) -> Vec<Diagnostic> {
    let model = parse_hcl(FILE, text).unwrap_or_else(|e| panic!("parse failed: {e}"));
    validate(&model).diagnostics
}

fn assert_one(text: &str, severity: Severity, line: u32, path: &str, fragment: &str) {
    let diags = diagnostics(text);
    assert_eq!(
        diags.len(),
        1,
        "expected exactly one diagnostic, got {diags:#?}"
    );
    let d = &diags[0];
    assert_eq!(d.severity, severity, "{d}");
    assert_eq!((d.loc.file.as_str(), d.loc.line), (FILE, line), "{d}");
    assert_eq!(d.path.as_str(), path, "{d}");
    assert!(
        d.message.contains(fragment),
        "{:?} does not contain {fragment:?}",
        d.message
    );
}

/// A valid tenant; tests append objects to it from line 13 on.
fn base(extra: &str) -> String {
    format!(
        r#"tenant "t" {{
  vrf "v" {{}}
  bridge_domain "bd" {{
    vrf = "v"
    subnet "10.0.0.0/24" {{ gateway = "10.0.0.1" }}
  }}
  filter "f" {{
    entry "e" {{ protocol = "tcp" }}
  }}
  contract "c" {{
    subject "s" {{ filters = ["f"] }}
  }}
{extra}}}
"#
    )
}

#[test]
fn the_base_document_is_valid() {
    assert!(diagnostics(&base("")).is_empty());
}

#[test]
fn malformed_hcl_names_the_line() {
    let errors = parse_errors("tenant \"t\" {\n  vrf \"v\" {\n    enforced = \n  }\n}\n");
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].message.starts_with("malformed HCL"),
        "{}",
        errors[0]
    );
    assert!(errors[0].loc.line >= 3, "{}", errors[0]);
}

#[test]
fn unknown_top_level_block() {
    assert_parse_error(
        "tenant \"t\" {}\nresource \"x\" {}\n",
        2,
        None,
        "unknown block \"resource\"",
    );
}

#[test]
fn unknown_attribute_in_epg() {
    let text = base(
        "  application_profile \"a\" {\n    epg \"e\" {\n      bridge_domain = \"bd\"\n      color = \"red\"\n    }\n  }\n",
    );
    assert_parse_error(
        &text,
        16,
        Some("t/application_profile:a/epg:e"),
        "unknown attribute \"color\" in epg",
    );
}

#[test]
fn wrong_attribute_type() {
    assert_parse_error(
        "tenant \"t\" {\n  vrf \"v\" {\n    enforced = \"yes\"\n  }\n}\n",
        3,
        Some("t/vrf:v"),
        "enforced must be true or false, found a string",
    );
}

#[test]
fn names_need_one_label() {
    assert_parse_error(
        "tenant \"t\" {\n  vrf {}\n}\n",
        2,
        Some("t"),
        "needs exactly one name label",
    );
}

#[test]
fn names_may_not_hold_separators() {
    assert_parse_error(
        "tenant \"t\" {\n  vrf \"a/b\" {}\n}\n",
        2,
        Some("t"),
        "must be 1 to 64 characters",
    );
}

#[test]
fn duplicate_names_in_one_file() {
    assert_parse_error(
        "tenant \"t\" {\n  vrf \"v\" {}\n  vrf \"v\" {}\n}\n",
        3,
        Some("t/vrf:v"),
        "duplicate vrf \"v\", first declared at policy.hcl:2",
    );
}

#[test]
fn duplicate_names_across_files() {
    let mut docs = Documents::default();
    docs.add_hcl("a.hcl", "tenant \"t\" {\n  vrf \"v\" {}\n}\n");
    docs.add_hcl(
        "b.hcl",
        "tenant \"t\" {\n  vrf \"w\" {}\n  vrf \"v\" {}\n}\n",
    );
    let errors = docs.finish().unwrap_err().0;
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].loc.to_string(), "b.hcl:3");
    assert!(
        errors[0].message.contains("first declared at a.hcl:2"),
        "{}",
        errors[0]
    );
}

#[test]
fn a_tenant_may_span_files() {
    let mut docs = Documents::default();
    docs.add_hcl("a.hcl", "tenant \"t\" {\n  vrf \"v\" {}\n}\n");
    docs.add_hcl("b.hcl", "tenant \"t\" {\n  vrf \"w\" {}\n}\n");
    let model = docs.finish().unwrap();
    assert_eq!(model.tenants["t"].vrfs.len(), 2);
}

#[test]
fn bad_cidr() {
    let text = "tenant \"t\" {\n  bridge_domain \"bd\" {\n    vrf = \"v\"\n    subnet \"10.0.0.300/24\" { gateway = \"10.0.0.1\" }\n  }\n}\n";
    assert_parse_error(
        text,
        4,
        Some("t/bridge_domain:bd/subnet:10.0.0.300/24"),
        "is not a CIDR",
    );
}

#[test]
fn cidr_with_host_bits() {
    let text = "tenant \"t\" {\n  bridge_domain \"bd\" {\n    vrf = \"v\"\n    subnet \"10.0.0.5/24\" { gateway = \"10.0.0.1\" }\n  }\n}\n";
    assert_parse_error(
        text,
        4,
        Some("t/bridge_domain:bd/subnet:10.0.0.5/24"),
        "did you mean 10.0.0.0/24?",
    );
}

#[test]
fn bad_gateway_address() {
    let text = "tenant \"t\" {\n  bridge_domain \"bd\" {\n    vrf = \"v\"\n    subnet \"10.0.0.0/24\" {\n      gateway = \"ten\"\n    }\n  }\n}\n";
    assert_parse_error(
        text,
        5,
        Some("t/bridge_domain:bd/subnet:10.0.0.0/24"),
        "gateway \"ten\" is not an IP address",
    );
}

#[test]
fn missing_required_attributes() {
    assert_parse_error(
        "tenant \"t\" {\n  bridge_domain \"bd\" {}\n}\n",
        2,
        Some("t/bridge_domain:bd"),
        "missing attribute \"vrf\"",
    );
    let text = base("  application_profile \"a\" {\n    epg \"e\" {}\n  }\n");
    assert_parse_error(
        &text,
        14,
        Some("t/application_profile:a/epg:e"),
        "missing attribute \"bridge_domain\"",
    );
    assert_parse_error(
        "tenant \"t\" {\n  contract \"c\" {\n    subject \"s\" {}\n  }\n}\n",
        3,
        Some("t/contract:c/subject:s"),
        "missing attribute \"filters\"",
    );
}

#[test]
fn port_out_of_range() {
    let text = "tenant \"t\" {\n  filter \"f\" {\n    entry \"e\" {\n      protocol = \"tcp\"\n      destination_port = 70000\n    }\n  }\n}\n";
    assert_parse_error(
        text,
        5,
        Some("t/filter:f/entry:e"),
        "port 70000 is out of range 0..65535",
    );
}

#[test]
fn port_range_reversed() {
    let text = "tenant \"t\" {\n  filter \"f\" {\n    entry \"e\" {\n      protocol = \"tcp\"\n      source_port = \"9000-8000\"\n    }\n  }\n}\n";
    assert_parse_error(
        text,
        5,
        Some("t/filter:f/entry:e"),
        "is reversed (9000 > 8000)",
    );
}

#[test]
fn port_not_a_number() {
    let text = "tenant \"t\" {\n  filter \"f\" {\n    entry \"e\" {\n      destination_port = \"http\"\n    }\n  }\n}\n";
    assert_parse_error(
        text,
        4,
        Some("t/filter:f/entry:e"),
        "\"http\" is not a port number",
    );
}

#[test]
fn unknown_keyword_value() {
    let text = "tenant \"t\" {\n  filter \"f\" {\n    entry \"e\" {\n      protocol = \"sctp\"\n    }\n  }\n}\n";
    assert_parse_error(
        text,
        4,
        Some("t/filter:f/entry:e"),
        "protocol \"sctp\" is not one of: any, tcp, udp, icmp",
    );
}

#[test]
fn every_error_of_a_document_is_reported_at_once() {
    let text = "tenant \"t\" {\n  vrf \"v\" { enforced = 1 }\n  vrf \"w\" { colour = 2 }\n  filter \"f\" {\n    entry \"e\" { destination_port = -1 }\n  }\n}\n";
    let errors = parse_errors(text);
    let lines: Vec<u32> = errors.iter().map(|e| e.loc.line).collect();
    assert_eq!(lines, vec![2, 3, 5], "{errors:#?}");
}

#[test]
fn unknown_vrf_of_a_bridge_domain() {
    let text = "tenant \"t\" {\n  bridge_domain \"bd\" {\n    vrf = \"nope\"\n  }\n}\n";
    assert_one(
        text,
        Severity::Error,
        2,
        "t/bridge_domain:bd",
        "vrf: unknown vrf \"nope\"",
    );
}

#[test]
fn unknown_bridge_domain_of_an_epg() {
    let text =
        base("  application_profile \"a\" {\n    epg \"e\" { bridge_domain = \"nope\" }\n  }\n");
    assert_one(
        &text,
        Severity::Error,
        14,
        "t/a/e",
        "bridge_domain: unknown bridge_domain \"nope\"",
    );
}

#[test]
fn unknown_contract_and_taboo_references() {
    let text = base(
        "  application_profile \"a\" {\n    epg \"e\" {\n      bridge_domain = \"bd\"\n      provides = [\"nope\"]\n      taboos = [\"none\"]\n    }\n  }\n",
    );
    let diags = diagnostics(&text);
    let messages: Vec<&str> = diags.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        messages,
        vec![
            "provides: unknown contract \"nope\"",
            "taboos: unknown taboo \"none\""
        ]
    );
    assert!(
        diags
            .iter()
            .all(|d| d.loc.line == 14 && d.path.as_str() == "t/a/e")
    );
}

#[test]
fn unknown_filter_of_a_subject() {
    let text = "tenant \"t\" {\n  contract \"c\" {\n    subject \"s\" {\n      filters = [\"nope\"]\n    }\n  }\n}\n";
    assert_one(
        text,
        Severity::Error,
        3,
        "t/contract:c/subject:s",
        "filters: unknown filter \"nope\"",
    );
}

#[test]
fn a_reference_listed_twice() {
    let text = base(
        "  application_profile \"a\" {\n    epg \"e\" {\n      bridge_domain = \"bd\"\n      provides = [\"c\", \"c\"]\n    }\n  }\n",
    );
    assert_one(
        &text,
        Severity::Error,
        14,
        "t/a/e",
        "contract \"c\" is listed twice",
    );
}

#[test]
fn overlapping_subnets_in_one_vrf() {
    let text = base(
        "  bridge_domain \"bd2\" {\n    vrf = \"v\"\n    subnet \"10.0.0.128/25\" { gateway = \"10.0.0.129\" }\n  }\n",
    );
    assert_one(
        &text,
        Severity::Error,
        15,
        "t/bridge_domain:bd2/subnet:10.0.0.128/25",
        "overlaps subnet 10.0.0.0/24 of bridge_domain \"bd\"",
    );
}

#[test]
fn the_same_subnet_in_two_vrfs_is_fine() {
    let text = base(
        "  vrf \"w\" {}\n  bridge_domain \"bd2\" {\n    vrf = \"w\"\n    subnet \"10.0.0.0/24\" { gateway = \"10.0.0.1\" }\n  }\n",
    );
    assert!(diagnostics(&text).is_empty());
}

#[test]
fn gateway_outside_its_subnet() {
    let text = "tenant \"t\" {\n  vrf \"v\" {}\n  bridge_domain \"bd\" {\n    vrf = \"v\"\n    subnet \"10.0.0.0/24\" { gateway = \"10.0.1.1\" }\n  }\n}\n";
    assert_one(
        text,
        Severity::Error,
        5,
        "t/bridge_domain:bd/subnet:10.0.0.0/24",
        "gateway 10.0.1.1 is outside subnet 10.0.0.0/24",
    );
}

#[test]
fn gateway_on_the_network_address() {
    let text = "tenant \"t\" {\n  vrf \"v\" {}\n  bridge_domain \"bd\" {\n    vrf = \"v\"\n    subnet \"10.0.0.0/24\" { gateway = \"10.0.0.0\" }\n  }\n}\n";
    assert_one(
        text,
        Severity::Error,
        5,
        "t/bridge_domain:bd/subnet:10.0.0.0/24",
        "network address",
    );
}

#[test]
fn ports_need_tcp_or_udp() {
    let text = "tenant \"t\" {\n  filter \"f\" {\n    entry \"e\" {\n      protocol = \"icmp\"\n      destination_port = 80\n    }\n  }\n}\n";
    assert_one(
        text,
        Severity::Error,
        3,
        "t/filter:f/entry:e",
        "ports need protocol tcp or udp, not icmp",
    );
}

#[test]
fn any_cannot_use_an_application_profile_scope() {
    let text = "tenant \"t\" {\n  vrf \"v\" {\n    any {\n      consumes = [\"c\"]\n    }\n  }\n  filter \"f\" {\n    entry \"e\" {}\n  }\n  contract \"c\" {\n    scope = \"application-profile\"\n    subject \"s\" { filters = [\"f\"] }\n  }\n  application_profile \"a\" {\n    epg \"e\" {\n      bridge_domain = \"bd\"\n      provides = [\"c\"]\n    }\n  }\n  bridge_domain \"bd\" { vrf = \"v\" }\n}\n";
    assert_one(
        text,
        Severity::Error,
        3,
        "t/vrf:v/any:any",
        "scope application-profile",
    );
}

#[test]
fn a_contract_consumed_but_never_provided_is_a_warning() {
    let text = base(
        "  application_profile \"a\" {\n    epg \"e\" {\n      bridge_domain = \"bd\"\n      consumes = [\"c\"]\n    }\n  }\n",
    );
    assert_one(
        &text,
        Severity::Warning,
        14,
        "t/a/e",
        "consumes contract \"c\", which nothing provides",
    );
}

#[test]
fn the_example_is_valid_and_json_is_its_twin() {
    let text = include_str!("../../../examples/three-tier.hcl");
    let model = parse_hcl("three-tier.hcl", text).unwrap();
    assert!(
        validate(&model).diagnostics.is_empty(),
        "{}",
        validate(&model)
    );
    let web = EpgPath::new("shop", "store", "web");
    assert_eq!(
        model.tenants["shop"].app_profiles["store"].epgs[&web.epg].consumes,
        ["web-to-app"]
    );

    let json = serde_json::to_string_pretty(&model).unwrap();
    let twin = parse_json("three-tier.json", &json).unwrap();
    // Locations differ (JSON carries none); everything else is the same.
    assert_eq!(
        serde_json::to_value(&twin).unwrap(),
        serde_json::to_value(&model).unwrap()
    );
    assert_eq!(
        twin.tenants["shop"].bridge_domains["net"].subnets["10.1.0.0/24"]
            .cidr
            .to_string(),
        "10.1.0.0/24"
    );
}

#[test]
fn json_errors_name_the_line_and_field() {
    let text = "{\n  \"tenant\": {\n    \"t\": {\n      \"vrf\": { \"v\": { \"enforcd\": true } }\n    }\n  }\n}\n";
    let errors = parse_json("p.json", text).unwrap_err().0;
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].loc.line, 4, "{}", errors[0]);
    assert!(
        errors[0].message.contains("unknown field `enforcd`"),
        "{}",
        errors[0]
    );
}

#[test]
fn json_names_are_checked_like_hcl_labels() {
    let text = r#"{"tenant": {"t": {"vrf": {"a/b": {}}}}}"#;
    let errors = parse_json("p.json", text).unwrap_err().0;
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].path.as_ref().unwrap().as_str(), "t/vrf:a/b");
    assert!(
        errors[0].message.contains("must be 1 to 64 characters"),
        "{}",
        errors[0]
    );
}

// ---- issue 12.5: the smaller points ----

#[test]
fn a_huge_port_is_quoted_as_written_not_as_a_float() {
    let huge = "100000000000000000000000000000000";
    let text = format!(
        "tenant \"t\" {{\n  filter \"f\" {{\n    entry \"e\" {{\n      protocol = \"tcp\"\n      destination_port = {huge}\n    }}\n  }}\n}}\n"
    );
    assert_parse_error(
        &text,
        5,
        Some("t/filter:f/entry:e"),
        &format!("destination_port: port {huge} is out of range 0..65535"),
    );
    let errors = parse_errors(&text);
    assert!(!errors[0].message.contains("1e32"), "{}", errors[0]);

    let text = "tenant \"t\" {\n  filter \"f\" {\n    entry \"e\" {\n      protocol = \"tcp\"\n      source_port = 80.5\n    }\n  }\n}\n";
    assert_parse_error(
        text,
        5,
        Some("t/filter:f/entry:e"),
        "source_port: \"80.5\" is not a port number",
    );

    // The same number as a string.
    let text = format!(
        "tenant \"t\" {{\n  filter \"f\" {{\n    entry \"e\" {{\n      protocol = \"tcp\"\n      destination_port = \"80-{huge}\"\n    }}\n  }}\n}}\n"
    );
    assert_parse_error(
        &text,
        5,
        Some("t/filter:f/entry:e"),
        &format!("port {huge} is out of range 0..65535"),
    );
}

#[test]
fn a_huge_port_in_json_is_quoted_as_written() {
    let huge = "100000000000000000000000000000000";
    let text = format!(
        "{{\"tenant\": {{\"t\": {{\"filter\": {{\"f\": {{\"entry\": {{\"e\": {{\n  \"protocol\": \"tcp\",\n  \"destination_port\": {huge}\n}}}}}}}}}}}}}}}}\n"
    );
    let errors = parse_json("p.json", &text).unwrap_err().0;
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].loc.line, 3, "{}", errors[0]);
    assert!(
        errors[0]
            .message
            .contains(&format!("port {huge} is out of range 0..65535")),
        "{}",
        errors[0]
    );
    assert!(!errors[0].message.contains("1e32"), "{}", errors[0]);

    let text = "{\"tenant\": {\"t\": {\"filter\": {\"f\": {\"entry\": {\"e\": {\"source_port\": 80.5}}}}}}}";
    let errors = parse_json("p.json", text).unwrap_err().0;
    assert!(
        errors[0].message.contains("\"80.5\" is not a port number"),
        "{}",
        errors[0]
    );
}

#[test]
fn json_name_errors_name_the_line() {
    let text = "{\n  \"tenant\": {\n    \"t\": {\n      \"application_profile\": {\n        \"a\": {\n          \"epg\": {\n            \"we b\": { \"bridge_domain\": \"bd\" }\n          }\n        }\n      },\n      \"bridge_domain\": {\n        \"bd\": {\n          \"vrf\": \"v\",\n          \"subnet\": { \"10.0.0.1/24\": { \"gateway\": \"10.0.0.1\" } }\n        }\n      }\n    }\n  }\n}\n";
    let errors = parse_json("p.json", text).unwrap_err().0;
    let found: Vec<(String, u32, String)> = errors
        .iter()
        .map(|e| {
            (
                e.loc.to_string(),
                e.loc.line,
                e.path.as_ref().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        found,
        vec![
            (
                "p.json:7".to_string(),
                7,
                "t/application_profile:a/epg:we b".to_string()
            ),
            (
                "p.json:14".to_string(),
                14,
                "t/bridge_domain:bd/subnet:10.0.0.1/24".to_string()
            ),
        ],
        "{errors:#?}"
    );
    assert!(
        errors[0].message.contains("epg: name \"we b\" must be"),
        "{}",
        errors[0]
    );
    assert!(
        errors[1].message.contains("did you mean 10.0.0.0/24?"),
        "{}",
        errors[1]
    );
}

#[test]
fn json_objects_carry_file_and_line_into_validation() {
    let text = "{\n  \"tenant\": {\n    \"t\": {\n      \"vrf\": { \"v\": {} },\n      \"application_profile\": {\n        \"a\": {\n          \"epg\": {\n            \"web\": { \"bridge_domain\": \"nope\" }\n          }\n        }\n      }\n    }\n  }\n}\n";
    let model = parse_json("p.json", text).unwrap();
    let report = validate(&model);
    let errors: Vec<_> = report.errors().collect();
    assert_eq!(errors.len(), 1, "{report}");
    assert_eq!(errors[0].loc.to_string(), "p.json:8", "{}", errors[0]);
    assert_eq!(errors[0].path.as_str(), "t/a/web");
    assert!(errors[0].message.contains("unknown bridge_domain \"nope\""));
}

#[test]
fn a_bad_tenant_name_hides_no_error_inside_the_tenant() {
    let text = "tenant \"a/b\" {\n  vrf \"v\" {\n    size = 3\n  }\n  filter \"f\" {\n    entry \"e\" {\n      destination_port = 70000\n    }\n  }\n  vrf \"x y\" {\n    enforced = \"no\"\n  }\n}\n";
    let errors = parse_errors(text);
    let found: Vec<(u32, Option<String>)> = errors
        .iter()
        .map(|e| (e.loc.line, e.path.as_ref().map(ToString::to_string)))
        .collect();
    assert_eq!(
        found,
        vec![
            (1, None),
            (3, Some("a/b/vrf:v".into())),
            (7, Some("a/b/filter:f/entry:e".into())),
            (10, Some("a/b".into())),
            (11, Some("a/b/vrf:x y".into())),
        ],
        "{errors:#?}"
    );
    assert!(
        errors[0].message.contains("tenant: name \"a/b\" must be"),
        "{}",
        errors[0]
    );
    assert!(
        errors[2].message.contains("port 70000 is out of range"),
        "{}",
        errors[2]
    );
    assert!(
        errors[4].message.contains("enforced must be true or false"),
        "{}",
        errors[4]
    );

    // A block without its name label is read too.
    let errors = parse_errors("tenant {\n  vrf \"v\" { size = 3 }\n}\n");
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert_eq!(errors[1].loc.line, 2, "{}", errors[1]);
    assert_eq!(errors[1].path.as_ref().unwrap().as_str(), "<unnamed>/vrf:v");
}

#[test]
fn a_subnet_with_a_bad_cidr_and_no_gateway_reports_both() {
    let text = "tenant \"t\" {\n  vrf \"v\" {}\n  bridge_domain \"bd\" {\n    vrf = \"v\"\n    subnet \"10.0.0.300/24\" {}\n    subnet \"10.0.1.0/24\" { gateway = 7 }\n  }\n}\n";
    let errors = parse_errors(text);
    let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 3, "{messages:#?}");
    assert!(messages[0].contains("is not a CIDR"), "{messages:#?}");
    assert!(
        messages[1].contains("missing attribute \"gateway\""),
        "{messages:#?}"
    );
    assert!(
        messages[2].contains("gateway must be a string"),
        "{messages:#?}"
    );
}
