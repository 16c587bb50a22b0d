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
pub fn clean_invalidate_to_poc(addr: u64, size: u64) {
    let line = dcache_line_size();
    let mut p = addr & !(line - 1);
    while p < addr + size {
        // SAFETY: maintenance on memory the hypervisor maps; no data changes.
        unsafe { core::arch::asm!("dc civac, {}", in(reg) p) };
        p += line;
    }
    // SAFETY: barriers and instruction-cache invalidation only.
    unsafe { core::arch::asm!("dsb sy", "ic ialluis", "dsb sy", "isb") };
}
