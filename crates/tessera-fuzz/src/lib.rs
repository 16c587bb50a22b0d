//! Host-only harness for Tessera's fuzz (property) targets.
//!
//! A target is a [`proptest`] strategy that generates inputs and a property
//! that must hold for each: [`run`] draws `FUZZ_CASES` inputs (default
//! [`DEFAULT_CASES`], so `cargo test` stays quick), stops at the first
//! failure, shrinks it to a minimal input and panics with that input and the
//! seed to replay it. On success it prints one line:
//! `fuzz <name>: <n> inputs, 0 failures (seed <s>)`.
//!
//! Environment:
//! - `FUZZ_CASES`: inputs per target (`make fuzz` sets 1,000,000);
//! - `FUZZ_SEED`: replay a run (decimal, as printed); random otherwise.
//!
//! Targets live next to the code they test (`cargo test` finds them); see
//! docs/TESTING.md for the list and how to add one.

use std::cell::Cell;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

pub use proptest;
use proptest::strategy::Strategy;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestError, TestRunner};

/// Inputs per target when `FUZZ_CASES` is not set: the bounded run of
/// `make test` (all targets together take well under a minute).
pub const DEFAULT_CASES: u32 = 2000;

/// The case count for this run: `FUZZ_CASES`, else [`DEFAULT_CASES`].
pub fn cases() -> u32 {
    env_u64("FUZZ_CASES").map_or(DEFAULT_CASES, |n| {
        u32::try_from(n).unwrap_or(u32::MAX).max(1)
    })
}

fn env_u64(name: &str) -> Option<u64> {
    let raw = std::env::var(name).ok()?;
    let digits: String = raw.chars().filter(|c| *c != '_' && *c != ',').collect();
    match digits.parse() {
        Ok(n) => Some(n),
        Err(_) => panic!("{name}={raw:?} is not a number"),
    }
}

fn seed() -> u64 {
    env_u64("FUZZ_SEED").unwrap_or_else(|| {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        // Mix in the thread so targets started in the same tick differ.
        let thread = format!("{:?}", std::thread::current().id());
        thread
            .bytes()
            .fold(t, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
    })
}

/// Fails the current input with `message` unless `cond` holds; use it in
/// properties instead of `assert!` so the failure is shrunk and reported.
pub fn check(cond: bool, message: impl FnOnce() -> String) -> Result<(), TestCaseError> {
    if cond {
        Ok(())
    } else {
        Err(TestCaseError::fail(message()))
    }
}

/// Runs target `name`: [`cases`] inputs from `strategy` through `property`.
/// A panic inside `property` (or in the code it calls) counts as a failure,
/// like an `Err`.
pub fn run<S: Strategy>(
    name: &str,
    strategy: S,
    property: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    run_classified(name, strategy, |v| property(v).map(|()| None));
}

/// Like [`run`], for properties whose inputs fall in named classes (say,
/// configs the validator accepted): `property` names the class of each
/// passing input, or `None`. The report line gives the count of each class
/// and the counts are returned, so a target can insist that a generator
/// still reaches an interesting class.
pub fn run_classified<S: Strategy>(
    name: &str,
    strategy: S,
    property: impl Fn(S::Value) -> Result<Option<&'static str>, TestCaseError>,
) -> Classes {
    let cases = cases();
    let seed = seed();
    let config = Config {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        // Failures are reported with their seed and kept as unit tests,
        // not in regression files next to the sources.
        failure_persistence: None,
        max_shrink_iters: 100_000,
        ..Config::default()
    };
    let ran = Cell::new(0u64);
    let classes = std::cell::RefCell::new(Classes::default());
    let shrinking = Cell::new(false);
    let start = Instant::now();
    let mut runner = TestRunner::new(config);
    let result = runner.run(&strategy, |input| {
        if !shrinking.get() {
            ran.set(ran.get() + 1);
        }
        match property(input) {
            Ok(class) => {
                if let (Some(c), false) = (class, shrinking.get()) {
                    classes.borrow_mut().add(c);
                }
                Ok(())
            }
            Err(e) => {
                shrinking.set(true);
                Err(e)
            }
        }
    });
    let classes = classes.into_inner();
    match result {
        Ok(()) => {
            println!(
                "fuzz {name}: {} inputs, 0 failures{} ({:.1} s, seed {seed})",
                ran.get(),
                classes,
                start.elapsed().as_secs_f64()
            );
            classes
        }
        Err(TestError::Fail(why, input)) => panic!(
            "fuzz {name}: input {} of {cases} failed: {why}\n\
             minimal failing input: {input:#?}\n\
             replay with FUZZ_SEED={seed} FUZZ_CASES={cases}",
            ran.get()
        ),
        Err(TestError::Abort(why)) => panic!("fuzz {name}: aborted: {why} (seed {seed})"),
    }
}

/// How many passing inputs fell in each class (see [`run_classified`]).
#[derive(Debug, Default, Clone)]
pub struct Classes(Vec<(&'static str, u64)>);

impl Classes {
    fn add(&mut self, class: &'static str) {
        match self.0.iter_mut().find(|(c, _)| *c == class) {
            Some((_, n)) => *n += 1,
            None => self.0.push((class, 1)),
        }
    }

    /// Inputs counted in `class`.
    pub fn count(&self, class: &str) -> u64 {
        self.0
            .iter()
            .find(|(c, _)| *c == class)
            .map_or(0, |(_, n)| *n)
    }
}

impl std::fmt::Display for Classes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (class, n) in &self.0 {
            write!(f, ", {n} {class}")?;
        }
        Ok(())
    }
}
