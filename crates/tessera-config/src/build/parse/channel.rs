//! `[[channel]]` tables: shape checks only (see `build/channel.rs` for the
//! rules about values).

use toml::{Table, Value};

use super::{join, Reader};
use crate::build::channel::{Access, ChannelSpec, MemberSpec};

impl Reader {
    /// The optional `channel` array of a system file (empty when absent).
    pub(super) fn channels(&mut self, root: &Table) -> Option<Vec<ChannelSpec>> {
        let Some(v) = root.get("channel") else {
            return Some(Vec::new());
        };
        let items = self.array(v, "channel", "an array of tables (`[[channel]]`)")?;
        let mut out = Some(Vec::new());
        for (i, item) in items.iter().enumerate() {
            self.scope = format!("channel[{i}]");
            let parsed = self.as_table(item, "channel").and_then(|t| {
                if let Some(Value::String(name)) = t.get("name") {
                    self.scope = format!("channel {name:?}");
                }
                self.channel(t)
            });
            match (parsed, &mut out) {
                (Some(c), Some(o)) => o.push(c),
                _ => out = None,
            }
        }
        self.scope.clear();
        out
    }

    fn channel(&mut self, t: &Table) -> Option<ChannelSpec> {
        self.keys(t, "", &["name", "size", "members"]);
        let name = self.string(t, "", "name");
        let size = self.u64(t, "", "size");
        let members = self
            .get(
                t,
                "",
                "members",
                "an array of tables (`[[channel.members]]`)",
            )
            .and_then(|v| self.tables(v, "members", |r, t, p| r.member(t, p)));
        Some(ChannelSpec {
            name: name?,
            size: size?,
            members: members?,
        })
    }

    fn member(&mut self, t: &Table, path: &str) -> Option<MemberSpec> {
        self.keys(t, path, &["vm", "gpa", "access", "irq", "doorbell"]);
        let vm = self.string(t, path, "vm");
        let gpa = self.u64(t, path, "gpa");
        let access = match self.string(t, path, "access")?.as_str() {
            "rw" => Some(Access::ReadWrite),
            "ro" => Some(Access::ReadOnly),
            other => {
                self.err(
                    &join(path, "access"),
                    format!("unknown access {other:?}, expected \"rw\" or \"ro\""),
                );
                None
            }
        };
        let irq = self
            .get(t, path, "irq", "an integer")
            .and_then(|v| self.bounded(v, &join(path, "irq"), u64::from(u32::MAX), "a GIC INTID"));
        let doorbell = self.u64(t, path, "doorbell");
        Some(MemberSpec {
            vm: vm?,
            gpa: gpa?,
            access: access?,
            // Bounded to u32::MAX above.
            irq: irq? as u32,
            doorbell: doorbell?,
        })
    }
}
