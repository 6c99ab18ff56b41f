//! Python's `random.Random` (Mersenne Twister, seeded as `random.seed(x, version=2)`), so the
//! `random` and `shuffle` filters with a `seed` pick exactly what Ansible picks: the common
//! `{{ 59 | random(seed=inventory_hostname) }}` cron minute must not move when a playbook
//! changes engines.

use sha2::{Digest, Sha512};

const N: usize = 624;
const M: usize = 397;

/// A seeded generator; the same seed gives Python's sequence.
pub struct PyRandom {
    state: [u32; N],
    index: usize,
}

/// What Python accepts as a seed here.
pub enum Seed<'a> {
    Int(i128),
    Str(&'a str),
}

impl PyRandom {
    pub fn new(seed: Seed<'_>) -> Self {
        let mut rng = PyRandom {
            state: [0; N],
            index: N,
        };
        rng.init_by_array(&key_of(seed));
        rng
    }

    /// A generator seeded from the operating system, for filters given no seed.
    pub fn from_entropy() -> Self {
        let words: Vec<u32> = (0..N).map(|_| rand::random::<u32>()).collect();
        let mut rng = PyRandom {
            state: [0; N],
            index: N,
        };
        rng.init_by_array(&words);
        rng
    }

    fn init_genrand(&mut self, seed: u32) {
        self.state[0] = seed;
        for i in 1..N {
            let prev = self.state[i - 1];
            self.state[i] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
        }
        self.index = N;
    }

    fn init_by_array(&mut self, key: &[u32]) {
        self.init_genrand(19_650_218);
        let mt = &mut self.state;
        let (mut i, mut j) = (1usize, 0usize);
        for _ in 0..N.max(key.len()) {
            let prev = mt[i - 1];
            mt[i] = (mt[i] ^ (prev ^ (prev >> 30)).wrapping_mul(1_664_525))
                .wrapping_add(key[j])
                .wrapping_add(j as u32);
            i += 1;
            j += 1;
            if i >= N {
                mt[0] = mt[N - 1];
                i = 1;
            }
            if j >= key.len() {
                j = 0;
            }
        }
        for _ in 0..N - 1 {
            let prev = mt[i - 1];
            mt[i] =
                (mt[i] ^ (prev ^ (prev >> 30)).wrapping_mul(1_566_083_941)).wrapping_sub(i as u32);
            i += 1;
            if i >= N {
                mt[0] = mt[N - 1];
                i = 1;
            }
        }
        mt[0] = 0x8000_0000;
    }

    fn next_u32(&mut self) -> u32 {
        if self.index >= N {
            for k in 0..N {
                let y = (self.state[k] & 0x8000_0000) | (self.state[(k + 1) % N] & 0x7fff_ffff);
                let mag = if y & 1 == 1 { 0x9908_b0df } else { 0 };
                self.state[k] = self.state[(k + M) % N] ^ (y >> 1) ^ mag;
            }
            self.index = 0;
        }
        let mut y = self.state[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// `getrandbits(k)` for k up to 64: 32-bit words from the least significant up.
    fn getrandbits(&mut self, k: u32) -> u64 {
        if k <= 32 {
            return u64::from(self.next_u32() >> (32 - k));
        }
        let low = u64::from(self.next_u32());
        let high = u64::from(self.next_u32() >> (64 - k));
        low | (high << 32)
    }

    /// `_randbelow(n)`: uniform in `0..n`, n > 0.
    pub fn below(&mut self, n: u64) -> u64 {
        let k = 64 - n.leading_zeros();
        loop {
            let r = self.getrandbits(k);
            if r < n {
                return r;
            }
        }
    }

    /// `randrange(start, stop, step)`, with Python's error messages.
    pub fn randrange(&mut self, start: i64, stop: i64, step: i64) -> Result<i64, String> {
        let width = i128::from(stop) - i128::from(start);
        let step = i128::from(step);
        let n = match step {
            1 if width > 0 => width,
            1 => return Err(format!("empty range in randrange({start}, {stop})")),
            0 => return Err("zero step for randrange()".into()),
            s if s > 0 => (width + s - 1).div_euclid(s),
            s => (width + s + 1).div_euclid(s),
        };
        if n <= 0 {
            return Err("empty range for randrange()".into());
        }
        let pick = i128::from(self.below(n as u64));
        i64::try_from(i128::from(start) + step * pick).map_err(|e| e.to_string())
    }

    /// `shuffle(items)` in place, as Python does it.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

/// `random.seed`'s key: a str becomes the integer of its UTF-8 bytes followed by their
/// SHA-512 (big-endian), an int its absolute value; the key is that integer's 32-bit words,
/// least significant first.
fn key_of(seed: Seed<'_>) -> Vec<u32> {
    let big_endian: Vec<u8> = match seed {
        Seed::Str(s) => {
            let mut bytes = s.as_bytes().to_vec();
            bytes.extend_from_slice(&Sha512::digest(s.as_bytes()));
            bytes
        }
        Seed::Int(n) => n.unsigned_abs().to_be_bytes().to_vec(),
    };
    let mut words: Vec<u32> = big_endian
        .rchunks(4)
        .map(|chunk| {
            let mut word = [0u8; 4];
            word[4 - chunk.len()..].copy_from_slice(chunk);
            u32::from_be_bytes(word)
        })
        .collect();
    while words.len() > 1 && words.last() == Some(&0) {
        words.pop();
    }
    if words.is_empty() {
        words.push(0);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values from CPython 3.11 `random.Random(seed)`.
    #[test]
    fn sequences_match_python() {
        let mut r = PyRandom::new(Seed::Str("h1"));
        let got: Vec<i64> = (0..5)
            .map(|_| r.randrange(0, 60, 1).unwrap_or(-1))
            .collect();
        assert_eq!(got, PY_H1_RANDRANGE_60);
        let mut r = PyRandom::new(Seed::Int(42));
        let got: Vec<u64> = (0..5).map(|_| r.below(1000)).collect();
        assert_eq!(got, PY_42_BELOW_1000);
        let mut r = PyRandom::new(Seed::Str("web.example.com"));
        let mut items: Vec<u32> = (0..10).collect();
        r.shuffle(&mut items);
        assert_eq!(items, PY_WEB_SHUFFLE_10);
        let mut r = PyRandom::new(Seed::Int(0));
        assert_eq!(r.randrange(10, 100, 7), Ok(PY_0_RANDRANGE_10_100_7));
        let mut r = PyRandom::new(Seed::Int(-7));
        assert_eq!(r.below(1 << 40), PY_NEG7_BELOW_2_40);
    }

    #[test]
    fn randrange_refuses_what_python_refuses() {
        let mut r = PyRandom::new(Seed::Int(1));
        assert_eq!(
            r.randrange(5, 5, 1),
            Err("empty range in randrange(5, 5)".to_string())
        );
        assert_eq!(
            r.randrange(0, 5, 0),
            Err("zero step for randrange()".to_string())
        );
        assert_eq!(
            r.randrange(0, 5, -1),
            Err("empty range for randrange()".to_string())
        );
    }

    const PY_H1_RANDRANGE_60: [i64; 5] = [32, 51, 59, 7, 5];
    const PY_42_BELOW_1000: [u64; 5] = [654, 114, 25, 759, 281];
    const PY_WEB_SHUFFLE_10: [u32; 10] = [4, 7, 3, 5, 1, 9, 6, 2, 8, 0];
    const PY_0_RANDRANGE_10_100_7: i64 = 52;
    const PY_NEG7_BELOW_2_40: u64 = 868_231_286_071;
}
