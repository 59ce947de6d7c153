//! Neutron security groups and port security through the OpenStack listener in process:
//! groups and rules are the tenant's security groups in weft's model (the project's
//! `default` group made on first look, with Neutron's four rules), ports carry them as
//! their endpoint's groups. Every refusal answers Neutron's code, type and body, and
//! changes nothing: the tenant, the endpoints and Neutron's lists read the same before
//! and after. The second test walks the list of bad input.
#![allow(clippy::unwrap_used)] // tests fail loudly

mod common;
mod openstack_common;

use openstack_common::{Os, id, network, port};
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_groups_are_the_tenants_and_ports_carry_them() {
    let dir = tempfile::tempdir().unwrap();
    let (server, os) = Os::start(dir.path()).await;

    // The first look makes the project's tenant and its default group, with Neutron's
    // four rules.
    let groups = os.get("/security-groups").await;
    let groups = groups["security_groups"].as_array().unwrap().clone();
    assert_eq!(groups.len(), 1, "{groups:?}");
    let default = &groups[0];
    let default_id = default["id"].as_str().unwrap().to_string();
    assert_eq!(default["name"], "default");
    assert_eq!(default["description"], "Default security group");
    assert_eq!(default["stateful"], true);
    assert_eq!(default["tags"], json!([]));
    assert_eq!(
        default_id,
        weft_openstack::security_group_id("shop", "default")
    );
    let project = default["project_id"].as_str().unwrap().to_string();
    assert_eq!(default["tenant_id"], project);
    let rules = default["security_group_rules"].as_array().unwrap();
    assert_eq!(rules.len(), 4, "{default}");
    let mut shapes: Vec<(String, String, Value)> = rules
        .iter()
        .map(|r| {
            assert_eq!(r["protocol"], Value::Null, "{r}");
            assert_eq!(r["remote_ip_prefix"], Value::Null, "{r}");
            assert_eq!(r["remote_address_group_id"], Value::Null, "{r}");
            assert_eq!(r["security_group_id"], default_id.as_str());
            (
                r["direction"].as_str().unwrap().to_string(),
                r["ethertype"].as_str().unwrap().to_string(),
                r["remote_group_id"].clone(),
            )
        })
        .collect();
    shapes.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    let default_json = json!(default_id);
    assert_eq!(
        shapes,
        vec![
            ("egress".into(), "IPv4".into(), Value::Null),
            ("egress".into(), "IPv6".into(), Value::Null),
            ("ingress".into(), "IPv4".into(), default_json.clone()),
            ("ingress".into(), "IPv6".into(), default_json.clone()),
        ]
    );
    let tenant = os.tenant().await;
    assert_eq!(
        tenant["security_group"]["default"]["rule"]
            .as_object()
            .unwrap()
            .len(),
        4,
        "{tenant}"
    );
    // A second look makes nothing more.
    assert_eq!(os.tenant().await, tenant);
    let again = os.get("/security-group-rules").await;
    assert_eq!(again["security_group_rules"].as_array().unwrap().len(), 4);

    // A group made here: sg-<8 hex>, with Neutron's two egress rules.
    let web = os
        .post(
            "/security-groups",
            json!({"security_group": {"name": "web", "description": "front"}}),
        )
        .await;
    let web_id = id(&web, "security_group");
    let web_name = web["security_group"]["weft:security_group"]
        .as_str()
        .unwrap()
        .strip_prefix("shop/")
        .unwrap()
        .to_string();
    assert!(web_name.starts_with("sg-"), "{web}");
    assert_eq!(web_id, weft_openstack::security_group_id("shop", &web_name));
    assert_eq!(web["security_group"]["description"], "front");
    let web_rules = web["security_group"]["security_group_rules"]
        .as_array()
        .unwrap();
    assert_eq!(web_rules.len(), 2);
    assert!(web_rules.iter().all(|r| r["direction"] == "egress"));

    // Rules: tcp/22 from a prefix, udp 53 from the default group, ICMPv6 from anyone.
    let ssh = os
        .post(
            "/security-group-rules",
            json!({"security_group_rule": {"security_group_id": web_id,
                "direction": "ingress", "ethertype": "IPv4", "protocol": "tcp",
                "port_range_min": 22, "port_range_max": 22,
                "remote_ip_prefix": "10.20.0.0/16", "description": "ssh"}}),
        )
        .await;
    let ssh = &ssh["security_group_rule"];
    assert_eq!(
        (
            &ssh["protocol"],
            &ssh["port_range_min"],
            &ssh["port_range_max"]
        ),
        (&json!("tcp"), &json!(22), &json!(22))
    );
    assert_eq!(ssh["remote_ip_prefix"], "10.20.0.0/16");
    assert_eq!(ssh["normalized_cidr"], "10.20.0.0/16");
    assert_eq!(ssh["description"], "ssh");
    assert_eq!(ssh["project_id"], project.as_str());
    let ssh_id = ssh["id"].as_str().unwrap().to_string();
    let dns = os
        .post(
            "/security-group-rules",
            json!({"security_group_rule": {"security_group_id": web_id,
                "direction": "ingress", "protocol": 17, "port_range_min": "53",
                "port_range_max": 53, "remote_group_id": default_id}}),
        )
        .await;
    assert_eq!(dns["security_group_rule"]["protocol"], "udp");
    assert_eq!(dns["security_group_rule"]["remote_group_id"], default_json);
    let icmp6 = os
        .post(
            "/security-group-rules",
            json!({"security_group_rule": {"security_group_id": web_id,
                "direction": "ingress", "ethertype": "IPv6", "protocol": "icmpv6"}}),
        )
        .await;
    assert_eq!(icmp6["security_group_rule"]["protocol"], "ipv6-icmp");
    let rules = &os.tenant().await["security_group"][&web_name]["rule"];
    let ssh_rule = rules
        .as_object()
        .unwrap()
        .values()
        .find(|r| r["remote_ip_prefix"] == "10.20.0.0/16")
        .unwrap();
    assert_eq!(
        (
            &ssh_rule["direction"],
            &ssh_rule["protocol"],
            &ssh_rule["destination_port"]
        ),
        (&json!("ingress"), &json!("tcp"), &json!(22)),
        "{rules}"
    );
    assert!(
        rules
            .as_object()
            .unwrap()
            .values()
            .any(|r| r["remote_group"] == "default"),
        "{rules}"
    );

    // A rule's description may change (standard-attr-description); nothing else of it.
    let (status, body) = os
        .call(
            Method::PUT,
            &format!("/security-group-rules/{ssh_id}"),
            Some(json!({"security_group_rule": {"description": "ssh from the office"}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["security_group_rule"]["description"],
        "ssh from the office"
    );
    os.refused(
        Method::PUT,
        &format!("/security-group-rules/{ssh_id}"),
        Some(json!({"security_group_rule": {"port_range_min": 23}})),
        (400, "HTTPBadRequest"),
    )
    .await;

    // Filters, fields, paging.
    let ingress = os
        .get(&format!(
            "/security-group-rules?security_group_id={web_id}&direction=ingress"
        ))
        .await;
    assert_eq!(
        ingress["security_group_rules"].as_array().unwrap().len(),
        3,
        "{ingress}"
    );
    let projected = os
        .get(&format!(
            "/security-group-rules?id={ssh_id}&fields=id&fields=protocol"
        ))
        .await;
    assert_eq!(
        projected["security_group_rules"],
        json!([{"id": ssh_id, "protocol": "tcp"}])
    );
    let named = os.get("/security-groups?name=web").await;
    assert_eq!(named["security_groups"][0]["id"], web_id.as_str());
    let page = os.get("/security-groups?limit=1").await;
    assert_eq!(page["security_groups"].as_array().unwrap().len(), 1);
    let next = page["security_groups_links"][0]["href"].as_str().unwrap();
    assert!(next.contains("marker="), "{page}");
    let rest = os.get(next.split("/network/v2.0").nth(1).unwrap()).await;
    let mut paged = vec![
        page["security_groups"][0]["id"].clone(),
        rest["security_groups"][0]["id"].clone(),
    ];
    paged.sort_by_key(|v| v.to_string());
    let mut both = vec![json!(default_id), json!(web_id)];
    both.sort_by_key(|v| v.to_string());
    assert_eq!(paged, both);

    // Name and description change, as metadata.
    let (status, renamed) = os
        .call(
            Method::PUT,
            &format!("/security-groups/{web_id}"),
            Some(json!({"security_group": {"name": "web2", "description": "front end"}})),
        )
        .await;
    assert_eq!(status, 200, "{renamed}");
    assert_eq!(renamed["security_group"]["name"], "web2");
    assert_eq!(renamed["security_group"]["revision_number"], 1);

    // Refusals, each with Neutron's code and type, none changing anything.
    let rule = |extra: Value| {
        let mut r = json!({"security_group_id": web_id, "direction": "ingress"});
        for (k, v) in extra.as_object().unwrap() {
            r[k] = v.clone();
        }
        Some(json!({ "security_group_rule": r }))
    };
    let nobody = "00000000-0000-5000-8000-000000000000";
    for (extra, want) in [
        (
            json!({"protocol": "tcp", "port_range_min": 22, "port_range_max": 22,
                   "remote_ip_prefix": "10.20.0.0/16"}),
            (409, "SecurityGroupRuleExists"),
        ),
        (
            // Egress to 0.0.0.0/0 is the egress rule to anyone the group has.
            json!({"direction": "egress", "remote_ip_prefix": "0.0.0.0/0"}),
            (409, "SecurityGroupRuleExists"),
        ),
        (
            json!({"remote_ip_prefix": "10.0.0.0/8", "remote_group_id": default_id}),
            (400, "SecurityGroupRemoteGroupAndRemoteIpPrefix"),
        ),
        (
            json!({"remote_ip_prefix": "10.0.0.0/33"}),
            (400, "InvalidCIDR"),
        ),
        (json!({"direction": "sideways"}), (400, "HTTPBadRequest")),
        (json!({"ethertype": "IPv5"}), (400, "HTTPBadRequest")),
        (
            json!({"protocol": "tcp", "port_range_min": 90, "port_range_max": 80}),
            (400, "SecurityGroupInvalidPortRange"),
        ),
        (
            json!({"ethertype": "IPv4", "remote_ip_prefix": "2001:db8::/32"}),
            (400, "SecurityGroupRuleParameterConflict"),
        ),
        (
            json!({"protocol": "icmp", "port_range_min": 8, "port_range_max": 0}),
            (400, "InvalidInput"),
        ),
        (
            json!({"protocol": "gre"}),
            (400, "SecurityGroupRuleInvalidProtocol"),
        ),
        (
            json!({"security_group_id": nobody}),
            (404, "SecurityGroupNotFound"),
        ),
        (
            json!({"remote_group_id": nobody}),
            (404, "SecurityGroupNotFound"),
        ),
    ] {
        os.refused(Method::POST, "/security-group-rules", rule(extra), want)
            .await;
    }
    let (_, body) = os
        .call(
            Method::POST,
            "/security-group-rules",
            rule(json!({"protocol": "icmp", "port_range_min": 8})),
        )
        .await;
    assert!(
        body.to_string()
            .contains("ICMP type/code matching is not supported"),
        "{body}"
    );
    let (_, body) = os
        .call(
            Method::POST,
            "/security-group-rules",
            rule(json!({"protocol": "gre"})),
        )
        .await;
    assert!(body.to_string().contains("not supported by weft"), "{body}");
    let (_, body) = os
        .call(
            Method::POST,
            "/security-group-rules",
            rule(
                json!({"protocol": "tcp", "port_range_min": 22, "port_range_max": 22,
                        "remote_ip_prefix": "10.20.0.0/16"}),
            ),
        )
        .await;
    assert!(body.to_string().contains(&ssh_id), "names the rule: {body}");
    for (path, body, want) in [
        (
            format!("/security-groups/{default_id}"),
            json!({"security_group": {"name": "other"}}),
            (409, "SecurityGroupCannotUpdateDefault"),
        ),
        (
            format!("/security-groups/{web_id}"),
            json!({"security_group": {"name": "default"}}),
            (409, "SecurityGroupDefaultAlreadyExists"),
        ),
        (
            format!("/security-groups/{web_id}"),
            json!({"security_group": {"stateful": false}}),
            (400, "HTTPBadRequest"),
        ),
    ] {
        os.refused(Method::PUT, &path, Some(body), want).await;
    }
    os.refused(
        Method::POST,
        "/security-groups",
        Some(json!({"security_group": {"name": "default"}})),
        (409, "SecurityGroupDefaultAlreadyExists"),
    )
    .await;
    os.refused(
        Method::DELETE,
        &format!("/security-groups/{default_id}"),
        None,
        (409, "SecurityGroupCannotRemoveDefault"),
    )
    .await;
    os.refused(
        Method::GET,
        &format!("/security-groups/{nobody}"),
        None,
        (404, "SecurityGroupNotFound"),
    )
    .await;
    os.refused(
        Method::DELETE,
        &format!("/security-group-rules/{nobody}"),
        None,
        (404, "SecurityGroupRuleNotFound"),
    )
    .await;

    // A group made with weft's API shows too; its rule for both IP versions shows as
    // one rule per version, and deleting one keeps the other.
    let mut tenant = os.tenant().await;
    tenant["security_group"]["legacy"] = json!({"rule": {"any-in": {"direction": "ingress"}}});
    os.weft(Method::PUT, "/v1/tenants/shop", Some(tenant)).await;
    let legacy_id = weft_openstack::security_group_id("shop", "legacy");
    let legacy = os.get(&format!("/security-groups/{legacy_id}")).await;
    assert_eq!(legacy["security_group"]["name"], "legacy");
    let halves = legacy["security_group"]["security_group_rules"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(halves.len(), 2, "{legacy}");
    let v4 = halves.iter().find(|r| r["ethertype"] == "IPv4").unwrap();
    let (status, _) = os
        .call(
            Method::DELETE,
            &format!("/security-group-rules/{}", v4["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(
        os.tenant().await["security_group"]["legacy"]["rule"]["any-in"]["ether_type"],
        "ipv6"
    );
    let legacy = os.get(&format!("/security-groups/{legacy_id}")).await;
    let left = legacy["security_group"]["security_group_rules"]
        .as_array()
        .unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["ethertype"], "IPv6");

    // Ports: the default group unless told otherwise, as the endpoint's groups.
    let (net, _) = network(&os, "a", "10.60.0.0/24").await;
    let plain = os.post("/ports", port(&net, json!({"name": "p1"}))).await;
    assert_eq!(plain["port"]["security_groups"], json!([default_id]));
    assert_eq!(plain["port"]["port_security_enabled"], true);
    let plain_ep = plain["port"]["weft:endpoint"].as_str().unwrap().to_string();
    let ep = os.endpoint(&plain_ep).await;
    assert_eq!(ep["security_groups"], json!(["default"]), "{ep}");
    assert!(ep.get("port_security").is_none_or(|p| p == true), "{ep}");
    let guarded = os
        .post(
            "/ports",
            port(&net, json!({"name": "p2", "security_groups": [web_id]})),
        )
        .await;
    let guarded_id = id(&guarded, "port");
    let guarded_ep = guarded["port"]["weft:endpoint"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(guarded["port"]["security_groups"], json!([web_id]));
    assert_eq!(
        os.endpoint(&guarded_ep).await["security_groups"],
        json!([web_name])
    );
    let open = os
        .post(
            "/ports",
            port(&net, json!({"name": "p3", "port_security_enabled": false})),
        )
        .await;
    assert_eq!(open["port"]["security_groups"], json!([]));
    assert_eq!(open["port"]["port_security_enabled"], false);
    let open_id = id(&open, "port");
    let ep = os
        .endpoint(open["port"]["weft:endpoint"].as_str().unwrap())
        .await;
    assert_eq!(ep["port_security"], false, "{ep}");
    assert!(ep.get("security_groups").is_none(), "{ep}");
    let filtered = os.get(&format!("/ports?security_groups={web_id}")).await;
    assert_eq!(filtered["ports"].as_array().unwrap().len(), 1, "{filtered}");

    // Port refusals: nothing made.
    for (extra, want) in [
        (
            json!({"port_security_enabled": false, "security_groups": [web_id]}),
            (400, "PortSecurityAndIPRequiredForSecurityGroups"),
        ),
        (
            json!({"security_groups": [nobody]}),
            (404, "SecurityGroupNotFound"),
        ),
        (json!({"security_groups": ["web"]}), (400, "InvalidInput")),
        (
            json!({"port_security_enabled": false,
                   "allowed_address_pairs": [{"ip_address": "10.60.0.200"}]}),
            (409, "AddressPairAndPortSecurityRequired"),
        ),
    ] {
        os.refused(Method::POST, "/ports", Some(port(&net, extra)), want)
            .await;
    }

    // Groups in use: on a port, or named by another group's rule.
    os.refused(
        Method::DELETE,
        &format!("/security-groups/{web_id}"),
        None,
        (409, "SecurityGroupInUse"),
    )
    .await;

    // Disabling port security while groups are set is refused; together with taking
    // the groups off, it is done; groups come back with port security.
    let at = |id: &str| format!("/ports/{id}");
    os.refused(
        Method::PUT,
        &at(&guarded_id),
        Some(json!({"port": {"port_security_enabled": false}})),
        (409, "PortSecurityPortHasSecurityGroup"),
    )
    .await;
    os.refused(
        Method::PUT,
        &at(&guarded_id),
        Some(json!({"port": {"port_security_enabled": false, "security_groups": [default_id]}})),
        (400, "PortSecurityAndIPRequiredForSecurityGroups"),
    )
    .await;
    os.refused(
        Method::PUT,
        &at(&open_id),
        Some(json!({"port": {"security_groups": [web_id]}})),
        (400, "PortSecurityAndIPRequiredForSecurityGroups"),
    )
    .await;
    let (status, body) = os
        .call(
            Method::PUT,
            &at(&guarded_id),
            Some(json!({"port": {"security_groups": [], "port_security_enabled": false}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["port"]["port_security_enabled"], false);
    assert_eq!(body["port"]["security_groups"], json!([]));
    let ep = os.endpoint(&guarded_ep).await;
    assert_eq!(ep["port_security"], false, "{ep}");
    assert!(ep.get("security_groups").is_none(), "{ep}");
    let (status, body) = os
        .call(
            Method::PUT,
            &at(&guarded_id),
            Some(json!({"port": {"port_security_enabled": true,
                                 "security_groups": [web_id, default_id]}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut names: Vec<String> =
        serde_json::from_value(os.endpoint(&guarded_ep).await["security_groups"].clone()).unwrap();
    names.sort();
    let mut want = vec!["default".to_string(), web_name.clone()];
    want.sort();
    assert_eq!(names, want);

    // A group another group's rule names stays in use after its ports are gone.
    let db = os
        .post(
            "/security-groups",
            json!({"security_group": {"name": "db"}}),
        )
        .await;
    let db_id = id(&db, "security_group");
    os.post(
        "/security-group-rules",
        json!({"security_group_rule": {"security_group_id": db_id,
            "direction": "ingress", "protocol": "tcp", "port_range_min": 5432,
            "port_range_max": 5432, "remote_group_id": web_id}}),
    )
    .await;
    let (status, _) = os
        .call(
            Method::PUT,
            &at(&guarded_id),
            Some(json!({"port": {"security_groups": [default_id]}})),
        )
        .await;
    assert_eq!(status, 200);
    os.refused(
        Method::DELETE,
        &format!("/security-groups/{web_id}"),
        None,
        (409, "SecurityGroupInUse"),
    )
    .await;

    // Deletes: a rule, then the groups; gone from weft's model.
    let (status, _) = os
        .call(
            Method::DELETE,
            &format!("/security-group-rules/{ssh_id}"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    assert!(
        !os.tenant().await["security_group"][&web_name]["rule"]
            .to_string()
            .contains("10.20.0.0/16")
    );
    for group in [&db_id, &web_id] {
        let (status, body) = os
            .call(Method::DELETE, &format!("/security-groups/{group}"), None)
            .await;
        assert_eq!(status, 204, "{body}");
    }
    let tenant = os.tenant().await;
    assert!(
        tenant["security_group"].get(&web_name).is_none(),
        "{tenant}"
    );
    let left = os.get("/security-groups").await;
    let names: Vec<&str> = left["security_groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "default and legacy: {names:?}");
    server.shutdown().await;
}

/// The list of bad input, each answered with Neutron's code and body and
/// leaving weft's tenant, its endpoints and every Neutron list as they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_answers_neutrons_errors_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (server, os) = Os::start(dir.path()).await;
    let (net, subnet) = network(&os, "a", "10.70.0.0/24").await;
    // A refused port in a project without its default group yet leaves none behind
    // (the group is made for the port, then taken back).
    let before = os.tenant().await;
    assert!(before.get("security_group").is_none(), "{before}");
    let (status, body) = os
        .call(
            Method::POST,
            "/ports",
            Some(port(&net, json!({"binding:host_id": "node-9"}))),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("not registered"), "{body}");
    assert_eq!(os.tenant().await, before);
    let p = os.post("/ports", port(&net, json!({"name": "p1"}))).await;
    let port_id = id(&p, "port");
    os.get("/security-groups").await;

    // An overlapping CIDR on one network (Neutron: 400).
    os.refused(
        Method::POST,
        "/subnets",
        Some(json!({"subnet": {"network_id": net, "cidr": "10.70.0.128/25", "ip_version": 4}})),
        (400, "InvalidInput"),
    )
    .await;
    // A network with ports, a subnet in use.
    os.refused(
        Method::DELETE,
        &format!("/networks/{net}"),
        None,
        (409, "NetworkInUse"),
    )
    .await;
    os.refused(
        Method::DELETE,
        &format!("/subnets/{subnet}"),
        None,
        (409, "SubnetInUse"),
    )
    .await;
    // Unknown ids.
    let nobody = "00000000-0000-5000-8000-000000000000";
    for (path, kind) in [
        ("networks", "NetworkNotFound"),
        ("subnets", "SubnetNotFound"),
        ("ports", "PortNotFound"),
        ("routers", "RouterNotFound"),
        ("security-groups", "SecurityGroupNotFound"),
        ("security-group-rules", "SecurityGroupRuleNotFound"),
    ] {
        for method in [Method::GET, Method::DELETE] {
            os.refused(method, &format!("/{path}/{nobody}"), None, (404, kind))
                .await;
        }
    }
    // An invalid CIDR or MAC.
    os.refused(
        Method::POST,
        "/subnets",
        Some(json!({"subnet": {"network_id": net, "cidr": "10.71.0.0/33", "ip_version": 4}})),
        (400, "InvalidInput"),
    )
    .await;
    for mac in ["fa:16:3e:zz:00:01", "01:00:5e:00:00:01", "fa:16:3e:00:01"] {
        os.refused(
            Method::POST,
            "/ports",
            Some(port(&net, json!({"mac_address": mac}))),
            (400, "InvalidInput"),
        )
        .await;
    }
    // Disabling port security while groups are set.
    os.refused(
        Method::PUT,
        &format!("/ports/{port_id}"),
        Some(json!({"port": {"port_security_enabled": false}})),
        (409, "PortSecurityPortHasSecurityGroup"),
    )
    .await;
    // An unsupported extension: floating IPs are not loaded (Neutron's 404 for a
    // resource it does not serve), and an alias weft does not have.
    for method in [Method::GET, Method::POST] {
        os.refused(method, "/floatingips", None, (404, "HTTPNotFound"))
            .await;
    }
    for method in [Method::GET, Method::PUT, Method::DELETE] {
        os.refused(
            method,
            &format!("/floatingips/{nobody}"),
            None,
            (404, "HTTPNotFound"),
        )
        .await;
    }
    os.refused(
        Method::GET,
        "/extensions/floatingip-pools",
        None,
        (404, "ExtensionNotFound"),
    )
    .await;
    let (_, body) = os.call(Method::GET, "/floatingips", None).await;
    assert!(
        body["NeutronError"]["message"]
            .as_str()
            .unwrap()
            .starts_with("The resource could not be found."),
        "{body}"
    );
    // The extensions list is what is served, nothing else.
    let extensions = os.get("/extensions").await;
    let mut aliases: Vec<&str> = extensions["extensions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["alias"].as_str().unwrap())
        .collect();
    aliases.sort_unstable();
    assert_eq!(
        aliases,
        [
            "allowed-address-pairs",
            "binding",
            "pagination",
            "port-security",
            "project-id",
            "router",
            "security-group",
            "standard-attr-description",
        ]
    );
    server.shutdown().await;
}
