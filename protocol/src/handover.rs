//! Exactly-once handover between two generations of a payload.
//!
//! During an upgrade both generations are attached for a while: the new one
//! (`n`) attaches its instances while the old one (`o`) still filters
//! ("make before break"). Every operation must be processed by exactly one of
//! them, and an operation whose pre-operation callback ran in a generation
//! gets its post-operation callback in that generation (FltMgr calls a post
//! callback on the instance whose pre callback asked for it, so the second
//! half holds by construction once the first does).
//!
//! # The owner word
//!
//! The loader owns one word, [`OwnerWord`], that every pre-operation
//! callback of a handover-capable payload reads exactly once (one atomic
//! load): which generation owns the operations (`owner`), and which
//! generation, if any, is attached *below* the owner's altitude in a
//! handover (`lower`). In the steady state (`lower == 0`) the owner
//! processes and anybody else passes.
//!
//! # Why one word is not enough: the count and the marks
//!
//! The two generations see one operation at two different moments: FltMgr
//! calls pre-operation callbacks from the highest altitude down. If the word
//! changes between the two reads, they disagree: the upper one read "old",
//! the lower one read "new", and the operation is processed twice or not at
//! all. So the new generation is attached *below* the old one (the loader
//! gives it a lower altitude), and two more things make the agreement:
//!
//! - **Every callback counts itself in before it reads the word** (the
//!   loader's per-slot count of operations in flight). A callback that
//!   passes counts itself out at once; one that processes stays counted
//!   until its post-operation callback, which the wrapper asks for on every
//!   operation the filter processes (calling the filter's own post callback
//!   only if it asked for one). A post callback comes after the lower
//!   instances' pre callbacks, so "the count is zero" means every operation
//!   the old generation processed has passed the new one.
//! - **After the flip the old generation marks what it passes**, in a table
//!   keyed by the operation's callback data address; the new one processes
//!   exactly what it finds marked.
//!
//! The steps:
//!
//! 1. The new generation registers and attaches below the old one under the
//!    old steady word: it passes everything, the old one processes
//!    everything.
//! 2. The flip (`owner: n, lower: n`): the old generation marks each
//!    operation and passes it; the new one processes the marked ones. An
//!    unmarked operation at the new one was processed by the old one.
//! 3. The loader waits until the old generation's count is zero, then
//!    publishes the steady word for the new generation: it processes
//!    everything, the old one passes everything. A mark still on its way
//!    agrees with the steady rule.
//! 4. Only then is the old generation unregistered (`FltUnregisterFilter`),
//!    its final state exported and merged into the new one, and its image
//!    torn down. An operation that skips the old instance from then on
//!    meets the new one under the steady word.
//!
//! Why counting in *before* the one load is enough: the count and the word
//! are sequentially consistent. An old-generation callback that read the
//! word before the flip had counted itself in before that read, so before
//! the loader's flip, so before the loader's first look at the count: the
//! loader cannot see zero until that operation's post callback, which is
//! after the new generation's pre callback. Counting in *after* the load
//! is not enough (the `CountAfterLoad` twin of `model_handover`): the
//! loader can look at the count between the old callback's load and its
//! increment, see zero, publish the steady word, and the operation is then
//! processed by both. Callbacks that pass add transient counts; they only
//! make the loader wait a little longer.
//!
//! With no room in the table of marks the old generation still marks the
//! operation: it waits for room without reading the word again (marks go
//! as operations reach the new generation). It cannot wait for good: once
//! the loader publishes the new steady word it closes the table, and a put
//! then answers "recorded" (the new generation processes everything under
//! that word). Processing the operation itself instead would not be safe:
//! an old callback can count itself in *after* the loader saw zero and
//! still read the handover word, and the steady word can follow before the
//! operation reaches the new generation. The loader counts these waits
//! (`HandoverStatus::unmarked`).
//!
//! The cost on the I/O path: one atomic load of the owner word per
//! callback; besides, an increment and a decrement of the generation's
//! count (in the post callback for an operation it processes).
//! `model_handover` shows that less is not enough: without the count, an
//! operation the old generation processed just before the switch can meet
//! the new one after it, and is processed twice.
//!
//! This relies on two properties of the Filter Manager: an operation that
//! has not yet reached an altitude meets an instance attached there
//! meanwhile (the instance list is walked as it is, not as it was when the
//! operation began), and post callbacks run after the lower instances' pre
//! callbacks. `tests/fltmgr` implements exactly that, and `model_handover`
//! checks the rules in every interleaving of operations with the switch.

/// "No generation": a payload that has not been given one, or no `lower`.
pub const NO_GENERATION: u16 = 0;

/// The loader's owner word, decoded.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct OwnerWord {
    /// The generation that processes operations.
    pub owner: u16,
    /// The new generation attached below the old owner during a handover,
    /// or [`NO_GENERATION`] in the steady state.
    pub lower: u16,
}

impl OwnerWord {
    /// The steady state: `owner` processes, nobody else does.
    #[must_use]
    pub const fn steady(owner: u16) -> OwnerWord {
        OwnerWord { owner, lower: NO_GENERATION }
    }

    /// A handover from `old` to `new` before (`flipped == false`) or after
    /// the flip.
    #[must_use]
    pub const fn handover(old: u16, new: u16, flipped: bool) -> OwnerWord {
        OwnerWord { owner: if flipped { new } else { old }, lower: new }
    }

    /// The word as stored.
    #[must_use]
    pub const fn encode(self) -> u32 {
        (self.owner as u32) | ((self.lower as u32) << 16)
    }

    /// The word as loaded.
    #[must_use]
    pub const fn decode(word: u32) -> OwnerWord {
        #[allow(clippy::cast_possible_truncation)] // the two halves, by design
        OwnerWord { owner: word as u16, lower: (word >> 16) as u16 }
    }
}

/// What one generation's pre-operation callback does with one operation.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Decision {
    /// Call the filter's own callback, and ask for a post callback whatever
    /// it answers: the operation stays counted in flight until that post
    /// callback (or until the pre callback returns, if the filter completes
    /// the operation there).
    Process,
    /// Let the operation through untouched (`FLT_PREOP_SUCCESS_NO_CALLBACK`);
    /// it is no longer counted.
    Pass,
    /// The old generation after the flip found the table of marks full: it
    /// must still mark the operation ([`mark_when_room`]: marks go as
    /// operations reach the new generation, and the loader closes the table
    /// when it publishes the new steady word), then pass it. No longer
    /// counted; the owner word is not read again.
    MarkThenPass,
}

/// The marks the old generation leaves for the new one after the flip,
/// keyed by the operation's callback data address. Kernel: a fixed table in
/// the loader; any IRQL up to `DISPATCH_LEVEL`.
pub trait Marks {
    /// Records `op`. `true` if it was recorded, or if marks are no longer
    /// needed (the loader closed the table: the new steady word is
    /// published); `false` if there is no room yet.
    fn put(&self, op: usize) -> bool;
    /// Removes `op`'s mark; `true` if it was there.
    fn take(&self, op: usize) -> bool;
}

/// A generation's count of operations in flight (kernel: the loader's
/// per-slot counter; sequentially consistent).
pub trait InFlight {
    /// One more: before the callback reads the owner word.
    fn enter(&self);
    /// One fewer: in the post callback of a processed operation, or as soon
    /// as the callback decided to pass.
    fn leave(&self);
}

/// The decision of generation `me` on operation `op`. Every callback counts
/// itself in (`in_flight.enter`) and then reads the owner word exactly once
/// (`load`); a [`Decision::Process`] stays counted until the caller leaves
/// in the post callback it asks for, any other decision has counted itself
/// out again.
///
/// - Steady word: the owner processes, everybody else passes.
/// - Handover word, the new generation (`lower == me`): it processes what
///   the old one marked, and passes the rest (the old one processed it).
/// - Handover word, the old generation: it marks the operation and passes
///   it ([`Decision::MarkThenPass`] if the table is full).
pub fn decide(
    load: impl FnOnce() -> u32,
    me: u16,
    op: usize,
    marks: &impl Marks,
    in_flight: &impl InFlight,
) -> Decision {
    in_flight.enter();
    let decision = by_word(OwnerWord::decode(load()), me, op, marks);
    if decision != Decision::Process {
        in_flight.leave();
    }
    decision
}

/// What word `w` tells generation `me` to do with operation `op`, the count
/// aside (taking or putting its mark as the word says): [`decide`]'s core.
pub fn by_word(w: OwnerWord, me: u16, op: usize, marks: &impl Marks) -> Decision {
    if w.lower == NO_GENERATION {
        if w.owner == me {
            Decision::Process
        } else {
            Decision::Pass
        }
    } else if w.lower == me {
        if marks.take(op) {
            Decision::Process
        } else {
            Decision::Pass
        }
    } else if marks.put(op) {
        Decision::Pass
    } else {
        Decision::MarkThenPass
    }
}

/// After [`Decision::MarkThenPass`]: waits (`wait`, between tries) until
/// the mark is recorded or no longer needed. Bounded by the handover: the
/// new generation takes marks as operations reach it, and the loader closes
/// the table when it publishes the new steady word.
pub fn mark_when_room(op: usize, marks: &impl Marks, mut wait: impl FnMut()) {
    while !marks.put(op) {
        wait();
    }
}

/// What the loader does at each step of a handover, over its payloads.
/// The loader implements it over its referenced images; the model over its
/// simulated generations. The order of the calls is [`Plan`]'s, one
/// implementation for both.
pub trait HandoverSteps {
    /// A state blob the loader holds between an export and an import.
    type Blob;
    /// Stores the owner word (sequentially consistent).
    fn publish(&self, word: OwnerWord);
    /// Closes the table of marks after the new steady word is published:
    /// from then on a put answers "recorded" without recording (an old
    /// callback still waiting for room passes, and the new generation
    /// processes under the steady word). The loader opens it again (empty)
    /// before the next handover's new payload registers.
    fn close_marks(&self);
    /// Waits until the old generation's count of operations in flight is
    /// zero (step 3 of the module docs). `false` if it gave up (an
    /// operation the filter pended never came back); the handover is then
    /// not exact.
    fn wait_old_drained(&self) -> bool;
    /// The old generation's state: the snapshot before the switch, or
    /// (`final_state`) everything after it stopped processing.
    fn export_old(&self, final_state: bool) -> Result<Self::Blob, shared_abi::NtStatus>;
    /// Gives the new generation the blob; its refusal is returned.
    fn import_new(&self, blob: &Self::Blob, final_state: bool) -> shared_abi::NtStatus;
    /// Frees a blob.
    fn free(&self, blob: Self::Blob);
    /// Unregisters the old generation's filter (waits for its callbacks in
    /// flight and its owed post callbacks), keeping its state. May block
    /// without bound (seed 002): the loader calls it on a retire worker.
    fn quiesce_old(&self) -> shared_abi::NtStatus;
}

/// One upgrade's handover from generation `old` to `new`, both ABI 1.2
/// payloads. The loader drives it: the new payload registers (placed below
/// the old one, under the old steady word), then [`Plan::transfer_initial`],
/// the loader's switch, [`Plan::flip`], and on the old slot's retire worker
/// [`Plan::finish`], before the old payload's teardown.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Plan {
    /// The old generation.
    pub old: u16,
    /// The new generation.
    pub new: u16,
    /// Both payloads have the state entries: carry the state across.
    pub carry_state: bool,
}

/// How [`Plan::finish`] ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Finished {
    /// Every operation the old generation processed had passed the new one
    /// before the steady word (else the loader gave up waiting and the
    /// handover was not exact).
    pub drained: bool,
    /// The quiesce's status (the old payload's unregistration).
    pub quiesce: shared_abi::NtStatus,
    /// The final state transfer: `None` if there was none to do.
    pub state: Option<shared_abi::NtStatus>,
}

impl Plan {
    /// Before the switch, with the new payload attached and passing
    /// everything: the old generation's snapshot goes to the new one. A
    /// refusal is returned (the caller retires the new payload; the old one
    /// stays active with its state).
    pub fn transfer_initial(&self, p: &impl HandoverSteps) -> Result<(), shared_abi::NtStatus> {
        if !self.carry_state {
            return Ok(());
        }
        let blob = p.export_old(false)?;
        let status = p.import_new(&blob, false);
        p.free(blob);
        if status.is_success() {
            Ok(())
        } else {
            Err(status)
        }
    }

    /// Step 2, the switch for the operations.
    pub fn flip(&self, p: &impl HandoverSteps) {
        p.publish(OwnerWord::handover(self.old, self.new, true));
    }

    /// Steps 3 and 4, on the old slot's retire worker before its teardown.
    pub fn finish(&self, p: &impl HandoverSteps) -> Finished {
        let drained = p.wait_old_drained();
        p.publish(OwnerWord::steady(self.new));
        p.close_marks();
        let quiesce = p.quiesce_old();
        let state = if self.carry_state && quiesce.is_success() {
            Some(match p.export_old(true) {
                Ok(blob) => {
                    let status = p.import_new(&blob, true);
                    p.free(blob);
                    status
                }
                Err(status) => status,
            })
        } else {
            None
        };
        Finished { drained, quiesce, state }
    }
}

/// The next generation number after `g`: never [`NO_GENERATION`].
#[must_use]
pub const fn next_generation(g: u16) -> u16 {
    match g.wrapping_add(1) {
        NO_GENERATION => 1,
        n => n,
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::cell::{Cell, RefCell};
    use std::vec::Vec;

    struct Table {
        marks: RefCell<Vec<usize>>,
        room: Cell<usize>,
        closed: Cell<bool>,
        count: Cell<i32>,
    }
    impl Marks for Table {
        fn put(&self, op: usize) -> bool {
            if self.closed.get() {
                return true;
            }
            let mut m = self.marks.borrow_mut();
            if m.len() >= self.room.get() {
                return false;
            }
            m.push(op);
            true
        }
        fn take(&self, op: usize) -> bool {
            let mut m = self.marks.borrow_mut();
            match m.iter().position(|o| *o == op) {
                Some(i) => {
                    m.swap_remove(i);
                    true
                }
                None => false,
            }
        }
    }
    impl InFlight for Table {
        fn enter(&self) {
            self.count.set(self.count.get() + 1);
        }
        fn leave(&self) {
            self.count.set(self.count.get() - 1);
        }
    }
    fn table(room: usize) -> Table {
        Table { marks: RefCell::new(Vec::new()), room: Cell::new(room), closed: Cell::new(false), count: Cell::new(0) }
    }
    fn once(w: OwnerWord) -> impl FnOnce() -> u32 {
        move || w.encode()
    }

    #[test]
    fn the_word_round_trips() {
        for w in [OwnerWord::steady(7), OwnerWord::handover(7, 8, false), OwnerWord::handover(65535, 1, true)] {
            assert_eq!(OwnerWord::decode(w.encode()), w);
        }
        assert_eq!(OwnerWord::steady(3).lower, NO_GENERATION);
    }

    #[test]
    fn the_steady_owner_processes_counted_and_nobody_else() {
        let t = table(4);
        let w = OwnerWord::steady(5);
        assert_eq!(decide(once(w), 5, 1, &t, &t), Decision::Process);
        assert_eq!(t.count.get(), 1, "a processed operation is counted until its post callback");
        assert_eq!(decide(once(w), 6, 1, &t, &t), Decision::Pass);
        assert_eq!(t.count.get(), 1, "a pass counts itself out again");
        assert!(t.marks.borrow().is_empty(), "no marks in the steady state");
    }

    /// Issue 12's cost rule, over every word a callback can read, every
    /// role and a full and an empty table: exactly one load of the owner
    /// word, counted in before it, and counted out unless it processes.
    #[test]
    fn every_callback_loads_the_word_exactly_once_after_counting_in() {
        let (o, n, other) = (3u16, 4u16, 9u16);
        let words = [
            OwnerWord::steady(o),
            OwnerWord::steady(n),
            OwnerWord::handover(o, n, false),
            OwnerWord::handover(o, n, true),
            OwnerWord::steady(NO_GENERATION),
        ];
        for w in words {
            for me in [o, n, other] {
                for room in [0, 4] {
                    for marked in [false, true] {
                        let t = table(room);
                        if marked {
                            t.marks.borrow_mut().push(7);
                        }
                        let loads = Cell::new(0);
                        let count_at_load = Cell::new(-1);
                        let load = || {
                            loads.set(loads.get() + 1);
                            count_at_load.set(t.count.get());
                            w.encode()
                        };
                        let d = decide(load, me, 7, &t, &t);
                        assert_eq!(loads.get(), 1, "{w:?} me={me} room={room}: loads");
                        assert_eq!(count_at_load.get(), 1, "{w:?} me={me}: counted in before the load");
                        let expected = i32::from(d == Decision::Process);
                        assert_eq!(t.count.get(), expected, "{w:?} me={me} {d:?}: count after the decision");
                    }
                }
            }
        }
    }

    /// The old generation (above) reads the word first, the new one later.
    /// Whatever words they read, exactly one processes, given the loader's
    /// rule that the steady word for the new one comes only once the old
    /// one's count is zero; with room for marks and without.
    #[test]
    #[allow(clippy::many_single_char_names)] // o(ld), n(ew), and the loop's
    fn each_operation_is_processed_once_whichever_words_the_two_read() {
        let (o, n) = (3u16, 4u16);
        let words = [OwnerWord::steady(o), OwnerWord::handover(o, n, true), OwnerWord::steady(n)];
        for room in [4] {
            for (i, upper) in words.iter().enumerate() {
                for lower in &words[i..] {
                    let old = table(room);
                    let new = table(room);
                    let a = decide(once(*upper), o, 0x1000, &old, &old);
                    if *lower == OwnerWord::steady(n) && old.count.get() > 0 {
                        continue; // not published while the old one counts an operation
                    }
                    // One table of marks, the loader's; two counts.
                    core::mem::swap(&mut *new.marks.borrow_mut(), &mut *old.marks.borrow_mut());
                    let b = decide(once(*lower), n, 0x1000, &new, &new);
                    let processed = [a, b].iter().filter(|d| **d == Decision::Process).count();
                    assert_eq!(processed, 1, "room {room}: upper read {upper:?}, lower read {lower:?}");
                }
            }
        }
    }

    /// With the table full the old generation waits for room without
    /// reading the word again; room comes as the new generation takes marks,
    /// or the loader closes the table with the steady word.
    #[test]
    fn with_no_room_the_old_generation_marks_once_there_is_room_or_the_table_closes() {
        let (o, n) = (3u16, 4u16);
        let flipped = OwnerWord::handover(o, n, true);
        let t = table(0);
        assert_eq!(decide(once(flipped), o, 1, &t, &t), Decision::MarkThenPass);
        assert_eq!(t.count.get(), 0, "no longer counted");
        let waits = Cell::new(0);
        mark_when_room(1, &t, || {
            waits.set(waits.get() + 1);
            if waits.get() == 3 {
                t.room.set(1); // an operation reached the new generation
            }
        });
        assert_eq!(waits.get(), 3);
        assert_eq!(decide(once(flipped), n, 1, &t, &t), Decision::Process, "the mark arrived");

        let t = table(0);
        assert_eq!(decide(once(flipped), o, 2, &t, &t), Decision::MarkThenPass);
        mark_when_room(2, &t, || t.closed.set(true));
        assert!(t.marks.borrow().is_empty(), "a closed table records nothing");
        let steady = OwnerWord::steady(n);
        assert_eq!(decide(once(steady), n, 2, &t, &t), Decision::Process, "the steady word: the new one processes");
    }

    #[test]
    fn after_the_flip_the_old_generation_marks_and_the_new_one_processes_the_mark() {
        let (o, n) = (3u16, 4u16);
        let t = table(4);
        let flipped = OwnerWord::handover(o, n, true);
        assert_eq!(decide(once(flipped), o, 9, &t, &t), Decision::Pass);
        assert_eq!(t.count.get(), 0);
        assert_eq!(t.marks.borrow().as_slice(), &[9]);
        assert_eq!(decide(once(flipped), n, 9, &t, &t), Decision::Process);
        assert!(t.marks.borrow().is_empty(), "the mark is taken");
        assert_eq!(decide(once(flipped), n, 10, &t, &t), Decision::Pass, "unmarked: the old one processed it");
    }

    #[test]
    fn generations_skip_zero() {
        assert_eq!(next_generation(0), 1);
        assert_eq!(next_generation(1), 2);
        assert_eq!(next_generation(u16::MAX), 1);
    }
}
