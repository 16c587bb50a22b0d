//! The page tables the hypervisor writes for a guest entered in 64-bit
//! mode: the first 1 GiB of guest-physical memory identity-mapped with
//! 2 MiB pages (read/write/execute, supervisor), in three 4 KiB tables at
//! the top of the RAM region that holds the entry point. The guest may
//! replace them; see docs/X86.md for the entry state.

/// Bytes the tables take at the top of the boot region.
pub const TABLES_SIZE: u64 = 3 * 0x1000;

/// Present, writable.
const PRESENT_WRITABLE: u64 = 0b11;
/// Page-size bit of a PD entry (2 MiB page).
const PAGE_SIZE_2M: u64 = 1 << 7;

/// The three tables (PML4, PDPT, PD) for tables placed at guest-physical
/// `base`; CR3 is `base`.
pub fn identity_1gib(base: u64) -> [[u64; 512]; 3] {
    let mut t = [[0u64; 512]; 3];
    t[0][0] = (base + 0x1000) | PRESENT_WRITABLE;
    t[1][0] = (base + 0x2000) | PRESENT_WRITABLE;
    for (i, e) in t[2].iter_mut().enumerate() {
        *e = (i as u64) << 21 | PAGE_SIZE_2M | PRESENT_WRITABLE;
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_the_first_gib_one_to_one() {
        let t = identity_1gib(0xffd000);
        assert_eq!(t[0][0], 0xffe003);
        assert_eq!(t[1][0], 0xfff003);
        assert_eq!(t[0][1..], [0; 511]);
        assert_eq!(t[2][0], 0x83);
        assert_eq!(t[2][511], 0x3fe0_0083);
    }
}
