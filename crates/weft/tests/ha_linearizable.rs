//! Linearizability through weft's API across a leader kill: six clients create and
//! delete endpoints that claim addresses from a pool of three, on three controllers
//! over a three-member etcd, while the leading controller is killed. Each address is a
//! register (absent, or the endpoint holding it): a create is a compare-and-swap from
//! absent, a delete one from its endpoint back to absent. The recorded history must be
//! linearizable (`weft-lincheck`). The same workload against controllers whose store
//! decides a transaction and writes it in two requests (`WEFT_STORE_FAULT=split-cas`)
//! must be caught. No root needed; needs Debian's etcd-server.
#![allow(clippy::unwrap_used)]

#[allow(unused_macros)]
mod common;

use common::ha::{Controller, leader_status, start_controller};
use common::{runtime, wait_until};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use weft_api::{Client, ClientError, EndpointRequest, NodeRegistration, Resources};
use weft_lincheck::{Input, Op, Output, check};
use weft_store_etcd::cluster::{ClusterOptions, EtcdCluster, etcd_available_for_test};

const POOL: [&str; 3] = ["10.1.0.50", "10.1.0.51", "10.1.0.52"];
const CLIENTS: usize = 6;

struct Cluster {
    controllers: Vec<Controller>,
    urls: Vec<String>,
    token: String,
    _etcd: EtcdCluster,
    base: std::path::PathBuf,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.controllers.clear();
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

fn cluster(rt: &tokio::runtime::Runtime, tag: &str, env: &[(&str, &str)]) -> Cluster {
    let etcd = rt
        .block_on(EtcdCluster::start(ClusterOptions::members(3)))
        .unwrap();
    let endpoints = etcd.endpoints().join(",");
    let base = std::env::temp_dir().join(format!("weft-t{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let controllers: Vec<Controller> = (0..3)
        .map(|i| start_controller(&base.join(format!("c{i}")), &endpoints, env))
        .collect();
    let urls: Vec<String> = controllers.iter().map(|c| c.url.clone()).collect();
    let token_of = |i: usize| {
        std::fs::read_to_string(base.join(format!("c{i}/admin.token")))
            .map(|t| t.trim().to_string())
            .unwrap_or_default()
    };
    wait_until("three controllers", Duration::from_secs(30), || {
        (0..3).all(|i| {
            !token_of(i).is_empty() && rt.block_on(Client::new(&urls[i], None).health()).is_ok()
        })
    });
    let token = token_of(0);
    let admin = Client::new(&urls[0], Some(token.clone()));
    rt.block_on(admin.apply(&weft_model::parse_hcl("t.hcl", common::THREE_TIER).unwrap()))
        .unwrap();
    let join = std::fs::read_to_string(base.join("c0/join.token")).unwrap();
    rt.block_on(
        Client::new(&urls[0], Some(join.trim().to_string())).register_node(&NodeRegistration {
            name: "n1".into(),
            underlay_ip: "192.0.2.10".parse().unwrap(),
            netns: None,
            netns_prefix: "weft-lin-n1".into(),
            api: None,
            resources: Resources {
                cpus: 1.0,
                mem_mb: 1024,
                disk_mb: 1000,
            },
            labels: Default::default(),
        }),
    )
    .unwrap();
    Cluster {
        controllers,
        urls,
        token,
        _etcd: etcd,
        base,
    }
}

/// Runs the workload for `run`, calling `midway` once halfway; returns the history.
fn workload(c: &Cluster, run: Duration, midway: impl FnOnce()) -> Vec<Op> {
    let history: Arc<Mutex<Vec<Op>>> = Arc::default();
    let start = Instant::now();
    let micros = move || u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
    let threads: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let urls = c.urls.clone();
            let token = c.token.clone();
            let history = history.clone();
            std::thread::spawn(move || {
                let rt = runtime();
                let mut at = client % urls.len();
                let mut held: Vec<(String, String)> = Vec::new(); // (endpoint, ip)
                let mut n = 0u64;
                let mut seed = 0x9e37_79b9_u64.wrapping_mul(client as u64 + 1);
                let mut rand = move || {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed
                };
                while start.elapsed() < run {
                    let api = Client::new(&urls[at], Some(token.clone()));
                    let delete = !held.is_empty() && rand() % 2 == 0;
                    let (key, input, called, answer) = if delete {
                        let (name, ip) = held.swap_remove((rand() % held.len() as u64) as usize);
                        let input = Input::Cas {
                            expected: Some(name.clone()),
                            new: None,
                        };
                        let called = micros();
                        let answer = rt.block_on(async {
                            tokio::time::timeout(Duration::from_secs(3), api.delete_endpoint(&name))
                                .await
                        });
                        let output = match answer {
                            Ok(Ok(())) => Some(Output::Cas(true)),
                            Ok(Err(ClientError::Api { status, .. }))
                                if status == reqwest::StatusCode::NOT_FOUND =>
                            {
                                Some(Output::Cas(false))
                            }
                            _ => {
                                // Unknown: it may still be there; keep trying later.
                                held.push((name, ip.clone()));
                                None
                            }
                        };
                        (ip, input, called, output)
                    } else {
                        n += 1;
                        let name = format!("l{client}x{n}");
                        let ip = POOL[(rand() % POOL.len() as u64) as usize].to_string();
                        let input = Input::Cas {
                            expected: None,
                            new: Some(name.clone()),
                        };
                        let request = EndpointRequest {
                            ip: Some(ip.parse().unwrap()),
                            ..EndpointRequest::new(
                                name.clone(),
                                "shop/store/web".parse().unwrap(),
                                "n1",
                            )
                        };
                        let called = micros();
                        let answer = rt.block_on(async {
                            tokio::time::timeout(
                                Duration::from_secs(3),
                                api.create_endpoint(&request),
                            )
                            .await
                        });
                        let output = match answer {
                            Ok(Ok(_)) => {
                                held.push((name, ip.clone()));
                                Some(Output::Cas(true))
                            }
                            Ok(Err(ClientError::Api { status, body }))
                                if status == reqwest::StatusCode::CONFLICT
                                    && body.error.contains("is taken") =>
                            {
                                Some(Output::Cas(false))
                            }
                            // Unknown (timeout, 5xx, a lost connection): it may have
                            // happened. Remember it as held so it is deleted later.
                            _ => {
                                held.push((name, ip.clone()));
                                None
                            }
                        };
                        (ip, input, called, output)
                    };
                    let returned = answer.as_ref().map(|_| micros());
                    if answer.is_none() {
                        at = (at + 1) % urls.len();
                    }
                    history.lock().unwrap().push(Op {
                        client,
                        key,
                        input,
                        output: answer,
                        called,
                        returned,
                    });
                }
            })
        })
        .collect();
    std::thread::sleep(run / 2);
    midway();
    for t in threads {
        t.join().unwrap();
    }
    Arc::try_unwrap(history).unwrap().into_inner().unwrap()
}

fn summary(history: &[Op]) -> String {
    let ok = history
        .iter()
        .filter(|o| o.output == Some(Output::Cas(true)))
        .count();
    let refused = history
        .iter()
        .filter(|o| o.output == Some(Output::Cas(false)))
        .count();
    let unknown = history.iter().filter(|o| o.output.is_none()).count();
    format!(
        "{} ops: {ok} applied, {refused} refused, {unknown} unknown",
        history.len()
    )
}

#[test]
fn endpoint_address_claims_are_linearizable_across_a_leader_kill_and_a_broken_store_is_caught() {
    if !etcd_available_for_test("endpoint_address_claims_are_linearizable") {
        return;
    }
    let rt = runtime();
    let mut c = cluster(&rt, "lin", &[]);
    let leader = rt
        .block_on(leader_status(&c.urls[0]))
        .and_then(|s| s.leader_url)
        .and_then(|url| c.urls.iter().position(|u| *u == url))
        .unwrap();
    let mut victim = c.controllers.remove(leader);
    let history = workload(&c, Duration::from_secs(8), || victim.kill());
    eprintln!("correct store: {}", summary(&history));
    assert!(
        history
            .iter()
            .filter(|o| o.output == Some(Output::Cas(true)))
            .count()
            > 20,
        "the workload did work"
    );
    if let Err(violation) = check(&history) {
        panic!("not linearizable:\n{violation}");
    }
    drop(c);

    let broken = cluster(&rt, "linbroken", &[("WEFT_STORE_FAULT", "split-cas")]);
    let history = workload(&broken, Duration::from_secs(6), || {});
    eprintln!("broken store: {}", summary(&history));
    let caught = check(&history).expect_err("the non-atomic store must be caught");
    eprintln!("caught:\n{caught}");
}
