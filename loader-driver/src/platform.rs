//! The kernel side of `loader_protocol::LoaderPlatform`: the loader's
//! state in a spin lock, the per-slot events, and the kernel calls the
//! protocol sequences (ZwLoadDriver, references, the payload's entries,
//! ZwUnloadDriver, the registry, system threads).
//!
//! Rules from the protocol that hold here: the state lock is closure-scoped
//! and never held across a wait or a call into a payload; every wait is at
//! `PASSIVE_LEVEL`.
use crate::image::PayloadImage;
use crate::services;
use core::ffi::c_void;
use kernel_sys::wrap::event::Event;
use kernel_sys::wrap::lock::SpinLock;
use kernel_sys::wrap::pool::PoolCounter;
use kernel_sys::wrap::registry::RegKey;
use kernel_sys::wrap::thread::{self, SystemThread};
use kernel_sys::wrap::ustr::WideBuf;
use kernel_sys::{ZwLoadDriver, ZwUnloadDriver};
use loader_protocol::config::{Config, ServiceName, DEFAULT_UNLOAD_TIMEOUT_MS};
use loader_protocol::descriptor::DescriptorInfo;
use loader_protocol::{Loader, LoaderPlatform, LoaderState};
use shared_abi::control::{LoaderStatus, PoolCount, SLOT_COUNT};
use shared_abi::payload::{LogLevel, PayloadRegisterFn, PayloadReport, PayloadShutdownFn, PayloadTeardownFn};
use shared_abi::{NtStatus, POOL_TAG_LOADER};

/// The loader's pool use: it allocates nothing, and status proves it.
pub static LOADER_POOL: PoolCounter = PoolCounter::new(POOL_TAG_LOADER);

static STATE: SpinLock<LoaderState<PayloadImage>> = SpinLock::new(LoaderState::new(DEFAULT_UNLOAD_TIMEOUT_MS));
static SETTLED: [Event; SLOT_COUNT] = [Event::new(), Event::new()];
static RETIRED: [Event; SLOT_COUNT] = [Event::new(), Event::new()];
static CONFIG: SpinLock<Option<Config>> = SpinLock::new(None);
static PARAMETERS_PATH: SpinLock<WideBuf<300>> = SpinLock::new(WideBuf::new());
static WORKERS: SpinLock<[Option<SystemThread>; SLOT_COUNT]> = SpinLock::new([None, None]);

/// The zero-sized platform handle.
pub struct KernelLoader;

/// The protocol's loader, over the kernel platform.
pub fn loader() -> Loader<KernelLoader> {
    Loader::new(KernelLoader)
}

/// The status snapshot, completed with what only the driver knows: the
/// slots' service names and the loader's pool counts.
pub fn status() -> LoaderStatus {
    let mut st = loader().status();
    let names = CONFIG.with(|c| c.as_ref().map(|c| [c.slots[0].to_abi_name(), c.slots[1].to_abi_name()]));
    if let Some(names) = names {
        for (slot, name) in st.slots.iter_mut().zip(names) {
            slot.service = name;
        }
    }
    st.loader_pool =
        PoolCount { tag: LOADER_POOL.tag(), reserved: 0, allocs: LOADER_POOL.allocs(), frees: LOADER_POOL.frees() };
    st
}

/// Called once from DriverEntry, before anything else here is used.
pub fn init(parameters_path: WideBuf<300>, config: Option<Config>) {
    for e in SETTLED.iter().chain(RETIRED.iter()) {
        e.init(true, false);
    }
    PARAMETERS_PATH.with(|p| *p = parameters_path);
    if let Some(c) = &config {
        STATE.with(|s| s.set_unload_timeout_ms(c.unload_timeout_ms));
    }
    CONFIG.with(|c| *c = config);
}

/// The configured service of `slot`.
fn service(slot: usize) -> Result<ServiceName, NtStatus> {
    CONFIG.with(|c| c.as_ref().and_then(|c| c.slots.get(slot).copied())).ok_or(NtStatus::DEVICE_NOT_READY)
}

fn service_key(slot: usize) -> Result<WideBuf<160>, NtStatus> {
    let svc = service(slot)?;
    let mut path = [0u16; 128];
    let n = svc.service_key_path(&mut path);
    WideBuf::from_units(path.get(..n).unwrap_or(&[])).ok_or(NtStatus::OBJECT_NAME_INVALID)
}

/// Service routine behind `LoaderServices::wait_registration_settled`.
pub fn wait_settled(slot: usize) {
    loader().wait_registration_settled(slot);
}

/// Service routine behind `LoaderServices::report`.
pub fn on_report(slot: usize, report: PayloadReport) {
    loader().on_report(slot, &report);
}

/// Joins every worker thread (the loader's DriverUnload, after `stop`).
pub fn join_workers() {
    for slot in 0..SLOT_COUNT {
        let worker = WORKERS.with(|w| w.get_mut(slot).and_then(Option::take));
        if let Some(t) = worker {
            t.join();
        }
    }
}

/// Body of a retire worker: a system thread at `PASSIVE_LEVEL`.
unsafe extern "system" fn retire_thread(context: *mut c_void) {
    loader().retire_worker(context as usize);
    thread::exit(0);
}

impl LoaderPlatform for KernelLoader {
    type Image = PayloadImage;

    fn with_state<R>(&self, f: impl FnOnce(&mut LoaderState<PayloadImage>) -> R) -> R {
        STATE.with(f)
    }

    fn settle_set(&self, slot: usize) {
        if let Some(e) = SETTLED.get(slot) {
            e.set();
        }
    }
    fn settle_reset(&self, slot: usize) {
        if let Some(e) = SETTLED.get(slot) {
            e.reset();
        }
    }
    fn wait_settled(&self, slot: usize) {
        if let Some(e) = SETTLED.get(slot) {
            e.wait();
        }
    }
    fn retired_set(&self, slot: usize) {
        if let Some(e) = RETIRED.get(slot) {
            e.set();
        }
    }
    fn retired_reset(&self, slot: usize) {
        if let Some(e) = RETIRED.get(slot) {
            e.reset();
        }
    }
    fn retired_wait(&self, slot: usize, timeout_ms: u32) -> bool {
        let Some(e) = RETIRED.get(slot) else { return false };
        if timeout_ms == u32::MAX {
            e.wait();
            true
        } else {
            e.wait_ms(timeout_ms)
        }
    }

    fn load_driver(&self, slot: usize) -> Result<(), NtStatus> {
        let key = service_key(slot)?;
        let ukey = key.as_unicode();
        crate::log!("ZwLoadDriver {key}");
        // SAFETY: `ukey` views `key`, alive for the call; PASSIVE_LEVEL.
        NtStatus(unsafe { ZwLoadDriver(&ukey) }).to_result()
    }

    fn reference_image(&self, slot: usize) -> Result<PayloadImage, NtStatus> {
        PayloadImage::reference(&service(slot)?)
    }

    fn read_descriptor(&self, image: PayloadImage) -> Result<DescriptorInfo, NtStatus> {
        let raw = image.descriptor()?;
        let register = image.register_entry()?;
        // Every entry the loader may call must be code of this image that
        // stays mapped after DriverEntry (not a discardable INIT section).
        let entries_inside_image = image.is_code(register)
            && (raw.teardown_va == 0 || image.is_code(raw.teardown_va))
            && (raw.shutdown_va == 0 || image.is_code(raw.shutdown_va));
        Ok(raw.to_info(entries_inside_image))
    }

    fn call_register(&self, image: PayloadImage, slot: usize) -> NtStatus {
        let Ok(entry) = image.register_entry() else { return NtStatus::PROCEDURE_NOT_FOUND };
        let Some(table) = services::for_slot(slot) else { return NtStatus::INVALID_PARAMETER };
        if !image.is_code(entry) {
            return NtStatus::INVALID_IMAGE_FORMAT;
        }
        // SAFETY: `entry` is the payload's exported registration entry inside the
        // referenced (mapped) image, whose descriptor passed the protocol's checks.
        let register: PayloadRegisterFn = unsafe { core::mem::transmute::<usize, PayloadRegisterFn>(entry as usize) };
        // SAFETY: PASSIVE_LEVEL, no lock held; the table is 'static.
        let status = NtStatus(unsafe { register(table) });
        crate::log!("slot {} registration entry returned {status}", if slot == 0 { 'A' } else { 'B' });
        status
    }

    fn call_teardown(&self, image: PayloadImage) -> NtStatus {
        let Ok(raw) = image.descriptor() else { return NtStatus::INVALID_IMAGE_FORMAT };
        if raw.teardown_va == 0 || !image.is_code(raw.teardown_va) {
            return NtStatus::INVALID_IMAGE_FORMAT;
        }
        // SAFETY: the descriptor's teardown entry, checked to lie in the
        // referenced image.
        let teardown: PayloadTeardownFn =
            unsafe { core::mem::transmute::<usize, PayloadTeardownFn>(raw.teardown_va as usize) };
        // SAFETY: PASSIVE_LEVEL on the retire worker, no lock held.
        NtStatus(unsafe { teardown() })
    }

    fn call_shutdown(&self, image: PayloadImage) {
        let Ok(raw) = image.descriptor() else { return };
        if raw.shutdown_va == 0 || !image.is_code(raw.shutdown_va) {
            return;
        }
        // SAFETY: the descriptor's shutdown hook, checked to lie in the image.
        let hook: PayloadShutdownFn =
            unsafe { core::mem::transmute::<usize, PayloadShutdownFn>(raw.shutdown_va as usize) };
        // SAFETY: PASSIVE_LEVEL (IRP_MJ_SHUTDOWN), no lock held.
        unsafe { hook() };
    }

    fn unload_driver(&self, slot: usize) -> NtStatus {
        let Ok(key) = service_key(slot) else { return NtStatus::DEVICE_NOT_READY };
        let ukey = key.as_unicode();
        crate::log!("ZwUnloadDriver {key}");
        // SAFETY: `ukey` views `key`, alive for the call; PASSIVE_LEVEL.
        let status = NtStatus(unsafe { ZwUnloadDriver(&ukey) });
        crate::log!("ZwUnloadDriver returned {status}");
        status
    }

    fn release_image(&self, image: PayloadImage) {
        image.release();
    }

    fn start_retire_worker(&self, slot: usize) -> Result<(), NtStatus> {
        // A previous worker of this slot has finished (the slot was empty).
        let previous = WORKERS.with(|w| w.get_mut(slot).and_then(Option::take));
        if let Some(t) = previous {
            t.join();
        }
        let t = thread::spawn(retire_thread, slot).map_err(NtStatus)?;
        WORKERS.with(|w| {
            if let Some(cell) = w.get_mut(slot) {
                *cell = Some(t);
            }
        });
        Ok(())
    }

    fn persist_active(&self, slot: Option<usize>) -> Result<(), NtStatus> {
        let path = PARAMETERS_PATH.with(|p| *p);
        let upath = path.as_unicode();
        let key = RegKey::open(&upath, true).map_err(NtStatus)?;
        let value = slot.map_or(u32::MAX, |s| s as u32);
        key.set_dword("ActiveSlot", value).map_err(NtStatus)?;
        key.flush().map_err(NtStatus)
    }

    fn now(&self) -> u64 {
        kernel_sys::wrap::time::system_time()
    }

    fn log(&self, _level: LogLevel, args: core::fmt::Arguments<'_>) {
        kernel_sys::wrap::log::print("loader: ", args);
    }
}
