//! Fuzz (property) targets for the pure parts of the hypervisor, run by
//! `cargo test` with a small case count and by `make fuzz` with a large one
//! (see docs/TESTING.md). Each target draws inputs from a strategy biased
//! towards the encodings that matter and checks invariants, not just "no
//! panic"; the engine is `tessera-fuzz` (proptest underneath).

mod devices;
mod esr;
mod firmware_dt;
mod insn;
mod ivc;
mod ivc_pci;
mod stage2;
mod vgic;
mod x86_mmio;

use alloc::boxed::Box;

/// A heap value lent out as `&'static` (the vGIC API wants static
/// references) and freed when the guard drops.
pub(crate) struct Leaked<T>(*mut T);

impl<T> Leaked<T> {
    pub(crate) fn new(value: T) -> Self {
        Self(Box::into_raw(Box::new(value)))
    }
    pub(crate) fn get(&self) -> &'static T {
        // SAFETY: the box lives until `self` drops; every holder of the
        // reference (the front-ends, the vGIC) is a field declared before
        // the guard in its owner, so it is dropped first.
        unsafe { &*self.0 }
    }
}

impl<T> Drop for Leaked<T> {
    fn drop(&mut self) {
        // SAFETY: from `Box::into_raw`, freed once, no reference outlives it.
        drop(unsafe { Box::from_raw(self.0) });
    }
}
