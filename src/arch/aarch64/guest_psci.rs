//! The guest PSCI service (and the rest of the SMCCC calls a guest makes
//! by HVC or trapped SMC): decodes the call and serves it with the
//! arch-neutral VM power operations of [`crate::vm`] and the Tessera
//! hypercalls of [`crate::vcpu`].

use super::smccc::{self, psci};
use super::trap::GuestRegs;
use crate::exit::ExitKind;
use crate::vcpu::{self, CpuLocal};
use crate::vm::{self, Ending, Power, PowerError};

/// Serves an SMCCC call (HVC or trapped SMC): PSCI or Tessera hypercalls.
#[inline(always)]
pub(super) fn serve_call(local: &CpuLocal, regs: &mut GuestRegs) {
    let fid = regs.x[0] as u32;
    if psci::is_psci(fid) {
        local.vcpu.count(ExitKind::Power);
        regs.x[0] = serve_psci(local, fid, regs.x[1], regs.x[2], regs.x[3]) as u64;
        return;
    }
    local.vcpu.count(ExitKind::Hypercall);
    match vcpu::hypercall(local, fid) {
        Some(ret) => regs.x[..5].copy_from_slice(&ret),
        None => {
            let served = regs
                .x
                .first_chunk_mut::<5>()
                .is_some_and(|x| vcpu::cold_hypercall(local, fid, x));
            if !served {
                regs.x[0] = smccc::NOT_SUPPORTED;
            }
        }
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
        PowerError::Denied => psci::DENIED,
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

