//! Rust side of the EL2 vectors: reads the syndrome, decodes it
//! ([`super::esr`]), lets [`crate::vcpu`] handle the neutral part and applies
//! the outcome. Calls go to the guest PSCI service ([`super::guest_psci`]),
//! ISV=0 device accesses to [`super::mmio_decode`]. What nobody handles,
//! a guest that cannot take its own exceptions and SErrors end here in the
//! VM's policies (`on_unhandled`, `on_fault`).

use super::esr::{self, ec};
use super::guest_psci::serve_call;
use super::inject::{self, Fault};
use super::mmio_decode::emulate_decoded;
use super::serror::{self, SErrorOrigin, SErrorOutcome};
use crate::config::{FaultPolicy, UnhandledPolicy};
use crate::exit::{Exit, ExitKind};
use crate::vcpu::{self, CpuLocal, GuestRegisters, Outcome};
use crate::vm::{self, Ending, Given};
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

#[inline(always)]
pub(super) fn local() -> &'static CpuLocal {
    // SAFETY: a core only runs a guest (and so only takes these traps) after
    // TPIDR_EL2 points at its leaked, never-freed CpuLocal.
    unsafe { &*(super::cpu::local() as *const CpuLocal) }
}

#[inline(always)]
fn advance_pc(esr: u64) {
    // 4 bytes (IL set), or 2 for a 16-bit T32 instruction: no branch.
    let step = 2u64 << u64::from(esr::instruction_is_32bit(esr));
    ELR_EL2.set(ELR_EL2.get() + step);
}

/// Synchronous trap from the guest. The hot classes (data abort first: every
/// emulated device and the inter-VM doorbells; HVC; system register)
/// branch off first to small handlers; everything else, including every
/// unhandled outcome, is out of line so it costs the hot path nothing.
#[no_mangle]
extern "C" fn tessera_guest_sync(regs: &mut GuestRegs) {
    let esr = ESR_EL2.get();
    let class = esr::exception_class(esr);
    // Classes 0x20 and up are aborts, alignment and debug traps: the data
    // abort is the only hot one there, found in two compares.
    if class >= 0x20 {
        return if class == ec::DABT_LOW {
            data_abort(regs, esr)
        } else {
            other_sync(regs, esr)
        };
    }
    match class {
        // HVC returns to the next instruction by itself.
        ec::HVC64 => {
            // Test builds only: the trigger of `hyp_fault`'s boot test.
            #[cfg(feature = "fault-injection")]
            if regs.x[0] as u32 == tessera_abi::tessera::FAULT_INJECT {
                super::hyp_fault::inject(regs.x[1]);
            }
            serve_call(local(), regs)
        }
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
    // The common case in one test; the rest in the order that matters.
    if esr::dabt_is_plain_mmio(esr) {
        finish(vcpu::handle(local(), esr::decode_mmio(esr, ipa), regs), esr);
    } else {
        data_abort_other(regs, esr, ipa);
    }
}

/// Data aborts other than a plain MMIO translation fault.
#[inline(never)]
fn data_abort_other(regs: &mut GuestRegs, esr: u64, ipa: u64) {
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

/// How an unhandled exit is logged: a stage-2 permission fault (a write to
/// a read-only inter-VM channel view) says so, rather than looking like an
/// MMIO access.
struct UnhandledExit {
    exit: Exit,
    esr: u64,
    ipa: u64,
    elr: u64,
    permission: bool,
}

impl core::fmt::Display for UnhandledExit {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.permission {
            let access = if esr::dabt_is_write(self.esr) {
                "write"
            } else {
                "read"
            };
            write!(
                f,
                "stage-2 permission fault: {} at ipa {:#x} (esr {:#x}) at pc {:#x}",
                access, self.ipa, self.esr, self.elr
            )
        } else {
            write!(
                f,
                "unhandled {} (esr {:#x}) at pc {:#x}",
                self.exit, self.esr, self.elr
            )
        }
    }
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
    let exit = UnhandledExit {
        exit: esr::decode(esr, ipa),
        esr,
        ipa,
        elr,
        permission: class == ec::DABT_LOW && esr::abort_is_permission_fault(esr),
    };
    let what = format_args!("{}", exit);
    let vm = local.vm;
    match vm.config.on_unhandled {
        UnhandledPolicy::InjectAbort => {
            // The same fault again inside the vector the last injection
            // went to: the guest cannot take it; injecting more would loop.
            if local.vcpu.progress.stuck(elr) {
                vm.report(
                    format_args!("{}: the guest cannot take the exception", what),
                    apply_fault_policy_outcome(vm.config.on_fault),
                );
                apply_fault_policy(local);
            }
            let (fault, given) = if class == ec::DABT_LOW {
                let write = esr::dabt_is_write(esr);
                (Fault::DataAbort { far: FAR_EL2.get(), write }, Given::DataAbort)
            } else if class == ec::IABT_LOW {
                (Fault::InstructionAbort { far: FAR_EL2.get() }, Given::InstructionAbort)
            } else {
                (Fault::Undefined, Given::Undefined)
            };
            vm.report(what, given);
            let vector = inject::inject(fault);
            local.vcpu.progress.injected(vector);
        }
        UnhandledPolicy::StopVm => {
            vm.report(what, Given::Stopped);
            vm.shut_down(Ending::Stopped);
            vm::park(vm, local.vcpu, local.stack_top);
        }
        UnhandledPolicy::RestartVm => {
            vm.report(what, Given::Restarted);
            vm.reset();
            vm::park(vm, local.vcpu, local.stack_top);
        }
    }
}

fn apply_fault_policy_outcome(policy: FaultPolicy) -> Given {
    match policy {
        FaultPolicy::StopVm => Given::Stopped,
        FaultPolicy::RestartVm => Given::Restarted,
    }
}

/// Stops or resets the VM by its `on_fault` policy and parks this vCPU.
fn apply_fault_policy(local: &CpuLocal) -> ! {
    match local.vm.config.on_fault {
        FaultPolicy::StopVm => local.vm.shut_down(Ending::Stopped),
        FaultPolicy::RestartVm => local.vm.reset(),
    }
    vm::park(local.vm, local.vcpu, local.stack_top)
}

/// SError from the guest (its own SError vector, or the guest-exit window
/// of `vectors.rs`: raised while it ran): asynchronous, cannot be pinned to
/// an instruction. A containable one ends the VM by its `on_fault` policy;
/// an uncontainable one (RAS says the error may have spread) stops the
/// machine: no VM can be trusted to run on. SErrors of the hypervisor's
/// own end in [`super::hyp_fault`].
///
/// Never returns: the guest's trap frame may hold only the caller-saved
/// registers (an SError in an IRQ slot's window, `vectors.rs`), so nothing
/// may resume the guest from it.
#[no_mangle]
extern "C" fn tessera_guest_serror(_regs: &mut GuestRegs) -> ! {
    let local = local();
    let esr = ESR_EL2.get();
    local.vcpu.count(ExitKind::Unhandled);
    match serror::outcome(SErrorOrigin::Guest, esr) {
        SErrorOutcome::StopMachine => {
            crate::println!(
                "vm {}: uncontainable SError (esr {:#x}): stopping the machine",
                local.vm.config.name,
                esr
            );
            crate::arch::fail_stop(3);
        }
        SErrorOutcome::VmPolicy => {
            local.vm.report(
                format_args!("SError (esr {:#x})", esr),
                apply_fault_policy_outcome(local.vm.config.on_fault),
            );
            apply_fault_policy(local);
        }
    }
}
