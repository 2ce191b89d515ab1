//! The INF packages: `inf/loader.inf` and `inf/payload.inf`.
//!
//! A small INF reader (sections, `key = value` lines, comma-separated fields
//! with quotes, `%strings%` substitution) and the checks an installation
//! relies on: service types and start types, the minifilter's group,
//! dependency and instance altitudes, and `Parameters` defaults the
//! loader's own configuration parser accepts. Each check is also run on a
//! broken copy of the INF to show it can fail.
use loader_parsers::config::{self, Config, RawValue, ServiceName, REG_DWORD, REG_SZ};
use shared_abi::Slot;
use std::collections::BTreeSet;
use std::path::PathBuf;

/// One line of a section: `key = f1, f2, ...`, or bare fields.
#[derive(Debug, Clone)]
struct Line {
    key: Option<String>,
    fields: Vec<String>,
}

#[derive(Debug)]
struct Section {
    name: String,
    lines: Vec<Line>,
}

#[derive(Debug)]
struct Inf {
    sections: Vec<Section>,
}

/// The files `cargo xtask build` puts in `target/package/x64/` that INFs
/// may copy.
const PACKAGE_FILES: [&str; 2] = ["loader.sys", "payload.sys"];

/// Splits at `sep` outside double quotes.
fn split_unquoted(text: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut quoted = false;
    let mut start = 0;
    for (i, ch) in text.char_indices() {
        if ch == '"' {
            quoted = !quoted;
        } else if ch == sep && !quoted {
            parts.push(&text[start..i]);
            start = i + ch.len_utf8();
        }
    }
    parts.push(&text[start..]);
    parts
}

/// Removes the quotes of a field (`""` inside quotes is one `"`).
fn unquote(field: &str) -> String {
    let mut out = String::new();
    let mut chars = field.trim().chars().peekable();
    let mut quoted = false;
    while let Some(ch) = chars.next() {
        match ch {
            '"' if quoted && chars.peek() == Some(&'"') => {
                out.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            _ => out.push(ch),
        }
    }
    out
}

impl Inf {
    fn parse(text: &str) -> Result<Inf, String> {
        let mut raw: Vec<Section> = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = split_unquoted(line, ';')[0].trim();
            if line.is_empty() {
                continue;
            }
            if let Some(name) = line.strip_prefix('[') {
                let name = name.strip_suffix(']').ok_or(format!("line {}: bad section header", number + 1))?;
                raw.push(Section { name: name.trim().to_string(), lines: Vec::new() });
                continue;
            }
            let section = raw.last_mut().ok_or(format!("line {}: text before any section", number + 1))?;
            let (key, value) = match split_unquoted(line, '=').as_slice() {
                [value] => (None, *value),
                [key, value] => (Some(unquote(key)), *value),
                _ => return Err(format!("line {}: more than one '='", number + 1)),
            };
            let fields = split_unquoted(value, ',').into_iter().map(str::to_string).collect();
            section.lines.push(Line { key, fields });
        }
        // [Strings] values are literal; everything else is substituted.
        let strings: Vec<(String, String)> = raw
            .iter()
            .filter(|s| s.name.eq_ignore_ascii_case("Strings"))
            .flat_map(|s| &s.lines)
            .filter_map(|l| Some((l.key.clone()?.to_ascii_lowercase(), unquote(&l.fields.join(",")))))
            .collect();
        let mut sections = Vec::new();
        for s in raw {
            let literal = s.name.eq_ignore_ascii_case("Strings");
            let mut lines = Vec::new();
            for l in s.lines {
                let fields = l
                    .fields
                    .iter()
                    .map(|f| if literal { Ok(unquote(f)) } else { substitute(&unquote(f), &strings) })
                    .collect::<Result<_, _>>()?;
                lines.push(Line { key: l.key, fields });
            }
            sections.push(Section { name: s.name, lines });
        }
        Ok(Inf { sections })
    }

    fn section(&self, name: &str) -> Result<&Section, String> {
        let mut found = self.sections.iter().filter(|s| s.name.eq_ignore_ascii_case(name));
        let first = found.next().ok_or(format!("no section [{name}]"))?;
        if found.next().is_some() {
            return Err(format!("section [{name}] appears twice"));
        }
        Ok(first)
    }
}

/// Replaces `%key%` with its `[Strings]` value; `%%` is `%`, and a numeric
/// `%12%` (a directory id) stays as it is. An unknown key is an error.
fn substitute(text: &str, strings: &[(String, String)]) -> Result<String, String> {
    let mut out = String::new();
    let mut in_token = false;
    for part in text.split('%') {
        let token = in_token;
        in_token = !in_token;
        if !token {
            out.push_str(part);
        } else if part.is_empty() {
            out.push('%');
        } else if part.chars().all(|c| c.is_ascii_digit()) {
            out.push('%');
            out.push_str(part);
            out.push('%');
        } else {
            let key = part.to_ascii_lowercase();
            let value = strings.iter().find(|(k, _)| *k == key).ok_or(format!("undefined string %{part}%"))?;
            out.push_str(&value.1);
        }
    }
    if !in_token {
        return Err(format!("unbalanced % in {text:?}"));
    }
    Ok(out)
}

impl Section {
    /// Every line with this key, as its fields.
    fn all(&self, key: &str) -> Vec<&[String]> {
        self.lines
            .iter()
            .filter(|l| l.key.as_deref().is_some_and(|k| k.eq_ignore_ascii_case(key)))
            .map(|l| l.fields.as_slice())
            .collect()
    }

    /// The single one-field value of `key`.
    fn one(&self, key: &str) -> Result<&str, String> {
        match self.all(key).as_slice() {
            [[value]] => Ok(value.as_str()),
            other => Err(format!("[{}] {key}: expected one value, found {other:?}", self.name)),
        }
    }

    fn number(&self, key: &str) -> Result<u32, String> {
        parse_number(self.one(key)?).ok_or(format!("[{}] {key} is not a number", self.name))
    }

    /// Lines without a key (file lists, `AddReg` lines).
    fn bare(&self) -> Vec<&[String]> {
        self.lines.iter().filter(|l| l.key.is_none()).map(|l| l.fields.as_slice()).collect()
    }
}

fn parse_number(text: &str) -> Option<u32> {
    let t = text.trim();
    match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => t.parse().ok(),
    }
}

/// One `HKR,subkey,value,flags,data` line.
#[derive(Debug, PartialEq, Eq)]
struct AddReg {
    subkey: String,
    value: String,
    flags: u32,
    data: String,
}

fn add_reg(inf: &Inf, section: &str) -> Result<Vec<AddReg>, String> {
    inf.section(section)?
        .bare()
        .into_iter()
        .map(|f| match f {
            [root, subkey, value, flags, data] if root == "HKR" => Ok(AddReg {
                subkey: subkey.clone(),
                value: value.clone(),
                flags: parse_number(flags).ok_or(format!("bad AddReg flags {flags}"))?,
                data: data.clone(),
            }),
            other => Err(format!("[{section}] unexpected AddReg line {other:?}")),
        })
        .collect()
}

/// The data of `subkey\value`, which must be set exactly once with `flags`.
fn reg_value<'a>(regs: &'a [AddReg], subkey: &str, value: &str, flags: u32) -> Result<&'a str, String> {
    let found: Vec<_> = regs.iter().filter(|r| r.subkey.eq_ignore_ascii_case(subkey) && r.value == value).collect();
    match found.as_slice() {
        [r] if r.flags == flags => Ok(&r.data),
        [r] => Err(format!("{subkey}\\{value}: flags {:#x}, expected {flags:#x}", r.flags)),
        _ => Err(format!("{subkey}\\{value}: set {} times", found.len())),
    }
}

const FLG_ADDREG_TYPE_SZ: u32 = 0;
const FLG_ADDREG_TYPE_DWORD: u32 = 0x0001_0001;
const SPSVCINST_STOPSERVICE: &str = "0x200";
const ACTIVITY_MONITOR_ALTITUDES: std::ops::RangeInclusive<u32> = 360_000..=389_999;

/// A service an INF installs, with the checked values of its section.
#[derive(Debug)]
struct Service {
    name: String,
    /// The service-install section.
    section: String,
    image: String,
    add_reg: Vec<AddReg>,
}

/// Checks the decorated and the downlevel install/uninstall sections
/// agree, that each binary is copied to `%12%`, and returns the services.
fn installed_services(inf: &Inf, service_type: u32, start_type: u32) -> Result<Vec<Service>, String> {
    let version = inf.section("Version")?;
    if version.one("Signature")? != "$Windows NT$" {
        return Err("Signature is not $Windows NT$".into());
    }
    let sources: BTreeSet<String> =
        inf.section("SourceDisksFiles")?.lines.iter().filter_map(|l| l.key.clone()).collect();
    let mut per_decoration = Vec::new();
    for decoration in ["DefaultInstall.NTamd64", "DefaultInstall.NTx86", "DefaultInstall"] {
        let install = inf.section(decoration)?;
        let copy = install.one("CopyFiles")?;
        if inf.section("DestinationDirs")?.one(copy)? != "12" {
            return Err(format!("{copy} is not copied to %12% (system32\\drivers)"));
        }
        // CopyFiles lines are `Destination[,Source]`: the package ships one
        // payload.sys that is installed under each slot's image name.
        let copied: std::collections::BTreeMap<String, String> = inf
            .section(copy)?
            .bare()
            .iter()
            .filter_map(|f| {
                let dest = f.first()?.clone();
                let source = f.get(1).filter(|s| !s.is_empty()).cloned().unwrap_or_else(|| dest.clone());
                Some((dest, source))
            })
            .collect();
        let mut services = Vec::new();
        for fields in inf.section(&format!("{decoration}.Services"))?.all("AddService") {
            let [name, _flags, section, ..] = fields else {
                return Err(format!("short AddService {fields:?}"));
            };
            let s = inf.section(section)?;
            let image = s
                .one("ServiceBinary")?
                .strip_prefix("%12%\\")
                .ok_or(format!("{name}: ServiceBinary not under %12%"))?
                .to_string();
            match copied.get(&image) {
                Some(source) if sources.contains(source) && PACKAGE_FILES.contains(&source.as_str()) => {}
                _ => {
                    return Err(format!("{name}: {image} is not copied from a file of the package on the source disk"))
                }
            }
            for (key, wanted) in [("ServiceType", service_type), ("StartType", start_type), ("ErrorControl", 1)] {
                let got = s.number(key)?;
                if got != wanted {
                    return Err(format!("{name}: {key} = {got}, expected {wanted}"));
                }
            }
            let add_reg = add_reg(inf, s.one("AddReg")?)?;
            services.push(Service { name: name.clone(), section: section.clone(), image, add_reg });
        }
        let uninstall = inf.section(&format!("{}.Services", decoration.replace("Install", "Uninstall")))?;
        let deleted: BTreeSet<&str> = uninstall
            .all("DelService")
            .into_iter()
            .filter(|f| f.get(1).map(String::as_str) == Some(SPSVCINST_STOPSERVICE))
            .map(|f| f[0].as_str())
            .collect();
        let names: BTreeSet<&str> = services.iter().map(|s| s.name.as_str()).collect();
        if deleted != names {
            return Err(format!("{decoration}: uninstall stops and deletes {deleted:?}, install adds {names:?}"));
        }
        per_decoration.push(services);
    }
    let downlevel = per_decoration.pop().unwrap_or_default();
    let decorated = per_decoration.pop().unwrap_or_default();
    let names = |v: &[Service]| v.iter().map(|s| (s.name.clone(), s.image.clone())).collect::<Vec<_>>();
    if names(&decorated) != names(&downlevel) {
        return Err("the downlevel (Windows 7) sections install other services".into());
    }
    Ok(decorated)
}

/// The loader's package; returns its `Parameters` configuration.
fn check_loader(inf: &Inf) -> Result<Config, String> {
    let services = installed_services(inf, 1, 1)?;
    let [loader] = services.as_slice() else {
        return Err(format!("{} services, expected 1", services.len()));
    };
    if loader.name != config::LOADER_SERVICE || loader.image != "loader.sys" {
        return Err(format!("loader service {} ({})", loader.name, loader.image));
    }
    // It starts with the minifilters it loads, after the Filter Manager.
    let sec = inf.section(&loader.section)?;
    if sec.one("LoadOrderGroup")? != "FSFilter Activity Monitor"
        || !sec.one("Dependencies")?.eq_ignore_ascii_case("FltMgr")
    {
        return Err("the loader is not in the FSFilter Activity Monitor group, after FltMgr".into());
    }
    let regs = &loader.add_reg;
    let slot = |name: &str| -> Result<Vec<u8>, String> {
        let text = reg_value(regs, config::PARAMETERS_KEY, name, FLG_ADDREG_TYPE_SZ)?;
        Ok(text.encode_utf16().chain([0]).flat_map(u16::to_le_bytes).collect())
    };
    let dword = |name: &str| -> Result<[u8; 4], String> {
        let text = reg_value(regs, config::PARAMETERS_KEY, name, FLG_ADDREG_TYPE_DWORD)?;
        Ok(parse_number(text).ok_or(format!("{name} = {text} is not a number"))?.to_le_bytes())
    };
    let (a, b) = (slot(config::VALUE_SLOTS[0])?, slot(config::VALUE_SLOTS[1])?);
    let active = dword(config::VALUE_ACTIVE_SLOT)?;
    let timeout = dword(config::VALUE_UNLOAD_TIMEOUT_MS)?;
    if regs.len() != 4 {
        return Err(format!("{} registry values, expected the 4 Parameters", regs.len()));
    }
    let value = |reg_type, data| Some(RawValue { reg_type, data });
    let config = Config::from_values(
        [value(REG_SZ, a.as_slice()), value(REG_SZ, b.as_slice())],
        value(REG_DWORD, active.as_slice()),
        value(REG_DWORD, timeout.as_slice()),
    )
    .map_err(|e| format!("the loader refuses its default Parameters: {e}"))?;
    // The default must be used as written, not clamped into range.
    if config.unload_timeout_ms.to_le_bytes() != timeout {
        return Err(format!("UnloadTimeoutMs is clamped to {}", config.unload_timeout_ms));
    }
    Ok(config)
}

/// The payload package; returns the service names with their altitudes.
fn check_payload(inf: &Inf) -> Result<Vec<(String, u32)>, String> {
    let version = inf.section("Version")?;
    if version.one("Class")? != "ActivityMonitor"
        || !version.one("ClassGuid")?.eq_ignore_ascii_case("{b86dff51-a31e-4bac-b3cf-e8cfe75c9fc2}")
    {
        return Err("not in the ActivityMonitor class".into());
    }
    let services = installed_services(inf, 2, 3)?;
    if services.len() != 2 {
        return Err(format!("{} services, expected one per slot", services.len()));
    }
    let mut out = Vec::new();
    for s in &services {
        let sec = inf.section(&s.section)?;
        if sec.one("LoadOrderGroup")? != "FSFilter Activity Monitor" {
            return Err(format!("{}: LoadOrderGroup {}", s.name, sec.one("LoadOrderGroup")?));
        }
        if !sec.one("Dependencies")?.eq_ignore_ascii_case("FltMgr") {
            return Err(format!("{}: does not depend on FltMgr", s.name));
        }
        let instance = reg_value(&s.add_reg, "Instances", "DefaultInstance", FLG_ADDREG_TYPE_SZ)?;
        let key = format!("Instances\\{instance}");
        let altitude = reg_value(&s.add_reg, &key, "Altitude", FLG_ADDREG_TYPE_SZ)?;
        let altitude: u32 = altitude.parse().map_err(|_| format!("{}: altitude {altitude:?}", s.name))?;
        if !ACTIVITY_MONITOR_ALTITUDES.contains(&altitude) {
            return Err(format!("{}: altitude {altitude} outside FSFilter Activity Monitor", s.name));
        }
        if parse_number(reg_value(&s.add_reg, &key, "Flags", FLG_ADDREG_TYPE_DWORD)?) != Some(0) {
            return Err(format!("{}: instance Flags not 0", s.name));
        }
        out.push((s.name.clone(), altitude));
    }
    let altitudes: BTreeSet<u32> = out.iter().map(|s| s.1).collect();
    if altitudes.len() != out.len() {
        return Err(format!("slots share an altitude: {out:?}"));
    }
    let images: BTreeSet<&str> = services.iter().map(|s| s.image.as_str()).collect();
    if images.len() != services.len() {
        return Err("slots share an image file".into());
    }
    Ok(out)
}

fn read_inf(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("inf").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn loader_inf() -> String {
    read_inf("loader.inf")
}

fn payload_inf() -> String {
    read_inf("payload.inf")
}

#[test]
fn loader_inf_installs_a_system_start_kernel_service_with_valid_parameters() {
    let config = check_loader(&Inf::parse(&loader_inf()).unwrap()).unwrap();
    assert_eq!(*config.service(Slot::A), ServiceName::new("CounterFilterA").unwrap());
    assert_eq!(*config.service(Slot::B), ServiceName::new("CounterFilterB").unwrap());
    assert_eq!(config.active, Some(Slot::A));
    assert_eq!(config.unload_timeout_ms, 5000);
}

#[test]
fn payload_inf_installs_one_minifilter_per_slot_at_distinct_altitudes() {
    let services = check_payload(&Inf::parse(&payload_inf()).unwrap()).unwrap();
    assert_eq!(services, [("CounterFilterA".to_string(), 370_030), ("CounterFilterB".to_string(), 370_031)]);
}

#[test]
fn the_loader_slots_name_the_payload_services() {
    let config = check_loader(&Inf::parse(&loader_inf()).unwrap()).unwrap();
    let services = check_payload(&Inf::parse(&payload_inf()).unwrap()).unwrap();
    for ((_, name), (service, _)) in config.slots.iter().zip(&services) {
        assert_eq!(name.to_string(), *service);
    }
}

#[test]
fn the_reader_handles_quotes_comments_and_strings() {
    let inf = Inf::parse(
        "[A]\nk = \"a,b\" , %s%x ; comment\n\"q;k\" = \"say \"\"hi\"\"\"\nHKR,\"I\\\"%s%,\"V\",0x1,%12%\\f, %%\n[Strings]\ns = \"S;1\"\n",
    )
    .unwrap();
    let a = inf.section("a").unwrap();
    assert_eq!(a.all("k"), [&["a,b".to_string(), "S;1x".to_string()][..]]);
    assert_eq!(a.one("q;k").unwrap(), "say \"hi\"");
    assert_eq!(a.bare()[0], ["HKR", "I\\S;1", "V", "0x1", "%12%\\f", "%"]);
    assert!(Inf::parse("[A]\nk = %undefined%\n").is_err());
    assert!(Inf::parse("k = v\n").is_err());
    assert!(Inf::parse("[A]\n[A]\n").unwrap().section("A").is_err());
}

/// Each check on a copy of the INF with one thing broken.
#[test]
fn the_checks_catch_broken_packages() {
    let loader = loader_inf();
    let payload = payload_inf();
    let broken_loader = [
        ("StartType      = 1 ", "StartType      = 3 "),
        ("ServiceType    = 1 ", "ServiceType    = 2 "),
        ("\"ActiveSlot\",0x00010001,0", "\"ActiveSlot\",0x00010001,2"),
        ("\"UnloadTimeoutMs\",0x00010001,5000", "\"UnloadTimeoutMs\",0x00010001,50"),
        ("\"UnloadTimeoutMs\",0x00010001", "\"UnloadTimeoutMs\",0x00000000"),
        ("SlotB.Service      = \"CounterFilterB\"", "SlotB.Service      = \"CounterFilterA\""),
        ("SlotA.Service      = \"CounterFilterA\"", "SlotA.Service      = \"..\\CounterFilterA\""),
        ("SlotA.Service      = \"CounterFilterA\"", "SlotA.Service      = \"C:\\evil.sys\""),
        ("[DefaultInstall.Services]", "[DefaultInstall.Unused]"),
        ("DelService = %ServiceName%,0x200\n\n[DefaultUninstall]", "\n[DefaultUninstall]"),
        ("Loader.CopyDriverFiles = 12", "Loader.CopyDriverFiles = 11"),
    ];
    for (from, to) in broken_loader {
        assert!(loader.contains(from), "loader.inf no longer contains {from:?}");
        let text = loader.replace(from, to);
        let result = Inf::parse(&text).and_then(|inf| check_loader(&inf));
        match result {
            Ok(_) => panic!("loader.inf with {to:?} passed"),
            Err(e) => eprintln!("loader.inf with {to:?}: {e}"),
        }
    }
    let broken_payload = [
        ("%SlotB.Image%,payload.sys", "%SlotB.Image%,payload_x.sys"),
        ("SlotB.Altitude     = \"370031\"", "SlotB.Altitude     = \"370030\""),
        ("SlotA.Altitude     = \"370030\"", "SlotA.Altitude     = \"320000\""),
        ("SlotB.Image        = \"payload_b.sys\"", "SlotB.Image        = \"payload_a.sys\""),
        ("Dependencies   = \"FltMgr\"\nServiceType    = 2\n", "ServiceType    = 2\n"),
        ("StartType      = 3\n", "StartType      = 0\n"),
        (
            "LoadOrderGroup = \"FSFilter Activity Monitor\"\nAddReg         = SlotB",
            "LoadOrderGroup = \"FSFilter Bottom\"\nAddReg         = SlotB",
        ),
        ("Instance.Flags     = 0x0", "Instance.Flags     = 0x1"),
        ("AddService = %SlotB.ServiceName%,,SlotB.Service\n\n;;", "\n;;"),
        ("Class       = \"ActivityMonitor\"", "Class       = \"ContentScreener\""),
    ];
    for (from, to) in broken_payload {
        assert!(payload.contains(from), "payload.inf no longer contains {from:?}");
        let text = payload.replacen(from, to, 1);
        let result = Inf::parse(&text).and_then(|inf| check_payload(&inf));
        match result {
            Ok(_) => panic!("payload.inf with {to:?} passed"),
            Err(e) => eprintln!("payload.inf with {to:?}: {e}"),
        }
    }
}

#[test]
fn the_wine_harness_installs_what_the_infs_describe() {
    // The end-to-end suite creates the slot services with `sc`, from
    // constants; they must be the services and altitudes payload.inf installs.
    let from_inf = check_payload(&Inf::parse(&payload_inf()).expect("payload.inf parses")).expect("payload.inf checks");
    let harness: Vec<(String, u32)> = loader_tests::wine::SLOT_SERVICES
        .iter()
        .zip(loader_tests::wine::SLOT_ALTITUDES)
        .map(|(name, altitude)| ((*name).to_owned(), altitude.parse().expect("numeric altitude")))
        .collect();
    assert_eq!(harness, from_inf);
    // (The loader's service name is `config::LOADER_SERVICE` in both the
    // harness and `check_loader`.)
}

const FLG_ADDREG_TYPE_EXPAND_SZ: u32 = 0x0002_0000;

/// One `HKLM,key[,value,flags,data]` line of a main-section AddReg/DelReg.
fn hklm_lines(inf: &Inf, section: &str) -> Result<Vec<Vec<String>>, String> {
    inf.section(section)?
        .bare()
        .into_iter()
        .map(|f| match f.first().map(String::as_str) {
            Some("HKLM") => Ok(f[1..].to_vec()),
            _ => Err(format!("[{section}] line {f:?} is not under HKLM")),
        })
        .collect()
}

/// The event source: loader.inf registers `EventLog\System\SerialLoader`
/// with loader.sys (the image it installs, which carries the message
/// table) as its message file, from both install sections, and both
/// uninstall sections delete that key.
fn check_event_source(inf: &Inf) -> Result<(), String> {
    let key = loader_events::EVENT_SOURCE_KEY;
    if key.rsplit('\\').next() != Some(config::LOADER_SERVICE) || loader_events::EVENT_SOURCE != config::LOADER_SERVICE
    {
        return Err("the event source is not named after the loader's service".into());
    }
    for decoration in ["DefaultInstall.NTamd64", "DefaultInstall.NTx86", "DefaultInstall"] {
        let lines = hklm_lines(inf, inf.section(decoration)?.one("AddReg")?)?;
        let value = |name: &str, flags: u32| -> Result<String, String> {
            let found: Vec<&[String]> =
                lines.iter().filter(|l| l.get(1).map(String::as_str) == Some(name)).map(Vec::as_slice).collect();
            match found.as_slice() {
                [[k, _, f, data]] if k.eq_ignore_ascii_case(key) && parse_number(f) == Some(flags) => Ok(data.clone()),
                other => Err(format!("[{decoration}] {name}: {other:?}")),
            }
        };
        let file = value("EventMessageFile", FLG_ADDREG_TYPE_EXPAND_SZ)?;
        if file != loader_events::EVENT_MESSAGE_FILE {
            return Err(format!("EventMessageFile is {file:?}, not {:?}", loader_events::EVENT_MESSAGE_FILE));
        }
        let image = file.rsplit('\\').next().unwrap_or_default();
        let copied = inf.section(inf.section(decoration)?.one("CopyFiles")?)?.bare();
        if !copied.iter().any(|f| f.first().map(String::as_str) == Some(image)) {
            return Err(format!("the message file {image} is not a file this INF installs"));
        }
        let types = value("TypesSupported", FLG_ADDREG_TYPE_DWORD)?;
        if parse_number(&types) != Some(loader_events::TYPES_SUPPORTED) {
            return Err(format!("TypesSupported = {types}"));
        }
        if lines.len() != 2 {
            return Err(format!("[{decoration}] event log AddReg has {} lines, expected 2", lines.len()));
        }
        let uninstall = decoration.replace("Install", "Uninstall");
        let deleted = hklm_lines(inf, inf.section(&uninstall)?.one("DelReg")?)?;
        if deleted != [vec![key.to_owned()]] {
            return Err(format!("[{uninstall}] DelReg {deleted:?} does not delete {key}"));
        }
    }
    Ok(())
}

#[test]
fn loader_inf_registers_the_event_source_and_its_uninstall_removes_it() {
    check_event_source(&Inf::parse(&loader_inf()).unwrap()).unwrap();
    let loader = loader_inf();
    for (from, to) in [
        ("\"EventMessageFile\",0x00020000", "\"EventMessageFile\",0x00000000"),
        ("%%SystemRoot%%\\System32\\drivers\\%DriverName%.sys", "%%SystemRoot%%\\System32\\IoLogMsg.dll"),
        ("\"TypesSupported\",0x00010001,7", "\"TypesSupported\",0x00010001,1"),
        ("DelReg          = Loader.EventLog.DelReg\n", ""),
        ("EventLog\\System\\SerialLoader\"", "EventLog\\Application\\SerialLoader\""),
        (
            "AddReg     = Loader.EventLog.AddReg\n\n[DefaultInstall.NTamd64.Services]",
            "\n[DefaultInstall.NTamd64.Services]",
        ),
    ] {
        assert!(loader.contains(from), "loader.inf no longer contains {from:?}");
        match Inf::parse(&loader.replacen(from, to, 1)).and_then(|inf| check_event_source(&inf)) {
            Ok(()) => panic!("loader.inf with {to:?} passed the event source check"),
            Err(e) => eprintln!("loader.inf with {to:?}: {e}"),
        }
    }
}

/// `DriverVer` of both INFs carries the workspace version (`0.1.0` → `0.1.0.0`).
#[test]
fn driver_ver_is_the_workspace_version() {
    let numbers: Vec<&str> = env!("CARGO_PKG_VERSION").split(['-', '+']).next().unwrap().split('.').collect();
    let want = format!("{}.{}.{}.0", numbers[0], numbers[1], numbers[2]);
    for (name, text) in [("loader.inf", loader_inf()), ("payload.inf", payload_inf())] {
        let inf = Inf::parse(&text).unwrap();
        let fields = inf.section("Version").unwrap().all("DriverVer");
        let [[date, version]] = fields.as_slice() else { panic!("{name}: DriverVer {fields:?}") };
        assert_eq!(version, &want, "{name}: DriverVer version");
        assert_eq!(date.split('/').count(), 3, "{name}: DriverVer date {date}");
    }
}

/// Wine 8's setupapi skips two things these INFs say (docs/architecture.md,
/// "Installing from the INFs under Wine"); the harness restates exactly
/// those, and nothing else: every service's `Dependencies` (Wine's
/// `add_service` has a FIXME for it) and every `DelService` line after the
/// first of an uninstall section (Wine's loop looks for the next
/// `AddService` line instead).
#[test]
fn the_wine_harness_restates_only_what_wine_setupapi_skips() {
    let mut dependencies = Vec::new();
    let mut skipped_deletes = Vec::new();
    for text in [payload_inf(), loader_inf()] {
        let inf = Inf::parse(&text).unwrap();
        // Wine's 64-bit rundll32 picks the .NTamd64 sections.
        for fields in inf.section("DefaultInstall.NTamd64.Services").unwrap().all("AddService") {
            let service = inf.section(&fields[2]).unwrap();
            for dep in service.all("Dependencies") {
                dependencies.push((fields[0].clone(), dep.join(",")));
            }
        }
        let deletes = inf.section("DefaultUninstall.NTamd64.Services").unwrap().all("DelService");
        skipped_deletes.extend(deletes.iter().skip(1).map(|f| f[0].clone()));
    }
    let harness_deps: Vec<(String, String)> =
        loader_tests::wine::RESTATED_DEPENDENCIES.iter().map(|(s, d)| ((*s).to_owned(), (*d).to_owned())).collect();
    assert_eq!(harness_deps, dependencies, "the harness restates other Dependencies than the INFs declare");
    let harness_deletes: Vec<String> = loader_tests::wine::RESTATED_DELETES.iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(harness_deletes, skipped_deletes, "the harness restates other DelService lines than Wine skips");
    assert!(!harness_deletes.is_empty() && !harness_deps.is_empty());
}

/// `DELFLG_IN_USE`: a file still in use is deleted at the next reboot.
const DELFLG_IN_USE: u32 = 0x1;

/// Both uninstall sections of an INF delete exactly the files its install
/// sections copy, each flagged `DELFLG_IN_USE`.
fn check_deleted_files(inf: &Inf) -> Result<(), String> {
    for decoration in ["DefaultInstall.NTamd64", "DefaultInstall.NTx86", "DefaultInstall"] {
        let copied: BTreeSet<String> = inf
            .section(inf.section(decoration)?.one("CopyFiles")?)?
            .bare()
            .iter()
            .filter_map(|f| f.first().cloned())
            .collect();
        let uninstall = decoration.replace("Install", "Uninstall");
        let del = inf.section(&uninstall)?.one("DelFiles")?;
        let mut deleted = BTreeSet::new();
        for f in inf.section(del)?.bare() {
            if f.get(3).and_then(|x| parse_number(x)) != Some(DELFLG_IN_USE) {
                return Err(format!("[{del}] {f:?} is not flagged DELFLG_IN_USE"));
            }
            deleted.insert(f[0].clone());
        }
        if deleted != copied {
            return Err(format!("[{uninstall}] deletes {deleted:?}, the install copies {copied:?}"));
        }
    }
    Ok(())
}

#[test]
fn uninstall_deletes_every_installed_file_even_one_in_use() {
    check_deleted_files(&Inf::parse(&loader_inf()).unwrap()).unwrap();
    check_deleted_files(&Inf::parse(&payload_inf()).unwrap()).unwrap();
    for (text, from, to) in [
        (payload_inf(), "%SlotB.Image%,,,0x00000001\n", ""),
        (loader_inf(), "%DriverName%.sys,,,0x00000001", "%DriverName%.sys"),
    ] {
        assert!(text.contains(from), "the INF no longer contains {from:?}");
        match Inf::parse(&text.replacen(from, to, 1)).and_then(|inf| check_deleted_files(&inf)) {
            Ok(()) => panic!("an INF with {from:?} -> {to:?} passed"),
            Err(e) => eprintln!("{e}"),
        }
    }
}
