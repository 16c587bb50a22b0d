//! The device tree a Linux VM boots with, generated at build time from the
//! same config the hypervisor enforces (so the guest is told exactly what
//! it owns). Interrupt specifiers and node shapes follow what QEMU writes
//! for its `virt` machine with `gic-version=3` (`gic-version=2` on a GICv2
//! board: a GIC-400 node with the distributor and CPU interface, and the
//! timer PPIs carrying the CPU mask GICv2 bindings use).

use vm_fdt::{FdtWriter, FdtWriterResult};

use super::model::{BoardSpec, DeviceSpec, Trigger, VmSpec};
use crate::{
    EmuDeviceKind, GicVersion, VgicLayout, GICC_SIZE, GICD_SIZE, GICR_STRIDE, GICV2_GICD_SIZE,
};

/// GIC interrupt specifier, first cell: shared peripheral interrupt.
const GIC_SPI: u32 = 0;
/// GIC interrupt specifier, first cell: private peripheral interrupt.
const GIC_PPI: u32 = 1;
/// Interrupt flags (third cell): rising edge.
const IRQ_EDGE_RISING: u32 = 1;
/// Interrupt flags (third cell): level, active high.
const IRQ_LEVEL_HIGH: u32 = 4;
/// First SPI INTID.
const SPI_BASE: u32 = 32;
/// Architected timer PPIs (INTID − 16), in the binding's order: secure
/// physical (29), non-secure physical (30), virtual (27), hypervisor (26).
const TIMER_PPIS: [u32; 4] = [13, 14, 11, 10];
/// The PL011 clock Linux's AMBA bus needs (`apb_pclk`); QEMU uses 24 MHz.
const APB_PCLK_HZ: u32 = 24_000_000;
const PHANDLE_GIC: u32 = 1;
const PHANDLE_CLK: u32 = 2;

/// What the tree says about the boot: from the VM's placement and config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chosen {
    /// `/chosen/bootargs`.
    pub bootargs: Option<String>,
    /// `linux,initrd-start` and `linux,initrd-end`.
    pub initrd: Option<(u64, u64)>,
    /// The inter-VM channels the VM is a member of.
    pub channels: Vec<DtChannel>,
}

/// One inter-VM channel as a member VM's device tree describes it: a
/// `reserved-memory` node for the shared window and a `generic-uio` node
/// (doorbell page, then shared memory, and the doorbell interrupt).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DtChannel {
    /// Channel name (node names `ivc-<name>`).
    pub name: String,
    /// Channel id.
    pub id: u32,
    /// Guest-physical base of the shared memory.
    pub gpa: u64,
    /// Its size.
    pub size: u64,
    /// Guest-physical base of the doorbell page.
    pub doorbell: u64,
    /// The doorbell SPI (INTID).
    pub irq: u32,
    /// The member's view is read-only.
    pub read_only: bool,
}

/// GICv2 PPI specifiers name the CPU interfaces the PPI is wired to in bits
/// 15:8 of the flags cell: every vCPU of the VM (at most 8).
fn gicv2_ppi_cpu_mask(vcpus: usize) -> u32 {
    ((1u32 << vcpus.min(8)) - 1) << 8
}

fn spi(irq: u32, trigger: Trigger) -> [u32; 3] {
    let flags = match trigger {
        Trigger::Level => IRQ_LEVEL_HIGH,
        Trigger::Edge => IRQ_EDGE_RISING,
    };
    [GIC_SPI, irq.saturating_sub(SPI_BASE), flags]
}

/// Generates the device tree of Linux VM `vm`. Errors are vm-fdt's (e.g. a
/// node name it refuses), as text.
pub fn generate(board: &BoardSpec, vm: &VmSpec, chosen: &Chosen) -> Result<Vec<u8>, String> {
    build(board, vm, &vm.vgic_layout(board), chosen).map_err(|e| e.to_string())
}

fn build(
    board: &BoardSpec,
    vm: &VmSpec,
    vgic: &VgicLayout,
    chosen: &Chosen,
) -> FdtWriterResult<Vec<u8>> {
    let mut fdt = FdtWriter::new()?;
    let root = fdt.begin_node("")?;
    fdt.property_u32("#address-cells", 2)?;
    fdt.property_u32("#size-cells", 2)?;
    fdt.property_string("compatible", "linux,dummy-virt")?;
    fdt.property_string("model", &format!("Tessera VM {}", vm.name))?;
    fdt.property_u32("interrupt-parent", PHANDLE_GIC)?;

    let mut ram: Vec<_> = vm.memory_regions.iter().collect();
    ram.sort_by_key(|r| r.gpa);
    for r in ram {
        let node = fdt.begin_node(&format!("memory@{:x}", r.gpa))?;
        fdt.property_string("device_type", "memory")?;
        fdt.property_array_u64("reg", &[r.gpa, r.size])?;
        fdt.end_node(node)?;
    }

    let cpus = fdt.begin_node("cpus")?;
    fdt.property_u32("#address-cells", 1)?;
    fdt.property_u32("#size-cells", 0)?;
    for i in 0..vm.phys_cpu_ids.len() {
        // vCPU i reads MPIDR_EL1 Aff0 = i.
        let cpu = fdt.begin_node(&format!("cpu@{i:x}"))?;
        fdt.property_string("device_type", "cpu")?;
        fdt.property_string("compatible", "arm,armv8")?;
        fdt.property_u32("reg", i as u32)?;
        fdt.property_string("enable-method", "psci")?;
        fdt.end_node(cpu)?;
    }
    fdt.end_node(cpus)?;

    let psci = fdt.begin_node("psci")?;
    fdt.property_string_list(
        "compatible",
        vec!["arm,psci-1.0".into(), "arm,psci-0.2".into()],
    )?;
    fdt.property_string("method", "hvc")?;
    fdt.end_node(psci)?;

    let gic = fdt.begin_node(&format!("intc@{:x}", vgic.gicd_gpa))?;
    let ppi_flags = match board.gic.version {
        GicVersion::V3 => {
            fdt.property_string("compatible", "arm,gic-v3")?;
            fdt.property_null("interrupt-controller")?;
            fdt.property_u32("#interrupt-cells", 3)?;
            fdt.property_u32("#redistributor-regions", 1)?;
            fdt.property_array_u64(
                "reg",
                &[
                    vgic.gicd_gpa,
                    GICD_SIZE,
                    vgic.gicr_gpa,
                    vm.phys_cpu_ids.len() as u64 * GICR_STRIDE,
                ],
            )?;
            IRQ_LEVEL_HIGH
        }
        GicVersion::V2 => {
            fdt.property_string_list(
                "compatible",
                vec!["arm,gic-400".into(), "arm,cortex-a15-gic".into()],
            )?;
            fdt.property_null("interrupt-controller")?;
            fdt.property_u32("#interrupt-cells", 3)?;
            // Distributor, then the CPU interface (the GICV frame).
            fdt.property_array_u64(
                "reg",
                &[vgic.gicd_gpa, GICV2_GICD_SIZE, vgic.gicr_gpa, GICC_SIZE],
            )?;
            gicv2_ppi_cpu_mask(vm.phys_cpu_ids.len()) | IRQ_LEVEL_HIGH
        }
    };
    if vm
        .emu_devices
        .iter()
        .any(|d| d.kind == EmuDeviceKind::IvcPci)
    {
        // The PCI bridge's `interrupt-map` gives no parent unit address.
        fdt.property_u32("#address-cells", 0)?;
    }
    fdt.property_phandle(PHANDLE_GIC)?;
    fdt.end_node(gic)?;

    let timer = fdt.begin_node("timer")?;
    fdt.property_string_list(
        "compatible",
        vec!["arm,armv8-timer".into(), "arm,armv7-timer".into()],
    )?;
    let cells: Vec<u32> = TIMER_PPIS
        .iter()
        .flat_map(|&ppi| [GIC_PPI, ppi, ppi_flags])
        .collect();
    fdt.property_array_u32("interrupts", &cells)?;
    fdt.property_null("always-on")?;
    fdt.end_node(timer)?;

    let clk = fdt.begin_node("apb-pclk")?;
    fdt.property_string("compatible", "fixed-clock")?;
    fdt.property_u32("#clock-cells", 0)?;
    fdt.property_u32("clock-frequency", APB_PCLK_HZ)?;
    fdt.property_string("clock-output-names", "clk24mhz")?;
    fdt.property_phandle(PHANDLE_CLK)?;
    fdt.end_node(clk)?;

    // Serial ports in alias order: emulated consoles, then passthrough UARTs.
    let mut serials: Vec<String> = Vec::new();
    // The `ivc-pci` bridge's ECAM base, if the VM has one (validation
    // allows one).
    let mut ivc_pci = None;
    for d in &vm.emu_devices {
        match d.kind {
            EmuDeviceKind::IvcPci => ivc_pci = Some(d.gpa),
            EmuDeviceKind::Pl011 => {
                let name = format!("pl011@{:x}", d.gpa);
                let node = fdt.begin_node(&name)?;
                fdt.property_string_list(
                    "compatible",
                    vec!["arm,pl011".into(), "arm,primecell".into()],
                )?;
                fdt.property_array_u64("reg", &[d.gpa, d.size])?;
                if let Some(irq) = d.irq {
                    fdt.property_array_u32("interrupts", &spi(irq, Trigger::Level))?;
                }
                pl011_clocks(&mut fdt)?;
                fdt.end_node(node)?;
                serials.push(format!("/{name}"));
            }
        }
    }

    for p in &vm.passthrough_devices {
        // Validation guarantees the device exists.
        let Some(dev) = board.devices.iter().find(|d| d.name == p.name) else {
            continue;
        };
        if dev.compatible.is_empty() {
            continue;
        }
        // A device smaller than a page sits at its offset in the page the
        // VM is given.
        let page = dev.window().base;
        let gpa = p.gpa.unwrap_or(page) + (dev.mmio.base - page);
        let routed = p.irqs.as_ref().unwrap_or(&dev.irqs);
        match dev.dt_stride {
            Some(stride) => {
                // One node per transport; one whose interrupt the VM does
                // not get is left out (its driver could not work).
                for (i, irq) in dev.irqs.iter().enumerate() {
                    if routed.contains(irq) {
                        let at = gpa + i as u64 * stride;
                        passthrough_node(&mut fdt, dev, at, stride, &[*irq])?;
                    }
                }
            }
            None => {
                let irqs: Vec<u32> = dev
                    .irqs
                    .iter()
                    .copied()
                    .filter(|i| routed.contains(i))
                    .collect();
                let path = passthrough_node(&mut fdt, dev, gpa, dev.mmio.size, &irqs)?;
                if dev.compatible.iter().any(|c| c == "arm,pl011") {
                    serials.push(path);
                }
            }
        }
    }

    match ivc_pci {
        Some(ecam) => ivc_pci_node(&mut fdt, ecam, &chosen.channels)?,
        None if !chosen.channels.is_empty() => channel_nodes(&mut fdt, &chosen.channels)?,
        None => {}
    }

    if !serials.is_empty() {
        let aliases = fdt.begin_node("aliases")?;
        for (i, path) in serials.iter().enumerate() {
            fdt.property_string(&format!("serial{i}"), path)?;
        }
        fdt.end_node(aliases)?;
    }

    let node = fdt.begin_node("chosen")?;
    if let Some(args) = &chosen.bootargs {
        fdt.property_string("bootargs", args)?;
    }
    if let Some(path) = serials.first() {
        fdt.property_string("stdout-path", path)?;
    }
    if let Some((start, end)) = chosen.initrd {
        fdt.property_u64("linux,initrd-start", start)?;
        fdt.property_u64("linux,initrd-end", end)?;
    }
    if ivc_pci.is_some() {
        // The BARs are where the hypervisor put the channels: Linux keeps
        // them instead of assigning its own.
        fdt.property_u32("linux,pci-probe-only", 1)?;
    }
    fdt.end_node(node)?;

    fdt.end_node(root)?;
    fdt.finish()
}

/// The shared windows under `/reserved-memory` (`no-map`: never the
/// kernel's RAM) and one `generic-uio` node per channel, bound by
/// `uio_pdrv_genirq` with `uio_pdrv_genirq.of_id=generic-uio`: UIO map 0
/// is the doorbell page, map 1 the shared memory (docs/IVC.md).
fn channel_nodes(fdt: &mut FdtWriter, channels: &[DtChannel]) -> FdtWriterResult<()> {
    let reserved = fdt.begin_node("reserved-memory")?;
    fdt.property_u32("#address-cells", 2)?;
    fdt.property_u32("#size-cells", 2)?;
    fdt.property_null("ranges")?;
    for c in channels {
        let node = fdt.begin_node(&format!("ivc-{}@{:x}", c.name, c.gpa))?;
        fdt.property_array_u64("reg", &[c.gpa, c.size])?;
        fdt.property_null("no-map")?;
        fdt.end_node(node)?;
    }
    fdt.end_node(reserved)?;
    for c in channels {
        let node = fdt.begin_node(&format!("ivc-{}@{:x}", c.name, c.doorbell))?;
        fdt.property_string("compatible", "generic-uio")?;
        fdt.property_array_u64("reg", &[c.doorbell, crate::DOORBELL_SIZE, c.gpa, c.size])?;
        fdt.property_string_list("reg-names", vec!["doorbell".into(), "shm".into()])?;
        fdt.property_array_u32("interrupts", &spi(c.irq, Trigger::Edge))?;
        fdt.property_u32("tessera,channel-id", c.id)?;
        if c.read_only {
            fdt.property_null("tessera,read-only")?;
        }
        fdt.end_node(node)?;
    }
    Ok(())
}

/// PCI `ranges` space codes (phys.hi cell): 64-bit memory, and 64-bit
/// prefetchable memory.
const PCI_MEM64: u32 = 0x0300_0000;
const PCI_MEM64_PREFETCH: u32 = 0x4300_0000;
/// `interrupt-map-mask`: the device number (phys.hi bits 15:11) and INTx.
const PCI_IRQ_MAP_MASK: [u32; 4] = [0xf800, 0, 0, 7];
/// INTA in an `interrupt-map` entry.
const PCI_INTA: u32 = 1;

fn cells64(v: u64) -> [u32; 2] {
    [(v >> 32) as u32, v as u32]
}

/// The `ivc-pci` bridge at `ecam` (`pci-host-ecam-generic`, bus 0): device
/// `k` is the VM's `k`-th channel, BAR0 its doorbell page and BAR2 its
/// shared memory (both 64-bit, at the member's own addresses, which the
/// `ranges` windows cover exactly), INTA its doorbell SPI, level-high.
fn ivc_pci_node(fdt: &mut FdtWriter, ecam: u64, channels: &[DtChannel]) -> FdtWriterResult<()> {
    let node = fdt.begin_node(&format!("pcie@{ecam:x}"))?;
    fdt.property_string("compatible", "pci-host-ecam-generic")?;
    fdt.property_string("device_type", "pci")?;
    fdt.property_u32("#address-cells", 3)?;
    fdt.property_u32("#size-cells", 2)?;
    fdt.property_u32("#interrupt-cells", 1)?;
    fdt.property_array_u64("reg", &[ecam, crate::IVC_PCI_ECAM_SIZE])?;
    fdt.property_array_u32("bus-range", &[0, 0])?;
    let mut ranges = Vec::new();
    let mut map = Vec::new();
    for (slot, c) in channels.iter().enumerate() {
        let bar = crate::ivc_pci_shm_bar_size(c.size);
        for (space, at, size) in [
            (PCI_MEM64, c.doorbell, crate::DOORBELL_SIZE),
            (PCI_MEM64_PREFETCH, c.gpa, bar),
        ] {
            ranges.push(space);
            ranges.extend(cells64(at)); // PCI address
            ranges.extend(cells64(at)); // CPU address: the same
            ranges.extend(cells64(size));
        }
        map.extend([(slot as u32) << 11, 0, 0, PCI_INTA, PHANDLE_GIC]);
        map.extend(spi(c.irq, Trigger::Level));
    }
    fdt.property_array_u32("ranges", &ranges)?;
    fdt.property_array_u32("interrupt-map-mask", &PCI_IRQ_MAP_MASK)?;
    fdt.property_array_u32("interrupt-map", &map)?;
    fdt.end_node(node)
}

/// `clocks`/`clock-names` of a PL011: the UART clock and the AMBA bus
/// clock, both the fixed 24 MHz clock.
fn pl011_clocks(fdt: &mut FdtWriter) -> FdtWriterResult<()> {
    fdt.property_array_u32("clocks", &[PHANDLE_CLK, PHANDLE_CLK])?;
    fdt.property_string_list("clock-names", vec!["uartclk".into(), "apb_pclk".into()])
}

/// One node of a passthrough device; returns its path.
fn passthrough_node(
    fdt: &mut FdtWriter,
    dev: &DeviceSpec,
    gpa: u64,
    size: u64,
    irqs: &[u32],
) -> FdtWriterResult<String> {
    let name = format!("{}@{gpa:x}", dev.name);
    let node = fdt.begin_node(&name)?;
    fdt.property_string_list("compatible", dev.compatible.clone())?;
    fdt.property_array_u64("reg", &[gpa, size])?;
    if !irqs.is_empty() {
        let cells: Vec<u32> = irqs.iter().flat_map(|&i| spi(i, dev.irq_trigger)).collect();
        fdt.property_array_u32("interrupts", &cells)?;
    }
    if dev.compatible.iter().any(|c| c == "arm,pl011") {
        pl011_clocks(fdt)?;
    } else if dev.compatible.iter().any(|c| c == "arm,primecell") {
        fdt.property_u32("clocks", PHANDLE_CLK)?;
        fdt.property_string("clock-names", "apb_pclk")?;
    }
    if dev.dma_coherent {
        fdt.property_null("dma-coherent")?;
    }
    fdt.end_node(node)?;
    Ok(format!("/{name}"))
}
