//! Console input: which VM gets the keys typed on the physical console,
//! and the hotkey that moves them to the next VM. Pure logic, host-tested.
//!
//! The hotkey is **Ctrl-\\** (byte 0x1c). It is one key (Xen's triple
//! Ctrl-A is slow to type), it reaches us under `qemu-system-aarch64
//! -nographic` (QEMU's own escape is Ctrl-A: Ctrl-A x quits QEMU, so Ctrl-A
//! must never be ours), terminals send it as a plain byte in raw mode, and
//! shells rarely need it (it is SIGQUIT in cooked mode). The byte is never
//! forwarded to a guest.
//!
//! **Ctrl-]** (0x1d) opens the hypervisor monitor: while it is open, keys
//! are monitor commands (`l` list the VMs, `n` move input to the next VM,
//! `q` or Ctrl-] again to leave) and reach no guest. Ctrl-] is telnet's
//! escape key; under telnet, send it with telnet's `send escape`.
//!
//! Each hotkey and each monitor command is one arm of
//! [`InputSwitch::feed`] and one [`Action`].

/// Moves input to the next VM with a console: Ctrl-\.
pub const SWITCH_KEY: u8 = 0x1c;
/// Opens (and closes) the monitor: Ctrl-].
pub const MONITOR_KEY: u8 = 0x1d;

/// What one input byte means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Give the byte to console `target` (an index into the consoles).
    Forward {
        /// The console that has input.
        target: usize,
        /// The byte.
        byte: u8,
    },
    /// Input moved to console `to` (print which VM has it).
    Switched {
        /// The console that has input now.
        to: usize,
    },
    /// The monitor opened: show its commands.
    MonitorOpened,
    /// Monitor command `l`: list the VMs.
    ListVms,
    /// The monitor closed: input goes to console `target` again.
    MonitorClosed {
        /// The console that has input.
        target: usize,
    },
    /// An unknown monitor command: show the commands again.
    MonitorHelp,
    /// Nothing to do (a hotkey with nothing to switch to, or no console).
    None,
}

/// The input selector: `count` consoles, one of which has input.
#[derive(Debug, Default)]
pub struct InputSwitch {
    target: usize,
    count: usize,
    monitor: bool,
}

impl InputSwitch {
    /// No consoles yet.
    pub const fn new() -> Self {
        Self {
            target: 0,
            count: 0,
            monitor: false,
        }
    }

    /// One more console exists (consoles are numbered in order of
    /// creation; the first one starts with input).
    pub fn add_console(&mut self) -> usize {
        self.count += 1;
        self.count - 1
    }

    /// The console that has input, if any.
    pub fn target(&self) -> Option<usize> {
        (self.target < self.count).then_some(self.target)
    }

    /// Whether the monitor is open.
    pub fn in_monitor(&self) -> bool {
        self.monitor
    }

    /// Interprets one byte typed on the physical console. `alive(i)`:
    /// whether console `i`'s VM can still take input (the hotkeys skip
    /// VMs that are off).
    pub fn feed(&mut self, byte: u8, alive: &dyn Fn(usize) -> bool) -> Action {
        if self.monitor {
            return self.monitor_command(byte, alive);
        }
        match (byte, self.target()) {
            (MONITOR_KEY, _) => {
                self.monitor = true;
                Action::MonitorOpened
            }
            (_, None) => Action::None,
            (SWITCH_KEY, Some(_)) => self.switch(alive),
            (byte, Some(target)) => Action::Forward { target, byte },
        }
    }

    fn monitor_command(&mut self, byte: u8, alive: &dyn Fn(usize) -> bool) -> Action {
        match byte {
            b'l' => Action::ListVms,
            b'n' | SWITCH_KEY => self.switch(alive),
            b'q' | MONITOR_KEY => {
                self.monitor = false;
                Action::MonitorClosed {
                    target: self.target,
                }
            }
            b'\r' | b'\n' => Action::None,
            _ => Action::MonitorHelp,
        }
    }

    /// Moves input to the next console whose VM is alive, if any.
    fn switch(&mut self, alive: &dyn Fn(usize) -> bool) -> Action {
        let Some(t) = self.target() else {
            return Action::None;
        };
        let Some(next) = (1..self.count)
            .map(|k| (t + k) % self.count)
            .find(|&i| alive(i))
        else {
            return Action::None;
        };
        self.target = next;
        Action::Switched { to: next }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: &dyn Fn(usize) -> bool = &|_| true;

    #[test]
    fn bytes_go_to_the_first_console_until_the_hotkey() {
        let mut s = InputSwitch::new();
        assert_eq!(s.feed(b'a', ALL), Action::None, "no console: dropped");
        s.add_console();
        s.add_console();
        s.add_console();
        assert_eq!(
            s.feed(b'x', ALL),
            Action::Forward {
                target: 0,
                byte: b'x'
            }
        );
        assert_eq!(s.feed(SWITCH_KEY, ALL), Action::Switched { to: 1 });
        assert_eq!(
            s.feed(b'y', ALL),
            Action::Forward {
                target: 1,
                byte: b'y'
            }
        );
        assert_eq!(s.feed(SWITCH_KEY, ALL), Action::Switched { to: 2 });
        assert_eq!(s.feed(SWITCH_KEY, ALL), Action::Switched { to: 0 }, "wraps");
        assert_eq!(s.target(), Some(0));
    }

    #[test]
    fn the_hotkey_skips_consoles_of_vms_that_are_off() {
        let mut s = InputSwitch::new();
        for _ in 0..3 {
            s.add_console();
        }
        let not_1: &dyn Fn(usize) -> bool = &|i| i != 1;
        assert_eq!(s.feed(SWITCH_KEY, not_1), Action::Switched { to: 2 });
        assert_eq!(s.feed(SWITCH_KEY, not_1), Action::Switched { to: 0 });
        let only_0: &dyn Fn(usize) -> bool = &|i| i == 0;
        assert_eq!(s.feed(SWITCH_KEY, only_0), Action::None, "nowhere to go");
        assert_eq!(s.target(), Some(0));
    }

    #[test]
    fn the_monitor_takes_keys_until_it_is_left() {
        let mut s = InputSwitch::new();
        s.add_console();
        s.add_console();
        assert_eq!(s.feed(MONITOR_KEY, ALL), Action::MonitorOpened);
        assert!(s.in_monitor());
        assert_eq!(s.feed(b'l', ALL), Action::ListVms);
        assert_eq!(s.feed(b'x', ALL), Action::MonitorHelp, "not forwarded");
        assert_eq!(s.feed(b'\r', ALL), Action::None);
        assert_eq!(s.feed(b'n', ALL), Action::Switched { to: 1 });
        assert_eq!(s.feed(b'q', ALL), Action::MonitorClosed { target: 1 });
        assert_eq!(
            s.feed(b'l', ALL),
            Action::Forward {
                target: 1,
                byte: b'l'
            }
        );
        assert_eq!(s.feed(MONITOR_KEY, ALL), Action::MonitorOpened);
        assert_eq!(
            s.feed(MONITOR_KEY, ALL),
            Action::MonitorClosed { target: 1 }
        );
    }

    #[test]
    fn the_hotkey_with_one_console_changes_nothing_and_is_not_forwarded() {
        let mut s = InputSwitch::new();
        s.add_console();
        assert_eq!(s.feed(SWITCH_KEY, ALL), Action::None);
        assert_eq!(
            s.feed(0x01, ALL),
            Action::Forward {
                target: 0,
                byte: 0x01
            }
        );
    }
}
