//! The exactly-once handover (issue 12) in every interleaving: operations
//! in flight through two generations of a payload while the loader hands
//! over from the old one (above) to the new one (below).
//!
//! What is modelled:
//! - the loader's owner word and the marks table (the kernel's are the same
//!   logic over the same [`decide`] and [`Plan`]: `loader_protocol::handover`);
//! - a volume's filter stack as FltMgr walks it: an operation visits the
//!   instances attached when it reaches each altitude, highest first (an
//!   instance attached below meanwhile is met, one detached meanwhile is
//!   not); pre callbacks top-down, post callbacks bottom-up for the
//!   instances that asked for one;
//! - `FltUnregisterFilter` (the quiesce): no new callback into the
//!   instance, then a wait until none runs and no post callback is owed;
//! - each generation's state: the set of operations it processed, carried
//!   by the export/import pair (the snapshot replaces, the final merges).
//!
//! Properties: every operation is processed by exactly one generation
//! ("unfiltered" and "double" otherwise), its post callback runs in that
//! generation, after the handover the new generation's state holds every
//! operation processed by either ("lost update" otherwise), and every
//! callback read the owner word exactly once ("extra load" otherwise).
//!
//! The designs: the protocol (the `Plan` and `decide` the drivers run), and
//! twins that must be caught: break-before-make (the old generation is
//! unregistered before the new one attaches and owns anything: unfiltered
//! operations), make-before-break without an owner (both generations
//! process whatever reaches them: double processing), no in-flight count
//! and a count taken after the one load (double processing), the final
//! state exported before the quiesce (a lost update), and the first
//! draft's rule, which loads the word twice to process (an extra load),
//! and an old generation that processes an operation itself when the table
//! of marks is full (double processing: why it waits for room).
use crate::sync::{lock, pause, thread, Arc, Condvar, Mutex};
use loader_protocol::handover::{
    by_word, decide, mark_when_room, Decision, HandoverSteps, InFlight, Marks, OwnerWord, Plan,
};
use shared_abi::NtStatus;

/// The generations' numbers.
pub const OLD: u16 = 1;
/// The new generation's number.
pub const NEW: u16 = 2;

/// Which handover runs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Design {
    /// `loader_protocol::handover::Plan` and `decide`.
    Protocol,
    /// Twin: the old generation is unregistered first, then the new one
    /// attaches and owns everything.
    BreakBeforeMake,
    /// Twin: both attached at once, nobody reads an owner word.
    NoOwner,
    /// Twin: the final state is exported before the old generation is
    /// quiesced (its last operations' updates are lost).
    ExportBeforeQuiesce,
    /// Twin: the owner does not count what it processes, and the loader
    /// does not wait for the count (the owner word and the marks alone).
    NoCount,
    /// Twin: one load of the owner word too, but the callback counts itself
    /// in *after* the load (the loader can see zero in between).
    CountAfterLoad,
    /// Twin: the first draft's rule, exactly once but not within the cost
    /// rule: the steady owner counts in after a first load and looks again
    /// (two loads of the owner word).
    TwoLoads,
    /// Twin: with the table of marks full, the old generation processes the
    /// operation itself instead of waiting for room (the steady word can
    /// overtake the operation on its way to the new generation).
    OldProcessesWhenFull,
}

/// A run's configuration.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// The design under test.
    pub design: Design,
    /// Operation threads (one operation each).
    pub operations: usize,
    /// Room in the marks table (0: the old generation can never mark).
    pub mark_room: usize,
}

/// What an execution found.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Violation {
    /// An operation no generation processed.
    Unfiltered,
    /// An operation two generations processed.
    Double,
    /// A post callback in another generation than its pre callback.
    PrePostMismatch,
    /// The new generation's state misses an operation one of them processed.
    LostUpdate,
    /// A callback read the owner word more than once (issue 12: at most one
    /// atomic load per callback).
    ExtraLoad,
}

impl Violation {
    /// Its name in the printed line.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Violation::Unfiltered => "unfiltered",
            Violation::Double => "double",
            Violation::PrePostMismatch => "pre-post-mismatch",
            Violation::LostUpdate => "lost-update",
            Violation::ExtraLoad => "extra-load",
        }
    }
}

/// The sequentially consistent words.
#[derive(Default)]
struct Sc {
    word: u32,
    counts: [u32; 2],
}

/// One generation's instance on the volume.
#[derive(Default)]
struct Instance {
    attached: bool,
    /// `FltUnregisterFilter` began: no new callback.
    detaching: bool,
    /// Pre callbacks running plus post callbacks owed.
    in_flight: u32,
    /// The operations it processed (its state).
    state: Vec<usize>,
}

/// The world of one execution.
pub struct World {
    config: Config,
    /// The owner word and the per-generation counts of operations processed
    /// in flight. The kernel accesses them with sequentially consistent
    /// atomics; loom models `SeqCst` only as acquire/release, which would
    /// let a callback's "count in, then load" and the loader's "publish,
    /// then look at the count" pass each other. One lock gives these few
    /// words the single total order `SeqCst` promises.
    sc: Mutex<Sc>,
    /// The marks, and whether the loader closed the table.
    marks: Mutex<(Vec<usize>, bool)>,
    /// Signalled when a mark is taken or the table closes (an old callback
    /// waiting for room blocks on it: a spin would multiply loom's
    /// interleavings without adding any).
    room: Condvar,
    /// Index 0: the old generation (upper); 1: the new one (lower).
    instances: Mutex<[Instance; 2]>,
    /// Per operation: the generations that processed it, and the
    /// generations its post callbacks ran in.
    outcomes: Mutex<Vec<(Vec<u16>, Vec<u16>)>>,
    /// Operations one of whose callbacks loaded the owner word other than
    /// exactly once.
    extra_loads: Mutex<Vec<usize>>,
    /// What happened, in order (printed with a violation when
    /// `MODEL_TRACE` is set).
    trace: Mutex<Vec<String>>,
}

fn index(generation: u16) -> usize {
    usize::from(generation == NEW)
}

impl Marks for World {
    fn put(&self, op: usize) -> bool {
        let (marks, closed) = &mut *lock(&self.marks);
        if *closed {
            return true;
        }
        if marks.len() >= self.config.mark_room {
            return false;
        }
        marks.push(op);
        true
    }
    fn take(&self, op: usize) -> bool {
        let (marks, _) = &mut *lock(&self.marks);
        match marks.iter().position(|o| *o == op) {
            Some(i) => {
                marks.swap_remove(i);
                self.room.notify_all();
                true
            }
            None => false,
        }
    }
}

/// A generation's count; the `NoCount` twin's counts nothing.
struct Count<'a> {
    sc: &'a Mutex<Sc>,
    index: usize,
    counting: bool,
}

impl InFlight for Count<'_> {
    fn enter(&self) {
        if self.counting {
            lock(self.sc).counts[self.index] += 1;
        }
    }
    fn leave(&self) {
        if self.counting {
            lock(self.sc).counts[self.index] -= 1;
        }
    }
}

impl World {
    fn new(config: Config) -> Arc<World> {
        let mut instances: [Instance; 2] = Default::default();
        instances[0].attached = true;
        Arc::new(World {
            config,
            sc: Mutex::new(Sc { word: OwnerWord::steady(OLD).encode(), counts: [0, 0] }),
            marks: Mutex::new((Vec::new(), false)),
            room: Condvar::new(),
            instances: Mutex::new(instances),
            outcomes: Mutex::new(vec![(Vec::new(), Vec::new()); config.operations]),
            extra_loads: Mutex::new(Vec::new()),
            trace: Mutex::new(Vec::new()),
        })
    }

    /// FltMgr admits a callback into `generation`'s instance if it is
    /// attached and not detaching (counted in flight until it leaves).
    fn note(&self, what: impl FnOnce() -> String) {
        if std::env::var_os("MODEL_TRACE").is_some() {
            lock(&self.trace).push(what());
        }
    }

    fn enter(&self, generation: u16) -> bool {
        let mut inst = lock(&self.instances);
        let i = &mut inst[index(generation)];
        if i.attached && !i.detaching {
            i.in_flight += 1;
            true
        } else {
            false
        }
    }

    fn leave(&self, generation: u16) {
        lock(&self.instances)[index(generation)].in_flight -= 1;
    }

    /// One operation through the stack: the old instance's altitude first,
    /// then the new one's, each met only if attached when reached.
    fn operation(&self, op: usize) {
        let mut owed = Vec::new();
        for generation in [OLD, NEW] {
            pause();
            if !self.enter(generation) {
                continue;
            }
            let count = self.count(generation);
            let loads = std::cell::Cell::new(0u32);
            let load = || {
                loads.set(loads.get() + 1);
                // (std build: a chance to be overtaken between the count
                // and the load; loom explores it at the locks anyway.)
                pause();
                lock(&self.sc).word
            };
            let decision = match self.config.design {
                Design::NoOwner => Decision::Process,
                Design::CountAfterLoad => decide_count_after_load(load, generation, op, self, &count),
                Design::TwoLoads => decide_two_loads(load, generation, op, self, &count),
                Design::OldProcessesWhenFull => decide_old_processes_when_full(load, generation, op, self, &count),
                _ => decide(load, generation, op, self, &count),
            };
            if self.config.design != Design::NoOwner && loads.get() != 1 {
                lock(&self.extra_loads).push(op);
            }
            let decision = if decision == Decision::MarkThenPass {
                // The old generation waits for room (marks go as other
                // operations reach the new one; the loader closes the
                // table with the steady word), then passes.
                mark_when_room(op, self, || self.wait_for_room());
                Decision::Pass
            } else {
                decision
            };
            self.note(|| format!("op {op}: gen {generation} decides {decision:?}"));
            if decision == Decision::Pass {
                self.leave(generation);
                continue;
            }
            // The filter's own work (it updates its state).
            pause();
            lock(&self.instances)[index(generation)].state.push(op);
            lock(&self.outcomes)[op].0.push(generation);
            // The example filters ask for a post callback on what they
            // process.
            owed.push(generation);
        }
        pause();
        for generation in owed.into_iter().rev() {
            lock(&self.outcomes)[op].1.push(generation);
            if self.config.design != Design::NoOwner {
                self.count(generation).leave();
            }
            self.leave(generation);
        }
    }

    /// Blocks until the table has room or is closed.
    fn wait_for_room(&self) {
        let mut marks = lock(&self.marks);
        while !marks.1 && marks.0.len() >= self.config.mark_room {
            marks = self.room.wait(marks).expect("model lock poisoned");
        }
    }

    fn count(&self, generation: u16) -> Count<'_> {
        Count { sc: &self.sc, index: index(generation), counting: self.config.design != Design::NoCount }
    }

    fn attach(&self, generation: u16) {
        lock(&self.instances)[index(generation)].attached = true;
    }

    /// `FltUnregisterFilter`: no new callbacks, then wait for the ones in
    /// flight and the owed post callbacks.
    fn unregister(&self, generation: u16) {
        lock(&self.instances)[index(generation)].detaching = true;
        loop {
            if lock(&self.instances)[index(generation)].in_flight == 0 {
                break;
            }
            thread::yield_now();
        }
        let mut inst = lock(&self.instances);
        let i = &mut inst[index(generation)];
        i.attached = false;
        i.detaching = false;
    }
}

/// The `CountAfterLoad` twin's rule: [`decide`]'s, with the count taken
/// after the one load instead of before it.
fn decide_count_after_load(
    load: impl FnOnce() -> u32,
    me: u16,
    op: usize,
    marks: &World,
    in_flight: &Count<'_>,
) -> Decision {
    let w = OwnerWord::decode(load());
    pause();
    let decision = by_word(w, me, op, marks);
    if decision == Decision::Process {
        in_flight.enter();
    }
    decision
}

/// The `OldProcessesWhenFull` twin's rule: [`decide`]'s (counted in before
/// the one load), except that the old generation keeps an operation it
/// cannot mark and processes it (still counted, so a drain that has not
/// looked yet waits for it).
fn decide_old_processes_when_full(
    load: impl FnOnce() -> u32,
    me: u16,
    op: usize,
    marks: &World,
    in_flight: &Count<'_>,
) -> Decision {
    in_flight.enter();
    match by_word(OwnerWord::decode(load()), me, op, marks) {
        Decision::Pass => {
            in_flight.leave();
            Decision::Pass
        }
        Decision::Process | Decision::MarkThenPass => Decision::Process,
    }
}

/// The `TwoLoads` twin's rule: the steady owner counts in after its first
/// load and loads again to see whether the flip came in between.
fn decide_two_loads(load: impl Fn() -> u32, me: u16, op: usize, marks: &World, in_flight: &Count<'_>) -> Decision {
    let first = load();
    let mut w = OwnerWord::decode(first);
    if w.lower == loader_protocol::handover::NO_GENERATION {
        if w.owner != me {
            return Decision::Pass;
        }
        in_flight.enter();
        let again = load();
        if again == first {
            return Decision::Process;
        }
        in_flight.leave();
        w = OwnerWord::decode(again);
        if w.lower == loader_protocol::handover::NO_GENERATION {
            return Decision::Pass;
        }
    }
    if w.lower == me {
        if marks.take(op) {
            in_flight.enter();
            return Decision::Process;
        }
        return Decision::Pass;
    }
    if marks.put(op) {
        Decision::Pass
    } else {
        Decision::MarkThenPass
    }
}

/// The loader's steps over the model's two generations.
struct Steps<'a>(&'a World);

impl HandoverSteps for Steps<'_> {
    type Blob = Vec<usize>;
    fn publish(&self, word: OwnerWord) {
        self.0.note(|| format!("loader publishes {word:?}"));
        lock(&self.0.sc).word = word.encode();
    }
    fn close_marks(&self) {
        self.0.note(|| "loader closes the marks".to_string());
        lock(&self.0.marks).1 = true;
        self.0.room.notify_all();
    }
    fn wait_old_drained(&self) -> bool {
        while lock(&self.0.sc).counts[0] > 0 {
            thread::yield_now();
        }
        // (std build: a chance to be overtaken between seeing zero and
        // publishing the steady word.)
        pause();
        true
    }
    fn export_old(&self, _final_state: bool) -> Result<Vec<usize>, NtStatus> {
        Ok(lock(&self.0.instances)[0].state.clone())
    }
    fn import_new(&self, blob: &Vec<usize>, final_state: bool) -> NtStatus {
        let mut inst = lock(&self.0.instances);
        let state = &mut inst[1].state;
        if final_state {
            for op in blob {
                if !state.contains(op) {
                    state.push(*op);
                }
            }
        } else {
            // The snapshot arrives before the new generation processed
            // anything (it passes every operation until the flip).
            state.clone_from(blob);
        }
        NtStatus::SUCCESS
    }
    fn free(&self, _blob: Vec<usize>) {}
    fn quiesce_old(&self) -> NtStatus {
        self.0.unregister(OLD);
        NtStatus::SUCCESS
    }
}

/// The loader's side of one upgrade, as the design says.
fn handover(w: &World) {
    let steps = Steps(w);
    let plan = Plan { old: OLD, new: NEW, carry_state: true };
    match w.config.design {
        Design::Protocol
        | Design::NoOwner
        | Design::NoCount
        | Design::CountAfterLoad
        | Design::TwoLoads
        | Design::OldProcessesWhenFull => {
            // The new payload registers and attaches under the old steady
            // word, placed below the old one.
            w.attach(NEW);
            plan.transfer_initial(&steps).expect("the model's import never refuses");
            pause();
            plan.flip(&steps);
            pause();
            plan.finish(&steps);
        }
        Design::BreakBeforeMake => {
            w.unregister(OLD);
            let blob = steps.export_old(true).expect("export");
            pause();
            w.attach(NEW);
            steps.import_new(&blob, false);
            steps.publish(OwnerWord::steady(NEW));
        }
        Design::ExportBeforeQuiesce => {
            w.attach(NEW);
            plan.transfer_initial(&steps).expect("import");
            plan.flip(&steps);
            pause();
            let blob = steps.export_old(true).expect("export");
            steps.wait_old_drained();
            steps.publish(OwnerWord::steady(NEW));
            steps.close_marks();
            steps.quiesce_old();
            steps.import_new(&blob, true);
        }
    }
}

/// Runs one execution; returns what it violated.
#[must_use]
pub fn run(config: Config) -> Vec<Violation> {
    let w = World::new(config);
    let ops: Vec<_> = (0..config.operations)
        .map(|op| {
            let w = w.clone();
            thread::spawn(move || w.operation(op))
        })
        .collect();
    handover(&w);
    for t in ops {
        t.join().expect("operation thread");
    }
    let mut found = Vec::new();
    let outcomes = lock(&w.outcomes).clone();
    let trace = lock(&w.trace).clone();
    let new_state = lock(&w.instances)[1].state.clone();
    found.extend(lock(&w.extra_loads).iter().map(|_| Violation::ExtraLoad));
    for (op, (pre, post)) in outcomes.iter().enumerate() {
        match pre.len() {
            0 => found.push(Violation::Unfiltered),
            1 => {}
            _ => found.push(Violation::Double),
        }
        let mut post_sorted = post.clone();
        post_sorted.sort_unstable();
        let mut pre_sorted = pre.clone();
        pre_sorted.sort_unstable();
        if pre_sorted != post_sorted {
            found.push(Violation::PrePostMismatch);
        }
        if !pre.is_empty() && !new_state.contains(&op) {
            found.push(Violation::LostUpdate);
        }
    }
    if !found.is_empty() && !trace.is_empty() {
        println!("handover trace for {found:?}:\n  {}", trace.join("\n  "));
    }
    found
}

/// Explores `config` (loom: every interleaving up to the preemption bound;
/// std: `MODEL_ITERATIONS` seeded runs) and prints the suite's line.
/// Returns the count of executions and of violations of `property`.
pub fn check(name: &'static str, config: Config, property: Violation, expect_clean: bool) -> (usize, usize) {
    use std::sync::atomic::{AtomicUsize, Ordering as O};
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    static HITS: AtomicUsize = AtomicUsize::new(0);
    static OTHER: AtomicUsize = AtomicUsize::new(0);
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _serial = SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    RUNS.store(0, O::Relaxed);
    HITS.store(0, O::Relaxed);
    OTHER.store(0, O::Relaxed);
    let started = std::time::Instant::now();
    let body = move || {
        let found = run(config);
        RUNS.fetch_add(1, O::Relaxed);
        HITS.fetch_add(found.iter().filter(|v| **v == property).count(), O::Relaxed);
        OTHER.fetch_add(found.iter().filter(|v| **v != property).count(), O::Relaxed);
        if expect_clean {
            assert!(found.is_empty(), "{name}: violations {found:?}");
        }
    };
    #[cfg(loom)]
    let mode = {
        let bound = std::env::var("MODEL_PREEMPTIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(bound);
        builder.max_branches = 100_000;
        builder.check(body);
        format!("loom(preemption-bound={bound})")
    };
    #[cfg(not(loom))]
    let mode = {
        let n: u64 = std::env::var("MODEL_ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(300);
        let n = if expect_clean { n } else { n * 20 };
        let seed = crate::explore::run_seed();
        println!("model seed: MODEL_SEED={seed} (replays this run's random choices)");
        for i in 0..n {
            crate::sync::seed_execution(seed, i);
            body();
            if !expect_clean && HITS.load(O::Relaxed) > 0 {
                break;
            }
        }
        "std-random".to_string()
    };
    let (runs, hits, other) = (RUNS.load(O::Relaxed), HITS.load(O::Relaxed), OTHER.load(O::Relaxed));
    println!(
        "model {name}: mode={mode} interleavings={runs} violations={} property={} {}={hits} in {:.1}s",
        hits + other,
        property.name(),
        property.name(),
        started.elapsed().as_secs_f64()
    );
    (runs, hits)
}
