//! VMs. Pure logic, built and unit-tested on the host too:
//! [`power`] (the power-state machine: PSCI CPU_ON/OFF, stop, reset),
//! [`log`] (rate limiting of the lines a guest can cause) and [`progress`]
//! (a guest that cannot take its own exceptions). On bare metal:
//! `create` (creation from the config, verified image loading) and
//! `lifecycle` (stop, reset, parking, the end of the run), which carry the
//! power-state machine's decisions out through the arch interface.

pub mod log;
pub mod power;
pub mod progress;

pub use power::{Ending, Power, PowerError, VmState};

#[cfg(target_os = "none")]
mod create;
#[cfg(target_os = "none")]
mod lifecycle;

#[cfg(target_os = "none")]
pub use create::{all, create_all, Vcpu, Vm};
#[cfg(target_os = "none")]
pub use lifecycle::{park, Given};
