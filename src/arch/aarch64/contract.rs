//! The AArch64 back-end as the [`crate::arch::Arch`] contract: each item
//! delegates to the free function the neutral core calls, so the compiler
//! checks that this back-end provides the whole interface with the agreed
//! signatures.

use super::interface;
use super::stage2::Stage2;
use crate::arch::GuestMemory;
use crate::mm::table::{MapError, MemKind, TableAllocator};

/// The AArch64 EL2 back-end.
pub struct Aarch64;

impl GuestMemory for Stage2 {
    fn new(alloc: &mut impl TableAllocator) -> Result<Self, MapError> {
        Stage2::new(alloc)
    }
    fn map(
        &mut self,
        alloc: &mut impl TableAllocator,
        gpa: u64,
        hpa: u64,
        size: u64,
        kind: MemKind,
    ) -> Result<(), MapError> {
        Stage2::map(self, alloc, gpa, hpa, size, kind)
    }
    fn root(&self) -> u64 {
        Stage2::root(self)
    }
}

arch_contract!(Aarch64, interface);
