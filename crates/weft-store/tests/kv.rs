//! RedbStore-only KV behaviour. The KV behaviour tests shared by every backend (CRUD,
//! revisions, ranges, compare-and-swap, reopen) run on redb and etcd alike in
//! crates/weft-store-etcd/tests/backends/kv.rs.

// Helpers outside #[test] fns unwrap too: a failed setup is a failed test.
#![allow(clippy::unwrap_used)]

use weft_store::{Compare, CompareOp, KvStore, Txn, TxnOp};

#[tokio::test]
async fn memory_store_has_the_same_semantics() {
    let store = weft_store::memory::open().unwrap();
    assert_eq!(store.put(b"a", b"1", None).await.unwrap().revision, 1);
    let swap = Txn::new()
        .when([Compare::version("a", CompareOp::Equal, 1)])
        .and_then([TxnOp::delete("a")]);
    assert!(store.txn(swap).await.unwrap().succeeded);
    assert_eq!(store.get(b"a").await.unwrap().kv, None);
}
