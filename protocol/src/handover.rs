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
//! callback of a handover-capable payload reads once (one atomic load):
//! which generation owns the operations (`owner`), and which generation, if
//! any, is attached *below* the owner's altitude in a handover (`lower`).
//! In the steady state (`lower == 0`) the owner processes and anybody else
//! passes: the whole cost on the I/O path is that load.
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
//! - **The owner counts what it processes in flight** (the loader's
//!   per-slot count): up by one before it looks at the word a second time,
//!   down by one in its post-operation callback, which the wrapper asks for
//!   on every operation the filter processes (calling the filter's own post
//!   callback only if it asked for one). A post callback comes after the
//!   lower instances' pre callbacks, so "the count is zero" means every
//!   operation the old generation processed has passed the new one.
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
//! The old generation increments its count *before* it reads the word the
//! second time and gives the operation up if the word flipped meanwhile, so
//! the loader's "zero" cannot be overtaken. With no room in the table the
//! old generation waits for room (marks are taken as operations reach the
//! new one); the new one never waits.
//!
//! The cost on the I/O path: one atomic load of the owner word for a
//! callback that passes; a callback that processes adds an increment, a
//! second load, and a decrement in the post callback. `model_handover`
//! shows that less is not enough: without the count, an operation the old
//! generation processed just before the switch can meet the new one after
//! it, and is processed twice.
//!
//! This relies on two properties of the Filter Manager: an operation that
//! has not yet reached an altitude meets an instance attached there
//! meanwhile (the instance list is walked as it is, not as it was when the
//! operation began), and post callbacks run after the lower instances' pre
//! callbacks. `tests/fltmgr` implements exactly that, and `model_handover`
//! checks the rules in every interleaving of operations with the switch.
use core::sync::atomic::{AtomicU32, Ordering};

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
    /// it answers: the operation is counted in flight until that post
    /// callback (or at once, if the filter completes it in its pre
    /// callback).
    Process,
    /// Let the operation through untouched (`FLT_PREOP_SUCCESS_NO_CALLBACK`).
    Pass,
    /// The old generation must mark the operation and the table is full:
    /// wait a little (marks are taken as operations reach the new
    /// generation) and decide again.
    NoRoom,
}

/// The marks the old generation leaves for the new one after the flip,
/// keyed by the operation's callback data address. Kernel: a fixed table in
/// the loader; any IRQL up to `DISPATCH_LEVEL`.
pub trait Marks {
    /// Records `op`; `false` if there is no room.
    fn put(&self, op: usize) -> bool;
    /// Removes `op`'s mark; `true` if it was there.
    fn take(&self, op: usize) -> bool;
}

/// A generation's count of operations it processes in flight (kernel: the
/// loader's per-slot counter; sequentially consistent).
pub trait InFlight {
    /// One more, before the owner reads the word again.
    fn enter(&self);
    /// One fewer: in the post callback, or when the operation is given up.
    fn leave(&self);
}

/// The decision of generation `me` on operation `op`. `load` reads the
/// owner word: once for a callback that passes, twice for the steady owner
/// when it processes. Every [`Decision::Process`] has entered `in_flight`;
/// the caller leaves it in the post callback it asks for.
pub fn decide(load: impl Fn() -> u32, me: u16, op: usize, marks: &impl Marks, in_flight: &impl InFlight) -> Decision {
    let first = load();
    let w = OwnerWord::decode(first);
    if w.lower == NO_GENERATION {
        if w.owner != me {
            return Decision::Pass;
        }
        in_flight.enter();
        let again = load();
        if again == first {
            return Decision::Process;
        }
        // The flip came in between: the operation is the new one's.
        in_flight.leave();
        return decide_flipped(OwnerWord::decode(again), me, op, marks, in_flight);
    }
    decide_flipped(w, me, op, marks, in_flight)
}

/// The decision during a handover (after the flip) or after it.
fn decide_flipped(w: OwnerWord, me: u16, op: usize, marks: &impl Marks, in_flight: &impl InFlight) -> Decision {
    if w.lower == NO_GENERATION {
        // The steady word for another generation: it processes.
        return Decision::Pass;
    }
    if w.lower == me {
        // The new generation: only what the old one passed to it (counted
        // like any operation it processes: it is the old one of the next
        // handover).
        if marks.take(op) {
            in_flight.enter();
            return Decision::Process;
        }
        return Decision::Pass;
    }
    // The old generation after the flip: pass, and say so.
    if marks.put(op) {
        Decision::Pass
    } else {
        Decision::NoRoom
    }
}

/// The loader's side of the owner word: where it lives and how it changes.
/// Every access is sequentially consistent: the owner's "count, then look
/// again" and the loader's "publish, then look at the count" must not pass
/// each other.
pub struct Owner {
    word: AtomicU32,
}

impl Owner {
    /// No generation owns anything yet.
    #[must_use]
    pub const fn new() -> Owner {
        Owner { word: AtomicU32::new(0) }
    }

    /// Publishes `w`.
    pub fn publish(&self, w: OwnerWord) {
        self.word.store(w.encode(), Ordering::Release);
    }

    /// The current word (the payload's one load per callback reads the same
    /// atomic through its address).
    pub fn load(&self) -> OwnerWord {
        OwnerWord::decode(self.word.load(Ordering::SeqCst))
    }

    /// The atomic itself, whose address the payloads are lent.
    pub fn atomic(&self) -> &AtomicU32 {
        &self.word
    }
}

impl Default for Owner {
    fn default() -> Self {
        Owner::new()
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
        room: usize,
        count: Cell<i32>,
    }
    impl Marks for Table {
        fn put(&self, op: usize) -> bool {
            let mut m = self.marks.borrow_mut();
            if m.len() >= self.room {
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
        Table { marks: RefCell::new(Vec::new()), room, count: Cell::new(0) }
    }
    fn once(w: OwnerWord) -> impl Fn() -> u32 {
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
        assert_eq!(t.count.get(), 1);
        assert!(t.marks.borrow().is_empty(), "no marks in the steady state");
    }

    /// The old generation (above) reads the word first, the new one later.
    /// Whatever words they read, exactly one processes, given the loader's
    /// rule that the steady word for the new one comes only once the old
    /// one's count is zero.
    #[test]
    #[allow(clippy::many_single_char_names)] // o(ld), n(ew), and the loop's
    fn each_operation_is_processed_once_whichever_words_the_two_read() {
        let (o, n) = (3u16, 4u16);
        let words = [OwnerWord::steady(o), OwnerWord::handover(o, n, true), OwnerWord::steady(n)];
        for (i, upper) in words.iter().enumerate() {
            for lower in &words[i..] {
                let t = table(4);
                let a = decide(once(*upper), o, 0x1000, &t, &t);
                if *lower == OwnerWord::steady(n) && t.count.get() > 0 {
                    continue; // not published while the old one counts an operation
                }
                let b = decide(once(*lower), n, 0x1000, &t, &t);
                let processed = [a, b].iter().filter(|d| **d == Decision::Process).count();
                assert_eq!(processed, 1, "upper read {upper:?}, lower read {lower:?}");
            }
        }
    }

    /// The owner counts the operation before it looks again: if the flip
    /// came in between, it gives the operation up (uncounted) and passes
    /// it on to the new generation with a mark.
    #[test]
    fn a_flip_between_count_and_look_is_seen() {
        let (o, n) = (3u16, 4u16);
        let t = table(4);
        let reads = Cell::new(0);
        let flipping = || {
            reads.set(reads.get() + 1);
            if reads.get() > 1 { OwnerWord::handover(o, n, true) } else { OwnerWord::steady(o) }.encode()
        };
        assert_eq!(decide(flipping, o, 9, &t, &t), Decision::Pass);
        assert_eq!(t.count.get(), 0);
        assert_eq!(decide(once(OwnerWord::handover(o, n, true)), n, 9, &t, &t), Decision::Process);
    }

    #[test]
    fn the_old_generation_waits_for_room_and_the_new_one_never_does() {
        let (o, n) = (3u16, 4u16);
        let t = table(0);
        assert_eq!(decide(once(OwnerWord::handover(o, n, true)), o, 1, &t, &t), Decision::NoRoom);
        assert_eq!(decide(once(OwnerWord::handover(o, n, true)), n, 1, &t, &t), Decision::Pass);
    }

    #[test]
    fn generations_skip_zero() {
        assert_eq!(next_generation(0), 1);
        assert_eq!(next_generation(1), 2);
        assert_eq!(next_generation(u16::MAX), 1);
    }
}
