//! The hypervisor side of inter-VM channels: scrubbing their memory at
//! boot, the per-VM table of virtual GICs rings go through, [`attach`],
//! called while each VM is built, and for pools the IVC hypercalls and
//! [`depart`] with the stage-2 edge they act through.

use super::dynamic::{self, PoolDoorbell, PoolMemory, PoolState};
use super::pci::{Function, PciHost};
use super::{ChannelState, Doorbell, Notify};
use crate::arch::{self, MemKind};
use crate::config::{Arch, MAX_VMS, SYSTEM};
use crate::devices::vgic::{OwnedSpi, SpiSource, Vgic};
use crate::devices::MmioBus;
use crate::mm::table::MapError;
use alloc::boxed::Box;
use alloc::vec::Vec;
use spin::Once;
use tessera_config::{ChannelMember, DOORBELL_SIZE};

/// Each VM's virtual GIC, by VM id, filled in as VMs are built.
static VGICS: [Once<&'static Vgic>; MAX_VMS] = [const { Once::new() }; MAX_VMS];
/// Run-time state of each channel of the config, by channel id.
static STATES: Once<Vec<ChannelState>> = Once::new();
/// Run-time state of each channel pool of the config, by pool id.
static POOLS: Once<Vec<PoolState>> = Once::new();

/// Rings through [`VGICS`] (Arm) or the back-end's local APICs (x86).
struct VgicTable;

impl Notify for VgicTable {
    fn notify(&self, vm_id: u16, irq: u32) {
        self.raise(vm_id, irq, 0);
    }
    #[inline(always)]
    fn ring(&self, m: &ChannelMember) {
        self.raise(m.vm_id, m.irq, m.line);
    }
}

impl VgicTable {
    #[inline(always)]
    fn raise(&self, vm_id: u16, irq: u32, line: u32) {
        // x86: a vector in vCPU 0's local APIC; Arm with a spare physical
        // line: the line set pending, forwarded by the core the peer
        // routed the SPI to. Both by the back-end, no kick needed.
        if arch::raise_doorbell(vm_id, irq, line) {
            return;
        }
        // Arm otherwise, an edge in the virtual GIC: the SPI goes to the
        // vCPU the peer routed it to (vCPU 0 by default), which is kicked
        // if it waits in WFI.
        if let Some(vgic) = VGICS.get(usize::from(vm_id)).and_then(Once::get) {
            vgic.set_pending(0, irq);
        }
    }
}

/// Scrubs every channel's backing memory (at the top of the hypervisor
/// region, outside the heap) and sets up their state. Boot core, once,
/// before any VM is built.
pub fn init() {
    for c in SYSTEM.channels {
        // SAFETY: the build placed the channel in the hypervisor region
        // above the heap (`channel_bytes` are left out of it and the linker
        // script keeps the image below them), identity-mapped at EL2 as
        // RAM; no VM runs yet.
        unsafe {
            arch::scrub_guest_memory(c.hpa, c.size);
            arch::make_coherent_for_guest(c.hpa, c.size);
        }
    }
    for p in SYSTEM.pools {
        // SAFETY: as for the channels: the pools lie right below them.
        unsafe {
            arch::scrub_guest_memory(p.hpa, p.size);
            arch::make_coherent_for_guest(p.hpa, p.size);
        }
    }
    STATES.call_once(|| {
        SYSTEM
            .channels
            .iter()
            .map(|_| ChannelState::new())
            .collect()
    });
    POOLS.call_once(|| SYSTEM.pools.iter().map(PoolState::new).collect());
}

fn pools() -> &'static [PoolState] {
    POOLS.get().map_or(&[], Vec::as_slice)
}

/// Runs the pools' stage-2 changes on the VMs' live tables.
struct LiveStage2;

#[cfg(target_arch = "aarch64")]
impl PoolMemory for LiveStage2 {
    fn map(&self, vm_id: u16, gpa: u64, hpa: u64, size: u64) -> Result<(), MapError> {
        // Pool members are VMs of the config: always found.
        let vm = crate::vm::all()
            .iter()
            .find(|v| v.config.id == vm_id)
            .ok_or(MapError::OutOfRange)?;
        arch::aarch64::stage2_live::map(vm.stage2_root, gpa, hpa, size)
    }

    fn unmap(&self, vm_id: u16, gpa: u64, size: u64) {
        let Some(vm) = crate::vm::all().iter().find(|v| v.config.id == vm_id) else {
            return;
        };
        if arch::aarch64::stage2_live::unmap(vm.vmid, vm.stage2_root, gpa, size).is_err() {
            // Cannot happen: pool windows are mapped in pages only.
            log::warn!("vm {}: pool window {:#x} not unmapped", vm.config.name, gpa);
        }
    }

    fn scrub(&self, hpa: u64, size: u64) {
        // SAFETY: pool memory above the heap that no VM maps any more (the
        // pool unmapped it from every party and invalidated their TLBs),
        // identity-mapped at EL2 as RAM.
        unsafe {
            arch::scrub_guest_memory(hpa, size);
            arch::make_coherent_for_guest(hpa, size);
        }
    }
}

/// x86 has no run-time EPT changes yet; the build refuses pools there, so
/// nothing calls this.
#[cfg(not(target_arch = "aarch64"))]
impl PoolMemory for LiveStage2 {
    fn map(&self, _: u16, _: u64, _: u64, _: u64) -> Result<(), MapError> {
        Err(MapError::OutOfRange)
    }
    fn unmap(&self, _: u16, _: u64, _: u64) {}
    fn scrub(&self, _: u64, _: u64) {}
}

/// Serves IVC hypercall `nr` (x1-x3 in `args`) of VM `vm_id`; `None` if
/// `nr` is not one. See docs/IVC.md.
pub fn hypercall(vm_id: u16, nr: u32, args: [u64; 3]) -> Option<[u64; 5]> {
    dynamic::hypercall(pools(), &LiveStage2, &VgicTable, vm_id, nr, args)
}

/// VM `vm_id` stopped or is being reset, none of its vCPUs running: its
/// dynamic channels are released (see [`dynamic::depart`]).
pub fn depart(vm_id: u16) {
    dynamic::depart(pools(), &LiveStage2, &VgicTable, vm_id);
}

/// The doorbell interrupts of VM `vm_id`: static channels' (on the spare
/// physical line the build gave the member, if any) and pools' (software).
pub fn owned_spis(vm_id: u16) -> impl Iterator<Item = OwnedSpi> {
    let arm = SYSTEM.board.arch == Arch::Aarch64;
    SYSTEM
        .channels
        .iter()
        .flat_map(|c| c.members.iter())
        .filter(move |m| m.vm_id == vm_id)
        .map(move |m| OwnedSpi {
            intid: m.irq,
            source: if m.line != 0 && arm {
                SpiSource::SpareLine(m.line)
            } else {
                SpiSource::Emulated
            },
        })
        .chain(
            SYSTEM
                .pools
                .iter()
                .flat_map(|p| p.members.iter())
                .filter(move |m| m.vm_id == vm_id)
                .map(|m| OwnedSpi {
                    intid: m.irq,
                    source: SpiSource::Emulated,
                }),
        )
}

/// Wires VM `vm_id`'s channels in while it is built: registers its virtual
/// GIC for rings, maps each channel's memory with `map(gpa, hpa, size,
/// kind)` (read-only for `ro` members) and puts its doorbells on `mmio`.
pub fn attach(
    vm_id: u16,
    vgic: &'static Vgic,
    mmio: &mut MmioBus,
    mut map: impl FnMut(u64, u64, u64, MemKind) -> Result<(), &'static str>,
) -> Result<(), &'static str> {
    let slot = VGICS
        .get(usize::from(vm_id))
        .ok_or("VM id beyond MAX_VMS")?;
    slot.call_once(|| vgic);
    let states = STATES.get().ok_or("inter-VM channels not initialised")?;
    for (c, state) in SYSTEM.channels.iter().zip(states) {
        for (index, m) in c.members.iter().enumerate() {
            if m.vm_id != vm_id {
                continue;
            }
            let kind = if m.writable {
                MemKind::Normal
            } else {
                MemKind::NormalReadOnly
            };
            map(m.gpa, c.hpa, c.size, kind)?;
            let bell: &'static Doorbell<VgicTable> =
                Box::leak(Box::new(Doorbell::new(c, state, index, &VgicTable)));
            mmio.add(m.doorbell_gpa, DOORBELL_SIZE, bell);
        }
    }
    // Pools: only the doorbell now; channels are mapped when allocated.
    for state in pools() {
        let config = state.config();
        for (index, m) in config.members.iter().enumerate() {
            if m.vm_id == vm_id {
                let bell: &'static PoolDoorbell =
                    Box::leak(Box::new(PoolDoorbell::new(state, index, &VgicTable)));
                mmio.add(m.doorbell_gpa, DOORBELL_SIZE, bell);
            }
        }
    }
    Ok(())
}

/// VM `vm_id`'s `ivc-pci` bridge: device `k` is the `k`-th static channel
/// it is a member of, in config order (the order of its device tree's
/// `interrupt-map`).
pub fn pci_host(vm_id: u16) -> Result<&'static PciHost, &'static str> {
    let states = STATES.get().ok_or("inter-VM channels not initialised")?;
    let functions = SYSTEM
        .channels
        .iter()
        .zip(states)
        .flat_map(|(c, state)| {
            c.members
                .iter()
                .enumerate()
                .filter(|(_, m)| m.vm_id == vm_id)
                .filter_map(move |(index, _)| Function::new(c, state, index, &VgicTable))
        })
        .collect();
    Ok(Box::leak(Box::new(PciHost::new(functions))))
}
