//! Emulated devices and the per-VM buses they sit on.
//!
//! A device implements the trait of its address space ([`MmioDevice`] for
//! guest-physical MMIO, [`SysRegDevice`] for system registers); a bus is a
//! short, fixed list of `{range, device}` searched linearly — VMs have a
//! handful of devices, and a linear scan of a few entries beats any map.

pub mod line;
pub mod pl011;
pub mod port;
pub mod uart16550;
pub mod vgic;

use crate::exit::AccessWidth;
use alloc::boxed::Box;
use alloc::vec::Vec;

/// Why a device refused an access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessError {
    /// No register at that offset / width; the guest gets an abort.
    Invalid,
}

/// Who made an access: the trapping vCPU, as an index into its VM's vCPUs.
/// Every device belongs to exactly one VM, so this is all the context a
/// device needs to act per vCPU (banked registers, SGI senders).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accessor {
    /// Index of the vCPU in its VM.
    pub vcpu: usize,
}

/// A device in the guest-physical address space.
pub trait MmioDevice: Send + Sync {
    /// Reads `width` bytes at `offset` from the device base.
    fn read(&self, from: Accessor, offset: u64, width: AccessWidth) -> Result<u64, AccessError>;
    /// Writes `value` (already truncated to `width`) at `offset`.
    fn write(
        &self,
        from: Accessor,
        offset: u64,
        width: AccessWidth,
        value: u64,
    ) -> Result<(), AccessError>;
    /// Puts the device back in its reset state (the VM is being reset and
    /// none of its vCPUs runs).
    fn reset(&self) {}
}

/// A set of system registers a VM sees emulated (a contiguous range of
/// encodings, given when the device is added to the bus).
pub trait SysRegDevice: Send + Sync {
    /// Reads the register.
    fn read(&self, from: Accessor, sysreg: u32) -> Result<u64, AccessError>;
    /// Writes the register.
    fn write(&self, from: Accessor, sysreg: u32, value: u64) -> Result<(), AccessError>;
}

/// An emulated device's interrupt output, wired to one interrupt of its
/// VM's virtual interrupt controller. Level-sensitive: the device says
/// whether its condition holds; the controller makes it pending while it
/// does and the guest has it enabled.
pub trait InterruptLine: Send + Sync {
    /// Drives the line high (`true`) or low.
    fn set_level(&self, asserted: bool);
}

/// A line connected to nothing (devices of a VM without an interrupt for
/// them, host tests).
pub struct Unconnected;

impl InterruptLine for Unconnected {
    fn set_level(&self, _: bool) {}
}

struct MmioRegion {
    base: u64,
    size: u64,
    device: &'static dyn MmioDevice,
}

/// The MMIO devices of one VM.
#[derive(Default)]
pub struct MmioBus {
    regions: Vec<MmioRegion>,
}

impl MmioBus {
    /// Adds a device at `[base, base + size)`. Config validation guarantees
    /// windows do not overlap. Devices live as long as the system (static
    /// partitioning: nothing is torn down), so the bus holds `'static`
    /// references and their owners may keep one too.
    pub fn add(&mut self, base: u64, size: u64, device: &'static dyn MmioDevice) {
        self.regions.push(MmioRegion { base, size, device });
    }

    /// The device covering `addr` and the offset into it.
    #[inline(always)]
    pub fn find(&self, addr: u64) -> Option<(&dyn MmioDevice, u64)> {
        self.regions
            .iter()
            .find(|r| addr.wrapping_sub(r.base) < r.size)
            .map(|r| (r.device, addr - r.base))
    }

    /// Reads from whatever device covers `addr`.
    #[inline(always)]
    pub fn read(&self, from: Accessor, addr: u64, width: AccessWidth) -> Result<u64, AccessError> {
        let (dev, off) = self.find(addr).ok_or(AccessError::Invalid)?;
        dev.read(from, off, width)
    }

    /// Writes to whatever device covers `addr`.
    #[inline(always)]
    pub fn write(
        &self,
        from: Accessor,
        addr: u64,
        width: AccessWidth,
        value: u64,
    ) -> Result<(), AccessError> {
        let (dev, off) = self.find(addr).ok_or(AccessError::Invalid)?;
        dev.write(from, off, width, width.truncate(value))
    }

    /// Resets every device (VM reset).
    pub fn reset_all(&self) {
        for r in &self.regions {
            r.device.reset();
        }
    }
}

struct SysRegRange {
    first: u32,
    last: u32,
    device: Box<dyn SysRegDevice>,
}

/// The emulated system registers of one VM.
#[derive(Default)]
pub struct SysRegBus {
    ranges: Vec<SysRegRange>,
}

impl SysRegBus {
    /// Adds a device emulating the encodings `first..=last`.
    pub fn add(&mut self, first: u32, last: u32, device: Box<dyn SysRegDevice>) {
        self.ranges.push(SysRegRange {
            first,
            last,
            device,
        });
    }

    #[inline(always)]
    fn find(&self, sysreg: u32) -> Result<&dyn SysRegDevice, AccessError> {
        self.ranges
            .iter()
            .find(|r| sysreg.wrapping_sub(r.first) <= r.last - r.first)
            .map(|r| &*r.device)
            .ok_or(AccessError::Invalid)
    }

    /// Reads a register through the device that emulates it.
    #[inline(always)]
    pub fn read(&self, from: Accessor, sysreg: u32) -> Result<u64, AccessError> {
        self.find(sysreg)?.read(from, sysreg)
    }

    /// Writes a register through the device that emulates it.
    #[inline(always)]
    pub fn write(&self, from: Accessor, sysreg: u32, value: u64) -> Result<(), AccessError> {
        self.find(sysreg)?.write(from, sysreg, value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::sync::atomic::{AtomicU64, Ordering};

    struct Scratch(AtomicU64);
    impl MmioDevice for Scratch {
        fn read(&self, _: Accessor, offset: u64, _: AccessWidth) -> Result<u64, AccessError> {
            if offset == 0 {
                Ok(self.0.load(Ordering::Relaxed))
            } else {
                Err(AccessError::Invalid)
            }
        }
        fn write(
            &self,
            _: Accessor,
            _: u64,
            _: AccessWidth,
            value: u64,
        ) -> Result<(), AccessError> {
            self.0.store(value, Ordering::Relaxed);
            Ok(())
        }
    }

    struct Echo;
    impl SysRegDevice for Echo {
        fn read(&self, _: Accessor, sysreg: u32) -> Result<u64, AccessError> {
            Ok(sysreg as u64)
        }
        fn write(&self, _: Accessor, _: u32, _: u64) -> Result<(), AccessError> {
            Err(AccessError::Invalid)
        }
    }

    const V0: Accessor = Accessor { vcpu: 0 };

    #[test]
    fn sysreg_bus_routes_by_encoding_range() {
        let mut bus = SysRegBus::default();
        bus.add(0x10, 0x1f, Box::new(Echo));
        assert_eq!(bus.read(V0, 0x10), Ok(0x10));
        assert_eq!(bus.read(V0, 0x1f), Ok(0x1f));
        assert_eq!(bus.read(V0, 0x20), Err(AccessError::Invalid));
        assert_eq!(bus.read(V0, 0x0f), Err(AccessError::Invalid));
        assert_eq!(bus.write(V0, 0x10, 1), Err(AccessError::Invalid));
    }

    #[test]
    fn bus_routes_by_range_and_truncates_writes() {
        let mut bus = MmioBus::default();
        bus.add(
            0x1000,
            0x1000,
            Box::leak(Box::new(Scratch(AtomicU64::new(0)))),
        );
        bus.write(V0, 0x1000, AccessWidth::Byte, 0x1234).unwrap();
        assert_eq!(bus.read(V0, 0x1000, AccessWidth::Word), Ok(0x34));
        assert_eq!(
            bus.read(V0, 0x1008, AccessWidth::Word),
            Err(AccessError::Invalid)
        );
        assert_eq!(
            bus.read(V0, 0x2000, AccessWidth::Word),
            Err(AccessError::Invalid)
        );
        assert_eq!(
            bus.read(V0, 0x0fff, AccessWidth::Word),
            Err(AccessError::Invalid)
        );
    }
}
