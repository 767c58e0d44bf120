//! chunkpipe-sim: a deterministic, fault-injecting crash simulator for chunkpipe.
//!
//! The simulator runs the real core: it owns time (a virtual clock), I/O (a simulated disk with
//! a durable image and a volatile cache) and randomness (one seed, split into streams), drives
//! [`Pipe::flush_step`](chunkpipe_core::Pipe::flush_step) and simulated clients itself, injects
//! faults and power losses, and checks after every step that the pipe kept its promises.
//!
//! | file | what |
//! |---|---|
//! | `disk.rs` | [`SimDisk`]/[`SimStore`]: sectors, sync, crash, faults at I/O points — **where a fault is injected** |
//! | `faults.rs` | [`Fault`] kinds, [`Profile`]s, the per-seed [`FaultPlan`] (swarm testing) |
//! | `rng.rs` | [`SimRng`] streams |
//! | `data.rs` | self-describing chunk contents |
//! | `oracle.rs` | the reference [`Model`] and its checks |
//! | `workload.rs` | simulated [`Client`]s over the non-blocking API |
//! | `runner.rs` | one seed: scheduler, crashes, recovery, quiet phase, close ([`run_seed`]) |
//! | `campaign.rs` | many seeds, totals, coverage ([`run_campaign`]) |
//!
//! The same seed gives the same run: the trace hash in [`SeedReport`] is equal for equal seeds.
//!
//! ```
//! use chunkpipe_sim::{SimOptions, run_seed};
//! let report = run_seed(42, &SimOptions::default()).expect("seed 42 keeps every promise");
//! assert_eq!(report.trace_hash, run_seed(42, &SimOptions::default()).unwrap().trace_hash);
//! ```
#![deny(missing_docs)]

mod campaign;
pub mod data;
mod disk;
mod faults;
mod oracle;
mod rng;
mod runner;
mod workload;

pub use campaign::{CampaignReport, run_campaign};
pub use disk::{DATA_FILE, JOURNAL_FILE, SimDisk, SimStore, StoreBug};
pub use faults::{Fault, FaultPlan, Profile};
pub use oracle::{Model, TearReport, Violation};
pub use rng::{SimRng, Stream};
pub use runner::{DamageReported, SeedReport, SimFailure, SimOptions, run_seed};
pub use workload::{Client, ClientState, Operation, SimPipe};
