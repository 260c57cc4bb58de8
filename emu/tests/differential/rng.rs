//! A fixed-seed PRNG (SplitMix64) and the value distributions the generator draws
//! from. No host randomness: a run is a pure function of the seeds.

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, and good enough to pick
/// operands and values.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (`n` > 0); the tiny modulo bias does not matter here.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability 1/`n`.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }

    /// A value in `lo..hi` (`lo` < `hi`).
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo) as u64) as i64
    }

    /// A 64-bit register value biased towards the edges where flags change:
    /// zero, all ones, sign boundaries of every operand size, small numbers,
    /// single bits; otherwise uniform.
    pub fn interesting_u64(&mut self) -> u64 {
        const EDGES: [u64; 12] = [
            0,
            1,
            u64::MAX,
            0x7f,
            0x80,
            0xff,
            0x7fff,
            0x8000,
            0xffff,
            0x7fff_ffff,
            0x8000_0000,
            0x8000_0000_0000_0000,
        ];
        let garbage = self.next_u64();
        match self.below(8) {
            // An edge value in the low bits of some operand size, random above it.
            0 => {
                let e = EDGES[self.below(EDGES.len() as u64) as usize];
                let keep = [8u32, 16, 32, 64][self.below(4) as usize];
                if keep == 64 {
                    e
                } else {
                    (garbage & !((1u64 << keep) - 1)) | (e & ((1u64 << keep) - 1))
                }
            }
            1 => self.below(64),
            2 => 1u64 << self.below(64),
            3 => (self.below(64) as i64 - 32) as u64,
            _ => garbage,
        }
    }
}
