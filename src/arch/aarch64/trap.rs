//! Rust side of the EL2 vectors: reads the syndrome, decodes it
//! ([`super::esr`]), lets [`crate::vcpu`] handle the neutral part and applies
//! the outcome. PSCI and SMCCC calls are decoded here and served by the
//! arch-neutral VM power operations in [`crate::vm`].

use super::esr::{self, ec};
use super::inject::{self, Fault};
use super::insn::{self, Writeback};
use super::smccc::{self, psci};
use crate::config::UnhandledPolicy;
use crate::exit::{Exit, ExitKind};
use crate::vcpu::{self, CpuLocal, GuestRegisters, Outcome};
use crate::vm::{self, Ending, Power, PowerError};
use aarch64_cpu::registers::*;

/// x0-x30 of the trapped vCPU as saved by the vectors (plus padding).
#[repr(C)]
pub struct GuestRegs {
    /// General-purpose registers.
    pub x: [u64; 32],
}

impl GuestRegisters for GuestRegs {
    #[inline(always)]
    fn gpr(&self, reg: u8) -> u64 {
        if reg >= 31 {
            0
        } else {
            self.x[reg as usize]
        }
    }
    #[inline(always)]
    fn set_gpr(&mut self, reg: u8, value: u64) {
        if reg < 31 {
            self.x[reg as usize] = value;
        }
    }
}

/// SPSR_EL2.M[4]: the trapped context was AArch32.
const SPSR_NRW_AARCH32: u64 = 1 << 4;

#[inline(always)]
fn local() -> &'static CpuLocal {
    // SAFETY: a core only runs a guest (and so only takes these traps) after
    // TPIDR_EL2 points at its leaked, never-freed CpuLocal.
    unsafe { &*(super::cpu::local() as *const CpuLocal) }
}

#[inline(always)]
fn advance_pc(esr: u64) {
    let step = if esr::instruction_is_32bit(esr) { 4 } else { 2 };
    ELR_EL2.set(ELR_EL2.get() + step);
}

/// Synchronous trap from the guest. The hot classes (HVC, data abort,
/// system register) branch off first to small handlers; everything else,
/// including every unhandled outcome, is out of line so it costs the hot
/// path nothing.
#[no_mangle]
extern "C" fn tessera_guest_sync(regs: &mut GuestRegs) {
    let esr = ESR_EL2.get();
    match esr::exception_class(esr) {
        // HVC returns to the next instruction by itself.
        ec::HVC64 => serve_call(local(), regs),
        ec::DABT_LOW => data_abort(regs, esr),
        ec::SYS64 => {
            let exit = esr::decode(esr, 0);
            finish(vcpu::handle(local(), exit, regs), esr);
        }
        _ => other_sync(regs, esr),
    }
}

#[inline(always)]
fn finish(outcome: Outcome, esr: u64) {
    match outcome {
        Outcome::Advance => advance_pc(esr),
        Outcome::Unhandled => unhandled(local(), esr),
    }
}

#[inline(always)]
fn data_abort(regs: &mut GuestRegs, esr: u64) {
    let ipa = esr::fault_ipa(HPFAR_EL2.get(), FAR_EL2.get());
    if esr::abort_is_permission_fault(esr) {
        // A mapped page the access is not allowed on (a write to a `ro`
        // inter-VM channel): never an MMIO access.
        unhandled(local(), esr);
    } else if esr::dabt_has_syndrome(esr) {
        finish(vcpu::handle(local(), esr::decode(esr, ipa), regs), esr);
    } else if esr::dabt_needs_decode(esr) {
        finish(emulate_decoded(local(), regs, esr, ipa), esr);
    } else {
        unhandled(local(), esr);
    }
}

/// The rarer synchronous traps: trapped SMC, WFI/WFE, instruction aborts,
/// unknown classes.
#[inline(never)]
fn other_sync(regs: &mut GuestRegs, esr: u64) {
    let local = local();
    let outcome = match esr::decode(esr, 0) {
        Exit::Call { .. } => {
            // Trapped SMC: the return address is the SMC itself.
            serve_call(local, regs);
            Outcome::Advance
        }
        Exit::Halt | Exit::WaitEvent => {
            local.vcpu.count(ExitKind::Halt);
            Outcome::Advance
        }
        _ => Outcome::Unhandled,
    };
    finish(outcome, esr);
}

/// Applies the VM's policy to an exit nobody handled.
#[cold]
#[inline(never)]
fn unhandled(local: &CpuLocal, esr: u64) {
    local.vcpu.count(ExitKind::Unhandled);
    let elr = ELR_EL2.get();
    let class = esr::exception_class(esr);
    let ipa = if class == ec::DABT_LOW || class == ec::IABT_LOW {
        esr::fault_ipa(HPFAR_EL2.get(), FAR_EL2.get())
    } else {
        0
    };
    let policy = if class == ec::DABT_LOW && esr::abort_is_permission_fault(esr) {
        local.vm.report_unhandled(format_args!(
            "stage-2 permission fault: {} at ipa {:#x} (esr {:#x}) at pc {:#x}",
            if esr::dabt_is_write(esr) {
                "write"
            } else {
                "read"
            },
            ipa,
            esr,
            elr
        ))
    } else {
        let exit = esr::decode(esr, ipa);
        local.vm.report_unhandled(format_args!(
            "unhandled {} (esr {:#x}) at pc {:#x}",
            exit, esr, elr
        ))
    };
    match policy {
        UnhandledPolicy::InjectAbort => {
            let fault = if class == ec::DABT_LOW {
                Fault::DataAbort {
                    far: FAR_EL2.get(),
                    write: esr::dabt_is_write(esr),
                }
            } else if class == ec::IABT_LOW {
                Fault::InstructionAbort { far: FAR_EL2.get() }
            } else {
                Fault::Undefined
            };
            inject::inject(fault);
        }
        UnhandledPolicy::StopVm => {
            local.vm.shut_down(Ending::Stopped);
            vm::park(local.vm, local.vcpu, local.stack_top);
        }
        UnhandledPolicy::RestartVm => {
            local.vm.reset();
            vm::park(local.vm, local.vcpu, local.stack_top);
        }
    }
}

/// Emulates an MMIO access whose syndrome is not valid by decoding the
/// instruction at the guest PC (load/store with writeback, pairs...).
#[inline(never)]
fn emulate_decoded(local: &CpuLocal, regs: &mut GuestRegs, esr: u64, ipa: u64) -> Outcome {
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

/// Serves an SMCCC call (HVC or trapped SMC): PSCI or Tessera hypercalls.
#[inline(always)]
fn serve_call(local: &CpuLocal, regs: &mut GuestRegs) {
    let fid = regs.x[0] as u32;
    if psci::is_psci(fid) {
        local.vcpu.count(ExitKind::Power);
        regs.x[0] = serve_psci(local, fid, regs.x[1], regs.x[2], regs.x[3]) as u64;
        return;
    }
    local.vcpu.count(ExitKind::Hypercall);
    match vcpu::hypercall(local, fid) {
        Some(ret) => regs.x[..5].copy_from_slice(&ret),
        None => regs.x[0] = smccc::NOT_SUPPORTED,
    }
}

fn vcpu_of(mpidr: u64) -> Option<usize> {
    // vCPU i has affinity 0.0.0.i.
    (mpidr & !0xff == 0).then_some((mpidr & 0xff) as usize)
}

fn power_error(e: PowerError) -> i64 {
    match e {
        PowerError::InvalidVcpu => psci::INVALID_PARAMETERS,
        PowerError::AlreadyOn => psci::ALREADY_ON,
        PowerError::OnPending => psci::ON_PENDING,
        PowerError::InvalidAddress => psci::INVALID_ADDRESS,
    }
}

fn serve_psci(local: &CpuLocal, fid: u32, a1: u64, a2: u64, a3: u64) -> i64 {
    let vm = local.vm;
    match fid {
        psci::VERSION => psci::VERSION_1_1 as i64,
        psci::FEATURES => match a1 as u32 {
            psci::VERSION
            | psci::CPU_OFF
            | psci::CPU_ON_32
            | psci::CPU_ON_64
            | psci::AFFINITY_INFO_32
            | psci::AFFINITY_INFO_64
            | psci::SYSTEM_OFF
            | psci::SYSTEM_RESET
            | psci::FEATURES
            | psci::CPU_SUSPEND_32
            | psci::CPU_SUSPEND_64
            | psci::MIGRATE_INFO_TYPE => psci::SUCCESS,
            _ => psci::NOT_SUPPORTED,
        },
        psci::CPU_ON_32 | psci::CPU_ON_64 => {
            let (entry, arg) = if fid == psci::CPU_ON_32 {
                (a2 & 0xffff_ffff, a3 & 0xffff_ffff)
            } else {
                (a2, a3)
            };
            match vcpu_of(a1)
                .ok_or(PowerError::InvalidVcpu)
                .and_then(|t| vm.cpu_on(t, entry, arg))
            {
                Ok(()) => psci::SUCCESS,
                Err(e) => power_error(e),
            }
        }
        psci::CPU_OFF => vm::park(vm, local.vcpu, local.stack_top),
        psci::CPU_SUSPEND_32 | psci::CPU_SUSPEND_64 => {
            // Every state is entered as standby: the vCPU waits for its next
            // interrupt and the call returns (PSCI lets a power-down request
            // end in a shallower state).
            super::vgic_hw::wait_for_interrupt(local);
            psci::SUCCESS
        }
        psci::AFFINITY_INFO_32 | psci::AFFINITY_INFO_64 => {
            if a2 != 0 {
                return psci::INVALID_PARAMETERS;
            }
            match vcpu_of(a1)
                .ok_or(PowerError::InvalidVcpu)
                .and_then(|t| vm.vcpu_power(t))
            {
                Ok(Power::On) => psci::AFFINITY_ON,
                Ok(Power::Off) => psci::AFFINITY_OFF,
                Ok(Power::OnPending) => psci::AFFINITY_ON_PENDING,
                Err(e) => power_error(e),
            }
        }
        psci::MIGRATE_INFO_TYPE => psci::TOS_NOT_PRESENT_MP,
        psci::SYSTEM_OFF => {
            vm.shut_down(Ending::PoweredOff);
            vm::park(vm, local.vcpu, local.stack_top)
        }
        psci::SYSTEM_RESET => {
            vm.reset();
            vm::park(vm, local.vcpu, local.stack_top)
        }
        _ => psci::NOT_SUPPORTED,
    }
}

/// SError from the guest: asynchronous, cannot be pinned to an instruction;
/// the VM is stopped (contained), whatever its policy.
#[no_mangle]
extern "C" fn tessera_guest_serror(_regs: &mut GuestRegs) {
    let local = local();
    local.vcpu.count(ExitKind::Unhandled);
    local
        .vm
        .report_unhandled(format_args!("SError (esr {:#x})", ESR_EL2.get()));
    local.vm.shut_down(Ending::Stopped);
    vm::park(local.vm, local.vcpu, local.stack_top);
}

/// Exception taken at EL2 itself: a hypervisor bug.
#[no_mangle]
extern "C" fn tessera_hyp_fault(_regs: &mut GuestRegs) {
    panic!(
        "EL2 exception: esr {:#x} elr {:#x} far {:#x}",
        ESR_EL2.get(),
        ELR_EL2.get(),
        FAR_EL2.get()
    );
}
