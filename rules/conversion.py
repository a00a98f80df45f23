"""HJ 75 computations: O2 conversion, standard dry flow, emission rate. Pure arithmetic.

NOx as NO2 and ppm to mg/m3 live with the parameters they depend on (``contracts.parameters``,
shared with the gateway) and are re-exported here.
"""

from __future__ import annotations

from contracts.parameters import nox_as_no2, ppm_to_mg_m3

__all__ = [
    "emission_rate_kg_h",
    "nox_as_no2",
    "o2_converted",
    "ppm_to_mg_m3",
    "standard_dry_flow_m3_h",
]

ATMOSPHERE_KPA = 101.325


def o2_converted(concentration: float, o2_pct: float, reference_o2_pct: float) -> float:
    """``Cz = C * (21 - O2_ref) / (21 - O2)`` (dry O2). Callers refuse O2 near ambient first."""
    return concentration * (21.0 - reference_o2_pct) / (21.0 - o2_pct)


def standard_dry_flow_m3_h(
    flow_m3_s: float, temperature_c: float, static_pressure_kpa: float = 0.0, humidity_pct: float = 0.0
) -> float:
    """``Qsn = Qs * 273/(273+ts) * (Ba+Ps)/101325 * (1-Xsw)``, in m3/h (Ba: one atmosphere)."""
    return (
        flow_m3_s
        * 3600.0
        * 273.0
        / (273.0 + temperature_c)
        * (ATMOSPHERE_KPA + static_pressure_kpa)
        / ATMOSPHERE_KPA
        * (1.0 - humidity_pct / 100.0)
    )


def emission_rate_kg_h(concentration_mg_m3: float, standard_dry_flow: float) -> float:
    """``G = C * Qsn * 1e-6`` (kg/h)."""
    return concentration_mg_m3 * standard_dry_flow * 1e-6
