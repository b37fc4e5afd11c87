//! Versioned code lists, shipped as data files and compiled into the binary.
//!
//! Each list is a TOML file (`codelists/CL_*.toml`) with an `id`, a `version`, a `name` and its
//! `codes`. A deployment may replace any built-in list by putting a file with the same `id` in
//! the directory named by the `schema.codelists_dir` setting.

use std::{collections::HashMap, fmt, path::Path};

use serde::Deserialize;

/// One code of a code list.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Code {
    /// The code itself, e.g. `HEROIN`.
    pub id: String,
    /// English name.
    pub name: String,
    /// The group this code belongs to (CL_DRUG).
    #[serde(default)]
    pub parent: Option<String>,
    /// Units of measure allowed for a quantity of this code (CL_DRUG).
    #[serde(default)]
    pub units: Vec<String>,
    /// ISO 3166-1 alpha-2 code (CL_AREA); present for countries, absent for `_U`.
    #[serde(default)]
    pub alpha2: Option<String>,
    /// Whether a sender may use the code; `false` for groups and receiver-set statuses.
    #[serde(default = "yes")]
    pub reportable: bool,
    /// An observation status meaning "no value" (CL_OBS_STATUS).
    #[serde(default)]
    pub missing: bool,
}

fn yes() -> bool {
    true
}

/// A versioned code list.
#[derive(Clone, Debug)]
pub struct CodeList {
    /// Identifier, e.g. `CL_DRUG`.
    pub id: String,
    /// Version of the list's content.
    pub version: String,
    /// Human-readable name.
    pub name: String,
    codes: Vec<Code>,
    index: HashMap<String, usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeListFile {
    id: String,
    version: String,
    name: String,
    codes: Vec<Code>,
}

/// Why a code list file was refused.
#[derive(Debug, thiserror::Error)]
pub enum CodeListError {
    /// The file could not be read.
    #[error("cannot read code list {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a valid code list.
    #[error("code list {origin}: {reason}")]
    Invalid {
        /// File name or built-in list id.
        origin: String,
        /// What is wrong.
        reason: String,
    },
}

impl CodeList {
    /// Parses one code list from TOML text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, CodeListError> {
        let invalid = |reason: String| CodeListError::Invalid {
            origin: origin.to_owned(),
            reason,
        };
        let file: CodeListFile = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let mut index = HashMap::with_capacity(file.codes.len());
        for (i, code) in file.codes.iter().enumerate() {
            if code.id.is_empty() || code.id.len() > 64 {
                return Err(invalid(format!(
                    "code #{} has an empty or over-long id",
                    i + 1
                )));
            }
            if index.insert(code.id.clone(), i).is_some() {
                return Err(invalid(format!("code {} appears twice", code.id)));
            }
        }
        Ok(Self {
            id: file.id,
            version: file.version,
            name: file.name,
            codes: file.codes,
            index,
        })
    }

    /// Looks a code up.
    pub fn get(&self, id: &str) -> Option<&Code> {
        self.index.get(id).map(|&i| &self.codes[i])
    }

    /// Every code, in file order.
    pub fn codes(&self) -> &[Code] {
        &self.codes
    }
}

impl fmt::Display for CodeList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.id, self.version)
    }
}

/// The code lists the schema validates against.
#[derive(Clone, Debug)]
pub struct CodeLists {
    /// CL_AREA: ISO 3166-1 alpha-3 countries and `_U`.
    pub area: CodeList,
    /// CL_FREQ.
    pub freq: CodeList,
    /// CL_DRUG: drugs and precursors in UNODC-style groups.
    pub drug: CodeList,
    /// CL_UNIT_MEASURE.
    pub unit_measure: CodeList,
    /// CL_TRANSPORT_MODE.
    pub transport_mode: CodeList,
    /// CL_OBS_STATUS.
    pub obs_status: CodeList,
    /// CL_CONF_STATUS.
    pub conf_status: CodeList,
    /// alpha-2 → alpha-3, for reading certificate subjects.
    alpha2: HashMap<String, String>,
}

/// The SDMX code for the total over every code of a list, in aggregates (never submitted).
pub const TOTAL: &str = "_T";

/// The SDMX code for "not applicable": an optional dimension left out, the unit of a count
/// without a quantity.
pub const NOT_APPLICABLE: &str = "_Z";

/// Most areas that may report (countries, i.e. areas with an alpha-2 code): the statistics
/// count a cell's reporters in a fixed-size set of this many.
pub const MAX_REPORTING_AREAS: usize = 256;

/// The built-in lists: (id, file text).
const BUILTIN: [(&str, &str); 7] = [
    ("CL_AREA", include_str!("codelists/CL_AREA.toml")),
    ("CL_FREQ", include_str!("codelists/CL_FREQ.toml")),
    ("CL_DRUG", include_str!("codelists/CL_DRUG.toml")),
    (
        "CL_UNIT_MEASURE",
        include_str!("codelists/CL_UNIT_MEASURE.toml"),
    ),
    (
        "CL_TRANSPORT_MODE",
        include_str!("codelists/CL_TRANSPORT_MODE.toml"),
    ),
    (
        "CL_OBS_STATUS",
        include_str!("codelists/CL_OBS_STATUS.toml"),
    ),
    (
        "CL_CONF_STATUS",
        include_str!("codelists/CL_CONF_STATUS.toml"),
    ),
];

impl CodeLists {
    /// The lists compiled into the binary.
    pub fn builtin() -> Result<Self, CodeListError> {
        Self::load(None)
    }

    /// The built-in lists, with any list in `dir` (files `*.toml`) replacing the built-in list
    /// of the same id. A file whose id is not a known list is refused.
    pub fn load(dir: Option<&Path>) -> Result<Self, CodeListError> {
        let mut lists: HashMap<String, CodeList> = HashMap::new();
        for (id, text) in BUILTIN {
            let list = CodeList::from_toml(text, id)?;
            lists.insert(list.id.clone(), list);
        }
        if let Some(dir) = dir {
            let read_err = |source| CodeListError::Read {
                path: dir.display().to_string(),
                source,
            };
            let mut paths: Vec<_> = std::fs::read_dir(dir)
                .map_err(read_err)?
                .map(|e| e.map(|e| e.path()))
                .collect::<Result<_, _>>()
                .map_err(read_err)?;
            paths.retain(|p| p.extension().is_some_and(|x| x == "toml"));
            paths.sort();
            for path in paths {
                let shown = path.display().to_string();
                let text =
                    std::fs::read_to_string(&path).map_err(|source| CodeListError::Read {
                        path: shown.clone(),
                        source,
                    })?;
                let list = CodeList::from_toml(&text, &shown)?;
                if !lists.contains_key(&list.id) {
                    return Err(CodeListError::Invalid {
                        origin: shown,
                        reason: format!("{} is not one of the schema's code lists", list.id),
                    });
                }
                lists.insert(list.id.clone(), list);
            }
        }
        let mut take = |id: &str| {
            lists.remove(id).ok_or_else(|| CodeListError::Invalid {
                origin: id.to_owned(),
                reason: "missing".to_owned(),
            })
        };
        let mut all = Self {
            area: take("CL_AREA")?,
            freq: take("CL_FREQ")?,
            drug: take("CL_DRUG")?,
            unit_measure: take("CL_UNIT_MEASURE")?,
            transport_mode: take("CL_TRANSPORT_MODE")?,
            obs_status: take("CL_OBS_STATUS")?,
            conf_status: take("CL_CONF_STATUS")?,
            alpha2: HashMap::new(),
        };
        all.check()?;
        all.alpha2 = all
            .area
            .codes()
            .iter()
            .filter_map(|c| Some((c.alpha2.clone()?, c.id.clone())))
            .collect();
        Ok(all)
    }

    /// Cross-list rules: drug parents exist, drug units are units, required codes are present.
    fn check(&self) -> Result<(), CodeListError> {
        let invalid = |list: &CodeList, reason: String| CodeListError::Invalid {
            origin: list.to_string(),
            reason,
        };
        for code in self.drug.codes() {
            if let Some(parent) = &code.parent
                && self.drug.get(parent).is_none()
            {
                return Err(invalid(
                    &self.drug,
                    format!("{}: parent {parent} is not a code", code.id),
                ));
            }
            if let Some(unit) = code
                .units
                .iter()
                .find(|u| self.unit_measure.get(u).is_none())
            {
                return Err(invalid(
                    &self.drug,
                    format!("{}: unit {unit} is not in {}", code.id, self.unit_measure),
                ));
            }
            if code.reportable && code.units.is_empty() {
                return Err(invalid(
                    &self.drug,
                    format!("{}: a reportable drug needs at least one unit", code.id),
                ));
            }
        }
        let reporting = self
            .area
            .codes()
            .iter()
            .filter(|c| c.alpha2.is_some())
            .count();
        if reporting > MAX_REPORTING_AREAS {
            return Err(invalid(
                &self.area,
                format!(
                    "{reporting} areas can report (have an alpha-2 code); at most \
                     {MAX_REPORTING_AREAS} are supported"
                ),
            ));
        }
        for (list, required) in [
            (&self.freq, &["A", "Q", "M"][..]),
            (&self.conf_status, &["F", "C", "E"][..]),
            (&self.obs_status, &["A"][..]),
            (&self.area, &["_U"][..]),
        ] {
            if let Some(code) = required.iter().find(|c| list.get(c).is_none()) {
                return Err(invalid(list, format!("the schema needs code {code}")));
            }
        }
        // The aggregate dataflows code "all of them" and "none applies" (schema::structure).
        for (list, code) in [
            (&self.area, TOTAL),
            (&self.drug, TOTAL),
            (&self.transport_mode, TOTAL),
            (&self.obs_status, TOTAL),
            (&self.area, NOT_APPLICABLE),
            (&self.transport_mode, NOT_APPLICABLE),
            (&self.unit_measure, NOT_APPLICABLE),
        ] {
            match list.get(code) {
                Some(c) if !c.reportable => {}
                Some(_) => {
                    return Err(invalid(
                        list,
                        format!("code {code} must be reportable = false"),
                    ));
                }
                None => return Err(invalid(list, format!("the schema needs code {code}"))),
            }
        }
        Ok(())
    }

    /// The ISO 3166-1 alpha-3 code for an alpha-2 code, e.g. `KZ` → `KAZ`.
    pub fn alpha3_of(&self, alpha2: &str) -> Option<&str> {
        self.alpha2.get(alpha2).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_lists_load_and_hold_the_agreed_codes() {
        let lists = CodeLists::builtin().unwrap();
        assert_eq!(
            lists.area.codes().len(),
            252,
            "249 ISO countries, _U, _T and _Z"
        );
        for c in ["KAZ", "KGZ", "TJK", "TKM", "UZB", "DEU", "AFG", "_U"] {
            assert!(lists.area.get(c).is_some(), "{c}");
        }
        for d in [
            "OPIUM",
            "HEROIN",
            "MORPHINE",
            "CANNABIS_HERB",
            "CANNABIS_RESIN",
            "COCAINE",
            "METHAMPHETAMINE",
            "AMPHETAMINE",
            "MDMA",
            "TRAMADOL",
            "ACETIC_ANHYDRIDE",
            "EPHEDRINE",
        ] {
            assert!(lists.drug.get(d).is_some_and(|c| c.reportable), "{d}");
        }
        let groups: Vec<_> = lists
            .drug
            .codes()
            .iter()
            .filter(|c| !c.reportable && c.id != TOTAL)
            .map(|c| c.id.as_str())
            .collect();
        assert_eq!(
            groups,
            [
                "OPIOIDS",
                "COCAINE_TYPE",
                "CANNABIS_TYPE",
                "ATS",
                "ECSTASY_TYPE",
                "SEDATIVES",
                "HALLUCINOGENS",
                "NPS",
                "PRECURSORS"
            ]
        );
        for g in groups {
            assert!(
                lists
                    .drug
                    .get(&format!("{g}_O"))
                    .is_some_and(|c| c.parent.as_deref() == Some(g)),
                "{g}_O"
            );
        }
        for t in [
            "ROAD",
            "RAIL",
            "AIR",
            "SEA",
            "POSTAL",
            "PEDESTRIAN",
            "_O",
            "_U",
        ] {
            assert!(lists.transport_mode.get(t).is_some(), "{t}");
        }
        assert_eq!(lists.alpha3_of("KZ"), Some("KAZ"));
    }

    #[test]
    fn override_directory_replaces_a_list_and_refuses_strangers() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("freq.toml"),
            "id = \"CL_FREQ\"\nversion = \"2.0.0\"\nname = \"Frequency\"\ncodes = [ { id = \"A\", name = \"Annual\" }, { id = \"Q\", name = \"Q\" }, { id = \"M\", name = \"M\" }, { id = \"W\", name = \"Weekly\" } ]\n",
        )
        .unwrap();
        let lists = CodeLists::load(Some(dir.path())).unwrap();
        assert_eq!(lists.freq.version, "2.0.0");
        assert!(lists.freq.get("W").is_some());

        std::fs::write(
            dir.path().join("x.toml"),
            "id = \"CL_OTHER\"\nversion = \"1\"\nname = \"x\"\ncodes = []\n",
        )
        .unwrap();
        let err = CodeLists::load(Some(dir.path())).unwrap_err().to_string();
        assert!(
            err.contains("CL_OTHER is not one of the schema's code lists"),
            "{err}"
        );
    }

    #[test]
    fn duplicate_codes_are_refused() {
        let err = CodeList::from_toml(
            "id = \"CL_FREQ\"\nversion = \"1\"\nname = \"f\"\ncodes = [ { id = \"A\", name = \"a\" }, { id = \"A\", name = \"b\" } ]",
            "test",
        )
        .unwrap_err();
        assert!(err.to_string().contains("code A appears twice"), "{err}");
    }
}
