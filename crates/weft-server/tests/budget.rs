#![allow(clippy::unwrap_used)]
//! A small document that would compile to millions of rules is refused at admission:
//! a clear 422 naming the contract, nothing committed, and the controller stays up.

mod common;

use common::*;
use weft_api::ClientError;

/// `n` EPGs of tenant `mesh` that all consume and provide contract `all`.
fn mesh_json(n: usize) -> String {
    let epgs: Vec<String> = (0..n)
        .map(|i| {
            format!(r#""e{i}": {{"bridge_domain": "b", "consumes": ["all"], "provides": ["all"]}}"#)
        })
        .collect();
    format!(
        r#"{{"tenant": {{"mesh": {{
            "vrf": {{"v": {{}}}},
            "bridge_domain": {{"b": {{"vrf": "v", "subnet": {{"10.50.0.0/16": {{"gateway": "10.50.0.1"}}}}}}}},
            "filter": {{"f": {{"entry": {{"tcp": {{"protocol": "tcp", "destination_port": 443}}}}}}}},
            "contract": {{"all": {{"subject": {{"s": {{"filters": ["f"]}}}}}}}},
            "application_profile": {{"a": {{"epg": {{ {} }}}}}}
        }}}}}}"#,
        epgs.join(",")
    )
}

/// Peak resident memory of this process, in MiB.
fn peak_rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb / 1024
}

#[tokio::test]
async fn a_blown_up_policy_is_refused_and_the_controller_stays_up() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let admin = admin(&server);
    admin.apply(&shop()).await.unwrap();
    let policy_before = admin.policy().await.unwrap();

    // 3,000 EPGs on one contract: 9 million rules, which used to abort the process.
    let err = admin.apply(&model(&mesh_json(3_000))).await.unwrap_err();
    let ClientError::Api { status, body } = err else {
        panic!("expected an API error, got {err:?}");
    };
    assert_eq!(status.as_u16(), 422);
    assert!(body.error.contains("nothing was committed"), "{body:?}");
    assert_eq!(body.field.as_deref(), Some("mesh/contract:all"));
    let detail = body.details.join("\n");
    for needle in [
        "VRF mesh/vrf:v",
        "3000 consuming x 3000 providing EPGs",
        "vzAny",
        "--max-rules-per-vrf",
    ] {
        assert!(detail.contains(needle), "{needle:?} not in {detail}");
    }
    assert!(
        peak_rss_mib() < 1024,
        "refusing took {} MiB at peak",
        peak_rss_mib()
    );

    // Nothing changed, and the controller still answers and takes good changes.
    assert_eq!(admin.policy().await.unwrap(), policy_before);
    assert!(
        admin
            .tenants()
            .await
            .unwrap()
            .iter()
            .all(|t| t.name != "mesh")
    );
    admin.apply(&model(&mesh_json(40))).await.unwrap();
    assert!(
        admin
            .tenants()
            .await
            .unwrap()
            .iter()
            .any(|t| t.name == "mesh")
    );
}

#[tokio::test]
async fn the_budget_is_configurable() {
    let dir = tempfile::tempdir().unwrap();
    let listen = std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 0));
    let mut config = weft_server::ServerConfig::new(listen, dir.path());
    config.compile_budget.max_rules_per_vrf = 100;
    let server = weft_server::serve(config).await.unwrap();
    let admin = admin(&server);
    // 10 EPGs: 90 pairs + 10 intra-EPG rules fit exactly; 11 do not.
    admin.apply(&model(&mesh_json(10))).await.unwrap();
    let err = admin.apply(&model(&mesh_json(11))).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Api { status, .. } if status.as_u16() == 422),
        "{err:?}"
    );
}
