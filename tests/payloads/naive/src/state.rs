//! The naive filter's global state: blocks allocated one by one, slowly
//! (each step waits a little, as a real filter's set-up talking to a
//! service would), and freed in one go by the unload path, which records a
//! teardown of half-built state.
//!
//! `PASSIVE_LEVEL`. The record is a `REG_DWORD` `HalfBuiltTeardowns` under
//! the driver's own service key (the path `DriverEntry` received).
use crate::log;
use core::sync::atomic::{AtomicU32, Ordering};
use kernel_sys::wrap::event::Event;
use kernel_sys::wrap::lock::SpinLock;
use kernel_sys::wrap::pool::{PoolBlock, PoolCounter};
use kernel_sys::wrap::registry::RegKey;
use kernel_sys::wrap::ustr::WideBuf;
use kernel_sys::REG_DWORD;

/// Steps of the build.
pub const STEPS: u32 = 16;
/// Milliseconds each step takes.
const STEP_MS: u32 = 2;
/// The registry value the teardown of half-built state is counted in.
pub const RECORD_VALUE: &str = "HalfBuiltTeardowns";

static POOL: PoolCounter = PoolCounter::new(u32::from_le_bytes(*b"Naiv"));
static BLOCKS: SpinLock<[Option<PoolBlock<'static>>; STEPS as usize]> = SpinLock::new([const { None }; STEPS as usize]);
/// Steps built so far.
static BUILT: AtomicU32 = AtomicU32::new(0);
/// Never set: each step waits on it for `STEP_MS`.
static SLOW: Event = Event::notification(false);
static REGISTRY_PATH: SpinLock<WideBuf<256>> = SpinLock::new(WideBuf::new());

/// `DriverEntry`'s first act: under Wine an image whose `DriverEntry`
/// failed stays mapped, so a later start runs it again over old globals.
pub fn reset(registry_path: &[u16]) {
    let old = BLOCKS.with(|b| core::mem::replace(b, [const { None }; STEPS as usize]));
    drop(old);
    BUILT.store(0, Ordering::Release);
    REGISTRY_PATH.with(|p| *p = WideBuf::from_units(registry_path).unwrap_or_default());
}

/// Builds the global state, one block per step, slowly.
pub fn build_slowly() {
    for step in 0..STEPS {
        let block = POOL.alloc(64);
        BLOCKS.with(|b| {
            if let Some(slot) = b.get_mut(step as usize) {
                *slot = block;
            }
        });
        BUILT.store(step + 1, Ordering::Release);
        let _ = SLOW.wait_ms(STEP_MS);
    }
}

/// Frees the global state. A teardown that finds it half built is the
/// Windows 7 race: it is logged and counted in the registry.
pub fn tear_down() {
    let built = BUILT.swap(0, Ordering::AcqRel);
    let blocks = BLOCKS.with(|b| core::mem::replace(b, [const { None }; STEPS as usize]));
    drop(blocks);
    if built < STEPS {
        log!("TEARDOWN OF HALF-BUILT STATE ({built} of {STEPS} steps built)");
        record_half_built();
    }
}

fn record_half_built() {
    let path = REGISTRY_PATH.with(|p| *p);
    let Ok(key) = RegKey::open(&path.as_unicode(), true) else {
        log!("cannot open the service key to record it");
        return;
    };
    let before = key
        .query(RECORD_VALUE)
        .ok()
        .filter(|v| v.kind == REG_DWORD)
        .and_then(|v| v.data().get(..4).and_then(|d| d.try_into().ok()))
        .map_or(0, u32::from_le_bytes);
    if key.set_dword(RECORD_VALUE, before.saturating_add(1)).is_err() {
        log!("cannot record it in the service key");
    }
}
