//! A VM's physical interrupt lines (the GSIs of its passthrough ports and
//! devices), end to end: its virtual I/O APIC at 0xfec0_0000 (the register
//! model of [`super::vioapic`] behind a lock), mirrored onto the board's
//! I/O APIC ([`super::ioapic`]) whenever the guest changes one of its
//! entries; a physical interrupt, taken as an external-interrupt exit on
//! the core the guest routed it to, becomes the guest's vector in the
//! target vCPU's virtual local APIC; a level-triggered line stays masked
//! from its arrival until the guest's EOI of its vector.

use super::interrupts::VmApics;
use super::ioapic::{self, PhysRoute};
use super::vioapic::{Route, VIoApic};
use crate::config::SYSTEM;
use crate::devices::{AccessError, Accessor, MmioDevice};
use crate::exit::AccessWidth;
use crate::vm::Vm;
use spin::Mutex;

/// One VM's I/O APIC and what delivering its lines needs.
pub struct VmIoApic {
    state: Mutex<VIoApic>,
    vm: &'static Vm,
    apics: &'static VmApics,
}

impl VmIoApic {
    /// The I/O APIC of `vm` (its `passthrough_gsis` programmable), after
    /// reset.
    pub fn new(vm: &'static Vm, apics: &'static VmApics) -> Self {
        let pins = SYSTEM.board.ioapic.map_or(24, |io| io.pins);
        Self {
            state: Mutex::new(VIoApic::new(pins, vm.config.passthrough_gsis)),
            vm,
            apics,
        }
    }

    /// The vCPU index a route names: vCPU 0 when the guest names a vCPU
    /// the VM does not have.
    fn vcpu_of(&self, r: &Route) -> usize {
        let v = r.vcpu as usize;
        if v < self.vm.vcpus.len() {
            v
        } else {
            0
        }
    }

    /// Programs the physical entry of `gsi` as the guest's entry says.
    fn mirror(&self, gsi: u32, r: Route) {
        let cpu = self.vm.vcpus.get(self.vcpu_of(&r)).map_or(0, |v| v.phys_cpu);
        let apic_id = SYSTEM.board.cpu_mpidrs.get(cpu).map_or(0, |&id| id as u32);
        ioapic::program(
            gsi,
            PhysRoute {
                apic_id,
                level: r.level,
                active_low: r.active_low,
                masked: r.masked,
            },
        );
    }

    /// A VM (re)start: the guest's entries back to masked, and so the
    /// physical ones.
    pub fn reset(&self) {
        let mut s = self.state.lock();
        s.reset();
        for gsi in s.gsis() {
            ioapic::set_masked(gsi, true);
        }
    }

    /// The physical interrupt of `gsi` arrived on this core (acknowledged
    /// on exit): the guest's vector becomes pending in the vCPU its entry
    /// routes to. A level line is masked until the guest's EOI; the
    /// physical EOI comes after that, so the I/O APIC cannot send it again
    /// meanwhile. A GSI that is not the VM's (impossible while the
    /// physical entries follow the configs) is only ended.
    pub fn arrived(&self, gsi: u32) {
        let mut s = self.state.lock();
        let Some(route) = s.route(gsi) else {
            drop(s);
            super::smp::eoi();
            return;
        };
        let delivered = s.assert(gsi);
        drop(s);
        if route.level {
            // Delivered: until the EOI; not delivered (masked, or remote
            // IRR still set): the guest's entry says masked.
            ioapic::set_masked(gsi, true);
        }
        super::smp::eoi();
        if let Some(r) = delivered {
            let target = self.vcpu_of(&r);
            if let (Some(a), Some(v)) = (self.apics.of(target), self.vm.vcpus.get(target)) {
                a.with(|l| {
                    if r.level {
                        l.raise_level(r.vector)
                    } else {
                        l.raise(r.vector)
                    }
                });
                super::interface::kick_cpu(v.phys_cpu);
            }
        }
    }

    /// The guest ended level-triggered `vector`: lines waiting for it are
    /// unmasked again where the guest's entry is unmasked (a line still
    /// asserted then arrives again).
    pub fn eoi(&self, vector: u8) {
        self.state.lock().eoi(vector, |gsi, r| {
            if !r.masked {
                ioapic::set_masked(gsi, false);
            }
        });
    }
}

impl MmioDevice for VmIoApic {
    fn read(&self, _from: Accessor, offset: u64, width: AccessWidth) -> Result<u64, AccessError> {
        self.state
            .lock()
            .read(offset, width.bytes())
            .map(u64::from)
            .map_err(|_| AccessError::Invalid)
    }

    fn write(
        &self,
        _from: Accessor,
        offset: u64,
        width: AccessWidth,
        value: u64,
    ) -> Result<(), AccessError> {
        let mut s = self.state.lock();
        let changed = s
            .write(offset, width.bytes(), value as u32)
            .map_err(|_| AccessError::Invalid)?;
        if let Some((gsi, r)) = changed.and_then(|g| Some((g, s.route(g)?))) {
            self.mirror(gsi, r);
        }
        Ok(())
    }
}
