//! Hardware edge. One back-end per architecture; the rest of the hypervisor
//! sees only [`crate::exit::Exit`] and the small API each back-end exports.

#[cfg(any(target_arch = "aarch64", test))]
pub mod aarch64;

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub use aarch64::*;
