//! Three `weft server` processes over one real three-member etcd cluster: they share
//! the admin and join tokens, agree on one leader, and the leader alone schedules. A
//! node heartbeats to one controller and reports to another, while the leader
//! (any of them) places tasks on it. `kill -9` of the leader: another leads within the
//! bound and scheduling goes on. `SIGSTOP` of the next leader for longer than its
//! lease: a third takes over; after `SIGCONT` the old one no longer leads and the
//! cluster's state is what the new leader decided. No root needed (no data path);
//! needs Debian's etcd-server (skips loudly outside CI, fails in CI).
#![allow(clippy::unwrap_used)]

#[allow(unused_macros)]
mod common;

use common::ha::{Controller, leader_status, signal, start_controller};
use common::{runtime, wait_until};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use weft_api::{Client, ControllersStatus, NodeRegistration, Resources};
use weft_store_etcd::cluster::{ClusterOptions, EtcdCluster, etcd_available_for_test};

#[test]
fn one_leader_schedules_and_another_takes_over_after_a_kill_and_a_pause() {
    if !etcd_available_for_test("one_leader_schedules_and_another_takes_over") {
        return;
    }
    let rt = runtime();
    let etcd = rt
        .block_on(EtcdCluster::start(ClusterOptions::members(3)))
        .unwrap();
    let endpoints = etcd.endpoints().join(",");
    let base = std::env::temp_dir().join(format!("weft-t{}-ha", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let mut controllers: Vec<Controller> = (0..3)
        .map(|i| start_controller(&base.join(format!("c{i}")), &endpoints, &[]))
        .collect();
    let admin_token = |i: usize| {
        std::fs::read_to_string(base.join(format!("c{i}/admin.token")))
            .map(|t| t.trim().to_string())
            .unwrap_or_default()
    };
    wait_until("three controllers serving", Duration::from_secs(30), || {
        (0..3).all(|i| {
            !admin_token(i).is_empty()
                && rt
                    .block_on(Client::new(&controllers[i].url, None).health())
                    .is_ok()
        })
    });
    // One set of tokens for the cluster.
    let token = admin_token(0);
    assert!(
        (1..3).all(|i| admin_token(i) == token),
        "shared admin token"
    );
    let join = std::fs::read_to_string(base.join("c0/join.token")).unwrap();
    let urls: Vec<String> = controllers.iter().map(|c| c.url.clone()).collect();
    let client = |i: usize| Client::new(&urls[i], Some(token.clone()));
    let status_of = |url: &str| -> Option<ControllersStatus> { rt.block_on(leader_status(url)) };
    let status = |i: usize| status_of(&urls[i]);
    let leader_index = |alive: &[usize]| -> Option<usize> {
        let s = alive.iter().find_map(|i| status_of(&urls[*i]))?;
        let url = s.leader_url?;
        urls.iter().position(|u| *u == url)
    };

    // All three see the same leader and all three controllers.
    wait_until("a leader", Duration::from_secs(10), || {
        leader_index(&[0, 1, 2]).is_some()
    });
    let seen: Vec<ControllersStatus> = (0..3).map(|i| status(i).unwrap()).collect();
    assert!(seen.iter().all(|s| s.leader == seen[0].leader), "{seen:?}");
    assert_eq!(seen[0].controllers.len(), 3, "{seen:?}");
    assert_eq!(
        seen[0].controllers.iter().filter(|c| c.leader).count(),
        1,
        "{seen:?}"
    );

    // A node that registers with one controller and heartbeats to another.
    rt.block_on(
        client(0).apply(&weft_model::parse_hcl("three-tier.hcl", common::THREE_TIER).unwrap()),
    )
    .unwrap();
    let agent = |i: usize| Client::new(&urls[i], Some(join.trim().to_string()));
    rt.block_on(agent(1).register_node(&NodeRegistration {
        name: "n1".into(),
        underlay_ip: "192.0.2.10".parse().unwrap(),
        netns: None,
        netns_prefix: "weft-ha-n1".into(),
        api: None,
        resources: Resources {
            cpus: 8.0,
            mem_mb: 8192,
            disk_mb: 10_000,
        },
        labels: Default::default(),
    }))
    .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let beating = {
        let stop = stop.clone();
        let urls = urls.clone();
        let join = join.trim().to_string();
        std::thread::spawn(move || {
            let rt = runtime();
            // Heartbeats go to controller 2 while it answers, else to the others.
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for url in urls.iter().rev() {
                    let c = Client::new(url, Some(join.clone()));
                    let beat = rt.block_on(async {
                        tokio::time::timeout(Duration::from_millis(500), c.heartbeat("n1")).await
                    });
                    if matches!(beat, Ok(Ok(()))) {
                        break;
                    }
                }
                std::thread::sleep(Duration::from_millis(300));
            }
        })
    };
    let apps = serde_json::json!({"app": {"web": {
        "instances": 2, "cmd": "sleep 1000", "cpus": 0.1, "mem": 64, "epg": "shop/store/web"
    }}});
    rt.block_on(client(0).apply_apps(apps)).unwrap();
    let tasks = |i: usize| {
        rt.block_on(client(i).tasks(Some("web")))
            .unwrap_or_default()
    };
    wait_until("2 tasks placed", Duration::from_secs(15), || {
        tasks(0).len() == 2
    });

    // kill -9 the leader: another leads within the bound, and schedules.
    let first = leader_index(&[0, 1, 2]).unwrap();
    let killed_at = Instant::now();
    controllers[first].kill();
    let alive: Vec<usize> = (0..3).filter(|i| *i != first).collect();
    wait_until("a new leader", Duration::from_secs(10), || {
        leader_index(&alive).is_some_and(|l| l != first)
    });
    let failover = killed_at.elapsed();
    eprintln!("leader {first} killed; another led after {failover:?}");
    // The bound: the lease (1 s, which etcd rounds up to its 2 s minimum) plus a third
    // of it between campaigns, plus slack for a loaded machine.
    assert!(
        failover < Duration::from_secs(5),
        "failover took {failover:?}"
    );
    rt.block_on(client(alive[0]).scale_app("web", 5)).unwrap();
    wait_until("5 tasks after the kill", Duration::from_secs(15), || {
        tasks(alive[0]).len() == 5
    });

    // SIGSTOP the new leader past its lease: the third takes over and schedules; the
    // paused one, resumed, leads no more and its writes change nothing.
    let second = leader_index(&alive).unwrap();
    let third = *alive.iter().find(|i| **i != second).unwrap();
    signal(&controllers[second], nix::sys::signal::Signal::SIGSTOP);
    wait_until("the third leads", Duration::from_secs(10), || {
        leader_index(&[third]) == Some(third)
    });
    rt.block_on(client(third).scale_app("web", 7)).unwrap();
    wait_until("7 tasks while paused", Duration::from_secs(15), || {
        tasks(third).len() == 7
    });
    signal(&controllers[second], nix::sys::signal::Signal::SIGCONT);
    std::thread::sleep(Duration::from_secs(3));
    let resumed = status(second).unwrap();
    assert_eq!(
        resumed.leader_url.as_deref(),
        Some(urls[third].as_str()),
        "{resumed:?}"
    );
    eprintln!(
        "the resumed controller had {} loop writes refused",
        resumed.refused_loop_writes
    );
    // The state is the third's decision: 7 tasks, unique names, addresses and MACs.
    for i in [second, third] {
        let t = tasks(i);
        assert_eq!(t.len(), 7, "controller {i} sees {t:?}");
    }
    let endpoints = rt.block_on(client(third).endpoints()).unwrap();
    let ips: BTreeSet<_> = endpoints.iter().map(|e| e.ip).collect();
    let macs: BTreeSet<_> = endpoints.iter().map(|e| e.mac).collect();
    assert_eq!(ips.len(), endpoints.len(), "no address twice");
    assert_eq!(macs.len(), endpoints.len(), "no MAC twice");
    // The node stayed ready all along (its heartbeats reached a live controller).
    let nodes = rt.block_on(client(third).nodes()).unwrap();
    assert!(nodes.iter().all(|n| n.ready), "{nodes:?}");

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    beating.join().unwrap();
    drop(controllers);
    drop(etcd);
    let _ = std::fs::remove_dir_all(&base);
}
