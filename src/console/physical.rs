//! The bare-metal console: per-source output buffers, the physical UART
//! they drain into, the clock the multiplexer's hold-back uses, and input
//! routing.
//!
//! Locks, in the only orders they nest: `INPUT` → a port's input ring → its
//! virtual UART's state (→ the VM's interrupt controller); `INPUT` →
//! `TERMINAL` (hotkey messages); `TERMINAL` → an output ring. Nobody waits
//! for `TERMINAL` on the guest path (try-lock); only the hypervisor's own
//! log, flushes and the UART interrupt wait for it. Virtual UARTs are told
//! about freed room after `TERMINAL` is released.

use super::input::{Action, InputSwitch};
use super::monitor::{self, vm_alive};
use super::mux::{Mux, Ring, Sink, Source};
use crate::config::SYSTEM;
use crate::devices::pl011::{SerialBackend, VirtualPl011};
use crate::devices::InterruptLine;
use crate::drivers::pl011::Pl011;
use aarch64_cpu::registers::{Readable, CNTFRQ_EL0, CNTPCT_EL0};
use alloc::boxed::Box;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use spin::{Mutex, Once};

/// Output buffer per source.
const RING_SIZE: usize = 4096;
/// Typed bytes held for a VM whose receive FIFO is full (a paste longer
/// than the FIFO, a guest slow to read); beyond this they are lost.
const INPUT_RING_SIZE: usize = 1024;
/// Virtual UARTs the console can serve (sources are these plus the log).
const MAX_PORTS: usize = 15;
const SOURCES: usize = MAX_PORTS + 1;
/// Longest hypervisor log line; longer ones are cut.
const LOG_LINE_MAX: usize = 512;
/// How long another source waits for an open line to finish, in
/// milliseconds (a line's bytes trap one by one; under emulation on a busy
/// host a vCPU can be descheduled for a good part of a second between
/// two of them, and a shorter wait split polled guests' lines in CI).
/// Linux releases its open line at once (it masks TX after a burst).
const GRACE_MS: u64 = 1000;
/// No console has input yet.
const NO_TARGET: usize = usize::MAX;

/// One producer of output: the hypervisor log or a VM's virtual UART.
struct Port {
    name: &'static str,
    ring: Mutex<Ring<RING_SIZE>>,
    /// The ring's length, kept with it under its lock, read without it
    /// (the virtual UART's flags and interrupt conditions).
    queued: AtomicUsize,
    /// The producer paused (its driver unmasked or masked interrupts after
    /// a burst, or the VM stopped): its open line holds nobody back.
    /// Cleared by its next byte.
    paused: AtomicBool,
    /// Typed bytes for this VM that its receive FIFO could not take yet.
    input: Mutex<Ring<INPUT_RING_SIZE>>,
    uart: Once<&'static VirtualPl011<VmConsole>>,
}

impl Port {
    const fn new(name: &'static str) -> Self {
        Self {
            name,
            ring: Mutex::new(Ring::new()),
            queued: AtomicUsize::new(0),
            paused: AtomicBool::new(false),
            input: Mutex::new(Ring::new()),
            uart: Once::new(),
        }
    }
}

impl Port {
    /// Moves held input into the VM's receive FIFO, as far as it has room.
    /// The input lock is held throughout so two cores cannot reorder bytes.
    fn deliver(&self) {
        let Some(u) = self.uart.get() else { return };
        let mut held = self.input.lock();
        let mut byte = [0u8];
        while !held.is_empty() && u.can_receive() {
            held.peek(&mut byte);
            held.consume(1);
            u.receive(byte[0]);
        }
    }

    /// Appends what fits of `bytes`; returns how many.
    fn push(&self, bytes: &[u8]) -> usize {
        let mut ring = self.ring.lock();
        let n = ring.push_slice(bytes);
        self.queued.store(ring.len(), Ordering::Relaxed);
        n
    }
}

impl Source for Port {
    fn tag(&self) -> &str {
        self.name
    }
    fn peek(&self, out: &mut [u8]) -> usize {
        self.ring.lock().peek(out)
    }
    fn consume(&self, n: usize) {
        let mut ring = self.ring.lock();
        ring.consume(n);
        self.queued.store(ring.len(), Ordering::Relaxed);
    }
    fn pending(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }
    fn paused(&self) -> bool {
        self.paused.load(Ordering::Relaxed)
    }
}

static HYP: Port = Port::new("tessera");
static PORTS: [Once<&'static Port>; MAX_PORTS] = [const { Once::new() }; MAX_PORTS];
static PORT_COUNT: AtomicUsize = AtomicUsize::new(0);

/// The physical side: the multiplexer's state and the UART.
struct Terminal {
    mux: Mux<SOURCES>,
    uart: Pl011,
    /// The UART's transmit interrupt is unmasked (output waits for room in
    /// its FIFO). Only changed with the terminal locked.
    tx_irq: bool,
}

static TERMINAL: Mutex<Terminal> = Mutex::new(Terminal {
    mux: Mux::new(0),
    // SAFETY: an Arm board's console is a PL011 (the only console the Arm
    // boards describe) at this address, device memory in the EL2 map below
    // 1 GiB and in firmware's map before it.
    uart: unsafe { Pl011::new(SYSTEM.board.console.base) },
    tx_irq: false,
});
/// Some buffer may hold output not written yet.
static DIRTY: AtomicBool = AtomicBool::new(false);

/// The console UART, for reads outside the terminal lock (input).
// SAFETY: as for the terminal's UART above.
static CONSOLE_UART: Pl011 = unsafe { Pl011::new(SYSTEM.board.console.base) };

static INPUT: Mutex<InputSwitch> = Mutex::new(InputSwitch::new());
/// Mirror of the input target, for a lock-free check on the guest path.
static INPUT_TARGET: AtomicUsize = AtomicUsize::new(NO_TARGET);

fn now() -> u64 {
    CNTPCT_EL0.get()
}

fn port(i: usize) -> Option<&'static Port> {
    PORTS.get(i)?.get().copied()
}

/// The UART as the multiplexer's sink. `wait`: write everything even if
/// the FIFO fills (flushes); otherwise stop at a full FIFO. `budget`: bytes
/// this drain may write at most (`spent` once it stopped for that, not for
/// a full FIFO).
struct UartSink<'a> {
    uart: &'a Pl011,
    wait: bool,
    budget: usize,
    spent: bool,
}

impl Sink for UartSink<'_> {
    fn ready(&mut self) -> bool {
        if self.budget == 0 {
            self.spent = true;
            return false;
        }
        self.wait || self.uart.tx_ready()
    }
    fn put(&mut self, byte: u8) {
        self.uart.put(byte);
        self.budget = self.budget.saturating_sub(1);
    }
}

/// Bytes of other sources' output a guest's own UART access may write out
/// beyond its own pending bytes. A VM that prints drains its own output;
/// it must not become the writer of a neighbour's flood (under QEMU every
/// byte written is an exit, and an unbounded drain per guest byte made a
/// heartbeat line take up to 0.9 s while another VM flooded). The others'
/// output goes out on their own accesses, the hypervisor's paths, and
/// forced flushes.
const FOREIGN_BUDGET: usize = 8;

/// Passes one drain makes at most when others keep writing meanwhile: a
/// core must not be captured writing out other VMs' output for as long as
/// they print (they retry on their next access, and Linux's driver on its
/// IMSC write at the end of each burst).
const MAX_PASSES: usize = 4;

/// One drain of every buffer. `force`: ignore the open-line hold-back and
/// wait for the FIFO (flushes); `wait_lock`: wait for the terminal instead
/// of leaving it to whoever holds it.
#[inline(never)]
fn drain(force: bool, wait_lock: bool) {
    drain_within(force, force, wait_lock, None);
}

/// A drain on a guest's UART access to `port`: one pass, writing at most
/// the port's own pending bytes plus [`FOREIGN_BUDGET`].
#[inline(never)]
fn drain_for_guest(port: &Port) {
    drain_within(false, false, false, Some(port.pending() + FOREIGN_BUDGET));
}

/// [`drain`] with its parts apart: `wait_fifo` waits for FIFO room without
/// ending open lines; `budget` as in [`drain_for_guest`].
fn drain_within(force: bool, wait_fifo: bool, wait_lock: bool, budget: Option<usize>) {
    for pass in 1.. {
        let guard = if wait_lock {
            Some(TERMINAL.lock())
        } else {
            TERMINAL.try_lock()
        };
        let Some(mut t) = guard else { return };
        DIRTY.store(false, Ordering::SeqCst);
        let mut sources: heapless::Vec<&dyn Source, SOURCES> = heapless::Vec::new();
        let _ = sources.push(&HYP);
        for i in 0..PORT_COUNT.load(Ordering::Acquire).min(MAX_PORTS) {
            if let Some(p) = port(i) {
                let _ = sources.push(p);
            }
        }
        let Terminal { mux, uart, tx_irq } = &mut *t;
        let mut sink = UartSink {
            uart,
            wait: wait_fifo,
            budget: budget.unwrap_or(usize::MAX),
            spent: false,
        };
        let d = mux.drain(&sources, &mut sink, now(), force);
        let spent = sink.spent;
        // A full FIFO: let its transmit interrupt say when there is room
        // (effective once the interrupt is routed to `on_uart_interrupt`).
        // A spent budget is not a full FIFO.
        if !spent && d.sink_full != *tx_irq {
            uart.set_tx_interrupt(d.sink_full);
            *tx_irq = d.sink_full;
        }
        drop(t);
        for i in 0..MAX_PORTS {
            if d.consumed & (1 << (i + 1)) != 0 {
                if let Some(u) = port(i).and_then(|p| p.uart.get()) {
                    u.tx_room_changed();
                }
            }
        }
        if d.leftover || spent {
            // Held back, the FIFO is full or the budget spent: the next
            // poll or write retries.
            DIRTY.store(true, Ordering::SeqCst);
            return;
        }
        if budget.is_some() || !DIRTY.load(Ordering::SeqCst) || (pass >= MAX_PASSES && !force) {
            return;
        }
    }
}

/// Writes out whatever is pending, if anything. Cheap when nothing is;
/// meant for periodic hypervisor paths (physical interrupts, idle) so
/// output held back for an open line is not left waiting for the next
/// guest access.
#[inline]
pub fn poll() {
    if DIRTY.load(Ordering::Relaxed) {
        drain(false, false);
    }
}

/// Writes out the whole lines pending before a hypervisor line about a VM,
/// so what the VM printed before the event comes first: it waits for the
/// terminal and for FIFO room (a drain that stopped at a full FIFO left the
/// VM's line queued, and the hypervisor's ring drains first: a CI run saw
/// a VM's last line after its `stopped` line), but holds back open lines
/// as usual (forcing them ended other VMs' half-written lines whenever any
/// VM was logged about). A VM's line held back behind another VM's open
/// line can still follow the hypervisor's; that lasts at most the grace
/// time of the open line.
pub fn settle() {
    drain_within(false, true, true, None);
}

/// Writes out everything pending, waiting for the UART (VM stopped, end of
/// the run).
pub fn flush() {
    drain(true, true);
}

/// The transmit side of a VM's virtual UART: its buffer in the console.
pub struct VmConsole {
    port: &'static Port,
}

impl SerialBackend for VmConsole {
    fn transmit(&self, byte: u8) -> bool {
        let ok = self.port.push(&[byte]) == 1;
        self.port.paused.store(false, Ordering::Relaxed);
        DIRTY.store(true, Ordering::SeqCst);
        drain_for_guest(self.port);
        ok
    }

    #[inline(always)]
    fn tx_level(&self) -> (usize, usize) {
        let queued = self.port.queued.load(Ordering::Relaxed);
        (queued, RING_SIZE - queued)
    }

    fn rx_consumed(&self) {
        self.port.deliver();
    }

    fn tx_paused(&self) {
        self.port.paused.store(true, Ordering::Relaxed);
        poll();
    }

    #[inline(always)]
    fn poll(&self) {
        // Boards whose console interrupt is routed get input from it; the
        // check folds away at build time.
        if SYSTEM.board.console_irq.is_none() && CONSOLE_UART.rx_ready() {
            poll_input();
        }
        if DIRTY.load(Ordering::Relaxed) {
            drain_for_guest(self.port);
        }
    }

    fn flush(&self) {
        // This VM stopped or resets: its open line holds nobody back any
        // more. Other sources' open lines keep their hold (a forced drain
        // here split a neighbour's line in the middle).
        self.port.paused.store(true, Ordering::Relaxed);
        DIRTY.store(true, Ordering::SeqCst);
        drain(false, true);
    }
}

/// Creates the virtual PL011 of VM `name`, its interrupt output wired to
/// `irq`, with its own output buffer in the console. The first one created
/// starts with input.
pub fn vm_uart(
    name: &'static str,
    irq: &'static dyn InterruptLine,
) -> Result<&'static VirtualPl011<VmConsole>, &'static str> {
    let index = PORT_COUNT.load(Ordering::Acquire);
    if index >= MAX_PORTS {
        return Err("too many virtual UARTs for the console");
    }
    let port: &'static Port = Box::leak(Box::new(Port::new(name)));
    let uart: &'static VirtualPl011<VmConsole> =
        Box::leak(Box::new(VirtualPl011::new(VmConsole { port }, irq)));
    port.uart.call_once(|| uart);
    PORTS[index].call_once(|| port);
    PORT_COUNT.store(index + 1, Ordering::Release);
    let mut input = INPUT.lock();
    if input.add_console() == 0 {
        INPUT_TARGET.store(0, Ordering::Release);
        crate::println!("input: {} (Ctrl-\\ moves it to the next VM)", name);
    }
    Ok(uart)
}

/// Acts on one byte typed on the console.
fn route(input: &mut InputSwitch, byte: u8) {
    match input.feed(byte, &|i| port(i).is_some_and(|p| vm_alive(p.name))) {
        Action::Forward { target, byte } => {
            if let Some(p) = port(target) {
                p.input.lock().push(byte);
                p.deliver();
            }
        }
        Action::Switched { to } => {
            INPUT_TARGET.store(to, Ordering::Release);
            if let Some(p) = port(to) {
                crate::println!("input: {}", p.name);
            }
        }
        Action::MonitorClosed { target } => {
            if let Some(p) = port(target) {
                crate::println!("monitor closed; input: {}", p.name);
            }
        }
        Action::None => {}
        monitor_action => {
            monitor::act(
                monitor_action,
                port(INPUT_TARGET.load(Ordering::Relaxed)).map(|p| p.name),
            );
        }
    }
}

/// The console UART's interrupt (INTID 33 on QEMU virt). Received data:
/// reads the FIFO empty (hotkeys act at once; other bytes go to the VM with
/// input, held for it while its receive FIFO is full) after clearing the
/// receive interrupt. Room in the transmit FIFO (unmasked only while output waits
/// for it): writes more out.
pub fn on_uart_interrupt() {
    poll();
    {
        let mut input = INPUT.lock();
        // Clear first, then read empty: a byte that lands after the last
        // read raises the interrupt again. Cleared after the reads, it was
        // lost: QEMU raises RX only when its FIFO goes from empty to one
        // entry, so a byte in the window stalled input for good.
        CONSOLE_UART.clear_rx_interrupt();
        while let Some(b) = CONSOLE_UART.get() {
            route(&mut input, b);
        }
    }
    if CONSOLE_UART.tx_interrupt() {
        drain(false, true);
    }
}

/// Unmasks the console UART's receive interrupts; call once the interrupt
/// controller delivers its interrupt to [`on_uart_interrupt`].
pub fn enable_rx_interrupt() {
    let _terminal = TERMINAL.lock(); // IMSC is shared with the drainers
    CONSOLE_UART.enable_rx_interrupt();
}

/// Input on a board without a console interrupt (`console.irq`): when a
/// VM polls its virtual UART (FR or DR read) and the physical UART holds
/// data, route it as the interrupt would. Any VM's poll serves the one with
/// input, so the hotkeys still work when that VM stopped polling (or
/// stopped).
#[inline(never)]
fn poll_input() {
    let Some(mut input) = INPUT.try_lock() else {
        return;
    };
    while let Some(b) = CONSOLE_UART.get() {
        route(&mut input, b);
    }
}

/// A log line being formatted, cut at [`LOG_LINE_MAX`].
struct LineBuf(heapless::Vec<u8, LOG_LINE_MAX>);

impl Write for LineBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            let _ = self.0.push(b);
        }
        Ok(())
    }
}

/// Writes one `[tessera]` line from format arguments. The hypervisor's log
/// waits for the terminal, so a line printed is out when this returns
/// (unless held back behind a VM's open line, then it follows it).
pub fn print_hyp(args: fmt::Arguments) {
    let mut line = LineBuf(heapless::Vec::new());
    let _ = line.write_fmt(args);
    if line.0.is_full() {
        line.0.pop();
    }
    let _ = line.0.push(b'\n');
    if RING_SIZE - HYP.pending() < line.0.len() {
        flush();
    }
    HYP.push(&line.0);
    DIRTY.store(true, Ordering::SeqCst);
    drain(false, true);
}

/// Straight to the UART even if another core holds the terminal (it may
/// have died holding it). Panic path only: pending output is written first
/// if the terminal is free.
pub fn print_emergency(args: fmt::Arguments) {
    if !TERMINAL.is_locked() {
        flush();
    }
    struct Raw(Pl011);
    impl Write for Raw {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            for &b in s.as_bytes() {
                if b == b'\n' {
                    self.0.put(b'\r');
                }
                self.0.put(b);
            }
            Ok(())
        }
    }
    // SAFETY: as for the terminal's UART: the board's console PL011.
    let mut raw = Raw(unsafe { Pl011::new(SYSTEM.board.console.base) });
    let _ = raw.write_str("\n[tessera] ");
    let _ = raw.write_fmt(args);
    let _ = raw.write_str("\n");
}

/// Prints a `[tessera]` line.
#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => { $crate::console::print_hyp(format_args!($($arg)*)) };
}

/// Enables the UART, sets the multiplexer's hold-back time from the
/// counter frequency and routes the `log` crate to the console.
pub fn init() {
    let mut t = TERMINAL.lock();
    t.uart.enable();
    t.mux.set_grace(CNTFRQ_EL0.get() * GRACE_MS / 1000);
    drop(t);
    super::install_logger();
}
