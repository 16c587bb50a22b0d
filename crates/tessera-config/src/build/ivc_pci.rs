//! The rules of an `ivc-pci` emulated device: a virtual PCI host bridge
//! whose functions are the static channels of its VM (docs/IVC.md, "Linux
//! userspace"). Each function has two BARs at the member's own addresses:
//! BAR0 the doorbell page, BAR2 the shared memory, whose size a BAR must
//! give as a power of two, aligned to itself.

use super::channel::{grants, overlaps, show, vm_windows, win};
use super::model::{BoardSpec, SystemSpec};
use super::ConfigError;
use crate::{
    ivc_pci_shm_bar_size as shm_bar_size, Arch, EmuDeviceKind, IVC_PCI_ECAM_SIZE,
    IVC_PCI_MAX_FUNCTIONS,
};

/// Checks every `ivc-pci` device of a system config. Errors are scoped to
/// the VM (`devices.emu_devices[i].*`) or to a channel member whose
/// shared-memory BAR does not fit (`members[j].gpa`).
pub fn validate_ivc_pci(file: &str, sys: &SystemSpec, board: &BoardSpec) -> Vec<ConfigError> {
    let mut out = Vec::new();
    let all = grants(sys);
    for vm in &sys.vms {
        let vs = vm.label();
        let bridges: Vec<usize> = (0..vm.emu_devices.len())
            .filter(|&i| vm.emu_devices[i].kind == EmuDeviceKind::IvcPci)
            .collect();
        let Some(&first) = bridges.first() else {
            continue;
        };
        for &i in &bridges {
            let d = &vm.emu_devices[i];
            let f = |x: &str| format!("devices.emu_devices[{i}].{x}");
            if board.arch != Arch::Aarch64 {
                out.push(ConfigError::new(
                    file,
                    &vs,
                    f("kind"),
                    "an ivc-pci bridge is described in the VM's device tree: AArch64 boards only"
                        .into(),
                ));
            }
            if i != first {
                out.push(ConfigError::new(
                    file,
                    &vs,
                    f("kind"),
                    format!("a VM has at most one ivc-pci bridge; emu_devices[{first}] is one"),
                ));
            }
            if d.size != IVC_PCI_ECAM_SIZE {
                out.push(ConfigError::new(
                    file,
                    &vs,
                    f("size"),
                    format!(
                        "{:#x}: an ivc-pci bridge's ECAM window is bus 0 only, {IVC_PCI_ECAM_SIZE:#x} bytes",
                        d.size
                    ),
                ));
            }
            if !d.gpa.is_multiple_of(IVC_PCI_ECAM_SIZE) {
                out.push(ConfigError::new(
                    file,
                    &vs,
                    f("gpa"),
                    format!("{:#x} is not 1 MiB aligned (an ECAM window is)", d.gpa),
                ));
            }
            if d.irq.is_some() {
                out.push(ConfigError::new(
                    file,
                    &vs,
                    f("irq"),
                    "an ivc-pci bridge has no interrupt of its own: each function raises its \
                     channel's `irq` as INTA"
                        .into(),
                ));
            }
        }
        let members: Vec<_> = sys
            .channels
            .iter()
            .flat_map(|c| {
                c.members
                    .iter()
                    .enumerate()
                    .filter(|(_, m)| m.vm == vm.name)
                    .map(move |(j, m)| (c, j, m))
            })
            .collect();
        if members.len() > IVC_PCI_MAX_FUNCTIONS {
            out.push(ConfigError::new(
                file,
                &vs,
                format!("devices.emu_devices[{first}]"),
                format!(
                    "the VM is a member of {} channels; an ivc-pci bridge presents at most \
                     {IVC_PCI_MAX_FUNCTIONS}",
                    members.len()
                ),
            ));
        }
        let (windows, _) = vm_windows(vm, board);
        for (c, j, m) in members {
            let scope = format!("{}, vm {:?}", c.label(), vm.name);
            let field = format!("members[{j}].gpa");
            let bar = shm_bar_size(c.size);
            if !m.gpa.is_multiple_of(bar) {
                out.push(ConfigError::new(
                    file,
                    &scope,
                    field.clone(),
                    format!(
                        "{:#x}: the VM presents its channels as PCI functions (ivc-pci), and \
                         the shared-memory BAR ({bar:#x} bytes: the size rounded up to a power \
                         of two) must be aligned to its size",
                        m.gpa
                    ),
                ));
            }
            if bar == c.size {
                continue;
            }
            // The BAR's tail past the channel: nothing of the VM may be there.
            let tail = win(m.gpa.saturating_add(c.size), bar - c.size);
            let own = windows.iter().map(|(of, w)| (format!("the VM's {of}"), *w));
            let granted = all.iter().flat_map(|g| {
                g.members
                    .iter()
                    .filter(|gm| gm.vm == vm.name)
                    .flat_map(move |gm| {
                        [
                            (format!("{} {}", g.scope, gm.mem_field), win(gm.mem, g.size)),
                            (
                                format!("{} doorbell", g.scope),
                                win(gm.doorbell, crate::DOORBELL_SIZE),
                            ),
                        ]
                    })
            });
            for (of, w) in own.chain(granted) {
                if overlaps(tail, w) {
                    out.push(ConfigError::new(
                        file,
                        &scope,
                        field.clone(),
                        format!(
                            "the shared-memory BAR's tail {} (the size rounded up to a power \
                             of two) overlaps {of} {}",
                            show(tail),
                            show(w)
                        ),
                    ));
                }
            }
        }
    }
    out
}
