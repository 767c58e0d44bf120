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
    /// Media: a bit of a synced sector flips (bit rot), seen by every later read of it.
    BitFlip,
    /// Media: a synced sector becomes unreadable (a latent sector error) until it is written.
    BadSector,
    /// Media: `write_at` lands in the cache and the device acknowledges it, but never persists
    /// it: after a power loss the old bytes are back.
    LostWrite,
    /// Media: `write_at` lands on the device at another offset of the file; its own place
    /// keeps the old bytes there.
    MisdirectedWrite,
}

impl Fault {
    /// How many kinds there are.
    pub const COUNT: usize = 11;

    /// Every kind.
    pub const ALL: [Fault; Fault::COUNT] = [
        Fault::WriteError,
        Fault::PartialWrite,
        Fault::ReadError,
        Fault::NoSpace,
        Fault::SyncError,
        Fault::Latency,
        Fault::Crash,
        Fault::BitFlip,
        Fault::BadSector,
        Fault::LostWrite,
        Fault::MisdirectedWrite,
    ];

    /// The media faults: damage to what a device stores, as opposed to a failed or lost
    /// operation. They strike `Journal::Atomic` seeds only: `Journal::Off` keeps no checksums,
    /// so it cannot tell damaged chunks from written ones (its data file is all there is).
    pub const MEDIA: [Fault; 4] = [
        Fault::BitFlip,
        Fault::BadSector,
        Fault::LostWrite,
        Fault::MisdirectedWrite,
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
            Fault::BitFlip => "bit flip",
            Fault::BadSector => "bad sector",
            Fault::LostWrite => "lost write",
            Fault::MisdirectedWrite => "misdirected write",
        }
    }

    /// Whether it is a media fault ([`Fault::MEDIA`]).
    pub fn is_media(self) -> bool {
        Self::MEDIA.contains(&self)
    }

    /// The operation it strikes (`None`: any).
    fn op(self) -> Option<Op> {
        match self {
            Fault::WriteError | Fault::PartialWrite => Some(Op::Write),
            Fault::LostWrite | Fault::MisdirectedWrite => Some(Op::Write),
            Fault::ReadError => Some(Op::Read),
            Fault::NoSpace => Some(Op::Grow),
            Fault::SyncError => Some(Op::Sync),
            Fault::Latency | Fault::Crash | Fault::BitFlip | Fault::BadSector => None,
        }
    }
}

/// Which fault kinds a campaign may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// No faults at all.
    None,
    /// I/O errors, media faults and latency, no crashes.
    Io,
    /// Crashes (and latency), no I/O errors.
    Crash,
    /// Media faults, crashes and latency: damage, and the recoveries that must find it.
    Media,
    /// Everything.
    All,
}

impl Profile {
    /// Every profile, in the order of their names.
    pub const ALL: [Profile; 5] = [
        Profile::None,
        Profile::Io,
        Profile::Crash,
        Profile::Media,
        Profile::All,
    ];

    /// Its name on a command line: `none`, `io`, `crash`, `media`, `all`.
    pub fn name(self) -> &'static str {
        match self {
            Profile::None => "none",
            Profile::Io => "io",
            Profile::Crash => "crash",
            Profile::Media => "media",
            Profile::All => "all",
        }
    }

    /// The kinds this profile allows.
    pub fn allows(self, fault: Fault) -> bool {
        match self {
            Profile::None => false,
            Profile::Io => fault != Fault::Crash,
            Profile::Crash => matches!(fault, Fault::Crash | Fault::Latency),
            Profile::Media => fault.is_media() || matches!(fault, Fault::Crash | Fault::Latency),
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
    /// with probability ½, at a rate drawn from a wide range. Media faults only where `media`
    /// (the seed's pipe keeps checksums).
    pub fn draw_for_seed(profile: Profile, media: bool, rng: &mut SimRng) -> Self {
        let mut plan = FaultPlan::quiet();
        if profile == Profile::None || rng.chance(0.125) {
            return plan;
        }
        for fault in Fault::ALL {
            let on = rng.chance(0.5);
            let rate = rng.pick(&[0.002, 0.01, 0.03, 0.08]);
            if profile.allows(fault) && on && (media || !fault.is_media()) {
                plan.probability[fault.index()] = rate;
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

    /// The media fault (if any) that strikes stored data at an I/O point.
    pub(crate) fn draw_media(&self, rng: &mut SimRng) -> Option<Fault> {
        [Fault::BitFlip, Fault::BadSector].into_iter().find(|&f| {
            let p = self.probability(f);
            p > 0.0 && rng.chance(p)
        })
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

impl std::str::FromStr for Profile {
    type Err = String;

    /// A profile by its [`name`](Profile::name).
    fn from_str(text: &str) -> Result<Self, String> {
        Profile::ALL
            .into_iter()
            .find(|profile| profile.name() == text)
            .ok_or_else(|| {
                let names: Vec<_> = Profile::ALL.iter().map(|p| p.name()).collect();
                format!("no fault profile {text:?} (known: {})", names.join(", "))
            })
    }
}
