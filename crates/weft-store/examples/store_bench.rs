//! API-level write throughput of the redb store, per durability policy.
//!
//! ```text
//! cargo run --release -p weft-store --example store_bench [-- --dir PATH] [--scale N]
//! ```
//! `--dir` picks the filesystem to measure (default: a temp dir; mind that a tmpfs /tmp makes
//! fsync free). `--scale` multiplies the operation counts (default 1).
//!
//! Scenarios, each on a fresh store:
//! 1. sequential single puts, fsync per commit (the default policy): the baseline;
//! 2. sequential txns of 100 puts each, fsync per commit;
//! 3. 16 concurrent writers of single puts, fsync per commit (group commit shares fsyncs);
//! 4. sequential single puts under `SyncPolicy::Periodic(100ms)` (no fsync per write).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use weft_store::{KvStore, RedbStore, StoreOptions, SyncPolicy, Txn, TxnOp};

const VALUE: &[u8] = &[0x5a; 256];
const PUTS_PER_TXN: usize = 100;
const CONCURRENT_WRITERS: usize = 16;

struct Args {
    dir: Option<PathBuf>,
    scale: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        dir: None,
        scale: 1,
    };
    let mut raw = std::env::args().skip(1);
    while let Some(flag) = raw.next() {
        let value = raw.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--dir" => args.dir = Some(PathBuf::from(value)),
            "--scale" => args.scale = value.parse().map_err(|err| format!("--scale: {err}"))?,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(args)
}

fn open(root: &Path, name: &str, sync: SyncPolicy) -> RedbStore {
    let options = StoreOptions {
        sync,
        ..StoreOptions::default()
    };
    match RedbStore::open_with(root.join(name), options) {
        Ok(store) => store,
        Err(err) => {
            eprintln!("cannot open store: {err}");
            std::process::exit(1);
        }
    }
}

fn key(scenario: &str, i: usize) -> Vec<u8> {
    format!("bench/{scenario}/{i:08}").into_bytes()
}

struct Measurement {
    name: &'static str,
    puts: usize,
    elapsed: Duration,
}

impl Measurement {
    fn per_second(&self) -> f64 {
        self.puts as f64 / self.elapsed.as_secs_f64()
    }
}

async fn single_puts(store: &RedbStore, scenario: &str, puts: usize) -> weft_store::Result<()> {
    for i in 0..puts {
        store.put(&key(scenario, i), VALUE, None).await?;
    }
    Ok(())
}

async fn batched_txns(store: &RedbStore, txns: usize) -> weft_store::Result<()> {
    for t in 0..txns {
        let ops = (0..PUTS_PER_TXN).map(|i| TxnOp::put(key("txn", t * PUTS_PER_TXN + i), VALUE));
        store.txn(Txn::new().and_then(ops)).await?;
    }
    Ok(())
}

async fn concurrent_puts(store: &RedbStore, puts_per_writer: usize) -> weft_store::Result<()> {
    let mut writers = Vec::new();
    for writer in 0..CONCURRENT_WRITERS {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            single_puts(&store, &format!("concurrent/{writer}"), puts_per_writer).await
        }));
    }
    for writer in writers {
        writer
            .await
            .map_err(|err| weft_store::StoreError::Internal(err.to_string()))??;
    }
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let temp = tempfile::tempdir_in(args.dir.clone().unwrap_or_else(std::env::temp_dir))?;
    let root = temp.path();
    let scale = args.scale.max(1);
    println!(
        "store_bench in {} (value {} bytes)",
        root.display(),
        VALUE.len()
    );

    let mut results = Vec::new();

    let puts = 500 * scale;
    let store = open(root, "single", SyncPolicy::EveryCommit);
    let started = Instant::now();
    single_puts(&store, "single", puts).await?;
    results.push(Measurement {
        name: "single put, fsync per commit",
        puts,
        elapsed: started.elapsed(),
    });
    drop(store);

    let txns = 50 * scale;
    let store = open(root, "txn", SyncPolicy::EveryCommit);
    let started = Instant::now();
    batched_txns(&store, txns).await?;
    results.push(Measurement {
        name: "txn of 100 puts, fsync per commit",
        puts: txns * PUTS_PER_TXN,
        elapsed: started.elapsed(),
    });
    drop(store);

    let per_writer = 100 * scale;
    let store = open(root, "concurrent", SyncPolicy::EveryCommit);
    let started = Instant::now();
    concurrent_puts(&store, per_writer).await?;
    results.push(Measurement {
        name: "16 concurrent writers, fsync per commit (group commit)",
        puts: per_writer * CONCURRENT_WRITERS,
        elapsed: started.elapsed(),
    });
    drop(store);

    let puts = 5_000 * scale;
    let store = open(
        root,
        "periodic",
        SyncPolicy::Periodic(Duration::from_millis(100)),
    );
    let started = Instant::now();
    single_puts(&store, "periodic", puts).await?;
    results.push(Measurement {
        name: "single put, SyncPolicy::Periodic(100ms)",
        puts,
        elapsed: started.elapsed(),
    });
    drop(store);

    let baseline = results[0].per_second();
    println!(
        "{:<56} {:>8} {:>10} {:>12} {:>8}",
        "scenario", "puts", "seconds", "puts/s", "ratio"
    );
    for result in &results {
        println!(
            "{:<56} {:>8} {:>10.3} {:>12.0} {:>7.1}x",
            result.name,
            result.puts,
            result.elapsed.as_secs_f64(),
            result.per_second(),
            result.per_second() / baseline
        );
    }
    Ok(())
}
