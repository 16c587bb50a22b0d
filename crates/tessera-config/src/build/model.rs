//! Owned, parsed forms of the two TOML files. They mirror the `'static`
//! types of the crate root, with `String`/`Vec` instead of `&'static`.

use crate::{
    Arch, EmuDevice, EmuPort, GicDesc, MemRange, MemoryRegion, PortRange, UnhandledPolicy,
};

/// A parsed board file (`configs/boards/*.toml`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardSpec {
    /// Board name.
    pub name: String,
    /// `arch` (`"aarch64"` when absent).
    pub arch: Arch,
    /// Hardware id of each physical CPU: MPIDR (`cpu_mpidrs`) on Arm, local
    /// APIC id (`apic_ids`) on x86.
    pub cpu_mpidrs: Vec<u64>,
    /// RAM banks.
    pub memory: Vec<MemRange>,
    /// RAM the hypervisor keeps.
    pub hypervisor: MemRange,
    /// The hypervisor's console: PL011 window on Arm, 16550 ports on x86.
    pub console: MemRange,
    /// Interrupt controller.
    pub gic: GicDesc,
    /// Devices VMs may be given.
    pub devices: Vec<DeviceSpec>,
    /// Whether semihosting may be used to end an emulator run.
    pub semihosting_exit: bool,
}

/// A board device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSpec {
    /// Name VM configs refer to.
    pub name: String,
    /// MMIO window.
    pub mmio: MemRange,
    /// GIC INTIDs it raises.
    pub irqs: Vec<u32>,
}

/// A parsed system file (`configs/*.toml`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemSpec {
    /// Board file path as written (relative to the system file's directory).
    pub board: String,
    /// The VMs, in file order.
    pub vms: Vec<VmSpec>,
}

/// One `[[vm]]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmSpec {
    /// `base.id`.
    pub id: u16,
    /// `base.name`.
    pub name: String,
    /// `base.phys_cpu_ids`.
    pub phys_cpu_ids: Vec<usize>,
    /// `base.on_unhandled`.
    pub on_unhandled: UnhandledPolicy,
    /// `kernel.kernel_path` as written (relative to the repository root).
    pub kernel_path: String,
    /// `kernel.kernel_load_addr`.
    pub kernel_load_addr: u64,
    /// `kernel.entry_point`.
    pub entry_point: u64,
    /// `memory_regions`.
    pub memory_regions: Vec<MemoryRegion>,
    /// `devices.emu_devices`.
    pub emu_devices: Vec<EmuDevice>,
    /// `devices.passthrough_devices`.
    pub passthrough_devices: Vec<PassthroughSpec>,
    /// `devices.emu_ports` (x86).
    pub emu_ports: Vec<EmuPort>,
    /// `devices.passthrough_ports` (x86).
    pub passthrough_ports: Vec<PortRange>,
}

/// One entry of `devices.passthrough_devices` before it is resolved
/// against the board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassthroughSpec {
    /// Board device name.
    pub name: String,
    /// Guest-physical base; `None` means the board (host) base.
    pub gpa: Option<u64>,
    /// IRQs to route; `None` means all of the board device's.
    pub irqs: Option<Vec<u32>>,
}

impl VmSpec {
    /// How this VM is named in error messages: `vm "alpha"`.
    pub fn label(&self) -> String {
        format!("vm {:?}", self.name)
    }
}
