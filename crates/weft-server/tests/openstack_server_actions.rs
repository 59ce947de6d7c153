//! Nova's server actions, `user_data`, hypervisors and hosts through the OpenStack
//! listener in process, with fake agents that report tasks running: stop makes the app's
//! instances 0 and the server SHUTOFF (a second stop, a start of a running server and a
//! soft reboot of a stopped one are Nova's 409), start brings a task back, reboot raises
//! the task's `WEFT_BOOT` in place (same task and address), refused actions are 400;
//! `user_data` becomes `WEFT_USER_DATA` in the app's environment and is not shown as
//! metadata; hypervisors and hosts are the nodes with the scheduler's counts, for the
//! admin only.
#![allow(clippy::unwrap_used)] // tests fail loudly

mod common;
mod openstack_common;

use common::fake_agent::FakeAgent;
use openstack_common::{Cloud, SHOP};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

const IMAGE_ID: &str = "7a1b4c7e-5d2a-4c3b-9a8e-0b1c2d3e4f51";

/// An action Nova refuses (409) for the server's `vm_state`.
async fn conflict(c: &Cloud, id: &str, body: Value, verb: &str, vm_state: &str) {
    let (status, answer) = c.action(id, body).await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(
        answer["conflictingRequest"]["message"],
        format!("Cannot '{verb}' instance {id} while it is in vm_state {vm_state}")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_user_data_hypervisors_and_hosts() {
    let dir = tempfile::tempdir().unwrap();
    let (server, c) = Cloud::start(dir.path(), SHOP).await;
    let com1 = FakeAgent::start(&server, "com1", &[]).await;
    let com2 = FakeAgent::start(&server, "com2", &[]).await;

    c.register_image(
        json!({"name": "busybox", "id": IMAGE_ID, "container_format": "docker",
                        "disk_format": "raw", "weft_docker_ref": "weft-test/busybox:latest"}),
    )
    .await;
    let (net_id, _) = c.network("nw-a", "10.71.0.0/24").await;

    // A server with user data: WEFT_USER_DATA in the app's environment, not metadata.
    let (id, _) = c
        .create_server(
            json!({"name": "vm1", "imageRef": IMAGE_ID, "flavorRef": "1",
                        "networks": [{"uuid": net_id}], "metadata": {"role": "web"},
                        "user_data": "I2Nsb3VkLWNvbmZpZwpyb2xlOiB3ZWIK"}),
        )
        .await;
    let active = c.wait_status(&id, "ACTIVE").await;
    assert_eq!(active["metadata"], json!({"role": "web"}), "{active}");
    assert!(
        active.get("OS-EXT-SRV-ATTR:user_data").is_none(),
        "{active}"
    );
    let app = active["weft:app"].as_str().unwrap().to_string();
    let task = active["weft:task"].as_str().unwrap().to_string();
    let ip = active["accessIPv4"].clone();
    let spec = c.weft(&format!("/v1/apps/{app}")).await;
    assert_eq!(
        spec["spec"]["env"]["WEFT_USER_DATA"], "#cloud-config\nrole: web\n",
        "{spec}"
    );

    // Refused actions: 400, nothing changed; unknown server 404.
    for body in [
        json!({"pause": null}),
        json!({"frobnicate": null}),
        json!({"reboot": {"type": "WARM"}}),
        json!({"os-getConsoleOutput": {"length": -5}}),
        json!({"os-stop": null, "os-start": null}),
    ] {
        let (status, answer) = c.action(&id, body.clone()).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["badRequest"]["code"], 400, "{answer}");
    }
    let (status, answer) = c
        .action(
            "00000000-0000-4000-8000-000000000000",
            json!({"os-stop": null}),
        )
        .await;
    assert_eq!(status, 404, "{answer}");
    // Starting a running server is 409.
    conflict(&c, &id, json!({"os-start": null}), "start", "active").await;

    // Stop: instances 0, the task gone, SHUTOFF; a second stop and a soft reboot 409.
    let (status, answer) = c.action(&id, json!({"os-stop": null})).await;
    assert_eq!((status, answer), (202, Value::Null));
    let stopped = c.wait_status(&id, "SHUTOFF").await;
    assert_eq!(stopped["OS-EXT-STS:vm_state"], "stopped");
    assert_eq!(stopped["OS-EXT-STS:power_state"], 4);
    assert_eq!(stopped["addresses"], json!({}));
    assert_eq!(c.weft(&format!("/v1/apps/{app}")).await["instances"], 0);
    assert_eq!(c.weft(&format!("/v1/tasks?app={app}")).await, json!([]));
    for (body, verb) in [
        (json!({"os-stop": null}), "stop"),
        (json!({"reboot": {"type": "SOFT"}}), "reboot"),
        (json!({"os-getConsoleOutput": {}}), "get_console_output"),
    ] {
        conflict(&c, &id, body, verb, "stopped").await;
    }
    let (status, listed) = c
        .call(
            Method::GET,
            "/compute/v2.1/servers/detail?status=SHUTOFF",
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(listed["servers"].as_array().unwrap().len(), 1, "{listed}");

    // Start: a task again, ACTIVE.
    let (status, _) = c.action(&id, json!({"os-start": null})).await;
    assert_eq!(status, 202);
    let started = c.wait_status(&id, "ACTIVE").await;
    assert_eq!(c.weft(&format!("/v1/apps/{app}")).await["instances"], 1);
    let task = started["weft:task"].as_str().unwrap_or(&task).to_string();
    let ip = if started["accessIPv4"].is_string() {
        started["accessIPv4"].clone()
    } else {
        ip
    };

    // Reboot: the same task and address, its WEFT_BOOT raised; hard the same way.
    for (n, kind) in [(1, "SOFT"), (2, "HARD")] {
        let (status, _) = c.action(&id, json!({"reboot": {"type": kind}})).await;
        assert_eq!(status, 202);
        let rebooted = c.wait_status(&id, "ACTIVE").await;
        assert_eq!(rebooted["weft:task"], task.as_str());
        assert_eq!(rebooted["accessIPv4"], ip);
        let record = c.weft(&format!("/v1/tasks/{task}")).await;
        assert_eq!(record["env"]["WEFT_BOOT"], n.to_string(), "{record}");
    }

    // Hypervisors and hosts: the admin sees the nodes; a project may not.
    let (status, answer) = c
        .call(Method::GET, "/compute/v2.1/os-hypervisors/detail", None)
        .await;
    assert_eq!(status, 403, "{answer}");
    assert_eq!(answer["forbidden"]["code"], 403);
    let (status, answer) = c.call(Method::GET, "/compute/v2.1/os-hosts", None).await;
    assert_eq!(status, 403, "{answer}");
    let (status, hypervisors) = c
        .call_as(
            &c.admin,
            Method::GET,
            "/compute/v2.1/os-hypervisors/detail",
            None,
        )
        .await;
    assert_eq!(status, 200, "{hypervisors}");
    let all = hypervisors["hypervisors"].as_array().unwrap();
    assert_eq!(all.len(), 2, "{hypervisors}");
    let on = started["OS-EXT-SRV-ATTR:host"].as_str().unwrap();
    let mut used = 0;
    for h in all {
        assert_eq!(h["vcpus"], 2, "{h}");
        assert_eq!(h["memory_mb"], 2048, "{h}");
        assert_eq!(h["state"], "up", "{h}");
        if h["hypervisor_hostname"] == on {
            assert_eq!(
                (&h["running_vms"], &h["memory_mb_used"], &h["vcpus_used"]),
                (&json!(1), &json!(512), &json!(1)),
                "{h}"
            );
            used += 1;
        } else {
            assert_eq!(h["running_vms"], 0, "{h}");
        }
        let one = c
            .call_as(
                &c.admin,
                Method::GET,
                &format!("/compute/v2.1/os-hypervisors/{}", h["id"]),
                None,
            )
            .await;
        assert_eq!(one.0, 200, "{}", one.1);
        assert_eq!(
            one.1["hypervisor"]["hypervisor_hostname"],
            h["hypervisor_hostname"]
        );
    }
    assert_eq!(used, 1);
    let (status, _) = c
        .call_as(
            &c.admin,
            Method::GET,
            "/compute/v2.1/os-hypervisors/com1",
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (status, hosts) = c
        .call_as(&c.admin, Method::GET, "/compute/v2.1/os-hosts", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        hosts,
        json!({"hosts": [
            {"host_name": "com1", "service": "compute", "zone": "nova"},
            {"host_name": "com2", "service": "compute", "zone": "nova"},
        ]})
    );
    let (status, host) = c
        .call_as(
            &c.admin,
            Method::GET,
            &format!("/compute/v2.1/os-hosts/{on}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{host}");
    assert_eq!(host["host"][1]["resource"]["memory_mb"], 512, "{host}");

    // A privileged server (the image says so) of a tenant the admin allowed: once the
    // admin denies the tenant, stopping it is fine but starting it again (new privileged
    // task) is 403 and it stays SHUTOFF, as `weft app scale` up would be.
    let privilege = |method: Method| {
        c.http
            .request(method, format!("{}/v1/privilege/shop", c.weft))
            .bearer_auth(&c.admin)
            .send()
    };
    assert!(privilege(Method::PUT).await.unwrap().status().is_success());
    let image = c
        .register_image(
            json!({"name": "root", "container_format": "docker", "disk_format": "raw",
                        "weft_docker_ref": "weft-test/busybox:latest",
                        "weft:privileged": "true"}),
        )
        .await;
    let (root, _) = c
        .create_server(
            json!({"name": "root1", "imageRef": image["id"], "flavorRef": "1",
                        "networks": [{"uuid": net_id}]}),
        )
        .await;
    c.wait_status(&root, "ACTIVE").await;
    assert!(
        privilege(Method::DELETE)
            .await
            .unwrap()
            .status()
            .is_success()
    );
    let (status, _) = c.action(&root, json!({"os-stop": null})).await;
    assert_eq!(status, 202);
    c.wait_status(&root, "SHUTOFF").await;
    let (status, answer) = c.action(&root, json!({"os-start": null})).await;
    assert_eq!(status, 403, "{answer}");
    assert_eq!(answer["forbidden"]["code"], 403, "{answer}");
    assert_eq!(c.server(&root).await["status"], "SHUTOFF");
    c.delete_server(&root).await;

    // A server still building has no console (409); the agents are slow to start it.
    com1.set_start_delay(Duration::from_secs(3));
    com2.set_start_delay(Duration::from_secs(3));
    let (slow, _) = c
        .create_server(
            json!({"name": "slow", "imageRef": IMAGE_ID, "flavorRef": "1",
                        "networks": [{"uuid": net_id}]}),
        )
        .await;
    assert_eq!(c.server(&slow).await["status"], "BUILD");
    conflict(
        &c,
        &slow,
        json!({"os-getConsoleOutput": {"length": 10}}),
        "get_console_output",
        "building",
    )
    .await;
    c.delete_server(&slow).await;

    // Delete a stopped server too.
    let (status, _) = c.action(&id, json!({"os-stop": null})).await;
    assert_eq!(status, 202);
    c.wait_status(&id, "SHUTOFF").await;
    let (status, _) = c
        .call(Method::DELETE, &format!("/compute/v2.1/servers/{id}"), None)
        .await;
    assert_eq!(status, 204);
    assert_eq!(c.weft("/v1/apps").await, json!([]));
}
