"""Monitored parameters: contract names, HJ 212 codes (2017 and legacy 2005), canonical units.

Readings on the wire use the contract names (``so2``, ``nox``, ...). Concentrations are
carried in mg/m3; ``ppm`` input is converted with the molar mass (C = M / 22.4 * ppm). NOx is
reported as NO2; a stack that measures NO and NO2 instead gets ``nox = NO * 46/30 + NO2``
(``nox_as_no2``, ``DERIVED_FROM``), added to its readings by the gateway and judged by the rules.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Unit(StrEnum):
    MG_M3 = "mg/m3"
    PPM = "ppm"
    M3_S = "m3/s"
    M3_H = "m3/h"
    M_S = "m/s"
    CELSIUS = "C"
    KPA = "kPa"
    PA = "Pa"
    PERCENT = "%"
    MW = "MW"
    T_H = "t/h"
    KW = "kW"
    AMPERE = "A"
    KWH = "kWh"


@dataclass(frozen=True)
class Parameter:
    name: str
    hj212_code: str
    legacy_code: str | None
    unit: Unit
    accepted_units: frozenset[Unit]
    molar_mass_g_mol: float | None = None
    #: physically possible range in the canonical unit (inclusive); outside is refused
    min_value: float = 0.0
    max_value: float = float("inf")
    description: str = ""


def _conc(
    name: str, code: str, legacy: str | None, molar: float | None, desc: str, max_value: float = 1e5
) -> Parameter:
    units = {Unit.MG_M3, Unit.PPM} if molar else {Unit.MG_M3}
    return Parameter(name, code, legacy, Unit.MG_M3, frozenset(units), molar, 0.0, max_value, desc)


PARAMETERS: dict[str, Parameter] = {
    p.name: p
    for p in (
        Parameter("flow", "a00000", "B02", Unit.M3_S, frozenset({Unit.M3_S, Unit.M3_H}), None, 0, 1e4, "flue gas flow"),
        Parameter("velocity", "a01011", "S02", Unit.M_S, frozenset({Unit.M_S}), None, 0, 100, "flue gas velocity"),
        Parameter(
            "temperature",
            "a01012",
            "S03",
            Unit.CELSIUS,
            frozenset({Unit.CELSIUS}),
            None,
            -40,
            1200,
            "flue gas temperature",
        ),
        Parameter(
            "pressure",
            "a01013",
            "S08",
            Unit.KPA,
            frozenset({Unit.KPA, Unit.PA}),
            None,
            -100,
            200,
            "flue gas static pressure",
        ),
        Parameter(
            "humidity", "a01014", "S05", Unit.PERCENT, frozenset({Unit.PERCENT}), None, 0, 100, "flue gas moisture"
        ),
        Parameter("o2", "a19001", "S01", Unit.PERCENT, frozenset({Unit.PERCENT}), None, 0, 25, "dry O2"),
        _conc("nh3", "a21001", "10", 17.0, "ammonia slip"),
        _conc("nox", "a21002", "03", 46.0, "NOx as NO2"),
        _conc("no", "a21003", None, 30.0, "NO"),
        _conc("no2", "a21004", None, 46.0, "NO2"),
        _conc("co", "a21005", None, 28.0, "CO"),
        _conc("hcl", "a21024", None, 36.5, "HCl"),
        _conc("so2", "a21026", "02", 64.0, "SO2"),
        _conc("pm", "a34013", "01", None, "particulate matter"),
        _conc("thc", "a24087", None, None, "total hydrocarbons"),
        _conc("nmhc", "a24088", None, None, "non-methane hydrocarbons"),
        _conc("ch4", "a05002", None, 16.0, "methane"),
        _conc("benzene", "a25002", None, 78.0, "benzene"),
        _conc("toluene", "a25003", None, 92.0, "toluene"),
        _conc("xylene", "a25005", None, 106.0, "xylene"),
    )
}

# Bypass instrumentation and production signals. HJ 212 has no codes for them; the
# project's own codes (prefix "x") are used in packets, contract names in JSON.
for _p in (
    Parameter(
        "bypass_damper",
        "xb0001",
        None,
        Unit.PERCENT,
        frozenset({Unit.PERCENT}),
        None,
        0,
        100,
        "bypass damper opening (0 closed, 100 open)",
    ),
    Parameter(
        "bypass_flow",
        "xb0002",
        None,
        Unit.M3_S,
        frozenset({Unit.M3_S, Unit.M3_H}),
        None,
        0,
        1e4,
        "flow in the bypass duct",
    ),
    Parameter(
        "bypass_temperature",
        "xb0003",
        None,
        Unit.CELSIUS,
        frozenset({Unit.CELSIUS}),
        None,
        -40,
        1200,
        "temperature in the bypass duct",
    ),
    Parameter(
        "load", "xp0001", None, Unit.PERCENT, frozenset({Unit.PERCENT}), None, 0, 150, "production load, % of rated"
    ),
):
    PARAMETERS[_p.name] = _p

# Electricity meters of production and pollution-control facilities (分表计电). HJ 212 has no
# codes for them either: the project's codes (prefix "xe") are used in packets.
for _p in (
    Parameter("power", "xe0001", None, Unit.KW, frozenset({Unit.KW, Unit.MW}), None, 0, 2e6, "active power drawn"),
    Parameter("current", "xe0002", None, Unit.AMPERE, frozenset({Unit.AMPERE}), None, 0, 1e6, "phase current"),
    Parameter(
        "energy",
        "xe0003",
        None,
        Unit.KWH,
        frozenset({Unit.KWH}),
        None,
        0,
        1e13,
        "cumulative active energy (meter reading)",
    ),
):
    PARAMETERS[_p.name] = _p

#: what an electricity meter reports; a stack does not report these, a meter only these
METER_PARAMETERS: frozenset[str] = frozenset({"power", "current", "energy"})

BY_HJ212_CODE: dict[str, Parameter] = {p.hj212_code: p for p in PARAMETERS.values()}
BY_LEGACY_CODE: dict[str, Parameter] = {p.legacy_code: p for p in PARAMETERS.values() if p.legacy_code}

#: litres per mole of an ideal gas at 273.15 K and 101.325 kPa: C[mg/m3] = M / 22.4 * C[ppm]
MOLAR_VOLUME_L_MOL = 22.4
_NO2_G_MOL = PARAMETERS["no2"].molar_mass_g_mol or 46.0
_NO_G_MOL = PARAMETERS["no"].molar_mass_g_mol or 30.0


def ppm_to_mg_m3(ppm: float, molar_mass_g_mol: float) -> float:
    return molar_mass_g_mol / MOLAR_VOLUME_L_MOL * ppm


def nox_as_no2(no_mg_m3: float, no2_mg_m3: float) -> float:
    """NOx expressed as NO2: ``NO * 46/30 + NO2`` (mg/m3; the molar masses of NO2 and NO)."""
    return no_mg_m3 * _NO2_G_MOL / _NO_G_MOL + no2_mg_m3


#: parameters computed from others when a reading lacks them (the gateway adds them):
#: NOx as NO2 from NO and NO2 (``nox_as_no2``)
DERIVED_FROM: dict[str, frozenset[str]] = {"nox": frozenset({"no", "no2"})}


def computable(declared: Iterable[str]) -> frozenset[str]:
    """The parameters a stack's readings carry: those it declares and those derived from them."""
    have = set(declared)
    have |= {name for name, sources in DERIVED_FROM.items() if sources <= have}
    return frozenset(have)
