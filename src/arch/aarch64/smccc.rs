//! SMCCC function ids the guest calls: the shared ABI crate, re-exported
//! where the trap handlers look for it.

pub use tessera_abi::*;
