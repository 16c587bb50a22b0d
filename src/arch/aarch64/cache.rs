//! Cache maintenance by virtual address (identity-mapped, so = PA).

fn dcache_line_size() -> u64 {
    let ctr: u64;
    // SAFETY: CTR_EL0 is a read-only ID register.
    unsafe { core::arch::asm!("mrs {}, ctr_el0", out(reg) ctr) };
    4 << ((ctr >> 16) & 0xf)
}

/// Cleans and invalidates `[addr, addr + size)` to the point of coherency,
/// so a guest running with its MMU (and so its caches) off sees what the
/// hypervisor wrote, and no dirty line of ours later overwrites its data.
///
/// # Safety
/// The range must be memory the EL2 map covers (else `DC CIVAC` faults at
/// EL2); RAM's contents do not change.
pub unsafe fn clean_invalidate_to_poc(addr: u64, size: u64) {
    let line = dcache_line_size();
    let mut p = addr & !(line - 1);
    while p < addr + size {
        // SAFETY: the caller vouches that the line is mapped; clean and
        // invalidate leaves its data as it was.
        unsafe { core::arch::asm!("dc civac, {}", in(reg) p) };
        p += line;
    }
    // SAFETY: barriers and instruction-cache invalidation only.
    unsafe { core::arch::asm!("dsb sy", "ic ialluis", "dsb sy", "isb") };
}

/// DCZID_EL0: DZP (bit 4) prohibits DC ZVA; BS (bits 3:0) is log2 of the
/// block size in 4-byte words.
const DCZID_DZP: u64 = 1 << 4;

/// Zeroes `[addr, addr + size)` (RAM the hypervisor maps, page-aligned),
/// with DC ZVA blocks where the CPU allows it: scrubbing a VM's RAM before
/// each (re)start costs one instruction per block instead of a store loop.
///
/// # Safety
/// The range must be RAM the hypervisor may overwrite (a VM's own memory
/// while none of its vCPUs runs).
pub unsafe fn zero(addr: u64, size: u64) {
    let dczid: u64;
    // SAFETY: DCZID_EL0 is a read-only ID register.
    unsafe { core::arch::asm!("mrs {}, dczid_el0", out(reg) dczid) };
    let block = 4u64 << (dczid & 0xf);
    if dczid & DCZID_DZP != 0 || !addr.is_multiple_of(block) || !size.is_multiple_of(block) {
        // SAFETY: upheld by the caller.
        unsafe { core::ptr::write_bytes(addr as *mut u8, 0, size as usize) };
        return;
    }
    let mut p = addr;
    while p < addr + size {
        // SAFETY: a block inside the caller's range.
        unsafe { core::arch::asm!("dc zva, {}", in(reg) p) };
        p += block;
    }
    // SAFETY: a barrier only.
    unsafe { core::arch::asm!("dsb ish") };
}
