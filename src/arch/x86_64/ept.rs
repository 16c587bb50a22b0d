//! Extended page tables (guest-physical → host-physical): 4-level, 4 KiB
//! tables, 1 GiB and 2 MiB pages wherever alignment allows, write-back RAM
//! and uncacheable devices (Intel SDM vol. 3, 29.3).
//!
//! The mapping and walking loops are the generic builder's
//! (`mm::page_table`); this file is the entry format. Pure and
//! host-tested.

use crate::mm::page_table::{Format, PageTable};
use crate::mm::table::MemKind;

/// Bits of guest-physical address a 4-level EPT translates.
pub const GPA_BITS: u32 = 48;

/// Entry bits.
mod bits {
    /// Read access.
    pub const READ: u64 = 1 << 0;
    /// Write access.
    pub const WRITE: u64 = 1 << 1;
    /// Execute access (supervisor, without mode-based execute control).
    pub const EXECUTE: u64 = 1 << 2;
    /// Memory type of a leaf, bits 5:3.
    pub const MEMTYPE_SHIFT: u32 = 3;
    /// Leaf at level 3 or 2 (1 GiB / 2 MiB page).
    pub const LARGE: u64 = 1 << 7;
    /// Physical address bits 51:12.
    pub const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
}

/// EPT memory types (SDM 29.3.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum MemType {
    /// Uncacheable: devices.
    Uncacheable = 0,
    /// Write-back: RAM.
    WriteBack = 6,
}

/// Memory type of a kind of mapping.
pub const fn mem_type(kind: MemKind) -> MemType {
    match kind {
        MemKind::Normal | MemKind::NormalReadOnly => MemType::WriteBack,
        MemKind::Device => MemType::Uncacheable,
    }
}

fn leaf(hpa: u64, kind: MemKind, shift: u32) -> u64 {
    let access = match kind {
        MemKind::Normal => bits::READ | bits::WRITE | bits::EXECUTE,
        MemKind::Device => bits::READ | bits::WRITE,
        MemKind::NormalReadOnly => bits::READ,
    };
    let large = if shift > 12 { bits::LARGE } else { 0 };
    (hpa & bits::ADDR_MASK) | access | large | (mem_type(kind) as u64) << bits::MEMTYPE_SHIFT
}

/// The EPT entry format (SDM 29.3.2): 4 levels, 48-bit guest-physical
/// addresses, RWX access bits, the memory type in leaves.
pub struct EptFormat;

impl Format for EptFormat {
    const LEVELS: u32 = 4;
    const IN_BITS: u32 = GPA_BITS;
    const OUT_BITS: u32 = 52;
    fn leaf(pa: u64, kind: MemKind, shift: u32) -> u64 {
        leaf(pa, kind, shift)
    }
    fn table(pa: u64) -> u64 {
        (pa & bits::ADDR_MASK) | bits::READ | bits::WRITE | bits::EXECUTE
    }
    fn is_valid(entry: u64) -> bool {
        entry & (bits::READ | bits::WRITE | bits::EXECUTE) != 0
    }
    fn is_table(entry: u64, shift: u32) -> bool {
        shift > 12 && entry & bits::LARGE == 0
    }
    fn addr(entry: u64) -> u64 {
        entry & bits::ADDR_MASK
    }
    fn kind(entry: u64) -> MemKind {
        match ((entry >> bits::MEMTYPE_SHIFT) & 7, entry & bits::WRITE != 0) {
            (t, true) if t == MemType::WriteBack as u64 => MemKind::Normal,
            (t, false) if t == MemType::WriteBack as u64 => MemKind::NormalReadOnly,
            _ => MemKind::Device,
        }
    }
}

/// An EPT address space under construction (its PML4 is the EPTP base):
/// the generic builder over [`EptFormat`].
pub type Ept = PageTable<EptFormat>;

impl PageTable<EptFormat> {
    /// The EPT pointer for this address space: write-back paging
    /// structures, 4-level walk (SDM 25.6.11).
    pub fn eptp(&self) -> u64 {
        Self::eptp_of(self.root())
    }

    /// The EPT pointer of the tables whose PML4 is at `root`.
    pub const fn eptp_of(root: u64) -> u64 {
        root | (MemType::WriteBack as u64) | (4 - 1) << 3
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mm::page_table::HostTables;
    use crate::mm::table::{MapError, TableAllocator};

    const GIB: u64 = 1 << 30;
    const MIB2: u64 = 2 << 20;
    const KIB4: u64 = 0x1000;

    #[test]
    fn large_pages_where_alignment_allows() {
        let mut t = HostTables::default();
        let mut ept = Ept::new(&mut t).unwrap();
        // 1 GiB + 2 MiB + 4 KiB, all aligned: one page of each size.
        let size = (1 << 30) + (2 << 20) + 0x1000;
        ept.map(&mut t, 0x4000_0000, 0x8000_0000, size, MemKind::Normal)
            .unwrap();
        assert_eq!(
            ept.translate(&mut t, 0x4000_1234),
            Some((0x8000_1234, MemKind::Normal, GIB))
        );
        assert_eq!(
            ept.translate(&mut t, 0x8000_0010),
            Some((0xc000_0010, MemKind::Normal, MIB2))
        );
        assert_eq!(
            ept.translate(&mut t, 0x8020_0fff),
            Some((0xc020_0fff, MemKind::Normal, KIB4))
        );
        assert_eq!(ept.translate(&mut t, 0x8020_1000), None);
        assert_eq!(ept.translate(&mut t, 0x3fff_ffff), None);
    }

    #[test]
    fn guest_ram_at_zero_from_a_2mib_aligned_host_region() {
        let mut t = HostTables::default();
        let mut ept = Ept::new(&mut t).unwrap();
        ept.map(&mut t, 0, 0x0200_0000, 0x0100_0000, MemKind::Normal)
            .unwrap();
        assert_eq!(
            ept.translate(&mut t, 0x20_0000),
            Some((0x0220_0000, MemKind::Normal, MIB2))
        );
        assert_eq!(ept.translate(&mut t, 0x0100_0000), None);
    }

    #[test]
    fn entries_carry_memory_type_and_access() {
        let mut t = HostTables::default();
        let mut ept = Ept::new(&mut t).unwrap();
        ept.map(&mut t, 0xfee0_0000, 0xfee0_0000, 0x1000, MemKind::Device)
            .unwrap();
        assert_eq!(
            ept.translate(&mut t, 0xfee0_0030),
            Some((0xfee0_0030, MemKind::Device, KIB4))
        );
        let pml4 = t.table_at(ept.root());
        let pdpt = t.table_at(pml4[0] & bits::ADDR_MASK);
        let pd = t.table_at(pdpt[3] & bits::ADDR_MASK);
        let pt = t.table_at(pd[0x1f7] & bits::ADDR_MASK);
        // Uncacheable (0), read/write, not executable, not large.
        assert_eq!(pt[0], 0xfee0_0000 | 0b011);
        ept.map(&mut t, 0, 0x20_0000, 0x20_0000, MemKind::Normal)
            .unwrap();
        let pd0 = t.table_at(pdpt[0] & bits::ADDR_MASK);
        // Write-back (6 << 3), RWX, 2 MiB page.
        assert_eq!(pd0[0], 0x20_0000 | 6 << 3 | 1 << 7 | 0b111);
        assert_eq!(ept.eptp() & 0xfff, 0x1e);
        // A read-only view reads back as such.
        ept.map(
            &mut t,
            0x40_0000,
            0x40_0000,
            0x1000,
            MemKind::NormalReadOnly,
        )
        .unwrap();
        assert_eq!(
            ept.translate(&mut t, 0x40_0000),
            Some((0x40_0000, MemKind::NormalReadOnly, KIB4))
        );
    }

    #[test]
    fn refuses_bad_ranges_and_overlaps() {
        let mut t = HostTables::default();
        let mut ept = Ept::new(&mut t).unwrap();
        assert_eq!(
            ept.map(&mut t, 0x1000, 0x2001, 0x1000, MemKind::Normal),
            Err(MapError::Misaligned)
        );
        assert_eq!(
            ept.map(&mut t, 1 << 48, 0, 0x1000, MemKind::Normal),
            Err(MapError::OutOfRange)
        );
        ept.map(&mut t, 0, 0, 0x20_0000, MemKind::Normal).unwrap();
        assert_eq!(
            ept.map(&mut t, 0x1000, 0x1000, 0x1000, MemKind::Normal),
            Err(MapError::AlreadyMapped)
        );
    }
}
