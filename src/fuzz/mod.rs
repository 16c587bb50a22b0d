//! Fuzz (property) targets for the pure parts of the hypervisor, run by
//! `cargo test` with a small case count and by `make fuzz` with a large one
//! (see docs/TESTING.md). Each target draws inputs from a strategy biased
//! towards the encodings that matter and checks invariants, not just "no
//! panic"; the engine is `tessera-fuzz` (proptest underneath).

mod devices;
mod esr;
mod insn;
mod stage2;
mod vgic;
