//! The hypervisor's own EL2 stage-1 map, built as data (`mmu.rs` installs
//! it). Identity-mapped, 39-bit VA from level 1, 4 KiB granule:
//!
//! - the low 4 GiB outside RAM: Device-nGnRE, never executable;
//! - every RAM bank of the board, at any address below 512 GiB: normal
//!   write-back memory, read-write, never executable (guest RAM included),
//!   in 1 GiB blocks where aligned, 2 MiB blocks or 4 KiB pages at the edges;
//! - over that, the image: text read-only and executable, rodata read-only,
//!   and an unmapped guard page under each CPU stack.
//!
//! With SCTLR_EL2.WXN on as well, no EL2 mapping is both writable and
//! executable. Pure: host tests build maps into a plain array and walk them.

use crate::config::MemRange;

/// Translation granule and page size.
pub const PAGE: u64 = 1 << 12;
/// Entries per table.
pub const ENTRIES: usize = 512;
/// Virtual (= physical) address bits covered: TCR_EL2.T0SZ = 64 - 39.
pub const VA_BITS: u32 = 39;
/// The low window mapped as device memory wherever there is no RAM.
pub const DEVICE_WINDOW_END: u64 = 4 << 30;

/// One translation table.
pub type Table = [u64; ENTRIES];

/// How a range is mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attr {
    /// Normal memory, read-only, executable: the hypervisor's text.
    Text,
    /// Normal memory, read-only, never executable.
    ReadOnly,
    /// Normal memory, read-write, never executable.
    ReadWrite,
    /// Device-nGnRE, read-write, never executable.
    Device,
    /// No mapping (guard pages).
    Unmapped,
}

/// Why a map cannot be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapError {
    /// A range is not page aligned.
    Unaligned {
        /// Start of the range.
        base: u64,
    },
    /// A range reaches beyond the 39-bit map.
    OutOfRange {
        /// End of the range.
        end: u64,
    },
    /// The table pool is too small (a bug: [`tables_bound`] sizes it).
    OutOfTables,
}

// Descriptor fields (Arm ARM D8.3, EL2 single-range regime).
const VALID: u64 = 1 << 0;
/// Table at levels 1-2, page at level 3 (clear: block).
const TABLE_OR_PAGE: u64 = 1 << 1;
const ATTR_DEVICE: u64 = 0 << 2;
const ATTR_NORMAL: u64 = 1 << 2;
/// AP[1] is RES1 in a single-privilege regime; AP[2] set = read-only.
const AP_RW: u64 = 0b01 << 6;
const AP_RO: u64 = 0b11 << 6;
const SH_OUTER: u64 = 0b10 << 8;
const SH_INNER: u64 = 0b11 << 8;
const AF: u64 = 1 << 10;
const XN: u64 = 1 << 54;
const ADDR_MASK: u64 = 0x0000_ffff_ffff_f000;
/// Attribute bits a block passes to the pages it is split into.
const ATTR_MASK: u64 = !ADDR_MASK & !(VALID | TABLE_OR_PAGE);

/// MAIR_EL2 index 0 is Device-nGnRE, index 1 normal write-back (`mmu.rs`).
fn leaf(addr: u64, attr: Attr, level: u32) -> u64 {
    let kind = if level == 3 { TABLE_OR_PAGE } else { 0 };
    let bits = match attr {
        Attr::Text => ATTR_NORMAL | SH_INNER | AP_RO,
        Attr::ReadOnly => ATTR_NORMAL | SH_INNER | AP_RO | XN,
        Attr::ReadWrite => ATTR_NORMAL | SH_INNER | AP_RW | XN,
        Attr::Device => ATTR_DEVICE | SH_OUTER | AP_RW | XN,
        Attr::Unmapped => return 0,
    };
    VALID | kind | AF | bits | addr & ADDR_MASK
}

const fn shift(level: u32) -> u32 {
    12 + 9 * (3 - level)
}

/// Builds a map into a pool of tables; table 0 is the level-1 root.
pub struct Builder<'a> {
    tables: &'a mut [Table],
    used: usize,
    /// Physical address of `tables[0]` (tables are identity-mapped).
    pa: u64,
}

impl<'a> Builder<'a> {
    /// A builder over `tables` (zeroed), which live at physical address `pa`.
    pub fn new(tables: &'a mut [Table], pa: u64) -> Result<Self, MapError> {
        if tables.is_empty() {
            return Err(MapError::OutOfTables);
        }
        tables[0] = [0; ENTRIES];
        Ok(Self {
            tables,
            used: 1,
            pa,
        })
    }

    /// Physical address of the root table (TTBR0_EL2).
    pub fn root(&self) -> u64 {
        self.pa
    }

    /// Tables used so far.
    pub fn tables_used(&self) -> usize {
        self.used
    }

    /// Maps `[base, base + size)` with `attr`, replacing what was there.
    pub fn map(&mut self, base: u64, size: u64, attr: Attr) -> Result<(), MapError> {
        if !base.is_multiple_of(PAGE) || !size.is_multiple_of(PAGE) {
            return Err(MapError::Unaligned { base });
        }
        let end = base
            .checked_add(size)
            .ok_or(MapError::OutOfRange { end: u64::MAX })?;
        if end > 1 << VA_BITS {
            return Err(MapError::OutOfRange { end });
        }
        if size == 0 {
            return Ok(());
        }
        self.map_in(0, 1, base, end, attr)
    }

    fn table_index(&self, desc: u64) -> usize {
        ((desc & ADDR_MASK) - self.pa) as usize / PAGE as usize
    }

    fn alloc(&mut self, fill_from: u64, level: u32) -> Result<usize, MapError> {
        let i = self.used;
        let t = self.tables.get_mut(i).ok_or(MapError::OutOfTables)?;
        // A valid block is split into the same mapping one level down.
        let child = 1u64 << shift(level + 1);
        for (n, e) in t.iter_mut().enumerate() {
            *e = if fill_from & VALID != 0 {
                let addr = (fill_from & ADDR_MASK) + n as u64 * child;
                let kind = if level + 1 == 3 { TABLE_OR_PAGE } else { 0 };
                VALID | kind | fill_from & ATTR_MASK | addr
            } else {
                0
            };
        }
        self.used += 1;
        Ok(i)
    }

    fn map_in(
        &mut self,
        table: usize,
        level: u32,
        start: u64,
        end: u64,
        attr: Attr,
    ) -> Result<(), MapError> {
        let size = 1u64 << shift(level);
        let mut va = start;
        while va < end {
            let idx = (va >> shift(level)) as usize % ENTRIES;
            let entry_base = va & !(size - 1);
            let chunk_end = end.min(entry_base + size);
            let cur = self.tables[table][idx];
            let is_table = level < 3 && cur & (VALID | TABLE_OR_PAGE) == VALID | TABLE_OR_PAGE;
            let whole = va == entry_base && chunk_end == entry_base + size;
            if whole && !is_table {
                self.tables[table][idx] = leaf(entry_base, attr, level);
            } else {
                let sub = if is_table {
                    self.table_index(cur)
                } else {
                    let t = self.alloc(cur, level)?;
                    self.tables[table][idx] = VALID | TABLE_OR_PAGE | (self.pa + t as u64 * PAGE);
                    t
                };
                self.map_in(sub, level + 1, va, chunk_end, attr)?;
            }
            va = chunk_end;
        }
        Ok(())
    }

    /// The attribute `addr` is mapped with, by walking the tables.
    pub fn lookup(&self, addr: u64) -> Attr {
        let mut table = 0;
        for level in 1..=3 {
            let d = self.tables[table][(addr >> shift(level)) as usize % ENTRIES];
            if d & VALID == 0 {
                return Attr::Unmapped;
            }
            if level < 3 && d & TABLE_OR_PAGE != 0 {
                table = self.table_index(d);
                continue;
            }
            return match (d & (0b111 << 2), d & AP_RO == AP_RO, d & XN != 0) {
                (ATTR_DEVICE, _, _) => Attr::Device,
                (_, true, false) => Attr::Text,
                (_, true, true) => Attr::ReadOnly,
                _ => Attr::ReadWrite,
            };
        }
        Attr::Unmapped
    }
}

/// Where the image's parts lie (from the linker script).
#[derive(Debug, Clone, Copy)]
pub struct ImageLayout {
    /// Executable text.
    pub text: MemRange,
    /// Read-only data.
    pub rodata: MemRange,
    /// First guard page; one every `guard_stride` bytes.
    pub first_guard: u64,
    /// Distance between guard pages (guard + stack).
    pub guard_stride: u64,
    /// Number of stacks, each with a guard page below it.
    pub stacks: usize,
}

impl ImageLayout {
    /// The stack slot whose guard page holds `addr`, if any (slot 0 is the
    /// boot core's stack, slot 1 + i CPU i's): names a stack overflow.
    pub fn guard_slot(&self, addr: u64) -> Option<usize> {
        let off = addr.checked_sub(self.first_guard)?;
        let slot = (off / self.guard_stride.max(1)) as usize;
        (slot < self.stacks && off % self.guard_stride.max(1) < PAGE).then_some(slot)
    }
}

/// Builds the whole EL2 map for RAM banks `ram` and the image `image`.
pub fn build_map(b: &mut Builder, ram: &[MemRange], image: &ImageLayout) -> Result<(), MapError> {
    b.map(0, DEVICE_WINDOW_END, Attr::Device)?;
    for bank in ram {
        b.map(bank.base, bank.size, Attr::ReadWrite)?;
    }
    b.map(image.text.base, image.text.size, Attr::Text)?;
    b.map(image.rodata.base, image.rodata.size, Attr::ReadOnly)?;
    for i in 0..image.stacks {
        b.map(
            image.first_guard + i as u64 * image.guard_stride,
            PAGE,
            Attr::Unmapped,
        )?;
    }
    Ok(())
}

/// Whether the map can cover `board`: every RAM bank page aligned and
/// below 2^39. Evaluated at compile time for the configured board.
pub const fn board_fits(ram: &[MemRange]) -> bool {
    let mut i = 0;
    while i < ram.len() {
        let r = ram[i];
        if !r.base.is_multiple_of(PAGE)
            || !r.size.is_multiple_of(PAGE)
            || r.base + r.size > 1 << VA_BITS
        {
            return false;
        }
        i += 1;
    }
    true
}

/// An upper bound on the tables [`build_map`] needs for RAM banks `ram`
/// and the hypervisor's reserved region `hyp` (compile
/// time, sizes the static pool): the root; per RAM bank, a level-2 and a
/// level-3 table at each unaligned end; the low device window's level-2
/// tables; and for the image, which lies inside the hypervisor's reserved
/// region, a level-3 table per 2 MiB of that region plus the level-2 tables
/// around it.
pub const fn tables_bound(ram: &[MemRange], hyp: MemRange) -> usize {
    let mut n = 1 + (DEVICE_WINDOW_END >> 30) as usize;
    n += 4 * ram.len();
    n += (hyp.size >> 30) as usize + 2;
    n += (hyp.size >> 21) as usize + 2;
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    const PA: u64 = 0x7000_0000;
    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    fn image() -> ImageLayout {
        ImageLayout {
            text: MemRange {
                base: 0x4020_0000,
                size: 0x3_0000,
            },
            rodata: MemRange {
                base: 0x4023_0000,
                size: 0x1_0000,
            },
            first_guard: 0x4030_0000,
            guard_stride: 0x1_1000,
            stacks: 9,
        }
    }

    fn build(ram: &[MemRange], pool: &mut Vec<Table>) -> Result<usize, MapError> {
        let mut b = Builder::new(pool, PA)?;
        build_map(&mut b, ram, &image())?;
        Ok(b.tables_used())
    }

    fn lookup(ram: &[MemRange], addr: u64) -> Attr {
        let mut pool = vec![[0u64; ENTRIES]; 64];
        let mut b = Builder::new(&mut pool, PA).unwrap();
        build_map(&mut b, ram, &image()).unwrap();
        b.lookup(addr)
    }

    const QEMU_1G: &[MemRange] = &[MemRange {
        base: 0x4000_0000,
        size: GIB,
    }];

    #[test]
    fn guard_slot_names_the_stack_an_address_overflowed() {
        let img = image();
        assert_eq!(img.guard_slot(0x4030_0000), Some(0), "boot stack's guard");
        assert_eq!(img.guard_slot(0x4030_0ff8), Some(0));
        assert_eq!(img.guard_slot(0x4030_1000), None, "stack 0 itself");
        assert_eq!(img.guard_slot(0x4031_1000 + 0xabc), Some(1), "CPU 0's");
        assert_eq!(img.guard_slot(0x4030_0000 + 8 * 0x1_1000), Some(8));
        assert_eq!(
            img.guard_slot(0x4030_0000 + 9 * 0x1_1000),
            None,
            "past the slots"
        );
        assert_eq!(img.guard_slot(0x402f_fff8), None, "below the first");
        assert_eq!(img.guard_slot(0), None);
        assert_eq!(img.guard_slot(u64::MAX), None);
    }

    #[test]
    fn qemu_virt_layout() {
        let ram = QEMU_1G;
        assert_eq!(lookup(ram, 0x0900_0000), Attr::Device, "UART");
        assert_eq!(lookup(ram, 0x080a_0000), Attr::Device, "GICR");
        assert_eq!(lookup(ram, 0x4000_0000), Attr::ReadWrite, "DTB, RAM");
        assert_eq!(lookup(ram, 0x4020_0000), Attr::Text);
        assert_eq!(lookup(ram, 0x4022_f000), Attr::Text);
        assert_eq!(lookup(ram, 0x4023_0000), Attr::ReadOnly);
        assert_eq!(lookup(ram, 0x4024_0000), Attr::ReadWrite, "data");
        assert_eq!(lookup(ram, 0x4030_0000), Attr::Unmapped, "guard 0");
        assert_eq!(lookup(ram, 0x4030_1000), Attr::ReadWrite, "stack 0");
        assert_eq!(lookup(ram, 0x4031_1000), Attr::Unmapped, "guard 1");
        assert_eq!(lookup(ram, 0x4030_0000 + 8 * 0x1_1000), Attr::Unmapped);
        assert_eq!(lookup(ram, 0x4030_0000 + 9 * 0x1_1000), Attr::ReadWrite);
        assert_eq!(lookup(ram, 0x4400_0000), Attr::ReadWrite, "guest RAM: XN");
        assert_eq!(lookup(ram, 0x7fff_f000), Attr::ReadWrite);
        assert_eq!(lookup(ram, 0x8000_0000), Attr::Device);
        assert_eq!(
            lookup(ram, 0x1_0000_0000),
            Attr::Unmapped,
            "above 4 GiB, no RAM"
        );
    }

    #[test]
    fn only_text_is_executable() {
        let ram = QEMU_1G;
        let mut addr = 0;
        while addr < 2 * GIB {
            let a = lookup(ram, addr);
            let in_text = (0x4020_0000..0x4023_0000).contains(&addr);
            assert_eq!(a == Attr::Text, in_text, "{addr:#x}: {a:?}");
            addr += if (0x4000_0000..0x4060_0000).contains(&addr) {
                PAGE
            } else {
                2 * MIB
            };
        }
    }

    #[test]
    fn ram_above_4_gib_uses_1_gib_blocks() {
        let ram = [
            MemRange {
                base: 0x4000_0000,
                size: GIB,
            },
            MemRange {
                base: 0x8_0000_0000,
                size: 8 * GIB,
            },
        ];
        let mut pool = vec![[0u64; ENTRIES]; 64];
        let used = build(&ram, &mut pool).unwrap();
        // Root, one L2 for the image's GiB, one L3 for the image's 2 MiB
        // blocks: the 8 GiB bank needs no tables of its own.
        assert_eq!(used, 3);
        assert_eq!(lookup(&ram, 0x8_0000_0000), Attr::ReadWrite);
        assert_eq!(lookup(&ram, 0x9_ffff_f000), Attr::ReadWrite);
        assert_eq!(lookup(&ram, 0xa_0000_0000), Attr::Unmapped);
        let root = &pool[0];
        let l1 = root[(0x8_0000_0000u64 >> 30) as usize];
        assert_eq!(l1 & 3, 1, "a 1 GiB block");
    }

    #[test]
    fn raspberry_pi_4_8gb_layout() {
        // configs/boards/rpi4-8g.toml: RAM from 0 below the VideoCore split,
        // up to the peripheral window, and 4 GiB above 4 GiB; the
        // hypervisor's region (and so the image) at the bottom.
        static PI: [MemRange; 3] = [
            MemRange {
                base: 0,
                size: 0x3b40_0000,
            },
            MemRange {
                base: GIB,
                size: 0xbc00_0000,
            },
            MemRange {
                base: 4 * GIB,
                size: 4 * GIB,
            },
        ];
        let hyp = MemRange {
            base: 0,
            size: 128 * MIB,
        };
        assert!(board_fits(&PI));
        let image = ImageLayout {
            text: MemRange {
                base: 0x20_0000,
                size: 0x3_0000,
            },
            rodata: MemRange {
                base: 0x23_0000,
                size: 0x1_0000,
            },
            first_guard: 0x30_0000,
            guard_stride: 0x1_1000,
            stacks: 9,
        };
        let mut pool = vec![[0u64; ENTRIES]; tables_bound(&PI, hyp)];
        let mut b = Builder::new(&mut pool, PA).unwrap();
        build_map(&mut b, &PI, &image).expect("the bound suffices");
        assert_eq!(b.lookup(0xd8), Attr::ReadWrite, "spin table");
        assert_eq!(b.lookup(0x10_0000), Attr::ReadWrite, "firmware DTB");
        assert_eq!(b.lookup(0x20_0000), Attr::Text);
        assert_eq!(b.lookup(0x3b3f_f000), Attr::ReadWrite);
        assert_eq!(b.lookup(0x3b40_0000), Attr::Device, "VideoCore's share");
        assert_eq!(b.lookup(0xfbff_f000), Attr::ReadWrite);
        assert_eq!(b.lookup(0xfe20_1000), Attr::Device, "UART0");
        assert_eq!(b.lookup(0xff84_1000), Attr::Device, "GIC-400");
        assert_eq!(b.lookup(0x1_0000_0000), Attr::ReadWrite, "above 4 GiB");
        assert_eq!(b.lookup(0x1_ffff_f000), Attr::ReadWrite);
        assert_eq!(b.lookup(0x2_0000_0000), Attr::Unmapped);
    }

    #[test]
    fn unaligned_bank_edges_use_smaller_blocks() {
        let ram = [MemRange {
            base: 0x1_0020_0000,
            size: GIB + 0x5000,
        }];
        let mut pool = vec![[0u64; ENTRIES]; 64];
        assert!(build(&ram, &mut pool).is_ok());
        assert_eq!(lookup(&ram, 0x1_001f_f000), Attr::Unmapped);
        assert_eq!(lookup(&ram, 0x1_0020_0000), Attr::ReadWrite);
        assert_eq!(lookup(&ram, 0x1_4020_4000), Attr::ReadWrite);
        assert_eq!(lookup(&ram, 0x1_4020_5000), Attr::Unmapped);
    }

    #[test]
    fn errors() {
        let mut pool = vec![[0u64; ENTRIES]; 64];
        let mut b = Builder::new(&mut pool, PA).unwrap();
        assert_eq!(
            b.map(0x1001, PAGE, Attr::Device),
            Err(MapError::Unaligned { base: 0x1001 })
        );
        assert_eq!(
            b.map(1 << 39, PAGE, Attr::ReadWrite),
            Err(MapError::OutOfRange {
                end: (1 << 39) + PAGE
            })
        );
        let mut tiny = vec![[0u64; ENTRIES]; 2];
        assert_eq!(build(QEMU_1G, &mut tiny), Err(MapError::OutOfTables));
    }

    #[test]
    fn bound_covers_what_is_used() {
        let hyp = MemRange {
            base: 0x4000_0000,
            size: 64 * MIB,
        };
        static ODD: [MemRange; 2] = [
            MemRange {
                base: 0x4000_0000,
                size: GIB,
            },
            MemRange {
                base: 0x1_0020_0000,
                size: GIB + 0x5000,
            },
        ];
        for ram in [QEMU_1G, &ODD[..]] {
            assert!(board_fits(ram));
            let mut pool = vec![[0u64; ENTRIES]; tables_bound(ram, hyp)];
            build(ram, &mut pool).expect("the bound suffices");
        }
        static HIGH: [MemRange; 1] = [MemRange {
            base: 0x80_0000_0000,
            size: GIB,
        }];
        assert!(!board_fits(&HIGH), "RAM above 512 GiB is refused");
    }
}
