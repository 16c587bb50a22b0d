//! Tessera: a static-partitioning type-1 hypervisor.
//!
//! Data flows one way: trap → arch decode ([`arch`]) → arch-neutral
//! [`exit::Exit`] → device bus ([`devices`]) or VM service ([`vm`], [`vcpu`])
//! → resume. See `docs/ARCHITECTURE.md` for the map.
//!
//! The crate builds for the bare-metal targets (the hypervisor image, with
//! `src/main.rs`) and for the host, where only the pure logic (decoders,
//! page-table building, device models) is compiled and unit-tested.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

extern crate alloc;

pub mod arch;
pub mod config;
pub mod console;
pub mod devices;
pub mod exit;
pub mod ivc;
pub mod mm;
pub mod platform;
pub mod vm;

#[cfg(test)]
mod fuzz;

#[cfg(target_os = "none")]
pub mod drivers;
#[cfg(target_os = "none")]
pub mod vcpu;
