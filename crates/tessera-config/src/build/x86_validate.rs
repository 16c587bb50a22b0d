//! Value rules for what x86_64 adds: port I/O exists only on x86 boards,
//! a VM's port devices do not overlap each other or the hypervisor's
//! console, and no port is given to two VMs; a VM's interrupt lines (GSIs)
//! are inputs the board's I/O APIC has, not the console's, and each is
//! given to one VM only.

use super::super::model::{BoardSpec, VmSpec};
use super::Errors;
use crate::{Arch, PortRange};

/// Guest vector space the hypervisor keeps for GSIs: GSI `g` arrives at
/// host vector `0x30 + g`, below the kick (0xf2) and spurious (0xff)
/// vectors (`src/arch/x86_64/ioapic.rs`).
pub const MAX_GSIS: u32 = 0xc0;

/// The hypervisor console's ports on an x86 board.
fn console_ports(board: &BoardSpec) -> PortRange {
    PortRange {
        base: board.console.base as u16,
        size: board.console.size as u16,
    }
}

fn show(r: &PortRange) -> String {
    format!("ports {:#x}..{:#x}", r.base, r.end())
}

/// Every port range a VM claims, with the field that claims it.
fn claims(vm: &VmSpec) -> Vec<(String, PortRange)> {
    let emu = vm
        .emu_ports
        .iter()
        .enumerate()
        .map(|(i, d)| (format!("devices.emu_ports[{i}]"), d.range()));
    let pt = vm
        .passthrough_ports
        .iter()
        .enumerate()
        .map(|(i, r)| (format!("devices.passthrough_ports[{i}]"), r.range));
    emu.chain(pt).collect()
}

/// Rules for one VM's ports.
pub(super) fn check_vm_ports(e: &mut Errors<'_>, vm: &VmSpec, board: &BoardSpec) {
    let s = &vm.label();
    let claims = claims(vm);
    if board.arch != Arch::X86_64 {
        for (field, _) in &claims {
            e.push(
                s,
                field.as_str(),
                format!(
                    "I/O ports exist only on x86_64 boards (board {:?} is {})",
                    board.name,
                    board.arch.name()
                ),
            );
        }
        return;
    }
    // Emulated ports are the VM's own (its COM1 may use the console's
    // numbers); passed-through ports are the machine's.
    let console = console_ports(board);
    for (i, (field, r)) in claims.iter().enumerate() {
        let passthrough = i >= vm.emu_ports.len();
        if passthrough && r.overlaps(&console) {
            e.push(
                s,
                field.as_str(),
                format!("{} overlap the hypervisor console", show(r)),
            );
        }
        for (other, o) in &claims[..i] {
            if r.overlaps(o) {
                e.push(
                    s,
                    field.as_str(),
                    format!("{} overlap {other} {}", show(r), show(o)),
                );
            }
        }
    }
}

/// Ports given to two VMs (emulated devices are per VM and may reuse the
/// same numbers; passthrough ports are the machine's and may not).
pub(super) fn check_pair_ports(e: &mut Errors<'_>, a: &VmSpec, b: &VmSpec) {
    let s = &format!("{} and {}", a.label(), b.label());
    for (i, rb) in b.passthrough_ports.iter().map(|p| p.range).enumerate() {
        for ra in a.passthrough_ports.iter().map(|p| &p.range) {
            if ra.overlaps(&rb) {
                e.push(
                    s,
                    format!("devices.passthrough_ports[{i}]"),
                    format!("{} and {} are given to both", show(ra), show(&rb)),
                );
            }
        }
    }
}

/// The board's I/O APIC and the GSIs it names: the console's line and
/// board devices' `irqs` are inputs it has.
pub(super) fn check_board_irqs(e: &mut Errors<'_>, b: &BoardSpec) {
    if b.arch != Arch::X86_64 {
        return;
    }
    let s = "board";
    if let Some(io) = &b.ioapic {
        if io.base % 0x1000 != 0 {
            e.push(
                s,
                "ioapic.base",
                format!("{:#x} is not 4 KiB aligned", io.base),
            );
        }
        if io.pins == 0 || io.pins > MAX_GSIS {
            e.push(
                s,
                "ioapic.pins",
                format!("{} inputs, expected 1 to {MAX_GSIS}", io.pins),
            );
        }
    }
    if let Some(irq) = b.console_irq {
        if let Some(why) = missing_gsi(b, irq) {
            e.push(s, "console.irq", why);
        }
    }
    for (i, d) in b.devices.iter().enumerate() {
        for (k, &irq) in d.irqs.iter().enumerate() {
            let f = format!("devices[{i}].irqs[{k}]");
            if let Some(why) = missing_gsi(b, irq) {
                e.push(s, f.as_str(), why);
            }
            if d.irqs[..k].contains(&irq) {
                e.push(s, f, format!("GSI {irq} is listed twice"));
            }
        }
    }
}

/// The local APIC page every core has, and the I/O APIC page every x86 VM
/// sees (the hypervisor emulates both).
const LAPIC_PAGE: u64 = 0xfee0_0000;
const VM_IOAPIC_PAGE: u64 = 0xfec0_0000;
const PAGE: u64 = 0x1000;

fn overlaps_page(base: u64, size: u64, page: u64) -> bool {
    base < page + PAGE && page < base.saturating_add(size)
}

/// Board devices stay off the interrupt controllers the hypervisor owns:
/// a VM given one could aim other VMs' lines at itself.
pub(super) fn check_board_devices(e: &mut Errors<'_>, b: &BoardSpec) {
    if b.arch != Arch::X86_64 {
        return;
    }
    let ioapic = b.ioapic.map(|io| io.base & !(PAGE - 1));
    for (i, d) in b.devices.iter().enumerate() {
        let w = d.window();
        for (page, what) in [
            (Some(LAPIC_PAGE), "the local APIC page"),
            (ioapic, "the I/O APIC"),
        ] {
            if page.is_some_and(|p| overlaps_page(w.base, w.size, p)) {
                e.push(
                    "board",
                    format!("devices[{i}]"),
                    format!("{:?} overlaps {what}, which the hypervisor owns", d.name),
                );
            }
        }
    }
}

/// A VM's MMIO devices stay off the pages of its emulated I/O APIC and
/// local APIC, which would shadow them.
pub(super) fn check_vm_apic_pages(e: &mut Errors<'_>, vm: &VmSpec, board: &BoardSpec) {
    if board.arch != Arch::X86_64 {
        return;
    }
    let s = &vm.label();
    let emu = vm
        .emu_devices
        .iter()
        .enumerate()
        .map(|(i, d)| (format!("devices.emu_devices[{i}]"), d.gpa, d.size));
    let pt = vm
        .passthrough_devices
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            let dev = board.devices.iter().find(|d| d.name == p.name)?;
            let w = dev.window();
            Some((
                format!("devices.passthrough_devices[{i}]"),
                p.gpa.unwrap_or(w.base),
                w.size,
            ))
        });
    for (field, base, size) in emu.chain(pt) {
        for (page, what) in [
            (VM_IOAPIC_PAGE, "the VM's I/O APIC (0xfec00000)"),
            (LAPIC_PAGE, "the VM's local APIC page (0xfee00000)"),
        ] {
            if overlaps_page(base, size, page) {
                e.push(s, field.as_str(), format!("overlaps {what}"));
            }
        }
    }
}

/// Why `gsi` is not an input of the board's I/O APIC, if it is not.
fn missing_gsi(b: &BoardSpec, gsi: u32) -> Option<String> {
    match &b.ioapic {
        None => Some(format!(
            "GSI {gsi}: board {:?} describes no I/O APIC (add an [ioapic] table)",
            b.name
        )),
        Some(io) if gsi >= io.pins.min(MAX_GSIS) => Some(format!(
            "GSI {gsi} is not an input of the board's I/O APIC (it has {}: 0..={})",
            io.pins,
            io.pins.min(MAX_GSIS).saturating_sub(1)
        )),
        Some(_) => None,
    }
}

/// Every GSI a VM is given, with the field that gives it: its passthrough
/// ports' `irqs`, then its passthrough devices' (the board device's
/// `irqs` unless the entry names some).
fn gsi_claims(vm: &VmSpec, board: &BoardSpec) -> Vec<(String, u32)> {
    let ports = vm.passthrough_ports.iter().enumerate().flat_map(|(i, p)| {
        p.irqs
            .iter()
            .enumerate()
            .map(move |(k, &g)| (format!("devices.passthrough_ports[{i}].irqs[{k}]"), g))
    });
    let devices = vm
        .passthrough_devices
        .iter()
        .enumerate()
        .flat_map(|(i, p)| {
            let all = board
                .devices
                .iter()
                .find(|d| d.name == p.name)
                .map_or(&[][..], |d| d.irqs.as_slice());
            let field = if p.irqs.is_some() {
                format!("devices.passthrough_devices[{i}].irqs")
            } else {
                format!("devices.passthrough_devices[{i}] (device {:?})", p.name)
            };
            p.irqs
                .as_deref()
                .unwrap_or(all)
                .iter()
                .map(move |&g| (field.clone(), g))
        });
    ports.chain(devices).collect()
}

/// Rules for one VM's GSIs: only on x86 boards, inputs the I/O APIC has,
/// not the console's line, each given once.
pub(super) fn check_vm_gsis(e: &mut Errors<'_>, vm: &VmSpec, board: &BoardSpec) {
    let s = &vm.label();
    if board.arch != Arch::X86_64 {
        for (i, p) in vm.passthrough_ports.iter().enumerate() {
            if !p.irqs.is_empty() {
                e.push(
                    s,
                    format!("devices.passthrough_ports[{i}].irqs"),
                    "GSIs exist only on x86_64 boards",
                );
            }
        }
        return;
    }
    let claims = gsi_claims(vm, board);
    for (i, (field, gsi)) in claims.iter().enumerate() {
        if let Some(why) = missing_gsi(board, *gsi) {
            e.push(s, field.as_str(), why);
        }
        if board.console_irq == Some(*gsi) {
            e.push(
                s,
                field.as_str(),
                format!("GSI {gsi} is the hypervisor console's interrupt (board console.irq)"),
            );
        }
        if let Some((other, _)) = claims[..i].iter().find(|(_, g)| g == gsi) {
            e.push(
                s,
                field.as_str(),
                format!("GSI {gsi} is also given by {other}"),
            );
        }
    }
}

/// A GSI given to two VMs. Two VMs given the same board device are
/// reported by the shared rules already; this covers the rest.
pub(super) fn check_pair_gsis(e: &mut Errors<'_>, a: &VmSpec, b: &VmSpec, board: &BoardSpec) {
    if board.arch != Arch::X86_64 {
        return;
    }
    let s = &format!("{} and {}", a.label(), b.label());
    let ca = gsi_claims(a, board);
    for (field, gsi) in gsi_claims(b, board) {
        let Some((other, _)) = ca.iter().find(|(_, g)| *g == gsi) else {
            continue;
        };
        // Both from passthrough devices: the shared rule said it already.
        if field.starts_with("devices.passthrough_devices")
            && other.starts_with("devices.passthrough_devices")
        {
            continue;
        }
        e.push(
            s,
            field.as_str(),
            format!("GSI {gsi} is given to both (vm {:?}: {other})", a.name),
        );
    }
}

/// The sorted GSIs a VM is given (what the hypervisor routes to it).
pub fn vm_gsis(vm: &VmSpec, board: &BoardSpec) -> Vec<u32> {
    let mut g: Vec<u32> = gsi_claims(vm, board).into_iter().map(|(_, g)| g).collect();
    g.sort_unstable();
    g.dedup();
    g
}
