//! Fault kinds, fault profiles and the per-seed fault mix (swarm testing).

use chunkpipe_core::Op;

use crate::rng::SimRng;

/// A kind of fault the simulator injects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    /// `write_at` fails before writing.
    WriteError,
    /// `write_at` writes half, then fails.
    PartialWrite,
    /// `read_at` fails.
    ReadError,
    /// `grow` finds no space.
    NoSpace,
    /// `sync` fails and drops the pages it was meant to persist.
    SyncError,
    /// An I/O point takes long (virtual time).
    Latency,
    /// Power loss: at an armed I/O point (mid flush step or mid recovery) or between steps.
    Crash,
}

impl Fault {
    /// How many kinds there are.
    pub const COUNT: usize = 7;

    /// Every kind.
    pub const ALL: [Fault; Fault::COUNT] = [
        Fault::WriteError,
        Fault::PartialWrite,
        Fault::ReadError,
        Fault::NoSpace,
        Fault::SyncError,
        Fault::Latency,
        Fault::Crash,
    ];

    /// Its position in [`Fault::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Fault::WriteError => "write error",
            Fault::PartialWrite => "partial write",
            Fault::ReadError => "read error",
            Fault::NoSpace => "no space",
            Fault::SyncError => "sync error",
            Fault::Latency => "latency",
            Fault::Crash => "crash",
        }
    }

    /// The operation it strikes (`None`: any).
    fn op(self) -> Option<Op> {
        match self {
            Fault::WriteError | Fault::PartialWrite => Some(Op::Write),
            Fault::ReadError => Some(Op::Read),
            Fault::NoSpace => Some(Op::Grow),
            Fault::SyncError => Some(Op::Sync),
            Fault::Latency | Fault::Crash => None,
        }
    }
}

/// Which fault kinds a campaign may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Profile {
    /// No faults at all.
    None,
    /// I/O errors and latency, no crashes.
    Io,
    /// Crashes (and latency), no I/O errors.
    Crash,
    /// Everything.
    All,
}

impl Profile {
    /// The kinds this profile allows.
    pub fn allows(self, fault: Fault) -> bool {
        match self {
            Profile::None => false,
            Profile::Io => fault != Fault::Crash,
            Profile::Crash => matches!(fault, Fault::Crash | Fault::Latency),
            Profile::All => true,
        }
    }
}

/// The fault mix of one seed: a probability per kind, per I/O point (crash: per step).
#[derive(Clone, Debug, PartialEq)]
pub struct FaultPlan {
    probability: [f64; Fault::COUNT],
}

impl FaultPlan {
    /// No faults.
    pub fn quiet() -> Self {
        FaultPlan {
            probability: [0.0; Fault::COUNT],
        }
    }

    /// Swarm testing: about one seed in eight is fault-free; otherwise each allowed kind is on
    /// with probability ½, at a rate drawn from a wide range.
    pub fn draw_for_seed(profile: Profile, rng: &mut SimRng) -> Self {
        let mut plan = FaultPlan::quiet();
        if profile == Profile::None || rng.chance(0.125) {
            return plan;
        }
        for fault in Fault::ALL {
            if profile.allows(fault) && rng.chance(0.5) {
                plan.probability[fault.index()] = rng.pick(&[0.002, 0.01, 0.03, 0.08]);
            }
        }
        plan
    }

    /// The probability of `fault`.
    pub fn probability(&self, fault: Fault) -> f64 {
        self.probability[fault.index()]
    }

    /// Whether any fault may fire.
    pub fn is_quiet(&self) -> bool {
        self.probability.iter().all(|&p| p == 0.0)
    }

    /// The fault (if any) that strikes an I/O point of `op`.
    pub(crate) fn draw(&self, op: Op, rng: &mut SimRng) -> Option<Fault> {
        Fault::ALL
            .into_iter()
            .filter(|f| f.op() == Some(op))
            .find(|&f| {
                let p = self.probability(f);
                p > 0.0 && rng.chance(p)
            })
    }

    /// Virtual latency of one I/O point: usually 20–80 µs; with the latency fault, sometimes a
    /// stall of 5–55 ms (then `true`).
    pub(crate) fn latency_ns(&self, rng: &mut SimRng) -> (u64, bool) {
        let stall = self.probability(Fault::Latency);
        if stall > 0.0 && rng.chance(stall) {
            (5_000_000 + rng.below(50_000_000), true)
        } else {
            (20_000 + rng.below(60_000), false)
        }
    }
}
