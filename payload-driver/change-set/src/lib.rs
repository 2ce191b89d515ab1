//! The change tracker's state: which byte ranges of which files were
//! written, in a bounded structure, as seed 004's change-block tracking
//! keeps a bitmap a backup can trust. Nothing is ever dropped silently:
//!
//! - a file whose range table is full becomes **whole-file dirty** (one
//!   range covering every byte) and an overflow is counted;
//! - a write to a file beyond the file table's room sets **everything
//!   dirty** (every file of the volume must be copied) and counts an
//!   overflow.
//!
//! Both are reported (`overflows`), so a backup reading the set knows to
//! copy more, never less.
//!
//! The blob layout (schema [`SCHEMA`], little-endian): `writes: u64`,
//! `overflows: u64`, `all_dirty: u32`, `files: u32`, then per file
//! `key: u64`, `whole: u32`, `ranges: u32`, and `ranges` pairs of
//! `(start: u64, end: u64)` (half-open, sorted, disjoint, not adjacent).
#![no_std]

/// Layout version of [`TrackedSet::encode`].
pub const SCHEMA: u32 = 1;
/// Files tracked one by one.
pub const MAX_FILES: usize = 8;
/// Ranges kept per file.
pub const MAX_RANGES: usize = 1024;
/// The longest blob [`TrackedSet::encode`] can write.
pub const MAX_ENCODED_LEN: usize = 24 + MAX_FILES * (16 + 16 * MAX_RANGES);

/// One file's written ranges.
#[derive(Clone, Copy)]
struct File {
    key: u64,
    whole: bool,
    n: usize,
    ranges: [(u64, u64); MAX_RANGES],
}

const EMPTY_FILE: File = File { key: 0, whole: false, n: 0, ranges: [(0, 0); MAX_RANGES] };

/// The set.
pub struct TrackedSet {
    files: [File; MAX_FILES],
    nfiles: usize,
    /// Write events recorded (one per write operation processed).
    pub writes: u64,
    /// Times the bounded structure could not keep a range exactly.
    pub overflows: u64,
    /// A file found no room: every file is to be taken as written.
    pub all_dirty: bool,
}

#[allow(clippy::new_without_default)] // a `Default` would build 128 KiB on the stack
impl TrackedSet {
    /// The empty set, for a `static` (128 KiB: never build one on a
    /// kernel stack).
    #[must_use]
    #[allow(clippy::large_stack_arrays)] // evaluated at compile time for statics
    pub const fn new() -> TrackedSet {
        TrackedSet { files: [EMPTY_FILE; MAX_FILES], nfiles: 0, writes: 0, overflows: 0, all_dirty: false }
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.nfiles = 0;
        self.writes = 0;
        self.overflows = 0;
        self.all_dirty = false;
    }

    /// Records one write of `len` bytes at `offset` to file `key`.
    pub fn record(&mut self, key: u64, offset: u64, len: u64) {
        self.writes = self.writes.saturating_add(1);
        self.add_range(key, offset, offset.saturating_add(len));
    }

    fn add_range(&mut self, key: u64, start: u64, end: u64) {
        if start >= end {
            return;
        }
        let Some(i) = self.file_index(key) else {
            self.all_dirty = true;
            self.overflows = self.overflows.saturating_add(1);
            return;
        };
        let Some(f) = self.files.get_mut(i) else { return };
        if f.whole {
            return;
        }
        if !insert(f, start, end) {
            f.whole = true;
            f.n = 0;
            self.overflows = self.overflows.saturating_add(1);
        }
    }

    fn file_index(&mut self, key: u64) -> Option<usize> {
        let known = self.files.iter().take(self.nfiles).position(|f| f.key == key);
        if known.is_some() {
            return known;
        }
        // Field by field: a `File` is 16 KiB, too large for a kernel stack.
        let slot = self.files.get_mut(self.nfiles)?;
        slot.key = key;
        slot.whole = false;
        slot.n = 0;
        self.nfiles += 1;
        Some(self.nfiles - 1)
    }

    /// Files tracked.
    #[must_use]
    pub fn files(&self) -> usize {
        self.nfiles
    }

    /// Ranges kept (a whole-file dirty file counts one).
    #[must_use]
    pub fn ranges(&self) -> u64 {
        self.files.iter().take(self.nfiles).map(|f| if f.whole { 1 } else { f.n as u64 }).sum()
    }

    /// Bytes covered (`u64::MAX` for a whole-file dirty file).
    #[must_use]
    pub fn bytes(&self) -> u64 {
        self.files.iter().take(self.nfiles).fold(0u64, |acc, f| {
            let b = if f.whole {
                u64::MAX
            } else {
                f.ranges.iter().take(f.n).map(|(s, e)| e - s).fold(0u64, u64::saturating_add)
            };
            acc.saturating_add(b)
        })
    }

    /// The union with `other`'s files and ranges (its counters are the
    /// caller's to merge).
    pub fn union(&mut self, other: &TrackedSet) {
        self.all_dirty |= other.all_dirty;
        for f in other.files.iter().take(other.nfiles) {
            if f.whole {
                if let Some(i) = self.file_index(f.key) {
                    if let Some(mine) = self.files.get_mut(i) {
                        mine.whole = true;
                        mine.n = 0;
                    }
                } else {
                    self.all_dirty = true;
                }
                continue;
            }
            for &(s, e) in f.ranges.iter().take(f.n) {
                self.add_range(f.key, s, e);
            }
        }
    }

    /// Bytes [`TrackedSet::encode`] writes.
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        24 + self.files.iter().take(self.nfiles).map(|f| 16 + 16 * if f.whole { 0 } else { f.n }).sum::<usize>()
    }

    /// Writes the blob into `out`: its length, or the length needed.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, usize> {
        let need = self.encoded_len();
        let Some(out) = out.get_mut(..need) else { return Err(need) };
        let mut w = Writer { out, at: 0 };
        w.u64(self.writes);
        w.u64(self.overflows);
        w.u32(u32::from(self.all_dirty));
        w.u32(u32::try_from(self.nfiles).unwrap_or(0));
        for f in self.files.iter().take(self.nfiles) {
            w.u64(f.key);
            w.u32(u32::from(f.whole));
            let n = if f.whole { 0 } else { f.n };
            w.u32(u32::try_from(n).unwrap_or(0));
            for &(s, e) in f.ranges.iter().take(n) {
                w.u64(s);
                w.u64(e);
            }
        }
        Ok(w.at)
    }

    /// Reads a blob [`TrackedSet::encode`] wrote into `self` (replacing
    /// it). `None` if it is malformed (then `self` is empty).
    pub fn decode_into(&mut self, bytes: &[u8]) -> Option<()> {
        let decoded = self.decode_inner(bytes);
        if decoded.is_none() {
            self.clear();
        }
        decoded
    }

    fn decode_inner(&mut self, bytes: &[u8]) -> Option<()> {
        self.clear();
        let mut reader = Reader { bytes, at: 0 };
        let writes = reader.u64()?;
        let overflows = reader.u64()?;
        let all_dirty = reader.u32()? != 0;
        let files = usize::try_from(reader.u32()?).ok()?;
        if files > MAX_FILES {
            self.clear();
            return None;
        }
        for _ in 0..files {
            let key = reader.u64()?;
            let whole = reader.u32()? != 0;
            let n = usize::try_from(reader.u32()?).ok()?;
            let i = self.file_index(key)?;
            if whole {
                let f = self.files.get_mut(i)?;
                f.whole = true;
                continue;
            }
            for _ in 0..n {
                let (start, end) = (reader.u64()?, reader.u64()?);
                self.add_range(key, start, end);
            }
        }
        if reader.at != bytes.len() {
            self.clear();
            return None;
        }
        self.writes = writes;
        self.overflows = overflows;
        self.all_dirty = all_dirty;
        Some(())
    }
}

/// Inserts `[start, end)` into `f`'s sorted disjoint ranges, merging what
/// overlaps or touches; `false` if there is no room.
fn insert(file: &mut File, start: u64, end: u64) -> bool {
    let n = file.n;
    let ranges = &mut file.ranges;
    // First range that ends at or after `start` (may merge).
    let first = ranges.iter().take(n).position(|&(_, e)| e >= start).unwrap_or(n);
    // One past the last range that starts at or before `end`.
    let last = ranges.iter().take(n).rposition(|&(s, _)| s <= end).map_or(0, |i| i + 1);
    if first < last {
        // Merge ranges first..last with the new one into ranges[first].
        let merged_start = start.min(ranges[first].0);
        let merged_end = end.max(ranges[last - 1].1);
        ranges[first] = (merged_start, merged_end);
        let removed = last - first - 1;
        ranges.copy_within(last..n, first + 1);
        file.n = n - removed;
        return true;
    }
    if n == MAX_RANGES {
        return false;
    }
    ranges.copy_within(first..n, first + 1);
    ranges[first] = (start, end);
    file.n = n + 1;
    true
}

struct Writer<'a> {
    out: &'a mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn bytes(&mut self, b: &[u8]) {
        if let Some(dst) = self.out.get_mut(self.at..self.at + b.len()) {
            dst.copy_from_slice(b);
        }
        self.at += b.len();
    }
    fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.bytes(&v.to_le_bytes());
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let b = self.bytes.get(self.at..self.at.checked_add(N)?)?;
        self.at += N;
        <[u8; N]>::try_from(b).ok()
    }
    fn u64(&mut self) -> Option<u64> {
        self.take::<8>().map(u64::from_le_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take::<4>().map(u32::from_le_bytes)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::boxed::Box;
    use std::vec;

    fn set() -> Box<TrackedSet> {
        Box::new(TrackedSet::new())
    }

    #[test]
    fn ranges_merge_and_count() {
        let mut s = set();
        s.record(1, 0, 512);
        s.record(1, 1024, 512);
        s.record(1, 512, 512); // fills the gap: one range 0..1536
        s.record(2, 4096, 100);
        assert_eq!((s.files(), s.ranges(), s.bytes(), s.writes), (2, 2, 1536 + 100, 4));
        s.record(1, 100, 10); // inside: nothing changes
        assert_eq!((s.ranges(), s.bytes()), (2, 1636));
    }

    #[test]
    fn a_full_file_becomes_whole_and_is_counted() {
        let mut s = set();
        for i in 0..MAX_RANGES as u64 {
            s.record(7, i * 1024, 512);
        }
        assert_eq!((s.ranges(), s.overflows), (MAX_RANGES as u64, 0));
        s.record(7, MAX_RANGES as u64 * 1024, 512);
        assert_eq!((s.ranges(), s.overflows, s.bytes()), (1, 1, u64::MAX));
    }

    #[test]
    fn too_many_files_make_everything_dirty() {
        let mut s = set();
        for k in 0..=MAX_FILES as u64 {
            s.record(k + 1, 0, 1);
        }
        assert!(s.all_dirty);
        assert_eq!(s.overflows, 1);
    }

    #[test]
    fn blobs_round_trip_and_unions_merge() {
        let mut a = set();
        a.record(1, 0, 512);
        a.record(1, 2048, 512);
        a.record(3, 10, 10);
        let mut buf = vec![0u8; a.encoded_len()];
        assert_eq!(a.encode(&mut buf[..5]), Err(a.encoded_len()));
        assert_eq!(a.encode(&mut buf), Ok(a.encoded_len()));
        let mut b = set();
        b.decode_into(&buf).unwrap();
        assert_eq!((b.files(), b.ranges(), b.bytes(), b.writes), (2, 3, 1034, 3));
        let mut c = set();
        c.record(1, 512, 1536);
        c.union(&b);
        assert_eq!((c.files(), c.ranges(), c.bytes()), (2, 2, 2560 + 10));
        assert!(b.decode_into(&buf[..buf.len() - 1]).is_none());
        assert_eq!(b.files(), 0);
    }
}
