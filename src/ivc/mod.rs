//! Inter-VM communication: static channels (shared memory plus one
//! doorbell per member) declared in the config, and channels allocated at
//! run time from the config's pools. Arch-neutral.
//!
//! The models (the doorbell devices and a channel's pending bits here, the
//! pool allocator and ownership state machine in [`pool`], the IVC
//! hypercalls in [`dynamic`]) are pure and host-tested; [`attach`] wires
//! them into a VM being built: the shared memory into its stage 2 with the
//! member's access, the doorbells onto its MMIO bus, its virtual GIC into
//! the table rings go through. Register maps and guest ABI: docs/IVC.md.

pub mod dynamic;
#[cfg(target_os = "none")]
mod glue;
pub mod pci;
pub mod pool;
#[cfg(target_os = "none")]
pub use glue::{attach, depart, hypercall, init, owned_spis, pci_host};

use crate::devices::{AccessError, Accessor, MmioDevice};
use crate::exit::AccessWidth;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use tessera_config::{Channel, ChannelMember, MAX_CHANNEL_MEMBERS};

/// Doorbell registers (byte offsets in the 4 KiB page; 32-bit accesses):
/// the ABI, shared with the guests.
pub use tessera_abi::doorbell as reg;

/// Who gets told when a member is rung: the member's VM's virtual GIC in
/// the hypervisor, a recorder in tests.
pub trait Notify: Send + Sync {
    /// Raises (edge) interrupt `irq` of VM `vm_id`.
    fn notify(&self, vm_id: u16, irq: u32);
    /// Raises static-channel member `m`'s doorbell interrupt. The
    /// hypervisor carries it on the member's spare physical line when the
    /// build gave it one (`m.line`); by default it is [`Self::notify`].
    #[inline(always)]
    fn ring(&self, m: &ChannelMember) {
        self.notify(m.vm_id, m.irq);
    }
}

/// Run-time state of one channel shared by its members' doorbells.
pub struct ChannelState {
    /// Per member: who rang it and was not acked yet (bit = ringer index).
    pending: [AtomicU32; MAX_CHANNEL_MEMBERS],
    /// Per member: rings raise no interrupt (its PCI function's INTx
    /// disable bit, see [`pci`]); they are still recorded in `pending`.
    held: [AtomicBool; MAX_CHANNEL_MEMBERS],
}

impl ChannelState {
    /// Nothing pending, nothing held.
    pub const fn new() -> Self {
        Self {
            pending: [const { AtomicU32::new(0) }; MAX_CHANNEL_MEMBERS],
            held: [const { AtomicBool::new(false) }; MAX_CHANNEL_MEMBERS],
        }
    }

    /// Who rang member `index` and was not acknowledged (bit = ringer).
    pub fn pending_for(&self, index: usize) -> u32 {
        self.pending
            .get(index)
            .map_or(0, |p| p.load(Ordering::SeqCst))
    }

    /// Member `index` acknowledges the rings in `bits`.
    pub fn acknowledge(&self, index: usize, bits: u32) {
        if let Some(p) = self.pending.get(index) {
            p.fetch_and(!bits, Ordering::AcqRel);
        }
    }

    /// Holds member `index`'s interrupt back (`true`) or lets it through;
    /// `true` if it was let through with a ring pending (the caller raises
    /// it: the ring found it held). Sequentially consistent with
    /// [`Doorbell`]'s ring, so a ring racing with the release raises the
    /// interrupt at least once.
    pub fn set_held(&self, index: usize, held: bool) -> bool {
        let Some(h) = self.held.get(index) else {
            return false;
        };
        h.store(held, Ordering::SeqCst);
        !held && self.pending_for(index) != 0
    }
}

impl Default for ChannelState {
    fn default() -> Self {
        Self::new()
    }
}

/// The doorbell one member of a channel sees (an emulated MMIO page).
/// Generic over who is told of a ring, so the hypervisor's ring path is
/// one inlined call, not a virtual one (`dyn Notify` works too).
pub struct Doorbell<N: Notify + ?Sized + 'static = dyn Notify> {
    channel: &'static Channel,
    state: &'static ChannelState,
    index: usize,
    notify: &'static N,
}

impl<N: Notify + ?Sized + 'static> Doorbell<N> {
    /// The doorbell of member `index` of `channel`.
    pub fn new(
        channel: &'static Channel,
        state: &'static ChannelState,
        index: usize,
        notify: &'static N,
    ) -> Self {
        Self {
            channel,
            state,
            index,
            notify,
        }
    }

    /// Rings member `to`; false (nothing done) if the channel has no such
    /// member.
    #[inline(always)]
    fn ring_one(&self, to: usize) -> bool {
        let (Some(member), Some(pending), Some(held)) = (
            self.channel.members.get(to),
            self.state.pending.get(to),
            self.state.held.get(to),
        ) else {
            return false;
        };
        // Release (and more): the ringer's stores to the shared memory,
        // ordered before its doorbell write, are visible to whoever sees
        // the bit; sequentially consistent with `ChannelState::set_held`.
        pending.fetch_or(1 << self.index, Ordering::SeqCst);
        if !held.load(Ordering::SeqCst) {
            self.notify.ring(member);
        }
        true
    }

    /// The writes other than ringing one peer: out of line, so that the
    /// one-peer ring (the notification latency) needs no callee-saved
    /// registers.
    #[inline(never)]
    fn write_other(&self, offset: u64, value: u32) -> Result<(), AccessError> {
        match offset {
            reg::RING if value == reg::RING_ALL => {
                for to in (0..self.channel.members.len()).filter(|&i| i != self.index) {
                    self.ring_one(to);
                }
                Ok(())
            }
            reg::ACK => {
                self.state.acknowledge(self.index, value);
                Ok(())
            }
            _ => Err(AccessError::Invalid),
        }
    }
}

impl<N: Notify + ?Sized + 'static> MmioDevice for Doorbell<N> {
    fn read(&self, _: Accessor, offset: u64, width: AccessWidth) -> Result<u64, AccessError> {
        if width != AccessWidth::Word {
            return Err(AccessError::Invalid);
        }
        let v = match offset {
            reg::CHANNEL_ID => self.channel.id,
            reg::MEMBERS => self.channel.members.len() as u32,
            reg::SELF => self.index as u32,
            reg::SIZE_LO => self.channel.size as u32,
            reg::SIZE_HI => (self.channel.size >> 32) as u32,
            reg::PENDING => self.state.pending_for(self.index),
            _ => return Err(AccessError::Invalid),
        };
        Ok(u64::from(v))
    }

    fn write(
        &self,
        _: Accessor,
        offset: u64,
        width: AccessWidth,
        value: u64,
    ) -> Result<(), AccessError> {
        if width != AccessWidth::Word {
            return Err(AccessError::Invalid);
        }
        let value = value as u32;
        if offset != reg::RING || value == reg::RING_ALL {
            return self.write_other(offset, value);
        }
        // One peer: not this member, and a member of the channel.
        let to = value as usize;
        if to != self.index && self.ring_one(to) {
            Ok(())
        } else {
            Err(AccessError::Invalid)
        }
    }

    /// The member's VM is reset: what was pending for it is dropped. The
    /// shared memory and the peers' state are left alone.
    fn reset(&self) {
        if let Some(p) = self.state.pending.get(self.index) {
            p.store(0, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::boxed::Box;
    use alloc::vec::Vec;
    use spin::Mutex;
    use tessera_config::ChannelMember;

    /// Records every interrupt raised (also used by the `pci` tests).
    #[derive(Default)]
    pub(super) struct Recorder(pub(super) Mutex<Vec<(u16, u32)>>);

    impl Notify for Recorder {
        fn notify(&self, vm_id: u16, irq: u32) {
            self.0.lock().push((vm_id, irq));
        }
    }

    fn member(vm_id: u16, irq: u32) -> ChannelMember {
        ChannelMember {
            vm_id,
            gpa: 0x5000_0000,
            writable: true,
            irq,
            doorbell_gpa: 0x0a00_0000,
            line: 0,
        }
    }

    /// Three members (VMs 4, 2, 7) with their doorbells and the recorder.
    fn setup() -> (Vec<Doorbell<Recorder>>, &'static Recorder) {
        let members = Box::leak(Box::new([member(4, 40), member(2, 41), member(7, 42)]));
        let channel: &'static Channel = Box::leak(Box::new(Channel {
            name: "ping",
            id: 3,
            hpa: 0x43c0_0000,
            size: 0x1_0040_0000,
            members,
        }));
        let state: &'static ChannelState = Box::leak(Box::new(ChannelState::new()));
        let rec: &'static Recorder = Box::leak(Box::default());
        let bells = (0..3)
            .map(|i| Doorbell::new(channel, state, i, rec))
            .collect();
        (bells, rec)
    }

    const A: Accessor = Accessor { vcpu: 0 };
    const W: AccessWidth = AccessWidth::Word;

    #[test]
    fn identity_registers() {
        let (b, _) = setup();
        assert_eq!(b[1].read(A, reg::CHANNEL_ID, W), Ok(3));
        assert_eq!(b[1].read(A, reg::MEMBERS, W), Ok(3));
        assert_eq!(b[1].read(A, reg::SELF, W), Ok(1));
        assert_eq!(b[2].read(A, reg::SELF, W), Ok(2));
        assert_eq!(b[0].read(A, reg::SIZE_LO, W), Ok(0x0040_0000));
        assert_eq!(b[0].read(A, reg::SIZE_HI, W), Ok(1));
        // Read-only registers refuse writes; write-only ones reads.
        assert_eq!(b[0].write(A, reg::SELF, W, 5), Err(AccessError::Invalid));
        assert_eq!(b[0].read(A, reg::RING, W), Err(AccessError::Invalid));
        assert_eq!(b[0].read(A, reg::ACK, W), Err(AccessError::Invalid));
        assert_eq!(b[0].read(A, 0x30, W), Err(AccessError::Invalid));
        assert_eq!(
            b[0].read(A, reg::SELF, AccessWidth::Double),
            Err(AccessError::Invalid)
        );
    }

    #[test]
    fn ring_one_peer_raises_its_interrupt_and_pending_bit() {
        let (b, rec) = setup();
        b[0].write(A, reg::RING, W, 2).unwrap();
        assert_eq!(*rec.0.lock(), [(7, 42)]);
        assert_eq!(b[2].read(A, reg::PENDING, W), Ok(0b001));
        assert_eq!(b[1].read(A, reg::PENDING, W), Ok(0));
        assert_eq!(b[0].read(A, reg::PENDING, W), Ok(0));
        b[1].write(A, reg::RING, W, 2).unwrap();
        assert_eq!(b[2].read(A, reg::PENDING, W), Ok(0b011));
        b[2].write(A, reg::ACK, W, 0b001).unwrap();
        assert_eq!(b[2].read(A, reg::PENDING, W), Ok(0b010));
    }

    #[test]
    fn ring_all_rings_every_other_member() {
        let (b, rec) = setup();
        b[1].write(A, reg::RING, W, u64::from(reg::RING_ALL))
            .unwrap();
        assert_eq!(*rec.0.lock(), [(4, 40), (7, 42)]);
        assert_eq!(b[0].read(A, reg::PENDING, W), Ok(0b010));
        assert_eq!(b[1].read(A, reg::PENDING, W), Ok(0));
        assert_eq!(b[2].read(A, reg::PENDING, W), Ok(0b010));
    }

    #[test]
    fn bad_ring_values_are_refused_and_change_nothing() {
        let (b, rec) = setup();
        assert_eq!(b[0].write(A, reg::RING, W, 0), Err(AccessError::Invalid));
        assert_eq!(b[0].write(A, reg::RING, W, 3), Err(AccessError::Invalid));
        assert_eq!(
            b[0].write(A, reg::RING, W, 0xffff_fffe),
            Err(AccessError::Invalid)
        );
        assert!(rec.0.lock().is_empty());
        assert_eq!(b[1].read(A, reg::PENDING, W), Ok(0));
    }

    #[test]
    fn reset_of_one_member_keeps_the_others_pending() {
        let (b, _) = setup();
        b[0].write(A, reg::RING, W, u64::from(reg::RING_ALL))
            .unwrap();
        b[1].reset();
        assert_eq!(b[1].read(A, reg::PENDING, W), Ok(0));
        assert_eq!(b[2].read(A, reg::PENDING, W), Ok(0b001));
    }
}
