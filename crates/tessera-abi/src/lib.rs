//! The call interface Tessera gives its guests, in one place for the
//! hypervisor and the guests we write: SMC Calling Convention function ids
//! of PSCI (the Arm power interface, through HVC or SMC) and of Tessera's own
//! hypercalls (vendor-specific hypervisor service range), with their return
//! codes.
#![no_std]

/// PSCI function ids (PSCI 1.1, SMC32 and SMC64 variants where they differ).
pub mod psci {
    /// PSCI_VERSION.
    pub const VERSION: u32 = 0x8400_0000;
    /// CPU_SUSPEND (32-bit).
    pub const CPU_SUSPEND_32: u32 = 0x8400_0001;
    /// CPU_SUSPEND (64-bit).
    pub const CPU_SUSPEND_64: u32 = 0xc400_0001;
    /// CPU_OFF.
    pub const CPU_OFF: u32 = 0x8400_0002;
    /// CPU_ON (32-bit).
    pub const CPU_ON_32: u32 = 0x8400_0003;
    /// CPU_ON (64-bit).
    pub const CPU_ON_64: u32 = 0xc400_0003;
    /// AFFINITY_INFO (32-bit).
    pub const AFFINITY_INFO_32: u32 = 0x8400_0004;
    /// AFFINITY_INFO (64-bit).
    pub const AFFINITY_INFO_64: u32 = 0xc400_0004;
    /// MIGRATE_INFO_TYPE.
    pub const MIGRATE_INFO_TYPE: u32 = 0x8400_0006;
    /// SYSTEM_OFF.
    pub const SYSTEM_OFF: u32 = 0x8400_0008;
    /// SYSTEM_RESET.
    pub const SYSTEM_RESET: u32 = 0x8400_0009;
    /// PSCI_FEATURES.
    pub const FEATURES: u32 = 0x8400_000a;

    /// Version this hypervisor implements: 1.1.
    pub const VERSION_1_1: u64 = 0x0001_0001;

    /// Return codes.
    pub const SUCCESS: i64 = 0;
    /// The call is not supported.
    pub const NOT_SUPPORTED: i64 = -1;
    /// A parameter is wrong (e.g. an MPIDR the VM does not own).
    pub const INVALID_PARAMETERS: i64 = -2;
    /// The caller may not do this.
    pub const DENIED: i64 = -3;
    /// CPU_ON of a CPU that is on.
    pub const ALREADY_ON: i64 = -4;
    /// CPU_ON of a CPU whose CPU_ON is still pending.
    pub const ON_PENDING: i64 = -5;
    /// CPU_ON with an entry point outside the caller's memory.
    pub const INVALID_ADDRESS: i64 = -9;
    /// MIGRATE_INFO_TYPE: no trusted OS needs migration.
    pub const TOS_NOT_PRESENT_MP: i64 = 2;

    /// AFFINITY_INFO states.
    pub const AFFINITY_ON: i64 = 0;
    /// The CPU is off.
    pub const AFFINITY_OFF: i64 = 1;
    /// The CPU is being turned on.
    pub const AFFINITY_ON_PENDING: i64 = 2;

    /// Whether `fid` is in the PSCI range (standard secure service, 0x00-0x1f).
    pub const fn is_psci(fid: u32) -> bool {
        fid & 0xbfff_ffe0 == 0x8400_0000
    }
}

/// Tessera hypercalls: fast calls, SMC64, owner 6 (vendor hypervisor service).
pub mod tessera {
    /// Does nothing and returns 0: the round-trip cost benchmark.
    pub const NULL: u32 = 0xc600_0000;
    /// Returns x1 = VM id, x2 = vCPU count, x3 = size of the RAM region that
    /// holds the entry point, x4 = how many times the VM has been reset.
    pub const VM_INFO: u32 = 0xc600_0001;
    /// Test builds only (the hypervisor's cargo feature `fault-injection`):
    /// makes the hypervisor break on purpose, x1 says how
    /// ([`fault_inject`]). A normal build answers NOT_SUPPORTED.
    pub const FAULT_INJECT: u32 = 0xc600_00f0;

    /// What `FAULT_INJECT` breaks.
    pub mod fault_inject {
        /// The hypervisor overflows its stack on the calling vCPU's core.
        pub const STACK_OVERFLOW: u64 = 1;
    }
}

/// SMCCC return value for an unknown function id.
pub const NOT_SUPPORTED: u64 = -1i64 as u64;
