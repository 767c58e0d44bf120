//! The conformance suite on real files (Linux backend, in a temp dir), in both durability modes
//! and with a direct-write journal.
#![cfg(target_os = "linux")]

use chunkpipe_core::Journal;
use chunkpipe_linux::Linux;
use chunkpipe_tests::PosixFiles;

mod atomic {
    use super::*;
    chunkpipe_tests::conformance!(PosixFiles::<Linux>::new(Journal::Atomic), files);
    chunkpipe_tests::conformance!(PosixFiles::<Linux>::new(Journal::Atomic), journal);
    chunkpipe_tests::conformance!(PosixFiles::<Linux>::new(Journal::Atomic), journal_files);
}

mod off {
    use super::*;
    chunkpipe_tests::conformance!(PosixFiles::<Linux>::new(Journal::Off), files);
}

/// `Journal::Atomic` with the journal opened for direct writes (`FileStore::open_direct`), the
/// opt-in that `chunkpipe_linux::open` does not take, on the target dir's file system.
mod atomic_direct {
    use super::*;
    fn harness() -> PosixFiles<Linux> {
        PosixFiles::with_direct_journal_in(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")))
    }
    chunkpipe_tests::conformance!(harness(), files);
    chunkpipe_tests::conformance!(harness(), journal);
    chunkpipe_tests::conformance!(harness(), journal_files);
}

/// The journal store's direct writes (`O_DIRECT`), on the target dir's file system (a real
/// disk: `/tmp` may be tmpfs, which has no direct I/O).
mod direct_writes {
    use chunkpipe_core::ChunkStore;
    use chunkpipe_linux::FileStore;

    #[repr(C, align(4096))]
    struct Page([u8; 4096]);

    fn store() -> (tempfile::TempDir, FileStore) {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("a temp dir");
        let store = FileStore::open_direct(&dir.path().join("journal")).expect("open");
        store.grow(4 * 4096).expect("grow");
        (dir, store)
    }

    fn read(store: &FileStore, offset: u64, len: usize) -> Vec<u8> {
        let mut buf = vec![0u8; len];
        store.read_at(offset, &mut [&mut buf]).expect("read");
        buf
    }

    #[test]
    fn aligned_writes_go_direct_and_read_back() {
        let (_dir, store) = store();
        let (a, b) = (Page([1; 4096]), Page([2; 4096]));
        store.write_at(4096, &[&a.0, &b.0]).expect("write");
        assert_eq!(
            store.direct_writes(),
            1,
            "an aligned write bypasses the page cache"
        );
        assert_eq!(read(&store, 4096, 4096), vec![1; 4096]);
        assert_eq!(read(&store, 8192, 4096), vec![2; 4096]);
    }

    #[test]
    fn unaligned_writes_stay_buffered() {
        let (_dir, store) = store();
        let page = Page([3; 4096]);
        let unaligned_memory = &page.0[1..513];
        store.write_at(0, &[unaligned_memory]).expect("write");
        store.write_at(100, &[&page.0[..512]]).expect("write");
        store.write_at(0, &[&page.0[..100]]).expect("write");
        assert_eq!(store.direct_writes(), 0);
        assert_eq!(read(&store, 0, 612), vec![3; 612]);
    }

    #[test]
    fn buffered_and_direct_writes_to_one_page_stay_coherent() {
        // The journal's superblocks (buffered, 512 B) share a page with its first records
        // (direct): each write must see the other's bytes, in the cache and on disk.
        let (_dir, store) = store();
        assert_eq!(read(&store, 0, 4096), vec![0; 4096], "page cached");
        let record = Page([7; 4096]);
        store
            .write_at(1024, &[&record.0[..1024]])
            .expect("direct write");
        assert_eq!(store.direct_writes(), 1);
        let mut expected = vec![0u8; 4096];
        expected[1024..2048].fill(7);
        assert_eq!(read(&store, 0, 4096), expected);
        // A dirty cached page under a direct write: written back first, then dropped.
        store.write_at(512, &[&[9u8; 512]]).expect("buffered write");
        store
            .write_at(1024, &[&Page([8; 4096]).0[..512]])
            .expect("direct write");
        assert_eq!(store.direct_writes(), 2);
        store.sync().expect("sync");
        expected[512..1024].fill(9);
        expected[1024..1536].fill(8);
        assert_eq!(read(&store, 0, 4096), expected);
    }
}
