//! Bad input: every kind returns its error value.

use chunkpipe_core::{Config, Error, Journal};

use super::{CHUNK, chunk_with, config};
use crate::{FileHarness, Harness};

/// Each kind of bad input from the contract gets its error, and the pipe still works after.
pub fn bad_input_returns_errors<H: Harness>(h: &H) {
    assert!(matches!(
        h.open(config(4, 4).with_chunk_size(0)),
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(h.open(config(4, 0)), Err(Error::InvalidInput(_))));
    assert!(matches!(
        h.open(config(u64::MAX, 4)),
        Err(Error::InvalidInput(_))
    ));
    let pipe = h.open(config(4, 4)).unwrap();
    let not_whole = [0u8; CHUNK + 1];
    assert!(matches!(
        pipe.write(0, &not_whole),
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(pipe.write(0, &[]), Err(Error::InvalidInput(_))));
    assert!(matches!(
        pipe.write(4, &chunk_with(1)),
        Err(Error::OutOfRange { index: 4, .. })
    ));
    assert!(matches!(
        pipe.write(3, &[0; 2 * CHUNK]),
        Err(Error::OutOfRange { .. })
    ));
    assert!(matches!(
        pipe.write(u64::MAX, &chunk_with(1)),
        Err(Error::OutOfRange { .. })
    ));
    assert!(matches!(
        pipe.write(0, &[0; 5 * CHUNK]),
        Err(Error::OutOfRange { .. })
    ));
    assert!(matches!(pipe.read(2, 3), Err(Error::OutOfRange { .. })));
    assert!(matches!(
        pipe.read(1, u64::MAX),
        Err(Error::OutOfRange { .. })
    ));
    let mut odd = [0u8; CHUNK - 1];
    assert!(matches!(
        pipe.read_into(0, &mut odd),
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        pipe.transaction(5),
        Err(Error::TooLarge {
            chunks: 5,
            capacity: 4
        })
    ));
    assert!(matches!(pipe.transaction(0), Err(Error::InvalidInput(_))));
    assert!(matches!(pipe.grow(0), Err(Error::InvalidInput(_))));
    assert!(matches!(pipe.grow(u64::MAX), Err(Error::InvalidInput(_))));
    assert_eq!(pipe.pipe().len_chunks(), 4, "nothing was extended");
    pipe.write_durable(3, &chunk_with(3)).unwrap();
    drop(pipe);
    let big = Config::new()
        .with_chunk_size(CHUNK as u32)
        .with_staging_chunks(2)
        .with_initial_chunks(8);
    let pipe = h.open(big.with_journal(Journal::Off)).unwrap();
    assert_eq!(
        pipe.write(0, &[0; 3 * CHUNK]),
        Err(Error::TooLarge {
            chunks: 3,
            capacity: 2
        })
    );
}

/// Storage whose length is not a whole number of chunks is refused on open.
pub fn store_of_the_wrong_length_is_refused<H: Harness>(h: &H) {
    h.open(config(2, 2)).unwrap().close().unwrap();
    h.append_raw(7);
    assert!(matches!(h.open(config(2, 2)), Err(Error::InvalidInput(_))));
}

/// A second open of storage a pipe holds is `Locked`; after close it opens again.
pub fn second_open_is_locked<H: FileHarness>(h: &H) {
    let pipe = h.open(config(2, 2)).unwrap();
    assert_eq!(h.open_again(), Err(Error::Locked));
    assert!(matches!(h.open(config(2, 2)), Err(Error::Locked)));
    pipe.close().unwrap();
    h.open(config(2, 2)).unwrap().close().unwrap();
}

/// Storage created with one chunk size or journal mode refuses another, even when its length
/// would fit; a future-version metadata record is refused too, and a damaged one is damage.
pub fn reopen_with_another_config_is_a_mismatch<H: FileHarness>(h: &H) {
    let pipe = h.open(config(4, 4)).unwrap();
    pipe.write_durable(1, &chunk_with(1)).unwrap();
    pipe.close().unwrap();
    let twice_the_chunk = config(0, 4).with_chunk_size(2 * CHUNK as u32);
    assert!(matches!(h.open(twice_the_chunk), Err(Error::Mismatch(_))));
    h.replace_meta(b"chunkpipe-meta 99\n");
    assert!(matches!(h.open(config(0, 4)), Err(Error::Mismatch(_))));
    h.replace_meta(b"garbage");
    assert!(matches!(h.open(config(0, 4)), Err(Error::Corrupt(_))));
}
