//! `loaderctl instances`: the payloads' filter instances, like
//! `fltmc instances`: volume, altitude, instance name and whether it is
//! attached, for the filter of each slot's service.
//!
//! The facts come from the Filter Manager. On Windows: fltlib's
//! `FilterInstanceFindFirst/Next` (what `fltmc` itself uses). Under Wine,
//! whose fltlib cannot enumerate instances (its routines are stubs), from
//! the test world's Filter Manager (`tests/fltmgr`) when it runs: its query
//! device `\\.\FltSim`. A slot whose filter has no instance is shown with
//! its configured default instance (the service's `Instances` key) as not
//! attached. This module builds the rows and the table; gathering is the
//! caller's (`ops.rs`).
use crate::json::InstanceDoc;
use crate::render::{columns, utf16_text};
use fltsim_abi as sim;
use shared_abi::Slot;

/// Where the instances came from.
#[cfg_attr(not(windows), allow(dead_code))] // host builds only render them
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// fltlib: the Filter Manager's own enumeration.
    Fltlib,
    /// The test world's Filter Manager under Wine.
    TestFilterManager,
}

impl Source {
    /// The JSON name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Source::Fltlib => "fltlib",
            Source::TestFilterManager => "test-filter-manager",
        }
    }

    /// The footer line of the table.
    #[must_use]
    pub fn note(self) -> &'static str {
        match self {
            Source::Fltlib => "Source: the Filter Manager (fltlib).",
            Source::TestFilterManager => {
                "Source: the test Filter Manager (\\\\.\\FltSim); Wine's own fltlib cannot enumerate instances."
            }
        }
    }
}

/// An instance's state.
#[cfg_attr(not(windows), allow(dead_code))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Attached,
    Attaching,
    Detaching,
    NotAttached,
}

impl State {
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            State::Attached => "attached",
            State::Attaching => "attaching",
            State::Detaching => "detaching",
            State::NotAttached => "not-attached",
        }
    }

    fn column(self) -> &'static str {
        match self {
            State::Attached => "yes",
            State::Attaching => "attaching",
            State::Detaching => "detaching",
            State::NotAttached => "no",
        }
    }
}

/// One row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub slot: Option<Slot>,
    pub filter: String,
    pub volume: Option<String>,
    pub volume_dos: Option<String>,
    pub altitude: String,
    pub instance: String,
    pub state: State,
}

impl Row {
    #[must_use]
    pub fn doc(&self) -> InstanceDoc {
        InstanceDoc {
            slot: self.slot.map(|s| s.letter().to_string()),
            filter: self.filter.clone(),
            volume: self.volume.clone(),
            volume_dos: self.volume_dos.clone(),
            altitude: self.altitude.clone(),
            instance: self.instance.clone(),
            attached: self.state == State::Attached,
            state: self.state.name(),
        }
    }
}

/// A slot's service and its configured default instance (name, altitude),
/// as the service's `Instances` key says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotFilter {
    pub slot: Slot,
    pub service: String,
    pub default_instance: Option<(String, String)>,
}

/// `SYSTEM\CurrentControlSet\Services\<service>\Instances`.
#[cfg_attr(not(windows), allow(dead_code))]
#[must_use]
pub fn instances_key(service: &str) -> String {
    format!("SYSTEM\\CurrentControlSet\\Services\\{service}\\Instances")
}

/// The rows of the test Filter Manager's snapshot for these filters.
#[cfg_attr(not(windows), allow(dead_code))]
#[must_use]
pub fn from_snapshot(snap: &sim::Snapshot, filters: &[SlotFilter]) -> Vec<Row> {
    let count = usize::try_from(snap.instance_count).unwrap_or(0).min(snap.instances.len());
    let mut rows = Vec::new();
    for i in snap.instances.iter().take(count) {
        let name = utf16_text(sim::units(&i.filter));
        let Some(f) = filters.iter().find(|f| f.service.eq_ignore_ascii_case(&name)) else { continue };
        let state = match i.state {
            sim::INSTANCE_ATTACHED => State::Attached,
            sim::INSTANCE_SETTING_UP => State::Attaching,
            sim::INSTANCE_TEARING_DOWN => State::Detaching,
            _ => continue,
        };
        let altitude = snap
            .filters
            .iter()
            .find(|fi| fi.generation == i.filter_generation && utf16_text(sim::units(&fi.name)) == name)
            .map(|fi| utf16_text(sim::units(&fi.altitude)))
            .or_else(|| f.default_instance.as_ref().map(|d| d.1.clone()))
            .unwrap_or_default();
        let volume = sim::VOLUME_NAMES.get(usize::try_from(i.volume).unwrap_or(usize::MAX)).map(|v| (*v).to_owned());
        rows.push(Row {
            slot: Some(f.slot),
            filter: name,
            volume,
            volume_dos: None,
            altitude,
            instance: f.default_instance.as_ref().map_or_else(|| "-".to_owned(), |d| d.0.clone()),
            state,
        });
    }
    rows
}

/// Adds a not-attached row for every slot whose filter has no instance.
pub fn add_unattached(rows: &mut Vec<Row>, filters: &[SlotFilter]) {
    for f in filters {
        if rows.iter().any(|r| r.slot == Some(f.slot)) {
            continue;
        }
        let (instance, altitude) = f.default_instance.clone().unwrap_or_else(|| ("-".to_owned(), "-".to_owned()));
        rows.push(Row {
            slot: Some(f.slot),
            filter: f.service.clone(),
            volume: None,
            volume_dos: None,
            altitude,
            instance,
            state: State::NotAttached,
        });
    }
    rows.sort_by(|a, b| (a.slot.map(Slot::index), &a.volume).cmp(&(b.slot.map(Slot::index), &b.volume)));
}

/// The table, `fltmc instances` style, and its source.
#[must_use]
pub fn table(rows: &[Row], source: Source) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let volume = match (&r.volume_dos, &r.volume) {
                (Some(dos), _) => dos.clone(),
                (None, Some(v)) => v.clone(),
                (None, None) => "-".to_owned(),
            };
            vec![
                r.slot.map_or_else(|| "-".to_owned(), |s| s.letter().to_string()),
                r.filter.clone(),
                volume,
                r.altitude.clone(),
                r.instance.clone(),
                r.state.column().to_owned(),
            ]
        })
        .collect();
    let mut out = columns(&["Slot", "Filter", "Volume", "Altitude", "Instance", "Attached"], &cells);
    out.push('\n');
    out.push_str(source.note());
    out.push('\n');
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn slot_filters() -> Vec<SlotFilter> {
        vec![
            SlotFilter {
                slot: Slot::A,
                service: "CounterFilterA".into(),
                default_instance: Some(("CounterFilterA Instance".into(), "370030".into())),
            },
            SlotFilter {
                slot: Slot::B,
                service: "CounterFilterB".into(),
                default_instance: Some(("CounterFilterB Instance".into(), "370031".into())),
            },
        ]
    }

    /// A snapshot with slot A's filter attached to both volumes (the Mup
    /// one tearing down) and another filter on C:.
    pub(crate) fn snapshot_a_on_both_volumes() -> sim::Snapshot {
        let mut s = sim::Snapshot::empty();
        s.filter_count = 2;
        s.filters[0].name = sim::utf16("CounterFilterA");
        s.filters[0].altitude = sim::utf16("370030");
        s.filters[0].generation = 4;
        s.filters[0].state = sim::FILTER_UNREGISTERING;
        s.filters[1].name = sim::utf16("NaiveFilter");
        s.filters[1].generation = 5;
        s.instance_count = 3;
        for (i, (filter, volume, state)) in [
            ("CounterFilterA", sim::VOLUME_C, sim::INSTANCE_ATTACHED),
            ("CounterFilterA", sim::VOLUME_MUP, sim::INSTANCE_TEARING_DOWN),
            ("NaiveFilter", sim::VOLUME_C, sim::INSTANCE_ATTACHED),
        ]
        .into_iter()
        .enumerate()
        {
            s.instances[i].filter = sim::utf16(filter);
            s.instances[i].volume = volume;
            s.instances[i].state = state;
            s.instances[i].filter_generation = if filter == "NaiveFilter" { 5 } else { 4 };
        }
        s.instances[1].contexts = 1;
        s
    }

    #[test]
    fn rows_come_from_the_snapshot_for_the_slots_filters_only() {
        let filters = slot_filters();
        let mut rows = from_snapshot(&snapshot_a_on_both_volumes(), &filters);
        assert_eq!(rows.len(), 2, "{rows:?}");
        add_unattached(&mut rows, &filters);
        let text = table(&rows, Source::TestFilterManager);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "Slot  Filter          Volume                   Altitude  Instance                 Attached"
        );
        assert_eq!(lines[2], "A     CounterFilterA  \\Device\\HarddiskVolume1  370030    CounterFilterA Instance  yes");
        assert!(text.contains("\\Device\\HarddiskVolume1  370030    CounterFilterA Instance  yes\n"), "{text}");
        assert!(text.contains("\\Device\\Mup              370030    CounterFilterA Instance  detaching\n"), "{text}");
        assert!(
            text.contains("B     CounterFilterB  -                        370031    CounterFilterB Instance  no\n"),
            "{text}"
        );
        assert!(!text.contains("NaiveFilter"));
        assert!(text.ends_with("Wine's own fltlib cannot enumerate instances.\n"));
        let doc = rows[2].doc();
        assert_eq!((doc.attached, doc.state, doc.volume), (false, "not-attached", None));
    }
}
