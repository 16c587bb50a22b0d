//! Changing the stage 2 of a VM that may be running (channels allocated at
//! run time): mapping pages in, and taking them out with the TLB
//! invalidation that needs, for any VM, from whichever core asks.
//!
//! Edits are serialised by one lock (two cores may change the same VM's
//! tables, or tables sharing an upper level). Only invalid ↔ valid
//! level-3 entries change, never a block or a table descriptor in use, so
//! no break-before-make sequence beyond "invalidate, then TLBI" is needed.

use super::stage2::{MapError, MemKind, Stage2, Table, TableAllocator};
use crate::mm::heap::HeapTables;
use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{Readable, Writeable, VTTBR_EL2};
use spin::Mutex;

static EDIT: Mutex<()> = Mutex::new(());

/// Heap tables whose zeroing is visible to other cores' table walks before
/// the descriptor that links them in.
struct LiveTables;

impl TableAllocator for LiveTables {
    fn alloc_table(&mut self) -> Option<(u64, &'static mut Table)> {
        let t = HeapTables.alloc_table();
        // SAFETY: a barrier only: orders the table's zeroing before the
        // store that publishes it.
        unsafe { core::arch::asm!("dsb ishst", options(nostack)) };
        t
    }

    fn table_at(&mut self, pa: u64) -> &'static mut Table {
        HeapTables.table_at(pa)
    }
}

/// Maps host `[hpa, hpa + size)` as normal read-write memory at guest
/// `[gpa, gpa + size)` of the stage 2 rooted at `root`, in 4 KiB pages;
/// visible to the VM's table walks on return.
pub fn map(root: u64, gpa: u64, hpa: u64, size: u64) -> Result<(), MapError> {
    let _edit = EDIT.lock();
    let r = Stage2::from_root(root).map_pages(&mut LiveTables, gpa, hpa, size, MemKind::Normal);
    // SAFETY: a barrier only: the new entries reach the walkers.
    unsafe { core::arch::asm!("dsb ishst", options(nostack)) };
    r
}

/// Unmaps guest `[gpa, gpa + size)` (mapped by [`map`]) from the stage 2
/// rooted at `root`, whose VMID is `vmid`, and invalidates that VMID's
/// stage-1 and stage-2 TLB entries on every core of the inner-shareable
/// domain: on return no core can reach the pages through that VM.
pub fn unmap(vmid: u16, root: u64, gpa: u64, size: u64) -> Result<(), MapError> {
    let _edit = EDIT.lock();
    let r = Stage2::from_root(root).unmap_pages(&mut LiveTables, gpa, size);
    // The TLBI acts on the VMID in VTTBR_EL2: borrow it for the target VM.
    // EL2 runs with interrupts masked and the EL1&0 regime is not in use
    // on this core while it is in EL2, so nothing runs under the borrowed
    // VMID; the caller's own is back before the core returns to its guest.
    let own = VTTBR_EL2.get();
    VTTBR_EL2.set(u64::from(vmid) << 48 | root);
    barrier::isb(barrier::SY);
    // SAFETY: TLB maintenance for the borrowed VMID only; the barrier
    // before it makes the invalid entries visible to every walker first.
    unsafe {
        core::arch::asm!(
            "dsb ishst",
            "tlbi vmalls12e1is",
            "dsb ish",
            options(nostack)
        )
    };
    VTTBR_EL2.set(own);
    barrier::isb(barrier::SY);
    r
}
