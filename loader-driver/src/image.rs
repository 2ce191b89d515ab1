//! A referenced payload image: its driver object, where it is mapped, and
//! the two exports the protocol needs, found by walking the export
//! directory with `loader_protocol::pe` (bounds-checked, panic-free).
//!
//! The reference taken here keeps the image mapped: no payload code is
//! called without one. `PASSIVE_LEVEL`.
use crate::log;
use core::ffi::c_void;
use kernel_sys::wrap::ustr::WideBuf;
use kernel_sys::{
    IoDriverObjectType, KernelMode, ObReferenceObjectByName, ObfDereferenceObject, DRIVER_OBJECT, OBJ_CASE_INSENSITIVE,
};
use loader_protocol::config::{DriverObjectKind, ServiceName, PATH_CHARS};
use loader_protocol::pe::{self, Layout, RawDescriptor};
use shared_abi::payload::{DESCRIPTOR_EXPORT, REGISTER_EXPORT};
use shared_abi::NtStatus;

/// A counted reference on a payload's driver object.
#[derive(Clone, Copy)]
pub struct PayloadImage {
    object: *mut DRIVER_OBJECT,
    base: usize,
    size: usize,
}

// SAFETY: a referenced kernel object pointer is usable from any thread.
unsafe impl Send for PayloadImage {}

impl PayloadImage {
    /// References `\FileSystem\<svc>` (Windows, file-system service type) or
    /// `\Driver\<svc>` (kernel type, and Wine for both).
    pub fn reference(service: &ServiceName) -> Result<PayloadImage, NtStatus> {
        let mut last = NtStatus::OBJECT_NAME_NOT_FOUND;
        for kind in [DriverObjectKind::FileSystem, DriverObjectKind::Driver] {
            let mut units = [0u16; PATH_CHARS];
            let len = service.driver_object_name(kind, &mut units);
            let name: WideBuf<PATH_CHARS> =
                WideBuf::from_units(units.get(..len).unwrap_or(&[])).ok_or(NtStatus::OBJECT_NAME_INVALID)?;
            let uname = name.as_unicode();
            let mut object: *mut c_void = core::ptr::null_mut();
            // SAFETY: `uname` views `name`, alive for the call; IoDriverObjectType is
            // the kernel's exported object type; `object` is a valid out-pointer.
            let status = NtStatus(unsafe {
                ObReferenceObjectByName(
                    &uname,
                    OBJ_CASE_INSENSITIVE,
                    core::ptr::null_mut(),
                    0,
                    *IoDriverObjectType,
                    KernelMode,
                    core::ptr::null_mut(),
                    &mut object,
                )
            });
            if status.is_success() && !object.is_null() {
                let driver = object.cast::<DRIVER_OBJECT>();
                // SAFETY: a referenced driver object; DriverStart/DriverSize are
                // set by the I/O manager before DriverEntry.
                let (base, size) = unsafe { ((*driver).DriverStart as usize, (*driver).DriverSize as usize) };
                return Ok(PayloadImage { object: driver, base, size });
            }
            last = status;
        }
        Err(last)
    }

    /// Drops the reference; the image may be unmapped right here.
    pub fn release(self) {
        // SAFETY: releases the one reference `reference` took.
        unsafe { ObfDereferenceObject(self.object.cast()) };
    }

    /// The mapped image as bytes.
    fn bytes(&self) -> &[u8] {
        if self.base == 0 || self.size == 0 {
            return &[];
        }
        // SAFETY: DriverStart..+DriverSize is the mapped image, kept mapped by
        // our reference; the parser reads only headers, the export directory
        // and the descriptor, never discardable sections.
        unsafe { core::slice::from_raw_parts(self.base as *const u8, self.size) }
    }

    /// True if `va` is code of this image that stays mapped after
    /// DriverEntry (an executable, non-discardable section).
    pub fn is_code(&self, va: u64) -> bool {
        let Some(rva) = va.checked_sub(self.base as u64).and_then(|r| u32::try_from(r).ok()) else {
            return false;
        };
        pe::check_code_rva(self.bytes(), Layout::Mapped, rva).is_ok()
    }

    /// The descriptor's fields, copied out of the image.
    pub fn descriptor(&self) -> Result<RawDescriptor, NtStatus> {
        let image = self.bytes();
        let rva = pe::export_rva(image, Layout::Mapped, DESCRIPTOR_EXPORT)?;
        let bytes = pe::slice_at_rva(
            image,
            Layout::Mapped,
            rva,
            core::mem::size_of::<shared_abi::payload::PayloadDescriptor>(),
        )?;
        pe::parse_descriptor(bytes)
    }

    /// Address of the registration entry.
    pub fn register_entry(&self) -> Result<u64, NtStatus> {
        let rva = pe::export_rva(self.bytes(), Layout::Mapped, REGISTER_EXPORT).inspect_err(|s| {
            log!("payload image lacks export {REGISTER_EXPORT}: {s}");
        })?;
        Ok((self.base as u64).saturating_add(u64::from(rva)))
    }
}
