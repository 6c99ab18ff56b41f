//! Picks listen addresses for hosts so that concurrently running test processes don't collide.
//!
//! All of 127.0.0.0/8 is local on Linux, so each host gets its own address and the standard
//! port 22. A host set starts in a /24 block `127.A.B.0` (A from 1 to 254; 127.0.x.x is left to
//! the hand-run scripts on these machines) chosen by hashing the pid and a per-process counter,
//! and moves to another hashed block when an address is taken. Every address is checked by
//! binding it first. When port 22 cannot be bound at all (another sshd listens on 0.0.0.0:22,
//! or the process is not root) all hosts share 127.0.0.1 with ports the kernel hands out.
//! A race with another process between the check and sshd's own bind is still possible; the
//! caller starts that sshd again on a new address.

use std::collections::HashSet;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};

const SSH_PORT: u16 = 22;
/// Second and third octet of 127.A.B.x with A in 1..=254.
const BLOCKS: u64 = 254 * 256;
/// Consecutive blocks where the first address was taken before concluding that something
/// holds port 22 on every address.
const TAKEN_BLOCKS_BEFORE_PORTS: u32 = 8;
/// How often an address may be found taken before giving up.
const MAX_TAKEN: u32 = 1000;

static HOST_SETS: AtomicU64 = AtomicU64::new(0);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Addressing {
    /// One address per host, port 22.
    Addresses,
    /// 127.0.0.1 for every host, distinct ports.
    Ports,
}

pub(crate) struct AddressPool {
    addressing: Addressing,
    seed: u64,
    block: u64,
    next_host: u8,
    blocks_tried: u64,
    /// Blocks in a row whose first address was taken.
    taken_in_a_row: u32,
    /// Handed out by this pool; their sshd may not have bound them yet.
    handed_out: HashSet<SocketAddrV4>,
}

/// splitmix64: spreads pid/counter seeds evenly over the blocks.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn block_address(block: u64, host: u8) -> Ipv4Addr {
    let second = 1 + (block / 256) as u8;
    let third = (block % 256) as u8;
    Ipv4Addr::new(127, second, third, host)
}

impl AddressPool {
    /// `one_address`: put every host on 127.0.0.1 with its own port from the start.
    pub(crate) fn new(one_address: bool) -> AddressPool {
        let set = HOST_SETS.fetch_add(1, Ordering::Relaxed);
        let seed = (u64::from(std::process::id()) << 32) ^ set;
        AddressPool {
            addressing: if one_address {
                Addressing::Ports
            } else {
                Addressing::Addresses
            },
            seed,
            block: mix(seed) % BLOCKS,
            next_host: 1,
            blocks_tried: 0,
            taken_in_a_row: 0,
            handed_out: HashSet::new(),
        }
    }

    fn next_block(&mut self) {
        self.blocks_tried += 1;
        self.block = mix(self.seed ^ (self.blocks_tried << 16)) % BLOCKS;
        self.next_host = 1;
    }

    /// A free address for the next host (free when checked; see the module comment).
    pub(crate) fn allocate(&mut self) -> io::Result<SocketAddrV4> {
        let addr = self.find_free()?;
        self.handed_out.insert(addr);
        Ok(addr)
    }

    fn find_free(&mut self) -> io::Result<SocketAddrV4> {
        let mut taken = 0;
        while self.addressing == Addressing::Addresses {
            if self.next_host == 255 {
                self.next_block();
            }
            let candidate = SocketAddrV4::new(block_address(self.block, self.next_host), SSH_PORT);
            let first_in_block = self.next_host == 1;
            self.next_host += 1;
            if self.handed_out.contains(&candidate) {
                continue;
            }
            match TcpListener::bind(candidate) {
                Ok(_) => {
                    self.taken_in_a_row = 0;
                    return Ok(candidate);
                }
                Err(error) if error.kind() == io::ErrorKind::AddrInUse => {
                    taken += 1;
                    if taken > MAX_TAKEN {
                        return Err(io::Error::new(
                            io::ErrorKind::AddrInUse,
                            format!("no free loopback address found after {MAX_TAKEN} tries"),
                        ));
                    }
                    if first_in_block {
                        self.taken_in_a_row += 1;
                        if self.taken_in_a_row >= TAKEN_BLOCKS_BEFORE_PORTS {
                            self.addressing = Addressing::Ports;
                        }
                    }
                    // Someone else uses this block: their hosts are likely contiguous.
                    self.next_block();
                }
                // Not root (port 22 is privileged) or an address that cannot be bound.
                Err(_) => self.addressing = Addressing::Ports,
            }
        }
        loop {
            let listener = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))?;
            let SocketAddr::V4(addr) = listener.local_addr()? else {
                return Err(io::Error::other("an IPv4 bind returned an IPv6 address"));
            };
            if !self.handed_out.contains(&addr) {
                return Ok(addr);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_stay_out_of_127_0_and_in_range() {
        for block in [0, 255, 256, BLOCKS - 1] {
            let addr = block_address(block, 1);
            assert!(addr.octets()[1] >= 1, "{addr}");
            assert!(addr.is_loopback(), "{addr}");
        }
    }

    #[test]
    fn allocations_are_distinct() {
        for one_address in [false, true] {
            let mut pool = AddressPool::new(one_address);
            let handed_out: HashSet<SocketAddrV4> = (0..300)
                .map(|_| pool.allocate().expect("a free address"))
                .collect();
            assert_eq!(handed_out.len(), 300);
            assert!(handed_out.iter().all(|addr| addr.ip().is_loopback()));
            if one_address {
                assert!(handed_out
                    .iter()
                    .all(|addr| *addr.ip() == Ipv4Addr::LOCALHOST));
            }
        }
    }
}
