//! One guest page-table builder for every format (Arm stage 2 and x86
//! EPT): mapping with the largest pages alignment allows, mapping and
//! unmapping 4 KiB pages while the guest runs, and walking are the same
//! loops whatever the format; a
//! [`Format`] says how many levels there are, how many address bits they
//! translate and how an entry is encoded. Pure, host-tested with a toy
//! format here and with the real ones beside their definitions.

use super::table::{MapError, MemKind, Table, TableAllocator, ENTRIES, PAGE_SIZE};
use core::marker::PhantomData;

/// Page sizes a leaf may have (as shifts), largest first: 1 GiB, 2 MiB,
/// 4 KiB — every format with 4 KiB tables of 512 entries.
const LEAF_SHIFTS: [u32; 3] = [30, 21, 12];

/// How one page-table format encodes its entries.
pub trait Format {
    /// Levels walked from the root table to a 4 KiB page.
    const LEVELS: u32;
    /// Bits of input (guest-physical) address the tables translate.
    const IN_BITS: u32;
    /// Bits of output (host-physical) address an entry may hold.
    const OUT_BITS: u32;
    /// A leaf entry mapping `pa` as `kind`, for a page of `1 << shift`
    /// bytes (30, 21 or 12).
    fn leaf(pa: u64, kind: MemKind, shift: u32) -> u64;
    /// An entry pointing at the next-level table at `pa`.
    fn table(pa: u64) -> u64;
    /// Whether `entry` maps anything (a table or a leaf).
    fn is_valid(entry: u64) -> bool;
    /// Whether valid `entry`, in a table whose entries cover `1 << shift`
    /// bytes each, points at a next-level table (not a leaf).
    fn is_table(entry: u64, shift: u32) -> bool;
    /// The output address of an entry.
    fn addr(entry: u64) -> u64;
    /// What a leaf entry maps.
    fn kind(entry: u64) -> MemKind;
}

/// A guest address space of format `F` under construction.
pub struct PageTable<F: Format> {
    root: u64,
    format: PhantomData<F>,
}

/// Bytes one entry of the table at `depth` (0 = root) covers, as a shift.
const fn shift<F: Format>(depth: u32) -> u32 {
    12 + 9 * (F::LEVELS - 1 - depth)
}

impl<F: Format> PageTable<F> {
    /// A new, empty address space.
    pub fn new(alloc: &mut impl TableAllocator) -> Result<Self, MapError> {
        let (root, _) = alloc.alloc_table().ok_or(MapError::NoMemory)?;
        Ok(Self {
            root,
            format: PhantomData,
        })
    }

    /// Physical address of the root table.
    pub fn root(&self) -> u64 {
        self.root
    }

    /// The address space whose root table is at `root` (one
    /// [`PageTable::new`] made), to change it while its guest runs.
    pub fn from_root(root: u64) -> Self {
        Self {
            root,
            format: PhantomData,
        }
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
        self.map_up_to(alloc, gpa, hpa, size, kind, shift::<F>(0))
    }

    /// Maps `[gpa, gpa + size)` to `[hpa, hpa + size)` with 4 KiB pages
    /// only, so [`PageTable::unmap_pages`] can take it away again page by
    /// page. Each entry changes from invalid to valid with one store, so
    /// the guest may be running (its walks see either).
    pub fn map_pages(
        &mut self,
        alloc: &mut impl TableAllocator,
        gpa: u64,
        hpa: u64,
        size: u64,
        kind: MemKind,
    ) -> Result<(), MapError> {
        self.map_up_to(alloc, gpa, hpa, size, kind, 12)
    }

    /// Makes the 4 KiB pages of `[gpa, gpa + size)` invalid; pages not
    /// mapped are skipped. A larger page in the range is refused before
    /// anything changes (only [`PageTable::map_pages`] mappings can be
    /// taken away). The caller invalidates the guest's TLBs afterwards.
    pub fn unmap_pages(
        &mut self,
        alloc: &mut impl TableAllocator,
        gpa: u64,
        size: u64,
    ) -> Result<(), MapError> {
        if (gpa | size) & (PAGE_SIZE - 1) != 0 {
            return Err(MapError::Misaligned);
        }
        let end = gpa.checked_add(size).ok_or(MapError::OutOfRange)?;
        if end > 1 << F::IN_BITS {
            return Err(MapError::OutOfRange);
        }
        for clear in [false, true] {
            let mut at = gpa;
            while at < end {
                match self.leaf_slot(alloc, at) {
                    Some((table, idx, 12)) if clear => table[idx] = 0,
                    Some((_, _, 12)) | None => {}
                    Some(_) => return Err(MapError::AlreadyMapped),
                }
                at += PAGE_SIZE;
            }
        }
        Ok(())
    }

    /// The table and index of the valid leaf that maps `gpa`, and the
    /// shift of its page size.
    fn leaf_slot(
        &self,
        alloc: &mut impl TableAllocator,
        gpa: u64,
    ) -> Option<(&'static mut Table, usize, u32)> {
        let mut table = alloc.table_at(self.root);
        for depth in 0..F::LEVELS {
            let s = shift::<F>(depth);
            let idx = (gpa >> s) as usize % ENTRIES;
            let entry = table[idx];
            if !F::is_valid(entry) {
                return None;
            }
            if s == 12 || !F::is_table(entry, s) {
                return Some((table, idx, s));
            }
            table = alloc.table_at(F::addr(entry));
        }
        None
    }

    /// [`PageTable::map`] with pages of at most `1 << largest` bytes.
    fn map_up_to(
        &mut self,
        alloc: &mut impl TableAllocator,
        gpa: u64,
        hpa: u64,
        size: u64,
        kind: MemKind,
        largest: u32,
    ) -> Result<(), MapError> {
        if (gpa | hpa | size) & (PAGE_SIZE - 1) != 0 {
            return Err(MapError::Misaligned);
        }
        let end = gpa.checked_add(size).ok_or(MapError::OutOfRange)?;
        let out_end = hpa.checked_add(size).ok_or(MapError::OutOfRange)?;
        if end > 1 << F::IN_BITS || out_end > 1 << F::OUT_BITS {
            return Err(MapError::OutOfRange);
        }
        let (mut gpa, mut hpa) = (gpa, hpa);
        while gpa < end {
            let page_shift = LEAF_SHIFTS
                .into_iter()
                .filter(|&s| s <= shift::<F>(0) && s <= largest)
                .find(|&s| {
                    let page = 1u64 << s;
                    (gpa | hpa) & (page - 1) == 0 && end - gpa >= page
                })
                .unwrap_or(12);
            self.map_one(alloc, gpa, hpa, page_shift, kind)?;
            gpa += 1 << page_shift;
            hpa += 1 << page_shift;
        }
        Ok(())
    }

    fn map_one(
        &mut self,
        alloc: &mut impl TableAllocator,
        gpa: u64,
        hpa: u64,
        page_shift: u32,
        kind: MemKind,
    ) -> Result<(), MapError> {
        let mut table: &mut Table = alloc.table_at(self.root);
        let mut depth = 0;
        while shift::<F>(depth) > page_shift {
            let s = shift::<F>(depth);
            let idx = (gpa >> s) as usize % ENTRIES;
            let entry = table[idx];
            if entry == 0 {
                let (next, _) = alloc.alloc_table().ok_or(MapError::NoMemory)?;
                table[idx] = F::table(next);
                table = alloc.table_at(next);
            } else if F::is_valid(entry) && F::is_table(entry, s) {
                table = alloc.table_at(F::addr(entry));
            } else {
                return Err(MapError::AlreadyMapped);
            }
            depth += 1;
        }
        let idx = (gpa >> page_shift) as usize % ENTRIES;
        if table[idx] != 0 {
            return Err(MapError::AlreadyMapped);
        }
        table[idx] = F::leaf(hpa, kind, page_shift);
        Ok(())
    }

    /// Walks the tables: the host address and kind `gpa` maps to and the
    /// size of the page that maps it, or `None` if unmapped.
    pub fn translate(
        &self,
        alloc: &mut impl TableAllocator,
        gpa: u64,
    ) -> Option<(u64, MemKind, u64)> {
        if gpa >> F::IN_BITS != 0 {
            return None;
        }
        let mut table = alloc.table_at(self.root);
        for depth in 0..F::LEVELS {
            let s = shift::<F>(depth);
            let entry = table[(gpa >> s) as usize % ENTRIES];
            if !F::is_valid(entry) {
                return None;
            }
            if s > 12 && F::is_table(entry, s) {
                table = alloc.table_at(F::addr(entry));
                continue;
            }
            if !LEAF_SHIFTS.contains(&s) {
                return None; // a leaf where the format allows none
            }
            let offset = gpa & ((1u64 << s) - 1);
            return Some((F::addr(entry) + offset, F::kind(entry), 1 << s));
        }
        None
    }
}

impl<F: Format> crate::arch::GuestMemory for PageTable<F> {
    fn new(alloc: &mut impl TableAllocator) -> Result<Self, MapError> {
        PageTable::new(alloc)
    }
    fn map(
        &mut self,
        alloc: &mut impl TableAllocator,
        gpa: u64,
        hpa: u64,
        size: u64,
        kind: MemKind,
    ) -> Result<(), MapError> {
        PageTable::map(self, alloc, gpa, hpa, size, kind)
    }
    fn root(&self) -> u64 {
        PageTable::root(self)
    }
}

/// Tables in host memory for unit tests, with fake physical addresses
/// 0x1000 apart.
#[cfg(test)]
#[derive(Default)]
pub struct HostTables(pub alloc::vec::Vec<*mut Table>);

#[cfg(test)]
impl TableAllocator for HostTables {
    fn alloc_table(&mut self) -> Option<(u64, &'static mut Table)> {
        let t: *mut Table = alloc::boxed::Box::leak(alloc::boxed::Box::new([0; ENTRIES]));
        self.0.push(t);
        // SAFETY: the table was just leaked and only this test uses it.
        Some((self.0.len() as u64 * 0x1000, unsafe { &mut *t }))
    }
    fn table_at(&mut self, pa: u64) -> &'static mut Table {
        // SAFETY: test tables are leaked and only used by this test.
        unsafe { &mut *self.0[(pa / 0x1000 - 1) as usize] }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A toy 3-level format: bit 0 valid, bit 1 table, bit 2 device.
    struct Toy;
    impl Format for Toy {
        const LEVELS: u32 = 3;
        const IN_BITS: u32 = 39;
        const OUT_BITS: u32 = 40;
        fn leaf(pa: u64, kind: MemKind, _: u32) -> u64 {
            pa | 1 | u64::from(kind == MemKind::Device) << 2
        }
        fn table(pa: u64) -> u64 {
            pa | 0b11
        }
        fn is_valid(entry: u64) -> bool {
            entry & 1 != 0
        }
        fn is_table(entry: u64, _: u32) -> bool {
            entry & 2 != 0
        }
        fn addr(entry: u64) -> u64 {
            entry & !0xfff
        }
        fn kind(entry: u64) -> MemKind {
            if entry & 4 != 0 {
                MemKind::Device
            } else {
                MemKind::Normal
            }
        }
    }

    #[test]
    fn blocks_where_alignment_allows_and_pages_elsewhere() {
        let mut t = HostTables::default();
        let mut pt = PageTable::<Toy>::new(&mut t).unwrap();
        let size = (1 << 30) + (2 << 20) + 0x1000;
        pt.map(&mut t, 0x4000_0000, 0x8000_0000, size, MemKind::Normal)
            .unwrap();
        assert_eq!(
            pt.translate(&mut t, 0x4000_1234),
            Some((0x8000_1234, MemKind::Normal, 1 << 30))
        );
        assert_eq!(
            pt.translate(&mut t, 0x8000_0010),
            Some((0xc000_0010, MemKind::Normal, 2 << 20))
        );
        assert_eq!(
            pt.translate(&mut t, 0x8020_0fff),
            Some((0xc020_0fff, MemKind::Normal, 0x1000))
        );
        assert_eq!(pt.translate(&mut t, 0x8020_1000), None);
        // A root-level (1 GiB) leaf is the first table's entry 1.
        assert_eq!(t.table_at(pt.root())[1], 0x8000_0000 | 1);
    }

    #[test]
    fn misaligned_out_of_range_and_overlapping_maps_are_refused() {
        let mut t = HostTables::default();
        let mut pt = PageTable::<Toy>::new(&mut t).unwrap();
        assert_eq!(
            pt.map(&mut t, 0x1000, 0x2001, 0x1000, MemKind::Normal),
            Err(MapError::Misaligned)
        );
        assert_eq!(
            pt.map(&mut t, 1 << 39, 0, 0x1000, MemKind::Normal),
            Err(MapError::OutOfRange)
        );
        assert_eq!(
            pt.map(&mut t, 0, 1 << 40, 0x1000, MemKind::Normal),
            Err(MapError::OutOfRange)
        );
        pt.map(&mut t, 0, 0, 0x20_0000, MemKind::Device).unwrap();
        assert_eq!(
            pt.map(&mut t, 0x1000, 0x1000, 0x1000, MemKind::Normal),
            Err(MapError::AlreadyMapped)
        );
        // Under an existing 2 MiB block, and over existing 4 KiB pages.
        pt.map(&mut t, 0x40_0000, 0, 0x1000, MemKind::Normal)
            .unwrap();
        assert_eq!(
            pt.map(&mut t, 0x40_0000, 0, 0x20_0000, MemKind::Normal),
            Err(MapError::AlreadyMapped)
        );
        assert_eq!(
            pt.translate(&mut t, 0x1234),
            Some((0x1234, MemKind::Device, 2 << 20))
        );
    }
}
