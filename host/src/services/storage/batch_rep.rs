//! A large write's batch laid out by several threads at once, in RocksDB's own write-batch format.
//!
//! Filling a `WriteBatch` is one FFI call and one append per operation, on one thread: for a
//! 10,000-record insert (~90,000 operations, ~10 MB) it took ~8% of the insert's CPU, on the
//! thread its client waits for, while the other core idled (issue 18). The format is simple
//! and stable (it is what the WAL holds), so each part of the write encodes its sorted
//! operations into its own slice of one buffer, and RocksDB takes the buffer whole
//! (`WriteBatch::from_data`, one copy). The column family ids are read from a batch RocksDB
//! encoded itself, and compared with this module's encoding of the same operations: any
//! difference (a format this module does not know) and the caller fills the batch as before.
//! A write this format cannot hold (a length past 32 bits) is refused, where `put_cf` would
//! have dropped the operation silently (the C API ignores its status).

use super::write::{in_parallel, SortedOps};
use rocksdb::{BoundColumnFamily, WriteBatch};
use std::sync::Arc;

/// Sequence number (fixed64) and count (fixed32), both little-endian.
const HEADER: usize = 12;
// Record tags (RocksDB's `ValueType`): the default column family's carry no id.
const DELETE: u8 = 0x0;
const PUT: u8 = 0x1;
const DELETE_CF: u8 = 0x4;
const PUT_CF: u8 = 0x5;
/// RocksDB's longest key in a batch (`kMaxWriteBatchKeySize`: `u32::MAX` less the 8 bytes it
/// appends to make an internal key).
const MAX_KEY: usize = u32::MAX as usize - 8;

/// One column family's id, as its operations carry it in a batch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct CfTag(u32);

impl CfTag {
    /// The id RocksDB writes for `cf`, from a probe batch it encoded: `None` unless this
    /// module's encoding of the same put and delete is byte for byte RocksDB's.
    pub(super) fn of(cf: &Arc<BoundColumnFamily<'_>>) -> Option<CfTag> {
        let mut probe = WriteBatch::default();
        probe.put_cf(cf, b"key", b"value");
        probe.delete_cf(cf, b"key");
        let data = probe.data();
        let body = data.get(HEADER..)?;
        let tag = match *body.first()? {
            PUT_CF => CfTag(read_varint32(&body[1..])?),
            PUT => CfTag(0),
            _ => return None,
        };
        let mut expected = vec![0; tag.len(b"key", Some(b"value")) + tag.len(b"key", None)];
        let mut out = Cursor(&mut expected);
        tag.encode(&mut out, b"key", Some(b"value"));
        tag.encode(&mut out, b"key", None);
        (body == expected.as_slice() && data[8..HEADER] == 2u32.to_le_bytes()).then_some(tag)
    }

    /// Bytes one operation takes.
    fn len(self, key: &[u8], value: Option<&[u8]>) -> usize {
        let id = if self.0 == 0 { 0 } else { varint_len(self.0 as usize) };
        1 + id + varint_len(key.len()) + key.len() + value.map_or(0, |v| varint_len(v.len()) + v.len())
    }

    fn encode(self, out: &mut Cursor<'_>, key: &[u8], value: Option<&[u8]>) {
        let tag = match (self.0, value.is_some()) {
            (0, true) => PUT,
            (0, false) => DELETE,
            (_, true) => PUT_CF,
            (_, false) => DELETE_CF,
        };
        out.byte(tag);
        if self.0 != 0 {
            out.varint(self.0 as usize);
        }
        out.varint(key.len());
        out.bytes(key);
        if let Some(v) = value {
            out.varint(v.len());
            out.bytes(v);
        }
    }
}

/// The batch holding `parts` (each part's record operations under `records`, its index
/// operations under `index`, each already in key order) and then everything in `tail`. Each
/// part is encoded, and its operations freed, on a thread of its own. `None` when they would not
/// fit one batch (a count past `u32`, a key or value too long for its 32-bit length) or no
/// memory could be mapped.
pub(super) fn encode(parts: Vec<(SortedOps, SortedOps)>, records: CfTag, index: CfTag, tail: &WriteBatch) -> Option<WriteBatch> {
    let tail = tail.data();
    let body = &tail[HEADER..];
    let tail_count = u32::from_le_bytes(tail[8..HEADER].try_into().expect("a batch has a header"));
    let ops: usize = parts.iter().map(|(r, i)| r.0.len() + i.0.len()).sum();
    let count = u32::try_from(ops).ok()?.checked_add(tail_count)?;
    // RocksDB reads every length as a varint32 (and caps keys a little below it): a longer one
    // would be read cut short and the rest of the batch misparsed.
    let fits = |(k, v): &(Vec<u8>, Option<Vec<u8>>)| k.len() <= MAX_KEY && v.as_ref().is_none_or(|v| v.len() <= u32::MAX as usize);
    let size = |ops: &SortedOps, tag: CfTag| -> Option<usize> { ops.0.iter().try_fold(0, |n, op| fits(op).then(|| n + tag.len(&op.0, op.1.as_deref()))) };
    let sizes = parts.iter().map(|(r, i)| Some(size(r, records)? + size(i, index)?)).collect::<Option<Vec<usize>>>()?;
    let mut rep = Pages::zeroed(HEADER + sizes.iter().sum::<usize>() + body.len())?;
    rep[8..HEADER].copy_from_slice(&count.to_le_bytes());
    let (mut slices, mut rest) = (Vec::with_capacity(parts.len()), &mut rep[HEADER..]);
    for size in sizes {
        let (slice, after) = rest.split_at_mut(size);
        slices.push(slice);
        rest = after;
    }
    rest.copy_from_slice(body);
    in_parallel(parts.into_iter().zip(slices).collect(), |((r, i), slice)| {
        let mut out = Cursor(slice);
        for (ops, tag) in [(r, records), (i, index)] {
            for (key, value) in ops.0 {
                tag.encode(&mut out, &key, value.as_deref());
            }
        }
        assert!(out.0.is_empty(), "a part's size was miscounted");
    });
    Some(WriteBatch::from_data(&rep))
}

/// Zeroed memory mapped from the kernel and unmapped on drop. A large write's batch is laid out
/// here once and copied into RocksDB's at once; taken from the heap instead, the ~10 MB of each
/// 10,000-record write stayed resident after it was freed, in the heap of whichever blocking
/// thread had run the write (1,000,000-row `csv_file_load`: RSS before the load 240 -> 251 MiB,
/// peak growth 17 -> 30 MiB, medians of 4). The parts' threads fault the pages in, in parallel.
struct Pages {
    ptr: std::ptr::NonNull<u8>,
    len: usize,
}

impl Pages {
    fn zeroed(len: usize) -> Option<Pages> {
        // SAFETY: a new private anonymous mapping (no file, no fixed address); failure is checked.
        let ptr = unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0) };
        if ptr == libc::MAP_FAILED {
            return None;
        }
        Some(Pages { ptr: std::ptr::NonNull::new(ptr.cast())?, len })
    }
}

impl std::ops::Deref for Pages {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `len` readable and writable bytes, mapped until `self` drops, and only
        // borrowed through `self`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl std::ops::DerefMut for Pages {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`, and `&mut self` makes this the only borrow.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Pages {
    fn drop(&mut self) {
        // SAFETY: the mapping `zeroed` made, no longer borrowed.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Writes forward into a slice sized beforehand (a miscount panics on the bounds check).
struct Cursor<'a>(&'a mut [u8]);

impl Cursor<'_> {
    fn bytes(&mut self, b: &[u8]) {
        let (head, rest) = std::mem::take(&mut self.0).split_at_mut(b.len());
        head.copy_from_slice(b);
        self.0 = rest;
    }

    fn byte(&mut self, b: u8) {
        self.bytes(&[b]);
    }

    fn varint(&mut self, mut n: usize) {
        let mut buf = [0u8; 10];
        let mut len = 0;
        while n >= 0x80 {
            buf[len] = (n as u8) | 0x80;
            n >>= 7;
            len += 1;
        }
        buf[len] = n as u8;
        self.bytes(&buf[..=len]);
    }
}

fn varint_len(mut n: usize) -> usize {
    let mut len = 1;
    while n >= 0x80 {
        n >>= 7;
        len += 1;
    }
    len
}

fn read_varint32(bytes: &[u8]) -> Option<u32> {
    let mut n: u32 = 0;
    for (i, b) in bytes.iter().take(5).enumerate() {
        n |= u32::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some(n);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::conformance::temp_table;
    use super::*;

    /// The encoded batch is byte for byte the one RocksDB fills itself: the parts in order,
    /// each part's records then its index operations, then the tail, with long keys and
    /// values (multi-byte lengths), deletes and an empty value.
    #[test]
    fn encodes_what_rocksdb_fills() {
        let (_temp, s) = temp_table();
        let (rcf, icf) = s.cfs("p", "t").expect("table");
        let (rt, it) = (CfTag::of(&rcf).expect("records id"), CfTag::of(&icf).expect("index id"));
        assert_ne!(rt, it);
        let part = |n: usize| {
            let (mut r, mut i) = (SortedOps::default(), SortedOps::default());
            for k in 0..n {
                r.put(format!("r{k:05}").into_bytes(), vec![b'v'; k * 37]);
                i.delete(vec![b'd'; 200 + k]);
                i.put(format!("i{k}").into_bytes(), Vec::new());
            }
            (r, i)
        };
        let mut tail = WriteBatch::default();
        tail.put(b"meta", vec![7u8; 70_000]);
        tail.delete(b"gone");
        let parts = vec![part(40), part(3), part(0)];
        let mut filled = WriteBatch::default();
        for (r, i) in &parts {
            SortedOps::apply_runs(std::slice::from_ref(r), &mut filled, &rcf);
            SortedOps::apply_runs(std::slice::from_ref(i), &mut filled, &icf);
        }
        filled.put(b"meta", vec![7u8; 70_000]);
        filled.delete(b"gone");
        let encoded = encode(parts, rt, it, &tail).expect("encoded");
        assert_eq!(encoded.len(), filled.len());
        assert!(encoded.data() == filled.data(), "the encodings differ");
    }

    #[test]
    fn varints_match_their_lengths() {
        for n in [0usize, 1, 127, 128, 300, 16_383, 16_384, 1 << 21, u32::MAX as usize] {
            let mut buf = vec![0; varint_len(n)];
            Cursor(&mut buf).varint(n);
            assert_eq!(read_varint32(&buf), Some(n as u32), "{n}");
        }
    }
}
