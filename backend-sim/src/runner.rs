//! The runner: one seed is one scenario, run step by step on virtual time.
//!
//! Each step advances the clock, maybe strikes a crash (now, or armed to hit a few I/O points
//! later: in the middle of a step or of recovery), then lets the scheduler pick one actor — the
//! committer (`flush_step`), the background (`background_step`) or a client — and checks the
//! oracle. A crash drops the pipe as a
//! power loss would, reopens the store (recovery), and checks what survived. The run ends with a
//! quiet phase (faults off: every wait must resolve within a bounded number of flush steps) and
//! a close followed by a crash (everything acknowledged must be durable).

use std::collections::VecDeque;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use chunkpipe_core::{Config, Create, Error, Instant, Journal, Pipe};

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
    /// `background_step` calls that had something to wake (a batch in place that a writer
    /// waited for, a sync, a commit, a settled close).
    pub background_steps: u64,
    /// Recoveries (reopen + check).
    pub recoveries: u64,
    /// Faults fired, indexed by [`Fault::index`].
    pub fired: [u64; Fault::COUNT],
    /// Oracle checks made.
    pub checks: u64,
    /// Tears `Journal::Off` allows, reported.
    pub tears: TearReport,
    /// Media damage the pipe reported (`Corrupt`, or a read error from an unreadable sector):
    /// at a read, or at an open (the run then goes on over a fresh disk, as a user restores a
    /// backup).
    pub damage_reported: DamageReported,
    /// Recoveries that lost the newest acknowledged batch because a media fault struck the
    /// journal after it was published and nothing was appended behind it: the one case no
    /// single-copy log can tell from a torn tail (the journal format docs say why).
    pub newest_record_losses: u64,
    /// Virtual time simulated.
    pub simulated: Duration,
    /// Hash of the whole trace: equal for equal seeds.
    pub trace_hash: u64,
}

/// Where the pipe reported media damage.
#[derive(Clone, Copy, Debug, Default)]
pub struct DamageReported {
    /// At a read.
    pub at_read: u64,
    /// At an open (recovery refused).
    pub at_open: u64,
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
    /// The chance that a step is the background's: it keeps up with the commits, or falls
    /// behind them (then commits write batches in place and checkpoint themselves, and
    /// `Journal::Off` batches wait for a sync longer).
    background_share: f64,
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
            .with_journal_bytes(journal_bytes)
            .with_journal_id(seed | 1);
        Scenario {
            config,
            sector_size: rng.pick(&[512, 4096]),
            clients: 1 + rng.below(6) as usize,
            plan: FaultPlan::draw_for_seed(options.profile, journal == Journal::Atomic, &mut rng),
            background_share: rng.pick(&[0.01, 0.05, 0.2]),
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
    /// The pipe on this disk was created (opens from now on require it: `Create::Never`).
    created: bool,
    /// Media faults seen on the current disk, per file (to notice new ones after each step).
    media_seen: [u64; 2],
    /// Faults fired on the current disk, by kind, at the last look.
    media_fired: [u64; Fault::COUNT],
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
        created: false,
        media_seen: [0; 2],
        media_fired: [0; Fault::COUNT],
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
            self.disk.age();
            self.note_media();
            self.maybe_crash();
            if self.disk.crashed() {
                self.recover()?;
                continue;
            }
            self.act()?;
            self.note_media();
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

    /// Tells the model about media faults that struck since the last look.
    fn note_media(&mut self) {
        let fired = self.disk.fired();
        for file in [DATA_FILE, JOURNAL_FILE] {
            let count = self.disk.media_faults(file);
            if count > self.media_seen[file] {
                self.media_seen[file] = count;
                self.model.media_struck(file == JOURNAL_FILE, self.step);
                let kinds: Vec<&str> = (Fault::MEDIA.iter())
                    .filter(|f| fired[f.index()] > self.media_fired[f.index()])
                    .map(|f| f.name())
                    .collect();
                let name = if file == JOURNAL_FILE {
                    "journal"
                } else {
                    "data file"
                };
                self.trace.record(
                    self.step,
                    format!("media fault in the {name}: {}", kinds.join(", ")),
                );
            }
        }
        self.media_fired = fired;
    }

    fn tick(&mut self) {
        self.step += 1;
        self.model.set_step(self.step);
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

    /// The scheduler picks the committer, the background or one client for this step.
    fn act(&mut self) -> Result<(), Violation> {
        // A grow finished by a flush step lets every client use the new chunks at once.
        self.model.resize(self.pipe().len_chunks());
        if self.schedule.chance(0.3) {
            self.flush()?;
        } else if self.schedule.chance(self.scenario.background_share) {
            self.background()?;
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

    /// One background step, checked like a flush step (it may publish: the `Journal::Off` sync
    /// of batches in place, a commit of a batch nobody led).
    fn background(&mut self) -> Result<(), Violation> {
        let before = self.pipe().durable_epoch();
        let result = self.pipe().background_step(self.now);
        let after = self.pipe().durable_epoch();
        self.trace
            .record(self.step, format!("background -> {result:?}"));
        self.model.observe_durable(after)?;
        match result {
            Ok(wake) => {
                self.report.background_steps += u64::from(wake.progressed());
                Ok(())
            }
            Err(Error::Poisoned(_)) => self.model.flush_failed(before, after),
            Err(e) => Err(format!("background_step failed with {e}, not a poisoning")),
        }
    }

    /// Power loss (unless the disk already crashed), then reopen and check what survived. A
    /// crash armed during the reopen strikes recovery itself; recovery is retried. Damage
    /// reported at the open (only where media faults struck) ends this disk's story: the run
    /// goes on over a fresh one.
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
            let opened = self.open_pipe();
            self.note_media();
            match opened {
                Ok(pipe) => {
                    self.created = true;
                    return self.check_recovered(pipe, faults);
                }
                Err(_) if self.disk.crashed() => {
                    self.report.crashes += 1;
                    self.report.recovery_crashes += 1;
                    self.trace.record(self.step, "crash during recovery".into());
                }
                Err(e) if self.model.damage_reported(&e, attempt == FAULTY_ATTEMPTS)? => {
                    self.report.damage_reported.at_open += 1;
                    self.trace
                        .record(self.step, format!("damage reported at open: {e}"));
                    return self.restore(faults.or_else(|| self.disk.take_faults()));
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

    /// After damage reported at an open: a fresh disk (as a user restores a backup), a new
    /// pipe on it and a model of it, the faults as they were.
    fn restore(&mut self, faults: Option<(FaultPlan, SimRng)>) -> Result<(), Violation> {
        let disk = Arc::new(SimDisk::new(self.scenario.sector_size));
        disk.set_crash_rng(SimRng::stream(self.seed ^ self.step, Stream::Crash));
        disk.set_bug(self.options.store_bug);
        self.disk = disk;
        self.media_seen = [0; 2];
        self.media_fired = [0; Fault::COUNT];
        self.created = false;
        self.model = Model::new(
            0,
            self.scenario.config.chunk_size as usize,
            self.scenario.config.journal,
        );
        self.model.set_step(self.step);
        let pipe = self
            .open_pipe()
            .map_err(|e| format!("a fresh disk did not open: {e}"))?;
        self.created = true;
        self.check_recovered(pipe, faults)
    }

    /// Opens the pipe over the disk's data file (and journal file in `Journal::Atomic`):
    /// creates it the first time, and from then on requires it to exist, as a file backend's
    /// metadata would.
    fn open_pipe(&self) -> Result<SimPipe, Error> {
        let create = if self.created {
            Create::Never
        } else {
            Create::New
        };
        let config = self.scenario.config.with_create(create);
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

    /// Checks what a reopened pipe holds, with faults off (`faults`, taken for the last
    /// attempt, go back on afterwards). `Journal::Atomic` is read through the pipe, which
    /// reports damaged chunks; `Journal::Off` keeps no checksums, so its file is read as it is.
    fn check_recovered(
        &mut self,
        pipe: SimPipe,
        faults: Option<(FaultPlan, SimRng)>,
    ) -> Result<(), Violation> {
        self.disk.restart();
        let faults = faults.or_else(|| self.disk.take_faults());
        let chunk = self.scenario.config.chunk_size as usize;
        let len_chunks = pipe.len_chunks();
        self.model.set_recovered_epoch(pipe.durable_epoch());
        self.model
            .set_journal_image(&self.disk.cached_bytes(JOURNAL_FILE, 0, usize::MAX >> 1));
        let disk = &self.disk;
        let checked = if self.scenario.config.journal == Journal::Atomic {
            let model = &self.model;
            let mut reported = 0;
            let mut read = |c: u64| match pipe.read(c, 1) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if model.damage_reported(&e, true)? => {
                    reported += 1;
                    Ok(None)
                }
                Err(e) => Err(format!("reading chunk {c} after recovery failed: {e}")),
            };
            let found = (0..len_chunks)
                .map(&mut read)
                .collect::<Result<Vec<_>, _>>();
            self.report.damage_reported.at_read += reported;
            let mut found = found?.into_iter();
            self.model
                .recovered(len_chunks, chunk, |_| Ok(found.next().flatten()))
        } else {
            self.model.recovered(len_chunks, chunk, |c| {
                Ok(Some(disk.cached_bytes(
                    DATA_FILE,
                    c as usize * chunk,
                    chunk,
                )))
            })
        };
        if faults.is_some() {
            self.disk.set_faults(faults);
        }
        self.report.newest_record_losses += u64::from(checked?);
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
    /// number of flush and background steps: liveness.
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
            // Each quiet round lasts at least the batch delay: the bound is in rounds of steps.
            self.tick();
            let delay = self.scenario.config.max_batch_delay;
            self.now = self.now.saturating_add(delay);
            self.flush()?;
            self.background()?;
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
            self.background()?;
            closed = self.pipe().try_close();
        }
        match closed {
            std::task::Poll::Ready(Ok(())) if self.model.failed() => {
                return Err("close returned Ok after a failed batch".into());
            }
            std::task::Poll::Ready(_) => {}
            std::task::Poll::Pending => {
                return Err("close did not finish within 4 quiet rounds of steps".into());
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
