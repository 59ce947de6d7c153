//! Privileged tasks per tenant (open problem 4) in process, with fake agents: the
//! allow-list only the admin writes (`/v1/privilege`, Keystone's project `PATCH`), app
//! admission refusing a privileged app of a tenant not on it (native apps and Nova's
//! servers alike, 403 with the reason, nothing created), scaling up refused after a deny;
//! Nova's flavor management (create with the seed's UUID id, extra specs, delete) with
//! its bounds and errors, and a custom flavor's CPU and RAM on the server's app.
#![allow(clippy::unwrap_used, clippy::too_many_lines)] // tests fail loudly

mod common;
mod openstack_common;

use common::fake_agent::FakeAgent;
use common::{admin, shop};
use openstack_common::{Cloud, SHOP};
use reqwest::Method;
use serde_json::{Value, json};
use weft_api::Client;

const PAPER_FLAVOR: &str = "34af1383-3836-4815-8060-503bc5d1b61b";
const IMAGE_ID: &str = "6f1b4c7e-5d2a-4c3b-9a8e-0b1c2d3e4f51";
const ROOT_IMAGE_ID: &str = "6f1b4c7e-5d2a-4c3b-9a8e-0b1c2d3e4f52";

fn privileged_app(id: &str, instances: u32) -> Value {
    json!({"app": {id: {"instances": instances, "cmd": "sleep 1000", "cpus": 0.1, "mem": 16,
                        "epg": "shop/store/web", "privileged": true}}})
}

fn status_of(e: &weft_api::ClientError) -> u16 {
    e.status().map_or(0, |s| s.as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_tenants_an_admin_allowed_run_privileged_apps() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let admin = admin(&server);
    admin.apply(&shop()).await.unwrap();
    let _agent = FakeAgent::start(&server, "n1", &[]).await;
    let token = admin.create_token("shop").await.unwrap().token;
    let tenant = Client::new(&server.base_url(), Some(token));

    // Not allowed: refused with the reason, nothing stored.
    let refused = tenant
        .apply_apps(privileged_app("root", 1))
        .await
        .unwrap_err();
    assert_eq!(status_of(&refused), 403, "{refused}");
    let text = refused.to_string();
    assert!(
        text.contains("tenant shop may not run privileged tasks")
            && text.contains("weft tenant privilege allow shop"),
        "{text}"
    );
    assert!(admin.apps().await.unwrap().is_empty());
    // A tenant cannot allow itself; the list is the admin's.
    for allowed in [true, false] {
        let e = tenant
            .set_tenant_privilege("shop", allowed)
            .await
            .unwrap_err();
        assert_eq!(status_of(&e), 403, "{e}");
    }
    assert!(!tenant.tenant_privilege("shop").await.unwrap().allowed);
    let e = tenant.tenant_privilege("other").await.unwrap_err();
    assert_eq!(status_of(&e), 403, "{e}");
    let e = admin
        .set_tenant_privilege("bad/name", true)
        .await
        .unwrap_err();
    assert!(matches!(status_of(&e), 400 | 404), "{e}");
    // An unprivileged app is unaffected; the admin may always.
    let mut plain = privileged_app("plain", 1);
    plain["app"]["plain"]["privileged"] = json!(false);
    tenant.apply_apps(plain).await.unwrap();
    admin
        .apply_apps(privileged_app("adminroot", 1))
        .await
        .unwrap();

    // Allowed: admitted; listed with its privileged apps.
    let entry = admin.set_tenant_privilege("shop", true).await.unwrap();
    assert!(entry.allowed && entry.since_ms.is_some(), "{entry:?}");
    // Idempotent.
    assert!(
        admin
            .set_tenant_privilege("shop", true)
            .await
            .unwrap()
            .allowed
    );
    tenant.apply_apps(privileged_app("root", 1)).await.unwrap();
    let listed = admin.privileged_tenants().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].tenant, "shop");
    assert_eq!(listed[0].privileged_apps, ["adminroot", "root"]);
    assert_eq!(tenant.privileged_tenants().await.unwrap().len(), 1);

    // Denied: the app keeps running, but changes and scaling up are refused; scaling
    // down is not.
    let entry = admin.set_tenant_privilege("shop", false).await.unwrap();
    assert!(!entry.allowed);
    assert_eq!(entry.privileged_apps, ["adminroot", "root"]);
    assert!(tenant.app("root").await.is_ok());
    let e = tenant.scale_app("root", 3).await.unwrap_err();
    assert_eq!(status_of(&e), 403, "{e}");
    let e = tenant
        .apply_apps(privileged_app("root", 2))
        .await
        .unwrap_err();
    assert_eq!(status_of(&e), 403, "{e}");
    tenant.scale_app("root", 0).await.unwrap();
    admin.scale_app("root", 2).await.unwrap();
    assert!(tenant.privileged_tenants().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nova_flavors_extra_specs_and_privileged_servers() {
    let dir = tempfile::tempdir().unwrap();
    let (server, c) = Cloud::start(dir.path(), SHOP).await;
    let _agent = FakeAgent::start(&server, "com1", &[]).await;
    let weft = admin(&server);
    let root = c.admin.clone();
    let call = |token: &str, method: Method, path: &str, body: Option<Value>| {
        let (c, token, path) = (&c, token.to_string(), path.to_string());
        async move { c.call_as(&token, method, &path, body).await }
    };
    let create_flavor =
        |token: &str, body: Value| call(token, Method::POST, "/compute/v2.1/flavors", Some(body));

    // ---- flavor management: the admin only ----------------------------------------
    let paper = json!({"flavor": {"name": "m1.paper", "id": PAPER_FLAVOR, "vcpus": 2,
                                  "ram": 96, "disk": 1}});
    let (status, body) = create_flavor("t-shop", paper.clone()).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["forbidden"]["message"]
            .as_str()
            .unwrap()
            .contains("os_compute_api:os-flavor-manage:create"),
        "{body}"
    );
    let (status, body) = create_flavor(&root, paper.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["flavor"]["id"], PAPER_FLAVOR);
    assert_eq!(
        (
            body["flavor"]["vcpus"].clone(),
            body["flavor"]["ram"].clone()
        ),
        (json!(2), json!(96))
    );
    let (status, body) = create_flavor(&root, paper).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        body["conflictingRequest"]["message"],
        "Flavor with name m1.paper already exists."
    );
    let (status, body) = create_flavor(
        &root,
        json!({"flavor": {"name": "auto", "vcpus": 1, "ram": 64, "disk": 0}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let auto_id = body["flavor"]["id"].as_str().unwrap().to_string();
    assert_eq!(auto_id.len(), 36, "{body}");
    let (status, body) = create_flavor(
        &root,
        json!({"flavor": {"name": "big", "vcpus": 0, "ram": 64, "disk": 0}}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["badRequest"]["message"],
        "Invalid input for field/attribute vcpus. Value: 0. 0 is less than the minimum of 1"
    );
    let listed = call("t-shop", Method::GET, "/compute/v2.1/flavors", None)
        .await
        .1;
    let names: Vec<&str> = listed["flavors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 6, "{listed}");
    assert!(
        names.contains(&"m1.paper") && names.contains(&"m1.tiny"),
        "{listed}"
    );
    let (status, _) = call(
        &root,
        Method::DELETE,
        &format!("/compute/v2.1/flavors/{auto_id}"),
        None,
    )
    .await;
    assert_eq!(status, 202);
    let (status, body) = call(&root, Method::DELETE, "/compute/v2.1/flavors/1", None).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = call(&root, Method::DELETE, "/compute/v2.1/flavors/nope", None).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(
        body["itemNotFound"]["message"],
        "Flavor nope could not be found."
    );

    // ---- extra specs -----------------------------------------------------------------
    let specs = format!("/compute/v2.1/flavors/{PAPER_FLAVOR}/os-extra_specs");
    let add_specs =
        |token: &str, specs_body: Value| call(token, Method::POST, &specs, Some(specs_body));
    let put_spec =
        |key: &str, spec: Value| call(&root, Method::PUT, &format!("{specs}/{key}"), Some(spec));
    let (status, body) = add_specs(&root, json!({"extra_specs": {"weft:nope": "1"}})).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["badRequest"]["message"]
            .as_str()
            .unwrap()
            .contains("weft:nope"),
        "{body}"
    );
    let (status, body) = add_specs("t-shop", json!({"extra_specs": {"hw:x": "1"}})).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = add_specs(&root, json!({"extra_specs": {"hw:x": "1"}})).await;
    assert_eq!(
        (status, body.clone()),
        (200, json!({"extra_specs": {"hw:x": "1"}}))
    );
    let (status, body) = put_spec("weft:privileged", json!({"weft:privileged": "true"})).await;
    assert_eq!(
        (status, body.clone()),
        (200, json!({"weft:privileged": "true"})),
        "{body}"
    );
    let (status, body) = put_spec("a", json!({"b": "1"})).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["badRequest"]["message"],
        "Request body and URI mismatch"
    );
    let shown = call("t-shop", Method::GET, &specs, None).await.1;
    assert_eq!(
        shown,
        json!({"extra_specs": {"hw:x": "1", "weft:privileged": "true"}})
    );
    let (status, _) = call(&root, Method::DELETE, &format!("{specs}/hw:x"), None).await;
    assert_eq!(status, 202);
    let (status, body) = call("t-shop", Method::GET, &format!("{specs}/hw:x"), None).await;
    assert_eq!(status, 404, "{body}");

    // ---- servers: a network, two images ---------------------------------------------
    let (net_id, _) = c.network("nw", "10.71.0.0/24").await;
    for (id, props) in [
        (IMAGE_ID, json!({})),
        (ROOT_IMAGE_ID, json!({"weft:privileged": "true"})),
    ] {
        let mut body = json!({"name": id, "id": id, "container_format": "docker",
                              "disk_format": "raw", "weft_docker_ref": "weft-test/busybox:latest"});
        body.as_object_mut()
            .unwrap()
            .extend(props.as_object().unwrap().clone());
        c.register_image(body).await;
    }
    let shown = call(
        "t-shop",
        Method::GET,
        &format!("/image/v2/images/{ROOT_IMAGE_ID}"),
        None,
    )
    .await
    .1;
    assert_eq!(shown["weft:privileged"], "true", "{shown}");
    let (status, body) = call(
        "t-shop",
        Method::POST,
        "/image/v2/images",
        Some(json!({"name": "x", "weft_docker_ref": "a", "weft:root": "true"})),
    )
    .await;
    assert_eq!(status, 400, "{body}");

    let server = |name: &str, image: &str, flavor: &str| {
        json!({"name": name, "imageRef": image, "flavorRef": flavor,
               "networks": [{"uuid": net_id}]})
    };
    // Privileged by the flavor, and by the image: 403 while shop is not allowed, and
    // nothing is left of the attempt.
    for (image, flavor) in [(IMAGE_ID, PAPER_FLAVOR), (ROOT_IMAGE_ID, "1")] {
        let (status, body) = call(
            "t-shop",
            Method::POST,
            "/compute/v2.1/servers",
            Some(json!({ "server": server("vm", image, flavor) })),
        )
        .await;
        assert_eq!(status, 403, "{body}");
        assert!(
            body["forbidden"]["message"]
                .as_str()
                .unwrap()
                .contains("tenant shop may not run privileged tasks"),
            "{body}"
        );
        assert!(weft.apps().await.unwrap().is_empty());
        let servers = call("t-shop", Method::GET, "/compute/v2.1/servers", None)
            .await
            .1;
        assert_eq!(servers["servers"], json!([]), "{servers}");
    }

    // Keystone: the admin token authenticates as the admin; only the admin patches.
    let auth = c
        .http
        .post(format!("{}/v3/auth/tokens", c.os))
        .json(&json!({"auth": {"identity": {"methods": ["token"], "token": {"id": root}}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(auth.status(), 201);
    assert_eq!(auth.headers()["x-subject-token"], root.as_str());
    let body: Value = auth.json().await.unwrap();
    assert!(
        body["token"]["roles"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "admin"),
        "{body}"
    );
    let projects = call(&root, Method::GET, "/v3/projects?name=shop", None)
        .await
        .1;
    let project = projects["projects"][0].clone();
    assert_eq!(project["name"], "shop", "{projects}");
    assert_eq!(project["weft:privileged"], "false");
    let path = format!("/v3/projects/{}", project["id"].as_str().unwrap());
    let allow = json!({"project": {"weft:privileged": "true"}});
    let (status, body) = call("t-shop", Method::PATCH, &path, Some(allow.clone())).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = call(
        &root,
        Method::PATCH,
        &path,
        Some(json!({"project": {"weft:other": "1"}})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = call(&root, Method::PATCH, &path, Some(allow)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["project"]["weft:privileged"], "true");
    assert!(weft.tenant_privilege("shop").await.unwrap().allowed);

    // Allowed: the custom flavor's server is a privileged app with its CPU and RAM.
    let (vm, _) = c.create_server(server("vm", IMAGE_ID, PAPER_FLAVOR)).await;
    let apps = weft.apps().await.unwrap();
    assert_eq!(apps.len(), 1);
    let spec = &apps[0].spec;
    assert!(spec.privileged);
    assert_eq!((spec.cpus, spec.mem), (2.0, 96));
    let shown = c.server(&vm).await;
    assert_eq!(shown["flavor"]["id"], PAPER_FLAVOR, "{shown}");
    // The plain image with a plain flavor: not privileged.
    c.create_server(server("vm2", IMAGE_ID, "1")).await;
    let plain = weft
        .apps()
        .await
        .unwrap()
        .into_iter()
        .find(|a| a.spec.mem == 512)
        .unwrap();
    assert!(!plain.spec.privileged);
}
