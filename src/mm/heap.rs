//! The hypervisor heap (buddy allocator) over the part of the reserved
//! hypervisor region after the image, and page-aligned table frames from it.

use crate::arch::{Table, TableAllocator, TABLE_ENTRIES};
use alloc::alloc::{alloc_zeroed, Layout};
use buddy_system_allocator::LockedHeap;

#[global_allocator]
static HEAP: LockedHeap<32> = LockedHeap::empty();

/// Gives `[start, end)` to the heap.
///
/// # Safety
/// The range must be RAM the hypervisor maps read-write and nothing else
/// uses, ever; called once.
pub unsafe fn init(start: u64, end: u64) {
    // SAFETY: upheld by the caller.
    unsafe { HEAP.lock().init(start as usize, (end - start) as usize) };
}

/// Bytes the heap has handed out and can still hand out.
pub fn usage() -> (usize, usize) {
    let h = HEAP.lock();
    (
        h.stats_alloc_actual(),
        h.stats_total_bytes() - h.stats_alloc_actual(),
    )
}

/// Translation tables from the heap; physical = virtual (identity map).
pub struct HeapTables;

impl TableAllocator for HeapTables {
    fn alloc_table(&mut self) -> Option<(u64, &'static mut Table)> {
        let layout = Layout::from_size_align(TABLE_ENTRIES * 8, 4096).ok()?;
        // SAFETY: non-zero size layout.
        let p = unsafe { alloc_zeroed(layout) } as *mut Table;
        if p.is_null() {
            return None;
        }
        // SAFETY: freshly allocated, aligned, zeroed, never freed.
        Some((p as u64, unsafe { &mut *p }))
    }

    fn table_at(&mut self, pa: u64) -> &'static mut Table {
        // SAFETY: `pa` came from alloc_table (identity mapped, never freed);
        // tables are only built by one core before the VM runs.
        unsafe { &mut *(pa as *mut Table) }
    }
}
