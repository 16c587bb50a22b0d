//! Stage-2 (IPA → PA) translation tables: 4 KiB granule, 39-bit IPA space
//! starting at level 1, 1 GiB and 2 MiB blocks wherever alignment allows.
//!
//! Building is pure: tables come from a [`TableAllocator`], so host unit
//! tests build and walk real tables in ordinary memory.

use tock_registers::LocalRegisterCopy;

#[allow(missing_docs)]
mod desc {
    use tock_registers::register_bitfields;
    register_bitfields! {u64,
        /// A stage-2 block, page or table descriptor (Arm ARM D8.3).
        pub S2_DESC [
            /// Valid entry.
            VALID OFFSET(0) NUMBITS(1) [],
            /// At levels 1-2: 1 = table, 0 = block. At level 3 must be 1 (page).
            TYPE OFFSET(1) NUMBITS(1) [Block = 0, TableOrPage = 1],
            /// Stage-2 memory attributes (used directly, FWB off).
            MEMATTR OFFSET(2) NUMBITS(4) [
                DeviceNGnRE = 0b0001,
                NormalWriteBack = 0b1111
            ],
            /// Stage-2 access permissions.
            S2AP OFFSET(6) NUMBITS(2) [None = 0b00, ReadOnly = 0b01, WriteOnly = 0b10, ReadWrite = 0b11],
            /// Shareability.
            SH OFFSET(8) NUMBITS(2) [NonShareable = 0b00, OuterShareable = 0b10, InnerShareable = 0b11],
            /// Access flag (set: no access-flag faults).
            AF OFFSET(10) NUMBITS(1) [],
            /// Output address bits [47:12].
            OUTPUT_ADDR OFFSET(12) NUMBITS(36) [],
            /// Execute-never for EL1 and EL0.
            XN OFFSET(53) NUMBITS(2) [Executable = 0b00, NeverExecute = 0b10]
        ]
    }
}
pub use desc::S2_DESC;

/// Bits of IPA a stage-2 table of this format translates.
pub const IPA_BITS: u32 = 39;
/// Bits of output (physical) address the tables may hold: VTCR_EL2.PS is
/// programmed for 40 bits (`cpu.rs`); a larger PA would fault in the guest
/// or, past 48 bits, silently alias a low address in the descriptor.
pub const PA_BITS: u32 = 40;
pub use crate::mm::table::{MapError, MemKind, Table, TableAllocator, ENTRIES, PAGE_SIZE};

/// Level-1 index shift; level 2 is 21, level 3 is 12.
const fn level_shift(level: u32) -> u32 {
    12 + 9 * (3 - level)
}

fn leaf(pa: u64, kind: MemKind, level: u32) -> u64 {
    let mut d = LocalRegisterCopy::<u64, S2_DESC::Register>::new(0);
    let ty = if level == 3 {
        S2_DESC::TYPE::TableOrPage
    } else {
        S2_DESC::TYPE::Block
    };
    let attrs = match kind {
        MemKind::Normal => {
            S2_DESC::MEMATTR::NormalWriteBack
                + S2_DESC::SH::InnerShareable
                + S2_DESC::XN::Executable
                + S2_DESC::S2AP::ReadWrite
        }
        MemKind::Device => {
            S2_DESC::MEMATTR::DeviceNGnRE
                + S2_DESC::SH::OuterShareable
                + S2_DESC::XN::NeverExecute
                + S2_DESC::S2AP::ReadWrite
        }
        MemKind::NormalReadOnly => {
            S2_DESC::MEMATTR::NormalWriteBack
                + S2_DESC::SH::InnerShareable
                + S2_DESC::XN::NeverExecute
                + S2_DESC::S2AP::ReadOnly
        }
    };
    d.write(
        S2_DESC::VALID::SET + ty + attrs + S2_DESC::AF::SET + S2_DESC::OUTPUT_ADDR.val(pa >> 12),
    );
    d.get()
}

fn table_desc(pa: u64) -> u64 {
    let mut d = LocalRegisterCopy::<u64, S2_DESC::Register>::new(0);
    d.write(S2_DESC::VALID::SET + S2_DESC::TYPE::TableOrPage + S2_DESC::OUTPUT_ADDR.val(pa >> 12));
    d.get()
}

fn desc_addr(desc: u64) -> u64 {
    LocalRegisterCopy::<u64, S2_DESC::Register>::new(desc).read(S2_DESC::OUTPUT_ADDR) << 12
}

fn is_table(desc: u64, level: u32) -> bool {
    desc & 0b11 == 0b11 && level < 3
}

/// A stage-2 address space under construction (its level-1 table is the
/// VTTBR_EL2 base address).
pub struct Stage2 {
    root: u64,
}

impl Stage2 {
    /// A new, empty address space.
    pub fn new(alloc: &mut impl TableAllocator) -> Result<Self, MapError> {
        let (root, _) = alloc.alloc_table().ok_or(MapError::NoMemory)?;
        Ok(Self { root })
    }

    /// Physical address of the level-1 table.
    pub fn root(&self) -> u64 {
        self.root
    }

    /// The address space whose level-1 table is at `root` (one [`Stage2::new`]
    /// made), to change it while its VM runs.
    pub fn from_root(root: u64) -> Self {
        Self { root }
    }

    /// Maps `[ipa, ipa + size)` to `[pa, pa + size)`, using the largest
    /// blocks alignment allows.
    pub fn map(
        &mut self,
        alloc: &mut impl TableAllocator,
        ipa: u64,
        pa: u64,
        size: u64,
        kind: MemKind,
    ) -> Result<(), MapError> {
        self.map_up_to(alloc, ipa, pa, size, kind, 1)
    }

    /// Maps `[ipa, ipa + size)` to `[pa, pa + size)` with 4 KiB pages only,
    /// so [`Stage2::unmap_pages`] can take it away again page by page. Each
    /// entry changes from invalid to valid with one store, so the VM may be
    /// running (its walks see either).
    pub fn map_pages(
        &mut self,
        alloc: &mut impl TableAllocator,
        ipa: u64,
        pa: u64,
        size: u64,
        kind: MemKind,
    ) -> Result<(), MapError> {
        self.map_up_to(alloc, ipa, pa, size, kind, 3)
    }

    /// Makes the 4 KiB pages of `[ipa, ipa + size)` invalid; pages not
    /// mapped are skipped. A block in the range is refused before anything
    /// changes (only [`Stage2::map_pages`] mappings can be taken away). The
    /// caller must invalidate the VM's TLBs afterwards.
    pub fn unmap_pages(
        &mut self,
        alloc: &mut impl TableAllocator,
        ipa: u64,
        size: u64,
    ) -> Result<(), MapError> {
        if (ipa | size) & (PAGE_SIZE - 1) != 0 {
            return Err(MapError::Misaligned);
        }
        let end = ipa.checked_add(size).ok_or(MapError::OutOfRange)?;
        if end > 1 << IPA_BITS {
            return Err(MapError::OutOfRange);
        }
        for pass in [false, true] {
            let mut at = ipa;
            while at < end {
                match self.leaf_slot(alloc, at) {
                    Some((table, idx, 3)) if pass => table[idx] = 0,
                    Some((_, _, 3)) | None => {}
                    Some(_) => return Err(MapError::AlreadyMapped),
                }
                at += PAGE_SIZE;
            }
        }
        Ok(())
    }

    /// The table and index of the valid leaf that maps `ipa`, and its level.
    fn leaf_slot(
        &self,
        alloc: &mut impl TableAllocator,
        ipa: u64,
    ) -> Option<(&'static mut Table, usize, u32)> {
        let mut table = alloc.table_at(self.root);
        for level in 1..=3 {
            let idx = (ipa >> level_shift(level)) as usize % ENTRIES;
            let desc = table[idx];
            if desc & 1 == 0 {
                return None;
            }
            if !is_table(desc, level) {
                return Some((table, idx, level));
            }
            table = alloc.table_at(desc_addr(desc));
        }
        None
    }

    fn map_up_to(
        &mut self,
        alloc: &mut impl TableAllocator,
        ipa: u64,
        pa: u64,
        size: u64,
        kind: MemKind,
        first_level: u32,
    ) -> Result<(), MapError> {
        if (ipa | pa | size) & (PAGE_SIZE - 1) != 0 {
            return Err(MapError::Misaligned);
        }
        let end = ipa.checked_add(size).ok_or(MapError::OutOfRange)?;
        if end > 1 << IPA_BITS || pa.checked_add(size).is_none_or(|e| e > 1 << PA_BITS) {
            return Err(MapError::OutOfRange);
        }
        let (mut ipa, mut pa) = (ipa, pa);
        while ipa < end {
            let level = (first_level..=3)
                .find(|&l| {
                    let block = 1u64 << level_shift(l);
                    (ipa | pa) & (block - 1) == 0 && end - ipa >= block
                })
                .unwrap_or(3);
            self.map_one(alloc, ipa, pa, level, kind)?;
            let step = 1u64 << level_shift(level);
            ipa += step;
            pa += step;
        }
        Ok(())
    }

    fn map_one(
        &mut self,
        alloc: &mut impl TableAllocator,
        ipa: u64,
        pa: u64,
        level: u32,
        kind: MemKind,
    ) -> Result<(), MapError> {
        let mut table = alloc.table_at(self.root);
        for l in 1..level {
            let idx = (ipa >> level_shift(l)) as usize % ENTRIES;
            let desc = table[idx];
            if desc == 0 {
                let (next, _) = alloc.alloc_table().ok_or(MapError::NoMemory)?;
                table[idx] = table_desc(next);
                table = alloc.table_at(next);
            } else if is_table(desc, l) {
                table = alloc.table_at(desc_addr(desc));
            } else {
                return Err(MapError::AlreadyMapped);
            }
        }
        let idx = (ipa >> level_shift(level)) as usize % ENTRIES;
        if table[idx] != 0 {
            return Err(MapError::AlreadyMapped);
        }
        table[idx] = leaf(pa, kind, level);
        Ok(())
    }

    /// Walks the tables: the PA and kind `ipa` maps to, and the level of the
    /// leaf, or `None` if unmapped.
    pub fn translate(
        &self,
        alloc: &mut impl TableAllocator,
        ipa: u64,
    ) -> Option<(u64, MemKind, u32)> {
        if ipa >> IPA_BITS != 0 {
            return None;
        }
        let mut table = alloc.table_at(self.root);
        for level in 1..=3 {
            let desc = table[(ipa >> level_shift(level)) as usize % ENTRIES];
            if desc & 1 == 0 {
                return None;
            }
            if is_table(desc, level) {
                table = alloc.table_at(desc_addr(desc));
                continue;
            }
            let d = LocalRegisterCopy::<u64, S2_DESC::Register>::new(desc);
            let kind = if !d.matches_all(S2_DESC::MEMATTR::NormalWriteBack) {
                MemKind::Device
            } else if d.matches_all(S2_DESC::S2AP::ReadOnly) {
                MemKind::NormalReadOnly
            } else {
                MemKind::Normal
            };
            let offset = ipa & ((1u64 << level_shift(level)) - 1);
            return Some((desc_addr(desc) + offset, kind, level));
        }
        None
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
            self.0.push(Box::into_raw(Box::new([0; ENTRIES])));
            let pa = self.0.len() as u64 * 0x1000;
            Some((pa, self.table_at(pa)))
        }
        fn table_at(&mut self, pa: u64) -> &'static mut Table {
            // SAFETY: the tables are leaked boxes that live for the whole
            // test; the builder uses one reference at a time.
            unsafe { &mut *self.0[(pa / 0x1000 - 1) as usize] }
        }
    }

    #[test]
    fn pages_map_and_unmap_one_by_one_and_blocks_are_not_unmapped() {
        let mut a = HostTables::default();
        let mut s2 = Stage2::new(&mut a).unwrap();
        // 2 MiB aligned, yet pages: each can go on its own.
        s2.map_pages(&mut a, 0x6000_0000, 0x43a0_0000, 0x20_0000, MemKind::Normal)
            .unwrap();
        assert_eq!(
            s2.translate(&mut a, 0x6000_1008),
            Some((0x43a0_1008, MemKind::Normal, 3))
        );
        s2.unmap_pages(&mut a, 0x6000_1000, 0x2000).unwrap();
        assert_eq!(s2.translate(&mut a, 0x6000_1000), None);
        assert_eq!(s2.translate(&mut a, 0x6000_2fff), None);
        assert_eq!(
            s2.translate(&mut a, 0x6000_3000),
            Some((0x43a0_3000, MemKind::Normal, 3))
        );
        // Unmapped pages are skipped; mapping them again works.
        s2.unmap_pages(&mut a, 0x6000_0000, 0x4000).unwrap();
        assert_eq!(s2.translate(&mut a, 0x6000_0000), None);
        s2.map_pages(&mut a, 0x6000_0000, 0x4400_0000, 0x4000, MemKind::Normal)
            .unwrap();
        assert_eq!(
            s2.translate(&mut a, 0x6000_2000),
            Some((0x4400_2000, MemKind::Normal, 3))
        );
        // A range touching a block changes nothing.
        s2.map(&mut a, 0x8000_0000, 0x8000_0000, 0x20_0000, MemKind::Normal)
            .unwrap();
        assert_eq!(
            s2.unmap_pages(&mut a, 0x7fff_f000, 0x2000),
            Err(MapError::AlreadyMapped)
        );
        assert_eq!(
            s2.translate(&mut a, 0x8000_0000),
            Some((0x8000_0000, MemKind::Normal, 2))
        );
        assert_eq!(
            s2.unmap_pages(&mut a, 0x6000_0800, 0x1000),
            Err(MapError::Misaligned)
        );
        assert_eq!(
            s2.unmap_pages(&mut a, (1 << IPA_BITS) - 0x1000, 0x2000),
            Err(MapError::OutOfRange)
        );
        // Another handle on the same root sees the same tables.
        let again = Stage2::from_root(s2.root());
        assert_eq!(
            again.translate(&mut a, 0x6000_3000),
            Some((0x4400_3000, MemKind::Normal, 3))
        );
    }

    #[test]
    fn aligned_ram_uses_blocks() {
        let mut a = HostTables::default();
        let mut s2 = Stage2::new(&mut a).unwrap();
        s2.map(
            &mut a,
            0x4000_0000,
            0x8000_0000,
            0x4000_0000 + 0x20_0000,
            MemKind::Normal,
        )
        .unwrap();
        assert_eq!(
            s2.translate(&mut a, 0x4000_1234),
            Some((0x8000_1234, MemKind::Normal, 1))
        );
        assert_eq!(
            s2.translate(&mut a, 0x8000_0010),
            Some((0xc000_0010, MemKind::Normal, 2))
        );
        assert_eq!(s2.translate(&mut a, 0x8020_0000), None);
        // root + one level-2 table
        assert_eq!(a.0.len(), 2);
    }

    #[test]
    fn unaligned_start_falls_back_to_pages_then_blocks() {
        let mut a = HostTables::default();
        let mut s2 = Stage2::new(&mut a).unwrap();
        s2.map(
            &mut a,
            0x4000_0000 - 0x1000,
            0x4400_0000 - 0x1000,
            0x20_1000,
            MemKind::Normal,
        )
        .unwrap();
        assert_eq!(s2.translate(&mut a, 0x3fff_f000).map(|t| t.2), Some(3));
        assert_eq!(
            s2.translate(&mut a, 0x4010_0000),
            Some((0x4410_0000, MemKind::Normal, 2))
        );
    }

    #[test]
    fn device_pages_are_device_and_xn() {
        let mut a = HostTables::default();
        let mut s2 = Stage2::new(&mut a).unwrap();
        s2.map(&mut a, 0x0904_0000, 0x0904_0000, 0x1000, MemKind::Device)
            .unwrap();
        assert_eq!(
            s2.translate(&mut a, 0x0904_0ff0),
            Some((0x0904_0ff0, MemKind::Device, 3))
        );
        assert_eq!(s2.translate(&mut a, 0x0904_1000), None);
    }

    #[test]
    fn read_only_view_has_no_write_permission() {
        let mut a = HostTables::default();
        let mut s2 = Stage2::new(&mut a).unwrap();
        s2.map(
            &mut a,
            0x5000_0000,
            0x43c0_0000,
            0x40_0000,
            MemKind::NormalReadOnly,
        )
        .unwrap();
        assert_eq!(
            s2.translate(&mut a, 0x5020_0010),
            Some((0x43e0_0010, MemKind::NormalReadOnly, 2))
        );
        let d = leaf(0x43c0_0000, MemKind::NormalReadOnly, 3);
        assert_eq!(d >> 6 & 0b11, 0b01, "S2AP read-only");
        assert_eq!(d >> 2 & 0xf, 0b1111, "normal write-back");
        assert_eq!(d >> 53 & 0b11, 0b10, "XN");
        let rw = leaf(0x43c0_0000, MemKind::Normal, 3);
        assert_eq!(rw >> 6 & 0b11, 0b11, "S2AP read-write");
    }

    #[test]
    fn leaf_descriptor_bits() {
        let d = leaf(0x4000_0000, MemKind::Normal, 1);
        assert_eq!(d & 0b11, 0b01, "level-1 block");
        assert_eq!(d >> 2 & 0xf, 0b1111);
        assert_eq!(d >> 6 & 0b11, 0b11, "read-write");
        assert_ne!(d & 1 << 10, 0, "access flag");
        let p = leaf(0x0900_0000, MemKind::Device, 3);
        assert_eq!(p & 0b11, 0b11, "level-3 page");
        assert_eq!(p >> 53 & 0b11, 0b10, "XN");
    }

    #[test]
    fn errors() {
        let mut a = HostTables::default();
        let mut s2 = Stage2::new(&mut a).unwrap();
        assert_eq!(
            s2.map(&mut a, 0x1001, 0, 0x1000, MemKind::Normal),
            Err(MapError::Misaligned)
        );
        assert_eq!(
            s2.map(&mut a, 1 << 39, 0, 0x1000, MemKind::Normal),
            Err(MapError::OutOfRange)
        );
        // Found by fuzz_stage2_map_walk: a PA past the output size used to
        // be truncated into the descriptor (here, to PA 0).
        assert_eq!(
            s2.map(&mut a, 0, 1 << 48, 0x1000, MemKind::Normal),
            Err(MapError::OutOfRange)
        );
        s2.map(&mut a, 0x4000_0000, 0x4000_0000, 0x20_0000, MemKind::Normal)
            .unwrap();
        assert_eq!(
            s2.map(&mut a, 0x4010_0000, 0, 0x1000, MemKind::Normal),
            Err(MapError::AlreadyMapped)
        );
    }
}
