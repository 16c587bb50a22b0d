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

    /// IVC_ALLOC: x1 = peer VM id, x2 = size in bytes (rounded up to
    /// 4 KiB) → x0 = status, x1 = channel id, x2 = guest-physical base in
    /// the caller, x3 = size. Allocates a channel from the pool the caller
    /// shares with the peer, maps it into the caller and rings the peer's
    /// pool doorbell; the peer sees it only once it attaches.
    pub const IVC_ALLOC: u32 = 0xc600_0010;
    /// IVC_ATTACH: x1 = channel id → x0 = status, x1 = guest-physical base
    /// in the caller, x2 = size, x3 = the owner's VM id. The peer named at
    /// allocation maps the channel; the owner's doorbell rings.
    pub const IVC_ATTACH: u32 = 0xc600_0011;
    /// IVC_RELEASE: x1 = channel id → x0 = status. Either party ends the
    /// channel: it is unmapped from both (TLBs invalidated), scrubbed and
    /// returned to the pool; the other party's doorbell rings.
    pub const IVC_RELEASE: u32 = 0xc600_0012;
    /// IVC_STATUS: x1 = channel id → x0 = status, x1 = state
    /// ([`ivc::OFFERED`], [`ivc::ATTACHED`], [`ivc::PEER_GONE`]), x2 =
    /// guest-physical base in the caller (0 while the caller has not
    /// mapped it), x3 = size, x4 = the other party's VM id.
    pub const IVC_STATUS: u32 = 0xc600_0013;
    /// IVC_POOL_INFO: x1 = pool id → x0 = status, x1 = pool size, x2 =
    /// free bytes, x3 = free channel slots, x4 = channels the caller holds.
    pub const IVC_POOL_INFO: u32 = 0xc600_0014;

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

/// Status codes (x0) and states of the dynamic inter-VM channel calls
/// (`tessera::IVC_*`). A call that fails changes nothing.
pub mod ivc {
    /// Done.
    pub const SUCCESS: i64 = 0;
    /// Size 0, or larger than the pool; an unknown pool id.
    pub const INVALID: i64 = -2;
    /// Not a pool member, or the peer is not in a pool with the caller
    /// (itself included), or the call is not the caller's to make (attach
    /// by the owner).
    pub const DENIED: i64 = -3;
    /// No free slot or no contiguous free range of that size in the pool.
    pub const NO_SPACE: i64 = -4;
    /// The caller already holds `max_per_vm` channels of the pool.
    pub const LIMIT: i64 = -5;
    /// No live channel has this id (never allocated, released already: a
    /// double release, or malformed).
    pub const BAD_ID: i64 = -6;
    /// The channel is another pair's: the caller is neither its owner nor
    /// its peer.
    pub const NOT_YOURS: i64 = -7;
    /// Attach of a channel the caller has attached already, or whose
    /// owner is gone.
    pub const BAD_STATE: i64 = -8;

    /// IVC_STATUS state: allocated, mapped in the owner, not yet attached.
    pub const OFFERED: u64 = 0;
    /// Mapped in both parties.
    pub const ATTACHED: u64 = 1;
    /// The other party stopped or was reset: its mapping is gone, the
    /// caller's stays until it releases the channel.
    pub const PEER_GONE: u64 = 2;

    /// Channel id layout: bits 31:16 generation (never 0), 15:8 pool id,
    /// 7:0 slot. A released slot's next channel has a new generation, so
    /// an old id never names it.
    pub const fn channel_id(generation: u16, pool: u8, slot: u8) -> u32 {
        (generation as u32) << 16 | (pool as u32) << 8 | slot as u32
    }
}

/// SMCCC return value for an unknown function id.
pub const NOT_SUPPORTED: u64 = -1i64 as u64;

/// A static channel's doorbell page: registers as byte offsets in the
/// 4 KiB page, 32-bit accesses (docs/IVC.md).
pub mod doorbell {
    /// RO: the channel id (its index in the config's channel list).
    pub const CHANNEL_ID: u64 = 0x00;
    /// RO: how many VMs share the channel (this one included).
    pub const MEMBERS: u64 = 0x04;
    /// RO: this VM's index among the members.
    pub const SELF: u64 = 0x08;
    /// RO: size of the shared memory in bytes, low 32 bits.
    pub const SIZE_LO: u64 = 0x10;
    /// RO: size of the shared memory in bytes, high 32 bits.
    pub const SIZE_HI: u64 = 0x14;
    /// WO: ring member `value`, or every other member with [`RING_ALL`].
    pub const RING: u64 = 0x20;
    /// RO: bit `i` set = member `i` rang this VM since the bit was acked.
    pub const PENDING: u64 = 0x24;
    /// WO: clears the PENDING bits set in the value.
    pub const ACK: u64 = 0x28;
    /// RING value that rings every member but the writer.
    pub const RING_ALL: u32 = u32::MAX;
}

/// A channel pool's doorbell page: registers as byte offsets in the 4 KiB
/// page, 32-bit accesses (docs/IVC.md, "Channels allocated at run time").
pub mod pool_doorbell {
    /// RO: the pool id (its index in the config's pool list).
    pub const POOL_ID: u64 = 0x00;
    /// RO: how many VMs the pool is granted to.
    pub const MEMBERS: u64 = 0x04;
    /// RO: this VM's member index.
    pub const SELF: u64 = 0x08;
    /// RO: id of a channel offered to this VM and not attached yet (the
    /// lowest slot's), 0 if none.
    pub const OFFER: u64 = 0x0c;
    /// RO: pool size in bytes, low 32 bits.
    pub const SIZE_LO: u64 = 0x10;
    /// RO: pool size in bytes, high 32 bits.
    pub const SIZE_HI: u64 = 0x14;
    /// WO: ring the other party of channel `value` (a channel id).
    pub const RING: u64 = 0x20;
    /// RO: bit `s` set = something happened to the channel in slot `s`
    /// (a ring, an offer, an attach, a release, its other party gone).
    pub const PENDING: u64 = 0x24;
    /// WO: clears the PENDING bits set in the value.
    pub const ACK: u64 = 0x28;
}
