//! App documents: the Figure 9 fixture, and every error with its message and location.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

use weft_app::{
    AppAttribute, AppError, Apps, Constraint, Duration, EnvTemplate, HealthCheckKind, ImageRef,
    Runtime, TemplatePart, apps_to_json, dependency_order, parse_apps_hcl, parse_apps_json,
    validate_apps,
};

const FILE: &str = "apps.hcl";
const FIGURE9: &str = include_str!("fixtures/figure9.hcl");

fn errors(text: &str) -> Vec<AppError> {
    match parse_apps_hcl(FILE, text) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(e) => e.0,
    }
}

/// The single error of `text`: its line, app and a fragment of its message.
fn assert_error(text: &str, line: u32, app: Option<&str>, fragment: &str) {
    let errors = errors(text);
    assert_eq!(
        errors.len(),
        1,
        "expected exactly one error, got {errors:#?}"
    );
    let e = &errors[0];
    assert_eq!(e.loc.file, FILE);
    assert_eq!(e.loc.line, line, "wrong line for {e}");
    assert_eq!(e.app.as_deref(), app, "wrong app for {e}");
    assert!(
        e.message.contains(fragment),
        "{:?} does not contain {fragment:?}",
        e.message
    );
    let shown = e.to_string();
    assert!(
        shown.starts_with(&format!("{FILE}:{line}")),
        "display: {shown}"
    );
}

/// A valid app "web" whose body lines 2..=5 are fixed; `extra` starts on line 6.
fn app(extra: &str) -> String {
    format!(
        "app \"web\" {{\n  cmd = \"./serve\"\n  cpus = 0.5\n  mem = 128\n  epg = \"shop/store/web\"\n{extra}\n}}\n"
    )
}

#[test]
fn figure9_parses_with_the_master_address_in_the_agents_env() {
    let apps = parse_apps_hcl("figure9.hcl", FIGURE9).unwrap();
    validate_apps(&apps).unwrap();
    let agent = apps.get("agent").unwrap();
    assert_eq!(agent.instances, 3);
    assert!(agent.privileged);
    assert_eq!(agent.loc.line, 23);
    assert_eq!(
        agent.env["MASTER"].parts,
        vec![TemplatePart::AppRef {
            app: "master".into(),
            attribute: AppAttribute::Address
        }]
    );
    assert_eq!(
        agent.constraints,
        vec![Constraint::Unique {
            attribute: "hostname".into()
        }]
    );
    assert_eq!(agent.restart.max_delay, Duration::from_secs(60));
    assert_eq!(agent.upgrade_strategy.maximum_over_capacity, 0.2);
    let master = apps.get("master").unwrap();
    let Some(Runtime::Docker { image, args }) = master.runtime() else {
        panic!("master runs an image");
    };
    assert_eq!(image.name, "mesosphere/mesos-master");
    assert_eq!(image.tag.as_deref(), Some("1.9.0"));
    assert_eq!(args.len(), 2);
    assert_eq!(master.health_checks[0].kind, HealthCheckKind::Http);
    assert_eq!(master.health_checks[0].timeout, Duration::from_millis(5000));
    assert!(!master.privileged, "privileged defaults to false");
    assert_eq!(
        dependency_order(&apps).unwrap(),
        vec!["master".to_string(), "agent".to_string()]
    );
}

#[test]
fn json_twin_round_trips_to_the_same_apps() {
    let apps = parse_apps_hcl("figure9.hcl", FIGURE9).unwrap();
    let json = apps_to_json(&apps);
    assert!(
        json.contains("\"MASTER\": \"${app.master.address}\""),
        "{json}"
    );
    let back = parse_apps_json("figure9.json", &json).unwrap();
    // Locations differ (JSON has no lines); everything else is equal.
    let strip = |a: &Apps| {
        let mut a = a.clone();
        for app in a.apps.values_mut() {
            app.loc = Default::default();
        }
        a
    };
    assert_eq!(strip(&apps), strip(&back));
}

#[test]
fn json_rejects_unknown_fields_and_bad_values() {
    let bad = r#"{"app": {"web": {"cmd": "x", "cpus": 1, "mem": 1, "epg": "a/b/c", "colour": 1}}}"#;
    let e = parse_apps_json("a.json", bad).unwrap_err().0;
    assert!(e[0].message.contains("unknown field `colour`"), "{e:?}");
    let bad = r#"{"app": {"web": {"cmd": "x", "cpus": 0, "mem": 1, "epg": "a/b/c",
        "upgrade_strategy": {"minimum_health_capacity": 1.5}}}}"#;
    let e = parse_apps_json("a.json", bad).unwrap_err().0;
    assert_eq!(e.len(), 2, "{e:?}");
    assert_eq!(e[0].app.as_deref(), Some("web"));
    assert!(
        e[0].message.contains("cpus must be at least 0.001"),
        "{e:?}"
    );
    assert!(
        e[1].message.contains(
            "upgrade_strategy.minimum_health_capacity: minimum_health_capacity must be a fraction"
        ),
        "{e:?}"
    );
    let bad = r#"{"app": {"web": {"image": "Nginx", "cpus": 1, "mem": 1, "epg": "a/b/c"}}}"#;
    let e = parse_apps_json("a.json", bad).unwrap_err().0;
    assert!(e[0].message.contains("must be lowercase"), "{e:?}");
    assert_eq!(e[0].loc.line, 1);
}

#[test]
fn valid_app_has_defaults() {
    let apps = parse_apps_hcl(FILE, &app("")).unwrap();
    let web = apps.get("web").unwrap();
    assert_eq!(web.instances, 1);
    assert_eq!(web.disk, 0);
    assert_eq!(web.upgrade_strategy.minimum_health_capacity, 1.0);
    assert_eq!(web.restart.backoff, Duration::from_secs(1));
    assert_eq!(web.runtime(), Some(Runtime::Process { cmd: "./serve" }));
}

#[test]
fn resource_errors_point_at_their_lines() {
    let text = "app \"web\" {\n  cmd = \"x\"\n  cpus = 0\n  mem = 0\n  epg = \"a/b/c\"\n}\n";
    let e = errors(text);
    assert_eq!(e.len(), 2, "{e:#?}");
    assert_eq!((e[0].loc.line, e[0].app.as_deref()), (3, Some("web")));
    assert!(
        e[0].message
            .contains("cpus must be at least 0.001, found 0")
    );
    assert_eq!(e[1].loc.line, 4);
    assert!(e[1].message.contains("mem must be greater than 0"));
    assert_error(
        "app \"web\" {\n  cmd = \"x\"\n  cpus = -1\n  mem = 1\n  epg = \"a/b/c\"\n}\n",
        3,
        Some("web"),
        "cpus must be at least 0.001, found -1",
    );
    assert_error(
        &app("  instances = -2"),
        6,
        Some("web"),
        "instances must be a whole number from 0",
    );
    assert_error(
        &app("  disk = 1.5"),
        6,
        Some("web"),
        "disk must be a whole number",
    );
    // hcl-edit itself refuses a repeated attribute.
    assert_error(&app("  mem = 5"), 6, None, "malformed HCL");
    assert_error(
        &app("  restart {}\n  restart {}"),
        7,
        Some("web"),
        "restart is set more than once",
    );
}

#[test]
fn missing_required_attributes_point_at_the_block() {
    let e = errors("\n\napp \"web\" {\n  cmd = \"x\"\n}\n");
    let messages: Vec<_> = e.iter().map(|e| (e.loc.line, e.message.as_str())).collect();
    assert_eq!(
        messages,
        vec![
            (3, "missing attribute \"cpus\""),
            (3, "missing attribute \"mem\""),
            (3, "missing attribute \"epg\""),
        ]
    );
}

#[test]
fn exactly_one_of_cmd_and_image() {
    assert_error(
        &app("  image = \"nginx\""),
        6,
        Some("web"),
        "set either cmd (a process) or image (a docker container), not both",
    );
    let text = "app \"web\" {\n  cpus = 1\n  mem = 1\n  epg = \"a/b/c\"\n}\n";
    assert_error(text, 1, Some("web"), "missing cmd (a process) or image");
    assert_error(
        &app("  args = [\"-v\"]"),
        6,
        Some("web"),
        "args are passed to an image",
    );
}

#[test]
fn image_references_follow_the_docker_grammar() {
    for good in [
        "nginx",
        "nginx:1.25",
        "library/nginx:latest",
        "registry.local:5000/team/app:v1.2-rc_3",
        "localhost/app",
        "app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "my_app__x/a.b-c",
    ] {
        let image: ImageRef = good.parse().unwrap_or_else(|e| panic!("{good}: {e}"));
        assert_eq!(image.to_string(), good);
    }
    let r: ImageRef = "registry.local:5000/team/app:v1".parse().unwrap();
    assert_eq!(r.registry.as_deref(), Some("registry.local:5000"));
    assert_eq!(
        (r.name.as_str(), r.tag.as_deref()),
        ("team/app", Some("v1"))
    );
    for (bad, why) in [
        ("Nginx", "must be lowercase"),
        ("nginx:", "tag \"\""),
        ("nginx@sha256:xyz", "digest"),
        ("-nginx", "repository name component"),
        ("a//b", "repository name component"),
        ("", "empty"),
    ] {
        let e = bad.parse::<ImageRef>().unwrap_err().to_string();
        assert!(e.contains(why), "{bad}: {e}");
    }
    let text =
        "app \"web\" {\n  image = \"Shop/Web\"\n  cpus = 1\n  mem = 1\n  epg = \"a/b/c\"\n}\n";
    assert_error(text, 2, Some("web"), "\"Shop\" must be lowercase");
}

#[test]
fn bad_epg_path() {
    let text = "app \"web\" {\n  cmd = \"x\"\n  cpus = 1\n  mem = 1\n  epg = \"shop/web\"\n}\n";
    assert_error(text, 5, Some("web"), "epg: \"shop/web\" is not an EPG path");
}

#[test]
fn unknown_fields_and_blocks() {
    assert_error(
        &app("  colour = \"red\""),
        6,
        Some("web"),
        "unknown attribute \"colour\" in app",
    );
    assert_error(
        &app("  volume {}"),
        6,
        Some("web"),
        "unknown block \"volume\" in app",
    );
    assert_error(
        &app("  restart {\n    tries = 3\n  }"),
        7,
        Some("web"),
        "unknown attribute \"tries\" in restart",
    );
    assert_error("job \"x\" {}\n", 1, None, "unknown block \"job\"");
    assert_error(
        "app \"Web\" {}\n",
        1,
        None,
        "app name \"Web\" must be 1 to 63",
    );
}

#[test]
fn duplicate_apps_name_the_first() {
    let text = format!("{}{}", app(""), app(""));
    let e = errors(&text);
    assert_eq!(e.len(), 1, "{e:#?}");
    assert_eq!(e[0].loc.line, 8);
    assert!(
        e[0].message
            .contains("duplicate app \"web\", first declared at apps.hcl:1")
    );
}

#[test]
fn durations() {
    assert_eq!(
        "1m30s".parse::<Duration>().unwrap(),
        Duration::from_millis(90_000)
    );
    assert_eq!("500ms".parse::<Duration>().unwrap().to_string(), "500ms");
    assert_eq!(Duration::from_millis(3_723_004).to_string(), "1h2m3s4ms");
    for bad in ["10", "s", "1.5s", "10 s", "3d", ""] {
        assert!(bad.parse::<Duration>().is_err(), "{bad}");
    }
    assert_error(
        &app("  health_check {\n    type = \"tcp\"\n    port = 80\n    interval = \"10\"\n  }"),
        9,
        Some("web"),
        "interval: \"10\" is not a duration: a unit is missing",
    );
}

#[test]
fn health_check_errors() {
    assert_error(
        &app("  health_check {\n    type = \"http\"\n  }"),
        6,
        Some("web"),
        "http and tcp health checks need a port",
    );
    assert_error(
        &app("  health_check {\n    type = \"grpc\"\n  }"),
        7,
        Some("web"),
        "health check type \"grpc\" is not one of: http, tcp, command",
    );
    assert_error(
        &app(
            "  health_check {\n    type = \"tcp\"\n    port = 80\n    interval = \"5s\"\n    timeout = \"5s\"\n  }",
        ),
        10,
        Some("web"),
        "timeout must be longer than 0s and shorter than interval 5s",
    );
    assert_error(
        &app(
            "  health_check {\n    type = \"command\"\n    command = \"true\"\n    port = 80\n  }",
        ),
        9,
        Some("web"),
        "a command health check takes no port",
    );
    assert_error(
        &app("  health_check {\n    type = \"tcp\"\n    port = 70000\n  }"),
        8,
        Some("web"),
        "port must be a whole number from 0 to 65535",
    );
}

#[test]
fn fractions_and_backoff_in_range() {
    assert_error(
        &app(
            "  upgrade_strategy {\n    minimum_health_capacity = 0.5\n    maximum_over_capacity = 1.2\n  }",
        ),
        8,
        Some("web"),
        "maximum_over_capacity must be a fraction from 0 to 1, found 1.2",
    );
    assert_error(
        &app("  upgrade_strategy {\n    minimum_health_capacity = -0.1\n  }"),
        7,
        Some("web"),
        "minimum_health_capacity must be a fraction from 0 to 1, found -0.1",
    );
    assert_error(
        &app("  restart {\n    backoff_factor = 0.5\n  }"),
        7,
        Some("web"),
        "backoff_factor must be at least 1.0",
    );
    assert_error(
        &app("  restart {\n    backoff = \"10s\"\n    max_delay = \"5s\"\n  }"),
        8,
        Some("web"),
        "max_delay 5s is shorter than backoff 10s",
    );
}

#[test]
fn constraints() {
    let text = app(
        "  constraint {\n    attribute = \"rack\"\n    operator = \"max_per\"\n    value = 2\n  }\n  constraint {\n    attribute = \"zone\"\n    operator = \"like\"\n    value = \"eu-.*\"\n  }\n  constraint {\n    attribute = \"zone\"\n    operator = \"spread\"\n  }",
    );
    let apps = parse_apps_hcl(FILE, &text).unwrap();
    let c = &apps.get("web").unwrap().constraints;
    assert_eq!(c.len(), 3);
    assert_eq!(
        c[0],
        Constraint::MaxPer {
            attribute: "rack".into(),
            value: 2
        }
    );
    let Constraint::Like { value, .. } = &c[1] else {
        panic!()
    };
    assert!(value.matches("eu-west"));
    assert!(!value.matches("us-eu-west"), "like matches the whole value");
    assert_error(
        &app("  constraint {\n    attribute = \"rack\"\n    operator = \"near\"\n  }"),
        6,
        Some("web"),
        "constraint operator \"near\" is not one of: unique, =, like, max_per, spread",
    );
    assert_error(
        &app(
            "  constraint {\n    attribute = \"rack\"\n    operator = \"like\"\n    value = \"(\"\n  }",
        ),
        9,
        Some("web"),
        "\"(\" is not a regular expression",
    );
    assert_error(
        &app("  constraint {\n    attribute = \"rack\"\n    operator = \"=\"\n  }"),
        6,
        Some("web"),
        "constraint operator \"=\" needs a value",
    );
    assert_error(
        &app(
            "  constraint {\n    attribute = \"rack\"\n    operator = \"max_per\"\n    value = 0\n  }",
        ),
        9,
        Some("web"),
        "max_per value must be at least 1",
    );
}

#[test]
fn templates() {
    let t: EnvTemplate = "http://${app.api.address}:8080/ $${HOME}".parse().unwrap();
    assert_eq!(t.referenced_apps().collect::<Vec<_>>(), vec!["api"]);
    assert_eq!(t.to_string(), "http://${app.api.address}:8080/ $${HOME}");
    let rendered = t.render(|app, attr| Some(format!("{app}-{}", attr.as_str())));
    assert_eq!(
        rendered.as_deref(),
        Some("http://api-address:8080/ ${HOME}")
    );
    for (bad, why) in [
        ("${app.api.port}", "unknown attribute \"port\""),
        ("${env.HOME}", "cannot read ${env.HOME}"),
        ("${app.api.address", "never closed"),
        ("${app.API.address}", "app name \"API\""),
    ] {
        let e = bad.parse::<EnvTemplate>().unwrap_err().to_string();
        assert!(e.contains(why), "{bad}: {e}");
    }
    // Escapes survive HCL's own template parsing.
    let apps = parse_apps_hcl(FILE, &app("  env = { HOME = \"$${HOME}/x\" }")).unwrap();
    assert_eq!(
        apps.get("web").unwrap().env["HOME"].parts,
        vec![TemplatePart::Literal("${HOME}/x".into())]
    );
    assert_error(
        &app("  env = {\n    A = \"${app.db.port}\"\n  }"),
        7,
        Some("web"),
        "env.A: malformed template \"${app.db.port}\"",
    );
    assert_error(
        &app("  cmd2 = 1\n"),
        6,
        Some("web"),
        "unknown attribute \"cmd2\"",
    );
}

#[test]
fn references_to_missing_apps_and_cycles_are_rejected() {
    let text = r#"app "a" {
  cmd = "x"
  cpus = 1
  mem = 1
  epg = "t/p/e"
  env = { B = "${app.b.addresses}", Z = "${app.zz.address}" }
}
app "b" {
  cmd = "x"
  cpus = 1
  mem = 1
  epg = "t/p/e"
  env { A = "${app.a.address}" }
}
"#;
    let apps = parse_apps_hcl(FILE, text).unwrap();
    let e = validate_apps(&apps).unwrap_err().0;
    assert_eq!(e.len(), 2, "{e:#?}");
    assert_eq!((e[0].loc.line, e[0].app.as_deref()), (1, Some("a")));
    assert!(
        e[0].message
            .contains("env Z refers to app \"zz\", which is not declared")
    );
    assert_eq!((e[1].loc.line, e[1].app.as_deref()), (1, Some("a")));
    assert!(
        e[1].message.contains("in a cycle: a -> b -> a"),
        "{}",
        e[1].message
    );
    assert_eq!(dependency_order(&apps), None);
}

#[test]
fn ports_tags_and_meta_for_discovery() {
    let text = app(
        "  ports = { http = 8080, admin = 9090 }\n  tags = [\"v1\", \"primary\"]\n  meta = { version = \"1.2\", team = \"store\" }",
    );
    let apps = parse_apps_hcl(FILE, &text).unwrap();
    let web = apps.get("web").unwrap();
    assert_eq!(web.ports["http"], 8080);
    assert_eq!(web.ports["admin"], 9090);
    assert_eq!(web.tags, ["v1", "primary"]);
    assert_eq!(web.meta["version"], "1.2");
    // The JSON twin carries them too.
    let back = parse_apps_json("apps.json", &apps_to_json(&apps)).unwrap();
    assert_eq!(back.get("web").unwrap().ports, web.ports);
    assert_eq!(back.get("web").unwrap().meta, web.meta);

    assert_error(
        &app("  ports = { http = 70000 }"),
        6,
        Some("web"),
        "ports.http must be a port from 1 to 65535",
    );
    assert_error(
        &app("  ports = { http = \"80\" }"),
        6,
        Some("web"),
        "ports.http must be a port number",
    );
    assert_error(
        &app("  ports = { \"a b\" = 80 }"),
        6,
        Some("web"),
        "must be letters, digits",
    );
    assert_error(
        &app("  tags = [\"has space\"]"),
        6,
        Some("web"),
        "tag \"has space\"",
    );
    assert_error(
        &app("  meta = { v = 1 }"),
        6,
        Some("web"),
        "meta.v must be a string",
    );
    let many_tags: Vec<String> = (0..65).map(|i| format!("\"t{i}\"")).collect();
    assert_error(
        &app(&format!("  tags = [{}]", many_tags.join(", "))),
        6,
        Some("web"),
        "at most 64 tags",
    );
    let long = "x".repeat(513);
    assert_error(
        &app(&format!("  meta = {{ v = \"{long}\" }}")),
        6,
        Some("web"),
        "over 512",
    );
    let json = r#"{"app": {"web": {"cmd": "x", "cpus": 1, "mem": 1, "epg": "a/b/c", "ports": {"http": 0}}}}"#;
    let err = parse_apps_json("apps.json", json).unwrap_err();
    assert!(err.to_string().contains("ports.http"), "{err}");
}

#[test]
fn an_app_on_an_existing_endpoint_has_one_stop_first_task_with_its_groups() {
    let ok = app(
        "  endpoint = \"port-1a2b3c4d\"\n  upgrade_strategy {\n    minimum_health_capacity = 0\n    maximum_over_capacity = 0\n  }",
    );
    let apps = parse_apps_hcl(FILE, &ok).unwrap();
    let web = apps.get("web").unwrap();
    assert_eq!(web.endpoint.as_deref(), Some("port-1a2b3c4d"));
    assert_eq!(web.endpoint_of("web-1"), "port-1a2b3c4d");
    // The JSON twin carries it.
    let back = parse_apps_json("apps.json", &apps_to_json(&apps)).unwrap();
    assert_eq!(back.get("web").unwrap().endpoint, web.endpoint);
    // Without it, a task's endpoint is its own.
    let plain = parse_apps_hcl(FILE, &app("")).unwrap();
    assert_eq!(plain.get("web").unwrap().endpoint_of("web-1"), "web-1");

    let stop_first =
        "  upgrade_strategy {\n    minimum_health_capacity = 0\n    maximum_over_capacity = 0\n  }";
    for (extra, fragment) in [
        (
            format!("  endpoint = \"p1\"\n  instances = 2\n{stop_first}"),
            "at most 1 instance",
        ),
        (
            format!("  endpoint = \"p1\"\n  security_groups = [\"default\"]\n{stop_first}"),
            "the endpoint's security groups",
        ),
        (
            "  endpoint = \"p1\"".to_string(),
            "replaces its task stop-first",
        ),
        (
            format!("  endpoint = \"a b\"\n{stop_first}"),
            "1 to 64 letters, digits",
        ),
        (
            format!("  ip = \"10.1.0.9\"\n  instances = 2\n{stop_first}"),
            "an app with a fixed ip has at most 1 instance",
        ),
        ("  ip = \"10.1.0.9\"".to_string(), "stop-first"),
        (
            format!("  ip = \"10.1.0.9\"\n  endpoint = \"p1\"\n{stop_first}"),
            "set ip or endpoint, not both",
        ),
        (
            format!("  ip = \"ten\"\n{stop_first}"),
            "not an IPv4 or IPv6 address",
        ),
    ] {
        let errors = errors(&app(&extra));
        assert_eq!(errors.len(), 1, "{extra}: {errors:#?}");
        assert!(
            errors[0].message.contains(fragment),
            "{extra}: {:?} does not contain {fragment:?}",
            errors[0].message
        );
        assert_eq!(errors[0].app.as_deref(), Some("web"));
    }
}

#[test]
fn more_networks_are_network_blocks_with_their_endpoints_named_after_the_task() {
    let ok = app(
        "  network {\n    epg = \"shop/store/db\"\n  }\n  network {\n    epg = \"lab/net/c\"\n  }",
    );
    let apps = parse_apps_hcl(FILE, &ok).unwrap();
    let web = apps.get("web").unwrap();
    let epgs: Vec<String> = web.networks.iter().map(|n| n.epg.to_string()).collect();
    assert_eq!(epgs, ["shop/store/db", "lab/net/c"]);
    assert_eq!(web.endpoints_of("web-3"), ["web-3", "web-3-n1", "web-3-n2"]);
    // The JSON twin carries them, as `network`.
    let json = apps_to_json(&apps);
    assert!(json.contains("\"network\""), "{json}");
    let back = parse_apps_json("apps.json", &json).unwrap();
    assert_eq!(back.get("web").unwrap().networks, web.networks);

    let stop_first =
        "  upgrade_strategy {\n    minimum_health_capacity = 0\n    maximum_over_capacity = 0\n  }";
    let eight: String = (0..8)
        .map(|_| "  network {\n    epg = \"shop/store/db\"\n  }\n")
        .collect();
    for (extra, line, fragment) in [
        // Lines: the app's body starts at 6.
        ("  network {\n  }".to_string(), 6, "network needs an epg"),
        ("  network {\n    epg = \"a/b\"\n  }".to_string(), 7, "epg"),
        (
            "  network {\n    epg = \"a/b/c\"\n    ip = \"ten\"\n  }".to_string(),
            8,
            "not an IPv4 or IPv6 address",
        ),
        (
            "  network {\n    epg = \"a/b/c\"\n    vlan = 7\n  }".to_string(),
            8,
            "vlan",
        ),
        (eight, 6, "at most 8 networks"),
        (
            "  network {\n    epg = \"a/b/c\"\n    ip = \"10.9.0.5\"\n  }".to_string(),
            1,
            "stop-first",
        ),
        (
            format!(
                "  instances = 2\n  network {{\n    epg = \"a/b/c\"\n    ip = \"10.9.0.5\"\n  }}\n{stop_first}"
            ),
            6,
            "at most 1 instance",
        ),
    ] {
        let errors = errors(&app(&extra));
        assert_eq!(errors.len(), 1, "{extra}: {errors:#?}");
        assert!(
            errors[0].message.contains(fragment),
            "{extra}: {:?} does not contain {fragment:?}",
            errors[0].message
        );
        assert_eq!(errors[0].loc.line, line, "{extra}: {}", errors[0]);
    }
    // A fixed ip on a later network, one stop-first instance: fine.
    let fixed = app(&format!(
        "  network {{\n    epg = \"a/b/c\"\n    ip = \"10.9.0.5\"\n  }}\n{stop_first}"
    ));
    let apps = parse_apps_hcl(FILE, &fixed).unwrap();
    assert_eq!(
        apps.get("web").unwrap().networks[0].ip,
        Some("10.9.0.5".parse().unwrap())
    );
}
