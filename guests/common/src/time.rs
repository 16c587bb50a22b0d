//! Bounded waits on the virtual counter, so a broken hypervisor gives FAIL
//! rather than a hang.

use crate::cpu;

/// CNTFRQ_EL0 value assumed if the register reads 0.
const FALLBACK_FREQ_HZ: u64 = 62_500_000;

/// Counter ticks per second.
pub fn ticks_per_second() -> u64 {
    match cpu::cntfrq() {
        0 => FALLBACK_FREQ_HZ,
        f => f,
    }
}

/// Converts microseconds to counter ticks (at least 1).
pub fn us_to_ticks(us: u64) -> u64 {
    (ticks_per_second() * us / 1_000_000).max(1)
}

/// Polls `cond` until it holds or `timeout_ms` of counter time passed.
/// Returns whether it held.
pub fn wait_until(timeout_ms: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = cpu::cntvct().saturating_add(us_to_ticks(timeout_ms * 1000));
    loop {
        if cond() {
            return true;
        }
        if cpu::cntvct() >= deadline {
            return cond();
        }
    }
}
