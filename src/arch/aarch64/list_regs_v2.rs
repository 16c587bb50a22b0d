//! GICv2 list-register contents (GICH_LR<n>, 32 bits) for the GICv2 virtual
//! interface: the twin of [`super::list_regs`], which holds the shared
//! placement rule ([`super::list_regs::place_in`]). Pure logic,
//! host-tested; the GICv2 back-end reads and writes the registers through
//! the GICH frame.
//!
//! Differences from GICv3 a reader should know: the priority field keeps
//! only the top 5 bits of the guest's priority (GIC-400 has 32 levels), the
//! virtual and physical INTIDs are 10 bits, and the group bit is clear:
//! a GICv2 VM sees group 0 only (see `devices::vgic::gicv2`), which the
//! guest's GICV_CTLR signals as IRQ.

use super::list_regs::{Format, Placement};
use crate::devices::vgic::Deliverable;

/// GICH_LR<n> fields.
pub mod lr {
    /// VirtualID (bits 9:0).
    pub const VINTID_MASK: u64 = 0x3ff;
    /// PhysicalID (bits 19:10), for HW interrupts.
    pub const PINTID_SHIFT: u32 = 10;
    /// Priority (bits 27:23): the top 5 bits of an 8-bit priority.
    pub const PRIORITY_SHIFT: u32 = 23;
    /// State: pending (bit 28).
    pub const STATE_PENDING: u64 = 1 << 28;
    /// State: active (bit 29).
    pub const STATE_ACTIVE: u64 = 1 << 29;
    /// Both state bits.
    pub const STATE_MASK: u64 = 3 << 28;
    /// Group 1 (bit 30); never set by Tessera.
    pub const GROUP1: u64 = 1 << 30;
    /// Linked to the physical interrupt PhysicalID (bit 31).
    pub const HW: u64 = 1 << 31;
}

/// GICH_HCR: En (virtual CPU interface on).
pub const HCR_EN: u32 = 1;
/// GICH_HCR: UIE (maintenance interrupt when at most one list register is
/// valid: the refill signal).
pub const HCR_UIE: u32 = 1 << 1;

/// Number of list registers from GICH_VTR (ListRegs + 1, bits 5:0).
pub fn list_regs_from_vtr(vtr: u32) -> usize {
    (vtr & 0x3f) as usize + 1
}

/// The list-register value that presents `d` as pending, group 0.
#[inline(always)]
pub fn value(d: &Deliverable) -> u64 {
    let mut v = (d.intid as u64 & lr::VINTID_MASK)
        | ((d.priority >> 3) as u64) << lr::PRIORITY_SHIFT
        | lr::STATE_PENDING;
    if d.hw {
        v |= lr::HW | (d.line as u64 & lr::VINTID_MASK) << lr::PINTID_SHIFT;
    }
    v
}

/// The GICv2 format.
pub const GICV2: Format = Format {
    state_mask: lr::STATE_MASK,
    pending: lr::STATE_PENDING,
    active: lr::STATE_ACTIVE,
    hw: lr::HW,
    vintid_mask: lr::VINTID_MASK,
    value,
};

/// Places `d` among GICv2 list registers `lrs` with empty mask `free`
/// (GICH_ELRSR1:GICH_ELRSR0), as [`super::list_regs::place`] does for
/// GICv3.
pub fn place(lrs: &[u64], free: &mut u64, d: &Deliverable) -> Placement {
    super::list_regs::place_in(&GICV2, lrs, free, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(intid: u32, hw: bool) -> Deliverable {
        Deliverable {
            intid,
            priority: 0xa8,
            hw,
            line: if hw { intid } else { 0 },
        }
    }

    #[test]
    fn fields_sit_where_the_gicv2_spec_puts_them() {
        let v = value(&d(27, true));
        assert_eq!(v & lr::VINTID_MASK, 27);
        assert_eq!(v >> lr::PINTID_SHIFT & 0x3ff, 27);
        assert_eq!(v >> lr::PRIORITY_SHIFT & 0x1f, 0xa8 >> 3);
        assert_eq!(
            v & (lr::HW | lr::GROUP1 | lr::STATE_MASK),
            lr::HW | lr::STATE_PENDING
        );
        assert!(v <= u32::MAX as u64, "a 32-bit register");
        let sw = value(&d(3, false));
        assert_eq!(sw & (lr::HW | 0x3ff << lr::PINTID_SHIFT), 0);
        assert_eq!(sw, 3 | 0x15 << 23 | 1 << 28);
    }

    #[test]
    fn placement_uses_the_gicv2_state_bits() {
        let active = 5 | lr::STATE_ACTIVE;
        let lrs = [active, 0, 0, 0];
        let mut free = 0b1110;
        assert_eq!(
            place(&lrs, &mut free, &d(5, false)),
            Placement::Write {
                index: 0,
                value: active | lr::STATE_PENDING
            }
        );
        assert_eq!(
            place(&lrs, &mut free, &d(6, false)),
            Placement::Write {
                index: 1,
                value: value(&d(6, false))
            }
        );
        let hw_active = (value(&d(27, true)) & !lr::STATE_MASK) | lr::STATE_ACTIVE;
        let lrs = [hw_active, value(&d(6, false))];
        let mut free = 0;
        assert_eq!(place(&lrs, &mut free, &d(27, true)), Placement::Merged);
        assert_eq!(place(&lrs, &mut free, &d(6, false)), Placement::Merged);
        assert_eq!(place(&lrs, &mut free, &d(7, false)), Placement::NoRoom);
    }

    #[test]
    fn vtr_gives_the_list_register_count() {
        // GIC-400: 4 list registers (ListRegs = 3), plus PRIbits/PREbits.
        assert_eq!(list_regs_from_vtr(0x9000_0003), 4);
        assert_eq!(list_regs_from_vtr(0x3f), 64);
    }
}
