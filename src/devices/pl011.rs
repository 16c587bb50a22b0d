//! Virtual PL011 UART: enough of the register model for a polled guest
//! driver (and the identification registers Linux's amba bus probes).
//! Transmitted bytes are collected into lines and handed to a [`LineSink`]
//! (the hypervisor console, which tags them with the VM name).

use super::line::LineBuffer;
use super::{AccessError, Accessor, MmioDevice};
use crate::exit::AccessWidth;
use core::sync::atomic::{AtomicU32, Ordering};

/// Register offsets (PL011 TRM, table 3-1).
mod reg {
    pub const DR: u64 = 0x00;
    pub const RSR_ECR: u64 = 0x04;
    pub const FR: u64 = 0x18;
    pub const ILPR: u64 = 0x20;
    pub const IBRD: u64 = 0x24;
    pub const FBRD: u64 = 0x28;
    pub const LCR_H: u64 = 0x2c;
    pub const CR: u64 = 0x30;
    pub const IFLS: u64 = 0x34;
    pub const IMSC: u64 = 0x38;
    pub const RIS: u64 = 0x3c;
    pub const MIS: u64 = 0x40;
    pub const ICR: u64 = 0x44;
    pub const DMACR: u64 = 0x48;
    pub const PERIPH_ID0: u64 = 0xfe0;
    pub const CELL_ID3: u64 = 0xffc;
}

/// FR: transmit FIFO empty, receive FIFO empty. TXFF (bit 5) is never set:
/// the hypervisor takes every byte at once.
const FR_TXFE_RXFE: u64 = 1 << 7 | 1 << 4;
/// RIS.TXRIS: the transmit FIFO is always below its trigger level.
const RIS_TX: u32 = 1 << 5;
/// PeriphID0..3 then PCellID0..3 (PL011 r1p5, as QEMU presents it).
const ID_BYTES: [u64; 8] = [0x11, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1];
/// CR reset value: TXE | RXE.
const CR_RESET: u32 = 0x300;
/// IFLS reset value.
const IFLS_RESET: u32 = 0x12;

pub use super::line::{LineSink, LINE_MAX};

/// The virtual UART.
pub struct VirtualPl011<S: LineSink> {
    out: LineBuffer<S>,
    ibrd: AtomicU32,
    fbrd: AtomicU32,
    lcr_h: AtomicU32,
    cr: AtomicU32,
    ifls: AtomicU32,
    imsc: AtomicU32,
    dmacr: AtomicU32,
}

impl<S: LineSink> VirtualPl011<S> {
    /// A UART in its reset state, writing lines to `sink`.
    pub fn new(sink: S) -> Self {
        Self {
            out: LineBuffer::new(sink),
            ibrd: AtomicU32::new(0),
            fbrd: AtomicU32::new(0),
            lcr_h: AtomicU32::new(0),
            cr: AtomicU32::new(CR_RESET),
            ifls: AtomicU32::new(IFLS_RESET),
            imsc: AtomicU32::new(0),
            dmacr: AtomicU32::new(0),
        }
    }

    fn transmit(&self, byte: u8) {
        self.out.push(byte);
    }

    /// Emits whatever is buffered (used when the VM stops).
    pub fn flush(&self) {
        self.out.flush();
    }

    fn reg32(&self, offset: u64) -> Option<&AtomicU32> {
        Some(match offset {
            reg::IBRD => &self.ibrd,
            reg::FBRD => &self.fbrd,
            reg::LCR_H => &self.lcr_h,
            reg::CR => &self.cr,
            reg::IFLS => &self.ifls,
            reg::IMSC => &self.imsc,
            reg::DMACR => &self.dmacr,
            _ => return None,
        })
    }
}

impl<S: LineSink> MmioDevice for VirtualPl011<S> {
    fn read(&self, _: Accessor, offset: u64, width: AccessWidth) -> Result<u64, AccessError> {
        if width == AccessWidth::Double {
            return Err(AccessError::Invalid);
        }
        let value = match offset {
            reg::FR => FR_TXFE_RXFE,
            reg::DR | reg::RSR_ECR | reg::ILPR | reg::ICR => 0,
            reg::RIS => RIS_TX as u64,
            reg::MIS => (RIS_TX & self.imsc.load(Ordering::Relaxed)) as u64,
            reg::PERIPH_ID0..=reg::CELL_ID3 if offset.is_multiple_of(4) => {
                ID_BYTES[((offset - reg::PERIPH_ID0) / 4) as usize]
            }
            _ => self
                .reg32(offset)
                .ok_or(AccessError::Invalid)?
                .load(Ordering::Relaxed) as u64,
        };
        Ok(value)
    }

    fn write(
        &self,
        _: Accessor,
        offset: u64,
        width: AccessWidth,
        value: u64,
    ) -> Result<(), AccessError> {
        if width == AccessWidth::Double {
            return Err(AccessError::Invalid);
        }
        match offset {
            reg::DR => self.transmit(value as u8),
            reg::RSR_ECR | reg::ICR | reg::ILPR => {}
            reg::FR | reg::RIS | reg::MIS => {}
            reg::PERIPH_ID0..=reg::CELL_ID3 => {}
            _ => self
                .reg32(offset)
                .ok_or(AccessError::Invalid)?
                .store(value as u32, Ordering::Relaxed),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use std::sync::Mutex as StdMutex;

    #[derive(Default)]
    struct Lines(StdMutex<Vec<Vec<u8>>>);
    impl LineSink for &'static Lines {
        fn emit_line(&self, line: &[u8]) {
            self.0.lock().unwrap().push(line.to_vec());
        }
    }

    const V0: Accessor = Accessor { vcpu: 0 };

    fn uart() -> (VirtualPl011<&'static Lines>, &'static Lines) {
        let lines: &'static Lines = Box::leak(Box::default());
        (VirtualPl011::new(lines), lines)
    }

    #[test]
    fn polled_transmit_makes_lines() {
        let (u, lines) = uart();
        assert_eq!(
            u.read(V0, reg::FR, AccessWidth::Word).unwrap() & (1 << 5),
            0,
            "TXFF clear"
        );
        for b in b"hello\r\nworld\n" {
            u.write(V0, reg::DR, AccessWidth::Byte, *b as u64).unwrap();
        }
        assert_eq!(
            *lines.0.lock().unwrap(),
            vec![b"hello".to_vec(), b"world".to_vec()]
        );
    }

    #[test]
    fn long_line_is_split_and_flush_emits_rest() {
        let (u, lines) = uart();
        for _ in 0..LINE_MAX + 3 {
            u.write(V0, reg::DR, AccessWidth::Word, b'x' as u64)
                .unwrap();
        }
        u.flush();
        let l = lines.0.lock().unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].len(), LINE_MAX);
        assert_eq!(l[1].len(), 3);
    }

    #[test]
    fn control_registers_hold_values() {
        let (u, _) = uart();
        assert_eq!(u.read(V0, reg::CR, AccessWidth::Word), Ok(CR_RESET as u64));
        u.write(V0, reg::IMSC, AccessWidth::Word, 0x30).unwrap();
        assert_eq!(u.read(V0, reg::IMSC, AccessWidth::Word), Ok(0x30));
        assert_eq!(u.read(V0, reg::MIS, AccessWidth::Word), Ok(0x20));
        assert_eq!(u.read(V0, reg::PERIPH_ID0, AccessWidth::Word), Ok(0x11));
        assert_eq!(u.read(V0, reg::CELL_ID3, AccessWidth::Word), Ok(0xb1));
    }

    #[test]
    fn bad_offsets_and_widths_are_refused() {
        let (u, _) = uart();
        assert_eq!(
            u.read(V0, 0x800, AccessWidth::Word),
            Err(AccessError::Invalid)
        );
        assert_eq!(
            u.write(V0, 0x800, AccessWidth::Word, 1),
            Err(AccessError::Invalid)
        );
        assert_eq!(
            u.read(V0, reg::FR, AccessWidth::Double),
            Err(AccessError::Invalid)
        );
    }
}
