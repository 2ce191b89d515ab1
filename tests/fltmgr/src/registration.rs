//! Reading what `FltRegisterFilter` is given: the registration, up to the
//! size its version declares (0x0200 with the XP-size structure, 0x0201,
//! 0x0202, and 0x0203 whose Windows 8 callback is ignored); the operation
//! and context registrations, up to their terminators; the filter's name
//! (its service) and its altitude, from the service's
//! `Instances\DefaultInstance` key; and whether its image is a payload of
//! the loader. `PASSIVE_LEVEL`; touches no state.
use crate::state::{Callbacks, ContextReg, Name};
use core::ffi::c_void;
use fltsim_abi as abi;
use kernel_sys::flt::{
    FLT_CONTEXT_END, FLT_CONTEXT_REGISTRATION, FLT_OPERATION_REGISTRATION, FLT_REGISTRATION,
    FLT_REGISTRATION_SIZE_0200, FLT_REGISTRATION_SIZE_0201, FLT_REGISTRATION_SIZE_0202, FLT_REGISTRATION_SIZE_0203,
    FLT_REGISTRATION_VERSION_0200, FLT_REGISTRATION_VERSION_0201, FLT_REGISTRATION_VERSION_0202,
    FLT_REGISTRATION_VERSION_0203, IRP_MJ_OPERATION_END,
};
use kernel_sys::wrap::registry::RegKey;
use kernel_sys::wrap::ustr::WideBuf;
use kernel_sys::{REG_EXPAND_SZ, REG_SZ};
use loader_parsers::pe::{export_rva, ImageBytes, Layout};
use shared_abi::NtStatus;

/// Operation registrations read before giving up on a missing terminator.
const MAX_OPERATIONS: usize = 64;
/// Context registrations read before giving up on a missing terminator.
const MAX_CONTEXT_ENTRIES: usize = 16;
const SERVICES: &str = "\\Registry\\Machine\\System\\CurrentControlSet\\Services\\";

/// Reads the registration up to the size its version declares (a 0x0200
/// registration from an XP-era filter is shorter than this structure).
pub fn read_registration(p: *const FLT_REGISTRATION) -> Result<(u16, FLT_REGISTRATION), NtStatus> {
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
pub fn read_callbacks(r: &FLT_REGISTRATION) -> Result<Callbacks, NtStatus> {
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
pub fn service_name(name: kernel_sys::UNICODE_STRING) -> Option<Name> {
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
pub fn read_altitude(service: &Name) -> Result<(u64, [u16; 16]), NtStatus> {
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

/// An altitude field, for the log.
pub struct AltitudeText<'a>(pub &'a [u16; 16]);

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
pub fn exports_payload_descriptor(image: (usize, usize)) -> bool {
    if image.0 == 0 || image.1 == 0 {
        return false;
    }
    let mapped = MappedDriver { base: image.0, size: image.1 };
    export_rva(&mapped, Layout::Mapped, shared_abi::payload::DESCRIPTOR_EXPORT).is_ok()
}
