//! The runner: one seed is one scenario, run step by step on virtual time.
//!
//! Each step advances the clock, maybe strikes a crash (now, or armed to hit a few I/O points
//! later: in the middle of a flush step or of recovery), then lets the scheduler pick one actor
//! — the flusher (`flush_step`) or a client — and checks the oracle. A crash drops the pipe as a
//! power loss would, reopens the store (recovery), and checks what survived. The run ends with a
//! quiet phase (faults off: every wait must resolve within a bounded number of flush steps) and
//! a close followed by a crash (everything acknowledged must be durable).

use std::collections::VecDeque;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use chunkpipe_core::{Config, Error, Instant, Journal, Pipe};

use crate::disk::{DATA_FILE, JOURNAL_FILE, SimDisk, SimStore, StoreBug};
use crate::faults::{Fault, FaultPlan, Profile};
use crate::oracle::{Model, TearReport, Violation};
use crate::rng::{SimRng, Stream};
use crate::workload::{Client, SimPipe};

/// How a campaign runs its seeds.
#[derive(Clone, Copy, Debug)]
pub struct SimOptions {
    /// Which faults may fire.
    pub profile: Profile,
    /// Scheduler steps per seed (before the quiet phase).
    pub steps: u32,
    /// A deliberate store bug, to show the oracle catches it.
    pub store_bug: Option<StoreBug>,
    /// The durability mode; `None` draws one per seed.
    pub journal: Option<Journal>,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            profile: Profile::All,
            steps: 400,
            store_bug: None,
            journal: None,
        }
    }
}

/// What one seed's run did.
#[derive(Clone, Debug, Default)]
pub struct SeedReport {
    /// Steps run (including the quiet phase).
    pub steps: u64,
    /// Crashes (power losses), including those during recovery.
    pub crashes: u64,
    /// Crashes that struck while a recovery was reopening the store.
    pub recovery_crashes: u64,
    /// Recoveries that failed on an injected I/O error and were retried.
    pub recovery_errors: u64,
    /// `checkpoint_step` calls beside the flusher that did work (wrote published batches in
    /// place or took a checkpoint).
    pub checkpointer_steps: u64,
    /// Recoveries (reopen + check).
    pub recoveries: u64,
    /// Faults fired, indexed by [`Fault::index`].
    pub fired: [u64; Fault::COUNT],
    /// Oracle checks made.
    pub checks: u64,
    /// Tears `Journal::Off` allows, reported.
    pub tears: TearReport,
    /// Virtual time simulated.
    pub simulated: Duration,
    /// Hash of the whole trace: equal for equal seeds.
    pub trace_hash: u64,
}

/// A seed whose run broke a promise.
#[derive(Clone, Debug)]
pub struct SimFailure {
    /// The seed.
    pub seed: u64,
    /// What broke.
    pub message: String,
    /// The last steps before it.
    pub trace: Vec<String>,
}

/// The per-seed setup, drawn from the seed's setup stream.
#[derive(Clone, Debug)]
struct Scenario {
    config: Config,
    sector_size: usize,
    clients: usize,
    plan: FaultPlan,
    /// A checkpointer runs `checkpoint_step` beside the flusher (else the flush step takes
    /// every checkpoint, or with `Journal::Off` every sync, itself).
    background_checkpoints: bool,
}

impl Scenario {
    fn for_seed(seed: u64, options: &SimOptions) -> Self {
        let mut rng = SimRng::stream(seed, Stream::Setup);
        let journal = options
            .journal
            .unwrap_or_else(|| rng.pick(&[Journal::Atomic, Journal::Off]));
        let staging = 2 + rng.below(15) as u32;
        // Small journals (halves of 1 to 4 full-staging records), so laps turn over often.
        let full_record = chunkpipe_core::journal::format::record_bytes(u64::from(staging), 4096);
        let journal_bytes = chunkpipe_core::journal::format::RECORD_AREA_START
            + 2 * full_record * rng.pick(&[1, 2, 4]);
        let config = Config::new()
            .with_chunk_size(4096)
            .with_initial_chunks(8 + rng.below(25))
            .with_staging_chunks(staging)
            .with_flush_interval(Duration::from_millis(1))
            .with_max_batch_delay(Duration::from_micros(rng.pick(&[0, 0, 20, 200])))
            .with_journal(journal)
            .with_journal_bytes(journal_bytes);
        Scenario {
            config,
            sector_size: rng.pick(&[512, 4096]),
            clients: 1 + rng.below(6) as usize,
            plan: FaultPlan::draw_for_seed(options.profile, &mut rng),
            background_checkpoints: rng.chance(0.5),
        }
    }
}

/// The last steps of a run, and a hash of all of them.
struct Trace {
    hasher: DefaultHasher,
    recent: VecDeque<String>,
}

impl Trace {
    const KEEP: usize = 40;

    fn record(&mut self, step: u64, event: String) {
        (step, &event).hash(&mut self.hasher);
        if self.recent.len() == Self::KEEP {
            self.recent.pop_front();
        }
        self.recent.push_back(format!("{step:>5}: {event}"));
    }
}

/// One seed's simulation.
struct Sim {
    seed: u64,
    scenario: Scenario,
    options: SimOptions,
    disk: Arc<SimDisk>,
    pipe: Option<SimPipe>,
    model: Model,
    clients: Vec<Client>,
    workload: SimRng,
    schedule: SimRng,
    now: Instant,
    step: u64,
    trace: Trace,
    report: SeedReport,
}

/// Runs one seed.
///
/// # Errors
/// The [`SimFailure`] describing the first broken promise.
pub fn run_seed(seed: u64, options: &SimOptions) -> Result<SeedReport, SimFailure> {
    let scenario = Scenario::for_seed(seed, options);
    let disk = Arc::new(SimDisk::new(scenario.sector_size));
    disk.set_crash_rng(SimRng::stream(seed, Stream::Crash));
    disk.set_bug(options.store_bug);
    let mut sim = Sim {
        seed,
        model: Model::new(
            0,
            scenario.config.chunk_size as usize,
            scenario.config.journal,
        ),
        clients: (0..scenario.clients).map(|_| Client::new()).collect(),
        scenario,
        options: *options,
        disk,
        pipe: None,
        workload: SimRng::stream(seed, Stream::Workload),
        schedule: SimRng::stream(seed, Stream::Schedule),
        now: Instant::from_nanos(1_000_000),
        step: 0,
        trace: Trace {
            hasher: DefaultHasher::new(),
            recent: VecDeque::new(),
        },
        report: SeedReport::default(),
    };
    // A panic anywhere (the core, the oracle) is a failure of this seed, with its trace.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sim.run()));
    let message = match outcome {
        Ok(Ok(())) => return Ok(sim.finish_report()),
        Ok(Err(violation)) => violation,
        Err(panic) => format!("panic: {}", panic_message(&*panic)),
    };
    Err(SimFailure {
        seed,
        message,
        trace: sim.trace.recent.into_iter().collect(),
    })
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(ToString::to_string)
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

impl Sim {
    fn run(&mut self) -> Result<(), Violation> {
        self.recover()?;
        let faults = (!self.scenario.plan.is_quiet()).then(|| {
            (
                self.scenario.plan.clone(),
                SimRng::stream(self.seed, Stream::Faults),
            )
        });
        self.disk.set_faults(faults);
        for _ in 0..self.options.steps {
            self.tick();
            self.maybe_crash();
            if self.disk.crashed() {
                self.recover()?;
                continue;
            }
            self.act()?;
            if self.disk.crashed() {
                self.recover()?;
            }
        }
        self.quiet_phase()?;
        self.close_and_crash()
    }

    fn pipe(&self) -> &SimPipe {
        self.pipe
            .as_ref()
            .expect("a pipe is open between recoveries")
    }

    fn tick(&mut self) {
        self.step += 1;
        let elapsed = 1_000 + self.schedule.below(50_000) + self.disk.take_latency_ns();
        self.now = Instant::from_nanos(self.now.as_nanos() + elapsed);
    }

    /// Crashes now, or arms a crash a few I/O points ahead, at the plan's crash rate. A
    /// poisoned pipe is restarted (power loss + recovery) the way its user would, sooner or later.
    fn maybe_crash(&mut self) {
        let rate = self.scenario.plan.probability(Fault::Crash);
        let poisoned = self.pipe().poisoned().is_some();
        if (rate > 0.0 && self.schedule.chance(rate)) || (poisoned && self.schedule.chance(0.1)) {
            if self.schedule.chance(0.5) {
                self.trace.record(self.step, "crash now".into());
                self.disk.crash();
            } else {
                let points = self.schedule.below(6) as u32;
                self.trace
                    .record(self.step, format!("crash armed in {points} I/O points"));
                self.disk.arm_crash(points);
            }
        }
    }

    /// The scheduler picks the flusher or one client for this step.
    fn act(&mut self) -> Result<(), Violation> {
        // A grow finished by a flush step lets every client use the new chunks at once.
        self.model.resize(self.pipe().len_chunks());
        if self.schedule.chance(0.3) {
            self.flush()?;
        } else if self.scenario.background_checkpoints && self.schedule.chance(0.2) {
            self.checkpoint()?;
        } else {
            let i = self.schedule.below(self.clients.len() as u64) as usize;
            let pipe = self
                .pipe
                .as_ref()
                .expect("a pipe is open between recoveries");
            let event = self.clients[i].step(pipe, &mut self.model, &mut self.workload);
            self.trace.record(
                self.step,
                format!("client {i}: {}", event.as_ref().unwrap_or_else(|v| v)),
            );
            event?;
        }
        let durable = self.pipe().durable_epoch();
        self.model.observe_durable(durable)
    }

    /// One flush step, checked: a failed step must not publish, and must poison.
    fn flush(&mut self) -> Result<(), Violation> {
        let before = self.pipe().durable_epoch();
        let result = self.pipe().flush_step(self.now);
        let after = self.pipe().durable_epoch();
        self.trace.record(self.step, format!("flush -> {result:?}"));
        self.model.observe_durable(after)?;
        match result {
            Ok(_) => Ok(()),
            Err(Error::Poisoned(_)) => self.model.flush_failed(before, after),
            Err(e) => Err(format!("flush_step failed with {e}, not a poisoning")),
        }
    }

    /// One checkpoint step, checked. `Journal::Atomic`: it never publishes, and a failed one
    /// must poison. `Journal::Off`: it syncs batches the flush step wrote in place, so it
    /// publishes — and is checked like a flush step.
    fn checkpoint(&mut self) -> Result<(), Violation> {
        let before = self.pipe().durable_epoch();
        let result = self.pipe().checkpoint_step(self.now);
        let after = self.pipe().durable_epoch();
        self.trace
            .record(self.step, format!("checkpoint -> {result:?}"));
        let journaled = self.scenario.config.journal == Journal::Atomic;
        if journaled && after != before {
            return Err("checkpoint_step changed the durable epoch".into());
        }
        self.model.observe_durable(after)?;
        match result {
            Ok(did_work) => {
                self.report.checkpointer_steps += u64::from(did_work);
                Ok(())
            }
            Err(Error::Poisoned(_)) if journaled && self.pipe().poisoned().is_some() => Ok(()),
            Err(Error::Poisoned(_)) => self.model.flush_failed(before, after),
            Err(e) => Err(format!("checkpoint_step failed with {e}, not a poisoning")),
        }
    }

    /// Power loss (unless the disk already crashed), then reopen and check what survived. A
    /// crash armed during the reopen strikes recovery itself; recovery is retried.
    fn recover(&mut self) -> Result<(), Violation> {
        if self.pipe.is_some() && !self.disk.crashed() {
            self.disk.crash();
        }
        if self.pipe.take().is_some() {
            self.report.crashes += 1;
        }
        let crash_rate = self.scenario.plan.probability(Fault::Crash);
        // Faults and crashes strike the first attempts only: the last one runs quiet, so
        // recovery always gets to finish (a real user retries the open the same way).
        const FAULTY_ATTEMPTS: u32 = 3;
        let mut faults = None;
        for attempt in 0..=FAULTY_ATTEMPTS {
            self.disk.restart();
            if attempt == FAULTY_ATTEMPTS {
                faults = self.disk.take_faults();
            } else if crash_rate > 0.0 && self.schedule.chance(0.3) {
                self.disk.arm_crash(self.schedule.below(3) as u32);
            }
            match self.open_pipe() {
                Ok(pipe) => {
                    self.disk.restart();
                    if faults.is_some() {
                        self.disk.set_faults(faults);
                    }
                    return self.check_recovered(pipe);
                }
                Err(_) if self.disk.crashed() => {
                    self.report.crashes += 1;
                    self.report.recovery_crashes += 1;
                    self.trace.record(self.step, "crash during recovery".into());
                }
                Err(e) if attempt < FAULTY_ATTEMPTS => {
                    self.report.recovery_errors += 1;
                    self.trace
                        .record(self.step, format!("recovery failed ({e}); retrying"));
                }
                Err(e) => return Err(format!("recovery failed without faults: {e}")),
            }
        }
        Err("recovery did not finish".into())
    }

    /// Opens the pipe over the disk's data file (and journal file in `Journal::Atomic`).
    fn open_pipe(&self) -> Result<SimPipe, Error> {
        let config = self.scenario.config;
        let data = SimStore::file(Arc::clone(&self.disk), DATA_FILE);
        match config.journal {
            Journal::Off => Pipe::new(data, config),
            _ => Pipe::with_journal(
                data,
                SimStore::file(Arc::clone(&self.disk), JOURNAL_FILE),
                config,
            ),
        }
    }

    fn check_recovered(&mut self, pipe: SimPipe) -> Result<(), Violation> {
        let chunk = self.scenario.config.chunk_size as usize;
        let len_chunks = pipe.len_chunks();
        self.model.set_recovered_epoch(pipe.durable_epoch());
        let disk = &self.disk;
        self.model.recovered(len_chunks, chunk, |c| {
            disk.cached_bytes(DATA_FILE, c as usize * chunk, chunk)
        })?;
        self.model.resize(len_chunks);
        self.report.recoveries += 1;
        self.trace
            .record(self.step, format!("recovered: {len_chunks} chunks"));
        for client in &mut self.clients {
            *client = Client::new();
        }
        self.pipe = Some(pipe);
        Ok(())
    }

    /// Faults off, no new operations: every outstanding wait must resolve within a bounded
    /// number of flush steps (and checkpoint steps, where a checkpointer runs): liveness.
    fn quiet_phase(&mut self) -> Result<(), Violation> {
        self.disk.set_faults(None);
        if self.disk.crashed() {
            self.recover()?;
        }
        for client in &mut self.clients {
            client.active = false;
        }
        const ROUNDS: usize = 12;
        for _ in 0..ROUNDS {
            // Each quiet round lasts at least the batch delay: the bound is in flusher cycles.
            self.tick();
            let delay = self.scenario.config.max_batch_delay;
            self.now = self.now.saturating_add(delay);
            self.flush()?;
            if self.scenario.background_checkpoints {
                // The checkpointer keeps running too: it writes published batches in place,
                // which frees the staging blocked writers wait for.
                self.checkpoint()?;
            }
            self.model.resize(self.pipe().len_chunks());
            for i in 0..self.clients.len() {
                let pipe = self
                    .pipe
                    .as_ref()
                    .expect("a pipe is open between recoveries");
                let event = self.clients[i].step(pipe, &mut self.model, &mut self.workload)?;
                self.trace
                    .record(self.step, format!("drain client {i}: {event}"));
            }
            if self.clients.iter().all(|c| !c.blocked()) {
                return Ok(());
            }
        }
        Err(format!(
            "liveness: clients still waiting after {ROUNDS} quiet flush steps: {:?}",
            self.clients
        ))
    }

    /// Closes the pipe (everything accepted becomes durable), then loses power: every write the
    /// pipe accepted must survive.
    fn close_and_crash(&mut self) -> Result<(), Violation> {
        let mut closed = self.pipe().try_close();
        for _ in 0..4 {
            if closed.is_ready() {
                break;
            }
            self.tick();
            self.flush()?;
            closed = self.pipe().try_close();
        }
        match closed {
            std::task::Poll::Ready(Ok(())) if self.model.failed() => {
                return Err("close returned Ok after a failed batch".into());
            }
            std::task::Poll::Ready(_) => {}
            std::task::Poll::Pending => {
                return Err("close did not finish within 4 quiet flush steps".into());
            }
        }
        self.trace.record(self.step, format!("closed: {closed:?}"));
        self.recover()
    }

    fn finish_report(mut self) -> SeedReport {
        self.report.steps = self.step;
        self.report.fired = self.disk.fired();
        self.report.fired[Fault::Crash.index()] = self.report.crashes;
        self.report.checks = self.model.checks;
        self.report.tears = self.model.tears;
        self.report.simulated = Duration::from_nanos(self.now.as_nanos());
        self.report.trace_hash = self.trace.hasher.finish();
        self.report
    }
}
