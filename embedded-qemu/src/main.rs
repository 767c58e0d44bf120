//! The embedded sensor log as firmware on an emulated Cortex-M4 (QEMU's `mps2-an386`), with a
//! power loss in the middle of a batch.
//!
//! First boot: a fresh log over RAM records [`BEFORE`] readings, each durable when `record`
//! returns, and notes the last one acknowledged. Then its journal store is armed: the next write
//! — the record of the next batch — writes half of its bytes and resets the chip. Second boot:
//! the log resumes over the same RAM (its buffers live in `.uninit`, which the reset handler
//! neither loads nor zeroes), recovery drops the torn record, every acknowledged reading is
//! there, whole, and the log goes on and closes. Semihosting carries the output and the exit
//! code (0 only if every check held) to the host.
//!
//! `cd embedded-qemu && cargo run --release` (needs `qemu-system-arm`; CI installs it).

#![no_std]
#![no_main]

use core::cell::Cell;
use core::mem::MaybeUninit;
use core::ptr::{addr_of, addr_of_mut};

use chunkpipe_core::{ChunkStore, Create, Error, MemStore, StoreError};
use chunkpipe_embedded_example::{Buffers, SLOTS, SensorLog};
use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};

/// Readings acknowledged before the power loss.
const BEFORE: u32 = 40;

/// Marks RAM that a first boot has set up.
const MAGIC: u32 = 0x4348_5031;

/// What a reset leaves in place: the log's buffers and what the firmware knew before it.
struct Survivor {
    magic: u32,
    /// The last tick whose `record` returned (was durable) before the reset.
    acked: u32,
    buffers: Buffers,
}

/// In `.uninit` (cortex-m-rt's section for RAM that is neither loaded nor zeroed at reset).
#[unsafe(link_section = ".uninit.CHUNKPIPE")]
static mut SURVIVOR: MaybeUninit<Survivor> = MaybeUninit::uninit();

/// The value recorded for `tick`.
fn value(tick: u32) -> u16 {
    (tick * 7 % 1000) as u16
}

/// A RAM store that loses power in the middle of a write once armed: it writes the first half
/// of the first buffer it was given, then resets the chip.
struct PowerCut<'a> {
    inner: MemStore<'a>,
    armed: Cell<bool>,
}

impl<'a> PowerCut<'a> {
    fn new(inner: MemStore<'a>) -> Self {
        PowerCut {
            inner,
            armed: Cell::new(false),
        }
    }
}

impl ChunkStore for PowerCut<'_> {
    fn len(&self) -> Result<u64, StoreError> {
        self.inner.len()
    }
    fn read_at(&self, offset: u64, bufs: &mut [&mut [u8]]) -> Result<(), StoreError> {
        self.inner.read_at(offset, bufs)
    }
    fn write_at(&self, offset: u64, bufs: &[&[u8]]) -> Result<(), StoreError> {
        if self.armed.get() {
            let total: usize = bufs.iter().map(|b| b.len()).sum();
            let half = &bufs[0][..bufs[0].len() / 2];
            self.inner.write_at(offset, &[half])?;
            hprintln!(
                "power cut: {} of {} bytes written at journal offset {}",
                half.len(),
                total,
                offset
            );
            cortex_m::peripheral::SCB::sys_reset();
        }
        self.inner.write_at(offset, bufs)
    }
    fn grow(&self, new_len: u64) -> Result<(), StoreError> {
        self.inner.grow(new_len)
    }
    fn sync(&self) -> Result<(), StoreError> {
        self.inner.sync()
    }
}

#[entry]
fn main() -> ! {
    let slot = addr_of_mut!(SURVIVOR).cast::<Survivor>();
    // SAFETY: `slot` points at RAM that is always mapped and readable; every bit pattern is a
    // valid `u32`, and the read is volatile, so the compiler assumes nothing about what the
    // reset left there.
    let first_boot = unsafe { core::ptr::read_volatile(addr_of!((*slot).magic)) } != MAGIC;
    if first_boot {
        // SAFETY: nothing else refers to `SURVIVOR` (one thread, no interrupt handlers); this
        // initialises every field before the reference below is made.
        unsafe {
            slot.write(Survivor {
                magic: MAGIC,
                acked: 0,
                buffers: Buffers::new(),
            });
        }
    }
    // SAFETY: initialised — just now, or by the first boot (the magic says so; a reset does not
    // touch `.uninit`, and the fields are plain bytes); and this is the only reference ever made.
    let survivor = unsafe { &mut *slot };
    let outcome = if first_boot {
        before_the_cut(survivor)
    } else {
        after_the_cut(survivor)
    };
    match outcome {
        Ok(()) => {
            hprintln!("all checks held");
            debug::exit(debug::EXIT_SUCCESS);
        }
        Err(what) => {
            hprintln!("FAILED: {}", what);
            debug::exit(debug::EXIT_FAILURE);
        }
    }
    halt()
}

/// Sleeps for good: where a debugger is attached, `debug::exit` has already ended the run.
fn halt() -> ! {
    loop {
        cortex_m::asm::wfi();
    }
}

/// What went wrong, for the host.
enum Failure {
    Pipe(Error),
    Check(&'static str),
}

impl core::fmt::Display for Failure {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Failure::Pipe(e) => write!(f, "the pipe: {e}"),
            Failure::Check(what) => f.write_str(what),
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Pipe(e)
    }
}

fn check(holds: bool, what: &'static str) -> Result<(), Failure> {
    if holds {
        Ok(())
    } else {
        Err(Failure::Check(what))
    }
}

/// First boot: readings made durable, then a power loss while the next batch's record is
/// written. Returns only if the cut never came.
fn before_the_cut(survivor: &mut Survivor) -> Result<(), Failure> {
    let (staging, data, journal) = survivor.buffers.split();
    let (data, journal) = (MemStore::in_buffer(data), MemStore::in_buffer(journal));
    let log = SensorLog::over_stores(
        staging,
        PowerCut::new(data),
        PowerCut::new(journal),
        Create::New,
    )?;
    for tick in 0..BEFORE {
        log.record(tick, value(tick))?;
        survivor.acked = tick;
    }
    hprintln!(
        "first boot: {} readings durable in {} batches; cutting power during the next",
        BEFORE,
        log.pipe().stats().batches
    );
    let armed = log.pipe().journal().map(|journal| journal.armed.set(true));
    check(armed.is_some(), "a journaled log")?;
    log.record(BEFORE, value(BEFORE))?;
    Err(Failure::Check("the power cut never came"))
}

/// Second boot: recovery, every acknowledged reading whole, the cut one absent, and the log
/// going on.
fn after_the_cut(survivor: &mut Survivor) -> Result<(), Failure> {
    let acked = survivor.acked;
    // The next cold start begins afresh.
    survivor.magic = 0;
    let (staging, data, journal) = survivor.buffers.split();
    let (data_len, journal_len) = (data.len(), journal.len());
    let log = SensorLog::over_stores(
        staging,
        PowerCut::new(MemStore::resume(data, data_len)?),
        PowerCut::new(MemStore::resume(journal, journal_len)?),
        Create::Never,
    )?;
    let report = log.pipe().recovery();
    check(report.is_some(), "recovery reports")?;
    let report = report.unwrap_or_default();
    hprintln!(
        "after the reset: recovery replayed {} records up to epoch {}, torn tail dropped: {}",
        report.replayed,
        report.last_epoch.get(),
        report.torn_tail
    );
    check(report.torn_tail, "the half-written record is a torn tail")?;
    check(
        acked == BEFORE - 1,
        "every reading before the cut acknowledged",
    )?;
    for tick in acked + 1 - SLOTS as u32..=acked {
        check(
            log.latest(tick)? == Some(value(tick)),
            "an acknowledged reading is there, whole",
        )?;
    }
    check(
        log.latest(BEFORE)?.is_none(),
        "the reading cut off was never acknowledged: absent",
    )?;
    for tick in BEFORE..BEFORE + 10 {
        log.record(tick, value(tick))?;
    }
    check(
        log.latest(BEFORE + 9)? == Some(value(BEFORE + 9)),
        "the log goes on",
    )?;
    log.close()?;
    hprintln!(
        "the last {} acknowledged readings were there, whole; 10 more recorded; closed",
        SLOTS
    );
    Ok(())
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    hprintln!("panic: {}", info);
    debug::exit(debug::EXIT_FAILURE);
    halt()
}
