//! The payload's side of the exactly-once handover (`loader_protocol::handover`
//! has the rules): the gate the operation trampolines
//! (`kernel_sys::wrap::opwrap`) ask for every pre-operation callback, over
//! the loader's owner word, this payload's count of operations in flight
//! and the marks.
//!
//! With a loader older than ABI 1.2 there is no owner word: the payload
//! processes everything, uncounted, as before.
use kernel_sys::wrap::opwrap::Gate;
use kernel_sys::wrap::services::Handover;
use loader_protocol::handover::{decide, mark_when_room, Decision, InFlight, Marks};

struct LoaderMarks(Handover);

impl Marks for LoaderMarks {
    fn put(&self, op: usize) -> bool {
        self.0.put_mark(op)
    }
    fn take(&self, op: usize) -> bool {
        self.0.take_mark(op)
    }
}

struct Count(Handover);

impl InFlight for Count {
    fn enter(&self) {
        self.0.enter();
    }
    fn leave(&self) {
        self.0.leave();
    }
}

fn process(op: usize) -> bool {
    let Some(h) = Handover::current() else { return true };
    // One load of the owner word, counted in before it.
    match decide(|| h.load_word(), h.generation(), op, &LoaderMarks(h), &Count(h)) {
        Decision::Process => true,
        Decision::Pass => false,
        Decision::MarkThenPass => {
            // The old generation after the switch, and the table of marks is
            // full: marks go as operations reach the new generation, and the
            // loader closes the table with the new steady word. (Pre
            // callbacks run at or below APC_LEVEL, where waiting is allowed.)
            mark_when_room(op, &LoaderMarks(h), || kernel_sys::wrap::time::sleep_ms(1));
            false
        }
    }
}

fn done() {
    if let Some(h) = Handover::current() {
        h.leave();
    }
}

/// The gate of this image's trampolines.
pub static GATE: Gate = Gate { process, done };
