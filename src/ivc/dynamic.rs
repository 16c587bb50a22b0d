//! Channels allocated at run time from the config's pools: the IVC
//! hypercalls, what happens to a VM's channels when it stops or is reset,
//! and each member's pool doorbell page. Pure: the hardware is behind
//! [`PoolMemory`] (stage-2 map/unmap with TLB invalidation, scrubbing) and
//! [`Notify`], so host tests run the whole protocol against recorders.
//!
//! Every change to a pool happens under its lock together with the stage-2
//! changes it implies, so no VM ever maps memory the pool considers free;
//! doorbells ring after the lock is dropped. ABI: docs/IVC.md.

use super::pool::{Extent, Pool, Status, Teardown};
use super::Notify;
use crate::devices::{AccessError, Accessor, MmioDevice};
use crate::exit::AccessWidth;
use crate::mm::table::MapError;
use core::sync::atomic::{AtomicU32, Ordering};
use spin::Mutex;
use tessera_abi::{ivc, tessera};
use tessera_config::{ChannelPool, MAX_CHANNEL_MEMBERS};

/// The stage-2 edge of dynamic channels.
pub trait PoolMemory {
    /// Maps host `[hpa, hpa + size)` read-write at guest `[gpa, gpa +
    /// size)` of VM `vm_id`, whose vCPUs may be running.
    fn map(&self, vm_id: u16, gpa: u64, hpa: u64, size: u64) -> Result<(), MapError>;
    /// Removes that mapping and every TLB entry of VM `vm_id` that could
    /// still translate it, on every core, before returning.
    fn unmap(&self, vm_id: u16, gpa: u64, size: u64);
    /// Zeroes host `[hpa, hpa + size)`, which no VM maps any more.
    fn scrub(&self, hpa: u64, size: u64);
}

/// Pool doorbell registers (byte offsets; 32-bit accesses).
pub use tessera_abi::pool_doorbell as reg;

/// One pool at run time: its bookkeeping and each member's pending bits.
pub struct PoolState {
    config: &'static ChannelPool,
    pool: Mutex<Pool>,
    pending: [AtomicU32; MAX_CHANNEL_MEMBERS],
}

impl PoolState {
    /// An empty pool (its memory must be zero).
    pub fn new(config: &'static ChannelPool) -> Self {
        Self {
            config,
            pool: Mutex::new(Pool::new(config)),
            pending: [const { AtomicU32::new(0) }; MAX_CHANNEL_MEMBERS],
        }
    }

    /// The pool's configuration.
    pub fn config(&self) -> &'static ChannelPool {
        self.config
    }

    fn member_of(&self, vm_id: u16) -> Option<usize> {
        self.config.members.iter().position(|m| m.vm_id == vm_id)
    }

    /// Guest-physical address of `extent` in member `member`'s window.
    fn gpa(&self, member: usize, extent: Extent) -> u64 {
        self.config
            .members
            .get(member)
            .map_or(0, |m| m.window + extent.offset)
    }

    /// Maps `extent` into member `member`'s window (VM `vm`, the caller);
    /// its guest-physical address, or `NO_SPACE` if the stage 2 could not
    /// take it (the caller undoes its pool change).
    fn map_for(
        &self,
        mem: &dyn PoolMemory,
        vm: u16,
        member: usize,
        extent: Extent,
    ) -> Result<u64, Status> {
        let gpa = self.gpa(member, extent);
        let hpa = self.config.hpa + extent.offset;
        mem.map(vm, gpa, hpa, extent.size)
            .map(|()| gpa)
            .map_err(|_| ivc::NO_SPACE)
    }

    fn vm(&self, member: usize) -> u16 {
        self.config
            .members
            .get(member)
            .map_or(u16::MAX, |m| m.vm_id)
    }

    /// Sets member `member`'s PENDING bit `slot` and raises its interrupt.
    fn ring(&self, notify: &dyn Notify, member: usize, slot: usize) {
        let (Some(m), Some(p)) = (self.config.members.get(member), self.pending.get(member)) else {
            return;
        };
        // Release: what the ringer wrote before is visible with the bit.
        p.fetch_or(1 << (slot % 32), Ordering::Release);
        notify.notify(m.vm_id, m.irq);
    }

    /// Carries out a teardown under the lock; the member to ring after.
    fn apply(&self, mem: &dyn PoolMemory, t: &Teardown) -> Option<(usize, usize)> {
        for member in t.unmap.into_iter().flatten() {
            mem.unmap(self.vm(member), self.gpa(member, t.extent), t.extent.size);
        }
        if t.freed {
            mem.scrub(self.config.hpa + t.extent.offset, t.extent.size);
        }
        t.ring.map(|m| (m, t.slot))
    }
}

/// The pool a channel id belongs to (bits 15:8).
fn pool_of(states: &[PoolState], id: u64) -> Result<&PoolState, Status> {
    u32::try_from(id)
        .ok()
        .and_then(|id| states.get(((id >> 8) & 0xff) as usize))
        .ok_or(ivc::BAD_ID)
}

/// Serves IVC hypercall `nr` of VM `caller` with arguments x1-x3: `None`
/// if `nr` is not one, else x0-x4 (x0 a status of `tessera_abi::ivc`).
pub fn hypercall(
    states: &[PoolState],
    mem: &dyn PoolMemory,
    notify: &dyn Notify,
    caller: u16,
    nr: u32,
    args: [u64; 3],
) -> Option<[u64; 5]> {
    let result = match nr {
        tessera::IVC_ALLOC => alloc(states, mem, notify, caller, args[0], args[1]),
        tessera::IVC_ATTACH => attach(states, mem, notify, caller, args[0]),
        tessera::IVC_RELEASE => release(states, mem, notify, caller, args[0]),
        tessera::IVC_STATUS => status(states, caller, args[0]),
        tessera::IVC_POOL_INFO => pool_info(states, caller, args[0]),
        _ => return None,
    };
    Some(result.unwrap_or_else(|status| [status as u64, 0, 0, 0, 0]))
}

type Reply = Result<[u64; 5], Status>;

fn alloc(
    states: &[PoolState],
    mem: &dyn PoolMemory,
    notify: &dyn Notify,
    caller: u16,
    peer: u64,
    size: u64,
) -> Reply {
    let peer = u16::try_from(peer).map_err(|_| ivc::DENIED)?;
    let (state, owner, peer) = states
        .iter()
        .find_map(|s| Some((s, s.member_of(caller)?, s.member_of(peer)?)))
        .ok_or(ivc::DENIED)?;
    let (id, slot, extent, gpa) = {
        let mut pool = state.pool.lock();
        let (id, slot, extent) = pool.alloc(owner, peer, size)?;
        let gpa = state
            .map_for(mem, caller, owner, extent)
            .inspect_err(|_| pool.undo_alloc(slot))?;
        (id, slot, extent, gpa)
    };
    state.ring(notify, peer, slot);
    Ok([0, u64::from(id), gpa, extent.size, 0])
}

fn attach(
    states: &[PoolState],
    mem: &dyn PoolMemory,
    notify: &dyn Notify,
    caller: u16,
    id: u64,
) -> Reply {
    let state = pool_of(states, id)?;
    let member = state.member_of(caller).ok_or(ivc::NOT_YOURS)?;
    let (slot, extent, owner, gpa) = {
        let mut pool = state.pool.lock();
        let (slot, extent, owner) = pool.attach(member, id)?;
        let gpa = state
            .map_for(mem, caller, member, extent)
            .inspect_err(|_| pool.undo_attach(slot))?;
        (slot, extent, owner, gpa)
    };
    state.ring(notify, owner, slot);
    Ok([0, gpa, extent.size, u64::from(state.vm(owner)), 0])
}

fn release(
    states: &[PoolState],
    mem: &dyn PoolMemory,
    notify: &dyn Notify,
    caller: u16,
    id: u64,
) -> Reply {
    let state = pool_of(states, id)?;
    let member = state.member_of(caller).ok_or(ivc::NOT_YOURS)?;
    let ring = {
        let mut pool = state.pool.lock();
        let t = pool.release(member, id)?;
        state.apply(mem, &t)
    };
    if let Some((m, slot)) = ring {
        state.ring(notify, m, slot);
    }
    Ok([0; 5])
}

fn status(states: &[PoolState], caller: u16, id: u64) -> Reply {
    let state = pool_of(states, id)?;
    let member = state.member_of(caller).ok_or(ivc::NOT_YOURS)?;
    let s = state.pool.lock().status(member, id)?;
    let gpa = if s.mapped {
        state.gpa(member, s.extent)
    } else {
        0
    };
    Ok([0, s.state, gpa, s.extent.size, u64::from(state.vm(s.other))])
}

fn pool_info(states: &[PoolState], caller: u16, pool: u64) -> Reply {
    let state = usize::try_from(pool)
        .ok()
        .and_then(|p| states.get(p))
        .ok_or(ivc::INVALID)?;
    let member = state.member_of(caller).ok_or(ivc::DENIED)?;
    let p = state.pool.lock();
    Ok([
        0,
        state.config.size,
        p.free_bytes(),
        p.free_slots() as u64,
        p.held_by(member) as u64,
    ])
}

/// VM `vm_id` stopped or is being reset (none of its vCPUs runs): its
/// channels leave its stage 2; those its peers still map stay theirs
/// (`PEER_GONE`) until they release them, the rest are scrubbed and go
/// back to the pools. Every peer concerned is rung.
pub fn depart(states: &[PoolState], mem: &dyn PoolMemory, notify: &dyn Notify, vm_id: u16) {
    for state in states {
        let Some(member) = state.member_of(vm_id) else {
            continue;
        };
        let mut rings: heapless::Vec<(usize, usize), { tessera_config::MAX_POOL_CHANNELS }> =
            heapless::Vec::new();
        state.pool.lock().depart(member, |t| {
            if let Some(r) = state.apply(mem, &t) {
                // At most one teardown per slot: never full.
                let _ = rings.push(r);
            }
        });
        for (m, slot) in rings {
            state.ring(notify, m, slot);
        }
    }
}

/// A member's pool doorbell page.
pub struct PoolDoorbell {
    state: &'static PoolState,
    member: usize,
    notify: &'static dyn Notify,
}

impl PoolDoorbell {
    /// The doorbell of member `member` of `state`'s pool.
    pub fn new(state: &'static PoolState, member: usize, notify: &'static dyn Notify) -> Self {
        Self {
            state,
            member,
            notify,
        }
    }
}

impl MmioDevice for PoolDoorbell {
    fn read(&self, _: Accessor, offset: u64, width: AccessWidth) -> Result<u64, AccessError> {
        if width != AccessWidth::Word {
            return Err(AccessError::Invalid);
        }
        let c = self.state.config;
        let v = match offset {
            reg::POOL_ID => c.id,
            reg::MEMBERS => c.members.len() as u32,
            reg::SELF => self.member as u32,
            reg::OFFER => self.state.pool.lock().offer(self.member),
            reg::SIZE_LO => c.size as u32,
            reg::SIZE_HI => (c.size >> 32) as u32,
            reg::PENDING => self
                .state
                .pending
                .get(self.member)
                .map_or(0, |p| p.load(Ordering::Acquire)),
            _ => return Err(AccessError::Invalid),
        };
        Ok(u64::from(v))
    }

    /// A RING of a channel the caller does not share with an attached
    /// peer (released, never attached, another pair's, malformed) does
    /// nothing: ends of channels race with rings by nature.
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
        match offset {
            reg::RING => {
                let target = self.state.pool.lock().ring_target(self.member, value);
                if let Some((slot, other)) = target {
                    self.state.ring(self.notify, other, slot);
                }
                Ok(())
            }
            reg::ACK => {
                if let Some(p) = self.state.pending.get(self.member) {
                    p.fetch_and(!(value as u32), Ordering::AcqRel);
                }
                Ok(())
            }
            _ => Err(AccessError::Invalid),
        }
    }

    /// The member's VM is reset: what was pending for it is dropped (its
    /// channels were released by [`depart`] first).
    fn reset(&self) {
        if let Some(p) = self.state.pending.get(self.member) {
            p.store(0, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::boxed::Box;
    use alloc::vec::Vec;
    use tessera_config::PoolMember;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Op {
        Map(u16, u64, u64, u64),
        Unmap(u16, u64, u64),
        Scrub(u64, u64),
        Ring(u16, u32),
    }

    /// Records every hardware effect in order; `fail_map` refuses maps.
    #[derive(Default)]
    struct Hw {
        ops: spin::Mutex<Vec<Op>>,
        fail_map: core::sync::atomic::AtomicBool,
    }

    impl PoolMemory for Hw {
        fn map(&self, vm: u16, gpa: u64, hpa: u64, size: u64) -> Result<(), MapError> {
            if self.fail_map.load(Ordering::Relaxed) {
                return Err(MapError::NoMemory);
            }
            self.ops.lock().push(Op::Map(vm, gpa, hpa, size));
            Ok(())
        }
        fn unmap(&self, vm: u16, gpa: u64, size: u64) {
            self.ops.lock().push(Op::Unmap(vm, gpa, size));
        }
        fn scrub(&self, hpa: u64, size: u64) {
            self.ops.lock().push(Op::Scrub(hpa, size));
        }
    }

    impl Notify for Hw {
        fn notify(&self, vm_id: u16, irq: u32) {
            self.ops.lock().push(Op::Ring(vm_id, irq));
        }
    }

    impl Hw {
        fn take(&self) -> Vec<Op> {
            core::mem::take(&mut *self.ops.lock())
        }
    }

    const HPA: u64 = 0x43b0_0000;

    /// Pool 0: VMs 0 (window 0x6000_0000, irq 50) and 1 (0x7000_0000, 51),
    /// 64 KiB, 4 channels, 2 per VM. VM 2 exists but is not granted.
    fn setup() -> (&'static [PoolState], &'static Hw) {
        let members = Box::leak(Box::new([
            PoolMember {
                vm_id: 0,
                window: 0x6000_0000,
                irq: 50,
                doorbell_gpa: 0x0a90_0000,
            },
            PoolMember {
                vm_id: 1,
                window: 0x7000_0000,
                irq: 51,
                doorbell_gpa: 0x0a90_0000,
            },
        ]));
        let config = Box::leak(Box::new(ChannelPool {
            name: "dyn",
            id: 0,
            hpa: HPA,
            size: 0x1_0000,
            max_channels: 4,
            max_per_vm: 2,
            members,
        }));
        let states: &'static [PoolState] = Box::leak(Box::new([PoolState::new(config)]));
        (states, Box::leak(Box::default()))
    }

    fn call(states: &[PoolState], hw: &Hw, vm: u16, nr: u32, args: [u64; 3]) -> [u64; 5] {
        hypercall(states, hw, hw, vm, nr, args).expect("an IVC call")
    }

    const A: Accessor = Accessor { vcpu: 0 };
    const W: AccessWidth = AccessWidth::Word;

    #[test]
    fn not_an_ivc_call() {
        let (s, hw) = setup();
        assert_eq!(hypercall(s, hw, hw, 0, tessera::NULL, [0; 3]), None);
    }

    #[test]
    fn alloc_attach_ring_release_through_the_calls_and_doorbells() {
        let (s, hw) = setup();
        let bell0 = PoolDoorbell::new(&s[0], 0, hw);
        let bell1 = PoolDoorbell::new(&s[0], 1, hw);
        assert_eq!(bell1.read(A, reg::SELF, W), Ok(1));
        assert_eq!(bell1.read(A, reg::MEMBERS, W), Ok(2));
        assert_eq!(bell1.read(A, reg::SIZE_LO, W), Ok(0x1_0000));
        let r = call(s, hw, 0, tessera::IVC_ALLOC, [1, 0x1800, 0]);
        let id = r[1];
        assert_eq!(r, [0, id, 0x6000_0000, 0x2000, 0]);
        assert_eq!(
            hw.take(),
            [
                Op::Map(0, 0x6000_0000, HPA, 0x2000),
                Op::Ring(1, 51), // the offer
            ]
        );
        assert_eq!(bell1.read(A, reg::OFFER, W), Ok(id));
        assert_eq!(bell1.read(A, reg::PENDING, W), Ok(1));
        bell1.write(A, reg::ACK, W, 1).unwrap();
        // Ringing before the peer attached does nothing.
        bell0.write(A, reg::RING, W, id).unwrap();
        assert_eq!(hw.take(), []);
        let r = call(s, hw, 1, tessera::IVC_ATTACH, [id, 0, 0]);
        assert_eq!(r, [0, 0x7000_0000, 0x2000, 0, 0]);
        assert_eq!(
            hw.take(),
            [Op::Map(1, 0x7000_0000, HPA, 0x2000), Op::Ring(0, 50)]
        );
        assert_eq!(bell1.read(A, reg::OFFER, W), Ok(0));
        let r = call(s, hw, 0, tessera::IVC_STATUS, [id, 0, 0]);
        assert_eq!(r, [0, ivc::ATTACHED, 0x6000_0000, 0x2000, 1]);
        assert_eq!(
            call(s, hw, 1, tessera::IVC_POOL_INFO, [0, 0, 0]),
            [0, 0x1_0000, 0xe000, 3, 1]
        );
        bell0.write(A, reg::RING, W, id).unwrap();
        assert_eq!(hw.take(), [Op::Ring(1, 51)]);
        assert_eq!(bell1.read(A, reg::PENDING, W), Ok(1));
        // Release by the peer: unmapped from both, scrubbed, owner told.
        assert_eq!(call(s, hw, 1, tessera::IVC_RELEASE, [id, 0, 0])[0], 0);
        assert_eq!(
            hw.take(),
            [
                Op::Unmap(0, 0x6000_0000, 0x2000),
                Op::Unmap(1, 0x7000_0000, 0x2000),
                Op::Scrub(HPA, 0x2000),
                Op::Ring(0, 50),
            ]
        );
        assert_eq!(
            call(s, hw, 0, tessera::IVC_RELEASE, [id, 0, 0])[0],
            ivc::BAD_ID as u64,
            "double release"
        );
        assert_eq!(hw.take(), []);
        assert_eq!(
            call(s, hw, 0, tessera::IVC_POOL_INFO, [0, 0, 0]),
            [0, 0x1_0000, 0x1_0000, 4, 0]
        );
    }

    #[test]
    fn hostile_arguments_get_codes_and_touch_nothing() {
        let (s, hw) = setup();
        let code = |r: [u64; 5]| r[0] as i64;
        assert_eq!(
            code(call(s, hw, 2, tessera::IVC_ALLOC, [0, 0x1000, 0])),
            ivc::DENIED
        );
        assert_eq!(
            code(call(s, hw, 0, tessera::IVC_ALLOC, [2, 0x1000, 0])),
            ivc::DENIED
        );
        assert_eq!(
            code(call(s, hw, 0, tessera::IVC_ALLOC, [0, 0x1000, 0])),
            ivc::DENIED
        );
        assert_eq!(
            code(call(s, hw, 0, tessera::IVC_ALLOC, [1 << 16, 0x1000, 0])),
            ivc::DENIED
        );
        assert_eq!(
            code(call(s, hw, 0, tessera::IVC_ALLOC, [1, 0, 0])),
            ivc::INVALID
        );
        assert_eq!(
            code(call(s, hw, 0, tessera::IVC_ALLOC, [1, 0x1_1000, 0])),
            ivc::INVALID
        );
        for nr in [
            tessera::IVC_ATTACH,
            tessera::IVC_RELEASE,
            tessera::IVC_STATUS,
        ] {
            for id in [0, u64::MAX, 0x0001_0500, 0x0001_0000] {
                assert_eq!(
                    code(call(s, hw, 1, nr, [id, 0, 0])),
                    ivc::BAD_ID,
                    "{nr:#x} {id:#x}"
                );
            }
        }
        assert_eq!(
            code(call(s, hw, 0, tessera::IVC_POOL_INFO, [1, 0, 0])),
            ivc::INVALID
        );
        assert_eq!(
            code(call(s, hw, 2, tessera::IVC_POOL_INFO, [0, 0, 0])),
            ivc::DENIED
        );
        let id = call(s, hw, 0, tessera::IVC_ALLOC, [1, 0x1000, 0])[1];
        hw.take();
        // VM 2 is not granted the pool: the channel is not its business.
        for nr in [
            tessera::IVC_ATTACH,
            tessera::IVC_RELEASE,
            tessera::IVC_STATUS,
        ] {
            assert_eq!(code(call(s, hw, 2, nr, [id, 0, 0])), ivc::NOT_YOURS);
        }
        assert_eq!(
            code(call(s, hw, 0, tessera::IVC_ATTACH, [id, 0, 0])),
            ivc::DENIED
        );
        // A failed map leaves the pool as it was.
        hw.fail_map.store(true, Ordering::Relaxed);
        assert_eq!(
            code(call(s, hw, 1, tessera::IVC_ATTACH, [id, 0, 0])),
            ivc::NO_SPACE
        );
        assert_eq!(
            code(call(s, hw, 1, tessera::IVC_ALLOC, [0, 0x1000, 0])),
            ivc::NO_SPACE
        );
        hw.fail_map.store(false, Ordering::Relaxed);
        assert_eq!(hw.take(), []);
        assert_eq!(
            call(s, hw, 1, tessera::IVC_STATUS, [id, 0, 0]),
            [0, ivc::OFFERED, 0, 0x1000, 0]
        );
        assert_eq!(
            call(s, hw, 1, tessera::IVC_POOL_INFO, [0, 0, 0]),
            [0, 0x1_0000, 0xf000, 3, 0]
        );
        // Doorbell: bad widths and registers are the VM's unhandled
        // outcome; a RING of a malformed id does nothing.
        let bell = PoolDoorbell::new(&s[0], 0, hw);
        assert_eq!(bell.read(A, reg::RING, W), Err(AccessError::Invalid));
        assert_eq!(bell.write(A, reg::SELF, W, 0), Err(AccessError::Invalid));
        assert_eq!(
            bell.read(A, reg::PENDING, AccessWidth::Double),
            Err(AccessError::Invalid)
        );
        bell.write(A, reg::RING, W, 0xffff_ffff).unwrap();
        assert_eq!(hw.take(), []);
    }

    #[test]
    fn exhaustion_and_limits_are_refused_then_a_release_makes_room() {
        let (s, hw) = setup();
        let code = |r: [u64; 5]| r[0] as i64;
        let a = call(s, hw, 0, tessera::IVC_ALLOC, [1, 0x8000, 0]);
        let b = call(s, hw, 0, tessera::IVC_ALLOC, [1, 0x8000, 0]);
        assert_eq!((a[0], b[0], b[2]), (0, 0, 0x6000_8000));
        assert_eq!(
            code(call(s, hw, 0, tessera::IVC_ALLOC, [1, 0x1000, 0])),
            ivc::LIMIT
        );
        assert_eq!(
            code(call(s, hw, 1, tessera::IVC_ALLOC, [0, 0x1000, 0])),
            ivc::NO_SPACE
        );
        call(s, hw, 0, tessera::IVC_RELEASE, [a[1], 0, 0]);
        let c = call(s, hw, 1, tessera::IVC_ALLOC, [0, 0x1000, 0]);
        assert_eq!((c[0], c[2]), (0, 0x7000_0000));
    }

    #[test]
    fn a_departing_vm_loses_its_channels_and_its_peers_are_told() {
        let (s, hw) = setup();
        let bell1 = PoolDoorbell::new(&s[0], 1, hw);
        let kept = call(s, hw, 0, tessera::IVC_ALLOC, [1, 0x1000, 0])[1];
        call(s, hw, 1, tessera::IVC_ATTACH, [kept, 0, 0]);
        let offered = call(s, hw, 0, tessera::IVC_ALLOC, [1, 0x2000, 0])[1];
        bell1.write(A, reg::ACK, W, u64::MAX).unwrap();
        hw.take();
        depart(s, hw, hw, 0);
        assert_eq!(
            hw.take(),
            [
                Op::Unmap(0, 0x6000_0000, 0x1000),
                Op::Unmap(0, 0x6000_1000, 0x2000),
                Op::Scrub(HPA + 0x1000, 0x2000),
                Op::Ring(1, 51),
                Op::Ring(1, 51),
            ]
        );
        assert_eq!(bell1.read(A, reg::PENDING, W), Ok(0b11));
        assert_eq!(bell1.read(A, reg::OFFER, W), Ok(0));
        assert_eq!(
            call(s, hw, 1, tessera::IVC_STATUS, [kept, 0, 0]),
            [0, ivc::PEER_GONE, 0x7000_0000, 0x1000, 0]
        );
        assert_eq!(
            call(s, hw, 1, tessera::IVC_STATUS, [offered, 0, 0])[0] as i64,
            ivc::BAD_ID
        );
        // The rebooted VM's old ids are dead for it.
        assert_eq!(
            call(s, hw, 0, tessera::IVC_RELEASE, [kept, 0, 0])[0] as i64,
            ivc::BAD_ID
        );
        assert_eq!(call(s, hw, 1, tessera::IVC_RELEASE, [kept, 0, 0])[0], 0);
        assert_eq!(
            hw.take(),
            [Op::Unmap(1, 0x7000_0000, 0x1000), Op::Scrub(HPA, 0x1000)]
        );
        assert_eq!(
            call(s, hw, 0, tessera::IVC_POOL_INFO, [0, 0, 0]),
            [0, 0x1_0000, 0x1_0000, 4, 0]
        );
    }
}
