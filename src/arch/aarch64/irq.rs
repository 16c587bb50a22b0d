//! Physical interrupts taken at EL2 (HCR_EL2.IMO) while a guest runs: the
//! forwarded timers and passthrough SPIs go to the guest through the list
//! registers; the kick and the maintenance interrupt make this core deliver
//! its vCPU's pending interrupts (and look at its VM's state).

use super::gic;
use super::gicv3::{KICK_SGI, MAINTENANCE_PPI};
use super::trap::GuestRegs;
use super::vgic_hw;
use crate::devices::vgic::{PTIMER_PPI, VTIMER_PPI};
use crate::config::SYSTEM;
use crate::exit::ExitKind;
use crate::vcpu::CpuLocal;
use crate::vm;

#[inline(always)]
fn local() -> &'static CpuLocal {
    // SAFETY: a core only runs a guest (and so only takes these interrupts)
    // after TPIDR_EL2 points at its leaked, never-freed CpuLocal.
    unsafe { &*(super::cpu::local() as *const CpuLocal) }
}

/// IRQ or FIQ from the guest. The forwarded timer is the hot case. The
/// frame holds only the caller-saved registers (`IRQ_VECTOR` in
/// `vectors.rs`): nothing here may read or write the guest's registers.
#[no_mangle]
extern "C" fn tessera_guest_irq(_regs: &mut GuestRegs) {
    let Some((intid, ack)) = gic::acknowledge() else {
        return;
    };
    let local = local();
    local.vcpu.count(ExitKind::Irq);
    if intid == VTIMER_PPI || intid == PTIMER_PPI {
        gic::drop_priority(ack);
        vgic_hw::forward(local, intid, intid);
        return;
    }
    // A passthrough SPI or a doorbell's spare line (the notification
    // latency): forwarded at once.
    if let Some(spi) = local.vm.vgic.spi_of_line(intid) {
        gic::drop_priority(ack);
        vgic_hw::forward(local, spi, intid);
        return;
    }
    other_irq(local, intid, ack);
}

#[inline(never)]
fn other_irq(local: &'static CpuLocal, intid: u32, ack: u32) {
    match intid {
        _ if Some(intid) == SYSTEM.board.console_irq => {
            crate::console::on_uart_interrupt();
            gic::end_of_interrupt(ack);
        }
        KICK_SGI | MAINTENANCE_PPI => {
            gic::end_of_interrupt(ack);
            // Output another core left held for an open line goes out now.
            crate::console::poll();
            if !local.vm.is_running() {
                vm::park(local.vm, local.vcpu, local.stack_top);
            }
            vgic_hw::deliver(local.vm.vgic, local.vcpu.id);
        }
        _ => {
            // Nothing else is enabled for this core; end it whatever it is.
            gic::end_of_interrupt(ack);
        }
    }
}
