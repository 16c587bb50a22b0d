//! The x86 console (for now): whole lines, tagged with who wrote them
//! (`[tessera]`, `[<vm>]`), written to the board's 16550 under one lock.
//! Input: bytes received by the 16550 go through the same input switch as
//! on AArch64 ([`super::input`]: Ctrl-\ moves input to the next VM,
//! Ctrl-] opens the monitor) into the COM1 of the VM that has input. The
//! UART is polled (the hypervisor takes no interrupts) whenever a guest
//! looks at its COM1 receive side, at most once per [`POLL_PERIOD_US`].
//! The byte-stream output multiplexer of the AArch64 console
//! (`physical.rs`) is not ported to x86. The API is the same, so the
//! neutral core does not know which one it has.
//!
//! Locks nest only as `INPUT` → `CONSOLE`.

use super::input::{Action, InputSwitch};
use super::monitor::{self, vm_alive};
use super::mux::Ring;
use crate::config::SYSTEM;
use crate::devices::line::{LineBuffer, LineSink};
use crate::devices::pl011::{SerialBackend, VirtualPl011};
use crate::devices::uart16550::ByteSource;
use crate::devices::InterruptLine;
use crate::drivers::uart16550::Uart16550;
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use spin::Mutex;

struct Console {
    uart: Uart16550,
}

impl Console {
    fn put_bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if b == b'\n' {
                self.uart.put(b'\r');
            }
            self.uart.put(b);
        }
    }
}

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.put_bytes(s.as_bytes());
        Ok(())
    }
}

static CONSOLE: Mutex<Console> = Mutex::new(Console {
    uart: Uart16550::new(SYSTEM.board.console.base),
});

/// Writes one tagged line.
pub fn write_line(tag: &str, line: &[u8]) {
    let mut c = CONSOLE.lock();
    c.put_bytes(b"[");
    c.put_bytes(tag.as_bytes());
    c.put_bytes(b"] ");
    c.put_bytes(line);
    c.put_bytes(b"\n");
}

/// Writes one `[tessera]` line from format arguments.
pub fn print_hyp(args: fmt::Arguments) {
    let mut c = CONSOLE.lock();
    let _ = c.write_str("[tessera] ");
    let _ = c.write_fmt(args);
    let _ = c.write_str("\n");
}

/// Writes straight to the UART even if another core holds the console lock
/// (it may have died holding it). Panic path only.
pub fn print_emergency(args: fmt::Arguments) {
    let mut c = Console {
        uart: Uart16550::new(SYSTEM.board.console.base),
    };
    let _ = c.write_str("[tessera] ");
    let _ = c.write_fmt(args);
    let _ = c.write_str("\n");
}

/// Prints a `[tessera]` line.
#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => { $crate::console::print_hyp(format_args!($($arg)*)) };
}

/// Nothing is buffered between lines.
pub fn poll() {}

/// Nothing is buffered between lines.
pub fn flush() {}

/// Nothing to settle: whole lines go out as they are written.
pub fn settle() {}

/// A VM's console lines, tagged with its name.
pub struct VmLines {
    /// The VM name.
    pub name: &'static str,
}

impl LineSink for VmLines {
    fn emit_line(&self, line: &[u8]) {
        write_line(self.name, line);
    }
}

/// The console side of a VM's virtual PL011 (x86 configs have none yet:
/// their COM ports are 16550s on [`VmLines`]).
pub struct VmConsole {
    out: LineBuffer<VmLines>,
}

impl SerialBackend for VmConsole {
    fn transmit(&self, byte: u8) -> bool {
        self.out.push(byte);
        true
    }
    fn tx_level(&self) -> (usize, usize) {
        (0, usize::MAX)
    }
    fn flush(&self) {
        self.out.flush();
    }
}

/// A virtual PL011 whose output goes to the console as `name`'s lines.
pub fn vm_uart(
    name: &'static str,
    irq: &'static dyn InterruptLine,
) -> Result<&'static VirtualPl011<VmConsole>, &'static str> {
    let backend = VmConsole {
        out: LineBuffer::new(VmLines { name }),
    };
    Ok(Box::leak(Box::new(VirtualPl011::new(backend, irq))))
}

/// Bytes held for a VM that has not read them yet.
const INPUT_RING_SIZE: usize = 256;
/// Longest time between two looks at the UART's receive side while a
/// guest polls its COM1 (a 16550's FIFO holds 16 bytes: 1.4 ms at 115200
/// baud).
pub const POLL_PERIOD_US: u64 = 100;

/// The input switch and each console's held bytes (index = console).
struct Inputs {
    switch: InputSwitch,
    consoles: Vec<(&'static str, Ring<INPUT_RING_SIZE>)>,
}

static INPUT: Mutex<Inputs> = Mutex::new(Inputs {
    switch: InputSwitch::new(),
    consoles: Vec::new(),
});
/// Counter value before which the UART is not looked at again.
static NEXT_POLL: AtomicU64 = AtomicU64::new(0);
/// Bytes held for all consoles (changed with `INPUT` held): the common
/// case, nothing typed, costs a guest's LSR read no lock.
static HELD: AtomicUsize = AtomicUsize::new(0);

/// The receive side of one VM's COM1: what the console routed to it.
pub struct VmInput {
    index: usize,
}

impl ByteSource for VmInput {
    fn ready(&self) -> bool {
        poll_input();
        HELD.load(Ordering::Acquire) != 0
            && INPUT
                .lock()
                .consoles
                .get(self.index)
                .is_some_and(|(_, r)| !r.is_empty())
    }

    fn take(&self) -> Option<u8> {
        poll_input();
        let mut inputs = INPUT.lock();
        let (_, ring) = inputs.consoles.get_mut(self.index)?;
        let mut b = [0];
        (ring.peek(&mut b) == 1).then(|| {
            ring.consume(1);
            HELD.fetch_sub(1, Ordering::AcqRel);
            b[0]
        })
    }
}

/// Registers VM `name`'s COM1 as a console that can have input (the first
/// one starts with it).
pub fn vm_input(name: &'static str) -> &'static VmInput {
    let mut inputs = INPUT.lock();
    let index = inputs.switch.add_console();
    inputs.consoles.push((name, Ring::new()));
    if index == 0 {
        crate::println!("input: {} (Ctrl-\\ moves it to the next VM)", name);
    }
    Box::leak(Box::new(VmInput { index }))
}

/// Reads what the UART received and routes it, unless another core is
/// at it or it was looked at less than [`POLL_PERIOD_US`] ago.
fn poll_input() {
    let now = crate::arch::counter_now();
    if now < NEXT_POLL.load(Ordering::Relaxed) {
        return;
    }
    let Some(mut inputs) = INPUT.try_lock() else {
        return;
    };
    let period = crate::arch::counter_frequency() / 1_000_000 * POLL_PERIOD_US;
    NEXT_POLL.store(now + period, Ordering::Relaxed);
    loop {
        // The console lock is released before routing: a hotkey prints.
        let received = CONSOLE.lock().uart.get();
        let Some(b) = received else {
            break;
        };
        route(&mut inputs, b);
    }
}

/// Acts on one byte typed on the console.
fn route(inputs: &mut Inputs, byte: u8) {
    let names: Vec<&'static str> = inputs.consoles.iter().map(|(n, _)| *n).collect();
    let alive = |i: usize| names.get(i).is_some_and(|n| vm_alive(n));
    match inputs.switch.feed(byte, &alive) {
        Action::Forward { target, byte } => {
            if let Some((_, ring)) = inputs.consoles.get_mut(target) {
                // A full ring drops the byte: the VM is not reading.
                if ring.push(byte) {
                    HELD.fetch_add(1, Ordering::AcqRel);
                }
            }
        }
        Action::Switched { to } => {
            if let Some(n) = names.get(to) {
                crate::println!("input: {}", n);
            }
        }
        Action::MonitorClosed { target } => {
            if let Some(n) = names.get(target) {
                crate::println!("monitor closed; input: {}", n);
            }
        }
        Action::None => {}
        monitor_action => {
            monitor::act(
                monitor_action,
                inputs.switch.target().and_then(|t| names.get(t).copied()),
            );
        }
    }
}

/// Enables the UART and routes the `log` crate to the console.
pub fn init() {
    CONSOLE.lock().uart.enable();
    super::install_logger();
}
