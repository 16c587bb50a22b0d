//! Virtual 16550 UART (COM port) for x86 guests: enough of the register
//! model for a polled driver (transmitter always ready, no interrupts).
//! Transmitted bytes are collected into lines for a [`LineSink`] (the
//! hypervisor console, tagged with the VM name); received bytes come from
//! an optional [`ByteSource`] (the console's input switch).

use super::line::{LineBuffer, LineSink};
use super::port::PortDevice;
use super::AccessError;
use crate::exit::AccessWidth;
use core::sync::atomic::{AtomicU8, Ordering};

/// Register offsets from the base port.
mod reg {
    /// Receive buffer / transmit holding (DLAB = 0), divisor low (DLAB = 1).
    pub const DATA: u16 = 0;
    /// Interrupt enable (DLAB = 0), divisor high (DLAB = 1).
    pub const IER: u16 = 1;
    /// Interrupt identification (read) / FIFO control (write).
    pub const IIR_FCR: u16 = 2;
    /// Line control.
    pub const LCR: u16 = 3;
    /// Modem control.
    pub const MCR: u16 = 4;
    /// Line status.
    pub const LSR: u16 = 5;
    /// Modem status.
    pub const MSR: u16 = 6;
    /// Scratch.
    pub const SCR: u16 = 7;
}

/// LCR.DLAB: data and IER address the divisor latch.
const LCR_DLAB: u8 = 1 << 7;
/// LSR: transmit holding register empty, transmitter empty.
pub const LSR_THRE_TEMT: u8 = 1 << 5 | 1 << 6;
/// IIR: no interrupt pending.
const IIR_NONE: u8 = 1;
/// MSR: clear to send, data set ready, carrier detect (a cable is there).
const MSR_CTS_DSR_DCD: u8 = 1 << 4 | 1 << 5 | 1 << 7;

/// Where a virtual UART's received bytes come from.
pub trait ByteSource: Send + Sync {
    /// Whether a byte is waiting (the source may look for new input).
    fn ready(&self) -> bool;
    /// The next byte, if one is waiting.
    fn take(&self) -> Option<u8>;
}

/// LSR: data ready.
const LSR_DR: u8 = 1 << 0;

/// The virtual UART.
pub struct VirtualUart16550<S: LineSink> {
    out: LineBuffer<S>,
    input: Option<&'static dyn ByteSource>,
    ier: AtomicU8,
    lcr: AtomicU8,
    mcr: AtomicU8,
    scr: AtomicU8,
    dll: AtomicU8,
    dlm: AtomicU8,
}

impl<S: LineSink> VirtualUart16550<S> {
    /// A UART in its reset state, writing lines to `sink`.
    pub fn new(sink: S) -> Self {
        Self {
            out: LineBuffer::new(sink),
            input: None,
            ier: AtomicU8::new(0),
            lcr: AtomicU8::new(0),
            mcr: AtomicU8::new(0),
            scr: AtomicU8::new(0),
            dll: AtomicU8::new(0),
            dlm: AtomicU8::new(0),
        }
    }

    /// The same UART, receiving from `input`.
    pub fn with_input(mut self, input: &'static dyn ByteSource) -> Self {
        self.input = Some(input);
        self
    }

    fn dlab(&self) -> bool {
        self.lcr.load(Ordering::Relaxed) & LCR_DLAB != 0
    }

    /// Emits a partial line (the VM is going away).
    pub fn flush(&self) {
        self.out.flush();
    }
}

impl<S: LineSink> PortDevice for VirtualUart16550<S> {
    fn read(&self, offset: u16, width: AccessWidth) -> Result<u32, AccessError> {
        if width != AccessWidth::Byte {
            return Err(AccessError::Invalid);
        }
        let v = match offset {
            reg::DATA if self.dlab() => self.dll.load(Ordering::Relaxed),
            reg::DATA => self.input.and_then(|i| i.take()).unwrap_or(0),
            reg::IER if self.dlab() => self.dlm.load(Ordering::Relaxed),
            reg::IER => self.ier.load(Ordering::Relaxed),
            reg::IIR_FCR => IIR_NONE,
            reg::LCR => self.lcr.load(Ordering::Relaxed),
            reg::MCR => self.mcr.load(Ordering::Relaxed),
            reg::LSR if self.input.is_some_and(|i| i.ready()) => LSR_THRE_TEMT | LSR_DR,
            reg::LSR => LSR_THRE_TEMT,
            reg::MSR => MSR_CTS_DSR_DCD,
            reg::SCR => self.scr.load(Ordering::Relaxed),
            _ => return Err(AccessError::Invalid),
        };
        Ok(u32::from(v))
    }

    fn write(&self, offset: u16, width: AccessWidth, value: u32) -> Result<(), AccessError> {
        if width != AccessWidth::Byte {
            return Err(AccessError::Invalid);
        }
        let v = value as u8;
        match offset {
            reg::DATA if self.dlab() => self.dll.store(v, Ordering::Relaxed),
            reg::DATA => self.out.push(v),
            reg::IER if self.dlab() => self.dlm.store(v, Ordering::Relaxed),
            reg::IER => self.ier.store(v & 0x0f, Ordering::Relaxed),
            reg::IIR_FCR => {}
            reg::LCR => self.lcr.store(v, Ordering::Relaxed),
            reg::MCR => self.mcr.store(v & 0x1f, Ordering::Relaxed),
            reg::SCR => self.scr.store(v, Ordering::Relaxed),
            // LSR and MSR are read-only: writes are ignored, as on hardware.
            reg::LSR | reg::MSR => {}
            _ => return Err(AccessError::Invalid),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;
    use alloc::vec::Vec;
    use spin::Mutex;

    #[derive(Default)]
    struct Lines(Mutex<Vec<String>>);
    impl LineSink for &'static Lines {
        fn emit_line(&self, line: &[u8]) {
            self.0.lock().push(String::from_utf8_lossy(line).into());
        }
    }

    fn uart() -> (VirtualUart16550<&'static Lines>, &'static Lines) {
        let lines: &'static Lines = alloc::boxed::Box::leak(Default::default());
        (VirtualUart16550::new(lines), lines)
    }

    #[test]
    fn polled_transmit_makes_lines() {
        let (u, lines) = uart();
        for b in b"hi\r\nyou" {
            assert_eq!(
                u.read(reg::LSR, AccessWidth::Byte),
                Ok(u32::from(LSR_THRE_TEMT))
            );
            u.write(reg::DATA, AccessWidth::Byte, u32::from(*b))
                .unwrap();
        }
        assert_eq!(*lines.0.lock(), ["hi"]);
        u.flush();
        assert_eq!(*lines.0.lock(), ["hi", "you"]);
    }

    struct Typed(Mutex<Vec<u8>>);
    impl ByteSource for Typed {
        fn ready(&self) -> bool {
            !self.0.lock().is_empty()
        }
        fn take(&self) -> Option<u8> {
            let mut v = self.0.lock();
            (!v.is_empty()).then(|| v.remove(0))
        }
    }

    #[test]
    fn received_bytes_set_data_ready_and_read_in_order() {
        let (u, _) = uart();
        let typed: &'static Typed =
            alloc::boxed::Box::leak(alloc::boxed::Box::new(Typed(Mutex::new(b"ok".to_vec()))));
        let u = u.with_input(typed);
        let lsr = |u: &VirtualUart16550<_>| u.read(reg::LSR, AccessWidth::Byte).unwrap();
        assert_eq!(lsr(&u), u32::from(LSR_THRE_TEMT | LSR_DR));
        assert_eq!(u.read(reg::DATA, AccessWidth::Byte), Ok(u32::from(b'o')));
        assert_eq!(u.read(reg::DATA, AccessWidth::Byte), Ok(u32::from(b'k')));
        assert_eq!(lsr(&u), u32::from(LSR_THRE_TEMT));
        assert_eq!(u.read(reg::DATA, AccessWidth::Byte), Ok(0), "nothing left");
    }

    #[test]
    fn divisor_latch_and_scratch() {
        let (u, lines) = uart();
        u.write(reg::LCR, AccessWidth::Byte, 0x83).unwrap();
        u.write(reg::DATA, AccessWidth::Byte, 1).unwrap();
        u.write(reg::IER, AccessWidth::Byte, 0).unwrap();
        assert_eq!(u.read(reg::DATA, AccessWidth::Byte), Ok(1));
        u.write(reg::LCR, AccessWidth::Byte, 0x03).unwrap();
        assert_eq!(u.read(reg::DATA, AccessWidth::Byte), Ok(0));
        assert!(lines.0.lock().is_empty(), "divisor writes are not output");
        u.write(reg::SCR, AccessWidth::Byte, 0x5a).unwrap();
        assert_eq!(u.read(reg::SCR, AccessWidth::Byte), Ok(0x5a));
        assert_eq!(u.read(reg::IIR_FCR, AccessWidth::Byte), Ok(1));
        assert_eq!(
            u.read(reg::LSR, AccessWidth::Half),
            Err(AccessError::Invalid)
        );
    }
}
