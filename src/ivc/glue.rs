//! The hypervisor side of static channels: scrubbing their memory at boot,
//! the per-VM table of virtual GICs rings go through, and [`attach`],
//! called while each VM is built.

use super::{ChannelState, Doorbell, Notify};
use crate::arch::{self, MemKind};
use crate::config::{MAX_VMS, SYSTEM};
use crate::devices::vgic::{OwnedSpi, Vgic};
use crate::devices::MmioBus;
use alloc::boxed::Box;
use alloc::vec::Vec;
use spin::Once;
use tessera_config::DOORBELL_SIZE;

/// Each VM's virtual GIC, by VM id, filled in as VMs are built.
static VGICS: [Once<&'static Vgic>; MAX_VMS] = [const { Once::new() }; MAX_VMS];
/// Run-time state of each channel of the config, by channel id.
static STATES: Once<Vec<ChannelState>> = Once::new();

/// Rings through [`VGICS`].
struct VgicTable;

impl Notify for VgicTable {
    fn notify(&self, vm_id: u16, irq: u32) {
        // An edge: the SPI goes to the vCPU the peer routed it to (vCPU 0
        // by default), which is kicked if it waits in WFI.
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
    STATES.call_once(|| {
        SYSTEM
            .channels
            .iter()
            .map(|_| ChannelState::new())
            .collect()
    });
}

/// The doorbell interrupts of VM `vm_id` (software SPIs it owns).
pub fn owned_spis(vm_id: u16) -> impl Iterator<Item = OwnedSpi> {
    SYSTEM
        .channels
        .iter()
        .flat_map(|c| c.members.iter())
        .filter(move |m| m.vm_id == vm_id)
        .map(|m| OwnedSpi {
            intid: m.irq,
            hw: false,
        })
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
            let bell: &'static Doorbell =
                Box::leak(Box::new(Doorbell::new(c, state, index, &VgicTable)));
            mmio.add(m.doorbell_gpa, DOORBELL_SIZE, bell);
        }
    }
    Ok(())
}
