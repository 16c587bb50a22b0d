//! Configuration types shared by the build script (which parses and validates
//! the TOML files under `configs/`) and the hypervisor (which uses the
//! generated, validated `'static` tables). The same names hold everywhere.
//!
//! Without the `build` feature the crate is `no_std` and holds only the types;
//! with it, [`build`] parses, validates and generates Rust source.
#![cfg_attr(not(feature = "build"), no_std)]
#![deny(missing_docs)]

#[cfg(feature = "build")]
pub mod build;
mod x86;

pub use x86::{Arch, EmuPort, EmuPortKind, IoApicDesc, PortRange};

/// Largest number of physical CPUs a board description may list.
pub const MAX_CPUS: usize = 8;
/// Largest number of VMs in one system config.
pub const MAX_VMS: usize = 8;
/// Devices and the GIC are reachable through the hypervisor's EL2 identity
/// map below this address (`src/arch/aarch64/el2_map.rs`: the low 4 GiB
/// outside RAM are mapped as device memory).
pub const EL2_MAP_LIMIT: u64 = 4 << 30;
/// Board RAM may lie anywhere below this address: the EL2 map covers every
/// RAM bank of the board within its 39-bit address space (so the 4 and
/// 8 GB Raspberry Pi 4 banks above 4 GiB are mapped too).
pub const EL2_RAM_LIMIT: u64 = 1 << 39;
/// Granule of the EL2 map: a RAM bank must start and end on it, so no block
/// is both RAM (normal memory) and device.
pub const EL2_BLOCK: u64 = 2 << 20;

/// A physical address range `[base, base + size)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemRange {
    /// First byte.
    pub base: u64,
    /// Length in bytes.
    pub size: u64,
}

impl MemRange {
    /// One past the last byte.
    pub const fn end(&self) -> u64 {
        self.base + self.size
    }
    /// Whether `addr` lies inside the range.
    pub const fn contains(&self, addr: u64) -> bool {
        addr >= self.base && addr - self.base < self.size
    }
}

/// Interrupt controller generation of a board.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GicVersion {
    /// GICv2: memory-mapped CPU interface (Raspberry Pi 4).
    V2,
    /// GICv3: system-register CPU interface and redistributors (QEMU virt).
    V3,
}

/// Interrupt controller of a board.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GicDesc {
    /// Generation.
    pub version: GicVersion,
    /// Distributor base.
    pub gicd_base: u64,
    /// GICv3: redistributor region base; GICv2: CPU interface base.
    pub gicr_or_gicc_base: u64,
    /// GICv2: virtual interface control (GICH) base; 0 on GICv3.
    pub gich_base: u64,
    /// GICv2: virtual CPU interface (GICV) base, mapped at a VM's GICC
    /// address; 0 on GICv3.
    pub gicv_base: u64,
    /// First of the board's spare SPIs (`gic.spare_spis.first`): INTIDs
    /// no device of the board drives, which the hypervisor uses for
    /// inter-VM doorbells ([`ChannelMember::line`]); 0 = none.
    pub spare_spi_first: u32,
    /// How many spare SPIs follow from `spare_spi_first`; 0 = none.
    pub spare_spi_count: u32,
}

/// A physical device of the board that can be passed through to a VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoardDevice {
    /// Name used by VM configs to refer to it.
    pub name: &'static str,
    /// MMIO range.
    pub mmio: MemRange,
    /// Interrupt IDs (GIC INTIDs) the device raises.
    pub irqs: &'static [u32],
    /// Whether the device is a DMA master (reads and writes memory by
    /// itself). Without an IOMMU such a device may only be given to a VM
    /// whose RAM is identity-mapped (gpa == hpa).
    pub dma: bool,
    /// Device-tree `compatible` strings (empty: not described in guest
    /// device trees).
    pub compatible: &'static [&'static str],
}

/// Static description of one board: what the hardware is, not how it is split.
#[derive(Debug, Clone, Copy)]
pub struct Board {
    /// Board name, e.g. `qemu-virt`.
    pub name: &'static str,
    /// Instruction-set architecture.
    pub arch: Arch,
    /// RAM banks.
    pub memory: &'static [MemRange],
    /// Hardware id of each physical CPU — the MPIDR affinity value on Arm,
    /// the local APIC id on x86 (`apic_ids` in an x86 board file); the index
    /// is the CPU id used by VM configs (`phys_cpu_ids`).
    pub cpu_mpidrs: &'static [u64],
    /// RAM the hypervisor keeps for itself (image, stacks, heap, page tables).
    pub hypervisor: MemRange,
    /// The hypervisor's console UART: a PL011's MMIO window on Arm; on x86
    /// the 16550's I/O ports (`base` is the first port, `size` 8).
    pub console: MemRange,
    /// The console UART's interrupt (GIC INTID), routed to the hypervisor
    /// for console input; without it input is only polled.
    pub console_irq: Option<u32>,
    /// Interrupt controller (all zero and unused on x86 boards).
    pub gic: GicDesc,
    /// Devices that VMs may be given.
    pub devices: &'static [BoardDevice],
    /// Whether the hypervisor may end an emulator run with Arm semihosting
    /// (to report a failure exit status). Only for emulator boards.
    pub semihosting_exit: bool,
    /// BCM2711 (Raspberry Pi 4) bring-up the hypervisor does itself, since
    /// that board has no PSCI firmware; `None` elsewhere.
    pub bcm2711: Option<Bcm2711>,
    /// x86: the board's I/O APIC (`[ioapic]`), which the hypervisor
    /// programs to deliver VMs' interrupt lines; `None` on Arm boards and
    /// on x86 boards that give VMs no interrupts.
    pub ioapic: Option<IoApicDesc>,
}

/// What the hypervisor drives itself on a BCM2711 (board table `[bcm2711]`):
/// the power-management watchdog (machine reset and power-off, as Linux's
/// `bcm2835_wdt` does), the GPIO pin functions that put the console PL011
/// on GPIO14/15, and the PL011's baud divisor. These pages are the
/// hypervisor's: no VM is given a device that shares them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bcm2711 {
    /// Power-management block with the watchdog (`PM_RSTC`, `PM_RSTS`,
    /// `PM_WDOG`), one page.
    pub pm: MemRange,
    /// GPIO block (function select registers), one page.
    pub gpio: MemRange,
    /// The console PL011's reference clock in Hz (`init_uart_clock` in the
    /// firmware's `config.txt`).
    pub uart_clock_hz: u32,
    /// Console baud rate.
    pub baud: u32,
}

/// What a RAM or device region of a VM is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionKind {
    /// Normal write-back memory private to the VM.
    Ram,
}

/// One region of a VM's guest-physical address space backed by host memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryRegion {
    /// Guest-physical (intermediate physical) base.
    pub gpa: u64,
    /// Host-physical base.
    pub hpa: u64,
    /// Size in bytes.
    pub size: u64,
    /// What it is.
    pub kind: RegionKind,
}

/// Kinds of emulated device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmuDeviceKind {
    /// A PL011 UART model whose output goes to the hypervisor console,
    /// tagged with the VM name.
    Pl011,
    /// `"ivc-pci"`: a virtual PCI host bridge (ECAM, bus 0) with one
    /// function per static channel the VM is a member of, so Linux binds
    /// the stock `uio_pci_generic` driver to a channel (docs/IVC.md).
    IvcPci,
}

/// An emulated device in a VM's address space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmuDevice {
    /// Which model.
    pub kind: EmuDeviceKind,
    /// Guest-physical base.
    pub gpa: u64,
    /// Size of the trapped window.
    pub size: u64,
    /// GIC INTID of the device's (virtual) interrupt, if it has one; the
    /// PL011 of QEMU virt is INTID 33.
    pub irq: Option<u32>,
}

/// A board device given to a VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PassthroughDevice {
    /// Board device name.
    pub name: &'static str,
    /// Guest-physical base it appears at.
    pub gpa: u64,
    /// Host-physical base (from the board description).
    pub hpa: u64,
    /// Size (from the board description).
    pub size: u64,
    /// Interrupts routed to the VM.
    pub irqs: &'static [u32],
}

/// What the hypervisor does when a VM makes an access or trap it cannot
/// handle (an MMIO access nobody claims, an unknown system register...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnhandledPolicy {
    /// Inject a synchronous abort / undefined-instruction exception into the
    /// guest and let it go on (the default).
    InjectAbort,
    /// Stop the whole VM; the other VMs keep running.
    StopVm,
    /// Reset the VM (as PSCI SYSTEM_RESET would: RAM zeroed, image reloaded,
    /// vCPU 0 restarted); the other VMs keep running.
    RestartVm,
}

/// What the hypervisor does when a VM cannot make progress on its own
/// faults (an injected exception faults again at its own vector: no
/// working vector table), or raises a containable SError.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultPolicy {
    /// Stop the VM (the default); the other VMs keep running.
    StopVm,
    /// Reset the VM, as PSCI SYSTEM_RESET would.
    RestartVm,
}

/// A blob the hypervisor copies into a VM's RAM at every (re)start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestImage {
    /// What it is: `"kernel"`, `"initramfs"` or `"dtb"`.
    pub name: &'static str,
    /// Guest-physical address of its first byte (inside one RAM region,
    /// checked at build time).
    pub gpa: u64,
    /// The pristine bytes, embedded in the hypervisor image. Two VMs using
    /// the same file share one copy.
    pub data: &'static [u8],
    /// SHA-256 of `data`, computed at build time.
    pub sha256: [u8; 32],
}

/// What a VM runs, which decides its boot contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestKind {
    /// A raw image entered at its configured entry point with x0 = 0.
    BareMetal,
    /// An arm64 Linux `Image`: entered at its load address with x0 = the
    /// device tree's address (Documentation/arch/arm64/booting.rst).
    Linux,
}

/// Where a VM's virtual GIC appears in its guest-physical space. On a GICv2
/// board `gicr_gpa` is the guest's CPU interface (GICC, backed by GICV).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VgicLayout {
    /// Distributor base (a 64 KiB frame).
    pub gicd_gpa: u64,
    /// Redistributor region base: one 128 KiB (`0x20000`) pair of frames
    /// per vCPU, vCPU `i` at `gicr_gpa + i * 0x20000`.
    pub gicr_gpa: u64,
}

/// Size of a GICv3 distributor frame.
pub const GICD_SIZE: u64 = 0x1_0000;
/// Size of one GICv3 redistributor (RD_base + SGI_base frames).
pub const GICR_STRIDE: u64 = 0x2_0000;
/// Size of a GICv2 distributor frame.
pub const GICV2_GICD_SIZE: u64 = 0x1000;
/// Size of a GICv2 CPU interface (GICC) and of the virtual CPU interface
/// (GICV) that backs a VM's GICC: two 4 KiB pages, GICC_DIR in the second.
pub const GICC_SIZE: u64 = 0x2000;
/// Size of the GICv2 virtual interface control frame (GICH).
pub const GICH_SIZE: u64 = 0x1000;

/// One VM of the system config.
#[derive(Debug, Clone, Copy)]
pub struct VmConfig {
    /// Unique small id (also the stage-2 VMID is derived from it).
    pub id: u16,
    /// Name used to tag console lines.
    pub name: &'static str,
    /// Physical CPU ids the VM owns; vCPU `i` runs on `phys_cpu_ids[i]`.
    pub phys_cpu_ids: &'static [usize],
    /// Guest-physical memory backed by host RAM.
    pub memory_regions: &'static [MemoryRegion],
    /// What the VM runs.
    pub kind: GuestKind,
    /// Images copied into the VM's RAM (after it is zeroed) at every
    /// (re)start, in this order.
    pub images: &'static [GuestImage],
    /// Guest-physical address vCPU 0 starts at.
    pub entry_point: u64,
    /// x0 of vCPU 0 at entry: the device tree's guest-physical address for
    /// Linux, 0 for bare metal.
    pub boot_arg: u64,
    /// Where the VM's virtual GIC is.
    pub vgic: VgicLayout,
    /// Emulated devices.
    pub emu_devices: &'static [EmuDevice],
    /// Passthrough devices.
    pub passthrough_devices: &'static [PassthroughDevice],
    /// Outcome of an unhandled exit.
    pub on_unhandled: UnhandledPolicy,
    /// Outcome of a fault the guest cannot take (`base.on_fault`).
    pub on_fault: FaultPolicy,
    /// Emulated port-I/O devices (x86 only).
    pub emu_ports: &'static [EmuPort],
    /// I/O ports the VM reaches directly (x86 only); every other port traps.
    pub passthrough_ports: &'static [PortRange],
    /// x86: the I/O APIC inputs (GSIs) given to the VM — the `irqs` of
    /// its passthrough ports and devices — sorted, each once. Empty on Arm.
    pub passthrough_gsis: &'static [u32],
    /// The VM owns its cores' PMU (`base.pmu`); otherwise PMU registers trap
    /// and the PMU is hidden from it.
    pub pmu: bool,
}

/// Size of one inter-VM channel's doorbell window (one page).
pub const DOORBELL_SIZE: u64 = 0x1000;
/// Size of an `ivc-pci` host bridge's ECAM window: bus 0 only (32 devices
/// of 8 functions, 4 KiB of configuration space each).
pub const IVC_PCI_ECAM_SIZE: u64 = 0x10_0000;
/// Most channels one `ivc-pci` bridge presents (one device each, function
/// 0, on bus 0).
pub const IVC_PCI_MAX_FUNCTIONS: usize = 32;
/// The size a channel's shared-memory BAR reports on an `ivc-pci` bridge:
/// the channel's size rounded up to a power of two (the guest window is
/// aligned to it; the part past the channel is left unmapped and must be
/// free in the VM's address space).
pub const fn ivc_pci_shm_bar_size(size: u64) -> u64 {
    match size.checked_next_power_of_two() {
        Some(s) => s,
        None => 1 << 63,
    }
}

/// PCI vendor id of a channel function. Not a registered id: Tessera's
/// channel device has its own register map (docs/IVC.md), so it does not
/// pose as QEMU's ivshmem (1af4:1110), whose drivers would misread it.
pub const IVC_PCI_VENDOR: u16 = 0x7e55;
/// PCI device id of a channel function.
pub const IVC_PCI_DEVICE: u16 = 0x1c00;

/// Largest number of VMs sharing one inter-VM channel (the doorbell's
/// pending register has one bit per member).
pub const MAX_CHANNEL_MEMBERS: usize = MAX_VMS;

/// One VM's view of an inter-VM channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelMember {
    /// Config id of the VM.
    pub vm_id: u16,
    /// Guest-physical base of the shared memory in that VM.
    pub gpa: u64,
    /// Whether the VM may write the shared memory (`access = "rw"`).
    pub writable: bool,
    /// SPI (INTID) the VM receives when a peer rings it.
    pub irq: u32,
    /// Guest-physical base of the VM's doorbell page.
    pub doorbell_gpa: u64,
    /// Physical SPI (INTID) that carries this member's doorbell interrupt
    /// (one of the board's `gic.spare_spis`, which no device drives), or 0:
    /// rings are raised in the virtual GIC alone and the member's core is
    /// kicked. See docs/IVC.md.
    pub line: u32,
}

/// A static inter-VM channel: shared memory reserved by the hypervisor at
/// the top of its own region, mapped into each member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Channel {
    /// Name from the config.
    pub name: &'static str,
    /// Channel id (its index in [`SystemConfig::channels`]).
    pub id: u32,
    /// Host-physical base of the backing memory (inside the hypervisor's
    /// region, above its heap).
    pub hpa: u64,
    /// Size in bytes (a multiple of 4 KiB).
    pub size: u64,
    /// The VMs that see it, in config order (a member's index is its
    /// position here).
    pub members: &'static [ChannelMember],
}

/// Most channels one pool holds at once (a pool doorbell's PENDING
/// register has one bit per channel slot).
pub const MAX_POOL_CHANNELS: usize = 32;

/// One VM's grant in a channel pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolMember {
    /// Config id of the VM.
    pub vm_id: u16,
    /// Guest-physical base of the VM's window onto the pool (as large as
    /// the pool): a channel at pool offset `o` appears at `window + o`.
    pub window: u64,
    /// SPI (INTID) the VM receives when a channel of the pool changes
    /// state for it or its peer rings it.
    pub irq: u32,
    /// Guest-physical base of the VM's pool doorbell page.
    pub doorbell_gpa: u64,
}

/// A pool of memory from which its members allocate inter-VM channels at
/// run time (hypercalls; see docs/IVC.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelPool {
    /// Name from the config.
    pub name: &'static str,
    /// Pool id (its index in [`SystemConfig::pools`]).
    pub id: u32,
    /// Host-physical base of the backing memory (inside the hypervisor's
    /// region, above its heap, below the static channels).
    pub hpa: u64,
    /// Size in bytes (a multiple of 4 KiB).
    pub size: u64,
    /// Most channels alive at once (at most [`MAX_POOL_CHANNELS`]).
    pub max_channels: u32,
    /// Most channels one VM holds (owns or has attached) at once.
    pub max_per_vm: u32,
    /// The VMs granted the pool, in config order.
    pub members: &'static [PoolMember],
}

/// The whole compiled-in configuration.
#[derive(Debug, Clone, Copy)]
pub struct SystemConfig {
    /// The board description.
    pub board: Board,
    /// The VMs.
    pub vms: &'static [VmConfig],
    /// Static inter-VM channels.
    pub channels: &'static [Channel],
    /// Pools of channels allocated at run time.
    pub pools: &'static [ChannelPool],
    /// Bytes at the top of `board.hypervisor` that back the channels and
    /// the pools (not part of the hypervisor heap).
    pub channel_bytes: u64,
}
