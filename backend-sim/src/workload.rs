//! Simulated clients: state machines over the pipe's non-blocking API.
//!
//! Each step of a client does at most one non-blocking call. A client is idle, retrying an
//! operation that found staging full (`WouldBlock`), or waiting on an epoch or a grow.

use std::task::Poll;

use chunkpipe_core::{Epoch, Error, GrowTicket, Pipe};

use crate::data::encode_chunk;
use crate::disk::SimStore;
use crate::oracle::{Model, Violation};
use crate::rng::SimRng;

/// The pipe the simulator drives.
pub type SimPipe = Pipe<'static, SimStore>;

/// What a client is doing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientState {
    /// Ready for a new operation.
    Idle,
    /// Retrying an operation that found staging full.
    Retrying(Operation),
    /// Waiting for an epoch to become durable.
    Waiting(Epoch),
    /// Waiting for a grow to finish.
    Growing(GrowTicket),
}

/// A client operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Write `count` chunks at `index` (one write call).
    Write {
        /// First chunk.
        index: u64,
        /// Chunks.
        count: u64,
    },
    /// One transaction writing these chunks, in order (repeats allowed).
    Transaction(Vec<u64>),
    /// Read `count` chunks at `index`.
    Read {
        /// First chunk.
        index: u64,
        /// Chunks.
        count: u64,
    },
    /// Grow by `chunks`.
    Grow(u64),
    /// Ask for durability now and wait for it.
    Sync,
}

/// One simulated client.
#[derive(Debug)]
pub struct Client {
    /// Its state.
    pub state: ClientState,
    /// Whether it may start new operations (off during the final drain).
    pub active: bool,
}

/// What a client step did, for the trace.
pub type Event = String;

impl Client {
    /// An idle client.
    pub fn new() -> Self {
        Client {
            state: ClientState::Idle,
            active: true,
        }
    }

    /// Whether the client waits for the pipe (an epoch, a grow, or staging).
    pub fn blocked(&self) -> bool {
        !matches!(self.state, ClientState::Idle)
    }

    /// Does one step: a new operation when idle, else one retry or poll.
    pub fn step(
        &mut self,
        pipe: &SimPipe,
        model: &mut Model,
        rng: &mut SimRng,
    ) -> Result<Event, Violation> {
        match std::mem::replace(&mut self.state, ClientState::Idle) {
            ClientState::Idle if !self.active => Ok("idle".into()),
            ClientState::Idle => {
                let op = choose(pipe.len_chunks(), pipe.config().staging_chunks, rng);
                self.run(op, pipe, model, rng)
            }
            ClientState::Retrying(op) => self.run(op, pipe, model, rng),
            ClientState::Waiting(epoch) => self.poll_wait(epoch, pipe, model),
            ClientState::Growing(ticket) => self.poll_grow(ticket, pipe, model),
        }
    }

    fn run(
        &mut self,
        op: Operation,
        pipe: &SimPipe,
        model: &mut Model,
        rng: &mut SimRng,
    ) -> Result<Event, Violation> {
        let outcome = match &op {
            Operation::Write { index, count } => write(pipe, model, *index, *count),
            Operation::Transaction(chunks) => transaction(pipe, model, chunks),
            Operation::Read { index, count } => read(pipe, model, *index, *count),
            Operation::Grow(chunks) => match pipe.request_grow(*chunks) {
                Ok(ticket) => {
                    self.state = ClientState::Growing(ticket);
                    return Ok(format!("grow +{chunks}"));
                }
                Err(e) => Err(Stop::Pipe(e)),
            },
            Operation::Sync => pipe.request_sync().map_err(Stop::Pipe),
        };
        match outcome {
            Ok(Some(epoch)) => {
                if op == Operation::Sync || rng.chance(0.5) {
                    // As a blocking waiter does: ask for it, then wait.
                    pipe.request_durable(epoch);
                    self.state = ClientState::Waiting(epoch);
                }
                Ok(format!("{op:?} -> {epoch}"))
            }
            Ok(None) => Ok(format!("{op:?} -> ok")),
            Err(Stop::Pipe(Error::WouldBlock)) => {
                self.state = ClientState::Retrying(op.clone());
                Ok(format!("{op:?} -> would block"))
            }
            Err(Stop::Pipe(e)) => self.expected_error(&op, e, pipe, model),
            Err(Stop::Broken(violation)) => Err(violation),
        }
    }

    /// Errors a correct pipe gives: failures after poisoning, closing, store read errors, and
    /// reads that report media damage (where media faults struck).
    fn expected_error(
        &mut self,
        op: &Operation,
        e: Error,
        pipe: &SimPipe,
        model: &Model,
    ) -> Result<Event, Violation> {
        match e {
            Error::Poisoned(_) if pipe.poisoned().is_some() => Ok(format!("{op:?} -> poisoned")),
            Error::Closed => Ok(format!("{op:?} -> closed")),
            Error::Corrupt(damage) if matches!(op, Operation::Read { .. }) => {
                model.damage_reported(&e, false)?;
                Ok(format!("{op:?} -> damage reported: {damage}"))
            }
            Error::Store(s)
                if matches!(op, Operation::Read { .. }) && s.op == chunkpipe_core::Op::Read =>
            {
                Ok(format!("{op:?} -> read error"))
            }
            other => Err(format!(
                "{op:?} failed unexpectedly: {other} (model failed: {})",
                model.failed()
            )),
        }
    }

    fn poll_wait(
        &mut self,
        epoch: Epoch,
        pipe: &SimPipe,
        model: &mut Model,
    ) -> Result<Event, Violation> {
        match pipe.poll_durable(epoch) {
            Poll::Pending => {
                self.state = ClientState::Waiting(epoch);
                Ok(format!("wait {epoch}: pending"))
            }
            Poll::Ready(Ok(())) => model
                .wait_ok(epoch, pipe.durable_epoch())
                .map(|()| format!("wait {epoch}: ok")),
            Poll::Ready(Err(Error::Poisoned(_))) if pipe.poisoned().is_some() => {
                Ok(format!("wait {epoch}: poisoned"))
            }
            Poll::Ready(Err(e)) => Err(format!("wait({epoch}) failed unexpectedly: {e}")),
        }
    }

    fn poll_grow(
        &mut self,
        ticket: GrowTicket,
        pipe: &SimPipe,
        model: &mut Model,
    ) -> Result<Event, Violation> {
        match pipe.poll_grow(&ticket) {
            Poll::Pending => {
                self.state = ClientState::Growing(ticket);
                Ok("grow: pending".into())
            }
            Poll::Ready(Ok(len)) => {
                model.resize(len);
                Ok(format!("grow: ok, {len} chunks"))
            }
            Poll::Ready(Err(e)) => Ok(format!("grow: {e}")),
        }
    }
}

impl Default for Client {
    fn default() -> Self {
        Self::new()
    }
}

/// Draws the next operation for a pipe of `len_chunks` chunks and `staging` slots (writes and
/// transactions always fit staging: a larger one is `TooLarge`, tested elsewhere).
fn choose(len_chunks: u64, staging: u32, rng: &mut SimRng) -> Operation {
    let span = |rng: &mut SimRng, most: u64| {
        let count = 1 + rng.below(most.min(len_chunks).max(1));
        (rng.below(len_chunks - count + 1), count)
    };
    let staging = u64::from(staging);
    match rng.below(100) {
        0..40 => {
            let (index, count) = span(rng, staging.min(3));
            Operation::Write { index, count }
        }
        40..55 => {
            let writes = 1 + rng.below(staging.min(4));
            Operation::Transaction((0..writes).map(|_| rng.below(len_chunks)).collect())
        }
        55..80 => {
            let (index, count) = span(rng, 4);
            Operation::Read { index, count }
        }
        80..85 => Operation::Grow(1 + rng.below(4)),
        _ => Operation::Sync,
    }
}

fn chunk_bytes(pipe: &SimPipe) -> usize {
    pipe.config().chunk_size as usize
}

fn write(pipe: &SimPipe, model: &mut Model, index: u64, count: u64) -> Result<Option<Epoch>, Stop> {
    let size = chunk_bytes(pipe);
    let write_id = model.new_write_id();
    let mut data = vec![0u8; size * count as usize];
    for (i, chunk) in data.chunks_exact_mut(size).enumerate() {
        encode_chunk(write_id, index + i as u64, chunk);
    }
    let epoch = pipe.try_write(index, &data)?;
    let writes: Vec<(u64, u64)> = (index..index + count).map(|c| (write_id, c)).collect();
    model.joined(&writes, epoch, false).map_err(Stop::Broken)?;
    Ok(Some(epoch))
}

fn transaction(pipe: &SimPipe, model: &mut Model, chunks: &[u64]) -> Result<Option<Epoch>, Stop> {
    let size = chunk_bytes(pipe);
    let mut tx = pipe.transaction(chunks.len() as u32)?;
    let mut writes = Vec::with_capacity(chunks.len());
    let mut data = vec![0u8; size];
    for &chunk in chunks {
        let write_id = model.new_write_id();
        encode_chunk(write_id, chunk, &mut data);
        tx.write(chunk, &data)?;
        writes.push((write_id, chunk));
    }
    let epoch = tx.commit()?;
    model.joined(&writes, epoch, true).map_err(Stop::Broken)?;
    Ok(Some(epoch))
}

fn read(pipe: &SimPipe, model: &mut Model, index: u64, count: u64) -> Result<Option<Epoch>, Stop> {
    let data = pipe.read(index, count)?;
    model
        .read(index, &data, chunk_bytes(pipe))
        .map_err(Stop::Broken)?;
    Ok(None)
}

/// Why an operation helper stopped: the pipe said no, or the oracle caught a broken promise.
enum Stop {
    Pipe(Error),
    Broken(Violation),
}

impl From<Error> for Stop {
    fn from(e: Error) -> Self {
        Stop::Pipe(e)
    }
}
