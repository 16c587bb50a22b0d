//! Owned, parsed forms of the two TOML files. They mirror the `'static`
//! types of the crate root, with `String`/`Vec` instead of `&'static`.

use super::channel::ChannelSpec;
use super::pool::PoolSpec;
use crate::{
    Arch, Bcm2711, EmuDevice, EmuPort, FaultPolicy, GicDesc, IoApicDesc, MemRange, MemoryRegion,
    PortRange, UnhandledPolicy, VgicLayout,
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
    /// `console.irq`: the console UART's receive interrupt, if any.
    pub console_irq: Option<u32>,
    /// Interrupt controller.
    pub gic: GicDesc,
    /// Devices VMs may be given.
    pub devices: Vec<DeviceSpec>,
    /// Whether semihosting may be used to end an emulator run.
    pub semihosting_exit: bool,
    /// `[bcm2711]`: the Raspberry Pi 4 bring-up the hypervisor does itself.
    pub bcm2711: Option<Bcm2711>,
    /// `[ioapic]` (x86).
    pub ioapic: Option<IoApicDesc>,
}

/// A board device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSpec {
    /// Name VM configs refer to.
    pub name: String,
    /// MMIO registers as the hardware has them: a page-aligned window, or
    /// a block smaller than a page that may share its page with others (the
    /// BCM2711 packs several UARTs into one page).
    pub mmio: MemRange,
    /// GIC INTIDs it raises.
    pub irqs: Vec<u32>,
    /// `dma`: a DMA master.
    pub dma: bool,
    /// `dma_coherent`: its DMA is cache-coherent (device tree
    /// `dma-coherent`).
    pub dma_coherent: bool,
    /// `compatible`: device-tree compatible strings; empty = not described
    /// in generated device trees.
    pub compatible: Vec<String>,
    /// `dt_stride`: the window holds `size / dt_stride` identical devices,
    /// one device-tree node each, node `i` raising `irqs[i]`.
    pub dt_stride: Option<u64>,
    /// `irq_trigger`: how its interrupts signal.
    pub irq_trigger: Trigger,
}

impl DeviceSpec {
    /// The whole 4 KiB pages `mmio` touches: what stage 2 maps when a VM is
    /// given the device.
    pub fn window(&self) -> MemRange {
        page_window(&self.mmio)
    }
}

/// The whole 4 KiB pages `[r.base, r.end())` touches.
pub fn page_window(r: &MemRange) -> MemRange {
    const PAGE: u64 = 0x1000;
    let base = r.base & !(PAGE - 1);
    let end = r.base.saturating_add(r.size).saturating_add(PAGE - 1) & !(PAGE - 1);
    MemRange {
        base,
        size: end - base,
    }
}

/// Interrupt trigger of a board device (device-tree interrupt flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// Level-sensitive, active high (the default; UARTs).
    Level,
    /// Rising edge (QEMU's virtio-mmio transports).
    Edge,
}

/// A parsed system file (`configs/*.toml`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemSpec {
    /// Board file path as written (relative to the system file's directory).
    pub board: String,
    /// The VMs, in file order.
    pub vms: Vec<VmSpec>,
    /// `[[channel]]`: static inter-VM channels, in file order.
    pub channels: Vec<ChannelSpec>,
    /// `[[channel_pool]]`: pools for channels allocated at run time, in
    /// file order.
    pub pools: Vec<PoolSpec>,
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
    /// `base.on_fault` (default `stop-vm`).
    pub on_fault: FaultPolicy,
    /// `[vm.kernel]`.
    pub kernel: KernelSpec,
    /// `devices.vgic`; `None` means at the board GIC's addresses.
    pub vgic: Option<VgicLayout>,
    /// `base.pmu` (default false).
    pub pmu: bool,
    /// `memory_regions`.
    pub memory_regions: Vec<MemoryRegion>,
    /// `devices.emu_devices`.
    pub emu_devices: Vec<EmuDevice>,
    /// `devices.passthrough_devices`.
    pub passthrough_devices: Vec<PassthroughSpec>,
    /// `devices.emu_ports` (x86).
    pub emu_ports: Vec<EmuPort>,
    /// `devices.passthrough_ports` (x86).
    pub passthrough_ports: Vec<PassthroughPortsSpec>,
}

/// One entry of `devices.passthrough_ports` (x86): ports the VM reaches
/// directly and the interrupt lines that come with them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassthroughPortsSpec {
    /// `base` and `size`.
    pub range: PortRange,
    /// `irqs`: I/O APIC inputs (GSIs; an ISA IRQ is the GSI of the same
    /// number on PCs, IRQ 0 excepted) routed to the VM.
    pub irqs: Vec<u32>,
}

/// `[vm.kernel]`: what the VM boots, by kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelSpec {
    /// `kind = "bare-metal"` (the default).
    BareMetal {
        /// `kernel_path` as written (relative to the repository root).
        kernel_path: String,
        /// `kernel_load_addr`.
        kernel_load_addr: u64,
        /// `entry_point`.
        entry_point: u64,
    },
    /// `kind = "linux"`: placement comes from the Image header.
    Linux(LinuxSpec),
}

/// The fields of a `kind = "linux"` kernel table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinuxSpec {
    /// `kernel_path`: an uncompressed arm64 `Image`.
    pub kernel_path: String,
    /// `initramfs_path`.
    pub initramfs_path: Option<String>,
    /// `bootargs` (the device tree's `/chosen/bootargs`).
    pub bootargs: Option<String>,
    /// `dtb_path`: a device tree that replaces the generated one.
    pub dtb_path: Option<String>,
}

impl KernelSpec {
    /// The kernel image path, whatever the kind.
    pub fn kernel_path(&self) -> &str {
        match self {
            Self::BareMetal { kernel_path, .. } => kernel_path,
            Self::Linux(l) => &l.kernel_path,
        }
    }

    /// Every file the kernel table names, with its field name.
    pub fn files(&self) -> Vec<(&'static str, &str)> {
        match self {
            Self::BareMetal { kernel_path, .. } => vec![("kernel_path", kernel_path)],
            Self::Linux(l) => {
                let mut v = vec![("kernel_path", l.kernel_path.as_str())];
                if let Some(p) = &l.initramfs_path {
                    v.push(("initramfs_path", p));
                }
                if let Some(p) = &l.dtb_path {
                    v.push(("dtb_path", p));
                }
                v
            }
        }
    }
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

    /// Whether it boots Linux.
    pub fn is_linux(&self) -> bool {
        matches!(self.kernel, KernelSpec::Linux(_))
    }

    /// Its virtual GIC layout: `devices.vgic`, else the board GIC's
    /// distributor and redistributor addresses.
    pub fn vgic_layout(&self, board: &BoardSpec) -> VgicLayout {
        self.vgic.unwrap_or(VgicLayout {
            gicd_gpa: board.gic.gicd_base,
            gicr_gpa: board.gic.gicr_or_gicc_base,
        })
    }
}
