//! The virtual CPU interface: the list registers through which this core's
//! vCPU receives virtual interrupts (GICv3: ICH_*_EL2 system registers;
//! GICv2: the memory-mapped GICH frame, see [`ListRegs`]), and the
//! physical-GIC side of the virtual GIC ([`VgicHw`]). Only the owning core
//! touches its list registers; other cores leave interrupts in the vCPU's
//! pending set and kick.

use super::list_regs::{self, lr, Placement};
use super::{cpu, gic, gicv2, list_regs_v2};
use crate::devices::vgic::{Batch, Deliverable, Single, Vgic, VgicHw, MAX_LIST_REGS};
use crate::vcpu::CpuLocal;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// ICH_HCR_EL2: En (virtual CPU interface on), UIE (maintenance interrupt
/// when at most one list register is valid: the refill signal).
const HCR_EN: u64 = 1;
const HCR_UIE: u64 = 1 << 1;

/// Number of list registers (ICH_VTR_EL2.ListRegs + 1, or GICH_VTR's),
/// read at boot.
static LIST_REGS: AtomicUsize = AtomicUsize::new(0);
/// ELRSR bits of the list registers there are (`LIST_REGS` ones), so the
/// delivery paths mask the empty-register status with one load.
static LIST_REGS_MASK: AtomicU64 = AtomicU64::new(0);

macro_rules! lr_access {
    ($($n:literal),*) => {
        /// Reads ICH_LR`n`_EL2.
        #[inline(always)]
        fn read_lr(n: usize) -> u64 {
            let v: u64;
            match n {
                // SAFETY: list-register reads have no side effect (and touch
                // no memory).
                $($n => unsafe { core::arch::asm!(concat!("mrs {}, ich_lr", $n, "_el2"), out(reg) v, options(nomem, nostack, preserves_flags)) },)*
                _ => v = 0,
            }
            v
        }
        /// Writes ICH_LR`n`_EL2.
        #[inline(always)]
        fn write_lr(n: usize, v: u64) {
            match n {
                // SAFETY: this core's list register; only its own vCPU sees it
                // (a system register: no memory).
                $($n => unsafe { core::arch::asm!(concat!("msr ich_lr", $n, "_el2, {}"), in(reg) v, options(nomem, nostack, preserves_flags)) },)*
                _ => {}
            }
        }
    };
}
lr_access!(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);

#[inline(always)]
fn elrsr() -> u64 {
    let v: u64;
    // SAFETY: reading the empty-list-register status has no side effect
    // and touches no memory.
    unsafe {
        core::arch::asm!("mrs {}, ich_elrsr_el2", out(reg) v, options(nomem, nostack, preserves_flags))
    };
    v
}

fn write_hcr(v: u64) {
    // SAFETY: this core's virtual CPU interface control.
    unsafe { core::arch::asm!("msr ich_hcr_el2, {}", in(reg) v) };
}

fn list_regs() -> usize {
    LIST_REGS.load(Ordering::Relaxed)
}

#[inline(always)]
fn list_regs_mask() -> u64 {
    LIST_REGS_MASK.load(Ordering::Relaxed)
}

/// The list registers of one GIC generation, with everything delivery
/// needs from them. Monomorphised per generation: the GICv3 path compiles
/// to the system-register accesses it always had.
trait ListRegs {
    /// Reads list register `n`.
    fn read(n: usize) -> u64;
    /// Writes list register `n`.
    fn write(n: usize, v: u64);
    /// Mask of empty list registers.
    fn elrsr() -> u64;
    /// Virtual interface control: on, with the underflow maintenance
    /// interrupt when `refill`.
    fn enable(refill: bool);
    /// The value presenting `d` as pending.
    fn value(d: &Deliverable) -> u64;
    /// Where `d` goes among `lrs`.
    fn place(lrs: &[u64], free: &mut u64, d: &Deliverable) -> Placement;
    /// The pending state bit.
    const PENDING: u64;
}

/// GICv3: ICH_LR<n>_EL2.
struct V3;

impl ListRegs for V3 {
    #[inline(always)]
    fn read(n: usize) -> u64 {
        read_lr(n)
    }
    #[inline(always)]
    fn write(n: usize, v: u64) {
        write_lr(n, v)
    }
    #[inline(always)]
    fn elrsr() -> u64 {
        elrsr()
    }
    fn enable(refill: bool) {
        write_hcr(if refill { HCR_EN | HCR_UIE } else { HCR_EN });
    }
    #[inline(always)]
    fn value(d: &Deliverable) -> u64 {
        list_regs::value(d)
    }
    fn place(lrs: &[u64], free: &mut u64, d: &Deliverable) -> Placement {
        list_regs::place(lrs, free, d)
    }
    const PENDING: u64 = lr::STATE_PENDING;
}

/// GICv2: GICH_LR<n> in this core's GICH frame.
struct V2;

impl ListRegs for V2 {
    fn read(n: usize) -> u64 {
        gicv2::read_lr(n)
    }
    fn write(n: usize, v: u64) {
        gicv2::write_lr(n, v)
    }
    fn elrsr() -> u64 {
        gicv2::elrsr()
    }
    fn enable(refill: bool) {
        let v = if refill {
            list_regs_v2::HCR_EN | list_regs_v2::HCR_UIE
        } else {
            list_regs_v2::HCR_EN
        };
        gicv2::write_hcr(v);
    }
    fn value(d: &Deliverable) -> u64 {
        list_regs_v2::value(d)
    }
    fn place(lrs: &[u64], free: &mut u64, d: &Deliverable) -> Placement {
        list_regs_v2::place(lrs, free, d)
    }
    const PENDING: u64 = list_regs_v2::lr::STATE_PENDING;
}

/// Reads how many list registers this CPU has. Every core, at boot.
pub fn init_this_cpu() {
    let count = if gic::is_v2() {
        list_regs_v2::list_regs_from_vtr(gicv2::vtr())
    } else {
        let vtr: u64;
        // SAFETY: ICH_VTR_EL2 is a read-only ID register.
        unsafe { core::arch::asm!("mrs {}, ich_vtr_el2", out(reg) vtr) };
        (vtr & 0x1f) as usize + 1
    };
    let count = count.min(MAX_LIST_REGS);
    LIST_REGS.store(count, Ordering::Relaxed);
    LIST_REGS_MASK.store((1u64 << count) - 1, Ordering::Relaxed);
}

/// Switches this core's virtual CPU interface off (its vCPU is parked): no
/// maintenance interrupt can fire; [`reset_cpu_interface`] turns it on again.
pub fn disable_cpu_interface() {
    if gic::is_v2() {
        gicv2::write_hcr(0);
    } else {
        write_hcr(0);
    }
}

/// Puts this core's virtual CPU interface in its reset state before its
/// vCPU (re)starts: empty list registers, the guest's CPU-interface state
/// (VMCR, and on GICv2 the active priorities) zeroed, forwarded physical
/// interrupts left active deactivated, and the physical SPIs forwarded to
/// this vCPU routed here (a GICv2 could not name this core before it
/// brought its CPU interface up).
pub fn reset_cpu_interface() {
    if gic::is_v2() {
        for n in 0..list_regs() {
            V2::write(n, 0);
        }
        gicv2::reset_vcpu_interface_state();
        V2::enable(false);
    } else {
        for n in 0..list_regs() {
            write_lr(n, 0);
        }
        // SAFETY: the guest's virtual ICC state; the vCPU is not running.
        unsafe { core::arch::asm!("msr ich_vmcr_el2, xzr") };
        write_hcr(HCR_EN);
    }
    gic::deactivate_forwarded_ppis();
    let local = cpu::local();
    if !local.is_null() {
        // SAFETY: non-null TPIDR_EL2 points at this core's leaked CpuLocal.
        let local = unsafe { &*(local as *const CpuLocal) };
        local.vm.vgic.route_lines_of(local.vcpu.id);
    }
}

/// Moves `vcpu`'s deliverable interrupts into free list registers (this
/// core's vCPU). An interrupt already in a list register as active becomes
/// active and pending; what does not fit waits, with the underflow
/// maintenance interrupt armed to refill.
pub fn deliver(vgic: &Vgic, vcpu: usize) {
    if gic::is_v2() {
        deliver_in::<V2>(vgic, vcpu);
    } else {
        deliver_in::<V3>(vgic, vcpu);
    }
}

#[inline(always)]
fn deliver_in<L: ListRegs>(vgic: &Vgic, vcpu: usize) {
    let all = list_regs_mask();
    if L::elrsr() & all == all {
        // Every list register is empty (the vCPU handled everything it was
        // given) and usually one interrupt waits: it goes to the lowest
        // one, as the general path would put it, without a batch. Small
        // and in line: this is the refill of every kick.
        match vgic.take_single(vcpu) {
            Single::Nothing => return L::enable(false),
            Single::One(d) => {
                L::write(0, L::value(&d));
                return L::enable(false);
            }
            Single::Several => {}
        }
    }
    deliver_batch::<L>(vgic, vcpu);
}

/// [`deliver`] of several interrupts, or with list registers in use.
#[inline(never)]
fn deliver_batch<L: ListRegs>(vgic: &Vgic, vcpu: usize) {
    let nr = list_regs();
    let mut batch = Batch::new();
    let mut more = vgic.take_deliverable(vcpu, nr, &mut batch);
    if batch.is_empty() {
        L::enable(more);
        return;
    }
    let mut free = L::elrsr() & ((1u64 << nr) - 1);
    if free == (1u64 << nr) - 1 {
        // Every list register is empty (the vCPU handled everything it was
        // given, the usual case): nothing to merge with, so each interrupt
        // takes the lowest free register, as `place` would choose, without
        // reading any of them.
        for d in &batch {
            let index = free.trailing_zeros() as usize;
            free &= free - 1;
            L::write(index, L::value(d));
        }
        L::enable(more);
        return;
    }
    // Placement looks only at occupied registers: an empty one (its ELRSR
    // bit set) is not read.
    let mut lrs = [0u64; MAX_LIST_REGS];
    for (i, lr) in lrs.iter_mut().enumerate().take(nr) {
        if free & 1 << i == 0 {
            *lr = L::read(i);
        }
    }
    for d in &batch {
        match L::place(&lrs[..nr], &mut free, d) {
            Placement::Write { index, value } => {
                L::write(index, value);
                if let Some(lr) = lrs.get_mut(index) {
                    *lr = value;
                }
            }
            Placement::Merged => {}
            Placement::NoRoom => {
                vgic.requeue(vcpu, d);
                more = true;
            }
        }
    }
    L::enable(more);
}

/// Physical interrupt `line` of this core's VM arrived (priority already
/// dropped) for its interrupt `intid` (the same INTID, except a doorbell's
/// spare line): hand it to the guest with the HW bit so that the guest's
/// deactivation deactivates the physical one.
#[inline(always)]
pub fn forward(local: &CpuLocal, intid: u32, line: u32) {
    if gic::is_v2() {
        forward_in::<V2>(local, intid, line);
    } else {
        forward_in::<V3>(local, intid, line);
    }
}

#[inline(always)]
fn forward_in<L: ListRegs>(local: &CpuLocal, intid: u32, line: u32) {
    let vgic = local.vm.vgic;
    let vcpu = local.vcpu.id;
    let target = if intid < 32 {
        vcpu
    } else {
        vgic.target_of(intid)
    };
    if target == vcpu && vgic.is_enabled(vcpu, intid) && vgic.group1_enabled() {
        // Fast path: straight into a free list register.
        let free = L::elrsr() & list_regs_mask();
        if free != 0 {
            let d = Deliverable {
                intid,
                priority: vgic.forwarded_priority(vcpu, intid),
                hw: true,
                line,
            };
            // The lowest free register; the first without the jump table
            // of a register chosen at run time (the usual case).
            if free & 1 != 0 {
                L::write(0, L::value(&d));
            } else {
                L::write(free.trailing_zeros() as usize, L::value(&d));
            }
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
    let pending = if gic::is_v2() {
        (0..nr).any(|i| V2::read(i) & V2::PENDING != 0)
    } else {
        (0..nr).any(|i| V3::read(i) & V3::PENDING != 0)
    };
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
    fn signal(&self, vgic: &Vgic, phys_cpu: usize, vcpu: usize) {
        if self.is_this_cpu(phys_cpu) {
            deliver(vgic, vcpu);
        } else {
            super::interface::kick_cpu(phys_cpu);
        }
    }
    fn set_physical_enabled(&self, intid: u32, enabled: bool) {
        gic::set_spi_enabled(intid, enabled);
    }
    fn route_physical(&self, intid: u32, phys_cpu: usize) {
        gic::route_spi(intid, phys_cpu);
    }
    fn set_physical_edge(&self, intid: u32, edge: bool) {
        gic::set_spi_edge(intid, edge);
    }
    fn quiesce_physical(&self, intid: u32) {
        gic::quiesce_spi(intid);
    }
}
