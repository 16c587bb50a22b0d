//! Rate limiting of the log lines a guest can cause (unhandled exits,
//! policy outcomes, its `reset #N` lines): a token bucket per VM, refilled
//! over the system counter. A guest gets a burst, then a steady trickle;
//! what it loses is counted, the next line it is allowed says how many went
//! missing, and the end-of-run summary carries the totals. A VM reset does
//! not touch the bucket: the rate goes on, it is not a lifetime cap.

/// Lines a VM may log at once after being quiet.
pub const BURST: u32 = 16;
/// Lines per second a VM may log in the long run.
pub const PER_SECOND: u64 = 4;

/// Whether a line may be printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Print it; `dropped` lines were suppressed since the last one printed.
    Log {
        /// Suppressed lines since the last printed one.
        dropped: u64,
    },
    /// Drop it (counted).
    Suppress,
}

/// One VM's token bucket and counters.
#[derive(Debug, Clone)]
pub struct LogBucket {
    tokens: u32,
    /// Counter value up to which tokens have been credited.
    credited: u64,
    dropped_since: u64,
    /// Lines printed.
    pub logged: u64,
    /// Lines suppressed, all told.
    pub suppressed: u64,
}

impl LogBucket {
    /// A full bucket at counter value `now`.
    pub const fn new(now: u64) -> Self {
        Self {
            tokens: BURST,
            credited: now,
            dropped_since: 0,
            logged: 0,
            suppressed: 0,
        }
    }

    /// Decides on one line at counter value `now`, the counter running at
    /// `freq` Hz.
    pub fn admit(&mut self, now: u64, freq: u64) -> Admit {
        let per_token = (freq / PER_SECOND).max(1);
        let earned = now.saturating_sub(self.credited) / per_token;
        if earned > 0 {
            let tokens = u64::from(self.tokens).saturating_add(earned);
            if tokens >= u64::from(BURST) {
                self.tokens = BURST;
                self.credited = now;
            } else {
                self.tokens = tokens as u32;
                self.credited += earned * per_token;
            }
        }
        if self.tokens == 0 {
            self.suppressed += 1;
            self.dropped_since += 1;
            return Admit::Suppress;
        }
        self.tokens -= 1;
        self.logged += 1;
        let dropped = core::mem::take(&mut self.dropped_since);
        Admit::Log { dropped }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HZ: u64 = 62_500_000;

    #[test]
    fn a_burst_then_the_rate() {
        let mut b = LogBucket::new(0);
        for _ in 0..BURST {
            assert_eq!(b.admit(0, HZ), Admit::Log { dropped: 0 });
        }
        assert_eq!(b.admit(0, HZ), Admit::Suppress);
        assert_eq!(b.admit(1, HZ), Admit::Suppress);
        // A quarter second later one token is back, and the line says how
        // many were lost.
        assert_eq!(b.admit(HZ / PER_SECOND, HZ), Admit::Log { dropped: 2 });
        assert_eq!(b.admit(HZ / PER_SECOND, HZ), Admit::Suppress);
        assert_eq!((b.logged, b.suppressed), (u64::from(BURST) + 1, 3));
    }

    /// A flood of a million lines over ten seconds prints the burst plus
    /// the rate, not a lifetime cap: it keeps printing as time goes on.
    #[test]
    fn a_flood_is_bounded_by_the_rate_and_never_silenced() {
        let mut b = LogBucket::new(0);
        let mut printed_per_second = [0u64; 10];
        for i in 0..1_000_000u64 {
            let now = i * (10 * HZ) / 1_000_000;
            if let Admit::Log { .. } = b.admit(now, HZ) {
                printed_per_second[(now / HZ) as usize] += 1;
            }
        }
        assert_eq!(printed_per_second[0], u64::from(BURST) + PER_SECOND - 1);
        for (s, &n) in printed_per_second.iter().enumerate().skip(1) {
            assert!(
                (PER_SECOND - 1..=PER_SECOND + 1).contains(&n),
                "second {s}: {n}"
            );
        }
        assert_eq!(b.logged + b.suppressed, 1_000_000);
    }

    #[test]
    fn quiet_time_refills_to_the_burst_only() {
        let mut b = LogBucket::new(0);
        for _ in 0..BURST {
            b.admit(0, HZ);
        }
        let later = 1000 * HZ;
        for _ in 0..BURST {
            assert!(matches!(b.admit(later, HZ), Admit::Log { .. }));
        }
        assert_eq!(b.admit(later, HZ), Admit::Suppress);
    }
}
