//! GICv3 list-register contents (ICH_LR<n>_EL2) and where a deliverable
//! interrupt goes among them: pure logic, host-tested; `vgic_hw` reads and
//! writes the registers.

use crate::devices::vgic::Deliverable;

/// ICH_LR<n>_EL2 fields.
pub mod lr {
    /// pINTID (bits 44:32), for HW interrupts.
    pub const PINTID_SHIFT: u32 = 32;
    /// Priority (bits 55:48).
    pub const PRIORITY_SHIFT: u32 = 48;
    /// Group 1.
    pub const GROUP1: u64 = 1 << 60;
    /// Linked to the physical interrupt pINTID.
    pub const HW: u64 = 1 << 61;
    /// State: pending.
    pub const STATE_PENDING: u64 = 1 << 62;
    /// State: active.
    pub const STATE_ACTIVE: u64 = 1 << 63;
    /// Both state bits.
    pub const STATE_MASK: u64 = 3 << 62;
    /// vINTID (bits 31:0).
    pub const VINTID_MASK: u64 = 0xffff_ffff;
}

/// The list-register value that presents `d` as pending, group 1.
#[inline(always)]
pub fn value(d: &Deliverable) -> u64 {
    let mut v =
        d.intid as u64 | (d.priority as u64) << lr::PRIORITY_SHIFT | lr::GROUP1 | lr::STATE_PENDING;
    if d.hw {
        v |= lr::HW | (d.line as u64) << lr::PINTID_SHIFT;
    }
    v
}

/// Where one interrupt goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Write `value` into list register `index`.
    Write {
        /// List register.
        index: usize,
        /// Its new value.
        value: u64,
    },
    /// Already present (pending, or a HW interrupt that cannot fire again
    /// before its deactivation): nothing to do, as hardware merges them.
    Merged,
    /// No free list register: it waits in the pending set.
    NoRoom,
}

/// The bits of a list-register format that placement looks at (GICv3
/// here, GICv2 in `list_regs_v2`), so that both formats share one
/// placement rule.
#[derive(Debug, Clone, Copy)]
pub struct Format {
    /// Both state bits.
    pub state_mask: u64,
    /// State: pending.
    pub pending: u64,
    /// State: active.
    pub active: u64,
    /// HW (linked to a physical interrupt).
    pub hw: u64,
    /// The virtual INTID field.
    pub vintid_mask: u64,
    /// The value presenting an interrupt as pending.
    pub value: fn(&Deliverable) -> u64,
}

/// The GICv3 format (ICH_LR<n>_EL2).
pub const GICV3: Format = Format {
    state_mask: lr::STATE_MASK,
    pending: lr::STATE_PENDING,
    active: lr::STATE_ACTIVE,
    hw: lr::HW,
    vintid_mask: lr::VINTID_MASK,
    value,
};

/// Places `d` given the current list-register values `lrs` and the mask of
/// empty ones `free` (ICH_ELRSR_EL2), updating `free`: an interrupt already
/// in a list register as active (and not HW) becomes active and pending in
/// place; otherwise it takes the lowest free register.
pub fn place(lrs: &[u64], free: &mut u64, d: &Deliverable) -> Placement {
    place_in(&GICV3, lrs, free, d)
}

/// [`place`] for list registers of format `f`.
#[inline]
pub fn place_in(f: &Format, lrs: &[u64], free: &mut u64, d: &Deliverable) -> Placement {
    let occupied = lrs.iter().enumerate().find(|&(i, &v)| {
        *free & 1 << i == 0 && v & f.state_mask != 0 && v & f.vintid_mask == d.intid as u64
    });
    if let Some((index, &v)) = occupied {
        if v & f.state_mask == f.active && !d.hw && v & f.hw == 0 {
            return Placement::Write {
                index,
                value: v | f.pending,
            };
        }
        return Placement::Merged;
    }
    let usable = *free & ((1u64 << lrs.len()) - 1);
    if usable == 0 {
        return Placement::NoRoom;
    }
    let index = usable.trailing_zeros() as usize;
    *free &= !(1 << index);
    Placement::Write {
        index,
        value: (f.value)(d),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(intid: u32, hw: bool) -> Deliverable {
        Deliverable {
            intid,
            priority: 0x80,
            hw,
            line: if hw { intid } else { 0 },
        }
    }

    #[test]
    fn a_spare_line_is_the_physical_intid_of_its_doorbell() {
        let v = value(&Deliverable {
            intid: 48,
            priority: 0x80,
            hw: true,
            line: 300,
        });
        assert_eq!(v & lr::VINTID_MASK, 48);
        assert_eq!(v >> lr::PINTID_SHIFT & 0x1fff, 300);
        assert_ne!(v & lr::HW, 0);
    }

    #[test]
    fn hw_interrupts_carry_their_physical_intid() {
        let v = value(&d(27, true));
        assert_eq!(v & lr::VINTID_MASK, 27);
        assert_eq!(v >> lr::PINTID_SHIFT & 0x1fff, 27);
        assert_eq!(
            v & (lr::HW | lr::GROUP1 | lr::STATE_MASK),
            lr::HW | lr::GROUP1 | lr::STATE_PENDING
        );
        assert_eq!(v >> lr::PRIORITY_SHIFT & 0xff, 0x80);
        assert_eq!(value(&d(3, false)) & lr::HW, 0);
    }

    #[test]
    fn free_registers_are_taken_lowest_first_until_none_is_left() {
        let lrs = [0u64; 4];
        let mut free = 0b1010;
        assert_eq!(
            place(&lrs, &mut free, &d(1, false)),
            Placement::Write {
                index: 1,
                value: value(&d(1, false))
            }
        );
        assert!(matches!(
            place(&lrs, &mut free, &d(2, false)),
            Placement::Write { index: 3, .. }
        ));
        assert_eq!(place(&lrs, &mut free, &d(4, false)), Placement::NoRoom);
        assert_eq!(free, 0);
    }

    #[test]
    fn an_active_interrupt_raised_again_becomes_active_and_pending() {
        let active = 5 | lr::GROUP1 | lr::STATE_ACTIVE;
        let lrs = [active, 0, 0, 0];
        let mut free = 0b1110;
        assert_eq!(
            place(&lrs, &mut free, &d(5, false)),
            Placement::Write {
                index: 0,
                value: active | lr::STATE_PENDING
            }
        );
        assert_eq!(free, 0b1110, "no new register used");
    }

    #[test]
    fn pending_or_hw_duplicates_merge() {
        let pending = value(&d(5, false));
        let hw_active = (value(&d(27, true)) & !lr::STATE_MASK) | lr::STATE_ACTIVE;
        let lrs = [pending, hw_active, 0, 0];
        let mut free = 0b1100;
        assert_eq!(place(&lrs, &mut free, &d(5, false)), Placement::Merged);
        assert_eq!(place(&lrs, &mut free, &d(27, true)), Placement::Merged);
        assert_eq!(free, 0b1100);
    }

    #[test]
    fn registers_beyond_the_implemented_ones_are_never_used() {
        let lrs = [0u64; 2];
        let mut free = !0b11;
        assert_eq!(place(&lrs, &mut free, &d(1, false)), Placement::NoRoom);
    }
}
