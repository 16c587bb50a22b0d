//! Rules about values: alignment, containment, overlaps, ownership of CPUs,
//! memory, devices and IRQs. Every rule is checked and every failure kept.

use super::model::{BoardSpec, SystemSpec, VmSpec};
use super::ConfigError;
use crate::{Arch, GicVersion, MemRange, MAX_CPUS, MAX_VMS};

#[path = "x86_validate.rs"]
mod x86;

/// Granule of every stage-2 mapping.
const PAGE: u64 = 0x1000;
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

    let cpus = b.cpu_mpidrs.len();
    if cpus == 0 || cpus > MAX_CPUS {
        e.push(
            s,
            "cpu_mpidrs",
            format!("{cpus} CPUs listed, expected 1 to {MAX_CPUS} (MAX_CPUS)"),
        );
    }
    for (i, m) in b.cpu_mpidrs.iter().enumerate() {
        if b.cpu_mpidrs[..i].contains(m) {
            e.push(
                s,
                format!("cpu_mpidrs[{i}]"),
                format!("MPIDR {m:#x} is listed twice"),
            );
        }
    }

    if b.memory.is_empty() {
        e.push(s, "memory", "at least one RAM bank is required");
    }
    for (i, m) in b.memory.iter().enumerate() {
        e.window(s, &format!("memory[{i}]"), ("base", m.base), m.size);
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

    // On x86 the console is a range of I/O ports and there is no GIC.
    let arm = b.arch == Arch::Aarch64;
    if arm {
        e.window(s, "console", ("base", b.console.base), b.console.size);
    }
    if arm && in_ram(Span::of(&b.console)) {
        e.push(
            s,
            "console",
            format!("{} overlaps RAM", Span::of(&b.console)),
        );
    }

    let gic = b.gic;
    let second = match gic.version {
        GicVersion::V2 => "gicc_base",
        GicVersion::V3 => "gicr_base",
    };
    let gic_bases = [
        ("gicd_base", gic.gicd_base),
        (second, gic.gicr_or_gicc_base),
    ];
    for (field, base) in gic_bases.into_iter().filter(|_| arm) {
        if !base.is_multiple_of(PAGE) {
            e.push(
                s,
                format!("gic.{field}"),
                format!("{base:#x} is not 4 KiB aligned"),
            );
        }
        if in_ram(Span::new(base, PAGE)) {
            e.push(
                s,
                format!("gic.{field}"),
                format!("{base:#x} is inside RAM"),
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
        e.window(s, &f, ("base", d.mmio.base), d.mmio.size);
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
        for (k, irq) in d.irqs.iter().enumerate() {
            if !(32..1020).contains(irq) {
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
    e.list
}

/// Size of a VM's kernel image, as answered by the caller: `Ok(Some(n))`
/// known size, `Ok(None)` missing but tolerated (host builds), `Err(msg)`
/// missing and required (the message says why).
pub type ImageSize<'a> = &'a dyn Fn(&str) -> Result<Option<u64>, String>;

/// Checks a parsed system config against its (parsed) board: rule sets
/// 2–7 of docs/CONFIG.md.
pub fn validate_system(
    file: &str,
    sys: &SystemSpec,
    board: &BoardSpec,
    image_size: ImageSize<'_>,
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
        check_vm(&mut e, vm, board, image_size);
        x86::check_vm_ports(&mut e, vm, board);
    }
    for (j, b) in sys.vms.iter().enumerate() {
        for a in &sys.vms[..j] {
            check_pair(&mut e, a, b, board);
            x86::check_pair_ports(&mut e, a, b);
        }
    }
    e.list
}

fn check_vm(e: &mut Errors<'_>, vm: &VmSpec, board: &BoardSpec, image_size: ImageSize<'_>) {
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
    let load_region = guest_ram.iter().find(|g| g.contains(vm.kernel_load_addr));
    if load_region.is_none() {
        e.push(
            s,
            "kernel.kernel_load_addr",
            format!(
                "{:#x} is not inside any of the VM's memory_regions",
                vm.kernel_load_addr
            ),
        );
    }
    if !guest_ram.iter().any(|g| g.contains(vm.entry_point)) {
        e.push(
            s,
            "kernel.entry_point",
            format!(
                "{:#x} is not inside any of the VM's memory_regions",
                vm.entry_point
            ),
        );
    }
    match image_size(&vm.kernel_path) {
        Err(msg) => e.push(s, "kernel.kernel_path", msg),
        Ok(Some(size)) => {
            if let Some(region) = load_region {
                let room = region.end - u128::from(vm.kernel_load_addr);
                if u128::from(size) > room {
                    e.push(
                        s,
                        "kernel.kernel_path",
                        format!(
                            "image {:?} is {size} bytes but only {room} fit between \
                             kernel_load_addr {:#x} and the end of its region {:#x}",
                            vm.kernel_path, vm.kernel_load_addr, region.end
                        ),
                    );
                }
            }
        }
        Ok(None) => {}
    }

    // Rules 6 and 7: device windows, checked together for overlaps.
    let mut windows: Vec<(String, Span)> = Vec::new();
    for (i, d) in vm.emu_devices.iter().enumerate() {
        let f = format!("devices.emu_devices[{i}]");
        e.window(s, &f, ("gpa", d.gpa), d.size);
        windows.push((f, Span::new(d.gpa, d.size)));
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
        let gpa = p.gpa.unwrap_or(dev.mmio.base);
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
        windows.push((f, Span::new(gpa, dev.mmio.size)));
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
