//! Extended page tables (guest-physical → host-physical): 4-level, 4 KiB
//! tables, 1 GiB and 2 MiB pages wherever alignment allows, write-back RAM
//! and uncacheable devices (Intel SDM vol. 3, 29.3).
//!
//! Building is pure: tables come from a [`TableAllocator`], so host unit
//! tests build and walk real tables in ordinary memory.

use crate::arch::GuestMemory;
use crate::mm::table::{MapError, MemKind, Table, TableAllocator, ENTRIES, PAGE_SIZE};

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

/// Level 4 is the PML4; a level-`l` entry maps `1 << level_shift(l)` bytes.
const fn level_shift(level: u32) -> u32 {
    12 + 9 * (level - 1)
}

fn leaf(hpa: u64, kind: MemKind, level: u32) -> u64 {
    let access = match kind {
        MemKind::Normal => bits::READ | bits::WRITE | bits::EXECUTE,
        MemKind::Device => bits::READ | bits::WRITE,
        MemKind::NormalReadOnly => bits::READ,
    };
    let large = if level > 1 { bits::LARGE } else { 0 };
    (hpa & bits::ADDR_MASK) | access | large | (mem_type(kind) as u64) << bits::MEMTYPE_SHIFT
}

fn table_entry(pa: u64) -> u64 {
    (pa & bits::ADDR_MASK) | bits::READ | bits::WRITE | bits::EXECUTE
}

fn is_table(entry: u64, level: u32) -> bool {
    entry & (bits::READ | bits::WRITE | bits::EXECUTE) != 0 && level > 1 && entry & bits::LARGE == 0
}

/// An EPT address space under construction (its PML4 is the EPTP base).
pub struct Ept {
    root: u64,
}

impl Ept {
    /// A new, empty address space.
    pub fn new(alloc: &mut impl TableAllocator) -> Result<Self, MapError> {
        let (root, _) = alloc.alloc_table().ok_or(MapError::NoMemory)?;
        Ok(Self { root })
    }

    /// Physical address of the PML4.
    pub fn root(&self) -> u64 {
        self.root
    }

    /// The EPT pointer for this address space: write-back paging
    /// structures, 4-level walk (SDM 25.6.11).
    pub fn eptp(&self) -> u64 {
        Self::eptp_of(self.root)
    }

    /// The EPT pointer of the tables whose PML4 is at `root`.
    pub const fn eptp_of(root: u64) -> u64 {
        root | (MemType::WriteBack as u64) | (4 - 1) << 3
    }

    /// Maps `[gpa, gpa + size)` to `[hpa, hpa + size)` with the largest
    /// pages alignment allows.
    pub fn map(
        &mut self,
        alloc: &mut impl TableAllocator,
        gpa: u64,
        hpa: u64,
        size: u64,
        kind: MemKind,
    ) -> Result<(), MapError> {
        if (gpa | hpa | size) & (PAGE_SIZE - 1) != 0 {
            return Err(MapError::Misaligned);
        }
        let end = gpa.checked_add(size).ok_or(MapError::OutOfRange)?;
        if end > 1 << GPA_BITS {
            return Err(MapError::OutOfRange);
        }
        let (mut gpa, mut hpa) = (gpa, hpa);
        while gpa < end {
            let level = (1..=3)
                .rev()
                .find(|&l| {
                    let page = 1u64 << level_shift(l);
                    (gpa | hpa) & (page - 1) == 0 && end - gpa >= page
                })
                .unwrap_or(1);
            self.map_one(alloc, gpa, hpa, level, kind)?;
            let step = 1u64 << level_shift(level);
            gpa += step;
            hpa += step;
        }
        Ok(())
    }

    fn map_one(
        &mut self,
        alloc: &mut impl TableAllocator,
        gpa: u64,
        hpa: u64,
        level: u32,
        kind: MemKind,
    ) -> Result<(), MapError> {
        let mut table: &mut Table = alloc.table_at(self.root);
        for l in (level + 1..=4).rev() {
            let idx = (gpa >> level_shift(l)) as usize % ENTRIES;
            let entry = table[idx];
            if entry == 0 {
                let (next, _) = alloc.alloc_table().ok_or(MapError::NoMemory)?;
                table[idx] = table_entry(next);
                table = alloc.table_at(next);
            } else if is_table(entry, l) {
                table = alloc.table_at(entry & bits::ADDR_MASK);
            } else {
                return Err(MapError::AlreadyMapped);
            }
        }
        let idx = (gpa >> level_shift(level)) as usize % ENTRIES;
        if table[idx] != 0 {
            return Err(MapError::AlreadyMapped);
        }
        table[idx] = leaf(hpa, kind, level);
        Ok(())
    }

    /// Walks the tables: the host address and kind `gpa` maps to and the
    /// level of the leaf (1 = 4 KiB), or `None` if unmapped.
    pub fn translate(
        &self,
        alloc: &mut impl TableAllocator,
        gpa: u64,
    ) -> Option<(u64, MemKind, u32)> {
        if gpa >> GPA_BITS != 0 {
            return None;
        }
        let mut table = alloc.table_at(self.root);
        for level in (1..=4).rev() {
            let entry = table[(gpa >> level_shift(level)) as usize % ENTRIES];
            if entry & (bits::READ | bits::WRITE | bits::EXECUTE) == 0 {
                return None;
            }
            if is_table(entry, level) {
                table = alloc.table_at(entry & bits::ADDR_MASK);
                continue;
            }
            if level > 3 {
                return None;
            }
            let kind = if (entry >> bits::MEMTYPE_SHIFT) & 7 == MemType::WriteBack as u64 {
                MemKind::Normal
            } else {
                MemKind::Device
            };
            let offset = gpa & ((1u64 << level_shift(level)) - 1);
            return Some(((entry & bits::ADDR_MASK) + offset, kind, level));
        }
        None
    }
}

impl GuestMemory for Ept {
    fn new(alloc: &mut impl TableAllocator) -> Result<Self, MapError> {
        Ept::new(alloc)
    }
    fn map(
        &mut self,
        alloc: &mut impl TableAllocator,
        gpa: u64,
        hpa: u64,
        size: u64,
        kind: MemKind,
    ) -> Result<(), MapError> {
        Ept::map(self, alloc, gpa, hpa, size, kind)
    }
    fn root(&self) -> u64 {
        Ept::root(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::boxed::Box;
    use alloc::vec::Vec;

    /// Tables in host memory, with fake physical addresses 0x1000 apart.
    #[derive(Default)]
    struct HostTables(Vec<*mut Table>);

    impl TableAllocator for HostTables {
        fn alloc_table(&mut self) -> Option<(u64, &'static mut Table)> {
            let t: *mut Table = Box::leak(Box::new([0; ENTRIES]));
            self.0.push(t);
            // SAFETY: the table was just leaked and only this test uses it.
            Some((self.0.len() as u64 * 0x1000, unsafe { &mut *t }))
        }
        fn table_at(&mut self, pa: u64) -> &'static mut Table {
            // SAFETY: test tables are leaked and only used by this test.
            unsafe { &mut *self.0[(pa / 0x1000 - 1) as usize] }
        }
    }

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
            Some((0x8000_1234, MemKind::Normal, 3))
        );
        assert_eq!(
            ept.translate(&mut t, 0x8000_0010),
            Some((0xc000_0010, MemKind::Normal, 2))
        );
        assert_eq!(
            ept.translate(&mut t, 0x8020_0fff),
            Some((0xc020_0fff, MemKind::Normal, 1))
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
            Some((0x0220_0000, MemKind::Normal, 2))
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
            Some((0xfee0_0030, MemKind::Device, 1))
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
