//! Guest linear → guest-physical translation through the guest's own
//! 4-level page tables, for emulation that reads guest memory (string
//! I/O). Every table read goes through `read_gpa`, which answers `None`
//! for anything outside the VM's RAM, so a hostile CR3 or entry can only
//! make the walk fail.

/// Present.
const P: u64 = 1 << 0;
/// Page size (at the PDPT: 1 GiB, at the PD: 2 MiB).
const PS: u64 = 1 << 7;
/// Address bits 51:12 of an entry.
const ADDR: u64 = 0x000f_ffff_ffff_f000;

/// Why a translation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalkError {
    /// An entry on the way is not present (the guest would take #PF).
    NotPresent,
    /// A table lies outside the VM's RAM.
    TableOutsideRam,
}

/// The guest-physical address of linear `la` under 4-level paging with
/// PML4 at `cr3`. `read_gpa(gpa)` reads the 8-byte entry at `gpa`.
pub fn translate(
    cr3: u64,
    la: u64,
    mut read_gpa: impl FnMut(u64) -> Option<u64>,
) -> Result<u64, WalkError> {
    let mut table = cr3 & ADDR;
    for level in (1..=4u32).rev() {
        let shift = 12 + 9 * (level - 1);
        let index = (la >> shift) & 0x1ff;
        let entry = read_gpa(table + index * 8).ok_or(WalkError::TableOutsideRam)?;
        if entry & P == 0 {
            return Err(WalkError::NotPresent);
        }
        if level == 1 || (entry & PS != 0 && (level == 2 || level == 3)) {
            let page_mask = (1u64 << shift) - 1;
            return Ok((entry & ADDR & !page_mask) | (la & page_mask));
        }
        table = entry & ADDR;
    }
    Err(WalkError::NotPresent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::x86_64::guest_paging::identity_1gib;
    use alloc::collections::BTreeMap;

    /// Guest memory as a map of 8-byte words; only `ram` is readable.
    fn memory(
        tables: &[(u64, [u64; 512])],
        ram: core::ops::Range<u64>,
    ) -> impl FnMut(u64) -> Option<u64> {
        let mut words = BTreeMap::new();
        for (base, t) in tables {
            for (i, e) in t.iter().enumerate() {
                words.insert(base + 8 * i as u64, *e);
            }
        }
        move |gpa| {
            ram.contains(&gpa)
                .then(|| words.get(&gpa).copied().unwrap_or(0))
        }
    }

    #[test]
    fn identity_tables_translate_one_to_one() {
        let base = 0xffd000;
        let [pml4, pdpt, pd] = identity_1gib(base);
        let tables = [(base, pml4), (base + 0x1000, pdpt), (base + 0x2000, pd)];
        let mut mem = memory(&tables, 0..0x100_0000);
        assert_eq!(translate(base, 0x20_1234, &mut mem), Ok(0x20_1234));
        assert_eq!(translate(base, 0x3fff_ffff, &mut mem), Ok(0x3fff_ffff));
        assert_eq!(
            translate(base, 0x4000_0000, &mut mem),
            Err(WalkError::NotPresent)
        );
    }

    #[test]
    fn four_kib_pages_and_tables_outside_ram() {
        // PML4 at 0x1000 -> PDPT 0x2000 -> PD 0x3000 -> PT 0x4000: 4 KiB
        // page at linear 0x40_5000 -> 0x9000.
        let mut pml4 = [0; 512];
        let mut pdpt = [0; 512];
        let mut pd = [0; 512];
        let mut pt = [0; 512];
        pml4[0] = 0x2000 | P;
        pdpt[0] = 0x3000 | P;
        pd[2] = 0x4000 | P;
        pt[5] = 0x9000 | P;
        pd[3] = 0x7777_0000 | P; // a page table outside RAM
        let tables = [(0x1000, pml4), (0x2000, pdpt), (0x3000, pd), (0x4000, pt)];
        let mut mem = memory(&tables, 0..0x10_0000);
        assert_eq!(translate(0x1000, 0x40_5abc, &mut mem), Ok(0x9abc));
        assert_eq!(
            translate(0x1000, 0x40_6000, &mut mem),
            Err(WalkError::NotPresent)
        );
        assert_eq!(
            translate(0x1000, 0x60_0000, &mut mem),
            Err(WalkError::TableOutsideRam)
        );
        // A CR3 outside RAM.
        assert_eq!(
            translate(0x8000_0000, 0, &mut mem),
            Err(WalkError::TableOutsideRam)
        );
    }
}
