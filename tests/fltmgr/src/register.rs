//! `FltRegisterFilter`, `FltStartFiltering`, and the `DriverUnload` hook
//! `FltRegisterFilter` installs.
//!
//! Registration, as Windows 7's Filter Manager does it: the version and
//! size checked (0x0200 with the XP-size structure, 0x0201, 0x0202, and
//! 0x0203 whose Windows 8 callback is ignored); the operation and context
//! registrations copied up to their terminators; the altitude read from the
//! service's `Instances\DefaultInstance`; a second registration of the same
//! driver object, or of a taken altitude, refused with
//! `STATUS_FLT_INSTANCE_ALTITUDE_COLLISION`; the driver's `DriverUnload`
//! saved and replaced, so that a driver unload (`sc stop`, `ZwUnloadDriver`)
//! becomes a mandatory unload: `FilterUnloadCallback` with
//! `FLTFL_FILTER_UNLOAD_MANDATORY`, then the saved `DriverUnload`.
//!
//! `PASSIVE_LEVEL`. Calls into the filter (instance setup) happen outside the
//! state lock, under the filter's serialization event.
use crate::log;
use crate::state::{
    decode_filter, filter_handle, instance_handle, instance_index, volume_handle, Callbacks, ContextReg, HookRec, Name,
    FILTER_SERIAL, MAX_HOOKS, STATE, VOLUMES,
};
use core::ffi::c_void;
use fltsim_abi as abi;
use kernel_sys::flt::{
    FILE_DEVICE_DISK_FILE_SYSTEM, FILE_DEVICE_NETWORK_FILE_SYSTEM, FLTFL_INSTANCE_SETUP_AUTOMATIC_ATTACHMENT,
    FLT_CONTEXT_END, FLT_CONTEXT_REGISTRATION, FLT_FSTYPE_MUP, FLT_FSTYPE_NTFS, FLT_OPERATION_REGISTRATION,
    FLT_REGISTRATION, FLT_REGISTRATION_SIZE_0200, FLT_REGISTRATION_SIZE_0201, FLT_REGISTRATION_SIZE_0202,
    FLT_REGISTRATION_SIZE_0203, FLT_REGISTRATION_VERSION_0200, FLT_REGISTRATION_VERSION_0201,
    FLT_REGISTRATION_VERSION_0202, FLT_REGISTRATION_VERSION_0203, FLT_RELATED_OBJECTS, IRP_MJ_OPERATION_END,
    PFLT_FILTER,
};
use kernel_sys::wrap::registry::RegKey;
use kernel_sys::wrap::ustr::WideBuf;
use kernel_sys::{DRIVER_OBJECT, REG_EXPAND_SZ, REG_SZ};
use loader_parsers::pe::{export_rva, ImageBytes, Layout};
use shared_abi::NtStatus;

/// `FLTFL_REGISTRATION_DO_NOT_SUPPORT_SERVICE_STOP`: a service stop does not unload the filter.
const FLTFL_REGISTRATION_DO_NOT_SUPPORT_SERVICE_STOP: u32 = 0x1;
/// Operation registrations read before giving up on a missing terminator.
const MAX_OPERATIONS: usize = 64;
/// Context registrations read before giving up on a missing terminator.
const MAX_CONTEXT_ENTRIES: usize = 16;
const SERVICES: &str = "\\Registry\\Machine\\System\\CurrentControlSet\\Services\\";

/// A filter's view of a registration, as `FltRegisterFilter` received it.
pub struct Registering {
    pub driver: *mut DRIVER_OBJECT,
    pub registration: *const FLT_REGISTRATION,
}

/// `FltRegisterFilter`.
pub fn register(r: &Registering) -> Result<PFLT_FILTER, NtStatus> {
    let result = register_inner(r);
    if let Err(status) = result {
        STATE.with(|s| s.totals.registrations_refused += 1);
        log!("FltRegisterFilter refused: {status}");
    }
    result
}

fn register_inner(r: &Registering) -> Result<PFLT_FILTER, NtStatus> {
    let (version, registration) = read_registration(r.registration)?;
    let callbacks = read_callbacks(&registration)?;
    // SAFETY: the caller passes its own driver object, alive while it is
    // registered; `DriverName`, `DriverStart` and `DriverSize` were set by
    // the I/O manager before `DriverEntry`.
    let (driver_name, image) = unsafe {
        let d = &*r.driver;
        (d.DriverName, (d.DriverStart as usize, d.DriverSize as usize))
    };
    let service = service_name(driver_name).ok_or(NtStatus::OBJECT_NAME_INVALID)?;
    let (altitude, altitude_text) = read_altitude(&service)?;
    let is_payload = exports_payload_descriptor(image);
    let driver = r.driver.addr();
    let (idx, generation) = STATE.with(|s| {
        for f in &s.filters {
            if f.holds_registration() && (f.driver == driver || f.altitude == altitude) {
                return Err(NtStatus::FLT_INSTANCE_ALTITUDE_COLLISION);
            }
        }
        let slot = s.filters.iter().position(|f| f.state == abi::FILTER_FREE).or_else(|| {
            let reusable = s.filters.iter().enumerate().filter(|(i, f)| {
                f.state == abi::FILTER_UNREGISTERED
                    && (0..VOLUMES).all(|v| {
                        s.instances.get(instance_index(*i, v)).is_some_and(|inst| inst.state == abi::INSTANCE_FREE)
                    })
            });
            reusable.min_by_key(|(_, f)| f.freed_seq).map(|(i, _)| i)
        });
        let idx = slot.ok_or(NtStatus::INSUFFICIENT_RESOURCES)?;
        let generation = s.generation();
        s.forget_unloaded(image);
        let f = s.filters.get_mut(idx).ok_or(NtStatus::INSUFFICIENT_RESOURCES)?;
        *f = crate::state::FilterRec::EMPTY;
        f.state = abi::FILTER_REGISTERED;
        f.generation = generation;
        f.driver = driver;
        f.image = image;
        f.name = service;
        f.altitude = altitude;
        f.altitude_text = altitude_text;
        f.version = u32::from(version);
        f.is_payload = is_payload;
        f.callbacks = callbacks;
        s.totals.registrations += 1;
        Ok((idx, generation))
    })?;
    install_hook(r.driver, idx, generation, image, service, &callbacks);
    log!(
        "FltRegisterFilter {service} altitude {} version {version:#06x}{} -> generation {generation}",
        AltitudeText(&altitude_text),
        if is_payload { " (a loader payload)" } else { "" }
    );
    crate::unload::race_after_register(idx, generation, &service);
    Ok(filter_handle(idx, generation))
}

/// Reads the registration up to the size its version declares (a 0x0200
/// registration from an XP-era filter is shorter than this structure).
fn read_registration(p: *const FLT_REGISTRATION) -> Result<(u16, FLT_REGISTRATION), NtStatus> {
    // SAFETY: the caller passes a registration that is valid for at least its
    // first two fields (Size and Version), which every version has.
    let size = unsafe { (*p).Size };
    // SAFETY: as above.
    let version = unsafe { (*p).Version };
    let needed = match version {
        FLT_REGISTRATION_VERSION_0200 => FLT_REGISTRATION_SIZE_0200,
        FLT_REGISTRATION_VERSION_0201 => FLT_REGISTRATION_SIZE_0201,
        FLT_REGISTRATION_VERSION_0202 => FLT_REGISTRATION_SIZE_0202,
        FLT_REGISTRATION_VERSION_0203 => FLT_REGISTRATION_SIZE_0203,
        _ => return Err(NtStatus::INVALID_PARAMETER),
    };
    if usize::from(size) < needed {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    let copy = needed.min(core::mem::size_of::<FLT_REGISTRATION>());
    let mut out = FLT_REGISTRATION {
        Size: 0,
        Version: 0,
        Flags: 0,
        ContextRegistration: core::ptr::null(),
        OperationRegistration: core::ptr::null(),
        FilterUnloadCallback: None,
        InstanceSetupCallback: None,
        InstanceQueryTeardownCallback: core::ptr::null_mut(),
        InstanceTeardownStartCallback: core::ptr::null_mut(),
        InstanceTeardownCompleteCallback: None,
        GenerateFileNameCallback: core::ptr::null_mut(),
        NormalizeNameComponentCallback: core::ptr::null_mut(),
        NormalizeContextCleanupCallback: core::ptr::null_mut(),
        TransactionNotificationCallback: core::ptr::null_mut(),
        NormalizeNameComponentExCallback: core::ptr::null_mut(),
    };
    // SAFETY: the version says the caller's structure has at least `needed`
    // bytes; `copy` is no more than that and no more than `out`'s size.
    // Every field is a pointer, an optional function pointer or an integer,
    // for which the filter's bytes are valid values.
    unsafe { core::ptr::copy_nonoverlapping(p.cast::<u8>(), (&raw mut out).cast::<u8>(), copy) };
    Ok((version, out))
}

/// Copies the operation and context registrations and the callbacks.
fn read_callbacks(r: &FLT_REGISTRATION) -> Result<Callbacks, NtStatus> {
    let mut c = Callbacks::NONE;
    c.flags = r.Flags;
    c.unload = r.FilterUnloadCallback;
    c.setup = r.InstanceSetupCallback;
    c.teardown_complete = r.InstanceTeardownCompleteCallback;
    // SAFETY: fltKernel.h declares these members as the callback types they
    // are transmuted to (kernel-sys types them as pointers); a null one is None.
    unsafe {
        c.query_teardown = core::mem::transmute::<*mut c_void, kernel_sys::flt::PFLT_INSTANCE_QUERY_TEARDOWN_CALLBACK>(
            r.InstanceQueryTeardownCallback,
        );
    }
    // SAFETY: as above.
    unsafe {
        c.teardown_start = core::mem::transmute::<*mut c_void, kernel_sys::flt::PFLT_INSTANCE_TEARDOWN_CALLBACK>(
            r.InstanceTeardownStartCallback,
        );
    }
    let ops = r.OperationRegistration;
    if !ops.is_null() {
        let mut ended = false;
        for i in 0..MAX_OPERATIONS {
            // SAFETY: the array is terminated by IRP_MJ_OPERATION_END (the
            // caller's contract); we stop at the terminator.
            let e: FLT_OPERATION_REGISTRATION = unsafe { ops.wrapping_add(i).read() };
            if e.MajorFunction == IRP_MJ_OPERATION_END {
                ended = true;
                break;
            }
            if let Some(k) = abi::OP_MAJOR.iter().position(|&m| m == e.MajorFunction) {
                if let (Some(pre), Some(post)) = (c.pre.get_mut(k), c.post.get_mut(k)) {
                    if pre.is_none() && post.is_none() {
                        *pre = e.PreOperation;
                        *post = e.PostOperation;
                    }
                }
            }
        }
        if !ended {
            return Err(NtStatus::INVALID_PARAMETER);
        }
    }
    let contexts = r.ContextRegistration;
    if !contexts.is_null() {
        for i in 0..MAX_CONTEXT_ENTRIES {
            // SAFETY: the array is terminated by FLT_CONTEXT_END (contract).
            let e: FLT_CONTEXT_REGISTRATION = unsafe { contexts.wrapping_add(i).read() };
            if e.ContextType == FLT_CONTEXT_END {
                return Ok(c);
            }
            if !e.ContextAllocateCallback.is_null() || !e.ContextFreeCallback.is_null() {
                // Allocate/free callbacks are not simulated: fail loudly.
                return Err(NtStatus::NOT_SUPPORTED);
            }
            let slot = c.contexts.get_mut(i).ok_or(NtStatus::INVALID_PARAMETER)?;
            // SAFETY: fltKernel.h declares ContextCleanupCallback as
            // PFLT_CONTEXT_CLEANUP_CALLBACK; a null one is None.
            let cleanup = unsafe {
                core::mem::transmute::<*mut c_void, kernel_sys::flt::PFLT_CONTEXT_CLEANUP_CALLBACK>(
                    e.ContextCleanupCallback,
                )
            };
            *slot = ContextReg { kind: e.ContextType, size: e.Size, tag: e.PoolTag, cleanup };
        }
        return Err(NtStatus::INVALID_PARAMETER);
    }
    Ok(c)
}

/// `\Driver\<svc>` (Wine) or `\FileSystem\<svc>` (Windows): the service.
fn service_name(name: kernel_sys::UNICODE_STRING) -> Option<Name> {
    if name.Buffer.is_null() {
        return None;
    }
    // SAFETY: the driver object's name, Length bytes of UTF-16, alive with it.
    let units = unsafe { core::slice::from_raw_parts(name.Buffer, usize::from(name.Length / 2)) };
    let start = units.iter().rposition(|&u| u == u16::from(b'\\')).map_or(0, |i| i + 1);
    let svc = units.get(start..)?;
    if svc.is_empty() {
        return None;
    }
    WideBuf::from_units(svc)
}

/// `Services\<svc>\Instances` → `DefaultInstance` → `<instance>\Altitude`.
fn read_altitude(service: &Name) -> Result<(u64, [u16; 16]), NtStatus> {
    let missing = |_| NtStatus::OBJECT_NAME_NOT_FOUND;
    let mut path: WideBuf<256> = WideBuf::from_ascii(SERVICES).ok_or(NtStatus::OBJECT_NAME_INVALID)?;
    path.push_units(service.units()).ok_or(NtStatus::OBJECT_NAME_INVALID)?;
    path.push_ascii("\\Instances").ok_or(NtStatus::OBJECT_NAME_INVALID)?;
    let instance = {
        let key = RegKey::open(&path.as_unicode(), false).map_err(missing)?;
        let value = key.query("DefaultInstance").map_err(missing)?;
        string_value(value.kind, value.data()).ok_or(NtStatus::OBJECT_NAME_INVALID)?
    };
    path.push_ascii("\\").ok_or(NtStatus::OBJECT_NAME_INVALID)?;
    path.push_units(instance.units()).ok_or(NtStatus::OBJECT_NAME_INVALID)?;
    let key = RegKey::open(&path.as_unicode(), false).map_err(missing)?;
    let value = key.query("Altitude").map_err(missing)?;
    let text = string_value(value.kind, value.data()).ok_or(NtStatus::OBJECT_NAME_INVALID)?;
    let altitude = parse_altitude(text.units()).ok_or(NtStatus::OBJECT_NAME_INVALID)?;
    Ok((altitude, crate::verifier::name_array(text.units())))
}

/// A `REG_SZ` value's text, without its terminator.
fn string_value(kind: u32, data: &[u8]) -> Option<WideBuf<128>> {
    if kind != REG_SZ && kind != REG_EXPAND_SZ {
        return None;
    }
    let mut out = WideBuf::new();
    for pair in data.chunks_exact(2) {
        let u = u16::from_le_bytes([pair[0], pair[1]]);
        if u == 0 {
            break;
        }
        out.push_units(&[u])?;
    }
    (!out.units().is_empty()).then_some(out)
}

/// "370030" or "370030.5" as a number that orders like the altitude
/// (millionths of a unit).
fn parse_altitude(units: &[u16]) -> Option<u64> {
    let (mut whole, mut fraction, mut digits, mut in_fraction) = (0u64, 0u64, 0u32, false);
    for &u in units {
        match u8::try_from(u).ok()? {
            b'.' if !in_fraction => in_fraction = true,
            d @ b'0'..=b'9' if !in_fraction => whole = whole.checked_mul(10)?.checked_add(u64::from(d - b'0'))?,
            d @ b'0'..=b'9' if digits < 6 => {
                fraction = fraction * 10 + u64::from(d - b'0');
                digits += 1;
            }
            b'0'..=b'9' => {}
            _ => return None,
        }
    }
    let scale = 10u64.pow(6 - digits);
    whole.checked_mul(1_000_000)?.checked_add(fraction * scale)
}

struct AltitudeText<'a>(&'a [u16; 16]);

impl core::fmt::Display for AltitudeText<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for c in char::decode_utf16(abi::units(self.0).iter().copied()) {
            f.write_fmt(format_args!("{}", c.unwrap_or('?')))?;
        }
        Ok(())
    }
}

/// The mapped image of a driver, for the loader's own PE parser.
struct MappedDriver {
    base: usize,
    size: usize,
}

impl ImageBytes for MappedDriver {
    fn size(&self) -> usize {
        self.size
    }

    fn read(&self, offset: usize, len: usize) -> Option<&[u8]> {
        if offset.checked_add(len)? > self.size {
            return None;
        }
        let start = self.base.checked_add(offset)?;
        // SAFETY: [start, start + len) lies inside the driver's image, mapped
        // for the whole of FltRegisterFilter (the driver is registering);
        // with Layout::Mapped the parser reads only headers and the export
        // directory, which stay resident.
        Some(unsafe { core::slice::from_raw_parts(start as *const u8, len) })
    }
}

/// Whether the image exports `LoaderPayloadDescriptor`: the observable mark
/// of a payload of the loader (whose operations the verifier accounts).
fn exports_payload_descriptor(image: (usize, usize)) -> bool {
    if image.0 == 0 || image.1 == 0 {
        return false;
    }
    let mapped = MappedDriver { base: image.0, size: image.1 };
    export_rva(&mapped, Layout::Mapped, shared_abi::payload::DESCRIPTOR_EXPORT).is_ok()
}

/// Saves the driver's `DriverUnload` and puts the simulator's hook in its
/// place (or none: a filter without `FilterUnloadCallback`, or one that
/// asked not to support service stop, cannot be unloaded).
fn install_hook(
    driver: *mut DRIVER_OBJECT,
    idx: usize,
    generation: u32,
    image: (usize, usize),
    service: Name,
    callbacks: &Callbacks,
) {
    let hook: unsafe extern "system" fn(*mut DRIVER_OBJECT) = crate::unload::driver_unload_hook;
    // SAFETY: the caller's driver object; a pointer-sized read.
    let current = unsafe { (*driver).DriverUnload };
    let current_is_hook = current.is_some_and(|f| f as usize == hook as usize);
    let addr = driver.addr();
    STATE.with(|s| {
        let seq = s.next_seq();
        let live = |s: &crate::state::Sim, h: &HookRec| {
            s.filters.get(h.filter).is_some_and(|f| f.generation == h.generation && f.holds_registration())
        };
        let existing = s.hooks.iter().position(|h| h.used && h.driver == addr);
        let slot = existing.or_else(|| s.hooks.iter().position(|h| !h.used)).or_else(|| {
            // Full: evict the oldest record of a filter no longer registered.
            let stale = s.hooks.iter().enumerate().filter(|(_, h)| !live(s, h));
            stale.min_by_key(|(_, h)| h.seq).map(|(i, _)| i)
        });
        let Some(slot) = slot.filter(|&i| i < MAX_HOOKS) else { return };
        let saved = match s.hooks.get(slot) {
            Some(h) if h.used && h.driver == addr && current_is_hook => h.saved,
            _ => current,
        };
        if let Some(h) = s.hooks.get_mut(slot) {
            *h = HookRec { used: true, driver: addr, saved, filter: idx, generation, image, service, seq };
        }
    });
    let unloadable =
        callbacks.unload.is_some() && callbacks.flags & FLTFL_REGISTRATION_DO_NOT_SUPPORT_SERVICE_STOP == 0;
    let new: kernel_sys::PDRIVER_UNLOAD = if unloadable { Some(hook) } else { None };
    // SAFETY: the caller's driver object; a pointer-sized store, as
    // Windows' FltMgr makes it.
    unsafe { (*driver).DriverUnload = new };
}

/// `FltStartFiltering`: attaches an instance to each simulated volume
/// (`InstanceSetupCallback` may decline with `STATUS_FLT_DO_NOT_ATTACH`).
pub fn start_filtering(handle: PFLT_FILTER) -> NtStatus {
    let Some((idx, generation)) = decode_filter(handle) else {
        STATE.with(|s| s.violation(abi::VIOLATION_BAD_OBJECT, None, None));
        return NtStatus::INVALID_PARAMETER;
    };
    let Some(serial) = FILTER_SERIAL.get(idx) else { return NtStatus::INVALID_PARAMETER };
    serial.wait();
    let status = start_locked(idx, generation);
    serial.set();
    status
}

fn start_locked(idx: usize, generation: u32) -> NtStatus {
    let admitted = STATE.with(|s| {
        let ok = match s.filter(idx, generation) {
            Some(f) => {
                f.state == abi::FILTER_REGISTERED && f.unload_callback == crate::state::UnloadCallback::NotCalled
            }
            None => false,
        };
        if ok {
            if let Some(f) = s.filters.get_mut(idx) {
                f.started = true;
            }
            return Ok(());
        }
        let already = s.filter(idx, generation).is_some_and(|f| f.state == abi::FILTER_FILTERING);
        if already {
            return Err(NtStatus::INVALID_PARAMETER);
        }
        // Unregistered, stale, or its FilterUnloadCallback began: the
        // Windows 7 race (a use after free there).
        let live = s.filter(idx, generation).is_some();
        s.violation(abi::VIOLATION_START_AFTER_UNLOAD, None, live.then_some(idx));
        Err(NtStatus::FLT_DELETING_OBJECT)
    });
    if let Err(status) = admitted {
        log!("FltStartFiltering refused: {status}");
        return status;
    }
    for volume in 0..VOLUMES {
        setup_instance(idx, generation, volume);
    }
    STATE.with(|s| {
        if let Some(f) = s.filter_mut(idx, generation) {
            if f.state == abi::FILTER_REGISTERED {
                f.state = abi::FILTER_FILTERING;
            }
        }
    });
    NtStatus::SUCCESS
}

/// `(device type, file-system type)` of a simulated volume.
pub fn volume_kind(volume: usize) -> (u32, u32) {
    if volume == abi::VOLUME_MUP as usize {
        (FILE_DEVICE_NETWORK_FILE_SYSTEM, FLT_FSTYPE_MUP)
    } else {
        (FILE_DEVICE_DISK_FILE_SYSTEM, FLT_FSTYPE_NTFS)
    }
}

fn setup_instance(idx: usize, filter_generation: u32, volume: usize) {
    let i = instance_index(idx, volume);
    let prepared = STATE.with(|s| {
        let setup = s.filter(idx, filter_generation)?.callbacks.setup;
        let generation = s.generation();
        let inst = s.instances.get_mut(i)?;
        *inst = crate::state::InstanceRec::EMPTY;
        inst.state = abi::INSTANCE_SETTING_UP;
        inst.generation = generation;
        inst.filter_generation = filter_generation;
        Some((setup, generation))
    });
    let Some((setup, generation)) = prepared else { return };
    let objects = FLT_RELATED_OBJECTS {
        Size: u16::try_from(core::mem::size_of::<FLT_RELATED_OBJECTS>()).unwrap_or(0),
        TransactionContext: 0,
        Filter: filter_handle(idx, filter_generation),
        Volume: volume_handle(volume),
        Instance: instance_handle(i, generation),
        FileObject: core::ptr::null_mut(),
        Transaction: core::ptr::null_mut(),
    };
    let (device_type, fs_type) = volume_kind(volume);
    let status = match setup {
        Some(cb) if crate::ops::callable(idx, cb as usize) => {
            // SAFETY: the filter's InstanceSetupCallback, registered with
            // this signature; the related objects outlive the call; its
            // image is mapped (the filter is registered, checked above).
            NtStatus(unsafe {
                cb((&raw const objects).cast(), FLTFL_INSTANCE_SETUP_AUTOMATIC_ATTACHMENT, device_type, fs_type)
            })
        }
        Some(_) => NtStatus::FLT_DO_NOT_ATTACH,
        None => NtStatus::SUCCESS,
    };
    STATE.with(|s| {
        let attached = status.is_success();
        if let Some(inst) = s.instances.get_mut(i) {
            if inst.generation == generation {
                inst.state = if attached { abi::INSTANCE_ATTACHED } else { abi::INSTANCE_FREE };
            }
        }
        if attached {
            s.totals.instance_setups += 1;
        } else {
            s.totals.instance_setups_declined += 1;
        }
    });
}
