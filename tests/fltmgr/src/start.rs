//! `FltStartFiltering`: an instance on each simulated volume
//! (`InstanceSetupCallback`, which may decline with
//! `STATUS_FLT_DO_NOT_ATTACH`). Ordered against `FltUnregisterFilter` and
//! detach by the filter's serialization event; the setup callbacks run
//! outside the state lock. `PASSIVE_LEVEL`.
use crate::log;
use crate::state::{
    decode_filter, filter_handle, instance_handle, instance_index, volume_handle, FILTER_SERIAL, STATE, VOLUMES,
};
use fltsim_abi as abi;
use kernel_sys::flt::{
    FILE_DEVICE_DISK_FILE_SYSTEM, FILE_DEVICE_NETWORK_FILE_SYSTEM, FLTFL_INSTANCE_SETUP_AUTOMATIC_ATTACHMENT,
    FLT_FSTYPE_MUP, FLT_FSTYPE_NTFS, FLT_RELATED_OBJECTS, PFLT_FILTER,
};
use shared_abi::NtStatus;

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
        // Registered, and not after its FilterUnloadCallback returned. (A
        // start while that callback runs is legal: the filter is still
        // registered, and its FltUnregisterFilter waits for this start.)
        let ok = match s.filter(idx, generation) {
            Some(f) => f.state == abi::FILTER_REGISTERED && f.unload_callback != crate::state::UnloadCallback::Done,
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
        // Unregistered, stale, or its FilterUnloadCallback returned: the
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
