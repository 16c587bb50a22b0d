//! The GICv3 virtual CPU interface (ICH_*_EL2): the list registers through
//! which this core's vCPU receives virtual interrupts, and the physical-GIC
//! side of the virtual GIC ([`VgicHw`]). Only the owning core touches its
//! list registers; other cores leave interrupts in the vCPU's pending set
//! and kick.

use super::list_regs::{self, lr, Placement};
use super::{cpu, gicv3};
use crate::devices::vgic::{Deliverable, Vgic, VgicHw};
use crate::vcpu::CpuLocal;
use core::sync::atomic::{AtomicUsize, Ordering};

/// ICH_HCR_EL2: En (virtual CPU interface on), UIE (maintenance interrupt
/// when at most one list register is valid: the refill signal).
const HCR_EN: u64 = 1;
const HCR_UIE: u64 = 1 << 1;

/// Number of list registers (ICH_VTR_EL2.ListRegs + 1), read at boot.
static LIST_REGS: AtomicUsize = AtomicUsize::new(0);

macro_rules! lr_access {
    ($($n:literal),*) => {
        /// Reads ICH_LR`n`_EL2.
        #[inline(always)]
        fn read_lr(n: usize) -> u64 {
            let v: u64;
            match n {
                // SAFETY: list-register reads have no side effect.
                $($n => unsafe { core::arch::asm!(concat!("mrs {}, ich_lr", $n, "_el2"), out(reg) v) },)*
                _ => v = 0,
            }
            v
        }
        /// Writes ICH_LR`n`_EL2.
        #[inline(always)]
        fn write_lr(n: usize, v: u64) {
            match n {
                // SAFETY: this core's list register; only its own vCPU sees it.
                $($n => unsafe { core::arch::asm!(concat!("msr ich_lr", $n, "_el2, {}"), in(reg) v) },)*
                _ => {}
            }
        }
    };
}
lr_access!(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);

#[inline(always)]
fn elrsr() -> u64 {
    let v: u64;
    // SAFETY: reading the empty-list-register status has no side effect.
    unsafe { core::arch::asm!("mrs {}, ich_elrsr_el2", out(reg) v) };
    v
}

fn write_hcr(v: u64) {
    // SAFETY: this core's virtual CPU interface control.
    unsafe { core::arch::asm!("msr ich_hcr_el2, {}", in(reg) v) };
}

fn list_regs() -> usize {
    LIST_REGS.load(Ordering::Relaxed)
}

/// Reads how many list registers this CPU has. Every core, at boot.
pub fn init_this_cpu() {
    let vtr: u64;
    // SAFETY: ICH_VTR_EL2 is a read-only ID register.
    unsafe { core::arch::asm!("mrs {}, ich_vtr_el2", out(reg) vtr) };
    LIST_REGS.store(((vtr & 0x1f) as usize + 1).min(16), Ordering::Relaxed);
}

/// Switches this core's virtual CPU interface off (its vCPU is parked): no
/// maintenance interrupt can fire; [`reset_cpu_interface`] turns it on again.
pub fn disable_cpu_interface() {
    write_hcr(0);
}

/// Puts this core's virtual CPU interface in its reset state before its
/// vCPU (re)starts: empty list registers, the guest's ICC state (VMCR)
/// zeroed, forwarded physical interrupts left active deactivated.
pub fn reset_cpu_interface() {
    for n in 0..list_regs() {
        write_lr(n, 0);
    }
    // SAFETY: the guest's virtual ICC state; the vCPU is not running.
    unsafe { core::arch::asm!("msr ich_vmcr_el2, xzr") };
    write_hcr(HCR_EN);
    gicv3::deactivate_forwarded_ppis();
}

/// Moves `vcpu`'s deliverable interrupts into free list registers (this
/// core's vCPU). An interrupt already in a list register as active becomes
/// active and pending; what does not fit waits, with the underflow
/// maintenance interrupt armed to refill.
pub fn deliver(vgic: &Vgic, vcpu: usize) {
    let nr = list_regs();
    let mut batch = [Deliverable {
        intid: 0,
        priority: 0,
        hw: false,
    }; 16];
    let (n, mut more) = vgic.take_deliverable(vcpu, &mut batch[..nr]);
    if n == 0 && !more {
        write_hcr(HCR_EN);
        return;
    }
    let mut lrs = [0u64; 16];
    for (i, v) in lrs[..nr].iter_mut().enumerate() {
        *v = read_lr(i);
    }
    let mut free = elrsr();
    for d in &batch[..n] {
        match list_regs::place(&lrs[..nr], &mut free, d) {
            Placement::Write { index, value } => {
                write_lr(index, value);
                lrs[index] = value;
            }
            Placement::Merged => {}
            Placement::NoRoom => {
                vgic.requeue(vcpu, d);
                more = true;
            }
        }
    }
    write_hcr(if more { HCR_EN | HCR_UIE } else { HCR_EN });
}

/// A physical interrupt of this core's VM arrived (priority already
/// dropped): hand it to the guest with the HW bit so that the guest's
/// deactivation deactivates the physical one.
#[inline(always)]
pub fn forward(local: &CpuLocal, intid: u32) {
    let vgic = local.vm.vgic;
    let vcpu = local.vcpu.id;
    let target = if intid < 32 {
        vcpu
    } else {
        vgic.target_of(intid)
    };
    if target == vcpu && vgic.is_enabled(vcpu, intid) && vgic.group1_enabled() {
        // Fast path: straight into a free list register.
        let free = elrsr() & ((1u64 << list_regs()) - 1);
        if free != 0 {
            let d = Deliverable {
                intid,
                priority: vgic.priority(vcpu, intid),
                hw: true,
            };
            write_lr(free.trailing_zeros() as usize, list_regs::value(&d));
            return;
        }
    }
    vgic.forward_physical(target, intid);
}

/// Waits on behalf of the vCPU (PSCI CPU_SUSPEND) until it has an interrupt:
/// one already pending in a list register or its pending set returns at
/// once; otherwise the core waits for a physical interrupt (forwarded ones
/// and kicks are then taken as soon as the guest resumes).
pub fn wait_for_interrupt(local: &CpuLocal) {
    deliver(local.vm.vgic, local.vcpu.id);
    let nr = list_regs();
    let pending = (0..nr).any(|i| read_lr(i) & lr::STATE_PENDING != 0);
    if !pending {
        cpu::wait_for_interrupt();
    }
}

/// The physical side of every VM's virtual GIC.
pub struct PhysicalGic;

/// The one instance VMs refer to.
pub static PHYSICAL_GIC: PhysicalGic = PhysicalGic;

impl VgicHw for PhysicalGic {
    fn is_this_cpu(&self, phys_cpu: usize) -> bool {
        let local = cpu::local();
        // A core without a vCPU has no per-core data (and never emulates).
        !local.is_null() && {
            // SAFETY: non-null TPIDR_EL2 points at this core's leaked CpuLocal.
            let local = unsafe { &*(local as *const CpuLocal) };
            local.cpu == phys_cpu
        }
    }
    fn deliver_local(&self, vgic: &Vgic, vcpu: usize) {
        deliver(vgic, vcpu);
    }
    fn kick(&self, phys_cpu: usize) {
        super::interface::kick_cpu(phys_cpu);
    }
    fn set_physical_enabled(&self, intid: u32, enabled: bool) {
        gicv3::set_spi_enabled(intid, enabled);
    }
    fn route_physical(&self, intid: u32, phys_cpu: usize) {
        if let Some(&mpidr) = crate::config::SYSTEM.board.cpu_mpidrs.get(phys_cpu) {
            gicv3::route_spi(intid, mpidr);
        }
    }
    fn set_physical_edge(&self, intid: u32, edge: bool) {
        gicv3::set_spi_edge(intid, edge);
    }
    fn quiesce_physical(&self, intid: u32) {
        gicv3::quiesce_spi(intid);
    }
}
