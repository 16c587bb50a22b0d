//! The hypervisor's own EL2 translation: an identity map of the low 4 GiB in
//! 2 MiB blocks, board RAM as normal write-back memory and everything else
//! as Device-nGnRE. Identity mapping lets the hypervisor reach guest RAM
//! (image loading, instruction fetch for MMIO decoding) by its physical
//! address.

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::*;
use core::cell::UnsafeCell;
use tock_registers::{register_bitfields, LocalRegisterCopy};

use crate::config::MemRange;

register_bitfields! {u64,
    /// An EL2 stage-1 block or table descriptor (Arm ARM D8.3).
    S1_DESC [
        VALID OFFSET(0) NUMBITS(1) [],
        TYPE OFFSET(1) NUMBITS(1) [Block = 0, Table = 1],
        /// Index into MAIR_EL2.
        ATTR_INDX OFFSET(2) NUMBITS(3) [Device = 0, Normal = 1],
        /// Access permissions: EL2 read-write.
        AP OFFSET(6) NUMBITS(2) [ReadWrite = 0b00],
        SH OFFSET(8) NUMBITS(2) [OuterShareable = 0b10, InnerShareable = 0b11],
        AF OFFSET(10) NUMBITS(1) [],
        OUTPUT_ADDR OFFSET(12) NUMBITS(36) [],
        /// Execute-never (EL2 regime).
        XN OFFSET(54) NUMBITS(1) []
    ]
}

const GIB: u64 = 1 << 30;
const BLOCK_2M: u64 = 1 << 21;
/// Low 4 GiB covered by the map (enough for QEMU virt and the Pi 4's
/// peripherals; RAM above 4 GiB comes with a larger board).
const MAPPED_GIB: usize = 4;

#[repr(C, align(4096))]
struct Tables {
    l1: [u64; 512],
    l2: [[u64; 512]; MAPPED_GIB],
}

struct TableCell(UnsafeCell<Tables>);
// SAFETY: written once by the boot core before any other core starts.
unsafe impl Sync for TableCell {}

static TABLES: TableCell = TableCell(UnsafeCell::new(Tables {
    l1: [0; 512],
    l2: [[0; 512]; MAPPED_GIB],
}));

fn block(addr: u64, normal: bool) -> u64 {
    let mut d = LocalRegisterCopy::<u64, S1_DESC::Register>::new(0);
    let attrs = if normal {
        S1_DESC::ATTR_INDX::Normal + S1_DESC::SH::InnerShareable
    } else {
        S1_DESC::ATTR_INDX::Device + S1_DESC::SH::OuterShareable + S1_DESC::XN::SET
    };
    d.write(
        S1_DESC::VALID::SET
            + S1_DESC::TYPE::Block
            + S1_DESC::AP::ReadWrite
            + S1_DESC::AF::SET
            + attrs
            + S1_DESC::OUTPUT_ADDR.val(addr >> 12),
    );
    d.get()
}

/// Builds the identity map for a board with the given RAM banks. Boot core
/// only, before [`enable`] on any core.
pub fn build(ram: &[MemRange]) {
    // SAFETY: single-threaded boot; no core has enabled its MMU on these
    // tables yet, so nothing reads them concurrently.
    let t = unsafe { &mut *TABLES.0.get() };
    for (gib, l2) in t.l2.iter_mut().enumerate() {
        for (i, entry) in l2.iter_mut().enumerate() {
            let addr = gib as u64 * GIB + i as u64 * BLOCK_2M;
            let normal = ram.iter().any(|r| addr >= r.base && addr < r.end());
            *entry = block(addr, normal);
        }
        let mut d = LocalRegisterCopy::<u64, S1_DESC::Register>::new(0);
        d.write(
            S1_DESC::VALID::SET
                + S1_DESC::TYPE::Table
                + S1_DESC::OUTPUT_ADDR.val(l2.as_ptr() as u64 >> 12),
        );
        t.l1[gib] = d.get();
    }
}

/// Turns on this core's EL2 MMU and caches with the tables from [`build`].
pub fn enable() {
    MAIR_EL2.write(
        MAIR_EL2::Attr0_Device::nonGathering_nonReordering_EarlyWriteAck
            + MAIR_EL2::Attr1_Normal_Outer::WriteBack_NonTransient_ReadWriteAlloc
            + MAIR_EL2::Attr1_Normal_Inner::WriteBack_NonTransient_ReadWriteAlloc,
    );
    // T0SZ = 25: a 39-bit space starting at level 1. RES1 bits 31 and 23.
    TCR_EL2.set(
        (TCR_EL2::T0SZ.val(25)
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
    let l1 = unsafe { (*TABLES.0.get()).l1.as_ptr() as u64 };
    TTBR0_EL2.set_baddr(l1);
    barrier::dsb(barrier::ISH);
    // SAFETY: TLB maintenance has no memory-safety effect.
    unsafe { core::arch::asm!("tlbi alle2", "dsb nsh", "isb") };
    SCTLR_EL2.modify(
        SCTLR_EL2::M::Enable
            + SCTLR_EL2::C::Cacheable
            + SCTLR_EL2::I::Cacheable
            + SCTLR_EL2::A::Disable,
    );
    barrier::isb(barrier::SY);
}
