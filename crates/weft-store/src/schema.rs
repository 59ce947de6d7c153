//! On-disk layout: redb table definitions and the binary encoding of their records.
//!
//! Records are encoded by hand (little-endian, length-prefixed) rather than with a serde format:
//! the layout is tiny, fixed, and decoding must turn any garbage into [`StoreError::Corrupt`]
//! instead of panicking.

use redb::{MultimapTableDefinition, ReadableTable, TableDefinition};

use crate::error::{Result, StoreError};
use crate::types::{EventKind, KeyValue, LeaseId, Revision, WatchEvent};

/// Current key -> encoded [`KvRecord`].
pub(crate) const KV: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv");
/// (revision, sequence within the revision) -> encoded event. The history watches replay.
pub(crate) const EVENTS: TableDefinition<(i64, u32), &[u8]> = TableDefinition::new("events");
/// Store-wide counters, see the `META_*` keys.
pub(crate) const META: TableDefinition<&str, i64> = TableDefinition::new("meta");
/// Lease id -> granted TTL in milliseconds.
pub(crate) const LEASES: TableDefinition<i64, u64> = TableDefinition::new("leases");
/// Lease id -> keys attached to it, so a revoke does not scan the whole keyspace.
pub(crate) const LEASE_KEYS: MultimapTableDefinition<i64, &[u8]> =
    MultimapTableDefinition::new("lease_keys");

pub(crate) const META_SCHEMA_VERSION: &str = "schema_version";
pub(crate) const META_REVISION: &str = "revision";
pub(crate) const META_COMPACT_REVISION: &str = "compact_revision";
pub(crate) const META_NEXT_LEASE_ID: &str = "next_lease_id";

pub(crate) const SCHEMA_VERSION: i64 = 1;

/// Fixed part of an encoded key-value record: create, mod, version, lease.
const KV_HEADER_LEN: usize = 4 * 8;

pub(crate) fn read_meta(
    table: &impl ReadableTable<&'static str, i64>,
    name: &str,
) -> Result<Option<i64>> {
    Ok(table.get(name)?.map(|guard| guard.value()))
}

/// Reads one key's record from the `kv` table (read or write transaction).
pub(crate) fn get_kv(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    key: &[u8],
) -> Result<Option<KeyValue>> {
    match table.get(key)? {
        None => Ok(None),
        Some(guard) => decode_kv(key, guard.value()).map(Some),
    }
}

/// Reads the keys starting with `prefix`, in key order; the flag tells whether `limit` cut the
/// result short. `None` or `Some(0)` mean no limit, as in etcd.
pub(crate) fn range_kv(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    prefix: &[u8],
    limit: Option<usize>,
) -> Result<(Vec<KeyValue>, bool)> {
    let limit = limit.filter(|limit| *limit > 0);
    let mut kvs = Vec::new();
    for entry in table.range::<&[u8]>(prefix..)? {
        let (key, value) = entry?;
        let key = key.value();
        if !key.starts_with(prefix) {
            break;
        }
        if limit.is_some_and(|limit| kvs.len() >= limit) {
            return Ok((kvs, true));
        }
        kvs.push(decode_kv(key, value.value())?);
    }
    Ok((kvs, false))
}

/// Encodes everything of a [`KeyValue`] but its key (which is the table key).
pub(crate) fn encode_kv(kv: &KeyValue) -> Vec<u8> {
    let mut out = Vec::with_capacity(KV_HEADER_LEN + kv.value.len());
    encode_kv_into(kv, &mut out);
    out
}

fn encode_kv_into(kv: &KeyValue, out: &mut Vec<u8>) {
    out.extend_from_slice(&kv.create_revision.to_le_bytes());
    out.extend_from_slice(&kv.mod_revision.to_le_bytes());
    out.extend_from_slice(&kv.version.to_le_bytes());
    out.extend_from_slice(&kv.lease.unwrap_or(0).to_le_bytes());
    out.extend_from_slice(&kv.value);
}

pub(crate) fn decode_kv(key: &[u8], bytes: &[u8]) -> Result<KeyValue> {
    let mut reader = Reader::new("kv", bytes);
    let kv = read_kv_fields(&mut reader, key, bytes.len())?;
    Ok(kv)
}

fn read_kv_fields(reader: &mut Reader<'_>, key: &[u8], record_end: usize) -> Result<KeyValue> {
    let create_revision = reader.i64()?;
    let mod_revision = reader.i64()?;
    let version = reader.i64()?;
    let lease = reader.i64()?;
    let value_len = record_end
        .checked_sub(reader.pos)
        .ok_or_else(|| StoreError::corrupt(reader.table, "record shorter than its header"))?;
    let value = reader.bytes(value_len)?.to_vec();
    Ok(KeyValue {
        key: key.to_vec(),
        value,
        create_revision,
        mod_revision,
        version,
        lease: (lease != 0).then_some(lease),
    })
}

/// Event layout: kind u8 | key_len u32 | key | prev_len u32 (0 = none, else 1 + record len) |
/// prev record | current record (puts only, to the end).
pub(crate) fn encode_event(event: &WatchEvent) -> Vec<u8> {
    let key = &event.kv.key;
    let mut out =
        Vec::with_capacity(1 + 4 + key.len() + 4 + 2 * KV_HEADER_LEN + event.kv.value.len() + 16);
    out.push(match event.kind {
        EventKind::Put => 1,
        EventKind::Delete => 2,
    });
    push_len(&mut out, key.len());
    out.extend_from_slice(key);
    match &event.prev_kv {
        None => push_len(&mut out, 0),
        Some(prev) => {
            let record = encode_kv(prev);
            push_len(&mut out, record.len() + 1);
            out.extend_from_slice(&record);
        }
    }
    match event.kind {
        EventKind::Put => encode_kv_into(&event.kv, &mut out),
        // A tombstone only needs its revision; the rest is implied.
        EventKind::Delete => out.extend_from_slice(&event.kv.mod_revision.to_le_bytes()),
    }
    out
}

fn push_len(out: &mut Vec<u8>, len: usize) {
    // Keys and values are capped far below 4 GiB by redb, so this cannot truncate.
    let len = u32::try_from(len).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
}

/// Reads only the key of an encoded event, to filter by prefix before decoding the rest.
pub(crate) fn event_key(bytes: &[u8]) -> Result<&[u8]> {
    let mut reader = Reader::new("events", bytes);
    reader.u8()?;
    let key_len = reader.len()?;
    reader.bytes(key_len)
}

pub(crate) fn decode_event(bytes: &[u8]) -> Result<WatchEvent> {
    let mut reader = Reader::new("events", bytes);
    let kind = match reader.u8()? {
        1 => EventKind::Put,
        2 => EventKind::Delete,
        other => {
            return Err(StoreError::corrupt(
                "events",
                format!("unknown kind {other}"),
            ));
        }
    };
    let key_len = reader.len()?;
    let key = reader.bytes(key_len)?.to_vec();
    let prev_len = reader.len()?;
    let prev_kv = match prev_len {
        0 => None,
        len_plus_one => {
            let end = reader.pos.saturating_add(len_plus_one - 1);
            Some(read_kv_fields(&mut reader, &key, end)?)
        }
    };
    let kv = match kind {
        EventKind::Put => read_kv_fields(&mut reader, &key, bytes.len())?,
        EventKind::Delete => KeyValue {
            key,
            value: Vec::new(),
            create_revision: 0,
            mod_revision: reader.i64()?,
            version: 0,
            lease: None,
        },
    };
    Ok(WatchEvent { kind, kv, prev_kv })
}

/// Lease TTLs are stored as milliseconds.
pub(crate) fn ttl_to_millis(ttl: std::time::Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)
}

/// The first revision a store at `revision` will commit.
pub(crate) fn next_revision(revision: Revision) -> Revision {
    revision + 1
}

pub(crate) fn first_lease_id() -> LeaseId {
    1
}

/// Bounds-checked cursor over a record; every short read is corruption, never a panic.
struct Reader<'a> {
    table: &'static str,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(table: &'static str, bytes: &'a [u8]) -> Self {
        Reader {
            table,
            bytes,
            pos: 0,
        }
    }

    fn bytes(&mut self, len: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(len)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| {
                StoreError::corrupt(
                    self.table,
                    format!(
                        "truncated record: wanted {len} bytes at offset {} of {}",
                        self.pos,
                        self.bytes.len()
                    ),
                )
            })?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let slice = self.bytes(N)?;
        let mut array = [0; N];
        array.copy_from_slice(slice);
        Ok(array)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }

    fn len(&mut self) -> Result<usize> {
        let len = u32::from_le_bytes(self.array()?);
        usize::try_from(len).map_err(|_| StoreError::corrupt(self.table, "length overflow"))
    }

    fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_le_bytes(self.array()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(value: &[u8], lease: Option<LeaseId>) -> KeyValue {
        KeyValue {
            key: b"a/key".to_vec(),
            value: value.to_vec(),
            create_revision: 3,
            mod_revision: 7,
            version: 2,
            lease,
        }
    }

    #[test]
    fn kv_round_trips() {
        let original = kv(b"hello", Some(9));
        let decoded = decode_kv(&original.key, &encode_kv(&original)).unwrap();
        assert_eq!(decoded, original);
    }

    #[test]
    fn events_round_trip() {
        let put = WatchEvent {
            kind: EventKind::Put,
            kv: kv(b"new", None),
            prev_kv: Some(kv(b"old", Some(4))),
        };
        let delete = WatchEvent {
            kind: EventKind::Delete,
            kv: KeyValue {
                key: b"a/key".to_vec(),
                value: vec![],
                create_revision: 0,
                mod_revision: 8,
                version: 0,
                lease: None,
            },
            prev_kv: None,
        };
        for event in [put, delete] {
            let bytes = encode_event(&event);
            assert_eq!(event_key(&bytes).unwrap(), b"a/key");
            assert_eq!(decode_event(&bytes).unwrap(), event);
        }
    }

    #[test]
    fn garbage_is_corruption_not_a_panic() {
        for len in 0..40 {
            let garbage = vec![0xff; len];
            assert!(decode_event(&garbage).is_err());
            let _ = decode_kv(b"k", &garbage);
            let _ = event_key(&garbage);
        }
        assert!(matches!(
            decode_kv(b"k", &[1, 2, 3]),
            Err(StoreError::Corrupt { .. })
        ));
    }
}
