//! The kernel side of `loader_protocol::LoaderPlatform`: the loader's state
//! in a spin lock, its events, its configuration, and the kernel calls the
//! protocol sequences (`ZwLoadDriver`, references, the payload's checked
//! entries, `ZwUnloadDriver`, the registry, system threads).
//!
//! Rules from the protocol that hold here: the state lock is closure-scoped
//! and never held across a wait or a call into a payload; every wait is at
//! `PASSIVE_LEVEL`. The configuration is read and written only through
//! `loader_parsers::config`, the one parser of `Parameters`.
use crate::log;
use kernel_sys::wrap::event::Event;
use kernel_sys::wrap::image::{self, MappedImage, ReferencedDriver};
use kernel_sys::wrap::lock::SpinLock;
use kernel_sys::wrap::pool::{PoolBlock, PoolCounter};
use kernel_sys::wrap::registry::RegKey;
use kernel_sys::wrap::thread::{self, SystemThread};
use kernel_sys::wrap::ustr::WideBuf;
use loader_parsers::config::{self, Config, DriverObjectKind, RawValue, ServiceName, PATH_CHARS};
use loader_protocol::{Loader, LoaderEvent, LoaderPlatform, LoaderState};
use shared_abi::control::{LoaderStatus, OpKind, PoolCount};
use shared_abi::payload::{LogLevel, StateBlobHeader, MAX_STATE_BYTES, STATE_FINAL, STATE_MAGIC};
use shared_abi::{NtStatus, PerSlot, Slot, POOL_TAG_LOADER};

/// The loader's pool use: nothing but the state blobs of a handover, each
/// freed once imported; status proves it comes back to zero.
pub static LOADER_POOL: PoolCounter = PoolCounter::new(POOL_TAG_LOADER);

static STATE: SpinLock<LoaderState<ReferencedDriver>> =
    SpinLock::new(LoaderState::new(config::DEFAULT_UNLOAD_TIMEOUT_MS));
static SETTLED: PerSlot<Event> = PerSlot::new(Event::notification(true), Event::notification(true));
static RETIRED: PerSlot<Event> = PerSlot::new(Event::notification(true), Event::notification(true));
static IDLE: Event = Event::notification(true);
static CONFIG: SpinLock<Option<Config>> = SpinLock::new(None);
static PARAMETERS_PATH: SpinLock<WideBuf<320>> = SpinLock::new(WideBuf::new());
static WORKERS: SpinLock<PerSlot<Option<SystemThread>>> = SpinLock::new(PerSlot::new(None, None));

/// The zero-sized platform handle.
pub struct KernelLoader;

/// The protocol's loader, over the kernel platform.
pub fn loader() -> Loader<KernelLoader> {
    Loader::new(KernelLoader)
}

/// The status snapshot, completed with what only the driver knows: the
/// slots' service names, the loader's pool counts and the marks refused. `PASSIVE_LEVEL`.
pub fn status() -> LoaderStatus {
    let mut st = loader().status();
    if let Some(c) = CONFIG.with(|c| *c) {
        for (out, slot) in st.slots.iter_mut().zip(Slot::ALL) {
            out.service = c.service(slot).to_abi_name();
        }
    }
    st.loader_pool =
        PoolCount { tag: LOADER_POOL.tag(), reserved: 0, allocs: LOADER_POOL.allocs(), frees: LOADER_POOL.frees() };
    st.handover.unmarked = kernel_sys::wrap::services::marks_refused();
    st
}

/// `<RegistryPath>\Parameters`.
fn parameters_path(registry_path: &[u16]) -> Option<WideBuf<320>> {
    let mut out = WideBuf::from_units(registry_path)?;
    out.push_ascii("\\")?;
    out.push_ascii(config::PARAMETERS_KEY)?;
    Some(out)
}

/// Reads `Parameters` and hands the raw values to the one parser of the
/// configuration, `loader_parsers::config::Config::from_values`.
fn read_config(parameters: &WideBuf<320>) -> Result<Config, NtStatus> {
    let upath = parameters.as_unicode();
    let key = RegKey::open(&upath, false).map_err(NtStatus)?;
    let values = [
        key.query(config::VALUE_SLOTS[0]).ok(),
        key.query(config::VALUE_SLOTS[1]).ok(),
        key.query(config::VALUE_ACTIVE_SLOT).ok(),
        key.query(config::VALUE_UNLOAD_TIMEOUT_MS).ok(),
    ];
    let raw = |i: usize| values.get(i).and_then(Option::as_ref).map(|v| RawValue { reg_type: v.kind, data: v.data() });
    Config::from_values([raw(0), raw(1)], raw(2), raw(3))
}

/// Called once from `DriverEntry`, before anything else here is used:
/// reads the configuration. `None` when it is invalid (the loader then
/// serves status only, and the error is recorded).
pub fn init(registry_path: &[u16]) -> Result<Option<Slot>, NtStatus> {
    let parameters = parameters_path(registry_path).ok_or(NtStatus::OBJECT_NAME_INVALID)?;
    PARAMETERS_PATH.with(|p| *p = parameters);
    match read_config(&parameters) {
        Ok(c) => {
            STATE.with(|s| s.set_unload_timeout_ms(c.unload_timeout_ms));
            CONFIG.with(|slot| *slot = Some(c));
            Ok(c.active)
        }
        Err(e) => {
            log!("configuration in Parameters is invalid: {e}; serving status only");
            loader().record_error(e, OpKind::START, None);
            Err(e)
        }
    }
}

/// The configured service of `slot`.
fn service(slot: Slot) -> Result<ServiceName, NtStatus> {
    CONFIG.with(|c| c.map(|c| *c.service(slot))).ok_or(NtStatus::DEVICE_NOT_READY)
}

fn service_key(slot: Slot) -> Result<WideBuf<160>, NtStatus> {
    let mut path = [0u16; PATH_CHARS];
    let n = service(slot)?.service_key_path(&mut path);
    WideBuf::from_units(path.get(..n).unwrap_or(&[])).ok_or(NtStatus::OBJECT_NAME_INVALID)
}

/// `<service key>\Instances\<DefaultInstance>`, where the Filter Manager
/// reads the slot payload's altitude.
fn instance_key(slot: Slot) -> Result<WideBuf<160>, NtStatus> {
    let mut instances = service_key(slot)?;
    instances.push_ascii("\\Instances").ok_or(NtStatus::OBJECT_NAME_INVALID)?;
    let key = RegKey::open(&instances.as_unicode(), false).map_err(NtStatus)?;
    let name = key.query("DefaultInstance").map_err(NtStatus)?;
    let units = reg_sz_units(name.data())?;
    instances.push_ascii("\\").ok_or(NtStatus::OBJECT_NAME_INVALID)?;
    instances.push_units(units.units()).ok_or(NtStatus::OBJECT_NAME_INVALID)?;
    Ok(instances)
}

/// The UTF-16 text of `REG_SZ` data, without its NUL.
fn reg_sz_units(data: &[u8]) -> Result<WideBuf<64>, NtStatus> {
    let mut out = WideBuf::<64>::new();
    for pair in data.chunks_exact(2) {
        let unit = u16::from_le_bytes([pair.first().copied().unwrap_or(0), pair.get(1).copied().unwrap_or(0)]);
        if unit == 0 {
            break;
        }
        out.push_units(&[unit]).ok_or(NtStatus::OBJECT_NAME_INVALID)?;
    }
    Ok(out)
}

/// A state blob: pool of the loader's, and the bytes the export wrote.
pub struct Blob {
    block: PoolBlock<'static>,
    len: usize,
}

impl Blob {
    fn bytes(&mut self) -> &[u8] {
        let len = self.len;
        self.block.as_mut_bytes().get(..len).unwrap_or(&[])
    }
}

/// Checks the header an export wrote: its size, magic and length.
fn check_blob(bytes: &[u8]) -> Result<(), NtStatus> {
    let field = |at: usize| bytes.get(at..at + 4).and_then(|b| <[u8; 4]>::try_from(b).ok()).map(u32::from_le_bytes);
    let header = core::mem::size_of::<StateBlobHeader>();
    let (size, magic, data_len) = (field(0), field(4), field(16));
    let ok = size == Some(shared_abi::size_u32::<StateBlobHeader>())
        && magic == Some(STATE_MAGIC)
        && data_len.and_then(|d| usize::try_from(d).ok()).and_then(|d| d.checked_add(header)) == Some(bytes.len());
    if ok {
        Ok(())
    } else {
        Err(NtStatus::INVALID_IMAGE_FORMAT)
    }
}

/// Joins every retire worker (the loader's `DriverUnload`, after `stop`).
pub fn join_workers() {
    for slot in Slot::ALL {
        KernelLoader.join_retire_worker(slot);
    }
}

/// Body of a retire worker: a system thread at `PASSIVE_LEVEL`.
extern "system" fn retire_thread(context: *mut core::ffi::c_void) {
    if let Some(slot) = u32::try_from(context as usize).ok().and_then(Slot::from_word) {
        loader().retire_worker(slot);
    }
    thread::exit(0);
}

fn event(e: LoaderEvent) -> &'static Event {
    match e {
        LoaderEvent::Settled(slot) => &SETTLED[slot],
        LoaderEvent::Retired(slot) => &RETIRED[slot],
        LoaderEvent::Idle => &IDLE,
    }
}

impl LoaderPlatform for KernelLoader {
    type Image = ReferencedDriver;
    type Bytes<'a> = MappedImage;

    fn with_state<R>(&self, f: impl FnOnce(&mut LoaderState<ReferencedDriver>) -> R) -> R {
        STATE.with(f)
    }

    fn event_set(&self, e: LoaderEvent) {
        event(e).set();
    }
    fn event_reset(&self, e: LoaderEvent) {
        event(e).reset();
    }
    fn event_wait(&self, e: LoaderEvent, timeout_ms: Option<u32>) -> bool {
        match timeout_ms {
            None => {
                event(e).wait();
                true
            }
            Some(ms) => event(e).wait_ms(ms),
        }
    }

    fn load_driver(&self, slot: Slot) -> Result<(), NtStatus> {
        let key = service_key(slot)?;
        log!("ZwLoadDriver {key}");
        image::load_driver(key.units())
    }

    fn reference_image(&self, slot: Slot) -> Result<ReferencedDriver, NtStatus> {
        // `\FileSystem\<svc>` for a file-system service on Windows, else
        // `\Driver\<svc>` (kernel services, and every service under Wine).
        let svc = service(slot)?;
        let mut last = NtStatus::OBJECT_NAME_NOT_FOUND;
        for kind in [DriverObjectKind::FileSystem, DriverObjectKind::Driver] {
            let mut name = [0u16; PATH_CHARS];
            let n = svc.driver_object_name(kind, &mut name);
            match ReferencedDriver::by_name(name.get(..n).unwrap_or(&[])) {
                Ok(image) => return Ok(image),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn image_bytes(&self, image: ReferencedDriver) -> (MappedImage, u64) {
        (image.bytes(), image.base())
    }

    fn call_register(&self, image: ReferencedDriver, entry: u64, slot: Slot, generation: u16) -> NtStatus {
        // No payload of `slot` is loaded now: its table may change.
        kernel_sys::wrap::services::set_generation(slot, generation);
        log!(
            "slot {slot}: calling LoaderPayloadRegister in the System process: {} (pid {})",
            if kernel_sys::wrap::process::in_system_process() { "yes" } else { "NO" },
            kernel_sys::wrap::process::current_process_id()
        );
        let status = image.call_register(entry, kernel_sys::wrap::services::table_for(slot));
        log!("slot {slot} registration entry returned {status}");
        status
    }

    fn call_teardown(&self, image: ReferencedDriver, entry: u64) -> NtStatus {
        image.call_teardown(entry)
    }

    fn call_shutdown(&self, image: ReferencedDriver, entry: u64) {
        image.call_shutdown(entry);
    }

    type Blob = Blob;

    fn publish_owner(&self, word: loader_protocol::handover::OwnerWord) {
        kernel_sys::wrap::services::publish_owner(word.encode());
    }

    fn clear_marks(&self) {
        kernel_sys::wrap::services::clear_marks();
    }

    fn close_marks(&self) {
        kernel_sys::wrap::services::close_marks();
    }

    fn wait_old_drained(&self, old: Slot) -> bool {
        // Polled: the count drains as the old payload's post callbacks run.
        // Bounded by the teardown bound: an operation its filter pended
        // and never completed must not hold the handover for good.
        let bound = STATE.with(|s| s.unload_timeout_ms());
        let mut waited = 0u32;
        while kernel_sys::wrap::services::in_flight(old) > 0 {
            if waited >= bound {
                log!(
                    "slot {old}: {} operations still in flight after {bound} ms",
                    kernel_sys::wrap::services::in_flight(old)
                );
                return false;
            }
            kernel_sys::wrap::time::sleep_ms(1);
            waited = waited.saturating_add(1);
        }
        true
    }

    fn place_below(&self, new: Slot, old: Slot) -> Result<(), NtStatus> {
        let old_key = instance_key(old)?;
        let value =
            RegKey::open(&old_key.as_unicode(), false).map_err(NtStatus)?.query("Altitude").map_err(NtStatus)?;
        let old_altitude = reg_sz_units(value.data())?;
        let (units, len) = loader_parsers::altitude::below(old_altitude.units())?;
        let new_altitude = units.get(..len).unwrap_or(&[]);
        let new_key = instance_key(new)?;
        RegKey::open(&new_key.as_unicode(), true)
            .map_err(NtStatus)?
            .set_sz("Altitude", new_altitude)
            .map_err(NtStatus)?;
        log!(
            "slot {new}: placed at altitude {} below slot {old} ({})",
            WideBuf::<16>::from_units(new_altitude).unwrap_or_default(),
            old_altitude
        );
        Ok(())
    }

    fn call_quiesce(&self, image: ReferencedDriver, entry: u64) -> NtStatus {
        image.call_quiesce(entry)
    }

    fn call_export(&self, image: ReferencedDriver, entry: u64, final_state: bool) -> Result<Blob, NtStatus> {
        let flags = if final_state { STATE_FINAL } else { 0 };
        let mut capacity = 4096usize;
        for _ in 0..2 {
            let mut block = LOADER_POOL.alloc(capacity).ok_or(NtStatus::INSUFFICIENT_RESOURCES)?;
            let (status, written) = image.call_export(entry, block.as_mut_bytes(), flags);
            if status == NtStatus::BUFFER_TOO_SMALL && written > capacity && written <= MAX_STATE_BYTES {
                capacity = written;
                continue;
            }
            status.to_result()?;
            if written > capacity {
                return Err(NtStatus::INVALID_IMAGE_FORMAT);
            }
            let mut blob = Blob { block, len: written };
            check_blob(blob.bytes())?;
            return Ok(blob);
        }
        Err(NtStatus::BUFFER_TOO_SMALL)
    }

    fn call_import(&self, image: ReferencedDriver, entry: u64, blob: &Blob, final_state: bool) -> NtStatus {
        let flags = if final_state { STATE_FINAL } else { 0 };
        // (The blob is ours; a payload gets a read-only view of it.)
        let bytes = blob.block.as_bytes().get(..blob.len).unwrap_or(&[]);
        image.call_import(entry, bytes, flags)
    }

    fn blob_len(&self, blob: &Blob) -> u32 {
        u32::try_from(blob.len).unwrap_or(u32::MAX)
    }

    fn free_blob(&self, blob: Blob) {
        drop(blob);
    }

    fn unload_driver(&self, slot: Slot) -> NtStatus {
        let Ok(key) = service_key(slot) else { return NtStatus::DEVICE_NOT_READY };
        log!("ZwUnloadDriver {key}");
        let status = image::unload_driver(key.units());
        log!("ZwUnloadDriver returned {status}");
        status
    }

    fn release_image(&self, image: ReferencedDriver) {
        image.release();
    }

    fn start_retire_worker(&self, slot: Slot) -> Result<(), NtStatus> {
        let t = thread::spawn(retire_thread, slot.word() as usize).map_err(NtStatus)?;
        let previous = WORKERS.with(|w| w[slot].replace(t));
        if previous.is_some() {
            // The protocol joins a slot's worker before it starts the next.
            log!("slot {slot}: a retire worker was started before the last one was joined");
        }
        Ok(())
    }

    fn join_retire_worker(&self, slot: Slot) {
        let worker = WORKERS.with(|w| w[slot].take());
        if let Some(t) = worker {
            if let Err(e) = t.join() {
                log!("slot {slot}: waiting for the retire worker failed: {}", NtStatus(e));
            }
        }
    }

    fn request_reap(&self) {
        crate::ops::request_reap();
    }

    fn persist_active(&self, slot: Option<Slot>) -> Result<(), NtStatus> {
        let path = PARAMETERS_PATH.with(|p| *p);
        let upath = path.as_unicode();
        let key = RegKey::open(&upath, true).map_err(NtStatus)?;
        key.set_dword(config::VALUE_ACTIVE_SLOT, config::encode_active_slot(slot)).map_err(NtStatus)?;
        key.flush().map_err(NtStatus)
    }

    fn now(&self) -> u64 {
        kernel_sys::wrap::time::system_time()
    }

    fn log(&self, level: LogLevel, args: core::fmt::Arguments<'_>) {
        let level = match level {
            LogLevel::ERROR => kernel_sys::wrap::log::Level::Error,
            LogLevel::WARN => kernel_sys::wrap::log::Level::Warn,
            _ => kernel_sys::wrap::log::Level::Info,
        };
        kernel_sys::wrap::log::print_at(level, "loader: ", args);
    }
}
