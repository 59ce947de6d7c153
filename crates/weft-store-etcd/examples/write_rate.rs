//! Write rate of the two store backends, in one run: puts/s and compare-and-swap txns/s with
//! 1 and 8 concurrent clients, on redb (a temp dir, default fsync-per-commit policy) and on a
//! real 3-member etcd cluster on loopback (started by `weft_store_etcd::cluster`).
//!
//! ```text
//! cargo run --release -p weft-store-etcd --example write_rate [-- --secs N] [--dir PATH]
//! ```
//! `--secs`: seconds per measurement (default 3). `--dir`: where redb's file goes (default a
//! temp dir; a tmpfs makes fsync free). etcd's members keep their data in a temp dir.
//!
//! Each client writes its own keys (256-byte values). A CAS client chains
//! `txn(if mod_revision(k) == last then put(k))` on its own key, so every txn succeeds and the
//! figure is the commit rate of guarded writes, not a conflict rate. redb's clients share one
//! store (one file, one writer thread, group commit); each etcd client has its own
//! connection to all three members.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use weft_store::{Compare, CompareOp, KvStore, RedbStore, Txn, TxnOp};
use weft_store_etcd::cluster::{ClusterOptions, EtcdCluster};
use weft_store_etcd::{AnyStore, EtcdOptions, EtcdStore};

const VALUE: &[u8] = &[0x5a; 256];
const CLIENTS: [usize; 2] = [1, 8];

struct Args {
    secs: u64,
    dir: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args { secs: 3, dir: None };
    let mut raw = std::env::args().skip(1);
    while let Some(flag) = raw.next() {
        let value = raw.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--secs" => args.secs = value.parse().map_err(|err| format!("--secs: {err}"))?,
            "--dir" => args.dir = Some(PathBuf::from(value)),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(args)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Put,
    Cas,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Put => "put",
            Op::Cas => "txn (CAS)",
        }
    }
}

/// One client's loop until `until`; returns the operations it completed.
async fn client(
    store: AnyStore,
    op: Op,
    id: usize,
    until: Instant,
) -> Result<u64, weft_store::StoreError> {
    let mut done = 0u64;
    let cas_key = format!("bench/cas/{id}").into_bytes();
    let mut last = store.put(&cas_key, VALUE, None).await?.revision;
    while Instant::now() < until {
        match op {
            Op::Put => {
                let key = format!("bench/put/{id}/{done:010}").into_bytes();
                store.put(&key, VALUE, None).await?;
            }
            Op::Cas => {
                let txn = Txn::new()
                    .when([Compare::mod_revision(
                        cas_key.clone(),
                        CompareOp::Equal,
                        last,
                    )])
                    .and_then([TxnOp::put(cas_key.clone(), VALUE)]);
                let response = store.txn(txn).await?;
                if !response.succeeded {
                    return Err(weft_store::StoreError::Internal(
                        "a CAS on the client's own key failed".to_string(),
                    ));
                }
                last = response.revision;
            }
        }
        done += 1;
    }
    Ok(done)
}

/// Ops/s of `clients` concurrent clients doing `op` for `secs`.
async fn measure(stores: &[AnyStore], op: Op, secs: u64) -> Result<f64, String> {
    let started = Instant::now();
    let until = started + Duration::from_secs(secs);
    let tasks: Vec<_> = stores
        .iter()
        .enumerate()
        .map(|(id, store)| tokio::spawn(client(store.clone(), op, id, until)))
        .collect();
    let mut total = 0;
    for task in tasks {
        total += task
            .await
            .map_err(|err| format!("client task: {err}"))?
            .map_err(|err| format!("client: {err}"))?;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

struct Row {
    backend: &'static str,
    clients: usize,
    op: Op,
    rate: f64,
}

async fn run(args: Args) -> Result<(), String> {
    let mut rows = Vec::new();

    let temp = tempfile::tempdir().map_err(|err| format!("temp dir: {err}"))?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());
    let redb = RedbStore::open(dir.join("write-rate"))
        .map_err(|err| format!("cannot open redb in {}: {err}", dir.display()))?;
    for clients in CLIENTS {
        let stores = vec![AnyStore::Redb(redb.clone()); clients];
        for op in [Op::Put, Op::Cas] {
            let rate = measure(&stores, op, args.secs).await?;
            eprintln!("redb  {clients} client(s) {:<9} {rate:>9.0}/s", op.name());
            rows.push(Row {
                backend: "redb",
                clients,
                op,
                rate,
            });
        }
    }
    drop(redb);

    let cluster = EtcdCluster::start(ClusterOptions::members(3))
        .await
        .map_err(|err| format!("cannot start a 3-member etcd: {err}"))?;
    for clients in CLIENTS {
        let mut stores = Vec::new();
        for _ in 0..clients {
            let store =
                EtcdStore::connect(&cluster.endpoints(), Vec::new(), EtcdOptions::default())
                    .await
                    .map_err(|err| format!("cannot connect to etcd: {err}"))?;
            stores.push(AnyStore::Etcd(store));
        }
        for op in [Op::Put, Op::Cas] {
            let rate = measure(&stores, op, args.secs).await?;
            eprintln!("etcd3 {clients} client(s) {:<9} {rate:>9.0}/s", op.name());
            rows.push(Row {
                backend: "etcd (3 members)",
                clients,
                op,
                rate,
            });
        }
    }
    drop(cluster);

    println!("| clients | operation | redb (ops/s) | etcd, 3 members (ops/s) | etcd / redb |");
    println!("|---|---|---|---|---|");
    for clients in CLIENTS {
        for op in [Op::Put, Op::Cas] {
            let rate = |backend: &str| {
                rows.iter()
                    .find(|r| r.backend == backend && r.clients == clients && r.op == op)
                    .map_or(f64::NAN, |r| r.rate)
            };
            let (redb, etcd) = (rate("redb"), rate("etcd (3 members)"));
            println!(
                "| {clients} | {} | {redb:.0} | {etcd:.0} | {:.2} |",
                op.name(),
                etcd / redb
            );
        }
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(err) => {
            eprintln!("write_rate: {err}");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("write_rate: cannot start the runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("write_rate: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}
