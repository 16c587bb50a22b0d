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
//! **Ctrl-]** (0x1d) opens the hypervisor monitor. While it is open, keys
//! are monitor commands and reach no guest:
//!
//! - `l`: list the VMs (state, vCPUs, resets, exit and log counters);
//! - `s NAME` Enter: stop VM `NAME`;
//! - `r NAME` Enter: restart VM `NAME` (a reset if it runs, a fresh start
//!   if it is off);
//! - `n`: move input to the next VM;
//! - `q` or Ctrl-] again: leave.
//!
//! A name is typed blind (the monitor prints the command when Enter ends
//! it); spaces before it are skipped, Backspace edits it, Esc drops the
//! command. Ctrl-] is telnet's escape key; under telnet, send it with
//! telnet's `send escape`.
//!
//! Each hotkey and each monitor command is one arm of
//! [`InputSwitch::feed`] and one [`Action`].

/// Moves input to the next VM with a console: Ctrl-\.
pub const SWITCH_KEY: u8 = 0x1c;
/// Opens (and closes) the monitor: Ctrl-].
pub const MONITOR_KEY: u8 = 0x1d;
/// Longest VM name the monitor takes.
pub const NAME_MAX: usize = 32;

const ESCAPE: u8 = 0x1b;
const BACKSPACE: u8 = 0x08;
const DELETE: u8 = 0x7f;

/// A VM name typed in the monitor: printable ASCII without spaces, at most
/// [`NAME_MAX`] bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct VmName {
    bytes: [u8; NAME_MAX],
    len: usize,
}

impl VmName {
    const fn new() -> Self {
        Self {
            bytes: [0; NAME_MAX],
            len: 0,
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        // Only printable ASCII is ever stored.
        core::str::from_utf8(&self.bytes[..self.len]).unwrap_or("")
    }
}

impl core::fmt::Debug for VmName {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

/// A monitor command that names a VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmCommand {
    /// `s`: stop it.
    Stop,
    /// `r`: restart it.
    Restart,
}

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
    /// `s` or `r` was typed: the VM's name follows.
    AskName(VmCommand),
    /// A command on a named VM, its name ended by Enter.
    OnVm(VmCommand, VmName),
    /// A name longer than [`NAME_MAX`], or an empty one: the command is
    /// dropped.
    BadName,
    /// Esc while a name was being typed: the command is dropped.
    Cancelled,
    /// The monitor closed: input goes to console `target` again.
    MonitorClosed {
        /// The console that has input.
        target: usize,
    },
    /// An unknown monitor command: show the commands again.
    MonitorHelp,
    /// Nothing to do (a hotkey with nothing to switch to, no console, a
    /// byte of a name being typed).
    None,
}

/// Where the monitor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Monitor {
    Closed,
    /// Waiting for a one-key command.
    Command,
    /// Reading the name for a command; `extra`: bytes typed beyond
    /// [`NAME_MAX`] (not kept; Backspace takes them back first).
    Name {
        command: VmCommand,
        name: VmName,
        extra: usize,
    },
}

/// The input selector: `count` consoles, one of which has input.
#[derive(Debug)]
pub struct InputSwitch {
    target: usize,
    count: usize,
    monitor: Monitor,
}

impl Default for InputSwitch {
    fn default() -> Self {
        Self::new()
    }
}

impl InputSwitch {
    /// No consoles yet.
    pub const fn new() -> Self {
        Self {
            target: 0,
            count: 0,
            monitor: Monitor::Closed,
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
        self.monitor != Monitor::Closed
    }

    /// Interprets one byte typed on the physical console. `alive(i)`:
    /// whether console `i`'s VM can still take input (the hotkeys skip
    /// VMs that are off).
    pub fn feed(&mut self, byte: u8, alive: &dyn Fn(usize) -> bool) -> Action {
        match self.monitor {
            Monitor::Closed => {}
            Monitor::Command => return self.monitor_command(byte, alive),
            Monitor::Name {
                command,
                mut name,
                extra,
            } => return self.name_byte(command, &mut name, extra, byte),
        }
        match (byte, self.target()) {
            (MONITOR_KEY, _) => {
                self.monitor = Monitor::Command;
                Action::MonitorOpened
            }
            (_, None) => Action::None,
            (SWITCH_KEY, Some(_)) => self.switch(alive),
            (byte, Some(target)) => Action::Forward { target, byte },
        }
    }

    fn monitor_command(&mut self, byte: u8, alive: &dyn Fn(usize) -> bool) -> Action {
        let named = |command| Monitor::Name {
            command,
            name: VmName::new(),
            extra: 0,
        };
        match byte {
            b'l' => Action::ListVms,
            b's' => {
                self.monitor = named(VmCommand::Stop);
                Action::AskName(VmCommand::Stop)
            }
            b'r' => {
                self.monitor = named(VmCommand::Restart);
                Action::AskName(VmCommand::Restart)
            }
            b'n' | SWITCH_KEY => self.switch(alive),
            b'q' | MONITOR_KEY => self.close(),
            b'\r' | b'\n' | b' ' => Action::None,
            _ => Action::MonitorHelp,
        }
    }

    /// One byte of the name of `command`'s VM (`name` so far).
    fn name_byte(
        &mut self,
        command: VmCommand,
        name: &mut VmName,
        extra: usize,
        byte: u8,
    ) -> Action {
        let mut extra = extra;
        let action = match byte {
            b'\r' | b'\n' if extra > 0 || name.len == 0 => Action::BadName,
            b'\r' | b'\n' => Action::OnVm(command, *name),
            ESCAPE => Action::Cancelled,
            MONITOR_KEY => return self.close(),
            BACKSPACE | DELETE => {
                match extra.checked_sub(1) {
                    Some(e) => extra = e,
                    None => name.len = name.len.saturating_sub(1),
                }
                Action::None
            }
            b' ' => Action::None,
            b'!'..=b'~' => {
                match name.bytes.get_mut(name.len) {
                    Some(slot) => {
                        *slot = byte;
                        name.len += 1;
                    }
                    None => extra += 1,
                }
                Action::None
            }
            _ => Action::None,
        };
        self.monitor = match action {
            Action::None => Monitor::Name {
                command,
                name: *name,
                extra,
            },
            _ => Monitor::Command,
        };
        action
    }

    fn close(&mut self) -> Action {
        self.monitor = Monitor::Closed;
        Action::MonitorClosed {
            target: self.target,
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

    /// Types `text` into the monitor; returns the last action.
    fn type_in(s: &mut InputSwitch, text: &[u8]) -> Action {
        text.iter().fold(Action::None, |_, &b| s.feed(b, ALL))
    }

    fn name(text: &str) -> VmName {
        let mut n = VmName::new();
        n.bytes[..text.len()].copy_from_slice(text.as_bytes());
        n.len = text.len();
        n
    }

    #[test]
    fn stop_and_restart_take_a_vm_name_ended_by_enter() {
        let mut s = InputSwitch::new();
        s.add_console();
        s.feed(MONITOR_KEY, ALL);
        assert_eq!(s.feed(b's', ALL), Action::AskName(VmCommand::Stop));
        assert_eq!(type_in(&mut s, b"  guest-1"), Action::None);
        assert_eq!(
            s.feed(b'\r', ALL),
            Action::OnVm(VmCommand::Stop, name("guest-1"))
        );
        assert!(s.in_monitor(), "still in the monitor");
        assert_eq!(s.feed(b'r', ALL), Action::AskName(VmCommand::Restart));
        // Backspace and Delete edit the name.
        assert_eq!(
            type_in(&mut s, b" abx\x08d\x7fc\n"),
            Action::OnVm(VmCommand::Restart, name("abc"))
        );
        assert_eq!(s.feed(b'l', ALL), Action::ListVms, "back to commands");
        assert_eq!(s.feed(b'q', ALL), Action::MonitorClosed { target: 0 });
        assert_eq!(
            s.feed(b's', ALL),
            Action::Forward {
                target: 0,
                byte: b's'
            },
            "outside the monitor, s is a guest's key"
        );
    }

    #[test]
    fn empty_long_or_cancelled_names_do_nothing() {
        let mut s = InputSwitch::new();
        s.add_console();
        s.feed(MONITOR_KEY, ALL);
        assert_eq!(type_in(&mut s, b"s\r"), Action::BadName, "empty");
        let long = [b'x'; NAME_MAX + 1];
        s.feed(b'r', ALL);
        type_in(&mut s, &long);
        assert_eq!(s.feed(b'\r', ALL), Action::BadName, "too long");
        // Exactly NAME_MAX is fine; one too many then Backspace is too.
        s.feed(b'r', ALL);
        type_in(&mut s, &long);
        assert_eq!(
            type_in(&mut s, b"\x7f\r"),
            Action::OnVm(
                VmCommand::Restart,
                name(core::str::from_utf8(&long[..NAME_MAX]).unwrap())
            )
        );
        assert_eq!(type_in(&mut s, b"sabc\x1b"), Action::Cancelled);
        assert_eq!(
            s.feed(b'l', ALL),
            Action::ListVms,
            "Esc left a command prompt"
        );
        // Control bytes are not part of a name; Ctrl-] leaves at once.
        assert_eq!(
            type_in(&mut s, b"sa\x01b\r"),
            Action::OnVm(VmCommand::Stop, name("ab"))
        );
        assert_eq!(
            type_in(&mut s, b"sabc\x1d"),
            Action::MonitorClosed { target: 0 }
        );
        assert!(!s.in_monitor());
        assert_eq!(
            s.feed(b'\r', ALL),
            Action::Forward {
                target: 0,
                byte: b'\r'
            },
            "the half-typed command is gone"
        );
    }
}
