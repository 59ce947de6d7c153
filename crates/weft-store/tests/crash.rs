//! Crash safety: a child process writes as fast as it can and prints each key only after
//! `put` returned; the parent SIGKILLs it mid-burst, reopens the store and checks that every
//! acknowledged write is there. Repeated a few times on the same store, so recovery of an
//! already recovered file is covered too.
//!
//! The child is this same test binary, re-executed with `CHILD_DIR_ENV` set.

// Helpers outside #[test] fns unwrap too: a failed setup is a failed test.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use weft_store::{KvStore, RedbStore};

const CHILD_DIR_ENV: &str = "WEFT_STORE_CRASH_CHILD_DIR";
const CHILD_ROUND_ENV: &str = "WEFT_STORE_CRASH_ROUND";
/// Concurrent writers in the child, so group-committed batches are killed mid-way too.
const CHILD_WRITERS: usize = 4;
const ACKS_BEFORE_KILL: usize = 300;

/// Runs only as the child: writes until killed (or a safety bound, if the parent died).
#[test]
fn crash_child_writer() {
    let (Ok(dir), Ok(round)) = (std::env::var(CHILD_DIR_ENV), std::env::var(CHILD_ROUND_ENV))
    else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let store = RedbStore::open(&dir).unwrap();
        let mut writers = Vec::new();
        for writer in 0..CHILD_WRITERS {
            let store = store.clone();
            let round = round.clone();
            writers.push(tokio::spawn(async move {
                let deadline = Instant::now() + Duration::from_secs(60);
                for i in 0..100_000 {
                    if Instant::now() > deadline {
                        break;
                    }
                    let key = format!("crash/{round}/{writer}/{i:06}");
                    let value = format!("value-{round}-{writer}-{i}");
                    store
                        .put(key.as_bytes(), value.as_bytes(), None)
                        .await
                        .unwrap();
                    // Printed only after the write was acknowledged.
                    println!("ACK {key} {value}");
                }
            }));
        }
        for writer in writers {
            writer.await.unwrap();
        }
    });
}

#[tokio::test]
async fn acknowledged_writes_survive_sigkill() {
    if std::env::var_os(CHILD_DIR_ENV).is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut total_acked = 0;
    for round in 0..3 {
        let acked = run_child_and_kill(dir.path(), round);
        assert!(acked.len() >= ACKS_BEFORE_KILL, "child acked too little");
        total_acked += acked.len();

        let store = RedbStore::open(dir.path()).unwrap();
        for (key, value) in &acked {
            let kv = store.get(key.as_bytes()).await.unwrap().kv;
            let kv = kv.unwrap_or_else(|| panic!("acknowledged key {key} lost in round {round}"));
            assert_eq!(kv.value, value.as_bytes(), "key {key}");
        }
        // Revisions stay consistent with the data: one per write, none reused (plus the
        // put and delete of "after-crash" in each earlier round).
        let all = store.range(b"crash/", None).await.unwrap();
        assert_eq!(all.revision, (all.kvs.len() + 2 * round) as i64);
        assert!(all.kvs.len() >= total_acked);
        eprintln!(
            "round {round}: {} writes acknowledged before SIGKILL, {} on disk in total",
            acked.len(),
            all.kvs.len()
        );
        // And the recovered store accepts writes.
        let put = store.put(b"after-crash", b"ok", None).await.unwrap();
        assert_eq!(put.revision, all.revision + 1);
        store.delete(b"after-crash").await.unwrap();
    }
}

/// Starts the child writer, SIGKILLs it after `ACKS_BEFORE_KILL` acks and returns every
/// (key, value) it acknowledged, including lines already in the pipe at kill time.
fn run_child_and_kill(dir: &std::path::Path, round: usize) -> Vec<(String, String)> {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args([
            "crash_child_writer",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR_ENV, dir)
        .env(CHILD_ROUND_ENV, round.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = Pid::from_raw(i32::try_from(child.id()).unwrap());
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut acked = Vec::new();
    let mut killed = false;
    for line in stdout.lines() {
        let line = line.unwrap();
        let Some(ack) = line.strip_prefix("ACK ") else {
            continue;
        };
        let (key, value) = ack.split_once(' ').unwrap();
        acked.push((key.to_owned(), value.to_owned()));
        if !killed && acked.len() >= ACKS_BEFORE_KILL {
            kill(pid, Signal::SIGKILL).unwrap();
            killed = true;
        }
    }
    let status = child.wait().unwrap();
    assert!(
        killed && !status.success(),
        "child must die by SIGKILL: {status:?}"
    );
    acked
}
