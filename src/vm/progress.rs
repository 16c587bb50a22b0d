//! Detecting a guest that cannot take the exceptions it is given: when an
//! injected exception faults again inside the very vector entry it was sent
//! to, the guest has no working vector table (or a handler that cannot run)
//! and would loop between its vector and the hypervisor forever. After
//! [`STUCK_LIMIT`] such injections in a row the VM's `on_fault` policy
//! applies instead of another injection.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Size of one AArch64 vector entry: a fault this close after the vector
/// an injection went to has made no progress.
pub const VECTOR_ENTRY_SIZE: u64 = 0x80;
/// Injections in a row with no progress before the guest counts as stuck.
pub const STUCK_LIMIT: u32 = 4;

/// Per-vCPU record of the last injection; only the vCPU's own core
/// writes it (relaxed atomics make it shareable).
#[derive(Debug, Default)]
pub struct Progress {
    last_vector: AtomicU64,
    repeats: AtomicU32,
}

impl Progress {
    /// A record with no injection yet.
    pub const fn new() -> Self {
        Self {
            last_vector: AtomicU64::new(u64::MAX),
            repeats: AtomicU32::new(0),
        }
    }

    /// Forgets past injections (the vCPU starts afresh).
    pub fn clear(&self) {
        self.last_vector.store(u64::MAX, Ordering::Relaxed);
        self.repeats.store(0, Ordering::Relaxed);
    }

    /// Called for an exception the hypervisor is about to inject: the
    /// guest faulted at `pc`. Returns true if the guest is stuck (the
    /// injection should not be made).
    pub fn stuck(&self, pc: u64) -> bool {
        let last = self.last_vector.load(Ordering::Relaxed);
        let repeats = if pc.wrapping_sub(last) < VECTOR_ENTRY_SIZE {
            self.repeats.load(Ordering::Relaxed) + 1
        } else {
            0
        };
        self.repeats.store(repeats, Ordering::Relaxed);
        repeats >= STUCK_LIMIT
    }

    /// Records that an injection sent the guest to `vector`.
    pub fn injected(&self, vector: u64) {
        self.last_vector.store(vector, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VBAR: u64 = 0x4000_0800;

    #[test]
    fn faults_in_the_vector_entry_are_stuck_after_the_limit() {
        let p = Progress::new();
        // First unhandled access in normal code: injected.
        assert!(!p.stuck(0x4000_1234));
        p.injected(VBAR + 0x200);
        for _ in 1..STUCK_LIMIT {
            assert!(!p.stuck(VBAR + 0x200));
            p.injected(VBAR + 0x200);
        }
        assert!(p.stuck(VBAR + 0x204), "a fault right after the vector");
    }

    #[test]
    fn a_handler_that_runs_is_progress() {
        let p = Progress::new();
        for _ in 0..100 {
            assert!(!p.stuck(0x4000_1234), "repeated faults from normal code");
            p.injected(VBAR + 0x200);
        }
        // Faulting once in the vector, then from elsewhere: reset.
        assert!(!p.stuck(VBAR + 0x200));
        p.injected(VBAR + 0x200);
        assert!(!p.stuck(VBAR + 0x900));
        p.injected(VBAR + 0x200);
        assert!(!p.stuck(VBAR + 0x200 + VECTOR_ENTRY_SIZE), "past the entry");
    }

    #[test]
    fn no_vector_table_at_zero() {
        let p = Progress::new();
        let mut stuck_at = None;
        let mut pc = 0x4000_0040;
        for i in 0..10 {
            if p.stuck(pc) {
                stuck_at = Some(i);
                break;
            }
            p.injected(0x200);
            pc = 0x200;
        }
        assert_eq!(stuck_at, Some(STUCK_LIMIT));
        p.clear();
        assert!(!p.stuck(0x200));
    }
}
