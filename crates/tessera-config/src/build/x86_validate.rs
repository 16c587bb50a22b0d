//! Value rules for what x86_64 adds: port I/O exists only on x86 boards,
//! a VM's port devices do not overlap each other or the hypervisor's
//! console, and no port is given to two VMs.

use super::super::model::{BoardSpec, VmSpec};
use super::Errors;
use crate::{Arch, PortRange};

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
        .map(|(i, r)| (format!("devices.passthrough_ports[{i}]"), *r));
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
    for (i, rb) in b.passthrough_ports.iter().enumerate() {
        for ra in &a.passthrough_ports {
            if ra.overlaps(rb) {
                e.push(
                    s,
                    format!("devices.passthrough_ports[{i}]"),
                    format!("{} and {} are given to both", show(ra), show(rb)),
                );
            }
        }
    }
}
