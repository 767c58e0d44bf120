//! The staging pool's protocol: carving, slot states, batches, grace periods.

use std::vec::Vec;

use super::*;

fn with_parts<R>(config: &Config, f: impl FnOnce(StagingParts<'_>) -> R) -> R {
    let layout = StagingLayout::for_config(config).unwrap();
    let memory = StagingMemory::allocate(layout.total_bytes());
    let parts = carve(&memory, &layout).unwrap();
    f(parts)
}

fn open_batch(
    pool: &mut SlotPool<'_>,
    index: &mut ChunkIndex<'_>,
    plan: &mut [PlanEntry],
    writes: &[(u64, u8)],
) -> usize {
    for (order, &(chunk, byte)) in writes.iter().enumerate() {
        let data = [byte; 8];
        let slot = pool.take_filled(chunk, &data, false);
        pool.open(slot);
        index.insert(chunk, slot);
        plan[order] = PlanEntry::new(chunk, slot, order as u32);
    }
    writes.len()
}

#[test]
fn allocated_memory_is_page_aligned_for_direct_io() {
    for bytes in [1, 4096, 4097, 1 << 20] {
        let memory = StagingMemory::allocate(bytes);
        assert_eq!(memory.len(), bytes);
        assert_eq!(memory.ptr.as_ptr() as usize % 4096, 0, "{bytes} bytes");
    }
}

#[test]
fn too_small_memory_is_an_error() {
    let config = Config::new().with_chunk_size(8).with_staging_chunks(4);
    let layout = StagingLayout::for_config(&config).unwrap();
    let memory = StagingMemory::allocate(layout.total_bytes() - 1);
    assert!(matches!(
        carve(&memory, &layout),
        Err(Error::InvalidInput(_))
    ));
}

#[test]
fn borrowed_memory_at_an_odd_address_is_carved_aligned() {
    let config = Config::new().with_chunk_size(3).with_staging_chunks(5);
    let layout = StagingLayout::for_config(&config).unwrap();
    let mut bytes = [0u8; 2048];
    let memory = StagingMemory::new(&mut bytes[1..=layout.total_bytes()]);
    let mut parts = carve(&memory, &layout).unwrap();
    let slot = parts.pool.take_filled(9, &[1, 2, 3], false);
    parts.pool.open(slot);
    assert_eq!(parts.pool.staged_bytes(slot), &[1, 2, 3]);
}

#[test]
fn prepare_write_keeps_the_last_write_per_chunk_in_chunk_order() {
    let config = Config::new().with_chunk_size(8).with_staging_chunks(8);
    with_parts(
        &config,
        |StagingParts {
             mut pool,
             plans: [mut plan, ..],
             mut index,
             ..
         }| {
            let len = open_batch(
                &mut pool,
                &mut index,
                &mut plan,
                &[(5, 1), (2, 2), (5, 3), (3, 4), (2, 5)],
            );
            let mut batch = pool.seal(plan, len);
            batch.prepare_write();
            let got: Vec<(u64, u8)> = (0..batch.live_len())
                .map(|i| (batch.chunk(i), batch.bytes(i)[0]))
                .collect();
            assert_eq!(got, [(2, 5), (3, 4), (5, 3)]);
            assert_eq!(pool.available(), 3);
            pool.retire(batch, &mut index);
            assert_eq!(
                pool.available(),
                8,
                "every slot, superseded ones too, is freed"
            );
        },
    );
}

#[test]
fn retired_slots_wait_only_for_readers_active_at_retirement() {
    let config = Config::new().with_chunk_size(8).with_staging_chunks(4);
    with_parts(
        &config,
        |StagingParts {
             mut pool,
             plans: [mut plan_a, mut plan_b, ..],
             mut index,
             ..
         }| {
            let first = pool.enter_reader();
            let len = open_batch(&mut pool, &mut index, &mut plan_a, &[(1, 1), (2, 2)]);
            let batch_a = pool.seal(plan_a, len);
            pool.retire(batch_a, &mut index);
            assert_eq!(pool.available(), 2, "the active reader holds batch A");
            let second = pool.enter_reader();
            let len = open_batch(&mut pool, &mut index, &mut plan_b, &[(3, 3), (1, 4)]);
            let batch_b = pool.seal(plan_b, len);
            pool.retire(batch_b, &mut index);
            assert_eq!(pool.available(), 0);
            assert_eq!(
                pool.exit_reader(first, &mut index),
                2,
                "A is free; B waits for the second"
            );
            assert_eq!(
                index.get(1),
                Some(3),
                "chunk 1's newest slot (from B) is still indexed"
            );
            assert_eq!(index.get(2), None, "A's entries left with its slots");
            assert_eq!(pool.exit_reader(second, &mut index), 2);
            assert_eq!(pool.available(), 4);
            assert!(index.is_empty());
        },
    );
}

#[test]
fn reservations_are_all_or_nothing_bookkeeping() {
    let config = Config::new().with_chunk_size(8).with_staging_chunks(4);
    with_parts(&config, |StagingParts { mut pool, .. }| {
        pool.reserve(3);
        assert_eq!(pool.available(), 1);
        let slot = pool.take_filled(0, &[0; 8], true);
        assert_eq!(pool.available(), 1);
        pool.put_back(slot);
        pool.unreserve(2);
        assert_eq!(pool.available(), 4);
    });
}
