//! The payload's side of the protocol: what `DriverEntry`, the registration
//! entry, the teardown entry, `FilterUnloadCallback` and `DriverUnload` do.
//!
//! Owns the rules over [`PayloadState`] (the payload's globals):
//! - `DriverEntry` builds nothing, prepares "teardown finished", and
//!   publishes `DriverUnload` as its very last act, so an unload racing it
//!   either fails (no `DriverUnload` yet) or finds nothing built.
//! - Registration runs only when the loader calls it, once, and is refused
//!   once teardown began; a failed registration undoes itself inline.
//! - Teardown of a registration in progress waits for the loader to settle
//!   it, with no lock held; the filter is unregistered and the set-up cleaned
//!   exactly once, by whichever teardown takes them out of the state.
//! - `FilterUnloadCallback` and `DriverUnload` are routed here, so every
//!   unload path (FltMgr's, the I/O manager's, the loader's) takes the same
//!   teardown.
//!
//! Must never wait on "registration settled" from inside [`register`] (the
//! loader sets it only after `register` returns), and never wait inside
//! `with_state`.
#[cfg(feature = "mutations")]
use crate::mutation::Mutation;
pub use crate::payload_state::PayloadState;
pub use crate::payload_state::Stage;
use crate::platform::PayloadPlatform;
use shared_abi::payload::PayloadPhase;
use shared_abi::NtStatus;

/// `FLTFL_FILTER_UNLOAD_MANDATORY`: the unload cannot be refused.
pub const FILTER_UNLOAD_MANDATORY: u32 = 0x1;

/// `DriverEntry`. Called by the I/O manager on its load thread. Records that
/// the image is loaded, prepares "teardown finished", and publishes
/// `DriverUnload` last: until then an unload request fails (Windows 7
/// refuses to unload a driver without `DriverUnload`).
pub fn driver_entry<P: PayloadPlatform>(p: &P) {
    #[cfg(feature = "mutations")]
    if p.mutation() == Mutation::PublishUnloadFirst {
        p.publish_driver_unload();
    }
    p.teardown_done_init();
    p.with_state(|s| {
        if s.stage == Stage::Mapped {
            s.stage = Stage::Loaded;
        }
    });
    p.publish_driver_unload();
}

/// The registration entry. Called by the loader once `ZwLoadDriver` returned,
/// on a thread of the loader, with the loader holding a reference on the image.
///
/// Refuses with `DELETE_PENDING` once teardown began and with
/// `INVALID_DEVICE_REQUEST` on a second call. On failure everything built is
/// undone here, inline; it never waits on `settle` (the loader signals it
/// only after this returns).
pub fn register<P: PayloadPlatform>(p: &P, settle: P::Settle) -> NtStatus {
    let admitted = p.with_state(|s| {
        if s.teardown_begun {
            return Err(NtStatus::DELETE_PENDING);
        }
        if s.stage != Stage::Loaded && s.stage != Stage::Mapped {
            return Err(NtStatus::INVALID_DEVICE_REQUEST);
        }
        s.stage = Stage::Registering;
        s.settle = Some(settle);
        Ok(())
    });
    if let Err(status) = admitted {
        return status;
    }
    p.report_phase(settle, PayloadPhase::REGISTERING);
    let status = match build_registration(p) {
        Ok(()) => NtStatus::SUCCESS,
        Err(status) => status,
    };
    let failed = !status.is_success();
    #[cfg(feature = "mutations")]
    if failed && p.mutation() == Mutation::RegisterWaitsOnSettle {
        p.wait_settled(settle);
    }
    let phase = p.with_state(|s| {
        // A teardown that began meanwhile owns the stage from then on.
        if s.stage == Stage::Registering {
            s.stage = if failed { Stage::RegistrationFailed } else { Stage::Filtering };
        }
        s.phase()
    });
    p.report_phase(settle, phase);
    status
}

/// Set-up, `FltRegisterFilter`, `FltStartFiltering`; each failure undoes what
/// came before. A teardown that began meanwhile is waiting for us to settle:
/// we stop at the next step and undo, so it finds nothing half-built.
fn build_registration<P: PayloadPlatform>(p: &P) -> Result<(), NtStatus> {
    p.setup()?;
    if teardown_begun(p) {
        p.cleanup();
        return Err(NtStatus::DELETE_PENDING);
    }
    let filter = match p.register_filter() {
        Ok(filter) => filter,
        Err(status) => {
            p.cleanup();
            return Err(status);
        }
    };
    let started = if teardown_begun(p) { Err(NtStatus::DELETE_PENDING) } else { p.start_filtering(filter) };
    if let Err(status) = started {
        p.unregister_filter(filter);
        p.cleanup();
        return Err(status);
    }
    // Published under the lock: from here a teardown owns them. If one began
    // after the last check it is waiting for us to settle and will undo them;
    // the loader must not take this payload as active.
    let teardown_began = p.with_state(|s| {
        s.filter = Some(filter);
        s.setup_built = true;
        s.teardown_begun
    });
    // (The loader refuses to switch to a payload that reported a teardown,
    // which covers this case too; the early refusal here also protects a
    // payload loaded by a loader older than that check, ABI 1.0.)
    if teardown_began {
        return Err(NtStatus::DELETE_PENDING);
    }
    Ok(())
}

fn teardown_begun<P: PayloadPlatform>(p: &P) -> bool {
    p.with_state(|s| s.teardown_begun)
}

/// Tears the payload down. Idempotent. Called from the loader's teardown
/// entry (a thread of the loader), from `FilterUnloadCallback` (`FltMgr`'s
/// unload worker) and from `DriverUnload` (the I/O manager's unload thread).
///
/// If a registration call is running it waits, with no lock held, until the
/// loader settled it. Then it unregisters and cleans up what exists, once.
/// A second, concurrent teardown waits until the first one has finished: the
/// first owns the work, and no caller (the loader's own unload above all)
/// may go on while the payload still runs its teardown and calls the
/// loader's services. The loader's services are forgotten at the end, so
/// nothing of this image calls the loader after its teardown.
pub fn teardown<P: PayloadPlatform>(p: &P) -> NtStatus {
    // The first teardown claims the work; any later one waits for it. After
    // a quiesce (which holds the claim), the first teardown call finishes
    // the work the quiesce left.
    let claimed = p.with_state(|s| {
        if s.quiesce_holds_claim {
            s.quiesce_holds_claim = false;
            return Some(());
        }
        if s.teardown_claimed {
            return None;
        }
        s.teardown_claimed = true;
        Some(())
    });
    if claimed.is_none() {
        #[cfg(feature = "mutations")]
        if p.mutation() == Mutation::SecondTeardownReturnsEarly {
            return NtStatus::SUCCESS;
        }
        p.wait_teardown_done();
        return NtStatus::SUCCESS;
    }
    // Tell the loader before the teardown begins, so it never takes this
    // payload as active once its teardown has begun: it either refuses the
    // switch (the report came first), or sees the report after the switch
    // and shows the slot as stopped. A registration admitted while we
    // report is reported too: the teardown begins only once the loader
    // has heard of every registration there is.
    let mut reported = false;
    let must_wait = loop {
        let step = p.with_state(|s| {
            if let (Some(settle), false) = (s.settle, reported) {
                return Err(settle);
            }
            s.teardown_begun = true;
            let registering = s.stage == Stage::Registering;
            s.stage = Stage::TearingDown;
            Ok(if registering { s.settle } else { None })
        });
        match step {
            Err(settle) => {
                p.report_phase(settle, PayloadPhase::TEARING_DOWN);
                reported = true;
            }
            Ok(must_wait) => break must_wait,
        }
    };
    if let Some(settle) = must_wait {
        wait_settled_for_teardown(p, settle);
    }
    let (filter, setup_built, settle) =
        p.with_state(|s| (s.filter.take(), core::mem::take(&mut s.setup_built), s.settle));
    if let Some(filter) = filter {
        p.unregister_filter(filter);
    }
    if setup_built {
        p.cleanup();
    }
    p.with_state(|s| {
        s.stage = Stage::TornDown;
        // After this, `log`/`publish` of the payload find no loader to call.
        s.settle = None;
    });
    if let Some(settle) = settle {
        p.report_phase(settle, PayloadPhase::TORN_DOWN);
    }
    // Last: after this no teardown path calls the loader again.
    p.teardown_done_set();
    NtStatus::SUCCESS
}

fn wait_settled_for_teardown<P: PayloadPlatform>(p: &P, settle: P::Settle) {
    #[cfg(feature = "mutations")]
    match p.mutation() {
        Mutation::TeardownSkipsSettleWait => return,
        Mutation::WaitUnderLock => return p.with_state(|_| p.wait_settled(settle)),
        _ => {}
    }
    p.wait_settled(settle);
}

/// The handover's quiesce (ABI 1.2), from the loader's retire worker before
/// its teardown call: unregisters the filter (`FltUnregisterFilter` waits
/// for the callbacks in flight and the owed post callbacks), so the payload
/// processes nothing any more, but keeps its set-up: the final state export
/// reads it, and the loader's teardown call then cleans it up. Holds the
/// teardown claim in between, so a foreign teardown (`sc stop`) waits for
/// that teardown call instead of cleaning up under the export. Nothing to
/// do (success) if the payload is not filtering or a teardown began.
pub fn quiesce<P: PayloadPlatform>(p: &P) -> NtStatus {
    let filter = p.with_state(|s| {
        if s.teardown_claimed || s.stage != Stage::Filtering {
            return None;
        }
        s.teardown_claimed = true;
        s.quiesce_holds_claim = true;
        s.stage = Stage::Quiesced;
        s.filter.take()
    });
    if let Some(filter) = filter {
        p.unregister_filter(filter);
    }
    NtStatus::SUCCESS
}

/// Whether the payload may run its state export: quiesced (the final
/// export) or filtering (the snapshot).
pub fn may_export<P: PayloadPlatform>(p: &P) -> bool {
    p.with_state(|s| matches!(s.stage, Stage::Filtering | Stage::Quiesced))
}

/// `FilterUnloadCallback`. `FltMgr` calls it on its unload worker for
/// `fltmc unload` (not [`FILTER_UNLOAD_MANDATORY`]) and for `sc stop` /
/// `ZwUnloadDriver` (mandatory). The loader manages the payload, so a
/// non-mandatory unload is refused with `FLT_DO_NOT_DETACH`; a mandatory one
/// tears down.
pub fn filter_unload<P: PayloadPlatform>(p: &P, flags: u32) -> NtStatus {
    if flags & FILTER_UNLOAD_MANDATORY != 0 {
        teardown(p)
    } else {
        NtStatus::FLT_DO_NOT_DETACH
    }
}

/// `DriverUnload`. The I/O manager calls it on `ZwUnloadDriver` before a
/// registration (FltMgr has not replaced it yet), and FltMgr calls it after
/// `FilterUnloadCallback` (the saved routine). Both land in [`teardown`].
pub fn driver_unload<P: PayloadPlatform>(p: &P) -> NtStatus {
    teardown(p)
}

#[cfg(test)]
mod tests {
    //! Single-threaded transitions; the races are the model's job (`tests/`).
    extern crate std;
    use super::*;
    use core::cell::RefCell;
    use std::vec::Vec;

    #[derive(Default)]
    struct Fake {
        state: RefCell<PayloadState<u8, u8>>,
        calls: RefCell<Vec<&'static str>>,
        entry_calls: RefCell<Vec<&'static str>>,
        fail_register: bool,
        fail_start: bool,
        teardown_during_setup: bool,
    }

    impl Fake {
        fn calls(&self) -> Vec<&'static str> {
            self.calls.borrow().clone()
        }
        fn count(&self, what: &str) -> usize {
            self.calls.borrow().iter().filter(|c| **c == what).count()
        }
    }

    impl PayloadPlatform for Fake {
        type Settle = u8;
        type Filter = u8;
        fn with_state<R>(&self, f: impl FnOnce(&mut PayloadState<u8, u8>) -> R) -> R {
            f(&mut self.state.borrow_mut())
        }
        fn wait_settled(&self, _s: u8) {
            self.calls.borrow_mut().push("wait_settled");
        }
        fn setup(&self) -> Result<(), NtStatus> {
            self.calls.borrow_mut().push("setup");
            if self.teardown_during_setup {
                assert_eq!(teardown(self), NtStatus::SUCCESS);
            }
            Ok(())
        }
        fn register_filter(&self) -> Result<u8, NtStatus> {
            self.calls.borrow_mut().push("register_filter");
            if self.fail_register {
                Err(NtStatus::FLT_INSTANCE_ALTITUDE_COLLISION)
            } else {
                Ok(7)
            }
        }
        fn start_filtering(&self, _f: u8) -> Result<(), NtStatus> {
            self.calls.borrow_mut().push("start_filtering");
            if self.fail_start {
                Err(NtStatus::INSUFFICIENT_RESOURCES)
            } else {
                Ok(())
            }
        }
        fn unregister_filter(&self, f: u8) {
            assert_eq!(f, 7);
            self.calls.borrow_mut().push("unregister_filter");
        }
        fn cleanup(&self) {
            self.calls.borrow_mut().push("cleanup");
        }
        fn teardown_done_set(&self) {
            self.calls.borrow_mut().push("teardown_done_set");
        }
        fn wait_teardown_done(&self) {
            self.calls.borrow_mut().push("wait_teardown_done");
        }
        fn teardown_done_init(&self) {
            self.entry_calls.borrow_mut().push("teardown_done_init");
        }
        fn publish_driver_unload(&self) {
            self.entry_calls.borrow_mut().push("publish_driver_unload");
        }
    }

    #[test]
    fn driver_entry_builds_nothing_and_publishes_driver_unload_last() {
        let p = Fake::default();
        driver_entry(&p);
        assert!(p.calls().is_empty());
        assert_eq!(*p.entry_calls.borrow(), ["teardown_done_init", "publish_driver_unload"]);
        assert_eq!(p.state.borrow().stage(), Stage::Loaded);
    }

    #[test]
    fn register_then_teardown_undoes_everything_once() {
        let p = Fake::default();
        driver_entry(&p);
        assert_eq!(register(&p, 1), NtStatus::SUCCESS);
        assert_eq!(p.calls(), ["setup", "register_filter", "start_filtering"]);
        assert_eq!(p.state.borrow().phase(), PayloadPhase::FILTERING);
        assert_eq!(teardown(&p), NtStatus::SUCCESS);
        assert_eq!(teardown(&p), NtStatus::SUCCESS);
        assert_eq!(filter_unload(&p, FILTER_UNLOAD_MANDATORY), NtStatus::SUCCESS);
        assert_eq!((p.count("unregister_filter"), p.count("cleanup"), p.count("wait_settled")), (1, 1, 0));
        assert_eq!(p.state.borrow().stage(), Stage::TornDown);
        // The later teardowns waited for the first one to finish.
        assert_eq!((p.count("teardown_done_set"), p.count("wait_teardown_done")), (1, 2));
    }

    #[test]
    fn registration_is_refused_after_teardown_and_the_second_time() {
        let p = Fake::default();
        driver_entry(&p);
        teardown(&p);
        assert_eq!(register(&p, 1), NtStatus::DELETE_PENDING);
        assert_eq!(p.calls(), ["teardown_done_set"], "a refused registration builds nothing");
        let q = Fake::default();
        driver_entry(&q);
        assert_eq!(register(&q, 1), NtStatus::SUCCESS);
        assert_eq!(register(&q, 1), NtStatus::INVALID_DEVICE_REQUEST);
        assert_eq!(q.count("setup"), 1);
    }

    #[test]
    fn a_failed_registration_undoes_itself_inline_without_waiting() {
        let p = Fake { fail_register: true, ..Fake::default() };
        driver_entry(&p);
        assert_eq!(register(&p, 1), NtStatus::FLT_INSTANCE_ALTITUDE_COLLISION);
        assert_eq!(p.calls(), ["setup", "register_filter", "cleanup"]);
        assert_eq!(p.state.borrow().stage(), Stage::RegistrationFailed);
        teardown(&p);
        assert_eq!(p.count("cleanup"), 1);

        let q = Fake { fail_start: true, ..Fake::default() };
        driver_entry(&q);
        assert_eq!(register(&q, 1), NtStatus::INSUFFICIENT_RESOURCES);
        assert_eq!(q.calls(), ["setup", "register_filter", "start_filtering", "unregister_filter", "cleanup"]);
        teardown(&q);
        assert_eq!((q.count("unregister_filter"), q.count("cleanup"), q.count("wait_settled")), (1, 1, 0));
    }

    #[test]
    fn teardown_meeting_a_registration_waits_and_tears_nothing_half_built() {
        let p = Fake { teardown_during_setup: true, ..Fake::default() };
        driver_entry(&p);
        assert_eq!(register(&p, 1), NtStatus::DELETE_PENDING);
        // (The fake's settle wait returns at once; in the kernel it lasts
        // until the registration call, and its inline clean-up, returned.)
        assert_eq!(p.calls(), ["setup", "wait_settled", "teardown_done_set", "cleanup"]);
        assert_eq!(p.state.borrow().stage(), Stage::TornDown);
        assert!(!p.state.borrow().is_registered());
    }

    /// Defect 8: after teardown the payload's `log`/`publish` must find no
    /// loader to call (the loader may be gone once the teardown finished).
    #[test]
    fn teardown_forgets_the_loader_services_at_its_end() {
        let p = Fake::default();
        driver_entry(&p);
        register(&p, 1);
        assert_eq!(p.state.borrow().settle(), Some(1));
        teardown(&p);
        assert_eq!(p.state.borrow().settle(), None);
        assert_eq!(p.state.borrow().stage(), Stage::TornDown);
    }

    #[test]
    fn a_non_mandatory_unload_is_refused() {
        let p = Fake::default();
        driver_entry(&p);
        register(&p, 1);
        assert_eq!(filter_unload(&p, 0), NtStatus::FLT_DO_NOT_DETACH);
        assert!(p.state.borrow().is_registered());
        assert_eq!(p.count("unregister_filter"), 0);
    }

    /// Handover: the quiesce unregisters and keeps the set-up; the loader's
    /// teardown call then only cleans up, once; a foreign teardown in
    /// between waits for that call.
    #[test]
    fn quiesce_unregisters_and_the_teardown_finishes_the_rest() {
        let f = Fake::default();
        driver_entry(&f);
        assert_eq!(register(&f, 1), NtStatus::SUCCESS);
        assert!(may_export(&f));
        assert_eq!(quiesce(&f), NtStatus::SUCCESS);
        assert_eq!(f.count("unregister_filter"), 1);
        assert_eq!(f.count("cleanup"), 0, "the state stays for the final export");
        assert!(may_export(&f));
        assert_eq!(quiesce(&f), NtStatus::SUCCESS, "a second quiesce has nothing to do");
        assert_eq!(f.count("unregister_filter"), 1);
        assert_eq!(teardown(&f), NtStatus::SUCCESS);
        assert_eq!((f.count("unregister_filter"), f.count("cleanup")), (1, 1));
        assert!(!may_export(&f));
        assert_eq!(teardown(&f), NtStatus::SUCCESS);
        assert_eq!(f.count("cleanup"), 1);
    }
}
