//! Devices in the x86 I/O port space and the per-VM bus they sit on, the
//! port-space twin of [`super::MmioBus`].

use super::AccessError;
use crate::exit::AccessWidth;
use alloc::vec::Vec;
use tessera_config::PortRange;

/// A device in a VM's I/O port space.
pub trait PortDevice: Send + Sync {
    /// Reads `width` bytes at `offset` from the device's first port.
    fn read(&self, offset: u16, width: AccessWidth) -> Result<u32, AccessError>;
    /// Writes `value` (already truncated to `width`) at `offset`.
    fn write(&self, offset: u16, width: AccessWidth, value: u32) -> Result<(), AccessError>;
}

struct PortRegion {
    range: PortRange,
    device: &'static dyn PortDevice,
}

/// The emulated port devices of one VM.
#[derive(Default)]
pub struct PortBus {
    regions: Vec<PortRegion>,
}

impl PortBus {
    /// Adds a device decoding `range` (config validation keeps ranges of
    /// one VM apart).
    pub fn add(&mut self, range: PortRange, device: &'static dyn PortDevice) {
        self.regions.push(PortRegion { range, device });
    }

    fn find(&self, port: u16) -> Option<(&dyn PortDevice, u16)> {
        self.regions
            .iter()
            .find(|r| r.range.contains(port))
            .map(|r| (r.device, port - r.range.base))
    }

    /// Reads `port`. A port no device decodes reads as all ones, like an
    /// empty ISA bus.
    pub fn read(&self, port: u16, width: AccessWidth) -> u32 {
        let all_ones = width.truncate(u64::MAX) as u32;
        match self.find(port) {
            Some((dev, off)) => dev.read(off, width).unwrap_or(all_ones),
            None => all_ones,
        }
    }

    /// Writes `port`; writes nobody decodes are dropped. Whether a device
    /// claimed it.
    pub fn write(&self, port: u16, width: AccessWidth, value: u32) -> bool {
        match self.find(port) {
            Some((dev, off)) => dev
                .write(off, width, width.truncate(u64::from(value)) as u32)
                .is_ok(),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::boxed::Box;
    use core::sync::atomic::{AtomicU32, Ordering};

    struct Latch(AtomicU32);
    impl PortDevice for Latch {
        fn read(&self, offset: u16, _: AccessWidth) -> Result<u32, AccessError> {
            match offset {
                0 => Ok(self.0.load(Ordering::Relaxed)),
                _ => Err(AccessError::Invalid),
            }
        }
        fn write(&self, _: u16, _: AccessWidth, value: u32) -> Result<(), AccessError> {
            self.0.store(value, Ordering::Relaxed);
            Ok(())
        }
    }

    #[test]
    fn routes_by_port_and_answers_absent_ports() {
        let mut bus = PortBus::default();
        bus.add(
            PortRange {
                base: 0x70,
                size: 2,
            },
            Box::leak(Box::new(Latch(AtomicU32::new(0)))),
        );
        assert!(bus.write(0x70, AccessWidth::Byte, 0x1234));
        assert_eq!(bus.read(0x70, AccessWidth::Word), 0x34);
        // A register the device refuses, and no device at all: all ones.
        assert_eq!(bus.read(0x71, AccessWidth::Byte), 0xff);
        assert_eq!(bus.read(0x72, AccessWidth::Half), 0xffff);
        assert_eq!(bus.read(0x6f, AccessWidth::Word), 0xffff_ffff);
        assert!(!bus.write(0x80, AccessWidth::Byte, 1));
    }
}
