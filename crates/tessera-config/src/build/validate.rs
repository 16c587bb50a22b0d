//! Rules about values: alignment, containment, overlaps, ownership of CPUs,
//! memory, devices and IRQs. Every rule is checked and every failure kept.

use super::layout::{parse_image_header, place_linux, DTB_MAX};
use super::model::{page_window, BoardSpec, DeviceSpec, KernelSpec, LinuxSpec, SystemSpec, VmSpec};
use super::ConfigError;
use crate::{
    Arch, EmuDeviceKind, GicVersion, MemRange, EL2_BLOCK, EL2_MAP_LIMIT, EL2_RAM_LIMIT, GICC_SIZE,
    GICD_SIZE, GICH_SIZE, GICR_STRIDE, GICV2_GICD_SIZE, MAX_CPUS, MAX_VMS,
};

#[path = "x86_validate.rs"]
pub(super) mod x86;

/// MPIDR_EL1 affinity fields: Aff0 [7:0], Aff1 [15:8], Aff2 [23:16],
/// Aff3 [39:32].
const MPIDR_AFF_MASK: u64 = 0xff_00ff_ffff;
/// Granule of every stage-2 mapping.
const PAGE: u64 = 0x1000;
/// GIC distributor and redistributor frames are 64 KiB.
const GIC_FRAME_ALIGN: u64 = 0x1_0000;
/// GICv2 frames are 4 KiB pages (the GIC-400 packs them 4 KiB apart).
const GICV2_FRAME_ALIGN: u64 = 0x1000;
/// The hypervisor maps itself with 2 MiB blocks.
const HYP_ALIGN: u64 = 0x20_0000;
/// Image at base + 2 MiB, so at least 2 MiB for the image and heap.
const HYP_MIN_SIZE: u64 = 0x40_0000;
/// Stage-2 input address size (T0SZ = 25): 39 bits.
pub const IPA_LIMIT: u64 = 1 << 39;
/// Longest VM name (console tags stay short and aligned).
pub const MAX_NAME_LEN: usize = 15;

/// Half-open range with a 128-bit end so `base + size` cannot overflow.
#[derive(Clone, Copy)]
struct Span {
    start: u128,
    end: u128,
}

impl Span {
    fn new(base: u64, size: u64) -> Self {
        Self {
            start: u128::from(base),
            end: u128::from(base) + u128::from(size),
        }
    }
    fn of(r: &MemRange) -> Self {
        Self::new(r.base, r.size)
    }
    fn overlaps(self, o: Span) -> bool {
        self.start < o.end && o.start < self.end
    }
    fn within(self, o: Span) -> bool {
        self.start >= o.start && self.end <= o.end
    }
    fn contains(self, addr: u64) -> bool {
        let a = u128::from(addr);
        a >= self.start && a < self.end
    }
}

impl core::fmt::Display for Span {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "[{:#x}, {:#x})", self.start, self.end)
    }
}

struct Errors<'a> {
    file: &'a str,
    list: Vec<ConfigError>,
}

impl<'a> Errors<'a> {
    fn new(file: &'a str) -> Self {
        Self {
            file,
            list: Vec::new(),
        }
    }

    fn push(&mut self, scope: &str, field: impl Into<String>, message: impl Into<String>) {
        self.list.push(ConfigError::new(
            self.file,
            scope,
            field.into(),
            message.into(),
        ));
    }

    /// `base`/`size` of a device's registers: a 4 KiB-aligned window, or a
    /// block of 32-bit registers smaller than a page (it may share its page
    /// with other devices; `page_sharers` says what a VM would reach).
    fn registers(&mut self, scope: &str, field: &str, base: u64, size: u64) {
        if base.is_multiple_of(PAGE) && (size == 0 || size.is_multiple_of(PAGE)) {
            return self.window(scope, field, ("base", base), size);
        }
        if !base.is_multiple_of(4) {
            self.push(
                scope,
                format!("{field}.base"),
                format!("{base:#x} is not 4-byte aligned (32-bit registers)"),
            );
        }
        if size == 0 || !size.is_multiple_of(4) || (base % PAGE) + size > PAGE {
            self.push(
                scope,
                format!("{field}.size"),
                format!(
                    "{size:#x}: give a multiple of 4 KiB from a page-aligned base, or a block \
                     of 32-bit registers inside one page"
                ),
            );
        }
    }

    /// `base`/`size` of a window: 4 KiB aligned, non-empty.
    fn window(&mut self, scope: &str, field: &str, base: (&str, u64), size: u64) {
        let (base_name, base) = base;
        if !base.is_multiple_of(PAGE) {
            self.push(
                scope,
                format!("{field}.{base_name}"),
                format!("{base:#x} is not 4 KiB aligned"),
            );
        }
        if size == 0 {
            self.push(
                scope,
                format!("{field}.size"),
                "size must be greater than 0",
            );
        } else if !size.is_multiple_of(PAGE) {
            self.push(
                scope,
                format!("{field}.size"),
                format!("{size:#x} is not a multiple of 4 KiB"),
            );
        }
    }
}

/// Checks a parsed board (rule set 8 of docs/CONFIG.md).
pub fn validate_board(file: &str, b: &BoardSpec) -> Vec<ConfigError> {
    let mut e = Errors::new(file);
    let s = "board";
    if b.name.is_empty() {
        e.push(s, "name", "must not be empty");
    }

    // x86 boards: CPUs are APIC ids, the console is I/O ports, no GIC.
    let arm = b.arch == Arch::Aarch64;
    let (cpu_field, cpu_id) = if arm {
        ("cpu_mpidrs", "MPIDR")
    } else {
        ("apic_ids", "APIC id")
    };
    let cpus = b.cpu_mpidrs.len();
    let beyond =
        format!("ends above {EL2_MAP_LIMIT:#x}, the end of the hypervisor's EL2 device window");
    if cpus == 0 || cpus > MAX_CPUS {
        e.push(
            s,
            cpu_field,
            format!("{cpus} CPUs listed, expected 1 to {MAX_CPUS} (MAX_CPUS)"),
        );
    }
    for (i, m) in b.cpu_mpidrs.iter().enumerate() {
        if !arm {
            // APIC ids: any 32-bit value (bounded when parsed).
        } else if m & !MPIDR_AFF_MASK != 0 {
            e.push(
                s,
                format!("cpu_mpidrs[{i}]"),
                format!(
                    "{m:#x} has bits outside Aff0..Aff3 (mask {MPIDR_AFF_MASK:#x}); give the \
                     affinity fields only"
                ),
            );
        } else if m & 0xff > 15 {
            e.push(
                s,
                format!("cpu_mpidrs[{i}]"),
                format!(
                    "{m:#x} has Aff0 {} > 15: GICv3 SGI target lists (ICC_SGI1R_EL1) reach \
                     Aff0 0-15 only",
                    m & 0xff
                ),
            );
        }
        if b.cpu_mpidrs[..i].contains(m) {
            e.push(
                s,
                format!("{cpu_field}[{i}]"),
                format!("{cpu_id} {m:#x} is listed twice"),
            );
        }
    }

    if b.memory.is_empty() {
        e.push(s, "memory", "at least one RAM bank is required");
    }
    for (i, m) in b.memory.iter().enumerate() {
        e.window(s, &format!("memory[{i}]"), ("base", m.base), m.size);
        // The EL2 map gives each 2 MiB block one memory type.
        if !m.base.is_multiple_of(EL2_BLOCK) || !m.size.is_multiple_of(EL2_BLOCK) {
            e.push(
                s,
                format!("memory[{i}]"),
                format!(
                    "{} is not 2 MiB aligned (base and size): the hypervisor maps RAM with \
                     2 MiB blocks, so a block cannot be part RAM, part device",
                    Span::of(m)
                ),
            );
        }
        if Span::of(m).end > u128::from(EL2_RAM_LIMIT) {
            e.push(
                s,
                format!("memory[{i}]"),
                format!(
                    "{} ends above {EL2_RAM_LIMIT:#x}, the end of the hypervisor's 39-bit EL2 map",
                    Span::of(m)
                ),
            );
        }
        for (j, o) in b.memory[..i].iter().enumerate() {
            if Span::of(m).overlaps(Span::of(o)) {
                e.push(
                    s,
                    format!("memory[{i}]"),
                    format!("{} overlaps memory[{j}] {}", Span::of(m), Span::of(o)),
                );
            }
        }
    }
    let ram = |r: Span| b.memory.iter().any(|m| r.within(Span::of(m)));
    let in_ram = |r: Span| b.memory.iter().any(|m| r.overlaps(Span::of(m)));

    let hyp = b.hypervisor;
    if !hyp.base.is_multiple_of(HYP_ALIGN) {
        e.push(
            s,
            "hypervisor.base",
            format!("{:#x} is not 2 MiB aligned", hyp.base),
        );
    }
    if !hyp.size.is_multiple_of(HYP_ALIGN) {
        e.push(
            s,
            "hypervisor.size",
            format!("{:#x} is not a multiple of 2 MiB", hyp.size),
        );
    }
    if hyp.size < HYP_MIN_SIZE {
        e.push(
            s,
            "hypervisor.size",
            format!("{:#x} is less than the minimum 4 MiB (0x400000)", hyp.size),
        );
    }
    if !ram(Span::of(&hyp)) {
        e.push(
            s,
            "hypervisor",
            format!("{} is not inside one RAM bank", Span::of(&hyp)),
        );
    }

    if arm {
        e.registers(s, "console", b.console.base, b.console.size);
    }
    if arm && in_ram(Span::of(&b.console)) {
        e.push(
            s,
            "console",
            format!("{} overlaps RAM", Span::of(&b.console)),
        );
    }

    // The GIC: distributor frame, and one redistributor per CPU.
    let gic = b.gic;
    let mut frames: Vec<(&str, Span)> = Vec::new();
    let align = match gic.version {
        GicVersion::V2 => GICV2_FRAME_ALIGN,
        GicVersion::V3 => GIC_FRAME_ALIGN,
    };
    match gic.version {
        _ if !arm => {}
        GicVersion::V2 => {
            frames.push(("gic.gicd_base", Span::new(gic.gicd_base, GICV2_GICD_SIZE)));
            frames.push(("gic.gicc_base", Span::new(gic.gicr_or_gicc_base, GICC_SIZE)));
            frames.push(("gic.gich_base", Span::new(gic.gich_base, GICH_SIZE)));
            frames.push(("gic.gicv_base", Span::new(gic.gicv_base, GICC_SIZE)));
        }
        GicVersion::V3 => {
            frames.push(("gic.gicd_base", Span::new(gic.gicd_base, GICD_SIZE)));
            frames.push((
                "gic.gicr_base",
                Span::new(gic.gicr_or_gicc_base, cpus as u64 * GICR_STRIDE),
            ));
        }
    }
    for (field, span) in &frames {
        let base = span.start;
        if base % u128::from(align) != 0 {
            e.push(
                s,
                *field,
                format!("{base:#x} is not {} KiB aligned", align / 1024),
            );
        }
        if in_ram(*span) {
            e.push(s, *field, format!("GIC frames {span} overlap RAM"));
        }
        if span.end > u128::from(EL2_MAP_LIMIT) {
            e.push(s, *field, format!("GIC frames {span} {beyond}"));
        }
        if span.overlaps(Span::of(&b.console)) {
            e.push(
                s,
                "console",
                format!(
                    "{} overlaps the GIC frames of {field} {span}",
                    Span::of(&b.console)
                ),
            );
        }
    }
    for (i, (f1, a)) in frames.iter().enumerate() {
        for (f2, b2) in frames.iter().skip(i + 1) {
            if frames.len() > 2 && a.overlaps(*b2) {
                e.push(s, *f2, format!("{b2} overlaps {f1} {a}"));
            }
        }
    }
    if let [(_, d), (_, r)] = frames[..] {
        if d.overlaps(r) {
            e.push(
                s,
                "gic.gicr_base",
                format!("redistributors {r} overlap the distributor {d}"),
            );
        }
    }

    for (i, d) in b.devices.iter().enumerate() {
        let f = format!("devices[{i}]");
        if d.name.is_empty() {
            e.push(s, format!("{f}.name"), "must not be empty");
        }
        if let Some(j) = b.devices[..i].iter().position(|o| o.name == d.name) {
            e.push(
                s,
                format!("{f}.name"),
                format!("{:?} is also the name of devices[{j}]", d.name),
            );
        }
        e.registers(s, &f, d.mmio.base, d.mmio.size);
        let span = Span::of(&d.mmio);
        if in_ram(span) {
            e.push(s, &f, format!("{:?} {span} overlaps RAM", d.name));
        }
        if arm && span.overlaps(Span::of(&b.console)) {
            e.push(
                s,
                &f,
                format!("{:?} {span} overlaps the hypervisor console", d.name),
            );
        }
        for (j, o) in b.devices[..i].iter().enumerate() {
            if span.overlaps(Span::of(&o.mmio)) {
                e.push(
                    s,
                    &f,
                    format!("{:?} {span} overlaps devices[{j}] {:?}", d.name, o.name),
                );
            }
        }
        for (field, frame) in &frames {
            if span.overlaps(*frame) {
                e.push(
                    s,
                    &f,
                    format!(
                        "{:?} {span} overlaps the GIC frames of {field} {frame}",
                        d.name
                    ),
                );
            }
        }
        if span.end > u128::from(EL2_MAP_LIMIT) {
            e.push(s, &f, format!("{:?} {span} {beyond}", d.name));
        }
        check_device_tree_fields(&mut e, &f, d);
        for (k, irq) in d.irqs.iter().enumerate() {
            // x86 boards: GSIs, checked against the I/O APIC (x86_validate).
            if arm && !(32..1020).contains(irq) {
                e.push(
                    s,
                    format!("{f}.irqs[{k}]"),
                    format!("INTID {irq} is not an SPI (expected 32..=1019)"),
                );
            }
            if d.irqs[..k].contains(irq) {
                e.push(
                    s,
                    format!("{f}.irqs[{k}]"),
                    format!("INTID {irq} is listed twice"),
                );
            }
        }
    }
    check_spare_spis(&mut e, b);
    x86::check_board_irqs(&mut e, b);
    x86::check_board_devices(&mut e, b);
    if let Some(p) = &b.bcm2711 {
        for (field, page) in [("bcm2711.pm_base", p.pm), ("bcm2711.gpio_base", p.gpio)] {
            let span = Span::of(&page);
            if !page.base.is_multiple_of(PAGE) {
                e.push(s, field, format!("{:#x} is not 4 KiB aligned", page.base));
            }
            if in_ram(span) {
                e.push(s, field, format!("{span} overlaps RAM"));
            }
            if span.end > u128::from(EL2_MAP_LIMIT) {
                e.push(s, field, format!("{span} {beyond}"));
            }
        }
    }
    e.list
}

/// `gic.spare_spis`: SPIs the hypervisor raises itself for inter-VM
/// doorbells, so no device of the board may drive one of them — neither
/// the console nor a board device (and so no VM's passthrough interrupt,
/// which is always a board device's).
fn check_spare_spis(e: &mut Errors<'_>, b: &BoardSpec) {
    let (first, count) = (b.gic.spare_spi_first, b.gic.spare_spi_count);
    if count == 0 {
        return;
    }
    let s = "board";
    // u64: `first + count` of two u32s cannot overflow.
    let last = u64::from(first) + u64::from(count) - 1;
    let range = format!("spare SPIs {first}..={last}");
    if !(32..1020).contains(&first) {
        e.push(
            s,
            "gic.spare_spis.first",
            format!("INTID {first} is not an SPI (expected 32..=1019)"),
        );
    } else if last > 1019 {
        e.push(
            s,
            "gic.spare_spis.count",
            format!("{range} end past the last SPI, INTID 1019"),
        );
    }
    let inside = |irq: u32| irq >= first && u64::from(irq) <= last;
    let why = "a spare SPI must be one no device drives";
    if let Some(irq) = b.console_irq.filter(|&i| inside(i)) {
        e.push(
            s,
            "gic.spare_spis",
            format!("{range} include console.irq {irq}: {why}"),
        );
    }
    for (i, d) in b.devices.iter().enumerate() {
        let hit: Vec<String> = d
            .irqs
            .iter()
            .filter(|&&irq| inside(irq))
            .map(u32::to_string)
            .collect();
        if !hit.is_empty() {
            e.push(
                s,
                "gic.spare_spis",
                format!(
                    "{range} include devices[{i}] {:?} irqs [{}]: {why}",
                    d.name,
                    hit.join(", ")
                ),
            );
        }
    }
}

/// What else lies in the 4 KiB pages of board device `dev`: a VM given
/// `dev` gets those whole pages (stage 2 maps pages), so it would reach
/// each of these too. Empty when the pages are the device's alone.
pub fn page_sharers(board: &BoardSpec, dev: &DeviceSpec) -> Vec<String> {
    let pages = Span::of(&dev.window());
    let mut out = Vec::new();
    for o in &board.devices {
        if o.name != dev.name && pages.overlaps(Span::of(&o.window())) {
            out.push(format!("device {:?} {}", o.name, Span::of(&o.mmio)));
        }
    }
    let mut owned: Vec<(&str, MemRange)> = vec![("the hypervisor console", board.console)];
    let gic = board.gic;
    if board.arch == Arch::Aarch64 {
        let gic_frames: &[(&str, u64, u64)] = match gic.version {
            GicVersion::V2 => &[
                ("the GIC distributor", gic.gicd_base, GICV2_GICD_SIZE),
                ("the GIC CPU interface", gic.gicr_or_gicc_base, GICC_SIZE),
                (
                    "the GIC virtual interface control",
                    gic.gich_base,
                    GICH_SIZE,
                ),
                ("the GIC virtual CPU interface", gic.gicv_base, GICC_SIZE),
            ],
            GicVersion::V3 => &[("the GIC distributor", gic.gicd_base, GICD_SIZE)],
        };
        for &(what, base, size) in gic_frames {
            owned.push((what, MemRange { base, size }));
        }
    }
    if let Some(p) = &board.bcm2711 {
        owned.push(("the power-management watchdog (bcm2711.pm_base)", p.pm));
        owned.push(("the GPIO pin functions (bcm2711.gpio_base)", p.gpio));
    }
    for (what, r) in owned {
        if pages.overlaps(Span::of(&page_window(&r))) {
            out.push(format!("{what} {}", Span::of(&r)));
        }
    }
    out
}

/// What a board device must give for guest device trees.
fn check_device_tree_fields(e: &mut Errors<'_>, f: &str, d: &DeviceSpec) {
    let s = "board";
    if !d.compatible.is_empty()
        && !d
            .name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b",._+-".contains(&c))
    {
        e.push(
            s,
            format!("{f}.name"),
            format!(
                "{:?} names its device-tree node, so it may only hold [A-Za-z0-9,._+-]",
                d.name
            ),
        );
    }
    if d.dma_coherent && !d.dma {
        e.push(
            s,
            format!("{f}.dma_coherent"),
            "only meaningful for a DMA master (`dma = true`)",
        );
    }
    if let Some(stride) = d.dt_stride {
        if d.compatible.is_empty() {
            e.push(
                s,
                format!("{f}.dt_stride"),
                "needs `compatible` (it splits the device-tree description)",
            );
        }
        if stride == 0 || !d.mmio.size.is_multiple_of(stride) {
            e.push(
                s,
                format!("{f}.dt_stride"),
                format!("{stride:#x} does not divide size {:#x}", d.mmio.size),
            );
        } else if d.mmio.size / stride != d.irqs.len() as u64 {
            e.push(
                s,
                format!("{f}.dt_stride"),
                format!(
                    "{} devices of {stride:#x} bytes but {} irqs: give one interrupt per device",
                    d.mmio.size / stride,
                    d.irqs.len()
                ),
            );
        }
    }
}

/// The contents of a file a VM config names (`kernel_path`,
/// `initramfs_path`, `dtb_path`, relative to the repository root), as
/// answered by the caller: `Ok(Some(bytes))`, `Ok(None)` missing but
/// tolerated (host builds), `Err(msg)` missing and required (the message
/// says why).
pub type Files<'a> = &'a dyn Fn(&str) -> Result<Option<Vec<u8>>, String>;

/// Checks a parsed system config against its (parsed) board: rule sets
/// 2–7 of docs/CONFIG.md.
pub fn validate_system(
    file: &str,
    sys: &SystemSpec,
    board: &BoardSpec,
    files: Files<'_>,
) -> Vec<ConfigError> {
    let mut e = Errors::new(file);
    let n = sys.vms.len();
    if n == 0 || n > MAX_VMS {
        e.push(
            "",
            "vm",
            format!("{n} VMs given, expected 1 to {MAX_VMS} (MAX_VMS)"),
        );
    }
    for vm in &sys.vms {
        check_vm(&mut e, vm, board, files);
        x86::check_vm_ports(&mut e, vm, board);
        x86::check_vm_gsis(&mut e, vm, board);
        x86::check_vm_apic_pages(&mut e, vm, board);
    }
    for (j, b) in sys.vms.iter().enumerate() {
        for a in &sys.vms[..j] {
            check_pair(&mut e, a, b, board);
            x86::check_pair_ports(&mut e, a, b);
            x86::check_pair_gsis(&mut e, a, b, board);
        }
    }
    e.list
}

fn check_vm(e: &mut Errors<'_>, vm: &VmSpec, board: &BoardSpec, files: Files<'_>) {
    let s = &vm.label();

    // Rule 2: identity.
    if usize::from(vm.id) >= MAX_VMS {
        e.push(
            s,
            "id",
            format!("{} is too large (ids are 0 to {})", vm.id, MAX_VMS - 1),
        );
    }
    if vm.name.is_empty() {
        e.push(s, "name", "must not be empty");
    } else if vm.name.len() > MAX_NAME_LEN
        || !vm
            .name
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'-')
    {
        e.push(
            s,
            "name",
            format!(
                "{:?} must be 1 to {MAX_NAME_LEN} characters of [a-z0-9_-]",
                vm.name
            ),
        );
    }

    // Rule 3: CPUs.
    if vm.phys_cpu_ids.is_empty() {
        e.push(s, "phys_cpu_ids", "at least one CPU is required");
    }
    for (i, &c) in vm.phys_cpu_ids.iter().enumerate() {
        if c >= board.cpu_mpidrs.len() {
            e.push(
                s,
                format!("phys_cpu_ids[{i}]"),
                format!(
                    "CPU {c} does not exist (board {:?} has {} CPUs)",
                    board.name,
                    board.cpu_mpidrs.len()
                ),
            );
        }
        if vm.phys_cpu_ids[..i].contains(&c) {
            e.push(
                s,
                format!("phys_cpu_ids[{i}]"),
                format!("CPU {c} is listed twice"),
            );
        }
    }

    // Rule 4: RAM.
    if vm.memory_regions.is_empty() {
        e.push(s, "memory_regions", "at least one RAM region is required");
    }
    let hyp = Span::of(&board.hypervisor);
    for (i, r) in vm.memory_regions.iter().enumerate() {
        let f = format!("memory_regions[{i}]");
        for (name, v) in [("gpa", r.gpa), ("hpa", r.hpa)] {
            if !v.is_multiple_of(PAGE) {
                e.push(
                    s,
                    format!("{f}.{name}"),
                    format!("{v:#x} is not 4 KiB aligned"),
                );
            }
        }
        if r.size == 0 {
            e.push(s, format!("{f}.size"), "size must be greater than 0");
        } else if !r.size.is_multiple_of(PAGE) {
            e.push(
                s,
                format!("{f}.size"),
                format!("{:#x} is not a multiple of 4 KiB", r.size),
            );
        }
        let host = Span::new(r.hpa, r.size);
        let guest = Span::new(r.gpa, r.size);
        if !board.memory.iter().any(|m| host.within(Span::of(m))) {
            e.push(
                s,
                &f,
                format!("host range {host} is not inside one board RAM bank"),
            );
        }
        if host.overlaps(hyp) {
            e.push(
                s,
                &f,
                format!("host range {host} overlaps the hypervisor region {hyp}"),
            );
        }
        if guest.end > u128::from(IPA_LIMIT) {
            e.push(
                s,
                &f,
                format!("guest range {guest} ends above the 39-bit IPA limit (0x8000000000)"),
            );
        }
        for (j, o) in vm.memory_regions[..i].iter().enumerate() {
            if guest.overlaps(Span::new(o.gpa, o.size)) {
                e.push(
                    s,
                    &f,
                    format!("guest range {guest} overlaps memory_regions[{j}]"),
                );
            }
            if host.overlaps(Span::new(o.hpa, o.size)) {
                e.push(
                    s,
                    &f,
                    format!("host range {host} overlaps memory_regions[{j}]"),
                );
            }
        }
    }
    let guest_ram: Vec<Span> = vm
        .memory_regions
        .iter()
        .map(|r| Span::new(r.gpa, r.size))
        .collect();

    // Rule 5: kernel.
    match &vm.kernel {
        KernelSpec::BareMetal {
            kernel_path,
            kernel_load_addr,
            entry_point,
        } => check_bare_metal(e, vm, kernel_path, *kernel_load_addr, *entry_point, files),
        KernelSpec::Linux(linux) => check_linux(e, vm, linux, files),
    }

    // Rules 6, 7 and 10: device windows (the virtual GIC's first), checked
    // together for overlaps.
    let mut windows: Vec<(String, Span)> = Vec::new();
    let nvcpus = vm.phys_cpu_ids.len() as u64;
    let defaulted = if vm.vgic.is_none() {
        " (the board GIC's address, the default)"
    } else {
        ""
    };
    // GICv2: at most 8 vCPUs (ITARGETSR has 8 target bits).
    if board.gic.version == GicVersion::V2 && nvcpus > 8 {
        e.push(
            s,
            "phys_cpu_ids",
            format!("{nvcpus} vCPUs: a GICv2 VM has at most 8"),
        );
    }
    let align = match board.gic.version {
        GicVersion::V2 => GICV2_FRAME_ALIGN,
        GicVersion::V3 => GIC_FRAME_ALIGN,
    };
    for (field, base, size) in vgic_frames(vm, board) {
        let f = format!("devices.vgic.{field}");
        if !base.is_multiple_of(align) {
            e.push(
                s,
                &f,
                format!("{base:#x}{defaulted} is not {} KiB aligned", align / 1024),
            );
        }
        windows.push((f, Span::new(base, size)));
    }
    let mut own_irqs: Vec<(String, u32)> = Vec::new();
    for (i, d) in vm.emu_devices.iter().enumerate() {
        let f = format!("devices.emu_devices[{i}]");
        e.window(s, &f, ("gpa", d.gpa), d.size);
        windows.push((f.clone(), Span::new(d.gpa, d.size)));
        if let Some(irq) = d.irq {
            let f = format!("{f}.irq");
            if !(32..1020).contains(&irq) {
                e.push(
                    s,
                    &f,
                    format!("INTID {irq} is not an SPI (expected 32..=1019)"),
                );
            }
            own_irqs.push((f, irq));
        }
    }
    for (i, p) in vm.passthrough_devices.iter().enumerate() {
        let f = format!("devices.passthrough_devices[{i}]");
        let Some(dev) = board.devices.iter().find(|d| d.name == p.name) else {
            e.push(
                s,
                format!("{f}.name"),
                format!("board {:?} has no device named {:?}", board.name, p.name),
            );
            continue;
        };
        if let Some(j) = vm.passthrough_devices[..i]
            .iter()
            .position(|o| o.name == p.name)
        {
            e.push(
                s,
                format!("{f}.name"),
                format!("{:?} is already given in passthrough_devices[{j}]", p.name),
            );
        }
        let sharers = page_sharers(board, dev);
        if !sharers.is_empty() {
            e.push(
                s,
                format!("{f}.name"),
                format!(
                    "{:?} {} shares its 4 KiB page {} with {}: a VM is given whole pages, so it \
                     would reach those too; no VM can be given {:?}",
                    p.name,
                    Span::of(&dev.mmio),
                    Span::of(&dev.window()),
                    sharers.join(", "),
                    p.name
                ),
            );
        }
        let gpa = p.gpa.unwrap_or(dev.window().base);
        if !gpa.is_multiple_of(PAGE) {
            e.push(
                s,
                format!("{f}.gpa"),
                format!("{gpa:#x} is not 4 KiB aligned"),
            );
        }
        if let Some(irqs) = &p.irqs {
            for (k, irq) in irqs.iter().enumerate() {
                if !dev.irqs.contains(irq) {
                    e.push(
                        s,
                        format!("{f}.irqs[{k}]"),
                        format!("INTID {irq} is not an IRQ of board device {:?}", dev.name),
                    );
                }
                if irqs[..k].contains(irq) {
                    e.push(
                        s,
                        format!("{f}.irqs[{k}]"),
                        format!("INTID {irq} is listed twice"),
                    );
                }
            }
        }
        if dev.dma {
            // Without an IOMMU the device writes the addresses its driver
            // programs, which are guest-physical: they must equal host-physical.
            for (j, r) in vm.memory_regions.iter().enumerate() {
                if r.gpa != r.hpa {
                    e.push(
                        s,
                        format!("{f}.name"),
                        format!(
                            "{:?} is a DMA master (board `dma = true`) but memory_regions[{j}] \
                             is not identity-mapped (gpa {:#x} != hpa {:#x}); without an IOMMU \
                             every RAM region of its VM needs gpa == hpa (`identity = true`)",
                            p.name, r.gpa, r.hpa
                        ),
                    );
                }
            }
        }
        let routed = p.irqs.as_ref().unwrap_or(&dev.irqs);
        for irq in routed {
            if let Some((of, _)) = own_irqs.iter().find(|(_, o)| o == irq) {
                e.push(
                    s,
                    format!("{f}.irqs"),
                    format!("INTID {irq} is also the interrupt of {of}"),
                );
            }
        }
        windows.push((f, Span::new(gpa, dev.window().size)));
    }
    for (i, (f, irq)) in own_irqs.iter().enumerate() {
        if let Some((of, _)) = own_irqs[..i].iter().find(|(_, o)| o == irq) {
            e.push(s, f, format!("INTID {irq} is also the interrupt of {of}"));
        }
    }
    for (i, (f, w)) in windows.iter().enumerate() {
        if w.end > u128::from(IPA_LIMIT) {
            e.push(
                s,
                f,
                format!("guest window {w} ends above the 39-bit IPA limit (0x8000000000)"),
            );
        }
        for (j, g) in guest_ram.iter().enumerate() {
            if w.overlaps(*g) {
                e.push(
                    s,
                    f,
                    format!("guest window {w} overlaps RAM memory_regions[{j}] {g}"),
                );
            }
        }
        for (of, o) in &windows[..i] {
            if w.overlaps(*o) {
                e.push(s, f, format!("guest window {w} overlaps {of} {o}"));
            }
        }
    }
}

/// Conflicts between two VMs (`a` comes first in the file).
fn check_pair(e: &mut Errors<'_>, a: &VmSpec, b: &VmSpec, board: &BoardSpec) {
    let s = &format!("{} and {}", a.label(), b.label());
    if a.id == b.id {
        e.push(s, "id", format!("id {} is given to both", a.id));
    }
    if a.name == b.name {
        e.push(s, "name", format!("name {:?} is given to both", a.name));
    }
    for c in &b.phys_cpu_ids {
        if a.phys_cpu_ids.contains(c) {
            e.push(s, "phys_cpu_ids", format!("CPU {c} is given to both"));
        }
    }
    for ra in &a.memory_regions {
        for rb in &b.memory_regions {
            let (ha, hb) = (Span::new(ra.hpa, ra.size), Span::new(rb.hpa, rb.size));
            if ha.overlaps(hb) {
                e.push(
                    s,
                    "memory_regions",
                    format!("host ranges {ha} and {hb} overlap"),
                );
            }
        }
    }
    let mut shared: Vec<&str> = Vec::new();
    for pb in &b.passthrough_devices {
        for pa in &a.passthrough_devices {
            if pa.name == pb.name {
                e.push(
                    s,
                    "devices.passthrough_devices",
                    format!("device {:?} is given to both", pa.name),
                );
                shared.push(&pa.name);
            }
        }
    }
    // IRQs of a device already reported as shared would only repeat that.
    let ia = routed_irqs(a, board, &shared);
    let ib = routed_irqs(b, board, &shared);
    for irq in &ib {
        if ia.contains(irq) {
            e.push(
                s,
                "devices.passthrough_devices",
                format!("INTID {irq} is given to both"),
            );
        }
    }
}

/// IRQs a VM's passthrough devices route to it (board devices resolved).
fn routed_irqs(vm: &VmSpec, board: &BoardSpec, skip: &[&str]) -> Vec<u32> {
    let mut out = Vec::new();
    for p in vm
        .passthrough_devices
        .iter()
        .filter(|p| !skip.contains(&p.name.as_str()))
    {
        let irqs = match (&p.irqs, board.devices.iter().find(|d| d.name == p.name)) {
            (Some(irqs), _) => irqs.clone(),
            (None, Some(dev)) => dev.irqs.clone(),
            (None, None) => Vec::new(),
        };
        for irq in irqs {
            if !out.contains(&irq) {
                out.push(irq);
            }
        }
    }
    out
}

fn check_bare_metal(
    e: &mut Errors<'_>,
    vm: &VmSpec,
    kernel_path: &str,
    load: u64,
    entry: u64,
    files: Files<'_>,
) {
    let s = &vm.label();
    let guest_ram: Vec<Span> = vm
        .memory_regions
        .iter()
        .map(|r| Span::new(r.gpa, r.size))
        .collect();
    let load_region = guest_ram.iter().find(|g| g.contains(load));
    if load_region.is_none() {
        e.push(
            s,
            "kernel.kernel_load_addr",
            format!("{load:#x} is not inside any of the VM's memory_regions"),
        );
    }
    if !guest_ram.iter().any(|g| g.contains(entry)) {
        e.push(
            s,
            "kernel.entry_point",
            format!("{entry:#x} is not inside any of the VM's memory_regions"),
        );
    }
    match files(kernel_path) {
        Err(msg) => e.push(s, "kernel.kernel_path", msg),
        Ok(Some(bytes)) => {
            let size = bytes.len() as u128;
            if let Some(region) = load_region {
                let room = region.end - u128::from(load);
                if size > room {
                    e.push(
                        s,
                        "kernel.kernel_path",
                        format!(
                            "image {kernel_path:?} is {size} bytes but only {room} fit between \
                             kernel_load_addr {load:#x} and the end of its region {:#x}",
                            region.end
                        ),
                    );
                }
            }
        }
        Ok(None) => {}
    }
}

/// Magic of a flattened device tree (big-endian).
const FDT_MAGIC: [u8; 4] = [0xd0, 0x0d, 0xfe, 0xed];

fn check_linux(e: &mut Errors<'_>, vm: &VmSpec, linux: &LinuxSpec, files: Files<'_>) {
    let s = &vm.label();
    let kernel = match files(&linux.kernel_path) {
        Err(msg) => {
            e.push(s, "kernel.kernel_path", msg);
            None
        }
        Ok(None) => None,
        Ok(Some(bytes)) => match parse_image_header(&bytes) {
            Err(msg) => {
                e.push(
                    s,
                    "kernel.kernel_path",
                    format!("{:?} {msg}", linux.kernel_path),
                );
                None
            }
            Ok(h) if h.big_endian => {
                e.push(
                    s,
                    "kernel.kernel_path",
                    format!(
                        "{:?} is a big-endian kernel (header flags bit 0); only \
                         little-endian guests are supported",
                        linux.kernel_path
                    ),
                );
                None
            }
            Ok(h) => Some((h, bytes.len() as u64)),
        },
    };
    let initramfs_len = match &linux.initramfs_path {
        None => Some(None),
        Some(p) => match files(p) {
            Err(msg) => {
                e.push(s, "kernel.initramfs_path", msg);
                None
            }
            Ok(None) => Some(Some(0)),
            Ok(Some(bytes)) => Some(Some(bytes.len() as u64)),
        },
    };
    if let Some(p) = &linux.dtb_path {
        match files(p) {
            Err(msg) => e.push(s, "kernel.dtb_path", msg),
            Ok(None) => {}
            Ok(Some(bytes)) => {
                if !bytes.starts_with(&FDT_MAGIC) {
                    e.push(
                        s,
                        "kernel.dtb_path",
                        format!("{p:?} is not a flattened device tree (no 0xd00dfeed magic)"),
                    );
                }
                if bytes.len() as u64 > DTB_MAX {
                    e.push(
                        s,
                        "kernel.dtb_path",
                        format!(
                            "{p:?} is {} bytes; the arm64 boot protocol allows at most 2 MiB",
                            bytes.len()
                        ),
                    );
                }
            }
        }
    }
    if let (Some((header, len)), Some(initramfs_len)) = (kernel, initramfs_len) {
        if let Err(msg) = place_linux(&vm.memory_regions, &header, len, initramfs_len) {
            e.push(s, "kernel.kernel_path", msg);
        }
    }
    if linux.dtb_path.is_none() {
        // The generated tree describes the console with its interrupt;
        // Linux's PL011 driver cannot work without one.
        for (i, d) in vm.emu_devices.iter().enumerate() {
            if d.kind == EmuDeviceKind::Pl011 && d.irq.is_none() {
                e.push(
                    s,
                    format!("devices.emu_devices[{i}].irq"),
                    "a Linux VM's PL011 needs an `irq` (its driver requests one; QEMU virt's is 33)",
                );
            }
        }
    }
}

/// The VM's virtual GIC windows as `(field, base, size)`: GICv3's
/// distributor and its vCPUs' redistributors, or GICv2's 4 KiB distributor
/// and 8 KiB CPU interface (GICV); none on a board without a GIC (x86).
pub(super) fn vgic_frames(vm: &VmSpec, board: &BoardSpec) -> Vec<(&'static str, u64, u64)> {
    if board.arch != Arch::Aarch64 {
        return Vec::new();
    }
    let vgic = vm.vgic_layout(board);
    match board.gic.version {
        GicVersion::V2 => vec![
            ("gicd_gpa", vgic.gicd_gpa, GICV2_GICD_SIZE),
            ("gicr_gpa", vgic.gicr_gpa, GICC_SIZE),
        ],
        GicVersion::V3 => vec![
            ("gicd_gpa", vgic.gicd_gpa, GICD_SIZE),
            (
                "gicr_gpa",
                vgic.gicr_gpa,
                vm.phys_cpu_ids.len() as u64 * GICR_STRIDE,
            ),
        ],
    }
}
