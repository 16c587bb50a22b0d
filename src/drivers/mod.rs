//! Drivers for the board's own devices the hypervisor uses.

pub mod pl011;
