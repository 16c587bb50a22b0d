//! x86_64 back-end: multiboot2 boot, VMX root operation, EPT, VM-exit
//! decoding. See docs/X86.md.
//!
//! Pure parts (`controls`, `ept`, `exit_reason`, `guest_cpuid`,
//! `guest_paging`, `guest_walk`, `io_bitmap`, `mmio_decode`, `msr`, `vioapic`, `vlapic`) build on the host too and are unit-tested there;
//! everything that touches the CPU is bare-metal only.

pub mod controls;
pub mod ept;
pub mod exit_reason;
pub mod guest_cpuid;
pub mod guest_paging;
pub mod guest_walk;
pub mod io_bitmap;
pub mod mmio_decode;
pub mod msr;
pub mod vioapic;
pub mod vlapic;

/// Items that touch the hardware: built for the bare-metal target only.
macro_rules! bare_metal {
    ($($item:item)*) => { $(#[cfg(target_os = "none")] $item)* };
}

bare_metal! {
    mod boot;
    pub mod contract;
    pub mod cpu;
    mod desc;
    mod guest_memory;
    mod ioapic;
    mod irq_lines;
    mod mmio;
    pub mod interrupts;
    pub mod interface;
    mod smp;
    mod start;
    mod string_io;
    mod vmx;
    mod vmexit;
}
