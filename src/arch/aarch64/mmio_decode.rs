//! MMIO instruction decoding: an access to an emulated device whose
//! syndrome is not valid (ISV=0: pairs, writeback, ...) is emulated by
//! reading the trapped instruction from guest memory and decoding it with
//! [`super::insn`].

use super::esr;
use super::insn::{self, Writeback};
use super::trap::{local, GuestRegs};
use crate::exit::ExitKind;
use crate::vcpu::{CpuLocal, GuestRegisters, Outcome};
use aarch64_cpu::registers::*;

/// SPSR_EL2.M[4]: the trapped context was AArch32.
const SPSR_NRW_AARCH32: u64 = 1 << 4;

/// Emulates an MMIO access whose syndrome is not valid by decoding the
/// instruction at the guest PC (load/store with writeback, pairs...).
#[inline(never)]
pub(super) fn emulate_decoded(local: &CpuLocal, regs: &mut GuestRegs, esr: u64, ipa: u64) -> Outcome {
    // The decoder knows A64 only; an AArch32 EL0 task's access stays unhandled.
    if local.vm.mmio.find(ipa).is_none() || SPSR_EL2.get() & SPSR_NRW_AARCH32 != 0 {
        return Outcome::Unhandled;
    }
    let Some(word) = read_guest_instruction(ELR_EL2.get()) else {
        return Outcome::Unhandled;
    };
    let Some(op) = insn::decode(word) else {
        return Outcome::Unhandled;
    };
    if op.is_load == esr::dabt_is_write(esr) {
        return Outcome::Unhandled;
    }
    // The base register holds the faulting VA's base; the IPA of element 0
    // is the fault IPA minus the distance of FAR from that element.
    let base = read_base(regs, op.rn);
    let va0 = base.wrapping_add(op.access_offset(|r| regs.gpr(r)) as u64);
    let ipa0 = ipa.wrapping_sub(FAR_EL2.get().wrapping_sub(va0));
    if (ipa0 & 0xfff) + op.total_bytes() > 0x1000 {
        return Outcome::Unhandled; // crosses a page: the next page may not be MMIO
    }
    let elements = [Some(op.rt), op.rt2];
    for (i, rt) in elements.iter().enumerate() {
        let Some(rt) = *rt else { break };
        let addr = ipa0 + i as u64 * op.width.bytes();
        let kind = if op.is_load {
            ExitKind::MmioRead
        } else {
            ExitKind::MmioWrite
        };
        local.vcpu.count(kind);
        let result = if op.is_load {
            local
                .vm
                .mmio
                .read(local.accessor(), addr, op.width)
                .map(|raw| regs.set_gpr(rt, op.load_result(raw)))
        } else {
            local
                .vm
                .mmio
                .write(local.accessor(), addr, op.width, regs.gpr(rt))
        };
        if result.is_err() {
            return Outcome::Unhandled;
        }
    }
    if op.writeback != Writeback::None {
        let offset = op.offset_value(|r| regs.gpr(r));
        write_base(regs, op.rn, base.wrapping_add(offset as u64));
    }
    Outcome::Advance
}

/// Base register of an address: 31 is the stack pointer of the guest's
/// current mode.
fn read_base(regs: &GuestRegs, rn: u8) -> u64 {
    if rn != 31 {
        return regs.x[rn as usize];
    }
    if SPSR_EL2.get() & 1 != 0 {
        SP_EL1.get()
    } else {
        SP_EL0.get()
    }
}

fn write_base(regs: &mut GuestRegs, rn: u8, value: u64) {
    if rn != 31 {
        regs.x[rn as usize] = value;
    } else if SPSR_EL2.get() & 1 != 0 {
        SP_EL1.set(value);
    } else {
        SP_EL0.set(value);
    }
}

/// Reads the 32-bit instruction at guest virtual address `va`, translating
/// through the guest's stage 1 and stage 2 (AT S12E1R). PAR_EL1 is the
/// guest's register, so it is preserved.
fn read_guest_instruction(va: u64) -> Option<u32> {
    let saved = PAR_EL1.get();
    // SAFETY: address translation only; result in PAR_EL1.
    unsafe { core::arch::asm!("at s12e1r, {}", "isb", in(reg) va) };
    let par = PAR_EL1.get();
    PAR_EL1.set(saved);
    if par & 1 != 0 {
        return None;
    }
    let pa = (par & 0x0000_ffff_ffff_f000) | (va & 0xfff);
    // Only read what is the VM's RAM (the translation could name anything).
    let ram = local()
        .vm
        .config
        .memory_regions
        .iter()
        .any(|r| pa.wrapping_sub(r.hpa) < r.size && pa & 3 == 0);
    if !ram {
        return None;
    }
    // SAFETY: `pa` is aligned and inside this VM's RAM, identity-mapped at EL2.
    Some(unsafe { core::ptr::read_volatile(pa as *const u32) })
}

