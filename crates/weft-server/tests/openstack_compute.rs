//! Nova and Glance through the OpenStack listener in process, with fake agents that
//! report tasks running: version documents and microversion headers, the catalog,
//! flavors, image registration and visibility, a server's life (BUILD → ACTIVE with its
//! address, metadata as the task's environment, pinned by its zone, delete takes app,
//! task and endpoint), ERROR with a fault when no node can take it, a network with a
//! server is in use, and every refusal in Nova's body with nothing changed.
#![allow(clippy::unwrap_used)] // tests fail loudly

mod common;
mod openstack_common;

use common::fake_agent::FakeAgent;
use openstack_common::{Cloud, SHOP_AND_OTHER};
use reqwest::Method;
use serde_json::{Value, json};

const IMAGE_ID: &str = "6f1b4c7e-5d2a-4c3b-9a8e-0b1c2d3e4f50";

impl Cloud {
    /// What a refused server create must leave as it was.
    async fn state(&self) -> Vec<Value> {
        vec![
            self.weft("/v1/apps").await,
            self.weft("/v1/endpoints").await,
            self.get("/compute/v2.1/servers/detail").await,
        ]
    }

    /// Waits (10 s at most) until the node of endpoint `name` reports it ready.
    async fn wait_ready(&self, name: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while self.weft(&format!("/v1/endpoints/{name}")).await["status"]["state"] != "ready" {
            assert!(
                std::time::Instant::now() < deadline,
                "endpoint {name} not ready"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// A refused create: Nova's status and error kind, a message, nothing changed.
    async fn refused(&self, server: Value, want: (u16, &str)) {
        let before = self.state().await;
        let (status, body) = self
            .call(
                Method::POST,
                "/compute/v2.1/servers",
                Some(json!({ "server": server })),
            )
            .await;
        assert_eq!(status, want.0, "{server}: {body}");
        let error = &body[want.1];
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty())
                && error["code"] == json!(want.0),
            "{server}: want {want:?} in Nova's body, got {body}"
        );
        assert_eq!(self.state().await, before, "{server} changed something");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nova_and_glance_shapes_server_life_and_refusals_in_novas_body() {
    let dir = tempfile::tempdir().unwrap();
    let (server, c) = Cloud::start(dir.path(), SHOP_AND_OTHER).await;
    let com1 = FakeAgent::start(&server, "com1", &[]).await;
    let com2 = FakeAgent::start(&server, "com2", &[]).await;

    // ---- discovery -----------------------------------------------------------------
    let (status, headers, root) = c.call_with("", Method::GET, "/compute/", None, &[]).await;
    assert_eq!(status, 200, "{root}");
    assert_eq!(root["versions"][0]["id"], "v2.1");
    assert_eq!(root["versions"][0]["min_version"], "2.1");
    assert_eq!(headers["openstack-api-version"], "compute 2.1");
    let (status, headers, doc) = c
        .call_with(
            "",
            Method::GET,
            "/compute/v2.1",
            None,
            &[("openstack-api-version", "compute latest")],
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(doc["version"]["version"], "2.1");
    assert_eq!(headers["x-openstack-nova-api-version"], "2.1");
    let (status, _, body) = c
        .call_with(
            "t-shop",
            Method::GET,
            "/compute/v2.1/flavors",
            None,
            &[("x-openstack-nova-api-version", "2.79")],
        )
        .await;
    assert_eq!(status, 406, "{body}");
    let (status, _, body) = c
        .call_with(
            "t-shop",
            Method::GET,
            "/compute/v2.1/flavors",
            None,
            &[("openstack-api-version", "compute two")],
        )
        .await;
    assert_eq!(
        (status, body["badRequest"]["code"].clone()),
        (400, json!(400))
    );
    let (status, _, glance) = c.call_with("", Method::GET, "/image/", None, &[]).await;
    assert_eq!(status, 300);
    assert_eq!(glance["versions"][0]["status"], "CURRENT");
    assert!(
        glance["versions"][0]["links"][0]["href"]
            .as_str()
            .unwrap()
            .ends_with("/image/v2/")
    );
    // Unauthenticated calls are 401 on both.
    let (status, _, _) = c
        .call_with("nope", Method::GET, "/compute/v2.1/servers", None, &[])
        .await;
    assert_eq!(status, 401);
    let (status, _, _) = c
        .call_with("nope", Method::GET, "/image/v2/images", None, &[])
        .await;
    assert_eq!(status, 401);

    // The catalog names compute and image where they are served.
    let created = c
        .http
        .post(format!("{}/v1/openstack/users", c.weft))
        .bearer_auth(&c.admin)
        .json(&json!({"name": "lab", "password": "pw", "project": "shop"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let token: Value = c
        .http
        .post(format!("{}/v3/auth/tokens", c.os))
        .json(
            &json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": "lab", "domain": {"id": "default"}, "password": "pw"}}}}}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let catalog = token["token"]["catalog"].as_array().unwrap();
    for (kind, suffix) in [("compute", "/compute/v2.1"), ("image", "/image")] {
        let entry = catalog.iter().find(|e| e["type"] == kind).unwrap();
        let url = entry["endpoints"][0]["url"].as_str().unwrap();
        assert_eq!(url, format!("{}{suffix}", c.os));
    }

    // ---- flavors -------------------------------------------------------------------
    let flavors = c.get("/compute/v2.1/flavors/detail").await;
    let names: Vec<&str> = flavors["flavors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["m1.tiny", "m1.small", "m1.medium", "m1.large"]);
    let tiny = c.get("/compute/v2.1/flavors/1").await;
    assert_eq!(
        (&tiny["flavor"]["vcpus"], &tiny["flavor"]["ram"]),
        (&json!(1), &json!(512))
    );
    let (status, body) = c
        .call(Method::GET, "/compute/v2.1/flavors/m1.tiny", None)
        .await;
    assert_eq!(
        (status, body["itemNotFound"]["code"].clone()),
        (404, json!(404))
    );
    let brief = c.get("/compute/v2.1/flavors").await;
    assert!(brief["flavors"][0].get("ram").is_none());

    // ---- availability zones: nova, with weft's nodes as hosts ----------------------------
    let zones = c.get("/compute/v2.1/os-availability-zone/detail").await;
    let nova = &zones["availabilityZoneInfo"][0];
    assert_eq!(nova["zoneName"], "nova");
    let mut hosts: Vec<&String> = nova["hosts"].as_object().unwrap().keys().collect();
    hosts.sort();
    assert_eq!(hosts, ["com1", "com2"]);
    assert_eq!(
        c.get("/compute/v2.1/os-availability-zone").await["availabilityZoneInfo"][0]["zoneName"],
        "nova"
    );

    // ---- images --------------------------------------------------------------------
    let image = c
        .register_image(
            json!({"name": "busybox", "id": IMAGE_ID, "container_format": "docker",
                        "disk_format": "raw", "weft_docker_ref": "weft-test/busybox:latest"}),
        )
        .await;
    assert_eq!(image["id"], IMAGE_ID);
    assert_eq!(image["status"], "active");
    assert_eq!(image["weft_docker_ref"], "weft-test/busybox:latest");
    let listed = c.get("/image/v2/images?name=busybox").await;
    assert_eq!(listed["images"].as_array().unwrap().len(), 1);
    assert_eq!(
        c.get(&format!("/image/v2/images/{IMAGE_ID}")).await["name"],
        "busybox"
    );
    for (body, want) in [
        (
            json!({"name": "x", "id": IMAGE_ID, "weft_docker_ref": "a"}),
            409,
        ),
        (json!({"name": "x"}), 400),
        (json!({"name": "x", "weft_docker_ref": "Not A Ref"}), 400),
        (
            json!({"name": "x", "weft_docker_ref": "a", "id": "12"}),
            400,
        ),
        (
            json!({"name": "x", "weft_docker_ref": "a", "visibility": "public"}),
            403,
        ),
    ] {
        let (status, answer) = c
            .call(Method::POST, "/image/v2/images", Some(body.clone()))
            .await;
        assert_eq!(status, want, "{body}: {answer}");
        assert!(answer["message"].is_string(), "{answer}");
    }
    assert_eq!(
        c.get("/image/v2/images").await["images"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Another project does not see a project's image.
    let (status, _, other) = c
        .call_with("t-other", Method::GET, "/image/v2/images", None, &[])
        .await;
    assert_eq!(status, 200);
    assert_eq!(other["images"], json!([]));
    let (status, _, _) = c
        .call_with(
            "t-other",
            Method::GET,
            &format!("/image/v2/images/{IMAGE_ID}"),
            None,
            &[],
        )
        .await;
    assert_eq!(status, 404);

    // ---- a network -----------------------------------------------------------------
    let (net_id, net) = c.network("nw-a", "10.70.0.0/24").await;

    // ---- refusals, in Nova's body, changing nothing ----------------------------------
    let good = json!({"name": "vm1", "imageRef": IMAGE_ID, "flavorRef": "1",
                      "networks": [{"uuid": net_id}]});
    let with = |key: &str, value: Value| {
        let mut s = good.clone();
        s[key] = value;
        s
    };
    let unknown_uuid = "00000000-0000-4000-8000-000000000000";
    let many: serde_json::Map<String, Value> =
        (0..129).map(|i| (format!("k{i}"), json!("v"))).collect();
    for (server, want) in [
        (with("imageRef", json!(unknown_uuid)), (400, "badRequest")),
        (with("imageRef", json!("busybox")), (400, "badRequest")),
        (with("flavorRef", json!("99")), (400, "badRequest")),
        (
            with("networks", json!([{"uuid": "not-a-uuid"}])),
            (400, "badRequest"),
        ),
        (
            with("networks", json!([{"uuid": unknown_uuid}])),
            (400, "badRequest"),
        ),
        (
            // Nine networks: interfaces weft0 to weft7 at most.
            with("networks", json!(vec![json!({"uuid": net_id}); 9])),
            (400, "badRequest"),
        ),
        (
            with(
                "networks",
                json!([{"uuid": net_id}, {"uuid": net_id, "fixed_ip": "10.99.0.5"}]),
            ),
            (400, "badRequest"),
        ),
        (
            with("networks", json!([{"port": unknown_uuid}])),
            (400, "badRequest"),
        ),
        (with("metadata", Value::Object(many)), (403, "forbidden")),
        (
            with("metadata", json!({"k": "v".repeat(256)})),
            (400, "badRequest"),
        ),
        (
            with("metadata", json!({"k".repeat(256): "v"})),
            (400, "badRequest"),
        ),
        (
            with("metadata", json!({"WEFT_GATEWAY": "x"})),
            (400, "badRequest"),
        ),
        (with("name", json!("")), (400, "badRequest")),
        (with("name", json!("n".repeat(256))), (400, "badRequest")),
        (
            with("availability_zone", json!("nova:com9")),
            (400, "badRequest"),
        ),
        (
            with("availability_zone", json!("elsewhere")),
            (400, "badRequest"),
        ),
        (with("bogus", json!(1)), (400, "badRequest")),
        (with("max_count", json!(3)), (400, "badRequest")),
        (
            // Not base64; and base64 of bytes that are not text (WEFT_USER_DATA).
            with("user_data", json!("#!/bin/sh")),
            (400, "badRequest"),
        ),
        (with("user_data", json!("/w==")), (400, "badRequest")),
        (
            with("security_groups", json!([{"name": "nope"}])),
            (400, "badRequest"),
        ),
        (
            with("security_groups", json!([{"id": "x"}])),
            (400, "badRequest"),
        ),
    ] {
        c.refused(server, want).await;
    }
    // Another project cannot boot on this project's network.
    let (status, _, body) = c
        .call_with(
            "t-other",
            Method::POST,
            "/compute/v2.1/servers",
            Some(json!({ "server": good })),
            &[],
        )
        .await;
    assert_eq!(status, 400, "{body}");

    // ---- a server's life -------------------------------------------------------------
    let mut boot = good.clone();
    boot["metadata"] = json!({"master": "10.0.0.5", "tmpl": "${app.x.address}"});
    boot["availability_zone"] = json!("nova:com2");
    boot["key_name"] = json!("mykey");
    let (id, created) = c.create_server(boot).await;
    assert!(
        created["server"]["links"][0]["href"]
            .as_str()
            .unwrap()
            .ends_with(&id)
    );
    let active = c.wait_status(&id, "ACTIVE").await;
    let addr = &active["addresses"]["nw-a"][0];
    assert_eq!(addr["version"], json!(4), "{active}");
    assert_eq!(addr["OS-EXT-IPS:type"], "fixed");
    let ip = addr["addr"].as_str().unwrap().to_string();
    assert!(ip.starts_with("10.70.0."), "{ip}");
    assert_eq!(active["accessIPv4"], json!(ip));
    assert_eq!(active["OS-EXT-SRV-ATTR:host"], "com2");
    assert_eq!(active["metadata"]["master"], "10.0.0.5");
    assert_eq!(active["metadata"]["tmpl"], "${app.x.address}");
    assert_eq!(active["flavor"]["id"], "1");
    assert_eq!(active["image"]["id"], IMAGE_ID);
    assert_eq!(active["key_name"], "mykey");
    // In the project's default group (made then), as Nova puts a server.
    assert_eq!(active["security_groups"], json!([{"name": "default"}]));
    assert!(active.get("fault").is_none());
    let task = active["weft:task"].as_str().unwrap().to_string();
    assert_eq!(
        active["OS-EXT-SRV-ATTR:instance_name"],
        json!(format!("weft-{task}"))
    );
    // The task: the image's reference, the flavor's limits, metadata as its environment
    // (literally: no template), its endpoint in the network's EPG.
    let weft_task = c.weft(&format!("/v1/tasks/{task}")).await;
    assert_eq!(weft_task["node"], "com2");
    assert_eq!(weft_task["env"]["master"], "10.0.0.5");
    assert_eq!(weft_task["env"]["tmpl"], "${app.x.address}");
    let app = c
        .weft(&format!(
            "/v1/apps/{}",
            active["weft:app"].as_str().unwrap()
        ))
        .await;
    assert_eq!(app["spec"]["image"], "weft-test/busybox:latest");
    assert_eq!(
        (&app["spec"]["cpus"], &app["spec"]["mem"]),
        (&json!(1.0), &json!(512))
    );
    let endpoint = c.weft(&format!("/v1/endpoints/{task}")).await;
    assert_eq!(endpoint["ip"], json!(ip));
    assert_eq!(endpoint["epg"], net["network"]["weft:epg"]);
    assert_eq!(endpoint["security_groups"], json!(["default"]));
    // Lists: brief and detailed, filtered, and the other project sees nothing.
    let brief = c.get("/compute/v2.1/servers").await;
    assert_eq!(brief["servers"][0]["name"], "vm1");
    assert!(brief["servers"][0].get("status").is_none());
    assert_eq!(
        c.get("/compute/v2.1/servers/detail?status=ACTIVE&name=vm")
            .await["servers"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        c.get("/compute/v2.1/servers/detail?status=ERROR").await["servers"],
        json!([])
    );
    let (status, _, body) = c
        .call_with(
            "t-other",
            Method::GET,
            &format!("/compute/v2.1/servers/{id}"),
            None,
            &[],
        )
        .await;
    assert_eq!(
        (status, body["itemNotFound"]["code"].clone()),
        (404, json!(404))
    );
    let (status, body) = c.call(Method::GET, "/compute/v2.1/servers/vm1", None).await;
    assert_eq!(
        (status, body["itemNotFound"]["code"].clone()),
        (404, json!(404))
    );

    // No node can take m1.medium (4 GiB; the fake nodes have 2): ERROR with the reason.
    let (status, group) = c
        .call(
            Method::POST,
            "/network/v2.0/security-groups",
            Some(json!({"security_group": {"name": "web"}})),
        )
        .await;
    assert_eq!(status, 201, "{group}");
    let mut big = good.clone();
    big["name"] = json!("big");
    big["flavorRef"] = json!("3");
    big["security_groups"] = json!([{"name": "web"}, {"name": "default"}]);
    let (big_id, _) = c.create_server(big).await;
    let failed = c.wait_status(&big_id, "ERROR").await;
    let fault = failed["fault"]["message"].as_str().unwrap();
    assert!(fault.starts_with("No valid host was found."), "{failed}");
    assert_eq!(failed["fault"]["code"], 500);
    assert_eq!(
        failed["security_groups"],
        json!([{"name": "web"}, {"name": "default"}])
    );

    // A group a server names is in use, even before its task is placed (big has none).
    let group_id = group["security_group"]["id"].as_str().unwrap();
    let (status, body) = c
        .call(
            Method::DELETE,
            &format!("/network/v2.0/security-groups/{group_id}"),
            None,
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["NeutronError"]["type"], "SecurityGroupInUse");

    // A network with servers is in use.
    let (status, body) = c
        .call(
            Method::DELETE,
            &format!("/network/v2.0/networks/{net_id}"),
            None,
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["NeutronError"]["type"], "NetworkInUse");

    // Delete: the app, its task and endpoint go at once; then the record.
    for server in [&id, &big_id] {
        c.delete_server(server).await;
        let (status, body) = c
            .call(
                Method::GET,
                &format!("/compute/v2.1/servers/{server}"),
                None,
            )
            .await;
        assert_eq!(
            (status, body["itemNotFound"]["code"].clone()),
            (404, json!(404))
        );
    }
    assert_eq!(c.weft("/v1/apps").await, json!([]));
    assert_eq!(c.weft("/v1/endpoints").await, json!([]));
    assert_eq!(c.weft("/v1/tasks").await, json!([]));
    assert_eq!(c.get("/compute/v2.1/servers").await["servers"], json!([]));
    // Then the network may go.
    let (status, body) = c
        .call(
            Method::DELETE,
            &format!("/network/v2.0/networks/{net_id}"),
            None,
        )
        .await;
    assert_eq!(status, 204, "{body}");

    com1.stop().await;
    com2.stop().await;
    server.shutdown().await;
}

/// `networks: [{port}]`: the server runs in the port's endpoint (its address, node and
/// groups), the port names the server as its device, a second server on it is 409, the
/// port cannot be deleted under it, and it stays, detached, when the server goes. The
/// refusals change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_on_an_existing_port() {
    let dir = tempfile::tempdir().unwrap();
    let (server, c) = Cloud::start(dir.path(), SHOP_AND_OTHER).await;
    let com1 = FakeAgent::start(&server, "com1", &[]).await;
    let com2 = FakeAgent::start(&server, "com2", &[]).await;
    c.register_image(
        json!({"name": "busybox", "id": IMAGE_ID, "container_format": "docker",
                            "disk_format": "raw", "weft_docker_ref": "weft-test/busybox:latest"}),
    )
    .await;
    let (net_id, _) = c.network("nw-p", "10.71.0.0/24").await;
    let (status, port) = c
        .call(
            Method::POST,
            "/network/v2.0/ports",
            Some(json!({"port": {"network_id": net_id, "binding:host_id": "com1", "name": "pa"}})),
        )
        .await;
    assert_eq!(status, 201, "{port}");
    let port_id = port["port"]["id"].as_str().unwrap().to_string();
    let port_ip = port["port"]["fixed_ips"][0]["ip_address"].clone();
    let endpoint = port["port"]["weft:endpoint"].as_str().unwrap().to_string();
    // Its node reports it ready first (the refusals below compare the state before and
    // after, status included).
    c.wait_ready(&endpoint).await;

    let on_port = json!({"name": "vm-p", "imageRef": IMAGE_ID, "flavorRef": "1",
                         "networks": [{"port": port_id}]});
    let with_net = |key: &str, value: Value| {
        let mut s = on_port.clone();
        s["networks"][0][key] = value;
        s
    };
    let mut elsewhere = on_port.clone();
    elsewhere["availability_zone"] = json!("nova:com2");
    for (bad, status, kind) in [
        (
            json!({"name": "vm-p", "imageRef": IMAGE_ID, "flavorRef": "1",
                "networks": [{"port": "not-a-uuid"}]}),
            400,
            "badRequest",
        ),
        (with_net("fixed_ip", json!("10.71.0.9")), 400, "badRequest"),
        (with_net("uuid", json!(net_id)), 400, "badRequest"),
        (elsewhere, 400, "badRequest"),
    ] {
        c.refused(bad, (status, kind)).await;
    }

    let (id, _) = c.create_server(on_port.clone()).await;
    let active = c.wait_status(&id, "ACTIVE").await;
    assert_eq!(active["addresses"]["nw-p"][0]["addr"], port_ip, "{active}");
    assert_eq!(active["accessIPv4"], port_ip);
    assert_eq!(active["OS-EXT-SRV-ATTR:host"], "com1");
    let app = c
        .weft(&format!(
            "/v1/apps/{}",
            active["weft:app"].as_str().unwrap()
        ))
        .await;
    assert_eq!(app["spec"]["endpoint"], json!(endpoint));
    let task = active["weft:task"].as_str().unwrap();
    let weft_task = c.weft(&format!("/v1/tasks/{task}")).await;
    assert_eq!(weft_task["ip"], port_ip);
    assert_eq!(weft_task["node"], "com1");
    // No endpoint of its own: the port's is the only one with the address.
    let status = c
        .weft_as(
            &c.admin,
            Method::GET,
            &format!("/v1/endpoints/{task}"),
            None,
        )
        .await;
    assert_eq!(status, 404);
    let shown = c.get(&format!("/network/v2.0/ports/{port_id}")).await["port"].clone();
    assert_eq!(shown["device_id"], json!(id));
    assert_eq!(shown["device_owner"], "compute:nova");

    // Taken: a second server on it is 409, and the port stays while the server runs.
    let mut second = on_port.clone();
    second["name"] = json!("vm-p2");
    c.refused(second, (409, "conflictingRequest")).await;
    let (status, body) = c
        .call(
            Method::DELETE,
            &format!("/network/v2.0/ports/{port_id}"),
            None,
        )
        .await;
    assert_eq!(status, 409, "{body}");

    // A fixed ip: the server's own port has it; outside the subnet, the gateway, taken
    // by a port, or malformed: 400, nothing changed.
    let fixed = |ip: &str| {
        json!({"name": "vm-f", "imageRef": IMAGE_ID, "flavorRef": "1",
               "networks": [{"uuid": net_id, "fixed_ip": ip}]})
    };
    for bad in [
        "10.99.0.5",
        "10.71.0.1",
        port_ip.as_str().unwrap(),
        "10.71.0.x",
        "10.71.0.255",
    ] {
        c.refused(fixed(bad), (400, "badRequest")).await;
    }
    let (fixed_id, _) = c.create_server(fixed("10.71.0.50")).await;
    let fixed_active = c.wait_status(&fixed_id, "ACTIVE").await;
    assert_eq!(fixed_active["accessIPv4"], "10.71.0.50", "{fixed_active}");
    let fixed_task = fixed_active["weft:task"].as_str().unwrap();
    let fixed_endpoint = c.weft(&format!("/v1/endpoints/{fixed_task}")).await;
    assert_eq!(fixed_endpoint["ip"], "10.71.0.50");
    let fixed_app = c
        .weft(&format!(
            "/v1/apps/{}",
            fixed_active["weft:app"].as_str().unwrap()
        ))
        .await;
    assert_eq!(fixed_app["spec"]["ip"], "10.71.0.50");
    // The address is taken now.
    let mut again = fixed("10.71.0.50");
    again["name"] = json!("vm-f2");
    c.refused(again, (400, "badRequest")).await;
    c.delete_server(&fixed_id).await;

    // Deleted: the port stays with its address, detached.
    c.delete_server(&id).await;
    let shown = c.get(&format!("/network/v2.0/ports/{port_id}")).await["port"].clone();
    assert_eq!(shown["fixed_ips"][0]["ip_address"], port_ip);
    assert_eq!(shown["device_id"], "");
    assert_eq!(shown["device_owner"], "");
    let (status, body) = c
        .call(
            Method::DELETE,
            &format!("/network/v2.0/ports/{port_id}"),
            None,
        )
        .await;
    assert_eq!(status, 204, "{body}");
    drop((com1, com2));
}

/// Two networks (`networks: [{uuid: A}, {uuid: B, fixed_ip}]`, and a port first with a
/// network after it): the server's addresses per network (the access address is the
/// first's), one endpoint per network in one namespace, its ports name it as their
/// device, the second network is in use while it runs, its ports are no other server's,
/// and delete removes every endpoint it made. Refusals change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_on_two_networks() {
    let dir = tempfile::tempdir().unwrap();
    let (server, c) = Cloud::start(dir.path(), SHOP_AND_OTHER).await;
    let com1 = FakeAgent::start(&server, "com1", &[]).await;
    c.register_image(
        json!({"name": "busybox", "id": IMAGE_ID, "container_format": "docker",
               "disk_format": "raw", "weft_docker_ref": "weft-test/busybox:latest"}),
    )
    .await;
    let (net_a, _) = c.network("nw-a", "10.72.0.0/24").await;
    let (net_b, _) = c.network("nw-b", "10.73.0.0/24").await;
    let (status, _, other) = c
        .call_with(
            "t-other",
            Method::POST,
            "/network/v2.0/networks",
            Some(json!({"network": {"name": "theirs"}})),
            &[],
        )
        .await;
    assert_eq!(status, 201, "{other}");
    let theirs = other["network"]["id"].as_str().unwrap().to_string();
    let (status, port) = c
        .call(
            Method::POST,
            "/network/v2.0/ports",
            Some(json!({"port": {"network_id": net_a, "binding:host_id": "com1"}})),
        )
        .await;
    assert_eq!(status, 201, "{port}");
    let port_id = port["port"]["id"].as_str().unwrap().to_string();
    // Ready first: the refusals compare the state before and after, status included.
    let endpoint = port["port"]["weft:endpoint"].as_str().unwrap().to_string();
    c.wait_ready(&endpoint).await;
    let servers = |networks: Value| json!({"name": "vm-2n", "imageRef": IMAGE_ID, "flavorRef": "1", "networks": networks});
    for bad in [
        // A port only first.
        json!([{"uuid": net_a}, {"port": port_id}]),
        // Another project's network.
        json!([{"uuid": net_a}, {"uuid": theirs}]),
        // Outside the second network's subnet.
        json!([{"uuid": net_a}, {"uuid": net_b, "fixed_ip": "10.72.0.9"}]),
    ] {
        c.refused(servers(bad), (400, "badRequest")).await;
    }

    let (id, _) = c
        .create_server(servers(
            json!([{"uuid": net_a}, {"uuid": net_b, "fixed_ip": "10.73.0.50"}]),
        ))
        .await;
    let active = c.wait_status(&id, "ACTIVE").await;
    let a_addr = active["addresses"]["nw-a"][0]["addr"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(a_addr.starts_with("10.72.0."), "{active}");
    assert_eq!(
        active["addresses"]["nw-b"][0]["addr"], "10.73.0.50",
        "{active}"
    );
    assert_eq!(active["addresses"]["nw-b"][0]["OS-EXT-IPS:type"], "fixed");
    assert_eq!(active["accessIPv4"], json!(a_addr), "{active}");
    let task = active["weft:task"].as_str().unwrap().to_string();
    let first = c.weft(&format!("/v1/endpoints/{task}")).await;
    let second = c.weft(&format!("/v1/endpoints/{task}-n1")).await;
    assert_eq!(second["ip"], "10.73.0.50", "{second}");
    assert_eq!(second["interface"], 1, "{second}");
    assert_eq!(second["netns"], first["netns"]);
    assert_eq!(
        active["addresses"]["nw-b"][0]["OS-EXT-IPS-MAC:mac_addr"], second["mac"],
        "{active}"
    );
    // Its two ports, found by device.
    let ports = c.get(&format!("/network/v2.0/ports?device_id={id}")).await["ports"].clone();
    let mut networks: Vec<&str> = ports
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            assert_eq!(p["device_owner"], "compute:nova", "{p}");
            p["network_id"].as_str().unwrap()
        })
        .collect();
    networks.sort_unstable();
    let mut want = vec![net_a.as_str(), net_b.as_str()];
    want.sort_unstable();
    assert_eq!(networks, want, "{ports}");
    // The second network is in use; its port is no other server's.
    let (status, body) = c
        .call(
            Method::DELETE,
            &format!("/network/v2.0/networks/{net_b}"),
            None,
        )
        .await;
    assert_eq!(status, 409, "{body}");
    let b_port = ports
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["network_id"] == json!(net_b))
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut thief = servers(json!([{"port": b_port}]));
    thief["name"] = json!("thief");
    c.refused(thief, (409, "conflictingRequest")).await;

    // A port first, a network after it: the port's address first, a new one on nw-b.
    let (on_port, _) = c
        .create_server(servers(json!([{"port": port_id}, {"uuid": net_b}])))
        .await;
    let on_port_active = c.wait_status(&on_port, "ACTIVE").await;
    assert_eq!(
        on_port_active["addresses"]["nw-a"][0]["addr"], port["port"]["fixed_ips"][0]["ip_address"],
        "{on_port_active}"
    );
    let b2 = on_port_active["addresses"]["nw-b"][0]["addr"]
        .as_str()
        .unwrap();
    assert!(
        b2.starts_with("10.73.0.") && b2 != "10.73.0.50",
        "{on_port_active}"
    );

    // Deleted: every endpoint the servers made goes; the port stays.
    c.delete_server(&id).await;
    c.delete_server(&on_port).await;
    let endpoints = c.weft("/v1/endpoints").await;
    let names: Vec<&str> = endpoints
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names.len(),
        1,
        "only the port's endpoint is left: {names:?}"
    );
    assert_eq!(
        names[0],
        port["port"]["weft:endpoint"].as_str().unwrap(),
        "{names:?}"
    );
    let (status, body) = c
        .call(
            Method::DELETE,
            &format!("/network/v2.0/networks/{net_b}"),
            None,
        )
        .await;
    assert_eq!(status, 204, "{body}");
    drop(com1);
}
