//! The AArch64 back-end as the [`crate::arch::Arch`] contract: each item
//! delegates to the free function the neutral core calls, so the compiler
//! checks that this back-end provides the whole interface with the agreed
//! signatures.

use super::interface;

/// The AArch64 EL2 back-end.
pub struct Aarch64;

arch_contract!(Aarch64, interface);
