//! One channel pool's bookkeeping, pure: which slots hold live channels,
//! where each lies in the pool, who owns it, who has it mapped, and the
//! state machine of allocate / attach / release / a party going away.
//!
//! Every operation either fails with an `ivc::*` status code of
//! `tessera-abi` and changes nothing, or succeeds and returns what the
//! caller must now do to the hardware (map, unmap, scrub, ring). It does
//! no I/O itself; `super::dynamic` applies the effects under the pool's
//! lock.

use tessera_abi::ivc;
use tessera_config::{ChannelPool, MAX_POOL_CHANNELS};

const PAGE: u64 = 4096;
/// Owner and peer, as indices into a channel's party arrays.
const OWNER: usize = 0;
const PEER: usize = 1;

/// A status code of `tessera_abi::ivc` (negative).
pub type Status = i64;

/// A piece of the pool: `[offset, offset + size)` from the pool's base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    /// Byte offset in the pool (and in every member's window).
    pub offset: u64,
    /// Bytes (a multiple of 4 KiB).
    pub size: u64,
}

impl Extent {
    fn end(&self) -> u64 {
        self.offset + self.size
    }
}

/// A live channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Live {
    generation: u16,
    extent: Extent,
    /// Member indices of the owner and the peer.
    party: [usize; 2],
    /// Whether each party has the channel in its stage 2.
    mapped: [bool; 2],
    /// Whether each party stopped or was reset since (it holds nothing).
    gone: [bool; 2],
}

impl Live {
    fn side_of(&self, member: usize) -> Option<usize> {
        self.party.iter().position(|&p| p == member)
    }
}

/// What a released or abandoned channel leaves to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Teardown {
    /// The channel's slot (its PENDING bit).
    pub slot: usize,
    /// Where it was in the pool.
    pub extent: Extent,
    /// Members whose mapping must go (stage 2 and TLBs).
    pub unmap: [Option<usize>; 2],
    /// Whether the memory goes back to the pool (then scrub it first).
    pub freed: bool,
    /// A member to tell (its doorbell rings for `slot`).
    pub ring: Option<usize>,
}

/// What IVC_STATUS reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelStatus {
    /// `ivc::OFFERED`, `ivc::ATTACHED` or `ivc::PEER_GONE`.
    pub state: u64,
    /// The channel, and whether the caller has it mapped.
    pub extent: Extent,
    /// Whether the caller has it mapped.
    pub mapped: bool,
    /// The other party's member index.
    pub other: usize,
}

/// The bookkeeping of one pool.
pub struct Pool {
    config: &'static ChannelPool,
    slots: [Option<Live>; MAX_POOL_CHANNELS],
    generations: [u16; MAX_POOL_CHANNELS],
}

impl Pool {
    /// An empty pool for `config`.
    pub fn new(config: &'static ChannelPool) -> Self {
        Self {
            config,
            slots: [None; MAX_POOL_CHANNELS],
            generations: [0; MAX_POOL_CHANNELS],
        }
    }

    fn slot_count(&self) -> usize {
        (self.config.max_channels as usize).min(MAX_POOL_CHANNELS)
    }

    fn id(&self, slot: usize, generation: u16) -> u32 {
        ivc::channel_id(generation, self.config.id as u8, slot as u8)
    }

    /// The live channel `id` names: its slot, or `BAD_ID`.
    fn find(&self, id: u64) -> Result<usize, Status> {
        let id = u32::try_from(id).map_err(|_| ivc::BAD_ID)?;
        let (generation, pool, slot) = ((id >> 16) as u16, (id >> 8) & 0xff, (id & 0xff) as usize);
        if pool != self.config.id || slot >= self.slot_count() {
            return Err(ivc::BAD_ID);
        }
        match self.slots.get(slot).copied().flatten() {
            Some(l) if l.generation == generation => Ok(slot),
            _ => Err(ivc::BAD_ID),
        }
    }

    /// The live channel `id` and the caller's side of it (`OWNER`/`PEER`):
    /// `BAD_ID` if none or the caller is gone from it, `NOT_YOURS` if the
    /// caller is not a party.
    fn party(&self, member: usize, id: u64) -> Result<(usize, Live, usize), Status> {
        let slot = self.find(id)?;
        let live = self.slots[slot].ok_or(ivc::BAD_ID)?;
        let side = live.side_of(member).ok_or(ivc::NOT_YOURS)?;
        if live.gone[side] {
            return Err(ivc::BAD_ID);
        }
        Ok((slot, live, side))
    }

    /// Channels member `member` has mapped.
    pub fn held_by(&self, member: usize) -> usize {
        self.slots
            .iter()
            .flatten()
            .map(|l| {
                (0..2)
                    .filter(|&s| l.party[s] == member && l.mapped[s])
                    .count()
            })
            .sum()
    }

    /// Bytes no live channel uses.
    pub fn free_bytes(&self) -> u64 {
        self.config.size
            - self
                .slots
                .iter()
                .flatten()
                .map(|l| l.extent.size)
                .sum::<u64>()
    }

    /// Slots free for new channels.
    pub fn free_slots(&self) -> usize {
        self.slots[..self.slot_count()]
            .iter()
            .filter(|s| s.is_none())
            .count()
    }

    /// The lowest free range of `size` bytes (first fit).
    fn fit(&self, size: u64) -> Option<u64> {
        let mut used: heapless::Vec<Extent, MAX_POOL_CHANNELS> =
            self.slots.iter().flatten().map(|l| l.extent).collect();
        used.sort_unstable_by_key(|e| e.offset);
        let mut at = 0;
        for e in &used {
            if e.offset - at >= size {
                return Some(at);
            }
            at = e.end();
        }
        (self.config.size - at >= size).then_some(at)
    }

    /// Member `owner` allocates `size` bytes (rounded up to pages) shared
    /// with member `peer`: the new channel's id, slot and extent. The
    /// owner must map it now (or [`Pool::undo_alloc`] on failure).
    pub fn alloc(
        &mut self,
        owner: usize,
        peer: usize,
        size: u64,
    ) -> Result<(u32, usize, Extent), Status> {
        if owner == peer || peer >= self.config.members.len() {
            return Err(ivc::DENIED);
        }
        let size = size
            .checked_next_multiple_of(PAGE)
            .filter(|&s| s != 0 && s <= self.config.size)
            .ok_or(ivc::INVALID)?;
        if self.held_by(owner) >= self.config.max_per_vm as usize {
            return Err(ivc::LIMIT);
        }
        let slot = self.slots[..self.slot_count()]
            .iter()
            .position(Option::is_none)
            .ok_or(ivc::NO_SPACE)?;
        let offset = self.fit(size).ok_or(ivc::NO_SPACE)?;
        let generation = match self.generations[slot].wrapping_add(1) {
            0 => 1,
            g => g,
        };
        self.generations[slot] = generation;
        let extent = Extent { offset, size };
        self.slots[slot] = Some(Live {
            generation,
            extent,
            party: [owner, peer],
            mapped: [true, false],
            gone: [false, false],
        });
        Ok((self.id(slot, generation), slot, extent))
    }

    /// Forgets a channel [`Pool::alloc`] just made whose mapping failed
    /// (nothing was mapped or written).
    pub fn undo_alloc(&mut self, slot: usize) {
        if let Some(s) = self.slots.get_mut(slot) {
            *s = None;
        }
    }

    /// Member `member` attaches channel `id` offered to it: the slot, the
    /// extent and the owner's member index. The caller must map it now
    /// (or [`Pool::undo_attach`] on failure).
    pub fn attach(&mut self, member: usize, id: u64) -> Result<(usize, Extent, usize), Status> {
        let (slot, live, side) = self.party(member, id)?;
        if side == OWNER {
            return Err(ivc::DENIED);
        }
        if live.mapped[PEER] || live.gone[OWNER] {
            return Err(ivc::BAD_STATE);
        }
        if self.held_by(member) >= self.config.max_per_vm as usize {
            return Err(ivc::LIMIT);
        }
        if let Some(l) = self.slots[slot].as_mut() {
            l.mapped[PEER] = true;
        }
        Ok((slot, live.extent, live.party[OWNER]))
    }

    /// Undoes an [`Pool::attach`] whose mapping failed.
    pub fn undo_attach(&mut self, slot: usize) {
        if let Some(l) = self.slots.get_mut(slot).and_then(Option::as_mut) {
            l.mapped[PEER] = false;
        }
    }

    /// Either party ends channel `id`: it goes from every party that has
    /// it mapped and back to the pool; the other party is told unless it
    /// is gone.
    pub fn release(&mut self, member: usize, id: u64) -> Result<Teardown, Status> {
        let (slot, live, side) = self.party(member, id)?;
        self.slots[slot] = None;
        let other = 1 - side;
        Ok(Teardown {
            slot,
            extent: live.extent,
            unmap: [0, 1].map(|s| live.mapped[s].then_some(live.party[s])),
            freed: true,
            ring: (!live.gone[other]).then_some(live.party[other]),
        })
    }

    /// Member `member` stopped or is being reset: each of its channels
    /// leaves its stage 2. A channel the other party still has mapped
    /// stays, in state `PEER_GONE` for it, until it releases it; any other
    /// goes back to the pool. The other party is told either way. Calls
    /// `each` with every teardown.
    pub fn depart(&mut self, member: usize, mut each: impl FnMut(Teardown)) {
        for slot in 0..self.slots.len() {
            let Some(live) = self.slots[slot] else {
                continue;
            };
            let Some(side) = live.side_of(member).filter(|&s| !live.gone[s]) else {
                continue;
            };
            let other = 1 - side;
            let keep = live.mapped[other];
            let mut after = live;
            after.mapped[side] = false;
            after.gone[side] = true;
            self.slots[slot] = keep.then_some(after);
            each(Teardown {
                slot,
                extent: live.extent,
                unmap: [live.mapped[side].then_some(member), None],
                freed: !keep,
                ring: (!live.gone[other]).then_some(live.party[other]),
            });
        }
    }

    /// IVC_STATUS of channel `id` for member `member`.
    pub fn status(&self, member: usize, id: u64) -> Result<ChannelStatus, Status> {
        let (_, live, side) = self.party(member, id)?;
        let other = 1 - side;
        let state = if live.gone[other] {
            ivc::PEER_GONE
        } else if live.mapped[PEER] {
            ivc::ATTACHED
        } else {
            ivc::OFFERED
        };
        Ok(ChannelStatus {
            state,
            extent: live.extent,
            mapped: live.mapped[side],
            other: live.party[other],
        })
    }

    /// Id of the lowest-slot channel offered to `member` and not attached
    /// yet (0: none; ids are never 0).
    pub fn offer(&self, member: usize) -> u32 {
        self.slots
            .iter()
            .enumerate()
            .find_map(|(slot, l)| {
                l.filter(|l| l.party[PEER] == member && !l.mapped[PEER] && !l.gone.contains(&true))
                    .map(|l| self.id(slot, l.generation))
            })
            .unwrap_or(0)
    }

    /// Who `member` rings through channel `id`: the slot and the other
    /// party, if both have the channel mapped.
    pub fn ring_target(&self, member: usize, id: u64) -> Option<(usize, usize)> {
        let (slot, live, side) = self.party(member, id).ok()?;
        let other = 1 - side;
        (live.mapped[side] && live.mapped[other]).then_some((slot, live.party[other]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::boxed::Box;
    use tessera_config::PoolMember;

    /// Members 0 (VM 5), 1 (VM 6), 2 (VM 7); 64 KiB, 4 channels, 2 per VM.
    fn config() -> &'static ChannelPool {
        let m = |vm_id| PoolMember {
            vm_id,
            window: 0x6000_0000,
            irq: 50,
            doorbell_gpa: 0x0a90_0000,
        };
        let members = Box::leak(Box::new([m(5), m(6), m(7)]));
        Box::leak(Box::new(ChannelPool {
            name: "dyn",
            id: 1,
            hpa: 0x43b0_0000,
            size: 0x1_0000,
            max_channels: 4,
            max_per_vm: 2,
            members,
        }))
    }

    #[test]
    fn alloc_rounds_up_places_first_fit_and_names_the_slot() {
        let mut p = Pool::new(config());
        let (id, slot, e) = p.alloc(0, 1, 1).unwrap();
        assert_eq!(
            (slot, e),
            (
                0,
                Extent {
                    offset: 0,
                    size: 0x1000
                }
            )
        );
        assert_eq!(id, 0x0001_0100, "generation 1, pool 1, slot 0");
        let (_, slot, e) = p.alloc(0, 1, 0x2000).unwrap();
        assert_eq!(
            (slot, e),
            (
                1,
                Extent {
                    offset: 0x1000,
                    size: 0x2000
                }
            )
        );
        assert_eq!(p.free_bytes(), 0xd000);
        assert_eq!(p.free_slots(), 2);
        // Releasing the first leaves a hole the next small one fills.
        p.release(0, u64::from(id)).unwrap();
        let (id2, slot, e) = p.alloc(1, 2, 0x1000).unwrap();
        assert_eq!(
            (slot, e),
            (
                0,
                Extent {
                    offset: 0,
                    size: 0x1000
                }
            )
        );
        assert_eq!(id2, 0x0002_0100, "the slot's next generation");
    }

    #[test]
    fn bad_allocations_fail_with_their_code_and_change_nothing() {
        let mut p = Pool::new(config());
        assert_eq!(p.alloc(0, 0, 0x1000), Err(ivc::DENIED), "self as peer");
        assert_eq!(p.alloc(0, 3, 0x1000), Err(ivc::DENIED), "no such member");
        assert_eq!(p.alloc(0, 1, 0), Err(ivc::INVALID));
        assert_eq!(p.alloc(0, 1, 0x1_0001), Err(ivc::INVALID), "past the pool");
        assert_eq!(
            p.alloc(0, 1, u64::MAX),
            Err(ivc::INVALID),
            "rounding overflows"
        );
        assert_eq!(p.free_bytes(), 0x1_0000);
        assert_eq!(p.free_slots(), 4);
        // The whole pool, then nothing fits.
        let (id, ..) = p.alloc(0, 1, 0x1_0000).unwrap();
        assert_eq!(p.alloc(2, 1, 0x1000), Err(ivc::NO_SPACE));
        p.release(1, u64::from(id)).unwrap();
        // Per-VM limit: member 0 holds 2.
        p.alloc(0, 1, 0x1000).unwrap();
        p.alloc(0, 2, 0x1000).unwrap();
        assert_eq!(p.alloc(0, 1, 0x1000), Err(ivc::LIMIT));
        // Slot limit: 4 channels.
        p.alloc(1, 2, 0x1000).unwrap();
        p.alloc(2, 1, 0x1000).unwrap();
        assert_eq!(p.free_slots(), 0);
        assert_eq!(p.alloc(1, 0, 0x1000), Err(ivc::NO_SPACE));
        assert_eq!(p.free_bytes(), 0xc000);
    }

    #[test]
    fn attach_release_and_bad_ids() {
        let mut p = Pool::new(config());
        let (id, slot, e) = p.alloc(0, 1, 0x3000).unwrap();
        let id = u64::from(id);
        assert_eq!(p.offer(1), id as u32);
        assert_eq!(p.offer(2), 0);
        assert_eq!(p.ring_target(0, id), None, "not attached yet");
        assert_eq!(p.status(0, id).unwrap().state, ivc::OFFERED);
        assert_eq!(p.attach(0, id), Err(ivc::DENIED), "the owner");
        assert_eq!(p.attach(2, id), Err(ivc::NOT_YOURS));
        assert_eq!(p.attach(1, id + 1), Err(ivc::BAD_ID));
        assert_eq!(p.attach(1, id | 1 << 32), Err(ivc::BAD_ID));
        assert_eq!(p.attach(1, id ^ 0x100), Err(ivc::BAD_ID), "another pool");
        assert_eq!(p.attach(1, id), Ok((slot, e, 0)));
        assert_eq!(p.attach(1, id), Err(ivc::BAD_STATE), "twice");
        assert_eq!(p.offer(1), 0);
        assert_eq!(p.ring_target(0, id), Some((slot, 1)));
        assert_eq!(p.ring_target(1, id), Some((slot, 0)));
        assert_eq!(p.ring_target(2, id), None);
        let s = p.status(1, id).unwrap();
        assert_eq!((s.state, s.mapped, s.other), (ivc::ATTACHED, true, 0));
        assert_eq!(p.release(2, id), Err(ivc::NOT_YOURS));
        let t = p.release(1, id).unwrap();
        assert_eq!(
            t,
            Teardown {
                slot,
                extent: e,
                unmap: [Some(0), Some(1)],
                freed: true,
                ring: Some(0),
            }
        );
        assert_eq!(p.release(1, id), Err(ivc::BAD_ID), "double release");
        assert_eq!(p.release(0, id), Err(ivc::BAD_ID));
        assert_eq!(p.status(0, id), Err(ivc::BAD_ID));
        assert_eq!(p.free_bytes(), 0x1_0000);
    }

    #[test]
    fn peer_limit_applies_at_attach() {
        let mut p = Pool::new(config());
        for _ in 0..2 {
            let (id, ..) = p.alloc(0, 1, 0x1000).unwrap();
            p.attach(1, u64::from(id)).unwrap();
        }
        let (id, ..) = p.alloc(2, 1, 0x1000).unwrap();
        assert_eq!(p.attach(1, u64::from(id)), Err(ivc::LIMIT));
        assert_eq!(p.status(2, u64::from(id)).unwrap().state, ivc::OFFERED);
    }

    #[test]
    fn a_departing_party_leaves_the_attached_peer_its_mapping_until_it_releases() {
        let mut p = Pool::new(config());
        let (a, sa, ea) = p.alloc(0, 1, 0x1000).unwrap();
        p.attach(1, u64::from(a)).unwrap();
        let (b, sb, eb) = p.alloc(0, 2, 0x1000).unwrap(); // offered only
        let (c, ..) = p.alloc(1, 2, 0x1000).unwrap(); // not member 0's
        let mut seen = alloc::vec::Vec::new();
        p.depart(0, |t| seen.push(t));
        assert_eq!(
            seen,
            [
                Teardown {
                    slot: sa,
                    extent: ea,
                    unmap: [Some(0), None],
                    freed: false,
                    ring: Some(1),
                },
                Teardown {
                    slot: sb,
                    extent: eb,
                    unmap: [Some(0), None],
                    freed: true,
                    ring: Some(2),
                },
            ]
        );
        let s = p.status(1, u64::from(a)).unwrap();
        assert_eq!((s.state, s.mapped), (ivc::PEER_GONE, true));
        assert_eq!(p.status(0, u64::from(a)), Err(ivc::BAD_ID), "gone");
        assert_eq!(p.release(0, u64::from(a)), Err(ivc::BAD_ID));
        assert_eq!(p.ring_target(1, u64::from(a)), None);
        assert_eq!(
            p.status(2, u64::from(b)),
            Err(ivc::BAD_ID),
            "offer withdrawn"
        );
        assert_eq!(p.offer(2), c);
        assert_eq!(p.free_bytes(), 0xe000);
        // The survivor's release frees it without telling the gone owner.
        let t = p.release(1, u64::from(a)).unwrap();
        assert_eq!((t.unmap, t.freed, t.ring), ([None, Some(1)], true, None));
        // Departing again finds nothing of member 0.
        p.depart(0, |_| panic!("nothing left"));
        assert_eq!(p.free_bytes(), 0xf000);
    }

    #[test]
    fn both_parties_departing_frees_the_channel() {
        let mut p = Pool::new(config());
        let (a, ..) = p.alloc(0, 1, 0x1000).unwrap();
        p.attach(1, u64::from(a)).unwrap();
        p.depart(1, |_| {});
        let mut freed = None;
        p.depart(0, |t| freed = Some((t.unmap, t.freed, t.ring)));
        assert_eq!(freed, Some(([Some(0), None], true, None)));
        assert_eq!(p.free_bytes(), 0x1_0000);
        assert_eq!(p.free_slots(), 4);
    }

    #[test]
    fn a_thousand_cycles_return_the_pool_to_its_start() {
        let mut p = Pool::new(config());
        let mut last = 0;
        for i in 0..1000u64 {
            let (id, ..) = p.alloc((i % 2) as usize, 2, 0x1000 * (1 + i % 16)).unwrap();
            assert_ne!(id, last, "a new id every time");
            last = id;
            p.attach(2, u64::from(id)).unwrap();
            let releaser = if i % 2 == 0 { 2 } else { 1 };
            p.release(releaser, u64::from(id)).unwrap();
        }
        assert_eq!(p.free_bytes(), 0x1_0000);
        assert_eq!(p.free_slots(), 4);
        assert_eq!((p.held_by(0), p.held_by(1), p.held_by(2)), (0, 0, 0));
    }
}
