//! The x86_64 back-end as the [`crate::arch::Arch`] contract: each item
//! delegates to the free function the neutral core calls, so the compiler
//! checks that this back-end provides the whole interface.

use super::interface;

/// The x86_64 VMX back-end.
pub struct X86_64;

arch_contract!(X86_64, interface);
