//! Device register models: arbitrary access sequences (any offset, width
//! and value, as a guest can issue them) never panic and keep each model's
//! invariants. One generic driver, [`fuzz_device`]; a device joins with an
//! [`Model`] implementation and a one-line `#[test]`.

use super::Leaked;
use crate::devices::pl011::{SerialBackend, VirtualPl011, FIFO_DEPTH};
use crate::devices::InterruptLine;
use crate::devices::{AccessError, Accessor, MmioDevice};
use crate::exit::AccessWidth;
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use std::sync::Mutex;
use tessera_fuzz::proptest::prelude::*;
use tessera_fuzz::{check, run};

/// One guest access, as the MMIO bus hands it to a device.
#[derive(Debug, Clone, Copy)]
pub struct Access {
    /// The vCPU making it (an index below the model's vCPU count, as the
    /// bus always passes).
    pub vcpu: usize,
    /// Offset from the device base.
    pub offset: u64,
    /// Width.
    pub width: AccessWidth,
    /// `Some(value)` for a write (already truncated to the width), `None`
    /// for a read.
    pub write: Option<u64>,
}

/// A device model under fuzz, with whatever shadow state its invariants
/// need. Only `new`, `device` and the constants are required.
pub trait Model {
    /// The device type.
    type Device: MmioDevice;
    /// Target name in reports (`device_<name>`).
    const NAME: &'static str;
    /// Register offsets to hit often (offsets near them, anywhere in the
    /// window and anywhere at all are drawn too).
    const REGISTERS: &'static [u64];
    /// Size of the device's MMIO window.
    const WINDOW: u64;
    /// Most vCPUs a VM of this model has (accesses come from vCPUs below
    /// [`Model::vcpus`]).
    const MAX_VCPUS: usize = 1;
    /// A device in its reset state; `config` is a random number the model
    /// may derive its configuration from (vCPUs, interrupts owned...).
    fn new(config: u64) -> Self;
    /// The device.
    fn device(&self) -> &Self::Device;
    /// vCPUs of this instance (1..=MAX_VCPUS).
    fn vcpus(&self) -> usize {
        1
    }
    /// Checks the outcome of `access` and the device's state after it.
    fn after(&mut self, access: &Access, outcome: Result<u64, AccessError>) -> Result<(), String> {
        let _ = (access, outcome);
        Ok(())
    }
    /// Resets the device as a VM reset does, and checks the result.
    fn reset(&mut self) -> Result<(), String> {
        self.device().reset();
        Ok(())
    }
    /// Something from outside the guest happens (input arrives, the
    /// console drains output...), chosen by `event`; checks the outcome.
    fn event(&mut self, event: u64) -> Result<(), String> {
        let _ = event;
        Ok(())
    }
    /// Checks invariants too costly for every access, after the sequence.
    fn finish(&mut self) -> Result<(), String> {
        Ok(())
    }
}

/// One step of a sequence.
#[derive(Debug, Clone)]
enum Step {
    /// A guest access, repeated this many times.
    Access(Access, usize),
    /// [`Model::event`] with this choice.
    Event(u64),
    /// [`Model::reset`].
    Reset,
}

fn width() -> impl Strategy<Value = AccessWidth> {
    prop_oneof![
        Just(AccessWidth::Byte),
        Just(AccessWidth::Half),
        Just(AccessWidth::Word),
        Just(AccessWidth::Double)
    ]
}

fn access<M: Model>() -> impl Strategy<Value = Access> {
    let offset = prop_oneof![
        6 => (prop::sample::select(M::REGISTERS), prop_oneof![3 => Just(0u64), 1 => 1u64..8])
            .prop_map(|(r, d)| r + d),
        2 => 0..M::WINDOW,
        1 => any::<u64>(),
    ];
    // Writes of bytes the guest is likely to send, or anything.
    let value = prop_oneof![
        any::<u64>(),
        prop::sample::select(&b"\n\rab"[..]).prop_map(u64::from)
    ];
    (
        0..M::MAX_VCPUS,
        offset,
        width(),
        prop::option::weighted(0.6, value),
    )
        .prop_map(|(vcpu, offset, width, write)| Access {
            vcpu,
            offset,
            width,
            write: write.map(|v| width.truncate(v)),
        })
}

/// Runs sequences of up to 64 steps against a fresh `M` each. A step is an
/// access, sometimes repeated up to 129 times (a guest polling a register
/// or writing a string), so deep states are reached too; an event from
/// outside the guest; or, rarely, a reset of the device.
pub fn fuzz_device<M: Model>() {
    let name = format!("device_{}", M::NAME);
    let step = prop_oneof![
        40 => (access::<M>(), prop_oneof![9 => Just(1usize), 1 => 1usize..130])
            .prop_map(|(a, n)| Step::Access(a, n)),
        8 => any::<u64>().prop_map(Step::Event),
        1 => Just(Step::Reset),
    ];
    let input = (any::<u64>(), prop::collection::vec(step, 1..64));
    run(&name, input, |(config, steps)| {
        let mut model = M::new(config);
        for (i, step) in steps.iter().enumerate() {
            let (a, times) = match step {
                Step::Access(a, times) => (a, *times),
                Step::Event(e) => {
                    let verdict = model.event(*e);
                    check(verdict.is_ok(), || {
                        format!("step {i}, event {e:#x}: {}", verdict.unwrap_err())
                    })?;
                    continue;
                }
                Step::Reset => {
                    let verdict = model.reset();
                    check(verdict.is_ok(), || {
                        format!("step {i}, reset: {}", verdict.unwrap_err())
                    })?;
                    continue;
                }
            };
            let a = Access {
                vcpu: a.vcpu % model.vcpus(),
                ..*a
            };
            for _ in 0..times {
                let dev = model.device();
                let from = Accessor { vcpu: a.vcpu };
                let outcome = match a.write {
                    Some(v) => dev.write(from, a.offset, a.width, v).map(|()| 0),
                    None => dev.read(from, a.offset, a.width),
                };
                let verdict = model.after(&a, outcome);
                check(verdict.is_ok(), || {
                    format!("step {i} {a:x?} -> {outcome:x?}: {}", verdict.unwrap_err())
                })?;
            }
        }
        let verdict = model.finish();
        check(verdict.is_ok(), || {
            format!("at the end: {}", verdict.unwrap_err())
        })
    });
}

#[test]
fn fuzz_device_pl011() {
    fuzz_device::<Pl011>();
}

/// The console side of one UART: a transmit buffer of `cap` bytes that
/// the test drains by hand, and everything it ever accepted.
struct Buffer {
    cap: usize,
    state: Mutex<(usize, Vec<u8>)>,
}

impl SerialBackend for &'static Buffer {
    fn transmit(&self, byte: u8) -> bool {
        let mut s = self.state.lock().expect("not poisoned");
        if s.0 == self.cap {
            return false;
        }
        s.0 += 1;
        s.1.push(byte);
        true
    }
    fn tx_level(&self) -> (usize, usize) {
        let queued = self.state.lock().expect("not poisoned").0;
        (queued, self.cap - queued)
    }
}

/// The level the UART last drove on its interrupt line.
#[derive(Default)]
struct Line(Mutex<bool>);

impl InterruptLine for Line {
    fn set_level(&self, asserted: bool) {
        *self.0.lock().expect("not poisoned") = asserted;
    }
}

/// The PL011 with a shadow of what the TRM and the model's documented
/// choices say it must show: registers (with their writable bits), the
/// receive FIFO, what reached the console, the overrun latch.
struct Pl011 {
    dev: VirtualPl011<&'static Buffer>,
    buffer: Leaked<Buffer>,
    line: Leaked<Line>,
    /// Read/write registers: (offset, writable bits, value).
    regs: [(u64, u32, u32); 7],
    rx: VecDeque<u8>,
    /// Bytes the console accepted, and how many it still holds.
    sent: Vec<u8>,
    queued: usize,
    overrun: bool,
}

const DR: u64 = 0x00;
const RSR: u64 = 0x04;
const FR: u64 = 0x18;
const LCR_H: u64 = 0x2c;
const CR: u64 = 0x30;
const IMSC: u64 = 0x38;
const RIS: u64 = 0x3c;
const MIS: u64 = 0x40;
const ICR: u64 = 0x44;
const ID: u64 = 0xfe0;
/// PeriphID0-3, PCellID0-3: PL011 revision 3 (r1p5).
const ID_VALUES: [u64; 8] = [0x11, 0x10, 0x34, 0x00, 0x0d, 0xf0, 0x05, 0xb1];
/// IBRD FBRD LCR_H CR IFLS IMSC DMACR: writable bits, reset values.
const REGS_RESET: [(u64, u32, u32); 7] = [
    (0x24, 0xffff, 0),
    (0x28, 0x3f, 0),
    (LCR_H, 0xff, 0),
    (CR, 0xff87, 0x301),
    (0x34, 0x3f, 0x12),
    (IMSC, 0x7ff, 0),
    (0x48, 0x7, 0),
];
// FR and interrupt bits.
const BUSY: u64 = 1 << 3;
const RXFE: u64 = 1 << 4;
const TXFF: u64 = 1 << 5;
const RXFF: u64 = 1 << 6;
const TXFE: u64 = 1 << 7;
const INT_RX: u64 = 1 << 4;
const INT_RT: u64 = 1 << 6;
const INT_OE: u64 = 1 << 10;

impl Pl011 {
    fn reg(&self, offset: u64) -> u32 {
        self.regs.iter().find(|r| r.0 == offset).map_or(0, |r| r.2)
    }
    fn enabled(&self, bit: u32) -> bool {
        self.reg(CR) & (1 | bit) == 1 | bit
    }
    fn depth(&self) -> usize {
        if self.reg(LCR_H) & 1 << 4 != 0 {
            FIFO_DEPTH
        } else {
            1
        }
    }

    /// FR, RIS, MIS and the interrupt line agree with the shadow state.
    fn check_flags(&self) -> Result<(), String> {
        let word = |o| {
            self.dev
                .read(Accessor { vcpu: 0 }, o, AccessWidth::Word)
                .map_err(|e| format!("{o:#x}: {e:?}"))
        };
        let (queued, room) = self.buffer.get().tx_level();
        let fr = word(FR)?;
        let want = if queued == 0 { TXFE } else { 0 }
            | if room == 0 { TXFF } else { 0 }
            | if self.rx.is_empty() { RXFE } else { 0 }
            | if self.rx.len() >= self.depth() {
                RXFF
            } else {
                0
            };
        if fr & (BUSY | TXFE | TXFF | RXFE | RXFF) != want {
            return Err(format!("FR {fr:#x}, expected flags {want:#x}"));
        }
        let (ris, mis, imsc) = (word(RIS)?, word(MIS)?, u64::from(self.reg(IMSC)));
        let rx_bits_ok =
            (ris & INT_RT != 0) != self.rx.is_empty() && (ris & INT_RX == 0 || !self.rx.is_empty());
        if mis != ris & imsc || !rx_bits_ok || (ris & INT_OE != 0) != self.overrun {
            return Err(format!(
                "RIS {ris:#x} MIS {mis:#x} IMSC {imsc:#x} with {} bytes held",
                self.rx.len()
            ));
        }
        let level = *self.line.get().0.lock().expect("not poisoned");
        if level != (mis != 0) {
            return Err(format!("interrupt line {level} with MIS {mis:#x}"));
        }
        Ok(())
    }
}

impl Model for Pl011 {
    type Device = VirtualPl011<&'static Buffer>;
    const NAME: &'static str = "pl011";
    const REGISTERS: &'static [u64] = &[
        0x00, 0x04, 0x18, 0x20, 0x24, 0x28, 0x2c, 0x30, 0x34, 0x38, 0x3c, 0x40, 0x44, 0x48, 0xfe0,
        0xfe4, 0xfe8, 0xfec, 0xff0, 0xff4, 0xff8, 0xffc,
    ];
    const WINDOW: u64 = 0x1000;

    /// A console buffer of 1 to 64 bytes.
    fn new(config: u64) -> Self {
        let buffer = Leaked::new(Buffer {
            cap: 1 + (config % 64) as usize,
            state: Mutex::new((0, Vec::new())),
        });
        let line = Leaked::new(Line::default());
        Self {
            dev: VirtualPl011::new(buffer.get(), line.get()),
            buffer,
            line,
            regs: REGS_RESET,
            rx: VecDeque::new(),
            sent: Vec::new(),
            queued: 0,
            overrun: false,
        }
    }

    fn device(&self) -> &Self::Device {
        &self.dev
    }

    fn after(&mut self, a: &Access, outcome: Result<u64, AccessError>) -> Result<(), String> {
        let reg = self.regs.iter().position(|r| r.0 == a.offset);
        let id = (ID..=ID + 0x1c).contains(&a.offset);
        let known = reg.is_some() || [DR, RSR, FR, 0x20, RIS, MIS, ICR].contains(&a.offset);
        let want = match (a.width, a.write) {
            (AccessWidth::Double, _) => Err(AccessError::Invalid),
            (_, Some(v)) if known || id => {
                if let Some(i) = reg {
                    self.regs[i].2 = v as u32 & self.regs[i].1;
                    if a.offset == LCR_H {
                        self.rx.truncate(self.depth());
                    }
                } else if a.offset == DR
                    && self.enabled(1 << 8)
                    && self.queued < self.buffer.get().cap
                {
                    self.sent.push(v as u8);
                    self.queued += 1;
                } else if (a.offset == ICR && v & INT_OE != 0) || a.offset == RSR {
                    self.overrun = false;
                }
                Ok(0)
            }
            (_, Some(_)) => Err(AccessError::Invalid),
            (_, None) => match reg {
                Some(i) => Ok(u64::from(self.regs[i].2)),
                None if id && a.offset.is_multiple_of(4) => {
                    Ok(ID_VALUES[((a.offset - ID) / 4) as usize])
                }
                None if a.offset == DR => Ok(u64::from(self.rx.pop_front().unwrap_or(0))),
                None if [RSR, 0x20, ICR].contains(&a.offset) => Ok(0),
                None if known => outcome, // FR, RIS, MIS: checked below
                None => Err(AccessError::Invalid),
            },
        };
        if outcome != want {
            return Err(format!("expected {want:x?}"));
        }
        // What reached the console is exactly what was sent while enabled
        // and not full, in order.
        if self.buffer.get().state.lock().expect("not poisoned").1 != self.sent {
            return Err(format!(
                "the console got {:?}, sent {:?}",
                self.buffer.get().state.lock().expect("not poisoned").1,
                self.sent
            ));
        }
        self.check_flags()
    }

    /// Input arrives (accepted while enabled and not full, else an overrun
    /// when full), or the console drains some output.
    fn event(&mut self, event: u64) -> Result<(), String> {
        if event.is_multiple_of(2) {
            let byte = (event >> 8) as u8;
            let fits = self.enabled(1 << 9) && self.rx.len() < self.depth();
            if self.enabled(1 << 9) && !fits {
                self.overrun = true;
            }
            if self.dev.receive(byte) != fits {
                return Err(format!("receive of {byte:#x} returned {}", !fits));
            }
            if fits {
                self.rx.push_back(byte);
            }
        } else {
            let drained = self.queued.min((event >> 8) as usize % 8);
            self.queued -= drained;
            self.buffer.get().state.lock().expect("not poisoned").0 -= drained;
            self.dev.tx_room_changed();
        }
        self.check_flags()
    }

    /// A VM reset: registers at their reset values, the receive FIFO empty,
    /// no overrun (what was sent stays sent).
    fn reset(&mut self) -> Result<(), String> {
        self.dev.reset();
        self.regs = REGS_RESET;
        self.rx.clear();
        self.overrun = false;
        for (offset, _, value) in REGS_RESET {
            let got = self
                .dev
                .read(Accessor { vcpu: 0 }, offset, AccessWidth::Word);
            if got != Ok(u64::from(value)) {
                return Err(format!("{offset:#x} reads {got:x?} after reset"));
            }
        }
        self.check_flags()
    }
}

/// A device that answers with who it is and the offset it was given, and
/// refuses a write value wider than the access.
struct Probe(u64);

impl MmioDevice for Probe {
    fn read(&self, _: Accessor, offset: u64, _: AccessWidth) -> Result<u64, AccessError> {
        Ok(self.0 << 48 | offset)
    }
    fn write(
        &self,
        _: Accessor,
        _: u64,
        width: AccessWidth,
        value: u64,
    ) -> Result<(), AccessError> {
        if width.truncate(value) == value {
            Ok(())
        } else {
            Err(AccessError::Invalid)
        }
    }
}

static PROBES: [Probe; 4] = [Probe(1), Probe(2), Probe(3), Probe(4)];

/// `bus_routing`: the MMIO bus hands an access to the device whose window
/// holds it, with the right offset and a value cut to the width; anything
/// else is refused. Windows as the config validator allows them: page
/// granular, disjoint, below the 39-bit IPA limit.
#[test]
fn fuzz_bus_routing() {
    let windows = prop::collection::vec((0u64..1 << 16, 1u64..64), 1..=4);
    let probes = prop::collection::vec((any::<u64>(), 0usize..6, width(), any::<u64>()), 1..16);
    run("bus_routing", (windows, probes), |(windows, probes)| {
        let mut bus = crate::devices::MmioBus::default();
        let (mut placed, mut end) = (Vec::new(), 0u64);
        for (i, (gap, pages)) in windows.into_iter().enumerate() {
            let base = end + gap * 0x1000 * 4096; // spread over the IPA space
            let size = pages * 0x1000;
            if base + size > 1 << 39 {
                break;
            }
            bus.add(base, size, &PROBES[i]);
            placed.push((base, size, PROBES[i].0));
            end = base + size;
        }
        for (raw, edge, w, value) in probes {
            // An address at a window edge, or anywhere.
            let addr = match placed.get(edge % 4) {
                Some(&(base, size, _)) if edge < 4 => {
                    [base, base + size - 1, base + size, base.wrapping_sub(1)][(raw % 4) as usize]
                }
                _ => raw,
            };
            let owner = placed.iter().find(|(b, s, _)| addr >= *b && addr - b < *s);
            let from = Accessor { vcpu: 0 };
            let (read, write) = (bus.read(from, addr, w), bus.write(from, addr, w, value));
            let ok = match owner {
                Some(&(base, _, id)) => read == Ok(id << 48 | (addr - base)) && write == Ok(()),
                None => read == Err(AccessError::Invalid) && write == Err(AccessError::Invalid),
            };
            check(ok, || {
                format!("{addr:#x} ({w:?}) in {owner:x?}: read {read:x?}, write {write:?}")
            })?;
        }
        Ok(())
    });
}
