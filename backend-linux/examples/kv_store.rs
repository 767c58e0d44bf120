//! A small crash-safe key-value store on chunkpipe: each key hashes to one 4 KiB chunk (its
//! slot), which holds the key and the value; a `put` is one write, a `put_all` one transaction,
//! so after a crash every acknowledged put is there whole and no batch is half applied.
//!
//! Collisions are resolved by linear probing over a fixed table; a value must fit the chunk.
//! `cargo run -p chunkpipe-linux --example kv_store`.

use std::hash::{DefaultHasher, Hash, Hasher};

use chunkpipe_linux::{Config, Error, FilePipe};

const CHUNK: usize = 4096;
const SLOTS: u64 = 1024;
/// A slot: key length (2 bytes), value length (2 bytes), key, value, zeros.
const HEADER: usize = 4;

/// Why a put or get did not happen.
#[derive(Debug)]
enum KvError {
    Pipe(Error),
    TooBig,
    Full,
}

impl std::fmt::Display for KvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KvError::Pipe(e) => write!(f, "{e}"),
            KvError::TooBig => f.write_str("the key and value do not fit a chunk"),
            KvError::Full => f.write_str("every slot is taken"),
        }
    }
}

impl std::error::Error for KvError {}

impl From<Error> for KvError {
    fn from(e: Error) -> Self {
        KvError::Pipe(e)
    }
}

struct Kv {
    pipe: FilePipe,
}

impl Kv {
    fn open(path: &std::path::Path) -> Result<Self, KvError> {
        let config = Config::new()
            .with_chunk_size(CHUNK as u32)
            .with_initial_chunks(SLOTS);
        Ok(Kv {
            pipe: chunkpipe_linux::open(path, config)?,
        })
    }

    /// The slot holding `key`, or the free slot it would take.
    fn slot_of(&self, key: &[u8]) -> Result<(u64, Option<Vec<u8>>), KvError> {
        let mut hasher = DefaultHasher::new();
        key.hash(&mut hasher);
        let home = hasher.finish() % SLOTS;
        for probe in 0..SLOTS {
            let slot = (home + probe) % SLOTS;
            let chunk = self.pipe.read(slot, 1)?;
            let key_len = usize::from(u16::from_le_bytes([chunk[0], chunk[1]]));
            let value_len = usize::from(u16::from_le_bytes([chunk[2], chunk[3]]));
            if key_len == 0 {
                return Ok((slot, None));
            }
            if &chunk[HEADER..HEADER + key_len] == key {
                let value = chunk[HEADER + key_len..HEADER + key_len + value_len].to_vec();
                return Ok((slot, Some(value)));
            }
        }
        Err(KvError::Full)
    }

    fn encode(key: &[u8], value: &[u8]) -> Result<Vec<u8>, KvError> {
        if key.is_empty() || HEADER + key.len() + value.len() > CHUNK {
            return Err(KvError::TooBig);
        }
        let mut chunk = vec![0u8; CHUNK];
        chunk[..2].copy_from_slice(&(key.len() as u16).to_le_bytes());
        chunk[2..4].copy_from_slice(&(value.len() as u16).to_le_bytes());
        chunk[HEADER..HEADER + key.len()].copy_from_slice(key);
        chunk[HEADER + key.len()..HEADER + key.len() + value.len()].copy_from_slice(value);
        Ok(chunk)
    }

    /// Stores `value` under `key` and returns once it is durable.
    fn put(&self, key: &[u8], value: &[u8]) -> Result<(), KvError> {
        let (slot, _) = self.slot_of(key)?;
        self.pipe.write_durable(slot, &Self::encode(key, value)?)?;
        Ok(())
    }

    /// Stores every pair as one transaction: after a crash, all of them or none.
    fn put_all(&self, pairs: &[(&[u8], &[u8])]) -> Result<(), KvError> {
        let mut tx = self.pipe.transaction(pairs.len() as u32)?;
        for (key, value) in pairs {
            // A pair earlier in the same transaction is not visible yet: keys must be distinct.
            let (slot, _) = self.slot_of(key)?;
            tx.write(slot, &Self::encode(key, value)?)?;
        }
        self.pipe.wait(tx.commit()?)?;
        Ok(())
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self.slot_of(key)?.1)
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("kv.chunks");
    {
        let kv = Kv::open(&path)?;
        kv.put(b"greeting", b"hello")?;
        kv.put_all(&[(b"from", b"alice"), (b"to", b"bob")])?;
        kv.put(b"greeting", b"hello again")?;
        // Dropped without a close: what `put` acknowledged is durable all the same.
    }
    let kv = Kv::open(&path)?;
    for key in [&b"greeting"[..], b"from", b"to", b"missing"] {
        let value = kv.get(key)?;
        println!(
            "{} = {}",
            String::from_utf8_lossy(key),
            value.map_or("(none)".into(), |v| String::from_utf8_lossy(&v)
                .into_owned())
        );
    }
    assert_eq!(kv.get(b"greeting")?.as_deref(), Some(&b"hello again"[..]));
    kv.pipe.close()?;
    Ok(())
}
