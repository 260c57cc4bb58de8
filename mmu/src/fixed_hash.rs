//! A fixed (unseeded) hasher so that map behaviour is a pure function of the keys.
//! hashbrown's default hasher is randomly seeded; we never want host randomness.
//! Map iteration order must still never reach output — sort first.

use std::hash::{BuildHasherDefault, Hasher};

/// Multiply-rotate hasher over the written words (Fx-style), deterministic.
#[derive(Default, Clone, Copy)]
pub(crate) struct FixedHasher(u64);

const K: u64 = 0x9e37_79b9_7f4a_7c15;

impl Hasher for FixedHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(b));
        }
    }
    #[inline]
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(K);
    }
    #[inline]
    fn finish(&self) -> u64 {
        // Fold high bits down: hashbrown uses the top 7 bits as the tag.
        self.0 ^ (self.0 >> 29)
    }
}

/// A hash map with the fixed hasher.
pub(crate) type FixedMap<K, V> = hashbrown::HashMap<K, V, BuildHasherDefault<FixedHasher>>;
