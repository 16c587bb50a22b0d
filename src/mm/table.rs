//! What every guest page-table format shares (Arm stage 2, x86 EPT): 4 KiB
//! tables of 512 64-bit entries from a [`TableAllocator`], the kinds of
//! mapping, and the errors of building them. Building is pure, so host unit
//! tests build and walk real tables of both formats in ordinary memory.

/// Entries per table.
pub const ENTRIES: usize = 512;
/// Page size.
pub const PAGE_SIZE: u64 = 4096;

/// What a mapping is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemKind {
    /// Normal write-back RAM, executable.
    Normal,
    /// Device memory (Device-nGnRE on Arm, uncacheable on x86), never
    /// executable.
    Device,
    /// Normal write-back memory the guest may read but not write or
    /// execute (a `ro` view of an inter-VM channel): a write is a stage-2
    /// (EPT) permission fault.
    NormalReadOnly,
}

/// One translation table.
pub type Table = [u64; ENTRIES];

/// Supplies zeroed, page-aligned tables and tells their physical address.
pub trait TableAllocator {
    /// A new zeroed table and its physical address.
    fn alloc_table(&mut self) -> Option<(u64, &'static mut Table)>;
    /// The table at physical address `pa` (one this allocator returned).
    fn table_at(&mut self, pa: u64) -> &'static mut Table;
}

/// Errors while mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapError {
    /// Addresses or size not 4 KiB aligned.
    Misaligned,
    /// Range beyond the guest-physical space the format translates.
    OutOfRange,
    /// An address in the range is mapped already.
    AlreadyMapped,
    /// No memory for a table.
    NoMemory,
}
