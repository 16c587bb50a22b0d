//! The hypervisor's own EL2 translation, installed from the map
//! [`super::el2_map`] builds: every RAM bank of the board (guest RAM too)
//! read-write and never executable, the low 4 GiB outside RAM as device
//! memory, the image's text read-only and executable, its rodata read-only,
//! a guard page under each stack; SCTLR_EL2.WXN on. Identity mapping lets
//! the hypervisor reach guest RAM (image loading, instruction fetch for
//! MMIO decoding) by its physical address.

use super::boot;
use super::el2_map::{self, Builder, Table, ENTRIES, VA_BITS};
use crate::config::{MemRange, SYSTEM};
use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::*;
use core::cell::UnsafeCell;

// A board whose RAM the map cannot cover fails the build, not the boot.
const _: () = assert!(
    el2_map::board_fits(SYSTEM.board.memory),
    "a RAM bank of the board is not page aligned or lies above 512 GiB: the EL2 map cannot cover it"
);

/// Tables for the configured board: enough by construction
/// ([`el2_map::tables_bound`]).
const TABLES: usize = el2_map::tables_bound(SYSTEM.board.memory, SYSTEM.board.hypervisor);

#[repr(C, align(4096))]
struct Pool([Table; TABLES]);

struct PoolCell(UnsafeCell<Pool>);
// SAFETY: written once by the boot core before any other core starts, then
// only read by the MMU.
unsafe impl Sync for PoolCell {}

static POOL: PoolCell = PoolCell(UnsafeCell::new(Pool([[0; ENTRIES]; TABLES])));

/// Builds the EL2 map for a board with the given RAM banks.
///
/// # Safety
/// Boot core only, once, before [`enable`] on any core: the tables are
/// written in place, under any MMU already walking them.
pub unsafe fn build(ram: &[MemRange]) {
    // SAFETY: per the contract, single-threaded boot and no core has
    // enabled its MMU on these tables yet, so nothing reads them
    // concurrently.
    let pool = unsafe { &mut (*POOL.0.get()).0 };
    let pa = pool.as_ptr() as u64;
    let built = Builder::new(pool, pa)
        .and_then(|mut b| el2_map::build_map(&mut b, ram, &boot::image_layout()));
    if let Err(e) = built {
        // The build-time bound makes this unreachable; no console exists yet.
        panic!("EL2 map: {:?}", e);
    }
}

/// Turns on this core's EL2 MMU and caches with the tables from [`build`],
/// with writable-implies-never-executable.
pub fn enable() {
    MAIR_EL2.write(
        MAIR_EL2::Attr0_Device::nonGathering_nonReordering_EarlyWriteAck
            + MAIR_EL2::Attr1_Normal_Outer::WriteBack_NonTransient_ReadWriteAlloc
            + MAIR_EL2::Attr1_Normal_Inner::WriteBack_NonTransient_ReadWriteAlloc,
    );
    // A 39-bit space starting at level 1. RES1 bits 31 and 23.
    TCR_EL2.set(
        (TCR_EL2::T0SZ.val(64 - VA_BITS as u64)
            + TCR_EL2::IRGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable
            + TCR_EL2::ORGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable
            + TCR_EL2::SH0::Inner
            + TCR_EL2::TG0::KiB_4
            + TCR_EL2::PS::Bits_40)
            .value
            | 1 << 31
            | 1 << 23,
    );
    // SAFETY: reading the address of the static tables.
    let root = unsafe { (*POOL.0.get()).0.as_ptr() as u64 };
    TTBR0_EL2.set_baddr(root);
    barrier::dsb(barrier::ISH);
    // SAFETY: TLB maintenance has no memory-safety effect.
    unsafe { core::arch::asm!("tlbi alle2", "dsb nsh", "isb") };
    SCTLR_EL2.modify(
        SCTLR_EL2::M::Enable
            + SCTLR_EL2::C::Cacheable
            + SCTLR_EL2::I::Cacheable
            + SCTLR_EL2::A::Disable
            + SCTLR_EL2::WXN::Enable,
    );
    barrier::isb(barrier::SY);
}

/// Whether the EL2 stage-1 translation of `va` for a read (or a write)
/// succeeds, asked of the MMU itself (AT S1E2R/W). Uses PAR_EL1: boot only,
/// before any guest owns it.
fn translates(va: u64, write: bool) -> bool {
    // SAFETY: address translation only, result in PAR_EL1.
    unsafe {
        if write {
            core::arch::asm!("at s1e2w, {}", "isb", in(reg) va, options(nostack));
        } else {
            core::arch::asm!("at s1e2r, {}", "isb", in(reg) va, options(nostack));
        }
    }
    PAR_EL1.get() & 1 == 0
}

/// Checks, with the MMU's own translation, that the protections took
/// effect: text and rodata refuse writes, every stack guard page refuses
/// reads, data accepts writes, and SCTLR_EL2.WXN is on (so nothing writable
/// executes). Returns the number of guard pages checked.
pub fn check_protection() -> Result<usize, &'static str> {
    let image = boot::image_layout();
    if SCTLR_EL2.read(SCTLR_EL2::WXN) != 1 {
        return Err("SCTLR_EL2.WXN is off");
    }
    if !translates(image.text.base, false) || translates(image.text.base, true) {
        return Err("text is not read-only");
    }
    if !translates(image.rodata.base, false) || translates(image.rodata.base, true) {
        return Err("rodata is not read-only");
    }
    let data = POOL.0.get() as u64;
    if !translates(data, true) {
        return Err("data is not writable");
    }
    for i in 0..image.stacks {
        let guard = image.first_guard + i as u64 * image.guard_stride;
        if translates(guard, false) || !translates(guard + el2_map::PAGE, true) {
            return Err("a stack guard page is mapped, or its stack is not");
        }
    }
    Ok(image.stacks)
}
