//! The verifier: violations, unloaded image ranges, the count of operations
//! no payload processed ("unfiltered") or two payload generations both
//! processed ("double"), the longest gap, and the snapshot the control
//! device returns.
//!
//! Everything here runs inside [`STATE`]'s lock (callable at any IRQL up
//! to `DISPATCH_LEVEL`), except [`qpc`] and [`op_finished`], which take it.
use crate::state::{Sim, STATE};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use fltsim_abi as abi;
use kernel_sys::KeQueryPerformanceCounter;

/// Performance counter ticks per second, read once by `DriverEntry`.
static QPC_FREQUENCY: AtomicU64 = AtomicU64::new(0);
/// A gap is open (read without the lock to skip the counter when none is).
static GAP_OPEN: AtomicBool = AtomicBool::new(false);

/// The performance counter. Any IRQL.
pub fn qpc() -> i64 {
    // SAFETY: no frequency asked (NULL); the HAL routine may be called at any IRQL.
    unsafe { KeQueryPerformanceCounter(core::ptr::null_mut()) }
}

/// Reads the counter's frequency (`DriverEntry`).
pub fn init_qpc() {
    let mut frequency = 0i64;
    // SAFETY: `frequency` is a valid out-pointer for the call.
    unsafe { KeQueryPerformanceCounter(&raw mut frequency) };
    QPC_FREQUENCY.store(u64::try_from(frequency).unwrap_or(0), Ordering::Relaxed);
    STATE.with(|s| s.totals.qpc_frequency = u64::try_from(frequency).unwrap_or(0));
}

/// Ticks of the performance counter as microseconds.
pub fn ticks_to_us(ticks: i64) -> u64 {
    let f = QPC_FREQUENCY.load(Ordering::Relaxed).max(1);
    u64::try_from(ticks).unwrap_or(0).saturating_mul(1_000_000) / f
}

/// Ticks of the performance counter as nanoseconds.
pub fn ticks_to_ns(ticks: i64) -> u64 {
    let f = u128::from(QPC_FREQUENCY.load(Ordering::Relaxed).max(1));
    let ns = u128::from(u64::try_from(ticks).unwrap_or(0)) * 1_000_000_000 / f;
    u64::try_from(ns).unwrap_or(u64::MAX)
}

impl Sim {
    /// Counts a violation and keeps its details while there is room.
    pub fn violation(&mut self, kind: u32, op: Option<usize>, filter: Option<usize>) {
        self.totals.violations += 1;
        let (name, generation) = filter
            .and_then(|i| self.filters.get(i))
            .map_or(([0u16; abi::NAME_CHARS], 0), |f| (name_array(f.name.units()), f.generation));
        if let Some(slot) = self.violations.get_mut(self.violation_records) {
            *slot = abi::ViolationRecord {
                kind,
                op: op.and_then(|o| u32::try_from(o).ok()).unwrap_or(u32::MAX),
                generation,
                reserved: 0,
                filter: name,
            };
            self.violation_records += 1;
        }
    }

    /// Whether `addr` lies in an image the simulator saw unloaded.
    pub fn in_unloaded_image(&self, addr: usize) -> bool {
        self.unloaded.iter().any(|&(base, size)| size != 0 && addr >= base && addr - base < size)
    }

    /// Remembers that `range` was unloaded (its driver's `DriverUnload`
    /// returned; Wine frees the image right after).
    pub fn mark_unloaded(&mut self, range: (usize, usize)) {
        if range.1 == 0 {
            return;
        }
        if let Some(slot) = self.unloaded.get_mut(self.unloaded_next % crate::state::MAX_UNLOADED) {
            *slot = range;
        }
        self.unloaded_next = self.unloaded_next.wrapping_add(1);
    }

    /// A new image was mapped over `range`: it is no longer an unloaded one.
    pub fn forget_unloaded(&mut self, range: (usize, usize)) {
        let (base, size) = range;
        for r in &mut self.unloaded {
            let overlaps = r.1 != 0 && r.0 < base.saturating_add(size) && base < r.0.saturating_add(r.1);
            if overlaps {
                *r = (0, 0);
            }
        }
    }

    /// Zeroes the counts (not the states).
    pub fn reset_counts(&mut self) {
        let frequency = self.totals.qpc_frequency;
        self.totals = abi::Snapshot::empty().totals;
        self.totals.qpc_frequency = frequency;
        self.violation_records = 0;
        self.gap = crate::state::Gap { open: false, ops: 0, start_qpc: 0 };
        GAP_OPEN.store(false, Ordering::Relaxed);
        for f in &mut self.filters {
            f.pre = [0; abi::OP_KINDS];
            f.post = [0; abi::OP_KINDS];
            f.processed = 0;
            f.drained = 0;
        }
    }

    /// The snapshot the control device returns.
    pub fn snapshot(&self, out: &mut abi::Snapshot) {
        out.totals = self.totals;
        out.job = self.job;
        out.inject = self.inject;
        out.inject.done = crate::inject::done();
        if self.inject.state == abi::INJECT_RUNNING {
            out.inject.elapsed_ns = ticks_to_ns(qpc().saturating_sub(self.inject_start_qpc));
        }
        out.race = self.race.status;
        out.race.target = name_array(self.race.target.units());
        let n = self.violation_records.min(abi::MAX_VIOLATION_RECORDS);
        for (o, v) in out.violations.iter_mut().zip(self.violations.iter().take(n)) {
            *o = *v;
        }
        out.violation_count = u32::try_from(n).unwrap_or(0);
        let mut filters = 0u32;
        for (o, f) in out.filters.iter_mut().zip(self.filters.iter().filter(|f| f.state != abi::FILTER_FREE)) {
            *o = self.filter_info(f);
            filters += 1;
        }
        out.filter_count = filters;
        let mut instances = 0u32;
        let attached = self.instances.iter().enumerate().filter(|(_, i)| i.state != abi::INSTANCE_FREE);
        for (o, (idx, inst)) in out.instances.iter_mut().zip(attached) {
            let filter = self.filters.get(idx / abi::VOLUMES).map_or(&[][..], |f| f.name.units());
            *o = abi::InstanceInfo {
                filter: name_array(filter),
                volume: u32::try_from(idx % abi::VOLUMES).unwrap_or(0),
                state: inst.state,
                generation: inst.generation,
                filter_generation: inst.filter_generation,
                in_flight: inst.in_flight,
                contexts: inst.contexts,
            };
            instances += 1;
        }
        out.instance_count = instances;
        let mut files = 0u32;
        let open = self.streams.iter().filter(|s| s.used && s.open_file);
        for (o, s) in out.files.iter_mut().zip(open) {
            o.id = s.id;
            o.volume = u32::try_from(s.volume).unwrap_or(0);
            o.contexts = u32::try_from(s.links.iter().flatten().count()).unwrap_or(0);
            o.name = name_array(s.name.units());
            files += 1;
        }
        out.file_count = files;
    }

    fn filter_info(&self, f: &crate::state::FilterRec) -> abi::FilterInfo {
        let first = f.generation;
        let idx = self.filters.iter().position(|g| core::ptr::eq(g, f)).unwrap_or(0);
        let instances = (0..abi::VOLUMES)
            .filter_map(|v| self.instances.get(crate::state::instance_index(idx, v)))
            .filter(|i| i.filter_generation == first && i.state != abi::INSTANCE_FREE);
        let (count, in_flight) = instances.fold((0u32, 0u32), |(c, n), i| (c + 1, n + i.in_flight));
        abi::FilterInfo {
            name: name_array(f.name.units()),
            altitude: f.altitude_text,
            state: f.state,
            generation: f.generation,
            is_payload: u32::from(f.is_payload),
            version: f.version,
            image_base: f.image.0 as u64,
            image_size: f.image.1 as u64,
            instances: count,
            in_flight,
            drained: f.drained,
            unload_callback_done: u32::from(f.unload_callback == crate::state::UnloadCallback::Done),
            pre: f.pre,
            post: f.post,
            processed: f.processed,
            contexts: u64::try_from(f.contexts).unwrap_or(0),
        }
    }
}

/// `units` NUL-padded into a name field.
pub fn name_array<const N: usize>(units: &[u16]) -> [u16; N] {
    let mut out = [0u16; N];
    for (o, u) in out.iter_mut().take(N.saturating_sub(1)).zip(units) {
        *o = *u;
    }
    out
}

/// Accounts one finished operation: `processed` distinct payload
/// generations processed it. Takes the lock; reads the counter only when
/// a gap opens or closes.
pub fn op_finished(kind: usize, processed: u32) {
    let unfiltered = processed == 0;
    let now = if unfiltered || GAP_OPEN.load(Ordering::Relaxed) { qpc() } else { 0 };
    STATE.with(|s| {
        s.totals.ops += 1;
        if let Some(n) = s.totals.by_kind.get_mut(kind) {
            *n += 1;
        }
        if processed >= 2 {
            s.totals.double += 1;
        }
        if unfiltered {
            s.totals.unfiltered += 1;
            if !s.gap.open {
                s.gap = crate::state::Gap { open: true, ops: 0, start_qpc: now };
                GAP_OPEN.store(true, Ordering::Relaxed);
            }
            s.gap.ops += 1;
            s.totals.max_gap_ops = s.totals.max_gap_ops.max(s.gap.ops);
        } else if s.gap.open && now != 0 {
            let us = ticks_to_us(now.saturating_sub(s.gap.start_qpc));
            s.totals.max_gap_us = s.totals.max_gap_us.max(us);
            s.gap.open = false;
            GAP_OPEN.store(false, Ordering::Relaxed);
        }
    });
}
