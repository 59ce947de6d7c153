//! Images the nodes' Docker engines hold, in process: fake agents report them
//! (`PUT /v1/nodes/{name}/images`), Glance lists and shows each `repo:tag` with an id
//! derived from the reference, the nodes that hold it and no duplicate of a registered
//! image of the same reference; a server boots from one; an image goes when no node
//! holds it any more (a new report without it, or its node removed); admission bounds.
#![allow(clippy::unwrap_used)] // tests fail loudly

mod common;
mod openstack_common;

use common::fake_agent::FakeAgent;
use openstack_common::{Cloud, SHOP_AND_OTHER};
use reqwest::Method;
use serde_json::{Value, json};
use weft_api::{NodeImage, NodeImages};
use weft_server::ServerHandle;

impl Cloud {
    /// The images' names by id, as `token` lists them.
    async fn names(&self, token: &str) -> Vec<(String, String)> {
        let (status, body) = self
            .call_as(token, Method::GET, "/image/v2/images", None)
            .await;
        assert_eq!(status, 200, "{body}");
        body["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["id"].as_str().unwrap().to_string(),
                    i["name"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }
}

fn image(tags: &[&str], id: &str, created_ms: u64) -> NodeImage {
    NodeImage {
        tags: tags.iter().map(|t| (*t).to_string()).collect(),
        id: id.into(),
        size: 4096,
        created_ms,
    }
}

async fn report(server: &ServerHandle, node: &str, images: Vec<NodeImage>) {
    common::agent(server)
        .report_images(node, &NodeImages::bounded(images))
        .await
        .unwrap();
}

fn discovered_id(reference: &str) -> String {
    weft_openstack::derived_uuid(&format!("docker-image:{reference}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_images_are_glance_images_until_no_node_holds_them() {
    let dir = tempfile::tempdir().unwrap();
    let (server, c) = Cloud::start(dir.path(), SHOP_AND_OTHER).await;
    let com1 = FakeAgent::start(&server, "com1", &[]).await;
    let com2 = FakeAgent::start(&server, "com2", &[]).await;
    assert!(c.names("t-shop").await.is_empty());

    report(
        &server,
        "com1",
        vec![
            image(&["busybox:latest"], "sha256:b1", 1_700_000_000_000),
            image(
                &["weft-test/app:2", "weft-test/app:latest"],
                "sha256:a2",
                1_700_000_100_000,
            ),
            image(&["<none>:<none>"], "sha256:dangling", 1_700_000_200_000),
        ],
    )
    .await;
    report(
        &server,
        "com2",
        vec![image(&["busybox:latest"], "sha256:b2", 1_600_000_000_000)],
    )
    .await;

    // ---- listed and shown, with derived ids -----------------------------------------
    let busybox = discovered_id("busybox:latest");
    let app2 = discovered_id("weft-test/app:2");
    let app_latest = discovered_id("weft-test/app:latest");
    let mut names = c.names("t-shop").await;
    names.sort();
    let mut want = vec![
        (busybox.clone(), "busybox".to_string()),
        (app2.clone(), "weft-test/app:2".to_string()),
        (app_latest.clone(), "weft-test/app".to_string()),
    ];
    want.sort();
    assert_eq!(names, want);
    // Every project (and the admin) sees them: they are public.
    assert_eq!(c.names("t-other").await.len(), 3);
    assert_eq!(c.names(&c.admin).await.len(), 3);
    let shown = c.get(&format!("/image/v2/images/{busybox}")).await;
    assert_eq!(shown["id"], json!(busybox));
    assert_eq!(shown["name"], "busybox");
    assert_eq!(shown["status"], "active");
    assert_eq!(shown["visibility"], "public");
    assert_eq!(shown["container_format"], "docker");
    assert_eq!(shown["disk_format"], "raw");
    assert_eq!(shown["size"], 4096);
    assert_eq!(shown["weft_docker_ref"], "busybox:latest");
    assert_eq!(shown["weft_nodes"], "com1,com2");
    assert_eq!(shown["created_at"], "2023-11-14T22:13:20Z");
    // Filters and paging as for registered images (newest first).
    let named = c.get("/image/v2/images?name=busybox").await;
    assert_eq!(named["images"].as_array().unwrap().len(), 1, "{named}");
    let page = c.get("/image/v2/images?limit=2").await;
    let first: Vec<&str> = page["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(first.len(), 2);
    let next = page["next"].as_str().unwrap();
    let rest = c.get(&format!("/image{next}")).await;
    assert_eq!(rest["images"].as_array().unwrap().len(), 1, "{rest}");
    assert!(rest.get("next").is_none());
    // Not weft's to delete.
    let (status, body) = c
        .call_as(
            &c.admin,
            Method::DELETE,
            &format!("/image/v2/images/{busybox}"),
            None,
        )
        .await;
    assert_eq!(status, 403, "{body}");

    // ---- a registered image of the same reference wins (for who sees it) ------------
    let mine = c
        .register_image(json!({"name": "my-busybox", "weft_docker_ref": "busybox"}))
        .await;
    let mine_id = mine["id"].as_str().unwrap().to_string();
    let names = c.names("t-shop").await;
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(names.contains(&(mine_id.clone(), "my-busybox".into())));
    assert!(!names.iter().any(|(id, _)| *id == busybox));
    let (status, _) = c
        .call(Method::GET, &format!("/image/v2/images/{busybox}"), None)
        .await;
    assert_eq!(status, 404);
    let shown = c.get(&format!("/image/v2/images/{mine_id}")).await;
    assert_eq!(shown["weft_nodes"], "com1,com2");
    // Another project does not see the registration, so it keeps the node's image.
    assert!(
        c.names("t-other")
            .await
            .contains(&(busybox.clone(), "busybox".into()))
    );

    // ---- a server boots from a discovered image -------------------------------------
    let (net_id, _) = c.network("nw-a", "10.71.0.0/24").await;
    let (id, _) = c
        .create_server(json!({"name": "vm1", "imageRef": app2, "flavorRef": "1",
                "networks": [{"uuid": net_id}]}))
        .await;
    let active = c.wait_status(&id, "ACTIVE").await;
    assert_eq!(active["image"]["id"], json!(app2));
    // Placed where the image is: only com1 holds it.
    assert_eq!(active["OS-EXT-SRV-ATTR:host"], "com1");
    let apps = c.weft("/v1/apps").await;
    assert_eq!(apps[0]["spec"]["image"], "weft-test/app:2", "{apps}");

    // ---- gone when no node holds it --------------------------------------------------
    report(
        &server,
        "com1",
        vec![image(&["busybox:latest"], "sha256:b1", 1_700_000_000_000)],
    )
    .await;
    let names = c.names("t-other").await;
    assert_eq!(names, [(busybox.clone(), "busybox".to_string())]);
    let (status, _) = c
        .call(Method::GET, &format!("/image/v2/images/{app2}"), None)
        .await;
    assert_eq!(status, 404);
    // The server keeps its image id.
    let vm = c.server(&id).await;
    assert_eq!(vm["image"]["id"], json!(app2));
    // A removed node holds nothing.
    com2.stop().await;
    assert_eq!(
        c.weft_as(&c.admin, Method::DELETE, "/v1/nodes/com2", None)
            .await,
        200
    );
    let shown = c
        .call_as(
            "t-other",
            Method::GET,
            &format!("/image/v2/images/{busybox}"),
            None,
        )
        .await
        .1;
    assert_eq!(shown["weft_nodes"], "com1", "{shown}");
    report(&server, "com1", Vec::new()).await;
    assert!(c.names("t-other").await.is_empty());
    // The same reference reported again has the same id.
    report(
        &server,
        "com1",
        vec![image(&["weft-test/app:2"], "sha256:a3", 1)],
    )
    .await;
    assert_eq!(
        c.names("t-other").await,
        [(app2.clone(), "weft-test/app:2".to_string())]
    );

    // ---- admission --------------------------------------------------------------------
    let join = server.join_token().to_string();
    let put = |body: Value| {
        let c = &c;
        let join = join.clone();
        async move {
            c.weft_as(&join, Method::PUT, "/v1/nodes/com1/images", Some(body))
                .await
        }
    };
    let too_many: Vec<NodeImage> = (0..=1000u64)
        .map(|n| image(&["x:1"], &format!("sha256:{n}"), n))
        .collect();
    let digest = NodeImages::digest_of(&too_many);
    assert_eq!(
        put(json!({"digest": digest, "images": too_many})).await,
        400
    );
    let none = vec![image(&["<none>:<none>"], "sha256:1", 1)];
    let digest = NodeImages::digest_of(&none);
    assert_eq!(put(json!({"digest": digest, "images": none})).await, 400);
    let long = vec![image(&[&"a".repeat(256)], "sha256:1", 1)];
    let digest = NodeImages::digest_of(&long);
    assert_eq!(put(json!({"digest": digest, "images": long})).await, 400);
    let fine = vec![image(&["x:1"], "sha256:1", 1)];
    assert_eq!(put(json!({"digest": "nope", "images": fine})).await, 400);
    assert_eq!(
        put(json!({"digest": "x", "images": [], "bogus": 1})).await,
        400
    );
    let empty = NodeImages::bounded(Vec::new());
    assert_eq!(
        c.weft_as(
            &join,
            Method::PUT,
            "/v1/nodes/nope/images",
            Some(serde_json::to_value(&empty).unwrap())
        )
        .await,
        404
    );
    let tenant = c
        .weft_as(
            "t-shop",
            Method::PUT,
            "/v1/nodes/com1/images",
            Some(serde_json::to_value(&empty).unwrap()),
        )
        .await;
    assert!(matches!(tenant, 401 | 403), "{tenant}");
    // Nothing refused changed what Glance lists.
    assert_eq!(
        c.names("t-other").await,
        [(app2.clone(), "weft-test/app:2".to_string())]
    );
    com1.stop().await;
}
