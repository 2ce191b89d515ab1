//! Counted pool allocations: every allocation goes through here with the
//! project's tag, and the per-tag counters let a test prove the count
//! returns to zero.
use crate::imports::{ExAllocatePoolWithTag, ExFreePoolWithTag};
use crate::types::POOL_NON_PAGED;
use core::ffi::c_void;
use core::sync::atomic::{AtomicU64, Ordering};

/// Allocations and frees under one tag, in one image.
pub struct PoolCounter {
    tag: u32,
    allocs: AtomicU64,
    frees: AtomicU64,
}

impl PoolCounter {
    #[must_use]
    pub const fn new(tag: u32) -> Self {
        PoolCounter { tag, allocs: AtomicU64::new(0), frees: AtomicU64::new(0) }
    }

    #[must_use]
    pub fn tag(&self) -> u32 {
        self.tag
    }
    #[must_use]
    pub fn allocs(&self) -> u64 {
        self.allocs.load(Ordering::Relaxed)
    }
    #[must_use]
    pub fn frees(&self) -> u64 {
        self.frees.load(Ordering::Relaxed)
    }
    /// Allocations not yet freed.
    #[must_use]
    pub fn outstanding(&self) -> i64 {
        let a = i64::try_from(self.allocs()).unwrap_or(i64::MAX);
        let f = i64::try_from(self.frees()).unwrap_or(i64::MAX);
        a.saturating_sub(f)
    }

    /// Non-paged allocation of `bytes`. `<= DISPATCH_LEVEL`. None on failure.
    #[must_use]
    pub fn alloc(&self, bytes: usize) -> Option<PoolBlock<'_>> {
        // SAFETY: plain allocation call; the result is checked for NULL.
        let p = unsafe { ExAllocatePoolWithTag(POOL_NON_PAGED, bytes, self.tag) };
        if p.is_null() {
            return None;
        }
        self.allocs.fetch_add(1, Ordering::Relaxed);
        Some(PoolBlock { ptr: p, bytes, owner: self })
    }
}

/// An owned pool block; freed on drop.
pub struct PoolBlock<'a> {
    ptr: *mut c_void,
    bytes: usize,
    owner: &'a PoolCounter,
}

// SAFETY: the block is plain memory owned by this handle alone.
unsafe impl Send for PoolBlock<'_> {}

impl PoolBlock<'_> {
    /// The block as bytes, read-only.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        // SAFETY: `ptr` points to `bytes` bytes we own for `self`'s life.
        unsafe { core::slice::from_raw_parts(self.ptr.cast::<u8>(), self.bytes) }
    }

    /// The block as bytes.
    pub fn as_mut_bytes(&mut self) -> &mut [u8] {
        // SAFETY: `ptr` points to `bytes` bytes we own exclusively for `self`'s life.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.cast::<u8>(), self.bytes) }
    }
}

impl Drop for PoolBlock<'_> {
    fn drop(&mut self) {
        // SAFETY: allocated by ExAllocatePoolWithTag with this tag, freed once.
        unsafe { ExFreePoolWithTag(self.ptr, self.owner.tag) };
        self.owner.frees.fetch_add(1, Ordering::Relaxed);
    }
}
