//! Virtual PL011 UART, complete enough for Linux's `amba-pl011` driver
//! (interrupt-driven, FIFOs on) and for polled bare-metal guests.
//!
//! - Transmit: each byte written to DR goes to a [`SerialBackend`] (the
//!   hypervisor console's per-VM buffer). The transmit FIFO the guest sees
//!   *is* that buffer: TXFF when it is full, TXFE when it is empty, TXRIS
//!   while it has at least the room the IFLS trigger promises (Linux's
//!   interrupt handler writes half a FIFO without checking TXFF). The
//!   backend calls [`VirtualPl011::tx_room_changed`] when it frees room.
//!   BUSY is never set: the virtual line has no bit times, and Linux's
//!   console write waits for BUSY to clear after every message — tied to
//!   the buffer, that would make a VM wait for the physical UART and for
//!   other VMs' output. A guest waits only when its own buffer is full.
//! - Receive: a 32-entry FIFO (1 entry with LCR_H.FEN clear) filled by
//!   [`VirtualPl011::receive`]; DR reads pop it. RXRIS when the level
//!   reaches the IFLS trigger, RTRIS (receive timeout) whenever it holds
//!   data: a virtual line has no bit times to wait, and Linux clears
//!   neither, it reads until RXFE. A byte arriving on a full FIFO is lost
//!   and latches OERIS.
//! - Interrupts: RIS is recomputed after every change; the interrupt line
//!   follows RIS & IMSC (level). ICR clears latched sources; a condition
//!   that still holds stays set.
//! - CR.UARTEN/TXE/RXE gate transmit and receive. The reset value has
//!   UARTEN set (0x301) as a boot loader leaves a console UART: bare-metal
//!   guests and Linux's earlycon write DR without enabling it.
//! - PeriphID says revision 3 (r1p5), the PL011 with 32-entry FIFOs, so
//!   Linux sizes its FIFO as we do. DMACR is accepted and ignored.

use super::{AccessError, Accessor, InterruptLine, MmioDevice};
use crate::exit::AccessWidth;
use core::sync::atomic::{AtomicU32, Ordering};
use spin::Mutex;

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

/// FR bits (the modem lines CTS, DSR, DCD, RI read as 0, as on QEMU).
pub mod fr {
    /// Busy transmitting (never set, see the module doc).
    pub const BUSY: u32 = 1 << 3;
    /// Receive FIFO empty.
    pub const RXFE: u32 = 1 << 4;
    /// Transmit FIFO full.
    pub const TXFF: u32 = 1 << 5;
    /// Receive FIFO full.
    pub const RXFF: u32 = 1 << 6;
    /// Transmit FIFO empty.
    pub const TXFE: u32 = 1 << 7;
}

/// Interrupt bits (IMSC, RIS, MIS, ICR).
pub mod int {
    /// Receive.
    pub const RX: u32 = 1 << 4;
    /// Transmit.
    pub const TX: u32 = 1 << 5;
    /// Receive timeout.
    pub const RT: u32 = 1 << 6;
    /// Overrun error.
    pub const OE: u32 = 1 << 10;
    /// Every interrupt source of the PL011.
    pub const ALL: u32 = 0x7ff;
}

/// CR bits.
pub mod cr {
    /// UART enable.
    pub const UARTEN: u32 = 1 << 0;
    /// Transmit enable.
    pub const TXE: u32 = 1 << 8;
    /// Receive enable.
    pub const RXE: u32 = 1 << 9;
}

/// LCR_H.FEN: FIFOs enabled.
pub const LCR_H_FEN: u32 = 1 << 4;

/// PeriphID0..3 then PCellID0..3: PL011 (0x011), ARM (0x41), revision 3.
const ID_BYTES: [u8; 8] = [0x11, 0x10, 0x34, 0x00, 0x0d, 0xf0, 0x05, 0xb1];
/// CR at reset: enabled, as a boot loader leaves a console.
const CR_RESET: u32 = cr::UARTEN | cr::TXE | cr::RXE;
/// IFLS at reset: both triggers at half full.
const IFLS_RESET: u32 = 0x12;
/// Depth of each FIFO with FEN set.
pub const FIFO_DEPTH: usize = 32;
/// Writable bits of each register (the rest reads as zero).
const CR_MASK: u32 = 0xff87;
const LCR_H_MASK: u32 = 0xff;
const IFLS_MASK: u32 = 0x3f;
const IMSC_MASK: u32 = int::ALL;
const DMACR_MASK: u32 = 0x7;

/// Where transmitted bytes go (the console's buffer for this VM).
pub trait SerialBackend: Send + Sync {
    /// Queues one byte; `false` if the buffer is full (the byte is lost,
    /// as on a UART written while TXFF is set).
    fn transmit(&self, byte: u8) -> bool;
    /// Bytes queued and not yet written out, and bytes that can be queued
    /// now.
    fn tx_level(&self) -> (usize, usize);
    /// Lets the backend make progress when the guest polls FR or reads DR
    /// (drain output, fetch input). Called with no UART lock held.
    fn poll(&self) {}
    /// The guest read DR: its receive FIFO has room for held input.
    /// Called with no UART lock held.
    fn rx_consumed(&self) {}
    /// The guest's driver wrote IMSC: it has sent what it had (Linux masks
    /// the transmit interrupt when its buffer runs empty, and restores IMSC
    /// after each console message), so an open line of this UART need not
    /// hold other output back. Called with no UART lock held.
    fn tx_paused(&self) {}
    /// Writes out everything queued, waiting if needed (the VM stopped).
    fn flush(&self) {}
}

/// The registers and the receive FIFO.
struct State {
    rx: heapless::Deque<u8, FIFO_DEPTH>,
    ibrd: u32,
    fbrd: u32,
    lcr_h: u32,
    cr: u32,
    ifls: u32,
    imsc: u32,
    dmacr: u32,
    /// Latched sources that no condition re-asserts (overrun).
    latched: u32,
    /// The level last driven on the interrupt line.
    level: bool,
}

impl State {
    const RESET: State = State {
        rx: heapless::Deque::new(),
        ibrd: 0,
        fbrd: 0,
        lcr_h: 0,
        cr: CR_RESET,
        ifls: IFLS_RESET,
        imsc: 0,
        dmacr: 0,
        latched: 0,
        level: false,
    };

    fn fifo_on(&self) -> bool {
        self.lcr_h & LCR_H_FEN != 0
    }

    fn rx_depth(&self) -> usize {
        if self.fifo_on() {
            FIFO_DEPTH
        } else {
            1
        }
    }

    fn enabled(&self, dir: u32) -> bool {
        self.cr & (cr::UARTEN | dir) == cr::UARTEN | dir
    }

    /// FIFO level an IFLS trigger field selects (1/8 .. 7/8; reserved
    /// encodings act as 1/2).
    fn trigger(field: u32) -> usize {
        match field {
            0 => FIFO_DEPTH / 8,
            1 => FIFO_DEPTH / 4,
            3 => FIFO_DEPTH * 3 / 4,
            4 => FIFO_DEPTH * 7 / 8,
            _ => FIFO_DEPTH / 2,
        }
    }

    /// Raw interrupt status, given the transmit buffer's free room.
    fn ris(&self, tx_room: usize) -> u32 {
        let mut ris = self.latched;
        let (rx_trigger, tx_room_needed) = if self.fifo_on() {
            (
                Self::trigger(self.ifls >> 3 & 7),
                FIFO_DEPTH - Self::trigger(self.ifls & 7),
            )
        } else {
            (1, 1)
        };
        if self.rx.len() >= rx_trigger {
            ris |= int::RX;
        }
        if !self.rx.is_empty() {
            ris |= int::RT;
        }
        if tx_room >= tx_room_needed {
            ris |= int::TX;
        }
        ris
    }

    fn rx_flags(&self) -> u32 {
        let mut v = 0;
        if self.rx.is_empty() {
            v |= fr::RXFE;
        }
        if self.rx.len() >= self.rx_depth() {
            v |= fr::RXFF;
        }
        v
    }
}

/// The virtual UART of one VM.
pub struct VirtualPl011<B: SerialBackend> {
    backend: B,
    irq: &'static dyn InterruptLine,
    state: Mutex<State>,
    /// FR's receive bits (RXFE, RXFF), kept with the FIFO under the lock,
    /// so FR polls (the hot path of polled guests) need no lock.
    rx_flags: AtomicU32,
}

impl<B: SerialBackend> VirtualPl011<B> {
    /// A UART in its reset state, transmitting to `backend`, its interrupt
    /// output wired to `irq`.
    pub fn new(backend: B, irq: &'static dyn InterruptLine) -> Self {
        Self {
            backend,
            irq,
            state: Mutex::new(State::RESET),
            rx_flags: AtomicU32::new(fr::RXFE),
        }
    }

    /// The transmit backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// A byte arrived on the line. `false` if it was lost (receiver
    /// disabled, or the FIFO full: that latches an overrun).
    pub fn receive(&self, byte: u8) -> bool {
        let mut s = self.state.lock();
        let accepted = if !s.enabled(cr::RXE) {
            false
        } else if s.rx.len() >= s.rx_depth() {
            s.latched |= int::OE;
            false
        } else {
            s.rx.push_back(byte).is_ok()
        };
        self.rx_changed(&mut s);
        accepted
    }

    /// Whether [`Self::receive`] would accept a byte now.
    pub fn can_receive(&self) -> bool {
        let s = self.state.lock();
        s.enabled(cr::RXE) && s.rx.len() < s.rx_depth()
    }

    /// The backend freed (or used) transmit room: re-evaluate TX.
    pub fn tx_room_changed(&self) {
        let mut s = self.state.lock();
        self.update_irq(&mut s);
    }

    /// Writes out what the VM transmitted (used when the VM stops).
    pub fn flush(&self) {
        self.backend.flush();
    }

    /// The receive FIFO or its depth changed: republish FR's receive bits,
    /// then the interrupt.
    fn rx_changed(&self, s: &mut State) {
        self.rx_flags.store(s.rx_flags(), Ordering::Relaxed);
        self.update_irq(s);
    }

    /// Recomputes RIS and drives the line: high whenever RIS & IMSC is not
    /// zero (again after every change: the controller re-samples it), low
    /// when it becomes zero. Called with the state locked so two cores
    /// cannot drive stale levels out of order.
    fn update_irq(&self, s: &mut State) {
        // Nothing unmasked (polled guests): no need to compute RIS.
        let level = s.imsc != 0 && s.ris(self.backend.tx_level().1) & s.imsc != 0;
        if level || s.level {
            self.irq.set_level(level);
        }
        s.level = level;
    }

    fn reg(s: &mut State, offset: u64) -> Option<(&mut u32, u32)> {
        Some(match offset {
            reg::IBRD => (&mut s.ibrd, 0xffff),
            reg::FBRD => (&mut s.fbrd, 0x3f),
            reg::LCR_H => (&mut s.lcr_h, LCR_H_MASK),
            reg::CR => (&mut s.cr, CR_MASK),
            reg::IFLS => (&mut s.ifls, IFLS_MASK),
            reg::IMSC => (&mut s.imsc, IMSC_MASK),
            reg::DMACR => (&mut s.dmacr, DMACR_MASK),
            _ => return None,
        })
    }
}

impl<B: SerialBackend> VirtualPl011<B> {
    /// FR: the hot path of polled guests, so no lock and nothing inlined
    /// that is not needed here.
    #[inline(always)]
    fn read_fr(&self) -> u32 {
        self.backend.poll();
        let mut v = self.rx_flags.load(Ordering::Relaxed);
        let (queued, room) = self.backend.tx_level();
        if room == 0 {
            v |= fr::TXFF;
        }
        if queued == 0 {
            v |= fr::TXFE;
        }
        v
    }

    #[inline(never)]
    fn read_other(&self, offset: u64) -> Result<u32, AccessError> {
        Ok(match offset {
            reg::DR => {
                self.backend.poll();
                let mut s = self.state.lock();
                let byte = s.rx.pop_front().unwrap_or(0);
                self.rx_changed(&mut s);
                drop(s);
                self.backend.rx_consumed();
                byte as u32
            }
            reg::RSR_ECR | reg::ILPR | reg::ICR => 0,
            reg::RIS => self.state.lock().ris(self.backend.tx_level().1),
            reg::MIS => {
                let s = self.state.lock();
                s.ris(self.backend.tx_level().1) & s.imsc
            }
            reg::PERIPH_ID0..=reg::CELL_ID3 if offset.is_multiple_of(4) => {
                ID_BYTES[((offset - reg::PERIPH_ID0) / 4) as usize] as u32
            }
            _ => {
                let mut s = self.state.lock();
                *Self::reg(&mut s, offset).ok_or(AccessError::Invalid)?.0
            }
        })
    }

    /// A transmitted byte. The backend may drain and call back into
    /// [`Self::tx_room_changed`], so no lock is held around it.
    #[inline(never)]
    fn write_dr(&self, byte: u8) {
        let enabled = self.state.lock().enabled(cr::TXE);
        if enabled {
            self.backend.transmit(byte);
        }
        self.tx_room_changed();
    }
}

impl<B: SerialBackend> MmioDevice for VirtualPl011<B> {
    fn read(&self, _: Accessor, offset: u64, width: AccessWidth) -> Result<u64, AccessError> {
        if width == AccessWidth::Double {
            return Err(AccessError::Invalid);
        }
        if offset == reg::FR {
            return Ok(self.read_fr() as u64);
        }
        self.read_other(offset).map(u64::from)
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
        let value = value as u32;
        match offset {
            reg::DR => self.write_dr(value as u8),
            reg::ICR => {
                let mut s = self.state.lock();
                s.latched &= !value;
                self.update_irq(&mut s);
            }
            reg::RSR_ECR => {
                // Writing clears the error flags; only overrun is modelled.
                let mut s = self.state.lock();
                s.latched &= !int::OE;
                self.update_irq(&mut s);
            }
            reg::ILPR | reg::FR | reg::RIS | reg::MIS => {}
            reg::PERIPH_ID0..=reg::CELL_ID3 => {}
            reg::IMSC => {
                let mut s = self.state.lock();
                s.imsc = value & IMSC_MASK;
                self.update_irq(&mut s);
                drop(s);
                self.backend.tx_paused();
            }
            _ => {
                let mut s = self.state.lock();
                let (r, mask) = Self::reg(&mut s, offset).ok_or(AccessError::Invalid)?;
                *r = value & mask;
                // FEN off leaves a 1-entry FIFO: keep the oldest byte.
                if offset == reg::LCR_H {
                    if !s.fifo_on() {
                        while s.rx.len() > 1 {
                            s.rx.pop_back();
                        }
                    }
                    self.rx_changed(&mut s);
                } else {
                    self.update_irq(&mut s);
                }
            }
        }
        Ok(())
    }

    fn reset(&self) {
        let mut s = self.state.lock();
        let driven = s.level;
        *s = State::RESET;
        s.level = driven;
        self.rx_changed(&mut s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use core::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex as StdMutex;

    /// A transmit buffer of `cap` bytes the test drains by hand.
    struct Buffer {
        out: StdMutex<Vec<u8>>,
        cap: usize,
        polls: AtomicUsize,
        paused: AtomicUsize,
        consumed: AtomicUsize,
    }

    impl SerialBackend for &'static Buffer {
        fn transmit(&self, byte: u8) -> bool {
            let mut out = self.out.lock().unwrap();
            if out.len() == self.cap {
                return false;
            }
            out.push(byte);
            true
        }
        fn tx_level(&self) -> (usize, usize) {
            let n = self.out.lock().unwrap().len();
            (n, self.cap - n)
        }
        fn poll(&self) {
            self.polls.fetch_add(1, Ordering::Relaxed);
        }
        fn tx_paused(&self) {
            self.paused.fetch_add(1, Ordering::Relaxed);
        }
        fn rx_consumed(&self) {
            self.consumed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records every level driven.
    #[derive(Default)]
    struct Line(StdMutex<Vec<bool>>);

    impl InterruptLine for Line {
        fn set_level(&self, asserted: bool) {
            self.0.lock().unwrap().push(asserted);
        }
    }

    impl Line {
        fn high(&self) -> bool {
            self.0.lock().unwrap().last().copied().unwrap_or(false)
        }
        fn take(&self) -> Vec<bool> {
            core::mem::take(&mut self.0.lock().unwrap())
        }
    }

    const V0: Accessor = Accessor { vcpu: 0 };
    const W: AccessWidth = AccessWidth::Word;

    struct Rig {
        u: VirtualPl011<&'static Buffer>,
        buf: &'static Buffer,
        line: &'static Line,
    }

    impl Rig {
        fn new(cap: usize) -> Self {
            let buf: &'static Buffer = Box::leak(Box::new(Buffer {
                out: StdMutex::new(Vec::new()),
                cap,
                polls: AtomicUsize::new(0),
                paused: AtomicUsize::new(0),
                consumed: AtomicUsize::new(0),
            }));
            let line: &'static Line = Box::leak(Box::default());
            Rig {
                u: VirtualPl011::new(buf, line),
                buf,
                line,
            }
        }
        fn rd(&self, offset: u64) -> u32 {
            self.u.read(V0, offset, W).unwrap() as u32
        }
        fn wr(&self, offset: u64, value: u32) {
            self.u.write(V0, offset, W, value as u64).unwrap()
        }
        /// The console writes `n` bytes out.
        fn drain(&self, n: usize) {
            self.buf.out.lock().unwrap().drain(..n);
            self.u.tx_room_changed();
        }
        fn fifo_on(&self) {
            self.wr(reg::LCR_H, LCR_H_FEN | 0x60);
        }
    }

    #[test]
    fn identification_registers_read_as_a_32_byte_fifo_pl011() {
        let r = Rig::new(64);
        let id: Vec<u32> = (0..8).map(|i| r.rd(reg::PERIPH_ID0 + 4 * i)).collect();
        assert_eq!(id, [0x11, 0x10, 0x34, 0x00, 0x0d, 0xf0, 0x05, 0xb1]);
        // Linux: amba_rev = PeriphID2[7:4]; revision 3 and up have 32 entries.
        assert_eq!(id[2] >> 4, 3);
    }

    #[test]
    fn reset_values_and_register_masks() {
        let r = Rig::new(64);
        assert_eq!(r.rd(reg::CR), 0x301);
        assert_eq!(r.rd(reg::IFLS), 0x12);
        assert_eq!(r.rd(reg::IMSC), 0);
        assert_eq!(r.rd(reg::LCR_H), 0);
        r.wr(reg::IMSC, 0xffff_ffff);
        assert_eq!(r.rd(reg::IMSC), int::ALL);
        r.wr(reg::DMACR, 7);
        assert_eq!(r.rd(reg::DMACR), 7, "DMACR accepted");
        r.wr(reg::IBRD, 0x1a);
        r.fifo_on();
        r.u.reset();
        assert_eq!(r.rd(reg::IMSC), 0);
        assert_eq!(r.rd(reg::IBRD), 0);
        assert_eq!(r.rd(reg::LCR_H), 0);
        assert_eq!(r.rd(reg::DMACR), 0);
        assert!(!r.line.high(), "reset lowers the line");
    }

    #[test]
    fn transmit_goes_to_the_backend_and_flags_follow_its_buffer() {
        let r = Rig::new(4);
        let f = r.rd(reg::FR);
        assert_eq!(
            f & (fr::TXFE | fr::RXFE | fr::BUSY | fr::TXFF),
            fr::TXFE | fr::RXFE
        );
        for b in b"abcd" {
            r.wr(reg::DR, *b as u32);
        }
        assert_eq!(*r.buf.out.lock().unwrap(), b"abcd");
        let f = r.rd(reg::FR);
        assert_eq!(f & (fr::TXFE | fr::BUSY | fr::TXFF), fr::TXFF);
        r.wr(reg::DR, b'e' as u32);
        assert_eq!(r.buf.out.lock().unwrap().len(), 4, "full: lost");
        r.drain(3);
        assert_eq!(r.rd(reg::FR) & (fr::TXFE | fr::TXFF | fr::BUSY), 0);
        r.drain(1);
        assert_eq!(r.rd(reg::FR) & (fr::TXFE | fr::BUSY), fr::TXFE);
    }

    #[test]
    fn cr_gates_transmit_and_receive() {
        let r = Rig::new(64);
        r.wr(reg::CR, cr::UARTEN | cr::RXE);
        r.wr(reg::DR, b'x' as u32);
        assert!(r.buf.out.lock().unwrap().is_empty(), "TXE clear");
        assert!(r.u.receive(b'1'));
        r.wr(reg::CR, cr::TXE | cr::RXE);
        assert!(!r.u.receive(b'2'), "UARTEN clear");
        assert!(!r.u.can_receive());
        r.wr(reg::DR, b'y' as u32);
        assert!(r.buf.out.lock().unwrap().is_empty(), "UARTEN clear");
        r.wr(reg::CR, CR_RESET);
        r.wr(reg::DR, b'z' as u32);
        assert_eq!(*r.buf.out.lock().unwrap(), b"z");
        assert_eq!(r.rd(reg::DR), b'1' as u32);
    }

    #[test]
    fn receive_fifo_fills_pops_and_overruns() {
        let r = Rig::new(64);
        r.fifo_on();
        assert_eq!(r.rd(reg::FR) & fr::RXFE, fr::RXFE);
        for i in 0..FIFO_DEPTH as u8 {
            assert!(r.u.receive(b'a' + i % 26));
        }
        assert_eq!(r.rd(reg::FR) & (fr::RXFE | fr::RXFF), fr::RXFF);
        assert!(!r.u.receive(b'!'), "full: dropped");
        assert_eq!(r.rd(reg::RIS) & int::OE, int::OE, "overrun latched");
        assert_eq!(r.rd(reg::DR), b'a' as u32);
        assert_eq!(r.rd(reg::DR), b'b' as u32);
        assert_eq!(r.rd(reg::FR) & (fr::RXFE | fr::RXFF), 0);
        for _ in 2..FIFO_DEPTH {
            r.rd(reg::DR);
        }
        assert_eq!(r.rd(reg::FR) & fr::RXFE, fr::RXFE);
        assert_eq!(r.rd(reg::DR), 0, "empty FIFO reads 0");
        r.wr(reg::ICR, int::OE);
        assert_eq!(r.rd(reg::RIS) & int::OE, 0, "ICR clears the overrun");
    }

    #[test]
    fn fifo_disabled_is_one_entry_deep() {
        let r = Rig::new(64);
        assert!(r.u.receive(b'1'));
        assert_eq!(r.rd(reg::FR) & fr::RXFF, fr::RXFF);
        assert!(!r.u.receive(b'2'));
        assert_eq!(r.rd(reg::DR), b'1' as u32);
        r.fifo_on();
        assert!(r.u.receive(b'3') && r.u.receive(b'4') && r.u.receive(b'5'));
        r.wr(reg::LCR_H, 0x60);
        assert_eq!(r.rd(reg::DR), b'3' as u32, "FEN off keeps the oldest");
        assert_eq!(r.rd(reg::FR) & fr::RXFE, fr::RXFE);
    }

    #[test]
    fn rx_interrupt_follows_the_trigger_level_and_timeout() {
        let r = Rig::new(64);
        r.fifo_on();
        r.wr(reg::IFLS, 0x00); // RX trigger 1/8: 4 entries
        r.u.receive(b'a');
        assert_eq!(r.rd(reg::RIS) & (int::RX | int::RT), int::RT);
        for b in b"bcd" {
            r.u.receive(*b);
        }
        assert_eq!(r.rd(reg::RIS) & (int::RX | int::RT), int::RX | int::RT);
        r.rd(reg::DR);
        assert_eq!(r.rd(reg::RIS) & (int::RX | int::RT), int::RT);
        // ICR cannot clear a condition that still holds.
        r.wr(reg::ICR, int::RT | int::RX);
        assert_eq!(r.rd(reg::RIS) & int::RT, int::RT);
        for _ in 0..3 {
            r.rd(reg::DR);
        }
        assert_eq!(r.rd(reg::RIS) & (int::RX | int::RT), 0);
    }

    #[test]
    fn tx_interrupt_means_room_for_half_a_fifo() {
        let r = Rig::new(40);
        r.fifo_on();
        assert_eq!(r.rd(reg::RIS) & int::TX, int::TX);
        for _ in 0..25 {
            r.wr(reg::DR, b'x' as u32);
        }
        // 15 bytes of room < 16 promised by the default 1/2 trigger.
        assert_eq!(r.rd(reg::RIS) & int::TX, 0);
        r.drain(1);
        assert_eq!(r.rd(reg::RIS) & int::TX, int::TX);
    }

    #[test]
    fn the_interrupt_line_follows_ris_and_imsc() {
        let r = Rig::new(40);
        r.fifo_on();
        r.line.take();
        r.u.receive(b'k');
        assert_eq!(r.line.take(), Vec::<bool>::new(), "masked: line stays low");
        r.wr(reg::IMSC, int::RX | int::RT);
        assert_eq!(r.line.take(), [true]);
        assert_eq!(r.rd(reg::MIS), int::RT);
        // The guest's handler reads the byte: the line drops.
        assert_eq!(r.rd(reg::DR), b'k' as u32);
        assert_eq!(r.line.take(), [false]);
        // Unmask TX: room, so high; fill the buffer: low; room again: high.
        r.wr(reg::IMSC, int::TX);
        assert_eq!(r.line.take(), [true]);
        for _ in 0..40 {
            r.wr(reg::DR, b'y' as u32);
        }
        assert!(!r.line.high());
        r.line.take();
        r.drain(39);
        assert_eq!(r.line.take(), [true], "raised when space frees");
        // Still pending after the handler's ICR: driven high again.
        r.wr(reg::ICR, int::ALL);
        assert_eq!(r.line.take(), [true]);
        r.wr(reg::IMSC, 0);
        assert_eq!(r.line.take(), [false]);
        // Low and unchanged: the controller is not bothered.
        r.wr(reg::IMSC, 0);
        assert_eq!(r.line.take(), Vec::<bool>::new());
    }

    #[test]
    fn fr_and_dr_reads_let_the_backend_poll_and_refill() {
        let r = Rig::new(8);
        r.rd(reg::FR);
        r.rd(reg::DR);
        r.rd(reg::IMSC);
        assert_eq!(r.buf.polls.load(Ordering::Relaxed), 2);
        assert_eq!(
            r.buf.consumed.load(Ordering::Relaxed),
            1,
            "a DR read offers room for held input"
        );
    }

    #[test]
    fn an_imsc_write_tells_the_backend_the_driver_paused() {
        let r = Rig::new(8);
        r.wr(reg::DR, b'x' as u32);
        r.wr(reg::CR, CR_RESET);
        assert_eq!(r.buf.paused.load(Ordering::Relaxed), 0);
        r.wr(reg::IMSC, int::RX);
        assert_eq!(r.buf.paused.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn bad_offsets_and_widths_are_refused() {
        let r = Rig::new(8);
        assert_eq!(r.u.read(V0, 0x800, W), Err(AccessError::Invalid));
        assert_eq!(r.u.write(V0, 0x800, W, 1), Err(AccessError::Invalid));
        assert_eq!(
            r.u.read(V0, reg::FR, AccessWidth::Double),
            Err(AccessError::Invalid)
        );
        assert_eq!(
            r.u.read(V0, reg::PERIPH_ID0 + 1, W),
            Err(AccessError::Invalid)
        );
    }
}
