//! Reading a guest's memory for emulation (string I/O, MMIO instruction
//! fetch): guest linear addresses go through the guest's own page tables
//! ([`super::guest_walk`]) and every table, element and instruction byte
//! address is checked against the VM's own RAM, so a hostile guest can
//! only make a read fail.

use super::guest_walk;
use super::vmx::read;
use crate::vm::Vm;
use x86::vmx::vmcs::guest;

/// CR0.PG.
const CR0_PG: u64 = 1 << 31;
/// Longest x86 instruction.
pub const MAX_INSN: usize = 15;

/// `width` (at most 8) bytes of the VM's RAM at guest-physical `gpa`, if
/// they lie in one of its regions.
pub fn read_ram(vm: &Vm, gpa: u64, width: u64) -> Option<u64> {
    if width > 8 {
        return None;
    }
    let r = vm
        .config
        .memory_regions
        .iter()
        .find(|r| gpa.wrapping_sub(r.gpa) < r.size && gpa - r.gpa + width <= r.size)?;
    let hpa = r.hpa + (gpa - r.gpa);
    let mut bytes = [0u8; 8];
    // SAFETY: `hpa..hpa + width` lies in a RAM region of this VM (checked
    // above), identity-mapped in the hypervisor; width <= 8.
    unsafe {
        core::ptr::copy_nonoverlapping(hpa as *const u8, bytes.as_mut_ptr(), width as usize)
    };
    Some(u64::from_le_bytes(bytes))
}

/// The guest-physical address of guest linear `la` (identity while the
/// guest's paging is off).
pub fn gpa_of(vm: &Vm, la: u64) -> Option<u64> {
    if read(guest::CR0) & CR0_PG == 0 {
        return Some(la);
    }
    guest_walk::translate(read(guest::CR3), la, |g| read_ram(vm, g, 8)).ok()
}

/// `width` bytes at guest linear `la` (not crossing a page).
pub fn read_linear(vm: &Vm, la: u64, width: u64) -> Option<u64> {
    if (la & 0xfff) + width > 0x1000 {
        return None;
    }
    read_ram(vm, gpa_of(vm, la)?, width)
}

/// Copies `out.len()` bytes of the VM's RAM at guest-physical `gpa`, if
/// they lie in one of its regions.
fn copy_ram(vm: &Vm, gpa: u64, out: &mut [u8]) -> Option<()> {
    let len = out.len() as u64;
    let r = vm
        .config
        .memory_regions
        .iter()
        .find(|r| gpa.wrapping_sub(r.gpa) < r.size && gpa - r.gpa + len <= r.size)?;
    // SAFETY: `[hpa, hpa + len)` lies in a RAM region of this VM (checked
    // above), identity-mapped in the hypervisor.
    unsafe {
        core::ptr::copy_nonoverlapping(
            (r.hpa + (gpa - r.gpa)) as *const u8,
            out.as_mut_ptr(),
            out.len(),
        )
    };
    Some(())
}

/// Up to [`MAX_INSN`] instruction bytes at guest linear `rip`, and how
/// many could be read (the fetch stops at a page that does not translate
/// to the VM's RAM; `None` when not even the first byte can be read).
pub fn fetch_code(vm: &Vm, rip: u64) -> Option<([u8; MAX_INSN], usize)> {
    let mut bytes = [0u8; MAX_INSN];
    // The part in RIP's page, then (at most) the rest in the next one.
    let first = (0x1000 - (rip & 0xfff) as usize).min(MAX_INSN);
    copy_ram(vm, gpa_of(vm, rip)?, &mut bytes[..first])?;
    if first == MAX_INSN {
        return Some((bytes, first));
    }
    let next = rip.wrapping_add(first as u64);
    let more = gpa_of(vm, next).and_then(|gpa| copy_ram(vm, gpa, &mut bytes[first..]));
    Some((bytes, if more.is_some() { MAX_INSN } else { first }))
}
