//! Stage-2 (IPA → PA) translation tables: 4 KiB granule, 39-bit IPA space
//! starting at level 1, 1 GiB and 2 MiB blocks wherever alignment allows.
//!
//! The mapping, unmapping and walking loops are the generic builder's
//! ([`crate::mm::page_table`]); this file is the descriptor format. Pure:
//! tables come from a [`TableAllocator`], so host unit tests build and walk
//! real tables in ordinary memory.

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
pub use crate::mm::page_table::{Format, PageTable};
pub use crate::mm::table::{MapError, MemKind, Table, TableAllocator, ENTRIES, PAGE_SIZE};

/// The translation level whose entries map `1 << shift` bytes: 30 is
/// level 1, 21 level 2, 12 level 3.
const fn level_of(shift: u32) -> u32 {
    3 - (shift - 12) / 9
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

/// The stage-2 descriptor format (Arm ARM D8.3): 4 KiB granule, three
/// levels from level 1 (39-bit IPA), 1 GiB and 2 MiB blocks.
pub struct Stage2Format;

impl Format for Stage2Format {
    const LEVELS: u32 = 3;
    const IN_BITS: u32 = IPA_BITS;
    const OUT_BITS: u32 = PA_BITS;
    fn leaf(pa: u64, kind: MemKind, shift: u32) -> u64 {
        leaf(pa, kind, level_of(shift))
    }
    fn table(pa: u64) -> u64 {
        table_desc(pa)
    }
    fn is_valid(entry: u64) -> bool {
        entry & 1 != 0
    }
    fn is_table(entry: u64, shift: u32) -> bool {
        entry & 0b11 == 0b11 && shift > 12
    }
    fn addr(entry: u64) -> u64 {
        desc_addr(entry)
    }
    fn kind(entry: u64) -> MemKind {
        let d = LocalRegisterCopy::<u64, S2_DESC::Register>::new(entry);
        if !d.matches_all(S2_DESC::MEMATTR::NormalWriteBack) {
            MemKind::Device
        } else if d.matches_all(S2_DESC::S2AP::ReadOnly) {
            MemKind::NormalReadOnly
        } else {
            MemKind::Normal
        }
    }
}

/// A stage-2 address space (its level-1 table is the VTTBR_EL2 base
/// address): the generic builder with the stage-2 format.
pub type Stage2 = PageTable<Stage2Format>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mm::page_table::HostTables;

    #[test]
    fn pages_map_and_unmap_one_by_one_and_blocks_are_not_unmapped() {
        let mut a = HostTables::default();
        let mut s2 = Stage2::new(&mut a).unwrap();
        // 2 MiB aligned, yet pages: each can go on its own.
        s2.map_pages(&mut a, 0x6000_0000, 0x43a0_0000, 0x20_0000, MemKind::Normal)
            .unwrap();
        assert_eq!(
            s2.translate(&mut a, 0x6000_1008),
            Some((0x43a0_1008, MemKind::Normal, 0x1000))
        );
        s2.unmap_pages(&mut a, 0x6000_1000, 0x2000).unwrap();
        assert_eq!(s2.translate(&mut a, 0x6000_1000), None);
        assert_eq!(s2.translate(&mut a, 0x6000_2fff), None);
        assert_eq!(
            s2.translate(&mut a, 0x6000_3000),
            Some((0x43a0_3000, MemKind::Normal, 0x1000))
        );
        // Unmapped pages are skipped; mapping them again works.
        s2.unmap_pages(&mut a, 0x6000_0000, 0x4000).unwrap();
        assert_eq!(s2.translate(&mut a, 0x6000_0000), None);
        s2.map_pages(&mut a, 0x6000_0000, 0x4400_0000, 0x4000, MemKind::Normal)
            .unwrap();
        assert_eq!(
            s2.translate(&mut a, 0x6000_2000),
            Some((0x4400_2000, MemKind::Normal, 0x1000))
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
            Some((0x8000_0000, MemKind::Normal, 0x20_0000))
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
            Some((0x4400_3000, MemKind::Normal, 0x1000))
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
            Some((0x8000_1234, MemKind::Normal, 0x4000_0000))
        );
        assert_eq!(
            s2.translate(&mut a, 0x8000_0010),
            Some((0xc000_0010, MemKind::Normal, 0x20_0000))
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
        assert_eq!(s2.translate(&mut a, 0x3fff_f000).map(|t| t.2), Some(0x1000));
        assert_eq!(
            s2.translate(&mut a, 0x4010_0000),
            Some((0x4410_0000, MemKind::Normal, 0x20_0000))
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
            Some((0x0904_0ff0, MemKind::Device, 0x1000))
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
            Some((0x43e0_0010, MemKind::NormalReadOnly, 0x20_0000))
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
