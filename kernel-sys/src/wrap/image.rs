//! A payload's driver object, referenced by name; its mapped bytes; and
//! calls into its checked entry points.
//!
//! The reference keeps the image mapped on Windows (the image is unloaded
//! only when the last reference to its driver object goes), so no entry is
//! called without one. `PASSIVE_LEVEL`.
use crate::imports::{IoDriverObjectType, ObReferenceObjectByName, ObfDereferenceObject};
use crate::types::{KernelMode, DRIVER_OBJECT, OBJ_CASE_INSENSITIVE};
use crate::wrap::ustr::WideBuf;
use core::ffi::c_void;
use loader_parsers::pe::ImageBytes;
use shared_abi::payload::{
    LoaderServices, PayloadExportStateFn, PayloadImportStateFn, PayloadQuiesceFn, PayloadRegisterFn, PayloadShutdownFn,
    PayloadTeardownFn,
};
use shared_abi::NtStatus;

/// A counted reference on a driver object, with where its image is mapped.
#[derive(Clone, Copy)]
pub struct ReferencedDriver {
    object: *mut DRIVER_OBJECT,
    base: usize,
    size: usize,
}

// SAFETY: a referenced kernel object pointer is usable from any thread.
unsafe impl Send for ReferencedDriver {}

impl ReferencedDriver {
    /// `ObReferenceObjectByName` on the driver object `name` (`\Driver\X`
    /// or `\FileSystem\X`), with the driver object type.
    pub fn by_name(name: &[u16]) -> Result<ReferencedDriver, NtStatus> {
        let name: WideBuf<128> = WideBuf::from_units(name).ok_or(NtStatus::OBJECT_NAME_INVALID)?;
        let uname = name.as_unicode();
        let mut object: *mut c_void = core::ptr::null_mut();
        // SAFETY: reading the imported variable yields the kernel's
        // POBJECT_TYPE for driver objects (see the rule in `imports.rs`).
        let object_type = unsafe { IoDriverObjectType };
        // SAFETY: `uname` views `name`, alive for the call; `object` is a
        // valid out-pointer; KernelMode, no access check, no parse context.
        let status = NtStatus(unsafe {
            ObReferenceObjectByName(
                &raw const uname,
                OBJ_CASE_INSENSITIVE,
                core::ptr::null_mut(),
                0,
                object_type,
                KernelMode,
                core::ptr::null_mut(),
                &raw mut object,
            )
        });
        status.to_result()?;
        if object.is_null() {
            return Err(NtStatus::OBJECT_NAME_NOT_FOUND);
        }
        let driver = object.cast::<DRIVER_OBJECT>();
        // SAFETY: a referenced driver object; DriverStart/DriverSize are set
        // by the I/O manager before DriverEntry.
        let (base, size) = {
            // SAFETY: as above; read-only after DriverEntry.
            let d = unsafe { &*driver };
            (d.DriverStart as usize, d.DriverSize as usize)
        };
        Ok(ReferencedDriver { object: driver, base, size })
    }

    /// Drops the reference; the image may be unmapped right here.
    pub fn release(self) {
        // SAFETY: releases the one reference `by_name` took.
        unsafe { ObfDereferenceObject(self.object.cast()) };
    }

    /// Where the image is mapped.
    #[must_use]
    pub fn base(&self) -> u64 {
        self.base as u64
    }

    /// The mapped image, for the parser.
    #[must_use]
    pub fn bytes(&self) -> MappedImage {
        MappedImage { base: self.base, size: self.size }
    }

    /// `entry` as a function address of this image, if it lies inside it.
    /// (The parser already proved it resident code; this is the last guard
    /// before the jump.)
    fn code(&self, entry: u64) -> Option<usize> {
        let entry = usize::try_from(entry).ok()?;
        (entry >= self.base && entry - self.base < self.size).then_some(entry)
    }

    /// Calls the payload's registration entry with `services`.
    #[must_use]
    pub fn call_register(&self, entry: u64, services: &'static LoaderServices) -> NtStatus {
        let Some(entry) = self.code(entry) else { return NtStatus::INVALID_IMAGE_FORMAT };
        // SAFETY: `entry` is the image's registration export, checked by the
        // parser to be resident code of this referenced (mapped) image whose
        // descriptor declared this ABI.
        let register = unsafe { core::mem::transmute::<usize, PayloadRegisterFn>(entry) };
        // SAFETY: PASSIVE_LEVEL, no lock held; the table is 'static.
        NtStatus(unsafe { register(services) })
    }

    /// Calls the payload's teardown entry.
    #[must_use]
    pub fn call_teardown(&self, entry: u64) -> NtStatus {
        let Some(entry) = self.code(entry) else { return NtStatus::INVALID_IMAGE_FORMAT };
        // SAFETY: the descriptor's teardown entry, checked as above.
        let teardown = unsafe { core::mem::transmute::<usize, PayloadTeardownFn>(entry) };
        // SAFETY: PASSIVE_LEVEL on a thread of the loader, no lock held.
        NtStatus(unsafe { teardown() })
    }

    /// Calls the payload's quiesce entry (handover, ABI 1.2).
    #[must_use]
    pub fn call_quiesce(&self, entry: u64) -> NtStatus {
        let Some(entry) = self.code(entry) else { return NtStatus::INVALID_IMAGE_FORMAT };
        // SAFETY: the descriptor's quiesce entry, checked as above.
        let quiesce = unsafe { core::mem::transmute::<usize, PayloadQuiesceFn>(entry) };
        // SAFETY: PASSIVE_LEVEL on a thread of the loader, no lock held.
        NtStatus(unsafe { quiesce() })
    }

    /// Calls the payload's state export into `buffer`: the status and the
    /// byte count it wrote (or needs, with `STATUS_BUFFER_TOO_SMALL`).
    #[must_use]
    pub fn call_export(&self, entry: u64, buffer: &mut [u8], flags: u32) -> (NtStatus, usize) {
        let Some(entry) = self.code(entry) else { return (NtStatus::INVALID_IMAGE_FORMAT, 0) };
        // SAFETY: the descriptor's export entry, checked as above.
        let export = unsafe { core::mem::transmute::<usize, PayloadExportStateFn>(entry) };
        let mut written = 0usize;
        // SAFETY: `buffer` is writable for its length across the call;
        // `written` is a valid out-pointer; PASSIVE_LEVEL, no lock held.
        let status = NtStatus(unsafe { export(buffer.as_mut_ptr(), buffer.len(), &raw mut written, flags) });
        (status, written)
    }

    /// Calls the payload's state import with `blob`.
    #[must_use]
    pub fn call_import(&self, entry: u64, blob: &[u8], flags: u32) -> NtStatus {
        let Some(entry) = self.code(entry) else { return NtStatus::INVALID_IMAGE_FORMAT };
        // SAFETY: the descriptor's import entry, checked as above.
        let import = unsafe { core::mem::transmute::<usize, PayloadImportStateFn>(entry) };
        // SAFETY: `blob` is readable across the call; PASSIVE_LEVEL.
        NtStatus(unsafe { import(blob.as_ptr(), blob.len(), flags) })
    }

    /// Calls the payload's shutdown hook.
    pub fn call_shutdown(&self, entry: u64) {
        let Some(entry) = self.code(entry) else { return };
        // SAFETY: the descriptor's shutdown entry, checked as above.
        let hook = unsafe { core::mem::transmute::<usize, PayloadShutdownFn>(entry) };
        // SAFETY: PASSIVE_LEVEL (IRP_MJ_SHUTDOWN), no lock held.
        unsafe { hook() };
    }
}

/// The bytes of a referenced, mapped image.
#[derive(Clone, Copy)]
pub struct MappedImage {
    base: usize,
    size: usize,
}

impl ImageBytes for MappedImage {
    fn size(&self) -> usize {
        self.size
    }

    /// Forms a slice for exactly the range asked. The only caller is
    /// `loader_parsers` with `Layout::Mapped`, which asks only for the first
    /// page and for ranges inside sections the kernel keeps after
    /// `DriverEntry` (never `INIT` or discardable ones), so every byte of
    /// the slice is mapped; the reference keeps it so.
    fn read(&self, offset: usize, len: usize) -> Option<&[u8]> {
        let end = offset.checked_add(len)?;
        if end > self.size {
            return None;
        }
        let start = self.base.checked_add(offset)?;
        // SAFETY: [start, start + len) lies inside the mapped image (checked
        // above) and in a resident part of it (the parser's contract); the
        // referenced image stays mapped while `self` is in use.
        Some(unsafe { core::slice::from_raw_parts(start as *const u8, len) })
    }
}

/// `ZwLoadDriver` on a service key path (`\Registry\Machine\...\Services\X`):
/// runs the driver's `DriverEntry`. `PASSIVE_LEVEL`.
pub fn load_driver(service_key: &[u16]) -> Result<(), NtStatus> {
    let key: WideBuf<160> = WideBuf::from_units(service_key).ok_or(NtStatus::OBJECT_NAME_INVALID)?;
    let ukey = key.as_unicode();
    // SAFETY: `ukey` views `key`, alive for the call.
    NtStatus(unsafe { crate::imports::ZwLoadDriver(&raw const ukey) }).to_result()
}

/// `ZwUnloadDriver` on a service key path. `PASSIVE_LEVEL`.
#[must_use]
pub fn unload_driver(service_key: &[u16]) -> NtStatus {
    let Some(key) = WideBuf::<160>::from_units(service_key) else { return NtStatus::OBJECT_NAME_INVALID };
    let ukey = key.as_unicode();
    // SAFETY: `ukey` views `key`, alive for the call.
    NtStatus(unsafe { crate::imports::ZwUnloadDriver(&raw const ukey) })
}
